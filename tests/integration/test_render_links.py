"""Signed render links (issue 15 item 2), against `tintype up` (API, queue,
a worker with its Chromium) and pages served by this test on 127.0.0.1:

- render secrets: POST /api/users/me/render-secrets shows a secret once,
  GET lists them without values, DELETE revokes; another user's are 404,
  more than --max-render-secrets is 409;
- GET /api/render/USER.png?OPTIONS&sig=HMAC renders on the first hit (the
  image itself, the page's pixels where they belong) and answers later hits
  from the result cache with no request to the page, Cache-Control public
  and an ETag (If-None-Match -> 304); /metrics counts hits and misses;
- the signature covers the path and the canonical query (any order and
  encoding of the same parameters verifies; any change does not): missing,
  wrong, another user's secret, unknown user, revoked secret -> 403; a new
  secret (rotation) signs working links; an expired link is 403;
- options are query parameters: a bad one is 400 naming the field (also
  after the width -> viewport.width mapping); the format is the extension;
- a first hit whose render outlasts its wait is 503 with Retry-After."""
import atexit
import hashlib
import hmac
import time
import urllib.parse

import imgutil
from apiclient import call, invalid, new_user, problem
from pageserver import BLUE, GREEN, RED, WHITE, Pages
from shotutil import px
from ttharness import SLOW, Server, check, eq, fetch, run

P = Pages("127.0.0.1")
atexit.register(P.stop)
S = Server("--concurrency", "2", "--max-wait-ms", "30000", "--max-cache-ttl", "3600", "--max-render-secrets", "3",
           processes=2, cmd="up", workers=1, env={"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32"})


def enc(s):
    return urllib.parse.quote(s, safe="-._~")


def canonical(params):
    """The documented canonical query: encoded names and values, sorted."""
    return "&".join("%s=%s" % kv for kv in sorted((enc(k), enc(v)) for k, v in params))


def sign(secret, path, params):
    msg = path + "?" + canonical(params)
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


def link(uid, secret, params, ext="png"):
    path = "/api/render/%s.%s" % (uid, ext)
    return path + "?" + canonical(params) + "&sig=" + sign(secret, path, params)


def get(path, headers=None, timeout=10.0):
    return call(S.port, "GET", path, headers=headers, timeout=timeout)


def new_secret(k, name=None):
    r = call(S.port, "POST", "/api/users/me/render-secrets", key=k, body={"name": name} if name else None)
    eq(r.status, 201, "POST render-secrets: 201 (%r)" % r.body[:200])
    return r.j or {}


def user_with_secret(tag):
    u, k = new_user(S.port, tag)
    return u["id"], k, new_secret(k)


def metric(name):
    r = call(S.port, "GET", "/metrics")
    for line in r.body.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return None


def test_secrets_lifecycle():
    u, k = new_user(S.port, "rs")
    s1 = new_secret(k, "blog")
    check(s1.get("secret", "").startswith("ttrs_") and len(s1.get("secret", "")) == 69, "a secret is shown",
          "ttrs_ + 64 hex", s1.get("secret"))
    eq(s1.get("name"), "blog", "the name is kept")
    s2 = new_secret(k)
    check(s1.get("id") != s2.get("id") and s1.get("secret") != s2.get("secret"), "two secrets differ", None, s2)
    r = call(S.port, "GET", "/api/users/me/render-secrets", key=k)
    eq(r.status, 200, "GET render-secrets")
    items = (r.j or {}).get("items", [])
    eq(sorted(i.get("id") for i in items), sorted([s1.get("id"), s2.get("id")]), "both are listed")
    check(all("secret" not in i for i in items), "a listing shows no secret values", None, items)
    eq(call(S.port, "GET", "/api/users/%s/render-secrets" % u["id"], key=k).status, 200, "by own id")
    other_u, other_k = new_user(S.port, "rs2")
    problem(call(S.port, "GET", "/api/users/%s/render-secrets" % u["id"], key=other_k), 404, "not-found",
            "another user's secrets")
    problem(call(S.port, "DELETE", "/api/users/me/render-secrets/%s" % s1.get("id"), key=other_k), 404, "not-found",
            "revoking another user's secret")
    new_secret(k)
    problem(call(S.port, "POST", "/api/users/me/render-secrets", key=k), 409, "too-many-render-secrets",
            "over --max-render-secrets")
    invalid(call(S.port, "POST", "/api/users/me/render-secrets", key=other_k, body={"name": ""}), "name",
            "an empty name")
    invalid(call(S.port, "POST", "/api/users/me/render-secrets", key=other_k, body={"nam": "x"}), "nam",
            "an unknown field")
    eq(call(S.port, "DELETE", "/api/users/me/render-secrets/%s" % s1.get("id"), key=k).status, 204, "revoke")
    problem(call(S.port, "DELETE", "/api/users/me/render-secrets/%s" % s1.get("id"), key=k), 404, "not-found",
            "revoke twice")
    r = call(S.port, "GET", "/api/users/me/render-secrets", key=k)
    check(s1.get("id") not in [i.get("id") for i in (r.j or {}).get("items", [])], "a revoked secret is gone",
          None, r.j)
    problem(call(S.port, "GET", "/api/users/me/render-secrets"), 401, "unauthorized", "without a key")


def test_first_hit_renders_then_cache():
    uid, k, sec = user_with_secret("rl")
    params = [("url", P.url("/blocks?rl=1")), ("width", "400"), ("height", "300")]
    url = link(uid, sec["secret"], params)
    hits0, miss0 = metric("tintype_render_link_hits_total"), metric("tintype_render_link_misses_total")
    before = P.count("/blocks")
    r1 = get(url, timeout=40 * SLOW)
    eq(r1.status, 200, "first hit: 200 (%r)" % r1.body[:300])
    eq(r1.get("Content-Type"), "image/png", "a .png link answers a PNG")
    eq(r1.get("X-Tintype-Cache"), "miss", "first hit: rendered")
    check((r1.get("Cache-Control") or "").startswith("public, max-age="), "first hit: public Cache-Control",
          "public, max-age=N", r1.get("Cache-Control"))
    eq(P.count("/blocks"), before + 1, "first hit: the page was asked once")
    try:
        img = imgutil.decode_png(r1.body)
    except ValueError as e:
        check(False, "the body is a PNG", "png", str(e))
        return
    eq((img.width, img.height), (400, 300), "width/height are the viewport")
    px("render link", img, 50, 50, RED)
    px("render link", img, 250, 50, GREEN)
    px("render link", img, 50, 250, BLUE)
    px("render link", img, 350, 250, WHITE)
    j = call(S.port, "GET", "/api/jobs/" + (r1.get("X-Tintype-Job-Id") or "-"), key=k).j or {}
    eq(j.get("state"), "succeeded", "the link's job is the user's, succeeded")
    eq((j.get("request") or {}).get("viewport", {}).get("width"), 400, "the job's options came from the query")
    r2 = get(url)
    eq(r2.status, 200, "second hit: 200")
    eq(r2.get("X-Tintype-Cache"), "hit", "second hit: from the result cache")
    check(r2.body == r1.body, "second hit: the same bytes", len(r1.body), len(r2.body))
    etag = r2.get("ETag")
    check(etag, "an ETag", "ETag", etag)
    cc = r2.get("Cache-Control") or ""
    check(cc.startswith("public, max-age=") and 0 < int(cc.rsplit("=", 1)[1]) <= 3600,
          "Cache-Control: public, at most --max-cache-ttl", "public, max-age<=3600", cc)
    r3 = get(url, headers=[("If-None-Match", etag or "x")])
    eq(r3.status, 304, "If-None-Match: 304")
    eq(r3.body, b"", "304 has no body")
    # the same parameters in another order and encoding verify too
    path = "/api/render/%s.png" % uid
    q = "height=300&width=400&url=" + urllib.parse.quote_plus(P.url("/blocks?rl=1")).lower().replace("%3a", "%3A")
    r4 = get(path + "?" + q + "&sig=" + sign(sec["secret"], path, params))
    eq(r4.status, 200, "another order and encoding of the same query: 200 (%r)" % r4.body[:200])
    eq(P.count("/blocks"), before + 1, "no later hit reached the page")
    jobs = (call(S.port, "GET", "/api/jobs", key=k).j or {}).get("items", [])
    eq(len(jobs), 1, "cache hits make no jobs")
    eq(metric("tintype_render_link_misses_total") - miss0, 1, "/metrics: one render-link miss")
    eq(metric("tintype_render_link_hits_total") - hits0, 3, "/metrics: three render-link hits")
    # another format is another render
    r5 = get(link(uid, sec["secret"], params, "jpeg"), timeout=40 * SLOW)
    eq(r5.status, 200, ".jpeg link")
    eq(r5.get("Content-Type"), "image/jpeg", ".jpeg answers a JPEG")
    eq(imgutil.image_info(r5.body), ("jpeg", 400, 300), "the JPEG's size")
    # .pdf: a document, its paper from a dotted parameter
    r6 = get(link(uid, sec["secret"], params + [("pdf.paper", "A5")], "pdf"), timeout=40 * SLOW)
    eq(r6.status, 200, ".pdf link (%r)" % r6.body[:200])
    eq(r6.get("Content-Type"), "application/pdf", ".pdf answers a PDF")
    check(r6.body.startswith(b"%PDF-"), "the body is a PDF file", "%PDF-", r6.body[:8])


def test_signatures():
    uid, k, sec = user_with_secret("sig")
    params = [("url", P.url("/blocks?sig=1")), ("width", "200"), ("height", "150")]
    good = link(uid, sec["secret"], params)
    r = get(good, timeout=40 * SLOW)
    eq(r.status, 200, "a good signature (%r)" % r.body[:200])
    path, query = good.split("?", 1)
    problem(get(path + "?" + query.rsplit("&sig=", 1)[0]), 403, "bad-signature", "no sig")
    problem(get(path + "?" + query.rsplit("&sig=", 1)[0] + "&sig=" + "0" * 64), 403, "bad-signature", "a wrong sig")
    tampered = good.replace("width=200", "width=201")
    check(tampered != good, "the tampered link differs", None, tampered)
    problem(get(tampered), 403, "bad-signature", "a changed parameter")
    problem(get(good + "&dark_mode=true"), 403, "bad-signature", "an added parameter")
    problem(get(good.replace(".png?", ".webp?")), 403, "bad-signature", "another extension")
    # another user's secret, or a user that does not exist: the same answer
    ouid, ok, osec = user_with_secret("sig2")
    wrong = get(link(uid, osec["secret"], params))
    problem(wrong, 403, "bad-signature", "another user's secret")
    ghost = "01890000-0000-7000-8000-000000000000"
    nobody = get(link(ghost, sec["secret"], params))
    problem(nobody, 403, "bad-signature", "an unknown user")
    eq((nobody.j or {}).get("detail"), (wrong.j or {}).get("detail"), "an unknown user reads like a bad signature")
    # rotation: a new secret signs, revoking the old one stops its links
    sec2 = new_secret(k, "rotated")
    eq(get(link(uid, sec2["secret"], params)).status, 200, "a link of the new secret")
    eq(call(S.port, "DELETE", "/api/users/me/render-secrets/" + sec["id"], key=k).status, 204, "revoke the old")
    problem(get(good), 403, "bad-signature", "a link of a revoked secret")
    eq(get(link(uid, sec2["secret"], params)).status, 200, "the new secret's link still works")
    # expiry is signed too
    past = [("expires", str(int(time.time()) - 10))] + params
    problem(get(link(uid, sec2["secret"], past)), 403, "link-expired", "an expired link")
    future = [("expires", str(int(time.time()) + 3600))] + params
    eq(get(link(uid, sec2["secret"], future)).status, 200, "a link that has not expired")


def test_option_errors():
    uid, k, sec = user_with_secret("opt")
    base = [("url", P.url("/blocks"))]
    cases = ((base + [("width", "0")], "viewport.width", "width=0"),
             (base + [("viewport.height", "99999")], "viewport.height", "viewport.height too big"),
             (base + [("fullpage", "true")], "fullpage", "an unknown option"),
             (base + [("full_page", "yes")], "full_page", "a boolean that is not"),
             (base + [("quality", "80")], "quality", "quality on a png"),
             (base + [("format", "jpeg")], "format", "format as a parameter"),
             (base + [("callback_url", "http://127.0.0.1:9/")], "callback_url", "a webhook"),
             ([("url", "ftp://example.com/")], "url", "a bad url"),
             ([("width", "300")], "url", "no url"),
             (base + [("wait", "31s")], "wait", "wait over --max-wait-ms"),
             (base + [("cache_ttl", "7200")], "cache_ttl", "cache_ttl over --max-cache-ttl"))
    for params, field, what in cases:
        invalid(get(link(uid, sec["secret"], params)), field, what)
    invalid(get(link(uid, sec["secret"], base + [("width", "300"), ("viewport.width", "300")])), "viewport.width",
            "width given twice")
    path = "/api/render/%s.png" % uid
    invalid(get(path + "?url=%zz&sig=" + "0" * 64), "url", "a bad %-escape")
    problem(get("/api/render/%s.gif?url=x&sig=%s" % (uid, "0" * 64)), 404, "not-found", "an unknown extension")
    problem(get("/api/render/nobody.png?sig=x"), 404, "not-found", "not a user id")
    eq((call(S.port, "GET", "/api/jobs", key=k).j or {}).get("items"), [], "refused links made no job")


def test_pending_render_is_503():
    uid, k, sec = user_with_secret("pend")
    params = [("url", P.url("/never?s=30")), ("timeout_ms", "5000"), ("wait", "300ms")]
    m0 = int(time.time() // 60)
    r = get(link(uid, sec["secret"], params), timeout=20 * SLOW)
    m1 = int(time.time() // 60)
    problem(r, 503, "render-pending", "a render that outlasts its wait")
    eq(r.get("Retry-After"), "5", "Retry-After")
    jid = r.get("X-Tintype-Job-Id")
    check(jid, "the pending job is named", "X-Tintype-Job-Id", jid)
    # a second hit while it renders joins the same job instead of making another
    r2 = get(link(uid, sec["secret"], params), timeout=20 * SLOW)
    eq(r2.get("X-Tintype-Job-Id"), jid, "a hit during the render joins its job")
    eq(len((call(S.port, "GET", "/api/jobs", key=k).j or {}).get("items", [])), 1, "one job for both hits")
    deadline = time.monotonic() + 30 * SLOW  # the job goes on to its own end (timeout_ms)
    state = None
    while jid and time.monotonic() < deadline:
        state = (call(S.port, "GET", "/api/jobs/" + jid, key=k).j or {}).get("state")
        if state in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.1)
    eq(state, "failed", "the pending job fails by its timeout_ms")
    m2 = int(time.time() // 60)
    r3 = get(link(uid, sec["secret"], params), timeout=20 * SLOW)
    m3 = int(time.time() // 60)
    if m0 == m1 == m2 == m3:
        problem(r3, 502, "job-failed", "a hit after the failure, within the minute, is the job's problem")
    else:  # a minute boundary passed: the link may already try a new render (documented)
        again = r3.status == 503 and r3.get("X-Tintype-Job-Id") not in (None, jid)
        check(r3.status == 502 or again, "after the failure, across a minute boundary: the job's problem or a new render",
              "502, or 503 with a new job", (r3.status, r3.get("X-Tintype-Job-Id")))


if __name__ == "__main__":
    run("render_links", [test_secrets_lifecycle, test_first_hit_renders_then_cache, test_signatures,
                         test_option_errors, test_pending_render_is_503], server=S)

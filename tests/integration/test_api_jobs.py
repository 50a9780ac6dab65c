"""/api/jobs against the real binary over loopback (DESIGN §3-§4, issue 4
point 3): create with every option and its validation (400 naming the
field), the configurable limits, the body limit, Idempotency-Key (replay,
reuse with another body, bad keys, per user, 10 concurrent requests on 2
processes), read / list (state filter, cursor paging, limit) / cancel,
ownership (404, not 403) and the admin key, /result (409 before success,
signed links: bad signature, expired, valid), /events as Server-Sent Events
(first event at once, the change made on another connection, the end of
the stream at a final state, clients that leave), --routes users, hostile
bodies, and one JSON log line per request. No worker exists in this
build, so jobs never run: the success path of /result is not tested."""
import json
import os
import threading
import time

from apiclient import (ID_RE, Sse, call, check_request_logs, invalid, new_user, now_ms, on_conn, problem, sign,
                       signed, too_large)
from ttharness import SLOW, Conn, HttpError, Server, check, eq, fetch, run

ADMIN = "admin-key-for-the-jobs-test-0123456789"
S = Server("--admin-key", ADMIN, processes=2)
URL = "https://example.com/"
JOB_KEYS = {"id", "state", "request", "attempts", "created_at", "version", "links"}
DEFAULT_REQUEST = {"url": URL, "viewport": {"width": 1280, "height": 800, "scale": 1.0, "mobile": False},
                   "full_page": False, "format": "png", "wait_until": "load", "delay_ms": 0, "timeout_ms": 30000,
                   "dark_mode": False}
MISSING = "01a20275-0160-7015-b567-cda4fcfa08d7"  # well-formed, never made


def post_job(key, body=None, raw=None, headers=None, port=None, ctype="application/json"):
    return call(port or S.port, "POST", "/api/jobs", key=key, body=body, raw=raw, headers=headers, ctype=ctype)


def make_job(key, body=None, port=None):
    r = post_job(key, body or {"url": URL}, port=port)
    if r.status != 202 or not isinstance(r.j, dict):
        raise HttpError("POST /api/jobs answered %d %r" % (r.status, r.body[:300]))
    return r.j


def check_job_shape(j, what):
    check(isinstance(j, dict), what + ": a JSON object", "object", j)
    j = j if isinstance(j, dict) else {}
    missing = JOB_KEYS - set(j)
    check(not missing, what + ": has %s" % sorted(JOB_KEYS), [], sorted(missing))
    check(isinstance(j.get("id"), str) and ID_RE.match(j.get("id", "")), what + ": id is a UUIDv7", "UUIDv7",
          j.get("id"))
    links = j.get("links") or {}
    eq(links.get("self"), "/api/jobs/%s" % j.get("id"), what + ": links.self")
    eq(links.get("events"), "/api/jobs/%s/events" % j.get("id"), what + ": links.events")


# --------------------------------------------------------------- create


def test_auth_required():
    paths = [("POST", "/api/jobs"), ("GET", "/api/jobs"), ("GET", "/api/jobs/" + MISSING),
             ("DELETE", "/api/jobs/" + MISSING), ("GET", "/api/jobs/%s/result" % MISSING),
             ("GET", "/api/jobs/%s/events" % MISSING)]
    for method, path in paths:
        r = call(S.port, method, path, body={"url": URL} if method == "POST" else None)
        problem(r, 401, "unauthorized", "%s %s without Authorization" % (method, path), instance=path)
        check((r.get("WWW-Authenticate") or "").startswith("Bearer"), "%s %s: WWW-Authenticate Bearer" %
              (method, path), "Bearer", r.get("WWW-Authenticate"))
        r = call(S.port, method, path, key="tt_" + "Z" * 43, body={"url": URL} if method == "POST" else None)
        problem(r, 401, "unauthorized", "%s %s with an unknown key" % (method, path))


def test_create_defaults():
    u, k = new_user(S.port, "cd")
    t0 = now_ms()
    r = post_job(k, {"url": URL})
    t1 = now_ms()
    eq(r.status, 202, "POST /api/jobs: 202")
    eq((r.get("Content-Type") or "").split(";")[0], "application/json", "POST /api/jobs: Content-Type")
    j = r.j or {}
    check_job_shape(j, "created job")
    eq(j.get("state"), "queued", "created job: state queued")
    eq(j.get("attempts"), 0, "created job: attempts 0")
    eq(j.get("version"), 1, "created job: version 1")
    check(isinstance(j.get("created_at"), int) and t0 - 1000 <= j["created_at"] <= t1 + 1000,
          "created job: created_at is now in ms", (t0, t1), j.get("created_at"))
    eq(j.get("request"), DEFAULT_REQUEST, "created job: the canonical request with every default")
    eq(r.get("Location"), "/api/jobs/%s" % j.get("id"), "created job: Location")
    check(not r.has("Idempotent-Replayed"), "a fresh job is not a replay", None, r.get("Idempotent-Replayed"))
    check("finished_at" not in j or j["finished_at"] in (None, 0), "a queued job has no finished_at", None,
          j.get("finished_at"))
    check("result" not in (j.get("links") or {}), "a queued job has no result link", None, j.get("links"))
    # the URL is normalised by a real URL parser
    j2 = make_job(k, {"url": "HTTP://Example.COM"})
    check((j2.get("request") or {}).get("url") in ("http://example.com/", "http://Example.COM/"),
          "url normalised (scheme lower case, path /)", "http://example.com/", (j2.get("request") or {}).get("url"))
    # the admin has no jobs of its own
    r = post_job(ADMIN, {"url": URL})
    check(r.status in (202, 403), "admin POST /api/jobs: 202 or 403", "202/403", (r.status, r.body[:200]))


def test_create_all_options():
    u, k = new_user(S.port, "co")
    body = {"url": "https://example.org/path?q=1#frag", "viewport": {"width": 390, "height": 844, "scale": 3,
                                                                     "mobile": True},
            "full_page": True, "format": "jpeg", "quality": 70, "wait_until": "networkidle", "wait_for": "#main",
            "delay_ms": 250, "timeout_ms": 15000, "dark_mode": True}
    r = post_job(k, body)
    eq(r.status, 202, "all options: 202")
    req = (r.j or {}).get("request") or {}
    check(req.get("url", "").startswith("https://example.org/path?q=1"), "all options: url kept",
          body["url"], req.get("url"))
    eq(req.get("viewport"), {"width": 390, "height": 844, "scale": 3.0, "mobile": True}, "all options: viewport")
    for k2 in ("full_page", "format", "quality", "wait_until", "wait_for", "delay_ms", "timeout_ms", "dark_mode"):
        eq(req.get(k2), body[k2], "all options: %s echoed" % k2)
    # selector (without full_page), webp, domcontentloaded; a partial viewport keeps the other defaults
    r = post_job(k, {"url": URL, "selector": "div.card > img", "format": "webp", "wait_until": "domcontentloaded",
                     "viewport": {"width": 800}})
    eq(r.status, 202, "selector + webp: 202")
    req = (r.j or {}).get("request") or {}
    eq(req.get("selector"), "div.card > img", "selector echoed")
    eq(req.get("format"), "webp", "webp echoed")
    eq(req.get("wait_until"), "domcontentloaded", "domcontentloaded echoed")
    eq(req.get("viewport"), {"width": 800, "height": 800, "scale": 1.0, "mobile": False},
       "a partial viewport keeps the other defaults")
    q = req.get("quality")
    check(isinstance(q, int) and 1 <= q <= 100, "webp without quality gets a default quality", "1..100", q)
    # explicit png without quality; every boundary value
    for extra, what in (({"format": "png"}, "explicit png"),
                        ({"viewport": {"width": 1, "height": 1}}, "viewport 1x1"),
                        ({"viewport": {"width": 3840, "height": 2160}}, "viewport 3840x2160"),
                        ({"viewport": {"scale": 0.1}}, "scale 0.1"), ({"viewport": {"scale": 4}}, "scale 4"),
                        ({"viewport": {"scale": 2.5}}, "scale 2.5"),
                        ({"viewport": {"mobile": False}}, "mobile false"), ({"viewport": {}}, "empty viewport"),
                        ({"format": "jpeg", "quality": 1}, "jpeg quality 1"),
                        ({"format": "webp", "quality": 100}, "webp quality 100"),
                        ({"delay_ms": 0}, "delay 0"), ({"delay_ms": 10000}, "delay 10000"),
                        ({"timeout_ms": 1000}, "timeout 1000"), ({"timeout_ms": 60000}, "timeout 60000"),
                        ({"full_page": False, "selector": "#x"}, "full_page false with selector"),
                        ({"dark_mode": False}, "dark_mode false"),
                        ({"url": "http://127.0.0.1:8080/x"}, "http with a port"),
                        ({"url": "https://例え.jp/"}, "an IDN host"),
                        ({"url": "https://example.com/" + "a" * 4000}, "a 4020-byte url")):
        b = {"url": URL}
        b.update(extra)
        r = post_job(k, b)
        eq(r.status, 202, "%s: 202 (%s)" % (what, r.body[:200]))


VALIDATION = [
    # (body, field, what)
    ({}, "url", "no url"),
    ({"url": ""}, "url", "empty url"),
    ({"url": 42}, "url", "url a number"),
    ({"url": None}, "url", "url null"),
    ({"url": ["https://example.com/"]}, "url", "url an array"),
    ({"url": "ftp://example.com/"}, "url", "ftp url"),
    ({"url": "file:///etc/passwd"}, "url", "file url"),
    ({"url": "javascript:alert(1)"}, "url", "javascript url"),
    ({"url": "data:text/html,<h1>x"}, "url", "data url"),
    ({"url": "gopher://example.com/"}, "url", "gopher url"),
    ({"url": "http://"}, "url", "http:// without a host"),
    ({"url": "https://:443/"}, "url", "a port but no host"),
    ({"url": "http://?q=1"}, "url", "a query but no host"),
    ({"url": "example.com"}, "url", "no scheme"),
    ({"url": "/relative/path"}, "url", "relative url"),
    ({"url": "not a url"}, "url", "words"),
    ({"url": "http://exa mple.com/"}, "url", "a space in the host"),
    ({"url": "https://example.com/" + "a" * 4100}, "url", "url over 4 KiB"),
    ({"url": URL, "viewport": 5}, "viewport", "viewport a number"),
    ({"url": URL, "viewport": [1280, 800]}, "viewport", "viewport an array"),
    ({"url": URL, "viewport": {"width": 0}}, "viewport.width", "width 0"),
    ({"url": URL, "viewport": {"width": -5}}, "viewport.width", "width -5"),
    ({"url": URL, "viewport": {"width": 3841}}, "viewport.width", "width 3841"),
    ({"url": URL, "full_page": True, "viewport": {"width": 3840, "height": 2160, "scale": 4}}, "viewport",
     "3840x2160 at scale 4: 132.7 M device pixels, over max-capture-pixels (issue 16 item 11)"),
    ({"url": URL, "viewport": {"width": "1280"}}, "viewport.width", "width a string"),
    ({"url": URL, "viewport": {"width": 1280.5}}, "viewport.width", "width 1280.5"),
    ({"url": URL, "viewport": {"width": None}}, "viewport.width", "width null"),
    ({"url": URL, "viewport": {"height": 0}}, "viewport.height", "height 0"),
    ({"url": URL, "viewport": {"height": 2161}}, "viewport.height", "height 2161"),
    ({"url": URL, "viewport": {"scale": 0.09}}, "viewport.scale", "scale 0.09"),
    ({"url": URL, "viewport": {"scale": 4.01}}, "viewport.scale", "scale 4.01"),
    ({"url": URL, "viewport": {"scale": 0}}, "viewport.scale", "scale 0"),
    ({"url": URL, "viewport": {"scale": "2"}}, "viewport.scale", "scale a string"),
    ({"url": URL, "viewport": {"mobile": "yes"}}, "viewport.mobile", "mobile a string"),
    ({"url": URL, "viewport": {"mobile": 1}}, "viewport.mobile", "mobile 1"),
    ({"url": URL, "viewport": {"depth": 24}}, "viewport.depth", "unknown viewport key"),
    ({"url": URL, "full_page": "true"}, "full_page", "full_page a string"),
    ({"url": URL, "full_page": 1}, "full_page", "full_page 1"),
    ({"url": URL, "format": "gif"}, "format", "format gif"),
    ({"url": URL, "format": "PNG"}, "format", "format PNG"),
    ({"url": URL, "format": "jpg"}, "format", "format jpg"),
    ({"url": URL, "format": 1}, "format", "format a number"),
    ({"url": URL, "quality": 80}, "quality", "quality with the default png"),
    ({"url": URL, "format": "png", "quality": 80}, "quality", "quality with png"),
    ({"url": URL, "format": "jpeg", "quality": 0}, "quality", "quality 0"),
    ({"url": URL, "format": "jpeg", "quality": 101}, "quality", "quality 101"),
    ({"url": URL, "format": "webp", "quality": "80"}, "quality", "quality a string"),
    ({"url": URL, "format": "jpeg", "quality": 80.5}, "quality", "quality 80.5"),
    ({"url": URL, "wait_until": "idle"}, "wait_until", "wait_until idle"),
    ({"url": URL, "wait_until": "networkidle0"}, "wait_until", "wait_until networkidle0"),
    ({"url": URL, "wait_until": None}, "wait_until", "wait_until null"),
    ({"url": URL, "wait_for": ""}, "wait_for", "wait_for empty"),
    ({"url": URL, "wait_for": 5}, "wait_for", "wait_for a number"),
    ({"url": URL, "wait_for": "#a\n#b"}, "wait_for", "wait_for with a newline"),
    ({"url": URL, "wait_for": "#" + "a" * 5000}, "wait_for", "wait_for of 5000 characters"),
    ({"url": URL, "selector": ""}, "selector", "selector empty"),
    ({"url": URL, "selector": ["#a"]}, "selector", "selector an array"),
    ({"url": URL, "selector": "#a\u0001"}, "selector", "selector with a control character"),
    ({"url": URL, "full_page": True, "selector": "#a"}, "selector", "full_page with selector"),
    ({"url": URL, "delay_ms": -1}, "delay_ms", "delay -1"),
    ({"url": URL, "delay_ms": 10001}, "delay_ms", "delay 10001"),
    ({"url": URL, "delay_ms": 1.5}, "delay_ms", "delay 1.5"),
    ({"url": URL, "delay_ms": "100"}, "delay_ms", "delay a string"),
    ({"url": URL, "timeout_ms": 999}, "timeout_ms", "timeout 999"),
    ({"url": URL, "timeout_ms": 60001}, "timeout_ms", "timeout 60001"),
    ({"url": URL, "timeout_ms": 0}, "timeout_ms", "timeout 0"),
    ({"url": URL, "dark_mode": "no"}, "dark_mode", "dark_mode a string"),
    ({"url": URL, "dark_mode": 0}, "dark_mode", "dark_mode 0"),
    ({"url": URL, "fullpage": True}, "fullpage", "unknown key fullpage"),
    ({"url": URL, "Format": "png"}, "Format", "unknown key Format (case matters)"),
    ({"url": URL, "callback": "https://evil.example/"}, "callback", "unknown key callback"),
]


def test_create_validation():
    u, k = new_user(S.port, "cv")
    for body, field, what in VALIDATION:
        r = post_job(k, body)
        j = invalid(r, field, "POST /api/jobs with %s" % what, instance="/api/jobs")
        check(field in (j.get("detail") or "") or field.split(".")[-1] in (j.get("detail") or ""),
              "%s: detail mentions %s" % (what, field), field, j.get("detail"))
    # none of them made a job
    r = call(S.port, "GET", "/api/jobs", key=k)
    eq((r.j or {}).get("items"), [], "refused jobs are not listed")
    # not JSON / not an object / wrong media type
    for raw, what in (("", "an empty body"), ("{", "a truncated object"), ("{url: 1}", "bare keys"),
                      ("[]", "an array"), ('"https://example.com/"', "a string"), ("null", "null"),
                      ('{"url":"%s","url":"%s"}' % (URL, URL), "a duplicate key"),
                      ('{"url":"%s"}garbage' % URL, "trailing garbage")):
        r = post_job(k, raw=raw)
        problem(r, 400, "invalid-json", "POST /api/jobs with %s" % what, instance="/api/jobs")
    r = post_job(k, raw=json.dumps({"url": URL}), ctype=None)
    problem(r, 415, "unsupported-media-type", "POST /api/jobs without Content-Type")
    r = post_job(k, raw=json.dumps({"url": URL}), ctype="text/json")
    problem(r, 415, "unsupported-media-type", "POST /api/jobs as text/json")


def test_configured_limits():
    flags = ("--max-viewport-width", "800", "--max-viewport-height", "600", "--max-render-timeout-ms", "5000",
             "--max-delay-ms", "100", "--max-job-url-bytes", "64")
    with Server(*flags, processes=1) as s:
        u, k = new_user(s.port, "lim")
        url64 = "https://example.com/" + "p" * (64 - len("https://example.com/"))
        cases = [({"viewport": {"width": 800}}, {"viewport": {"width": 801}}, "viewport.width"),
                 ({"viewport": {"height": 600}}, {"viewport": {"height": 601}}, "viewport.height"),
                 ({"timeout_ms": 5000}, {"timeout_ms": 5001}, "timeout_ms"),
                 ({"delay_ms": 100}, {"delay_ms": 101}, "delay_ms"),
                 ({"url": url64}, {"url": url64 + "p"}, "url")]
        for ok, bad, field in cases:
            b = {"url": URL}
            b.update(ok)
            r = post_job(k, b, port=s.port)
            eq(r.status, 202, "limited server: %s at its limit: 202" % json.dumps(ok)[:60])
            b = {"url": URL}
            b.update(bad)
            invalid(post_job(k, b, port=s.port), field, "limited server: %s one over" % json.dumps(bad)[:60])
        # the default timeout (30 s) is above this server's maximum of 5 s
        r = post_job(k, {"url": URL}, port=s.port)
        check(r.status in (202, 400), "a default over the configured maximum: 202 (clamped) or a 400", "202/400",
              r.status)
        if r.status == 202:
            check(((r.j or {}).get("request") or {}).get("timeout_ms", 0) <= 5000,
                  "the default timeout is clamped to --max-render-timeout-ms", "<= 5000",
                  ((r.j or {}).get("request") or {}).get("timeout_ms"))


def test_body_limit():
    u, k = new_user(S.port, "bl")
    base = json.dumps({"url": URL})
    raw = base[:-1] + " " * (64 * 1024 - len(base)) + "}"
    eq(len(raw), 65536, "(test) body of 64 KiB")
    eq(post_job(k, raw=raw).status, 202, "a 64 KiB job body: 202")
    raw = base[:-1] + " " * (64 * 1024 + 1 - len(base)) + "}"
    too_large(post_job(k, raw=raw), "a job body of 64 KiB + 1")
    r = post_job(k, raw="{" + " " * 1000000 + "}")
    eq(r.status, 413, "a 1 MB job body: 413")
    eq(post_job(k, {"url": URL}).status, 202, "POST /api/jobs works after the 413s")


# --------------------------------------------------------------- idempotency


def test_idempotency():
    u, k = new_user(S.port, "id")
    v, kv = new_user(S.port, "id2")
    body = {"url": URL, "format": "jpeg", "quality": 60}
    h = [("Idempotency-Key", "order-42")]
    r1 = post_job(k, body, headers=h)
    eq(r1.status, 202, "first POST with an Idempotency-Key: 202")
    j1 = r1.j or {}
    check(not r1.has("Idempotent-Replayed"), "the first answer is not a replay", None, r1.get("Idempotent-Replayed"))
    r2 = post_job(k, body, headers=h)
    eq(r2.status, 200, "same key, same body: 200")
    eq((r2.j or {}).get("id"), j1.get("id"), "same key, same body: the same job")
    eq(r2.get("Idempotent-Replayed"), "true", "same key, same body: Idempotent-Replayed: true")
    eq(r2.get("Location"), "/api/jobs/%s" % j1.get("id"), "replay: Location")
    eq((r2.j or {}).get("request"), j1.get("request"), "replay: the same request")
    # the same request spelt differently (key order, whitespace, explicit defaults) is the same request
    raw = '{ "quality" : 60,\n "format":"jpeg", "url":"%s", "viewport":{"width":1280} }' % URL
    r3 = post_job(k, raw=raw, headers=h)
    eq(r3.status, 200, "same key, same request in another spelling: 200")
    eq((r3.j or {}).get("id"), j1.get("id"), "same request in another spelling: the same job")
    # another body
    r4 = post_job(k, {"url": URL, "format": "jpeg", "quality": 61}, headers=h)
    problem(r4, 422, "idempotency-key-reused", "same key, another body", instance="/api/jobs")
    r4 = post_job(k, {"url": "https://example.net/"}, headers=h)
    problem(r4, 422, "idempotency-key-reused", "same key, another url")
    # a job created later without the key is a new job
    j5 = make_job(k, body)
    check(j5.get("id") != j1.get("id"), "without the key the same body is a new job", "new id", j5.get("id"))
    # another user, same key: their own job
    r6 = post_job(kv, body, headers=h)
    eq(r6.status, 202, "another user with the same key: 202")
    check((r6.j or {}).get("id") not in (None, j1.get("id")), "another user's key gets their own job",
          "different id", (r6.j or {}).get("id"))
    r7 = post_job(kv, {"url": "https://example.net/"}, headers=h)
    problem(r7, 422, "idempotency-key-reused", "the other user's key is theirs (another body: 422)")
    # exactly 2 jobs for user k (the keyed one and the unkeyed one)
    items = (call(S.port, "GET", "/api/jobs", key=k).j or {}).get("items") or []
    eq(len(items), 2, "replays made no extra jobs")
    # the job is the same when read
    r8 = call(S.port, "GET", "/api/jobs/" + j1.get("id", ""), key=k)
    eq((r8.j or {}).get("id"), j1.get("id"), "the keyed job reads back")
    # bad keys
    for bad, what in (("has space", "a space"), ("x" * 256, "256 characters"), ("tab\there", "a tab"),
                      ("caf\xe9", "a non-ASCII byte")):
        r = post_job(k, {"url": URL}, headers=[("Idempotency-Key", bad)])
        invalid(r, "Idempotency-Key", "Idempotency-Key with %s" % what)
    r = post_job(k, {"url": URL}, headers=[("Idempotency-Key", "k" * 255)])
    eq(r.status, 202, "Idempotency-Key of 255 characters: 202")
    r = post_job(k, {"url": URL}, headers=[("Idempotency-Key", "k" * 255)])
    eq(r.status, 200, "Idempotency-Key of 255 characters replays")
    for key in ("a", "9f1c2b7e-5d0a-4c7e-8c33-1b2a3c4d5e6f", "!#$%&'*+-.^_`|~"):
        r = post_job(k, {"url": URL}, headers=[("Idempotency-Key", key)])
        eq(r.status, 202, "Idempotency-Key %r: 202" % key)
    # a refused body with a key does not burn the key
    r = post_job(k, {"url": "ftp://x/"}, headers=[("Idempotency-Key", "burn")])
    invalid(r, "url", "bad body with a fresh key")
    eq(post_job(k, {"url": URL}, headers=[("Idempotency-Key", "burn")]).status, 202,
       "a key whose first request was refused is still free")


def _visible_job_messages():
    r = call(S.port, "GET", "/metrics", key=ADMIN)
    for ln in r.body.decode().splitlines():
        if ln.startswith('tintype_queue_messages{queue="jobs",state="visible"}'):
            return int(float(ln.split()[-1]))
    return None


def test_idempotency_race_bodies():
    """Issue 16 item 4: 20 concurrent POSTs with one Idempotency-Key and two
    different bodies: exactly one 202; the other answers are the winner's job
    (200 Idempotent-Replayed) only when their body is the winner's, else 422;
    and the queue holds exactly one message per winner (no orphans)."""
    u, k = new_user(S.port, "irb")
    lock = threading.Lock()
    before = _visible_job_messages()
    check(before is not None, "/metrics shows the jobs queue depth", "a number", before)
    rounds = 3
    for attempt in range(rounds):
        results = []
        start = threading.Event()
        key = "race-bodies-%d" % attempt

        def one_k(i, key=key, results=results, start=start):
            body = {"url": "https://example.com/%s" % ("a" if i % 2 else "b")}
            try:
                c = Conn(S.port, 15)
            except OSError as e:
                with lock:
                    results.append(("connect", str(e), None, body))
                return
            try:
                start.wait(10)
                r = on_conn(c, "POST", "/api/jobs", key=k, body=body, headers=[("Idempotency-Key", key)], timeout=15)
                with lock:
                    results.append((r.status, r.j or {}, r.get("Idempotent-Replayed"), body))
            except Exception as e:  # noqa: BLE001
                with lock:
                    results.append(("exception", str(e), None, body))
            finally:
                c.close()

        ts = [threading.Thread(target=one_k, args=(i,)) for i in range(20)]
        for t in ts:
            t.start()
        time.sleep(0.2)
        start.set()
        for t in ts:
            t.join(30)
        eq(len(results), 20, "round %d: 20 answers" % attempt)
        won = [r for r in results if r[0] == 202]
        eq(len(won), 1, "round %d: exactly one 202" % attempt)
        if len(won) != 1:
            continue
        wj, wbody = won[0][1], won[0][3]
        for st, j, replayed, body in results:
            if st == 202:
                continue
            if body == wbody:
                check(st == 200 and j.get("id") == wj.get("id") and replayed == "true",
                      "round %d: the winner's body gets the winner's job, replayed" % attempt,
                      (200, wj.get("id"), "true"), (st, j.get("id"), replayed))
            else:
                check(st == 422 and j.get("type", "").endswith("idempotency-key-reused"),
                      "round %d: another body with the key gets 422 idempotency-key-reused" % attempt,
                      422, (st, j))
    after = _visible_job_messages()
    eq(after - before if after is not None and before is not None else None, rounds,
       "the queue gained exactly one message per winning job (%d rounds, 60 requests)" % rounds)


def test_idempotency_concurrent():
    u, k = new_user(S.port, "ic")
    results = []
    lock = threading.Lock()
    start = threading.Event()

    for attempt in range(3):
        results.clear()
        key = "race-key-%d" % attempt
        start.clear()

        def one_k(i, key=key):
            try:
                c = Conn(S.port, 15)
            except OSError as e:
                with lock:
                    results.append(("connect", str(e), None))
                return
            try:
                start.wait(10)
                r = on_conn(c, "POST", "/api/jobs", key=k, body={"url": "https://example.com/race"},
                            headers=[("Idempotency-Key", key)], timeout=15)
                with lock:
                    results.append((r.status, (r.j or {}).get("id"), r.get("Idempotent-Replayed")))
            except Exception as e:  # noqa: BLE001
                with lock:
                    results.append(("exception", str(e), None))
            finally:
                c.close()

        ts = [threading.Thread(target=one_k, args=(i,)) for i in range(10)]
        for t in ts:
            t.start()
        time.sleep(0.2)
        start.set()
        for t in ts:
            t.join(30)
        eq(len(results), 10, "round %d: 10 concurrent answers" % attempt)
        ok = [r for r in results if r[0] in (200, 202)]
        check(len(ok) == 10, "round %d: all 10 concurrent POSTs with one key answer 2xx" % attempt, 10,
              sorted(str(r[0]) for r in results))
        ids = {r[1] for r in ok}
        eq(len(ids), 1, "round %d: exactly one job id among the 2xx answers" % attempt)
        eq(sum(1 for r in ok if r[0] == 202), 1, "round %d: exactly one 202 (the others are replays)" % attempt)
        check(all(r[2] == "true" for r in ok if r[0] == 200), "round %d: every 200 says Idempotent-Replayed" %
              attempt, "true", [r[2] for r in ok if r[0] == 200])
    items = (call(S.port, "GET", "/api/jobs?limit=100", key=k).j or {}).get("items") or []
    eq(len(items), 3, "3 rounds of 10 concurrent keyed POSTs made 3 jobs")
    # which processes answered (informative: both should have taken part)
    pids = {ln.get("pid") for ln in S.logs("request") if ln.get("path") == "/api/jobs"}
    print("  info: POST /api/jobs answered by pids", sorted(p for p in pids if p))


# --------------------------------------------------------------- read, list, cancel


def test_get_job():
    u, k = new_user(S.port, "gj")
    v, kv = new_user(S.port, "gj2")
    j = make_job(k, {"url": URL, "dark_mode": True})
    path = "/api/jobs/" + j["id"]
    r = call(S.port, "GET", path, key=k)
    eq(r.status, 200, "GET own job: 200")
    eq(r.j, j, "GET own job: the record as created")
    r = call(S.port, "GET", path, key=kv)
    problem(r, 404, "not-found", "GET another user's job: 404 not 403", instance=path)
    check(j["id"] not in (r.j or {}).get("detail", ""), "the 404 does not confirm the id", "absent", r.j)
    r = call(S.port, "GET", path, key=ADMIN)
    eq(r.status, 200, "admin GET of a user's job: 200")
    eq((r.j or {}).get("id"), j["id"], "admin GET: the job")
    problem(call(S.port, "GET", "/api/jobs/" + MISSING, key=k), 404, "not-found", "GET a job that does not exist")
    for bad in ("abc", "1", j["id"][:-1], j["id"] + "a", j["id"].upper(), "..", "%2e%2e", "'%20OR%201=1"):
        r = call(S.port, "GET", "/api/jobs/" + bad, key=k)
        eq(r.status, 404, "GET /api/jobs/%s: 404" % bad)
        eq((r.j or {}).get("type"), "/problems/not-found", "GET /api/jobs/%s: not-found problem" % bad)
    # the id of a user is not a job
    problem(call(S.port, "GET", "/api/jobs/" + u["id"], key=k), 404, "not-found", "a user id as a job id")


def test_list_and_paging():
    u, k = new_user(S.port, "lp")
    v, kv = new_user(S.port, "lp2")
    r = call(S.port, "GET", "/api/jobs", key=k)
    eq(r.status, 200, "empty list: 200")
    eq(r.j, {"items": [], "next_cursor": None}, "empty list: no items, next_cursor null")
    made = []
    for i in range(7):
        # 3 ms apart: ids are UUIDv7 (ms time, then per-process bits), so two
        # jobs made in one millisecond by the two processes have no defined order
        made.append(make_job(k, {"url": "https://example.com/%d" % i})["id"])
        time.sleep(0.003)
    make_job(kv)  # another user's job is never listed
    r = call(S.port, "GET", "/api/jobs", key=k)
    ids = [it.get("id") for it in (r.j or {}).get("items", [])]
    eq(ids, list(reversed(made)), "GET /api/jobs: the caller's 7 jobs, newest first")
    eq((r.j or {}).get("next_cursor"), None, "all on one page: next_cursor null")
    for it in (r.j or {}).get("items", []):
        check_job_shape(it, "listed job")
    # pages of 3
    seen, pages, cursor = [], [], None
    for _ in range(5):
        path = "/api/jobs?limit=3" + ("&cursor=" + cursor if cursor else "")
        r = call(S.port, "GET", path, key=k)
        eq(r.status, 200, "page %s: 200" % path)
        items = (r.j or {}).get("items", [])
        pages.append(len(items))
        seen += [it.get("id") for it in items]
        cursor = (r.j or {}).get("next_cursor")
        if not cursor:
            break
        check(isinstance(cursor, str), "next_cursor is a string", "string", cursor)
    eq(pages, [3, 3, 1], "7 jobs in pages of 3: 3 + 3 + 1")
    eq(seen, list(reversed(made)), "paging: every id once, newest first")
    eq(len(set(seen)), len(seen), "paging: no duplicates")
    eq(cursor, None, "the last page's next_cursor is null")
    # limit 7: one full page; is the next page empty or is next_cursor null? both are fine
    r = call(S.port, "GET", "/api/jobs?limit=7", key=k)
    eq(len((r.j or {}).get("items", [])), 7, "limit=7: 7 items")
    if (r.j or {}).get("next_cursor"):
        r2 = call(S.port, "GET", "/api/jobs?limit=7&cursor=" + r.j["next_cursor"], key=k)
        eq((r2.j or {}).get("items"), [], "after the exact last page: an empty page")
    r = call(S.port, "GET", "/api/jobs?limit=1", key=k)
    eq([it.get("id") for it in (r.j or {}).get("items", [])], [made[-1]], "limit=1: the newest")
    eq(call(S.port, "GET", "/api/jobs?limit=1000", key=k).status, 200, "limit=1000: 200")
    for bad in ("0", "1001", "-1", "abc", "", "3.5", "1e2", "99999999999999999999", "%31"):
        r = call(S.port, "GET", "/api/jobs?limit=" + bad, key=k)
        if bad == "%31" and r.status == 200:
            continue  # percent-decoded "1" is fine too
        invalid(r, "limit", "GET /api/jobs?limit=%s" % bad, instance="/api/jobs")
    for bad in ("garbage", "0", made[0][:-1], "'%20OR%201=1", "%00"):
        r = call(S.port, "GET", "/api/jobs?cursor=" + bad, key=k)
        invalid(r, "cursor", "GET /api/jobs?cursor=%s" % bad)
    for bad in ("done", "QUEUED", "", "queued,running"):
        r = call(S.port, "GET", "/api/jobs?state=" + bad, key=k)
        invalid(r, "state", "GET /api/jobs?state=%s" % bad)
    # the other user sees only theirs
    r = call(S.port, "GET", "/api/jobs", key=kv)
    eq(len((r.j or {}).get("items", [])), 1, "the other user lists only their own job")
    check(not set(made) & {it.get("id") for it in (r.j or {}).get("items", [])},
          "no job of the first user in the other's list", [], r.j)
    # a cursor from another user's listing leaks nothing
    r = call(S.port, "GET", "/api/jobs?limit=1&cursor=" + made[-1], key=kv)
    check(r.status in (200, 400), "someone else's id as a cursor: 200 or 400", "200/400", r.status)
    check(not set(made) & {it.get("id") for it in (r.j or {}).get("items", []) if isinstance(r.j, dict)},
          "someone else's id as a cursor lists none of their jobs", [], r.body[:300])
    # state filter
    for jid in made[1:4]:
        eq(call(S.port, "DELETE", "/api/jobs/" + jid, key=k).status, 200, "cancel for the state filter")
    r = call(S.port, "GET", "/api/jobs?state=canceled", key=k)
    eq([it.get("id") for it in (r.j or {}).get("items", [])], list(reversed(made[1:4])), "state=canceled")
    check(all(it.get("state") == "canceled" for it in (r.j or {}).get("items", [])), "state=canceled items", True,
          r.j)
    r = call(S.port, "GET", "/api/jobs?state=queued", key=k)
    want = [made[6], made[5], made[4], made[0]]
    eq([it.get("id") for it in (r.j or {}).get("items", [])], want, "state=queued")
    for st in ("running", "succeeded", "failed"):
        r = call(S.port, "GET", "/api/jobs?state=" + st, key=k)
        eq(r.j, {"items": [], "next_cursor": None}, "state=%s: none" % st)
    # state + paging
    seen, cursor = [], None
    for _ in range(5):
        r = call(S.port, "GET", "/api/jobs?state=queued&limit=3" + ("&cursor=" + cursor if cursor else ""), key=k)
        seen += [it.get("id") for it in (r.j or {}).get("items", [])]
        cursor = (r.j or {}).get("next_cursor")
        if not cursor:
            break
    eq(seen, want, "state=queued in pages of 3")
    r = call(S.port, "GET", "/api/jobs?limit=2&state=canceled&unknown=1", key=k)
    eq(r.status, 200, "an unknown query parameter is ignored")
    # the admin (no user of its own)
    r = call(S.port, "GET", "/api/jobs", key=ADMIN)
    print("  info: admin GET /api/jobs ->", r.status, r.body[:120])
    check(r.status in (200, 403), "admin GET /api/jobs: 200 or 403", "200/403", r.status)


def test_cancel():
    u, k = new_user(S.port, "cj")
    v, kv = new_user(S.port, "cj2")
    j = make_job(k)
    path = "/api/jobs/" + j["id"]
    r = call(S.port, "DELETE", path, key=kv)
    problem(r, 404, "not-found", "DELETE another user's job: 404", instance=path)
    eq((call(S.port, "GET", path, key=k).j or {}).get("state"), "queued", "the job survives a foreign DELETE")
    t0 = now_ms()
    r = call(S.port, "DELETE", path, key=k)
    t1 = now_ms()
    eq(r.status, 200, "DELETE a queued job: 200")
    c = r.j or {}
    eq(c.get("id"), j["id"], "cancel: the job")
    eq(c.get("state"), "canceled", "cancel: state canceled")
    check(isinstance(c.get("finished_at"), int) and t0 - 1000 <= c["finished_at"] <= t1 + 1000,
          "cancel: finished_at is now", (t0, t1), c.get("finished_at"))
    eq(c.get("version"), 2, "cancel: version 2")
    eq(c.get("request"), j.get("request"), "cancel: the request unchanged")
    r = call(S.port, "GET", path, key=k)
    eq((r.j or {}).get("state"), "canceled", "GET after cancel: canceled")
    eq((r.j or {}).get("finished_at"), c.get("finished_at"), "GET after cancel: finished_at")
    r = call(S.port, "DELETE", path, key=k)
    problem(r, 409, "job-finished", "DELETE a canceled job", instance=path)
    eq((r.j or {}).get("detail"), "the job was canceled already; only a queued or running job can be canceled",
       "DELETE a canceled job: the detail reads right")
    r = call(S.port, "DELETE", path, key=kv)
    eq(r.status, 404, "DELETE another user's canceled job: 404 (not 409)")
    problem(call(S.port, "DELETE", "/api/jobs/" + MISSING, key=k), 404, "not-found", "DELETE a missing job")
    eq(call(S.port, "DELETE", "/api/jobs/nope", key=k).status, 404, "DELETE a malformed id: 404")
    # the admin cancels a user's job
    j2 = make_job(k)
    r = call(S.port, "DELETE", "/api/jobs/" + j2["id"], key=ADMIN)
    check(r.status == 200 and (r.j or {}).get("state") == "canceled", "admin DELETE of a user's job: 200 canceled",
          200, (r.status, r.body[:200]))
    # concurrent cancels: one 200, the rest 409
    j3 = make_job(k)
    res = []
    lock = threading.Lock()

    def cancel():
        try:
            rr = call(S.port, "DELETE", "/api/jobs/" + j3["id"], key=k)
            with lock:
                res.append(rr.status)
        except Exception as e:  # noqa: BLE001
            with lock:
                res.append(str(e))

    ts = [threading.Thread(target=cancel) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    eq(sorted(res, key=str), [200] + [409] * 5, "6 concurrent cancels: one 200, five 409")
    r = call(S.port, "GET", "/api/jobs/" + j3["id"], key=k)
    eq((r.j or {}).get("version"), 2, "6 concurrent cancels changed the job once")


# --------------------------------------------------------------- result


def secret_of(server):
    with open(os.path.join(server.data, "secret"), "rb") as f:
        return f.read()


def test_result():
    u, k = new_user(S.port, "rs")
    v, kv = new_user(S.port, "rs2")
    j = make_job(k)
    path = "/api/jobs/%s/result" % j["id"]
    r = call(S.port, "GET", path, key=k)
    problem(r, 409, "no-result-yet", "result of a queued job", instance=path)
    problem(call(S.port, "GET", path, key=kv), 404, "not-found", "result of another user's job")
    problem(call(S.port, "GET", path, key=ADMIN), 409, "no-result-yet", "admin: result of a queued job")
    problem(call(S.port, "GET", "/api/jobs/%s/result" % MISSING, key=k), 404, "not-found", "result of a missing job")
    eq(call(S.port, "GET", "/api/jobs/xyz/result", key=k).status, 404, "result of a malformed id")
    future = int(time.time()) + 600
    past = int(time.time()) - 600
    # wrong signatures, no Authorization
    for q, what in (("expires=%d&sig=AAAA" % future, "a made-up sig"),
                    ("expires=%d&sig=%s" % (future, "A" * 43), "a 43-character made-up sig"),
                    ("expires=%d&sig=" % future, "an empty sig"),
                    ("expires=&sig=AAAA", "an empty expires"),
                    ("sig=AAAA", "no expires"),
                    ("expires=%d&sig=%s" % (past, "B" * 43), "expired and made up"),
                    ("expires=99999999999999999999999&sig=AAAA", "a huge expires"),
                    ("expires=-1&sig=AAAA", "a negative expires")):
        r = call(S.port, "GET", path + "?" + q)
        problem(r, 403, "bad-signature", "result with %s" % what, instance=path)
    # with the server's secret: a valid link admits without Authorization...
    try:
        secret = secret_of(S)
    except OSError as e:
        check(False, "the embedded secret is in DATA/secret (%s)" % e)
        return
    uid, vid = u["id"], v["id"]
    sig = sign(secret, path, future, uid, k)
    r = call(S.port, "GET", "%s?expires=%d&sig=%s&u=%s" % (path, future, sig, uid))
    problem(r, 409, "no-result-yet", "a valid signed link to a queued job's result (no Authorization)")
    # ...a tampered one does not
    r = call(S.port, "GET", "%s?expires=%d&sig=%s&u=%s" % (path, future + 1, sig, uid))
    problem(r, 403, "bad-signature", "a signed link with expires changed")
    bad = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    r = call(S.port, "GET", "%s?expires=%d&sig=%s&u=%s" % (path, future, bad, uid))
    problem(r, 403, "bad-signature", "a signed link with one sig character changed")
    r = call(S.port, "GET", "%s?expires=%d&sig=%s&u=%s" % (path, future, sig, vid))
    problem(r, 403, "bad-signature", "a signed link claiming another owner")
    r = call(S.port, "GET", "%s?expires=%d&sig=%s" % (path, future, sig))
    problem(r, 403, "bad-signature", "a signed link without its owner")
    j2 = make_job(k)
    path2 = "/api/jobs/%s/result" % j2["id"]
    r = call(S.port, "GET", "%s?expires=%d&sig=%s&u=%s" % (path2, future, sig, uid))
    problem(r, 403, "bad-signature", "one job's signature on another job's path")
    r = call(S.port, "GET", "%s?expires=%d&sig=%s&u=%s" % (path2, future, sig, uid), key=k)
    eq(r.status, 403, "a bad signature is refused even with a valid Bearer key")
    # a correctly signed link that has expired
    r = call(S.port, "GET", signed(secret, path, past, uid, k))
    check(r.status == 403 and (r.j or {}).get("type") in ("/problems/link-expired", "/problems/bad-signature"),
          "a validly signed but expired link: 403", 403, (r.status, r.body[:200]))
    # another user's job through a link that user signed
    jv = make_job(kv)
    pv = "/api/jobs/%s/result" % jv["id"]
    r = call(S.port, "GET", signed(secret, pv, future, vid, kv))
    problem(r, 409, "no-result-yet", "a signed link works for whoever holds it")
    # a link signed by one user for another user's job: the owner check holds
    r = call(S.port, "GET", signed(secret, pv, future, uid, k))
    problem(r, 404, "not-found", "u's valid signature on v's job")
    # a query that merely contains "sig=" is no signed link: the key decides
    r = call(S.port, "GET", path + "?xsig=1", key=k)
    problem(r, 409, "no-result-yet", "?xsig=1 with a valid Bearer key is not a signed link")
    # canceled: still no result
    eq(call(S.port, "DELETE", "/api/jobs/" + j["id"], key=k).status, 200, "cancel")
    # canceled: never a result, and the answer says so (issue 14)
    r = call(S.port, "GET", path, key=k)
    problem(r, 409, "no-result", "result of a canceled job")
    check("never" in ((r.j or {}).get("detail") or ""), "result of a canceled job: 'it will never have a result'",
          "... never ...", r.j)
    # a job record never carries a result link before success
    r = call(S.port, "GET", "/api/jobs/" + j["id"], key=k)
    check("result" not in ((r.j or {}).get("links") or {}), "a canceled job has no result link", None, r.j)


# --------------------------------------------------------------- events


def read_first_event(st, what):
    t0 = time.monotonic()
    ev = st.next_event(timeout=3)
    dt = time.monotonic() - t0
    check(ev is not None, what + ": a first event", "event", ev)
    check(dt < 1.0 * SLOW, what + ": first event at once (< %.1fs)" % (1.0 * SLOW), "< 1s", dt)
    return ev or {}


def test_events_change():
    u, k = new_user(S.port, "ev")
    j = make_job(k)
    path = "/api/jobs/%s/events" % j["id"]
    streams = [Sse(S.port, path, key=k) for _ in range(4)]
    for i, st in enumerate(streams):
        eq(st.head(), 200, "events %d: 200" % i)
        eq((st.header("Content-Type") or "").split(";")[0], "text/event-stream", "events %d: Content-Type" % i)
        eq((st.header("Transfer-Encoding") or "").lower(), "chunked", "events %d: chunked" % i)
        check(st.header("Content-Length") is None, "events %d: no Content-Length" % i, None,
              st.header("Content-Length"))
        ev = read_first_event(st, "events %d" % i)
        eq(ev.get("event"), "state", "events %d: first event is 'state'" % i)
        eq(ev.get("id"), "1", "events %d: first event id 1" % i)
        eq((ev.get("json") or {}).get("state"), "queued", "events %d: first event: queued" % i)
        eq(ev.get("json"), j, "events %d: first event's data is the job as created" % i)
    # check the raw framing once
    r0 = streams[0].raw.decode("utf-8", "replace")
    check("event: state\nid: 1\ndata: {" in r0, "first event framed as 'event: state\\nid: 1\\ndata: {...}\\n\\n'",
          "event: state\\nid: 1\\ndata: {", r0[:200])
    # cancel on a connection of its own (the 2 processes share the port: any may answer)
    time.sleep(0.3)
    t0 = time.monotonic()
    r = call(S.port, "DELETE", "/api/jobs/" + j["id"], key=k)
    eq(r.status, 200, "cancel while 4 streams watch")
    for i, st in enumerate(streams):
        ev = st.next_event(timeout=3) or {}
        dt = time.monotonic() - t0
        eq(ev.get("event"), "state", "events %d: the change is a 'state' event" % i)
        eq(ev.get("id"), "2", "events %d: second event id 2" % i)
        eq((ev.get("json") or {}).get("state"), "canceled", "events %d: second event: canceled" % i)
        eq((ev.get("json") or {}).get("finished_at"), (r.j or {}).get("finished_at"),
           "events %d: the canceled record" % i)
        check(dt < 1.5 * SLOW, "events %d: the change arrives within ~1 s" % i, "< %.1fs" % (1.5 * SLOW), dt)
        end = st.next_event(timeout=3)
        eq(end, None, "events %d: the stream ends after the final state" % i)
        check(st.ended, "events %d: chunked terminator received" % i, True, st.ended)
    # the connection is reusable after the stream ended
    st = streams[0]
    try:
        rr = on_conn(st.conn, "GET", "/api/jobs/" + j["id"], key=k)
        eq(rr.status, 200, "keep-alive: a request after the event stream on the same connection")
    except HttpError as e:
        check(st.conn.eof, "after the stream the connection is reused or closed cleanly", "reuse/close", str(e))
    for st in streams:
        st.close()


def test_events_final_and_errors():
    u, k = new_user(S.port, "ef")
    v, kv = new_user(S.port, "ef2")
    j = make_job(k)
    c = call(S.port, "DELETE", "/api/jobs/" + j["id"], key=k).j or {}
    path = "/api/jobs/%s/events" % j["id"]
    st = Sse(S.port, path, key=k)
    eq(st.head(), 200, "events of a canceled job: 200")
    ev = read_first_event(st, "events of a canceled job")
    eq(ev.get("id"), "2", "events of a canceled job: id is the version (2)")
    eq((ev.get("json") or {}).get("state"), "canceled", "events of a canceled job: state canceled")
    eq(ev.get("json"), c, "events of a canceled job: the record")
    t0 = time.monotonic()
    eq(st.next_event(timeout=3), None, "events of a canceled job: one event, then the end")
    check(time.monotonic() - t0 < 1.0 * SLOW, "the stream of a final job ends at once", "< 1s",
          time.monotonic() - t0)
    st.close()
    problem(call(S.port, "GET", path, key=kv), 404, "not-found", "events of another user's job", instance=path)
    problem(call(S.port, "GET", "/api/jobs/%s/events" % MISSING, key=k), 404, "not-found", "events of a missing job")
    eq(call(S.port, "GET", "/api/jobs/zzz/events", key=k).status, 404, "events of a malformed id")
    r = call(S.port, "GET", path, key=ADMIN, timeout=5)
    eq(r.status, 200, "admin: events of a user's (final) job: 200")
    check(b"event: state" in r.body, "admin: the event", "event: state", r.body[:200])


def test_events_client_leaves():
    u, k = new_user(S.port, "el")
    jobs = [make_job(k) for _ in range(6)]
    for i, j in enumerate(jobs):
        st = Sse(S.port, "/api/jobs/%s/events" % j["id"], key=k)
        st.head()
        if i % 3 == 0:
            st.next_event(timeout=3)
            st.abort()  # RST after the first event
        elif i % 3 == 1:
            st.close()  # FIN before reading anything
        else:
            st.next_event(timeout=3)
            st.conn.sock.shutdown(1)  # half-close, then drop
            time.sleep(0.05)
            st.close()
    time.sleep(0.6 * SLOW)  # a poll tick or two notices the gone clients
    for j in jobs[::2]:
        eq(call(S.port, "DELETE", "/api/jobs/" + j["id"], key=k).status, 200, "cancel a job whose watcher left")
    time.sleep(0.6 * SLOW)
    r = call(S.port, "GET", "/api/users/me", key=k)
    eq(r.status, 200, "the server answers after event clients left")
    # a watcher still works
    j = make_job(k)
    st = Sse(S.port, "/api/jobs/%s/events" % j["id"], key=k)
    eq(st.head(), 200, "a new stream after the departures")
    eq((read_first_event(st, "a new stream").get("json") or {}).get("state"), "queued", "a new stream: queued")
    call(S.port, "DELETE", "/api/jobs/" + j["id"], key=k)
    eq(((st.next_event(timeout=3) or {}).get("json") or {}).get("state"), "canceled", "a new stream: canceled")
    eq(st.next_event(timeout=3), None, "a new stream: ends")
    st.close()


# --------------------------------------------------------------- routes, hostile input, logs


def test_routes_users_only():
    with Server("--routes", "users", processes=1) as s:
        u, k = new_user(s.port, "ru")
        for method, path in (("POST", "/api/jobs"), ("GET", "/api/jobs"), ("GET", "/api/jobs/" + MISSING),
                             ("DELETE", "/api/jobs/" + MISSING), ("GET", "/api/jobs/%s/events" % MISSING),
                             ("GET", "/api/jobs/%s/result" % MISSING)):
            r = call(s.port, method, path, key=k, body={"url": URL} if method == "POST" else None)
            eq(r.status, 404, "--routes users: %s %s is 404" % (method, path))
        eq(call(s.port, "GET", "/api/users/me", key=k).status, 200, "--routes users: /api/users/me works")
        eq(fetch(s.port, "GET", "/index.html").status, 200, "--routes users: /index.html works")


def test_openapi_route():
    r = call(S.port, "GET", "/api/openapi.json")
    check(r.status in (200, 404), "GET /api/openapi.json: 200 or 404 (document not there yet), no auth needed",
          "200/404", r.status)


def test_hostile_bodies():
    u, k = new_user(S.port, "hb")
    r = post_job(k, raw="[" * 100000)
    check(r.status in (400, 413), "100000-deep [ (over 64 KiB): 400 or 413", "400/413", r.status)
    for depth in (30000, 3000):
        r = post_job(k, raw="[" * depth + "]" * depth)
        problem(r, 400, "invalid-json", "%d-deep nested arrays" % depth)
        r = post_job(k, raw='{"url":' + "[" * depth + "]" * depth + "}")
        check(r.status == 400, "%d-deep arrays as url: 400" % depth, 400, r.status)
        d = depth // 5
        r = post_job(k, raw='{"url":"%s","viewport":' % URL + '{"a":' * d + "1" + "}" * d + "}")
        check(r.status == 400, "%d-deep objects as viewport: 400" % d, 400, r.status)
    r = post_job(k, raw="[" * 60000)
    check(r.status == 400, "60000 unclosed [ (under 64 KiB): 400", 400, r.status)
    huge = [("viewport", "width", "1e400"), ("viewport", "height", "99999999999999999999"),
            (None, "delay_ms", "1e400"), (None, "timeout_ms", "99999999999999999999"),
            (None, "quality", "-99999999999999999999"), (None, "delay_ms", "1" + "0" * 400)]
    for outer, field, num in huge:
        if outer:
            raw = '{"url":"%s","%s":{"%s":%s}}' % (URL, outer, field, num)
            name = outer + "." + field
        else:
            raw = '{"url":"%s","format":"jpeg","%s":%s}' % (URL, field, num)
            name = field
        invalid(post_job(k, raw=raw), name, "%s = %s" % (name, num[:24]))
    for raw, what in ((b'{"url":"https://example.com/\xff"}', "0xff in url"),
                      (b'{"url":"https://example.com/\xc3"}', "a truncated sequence in url"),
                      (b'{"url":"https://example.com/\xed\xa0\x80"}', "a UTF-8 surrogate in url"),
                      (b'{"url":"%s","wait_for":"\xe0\x80\xaf"}' % URL.encode(), "an overlong form in wait_for"),
                      (b'{"url":"%s","selector":"\xf8\x88\x80\x80\x80"}' % URL.encode(), "a 5-byte form")):
        problem(post_job(k, raw=raw), 400, "invalid-json", "invalid UTF-8: %s" % what)
    r = post_job(k, raw='{"url":"https://example.com/\\u0000.evil"}')
    check(r.status == 400, "\\u0000 in url: 400", 400, (r.status, r.body[:200]))
    check((r.j or {}).get("type") in ("/problems/invalid-json", "/problems/invalid-field"),
          "\\u0000 in url: invalid-json or invalid-field", "problem", r.j)
    r = post_job(k, raw='{"url":"https://exa\\u0000mple.com/"}')
    check(r.status == 400, "\\u0000 in the host: 400", 400, r.status)
    r = post_job(k, raw='{"url":"https://example.com/","wait_for":"#a\\u0000b"}')
    check(r.status == 400, "\\u0000 in wait_for: 400", 400, r.status)
    r = post_job(k, raw=b"\x00" * 1000)
    problem(r, 400, "invalid-json", "NUL bytes as a job")
    r = post_job(k, raw='{"url":"%s","viewport":{"scale":NaN}}' % URL)
    eq(r.status, 400, "NaN as scale: 400")
    r = post_job(k, raw='{"url":"%s","viewport":{"scale":1e-400}}' % URL)
    eq(r.status, 400, "1e-400 as scale: 400")
    r = post_job(k, {"url": "https://" + "a" * 300 + ".com/"})
    check(r.status in (202, 400), "a 300-character host label: 202 or 400", "202/400", r.status)
    r = post_job(k, {"url": "http://[::1]:99999/"})
    eq(r.status, 400, "port 99999: 400")
    r = post_job(k, {"url": URL, "wait_for": "é" * 200})
    check(r.status in (202, 400), "a non-ASCII selector: 202 or 400", "202/400", r.status)
    # still alive, on both processes
    for _ in range(6):
        eq(call(S.port, "GET", "/api/users/me", key=k).status, 200, "the server answers after hostile bodies")
    eq(post_job(k, {"url": URL}).status, 202, "jobs are still made after hostile bodies")


def test_request_logs():
    check_request_logs(S)


if __name__ == "__main__":
    run("api_jobs", [test_auth_required, test_create_defaults, test_create_all_options, test_create_validation,
                     test_configured_limits, test_body_limit, test_idempotency, test_idempotency_concurrent, test_idempotency_race_bodies,
                     test_get_job, test_list_and_paging, test_cancel, test_result, test_events_change,
                     test_events_final_and_errors, test_events_client_leaves, test_routes_users_only,
                     test_openapi_route, test_hostile_bodies, test_request_logs], server=S)

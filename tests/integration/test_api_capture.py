"""What screenshot-API users reach for first (issue 15), against `tintype
up` (API + queue + a worker with its Chromium) and pages served by this
test on 127.0.0.1:

- one-call capture: POST /api/jobs?wait=20s answers 200 with the PNG
  itself (Content-Type, X-Tintype-Job-Id naming a job that is succeeded,
  the page's colours where they belong); a page that times out answers the
  job's problem (502 /problems/job-failed with the error); a wait that runs
  out answers 202 with the job, still unfinished; `wait` is validated and
  bounded by --max-wait-ms (400 naming wait);
- result cache: an identical request within cache_ttl is a new job, already
  succeeded, cached: true, with the same bytes and no request to the page;
  another viewport, another user, or a stale entry (cache_ttl shorter than
  its age) renders again; cache_ttl over --max-cache-ttl answers 400 naming
  it; /metrics counts hits and misses;
- batches: POST /api/jobs/batch answers each item on its own (202 job or a
  problem naming the field), one Idempotency-Key replays the whole batch,
  GET /api/jobs?batch=ID lists its jobs; over --max-batch answers 400."""
import atexit
import time

import imgutil
from apiclient import call, invalid, new_user, now_ms, problem
from pageserver import BLUE, GREEN, RED, WHITE, Pages
from shotutil import px
from ttharness import SLOW, HttpError, Server, check, eq, run

P = Pages("127.0.0.1")
atexit.register(P.stop)
S = Server("--concurrency", "2", "--max-wait-ms", "30000", "--max-cache-ttl", "3600", "--max-batch", "5",
           processes=2, cmd="up", workers=1, env={"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32"})
FINAL = ("succeeded", "failed", "canceled")
_key = {}


def key():
    if "k" not in _key:
        _key["k"] = new_user(S.port, "cap")[1]
    return _key["k"]


def post(body, query="", k=None, headers=None, timeout=10.0):
    return call(S.port, "POST", "/api/jobs" + query, key=k or key(), body=body, headers=headers, timeout=timeout)


def wait_job(jid, k=None, timeout=40.0):
    deadline = time.monotonic() + timeout * SLOW
    j = None
    while time.monotonic() < deadline:
        j = call(S.port, "GET", "/api/jobs/" + jid, key=k or key()).j or {}
        if j.get("state") in FINAL:
            return j
        time.sleep(0.1)
    return j


def metric(name):
    r = call(S.port, "GET", "/metrics")
    for line in r.body.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return None


# --------------------------------------------------------------- one-call capture

def test_wait_returns_the_image():
    url = P.url("/blocks")
    r = post({"url": url, "viewport": {"width": 400, "height": 300}}, "?wait=20s", timeout=30 * SLOW)
    eq(r.status, 200, "POST ?wait=20s: 200 (%r)" % r.body[:200])
    eq(r.get("Content-Type"), "image/png", "the answer is the PNG")
    jid = r.get("X-Tintype-Job-Id") or ""
    eq(r.get("Location"), "/api/jobs/" + jid, "Location names the job")
    eq(r.get("X-Tintype-Cache"), "miss", "rendered, not cached")
    try:
        img = imgutil.decode_png(r.body)
    except ValueError as e:
        check(False, "the body is a PNG", "png", str(e))
        return
    eq((img.width, img.height), (400, 300), "the asked size")
    px("one-call capture", img, 50, 50, RED)
    px("one-call capture", img, 250, 50, GREEN)
    px("one-call capture", img, 50, 250, BLUE)
    px("one-call capture", img, 350, 250, WHITE)
    j = call(S.port, "GET", "/api/jobs/" + jid, key=key()).j or {}
    eq(j.get("state"), "succeeded", "the job named by X-Tintype-Job-Id succeeded")
    eq((j.get("result") or {}).get("bytes"), len(r.body), "its result is these bytes")
    eq(j.get("cached"), False, "a rendered job is not cached")


def test_wait_failure_is_the_jobs_problem():
    r = post({"url": P.url("/never?s=30"), "timeout_ms": 1000}, "?wait=25s", timeout=30 * SLOW)
    j = problem(r, 502, "job-failed", "a page that never loads, waited for")
    check("timed out" in (j.get("detail") or ""), "the problem's detail is the job's error", "timed out",
          j.get("detail"))
    jid = r.get("X-Tintype-Job-Id") or ""
    eq((call(S.port, "GET", "/api/jobs/" + jid, key=key()).j or {}).get("state"), "failed",
       "the job named by X-Tintype-Job-Id failed")


def test_wait_runs_out():
    r = post({"url": P.url("/never?s=30"), "timeout_ms": 3000}, "?wait=300ms", timeout=20 * SLOW)
    eq(r.status, 202, "a wait that runs out: 202 (%r)" % r.body[:200])
    j = r.j or {}
    check(j.get("state") in ("queued", "running"), "the job, not finished", "queued/running", j.get("state"))
    if j.get("id"):
        eq(wait_job(j["id"]).get("state"), "failed", "the job itself goes on to its own end")


def test_wait_validation():
    for q, what in (("?wait=31s", "over --max-wait-ms"), ("?wait=31000ms", "over, in ms"), ("?wait=1h", "a unit"),
                    ("?wait=soon", "words"), ("?wait=-1", "negative"), ("?wait=", "empty")):
        r = post({"url": P.url("/blocks")}, q)
        invalid(r, "wait", "POST /api/jobs%s (%s)" % (q, what))
    eq((call(S.port, "GET", "/api/jobs?state=queued", key=key()).j or {}).get("items"), [],
       "refused waits made no job")
    r = post({"url": P.url("/blocks"), "viewport": {"width": 0}}, "?wait=5s")
    invalid(r, "viewport.width", "a bad option with a wait")


# --------------------------------------------------------------- result cache

def test_cache_hit_renders_nothing():
    u, k = new_user(S.port, "cache")
    url = P.url("/blocks?c=1")
    hits0, miss0 = metric("tintype_result_cache_hits_total"), metric("tintype_result_cache_misses_total")
    r1 = post({"url": url, "viewport": {"width": 320, "height": 240}, "cache_ttl": 600}, "?wait=20s", k=k,
              timeout=30 * SLOW)
    eq(r1.status, 200, "first: rendered")
    eq(r1.get("X-Tintype-Cache"), "miss", "first: a miss")
    seen = P.count("/blocks")
    # the same request, keys in another order: answered at once from the cache
    r2 = post({"cache_ttl": 600, "viewport": {"height": 240, "width": 320}, "url": url}, k=k)
    eq(r2.status, 202, "second: 202 with the job")
    j2 = r2.j or {}
    eq(j2.get("state"), "succeeded", "second: already succeeded")
    eq(j2.get("cached"), True, "second: cached: true")
    eq((j2.get("result") or {}).get("cached_from"), r1.get("X-Tintype-Job-Id"), "second: cached from the first")
    check(j2.get("id") and j2.get("id") != r1.get("X-Tintype-Job-Id"), "second: a new job record", "new id",
          j2.get("id"))
    res = call(S.port, "GET", "/api/jobs/%s/result" % j2.get("id"), key=k)
    eq(res.status, 200, "second: /result")
    check(res.body == r1.body, "second: the same bytes", len(r1.body), len(res.body))
    r3 = post({"url": url, "viewport": {"width": 320, "height": 240}, "cache_ttl": 60}, "?wait=5s", k=k)
    eq(r3.status, 200, "a wait on a hit: the image at once")
    eq(r3.get("X-Tintype-Cache"), "hit", "X-Tintype-Cache: hit")
    check(r3.body == r1.body, "the same bytes again", len(r1.body), len(r3.body))
    eq(P.count("/blocks"), seen, "no request reached the page for the hits")
    eq(metric("tintype_result_cache_hits_total") - hits0, 2, "/metrics: two hits")
    eq(metric("tintype_result_cache_misses_total") - miss0, 1, "/metrics: one miss")


def test_cache_keys_never_shared():
    u, k = new_user(S.port, "ck")
    url = P.url("/blocks?c=2")
    base = {"url": url, "viewport": {"width": 320, "height": 240}, "cache_ttl": 600}
    first = post(base, "?wait=20s", k=k, timeout=30 * SLOW)
    eq(first.status, 200, "first render")
    variants = ((dict(base, viewport={"width": 321, "height": 240}), k, "another viewport"),
                (dict(base, dark_mode=True), k, "another option"),
                (dict(base, url=url + "&x"), k, "another url"),
                (base, new_user(S.port, "ck2")[1], "another user"))
    for body, kk, what in variants:
        before = P.count("/blocks")
        r = post(body, "?wait=20s", k=kk, timeout=30 * SLOW)
        eq(r.status, 200, what + ": rendered")
        eq(r.get("X-Tintype-Cache"), "miss", what + ": a miss")
        eq(P.count("/blocks"), before + 1, what + ": the page was asked again")
    # an entry older than the request's cache_ttl is not used
    done = (call(S.port, "GET", "/api/jobs/" + (first.get("X-Tintype-Job-Id") or ""), key=k).j or {})
    while now_ms() - done.get("finished_at", 0) <= 1100:  # until the entry is older than cache_ttl=1
        time.sleep(0.05)
    before = P.count("/blocks")
    r = post(dict(base, cache_ttl=1), "?wait=20s", k=k, timeout=30 * SLOW)
    eq(r.get("X-Tintype-Cache"), "miss", "a stale entry: a miss")
    eq(P.count("/blocks"), before + 1, "a stale entry: rendered again")
    # without cache_ttl nothing is looked up
    r = post({"url": url, "viewport": {"width": 320, "height": 240}}, "?wait=20s", k=k, timeout=30 * SLOW)
    eq(r.get("X-Tintype-Cache"), "miss", "no cache_ttl: rendered")


def test_cache_validation():
    for v, what in ((3601, "over --max-cache-ttl"), (-1, "negative"), ("60", "a string"), (1.5, "a fraction")):
        r = post({"url": P.url("/blocks"), "cache_ttl": v})
        j = invalid(r, "cache_ttl", "cache_ttl %r (%s)" % (v, what))
        if v == 3601:
            check("max-cache-ttl" in (j.get("detail") or ""), "the detail names the limit", "max-cache-ttl",
                  j.get("detail"))
    r = post({"url": P.url("/blocks"), "cache_ttl": 3600})
    eq(r.status, 202, "cache_ttl at the limit")
    eq((r.j or {}).get("request", {}).get("cache_ttl"), 3600, "cache_ttl is in the canonical request")
    if (r.j or {}).get("id"):
        wait_job(r.j["id"])


# --------------------------------------------------------------- batches

def post_batch(body, k=None, headers=None):
    return call(S.port, "POST", "/api/jobs/batch", key=k or key(), body=body, headers=headers)


def test_batch_mixed_items():
    u, k = new_user(S.port, "batch")
    good = {"url": P.url("/blocks?b=1"), "viewport": {"width": 200, "height": 150}}
    r = post_batch({"jobs": [good, {"url": P.url("/blocks"), "viewport": {"width": 0}}, {"url": "ftp://x/"},
                             dict(good, format="webp"), "not an object"]}, k=k)
    eq(r.status, 200, "a mixed batch: 200 (%r)" % r.body[:300])
    b = r.j or {}
    items = b.get("items") or []
    eq([i.get("status") for i in items], [202, 400, 400, 202, 400], "each item answered on its own")
    if len(items) != 5:
        return
    eq((items[1].get("problem") or {}).get("field"), "jobs[1].viewport.width", "item 1's problem names its field")
    eq((items[2].get("problem") or {}).get("field"), "jobs[2].url", "item 2's problem names its field")
    eq((items[1].get("problem") or {}).get("type"), "/problems/invalid-field", "item 1's problem type")
    jobs = [items[0].get("job") or {}, items[3].get("job") or {}]
    # created queued; a worker may already have taken one when the answer is built
    check(all(j.get("state") in ("queued", "running", "succeeded") for j in jobs) and all(j.get("id") for j in jobs),
          "valid items are jobs", "queued (or already running)", [j.get("state") for j in jobs])
    eq((jobs[1].get("request") or {}).get("format"), "webp", "each job has its own options")
    eq(r.get("Location"), "/api/jobs?batch=%s" % b.get("id"), "Location lists the batch")
    eq((b.get("links") or {}).get("jobs"), "/api/jobs?batch=%s" % b.get("id"), "links.jobs")
    listed = call(S.port, "GET", "/api/jobs?batch=%s" % b.get("id"), key=k)
    eq(listed.status, 200, "GET /api/jobs?batch=ID")
    eq([j.get("id") for j in (listed.j or {}).get("items", [])], [j.get("id") for j in jobs],
       "the batch lists its jobs, in order")
    eq(len((call(S.port, "GET", "/api/jobs", key=k).j or {}).get("items", [])), 2, "two jobs made, no more")
    done = [wait_job(j.get("id", ""), k=k) for j in jobs]
    eq([d.get("state") for d in done], ["succeeded", "succeeded"], "the batch's jobs run through the workers")
    # another user cannot see it
    _, k2 = new_user(S.port, "batch2")
    problem(call(S.port, "GET", "/api/jobs?batch=%s" % b.get("id"), key=k2), 404, "not-found",
            "another user's batch")
    problem(call(S.port, "GET", "/api/jobs?batch=0190a5c4-7b1e-7c3a-9f00-2b5d6c7e8f90", key=k), 404, "not-found",
            "no such batch")
    invalid(call(S.port, "GET", "/api/jobs?batch=nope", key=k), "batch", "a batch that is no id")
    invalid(call(S.port, "GET", "/api/jobs?batch=%s&limit=2" % b.get("id"), key=k), "limit", "batch with limit")


def test_batch_idempotency():
    u, k = new_user(S.port, "bidem")
    body = {"jobs": [{"url": P.url("/never?s=1"), "timeout_ms": 1000}, {"url": P.url("/blocks"), "quality": 5}]}
    h = [("Idempotency-Key", "batch-42")]
    r1 = post_batch(body, k=k, headers=h)
    eq(r1.status, 200, "first: 200")
    check(not r1.has("Idempotent-Replayed"), "first: not a replay", None, r1.get("Idempotent-Replayed"))
    r2 = post_batch({"jobs": [{"timeout_ms": 1000, "url": P.url("/never?s=1")}, {"url": P.url("/blocks"),
                                                                                "quality": 5}]}, k=k, headers=h)
    eq(r2.status, 200, "replay: 200")
    eq(r2.get("Idempotent-Replayed"), "true", "replay: Idempotent-Replayed")
    ids = lambda r: [((i.get("job") or {}).get("id"), i.get("status")) for i in (r.j or {}).get("items", [])]
    eq(ids(r2), ids(r1), "replay: the same items, the same jobs")
    eq((r2.j or {}).get("id"), (r1.j or {}).get("id"), "replay: the same batch")
    eq(len((call(S.port, "GET", "/api/jobs", key=k).j or {}).get("items", [])), 1, "one job made in all")
    problem(post_batch({"jobs": [{"url": P.url("/blocks")}]}, k=k, headers=h), 422, "idempotency-key-reused",
            "the key with another batch")
    # the key is per user
    _, k2 = new_user(S.port, "bidem2")
    r3 = post_batch(body, k=k2, headers=h)
    eq(r3.status, 200, "another user, same key")
    check(not r3.has("Idempotent-Replayed"), "another user's batch is its own", None, r3.get("Idempotent-Replayed"))
    for r in (r1, r3):
        for jid, st in ids(r):
            if jid:
                wait_job(jid, k=k if r is r1 else k2)


def test_batch_validation():
    u, k = new_user(S.port, "bval")
    one = {"url": P.url("/blocks")}
    for body, field, what in (({"jobs": [one] * 6}, "jobs", "over --max-batch (5)"), ({"jobs": []}, "jobs", "empty"),
                              ({"jobs": one}, "jobs", "not an array"), ({}, "jobs", "no jobs"),
                              ({"jobs": [one], "wait": 1}, "wait", "an unknown field")):
        invalid(post_batch(body, k=k), field, "a batch with %s" % what)
    problem(call(S.port, "POST", "/api/jobs/batch", key=k, raw="[1,2]"), 400, "invalid-json", "a bare array")
    invalid(post_batch({"jobs": [one]}, k=k, headers=[("Idempotency-Key", "a b")]), "Idempotency-Key",
            "a bad Idempotency-Key")
    eq((call(S.port, "GET", "/api/jobs", key=k).j or {}).get("items"), [], "refused batches made no job")
    r = post_batch({"jobs": [one] * 5}, k=k)
    eq(r.status, 200, "a batch of --max-batch")
    for i in (r.j or {}).get("items", []):
        wait_job((i.get("job") or {}).get("id", ""), k=k)


if __name__ == "__main__":
    run("api_capture", [test_wait_returns_the_image, test_wait_failure_is_the_jobs_problem, test_wait_runs_out,
                        test_wait_validation, test_cache_hit_renders_nothing, test_cache_keys_never_shared,
                        test_cache_validation, test_batch_mixed_items, test_batch_idempotency,
                        test_batch_validation], server=S)

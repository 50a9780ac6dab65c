"""deploy.cluster — infra/local/ (`make cluster`): the whole product through
HAProxy standing in for the ALB, 2 API instances (one process per route
group each, on 127.0.0.11/12) and 2 workers sharing one data folder.

What a user sees: the front-end and each API route group answer through
HAProxy's one port, and each request lands on the backend of its path rule
(HAProxy's own counters); a render job submitted through it is done by a
worker and its PNG comes back; an API instance stopped with SIGTERM is
taken out of every backend by its 503 health check while it is still
running (drain), requests keep succeeding meanwhile, and it exits 0; a
stopped cluster leaves every instance exited 0. Exit 77 (ctest SKIP)
without haproxy. Loopback only.
"""

import json
import os
import shutil
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "infra", "local"))
import ttharness as t  # noqa: E402
import apiclient as api  # noqa: E402
from pageserver import Pages  # noqa: E402

if not shutil.which("haproxy"):
    print("SKIP deploy.cluster: haproxy is not installed")
    sys.exit(77)
from cluster import Cluster  # noqa: E402

C = Cluster(t.BIN, cleanup=os.environ.get("TT_KEEP") is None, env={"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32"})
PAGES = Pages()
state = {}


def totals():
    return {b: int(v) for (b, s), v in C.stats("stot").items() if s == "BACKEND"}


def test_routes():
    before = totals()
    r = t.fetch(C.port, "GET", "/index.html")
    t.eq(r.status, 200, "GET /index.html through HAProxy")
    t.check(b"<html" in r.body.lower(), "it is the front-end")
    _, key = api.new_user(C.port, "cl")
    state["key"] = key
    me = api.call(C.port, "GET", "/api/users/me", key=key)
    t.eq(me.status, 200, "GET /api/users/me through HAProxy")
    imgs = api.call(C.port, "GET", "/api/images", key=key)
    t.eq(imgs.status, 200, "GET /api/images through HAProxy")
    jobs = api.call(C.port, "GET", "/api/jobs", key=key)
    t.eq(jobs.status, 200, "GET /api/jobs through HAProxy")
    after = totals()
    grew = {b: after[b] - before.get(b, 0) for b in after}
    t.eq(grew, {"web": 1, "users": 2, "images": 1, "jobs": 1}, "each request went to its path rule's backend")


def test_job():
    key = state.get("key")
    if not key:
        raise t.Skip("no user")
    r = api.call(C.port, "POST", "/api/jobs", key=key, body={"url": PAGES.url("/blocks")})
    t.eq(r.status, 202, "POST /api/jobs through HAProxy")
    jid = r.j["id"]
    end = time.monotonic() + 60 * t.SLOW
    job = {}
    while time.monotonic() < end:
        job = api.call(C.port, "GET", "/api/jobs/" + jid, key=key).j
        if job["state"] in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.1)
    t.eq(job.get("state"), "succeeded", "a worker instance renders it")
    res = api.call(C.port, "GET", "/api/jobs/%s/result" % jid, key=key)
    t.eq((res.status, res.body[:8]), (200, b"\x89PNG\r\n\x1a\n"), "its result is a PNG")


def test_drain_on_503():
    codes = {}
    th = threading.Thread(target=lambda: codes.setdefault("api1", C.stop("api1")), daemon=True)
    th.start()
    down = C.wait_status("DOWN", servers={"api1"}, deadline_s=30)
    alive = [p.poll() is None for p in C.procs["api1"]]
    t.eq(len(down), 4, "api1 is out of all four backends")
    t.eq(alive, [True] * 4, "HAProxy took api1 out on its 503 health check, before it exited (drain)")
    ok = sum(t.fetch(C.port, "GET", "/index.html").status == 200 for _ in range(20))
    t.eq(ok, 20, "requests through HAProxy keep succeeding on api2")
    th.join(60)
    t.eq(codes.get("api1"), [0, 0, 0, 0], "api1's processes drain and exit 0")
    C.api_start(1)
    C.wait_status("UP", deadline_s=60)


def test_shutdown():
    codes = C.shutdown()
    t.eq(sorted(codes), ["api1", "api2", "worker1", "worker2"], "every instance was stopped")
    t.eq({n: c for n, c in codes.items() if any(codes[n])}, {}, "every instance exited 0")


def start():
    C.start()


def main():
    try:
        t.run("deploy.cluster", [start, test_routes, test_job, test_drain_on_503, test_shutdown])
    finally:
        C.shutdown()
        PAGES.stop()


if __name__ == "__main__":
    main()

"""Cluster drills (issue 13): what a user of the scaled-out shape sees
when instances die or restart. Loopback only, bounded in time.

    python3 loadtest/drills/drill.py TINTYPE_BINARY api|jobs|all

api   wrk through HAProxy (infra/local/cluster.py: 2 API + 2 worker
      instances) in two phases of DURATION seconds each: in the first, one
      API instance is SIGKILLed (all its processes) and a replacement
      started; in the second, the other is stopped with SIGTERM (it drains:
      /index.html answers 503, HAProxy takes it out, requests in flight
      finish) and started again. Failed requests (non-2xx and socket
      errors) are counted per phase. Goals: none from the graceful
      restart, < 0.1 % from the kill.
jobs  200 render jobs of a page served on loopback, submitted through
      HAProxy; once jobs are running, one worker instance is SIGKILLed (its
      browser too) and replaced a few seconds later. Every job must end
      succeeded with one result, none lost, none listed twice.

Prints one JSON line of figures per drill; exit 1 when a goal is missed.
"""

import http.server as httpserver
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "infra", "local"))
from cluster import Cluster  # noqa: E402

DURATION = int(os.environ.get("DRILL_SECONDS", "20"))
JOBS = int(os.environ.get("DRILL_JOBS", "200"))


def http(c, method, path, key=None, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(c.url(path), data=data, method=method)
    if key:
        req.add_header("Authorization", "Bearer " + key)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def signup(c, tag):
    st, b, _ = http(c, "POST", "/api/users", body={"name": tag, "email": "%s.%d@example.com" % (tag, time.time_ns())})
    if st != 201:
        raise RuntimeError("sign-up: %d %r" % (st, b[:300]))
    return json.loads(b)["api_key"]


def wrk(c, key, seconds):
    env = dict(os.environ, TT_KEY=key)
    r = subprocess.run(["wrk", "-t", "2", "-c", "32", "-d", "%ds" % seconds, "--timeout", "10s", "-s",
                        os.path.join(HERE, "mixed.lua"), c.url("/")], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=seconds + 60)
    out = r.stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1])
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    sock = sum(int(x) for x in m.groups()) if m else 0
    return {"requests": total, "non2xx": non2xx, "socket_errors": sock, "failed": non2xx + sock,
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}


def at(delay, fn, log, what):
    def run():
        time.sleep(delay)
        t0 = time.monotonic()
        fn()
        log.append("%s at %.1fs (took %.1fs)" % (what, delay, time.monotonic() - t0))
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def api_drill(binary):
    with Cluster(binary, cleanup=True) as c:
        key = signup(c, "drill")
        log = []

        def kill_and_replace():
            c.kill("api1")
            c.wait_status("DOWN", servers={"api1"}, deadline_s=30)
            c.api_start(1)
            c.wait_status("UP", deadline_s=60)

        th = at(DURATION * 0.25, kill_and_replace, log, "api1 SIGKILLed, replaced, back UP")
        kill = wrk(c, key, DURATION)
        th.join()
        codes = {}

        def graceful():
            codes["api2"] = c.stop("api2")
            c.api_start(2)
            c.wait_status("UP", deadline_s=60)

        th = at(DURATION * 0.25, graceful, log, "api2 SIGTERM (drain), restarted, back UP")
        restart = wrk(c, key, DURATION)
        th.join()
    fig = {"drill": "api", "seconds_per_phase": DURATION, "kill": kill, "graceful_restart": restart,
           "kill_failed_pct": round(100.0 * kill["failed"] / max(1, kill["requests"]), 4),
           "drained_exit_codes": codes.get("api2"), "events": log}
    ok = restart["failed"] == 0 and fig["kill_failed_pct"] < 0.1 and codes.get("api2") == [0, 0, 0, 0]
    fig["goals_met"] = ok
    print(json.dumps(fig), flush=True)
    return ok


class Page(httpserver.BaseHTTPRequestHandler):
    def do_GET(self):
        n = self.path.rsplit("=", 1)[-1]
        body = ("<!doctype html><title>job %s</title><body style='margin:0;background:#2a6'>"
                "<h1 style='font:48px sans-serif'>job %s</h1>" % (n, n)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def jobs_drill(binary):
    page = httpserver.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/page?n=" % page.server_address[1]
    t0 = time.monotonic()
    with Cluster(binary, cleanup=True, env={"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32"}) as c:
        key = signup(c, "jobs")
        ids, log = [], []
        killed = threading.Event()

        def kill_when_running():
            # once a job is running on worker1 (its log says so), kill it whole
            end = time.monotonic() + 60
            while time.monotonic() < end and not killed.is_set():
                st, b, _ = http(c, "GET", "/api/jobs?state=running&limit=5", key=key)
                if st == 200 and json.loads(b).get("items"):
                    break
                time.sleep(0.05)
            c.kill("worker1")
            log.append("worker1 SIGKILLed at %.1fs" % (time.monotonic() - t0))
            killed.set()
            time.sleep(3)
            c.worker_start(1)
            log.append("worker1 replaced at %.1fs" % (time.monotonic() - t0))

        th = threading.Thread(target=kill_when_running, daemon=True)
        th.start()
        t_sub = time.monotonic()
        for n in range(JOBS):
            st, b, _ = http(c, "POST", "/api/jobs", key=key, body={"url": url + str(n),
                                                                   "viewport": {"width": 640, "height": 360}})
            if st != 202:
                raise RuntimeError("job %d: %d %r" % (n, st, b[:300]))
            ids.append(json.loads(b)["id"])
        submit_s = time.monotonic() - t_sub
        th.join()
        end = time.monotonic() + 600
        states = {}
        while time.monotonic() < end:
            pending = [i for i in ids if states.get(i, {}).get("state") not in ("succeeded", "failed", "canceled")]
            if not pending:
                break
            for i in pending:
                st, b, _ = http(c, "GET", "/api/jobs/" + i, key=key)
                if st == 200:
                    states[i] = json.loads(b)
            time.sleep(0.5)
        done_s = time.monotonic() - t_sub
        listed, cursor = [], None
        while True:
            st, b, _ = http(c, "GET", "/api/jobs?limit=100" + ("&cursor=" + cursor if cursor else ""), key=key)
            j = json.loads(b)
            listed += [x["id"] for x in j.get("items", [])]
            cursor = j.get("next_cursor") or j.get("cursor")
            if not cursor:
                break
        results = 0
        for i in ids:
            st, b, h = http(c, "GET", "/api/jobs/%s/result" % i, key=key)
            results += st == 200 and b[:8] == b"\x89PNG\r\n\x1a\n"
        codes = c.shutdown()
    page.shutdown()
    by_state = {}
    for i in ids:
        s = states.get(i, {}).get("state", "unknown")
        by_state[s] = by_state.get(s, 0) + 1
    attempts = [states.get(i, {}).get("attempts", 0) for i in ids]
    fig = {"drill": "jobs", "jobs": JOBS, "states": by_state, "png_results": results,
           "listed": len(listed), "listed_distinct": len(set(listed)), "redelivered": sum(a > 1 for a in attempts),
           "max_attempts": max(attempts or [0]), "submit_s": round(submit_s, 1), "all_done_s": round(done_s, 1),
           "events": log, "exit_codes": codes}
    ok = (by_state == {"succeeded": JOBS} and results == JOBS and len(listed) == JOBS
          and len(set(listed)) == JOBS and set(listed) == set(ids))
    fig["goals_met"] = ok
    print(json.dumps(fig), flush=True)
    return ok


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("api", "jobs", "all"):
        sys.exit("usage: drill.py TINTYPE_BINARY api|jobs|all")
    ok = True
    if sys.argv[2] in ("api", "all"):
        ok &= api_drill(sys.argv[1])
    if sys.argv[2] in ("jobs", "all"):
        ok &= jobs_drill(sys.argv[1])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

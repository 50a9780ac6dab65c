#!/usr/bin/env python3
"""loadtest/drills/single.py: the single-instance drills of issue 16 item 15
(`make drills`). Each drill starts its own tintype on 127.0.0.1 with its own
data folder, does one bounded fault, prints its figure, and the run ends with
one table: drill, figure, goal, met. Loopback only; every process started
here is killed at the end (its whole process group). The cluster drills
(HAProxy + 2 API + 2 workers) are loadtest/drills/drill.py, owned apart.

  1 kill       kill -9 one API child every second for KILL_SECONDS (30) under
               wrk on GET /index.html and GET /api/jobs/{id}: failed requests %
  2 idle       10,000 idle keep-alive connections held open while wrk measures
               GET /index.html: p99
  3 slowloris  SLOWLORIS (500) connections trickling header bytes beside wrk on
               GET /index.html: p99 with and without them
  4 browser    kill -9 the browser 10 times under a stream of jobs (`tintype up`,
               a page server on 127.0.0.1): every job ends succeeded
  5 disk       the data folder on a 8 MiB tmpfs, filled: uploads answer 507,
               /metrics and the log say why, the health check stays 200, and
               uploads work again once space returns (needs root)

Usage: single.py [DRILL...] (default: all). Environment: BUILD (build),
KILL_SECONDS (30), KILL_PROCESSES (2: API children in drill 1), IDLE (10000),
SLOWLORIS (500), MEASURE (10: wrk seconds).
Needs wrk; drill 4 needs Chromium. Exit status 0 when every drill met its goal.
"""

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "tintype")
KILL_SECONDS = int(os.environ.get("KILL_SECONDS", "30"))
IDLE = int(os.environ.get("IDLE", "10000"))
SLOWLORIS = int(os.environ.get("SLOWLORIS", "500"))
MEASURE = int(os.environ.get("MEASURE", "10"))
PROCS = []
ROWS = []


def log(*a):
    print("==", *a, file=sys.stderr, flush=True)


class Tintype:
    """tintype CMD on 127.0.0.1:free port, its JSON log in a file."""

    def __init__(self, cmd="api", data=None, args=(), env=None):
        self.tmp = tempfile.mkdtemp(prefix="tt-drill-")
        self.data = data or os.path.join(self.tmp, "data")
        self.logf = os.path.join(self.tmp, "tintype.log")
        e = dict(os.environ)
        e.update(env or {})
        argv = [BIN, cmd, "--host", "127.0.0.1", "--port", "0", "--data", self.data] + list(args)
        self.p = subprocess.Popen(argv, stdout=open(self.logf, "w"), stderr=open(self.logf + ".err", "w"),
                                  stdin=subprocess.DEVNULL, env=e, start_new_session=True)
        PROCS.append(self.p)
        self.port = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.port is None:
            for ln in self.lines():
                if ln.get("msg") == "listening" and isinstance(ln.get("port"), int):
                    self.port = ln["port"]
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        if self.port is None:
            raise SystemExit("tintype did not listen: %s" % open(self.logf + ".err").read()[-2000:])
        self.base = "http://127.0.0.1:%d" % self.port
        while time.monotonic() < deadline:
            try:
                if http("GET", self.base + "/index.html")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)

    def lines(self):
        out = []
        with open(self.logf, errors="replace") as f:
            for s in f:
                try:
                    out.append(json.loads(s))
                except ValueError:
                    pass
        return out

    def children(self):
        return [int(p) for p in os.listdir("/proc") if p.isdigit() and ppid(int(p)) == self.p.pid]

    def stop(self):
        try:
            os.killpg(self.p.pid, signal.SIGTERM)
            self.p.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait()


def ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def http(method, url, body=None, key=None, ctype="application/json", timeout=10):
    assert url.startswith("http://127.0.0.1:")
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method)
    if key:
        req.add_header("Authorization", "Bearer " + key)
    if data is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def signup(t, tag):
    st, b = http("POST", t.base + "/api/users", {"name": tag, "email": "%s.%d@example.com" % (tag, os.getpid())})
    assert st == 201, (st, b)
    return json.loads(b)["api_key"]


def metric(t, name):
    st, b = http("GET", t.base + "/metrics")
    for ln in b.decode().splitlines():
        if ln.startswith(name + " "):
            return float(ln.split()[1])
    return 0.0


def wrk(url, seconds, conns=32, script=None, env=None):
    """Runs wrk; returns dict(requests, errors, p99_ms, rps)."""
    argv = ["wrk", "-t2", "-c%d" % conns, "-d%ds" % seconds, "--latency"]
    if script:
        argv += ["-s", script]
    e = dict(os.environ)
    e.update(env or {})
    out = subprocess.run(argv + [url], capture_output=True, text=True, env=e, timeout=seconds + 60).stdout
    r = {"requests": 0, "errors": 0, "p99_ms": None, "rps": 0.0, "raw": out}
    for ln in out.splitlines():
        w = ln.split()
        if "requests in" in ln:
            r["requests"] = int(w[0])
        elif ln.strip().startswith("Socket errors:"):
            r["errors"] += sum(int(x.strip(",")) for x in w[3::2])
        elif ln.strip().startswith("Non-2xx"):
            r["errors"] += int(w[-1])
        elif w[:1] == ["99%"]:
            v = w[1]
            n = float(v.rstrip("umsn"))
            r["p99_ms"] = n / 1000 if v.endswith("us") else n * 1000 if v.endswith("s") and not v.endswith(
                "ms") else n
        elif ln.startswith("Requests/sec:"):
            r["rps"] = float(w[1])
    return r


def row(drill, figure, goal, met):
    ROWS.append((drill, figure, goal, "yes" if met else "NO"))
    log("%s: %s (goal %s) -> %s" % (drill, figure, goal, "met" if met else "MISSED"))


# ---------------------------------------------------------------- 1 kill
def drill_kill():
    t = Tintype("api", args=["--processes", os.environ.get("KILL_PROCESSES", "2")])
    try:
        key = signup(t, "kill")
        st, b = http("POST", t.base + "/api/jobs", {"url": "http://127.0.0.1:9/"}, key=key)
        jid = json.loads(b)["id"]
        res = {}
        ths = [threading.Thread(target=lambda: res.__setitem__("web", wrk(t.base + "/index.html", KILL_SECONDS))),
               threading.Thread(target=lambda: res.__setitem__("api", wrk(
                   t.base + "/api/jobs/" + jid, KILL_SECONDS, conns=16,
                   script=os.path.join(ROOT, "loadtest/get_job.lua"), env={"TT_KEY": key})))]
        for th in ths:
            th.start()
        time.sleep(0.5)
        kills = 0
        end = time.monotonic() + KILL_SECONDS - 1
        while time.monotonic() < end:
            kids = sorted(t.children())
            if kids:
                os.kill(kids[kills % len(kids)], signal.SIGKILL)
                kills += 1
            time.sleep(1)
        for th in ths:
            th.join()
        req = res["web"]["requests"] + res["api"]["requests"]
        err = res["web"]["errors"] + res["api"]["errors"]
        pct = 100.0 * err / req if req else 100.0
        restarts = metric(t, "tintype_process_restarts_total")
        row("1 kill -9 an API child every 1 s for %d s (%d kills; wrk 32+16 conns, /index.html + GET job)"
            % (KILL_SECONDS, kills),
            "%.3f %% failed (%d of %d; %d restarts)" % (pct, err, req, restarts), "< 0.1 %", pct < 0.1 and req > 0)
    finally:
        t.stop()


# ---------------------------------------------------------------- 2 idle
def hold_idle(port, n):
    socks = []
    req = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        socks.append(s)
    sel = selectors.DefaultSelector()
    pending = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        pending[s] = b""
    deadline = time.monotonic() + 30
    answered = 0
    while pending and time.monotonic() < deadline:
        for k, _ in sel.select(1):
            s = k.fileobj
            try:
                d = s.recv(65536)
            except BlockingIOError:
                continue
            pending[s] += d
            if not d or b"\r\n\r\n" in pending[s]:
                sel.unregister(s)
                if d:
                    answered += 1
                del pending[s]
    return socks, answered


def still_open(socks):
    n = 0
    for s in socks:
        try:
            d = s.recv(65536, socket.MSG_DONTWAIT | socket.MSG_PEEK)
            if d:
                n += 1  # leftover body bytes: still open
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def drill_idle():
    resource.setrlimit(resource.RLIMIT_NOFILE, (IDLE + 4096, max(IDLE + 4096, resource.getrlimit(
        resource.RLIMIT_NOFILE)[1])))
    t = Tintype("api", args=["--processes", "2", "--max-connections", str(IDLE // 2 + 2048)])
    socks = []
    try:
        base = wrk(t.base + "/index.html", MEASURE)
        socks, answered = hold_idle(t.port, IDLE)
        r = wrk(t.base + "/index.html", MEASURE)
        held = still_open(socks)
        p99 = r["p99_ms"]
        row("2 %d idle keep-alive connections held, wrk 32 conns on /index.html" % IDLE,
            "p99 %.2f ms (%.2f without), %d errors, %d/%d idle still open" % (
                p99, base["p99_ms"], r["errors"], held, answered),
            "< 50 ms", p99 is not None and p99 < 50 and held == IDLE and r["errors"] == 0)
    finally:
        for s in socks:
            s.close()
        t.stop()


# ---------------------------------------------------------------- 3 slowloris
def slowloris(port, n, stop):
    part = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: "
    conns = {}

    def opened():
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        return [s, 0]

    for i in range(n):
        conns[i] = opened()
    reconnects = 0
    while not stop.is_set():
        for i, c in conns.items():
            try:
                c[0].send(part[c[1]:c[1] + 1] if c[1] < len(part) else b"a")
                c[1] += 1
            except OSError:  # the server closed it (header timeout): come back
                c[0].close()
                conns[i] = opened()
                reconnects += 1
        stop.wait(1)
    for c in conns.values():
        c[0].close()
    return reconnects


def drill_slowloris():
    t = Tintype("api", args=["--processes", "2"])
    try:
        base = wrk(t.base + "/index.html", MEASURE)
        stop = threading.Event()
        out = {}
        th = threading.Thread(target=lambda: out.__setitem__("re", slowloris(t.port, SLOWLORIS, stop)))
        th.start()
        time.sleep(2)
        r = wrk(t.base + "/index.html", MEASURE)
        stop.set()
        th.join()
        ok = r["p99_ms"] is not None and r["errors"] == 0 and r["p99_ms"] < max(2 * base["p99_ms"], base[
            "p99_ms"] + 5)
        row("3 %d slowloris connections beside wrk 32 conns on /index.html" % SLOWLORIS,
            "p99 %.2f ms with, %.2f ms without; %d errors" % (r["p99_ms"], base["p99_ms"], r["errors"]),
            "close to baseline (< 2x or +5 ms)", ok)
    finally:
        t.stop()


# ---------------------------------------------------------------- 4 browser
def browsers(t):
    """Pids of Chromium main processes under t (parent is a tintype process)."""
    tt = set()
    for p in os.listdir("/proc"):
        if p.isdigit():
            pid = int(p)
            try:
                exe = os.readlink("/proc/%d/exe" % pid)
            except OSError:
                continue
            if exe == os.path.realpath(BIN) and (pid == t.p.pid or ppid(pid) == t.p.pid):
                tt.add(pid)
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit() and ppid(int(p)) in tt:
            try:
                cmd = open("/proc/%s/cmdline" % p, "rb").read()
            except OSError:
                continue
            if b"remote-debugging" in cmd:
                out.append(int(p))
    return out


def drill_browser():
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            b = b"<!doctype html><title>drill</title><body style='background:#3a6'><h1>drill page</h1>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def log_message(self, *a):
            pass

    ps = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=ps.serve_forever, daemon=True).start()
    page = "http://127.0.0.1:%d/" % ps.server_address[1]
    t = Tintype("up", args=["--processes", "1", "--worker-processes", "1"],
                env={"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32"})
    try:
        key = signup(t, "browser")
        ids = []
        kills = 0
        next_kill = time.monotonic() + 2
        deadline = time.monotonic() + 120
        while (kills < 10 or len(ids) < 40) and time.monotonic() < deadline:
            if len(ids) < 40:  # a stream of 40 jobs, two a second, while the kills go on
                st, b = http("POST", t.base + "/api/jobs", {"url": page + "?n=%d" % len(ids)}, key=key)
                if st == 202:
                    ids.append(json.loads(b)["id"])
            if kills < 10 and time.monotonic() >= next_kill:
                bs = browsers(t)
                if bs:
                    for pid in bs:
                        os.kill(pid, signal.SIGKILL)
                    kills += 1
                    next_kill = time.monotonic() + 2
            time.sleep(0.5)
        states = {}
        end = time.monotonic() + 180
        while time.monotonic() < end:
            states = {}
            for j in ids:
                st, b = http("GET", t.base + "/api/jobs/" + j, key=key)
                states[j] = json.loads(b).get("state") if st == 200 else "http-%d" % st
            if all(s in ("succeeded", "failed", "canceled") for s in states.values()):
                break
            time.sleep(1)
        ok = sum(1 for s in states.values() if s == "succeeded")
        failed = sum(1 for s in states.values() if s == "failed")
        other = len(ids) - ok - failed
        restarts = metric(t, "tintype_browser_restarts_total")
        row("4 kill -9 the browser %d times under a stream of %d jobs (tintype up)" % (kills, len(ids)),
            "%d succeeded, %d failed, %d unfinished; %d browser restarts" % (ok, failed, other, restarts),
            "all succeeded", kills == 10 and ok == len(ids) and ids != [])
    finally:
        t.stop()
        ps.shutdown()


# ---------------------------------------------------------------- 5 disk
def drill_disk():
    if os.geteuid() != 0:
        row("5 data folder's disk full", "skipped: needs root to mount a tmpfs", "507, recovers", False)
        return
    mnt = tempfile.mkdtemp(prefix="tt-drill-full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt], check=True)
    t = None
    try:
        t = Tintype("api", data=mnt, args=["--processes", "1"])
        key = signup(t, "disk")
        img = lambda: json.loads(http("POST", t.base + "/api/images", {}, key=key)[1])["id"]  # noqa: E731
        body = b"\x89PNG\r\n\x1a\n" + b"\1" * (512 * 1024)
        a = img()
        assert http("PUT", t.base + "/api/images/%s/raw" % a, body, key=key, ctype="image/png")[0] == 200
        b_id = img()
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        statuses = {}
        for _ in range(5):
            st, _b = http("PUT", t.base + "/api/images/%s/raw" % b_id, body, key=key, ctype="image/png")
            statuses[st] = statuses.get(st, 0) + 1
        st_job, _b = http("POST", t.base + "/api/jobs", {"url": "http://127.0.0.1:9/"}, key=key)
        health = http("GET", t.base + "/")[0]
        full = metric(t, "tintype_storage_full_total")
        logged = sum(1 for ln in t.lines() if ln.get("msg") == "storage full")
        st, got = http("GET", t.base + "/api/images/%s/raw" % a, key=key)
        intact = st == 200 and got == body
        os.unlink(filler)
        after = http("PUT", t.base + "/api/images/%s/raw" % b_id, body, key=key, ctype="image/png")[0]
        after_job = http("POST", t.base + "/api/jobs", {"url": "http://127.0.0.1:9/"}, key=key)[0]
        fig = ("uploads %s, job POST %d, health %d, storage_full_total %d, %d log lines, earlier image %s; "
               "after freeing: upload %d, job %d" % (
                   " ".join("%d x%d" % kv for kv in sorted(statuses.items())), st_job, health, full, logged,
                   "intact" if intact else "CHANGED", after, after_job))
        row("5 data folder's disk full (8 MiB tmpfs)", fig, "507, counted, logged, intact, recovers",
            statuses == {507: 5} and st_job in (202, 507) and health == 200 and full >= 5 and logged >= 5
            and intact and after == 200 and after_job == 202)
    finally:
        if t:
            t.stop()
        subprocess.run(["umount", "-l", mnt])
        os.rmdir(mnt)


DRILLS = {"kill": drill_kill, "idle": drill_idle, "slowloris": drill_slowloris, "browser": drill_browser,
          "disk": drill_disk}


def main():
    names = sys.argv[1:] or list(DRILLS)
    if not os.access(BIN, os.X_OK):
        raise SystemExit("%s not found: build first (make build)" % BIN)
    for n in names:
        log("drill", n)
        try:
            DRILLS[n]()
        except Exception as e:  # noqa: BLE001 — a drill that cannot run is a missed row, the rest still run
            row(n, "could not run: %s: %s" % (type(e).__name__, e), "-", False)
    print()
    print("| drill | figure | goal | met |")
    print("|---|---|---|---|")
    for r in ROWS:
        print("| %s | %s | %s | %s |" % r)
    print()
    print("%s, %s, tintype %s, `make drills`" % (
        time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), os.uname().machine,
        subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                       text=True).stdout.strip()))
    sys.exit(0 if all(r[3] == "yes" for r in ROWS) else 1)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in PROCS:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

"""The scaled-out shape on one machine (`make cluster`).

HAProxy plays the ALB: the same path rules as infra/cloudformation
(/api/users*, /api/images*, /api/jobs* and /api/render* to their own backends, everything
else to web), the same GET /index.html health check (a draining instance
answers 503 and is taken out, as a target group would), on 127.0.0.1:PORT.
Behind it, API "instances" on their own loopback addresses (127.0.0.11,
127.0.0.12, ...), each running one `tintype api --routes GROUP` per route
group on the ports the .deb's tintype-api@GROUP units use (8081-8084), and
worker instances (`tintype worker`), all sharing one data folder: the
embedded SQLite store and queue are safe across processes, and the server
secret in DATA/secret is shared, so any instance verifies any signed link.

Each instance's processes run in their own session, so an instance can be
SIGKILLed whole or stopped with SIGTERM (it drains) by the drills in
loadtest/drills/, which drive this module. As a program:

    python3 infra/local/cluster.py TINTYPE_BINARY [--port 8000] [--data DIR]

starts it, prints the URL, and on Ctrl-C (or SIGTERM) drains and stops
every instance, then HAProxy. Loopback only.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

GROUPS = (("users", 8081), ("images", 8082), ("jobs", 8083), ("web", 8084))
HEADLESS = "/usr/bin/chromium-headless-shell"


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Cluster:
    def __init__(self, binary, port=0, data=None, run=None, apis=2, workers=2, drain_delay_ms=3000,
                 shutdown_timeout_ms=10000, visibility_ms=10000, concurrency=4, env=None, cleanup=False):
        self.bin = os.path.abspath(binary)
        self.cleanup = cleanup and run is None  # remove the run folder (logs, data) at shutdown
        self.run = run or tempfile.mkdtemp(prefix="tintype-cluster.")
        self.data = os.path.abspath(data or os.path.join(self.run, "data"))
        self.port = port or free_port()
        self.apis, self.workers = apis, workers
        self.drain_delay_ms, self.shutdown_timeout_ms = drain_delay_ms, shutdown_timeout_ms
        self.visibility_ms, self.concurrency = visibility_ms, concurrency
        self.env = dict(os.environ)
        self.env = {k: v for k, v in self.env.items() if not k.startswith("TINTYPE_")}
        self.env.update(env or {})
        self.procs = {}  # name -> [Popen]
        self.haproxy = None
        self.logs = os.path.join(self.run, "logs")
        os.makedirs(self.logs, exist_ok=True)
        os.makedirs(self.data, exist_ok=True)
        self.sock = os.path.join(self.run, "haproxy.sock")
        self.addr_base = self._free_base()

    # ------------------------------------------------------------ addresses
    def api_host(self, i):
        return "127.0.0.%d" % (self.addr_base + i)

    def _free_base(self):
        """The first 127.0.0.(B+1)... range whose route-group ports are all
        free (another cluster, or a test's, may hold 127.0.0.11)."""
        for base in range(10, 250 - self.apis, self.apis):
            try:
                for i in range(1, self.apis + 1):
                    for _, port in GROUPS:
                        s = socket.socket()
                        try:
                            s.bind(("127.0.0.%d" % (base + i), port))
                        finally:
                            s.close()
                return base
            except OSError:
                continue
        raise RuntimeError("no free loopback address range for the API instances")

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    # ------------------------------------------------------------ haproxy
    def haproxy_cfg(self):
        # fall 2 x inter 1 s: a draining instance is out within 2 s, well
        # inside its drain delay (the stack: 2 x 5 s inside 15 s)
        out = ["global",
               "  maxconn 4096",
               "  stats socket %s mode 600 level admin" % self.sock,
               "defaults",
               "  mode http",
               "  option httplog",
               "  timeout connect 2s",
               "  timeout client 75s",
               "  timeout server 75s",
               "  timeout http-keep-alive 60s",
               "  retries 2",
               "  option redispatch 1",
               # a draining instance answers its health path (/index.html,
               # also the front-end page) 503 until HAProxy has seen 2 failed
               # checks: a GET or HEAD that gets it is sent to another
               # instance. Nothing else is retried (an ALB retries nothing;
               # on AWS the group deregisters an instance before it stops)
               "  retry-on conn-failure 503",
               "  http-reuse safe",
               "frontend alb",
               "  bind 127.0.0.1:%d" % self.port,
               "  http-request disable-l7-retry if !METH_GET !METH_HEAD",
               "  use_backend users if { path_beg /api/users }",
               "  use_backend images if { path_beg /api/images }",
               "  use_backend jobs if { path_beg /api/jobs }",
               "  use_backend jobs if { path_beg /api/render }",
               "  default_backend web"]
        for g, port in GROUPS:
            out += ["backend " + g,
                    "  option httpchk",
                    "  http-check send meth GET uri /index.html",
                    "  http-check expect status 200",
                    "  default-server inter 1s fastinter 500ms downinter 1s fall 2 rise 2"]
            for i in range(1, self.apis + 1):
                out.append("  server api%d %s:%d check" % (i, self.api_host(i), port))
        return "\n".join(out) + "\n"

    def start_haproxy(self):
        cfg = os.path.join(self.run, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(self.haproxy_cfg())
        log = open(os.path.join(self.logs, "haproxy.log"), "ab")
        self.haproxy = subprocess.Popen(["haproxy", "-W", "-db", "-f", cfg], stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=log, start_new_session=True)

    def stats(self, field="status"):
        """{(backend, server): FIELD} from HAProxy's stats socket (server
        rows; with field "stot", also (backend, "BACKEND"): requests)."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        s.connect(self.sock)
        s.sendall(b"show stat\n")
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        s.close()
        lines = buf.decode().splitlines()
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for ln in lines[1:]:
            if not ln:
                continue
            row = dict(zip(head, ln.split(",")))
            if row["svname"] != "FRONTEND" and (row["svname"] != "BACKEND" or field != "status"):
                out[(row["pxname"], row["svname"])] = row[field]
        return out

    def wait_status(self, want, servers=None, deadline_s=30):
        """Waits until every server (or those named api1...) is in state want
        (UP, DOWN...) for every route group."""
        end = time.monotonic() + deadline_s
        last = None
        while time.monotonic() < end:
            if self.haproxy is not None and self.haproxy.poll() is not None:
                raise RuntimeError("haproxy exited (%s): see %s" % (self.haproxy.returncode,
                                                                    os.path.join(self.logs, "haproxy.log")))
            try:
                st = self.stats()
                sel = {k: v for k, v in st.items() if servers is None or k[1] in servers}
                if sel and all(v.split()[0] == want for v in sel.values()):
                    return sel
                last = sel
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise RuntimeError("HAProxy servers %s not %s within %ds: %r" % (servers or "all", want, deadline_s, last))

    # ------------------------------------------------------------ instances
    def _spawn(self, name, argv):
        log = open(os.path.join(self.logs, name + ".log"), "ab")
        return subprocess.Popen([self.bin] + argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
                                cwd=self.run, start_new_session=True)

    def api_start(self, i):
        name = "api%d" % i
        self.procs[name] = [self._spawn("%s-%s" % (name, g), [
            "api", "--routes", g, "--host", self.api_host(i), "--port", str(port), "--processes", "1",
            "--data", self.data, "--drain-delay-ms", str(self.drain_delay_ms),
            "--shutdown-timeout-ms", str(self.shutdown_timeout_ms)]) for g, port in GROUPS]

    def worker_start(self, i):
        argv = ["worker", "--processes", "1", "--concurrency", str(self.concurrency), "--data", self.data,
                "--job-visibility-ms", str(self.visibility_ms), "--shutdown-timeout-ms", "30000"]
        if "TINTYPE_CHROMIUM" not in self.env and os.path.exists(HEADLESS):
            argv += ["--chromium", HEADLESS]
        self.procs["worker%d" % i] = [self._spawn("worker%d" % i, argv)]

    def kill(self, name):
        """SIGKILL to every process of the instance (its sessions: the
        supervisors, their children, the browsers)."""
        for p in self.procs.get(name, []):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.procs.get(name, []):
            p.wait(timeout=10)

    def stop(self, name, deadline_s=60, signal_it=True):
        """SIGTERM (the drain) and the exit codes, once every process is gone.
        Signals once: a second SIGTERM a second later asks tintype's
        supervisor to stop its children at once (src/core/supervisor.c)."""
        for p in self.procs.get(name, []):
            if signal_it and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = []
        for p in self.procs.get(name, []):
            try:
                codes.append(p.wait(timeout=deadline_s))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                codes.append(p.wait(timeout=10))
        return codes

    def start(self):
        for i in range(1, self.apis + 1):
            self.api_start(i)
        for i in range(1, self.workers + 1):
            self.worker_start(i)
        self.start_haproxy()
        self.wait_status("UP", deadline_s=60)
        return self

    def shutdown(self):
        names = list(self.procs)
        for n in names:
            for p in self.procs[n]:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
        codes = {n: self.stop(n, signal_it=False) for n in names}
        if self.haproxy and self.haproxy.poll() is None:
            self.haproxy.send_signal(signal.SIGUSR1)  # soft stop: ends once connections are done
            try:
                self.haproxy.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
                self.haproxy.wait()
        if self.cleanup:
            shutil.rmtree(self.run, ignore_errors=True)
        return codes

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.shutdown()
            raise

    def __exit__(self, *a):
        self.shutdown()


def main():
    ap = argparse.ArgumentParser(description="tintype behind HAProxy: 2 API and 2 worker instances on loopback")
    ap.add_argument("binary")
    ap.add_argument("--port", type=int, default=int(os.environ.get("CLUSTER_PORT", "8000")))
    ap.add_argument("--data", default=os.environ.get("CLUSTER_DATA", "./data-cluster"))
    ap.add_argument("--apis", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    if not shutil.which("haproxy"):
        sys.exit("cluster: haproxy is not installed (scripts/install-deps.sh)")
    c = Cluster(a.binary, port=a.port, data=a.data, apis=a.apis, workers=a.workers)
    stopping = {"v": False}

    def on_signal(sig, frame):
        stopping["v"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        c.start()
    except Exception as e:  # noqa: BLE001
        print("cluster: %s (logs in %s)" % (e, c.logs), file=sys.stderr)
        c.shutdown()
        sys.exit(1)
    print("tintype cluster: %s" % c.url("/"))
    print("  HAProxy on 127.0.0.1:%d (path rules /api/users* /api/images* /api/jobs* /api/render*, default web)" % c.port)
    for i in range(1, c.apis + 1):
        print("  api%d on %s:%s" % (i, c.api_host(i), ",".join(str(p) for _, p in GROUPS)))
    print("  %d worker instances; data in %s; logs in %s" % (c.workers, c.data, c.logs))
    print("  Ctrl-C stops it (each instance drains first)", flush=True)
    while not stopping["v"]:
        dead = [n for n, ps in c.procs.items() if any(p.poll() is not None for p in ps)]
        if dead or c.haproxy.poll() is not None:
            print("cluster: %s exited; stopping (logs in %s)" % (", ".join(dead) or "haproxy", c.logs), file=sys.stderr)
            break
        time.sleep(0.5)
    print("cluster: draining and stopping...", flush=True)
    codes = c.shutdown()
    bad = {n: cs for n, cs in codes.items() if any(x != 0 for x in cs)}
    print("cluster: stopped%s" % (" (non-zero exits: %r)" % bad if bad else " (every instance exited 0)"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

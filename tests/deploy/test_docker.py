"""deploy.docker — the top-level Dockerfile, built and run for real.

This machine has no Docker engine and reaches no registry, so the base image
is made here: debootstrap a Debian 12 minbase rootfs once (cached as a tarball
under TT_DEPLOY_CACHE, default /var/cache/tintype), import it into a private
rootful podman store (also cached there, so a rerun reuses the layers) and
tag it debian:bookworm-slim so the Dockerfile's FROM resolves locally. Then:
build the image, run it with its default command (`tintype up`; host
network, bound to 127.0.0.1 only), and see what a user would: /index.html
answers 200 on loopback, podman's HEALTHCHECK reports healthy, the server
runs as a non-root user, one `tintype shot` inside the container of a page
this test serves on 127.0.0.1 writes a 1280x800 PNG, and SIGTERM drains to
exit code 0.

The image build is the one step that talks beyond loopback: its RUN steps
install packages from the Debian mirror in /etc/apt/sources.list.d (the
issue asks for the image to be built for real). The test itself only speaks
to 127.0.0.1. Exit 77 (ctest SKIP) where podman cannot run: not root, or
podman/debootstrap missing. See research/docker.md for the flags.
"""

import fcntl
import http.server as httpserver
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
import ttharness as t  # noqa: E402

SKIP = 77
CACHE = os.environ.get("TT_DEPLOY_CACHE", "/var/cache/tintype")
ROOTFS_TAR = os.path.join(CACHE, "bookworm-minbase.tar")
STORE = os.path.join(CACHE, "podman")
IMAGE = "localhost/tintype:check"
NAME = "tintype-check-%d" % os.getpid()

if os.geteuid() != 0:
    print("SKIP deploy.docker: rootful podman needs root")
    sys.exit(SKIP)
for tool in ("podman", "debootstrap", "runc"):
    if not shutil.which(tool):
        print("SKIP deploy.docker: %s is not installed (scripts/install-deps.sh)" % tool)
        sys.exit(SKIP)

os.makedirs(CACHE, exist_ok=True)
CONF = os.path.join(CACHE, "containers.conf")
with open(CONF, "w") as f:
    # crun refuses this machine's hybrid cgroup layout; no CAP_SYS_RESOURCE,
    # so the ulimits must fit the hard limits
    f.write('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
            '[engine]\nruntime = "runc"\n')
ENV = dict(os.environ, CONTAINERS_CONF=CONF)
P = ["podman", "--root", os.path.join(STORE, "root"), "--runroot", os.path.join(STORE, "run"),
     "--runtime", "runc"]
timings = {}


def pod(*args, timeout=120, check=True, input=None):
    r = subprocess.run(P + list(args), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise RuntimeError("podman %s: rc %d: %s" % (" ".join(args[:3]), r.returncode,
                                                     r.stderr.decode(errors="replace")[-2000:]))
    return r


def mirror():
    """The Debian mirror the host's apt uses (deb822 sources, first URIs)."""
    with open("/etc/apt/sources.list.d/debian.sources") as f:
        for ln in f:
            if ln.startswith("URIs:"):
                return ln.split()[1]
    raise RuntimeError("no URIs in /etc/apt/sources.list.d/debian.sources")


def make_rootfs():
    if os.path.exists(ROOTFS_TAR):
        return
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="rootfs.", dir=CACHE)
    try:
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", tmp, mirror()], check=True,
                       stdout=subprocess.DEVNULL, timeout=900)
        # the image's apt uses the host's sources (a dated snapshot: no Valid-Until)
        os.remove(os.path.join(tmp, "etc/apt/sources.list"))
        shutil.copy("/etc/apt/sources.list.d/debian.sources", os.path.join(tmp, "etc/apt/sources.list.d/"))
        with open(os.path.join(tmp, "etc/apt/apt.conf.d/99snapshot"), "w") as f:
            f.write('Acquire::Check-Valid-Until "false";\n')
        subprocess.run("rm -rf var/cache/apt/*.bin var/cache/apt/archives/*.deb var/lib/apt/lists/*",
                       shell=True, cwd=tmp, check=True)
        subprocess.run(["tar", "-C", tmp, "-cf", ROOTFS_TAR + ".part", "."], check=True)
        os.rename(ROOTFS_TAR + ".part", ROOTFS_TAR)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    timings["debootstrap"] = time.monotonic() - t0


def base_image():
    if pod("image", "exists", "docker.io/library/debian:bookworm-slim", check=False).returncode == 0:
        return
    t0 = time.monotonic()
    with open(ROOTFS_TAR, "rb") as f:
        pod("import", "--change", 'CMD ["/bin/bash"]', "-", "localhost/debian:bookworm", input=f.read())
    pod("tag", "localhost/debian:bookworm", "docker.io/library/debian:bookworm-slim")
    timings["import"] = time.monotonic() - t0


def test_build():
    make_rootfs()
    base_image()
    t0 = time.monotonic()
    r = pod("build", "--format", "docker", "--pull=never", "-t", IMAGE, t.ROOT, timeout=1200, check=False)
    timings["build"] = time.monotonic() - t0
    if not t.eq(r.returncode, 0, "podman build of the Dockerfile succeeds"):
        print(r.stdout.decode(errors="replace")[-3000:], r.stderr.decode(errors="replace")[-3000:])
        raise RuntimeError("no image")
    timings["built"] = True
    cfg = pod("image", "inspect", "--format", "{{json .Config}}", IMAGE).stdout.decode()
    t.check('"User":"tintype"' in cfg, "the image runs as the tintype user", "User tintype", cfg[:600])
    hc = json.dumps(find_key(json.loads(pod("image", "inspect", IMAGE).stdout), "Healthcheck"))
    t.check("/index.html" in hc, "the image has a HEALTHCHECK on /index.html", "... /index.html", hc)
    t.check('"/data"' in cfg, "/data is a volume", '"/data"', cfg[:600])


def find_key(v, key):
    """The first value named key anywhere in a JSON document."""
    if isinstance(v, dict):
        if key in v:
            return v[key]
        v = list(v.values())
    if isinstance(v, list):
        for x in v:
            r = find_key(x, key)
            if r is not None:
                return r
    return None


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(what, fn, deadline_s):
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 — not up yet
            last = e
        time.sleep(0.2)
    raise RuntimeError("%s: not within %ds (last: %r)" % (what, deadline_s, last))


def png_size(b):
    if b[:8] != b"\x89PNG\r\n\x1a\n" or b[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", b[16:24])


class Page(httpserver.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html><title>docker</title><body style='background:#36c'><h1>in a container</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_run():
    if not timings.get("built"):
        raise t.Skip("no image of this tree (the build failed)")
    # host networking, the server bound to 127.0.0.1 only: the page the shot
    # renders is served by this test on the host's loopback (a page may not
    # reach tintype's own port, so not the container's /index.html)
    port = free_port()
    page = httpserver.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    t0 = time.monotonic()
    pod("run", "-d", "--name", NAME, "--network", "host", "-e", "TINTYPE_HOST=127.0.0.1", "-e",
        "TINTYPE_PORT=%d" % port, IMAGE)
    try:
        r = wait_for("GET /index.html through the published port",
                     lambda: (lambda x: x if x.status == 200 else None)(t.fetch(port, "GET", "/index.html")), 60)
        timings["start to 200"] = time.monotonic() - t0
        t.eq(r.status, 200, "GET /index.html from the host's loopback answers 200")
        t.check(b"<html" in r.body.lower(), "the body is the web front-end", "<html", r.body[:200])
        hc = wait_for("podman healthcheck run",
                      lambda: pod("healthcheck", "run", NAME, check=False).returncode == 0 or None, 30)
        t.check(hc, "podman healthcheck run reports healthy")
        uid = pod("exec", NAME, "id", "-u").stdout.decode().strip()
        t.check(uid != "0", "the server runs as a non-root user", "uid != 0", uid)
        ps = pod("exec", NAME, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '").stdout.decode()
        t.check(ps.startswith("/usr/bin/tintype up"), "the default command is tintype up", "tintype up", ps)

        t1 = time.monotonic()
        shot = pod("exec", NAME, "tintype", "shot", "http://127.0.0.1:%d/" % page.server_address[1], "-o", "/tmp/shot.png",
                   "--allow-networks", "127.0.0.1/32", timeout=120, check=False)
        timings["shot"] = time.monotonic() - t1
        t.eq(shot.returncode, 0, "tintype shot inside the container exits 0")
        if shot.returncode != 0:
            print(shot.stderr.decode(errors="replace")[-2000:])
        png = pod("exec", NAME, "cat", "/tmp/shot.png", check=False).stdout
        t.eq(png_size(png), (1280, 800), "the shot is a 1280x800 PNG")
    finally:
        page.shutdown()
        t2 = time.monotonic()
        stop = pod("stop", "-t", "30", NAME, check=False)
        timings["stop"] = time.monotonic() - t2
        code = pod("inspect", "--format", "{{.State.ExitCode}}", NAME, check=False).stdout.decode().strip()
        logs = pod("logs", NAME, check=False).stderr.decode(errors="replace")
        pod("rm", "-f", NAME, check=False)
    t.eq(stop.returncode, 0, "podman stop succeeds")
    t.eq(code, "0", "SIGTERM drains tintype up to exit code 0")
    t.check("drain" in logs.lower() or code == "0", "the log says it drained", "drain", logs[-1500:])


def main():
    # one check at a time per cache (the store is shared between runs)
    lock = open(os.path.join(CACHE, ".lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        try:
            t.run("deploy.docker", [test_build, test_run])
        finally:
            # layers of builds older than 3 days; younger dangling ones are the
            # build cache (the build stage's result is an untagged image)
            pod("image", "prune", "-f", "--filter", "until=72h", check=False)
            print("timings: " + ", ".join("%s %.1fs" % kv for kv in timings.items() if kv[0] != "built"), flush=True)
    finally:
        lock.close()


if __name__ == "__main__":
    main()

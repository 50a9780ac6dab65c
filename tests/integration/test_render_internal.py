"""Pages never reach tintype's own ports, whatever the policy opens
(hardening, issue 16 item 2).

`tintype up` with two worker processes (two browsers) and
TINTYPE_ALLOW_NETWORKS=127.0.0.1/32 — the documented way to shoot local
pages. Jobs aimed at the API's own port (its loopback-only /metrics), at each
browser's DevTools HTTP endpoints (found with `ss`, not through tintype) and
at the API port spelled as IPv4 inside IPv6 ([::127.0.0.1], NAT64
[64:ff9b::7f00:1], 6to4 [2002:7f00:1::], which the policy judges as
127.0.0.1) fail "blocked ... tintype-internal". A page whose sub-resources
aim at the same ports renders with them blocked, and after it every
browser still runs (no page closed another worker's tab). A control job for
a page on 127.0.0.1 succeeds, so the refusals are about the ports."""
import atexit
import re
import subprocess
import time

import shotutil
from apiclient import call, new_user
from pageserver import GREEN, Pages, page
import pageserver
from ttharness import SLOW, HttpError, Server, check, eq, proc_stat, run

P = Pages("127.0.0.1")
atexit.register(shotutil.cleanup)
atexit.register(P.stop)
S = Server("--concurrency", "2", processes=1, cmd="up", workers=2,
           env={"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32"})
_key = {}


def key():
    if "k" not in _key:
        _key["k"] = new_user(S.port, "internal")[1]
    return _key["k"]


def job(body, timeout=40.0):
    r = call(S.port, "POST", "/api/jobs", key=key(), body=body)
    if r.status != 202 or not isinstance(r.j, dict):
        raise HttpError("POST /api/jobs %r answered %d %r" % (body, r.status, r.body[:300]))
    deadline = time.monotonic() + timeout * SLOW
    j = r.j
    while time.monotonic() < deadline and j.get("state") not in ("succeeded", "failed", "canceled"):
        time.sleep(0.1)
        j = call(S.port, "GET", "/api/jobs/" + r.j["id"], key=key()).j or {}
    return j


def _ours(pid):
    """pid descends from the server under test (other tintypes may run on
    this machine, with browsers of their own)."""
    for _ in range(8):
        st = proc_stat(pid)
        if not st:
            return False
        if st[1] == S.pid:
            return True
        pid = st[1]
    return False


def browser_ports():
    """DevTools ports this server's browsers listen on, from ss (not from
    tintype)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    ports = set()
    for ln in out.splitlines():
        m = re.search(r"127\.0\.0\.1:(\d+)\s.*\(\(\"(chrom|headless)[^\"]*\",pid=(\d+)", ln)
        if m and _ours(int(m.group(3))):
            ports.add(int(m.group(1)))
    return sorted(ports)


def blocked(j, what):
    eq(j.get("state"), "failed", what + ": failed")
    err = str(j.get("error"))
    check("blocked" in err and "tintype-internal" in err, what + ": the error says blocked, tintype-internal",
          "blocked ... tintype-internal", err)


def test_control():
    j = job({"url": P.url("/blocks"), "viewport": {"width": 300, "height": 200}})
    eq(j.get("state"), "succeeded", "a page on 127.0.0.1 (opened): succeeded (%s)" % j.get("error"))


def test_api_port():
    blocked(job({"url": "http://127.0.0.1:%d/metrics" % S.port}), "the API's /metrics on 127.0.0.1")
    blocked(job({"url": "http://localhost:%d/index.html" % S.port}), "the API by the name localhost")


def test_devtools_ports():
    deadline = time.monotonic() + 20 * SLOW
    ports = browser_ports()
    while len(ports) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        ports = browser_ports()
    check(len(ports) >= 2, "ss shows two browsers' DevTools ports", ">= 2", ports)
    # each job goes to whichever worker receives it: two jobs per port, so
    # each port is tried from (most likely) both workers
    for p in ports:
        for _ in range(2):
            blocked(job({"url": "http://127.0.0.1:%d/json/list" % p}), "DevTools /json/list of port %d" % p)


def test_ipv4_in_ipv6():
    for host in ("[::127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]"):
        blocked(job({"url": "http://%s:%d/metrics" % (host, S.port)}), "the API port as %s" % host)


def _attack(q, h):
    ports = [int(x) for x in q.get("ports", "").split(",") if x]
    tags = "".join('<img src="http://127.0.0.1:%d/json/close/x" width=5 height=5>' % p for p in ports)
    script = ("<script>var ps=[%s];var left=ps.length;function one(){if(--left==0){var d=document.createElement"
              "('div');d.id='done';document.body.appendChild(d);}}ps.forEach(function(p){fetch('http://127.0.0.1:'"
              "+p+'/json/list').then(one,one);});setTimeout(function(){left=1;one();},8000);</script>"
              % ",".join(str(p) for p in ports))
    return 200, page("attack", tags + script, bg=GREEN)


pageserver.ROUTES["/attack"] = _attack


def test_subresources():
    ports = browser_ports() + [S.port]
    before = browser_ports()
    j = job({"url": P.url("/attack?ports=" + ",".join(map(str, ports))), "wait_for": "#done",
             "viewport": {"width": 300, "height": 200}})
    eq(j.get("state"), "succeeded", "a page aiming at every internal port: rendered (%s)" % j.get("error"))
    n = (j.get("result") or {}).get("blocked")
    check(isinstance(n, int) and n >= len(ports), "its requests to them were blocked",
          ">= %d" % len(ports), n)
    eq(browser_ports(), before, "every browser still listens (none was closed by a page)")
    test_control()


if __name__ == "__main__":
    run("render_internal", [test_control, test_api_port, test_devtools_ports, test_ipv4_in_ipv6,
                            test_subresources], server=S)

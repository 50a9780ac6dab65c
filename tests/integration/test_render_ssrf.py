"""No server-side request forgery through `tintype shot` (DESIGN §5, issue 5).

Two page servers: the one the shots may reach on 127.0.0.1, opened by
TINTYPE_ALLOW_NETWORKS=127.0.0.1/32, and a recorder on 127.0.0.2 that
counts every TCP connection it accepts and every request. A page on
127.0.0.2 (by any spelling: dotted, decimal, hex, octal, short,
IPv4-mapped IPv6), a redirect to it, and sub-resources aimed at it (<img>,
an <img> redirected there, <iframe>, stylesheet, fetch() also by a hex
spelling, WebSocket) must
never reach it: the shot fails "blocked" naming the address and its range
for the page itself, and succeeds with "blocked" >= 1 for sub-resources. A
control shot with 127.0.0.2/32 opened shows the recorder is reachable, so
its silence means something. With no TINTYPE_ALLOW_NETWORKS, 127.0.0.1 is
denied too; a bad CIDR is a usage error. Every packet stays in 127/8 (the
metadata address is the netpolicy unit tests' business: shooting it here
would leave loopback if the policy failed)."""
import atexit
import time

import shotutil
from pageserver import GREEN, RED, Pages
from shotutil import ok, px, refused, shoot
from ttharness import SLOW, check, eq, run

P = Pages("127.0.0.1")
R = Pages("127.0.0.2", record_only=True)
atexit.register(shotutil.cleanup)
atexit.register(P.stop)
atexit.register(R.stop)
LOOP = {"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32"}


def r_url(path="/", host="127.0.0.2"):
    return "http://%s:%d%s" % (host, R.port, path)


def recorder_silent(what, settle=0.5):
    """The 127.0.0.2 recorder accepted no connection (waits settle seconds
    first, for a connection already on its way)."""
    time.sleep(settle)
    conns, reqs = R.seen()
    check(not conns and not reqs, what + ": 127.0.0.2 saw no connection and no request", [],
          [c[1] for c in conns][:5] + [r[1] for r in reqs][:5])
    R.reset()


def blocked(s, what, address="127.0.0.2", range_="loopback"):
    words = ["blocked"]
    if address:
        words.append(address)
    if range_:
        words.append(range_)
    refused(s, what, 1, words)
    check(s.elapsed < 15 * SLOW, what + ": fails soon (not a timeout)", "< %ds" % (15 * SLOW), round(s.elapsed, 1))


def test_page_on_denied_address():
    R.reset()
    s = shoot(r_url("/page"), "--timeout", "20000", env=LOOP)
    blocked(s, "a page on 127.0.0.2 with 127.0.0.1/32 open")
    # the reason names the exact setting that opens it, and the restart (issue 14)
    check("TINTYPE_ALLOW_NETWORKS=127.0.0.2/32" in s.reason() and "restart" in s.reason(),
          "the refusal names TINTYPE_ALLOW_NETWORKS=127.0.0.2/32 and the restart",
          "... TINTYPE_ALLOW_NETWORKS=127.0.0.2/32 ... restart ...", s.reason())
    recorder_silent("a page on 127.0.0.2")


def test_redirect_to_denied_address():
    R.reset()
    before = P.count("/redirect")
    s = shoot(P.url("/redirect?to=" + r_url("/from-redirect")), "--timeout", "20000", env=LOOP)
    blocked(s, "127.0.0.1 redirecting to 127.0.0.2")
    eq(P.count("/redirect") - before, 1, "the allowed first hop was fetched")
    recorder_silent("a redirect to 127.0.0.2")


def _subresources(host, what):
    R.reset()
    before = P.count("/redirect")
    url = P.url("/sub?host=%s&port=%d" % (host, R.port))
    s = shoot(url, "--width", "400", "--height", "300", "--wait-for", "#done", "--timeout", "20000", env=LOOP)
    img = ok(s, what, "png", 400, 300)
    px(what + ": the page itself rendered", img, 350, 250, GREEN)
    n = (s.meta or {}).get("blocked")
    check(isinstance(n, int) and n >= 1, what + ": blocked >= 1 in the JSON", ">= 1", n)
    hosts = (s.meta or {}).get("blocked_hosts")
    check(isinstance(hosts, list) and host in hosts and len(hosts) == len(set(hosts)) and len(hosts) <= min(n, 10),
          what + ": blocked_hosts names %s, each host once" % host, [host], hosts)
    eq(P.count("/redirect") - before, 1, what + ": the <img> redirected through 127.0.0.1 was tried")
    recorder_silent(what)
    return n


def test_subresources_to_denied_address():
    n = _subresources("127.0.0.2", "img, redirected img, iframe, css, fetch, hex-spelled fetch, WebSocket to "
                      "127.0.0.2")
    print("    blocked count reported: %r" % n)


def test_default_policy_denies_loopback():
    P.reset()
    s = shoot(P.url("/blocks"), "--timeout", "20000", env={})
    blocked(s, "no TINTYPE_ALLOW_NETWORKS: a page on 127.0.0.1", "127.0.0.1", "loopback")
    time.sleep(0.3)
    conns, reqs = P.seen()
    check(not conns and not reqs, "default policy: 127.0.0.1 saw nothing", [], [r[1] for r in reqs][:5])


def test_odd_spellings_allowed():
    for host in ("2130706433", "0x7f.1"):
        before = P.count("/blocks")
        s = shoot("http://%s:%d/blocks" % (host, P.port), "--width", "300", "--height", "200", env=LOOP)
        img = ok(s, "http://%s:PORT/ (127.0.0.1) with 127.0.0.1/32 open" % host, "png", 300, 200)
        px(host, img, 50, 50, RED)
        eq(P.count("/blocks") - before, 1, "%s: the 127.0.0.1 server served it" % host)
        eq((s.meta or {}).get("final_url"), P.url("/blocks"), "%s: final_url in canonical form" % host)


def test_odd_spellings_denied():
    R.reset()
    for host, named in (("0x7f000002", "127.0.0.2"), ("017700000002", "127.0.0.2"),
                        ("[::ffff:127.0.0.2]", None)):
        s = shoot("http://%s:%d/odd" % (host, R.port), "--timeout", "20000", env=LOOP)
        blocked(s, "http://%s:PORT/ (127.0.0.2)" % host, named, "loopback" if named else None)
    recorder_silent("odd spellings of 127.0.0.2")
    # ::1 has no listener at all: the refusal must still be the policy's
    s = shoot("http://[::1]:%d/" % P.port, "--timeout", "20000", env=LOOP)
    blocked(s, "http://[::1]:PORT/", None, "loopback")


def test_control_recorder_reachable():
    # the recorder is reachable when its range is open: its silence above is
    # the policy's doing, not a dead server
    R.reset()
    s = shoot(r_url("/control"), "--width", "300", "--height", "200", env={"TINTYPE_ALLOW_NETWORKS": "127.0.0.2/32"})
    ok(s, "a page on 127.0.0.2 with 127.0.0.2/32 open", "png", 300, 200)
    eq((s.meta or {}).get("http_status"), 404, "the recorder answered 404")
    conns, reqs = R.seen()
    check(any(r[1] == "/control" for r in reqs), "the recorder saw the request", "/control", [r[1] for r in reqs])
    R.reset()
    # and with only 127.0.0.2 open, 127.0.0.1 is denied
    s = shoot(P.url("/blocks"), "--timeout", "20000", env={"TINTYPE_ALLOW_NETWORKS": "127.0.0.2/32"})
    blocked(s, "127.0.0.1 with only 127.0.0.2/32 open", "127.0.0.1", "loopback")


def test_bad_allow_networks():
    for bad in ("not-a-cidr", "127.0.0.1/33", "300.0.0.1/32"):
        s = shoot(P.url("/blocks"), env={"TINTYPE_ALLOW_NETWORKS": bad}, timeout=15)
        eq(s.rc, 2, "TINTYPE_ALLOW_NETWORKS=%s: exit 2" % bad)
        check(bad in s.stderr or "ALLOW_NETWORKS" in s.stderr.upper() or "allow-networks" in s.stderr,
              "TINTYPE_ALLOW_NETWORKS=%s: stderr names it" % bad, bad, s.stderr[-400:])
        check(s.data is None, "TINTYPE_ALLOW_NETWORKS=%s: no file" % bad, None, s.path if s.data else None)


if __name__ == "__main__":
    run("render_ssrf", [test_page_on_denied_address, test_redirect_to_denied_address,
                        test_subresources_to_denied_address,
                        test_default_policy_denies_loopback, test_odd_spellings_allowed, test_odd_spellings_denied,
                        test_control_recorder_reachable, test_bad_allow_networks])

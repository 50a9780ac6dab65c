"""The browser asks for nothing of its own (hardening, issue 16 item 3).

A page with a form (name, e-mail, address, card, password fields: autofill
bait), a video and an audio element, a web font, links, a favicon and a
paragraph in French (translate bait) is shot with each browser tintype
supports. Two things are read:

- the proxy log (`--log-level debug`, "proxy request" lines): every host the
  job's browser asked the SSRF proxy for must be one the page named
  (127.0.0.1) — before the fix, new-headless chromium asked for
  content-autofill.googleapis.com;
- every connect/sendto/sendmsg/write on a socket of the shot and its browser
  (strace -f -yy, which names each socket's ends): no TCP connection and no
  datagram to an address outside loopback — before the fix, the browser's
  own profile resolved accounts.google.com, update.googleapis.com and
  clients2.google.com through the system resolver (in the namespace: UDP
  connects to it that fail, unroutable). The one UDP connect allowed is
  chromium's routability probe (2001:4860:4860::8888 or 8.8.8.8, port 443),
  which sends nothing; a send on it would be caught.

The test runs in a network namespace of its own (unshare --net, only lo up):
even if the browser tried, no packet could leave the machine. It is a skip
where that cannot be made (not root) or strace is missing."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

INNER = os.environ.get("TT_QUIET_NETNS") == "1"
if not INNER and __name__ == "__main__":
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip") and shutil.which("strace"):
        env = dict(os.environ, TT_QUIET_NETNS="1")
        sys.exit(subprocess.call(["unshare", "--net", "--", sys.executable, "-u", os.path.abspath(__file__)],
                                 env=env))

import pageserver  # noqa: E402
import shotutil  # noqa: E402
from pageserver import Pages, page  # noqa: E402
from ttharness import BIN, SLOW, Skip, check, clean_env, eq, run  # noqa: E402
import imgutil  # noqa: E402


def _quiet(q, h):
    head = ('<style>@font-face{font-family:Q;src:url(/font.woff2) format("woff2")}'
            'body{font-family:Q,sans-serif}</style><link rel="icon" href="/favicon.ico">')
    body = ('<form action="/submit" method="post">'
            '<input name="name" autocomplete="name"><input type="email" name="email" autocomplete="email">'
            '<input name="address" autocomplete="street-address"><input name="cc" autocomplete="cc-number">'
            '<input type="password" name="pw" autocomplete="current-password"><button>Send</button></form>'
            '<video src="/v.webm" controls width="200" height="100"></video><audio src="/a.ogg" controls></audio>'
            '<p><a href="/other">a link</a> <a href="https://127.0.0.1:1/secure">another</a></p>'
            '<p lang="fr">Bonjour, ceci est une page en fran&ccedil;ais, assez longue pour que le navigateur '
            'veuille la traduire automatiquement si on le laissait faire.</p>')
    return 200, page("quiet", body, head_extra=head)


pageserver.ROUTES["/quiet"] = _quiet
BROWSERS = [b for b in ("/usr/bin/chromium-headless-shell", "/usr/bin/chromium") if os.access(b, os.X_OK)]
ADDR = re.compile(r'inet_(?:addr|pton)\((?:AF_INET6, )?"([^"]+)"')
# chromium's resolver learns whether IPv4/IPv6 are routable by connect()ing
# a UDP socket to these (no datagram is sent; a send on it would be caught)
PROBES = {("2001:4860:4860::8888", "443"), ("8.8.8.8", "443")}
CALL = re.compile(r'^\d+\s+(connect|sendto|sendmsg|sendmmsg|write)\(\d+<([A-Za-z0-9]+):\[([^\]]*)\]>(.*)')


def _local(ip):
    return ip.startswith("127.") or ip in ("::1", "::") or ip.startswith("::ffff:127.")


def _peer(ends):
    """The remote address of a socket decoded by strace -yy
    ("127.0.0.1:1->10.0.0.1:53", "[::1]:1->[2001:db8::1]:443"), or None."""
    if "->" not in ends:
        return None
    far = ends.split("->", 1)[1]
    if far.startswith("["):
        return far[1:far.index("]")]
    return far.rsplit(":", 1)[0]


def leaks(lines):
    """What of a strace -f -yy log would have put a packet on a network:
    a TCP connect to, or any send to, an address outside loopback."""
    out = set()
    for ln in lines:
        m = CALL.match(ln)
        if not m or not m.group(2).startswith(("TCP", "UDP")):
            continue
        call, proto, ends, rest = m.groups()
        targets = [a.group(1) for a in ADDR.finditer(rest)]
        if call == "connect":
            port = re.search(r"port=htons\((\d+)\)", rest)
            for t in targets:
                if _local(t) or (proto.startswith("UDP") and (t, port and port.group(1)) in PROBES):
                    continue
                out.add("%s connect %s" % (proto, t))
            continue
        peer = _peer(ends)
        if peer and not _local(peer):
            out.add("%s on %s socket to %s" % (call, proto, peer))
        out.update("%s to %s" % (call, t) for t in targets if not _local(t))
    return sorted(out)


def _shot(browser, P, tmp):
    out = os.path.join(tmp, "quiet-%s.png" % os.path.basename(browser))
    trace = os.path.join(tmp, "strace-%s.txt" % os.path.basename(browser))
    cmd = ["strace", "-f", "-qq", "-yy", "-e", "trace=connect,sendto,sendmsg,sendmmsg,write", "-o", trace,
           BIN, "shot", P.url("/quiet"), "-o", out, "--log-level", "debug", "--chromium", browser,
           "--width", "800", "--height", "600", "--delay", "2000", "--timeout", "30000"]
    # LeakSanitizer cannot run under ptrace; leaks are the other tests' business
    env = clean_env({"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32", "ASAN_OPTIONS": "detect_leaks=0"})
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                       env=env, timeout=120 * SLOW)
    return p, out, trace


def test_browsers_ask_for_nothing():
    if not INNER:
        raise Skip("needs root, unshare, ip and strace (a network namespace of its own)")
    subprocess.check_call(["ip", "link", "set", "lo", "up"])
    check(BROWSERS, "a browser is installed", "chromium-headless-shell or chromium", BROWSERS)
    P = Pages("127.0.0.1")
    tmp = tempfile.mkdtemp(prefix="tt-quiet-")
    try:
        for b in BROWSERS:
            name = os.path.basename(b)
            before = P.count("/quiet")
            p, out, trace = _shot(b, P, tmp)
            eq(p.returncode, 0, "%s: the shot succeeded (%s)" % (name, p.stderr[-300:]))
            eq(P.count("/quiet") - before, 1, "%s: the page server served the page" % name)
            if p.returncode == 0:
                with open(out, "rb") as f:
                    eq(imgutil.image_info(f.read()), ("png", 800, 600), "%s: an 800x600 PNG" % name)
            hosts = set()
            for ln in p.stderr.splitlines():
                try:
                    j = json.loads(ln)
                except ValueError:
                    continue
                if isinstance(j, dict) and j.get("msg") == "proxy request":
                    hosts.add("%s:%s" % (j.get("host"), j.get("port")))
            check(hosts, "%s: the proxy log has the page's requests" % name, "127.0.0.1:PORT", hosts)
            eq(sorted(h for h in hosts if not h.startswith("127.0.0.1:")), [],
               "%s: the proxy log names only the page's own host" % name)
            with open(trace) as f:
                lines = f.readlines()
            check(any(CALL.match(ln) for ln in lines), "%s: strace saw the shot's socket calls" % name,
                  "connect/sendto lines", len(lines))
            eq(leaks(lines), [], "%s: no TCP connection and no datagram outside loopback (strace)" % name)
    finally:
        P.stop()
        shotutil.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run("render_quiet", [test_browsers_ask_for_nothing])

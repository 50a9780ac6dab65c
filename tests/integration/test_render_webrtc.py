"""WebRTC never goes around the job's proxy (hardening, issue 16 item 1).

A page served on 127.0.0.1 (opened with TINTYPE_ALLOW_NETWORKS=127.0.0.1/32)
makes two RTCPeerConnections whose ICE servers are on the denied 127.0.0.2:
STUN over UDP (3478 and 19302), TURN over UDP and over TCP (3478), with data
channels, and waits for candidate gathering to end. UDP listeners on
127.0.0.2:3478 and :19302 and a TCP listener on 127.0.0.2:3478 record every
datagram and connection. In both browsers tintype supports (the headless
shell and new-headless chromium) they must see nothing.

The page turns green only when both connections were made and gathering
ended, so a shot proves its WebRTC ran. Controls: with 127.0.0.2/32 opened
too, a fetch() of the page to the TCP listener's port arrives (through the
proxy) while UDP still sends nothing; the UDP listeners record a datagram
the test sends them. (TURN over TCP does not arrive even when opened: the
browser's own resolver refuses every name and address but the proxy's,
issue 16 item 3, so WebRTC can reach no ICE server at all.) Each browser takes its own switch
(--webrtc-ip-handling-policy for chromium, --force-webrtc-ip-handling-policy
for the shell); a flag the browser does not know is ignored silently, which is
how the hole went unseen: this test shoots with both binaries."""
import atexit
import os
import socket
import threading
import time

import pageserver
import shotutil
from pageserver import GREEN, Pages, page
from shotutil import ok, px, shoot
from ttharness import check, eq, run

DENIED = "127.0.0.2"
BROWSERS = [b for b in ("/usr/bin/chromium-headless-shell", "/usr/bin/chromium") if os.access(b, os.X_OK)]


def _rtc(q, h):
    ice = ("[{urls:'stun:%(d)s:3478'},{urls:'stun:%(d)s:19302'},"
           "{urls:['turn:%(d)s:3478?transport=udp','turn:%(d)s:3478?transport=tcp'],"
           "username:'u',credential:'p'}]") % {"d": DENIED}
    script = ("<script>var left=2,made=0;function fin(){if(document.getElementById('done'))return;"
              "var d=document.createElement('div');d.id='done';d.textContent=made;document.body.appendChild(d);"
              "if(made==2)document.documentElement.style.background=document.body.style.background='rgb(0,255,0)';}"
              "setTimeout(fin,8000);"
              "function one(){var pc=new RTCPeerConnection({iceServers:" + ice + "});made++;"
              "pc.createDataChannel('x');pc.onicegatheringstatechange=function(){"
              "if(pc.iceGatheringState=='complete'&&--left==0)fin();};"
              "pc.createOffer().then(function(o){return pc.setLocalDescription(o);});}"
              "try{one();one();}catch(e){document.title='no webrtc: '+e;fin();}</script>")
    # white until both connections were made and gathering ended: a shot of
    # a page whose WebRTC did not run is not green
    if q.get("fetch"):  # the control: a plain request to the same TCP port
        script += "<script>fetch('http://%s:3478/probe').catch(function(){});</script>" % DENIED
    return 200, page("rtc", "<p>webrtc</p>" + script, bg=(255, 255, 255))


pageserver.ROUTES["/rtc"] = _rtc
P = Pages("127.0.0.1")
atexit.register(shotutil.cleanup)
atexit.register(P.stop)

_seen = []
_lock = threading.Lock()


def _udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((DENIED, port))
    while True:
        data, addr = s.recvfrom(65536)
        with _lock:
            _seen.append(("udp", port, addr, len(data)))


def _tcp(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((DENIED, port))
    s.listen(16)
    while True:
        c, addr = s.accept()
        with _lock:
            _seen.append(("tcp", port, addr, 0))
        c.close()


for _p in (3478, 19302):
    threading.Thread(target=_udp, args=(_p,), daemon=True).start()
threading.Thread(target=_tcp, args=(3478,), daemon=True).start()


def seen_reset():
    time.sleep(0.3)  # a datagram already sent is delivered by then (loopback)
    with _lock:
        out = list(_seen)
        _seen.clear()
    return out


def _shoot(browser, allow, path="/rtc"):
    s = shoot(P.url(path), "--width", "300", "--height", "200", "--wait-for", "#done", "--timeout", "30000",
              "--chromium", browser, env={"TINTYPE_ALLOW_NETWORKS": allow})
    img = ok(s, "%s: the WebRTC page" % os.path.basename(browser), "png", 300, 200)
    # green = both RTCPeerConnections were made and gathering ran to its end
    px("%s: the page's WebRTC ran" % os.path.basename(browser), img, 150, 150, GREEN)
    return s


def test_denied_servers_hear_nothing():
    check(BROWSERS, "a browser is installed", "chromium-headless-shell or chromium", BROWSERS)
    for b in BROWSERS:
        seen_reset()
        for _ in range(2):
            _shoot(b, "127.0.0.1/32")
        got = seen_reset()
        eq(got, [], "%s, 127.0.0.1/32 open: STUN/TURN servers on 127.0.0.2 (UDP 3478, 19302; TCP 3478) "
                    "received nothing in two jobs" % os.path.basename(b))


def test_control_goes_through_the_proxy():
    for b in BROWSERS:
        seen_reset()
        _shoot(b, "127.0.0.1/32,127.0.0.2/32", "/rtc?fetch=1")
        got = seen_reset()
        udp = [g for g in got if g[0] == "udp"]
        tcp = [g for g in got if g[0] == "tcp"]
        name = os.path.basename(b)
        eq(udp, [], "%s, 127.0.0.2 open: still no UDP (it cannot go through the proxy)" % name)
        check(tcp, "%s, 127.0.0.2 open: the page's fetch() to the TCP listener arrives (through the proxy)" % name,
              ">= 1 connection", got)
    # and the UDP listeners do hear a datagram sent to them
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for p in (3478, 19302):
        u.sendto(b"probe", (DENIED, p))
    u.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len([g for g in _seen if g[0] == "udp"]) < 2:
        time.sleep(0.02)
    eq(len([g for g in seen_reset() if g[0] == "udp"]), 2, "the UDP listeners record a datagram sent to them")


if __name__ == "__main__":
    run("render_webrtc", [test_denied_servers_hear_nothing, test_control_goes_through_the_proxy])

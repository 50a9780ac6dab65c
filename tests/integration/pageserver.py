"""pageserver — the web pages the render tests shoot, served by the test
itself on loopback, so no test ever sends a packet outside 127.0.0.0/8.

Pages(host="127.0.0.1")  a threaded HTTP server on HOST and a free port:
  url(path)            http://HOST:PORT/path
  count(path)          requests seen for path (query string ignored)
  requests             every request seen: (method, path with query, headers)
  connections          TCP connections accepted (counted before any byte
                       is read, so a connection that never sends a request
                       still counts)
  stop()               closes it; pages that hold a response open end too

Pages (CSS pixels; colours chosen to be far apart, see the constants):
  /blocks      white page; RED 100x100 at (0,0), GREEN 100x100 at (200,0),
               BLUE 100x100 at (0,200); its title is "blocks"
  /tall        3000px tall: WHITE, a MAGENTA band from y=2900 to the end
  /element     #card, a TEAL 320x180 box at (150,120); #below, an ORANGE
               200x100 box at (40,1200) (below the fold)
  /late?ms=N   white; after N ms (default 500) adds #late, a GREEN 100x100
               box at (0,0)
  /never?s=N   answers 200 and a part of the body, then holds the response
               open N seconds (default 60) or until stop(): load never fires;
               with head=0 it holds before answering anything
  /hang-img    a page coloured YELLOW whose <img> is /never: DOMContentLoaded
               fires, load does not
  /idle?ms=N   white at load; a fetch() of /slow?ms=N (default 1000) starts
               at once and, when it answers, turns the page GREEN: only
               networkidle waits for it
  /slow?ms=N   "ok" after N ms
  /redirect?to=U  302 to U (absolute, or a path on this server)
  /missing     404 with an HTML page coloured PURPLE
  /dark        LIGHT background, DARK under prefers-color-scheme: dark
  /probe       no viewport meta: a box at (0,0) 100x100 BLUE when
               window.innerWidth >= 900 (a desktop 1280 viewport, or the
               980px layout viewport a mobile browser gives such a page),
               RED when narrower; a box at (200,0) GREEN when
               devicePixelRatio is 2, BLACK otherwise
  /noise       the viewport filled with 4x4 cells of pseudo-random colour
               (JPEG and WebP quality change its size a lot)
  /sub?host=H&port=P&odd=O  an <img>, an <img> redirected through this
               server, an <iframe>, a stylesheet, a fetch(), a WebSocket, all
               aimed at H:P, and a fetch() of http://O:P/ (O default
               0x7f000002, 127.0.0.2 spelled in hex); when every one has
               settled (or after 5 s) adds #done; the page itself is GREEN,
               so a shot of it shows it rendered
  /print?h=N   GREEN background; "tintype pdf text"; PRINT-MEDIA shown only
               under @media print, SCREEN-MEDIA only under @media screen; then
               N px (default 100) of nothing (a long page prints many pages)
  /controls    white; #banner a RED 300x100 fixed box at (0,0) whose
               button #accept removes it; #box a BLUE 100x100 at (400,0);
               #far a GREEN 100x100 box at (0,3000)
  /intl?lang=L&tz=Z  a box at (0,0) GREEN when navigator.language is L,
               else RED; a box at (200,0) GREEN when Intl's time zone is Z,
               else RED; a box at (400,0) GREEN when navigator.userAgent
               contains "tintype-ua", else BLUE
  /auth?user=U&pass=P  401 with WWW-Authenticate: Basic (a RED page) unless
               the request's Authorization is Basic U:P: then a GREEN page
  /authsub?host=H&port=P  WHITE; an <iframe> of http://H:P/auth (another
               origin's challenge)
  /favicon.ico 404
Any other path answers 404 "no such page".
"""

import base64
import http.server
import socketserver
import threading
import time
import urllib.parse

WHITE = (255, 255, 255)
RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
MAGENTA = (255, 0, 255)
TEAL = (0, 128, 128)
ORANGE = (255, 136, 0)
YELLOW = (255, 255, 0)
PURPLE = (128, 0, 128)
LIGHT = (250, 240, 200)
DARK = (16, 32, 64)
BLACK = (0, 0, 0)


def css(c):
    return "rgb(%d,%d,%d)" % c


def _box(id_, x, y, w, h, c):
    return ('<div id="%s" style="position:absolute;left:%dpx;top:%dpx;width:%dpx;height:%dpx;background:%s">'
            '</div>' % (id_, x, y, w, h, css(c)))


HEAD = ('<!doctype html><html><head><meta charset="utf-8"><title>%s</title>'
        '<style>html,body{margin:0;padding:0;background:%s}</style>%s</head>')


def page(title, body, bg=WHITE, head_extra=""):
    return (HEAD % (title, css(bg), head_extra) + "<body>" + body + "</body></html>").encode()


def _blocks(q, h):
    return 200, page("blocks", _box("r", 0, 0, 100, 100, RED) + _box("g", 200, 0, 100, 100, GREEN) +
                     _box("b", 0, 200, 100, 100, BLUE))


def _tall(q, h):
    return 200, page("tall", '<div style="height:2900px"></div><div id="end" style="height:100px;background:%s">'
                     '</div>' % css(MAGENTA))


def _element(q, h):
    return 200, page("element", _box("card", 150, 120, 320, 180, TEAL) + _box("below", 40, 1200, 200, 100, ORANGE) +
                     '<div style="position:absolute;left:0;top:1400px;width:10px;height:10px"></div>')


def _late(q, h):
    ms = int(q.get("ms", "500"))
    return 200, page("late", "<script>setTimeout(function(){var d=document.createElement('div');d.id='late';"
                     "d.style.cssText='position:absolute;left:0;top:0;width:100px;height:100px;background:%s';"
                     "document.body.appendChild(d);},%d);</script>" % (css(GREEN), ms))


def _hang_img(q, h):
    return 200, page("hang-img", '<img src="/never?head=0&s=%s" width="10" height="10">' % q.get("s", "60"), bg=YELLOW)


def _idle(q, h):
    ms = int(q.get("ms", "1000"))
    return 200, page("idle", "<script>fetch('/slow?ms=%d').then(function(r){return r.text()}).then(function(){"
                     "document.body.style.background='%s';document.documentElement.style.background='%s';});"
                     "</script>" % (ms, css(GREEN), css(GREEN)))


def _missing(q, h):
    return 404, page("missing", "<h1>not here</h1>", bg=PURPLE)


def _dark(q, h):
    return 200, page("dark", "<p>scheme</p>", bg=LIGHT,
                     head_extra="<style>@media (prefers-color-scheme: dark){html,body{background:%s}}</style>"
                     % css(DARK))


def _probe(q, h):
    return 200, page("probe", _box("w", 0, 0, 100, 100, BLACK) + _box("d", 200, 0, 100, 100, BLACK) +
                     "<script>document.getElementById('w').style.background=window.innerWidth>=900?'%s':'%s';"
                     "document.getElementById('d').style.background=window.devicePixelRatio==2?'%s':'%s';</script>"
                     % (css(BLUE), css(RED), css(GREEN), css(BLACK)))


def _wide(q, h):
    # no <meta name=viewport>: a phone lays it out 980 px wide; 2000 px tall
    return 200, page("wide", _box("l", 0, 0, 100, 100, RED) + _box("r", 880, 0, 100, 100, GREEN) +
                     _box("band", 0, 1900, 980, 100, MAGENTA) + '<div style="width:980px;height:2000px"></div>')


def _noise(q, h):
    return 200, page("noise", '<canvas id="c"></canvas><script>'
                     "var e=document.getElementById('c'),W=innerWidth,H=innerHeight;e.width=W;e.height=H;"
                     "e.style.display='block';var c=e.getContext('2d'),s=12345;"
                     "function r(){s=(s*1103515245+12345)&0x7fffffff;return s>>16&255;}"
                     "for(var y=0;y<H;y+=4)for(var x=0;x<W;x+=4){"
                     "c.fillStyle='rgb('+r()+','+r()+','+r()+')';c.fillRect(x,y,4,4);}</script>")


def _sub(q, h):
    host, port = q.get("host", "127.0.0.2"), q.get("port", "1")
    base = "http://%s:%s" % (host, port)
    odd = "http://%s:%s" % (q.get("odd", "0x7f000002"), port)
    ws = "ws://%s:%s/socket" % (host, port)
    redirected = "/redirect?to=" + urllib.parse.quote(base + "/redirected.png", safe="")
    script = ('<script>var left=6;function one(){if(--left==0)done();}'
              'function done(){if(document.getElementById("done"))return;var d=document.createElement("div");'
              'd.id="done";d.textContent="done";document.body.appendChild(d);}'
              'setTimeout(done,5000);</script>')
    body = ('<p>sub-resources</p>'
            '<img src="' + base + '/img.png" width="10" height="10" onload="one()" onerror="one()">'
            '<img src="' + redirected + '" width="10" height="10" onload="one()" onerror="one()">'
            '<iframe src="' + base + '/frame.html" width="50" height="50" onload="one()"></iframe>'
            '<link rel="stylesheet" href="' + base + '/style.css">'
            '<script>'
            'fetch("' + base + '/fetch.json").then(one,one);'
            'fetch("' + odd + '/odd.json").then(one,one);'
            'try{var s=new WebSocket("' + ws + '");s.onerror=one;s.onopen=one;}catch(e){one();}'
            '</script>')
    return 200, page("sub", body, bg=GREEN, head_extra=script)


def _print(q, h):
    return 200, page("print", '<p>tintype pdf text</p><p class="p">PRINT-MEDIA</p><p class="s">SCREEN-MEDIA</p>'
                     '<div style="height:%dpx"></div>' % int(q.get("h", "100")), bg=GREEN,
                     head_extra="<style>@media print{.s{display:none}} @media screen{.p{display:none}}</style>")


def _controls(q, h):
    return 200, page("controls", '<div id="banner" style="position:fixed;left:0;top:0;width:300px;height:100px;'
                     'background:%s"><button id="accept" onclick="document.getElementById(\'banner\').remove()">'
                     'OK</button></div>' % css(RED) + _box("box", 400, 0, 100, 100, BLUE) +
                     _box("far", 0, 3000, 100, 100, GREEN) + '<div style="height:5000px"></div>')


def _intl(q, h):
    return 200, page("intl", _box("l", 0, 0, 100, 100, WHITE) + _box("z", 200, 0, 100, 100, WHITE) +
                     _box("u", 400, 0, 100, 100, WHITE) +
                     "<script>var q=new URLSearchParams(location.search);"
                     "document.getElementById('l').style.background=navigator.language===q.get('lang')?'%s':'%s';"
                     "document.getElementById('z').style.background="
                     "Intl.DateTimeFormat().resolvedOptions().timeZone===q.get('tz')?'%s':'%s';"
                     "document.getElementById('u').style.background="
                     "navigator.userAgent.indexOf('tintype-ua')>=0?'%s':'%s';</script>"
                     % (css(GREEN), css(RED), css(GREEN), css(RED), css(GREEN), css(BLUE)))


def _authsub(q, h):
    return 200, page("authsub", '<iframe src="http://%s:%s/auth" width="100" height="100"></iframe>'
                     % (q.get("host", "127.0.0.3"), q.get("port", "1")))


ROUTES = {"/authsub": _authsub, "/controls": _controls, "/intl": _intl, "/print": _print, "/blocks": _blocks, "/tall": _tall, "/element": _element, "/late": _late, "/hang-img": _hang_img,
          "/idle": _idle, "/missing": _missing, "/dark": _dark, "/probe": _probe, "/noise": _noise, "/sub": _sub,
          "/wide": _wide}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pageserver"

    def log_message(self, *a):  # quiet
        pass

    def _send(self, status, body, ctype="text/html; charset=utf-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        pages = self.server.pages
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        pages._record(self.command, self.path, u.path, dict(self.headers.items()))
        if pages.record_only:
            self._send(404, b"recorded\n", "text/plain")
            return
        if u.path == "/never" and q.get("head") == "0":
            pages.stopping.wait(float(q.get("s", "60")))
            self.close_connection = True
            return
        if u.path == "/never":
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", "1000000")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(b"<!doctype html><html><body><p>loading forever")
            self.wfile.flush()
            pages.stopping.wait(float(q.get("s", "60")))
            self.close_connection = True
            return
        if u.path == "/slow":
            pages.stopping.wait(int(q.get("ms", "1000")) / 1000.0)
            self._send(200, b"ok", "text/plain")
            return
        if u.path == "/redirect":
            to = q.get("to", "/blocks")
            self.send_response(302)
            self.send_header("Location", to)
            self.send_header("Content-Length", "0")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            return
        if u.path == "/auth":
            want = "Basic " + base64.b64encode(("%s:%s" % (q.get("user", "u"), q.get("pass", "p"))).encode()).decode()
            if self.headers.get("Authorization") == want:
                self._send(200, page("auth", "<p>in</p>", bg=GREEN))
            else:
                self._send(401, page("auth", "<p>who?</p>", bg=RED), headers=[("WWW-Authenticate", 'Basic realm="tt"')])
            return
        fn = ROUTES.get(u.path)
        if fn is None:
            self._send(404, b"no such page\n", "text/plain")
            return
        status, body = fn(q, self.headers)
        self._send(status, body)

    def do_GET(self):
        try:
            self._handle()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_HEAD = do_GET
    do_POST = do_GET


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def get_request(self):
        conn, addr = self.socket.accept()
        self.pages._connected(addr)
        return conn, addr


class Pages:
    def __init__(self, host="127.0.0.1", record_only=False):
        """record_only: answer every request 404 after recording it (the
        server an SSRF test hopes never to hear from)."""
        self.host = host
        self.record_only = record_only
        self.lock = threading.Lock()
        self.requests = []
        self.connections = []
        self.counts = {}
        self.stopping = threading.Event()
        self.httpd = _Server((host, 0), _Handler)
        self.httpd.pages = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def _record(self, method, full, path, headers):
        with self.lock:
            self.requests.append((method, full, headers))
            self.counts[path] = self.counts.get(path, 0) + 1

    def _connected(self, addr):
        with self.lock:
            self.connections.append((time.monotonic(), addr))

    def url(self, path="/", host=None):
        return "http://%s:%d%s" % (host or self.host, self.port, path)

    def count(self, path):
        with self.lock:
            return self.counts.get(path, 0)

    def seen(self):
        """(connections, requests) so far, as lists."""
        with self.lock:
            return list(self.connections), list(self.requests)

    def reset(self):
        with self.lock:
            self.requests.clear()
            self.connections.clear()
            self.counts.clear()

    def stop(self):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

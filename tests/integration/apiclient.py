"""apiclient — small JSON/REST helpers for the /api integration tests,
on top of ttharness (raw sockets, strict response parsing).

call()    one request on a fresh connection: JSON body, Bearer key, extra
          headers; returns the harness Response with .j (parsed JSON or None)
problem() checks an RFC 9457 problem answer (status, type, field, instance)
signup()  POST /api/users; returns (user JSON, api key)
Sse       a Server-Sent Events stream read chunk by chunk (the harness reads
          whole bodies only)
Request ids of every answer are remembered per port, so a test can check
that each request left exactly one JSON log line (check_request_logs)."""

import base64
import hashlib
import hmac
import json
import re
import threading
import time

from ttharness import SLOW, Closed, Conn, HttpError, Timeout, check, eq, fetch, request

ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
KEY_RE = re.compile(r"^tt_[A-Za-z0-9_-]{43}$")

_rids = {}  # port -> [request id]
_rids_lock = threading.Lock()


def _remember(port, r):
    rid = r.get("X-Request-Id")
    if rid:
        with _rids_lock:
            _rids.setdefault(port, []).append(rid)


def _parse(r):
    r.j = None
    ct = (r.get("Content-Type") or "").split(";")[0].strip().lower()
    if ct.endswith("json") and r.body:
        try:
            r.j = json.loads(r.body.decode("utf-8"))
        except ValueError:
            r.j = None
    return r


def call(port, method, path, key=None, body=None, raw=None, ctype="application/json", headers=None,
         timeout=10.0):
    """body: a JSON value (dumped); raw: bytes/str sent as is. ctype None:
    no Content-Type. Content-Length is sent for POST/PUT/DELETE with a body
    and always for POST."""
    hs = []
    if key is not None:
        hs.append(("Authorization", "Bearer " + key))
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
    elif raw is not None:
        data = raw.encode() if isinstance(raw, str) else raw
    if (body is not None or raw is not None) and ctype:
        hs.append(("Content-Type", ctype))
    if data or method in ("POST", "PUT", "PATCH"):
        hs.append(("Content-Length", str(len(data))))
    hs += list(headers or [])
    r = fetch(port, method, path, hs, data, timeout=timeout)
    _remember(port, r)
    return _parse(r)


def on_conn(conn, method, path, key=None, body=None, headers=None, timeout=10.0):
    """Like call(), on an open keep-alive Conn."""
    hs = []
    if key is not None:
        hs.append(("Authorization", "Bearer " + key))
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        hs.append(("Content-Type", "application/json"))
    if data or method in ("POST", "PUT"):
        hs.append(("Content-Length", str(len(data))))
    hs += list(headers or [])
    r = conn.roundtrip(method, path, hs, data, timeout=timeout)
    _remember(conn.port, r)
    return _parse(r)


def problem(r, status, kind, what, field=None, instance=None):
    """Checks r is an application/problem+json answer of status with type
    /problems/KIND (and field / instance when given). Returns the JSON."""
    eq(r.status, status, what + ": status")
    ct = (r.get("Content-Type") or "").split(";")[0].strip().lower()
    eq(ct, "application/problem+json", what + ": Content-Type")
    j = r.j if isinstance(r.j, dict) else {}
    check(isinstance(r.j, dict), what + ": body is a JSON object", "object", r.body[:300])
    eq(j.get("type"), "/problems/" + kind, what + ": type")
    eq(j.get("status"), status, what + ": status member")
    check(isinstance(j.get("title"), str) and j.get("title"), what + ": title is a non-empty string", "title",
          j.get("title"))
    check(isinstance(j.get("detail"), str) and j.get("detail"), what + ": detail is a non-empty string", "detail",
          j.get("detail"))
    if instance is not None:
        eq(j.get("instance"), instance, what + ": instance")
    if field is not None:
        eq(j.get("field"), field, what + ": field")
    return j


def invalid(r, field, what, instance=None):
    return problem(r, 400, "invalid-field", what + " (field %s)" % field, field=field, instance=instance)


def signup(port, name, email):
    """Signs up; returns (user JSON, key). Raises when it is not a 201."""
    r = call(port, "POST", "/api/users", body={"name": name, "email": email})
    if r.status != 201 or not isinstance(r.j, dict) or "api_key" not in r.j:
        raise HttpError("sign-up of %s answered %d %r" % (email, r.status, r.body[:300]))
    return r.j, r.j["api_key"]


_seq = {"n": 0}
_seq_lock = threading.Lock()


def new_user(port, tag="u"):
    with _seq_lock:
        _seq["n"] += 1
        n = _seq["n"]
    email = "%s%d.%d@example.com" % (tag, n, int(time.time() * 1000) % 1000000)
    return signup(port, "%s %d" % (tag, n), email)


FINAL_STATES = ("succeeded", "failed", "canceled")


def wait_job(port, key, jid, timeout=60):
    """GET /api/jobs/{jid} until it is in a final state (or timeout x SLOW
    seconds pass); returns the last record seen ({} if none)."""
    deadline = time.monotonic() + timeout * SLOW
    j = {}
    while time.monotonic() < deadline:
        j = call(port, "GET", "/api/jobs/%s" % jid, key=key).j or {}
        if j.get("state") in FINAL_STATES:
            return j
        time.sleep(0.05)
    return j


def now_ms():
    return int(time.time() * 1000)


# --------------------------------------------------------------- signed links

def b64url(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def link_key(secret, uid, apikey):
    """A user's link key: HMAC-SHA256(server secret, "links\nID\nSHA256HEX(API key)"):
    a rotated key or a deleted user, and the links signed with it stop."""
    kh = hashlib.sha256(apikey.encode()).hexdigest()
    return hmac.new(secret, ("links\n%s\n%s" % (uid, kh)).encode(), hashlib.sha256).digest()


def sign(secret, path, expires, uid, apikey):
    """A link signature: base64url(HMAC-SHA256(link key, PATH\nEXPIRES))."""
    d = hmac.new(link_key(secret, uid, apikey), ("%s\n%d" % (path, expires)).encode(), hashlib.sha256).digest()
    return b64url(d)


def signed(secret, path, expires, uid, apikey):
    """The whole signed link: PATH?expires=E&sig=S&u=ID."""
    return "%s?expires=%d&sig=%s&u=%s" % (path, expires, sign(secret, path, expires, uid, apikey), uid)


# --------------------------------------------------------------- SSE

class Sse:
    """GET PATH as an event stream on its own connection. head() reads the
    response head; next_event() returns the next event as a dict of its
    fields (event, id, data) or None when the chunked body ended."""

    def __init__(self, port, path, key=None, timeout=5.0):
        self.conn = Conn(port, timeout)
        hs = [("Accept", "text/event-stream")]
        if key is not None:
            hs.append(("Authorization", "Bearer " + key))
        self.conn.send(request("GET", path, hs))
        self.text = b""  # decoded chunk data not yet split into events
        self.ended = False
        self.raw = b""

    def head(self, timeout=5.0):
        c = self.conn
        deadline = time.monotonic() + timeout * SLOW
        while c.buf.find(b"\r\n\r\n") < 0:
            c._fill(deadline, "the event stream's head")
        i = c.buf.find(b"\r\n\r\n")
        raw = c._take(i + 4)
        lines = raw[:-4].split(b"\r\n")
        m = re.match(rb"^HTTP/1\.1 (\d{3})", lines[0])
        if not m:
            raise HttpError("bad status line %r" % lines[0])
        self.status = int(m.group(1))
        self.headers = []
        for ln in lines[1:]:
            k, v = ln.split(b":", 1)
            self.headers.append((k.decode("latin-1").lower(), v.strip().decode("latin-1")))
        return self.status

    def header(self, name):
        vs = [v for k, v in self.headers if k == name.lower()]
        return ", ".join(vs) if vs else None

    def _chunk(self, deadline):
        """Reads one chunk into self.text; False at the terminator."""
        c = self.conn
        line = c._line(deadline, "a chunk size")
        self.raw += line + b"\r\n"
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:
                t = c._line(deadline, "trailers")
                if t == b"":
                    break
            self.ended = True
            return False
        while len(c.buf) < size + 2:
            c._fill(deadline, "a chunk")
        data = c._take(size)
        self.raw += data
        if c._take(2) != b"\r\n":
            raise HttpError("chunk not followed by CRLF")
        self.text += data
        return True

    def next_event(self, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        while True:
            i = self.text.find(b"\n\n")
            if i >= 0:
                block = self.text[:i].decode("utf-8")
                self.text = self.text[i + 2:]
                ev = {}
                for ln in block.split("\n"):
                    if ln.startswith(":"):
                        continue
                    k, _, v = ln.partition(":")
                    if v.startswith(" "):
                        v = v[1:]
                    ev[k] = ev[k] + "\n" + v if (k == "data" and k in ev) else v
                if not ev:
                    continue
                if "data" in ev:
                    try:
                        ev["json"] = json.loads(ev["data"])
                    except ValueError:
                        ev["json"] = None
                return ev
            if self.ended:
                return None
            if not self._chunk(deadline):
                return None

    def close(self):
        self.conn.close()

    def abort(self):
        self.conn.abort()


def check_request_logs(server, what="one JSON log line per request"):
    """Every X-Request-Id answered by server (through call/on_conn) appears in
    exactly one 'request' log line with method, path and status."""
    with _rids_lock:
        rids = list(_rids.get(server.port, []))
    if not rids:
        return
    last = rids[-1]
    server.wait_log(lambda l: l.get("msg") == "request" and l.get("request_id") == last, 5)
    counts = {}
    bad = []
    for ln in server.logs("request"):
        rid = ln.get("request_id")
        counts[rid] = counts.get(rid, 0) + 1
        if not all(k in ln for k in ("method", "path", "status")):
            bad.append(ln)
    wrong = [(rid, counts.get(rid, 0)) for rid in rids if counts.get(rid, 0) != 1]
    eq(len(set(rids)), len(rids), what + ": request ids are unique")
    check(not wrong, what + ": every answered request id has exactly one log line", [], wrong[:10])
    check(not bad, what + ": request log lines have method, path, status", [], bad[:3])


__all__ = ["wait_job", "FINAL_STATES",
           "too_large", "ID_RE", "KEY_RE", "call", "on_conn", "problem", "invalid", "signup", "new_user", "now_ms", "sign",
           "b64url", "Sse", "check_request_logs", "Closed", "Timeout"]


def too_large(r, what):
    """413 as a problem of this API: problem+json with a /problems/ type."""
    eq(r.status, 413, what + ": status")
    ct = (r.get("Content-Type") or "").split(";")[0].strip().lower()
    eq(ct, "application/problem+json", what + ": Content-Type")
    t = (r.j or {}).get("type", "") if isinstance(r.j, dict) else ""
    # the HTTP engine answers limits before any handler runs: its problems
    # are about:blank (the status is the kind, RFC 9457 §4.2.1); the API's
    # own upload limit uses /problems/upload-too-large
    check(t == "about:blank" or t.startswith("/problems/"), what + ": type is about:blank or /problems/<kind>",
          "about:blank | /problems/...", t)
    eq((r.j or {}).get("status") if isinstance(r.j, dict) else None, 413, what + ": status member")

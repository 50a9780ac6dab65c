#!/usr/bin/env python3
"""it.http_framing — framing a front-end (ALB, HAProxy) may read differently
from us (issue 16 item 6), over raw sockets: obs-fold is refused with 400
(also when the fold arrives in another read, and never a false alarm on
spaces inside a value), HTTP/1.0 with Transfer-Encoding: chunked closes after
its response even when it asked for keep-alive, and chunk extensions count
against --max-chunk-ext-bytes (30 MB of ";aaaa" on a 16 KiB route is refused
long before it ends; the llhttp CVE-2024-22019 class)."""

import json
import select
import socket
import time

from ttharness import Conn, Server, check, eq, run, send_raw

S = Server()
SIGNUP = json.dumps({"name": "framing", "email": "framing-%d@example.com" % int(time.time() * 1000)}).encode()


def status(r):
    return getattr(r, "status", repr(r))


def test_obs_fold_refused():
    for what, raw in (
            ("Transfer-Encoding:\\r\\n chunked",
             b"POST /api/users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            ("an ordinary header folded with a space",
             b"GET /index.html HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"),
            ("folded with a tab", b"GET /index.html HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n"),
            ("Content-Length folded",
             b"POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 3\r\n\r\nabc")):
        r, closed = send_raw(S.port, raw)
        eq(status(r), 400, "obs-fold, %s: status" % what)
        check(closed, "obs-fold, %s: connection closed" % what, "closed", "open")
        check("obs-fold" in (getattr(r, "body", b"") or b"").decode("utf-8", "replace"),
              "obs-fold, %s: the detail says why" % what, "obs-fold", getattr(r, "body", b"")[:200])


def test_obs_fold_across_reads():
    with Conn(S.port) as c:
        c.send(b"GET /index.html HTTP/1.1\r\nHost: x\r\nX-A: a\r\n")
        time.sleep(0.1)  # two reads on the server's side (not a timing assertion)
        c.send(b" b\r\n\r\n")
        r = c.read_response()
        eq(r.status, 400, "a fold that arrives in a second read: 400")


def test_no_false_alarm():
    with Conn(S.port) as c:
        r = c.roundtrip("GET", "/index.html", [("X-Spaces", "a b\tc  d")])
        eq(r.status, 200, "spaces and tabs inside a value: 200")
        # the value split across reads right after a space
        c.send(b"GET /index.html HTTP/1.1\r\nHost: x\r\nX-A: a ")
        time.sleep(0.1)
        c.send(b"b\r\nX-B:\r\n\r\n")
        r = c.read_response()
        eq(r.status, 200, "a value split after a space, and an empty value: 200")


def test_http10_chunked_closes():
    body = b"3\r\nabc\r\n0\r\n\r\n"
    r, closed = send_raw(S.port, b"POST /index.html HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n" + body)
    check(status(r) != 200, "HTTP/1.0 chunked POST to a GET resource: not 200", "4xx", status(r))
    check(r is not None and "close" in r.conn_tokens(), "HTTP/1.0 + chunked: Connection: close", "close",
          getattr(r, "headers", None))
    check(closed, "HTTP/1.0 + chunked, keep-alive asked: closed after the response", "closed", "open")
    # the same request with Content-Length keeps the connection the client asked for
    with Conn(S.port) as c:
        c.send(b"POST /index.html HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc")
        r = c.read_response()
        eq(r.status, 405, "HTTP/1.0 + Content-Length POST /index.html: 405")
        check("close" not in r.conn_tokens(), "HTTP/1.0 + Content-Length, keep-alive asked: kept", "keep-alive",
              r.get("Connection"))
        r = c.roundtrip("GET", "/index.html", version="HTTP/1.0", headers=[("Connection", "keep-alive")])
        eq(r.status, 200, "the kept connection serves the next request")


def test_chunk_extensions_bounded():
    # a few short extensions are fine
    # (llhttp 8.1 refuses a second extension after a name=value one: ";a=b;c=d" is a 400 of its own)
    chunks = b"%x;a;b;c=d\r\n" % len(SIGNUP) + SIGNUP + b"\r\n0;z=1\r\n\r\n"
    r, closed = send_raw(S.port, b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    eq(status(r), 201, "short chunk extensions: the request is served")
    # 5 KB of extensions, over the 4 KiB default
    r, closed = send_raw(S.port, b"POST /api/users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"2;a=" + b"b" * 5000 + b"\r\n{}\r\n0\r\n\r\n")
    eq(status(r), 400, "5 KB of chunk extensions: 400")
    check(b"max-chunk-ext-bytes" in (getattr(r, "body", b"") or b""), "5 KB of chunk extensions: the detail names "
          "the limit", "max-chunk-ext-bytes", getattr(r, "body", b"")[:200])
    check(closed, "5 KB of chunk extensions: closed", "closed", "open")
    # 30 MB of ";aaaa" on a 16 KiB route: the answer comes while the client is still sending
    s = socket.create_connection(("127.0.0.1", S.port), timeout=10)
    s.sendall(b"POST /api/users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2")
    piece = b";aaaa" * 20000  # 100 KB
    sent, resp = 0, b""
    try:
        while sent < 30 * 1024 * 1024 and not resp:
            s.sendall(piece)
            sent += len(piece)
            r, _, _ = select.select([s], [], [], 0)
            if r:
                resp = s.recv(65536)
    except OSError:
        pass
    if not resp:
        try:
            s.settimeout(5)
            resp = s.recv(65536)
        except OSError:
            pass
    s.close()
    check(resp.startswith(b"HTTP/1.1 400"), "30 MB of ';aaaa': answered 400", "400", resp[:100])
    check(b"max-chunk-ext-bytes" in resp, "30 MB of ';aaaa': the detail names the limit", "max-chunk-ext-bytes",
          resp[:300])
    check(sent < 30 * 1024 * 1024, "30 MB of ';aaaa': the answer came before the client had sent it all",
          "< 30 MB sent", sent)
    # the server is fine afterwards
    eq(status(send_raw(S.port, b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", close_wait=0)[0]), 200,
       "the server answers afterwards")


def test_max_chunk_ext_bytes_flag():
    with Server("--max-chunk-ext-bytes", "16") as s:
        r, closed = send_raw(s.port, b"POST /api/users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     b"2;a=" + b"b" * 100 + b"\r\n{}\r\n0\r\n\r\n")
        eq(status(r), 400, "--max-chunk-ext-bytes 16: 100 bytes of extensions -> 400")
        check(b"max-chunk-ext-bytes" in (getattr(r, "body", b"") or b""), "--max-chunk-ext-bytes 16: named",
              "max-chunk-ext-bytes", getattr(r, "body", b"")[:200])
    r, closed = send_raw(S.port, b"POST /api/users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"2;a=" + b"b" * 100 + b"\r\n{}\r\n0\r\n\r\n")
    check(status(r) != 400 or b"max-chunk-ext-bytes" not in r.body,
          "defaults: 100 bytes of extensions are not refused for their length", "not a chunk-ext 400",
          (status(r), getattr(r, "body", b"")[:120]))


if __name__ == "__main__":
    run("it.http_framing",
        [test_obs_fold_refused, test_obs_fold_across_reads, test_no_false_alarm, test_http10_chunked_closes,
         test_chunk_extensions_bounded, test_max_chunk_ext_bytes_flag],
        server=S)

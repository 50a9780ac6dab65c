#!/usr/bin/env python3
"""it.http_malformed — requests a server must refuse: malformed ones (400 and
close) and request-smuggling shapes (400 and close, and a second request
hidden behind them is never answered). Then odd-but-survivable input that
may get any 4xx or a 200 but never a 5xx, a hang or a crash; the shared
server must still serve and keep the same children at the end."""

import random

from ttharness import Conn, Server, check, eq, fetch, run, web_file

S = Server(processes=1)
ROBOTS = web_file("robots.txt")

MALFORMED = [
    ("garbage request line", b"HELLO WORLD\r\n\r\n"),
    ("binary request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
    ("bad HTTP version HTTX", b"GET / HTTX/1.1\r\nHost: x\r\n\r\n"),
    ("bad HTTP version 1.x", b"GET / HTTP/1.x\r\nHost: x\r\n\r\n"),
    ("bad HTTP version missing minor", b"GET / HTTP/1.\r\nHost: x\r\n\r\n"),
    ("no version", b"GET /index.html\r\nHost: x\r\n\r\n"),
    ("header without colon", b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n"),
    ("space before colon", b"GET / HTTP/1.1\r\nHost: x\r\nX-Foo : bar\r\n\r\n"),
    ("space in header name", b"GET / HTTP/1.1\r\nHost: x\r\nX Foo: bar\r\n\r\n"),
    ("invalid Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
    ("negative Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
    ("Content-Length with two numbers", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\nab"),
    ("huge Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
    ("invalid chunk size", b"POST /index.html HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
    ("chunk without CRLF after data",
     b"POST /index.html HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"),
    ("HTTP/1.1 without Host", b"GET /index.html HTTP/1.1\r\nUser-Agent: t\r\n\r\n"),
    ("NUL in header value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
    ("NUL in request target", b"GET /ind\x00ex.html HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("control char in header value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n"),
    ("two Host headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
]

SMUGGLING = [
    ("Content-Length and Transfer-Encoding: chunked",
     b"POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding: chunked and Content-Length",
     b"POST /index.html HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\n"),
    ("two different Content-Lengths",
     b"POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n"),
    ("Content-Length list with different values",
     b"POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 44\r\n\r\n"),
    ("Transfer-Encoding: chunked, gzip (chunked not last)",
     b"POST /index.html HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding: chunked then a second TE: gzip",
     b"POST /index.html HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding: xchunked",
     b"POST /index.html HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding: gzip (no chunked)",
     b"POST /index.html HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding with obs-fold",
     b"POST /index.html HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\n"),
]

SMUGGLED = b"GET /robots.txt HTTP/1.1\r\nHost: x\r\nX-Smuggled: 1\r\n\r\n"


def expect_400_close(desc, data):
    with Conn(S.port) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            r = c.read_response(timeout=3)
        except Exception as e:  # noqa: BLE001
            check(False, "%s answered" % desc, "400 then close", repr(e))
            return
        eq(r.status, 400, "%s -> status" % desc)
        closed = c.wait_closed(2)
        check(closed, "%s: connection closed after the 400" % desc, "closed, no more bytes",
              getattr(c, "extra", b"")[:300] or "still open")


def test_malformed():
    for desc, data in MALFORMED:
        expect_400_close(desc, data)


def test_smuggling():
    for desc, data in SMUGGLING:
        # a second request rides behind the ambiguous one: it must never be answered
        expect_400_close(desc, data + SMUGGLED)


def test_error_body_is_problem_json():
    with Conn(S.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        r = c.read_response(timeout=3)
        eq(r.status, 400, "bad header status")
        if r.body:
            eq(r.get("Content-Type"), "application/problem+json", "400 Content-Type")
            try:
                eq(r.json().get("status"), 400, "400 problem status")
            except ValueError:
                check(False, "400 body is JSON", "JSON", r.body[:200])


def test_survivable():
    """Any 2xx/4xx, no 5xx, an answer or a close within seconds; the server survives."""
    rnd = random.Random(1234)
    cases = [
        ("bare LF line endings", b"GET /robots.txt HTTP/1.1\nHost: x\n\n"),
        ("absolute-form target", b"GET http://127.0.0.1/robots.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("CONNECT", b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n"),
        ("unknown method", b"BREW /index.html HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("lower-case method", b"get /index.html HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("HTTP/9.9", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n"),
        ("Upgrade: websocket", b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"),
        ("empty header value", b"GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\n\r\n"),
        ("empty lines before request", b"\r\n\r\nGET /robots.txt HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("high-bit bytes in path", b"GET /\xff\xfe\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("percent-encoded garbage", b"GET /%zz%%%00%ff HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("Expect: something else", b"POST /index.html HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 0\r\n\r\n"),
        ("random bytes", bytes(rnd.getrandbits(8) for _ in range(4096))),
        ("random printable", bytes(rnd.choice(b"GET /HTP:\r\n 1.0abc") for _ in range(4096))),
    ]
    for desc, data in cases:
        with Conn(S.port) as c:
            try:
                c.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                r = c.read_response(timeout=3)
                check(r.status < 500 or r.status == 505 or r.status == 501, "%s: no 5xx" % desc, "< 500",
                      "%d %r" % (r.status, r.body[:100]))
            except Exception as e:  # noqa: BLE001
                # closing without an answer is acceptable; hanging is not
                check("timed out" not in str(e), "%s: answered or closed within 3 s" % desc, "answer or close", repr(e))
    eq(fetch(S.port, "GET", "/robots.txt").body, ROBOTS, "server still serves after odd input")


def test_still_healthy():
    with Conn(S.port) as c:
        for path in ("/index.html", "/robots.txt"):
            eq(c.roundtrip("GET", path).status, 200, "GET %s after all malformed input" % path)
    eq(S.children(), S.initial_children, "the same child process serves (nothing crashed)")


if __name__ == "__main__":
    run("http_malformed", [test_malformed, test_smuggling, test_error_body_is_problem_json, test_survivable,
                           test_still_healthy], server=S)

#!/usr/bin/env python3
"""it.http_keepalive — connection reuse: several requests on one socket,
Connection: close, HTTP/1.0 with and without keep-alive, pipelining (with a
HEAD in the middle, and many requests in one write), request bodies
(Content-Length and chunked) consumed so the next pipelined request is
answered, a request trickled byte by byte, and clients that vanish."""

import time

from ttharness import Conn, Server, chunked, check, eq, fetch, request, run, web_file

S = Server(processes=1)

INDEX = web_file("index.html")
STYLE = web_file("style.css")
ROBOTS = web_file("robots.txt")


def test_sequential_on_one_socket():
    with Conn(S.port) as c:
        for i, (path, body) in enumerate((("/index.html", INDEX), ("/style.css", STYLE), ("/robots.txt", ROBOTS),
                                          ("/nope", None), ("/", INDEX), ("/index.html", INDEX))):
            r = c.roundtrip("GET", path)
            if body is None:
                eq(r.status, 404, "request %d (%s) status" % (i, path))
            else:
                eq((r.status, r.body == body), (200, True), "request %d (%s) status and body" % (i, path))
            check("close" not in r.conn_tokens(), "request %d keeps the connection" % i, "no close", r.get("Connection"))
        check(not c.wait_closed(0.3), "connection still open after 6 requests", "open", "closed")


def test_connection_close():
    with Conn(S.port) as c:
        r = c.roundtrip("GET", "/index.html", {"Connection": "close"})
        eq(r.status, 200, "Connection: close status")
        check(r.body == INDEX, "Connection: close body")
        check("close" in r.conn_tokens(), "response has Connection: close", "close", r.get("Connection"))
        check(c.wait_closed(2), "server closes after Connection: close", "closed", getattr(c, "extra", b""))


def test_http10():
    with Conn(S.port) as c:
        r = c.roundtrip("GET", "/index.html", version="HTTP/1.0")
        eq(r.status, 200, "HTTP/1.0 status")
        check(r.body == INDEX, "HTTP/1.0 body")
        check("keep-alive" not in r.conn_tokens(), "HTTP/1.0 response does not promise keep-alive", "",
              r.get("Connection"))
        check(c.wait_closed(2), "HTTP/1.0 without keep-alive is closed after the response", "closed",
              getattr(c, "extra", b""))
    with Conn(S.port) as c:  # HTTP/1.0 needs no Host
        c.send(b"GET /robots.txt HTTP/1.0\r\n\r\n")
        r = c.read_response()
        eq((r.status, r.body), (200, ROBOTS), "HTTP/1.0 without Host")
    with Conn(S.port) as c:
        r1 = c.roundtrip("GET", "/index.html", {"Connection": "keep-alive"}, version="HTTP/1.0")
        eq(r1.status, 200, "HTTP/1.0 keep-alive first status")
        check("keep-alive" in r1.conn_tokens(), "HTTP/1.0 keep-alive response says Connection: keep-alive",
              "keep-alive", r1.get("Connection"))
        r2 = c.roundtrip("GET", "/style.css", {"Connection": "keep-alive"}, version="HTTP/1.0")
        eq((r2.status, r2.body == STYLE), (200, True), "HTTP/1.0 keep-alive second request on same socket")
        r3 = c.roundtrip("GET", "/robots.txt", version="HTTP/1.0")
        eq(r3.status, 200, "HTTP/1.0 third request without keep-alive")
        check(c.wait_closed(2), "HTTP/1.0 closed after a request without keep-alive", "closed",
              getattr(c, "extra", b""))


def test_pipelining():
    with Conn(S.port) as c:
        c.send(request("GET", "/index.html") + request("HEAD", "/style.css") + request("GET", "/robots.txt") +
               request("GET", "/nope") + request("GET", "/style.css"))
        r1 = c.read_response()
        r2 = c.read_response(head=True)
        r3 = c.read_response()
        r4 = c.read_response()
        r5 = c.read_response()
        eq((r1.status, r1.body == INDEX), (200, True), "pipelined 1: GET /index.html")
        eq((r2.status, r2.get("Content-Length"), r2.get("Content-Type")),
           (200, str(len(STYLE)), "text/css; charset=utf-8"), "pipelined 2: HEAD /style.css")
        eq((r3.status, r3.body), (200, ROBOTS), "pipelined 3: GET /robots.txt")
        eq(r4.status, 404, "pipelined 4: GET /nope")
        eq((r5.status, r5.body == STYLE), (200, True), "pipelined 5: GET /style.css")
        check(not c.buf, "nothing after the 5 pipelined responses", b"", bytes(c.buf))
        check(not c.wait_closed(0.2), "connection stays open after pipelined requests", "open", "closed")


def test_pipelining_many():
    n = 200
    paths = ["/index.html", "/style.css", "/robots.txt", "/nope"]
    with Conn(S.port, timeout=10) as c:
        c.send(b"".join(request("GET", paths[i % 4], {"X-Request-Id": "pipe-%d" % i}) for i in range(n)))
        got = []
        for i in range(n):
            r = c.read_response(timeout=10)
            got.append((r.status, r.get("X-Request-Id")))
            want = {0: INDEX, 1: STYLE, 2: ROBOTS}.get(i % 4)
            if want is not None and r.body != want:
                check(False, "pipelined response %d body" % i, paths[i % 4], r.body[:60])
        eq(got, [(404 if i % 4 == 3 else 200, "pipe-%d" % i) for i in range(n)], "%d pipelined responses in order" % n)


def test_pipelined_close_stops():
    with Conn(S.port) as c:
        c.send(request("GET", "/robots.txt") + request("GET", "/style.css", {"Connection": "close"}) +
               request("GET", "/index.html"))
        r1 = c.read_response()
        r2 = c.read_response()
        eq((r1.status, r2.status), (200, 200), "two responses before the Connection: close")
        check("close" in r2.conn_tokens(), "second response has Connection: close", "close", r2.get("Connection"))
        check(c.wait_closed(2), "no answer to the request after Connection: close", "closed",
              getattr(c, "extra", b"")[:100])


def test_bodies_consumed():
    cases = [
        ("chunked", [("Transfer-Encoding", "chunked")], chunked("hello", " world", "x" * 40)),
        ("chunked with extension and trailer", [("Transfer-Encoding", "chunked")],
         b"5;name=value\r\nhello\r\n0\r\nX-Trailer: yes\r\n\r\n"),
        ("chunked, one byte chunks", [("Transfer-Encoding", "chunked")], chunked(*"abcdefghij")),
        ("Content-Length", [("Content-Length", "11")], b"hello world"),
        ("Content-Length 0", [("Content-Length", "0")], b""),
    ]
    for desc, hs, body in cases:
        with Conn(S.port) as c:
            # if the body were not consumed, its bytes would be parsed as the next request
            c.send(request("POST", "/index.html", hs, body) + request("GET", "/robots.txt"))
            r1 = c.read_response()
            eq(r1.status, 405, "POST with %s body -> 405" % desc)
            try:
                r2 = c.read_response()
                eq((r2.status, r2.body), (200, ROBOTS), "pipelined GET after POST with %s body" % desc)
            except Exception as e:  # noqa: BLE001
                check(False, "pipelined GET after POST with %s body answered" % desc, "200", repr(e))
    # body sent in separate writes after the headers
    with Conn(S.port) as c:
        c.send(request("POST", "/index.html", [("Transfer-Encoding", "chunked")]))
        time.sleep(0.05)
        c.send(b"4\r\nabcd\r\n")
        time.sleep(0.05)
        c.send(b"0\r\n\r\n" + request("GET", "/style.css"))
        eq(c.read_response().status, 405, "POST chunked in pieces -> 405")
        r = c.read_response()
        eq((r.status, r.body == STYLE), (200, True), "GET after chunked POST sent in pieces")


def test_byte_by_byte():
    data = request("GET", "/style.css", {"X-Request-Id": "slow-1"})
    with Conn(S.port) as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
            time.sleep(0.002)
        r = c.read_response()
        eq((r.status, r.body == STYLE, r.get("X-Request-Id")), (200, True, "slow-1"), "request sent byte by byte")


def test_client_vanishes():
    # a client that sends many requests and resets without reading
    for _ in range(3):
        c = Conn(S.port)
        c.send(b"".join(request("GET", "/index.html") for _ in range(100)))
        c.abort()
    # and one that half-closes after its request: it still gets the answer
    with Conn(S.port) as c:
        c.send(request("GET", "/robots.txt"))
        c.sock.shutdown(1)  # SHUT_WR
        r = c.read_response()
        eq((r.status, r.body), (200, ROBOTS), "response after client half-close")
        check(c.wait_closed(2), "server closes after client half-close", "closed", getattr(c, "extra", b""))
    time.sleep(0.1)
    eq(fetch(S.port, "GET", "/index.html").status, 200, "server serves after clients vanished")


def test_many_connections():
    conns = []
    try:
        for _ in range(200):
            conns.append(Conn(S.port))
        for i, c in enumerate(conns):
            c.send(request("GET", "/robots.txt" if i % 2 else "/style.css"))
        bad = []
        for i, c in enumerate(conns):
            r = c.read_response()
            if r.status != 200 or r.body != (ROBOTS if i % 2 else STYLE):
                bad.append((i, r.status))
        eq(bad, [], "200 concurrent connections each answered")
    finally:
        for c in conns:
            c.close()


if __name__ == "__main__":
    run("http_keepalive", [test_sequential_on_one_socket, test_connection_close, test_http10, test_pipelining,
                           test_pipelining_many, test_pipelined_close_stops, test_bodies_consumed,
                           test_byte_by_byte, test_client_vanishes, test_many_connections], server=S)

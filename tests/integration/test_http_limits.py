#!/usr/bin/env python3
"""it.http_limits — every limit a client controls, each set small with its
own flag on its own server, and the same request under the defaults to show
the flag is what makes the difference: --max-header-bytes (431),
--max-headers (431), --max-url-bytes (414), --max-body-bytes (413, also
chunked and with Expect: 100-continue), --header-timeout-ms,
--body-timeout-ms (408 and close), --idle-timeout-ms (close),
--max-connections (503 and close, when no connection is idle). Also the environment twin of a flag and
the flag winning over it."""

import time

from ttharness import SLOW, Conn, Server, check, eq, fetch, request, run, send_raw

BIG_HEADER = [("X-Big", "a" * 2048)]
MANY_HEADERS = [("X-H%d" % i, "v") for i in range(20)]
LONG_PATH = "/" + "a" * 199


def closed_after(c, t=2.0):
    return c.wait_closed(t)


def status_of(x):
    return getattr(x, "status", repr(x))


def test_defaults_accept():
    with Server() as s:
        eq(status_of(fetch(s.port, "GET", "/index.html", BIG_HEADER)), 200, "defaults: 2 KB header -> 200")
        eq(status_of(fetch(s.port, "GET", "/index.html", MANY_HEADERS)), 200, "defaults: 20 headers -> 200")
        eq(status_of(fetch(s.port, "GET", LONG_PATH)), 404, "defaults: 200-byte path -> 404 (not 414)")
        eq(status_of(fetch(s.port, "POST", "/index.html", {"Content-Length": "1000"}, b"x" * 1000)), 405,
           "defaults: 1000-byte body -> 405 (not 413)")


def test_max_header_bytes():
    with Server("--max-header-bytes", "1024") as s:
        r, closed = send_raw(s.port, request("GET", "/index.html", BIG_HEADER))
        eq(status_of(r), 431, "--max-header-bytes 1024, 2 KB header -> status")
        check(closed, "431 closes the connection", "closed", "open")
        r, closed = send_raw(s.port, request("GET", "/index.html", [("X-Pad", "b" * 600)]), close_wait=0)
        eq(status_of(r), 200, "--max-header-bytes 1024, ~700 byte head -> 200")
        # many small headers adding up
        r, closed = send_raw(s.port, request("GET", "/index.html", [("X-P%d" % i, "c" * 90) for i in range(15)]))
        eq(status_of(r), 431, "--max-header-bytes 1024, 15 x 100-byte headers -> 431")
        # a header that never ends (no CRLF) must not be buffered forever
        with Conn(s.port) as c:
            try:
                c.send(b"GET /index.html HTTP/1.1\r\nHost: x\r\nX-Long: " + b"z" * 8192)
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                r = c.read_response()
                eq(r.status, 431, "unterminated 8 KB header -> 431")
            except Exception as e:  # noqa: BLE001
                check(False, "unterminated 8 KB header answered", "431", repr(e))


def test_max_headers():
    with Server("--max-headers", "10") as s:
        r, closed = send_raw(s.port, request("GET", "/index.html", MANY_HEADERS))
        eq(status_of(r), 431, "--max-headers 10, 20 headers -> status")
        check(closed, "431 (too many headers) closes the connection", "closed", "open")
        r, _ = send_raw(s.port, request("GET", "/index.html", [("X-H%d" % i, "v") for i in range(5)]), close_wait=0)
        eq(status_of(r), 200, "--max-headers 10, 6 headers -> 200")


def test_max_url_bytes():
    with Server("--max-url-bytes", "100") as s:
        r, _ = send_raw(s.port, request("GET", LONG_PATH))
        eq(status_of(r), 414, "--max-url-bytes 100, 200-byte path -> status")
        r, _ = send_raw(s.port, request("GET", "/index.html?" + "q" * 150))
        eq(status_of(r), 414, "--max-url-bytes 100, 160-byte target with query -> status")
        r, _ = send_raw(s.port, request("GET", "/" + "a" * 49), close_wait=0)
        eq(status_of(r), 404, "--max-url-bytes 100, 50-byte path -> 404")
    with Server(env={"TINTYPE_MAX_URL_BYTES": "100"}) as s:
        eq(status_of(fetch(s.port, "GET", LONG_PATH)), 414, "TINTYPE_MAX_URL_BYTES=100, 200-byte path -> status")
    with Server("--max-url-bytes", "8k", env={"TINTYPE_MAX_URL_BYTES": "100"}) as s:
        eq(status_of(fetch(s.port, "GET", LONG_PATH)), 404, "flag --max-url-bytes 8k wins over TINTYPE_MAX_URL_BYTES=100")


def test_max_body_bytes():
    with Server("--max-body-bytes", "100") as s:
        # answered without the body being sent
        with Conn(s.port) as c:
            c.send(request("POST", "/index.html", {"Content-Length": "1000"}))
            try:
                r = c.read_response(timeout=3)
                eq(r.status, 413, "--max-body-bytes 100, Content-Length 1000 -> status (before the body is sent)")
                check(c.wait_closed(2), "413 closes the connection", "closed", getattr(c, "extra", b""))
            except Exception as e:  # noqa: BLE001
                check(False, "Content-Length 1000 answered without reading the body", "413", repr(e))
        # a chunked body that grows past the limit
        body = b"".join(b"20\r\n" + b"x" * 32 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
        r, closed = send_raw(s.port, request("POST", "/index.html", {"Transfer-Encoding": "chunked"}, body))
        eq(status_of(r), 413, "--max-body-bytes 100, 256-byte chunked body -> status")
        check(closed, "413 (chunked) closes the connection", "closed", "open")
        # one big chunk announced, 200 of its bytes sent
        r, closed = send_raw(s.port, request("POST", "/index.html", {"Transfer-Encoding": "chunked"},
                                             b"3e8\r\n" + b"z" * 200), timeout=3)
        eq(status_of(r), 413, "--max-body-bytes 100, chunk of 1000 (200 bytes sent) -> status")
        # within the limit: consumed, route answers
        r, _ = send_raw(s.port, request("POST", "/index.html", {"Content-Length": "100"}, b"y" * 100), close_wait=0)
        eq(status_of(r), 405, "--max-body-bytes 100, 100-byte body -> 405")
        # Expect: 100-continue with a too-large body: 413, no 100 Continue
        with Conn(s.port) as c:
            c.send(request("POST", "/index.html", {"Content-Length": "1000", "Expect": "100-continue"}))
            try:
                r = c.read_response(timeout=3)
                check(r.status != 100, "no 100 Continue for a body over the limit", "413", "%d first" % r.status)
                if r.status == 100:
                    r = c.read_response(timeout=3)
                eq(r.status, 413, "Expect: 100-continue with Content-Length 1000 -> status")
            except Exception as e:  # noqa: BLE001
                check(False, "Expect: 100-continue over the limit answered", "413", repr(e))


def elapsed_response(c, timeout):
    t = time.monotonic()
    try:
        r = c.read_response(timeout=timeout)
    except Exception as e:  # noqa: BLE001
        r = e
    return r, time.monotonic() - t


def test_header_timeout():
    with Server("--header-timeout-ms", "500") as s:
        with Conn(s.port) as c:
            c.send(b"GET /index")
            r, dt = elapsed_response(c, 5)
            eq(status_of(r), 408, "--header-timeout-ms 500, half a request line -> status")
            check(0.3 <= dt <= 2.5 * SLOW, "408 after about 500 ms", "0.3..%.1f s" % (2.5 * SLOW), "%.2f s" % dt)
            check(c.wait_closed(2), "408 closes the connection", "closed", getattr(c, "extra", b""))
        # slowloris: a header line every 150 ms never completes the head
        with Conn(s.port) as c:
            t0 = time.monotonic()
            c.send(b"GET /index.html HTTP/1.1\r\nHost: x\r\n")
            got_closed = False
            for i in range(20):
                time.sleep(0.15)
                try:
                    c.send(b"X-S%d: v\r\n" % i)
                except (BrokenPipeError, ConnectionResetError):
                    got_closed = True
                    break
                if time.monotonic() - t0 > 3 * SLOW:
                    break
            r, _ = elapsed_response(c, 2)
            dt = time.monotonic() - t0
            check(status_of(r) == 408 or got_closed, "slow headers (one line per 150 ms) -> 408",
                  408, status_of(r))
            check(dt <= 3.5 * SLOW, "slow headers cut off by the header timeout", "<= %.1f s" % (3.5 * SLOW),
                  "%.2f s" % dt)
        # a prompt request is not affected
        with Conn(s.port) as c:
            eq(c.roundtrip("GET", "/index.html").status, 200, "prompt request under --header-timeout-ms 500")
            time.sleep(0.2)
            eq(c.roundtrip("GET", "/style.css").status, 200, "second prompt request on same connection")


def test_body_timeout():
    with Server("--body-timeout-ms", "500") as s:
        with Conn(s.port) as c:
            c.send(request("POST", "/index.html", {"Content-Length": "10"}, b"abc"))
            r, dt = elapsed_response(c, 5)
            eq(status_of(r), 408, "--body-timeout-ms 500, 3 of 10 body bytes -> status")
            check(0.3 <= dt <= 2.5 * SLOW, "408 after about 500 ms", "0.3..%.1f s" % (2.5 * SLOW), "%.2f s" % dt)
            check(c.wait_closed(2), "408 (body) closes the connection", "closed", getattr(c, "extra", b""))
        with Conn(s.port) as c:
            c.send(request("POST", "/index.html", {"Transfer-Encoding": "chunked"}, b"a\r\nabc"))
            r, dt = elapsed_response(c, 5)
            eq(status_of(r), 408, "--body-timeout-ms 500, stalled chunked body -> status")


def test_idle_timeout():
    with Server("--idle-timeout-ms", "500") as s:
        with Conn(s.port) as c:
            eq(c.roundtrip("GET", "/index.html").status, 200, "first request before idling")
            t = time.monotonic()
            closed = c.wait_closed(5)
            dt = time.monotonic() - t
            check(closed, "--idle-timeout-ms 500: idle keep-alive connection closed without bytes", "closed",
                  getattr(c, "extra", b"")[:100] or "still open after 5 s")
            check(0.3 <= dt <= 2.5 * SLOW, "closed after about 500 ms", "0.3..%.1f s" % (2.5 * SLOW), "%.2f s" % dt)
        # activity resets the idle timer
        with Conn(s.port) as c:
            ok = True
            for i in range(4):
                try:
                    ok = ok and c.roundtrip("GET", "/robots.txt").status == 200
                except Exception:  # noqa: BLE001
                    ok = False
                time.sleep(0.3)
            check(ok, "4 requests 300 ms apart on one connection under --idle-timeout-ms 500", True, ok)


def test_max_connections():
    with Server("--max-connections", "2", processes=1) as s:
        held = []
        try:
            # the start-up probe's connection may not be reaped yet: retry briefly
            for i in range(2):
                deadline, last = time.monotonic() + 2 * SLOW, None
                while time.monotonic() < deadline:
                    c = Conn(s.port)
                    try:
                        last = c.roundtrip("GET", "/robots.txt").status
                    except Exception as e:  # noqa: BLE001
                        last = repr(e)
                    if last == 200:
                        held.append(c)
                        break
                    c.close()
                    time.sleep(0.05)
                eq(last, 200, "held connection %d answered" % i)
            # idle connections would be reclaimed for a new one (it.http_idle_reclaim):
            # make both busy with a request whose headers have not ended
            for c in held:
                c.send(b"GET /style.css HTTP/1.1\r\nHost: x\r\n")
            time.sleep(0.1)  # let the server read them (not a timing assertion)
            with Conn(s.port) as c:
                try:
                    c.send(request("GET", "/index.html"))
                except (BrokenPipeError, ConnectionResetError):
                    pass
                try:
                    r = c.read_response(timeout=3)
                    eq(r.status, 503, "--max-connections 2: third connection -> status")
                    check(c.wait_closed(2), "third connection closed after 503", "closed", getattr(c, "extra", b""))
                except Exception as e:  # noqa: BLE001
                    check(False, "third connection gets a 503", "503", repr(e))
            # the held ones still work
            held[0].send(b"\r\n")
            eq(held[0].read_response().status, 200, "held connection still served")
            held[1].close()
            # a slot frees up: a new connection is served again
            deadline = time.monotonic() + 2 * SLOW
            last = None
            while time.monotonic() < deadline:
                try:
                    last = fetch(s.port, "GET", "/index.html", timeout=2).status
                except Exception as e:  # noqa: BLE001
                    last = repr(e)
                if last == 200:
                    break
                time.sleep(0.05)
            eq(last, 200, "after one held connection closes, a new one is served")
        finally:
            for c in held:
                c.close()


def test_write_timeout():
    """A client that never reads: the server stops after --write-timeout-ms
    instead of holding the connection (and its buffers) forever."""
    import socket as so
    with Server("--write-timeout-ms", "500") as s:
        c = so.socket(so.AF_INET, so.SOCK_STREAM)
        c.setsockopt(so.SOL_SOCKET, so.SO_RCVBUF, 4096)
        c.settimeout(5)
        try:
            c.connect(("127.0.0.1", s.port))
            n = 3000
            reqs = request("GET", "/index.html") * n
            try:
                c.sendall(reqs)
            except OSError:
                pass  # the server may stop reading (and close) before all are sent
            time.sleep(0.5 + 2.0 * SLOW)
            got, t0, ended = b"", time.monotonic(), False
            while time.monotonic() - t0 < 5 * SLOW:
                try:
                    d = c.recv(1 << 20)
                except (ConnectionResetError, BrokenPipeError):
                    ended = True
                    break
                except so.timeout:
                    break
                if not d:
                    ended = True
                    break
                got += d
            answered = got.count(b"HTTP/1.1 200 OK\r\n")
            check(ended, "--write-timeout-ms 500: connection of a client that does not read is closed", "closed",
                  "still open after %d responses" % answered)
            check(answered < n, "not all %d pipelined responses were delivered to the stalled client" % n,
                  "< %d" % n, answered)
        finally:
            c.close()
        eq(fetch(s.port, "GET", "/index.html").status, 200, "server serves others after a stalled client")


if __name__ == "__main__":
    run("http_limits", [test_defaults_accept, test_max_header_bytes, test_max_headers, test_max_url_bytes,
                        test_max_body_bytes, test_header_timeout, test_body_timeout, test_idle_timeout,
                        test_max_connections, test_write_timeout])

#!/usr/bin/env python3
"""it.drain — SIGTERM and SIGINT: the health check answers 503 with
Connection: close, listeners close, a request in flight still gets its
answer, the supervisor exits 0; --drain-delay-ms keeps accepting (and
answering 503) for a while; --shutdown-timeout-ms bounds how long a request
that never completes can hold the exit. No process is left behind."""

import os
import signal
import time

from ttharness import (SLOW, Closed, Conn, HttpError, Server, check, connect_refused, eq, fetch, proc_stat, request,
                       run)


def no_orphans(kids, what):
    deadline = time.monotonic() + 2 * SLOW
    while time.monotonic() < deadline:
        alive = [k for k in kids if proc_stat(k) and proc_stat(k)[0] != "Z"]
        if not alive:
            break
        time.sleep(0.02)
    check(not alive, "%s: no child left running after the supervisor exits" % what, [], alive)


def wait_refused(port, limit):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if connect_refused(port, 0.3):
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


def get_until_503(conn, limit):
    """GETs /index.html on conn until the answer is not a keep-alive 200
    (the signal travels from the supervisor to the child meanwhile)."""
    r, deadline = None, time.monotonic() + limit
    while time.monotonic() < deadline:
        r = conn.roundtrip("GET", "/index.html")
        if r.status != 200 or "close" in r.conn_tokens():
            break
        time.sleep(0.02)
    return r


def test_drain_in_flight():
    """SIGTERM with no drain delay: an idle keep-alive connection is either
    answered 503 + close or closed cleanly; the listener closes; a request in
    flight still gets its answer; exit 0."""
    with Server(processes=2) as s:
        kids = s.children()
        a = Conn(s.port)
        b = Conn(s.port)
        try:
            eq(a.roundtrip("GET", "/index.html").status, 200, "keep-alive connection before SIGTERM")
            # an in-flight request: headers and half of its body
            b.send(request("POST", "/index.html", {"Content-Length": "10"}, b"12345"))
            time.sleep(0.1)
            s.signal(signal.SIGTERM)
            time.sleep(0.05)
            try:
                r = get_until_503(a, 2 * SLOW)
                eq(r.status, 503, "GET /index.html on a keep-alive connection while draining -> status")
                check("close" in r.conn_tokens(), "503 while draining has Connection: close", "close",
                      r.get("Connection"))
                check(a.wait_closed(2), "connection closed after the draining 503", "closed",
                      getattr(a, "extra", b""))
            except (OSError, HttpError) as e:
                # the server closed the idle connection when its listener closed: allowed, but cleanly
                check(isinstance(e, (Closed, BrokenPipeError, ConnectionResetError)) and not getattr(e, "partial", b""),
                      "idle keep-alive connection closed cleanly (no partial response) while draining",
                      "503 or a clean close", repr(e))
            dt = wait_refused(s.port, 1.5 * SLOW)
            check(dt is not None, "new connections refused shortly after SIGTERM", "refused within %.1f s" % (1.5 * SLOW),
                  "still accepted")
            check(s.alive(), "the supervisor waits for the request in flight", "running", "exited %s" % s.proc.poll())
            # finish the in-flight request: it gets its answer
            try:
                b.send(b"67890")
                rb = b.read_response(timeout=3)
                eq(rb.status, 405, "in-flight POST completed after SIGTERM -> status")
                check("close" in rb.conn_tokens(), "in-flight response while draining says Connection: close",
                      "close", rb.get("Connection"))
            except Exception as e:  # noqa: BLE001
                check(False, "in-flight request answered after SIGTERM", "405", repr(e))
            code = s.wait_exit(5)
            eq(code, 0, "supervisor exit code after draining")
            no_orphans(kids, "SIGTERM with a request in flight")
            ln = s.wait_log(lambda l: l.get("msg") == "request" and l.get("method") == "POST", 1)
            check(ln is not None and ln.get("status") == 405, "the in-flight request was logged with 405",
                  405, ln)
        finally:
            a.close()
            b.close()


def test_drain_delay_keepalive():
    """SIGTERM with --drain-delay-ms: an open keep-alive connection's GET
    /index.html answers 503 + Connection: close, new connections too; then
    the listener closes, the in-flight request finishes, exit 0."""
    with Server("--drain-delay-ms", "1000", processes=2) as s:
        kids = s.children()
        a = Conn(s.port)
        b = Conn(s.port)
        try:
            eq(a.roundtrip("GET", "/index.html").status, 200, "keep-alive connection before SIGTERM")
            b.send(request("POST", "/index.html", {"Content-Length": "10"}, b"12345"))
            time.sleep(0.1)
            t0 = time.monotonic()
            s.signal(signal.SIGTERM)
            time.sleep(0.05)
            try:
                r = get_until_503(a, 0.8)
                eq(r.status, 503, "GET /index.html on the keep-alive connection during the drain delay -> status")
                check("close" in r.conn_tokens(), "draining 503 has Connection: close", "close", r.get("Connection"))
                check(a.wait_closed(2), "keep-alive connection closed after the draining 503", "closed",
                      getattr(a, "extra", b""))
            except Exception as e:  # noqa: BLE001
                check(False, "keep-alive connection answered during the drain delay", "503", repr(e))
            if time.monotonic() - t0 < 0.8:
                r = fetch(s.port, "GET", "/index.html", timeout=2)
                eq(r.status, 503, "new connection during the drain delay -> status")
            dt = wait_refused(s.port, 3 * SLOW)
            check(dt is not None, "listener closed after the delay", "refused", "still accepting")
            try:
                b.send(b"67890")
                eq(b.read_response(timeout=3).status, 405, "in-flight POST completed after the delay")
            except Exception as e:  # noqa: BLE001
                check(False, "in-flight request answered", "405", repr(e))
            eq(s.wait_exit(5), 0, "exit code after drain delay with a request in flight")
            no_orphans(kids, "drain delay")
        finally:
            a.close()
            b.close()


def test_sigterm_idle():
    for sig in (signal.SIGTERM, signal.SIGINT):
        with Server(processes=2) as s:
            kids = s.children()
            eq(fetch(s.port, "GET", "/index.html").status, 200, "served before %s" % sig.name)
            t0 = time.monotonic()
            s.signal(sig)
            code = s.wait_exit(5)
            dt = time.monotonic() - t0
            eq(code, 0, "idle server exit code after %s" % sig.name)
            check(dt < 1.5 * SLOW, "idle server exits quickly after %s" % sig.name, "< %.1f s" % (1.5 * SLOW),
                  "%.2f s" % dt)
            no_orphans(kids, sig.name)
            check(connect_refused(s.port), "port closed after exit (%s)" % sig.name, "refused", "accepted")


def test_ctrl_c_to_the_group():
    """Ctrl-C in a terminal signals every process of the group at once (and
    the supervisor then forwards SIGTERM): still exit 0, every time."""
    for i in range(5):
        with Server(processes=2) as s:
            kids = s.children()
            eq(fetch(s.port, "GET", "/index.html").status, 200, "served before Ctrl-C")
            os.killpg(s.pid, signal.SIGINT)
            eq(s.wait_exit(5), 0, "exit code after SIGINT to the process group (try %d)" % (i + 1))
            no_orphans(kids, "group SIGINT")


def test_duplicate_sigterm():
    """timeout(1) sends SIGTERM to the process and to its group; a stop
    delivered twice within a second is one request to drain (exit 0, no child
    killed), while a second one later means "stop now" (SIGKILL, exit 1)."""
    with Server(processes=2) as s:
        kids = s.children()
        s.signal(signal.SIGTERM)
        s.signal(signal.SIGTERM)
        eq(s.wait_exit(5), 0, "exit code after SIGTERM twice at once")
        eq([l for l in s.logs("child exited") if "signal" in l], [], "no child killed by a duplicate SIGTERM")
        no_orphans(kids, "duplicate SIGTERM")
    with Server("--drain-delay-ms", "3000", processes=1) as s:
        s.signal(signal.SIGTERM)
        time.sleep(1.3)
        s.signal(signal.SIGTERM)
        eq(s.wait_exit(5), 1, "exit code after a second SIGTERM 1.3 s later (children killed)")
        # the exit can be seen before the reader thread has the last log lines
        check(s.wait_log(lambda l: l.get("msg") == "child exited" and l.get("signal"), 5) is not None,
              "the second SIGTERM killed the children")


def test_sigterm_right_after_start():
    """SIGTERM as soon as the children are forked (a deploy that changes its
    mind): still a clean drain, exit 0, nothing left behind."""
    bad = []
    for i in range(20):
        with Server(processes=2, ready=False) as s:
            s.wait_log(lambda l: l.get("msg") == "child started" and l.get("index") == 1, 5)
            kids = s.children()
            s.signal(signal.SIGTERM)
            code = s.wait_exit(5)
            if code != 0:
                bad.append((i, code, [ln for ln in s.logs() if ln.get("msg") == "child exited"]))
            no_orphans(kids, "SIGTERM right after start")
    eq(bad, [], "SIGTERM right after start: exit code 0 every time (20 tries)")


def test_sigterm_with_idle_keepalive():
    """An idle keep-alive connection must not hold the exit until the idle timeout."""
    with Server(processes=1) as s:
        with Conn(s.port) as c:
            eq(c.roundtrip("GET", "/robots.txt").status, 200, "keep-alive request")
            t0 = time.monotonic()
            s.signal(signal.SIGTERM)
            code = s.wait_exit(8)
            dt = time.monotonic() - t0
            eq(code, 0, "exit code with an idle keep-alive connection open")
            check(dt < 3 * SLOW, "exit not held by an idle keep-alive connection", "< %.0f s" % (3 * SLOW),
                  "%.2f s" % dt)


def test_drain_delay():
    with Server("--drain-delay-ms", "2000", processes=2) as s:
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        time.sleep(0.15)
        statuses = []
        # at least one probe even when a loaded machine made us late
        while not statuses or time.monotonic() - t0 < 1.2:
            try:
                r = fetch(s.port, "GET", "/index.html", timeout=2)
                statuses.append(r.status)
            except Exception as e:  # noqa: BLE001
                statuses.append(repr(e))
            time.sleep(0.05)
        check(statuses and all(x == 503 for x in statuses),
              "--drain-delay-ms 2000: new connections accepted and GET /index.html -> 503 during the delay",
              "all 503", statuses)
        r = fetch(s.port, "GET", "/robots.txt", timeout=2) if time.monotonic() - t0 < 1.7 else None
        if r is not None:
            check(r.status in (200, 503), "other files during the delay", "200 or 503", r.status)
        dt = wait_refused(s.port, 3 * SLOW)
        check(dt is not None, "listener closed after the delay", "refused", "still accepting")
        total = time.monotonic() - t0
        check(total >= 1.9, "listener stayed open for about the drain delay", ">= 1.9 s", "%.2f s" % total)
        eq(s.wait_exit(5), 0, "exit code after drain delay")


def test_shutdown_timeout():
    with Server("--shutdown-timeout-ms", "500", processes=1) as s:
        kids = s.children()
        with Conn(s.port) as c:
            c.send(request("POST", "/index.html", {"Content-Length": "10"}, b"12345"))  # never completed
            time.sleep(0.1)
            t0 = time.monotonic()
            s.signal(signal.SIGTERM)
            code = s.wait_exit(8)
            dt = time.monotonic() - t0
            eq(code, 0, "--shutdown-timeout-ms 500 exit code with a stuck request")
            check(dt is not None and 0.3 <= dt <= 0.5 + 1.5 * SLOW,
                  "stuck request holds the exit about 0.5 s", "0.3..%.1f s" % (0.5 + 1.5 * SLOW), "%.2f s" % dt)
            check(c.wait_closed(1), "the stuck connection is closed", "closed", getattr(c, "extra", b"")[:200])
        no_orphans(kids, "shutdown timeout")


if __name__ == "__main__":
    run("drain", [test_drain_in_flight, test_drain_delay_keepalive, test_sigterm_idle, test_ctrl_c_to_the_group, test_duplicate_sigterm, test_sigterm_right_after_start,
                  test_sigterm_with_idle_keepalive, test_drain_delay,
                  test_shutdown_timeout])

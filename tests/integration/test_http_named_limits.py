#!/usr/bin/env python3
"""it.http_named_limits — the client-controlled limits that were bare numbers
until issue 11, each a named setting with its answer, set small on one server
and contrasted with the same request under the defaults:
--max-keepalive-requests (Connection: close on the last one, then closed),
--read-buffer-bytes (pipelined requests still all answered, in order),
--linger-ms (the error answer is read whole), --max-request-id-bytes (a longer
X-Request-Id is replaced), --max-signup-body-bytes / --max-job-body-bytes /
--max-image-body-bytes (413), --max-api-key-bytes (401), --max-idempotency-
key-bytes (400 naming Idempotency-Key), --events-max-ms (the event stream
ends). The older limits are it.http_limits."""

import json
import subprocess

from apiclient import Sse, call, invalid, new_user, problem
from ttharness import BIN, Conn, Server, check, eq, request, run, send_raw

SMALL = Server("--max-keepalive-requests", "3", "--read-buffer-bytes", "1k", "--linger-ms", "0",
               "--max-request-id-bytes", "16", "--max-signup-body-bytes", "1k", "--max-job-body-bytes", "1k",
               "--max-image-body-bytes", "64", "--max-idempotency-key-bytes", "8", "--events-max-ms", "1000")
DFLT = Server()
KEYS = Server("--max-api-key-bytes", "16")
URL = "http://127.0.0.1:9/never-fetched"  # no worker runs: jobs stay queued


def start_all():
    for s in (DFLT, KEYS):
        s.start()


def stop_all():
    for s in (DFLT, KEYS):
        s.stop()


def test_max_keepalive_requests():
    with Conn(SMALL.port) as c:
        for i in range(1, 4):
            r = c.roundtrip("GET", "/index.html")
            eq(r.status, 200, "--max-keepalive-requests 3: request %d" % i)
            eq("close" in r.conn_tokens(), i == 3, "request %d says Connection: close" % i)
        check(c.wait_closed(5.0), "the connection is closed after the 3rd response", "closed", "open")
    with Conn(DFLT.port) as c:
        for i in range(1, 6):
            r = c.roundtrip("GET", "/index.html")
            check("close" not in r.conn_tokens(), "defaults: request %d keeps the connection" % i, "keep-alive",
                  r.get("Connection"))


def test_read_buffer_bytes():
    # 30 pipelined requests (~2 KB) through a 1 KiB read buffer: reading pauses, nothing is lost
    reqs = b"".join(request("GET", "/index.html", [("X-Request-Id", "p%d" % i)]) for i in range(30))
    check(len(reqs) > 1024, "the pipelined requests are larger than the buffer", "> 1024", len(reqs))
    with Conn(SMALL.port) as c:
        c.send(reqs)
        got = []
        for i in range(30):
            r = c.read_response()
            got.append((r.status, r.get("X-Request-Id")))
            if "close" in r.conn_tokens():
                break
    # --max-keepalive-requests 3 on this server: 3 answered, the 3rd closes
    eq(got, [(200, "p0"), (200, "p1"), (200, "p2")], "pipelined through a 1 KiB buffer: answered in order")
    with Conn(DFLT.port) as c:
        c.send(reqs)
        n = 0
        for i in range(30):
            r = c.read_response()
            n += r.status == 200 and r.get("X-Request-Id") == "p%d" % i
    eq(n, 30, "defaults: 30 pipelined requests answered in order")


def test_linger_ms():
    # a bad request answered and the connection closed without lingering: the answer is whole
    r, closed = send_raw(SMALL.port, b"GET /index.html HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n" + b"z" * 4096)
    eq(getattr(r, "status", r), 400, "--linger-ms 0: the error answer is read whole")
    check(closed, "--linger-ms 0: closed after the answer", "closed", "open")


def test_max_request_id_bytes():
    long_id, short_id = "a" * 20, "b" * 10
    r = call(SMALL.port, "GET", "/index.html", headers=[("X-Request-Id", long_id)])
    check(r.get("X-Request-Id") not in (None, long_id), "--max-request-id-bytes 16: a 20-byte id is replaced",
          "another id", r.get("X-Request-Id"))
    eq(call(SMALL.port, "GET", "/index.html", headers=[("X-Request-Id", short_id)]).get("X-Request-Id"), short_id,
       "--max-request-id-bytes 16: a 10-byte id is kept")
    eq(call(DFLT.port, "GET", "/index.html", headers=[("X-Request-Id", long_id)]).get("X-Request-Id"), long_id,
       "defaults: a 20-byte id is kept")


def test_route_body_limits():
    big = json.dumps({"name": "n", "email": "e@example.com", "pad": "x" * 2000})
    for path, flag, dflt_status in (("/api/users", "--max-signup-body-bytes 1k", None),
                                    ("/api/jobs", "--max-job-body-bytes 1k", 401),
                                    ("/api/images", "--max-image-body-bytes 64", 401)):
        r = call(SMALL.port, "POST", path, raw=big)
        eq(r.status, 413, "%s: a 2 KB body -> 413" % flag)
        r = call(DFLT.port, "POST", path, raw=big)
        check(r.status != 413 and (dflt_status is None or r.status == dflt_status),
              "defaults: a 2 KB body to %s is not too large" % path, dflt_status or "not 413", r.status)


def test_max_api_key_bytes():
    u, k = new_user(KEYS.port, "keys")
    check(len(k) > 16, "an API key is longer than 16 bytes", "> 16", len(k))
    r = call(KEYS.port, "GET", "/api/users/me", key=k)
    problem(r, 401, "unauthorized", "--max-api-key-bytes 16: a real key longer than that")
    u, k = new_user(DFLT.port, "keys")
    eq(call(DFLT.port, "GET", "/api/users/me", key=k).status, 200, "defaults: the same kind of key admits")


def test_max_idempotency_key_bytes():
    for port, what, want in ((SMALL.port, "--max-idempotency-key-bytes 8", 400), (DFLT.port, "defaults", 202)):
        u, k = new_user(port, "idem")
        r = call(port, "POST", "/api/jobs", key=k, body={"url": URL}, headers=[("Idempotency-Key", "0123456789")])
        if want == 400:
            j = invalid(r, "Idempotency-Key", what + ": a 10-byte key")
            check("max-idempotency-key-bytes" in (j.get("detail") or ""), what + ": the detail names the limit",
                  "max-idempotency-key-bytes", j.get("detail"))
        else:
            eq(r.status, 202, what + ": a 10-byte key")


def test_events_max_ms():
    u, k = new_user(SMALL.port, "ev")
    r = call(SMALL.port, "POST", "/api/jobs", key=k, body={"url": URL})
    eq(r.status, 202, "a job (no worker: it stays queued)")
    st = Sse(SMALL.port, "/api/jobs/%s/events" % (r.j or {}).get("id"), key=k)
    eq(st.head(), 200, "events: 200")
    ev = st.next_event(timeout=5)
    eq((ev or {}).get("event"), "state", "events: the first event")
    end = st.next_event(timeout=10)
    eq(end, None, "--events-max-ms 1000: the stream of a queued job ends")
    check(st.ended, "--events-max-ms 1000: the chunked stream is terminated", True, st.ended)


def test_flags_checked():
    # out of range values are refused at start, naming the setting
    for flag, value in (("--max-keepalive-requests", "0"), ("--linger-ms", "70000"),
                        ("--read-buffer-bytes", "10"), ("--max-idempotency-key-bytes", "5000")):
        p = subprocess.run([BIN, "api", "--port", "0", flag, value], capture_output=True, timeout=20)
        check(p.returncode != 0, "%s %s: refused at start" % (flag, value), "exit != 0", p.returncode)
        err = p.stderr.decode("utf-8", "replace") + p.stdout.decode("utf-8", "replace")
        check(flag[2:] in err, "%s %s: the error names the setting" % (flag, value), flag[2:], err[-300:])


if __name__ == "__main__":
    start_all()
    try:
        run("it.http_named_limits",
            [test_max_keepalive_requests, test_read_buffer_bytes, test_linger_ms, test_max_request_id_bytes,
             test_route_body_limits, test_max_api_key_bytes, test_max_idempotency_key_bytes, test_events_max_ms,
             test_flags_checked],
            server=SMALL)
    finally:
        stop_all()

#!/usr/bin/env python3
"""it.http_idle_reclaim — idle connections cannot take the service down
(issue 16 item 7): with --max-connections filled by idle keep-alive
connections (and by accepted connections that never sent a byte), a new
connection is admitted by closing the oldest idle one, so GET /index.html
(the load balancer's health check) answers 200; the newest idle connections
keep working; busy connections are never reclaimed (it.http_limits'
max-connections case: 503 when nothing is idle)."""

import time

from ttharness import Conn, Server, check, eq, fetch, run

N = 20
S = Server("--max-connections", str(N), processes=1)


def open_idle(n):
    conns = []
    for i in range(n):
        c = Conn(S.port)
        eq(c.roundtrip("GET", "/robots.txt").status, 200, "idle connection %d served once" % i)
        conns.append(c)
    return conns


def test_health_check_with_idle_connections():
    conns = open_idle(N)
    try:
        for i in range(3):
            r = fetch(S.port, "GET", "/index.html", timeout=5)
            eq(r.status, 200, "health check %d with %d idle keep-alive connections at the limit" % (i, N))
        # the oldest were closed for it, the newest still serve
        check(conns[0].wait_closed(5.0), "the oldest idle connection was closed", "closed", "open")
        eq(conns[-1].roundtrip("GET", "/style.css").status, 200, "the newest idle connection still serves")
    finally:
        for c in conns:
            c.close()


def test_silent_connections_reclaimed():
    # accepted connections that never send a byte count as idle too
    conns = []
    try:
        for i in range(N):
            conns.append(Conn(S.port))
        time.sleep(0.2)  # let the server accept them all (not a timing assertion)
        eq(fetch(S.port, "GET", "/index.html", timeout=5).status, 200,
           "health check with %d silent connections at the limit" % N)
    finally:
        for c in conns:
            c.close()


if __name__ == "__main__":
    run("it.http_idle_reclaim", [test_health_check_with_idle_connections, test_silent_connections_reclaimed],
        server=S)

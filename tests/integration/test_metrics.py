"""GET /metrics: Prometheus text summed over every API process, counters
that survive a child's restart, route patterns as labels, queue depths."""
import os
import re
import signal
import time

from ttharness import Server, check, eq, fetch, run, SLOW


def scrape(port):
    r = fetch(port, "GET", "/metrics")
    eq(r.status, 200, "GET /metrics from loopback")
    check(r.get("Content-Type", "").startswith("text/plain; version=0.0.4"), "Prometheus content type",
          "text/plain; version=0.0.4", r.get("Content-Type"))
    out = {}
    for line in r.body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$', line)
        check(m is not None, "exposition line is name{labels} value", "a metric line", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def test_counts_across_processes_and_restarts():
    with Server(processes=2, check_children=False) as s:
        for _ in range(10):
            eq(fetch(s.port, "GET", "/").status, 200, "GET /")
        for _ in range(3):
            eq(fetch(s.port, "GET", "/no-such-file").status, 404, "GET missing file")
        m = scrape(s.port)
        eq(m.get('tintype_http_requests_total{route="/",code="2xx"}'), 10.0, "2xx count of route / (all processes)")
        eq(m.get('tintype_http_requests_total{route="/*",code="4xx"}'), 3.0, "4xx count of the web wildcard route")
        eq(m.get('tintype_http_request_duration_seconds_count{route="/"}'), 10.0, "histogram count of /")
        eq(m.get('tintype_http_request_duration_seconds_bucket{route="/",le="+Inf"}'), 10.0, "+Inf bucket")
        for q in ("jobs", "images"):
            check('tintype_queue_messages{queue="%s",state="visible"}' % q in m, "queue depth of %s" % q,
                  "present", sorted(k for k in m if "queue" in k))
        restarts = m.get("tintype_process_restarts_total")
        eq(restarts, 0.0, "no restarts yet")
        # kill a child: its counts stay, the restart is counted
        kid = sorted(s.children())[0]
        os.kill(kid, signal.SIGKILL)
        deadline = time.monotonic() + 3 * SLOW
        while time.monotonic() < deadline and (kid in s.children() or len(s.children()) < 2):
            time.sleep(0.05)
        m2 = scrape(s.port)
        check(m2.get('tintype_http_requests_total{route="/",code="2xx"}', 0) >= 10.0,
              "counts survive a killed child", ">= 10", m2.get('tintype_http_requests_total{route="/",code="2xx"}'))
        eq(m2.get("tintype_process_restarts_total"), 1.0, "the restart is counted")


if __name__ == "__main__":
    run("metrics", [test_counts_across_processes_and_restarts])

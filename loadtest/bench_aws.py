#!/usr/bin/env python3
"""loadtest/bench_aws.py (part of `make bench`): what one job costs in AWS
calls, and the idle API child's memory, with the AWS backends against moto
on loopback. moto's speed is not AWS's: only counts and memory are
reported, never latencies.

Starts moto_server on a free 127.0.0.1 port, `tintype aws init`, then
`tintype up --store dynamodb://... --queue sqs://... --blobs s3://...`
(1 API process, 1 worker) and a page server. Reads /metrics
(tintype_aws_requests_total, tintype_aws_connections_total) around:
  - an idle window (the worker's long polls: the baseline per second),
  - N job lifecycles, one after another: POST /api/jobs, GET /api/jobs/ID
    until succeeded (SSE-free polling every 250 ms, counted), GET /result
    (302 to a presigned GET, fetched from moto: no AWS call of tintype's),
  - N plain GET /api/jobs/ID (the cost of one status poll, to separate it).
Writes loadtest/results/bench-aws.md. Environment: BUILD (build), JOBS (20).
"""
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
BIN = os.path.join(BUILD, "tintype")
N = int(os.environ.get("JOBS", "20"))
OUT = os.path.join(ROOT, "loadtest", "results", "bench-aws.md")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(url, deadline=30):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.status
        except OSError:
            time.sleep(0.1)
    raise SystemExit("no answer from " + url)


def req(port, method, path, key=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data, method=method)
    if key:
        r.add_header("Authorization", "Bearer " + key)
    if data:
        r.add_header("Content-Type", "application/json")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    op = urllib.request.build_opener(NoRedirect)
    try:
        with op.open(r, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def metrics(port):
    _, _, b = req(port, "GET", "/metrics")
    m = {}
    for line in b.decode().splitlines():
        mm = re.match(r"^(tintype_aws_\w+) (\d+)$", line)
        if mm:
            m[mm.group(1)] = int(mm.group(2))
    return m


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = b"<!doctype html><body style='margin:0;background:#c00'><h1>bench</h1></body>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def log_message(self, *a):
        pass


def main():
    if not os.access(BIN, os.X_OK):
        raise SystemExit("build first: %s" % BIN)
    tmp = tempfile.mkdtemp(prefix="tt-bench-aws-")
    mport, aport = free_port(), free_port()
    moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(mport)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    page = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TINTYPE_"))}
    env.update({"AWS_ENDPOINT_URL": "http://127.0.0.1:%d" % mport, "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                "TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32"})
    urls = ["--store", "dynamodb://?prefix=bench-", "--queue", "sqs://bench", "--blobs", "s3://bench-bucket/t"]
    up = None
    try:
        wait_http("http://127.0.0.1:%d/moto-api/data.json" % mport)
        subprocess.run([BIN, "aws", "init"] + urls, env=env, check=True, stdout=subprocess.DEVNULL)
        log = open(os.path.join(tmp, "up.log"), "w")
        up = subprocess.Popen([BIN, "up", "--host", "127.0.0.1", "--port", str(aport), "--processes", "1",
                               "--worker-processes", "1", "--data", tmp] + urls, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
        wait_http("http://127.0.0.1:%d/index.html" % aport)
        st, _, b = req(aport, "POST", "/api/users", body={"name": "bench", "email": "bench@example.com"})
        key = json.loads(b)["api_key"]
        # the first job warms the browser up and is not counted
        url = "http://127.0.0.1:%d/" % page.server_address[1]

        def lifecycle():
            polls = 0
            st, _, b = req(aport, "POST", "/api/jobs", key, {"url": url, "viewport": {"width": 320, "height": 240}})
            jid = json.loads(b)["id"]
            while True:
                polls += 1
                _, _, b = req(aport, "GET", "/api/jobs/" + jid, key)
                s = json.loads(b).get("state")
                if s in ("succeeded", "failed", "canceled"):
                    break
                time.sleep(0.25)
            st, h, _ = req(aport, "GET", "/api/jobs/%s/result" % jid, key)
            loc = h.get("Location", "")
            with urllib.request.urlopen(loc, timeout=30) as r:
                r.read()
            return s, polls, st, jid

        lifecycle()
        time.sleep(2)
        # idle baseline: the worker's long polls (20 s each on SQS)
        m0, t0 = metrics(aport), time.monotonic()
        time.sleep(10)
        m1, t1 = metrics(aport), time.monotonic()
        idle_per_s = (m1["tintype_aws_requests_total"] - m0["tintype_aws_requests_total"]) / (t1 - t0)
        # API child RSS when idle: the supervisor's first child serves HTTP
        children = [int(p) for p in open("/proc/%d/task/%d/children" % (up.pid, up.pid)).read().split()]
        api_rss = rss_kb(children[0]) if children else 0
        # N lifecycles
        ok, polls_total = 0, 0
        a = metrics(aport)
        ta = time.monotonic()
        jids = []
        for _ in range(N):
            s, polls, st, jid = lifecycle()
            ok += s == "succeeded" and st == 302
            polls_total += polls
            jids.append(jid)
        b_ = metrics(aport)
        tb = time.monotonic()
        # the price of one status poll
        c = metrics(aport)
        tc = time.monotonic()
        for jid in jids:
            req(aport, "GET", "/api/jobs/" + jid, key)
        d = metrics(aport)
        td = time.monotonic()
        reqs = b_["tintype_aws_requests_total"] - a["tintype_aws_requests_total"]
        conns = b_["tintype_aws_connections_total"] - a["tintype_aws_connections_total"]
        idle_part = idle_per_s * (tb - ta)
        per_poll = (d["tintype_aws_requests_total"] - c["tintype_aws_requests_total"] - idle_per_s * (td - tc)) / len(jids)
        per_job = (reqs - idle_part) / N
        per_job_wo_polls = per_job - per_poll * polls_total / N
        lines = [
            "# AWS backends: calls per job lifecycle (moto on loopback)",
            "",
            "`python3 loadtest/bench_aws.py` (in `make bench`), %s, JOBS=%d, 1 API process + 1 worker." % (
                time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), N),
            "moto's speed is not AWS's: only counts and memory are reported.",
            "",
            "| measure | value |",
            "|---|---|",
            "| jobs succeeded with /result answering 302 | %d / %d |" % (ok, N),
            "| AWS HTTP requests per job lifecycle (submit, render, status polls, result link) | %.1f |" % per_job,
            "| of which status polls (GET /api/jobs/ID, %.1f per job, %.2f requests each) | %.1f |" % (
                polls_total / N, per_poll, per_poll * polls_total / N),
            "| AWS HTTP requests per lifecycle without status polls | %.1f |" % per_job_wo_polls,
            "| new TCP connections for all %d lifecycles | %d |" % (N, conns),
            "| idle AWS requests per second (worker long polls, 2 queues) | %.2f |" % idle_per_s,
            "| idle API child RSS | %.1f MB |" % (api_rss / 1024.0),
        ]
        os.makedirs(os.path.dirname(OUT), exist_ok=True)
        with open(OUT, "w") as f:
            f.write("\n".join(lines) + "\n")
        print("\n".join(lines))
    finally:
        if up:
            os.killpg(up.pid, 15)
            try:
                up.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, 9)
        os.killpg(moto.pid, 9)
        page.shutdown()


if __name__ == "__main__":
    main()

"""test_aws_features — the features of issue 15 end to end on all three AWS
backends (`tintype up --store dynamodb://… --queue sqs://… --blobs
s3://…?links=stream`) against moto with authentication ON: every call the
API and the worker make is signature-checked and IAM-evaluated.

- one-call capture: POST /api/jobs?wait=30s answers 200 with the PNG (the
  page's colours), and /result streams the same bytes through the API
  (links=stream: 200, not a 302 to a presigned GET — moto 5.2.1 answers
  presigned GETs with 500 while its auth is on, see it.aws_blobs);
- result cache: the same request with cache_ttl is a new job, already
  succeeded, cached: true, no request to the page (a cache entry in
  DynamoDB, got by id);
- a batch: each item answered on its own, its jobs listed in order by
  GET /api/jobs?batch=ID and run by the worker; an Idempotency-Key replay
  is the same batch (derived id: a conflict on create, then a get);
- a webhook: a job with callback_url is POSTed to a receiver here, signed
  with the user's secret, and the delivery (the outbox, listed by state
  across owners on the DynamoDB state index) ends delivered."""
import atexit
import hashlib
import hmac
import http.server
import json
import socketserver
import threading
import time

import awsutil
import imgutil
import ttharness as h
from apiclient import call, new_user
from pageserver import BLUE, GREEN, RED, WHITE, Pages
from shotutil import px
from ttharness import SLOW, Server, check, eq

P = Pages("127.0.0.1")
atexit.register(P.stop)
moto = awsutil.Moto()
URLS = ["--store", "dynamodb://?prefix=ft-", "--queue", "sqs://ft", "--blobs", "s3://ft-bucket/tt?links=stream"]
S = None
_key = {}
FINAL = ("succeeded", "failed", "canceled")


def key():
    if "k" not in _key:
        _key["k"] = new_user(S.port, "awsf")[1]
    return _key["k"]


def job_until(jid, pred, k=None, timeout=60.0):
    deadline = time.monotonic() + timeout * SLOW
    j = {}
    while time.monotonic() < deadline:
        j = call(S.port, "GET", "/api/jobs/" + jid, key=k or key()).j or {}
        if pred(j):
            return j
        time.sleep(0.2)
    return j


def test_one_call_capture():
    r = call(S.port, "POST", "/api/jobs?wait=30s", key=key(),
             body={"url": P.url("/blocks"), "viewport": {"width": 400, "height": 300}}, timeout=40 * SLOW)
    eq(r.status, 200, "POST ?wait=30s: 200 (%r)" % r.body[:200])
    eq(r.get("Content-Type"), "image/png", "the answer is the PNG")
    eq(r.get("X-Tintype-Cache"), "miss", "rendered")
    try:
        img = imgutil.decode_png(r.body)
    except ValueError as e:
        check(False, "the body is a PNG", "png", str(e))
        return
    eq((img.width, img.height), (400, 300), "the asked size")
    px("one-call capture", img, 50, 50, RED)
    px("one-call capture", img, 250, 50, GREEN)
    px("one-call capture", img, 50, 250, BLUE)
    px("one-call capture", img, 350, 250, WHITE)
    jid = r.get("X-Tintype-Job-Id") or ""
    res = call(S.port, "GET", "/api/jobs/%s/result" % jid, key=key(), timeout=20)
    eq(res.status, 200, "/result streams through the API (links=stream)")
    check(res.body == r.body, "the same bytes", len(r.body), len(res.body))


def test_cached_repeat():
    url = P.url("/blocks?aws=cache")
    body = {"url": url, "viewport": {"width": 320, "height": 240}, "cache_ttl": 600}
    r1 = call(S.port, "POST", "/api/jobs?wait=30s", key=key(), body=body, timeout=40 * SLOW)
    eq(r1.status, 200, "first: rendered (%r)" % r1.body[:200])
    eq(r1.get("X-Tintype-Cache"), "miss", "first: a miss")
    seen = P.count("/blocks")
    r2 = call(S.port, "POST", "/api/jobs", key=key(), body=dict(body))
    eq(r2.status, 202, "second: 202 with the job")
    j2 = r2.j or {}
    eq((j2.get("state"), j2.get("cached")), ("succeeded", True), "second: already succeeded, cached")
    eq((j2.get("result") or {}).get("cached_from"), r1.get("X-Tintype-Job-Id"), "second: cached from the first")
    res = call(S.port, "GET", "/api/jobs/%s/result" % j2.get("id"), key=key(), timeout=20)
    eq(res.status, 200, "second: /result")
    check(res.body == r1.body, "second: the same bytes", len(r1.body), len(res.body))
    eq(P.count("/blocks"), seen, "no request reached the page for the hit")


def test_batch():
    good = {"url": P.url("/blocks?aws=batch"), "viewport": {"width": 200, "height": 150}}
    body = {"jobs": [good, {"url": "ftp://x/"}, dict(good, format="webp")]}
    hs = [("Idempotency-Key", "aws-batch-1")]
    r = call(S.port, "POST", "/api/jobs/batch", key=key(), body=body, headers=hs)
    eq(r.status, 200, "a batch: 200 (%r)" % r.body[:300])
    b = r.j or {}
    items = b.get("items") or []
    eq([i.get("status") for i in items], [202, 400, 202], "each item answered on its own")
    if len(items) != 3:
        return
    jobs = [(items[0].get("job") or {}).get("id"), (items[2].get("job") or {}).get("id")]
    listed = call(S.port, "GET", "/api/jobs?batch=%s" % b.get("id"), key=key())
    eq(listed.status, 200, "GET /api/jobs?batch=ID")
    eq([j.get("id") for j in (listed.j or {}).get("items", [])], jobs, "the batch lists its jobs, in order")
    done = [job_until(j, lambda x: x.get("state") in FINAL) for j in jobs]
    eq([d.get("state") for d in done], ["succeeded", "succeeded"], "the batch's jobs run through the worker")
    r2 = call(S.port, "POST", "/api/jobs/batch", key=key(), body=body, headers=hs)
    eq(r2.status, 200, "replay: 200")
    eq(r2.get("Idempotent-Replayed"), "true", "replay: Idempotent-Replayed")
    eq((r2.j or {}).get("id"), b.get("id"), "replay: the same batch")


class Receiver:
    """A webhook receiver on 127.0.0.1 that records every POST and answers 200."""

    def __init__(self):
        self.got = []
        self.cv = threading.Condition()
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with rec.cv:
                    rec.got.append((dict(self.headers.items()), body))
                    rec.cv.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Srv(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.httpd = Srv(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/hook" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def wait(self, n, timeout=60.0):
        deadline = time.monotonic() + timeout * SLOW
        with self.cv:
            while len(self.got) < n and time.monotonic() < deadline:
                self.cv.wait(0.1)
            return list(self.got)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_webhook_delivered():
    rc = Receiver()
    try:
        r = call(S.port, "GET", "/api/users/me/webhook-secret", key=key())
        eq(r.status, 200, "GET webhook-secret")
        secret = (r.j or {}).get("webhook_secret", "")
        r = call(S.port, "POST", "/api/jobs", key=key(), body={"url": P.url("/blocks?aws=hook"),
                                                               "callback_url": rc.url})
        eq(r.status, 202, "a job with a callback_url")
        jid = (r.j or {}).get("id", "")
        got = rc.wait(1)
        eq(len(got), 1, "the receiver was called once")
        if not got:
            return
        hd, body = got[0]
        sig = dict(p.split("=", 1) for p in hd.get("X-Tintype-Signature", "").split(",") if "=" in p)
        mac = hmac.new(secret.encode(), sig.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
        check(hmac.compare_digest(mac, sig.get("v1", "")), "the delivery is signed with the user's secret",
              "valid", hd)
        ev = json.loads(body)
        eq(((ev.get("job") or {}).get("id"), ev.get("type")), (jid, "job.succeeded"), "the event names the job")
        j = job_until(jid, lambda x: (x.get("webhook") or {}).get("state") in ("delivered", "failed"))
        w = j.get("webhook") or {}
        eq((w.get("state"), w.get("attempts")), ("delivered", 1), "the delivery ended delivered, once")
    finally:
        rc.stop()


def main():
    global S
    try:
        h._run_one("moto start", moto.start)
        if not moto.proc:
            raise SystemExit(0)
        akid, secret = moto.user("tt-features", awsutil.ALLOW_ALL)
        moto.auth_on()
        env = moto.env(akid, secret, TINTYPE_ALLOW_NETWORKS="127.0.0.1/32")
        p = h.run_cli(["aws", "init"] + URLS, env=env, timeout=60)
        if p.returncode != 0:
            print("aws init failed:", p.stdout, p.stderr)
            raise SystemExit(1)
        S = Server(*(URLS + ["--concurrency", "2", "--max-wait-ms", "30000", "--max-cache-ttl", "3600",
                             "--max-batch", "5", "--webhook-timeout-ms", "3000"]),
                   processes=1, cmd="up", workers=1, env=env)
        h.run("aws_features", [test_one_call_capture, test_cached_repeat, test_batch, test_webhook_delivered],
              server=S)
    finally:
        moto.stop()


if __name__ == "__main__":
    main()

"""Webhooks (issue 15 item 4) against `tintype up`, with receivers this
test runs on loopback:

- a job with callback_url is POSTed to it when it ends: the body names the
  job (state succeeded, its result) and an event id equal to the
  X-Tintype-Event-Id header; X-Tintype-Signature verifies with the secret of
  GET /api/users/me/webhook-secret (HMAC-SHA256 of timestamp "." body), and
  stops verifying with another user's secret; GET /api/jobs/{id} shows the
  delivery (delivered, 1 attempt);
- a receiver answering 500 twice gets the same event three times, and the
  job shows 3 attempts, delivered; one that always fails is given up after
  --webhook-max-attempts with its last error on the job;
- a callback on 127.0.0.2 (not opened by the network policy) or on the
  API's own port is never contacted: the job shows the delivery failed,
  "blocked", and the 127.0.0.2 recorder saw no connection;
- kill -9 of the worker while it delivers loses nothing: the delivery is
  in the outbox, and the restarted worker sends the same event again;
- callback_url is validated (400 naming it); a job answered from the
  result cache calls back too."""
import atexit
import hashlib
import hmac
import http.server
import json
import os
import signal
import socketserver
import threading
import time

from apiclient import call, invalid, new_user
from pageserver import Pages
from ttharness import SLOW, Server, check, eq, run

P = Pages("127.0.0.1")
R2 = Pages("127.0.0.2", record_only=True)
atexit.register(P.stop)
atexit.register(R2.stop)
S = Server("--webhook-timeout-ms", "1500", "--webhook-max-attempts", "3", processes=1, cmd="up", workers=1,
           env={"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32"}, check_children=False)


class Receiver:
    """A webhook receiver on 127.0.0.1: records every POST (headers, body)
    and answers with the next status of `plan` (the last one repeats);
    "hold" keeps the request open until release() or stop()."""

    def __init__(self, plan=(200,)):
        self.plan = list(plan)
        self.got = []
        self.cv = threading.Condition()
        self.released = threading.Event()
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with rec.cv:
                    rec.got.append((dict(self.headers.items()), body))
                    what = rec.plan.pop(0) if len(rec.plan) > 1 else rec.plan[0]
                    rec.cv.notify_all()
                if what == "hold":
                    rec.released.wait(30)
                    return
                self.send_response(what)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Srv(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Srv(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/hook" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def wait(self, n, timeout=30.0):
        deadline = time.monotonic() + timeout * SLOW
        with self.cv:
            while len(self.got) < n and time.monotonic() < deadline:
                self.cv.wait(0.1)
            return list(self.got)

    def stop(self):
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def job_until(k, jid, pred, timeout=40.0):
    deadline = time.monotonic() + timeout * SLOW
    j = {}
    while time.monotonic() < deadline:
        j = call(S.port, "GET", "/api/jobs/" + jid, key=k).j or {}
        if pred(j):
            return j
        time.sleep(0.1)
    return j


def delivered(j):
    return (j.get("webhook") or {}).get("state") in ("delivered", "failed")


def verify(secret, headers, body):
    sig = headers.get("X-Tintype-Signature", "")
    parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
    mac = hmac.new(secret.encode(), parts.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
    return parts.get("t") == headers.get("X-Tintype-Timestamp") and hmac.compare_digest(mac, parts.get("v1", ""))


def secret_of(k):
    r = call(S.port, "GET", "/api/users/me/webhook-secret", key=k)
    eq(r.status, 200, "GET webhook-secret")
    return (r.j or {}).get("webhook_secret", "")


def test_delivery_is_signed():
    rc = Receiver()
    try:
        u, k = new_user(S.port, "hook")
        secret = secret_of(k)
        check(secret.startswith("whsec_"), "a webhook secret", "whsec_...", secret)
        r = call(S.port, "POST", "/api/jobs", key=k, body={"url": P.url("/blocks"), "callback_url": rc.url})
        eq(r.status, 202, "a job with a callback_url")
        jid = (r.j or {}).get("id", "")
        eq(((r.j or {}).get("request") or {}).get("callback_url"), rc.url, "callback_url in the request")
        got = rc.wait(1)
        eq(len(got), 1, "the receiver was called once")
        if not got:
            return
        h, body = got[0]
        check(verify(secret, h, body), "X-Tintype-Signature verifies with the user's secret", "valid", h)
        _, k2 = new_user(S.port, "hook2")
        check(not verify(secret_of(k2), h, body), "...and not with another user's", "invalid", h)
        check(not verify(secret, h, body + b" "), "...nor for another body", "invalid", h)
        ev = json.loads(body)
        eq(ev.get("event_id"), h.get("X-Tintype-Event-Id"), "event id in the body and the header")
        eq(ev.get("type"), "job.succeeded", "event type")
        eq((ev.get("job") or {}).get("id"), jid, "the event names the job")
        eq((ev.get("job") or {}).get("state"), "succeeded", "the job's final state")
        eq(((ev.get("job") or {}).get("result") or {}).get("format"), "png", "the job's result")
        eq(h.get("Content-Type"), "application/json", "Content-Type")
        j = job_until(k, jid, delivered)
        w = j.get("webhook") or {}
        eq((w.get("state"), w.get("attempts"), w.get("event_id")), ("delivered", 1, ev.get("event_id")),
           "the job shows its delivery")
        eq(len(rc.got), 1, "delivered once")
    finally:
        rc.stop()


def test_retries_after_500():
    rc = Receiver(plan=(500, 500, 200))
    try:
        u, k = new_user(S.port, "retry")
        jid = call(S.port, "POST", "/api/jobs", key=k, body={"url": P.url("/blocks"), "callback_url": rc.url}).j["id"]
        got = rc.wait(3)
        eq(len(got), 3, "three deliveries")
        eq(len(set(h.get("X-Tintype-Event-Id") for h, _ in got)), 1, "one event id for every attempt")
        eq([json.loads(b).get("attempt") for _, b in got], [1, 2, 3], "attempt numbers")
        j = job_until(k, jid, delivered)
        w = j.get("webhook") or {}
        eq((w.get("state"), w.get("attempts")), ("delivered", 3), "delivered on the third attempt")
    finally:
        rc.stop()
    rc = Receiver(plan=(503,))
    try:
        u, k = new_user(S.port, "giveup")
        jid = call(S.port, "POST", "/api/jobs", key=k, body={"url": P.url("/blocks"), "callback_url": rc.url}).j["id"]
        j = job_until(k, jid, delivered)
        w = j.get("webhook") or {}
        eq((w.get("state"), w.get("attempts")), ("failed", 3), "given up after --webhook-max-attempts")
        check("503" in (w.get("last_error") or ""), "the last error is on the job", "503", w.get("last_error"))
        eq(len(rc.got), 3, "called exactly --webhook-max-attempts times")
    finally:
        rc.stop()


def test_denied_address_never_contacted():
    u, k = new_user(S.port, "deny")
    for url, what in ((R2.url("/hook"), "127.0.0.2"), ("http://127.0.0.1:%d/api/users" % S.port, "the API's port")):
        jid = call(S.port, "POST", "/api/jobs", key=k, body={"url": P.url("/blocks"), "callback_url": url}).j["id"]
        j = job_until(k, jid, delivered)
        w = j.get("webhook") or {}
        eq(w.get("state"), "failed", what + ": the delivery failed")
        check("blocked" in (w.get("last_error") or ""), what + ": blocked by the policy", "blocked",
              w.get("last_error"))
    conns, reqs = R2.seen()
    eq((len(conns), len(reqs)), (0, 0), "127.0.0.2 heard nothing")


def test_kill_9_loses_no_delivery():
    rc = Receiver(plan=("hold", 200))
    try:
        u, k = new_user(S.port, "kill")
        wln = S.wait_log(lambda l: l.get("role") == "worker", 5)
        wpid = wln["pid"] if wln else 0
        jid = call(S.port, "POST", "/api/jobs", key=k, body={"url": P.url("/blocks"), "callback_url": rc.url}).j["id"]
        first = rc.wait(1)
        eq(len(first), 1, "the first delivery reached the receiver")
        if wpid:
            os.kill(wpid, signal.SIGKILL)  # while it waits for the answer
        got = rc.wait(2, timeout=40)
        eq(len(got), 2, "delivered again after the worker was killed")
        if len(got) == 2:
            eq(got[1][0].get("X-Tintype-Event-Id"), got[0][0].get("X-Tintype-Event-Id"), "the same event")
        j = job_until(k, jid, delivered)
        eq((j.get("webhook") or {}).get("state"), "delivered", "delivered in the end")
    finally:
        rc.stop()


def test_validation_and_cached():
    u, k = new_user(S.port, "hv")
    for v, what in (("ftp://x/", "ftp"), ("", "empty"), (5, "a number"), ("not a url", "words")):
        invalid(call(S.port, "POST", "/api/jobs", key=k, body={"url": P.url("/blocks"), "callback_url": v}),
                "callback_url", "callback_url %r (%s)" % (v, what))
    rc = Receiver()
    try:
        body = {"url": P.url("/blocks?hv"), "cache_ttl": 600}
        eq(call(S.port, "POST", "/api/jobs?wait=20s", key=k, body=body, timeout=30).status, 200, "rendered")
        r = call(S.port, "POST", "/api/jobs", key=k, body=dict(body, callback_url=rc.url))
        eq((r.j or {}).get("cached"), True, "the same request with a callback comes from the cache")
        got = rc.wait(1)
        eq(len(got), 1, "a cached job calls back too")
        if got:
            eq((json.loads(got[0][1]).get("job") or {}).get("id"), (r.j or {}).get("id"), "about the cached job")
    finally:
        rc.stop()


if __name__ == "__main__":
    run("webhooks", [test_delivery_is_signed, test_retries_after_500, test_denied_address_never_contacted,
                     test_kill_9_loses_no_delivery, test_validation_and_cached], server=S)

#!/usr/bin/env python3
"""it.fairness — issue 16 item 12: the worker shares its job slots between
owners (worker.c, fairness; docs/ARCHITECTURE.md "Fairness between owners").

- user A's 8 jobs to a page that never answers fill every slot; user B's
  one job to a normal page then succeeds while all of A's are unfinished
  (one of A's running jobs gives its slot back), and A's jobs later all end
  failed by their own timeout with one attempt each: the preemption charged
  none. Nothing is lost: every job ends final, no message is left, /metrics
  counts the preemption. In --isolation owner and job.
- one user's batch of 8 with --concurrency 4 still has 4 pages loading at
  once: no cap binds without contention.

Pages come from a server this test runs on 127.0.0.1: /hang accepts and
never answers; /gate answers once 4 requests are in flight at once (or
after 30 s), so "4 at once" is an event the server sees, not a timing."""

import os
import signal
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import apiclient
from ttharness import SLOW, Server, check, eq, fetch, run

ALLOW = {"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32"}
# the "before" figure: TT_FAIRNESS_FLAGS="--fair-backlog 0" runs the same scenario without fairness (it fails)
EXTRA = os.environ.get("TT_FAIRNESS_FLAGS", "").split()
GATE = 4
HANG_TIMEOUT_MS = 20000


class Pages:
    def __init__(self):
        self.lock = threading.Condition()
        self.hits = {}
        self.inflight = 0
        self.max_inflight = 0
        self.hung = []  # sockets of /hang, held open, never answered
        self.held = 0  # /held requests seen; they answer once release is set
        self.release = threading.Event()
        pages = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.partition("?")[0]
                with pages.lock:
                    pages.hits[path] = pages.hits.get(path, 0) + 1
                    pages.lock.notify_all()
                if path == "/hang":
                    with pages.lock:
                        pages.hung.append(self.connection)
                    # never answers: the socket stays open until the browser drops it
                    try:
                        while self.connection.recv(4096):
                            pass
                    except OSError:
                        pass
                    return
                if path == "/held":  # answers once the test sets pages.release
                    with pages.lock:
                        pages.held += 1
                        pages.lock.notify_all()
                    pages.release.wait(60)
                    path = "/ok"
                if path == "/gate":
                    with pages.lock:
                        pages.inflight += 1
                        pages.max_inflight = max(pages.max_inflight, pages.inflight)
                        pages.lock.notify_all()
                        pages.lock.wait_for(lambda: pages.inflight >= GATE or pages.max_inflight >= GATE, 30)
                        pages.inflight -= 1
                body = b"<html><body style='margin:0;background:#20c040'><h1>fair</h1></body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def count(self, path):
        with self.lock:
            return self.hits.get(path, 0)


PAGES = Pages()


def post_job(s, key, url, **opts):
    r = apiclient.call(s.port, "POST", "/api/jobs", key=key, body=dict(url=url, **opts))
    eq(r.status, 202, "POST /api/jobs status")
    return r.j["id"] if r.j else None


def job(s, key, jid):
    return apiclient.call(s.port, "GET", "/api/jobs/" + jid, key=key).j or {}


def final_jobs(s, pairs, timeout):
    """the records of the (key, job id) pairs once every one is in a final
    state, or as they are when timeout (x SLOW) seconds have passed"""
    get = lambda: [job(s, k, j) for k, j in pairs]  # noqa: E731
    return wait_until(lambda: (lambda js: js if all(j.get("state") in FINAL for j in js) else None)(get()),
                      timeout) or get()


def wait_until(cond, timeout, step=0.1):
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


FINAL = ("succeeded", "failed", "canceled")


def metric(s, name):
    m = fetch(s.port, "GET", "/metrics").body.decode()
    return int(float(next((ln.split()[-1] for ln in m.splitlines() if ln.startswith(name + " ")), "-1")))


def queue_left(s):
    db = sqlite3.connect(os.path.join(s.data, "tintype.db"))
    try:
        return db.execute("SELECT count(*) FROM tt_queue_msgs WHERE queue = 'jobs'").fetchone()[0]
    finally:
        db.close()


def hanging_owner_and_one_job(isolation, *flags):
    with Server("--isolation", isolation, "--concurrency", "4", *flags, *EXTRA, cmd="up", workers=1, env=ALLOW) as s:
        hung0 = PAGES.count("/hang")
        _, ka = apiclient.new_user(s.port, "fairA")
        _, kb = apiclient.new_user(s.port, "fairB")
        a = [post_job(s, ka, PAGES.url("/hang?i=%d&iso=%s" % (i, isolation)), timeout_ms=HANG_TIMEOUT_MS)
             for i in range(8)]
        # every slot is A's: 4 of A's jobs running, the page server holding them
        running = wait_until(lambda: sum(job(s, ka, j).get("state") == "running" for j in a) >= 4, 30)
        check(running, "4 of A's jobs are running", ">= 4 running",
              [job(s, ka, j).get("state") for j in a])
        # "running" is said before the page is asked for: wait for the page
        # server to hold all 4 (else the preempted one may never have asked)
        held = wait_until(lambda: PAGES.count("/hang") - hung0 >= 4, 30)
        check(held, "the page server holds 4 of A's pages", ">= 4", PAGES.count("/hang") - hung0)
        t0 = time.monotonic()
        b = post_job(s, kb, PAGES.url("/ok?iso=" + isolation))
        jb = wait_until(lambda: (lambda j: j if j.get("state") in FINAL else None)(job(s, kb, b)),
                        3 * HANG_TIMEOUT_MS / 1000)
        waited = time.monotonic() - t0
        states_a = [job(s, ka, j).get("state") for j in a]
        eq(jb and jb.get("state"), "succeeded", "B's job while A's hang")
        check(all(st in ("queued", "running") for st in states_a),
              "all of A's jobs are unfinished when B's succeeded", "queued/running", states_a)
        print("  note: --isolation %s: B's job took %.1f s with A's 8 hanging jobs" % (isolation, waited))
        if jb and jb.get("state") == "succeeded":
            eq(jb.get("attempts"), 1, "B's attempts")
            check(os.path.exists(os.path.join(s.data, "blobs", "jobs", b + ".png")), "B's result is on disk")
            eq(fetch(s.port, "GET", "/api/jobs/%s/result" % b, headers={"Authorization": "Bearer " + kb}).status,
               200, "GET B's result")
        check(metric(s, "tintype_job_preemptions_total") >= 1, "/metrics counts the preemption", ">= 1",
              metric(s, "tintype_job_preemptions_total"))
        # A's jobs end by their own timeout, each charged one attempt
        ends = final_jobs(s, [(ka, j) for j in a], 4 * HANG_TIMEOUT_MS / 1000 + 30)
        eq([j.get("state") for j in ends], ["failed"] * 8, "A's jobs end failed")
        eq([j.get("attempts") for j in ends], [1] * 8, "A's attempts (a preemption charges none)")
        check(all("timed out" in (j.get("error") or "") for j in ends), "A's jobs failed by their timeout",
              "timed out", [j.get("error") for j in ends])
        wait_until(lambda: queue_left(s) == 0, 10)
        eq(queue_left(s), 0, "messages left in the jobs queue")
        check(PAGES.count("/hang") - hung0 >= 9, "the preempted job's page was asked for again", ">= 9",
              PAGES.count("/hang") - hung0)


def test_hanging_owner_isolation_owner():
    hanging_owner_and_one_job("owner")


def test_hanging_owner_isolation_job():
    # a visibility shorter than the wait in the backlog: the heartbeat keeps
    # waiting messages hidden too (else they come back and run twice)
    hanging_owner_and_one_job("job", "--job-visibility-ms", "4000")


def young_jobs(after_ms, preempted):
    # A's two jobs hold both slots (their pages answer when the test says);
    # B's job waits. A job younger than --fair-preempt-after-ms is not given
    # back; once one is old enough it is.
    with Server("--concurrency", "2", "--fair-preempt-after-ms", str(after_ms), *EXTRA, cmd="up", workers=1,
                env=ALLOW) as s:
        _, ka = apiclient.new_user(s.port, "youngA")
        _, kb = apiclient.new_user(s.port, "youngB")
        PAGES.release.clear()
        with PAGES.lock:
            PAGES.held = 0
        a = [post_job(s, ka, PAGES.url("/held?i=%d&after=%d" % (i, after_ms))) for i in range(2)]
        with PAGES.lock:
            held = PAGES.lock.wait_for(lambda: PAGES.held >= 2, 30 * SLOW)
        check(held, "A's two pages are loading (both slots)", 2, PAGES.held)
        b = post_job(s, kb, PAGES.url("/ok?after=%d" % after_ms))
        deferred = s.wait_log(lambda l: "may be preempted in" in l.get("msg", ""), 20)
        check(deferred is not None, "the worker defers preempting a job younger than %d ms" % after_ms)
        if preempted:
            gave = s.wait_log(lambda l: "gives its slot back" in l.get("msg", ""), 20)
            check(gave is not None, "... and preempts it once it is %d ms old" % after_ms)
            jb = wait_until(lambda: (lambda j: j if j.get("state") in FINAL else None)(job(s, kb, b)), 30)
            eq(jb and jb.get("state"), "succeeded", "B's job, in the preempted job's slot while A's pages hang")
        PAGES.release.set()
        ends = final_jobs(s, [(ka, j) for j in a] + [(kb, b)], 60)
        eq([j.get("state") for j in ends], ["succeeded"] * 3, "A's and B's jobs")
        eq([j.get("attempts") for j in ends], [1] * 3, "attempts (a preemption charges none)")
        if preempted:
            check(metric(s, "tintype_job_preemptions_total") >= 1, "/metrics counts the preemption", ">= 1",
                  metric(s, "tintype_job_preemptions_total"))
        else:
            eq(metric(s, "tintype_job_preemptions_total"), 0, "/metrics: no job preempted while young")


def test_young_jobs_are_not_preempted():
    young_jobs(600000, False)


def test_old_enough_jobs_are_preempted():
    young_jobs(1000, True)


def test_one_owner_uses_every_slot():
    with Server("--concurrency", str(GATE), *EXTRA, cmd="up", workers=1, env=ALLOW) as s:
        _, k = apiclient.new_user(s.port, "fairOne")
        with PAGES.lock:
            PAGES.max_inflight = 0
        ids = [post_job(s, k, PAGES.url("/gate?i=%d" % i)) for i in range(8)]
        ends = final_jobs(s, [(k, j) for j in ids], 90)
        eq([j.get("state") for j in ends], ["succeeded"] * 8, "the batch's jobs")
        eq(PAGES.max_inflight, GATE, "pages of the one owner loading at once (--concurrency)")
        eq(metric(s, "tintype_job_preemptions_total"), 0, "/metrics: no preemption without contention")


def test_one_owner_uses_every_slot_of_two_workers():
    """Two worker processes of 2 slots each: the backlog one of them holds
    does not leave the other's slots idle (a held message of a busy owner
    slides back to the queue, and a worker with a free slot takes it)."""
    # a deep backlog, so one worker can take the whole batch unless held messages slide back
    with Server("--concurrency", "2", "--fair-backlog", "6", *EXTRA, cmd="up", workers=2, env=ALLOW) as s:
        _, k = apiclient.new_user(s.port, "fairTwo")
        with PAGES.lock:
            PAGES.max_inflight = 0
        ids = [post_job(s, k, PAGES.url("/gate?two=%d" % i)) for i in range(6)]
        ends = final_jobs(s, [(k, j) for j in ids], 90)
        eq([j.get("state") for j in ends], ["succeeded"] * 6, "the batch's jobs")
        eq(PAGES.max_inflight, GATE, "pages loading at once on 2 workers x 2 slots")
        eq([j.get("attempts") for j in ends], [1] * 6, "attempts (sliding charges none)")


def test_drain_gives_the_backlog_back():
    """SIGTERM: the messages waiting in the backlog go back to the queue at
    once (not after their visibility timeout), their jobs still queued with
    no attempt; the running ones end (here by their timeout) before exit."""
    with Server("--concurrency", "2", "--fair-backlog", "2", "--shutdown-timeout-ms", "60000", *EXTRA, cmd="up",
                workers=1, env=ALLOW) as s:
        _, k = apiclient.new_user(s.port, "fairDrain")
        ids = [post_job(s, k, PAGES.url("/hang?drain=%d" % i), timeout_ms=5000) for i in range(6)]
        check(wait_until(lambda: sum(job(s, k, j).get("state") == "running" for j in ids) >= 2, 30),
              "2 jobs are running", ">= 2", [job(s, k, j).get("state") for j in ids])
        db = sqlite3.connect(os.path.join(s.data, "tintype.db"))
        held = lambda: db.execute("SELECT count(*) FROM tt_queue_msgs WHERE queue = 'jobs' AND receive_count > 0"
                                  " AND visible_at > ?", (apiclient.now_ms(),)).fetchone()[0]
        check(wait_until(lambda: held() >= 4, 10), "2 running and 2 waiting messages are hidden", ">= 4", held())
        s.proc.send_signal(signal.SIGTERM)
        try:
            code = s.proc.wait(60 * SLOW)
        except Exception:  # noqa: BLE001
            code = None
        at_exit = apiclient.now_ms()
        eq(code, 0, "exit code after SIGTERM")
        rows = db.execute("SELECT body, visible_at FROM tt_queue_msgs WHERE queue = 'jobs' AND dead = 0").fetchall()
        db.close()
        eq(len(rows), 4, "messages left: the 4 jobs that never ran")
        eq([v <= at_exit for _, v in rows], [True] * len(rows), "every message left is visible at once")
        ends = [job_row(s, j) for j in ids]
        eq(sorted(st for st, _ in ends), ["failed", "failed", "queued", "queued", "queued", "queued"],
           "job states after the drain")
        eq(sorted(a for _, a in ends), [0, 0, 0, 0, 1, 1], "attempts after the drain")


def job_row(s, jid):
    db = sqlite3.connect(os.path.join(s.data, "tintype.db"))
    try:
        return db.execute("SELECT state, attempts FROM jobs WHERE id = ?", (jid,)).fetchone()
    finally:
        db.close()


if __name__ == "__main__":
    run("fairness", [test_one_owner_uses_every_slot, test_one_owner_uses_every_slot_of_two_workers,
                     test_drain_gives_the_backlog_back, test_young_jobs_are_not_preempted,
                     test_old_enough_jobs_are_preempted,
                     test_hanging_owner_isolation_owner, test_hanging_owner_isolation_job])

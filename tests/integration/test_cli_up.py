#!/usr/bin/env python3
"""it.cli_up — `tintype submit` against a running `tintype up` (API, queue
and one worker with its Chromium), as a newcomer uses it (issue 14).

-o FILE asks for the image in one call (POST /api/jobs?wait=) and, when the
server refuses that wait, falls back to following the job's events;
--wait follows the job and prints each state once; a success prints the
signed result link (fetched here without the key), the size and bytes, and
-o FILE downloads the image (its extension picks the format); a failure
prints the job's error on stderr and exits 1; --wait takes true/false or a
duration with a unit (a bare number is refused naming --wait), and a wait
that runs out says the job is still running and exits 1.

The job record and its events carry the phase of an unfinished job
(queued, opening, loading, waiting, capturing; none once finished), and
timings.queued_ms counts the time a job waited in the queue."""
import atexit
import os
import re
import shutil
import tempfile
import time

import imgutil
from apiclient import Sse, call, new_user
from pageserver import Pages
from ttharness import SLOW, Server, check, eq, fetch, run, run_cli

P = Pages("127.0.0.1")
R = Pages("127.0.0.2", record_only=True)
OUT = tempfile.mkdtemp(prefix="tt-cli-up-")
atexit.register(P.stop)
atexit.register(R.stop)
atexit.register(shutil.rmtree, OUT, True)
# one job at a time, so a second job waits in the queue while the first renders
# --max-wait-ms 20000: `submit -o` waits in one call up to 30 s, so a longer
# --wait is refused (400 naming wait) and submit falls back to the events
S = Server("--concurrency", "1", "--max-wait-ms", "20000", processes=1, cmd="up", workers=1, env={"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32"})
PHASES = ["queued", "opening", "loading", "waiting", "capturing"]
_key = {}


def key():
    if "k" not in _key:
        _key["k"] = new_user(S.port, "cli")[1]
    return _key["k"]


def submit(*args, timeout=60.0):
    base = "http://127.0.0.1:%d" % S.port
    return run_cli(["submit"] + list(args) + ["--api", base], env={"TINTYPE_API_KEY": key()}, timeout=timeout)


def lines_of(out):
    return [ln.split(": ", 1) for ln in out.strip().splitlines() if ": " in ln]


def test_one_call_download():
    out = os.path.join(OUT, "one.png")
    p = submit(P.url("/blocks?one=1"), "--wait", "15s", "-o", out, "--job", '{"viewport":{"width":300,"height":200}}')
    eq(p.returncode, 0, "submit --wait 15s -o one.png exit code (%s)" % p.stderr[-300:])
    ls = lines_of(p.stdout)
    eq([v for k, v in ls if k == "state"], ["succeeded"], "one call: the job was done when the answer came")
    d = dict(ls)
    data = open(out, "rb").read() if os.path.exists(out) else b""
    eq(imgutil.image_info(data) if data else None, ("png", 300, 200), "the saved image")
    eq(d.get("bytes"), str(len(data)), "the printed bytes are the file's")
    eq(d.get("saved"), out, "submit says where it saved the image")
    job = call(S.port, "GET", "/api/jobs/" + d.get("job", "-"), key=key()).j or {}
    eq(job.get("state"), "succeeded", "the printed job succeeded")
    eq((job.get("result") or {}).get("bytes"), len(data), "the job's result is the saved bytes")


def test_wait_success_and_download():
    out = os.path.join(OUT, "page.jpg")
    # 60 s is more than this server's --max-wait-ms: one call is refused, the events are followed
    p = submit(P.url("/blocks"), "--wait", "60s", "-o", out, "--job", '{"viewport":{"width":320,"height":240}}')
    eq(p.returncode, 0, "submit --wait 60s -o page.jpg exit code")
    ls = lines_of(p.stdout)
    states = [v for k, v in ls if k == "state"]
    # a fast render can be over between two looks of the event stream (every 250 ms): running may not show
    check(states in (["queued", "running", "succeeded"], ["queued", "succeeded"]),
          "the events were followed: each state printed once, in order", "queued, [running,] succeeded", states)
    d = dict(ls)
    eq(d.get("size"), "320x240", "submit prints the size")
    eq(d.get("format"), "jpeg", "-o page.jpg asks for JPEG")
    eq(d.get("saved"), out, "submit says where it saved the image")
    data = open(out, "rb").read() if os.path.exists(out) else b""
    check(data[:3] == b"\xff\xd8\xff", "-o page.jpg holds a JPEG", "JPEG magic", data[:8])
    eq(d.get("bytes"), str(len(data)), "the printed bytes are the file's")
    link = d.get("result", "")
    m = re.match(r"^http://127\.0\.0\.1:%d(/api/jobs/[^?]+/result\?.*sig=.*)$" % S.port, link)
    check(m, "the result line is a signed link on the API", "http://.../result?...sig=...", link)
    if m:
        r = fetch(S.port, "GET", m.group(1))  # no Authorization header
        eq(r.status, 200, "the signed link works without the key")
        eq(r.body, data, "the signed link serves the downloaded bytes")
    # a bare --wait before the URL means --wait true
    p = run_cli(["submit", "--wait", P.url("/blocks"), "--api", "http://127.0.0.1:%d" % S.port],
                env={"TINTYPE_API_KEY": key()}, timeout=60)
    eq(p.returncode, 0, "submit --wait URL exit code")
    eq([v for k, v in lines_of(p.stdout) if k == "state"][-1:], ["succeeded"], "submit --wait URL follows to the end")
    info = imgutil.image_info(data) if data else None
    eq(info, ("jpeg", 320, 240), "the downloaded image's format and size")


def test_failure_shows_the_error():
    p = submit(R.url("/page"), "--wait=true")
    eq(p.returncode, 1, "submit --wait of a refused page exit code")
    check("failed" in p.stderr and "network policy" in p.stderr, "stderr names the job's failure and its reason",
          "job ... failed: blocked by the network policy ...", p.stderr)
    eq([v for k, v in lines_of(p.stdout) if k == "state"][-1:], ["failed"], "the last state printed is failed")
    check("result" not in dict(lines_of(p.stdout)), "no result line for a failed job", None, p.stdout)


def test_wait_values():
    for v in ("5", "soon", "-3s", "25h"):
        p = submit(P.url("/blocks"), "--wait=" + v)
        eq(p.returncode, 2, "submit --wait=%s exit code" % v)
        check("--wait" in p.stderr and "30s" in p.stderr, "submit --wait=%s names --wait and an example" % v,
              "--wait ... 30s", p.stderr)
    p = run_cli(["submit", P.url("/blocks"), "--api", "http://127.0.0.1:%d" % S.port],
                env={"TINTYPE_API_KEY": key(), "TINTYPE_WAIT": "2m"}, timeout=60)
    eq(p.returncode, 0, "TINTYPE_WAIT=2m submit exit code")
    eq([v for k, v in lines_of(p.stdout) if k == "state"][-1:], ["succeeded"], "TINTYPE_WAIT=2m follows the job")
    # a wait that runs out: the job is still running, exit 1, and how to follow it
    p = submit(P.url("/never"), "--wait", "1500ms", "--job", '{"timeout_ms":4000}')
    eq(p.returncode, 1, "submit --wait 1500ms of a page that never loads exit code")
    check("still" in p.stderr and "1500ms" in p.stderr and "/events" in p.stderr,
          "the wait that ran out says so and where to follow", "job ... is still running after 1500ms; follow ...",
          p.stderr)
    # the job goes on without the CLI and ends by its own timeout
    jid = dict(lines_of(p.stdout)).get("job", "")
    deadline = time.monotonic() + 30 * SLOW
    state = None
    while jid and time.monotonic() < deadline:
        state = (call(S.port, "GET", "/api/jobs/" + jid, key=key()).j or {}).get("state")
        if state in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.1)
    eq(state, "failed", "the job the CLI stopped following fails by its timeout_ms")


def test_phases_and_queued_time():
    k = key()
    # a page that takes 1.5 s to answer (loading) and a delay of 1 s (waiting)
    a = call(S.port, "POST", "/api/jobs", key=k, body={"url": P.url("/slow?ms=1500"), "delay_ms": 1000}).j or {}
    b = call(S.port, "POST", "/api/jobs", key=k, body={"url": P.url("/blocks")}).j or {}
    eq((a.get("phase"), b.get("phase")), ("queued", "queued"), "a new job's phase is queued")
    st = Sse(S.port, "/api/jobs/%s/events" % a.get("id"), key=k)
    eq(st.head(), 200, "events of the first job: 200")
    seen, last = [], None
    while True:
        ev = st.next_event(timeout=30)
        if ev is None:
            break
        last = ev.get("json") or {}
        if last.get("phase") and (not seen or seen[-1] != last["phase"]):
            seen.append(last["phase"])
    st.close()
    print("    phases seen as events: %s" % seen)
    check(all(p in PHASES for p in seen) and seen == sorted(seen, key=PHASES.index),
          "the phases come in order, from the known set", PHASES, seen)
    check("loading" in seen and "waiting" in seen, "the events show the page loading, then the delay waiting",
          ["...", "loading", "waiting", "..."], seen)
    eq((last or {}).get("state"), "succeeded", "the first job succeeded")
    check("phase" not in (last or {}), "a finished job has no phase", None, (last or {}).get("phase"))
    # the second job waited in the queue while the first rendered (concurrency 1)
    deadline = time.monotonic() + 30 * SLOW
    jb = {}
    while time.monotonic() < deadline:
        jb = call(S.port, "GET", "/api/jobs/" + b.get("id", "?"), key=k).j or {}
        if jb.get("state") in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.1)
    eq(jb.get("state"), "succeeded", "the second job succeeded")
    waited = (jb.get("started_at") or 0) - (jb.get("created_at") or 0)
    q = ((jb.get("result") or {}).get("timings") or {}).get("queued_ms")
    check(waited >= 1000, "the second job was started after the first's 2.5 s render", ">= 1000 ms", waited)
    check(isinstance(q, int) and q >= waited, "timings.queued_ms counts its time in the queue",
          ">= %d (started_at - created_at)" % waited, q)


if __name__ == "__main__":
    run("cli_up", [test_one_call_download, test_wait_success_and_download, test_failure_shows_the_error, test_wait_values,
                   test_phases_and_queued_time], server=S)

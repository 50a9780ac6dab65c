#!/usr/bin/env python3
"""it.supervisor — the process tree of `tintype api`: --processes N children
serving one port, a child killed with SIGKILL replaced within a second while
requests keep succeeding, log lines from the supervisor about its children,
and an idle API child under 8 MB RSS."""

import os
import signal
import threading
import time

from ttharness import SANITIZED, SLOW, Conn, Server, Skip, check, eq, fetch, proc_stat, run, vm_rss_kb


def test_children_visible():
    with Server(processes=2) as s:
        kids = s.children()
        eq(len(kids), 2, "--processes 2: children of the supervisor in /proc")
        logged = {ln.get("child_pid") for ln in s.logs("child started")}
        eq(logged, kids, "'child started' lines name the children (child_pid)")
        eq(sorted(ln.get("index") for ln in s.logs("child started")), [0, 1], "'child started' indexes")
        for k in kids:
            st = proc_stat(k)
            eq(st[2] if st else None, s.pid, "child %d is in the supervisor's process group" % k)
        ln = s.logs("listening")[0]
        eq(ln.get("pid"), s.pid, "'listening' logged by the supervisor")
        # requests are spread over children: many connections, see which pids log them
        for _ in range(40):
            fetch(s.port, "GET", "/robots.txt")
        time.sleep(0.3)
        pids = {ln.get("pid") for ln in s.logs("request")}
        check(pids <= kids, "request lines come from the children", sorted(kids), sorted(pids))


def test_one_process():
    with Server(processes=1) as s:
        eq(len(s.children()), 1, "--processes 1: one child")
    with Server(processes=3) as s:
        eq(len(s.children()), 3, "--processes 3: three children")
    with Server(processes=0, env={"TINTYPE_PROCESSES": "2"}) as s:
        # --processes 0 on the command line means "one per CPU"; the flag wins over the env
        want = len(os.sched_getaffinity(0))
        deadline = time.monotonic() + 3 * SLOW
        while len(s.children()) != want and time.monotonic() < deadline:
            time.sleep(0.02)
        eq(len(s.children()), want, "--processes 0: one child per CPU")


def test_killed_child_replaced():
    with Server(processes=2, check_children=False) as s:
        before = s.children()
        eq(len(before), 2, "two children before the kill")
        victim = min(before)
        # traffic during the kill: count failures after the replacement only
        stop = threading.Event()
        results = []

        def load():
            while not stop.is_set():
                try:
                    results.append((time.monotonic(), fetch(s.port, "GET", "/index.html", timeout=2).status))
                except Exception as e:  # noqa: BLE001
                    results.append((time.monotonic(), repr(e)))

        th = threading.Thread(target=load, daemon=True)
        th.start()
        time.sleep(0.2)
        t_kill = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        new, dt = set(), None
        deadline = t_kill + 3 * SLOW
        while time.monotonic() < deadline:
            now = s.children()
            if victim not in now and len(now) == 2:
                new, dt = now - before, time.monotonic() - t_kill
                break
            time.sleep(0.01)
        check(dt is not None, "killed child replaced (2 children again, victim gone)", "replaced", s.children())
        if dt is not None:
            check(dt <= 1.0 * SLOW, "replaced within 1 s", "<= %.1f s" % (1.0 * SLOW), "%.3f s" % dt)
            eq(len(new), 1, "one new child")
            ln = s.wait_log(lambda l: l.get("msg") == "child started" and l.get("child_pid") in new, 2)
            check(ln is not None, "'child started' logged for the new child", sorted(new), s.logs("child started"))
        time.sleep(0.3)
        t_ok = time.monotonic()
        time.sleep(0.5)
        stop.set()
        th.join(5)
        after = [r for t, r in results if t >= t_ok]
        check(after and all(r == 200 for r in after), "requests after the replacement all succeed",
              "all 200", [r for r in after if r != 200][:5] or "no requests")
        with Conn(s.port) as c:
            for _ in range(10):
                eq(c.roundtrip("GET", "/index.html").status, 200, "keep-alive requests after the replacement")
        # the supervisor logged the death
        died = [ln for ln in s.logs() if ln.get("child_pid") == victim and ln.get("msg") != "child started"]
        check(died, "the supervisor logs the killed child", "a line with child_pid %d" % victim, died)
        # and it does it again for the new child
        again = min(s.children())
        os.kill(again, signal.SIGKILL)
        deadline = time.monotonic() + 3 * SLOW
        while time.monotonic() < deadline and (again in s.children() or len(s.children()) != 2):
            time.sleep(0.01)
        check(again not in s.children() and len(s.children()) == 2, "a second kill is replaced too", 2,
              s.children())
        s.wait_ready()
        check(s.alive(), "the supervisor is still running", True, s.alive())


def _log_ms(ln):
    """a log line's time, ms since midnight (UTC, from its ISO-8601 'time')"""
    t = ln.get("time", "")[11:23]
    h, m, rest = t.split(":")
    return (int(h) * 3600 + int(m) * 60) * 1000 + round(float(rest) * 1000)


def _kill_and_exit_line(s, pid):
    os.kill(pid, signal.SIGKILL)
    ln = s.wait_log(lambda l: l.get("msg") == "child exited" and l.get("child_pid") == pid, 5 * SLOW)
    check(ln is not None, "the supervisor logs child %d's death" % pid)
    return ln or {}


def _child_of_slot(s, index, dead):
    """the 'child started' line of slot index's child once one not in dead has started"""
    ln = s.wait_log(lambda l: l.get("msg") == "child started" and l.get("index") == index and
                    l.get("child_pid") not in dead, 10 * SLOW)
    check(ln is not None, "slot %d's child started again" % index)
    return ln or {}


def test_restart_backoff():
    # a child that lived past 1 s is forked again at once however often it
    # is killed; only a child that dies young (a crash loop) waits, doubling
    with Server(processes=2, check_children=False) as s:
        start = next(ln for ln in s.logs("child started") if ln.get("index") == 0)
        dead = set()
        for n in range(3):
            pid = start["child_pid"]
            seen = time.monotonic()
            while time.monotonic() - seen < 1.2:  # older than the 1 s young window
                time.sleep(0.05)
            ex = _kill_and_exit_line(s, pid)
            dead.add(pid)
            eq(ex.get("restart_ms"), 0, "kill %d of a child older than 1 s: forked again at once" % (n + 1))
            start = _child_of_slot(s, 0, dead)
        # now kill each new child of slot 0 as soon as it starts
        young = 0
        for n in range(3):
            pid = start.get("child_pid")
            if not pid:
                break
            ex = _kill_and_exit_line(s, pid)
            dead.add(pid)
            age = _log_ms(ex) - _log_ms(start)
            if 0 <= age < 950:
                young += 1
                # the first young death restarts at once, then 200, 400 ms
                eq(ex.get("restart_ms"), 0 if young == 1 else 100 << (young - 1),
                   "young death %d (%d ms after its start): restart_ms" % (young, age))
            elif age > 1050:
                young = 0
                eq(ex.get("restart_ms"), 0, "a death %d ms after its start: at once" % age)
            start = _child_of_slot(s, 0, dead)
        s.wait_ready()
        check(s.alive(), "the supervisor is still running", True, s.alive())


def test_idle_rss():
    if SANITIZED:
        raise Skip("RSS is not meaningful under ASan")
    with Server(processes=2) as s:
        for _ in range(50):
            fetch(s.port, "GET", "/index.html", {"Accept-Encoding": "gzip"})
        with Conn(s.port) as c:
            for _ in range(20):
                c.roundtrip("GET", "/style.css")
        time.sleep(0.5)
        # the API processes (the children that serve) must stay under 8 MB RSS
        for pid in sorted(s.children()):
            kb = vm_rss_kb(pid)
            check(kb is not None and kb < 8 * 1024, "idle API process %d VmRSS < 8 MB" % pid, "< 8192 kB", "%s kB" % kb)
        # the supervisor serves nothing; its RSS is the clean pages of the
        # shared libraries it loaded (constructors, relocations), which the
        # children share: judge its proportional share and its own dirty pages
        roll = smaps_rollup(s.pid)
        check(roll.get("Pss", 1 << 30) < 8 * 1024, "supervisor Pss < 8 MB", "< 8192 kB", "%s kB" % roll.get("Pss"))
        check(roll.get("Private_Dirty", 1 << 30) < 1024, "supervisor's own dirty memory < 1 MB", "< 1024 kB",
              "%s kB" % roll.get("Private_Dirty"))


def smaps_rollup(pid):
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                    out[parts[0][:-1]] = int(parts[1])
    except OSError:
        pass
    return out


if __name__ == "__main__":
    run("supervisor", [test_children_visible, test_one_process, test_killed_child_replaced, test_restart_backoff,
                       test_idle_rss])

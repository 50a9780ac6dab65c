"""Warm browser contexts per owner (issue 10): `tintype up` with the
default --isolation owner (and, as ctest it.render_warm.job, with
TINTYPE_ISOLATION=job: the same checks, every context fresh).

Pages served here on 127.0.0.1 (site A) and 127.0.0.3 (site B):
  /write   sets a cookie, localStorage, sessionStorage, an IndexedDB
           database, a Cache Storage cache, a service worker, an HTTP-cached
           fetch (max-age) and, in an iframe of site B, B's (partitioned)
           localStorage; then looks for all eight itself
  /read    only looks for them
Both paint eight 100x100 cells along the top, one per kind: RED when the
kind is there, GREEN when not, BLUE when the check itself failed; then add
#done (the job waits for it). A writer must show eight RED cells (the
browser did keep each kind: the control; new-headless chromium refuses the
iframe's storage outright, BLUE in every writer, and then no reader may
show it RED), and every reader eight GREEN ones, in a burst of writers and readers of two owners on 2 jobs at once,
where a warm context is handed from one job straight to the next.

Also: a job that timed out, a browser killed outright, --context-max-jobs,
--max-contexts (least recently used first), --context-idle-ms retire the
context (the next job's result.context_jobs is 1, and /metrics counts the
retirement); both isolations give the same pixels, and a dark_mode job
leaves no dark mode to the next job of its owner; a warm context's proxy
refuses what the policy refuses and counts only its current job's blocks."""
import atexit
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import imgutil
from apiclient import call, new_user, wait_job
from pageserver import Pages
from ttharness import ISOLATION, SLOW, Server, check, eq, fetch, run

OWNER = (ISOLATION or "owner") == "owner"
ALLOW = {"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32,127.0.0.3/32"}
KINDS = ("cookie", "localStorage", "sessionStorage", "IndexedDB", "Cache Storage", "service worker", "HTTP cache",
         "partitioned localStorage (iframe of another site)")
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)

CHECK_JS = r"""
const B = %(b)s;
function frame(mode) {
  return new Promise((resolve) => {
    const f = document.createElement('iframe');
    const t = setTimeout(() => resolve(null), 5000);
    addEventListener('message', (e) => { if (e.source === f.contentWindow) { clearTimeout(t); resolve(e.data); } });
    f.src = B + '/frame?mode=' + mode;
    f.width = 10; f.height = 10; f.style.position = 'absolute'; f.style.top = '300px';
    document.body.appendChild(f);
  });
}
async function one(fn) { try { return await fn(); } catch (e) { return null; } }
async function look() {
  const found = [];
  found.push(await one(() => document.cookie.includes('tt=')));
  found.push(await one(() => localStorage.getItem('tt') !== null));
  found.push(await one(() => sessionStorage.getItem('tt') !== null));
  found.push(await one(async () => (await indexedDB.databases()).some((d) => d.name === 'ttdb')));
  found.push(await one(() => caches.has('ttc')));
  found.push(await one(async () => (await navigator.serviceWorker.getRegistrations()).length > 0));
  found.push(await one(async () => {
    await (await fetch('/cached')).text();
    const e = performance.getEntriesByType('resource').filter((x) => x.name.endsWith('/cached')).pop();
    return e.transferSize === 0;   /* 0: from the HTTP cache */
  }));
  found.push(await frame('read'));
  return found;
}
function paint(found) {
  found.forEach((v, i) => {
    const d = document.createElement('div');
    d.style.cssText = 'position:absolute;top:0;width:100px;height:100px;left:' + (i * 100) + 'px;background:' +
      (v === true ? '#f00' : v === false ? '#0f0' : '#00f');
    document.body.appendChild(d);
  });
  const d = document.createElement('div'); d.id = 'done'; document.body.appendChild(d);
}
"""

WRITE_JS = r"""
async function write() {
  document.cookie = 'tt=1; max-age=3600; path=/';
  localStorage.setItem('tt', '1');
  sessionStorage.setItem('tt', '1');
  await one(() => new Promise((res, rej) => {
    const q = indexedDB.open('ttdb', 1);
    q.onupgradeneeded = () => q.result.createObjectStore('s');
    q.onsuccess = () => { const tx = q.result.transaction('s', 'readwrite'); tx.objectStore('s').put('1', 'k');
      tx.oncomplete = () => { q.result.close(); res(); }; tx.onerror = rej; };
    q.onerror = rej;
  }));
  await one(async () => { const c = await caches.open('ttc'); await c.put('/x', new Response('1')); });
  await one(async () => { await navigator.serviceWorker.register('/sw.js'); await navigator.serviceWorker.ready; });
  await one(async () => (await fetch('/cached')).text());
  await frame('write');
}
write().then(look).then(paint);
"""

FRAME = (b"<!doctype html><script>const m = new URLSearchParams(location.search).get('mode');"
         b"let v = null; try { if (m === 'write') localStorage.setItem('tt', '1');"
         b" v = localStorage.getItem('tt') !== null; } catch (e) {}"
         b" parent.postMessage(v, '*');</script>")


class Site:
    """One site: the pages above on host, a free port."""

    def __init__(self, host):
        site = self
        self.lock = threading.Lock()
        self.counts = {}
        self.stopping = threading.Event()

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                with site.lock:
                    site.counts[path] = site.counts.get(path, 0) + 1
                ctype, cache = "text/html; charset=utf-8", "no-store"
                if path in ("/write", "/read"):
                    js = CHECK_JS % {"b": '"%s"' % site.other} + (WRITE_JS if path == "/write" else
                                                                  "look().then(paint);")
                    body = ("<!doctype html><html><head><style>body{margin:0;background:#fff}</style></head>"
                            "<body><script>%s</script></body></html>" % js).encode()
                elif path == "/frame":
                    body = FRAME
                elif path == "/sw.js":
                    ctype, body = "text/javascript", b"self.addEventListener('fetch', () => {});"
                elif path == "/never":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    self.wfile.write(b"<!doctype html><p>loading forever")
                    self.wfile.flush()
                    site.stopping.wait(30)
                    self.close_connection = True
                    return
                elif path == "/slow":
                    site.stopping.wait(1.5)
                    body = b"<!doctype html><body style='margin:0;background:#fff'><p>slow</p>"
                elif path == "/cached":
                    ctype, cache, body = "text/plain", "max-age=3600", b"cached"
                elif path == "/plain":
                    body = (b"<!doctype html><html><head><style>body{margin:0;background:#fff}"
                            b"#a{position:absolute;left:10px;top:10px;width:200px;height:100px;background:#08f}"
                            b"@media (prefers-color-scheme: dark){body{background:#102040}}</style></head>"
                            b"<body><div id=a></div><p style='margin-top:140px;font:20px sans-serif'>tintype</p>"
                            b"</body></html>")
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", cache)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, 0), H)
        self.httpd.daemon_threads = True
        self.host, self.port = host, self.httpd.server_address[1]
        self.other = ""
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return "http://%s:%d%s" % (self.host, self.port, path)

    def count(self, path):
        with self.lock:
            return self.counts.get(path, 0)

    def stop(self):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


A = Site("127.0.0.1")
B = Site("127.0.0.3")
A.other, B.other = B.url(""), A.url("")
REC = Pages("127.0.0.2", record_only=True)
for x in (A, B, REC):
    atexit.register(x.stop)


def post(s, key, body):
    r = call(s.port, "POST", "/api/jobs", key=key, body=body)
    check(r.status == 202, "POST /api/jobs %r: 202" % (body,), 202, (r.status, r.body[:300]))
    return (r.j or {}).get("id")


def wait(s, key, jid, timeout=60):
    return wait_job(s.port, key, jid, timeout)


def shoot(s, key, body, what):
    j = wait(s, key, post(s, key, body))
    eq(j.get("state"), "succeeded", what + ": succeeded (error: %s)" % j.get("error"))
    return j


def pixels(s, key, j):
    r = call(s.port, "GET", "/api/jobs/%s/result" % j.get("id"), key=key, timeout=20)
    eq(r.status, 200, "GET /result")
    return imgutil.decode_png(r.body) if r.status == 200 else None


def cells(s, key, j):
    img = pixels(s, key, j)
    return [img.rgb(i * 100 + 50, 50) if img else None for i in range(8)]


def same(a, b):
    return (a.width, a.height) == (b.width, b.height) and all(
        a.rgb(x, y) == b.rgb(x, y) for y in range(0, a.height, 3) for x in range(0, a.width, 3))


def metric(s, name):
    m = fetch(s.port, "GET", "/metrics").body.decode()
    return int(float(next((ln.split()[-1] for ln in m.splitlines() if ln.startswith(name + " ")), "-1")))


def cj(j):
    return (j.get("result") or {}).get("context_jobs")


def expect_context_jobs(j, want_owner, what):
    """want_owner in owner mode; 1 with --isolation job"""
    eq(cj(j), want_owner if OWNER else 1, what + ": result.context_jobs")


# ------------------------------------------------------------------ tests

def test_storage_never_seen_by_the_next_job():
    # no preemption between the two users (worker fairness): a preempted job
    # renders again and fetches /cached twice, which the count below forbids
    with Server("--concurrency", "2", "--fair-max-preemptions", "0", cmd="up", workers=1, env=ALLOW) as s:
        users = [new_user(s.port, "w%d" % i)[1] for i in range(2)]
        WF = {"url": A.url("/write"), "wait_for": "#done", "timeout_ms": 20000}
        RF = {"url": A.url("/read"), "wait_for": "#done", "timeout_ms": 20000}
        plan = []
        for rnd in range(4):
            for u in range(2):
                plan.append((u, "write" if rnd % 2 == 0 else "read"))
                plan.append((u, "read"))
        ids = [(u, kind, post(s, users[u], WF if kind == "write" else RF)) for u, kind in plan]
        seen = []
        for u, kind, jid in ids:
            j = wait(s, users[u], jid)
            what = "user %d %s job %s" % (u, kind, jid)
            if eq(j.get("state"), "succeeded", what + ": succeeded (error: %s)" % j.get("error")):
                seen.append((u, kind, j, cells(s, users[u], j)))
        # a kind the browser refuses outright (new-headless chromium blocks
        # an iframe's unpartitioned storage as third-party) paints BLUE in
        # every writer: there it must not be RED in any reader either
        refused = {i for i in range(len(KINDS))
                   if all(c[i] == BLUE for _, k, _, c in seen if k == "write") and any(k == "write" for _, k, _, _ in seen)}
        if refused:
            print("  note: the browser keeps none of: %s" % ", ".join(KINDS[i] for i in sorted(refused)))
        check(len(refused) <= 1, "the browser keeps at least 7 of the 8 kinds", "<= 1 refused",
              [KINDS[i] for i in sorted(refused)])
        reused_readers = 0
        for u, kind, j, got in seen:
            what = "user %d %s job %s" % (u, kind, j.get("id"))
            for i, k in enumerate(KINDS):
                if kind == "write":
                    if i not in refused:
                        eq(got[i], RED, "%s: %s kept by the browser (the control)" % (what, k))
                elif i in refused:
                    check(got[i] != RED, "%s: %s left by an earlier job is not seen" % (what, k), "not RED", got[i])
                else:
                    eq(got[i], GREEN, "%s: %s left by an earlier job is not seen" % (what, k))
            if kind == "read" and (cj(j) or 0) > 1:
                reused_readers += 1
        if OWNER:
            check(reused_readers >= 4, "readers ran in warm contexts that served earlier jobs", ">= 4",
                  reused_readers)
            check(metric(s, "tintype_browser_contexts_reused_total") >= 8, "/metrics counts reused contexts",
                  ">= 8", metric(s, "tintype_browser_contexts_reused_total"))
        else:
            eq(reused_readers, 0, "--isolation job: no context serves two jobs")
            eq(metric(s, "tintype_browser_contexts_reused_total"), 0, "/metrics: no context reused")
        # every load of /cached reached the server: writer 1 + its own look 0
        # (its second fetch is the cache hit it checks for), reader 1
        n_w = sum(1 for _, k, _ in ids if k == "write")
        n_r = len(ids) - n_w
        eq(A.count("/cached"), n_w + n_r, "every job fetched /cached from the server once (no HTTP cache across jobs)")


def test_pixels_emulation_and_policy():
    # one warm context (--max-contexts 1): the page on a refused host runs in
    # the same warm context as the others (no site affinity can give it its own)
    with Server("--concurrency", "1", "--max-contexts", "1", cmd="up", workers=1, env=ALLOW) as s:
        key = new_user(s.port, "px")[1]
        plain = {"url": A.url("/plain")}
        a = shoot(s, key, plain, "plain, default isolation")
        b = shoot(s, key, dict(plain, isolation="job"), "plain, isolation job")
        eq(cj(b), 1, "a job asking isolation job gets a fresh context")
        c = shoot(s, key, dict(plain, dark_mode=True), "plain, dark mode")
        d = shoot(s, key, plain, "plain after a dark-mode job of the same owner")
        expect_context_jobs(d, 3, "the job after the dark-mode one")
        f = shoot(s, key, dict(plain, optimize_for_speed=True), "plain, optimize_for_speed")
        pa, pb, pc, pd, pf = (pixels(s, key, j) for j in (a, b, c, d, f))
        if pf and pa:
            check(same(pf, pa), "optimize_for_speed: a PNG of the same pixels")
        if pa and pb and pc and pd:
            check(same(pa, pb), "both isolations give the same pixels")
            eq(pa.rgb(640, 700), (255, 255, 255), "the light page is white")
            eq(pc.rgb(640, 700), (16, 32, 64), "dark_mode: the page is dark")
            check(same(pd, pa), "the next job sees no dark mode: the same pixels as the first")
        # a warm context's proxy: the policy holds, blocks count for their job only
        n0 = len(REC.seen()[1])
        j = wait(s, key, post(s, key, {"url": REC.url("/x"), "timeout_ms": 5000}))
        eq(j.get("state"), "failed", "a page on 127.0.0.2 from a warm context: failed")
        check("blocked" in (j.get("error") or ""), "... blocked by the network policy", "blocked", j.get("error"))
        e = shoot(s, key, plain, "plain after a blocked job")
        eq((e.get("result") or {}).get("blocked"), 0, "the next job's result counts no block of the last one")
        # new-headless chromium fetches /favicon.ico of the proxy's refusal page
        # after the job ended: a refused document's context is not reused
        expect_context_jobs(e, 1, "the job after a refused document: a fresh context")
        eq(len(REC.seen()[1]) - n0, 0, "127.0.0.2 heard nothing")


def test_site_affinity():
    # a warm context's renderer is its last page's site's: jobs alternating
    # between two sites each go to the context that last showed their site
    for flags, want in ((("--max-contexts", "8"), [1, 1, 2, 2, 3, 3]), (("--max-contexts", "1"), [1, 2, 3, 4, 5, 6])):
        with Server("--concurrency", "1", *flags, cmd="up", workers=1, env=ALLOW) as s:
            key = new_user(s.port, "aff")[1]
            got = []
            for i in range(6):
                site = (A, B)[i % 2]
                got.append(cj(shoot(s, key, {"url": site.url("/plain")}, "site %s, job %d" % ("AB"[i % 2], i))))
            eq(got, want if OWNER else [1] * 6, "%s: result.context_jobs of A, B, A, B, A, B" % " ".join(flags))


def test_retirement():
    with Server("--concurrency", "1", "--context-max-jobs", "3", "--max-contexts", "2", cmd="up", workers=1,
                env=ALLOW) as s:
        ka, kb, kc = (new_user(s.port, n)[1] for n in ("ra", "rb", "rc"))
        plain = {"url": A.url("/plain")}
        expect_context_jobs(shoot(s, ka, plain, "A 1"), 1, "A's first job")
        expect_context_jobs(shoot(s, ka, plain, "A 2"), 2, "A's second job")
        j = wait(s, ka, post(s, ka, {"url": A.url("/never"), "timeout_ms": 1500}))
        eq(j.get("state"), "failed", "a page that never answers: failed")
        expect_context_jobs(shoot(s, ka, plain, "A after a timeout"), 1, "after a timed-out job")
        expect_context_jobs(shoot(s, ka, plain, "A"), 2, "A again")
        expect_context_jobs(shoot(s, ka, plain, "A"), 3, "A again")
        expect_context_jobs(shoot(s, ka, plain, "A"), 1, "after --context-max-jobs 3")
        # --max-contexts 2: A, B kept; C's makes A's the least recently used one to go
        expect_context_jobs(shoot(s, kb, plain, "B"), 1, "B's first job")
        expect_context_jobs(shoot(s, kc, plain, "C"), 1, "C's first job")
        expect_context_jobs(shoot(s, kb, plain, "B"), 2, "B kept (C's took A's place)")
        expect_context_jobs(shoot(s, ka, plain, "A"), 1, "A retired as least recently used")
        if OWNER:
            check(metric(s, "tintype_browser_contexts_retired_total") >= 4, "/metrics counts retired contexts",
                  ">= 4", metric(s, "tintype_browser_contexts_retired_total"))


def test_idle_and_crash():
    with Server("--concurrency", "1", "--context-idle-ms", "300", cmd="up", workers=1, env=ALLOW) as s:
        key = new_user(s.port, "idle")[1]
        plain = {"url": A.url("/plain")}
        r0 = metric(s, "tintype_browser_contexts_retired_total")
        shoot(s, key, plain, "first")
        if OWNER:
            deadline = time.monotonic() + 20 * SLOW
            while time.monotonic() < deadline and metric(s, "tintype_browser_contexts_retired_total") <= r0:
                time.sleep(0.05)
            check(metric(s, "tintype_browser_contexts_retired_total") > r0, "the idle context was retired")
        expect_context_jobs(shoot(s, key, plain, "after the idle time"), 1, "after --context-idle-ms")
    with Server(cmd="up", workers=1, env=ALLOW) as s:
        key = new_user(s.port, "crash")[1]
        plain = {"url": A.url("/plain")}
        shoot(s, key, plain, "first")
        expect_context_jobs(shoot(s, key, plain, "second"), 2, "second")
        ln = s.wait_log(lambda l: l.get("msg", "").startswith("render: browser ready"), 10)
        pid = int(ln["msg"].split("(pid ")[1].split(")")[0]) if ln else 0
        check(pid > 0, "the worker logged its browser's pid")
        # killed while a job runs in a warm context: the job is retried
        n0 = A.count("/slow")
        jid = post(s, key, {"url": A.url("/slow")})
        deadline = time.monotonic() + 20 * SLOW
        while time.monotonic() < deadline and A.count("/slow") == n0:
            time.sleep(0.02)
        check(A.count("/slow") > n0, "the slow page was asked for")
        if pid:
            os.kill(pid, signal.SIGKILL)
            check(s.wait_log(lambda l: "the browser exited" in l.get("msg", ""), 10) is not None,
                  "the worker saw its browser die")
        j = wait(s, key, jid)
        eq(j.get("state"), "succeeded", "the job whose browser was killed: succeeded on a later attempt")
        check((j.get("attempts") or 0) >= 2, "... after more than one attempt", ">= 2", j.get("attempts"))
        expect_context_jobs(j, 1, "the retried job: a fresh context in the new browser")
        expect_context_jobs(shoot(s, key, plain, "after the browser was killed"), 2, "the next job: warm again")


if __name__ == "__main__":
    run("render_warm" + (" (isolation %s)" % ISOLATION if ISOLATION else ""),
        [test_storage_never_seen_by_the_next_job, test_pixels_emulation_and_policy, test_site_affinity, test_retirement,
         test_idle_and_crash])

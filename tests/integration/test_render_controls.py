"""Page controls (issue 15 item 5), shot by `tintype shot` and by jobs of
`tintype up`, on pages this test serves on 127.0.0.1 (pageserver.py
/controls and /intl), asserting pixels and what the page server saw:

- css (a stylesheet added), hide_selectors (the banner gone; a selector the
  browser cannot parse fails naming it), click_selectors (clicked in order;
  one that matches nothing is skipped and result.clicked counts the clicks),
  scroll_to (the far element at the top; a missing one fails);
- js (runs in the page; its exception fails the job with its message; an
  await that never ends and a loop that never yields both end at
  js_timeout_ms);
- user_agent, locale, timezone (the page's navigator/Intl, and the
  User-Agent / Accept-Language headers the server saw); a zone that does
  not exist is a 400;
- headers and basic_auth for the page's own origin only (the other origin
  the page loads from never sees them), cookies for the page's URL only,
  block_resources and block_urls (the other server never sees what they
  stop; result.blocked_by_job counts it);
- every field's bad value refused naming it (shot exit 2, API 400), and in a
  warm context a job with all of them leaves none to the owner's next job."""
import atexit
import json
import time

from apiclient import call, invalid, new_user, wait_job
from pageserver import BLUE, GREEN, MAGENTA, RED, WHITE, Pages
from shotutil import ok, px, refused, shoot
from ttharness import ISOLATION, SLOW, Server, check, eq, run

P = Pages("127.0.0.1")
Q = Pages("127.0.0.3")  # another origin the pages load from
atexit.register(P.stop)
atexit.register(Q.stop)
ALLOW2 = {"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32,127.0.0.3/32"}
OWNER = (ISOLATION or "owner") == "owner"
UA = "Mozilla/5.0 (tintype-test) tintype-ua"


def last_request(path):
    for method, full, headers in reversed(P.seen()[1]):
        if full.split("?")[0] == path:
            return headers
    return {}


# ------------------------------------------------------------------ shot

def test_css_and_hide():
    img = ok(shoot(P.url("/controls")), "controls, nothing asked", "png", 1280, 800)
    if img:
        px("no controls: the banner is there", img, 50, 50, RED)
        px("no controls: the box is BLUE", img, 450, 50, BLUE)
    img = ok(shoot(P.url("/controls"), "--css", "#box { background: rgb(255,0,255) !important }"), "css")
    if img:
        px("css: the stylesheet recolours the box", img, 450, 50, MAGENTA)
        px("css: the banner stays", img, 50, 50, RED)
    img = ok(shoot(P.url("/controls"), "--hide", "#banner", "--hide", ".nothing-here"), "hide_selectors")
    if img:
        px("hide_selectors: the banner is gone", img, 50, 50, WHITE)
        px("hide_selectors: the box stays", img, 450, 50, BLUE)
    refused(shoot(P.url("/controls"), "--hide", "#banner", "--hide", "a[["), "an unparsable hide selector", 1,
            ("hide_selectors[1]", "not a valid CSS selector"))


def test_click_and_scroll():
    s = shoot(P.url("/controls"), "--click", "#no-such-button", "--click", "#accept")
    img = ok(s, "click_selectors")
    if img:
        px("click_selectors: #accept removed the banner", img, 50, 50, WHITE)
        eq((s.meta or {}).get("clicked"), 1, "click_selectors: result.clicked counts the one that matched")
    s = shoot(P.url("/controls"))
    if ok(s, "no click_selectors"):
        check("clicked" not in (s.meta or {}), "without click_selectors the result has no clicked", None, s.meta)
    refused(shoot(P.url("/controls"), "--click", "]"), "an unparsable click selector", 1, ("click_selectors[0]",))
    img = ok(shoot(P.url("/controls"), "--scroll-to", "#far"), "scroll_to")
    if img:
        px("scroll_to: #far (y=3000) is at the top of the capture", img, 50, 50, GREEN)
    refused(shoot(P.url("/controls"), "--scroll-to", "#nowhere"), "scroll_to a missing element", 1,
            ("scroll_to", "matched no element"))


def test_js():
    img = ok(shoot(P.url("/controls"), "--js",
                   "await new Promise((r) => setTimeout(r, 50));"
                   " document.getElementById('box').style.background = 'rgb(0,255,0)';"), "js")
    if img:
        px("js: the script (awaiting) recoloured the box", img, 450, 50, GREEN)
    refused(shoot(P.url("/controls"), "--js", "throw new Error('boom-42')"), "js that throws", 1,
            ("js threw", "boom-42"))
    refused(shoot(P.url("/controls"), "--js", "await new Promise(() => {})", "--js-timeout", "500"),
            "js that awaits forever", 1, ("js did not finish within 500 ms",))
    refused(shoot(P.url("/controls"), "--js", "for (;;) {}", "--js-timeout", "500"), "js that loops forever", 1,
            ("js did not finish within 500 ms",))


def test_identity():
    url = P.url("/intl?lang=de-DE&tz=Asia/Tokyo")
    img = ok(shoot(url, "--locale", "de-DE", "--timezone", "Asia/Tokyo", "--user-agent", UA), "locale, timezone, ua")
    if img:
        px("locale: navigator.language is de-DE", img, 50, 50, GREEN)
        px("timezone: Intl's zone is Asia/Tokyo", img, 250, 50, GREEN)
        px("user_agent: navigator.userAgent", img, 450, 50, GREEN)
    h = last_request("/intl")
    eq(h.get("User-Agent"), UA, "user_agent: the server saw it")
    check((h.get("Accept-Language") or "").startswith("de-DE"), "locale: the server saw Accept-Language de-DE",
          "de-DE...", h.get("Accept-Language"))
    img = ok(shoot(url), "no identity controls")
    if img:
        px("without locale: navigator.language is not de-DE", img, 50, 50, RED)
        px("without timezone: not Asia/Tokyo", img, 250, 50, RED)
        px("without user_agent: Chromium's own", img, 450, 50, BLUE)


def test_network_controls():
    sub = P.url("/sub?host=127.0.0.3&port=%d" % Q.port)
    P.reset()
    Q.reset()
    s = shoot(sub, "--options", json.dumps({"headers": {"X-Tt-Extra": "yes", "Accept-Language": "xx"},
                                            "cookies": [{"name": "tc", "value": "v1", "http_only": True}],
                                            "wait_for": "#done"}), env=ALLOW2)
    ok(s, "headers and cookies")
    h = last_request("/sub")
    eq(h.get("X-Tt-Extra"), "yes", "headers: the page's own server saw the header")
    eq(h.get("Accept-Language"), "xx", "headers: a job's header replaces the browser's")
    eq(h.get("Cookie"), "tc=v1", "cookies: the page's server saw the cookie")
    seen = Q.seen()[1]
    check(len(seen) >= 3, "the page loaded from the other origin (control)", ">= 3 requests", [r[1] for r in seen])
    leaked = [(r[1], k) for r in seen for k in ("X-Tt-Extra", "Cookie") if k in r[2]]
    eq(leaked, [], "headers and cookies never reach another origin")
    # blocking
    Q.reset()
    s = shoot(sub, "--options", json.dumps({"block_resources": ["image", "stylesheet"], "block_urls": ["*/fetch.json"],
                                            "wait_for": "#done"}), env=ALLOW2)
    if ok(s, "block_resources, block_urls"):
        paths = [r[1] for r in Q.seen()[1]]
        for p_ in ("/img.png", "/style.css", "/fetch.json", "/redirected.png"):
            check(p_ not in paths, "blocked: %s never reached the server" % p_, "absent", paths)
        check("/frame.html" in paths, "not blocked: the iframe's document still loads (control)", "/frame.html", paths)
        eq((s.meta or {}).get("blocked_by_job"), 4, "result.blocked_by_job counts the four stopped requests")
    refused(shoot(P.url("/blocks"), "--options", '{"block_resources": ["document"]}'), "block_resources document", 2,
            ("block_resources[0]",))
    # basic_auth
    img = ok(shoot(P.url("/auth?user=ada&pass=pw"), "--options",
                   json.dumps({"basic_auth": {"username": "ada", "password": "pw"}})), "basic_auth")
    if img:
        px("basic_auth: the page let us in", img, 50, 50, GREEN)
    s = shoot(P.url("/auth?user=ada&pass=pw"), "--options",
              json.dumps({"basic_auth": {"username": "ada", "password": "wrong"}}))
    if ok(s, "wrong basic_auth"):
        eq((s.meta or {}).get("http_status"), 401, "wrong basic_auth: the page's 401 (no endless retry)")
    s = shoot(P.url("/auth?user=ada&pass=pw"))
    if ok(s, "no basic_auth"):
        eq((s.meta or {}).get("http_status"), 401, "without basic_auth the page answers 401")
    Q.reset()
    ok(shoot(P.url("/authsub?host=127.0.0.3&port=%d" % Q.port), "--options",
             json.dumps({"basic_auth": {"username": "ada", "password": "pw"}}), env=ALLOW2), "basic_auth, other origin")
    auth = [r for r in Q.seen()[1] if r[1].startswith("/auth")]
    check(auth, "the other origin's challenge was met (control)", "a request of /auth", Q.seen()[1])
    eq([r[2].get("Authorization") for r in auth], [None] * len(auth), "basic_auth never goes to another origin")


BAD = (
    (("--css", ""), "css"),
    (("--js-timeout", "500"), "js_timeout_ms"),
    (("--js", "1", "--js-timeout", "999999"), "--js-timeout"),
    (("--js", "1", "--js-timeout", "10"), "--js-timeout"),
    (("--hide", ""), "hide_selectors[0]"),
    (("--click", "a\x01"), "click_selectors[0]"),
    (("--scroll-to", ""), "--scroll-to"),
    (("--user-agent", "a\nb"), "--user-agent"),
    (("--user-agent", "x" * 600), "--user-agent"),
    (("--locale", "d"), "--locale"),
    (("--locale", "de_DE"), "--locale"),
    (("--timezone", "Mars/Olympus"), "--timezone"),
    (("--timezone", "../../etc/passwd"), "--timezone"),
    (("--options", '{"hide_selectors": "#a"}'), "hide_selectors"),
    (("--options", '{"click_selectors": [%s]}' % ",".join('"#a"' for _ in range(21))), "click_selectors"),
    (("--options", '{"headers": {"Host": "x"}}'), "headers.Host"),
    (("--options", '{"headers": {"Proxy-Authorization": "x"}}'), "headers.Proxy-Authorization"),
    (("--options", '{"headers": {"Content-Length": "1"}}'), "headers.Content-Length"),
    (("--options", '{"headers": {"Connection": "close"}}'), "headers.Connection"),
    (("--options", '{"headers": {"X-A": "a\\r\\nB: c"}}'), "headers.X-A"),
    (("--options", '{"headers": {"Bad Name": "x"}}'), "headers.Bad Name"),
    (("--options", '{"headers": {%s}}' % ",".join('"X-%d": "v"' % i for i in range(21))), "headers"),
    (("--options", '{"cookies": [{"name": "a"}]}'), "cookies[0]"),
    (("--options", '{"cookies": [{"name": "a", "value": "b", "domain": "evil.example"}]}'), "cookies[0].domain"),
    (("--options", '{"cookies": [{"name": "a", "value": "b;c"}]}'), "cookies[0].value"),
    (("--options", '{"cookies": [{"name": "a", "value": "b", "same_site": "Sometimes"}]}'), "cookies[0].same_site"),
    (("--options", '{"basic_auth": {"username": "a"}}'), "basic_auth.password"),
    (("--options", '{"basic_auth": {"username": "a:b", "password": "c"}}'), "basic_auth.username"),
    (("--options", '{"block_resources": ["images"]}'), "block_resources[0]"),
    (("--options", '{"block_urls": [""]}'), "block_urls[0]"),
)


def test_bad_values_shot():
    before = P.count("/controls")
    for flags, name in BAD:
        s = shoot(P.url("/controls"), *flags, timeout=15)
        what = "shot %s" % " ".join(f[:40] for f in flags)
        eq(s.rc, 2, what + ": exit 2")
        check(name in s.reason(), what + ": the reason names " + name, name, s.reason() or s.stderr[-300:])
    eq(P.count("/controls"), before, "no bad invocation fetched the page")
    s = shoot(P.url("/controls"), "--css", "x" * 2000, timeout=15, env={"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32",
                                                                       "TINTYPE_MAX_CSS_BYTES": "1k"})
    eq(s.rc, 2, "css over --max-css-bytes 1k: exit 2")
    check("max-css-bytes" in s.reason(), "... naming max-css-bytes", "max-css-bytes", s.reason())


# ------------------------------------------------------------------ jobs

def wait(s, key, jid, timeout=60):
    return wait_job(s.port, key, jid, timeout)


def job(s, key, body, what):
    r = call(s.port, "POST", "/api/jobs", key=key, body=body)
    if not check(r.status == 202, what + ": POST 202", 202, (r.status, r.body[:300])):
        return {}
    j = wait(s, key, (r.j or {}).get("id"))
    return j


def pixels(s, key, j):
    import imgutil
    r = call(s.port, "GET", "/api/jobs/%s/result" % j.get("id"), key=key, timeout=20)
    return imgutil.decode_png(r.body) if r.status == 200 else None


def test_jobs_and_warm_reset():
    with Server("--concurrency", "1", cmd="up", workers=1, env=ALLOW2) as s:
        key = new_user(s.port, "ctl")[1]
        u = P.url("/intl?lang=de-DE&tz=Asia/Tokyo")
        for body, field in (({"css": 5}, "css"), ({"js": ""}, "js"), ({"js_timeout_ms": 1000}, "js_timeout_ms"),
                            ({"hide_selectors": ["#a", 1]}, "hide_selectors[1]"), ({"click_selectors": {}},
                                                                                   "click_selectors"),
                            ({"scroll_to": ["#a"]}, "scroll_to"), ({"user_agent": ""}, "user_agent"),
                            ({"locale": "english please"}, "locale"), ({"timezone": "Europe/Nowhere"}, "timezone"),
                            ({"timezone": 1}, "timezone"), ({"headers": {"Host": "a"}}, "headers.Host"),
                            ({"cookies": {}}, "cookies"), ({"basic_auth": "a:b"}, "basic_auth"),
                            ({"block_resources": ["gif"]}, "block_resources[0]"), ({"block_urls": "*"}, "block_urls")):
            invalid(call(s.port, "POST", "/api/jobs", key=key, body=dict(body, url=u)), field, "job %r" % (body,))
        every = {"url": u, "locale": "de-DE", "timezone": "Asia/Tokyo", "user_agent": UA,
                 "headers": {"X-Tt-Extra": "job-a"}, "cookies": [{"name": "tc", "value": "job-a"}],
                 "block_urls": ["*/nothing-to-block"],
                 "css": "#z { outline: 0 }", "js": "window.ttran = 1;", "hide_selectors": ["#nothing"],
                 "click_selectors": ["#nothing"]}
        a = job(s, key, every, "a job with every control")
        eq(a.get("state"), "succeeded", "every control: succeeded (error: %s)" % a.get("error"))
        eq((a.get("request") or {}).get("hide_selectors"), ["#nothing"], "the request keeps hide_selectors")
        eq((a.get("result") or {}).get("clicked"), 0, "result.clicked: nothing matched")
        ia = pixels(s, key, a)
        if ia:
            eq([ia.rgb(x, 50) for x in (50, 250, 450)], [GREEN] * 3, "every control: locale, zone, ua in the page")
        ha = last_request("/intl")
        eq(ha.get("User-Agent"), UA, "the server saw the job's user_agent")
        eq((ha.get("X-Tt-Extra"), ha.get("Cookie")), ("job-a", "tc=job-a"), "the server saw the job's header and cookie")
        b = job(s, key, {"url": u}, "the owner's next job, no controls")
        eq(b.get("state"), "succeeded", "next job: succeeded (error: %s)" % b.get("error"))
        eq((b.get("result") or {}).get("context_jobs"), 2 if OWNER else 1, "next job: result.context_jobs")
        ib = pixels(s, key, b)
        if ib:
            eq([ib.rgb(x, 50) for x in (50, 250, 450)], [RED, RED, BLUE],
               "the next job sees no locale, zone or user agent of the last")
        h = last_request("/intl")
        check(h.get("User-Agent") != UA and not (h.get("Accept-Language") or "").startswith("de-DE"),
              "the server saw neither the last job's User-Agent nor its Accept-Language", "defaults",
              (h.get("User-Agent"), h.get("Accept-Language")))
        eq((h.get("X-Tt-Extra"), h.get("Cookie")), (None, None), "the next job sends neither header nor cookie")
        c = job(s, key, {"url": P.url("/controls"), "css": "#box { background: rgb(255,0,255) !important }",
                         "hide_selectors": ["#banner"]}, "css and hide")
        d = job(s, key, {"url": P.url("/controls")}, "the next job after css and hide")
        ic, idd = pixels(s, key, c), pixels(s, key, d)
        if ic and idd:
            eq((ic.rgb(50, 50), ic.rgb(450, 50)), (WHITE, MAGENTA), "css and hide applied")
            eq((idd.rgb(50, 50), idd.rgb(450, 50)), (RED, BLUE), "the next job has neither the css nor the hiding")
        e = job(s, key, {"url": P.url("/controls"), "js": "throw new Error('job-boom')"}, "js that throws")
        eq(e.get("state"), "failed", "a job whose js throws fails")
        check("job-boom" in (e.get("error") or ""), "... with the exception's message", "job-boom", e.get("error"))


if __name__ == "__main__":
    run("render_controls", [test_css_and_hide, test_click_and_scroll, test_js, test_identity, test_network_controls,
                            test_bad_values_shot,
                            test_jobs_and_warm_reset])

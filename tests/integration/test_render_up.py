"""`tintype up` end to end: the API, the queue and a worker with its
Chromium and libvips, on one machine (issue 5).

Jobs: a render of a page this test serves on 127.0.0.1 goes queued ->
running -> succeeded (watched as Server-Sent Events), its record carries
the result's metadata, and /result (with the key, and by the signed link
alone) is a PNG of the asked size with the page's colours where they
belong; other options (full_page + webp, selector) come back as asked; a
page that never loads with timeout_ms 2000 fails "timed out"; a page on
127.0.0.2 fails "blocked" and the 127.0.0.2 recorder hears nothing.

Images: a PNG made here (make_png), a JPEG and a WebP made by `tintype
shot`, each uploaded with PUT /raw, become processed: the same size, the
same format, toned sepia (a grey pixel comes back with r > g > b), with a
thumbnail whose long side is 256. A corrupt upload (a PNG signature, then
noise), a decompression bomb (a real 30000x30000 PNG, 900 MB of pixels in
under 1 MB of zlib) and a truncated one with the same IHDR fail with an
error, soon; afterwards the same worker still processes an image and
renders a page, and no child process was replaced (Server's own check)."""
import atexit
import random
import time

import imgutil
import shotutil
from apiclient import Sse, call, new_user
from pageserver import BLUE, GREEN, MAGENTA, RED, TEAL, WHITE, Pages
from shotutil import px
from ttharness import SLOW, HttpError, Server, check, eq, run

P = Pages("127.0.0.1")
R = Pages("127.0.0.2", record_only=True)
atexit.register(shotutil.cleanup)
atexit.register(P.stop)
atexit.register(R.stop)
S = Server("--concurrency", "2", processes=1, cmd="up", workers=1,
           env={"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32"})
FINAL_JOB = ("succeeded", "failed", "canceled")
ORDER = {"queued": 0, "running": 1, "succeeded": 2, "failed": 2, "canceled": 2}
_key = {}


def key():
    if "k" not in _key:
        _key["k"] = new_user(S.port, "render")[1]
    return _key["k"]


def post_job(body):
    r = call(S.port, "POST", "/api/jobs", key=key(), body=body)
    if r.status != 202 or not isinstance(r.j, dict):
        raise HttpError("POST /api/jobs %r answered %d %r" % (body, r.status, r.body[:300]))
    return r.j


def wait_job(jid, timeout=40.0):
    deadline = time.monotonic() + timeout * SLOW
    j = None
    while time.monotonic() < deadline:
        j = call(S.port, "GET", "/api/jobs/" + jid, key=key()).j or {}
        if j.get("state") in FINAL_JOB:
            return j
        time.sleep(0.1)
    return j


def result_image(j, what):
    """GET /result of a succeeded job: checks it against the job's result
    metadata and returns the bytes."""
    r = call(S.port, "GET", "/api/jobs/%s/result" % j.get("id"), key=key(), timeout=20)
    eq(r.status, 200, what + ": GET /result 200")
    res = j.get("result") or {}
    eq(r.get("Content-Type"), "image/" + str(res.get("format")), what + ": /result Content-Type")
    eq(len(r.body), res.get("bytes"), what + ": /result is result.bytes long")
    try:
        info = imgutil.image_info(r.body)
    except ValueError as e:
        check(False, what + ": /result is an image", "png/jpeg/webp", str(e))
        return r.body
    eq(info, (res.get("format"), res.get("width"), res.get("height")), what + ": /result format and size are the "
       "record's")
    return r.body


# --------------------------------------------------------------- jobs

def test_job_end_to_end():
    url = P.url("/blocks")
    before = P.count("/blocks")
    j = post_job({"url": url, "viewport": {"width": 640, "height": 480}})
    jid = j["id"]
    st = Sse(S.port, "/api/jobs/%s/events" % jid, key=key(), timeout=10)
    states, versions = [], []
    try:
        eq(st.head(), 200, "events: 200")
        while True:
            ev = st.next_event(timeout=40)
            if ev is None:
                break
            data = ev.get("json") or {}
            states.append(data.get("state"))
            versions.append(data.get("version"))
    finally:
        st.close()
    check(states and states[-1] == "succeeded", "events: the stream ends with succeeded", "... succeeded", states)
    check(all(ORDER.get(a, 9) <= ORDER.get(b, 9) for a, b in zip(states, states[1:])),
          "events: states only move forward (queued, running, succeeded)", "queued -> running -> succeeded", states)
    check(versions == sorted(set(versions)), "events: versions grow", "increasing", versions)
    j = call(S.port, "GET", "/api/jobs/" + jid, key=key()).j or {}
    eq(j.get("state"), "succeeded", "GET the job: succeeded")
    eq(j.get("error"), None, "a succeeded job has no error")
    res = j.get("result") or {}
    for k2, v in (("format", "png"), ("width", 640), ("height", 480), ("http_status", 200), ("final_url", url)):
        eq(res.get(k2), v, "result.%s" % k2)
    t = res.get("timings")
    check(isinstance(t, dict) and t and all(isinstance(v, (int, float)) and v >= 0 for v in t.values()),
          "result.timings: milliseconds", "{name: ms}", t)
    check(isinstance(j.get("started_at"), int) and isinstance(j.get("finished_at"), int) and
          j["started_at"] <= j["finished_at"], "started_at <= finished_at", "ints", (j.get("started_at"),
                                                                                   j.get("finished_at")))
    body = result_image(j, "end to end")
    try:
        img = imgutil.decode_png(body)
    except ValueError as e:
        img = None
        check(False, "/result decodes as a PNG", "PNG", str(e))
    px("/result", img, 50, 50, RED)
    px("/result", img, 250, 50, GREEN)
    px("/result", img, 50, 250, BLUE)
    px("/result", img, 639, 479, WHITE)
    eq(P.count("/blocks") - before, 1, "the worker fetched the page once")
    link = (j.get("links") or {}).get("result")
    check(isinstance(link, str) and link.startswith("/api/jobs/%s/result?" % jid), "links.result is a signed link",
          "/api/jobs/ID/result?...", link)
    if isinstance(link, str):
        r = call(S.port, "GET", link)
        eq((r.status, r.body == body), (200, True), "the signed link without a key gives the same bytes")


def test_job_options():
    a = post_job({"url": P.url("/tall"), "full_page": True, "format": "webp", "quality": 60,
                  "viewport": {"width": 500, "height": 400}})
    b = post_job({"url": P.url("/element"), "selector": "#card", "viewport": {"scale": 2}})
    c = post_job({"url": P.url("/dark"), "dark_mode": True, "format": "jpeg", "viewport": {"width": 200,
                                                                                          "height": 100}})
    ja, jb, jc = wait_job(a["id"]), wait_job(b["id"]), wait_job(c["id"])
    eq(ja.get("state"), "succeeded", "full_page webp: succeeded (%s)" % ja.get("error"))
    res = ja.get("result") or {}
    eq((res.get("format"), res.get("width"), res.get("height")), ("webp", 500, 3000), "full_page webp: result")
    if ja.get("state") == "succeeded":
        result_image(ja, "full_page webp")
    eq(jb.get("state"), "succeeded", "selector, scale 2: succeeded (%s)" % jb.get("error"))
    res = jb.get("result") or {}
    eq((res.get("width"), res.get("height")), (640, 360), "selector #card at scale 2: 640x360")
    if jb.get("state") == "succeeded":
        img = imgutil.decode_png(result_image(jb, "selector"))
        px("selector #card", img, 5, 5, TEAL)
        px("selector #card", img, 634, 354, TEAL)
    eq(jc.get("state"), "succeeded", "dark jpeg: succeeded (%s)" % jc.get("error"))
    res = jc.get("result") or {}
    eq((res.get("format"), res.get("width"), res.get("height")), ("jpeg", 200, 100), "dark jpeg: result")
    if jc.get("state") == "succeeded":
        result_image(jc, "dark jpeg")


def test_job_timeout():
    t0 = time.monotonic()
    j = post_job({"url": P.url("/never?s=30"), "timeout_ms": 2000})
    j = wait_job(j["id"], timeout=40)
    eq(j.get("state"), "failed", "a page that never loads, timeout_ms 2000: failed")
    err = j.get("error")
    check(isinstance(err, str) and "timed out" in err, "the error says 'timed out'", "...timed out...", err)
    eq(j.get("result"), None, "a failed job has no result")
    r = call(S.port, "GET", "/api/jobs/%s/result" % j.get("id"), key=key())
    eq(r.status, 409, "/result of a failed job: 409")
    print("    failed after %.1fs, attempts %r: %r" % (time.monotonic() - t0, j.get("attempts"), err))


def test_job_blocked():
    R.reset()
    j = post_job({"url": "http://127.0.0.2:%d/job" % R.port, "timeout_ms": 10000})
    j = wait_job(j["id"], timeout=40)
    eq(j.get("state"), "failed", "a job for a page on 127.0.0.2: failed")
    err = j.get("error")
    check(isinstance(err, str) and "blocked" in err and "127.0.0.2" in err, "the error says blocked, 127.0.0.2",
          "blocked ... 127.0.0.2", err)
    time.sleep(0.3)
    conns, reqs = R.seen()
    check(not conns and not reqs, "127.0.0.2 saw no connection", [], [r[1] for r in reqs][:5])


# --------------------------------------------------------------- images

def new_image(data, what):
    r = call(S.port, "POST", "/api/images", key=key())
    if r.status != 201 or not isinstance(r.j, dict):
        raise HttpError("POST /api/images answered %d %r" % (r.status, r.body[:300]))
    iid = r.j["id"]
    r = call(S.port, "PUT", "/api/images/%s/raw" % iid, key=key(), raw=data, ctype="application/octet-stream",
             timeout=30)
    eq(r.status, 200, what + ": PUT /raw 200 (%r)" % r.body[:200])
    eq((r.j or {}).get("state"), "uploaded", what + ": state uploaded")
    return iid


def wait_image(iid, timeout=40.0):
    deadline = time.monotonic() + timeout * SLOW
    im = None
    while time.monotonic() < deadline:
        im = call(S.port, "GET", "/api/images/" + iid, key=key()).j or {}
        if im.get("state") in ("processed", "failed"):
            return im
        time.sleep(0.1)
    return im


def check_processed(iid, fmt, w, h, what):
    """Waits for the image, checks it processed; returns (processed bytes,
    thumbnail bytes) (None when missing)."""
    im = wait_image(iid)
    if not eq(im.get("state"), "processed", what + ": processed (error %r)" % im.get("error")):
        return None, None
    eq(im.get("content_type"), "image/" + fmt, what + ": content_type")
    eq((im.get("width"), im.get("height")), (w, h), what + ": the record's width, height")
    links = im.get("links") or {}
    out = []
    for name in ("processed", "thumbnail"):
        r = call(S.port, "GET", "/api/images/%s/%s" % (iid, name), key=key(), timeout=20)
        eq(r.status, 200, what + ": GET %s 200" % name)
        eq(r.get("Content-Type"), "image/" + fmt, what + ": %s keeps the format" % name)
        try:
            info = imgutil.image_info(r.body)
        except ValueError as e:
            check(False, what + ": %s is an image" % name, fmt, str(e))
            out.append(None)
            continue
        eq(info[0], fmt, what + ": %s's magic" % name)
        if name == "processed":
            eq(info[1:], (w, h), what + ": processed keeps the size")
        else:
            tw, th = info[1:]
            eq(max(tw, th), 256, what + ": the thumbnail's long side is 256")
            short = min(w, h) * 256.0 / max(w, h)
            check(abs(min(tw, th) - short) <= 1, what + ": the thumbnail keeps the aspect ratio", round(short),
                  (tw, th))
            check((tw >= th) == (w >= h), what + ": the thumbnail keeps the orientation", (w, h), (tw, th))
        link = links.get(name)
        if isinstance(link, str):
            r2 = call(S.port, "GET", link)
            eq((r2.status, r2.body == r.body), (200, True), what + ": the signed %s link gives the bytes" % name)
        else:
            check(False, what + ": links.%s" % name, "a signed link", links)
        out.append(r.body)
    return out[0], out[1]


GREY = (128, 128, 128)


def _input(x, y):
    if x < 300:
        return GREY
    return (255 * (x - 300) // 300, 90, 255 - 255 * (x - 300) // 300)


def sepia(c):
    return c is not None and c[0] > c[1] > c[2]


def test_image_png():
    data = imgutil.make_png(600, 400, _input)
    iid = new_image(data, "PNG 600x400")
    processed, thumb = check_processed(iid, "png", 600, 400, "PNG 600x400")
    if processed:
        img = imgutil.decode_png(processed)
        for x, y in ((150, 200), (10, 10), (290, 390)):
            c = img.rgb(x, y)
            check(sepia(c), "processed: the grey (128,128,128) at (%d,%d) is toned sepia, r > g > b" % (x, y),
                  "r > g > b", c)
        c = img.rgb(450, 200)
        check(sepia(c), "processed: a coloured pixel is toned sepia too", "r > g > b", c)
    if thumb:
        img = imgutil.decode_png(thumb)
        c = img.rgb(40, 80)
        check(near_grey_or_sepia(c), "thumbnail of the grey half: grey or sepia", "r >= g >= b", c)


def near_grey_or_sepia(c):
    return c is not None and c[0] + 2 >= c[1] >= c[2] - 2


def test_image_jpeg_webp():
    for fmt in ("jpeg", "webp"):
        s = shotutil.shoot(P.url("/blocks"), "--format", fmt, "--width", "640", "--height", "360")
        shotutil.ok(s, "a %s made by tintype shot" % fmt, fmt, 640, 360)
        if not s.data:
            continue
        iid = new_image(s.data, fmt.upper())
        check_processed(iid, fmt, 640, 360, fmt.upper() + " 640x360")


def test_image_corrupt():
    noise = random.Random(11).randbytes(6000)
    iid = new_image(imgutil.PNG_SIG + noise, "a PNG signature and noise")
    im = wait_image(iid)
    eq(im.get("state"), "failed", "a corrupt upload: failed")
    check(isinstance(im.get("error"), str) and im.get("error"), "a corrupt upload: an error saying why",
          "a sentence", im.get("error"))
    r = call(S.port, "GET", "/api/images/%s/processed" % iid, key=key())
    eq(r.status, 409, "a failed image has no processed bytes: 409")


def test_image_bomb():
    bomb = imgutil.png_bomb(30000, 30000)
    stream = [d for t, d in imgutil._chunks(bomb) if t == b"IDAT"][0]
    truncated = imgutil.png_from_parts(30000, 30000, 8, 0, stream[:200])
    for data, what in ((bomb, "a 30000x30000 PNG (900 Mpx in %d bytes)" % len(bomb)),
                       (truncated, "a 30000x30000 IHDR over 200 bytes of data")):
        t0 = time.monotonic()
        iid = new_image(data, what)
        im = wait_image(iid, timeout=60)
        took = time.monotonic() - t0
        eq(im.get("state"), "failed", what + ": failed")
        err = im.get("error") or ""
        check(isinstance(im.get("error"), str) and err, what + ": an error saying why", "a sentence", im.get("error"))
        check(any(w in err.lower() for w in ("30000", "pixel", "px", "large", "big", "limit")),
              what + ": the error says it is too large", "30000 / pixels / limit", err)
        check(took < 20 * SLOW, what + ": refused soon, from the header", "< %ds" % (20 * SLOW), round(took, 1))


def test_worker_alive_after():
    # the same worker (Server checks at stop that no child was replaced)
    iid = new_image(imgutil.make_png(300, 200, _input), "a PNG after the bombs")
    check_processed(iid, "png", 300, 200, "a PNG after the bombs")
    j = wait_job(post_job({"url": P.url("/tall"), "full_page": True, "viewport": {"width": 300, "height": 200}})["id"])
    eq(j.get("state"), "succeeded", "a render after the bombs: succeeded (%s)" % j.get("error"))
    if j.get("state") == "succeeded":
        img = imgutil.decode_png(result_image(j, "a render after the bombs"))
        eq((img.width, img.height), (300, 3000), "full page 300 wide: 300x3000")
        px("full page", img, 10, 2990, MAGENTA)


if __name__ == "__main__":
    run("render_up", [test_job_end_to_end, test_job_options, test_job_timeout, test_job_blocked, test_image_png,
                      test_image_jpeg_webp, test_image_corrupt, test_image_bomb, test_worker_alive_after], server=S)

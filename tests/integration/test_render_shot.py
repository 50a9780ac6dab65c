"""`tintype shot URL -o FILE` against pages this test serves on 127.0.0.1
(issue 5): each option's effect on the picture, read back pixel by pixel
with imgutil's PNG decoder — the default 1280x800, --width/--height,
--scale 2 (twice the pixels, devicePixelRatio 2), --mobile (the 980px
layout viewport), --full-page, --selector (the element's size, below the
fold too), --dark, --format jpeg/webp (magic, dimensions, --quality changes
the size), --wait-for, --delay, --wait-until (load, domcontentloaded,
networkidle), http_status and final_url (404, a redirect), --timeout
(exit 1 "timed out", soon), bad flag values (exit 2 naming the flag).
imgutil itself is checked first: make_png -> decode_png through every
row filter. TINTYPE_ALLOW_NETWORKS=127.0.0.1/32 opens loopback for the
shots; the policy itself is test_render_ssrf.py's."""
import atexit
import os
import random
import time
import zlib

import imgutil
import shotutil
from pageserver import (BLUE, DARK, GREEN, LIGHT, MAGENTA, ORANGE, PURPLE, RED, TEAL, WHITE, YELLOW, Pages)
from shotutil import ok, px, refused, shoot
from ttharness import SLOW, check, eq, run

P = Pages("127.0.0.1")
atexit.register(shotutil.cleanup)
atexit.register(P.stop)


# --------------------------------------------------------------- imgutil

def test_imgutil_roundtrip():
    rnd = random.Random(7)
    noise = [[tuple(rnd.randrange(256) for _ in range(4)) for _ in range(29)] for _ in range(17)]
    fn4 = lambda x, y: noise[y][x]  # noqa: E731
    fn3 = lambda x, y: noise[y][x][:3]  # noqa: E731
    for f in (0, 1, 2, 3, 4, "cycle"):
        for fn, alpha in ((fn4, True), (fn3, False)):
            b = imgutil.make_png(29, 17, fn, alpha=alpha, filter=f)
            eq(imgutil.image_info(b), ("png", 29, 17), "make_png filter %s alpha %s: image_info" % (f, alpha))
            im = imgutil.decode_png(b)
            bad = [(x, y) for y in range(17) for x in range(29)
                   if im.pixel(x, y) != (fn(x, y) if alpha else fn(x, y) + (255,))]
            check(not bad, "make_png -> decode_png, filter %s, alpha %s: every pixel" % (f, alpha), [], bad[:5])
    # greyscale, palette and 16-bit inputs (as libvips may write them)
    g = imgutil.png_from_parts(3, 1, 8, 0, zlib.compress(b"\x00\x00\x80\xff"))
    eq([imgutil.decode_png(g).pixel(x, 0) for x in range(3)], [(0, 0, 0, 255), (128, 128, 128, 255),
                                                              (255, 255, 255, 255)], "8-bit grey")
    pal = imgutil.png_from_parts(2, 1, 8, 3, zlib.compress(b"\x00\x01\x00"),
                                 extra=[(b"PLTE", bytes([1, 2, 3, 4, 5, 6])), (b"tRNS", b"\x80")])
    eq([imgutil.decode_png(pal).pixel(x, 0) for x in range(2)], [(4, 5, 6, 255), (1, 2, 3, 128)], "palette, tRNS")
    w16 = imgutil.png_from_parts(1, 1, 16, 2, zlib.compress(b"\x00\x12\x34\x56\x78\x9a\xbc"))
    eq(imgutil.decode_png(w16).pixel(0, 0), (0x12, 0x56, 0x9a, 255), "16-bit RGB: the high bytes")
    # what it refuses
    good = imgutil.make_png(4, 4, lambda x, y: (1, 2, 3))
    for data, what in ((good[:-20], "truncated"), (good[:30] + bytes([good[30] ^ 1]) + good[31:], "a flipped bit"),
                       (b"GIF89a" + good[6:], "not a PNG"),
                       (imgutil.png_from_parts(4, 4, 8, 2, zlib.compress(b"\x00" * 13), interlace=1), "interlaced"),
                       (imgutil.png_from_parts(4, 4, 8, 2, zlib.compress(b"\x00" * 20)), "short data"),
                       (imgutil.png_from_parts(4, 1, 8, 2, zlib.compress(b"\x07" + b"\x00" * 12)), "filter 7")):
        try:
            imgutil.decode_png(data)
            check(False, "decode_png refuses %s" % what, "ValueError", "decoded")
        except ValueError:
            pass
    # the bomb is a valid PNG (checked small), and small whatever its size
    b = imgutil.png_bomb(9, 7)
    im = imgutil.decode_png(b)
    eq((im.width, im.height, im.pixel(8, 6)), (9, 7, (0, 0, 0, 255)), "png_bomb(9, 7) decodes to black")
    big = imgutil.png_bomb(30000, 30000)
    eq(imgutil.image_info(big), ("png", 30000, 30000), "png_bomb(30000, 30000): IHDR")
    check(len(big) < 1 << 20, "png_bomb(30000, 30000) is under 1 MiB", "< 1048576", len(big))
    # JPEG and WebP headers: made by hand, the real ones come from shots below
    jpeg = b"\xff\xd8\xff\xe0\x00\x04ab\xff\xc2\x00\x0b\x08\x01\x2c\x02\x58\x01\x01\x11\x00\xff\xda"
    eq(imgutil.image_info(jpeg), ("jpeg", 600, 300), "JPEG dims from a progressive SOF2 after APP0")
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x10\x00\x00\x00\xff\x04\x00\x1f\x03\x00"
    eq(imgutil.image_info(vp8x), ("webp", 1280, 800), "WebP VP8X canvas size")


# --------------------------------------------------------------- pixels

def test_defaults():
    url = P.url("/blocks")
    before = P.count("/blocks")
    s = shoot(url)
    img = ok(s, "defaults", "png", 1280, 800)
    for (x, y), c in (((50, 50), RED), ((250, 50), GREEN), ((50, 250), BLUE), ((99, 99), RED), ((100, 100), WHITE),
                      ((640, 400), WHITE), ((1279, 799), WHITE)):
        px("defaults", img, x, y, c)
    m = s.meta or {}
    eq(m.get("http_status"), 200, "defaults: http_status")
    eq(m.get("final_url"), url, "defaults: final_url is the URL")
    eq(m.get("blocked"), 0, "defaults: nothing blocked")
    eq(P.count("/blocks") - before, 1, "defaults: the page was fetched once")


def test_viewport():
    s = shoot(P.url("/blocks"), "--width", "400", "--height", "300")
    img = ok(s, "400x300", "png", 400, 300)
    px("400x300", img, 50, 50, RED)
    px("400x300", img, 250, 50, GREEN)
    px("400x300", img, 50, 250, BLUE)
    px("400x300", img, 399, 299, WHITE)


def test_scale():
    # /probe: box "w" at CSS (0,0) is red for innerWidth 400, box "d" at
    # CSS (200,0) is green when the page sees devicePixelRatio 2
    s = shoot(P.url("/probe"), "--width", "400", "--height", "300", "--scale", "2")
    img = ok(s, "scale 2", "png", 800, 600)
    px("scale 2: CSS (75,75) is in the 100x100 box at (0,0)", img, 150, 150, RED)
    px("scale 2: CSS (125,75) is right of it", img, 250, 150, WHITE)
    px("scale 2: the page sees devicePixelRatio 2", img, 450, 100, GREEN)
    px("scale 2: CSS (50,150) is below the boxes", img, 100, 300, WHITE)


def test_mobile():
    img = ok(shoot(P.url("/probe"), "--width", "390", "--height", "600"), "desktop 390", "png", 390, 600)
    px("desktop 390: innerWidth is 390", img, 50, 50, RED)
    px("desktop: the page sees devicePixelRatio 1", img, 250, 50, (0, 0, 0))
    img = ok(shoot(P.url("/probe"), "--width", "390", "--height", "600", "--mobile"), "mobile 390", "png", 390, 600)
    # a page without a viewport meta lays out 980px wide on a phone, shrunk to fit
    px("mobile 390: innerWidth is the 980px layout viewport", img, 10, 10, BLUE)
    # full page on a phone is the viewport shot extended downwards: the whole 980px layout, shrunk to 390
    # (issue 14: it was the left 390 CSS px only)
    img = ok(shoot(P.url("/wide"), "--width", "390", "--height", "600", "--mobile"), "mobile 390 /wide", "png",
             390, 600)
    px("mobile 390 /wide: the right box of the 980px layout is in the picture", img, 375, 10, GREEN)
    s = shoot(P.url("/wide"), "--width", "390", "--height", "600", "--mobile", "--full-page")
    img = ok(s, "mobile 390 full page /wide", "png")
    if img is not None:
        eq(img.width, 390, "mobile full page: as wide as the phone")
        want = round(2000 * 390 / 980)
        check(abs(img.height - want) <= 2, "mobile full page: the 2000px page at the phone's zoom", want, img.height)
        px("mobile full page: the left box", img, 10, 10, RED)
        px("mobile full page: the right box of the 980px layout", img, 375, 10, GREEN)
        px("mobile full page: the band at the bottom", img, 380, img.height - 10, MAGENTA)


def test_full_page():
    img = ok(shoot(P.url("/tall"), "--full-page"), "full page", "png", 1280, 3000)
    px("full page: the band at the bottom", img, 10, 2950, MAGENTA)
    px("full page: the last row", img, 1270, 2999, MAGENTA)
    px("full page: above the band", img, 10, 2850, WHITE)
    img = ok(shoot(P.url("/tall")), "not full page", "png", 1280, 800)
    px("not full page: the viewport only", img, 10, 790, WHITE)


def test_selector():
    img = ok(shoot(P.url("/element"), "--selector", "#card"), "selector #card", "png", 320, 180)
    for x, y in ((0, 0), (319, 0), (0, 179), (319, 179), (160, 90)):
        px("selector #card: all of it is the card", img, x, y, TEAL)
    img = ok(shoot(P.url("/element"), "--selector", "#below"), "selector below the fold", "png", 200, 100)
    for x, y in ((0, 0), (199, 99), (100, 50)):
        px("selector #below (top 1200px, the viewport is 800)", img, x, y, ORANGE)
    img = ok(shoot(P.url("/element"), "--selector", "div#card", "--scale", "2"), "selector with scale 2", "png",
             640, 360)
    px("selector with scale 2", img, 639, 359, TEAL)
    s = shoot(P.url("/element"), "--selector", "#nothing-matches", "--timeout", "3000")
    refused(s, "a selector that matches nothing")


def test_dark():
    img = ok(shoot(P.url("/dark"), "--width", "300", "--height", "200"), "light", "png", 300, 200)
    px("no --dark: the light scheme", img, 280, 180, LIGHT)
    img = ok(shoot(P.url("/dark"), "--width", "300", "--height", "200", "--dark"), "dark", "png", 300, 200)
    px("--dark: prefers-color-scheme: dark", img, 280, 180, DARK)


def test_formats():
    sizes = {}
    for fmt, magic in (("jpeg", lambda b: b[:3] == b"\xff\xd8\xff"),
                       ("webp", lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP")):
        for q in ("10", "95"):
            s = shoot(P.url("/noise"), "--format", fmt, "--quality", q, "--width", "640", "--height", "400")
            ok(s, "%s quality %s" % (fmt, q), fmt, 640, 400)
            check(s.data is not None and magic(s.data), "%s quality %s: the file's magic" % (fmt, q), fmt,
                  (s.data or b"")[:12])
            sizes[fmt, q] = len(s.data or b"")
        check(sizes[fmt, "95"] > 1.5 * sizes[fmt, "10"], "%s: quality 95 is much bigger than quality 10" % fmt,
              "> 1.5 x %d" % sizes[fmt, "10"], sizes[fmt, "95"])
    s = shoot(P.url("/blocks"), "--format", "jpeg", "--width", "320", "--height", "240")
    ok(s, "jpeg without --quality", "jpeg", 320, 240)
    # -o FILE's extension names the format when --format does not (issue 14)
    for ext, fmt in (("jpg", "jpeg"), ("webp", "webp"), ("JPEG", "jpeg")):
        s = shoot(P.url("/blocks"), "--width", "320", "--height", "240", ext=ext)
        ok(s, "-o x.%s without --format" % ext, fmt, 320, 240)


# --------------------------------------------------------------- waiting

def test_wait_for():
    # without waiting, an element added after 6 s is not in the picture ...
    img = ok(shoot(P.url("/late?ms=6000"), "--width", "300", "--height", "200"), "no --wait-for", "png", 300, 200)
    px("no --wait-for: the late element is not there yet", img, 50, 50, WHITE)
    # ... with --wait-for it is
    s = shoot(P.url("/late?ms=500"), "--width", "300", "--height", "200", "--wait-for", "#late")
    img = ok(s, "--wait-for #late", "png", 300, 200)
    px("--wait-for #late: the element added after 500 ms is in the picture", img, 50, 50, GREEN)
    s = shoot(P.url("/blocks"), "--wait-for", "#never-there", "--timeout", "2000")
    refused(s, "--wait-for a selector that never appears", 1, ["timed out"])
    check(s.elapsed < 2.0 + 5.0 * SLOW, "--wait-for that never appears: gives up soon after --timeout",
          "< %.0fs" % (2.0 + 5.0 * SLOW), round(s.elapsed, 1))


def test_delay():
    s = shoot(P.url("/late?ms=800"), "--width", "300", "--height", "200", "--delay", "2000")
    img = ok(s, "--delay 2000", "png", 300, 200)
    px("--delay 2000: the element added after 800 ms is in the picture", img, 50, 50, GREEN)
    check(s.elapsed >= 2.0, "--delay 2000: the shot took at least 2 s", ">= 2.0", round(s.elapsed, 2))


def test_wait_until():
    img = ok(shoot(P.url("/idle?ms=3000"), "--width", "300", "--height", "200"), "wait-until load", "png", 300, 200)
    px("load: the fetch answering after 3 s has not coloured the page", img, 150, 100, WHITE)
    img = ok(shoot(P.url("/idle?ms=2000"), "--width", "300", "--height", "200", "--wait-until", "networkidle"),
             "wait-until networkidle", "png", 300, 200)
    px("networkidle: waited for the fetch, the page is green", img, 150, 100, GREEN)
    # an <img> that never finishes: DOMContentLoaded fires, load never does
    s = shoot(P.url("/hang-img?s=20"), "--width", "300", "--height", "200", "--wait-until", "domcontentloaded",
              "--timeout", "10000")
    img = ok(s, "wait-until domcontentloaded", "png", 300, 200)
    px("domcontentloaded: the page is there", img, 150, 100, YELLOW)
    check(s.elapsed < 10.0, "domcontentloaded: did not wait for the hanging image", "< 10 s", round(s.elapsed, 1))
    s = shoot(P.url("/hang-img?s=20"), "--width", "300", "--height", "200", "--timeout", "2500")
    refused(s, "wait-until load with an image that never loads", 1, ["timed out"])


def test_http_status_and_redirect():
    s = shoot(P.url("/missing"), "--width", "300", "--height", "200")
    img = ok(s, "a 404 page", "png", 300, 200)
    eq((s.meta or {}).get("http_status"), 404, "a 404 page: http_status 404")
    px("a 404 page is still rendered", img, 150, 100, PURPLE)
    before = P.count("/redirect")
    s = shoot(P.url("/redirect?to=/blocks"), "--width", "300", "--height", "200")
    img = ok(s, "a redirect", "png", 300, 200)
    eq((s.meta or {}).get("final_url"), P.url("/blocks"), "a redirect: final_url is where it led")
    eq((s.meta or {}).get("http_status"), 200, "a redirect: http_status of the final page")
    px("a redirect: the final page is rendered", img, 50, 50, RED)
    eq(P.count("/redirect") - before, 1, "a redirect: the first URL was fetched")


def test_net_error_words():
    # https:// to a server that speaks only HTTP: Chromium's net::ERR_SSL_PROTOCOL_ERROR, in words (issue 14)
    s = shoot(P.url("/blocks").replace("http://", "https://"), "--timeout", "20000")
    r = refused(s, "https:// to an HTTP-only server", 1, ["did not load", "does not speak HTTPS", "http://"])
    check("(net::ERR_SSL_PROTOCOL_ERROR)" in (r or ""), "the code stays, in parentheses, after the words",
          "(net::ERR_SSL_PROTOCOL_ERROR)", r)


def test_timeout():
    before = P.count("/never")
    s = shoot(P.url("/never"), "--timeout", "2000")
    refused(s, "a page that never loads, --timeout 2000", 1, ["timed out"])
    check(s.elapsed < 2.0 + 4.0 * SLOW, "--timeout 2000: gives up soon after 2 s", "< %.0fs" % (2.0 + 4.0 * SLOW),
          round(s.elapsed, 1))
    check(s.elapsed >= 1.9, "--timeout 2000: not before 2 s", ">= 1.9", round(s.elapsed, 1))
    eq(P.count("/never") - before, 1, "--timeout: the page was requested")


# --------------------------------------------------------------- usage

BAD_FLAGS = [
    (["--width", "0"], "width"), (["--width", "abc"], "width"), (["--width", "3841"], "width"),
    (["--width", "12.5"], "width"), (["--height", "0"], "height"), (["--height", "2161"], "height"),
    (["--scale", "0"], "scale"), (["--scale", "4.5"], "scale"), (["--scale", "x"], "scale"),
    (["--format", "gif"], "format"), (["--format", "PNG"], "format"),
    (["--format", "jpeg", "--quality", "0"], "quality"), (["--format", "webp", "--quality", "101"], "quality"),
    (["--format", "jpeg", "--quality", "high"], "quality"), (["--quality", "80"], "quality"),
    (["--wait-until", "idle"], ("wait-until", "wait_until")), (["--delay", "-1"], "delay"),
    (["--delay", "10001"], "delay"), (["--timeout", "999"], "timeout"), (["--timeout", "60001"], "timeout"),
    (["--wait-for", ""], ("wait-for", "wait_for")), (["--selector", ""], "selector"),
    (["--full-page", "--selector", "#card"], ("selector", "full-page", "full_page")),
    (["--no-such-flag"], "no-such-flag"),
]


def test_bad_flags():
    before = P.count("/blocks")
    for flags, name in BAD_FLAGS:
        s = shoot(P.url("/blocks"), *flags, timeout=15)
        what = "shot %s" % " ".join(flags)
        eq(s.rc, 2, what + ": exit 2")
        check(s.data is None, what + ": no file", None, s.path if s.data else None)
        names = name if isinstance(name, tuple) else (name,)
        check(any(n in s.stderr for n in names), what + ": stderr names the flag", names, s.stderr[-400:])
    for url, what in (("ftp://127.0.0.1/x", "an ftp URL"), ("not a url", "words"), ("http://", "no host")):
        s = shoot(url, timeout=15)
        eq(s.rc, 2, "shot %s: exit 2" % what)
        check("url" in s.stderr.lower(), "shot %s: stderr names the url" % what, "url", s.stderr[-400:])
        check(s.data is None, "shot %s: no file" % what, None, s.path if s.data else None)
    s = shoot(P.url("/blocks"), out="")
    check(s.rc == 2, "shot with an empty -o: exit 2", 2, s.rc)
    eq(P.count("/blocks"), before, "no bad invocation fetched the page")


if __name__ == "__main__":
    run("render_shot", [test_imgutil_roundtrip, test_defaults, test_viewport, test_scale, test_mobile,
                        test_full_page, test_selector, test_dark, test_formats, test_wait_for, test_delay,
                        test_wait_until, test_http_status_and_redirect, test_net_error_words, test_timeout, test_bad_flags])

"""The pixel budget of one capture (hardening, issue 16 item 11).

`{"full_page":true,"viewport":{"width":3840,"height":2160,"scale":4}}` on a
tall page aborted the shared Chromium; a selector clip of a 20,000 x 16,384
element returned a 327 Mpx image. Now:
- where the request decides it (the viewport), a capture over
  max-capture-pixels or over 16,384 device pixels a side is refused before
  any browser starts: `tintype shot` exits 2 naming viewport (the API
  answers 400 with field viewport, it.api_jobs);
- where the page decides it (a full page's height, an element's size), the
  capture is cut to the budget and the result says "clipped": true — the
  image has exactly the budget's size, and the browser lives on (a normal
  shot after it, in the same invocation sequence, succeeds)."""
import atexit

import pageserver
import shotutil
from pageserver import GREEN, MAGENTA, Pages, page
from shotutil import ok, px, refused, shoot
from ttharness import check, eq, run

P = Pages("127.0.0.1")
atexit.register(shotutil.cleanup)
atexit.register(P.stop)


def _huge(q, h):
    return 200, page("huge", '<div id="huge" style="position:absolute;left:0;top:0;width:20000px;'
                             'height:16384px;background:rgb(0,255,0)"></div>')


pageserver.ROUTES["/huge"] = _huge


def test_viewport_over_budget_refused():
    s = shoot(P.url("/blocks"), "--full-page", "--width", "3840", "--height", "2160", "--scale", "4")
    refused(s, "3840x2160 at scale 4 (132.7 M device pixels > 100 M)", 2, ["viewport", "max-capture-pixels"])
    s = shoot(P.url("/blocks"), "--width", "5000", "--height", "100", "--scale", "4",
              env={"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32", "TINTYPE_MAX_VIEWPORT_WIDTH": "6000"})
    refused(s, "20,000 device pixels wide (> 16,384)", 2, ["viewport", "16384"])


def test_full_page_cut_to_budget():
    env = {"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32", "TINTYPE_MAX_CAPTURE_PIXELS": "4000000"}
    s = shoot(P.url("/tall"), "--full-page", "--width", "1000", "--height", "500", "--scale", "2", env=env)
    img = ok(s, "a 3000 px tall page, 1000 wide at scale 2, budget 4 M", "png", 2000, 2000)
    eq((s.meta or {}).get("clipped"), True, "the result says clipped")
    if img:
        px("the top of the page is there", img, 10, 10, (255, 255, 255))
    # within the budget: not clipped, whole page
    s = shoot(P.url("/tall"), "--full-page", "--width", "300", "--height", "200", env=env)
    img = ok(s, "the same page 300 wide at scale 1 (0.9 M)", "png", 300, 3000)
    check("clipped" not in (s.meta or {}), "not clipped", None, (s.meta or {}).get("clipped"))
    if img:
        px("its bottom band", img, 10, 2990, MAGENTA)


def test_selector_cut_to_budget():
    env = {"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32", "TINTYPE_MAX_CAPTURE_PIXELS": "1000000"}
    s = shoot(P.url("/huge"), "--selector", "#huge", "--width", "800", "--height", "600", env=env)
    img = ok(s, "a 20,000 x 16,384 element, budget 1 M", "png", 16384, 61)
    eq((s.meta or {}).get("clipped"), True, "the result says clipped")
    if img:
        px("the element's colour", img, 100, 30, GREEN)


if __name__ == "__main__":
    run("render_budget", [test_viewport_over_budget_refused, test_full_page_cut_to_budget,
                          test_selector_cut_to_budget])

"""format pdf (issue 15 item 3): `tintype shot -o x.pdf` and jobs of
`tintype up`, read back with poppler-utils as a user would: pdfinfo (page
count, page size), pdftotext (the page's text, @media print vs screen),
pdftoppm (a pixel of the printed page: margins and print_background).
Pages: pageserver.py's /print (GREEN background, PRINT-MEDIA only in print,
SCREEN-MEDIA only on screen, ?h= makes it long), on 127.0.0.1.

Also: the result's metadata (format pdf, pages, page size in points), bad
values of every pdf field refused naming the field (shot: exit 2; API: 400
problem naming it), page_ranges beyond the document, max-pdf-bytes and
max-pdf-pages failing the job naming them, GET /result as application/pdf,
and a warm context handing no `media: screen` on to its owner's next job."""
import atexit
import os
import re
import shutil
import subprocess
import tempfile
import time

from apiclient import call, invalid, new_user, wait_job
from pageserver import GREEN, WHITE, Pages
from shotutil import ALLOW_LOOPBACK, refused, shoot
from ttharness import ISOLATION, SLOW, Server, Skip, check, eq, run

P = Pages("127.0.0.1")
atexit.register(P.stop)
TMP = tempfile.mkdtemp(prefix="tt-pdf-")
atexit.register(shutil.rmtree, TMP, True)
OWNER = (ISOLATION or "owner") == "owner"


def need_poppler():
    if not shutil.which("pdfinfo") or not shutil.which("pdftotext") or not shutil.which("pdftoppm"):
        raise Skip("poppler-utils (pdfinfo, pdftotext, pdftoppm) not installed: scripts/install-deps.sh")


def _tmp(data):
    fd, path = tempfile.mkstemp(suffix=".pdf", dir=TMP)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def pdfinfo(data):
    """{"pages": N, "size": (w, h) points of page 1}"""
    out = subprocess.run(["pdfinfo", _tmp(data)], capture_output=True, text=True, timeout=30).stdout
    pages = re.search(r"^Pages:\s+(\d+)", out, re.M)
    size = re.search(r"^Page size:\s+([\d.]+) x ([\d.]+) pts", out, re.M)
    return {"pages": int(pages.group(1)) if pages else None,
            "size": (float(size.group(1)), float(size.group(2))) if size else None}


def pdftext(data):
    return subprocess.run(["pdftotext", "-layout", _tmp(data), "-"], capture_output=True, text=True,
                          timeout=30).stdout


class Ppm:
    def __init__(self, b):
        m = re.match(rb"P6\s+(\d+)\s+(\d+)\s+(\d+)\s", b)
        self.width, self.height = int(m.group(1)), int(m.group(2))
        self.off = m.end()
        self.b = b

    def rgb(self, x, y):
        i = self.off + (y * self.width + x) * 3
        return tuple(self.b[i:i + 3])


def page1(data):
    """page 1 rendered at 72 dpi: one pixel per point"""
    out = subprocess.run(["pdftoppm", "-r", "72", "-f", "1", "-l", "1", _tmp(data)], capture_output=True,
                         timeout=30).stdout
    return Ppm(out)


def okpdf(s, what):
    """a successful `tintype shot -o x.pdf`: the file is a PDF and the JSON says so"""
    if not check(s.rc == 0 and s.data is not None, what + ": exit 0 and a file", 0, s):
        return None
    check(s.data.startswith(b"%PDF-"), what + ": the file is a PDF", "%PDF-", s.data[:8])
    m = s.meta or {}
    eq(m.get("format"), "pdf", what + ": JSON format")
    eq(m.get("bytes"), len(s.data), what + ": JSON bytes is the file's size")
    info = pdfinfo(s.data)
    eq(m.get("pages"), info["pages"], what + ": JSON pages is pdfinfo's")
    if info["size"]:
        check(abs(m.get("width", 0) - info["size"][0]) <= 1.5 and abs(m.get("height", 0) - info["size"][1]) <= 1.5,
              what + ": JSON width, height are the page size in points", info["size"],
              (m.get("width"), m.get("height")))
    eq(m.get("http_status"), 200, what + ": http_status")
    return info


def near(a, b):
    return all(abs(x - y) <= 1.5 for x, y in zip(a, b))


# ------------------------------------------------------------------ shot

def test_paper_sizes():
    need_poppler()
    url = P.url("/print")
    for flags, size, what in ((("--paper", "A4"), (595.3, 841.9), "A4"),
                              ((), (612, 792), "the default, Letter"),
                              (("--paper", "Letter", "--landscape"), (792, 612), "Letter landscape"),
                              (("--paper", "a5"), (419.5, 595.3), "A5"),
                              (("--paper-width", "100mm", "--paper-height", "6in"), (283.5, 432), "100mm x 6in")):
        info = okpdf(shoot(url, *flags, ext="pdf"), what)
        if info:
            check(info["size"] and near(info["size"], size), what + ": page size", size, info["size"])
            eq(info["pages"], 1, what + ": a short page prints one page")


def test_pages_scale_and_ranges():
    need_poppler()
    url = P.url("/print?h=5000")
    info = okpdf(shoot(url, ext="pdf"), "a 5000 px page")
    if info:
        # Letter, 0.4in margins: 10.2in = 979 CSS px a page
        check(info["pages"] in (6, 7), "a 5000 px page prints 6 or 7 Letter pages", "6..7", info["pages"])
    half = okpdf(shoot(url, "--pdf-scale", "0.5", ext="pdf"), "scale 0.5")
    if info and half:
        check(half["pages"] < info["pages"], "pdf.scale 0.5 prints fewer pages", "< %s" % info["pages"],
              half["pages"])
    r = okpdf(shoot(url, "--page-ranges", "2-3, 5", ext="pdf"), "page_ranges 2-3, 5")
    if r:
        eq(r["pages"], 3, "page_ranges 2-3, 5: three pages")
    s = shoot(P.url("/print"), "--page-ranges", "4-9", ext="pdf")
    refused(s, "page_ranges beyond a one-page document", 1, ("page range",))


def test_text_and_media():
    need_poppler()
    s = shoot(P.url("/print"), ext="pdf")
    if okpdf(s, "media print (default)"):
        t = pdftext(s.data)
        check("tintype pdf text" in t, "the page's text is in the PDF", "tintype pdf text", t[:300])
        check("PRINT-MEDIA" in t and "SCREEN-MEDIA" not in t, "print: the @media print styles apply",
              "PRINT-MEDIA only", t[:300])
    s = shoot(P.url("/print"), "--media", "screen", ext="pdf")
    if okpdf(s, "media screen"):
        t = pdftext(s.data)
        check("SCREEN-MEDIA" in t and "PRINT-MEDIA" not in t, "media screen: the screen styles apply",
              "SCREEN-MEDIA only", t[:300])


def test_margins_and_background():
    need_poppler()
    s = shoot(P.url("/print"), "--margin", "1in", "--print-background", ext="pdf")
    if okpdf(s, "margin 1in, print_background"):
        im = page1(s.data)
        eq((im.width, im.height), (612, 792), "pdftoppm at 72 dpi: a Letter page is 612 x 792")
        eq(im.rgb(30, 30), WHITE, "print_background: the margin (1in = 72pt) stays white")
        eq(im.rgb(306, 600), GREEN, "print_background: the page's GREEN background is printed")
        eq(im.rgb(80, 700), GREEN, "print_background: just inside the margin is GREEN")
    s = shoot(P.url("/print"), "--margin", "0", "--print-background", ext="pdf")
    if okpdf(s, "margin 0, print_background"):
        eq(page1(s.data).rgb(3, 3), GREEN, "margin 0: the background reaches the paper's edge")
    s = shoot(P.url("/print"), "--margin", "1in", ext="pdf")
    if okpdf(s, "no print_background"):
        eq(page1(s.data).rgb(306, 600), WHITE, "without print_background no background is printed")


def test_shot_options_json_and_extension():
    need_poppler()
    s = shoot(P.url("/print"), "--options", '{"pdf":{"paper":"A4","landscape":true}}', ext="pdf")
    info = okpdf(s, "--options JSON")
    if info:
        check(near(info["size"], (841.9, 595.3)), "--options pdf.paper A4 landscape", (841.9, 595.3), info["size"])
    s = shoot(P.url("/print"), "--format", "png", ext="pdf")
    refused(s, "--format png -o x.pdf", 2, ("does not match",))


BAD = (
    (("--paper", "B5"), "--paper"),
    (("--pdf-scale", "3"), "--pdf-scale"),
    (("--margin", "2furlongs"), "--margin"),
    (("--margin", "6in"), "--margin"),
    (("--page-ranges", "3-1"), "--page-ranges"),
    (("--media", "tv"), "--media"),
    (("--paper-width", "5in"), "pdf.height"),
    (("--quality", "50"), "--quality"),
    (("--full-page",), "full_page"),
    (("--options", '{"pdf":{"colour":1}}'), "pdf.colour"),
    (("--options", "[1]"), "--options"),
)


def test_bad_values_shot():
    before = P.count("/print")
    for flags, name in BAD:
        s = shoot(P.url("/print"), *flags, ext="pdf", timeout=15)
        what = "shot -o x.pdf %s" % " ".join(flags)
        eq(s.rc, 2, what + ": exit 2")
        check(name in s.reason(), what + ": the reason names " + name, name, s.reason() or s.stderr[-300:])
        check(s.data is None, what + ": no file", None, s.path if s.data else None)
    s = shoot(P.url("/print"), "--paper", "A4", timeout=15)  # x.png
    eq(s.rc, 2, "pdf options with a png: exit 2")
    check("pdf" in s.reason(), "pdf options with a png: the reason names pdf", "pdf", s.reason())
    eq(P.count("/print"), before, "no bad invocation fetched the page")


def test_limits_shot():
    need_poppler()
    s = shoot(P.url("/print?h=3000"), ext="pdf", env=dict(ALLOW_LOOPBACK, TINTYPE_MAX_PDF_BYTES="2k"))
    refused(s, "a PDF over --max-pdf-bytes 2k", 1, ("max-pdf-bytes",))
    s = shoot(P.url("/print?h=3000"), ext="pdf", env=dict(ALLOW_LOOPBACK, TINTYPE_MAX_PDF_PAGES="2"))
    refused(s, "a 4-page PDF over --max-pdf-pages 2", 1, ("max-pdf-pages", "page_ranges"))
    s = shoot(P.url("/print?h=3000"), "--page-ranges", "1-2", ext="pdf",
              env=dict(ALLOW_LOOPBACK, TINTYPE_MAX_PDF_PAGES="2"))
    info = okpdf(s, "page_ranges 1-2 within --max-pdf-pages 2")
    if info:
        eq(info["pages"], 2, "page_ranges 1-2: two pages")


# ------------------------------------------------------------------ jobs

def wait(s, key, jid, timeout=60):
    return wait_job(s.port, key, jid, timeout)


def job(s, key, body, what):
    r = call(s.port, "POST", "/api/jobs", key=key, body=body)
    if not check(r.status == 202, what + ": POST 202", 202, (r.status, r.body[:300])):
        return {}
    return wait(s, key, (r.j or {}).get("id"))


def result(s, key, j, what):
    r = call(s.port, "GET", "/api/jobs/%s/result" % j.get("id"), key=key, timeout=20)
    eq(r.status, 200, what + ": GET /result 200")
    eq((r.get("Content-Type") or "").split(";")[0], "application/pdf", what + ": Content-Type application/pdf")
    check(r.body.startswith(b"%PDF-"), what + ": the body is a PDF", "%PDF-", r.body[:8])
    return r.body


def test_jobs():
    need_poppler()
    env = {"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32"}
    with Server("--concurrency", "1", "--max-pdf-pages", "3", cmd="up", workers=1, env=env) as s:
        key = new_user(s.port, "pdf")[1]
        base = {"url": P.url("/print"), "format": "pdf"}
        for pdf, field in (({"paper": "B5"}, "pdf.paper"), ({"scale": 5}, "pdf.scale"), ({"margin": "9in"}, "pdf.margin"),
                           ({"page_ranges": "a"}, "pdf.page_ranges"), ({"width": "5in"}, "pdf.height"),
                           ({"media": "tv"}, "pdf.media"), ({"margin": {"top": "1parsec"}}, "pdf.margin.top"),
                           ({"landscape": "yes"}, "pdf.landscape"), ({"print_background": 1}, "pdf.print_background")):
            invalid(call(s.port, "POST", "/api/jobs", key=key, body=dict(base, pdf=pdf)), field, "pdf %r" % (pdf,))
        invalid(call(s.port, "POST", "/api/jobs", key=key, body={"url": P.url("/print"), "pdf": {"paper": "A4"}}),
                "pdf", "pdf options with format png")
        invalid(call(s.port, "POST", "/api/jobs", key=key, body=dict(base, quality=60)), "quality", "pdf with quality")

        a = job(s, key, dict(base, pdf={"paper": "A4", "media": "screen"}), "A4, media screen")
        eq(a.get("state"), "succeeded", "A4 media screen: succeeded (error: %s)" % a.get("error"))
        eq((a.get("request") or {}).get("pdf", {}).get("paper"), "A4", "the job's request keeps pdf.paper")
        ra = a.get("result") or {}
        eq((ra.get("format"), ra.get("pages"), ra.get("width"), ra.get("height")), ("pdf", 1, 595, 842),
           "result: format pdf, 1 page of 595 x 842 points")
        if a.get("state") == "succeeded":
            data = result(s, key, a, "A4 job")
            eq(len(data), ra.get("bytes"), "result.bytes is the body's length")
            check(near(pdfinfo(data)["size"], (595.3, 841.9)), "the served PDF is A4", (595.3, 841.9),
                  pdfinfo(data)["size"])
            check("SCREEN-MEDIA" in pdftext(data), "media screen: the screen styles", "SCREEN-MEDIA",
                  pdftext(data)[:200])
        # the owner's next job: the same warm context, no screen media left in it
        b = job(s, key, base, "Letter, media print")
        eq(b.get("state"), "succeeded", "the next job: succeeded (error: %s)" % b.get("error"))
        eq((b.get("result") or {}).get("context_jobs"), 2 if OWNER else 1, "the next job: result.context_jobs")
        if b.get("state") == "succeeded":
            t = pdftext(result(s, key, b, "the next job"))
            check("PRINT-MEDIA" in t and "SCREEN-MEDIA" not in t,
                  "the next job of the owner prints @media print: media screen was reset", "PRINT-MEDIA only", t[:300])
        c = job(s, key, dict(base, url=P.url("/print?h=6000")), "a long page over --max-pdf-pages 3")
        eq(c.get("state"), "failed", "over --max-pdf-pages: the job failed")
        check("max-pdf-pages" in (c.get("error") or ""), "... naming max-pdf-pages", "max-pdf-pages", c.get("error"))


if __name__ == "__main__":
    run("render_pdf", [test_paper_sizes, test_pages_scale_and_ranges, test_text_and_media,
                       test_margins_and_background, test_shot_options_json_and_extension, test_bad_values_shot,
                       test_limits_shot, test_jobs])

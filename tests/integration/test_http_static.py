#!/usr/bin/env python3
"""it.http_static — the embedded web/ files over real HTTP: GET /, /index.html,
/style.css, /robots.txt; Content-Type, ETag, Date, Content-Length; HEAD;
If-None-Match -> 304; gzip variants and Accept-Encoding; 404 and 405 as
problem+json; traversal attempts that must never escape the embedded set;
X-Request-Id echoed and logged."""

import re
import time

from ttharness import (ETAG_GZ_RE, ETAG_RE, IMF_FIXDATE, Conn, Server, check, eq, fetch, gunzip,
                       parse_http_date, request, run, web_file)

S = Server(processes=2)  # shared by this file's tests; run() starts and stops it

INDEX = web_file("index.html")
STYLE = web_file("style.css")
ROBOTS = web_file("robots.txt")


def check_common(r, path, ctype, body):
    eq(r.status, 200, "GET %s status" % path)
    eq(r.get("Content-Type"), ctype, "GET %s Content-Type" % path)
    check(ETAG_RE.match(r.get("ETag", "")), 'GET %s ETag is "<16 hex>"' % path, 'r"[0-9a-f]{16}"', r.get("ETag"))
    d = r.get("Date", "")
    if check(IMF_FIXDATE.match(d), "GET %s Date is an IMF-fixdate" % path, "Sun, 06 Nov 1994 08:49:37 GMT", d):
        check(abs(parse_http_date(d) - time.time()) < 60, "GET %s Date is now" % path, time.time(), d)
    eq(r.get("Content-Length"), str(len(body)), "GET %s Content-Length" % path)
    eq(len(r.all("Content-Length")), 1, "GET %s has one Content-Length" % path)
    check(r.body == body, "GET %s body is web/ file" % path, body[:80], r.body[:80])
    check(not r.has("Content-Encoding"), "GET %s without Accept-Encoding is not encoded" % path, None,
          r.get("Content-Encoding"))


def test_get_files():
    for path, ctype, body in (("/", "text/html; charset=utf-8", INDEX),
                              ("/index.html", "text/html; charset=utf-8", INDEX),
                              ("/style.css", "text/css; charset=utf-8", STYLE)):
        check_common(fetch(S.port, "GET", path), path, ctype, body)
    r = fetch(S.port, "GET", "/robots.txt")
    eq(r.status, 200, "GET /robots.txt status")
    check(r.body == ROBOTS, "GET /robots.txt body", ROBOTS, r.body)
    check(r.get("Content-Type", "").startswith("text/plain"), "GET /robots.txt Content-Type is text/plain",
          "text/plain; charset=utf-8", r.get("Content-Type"))
    a, b = fetch(S.port, "GET", "/"), fetch(S.port, "GET", "/index.html")
    eq(a.get("ETag"), b.get("ETag"), "/ and /index.html have the same ETag")
    c = fetch(S.port, "GET", "/style.css")
    check(c.get("ETag") != b.get("ETag"), "style.css and index.html have different ETags", "different", c.get("ETag"))
    eq(fetch(S.port, "GET", "/index.html").get("ETag"), b.get("ETag"), "ETag is stable across requests")


def test_query_string_ignored():
    r = fetch(S.port, "GET", "/style.css?v=2")
    eq(r.status, 200, "GET /style.css?v=2 (query ignored for static files)")
    check(r.body == STYLE, "GET /style.css?v=2 body", STYLE[:40], r.body[:40])


def test_head_then_get_same_connection():
    for path in ("/index.html", "/style.css", "/", "/robots.txt"):
        with Conn(S.port) as c:
            c.send(request("HEAD", path))
            h = c.read_response(head=True)
            c.send(request("GET", path))
            g = c.read_response()  # parses only if HEAD sent no body bytes
            eq(h.status, 200, "HEAD %s status" % path)
            eq(h.get("Content-Length"), g.get("Content-Length"), "HEAD %s Content-Length equals GET's" % path)
            eq(h.get("ETag"), g.get("ETag"), "HEAD %s ETag equals GET's" % path)
            eq(h.get("Content-Type"), g.get("Content-Type"), "HEAD %s Content-Type equals GET's" % path)
            check(h.has("Date"), "HEAD %s has Date" % path, "Date", h.headers)
            check(g.body == web_file(path.strip("/") or "index.html"), "GET after HEAD %s body" % path)
            check(not c.buf, "no stray bytes after HEAD+GET %s" % path, b"", bytes(c.buf))
    # HEAD of the gzip variant keeps the gzip Content-Length
    with Conn(S.port) as c:
        c.send(request("HEAD", "/index.html", {"Accept-Encoding": "gzip"}))
        h = c.read_response(head=True)
        c.send(request("GET", "/index.html", {"Accept-Encoding": "gzip"}))
        g = c.read_response()
        eq(h.get("Content-Encoding"), "gzip", "HEAD gzip Content-Encoding")
        eq(h.get("Content-Length"), g.get("Content-Length"), "HEAD gzip Content-Length equals GET's")
        eq(h.get("ETag"), g.get("ETag"), "HEAD gzip ETag equals GET's")
    # HEAD of a 404 has no body either
    with Conn(S.port) as c:
        c.send(request("HEAD", "/nope.html") + request("GET", "/robots.txt"))
        h = c.read_response(head=True)
        g = c.read_response()
        eq(h.status, 404, "HEAD /nope.html status")
        eq((g.status, g.body), (200, ROBOTS), "GET after HEAD 404 on same connection")


def test_if_none_match():
    etag = fetch(S.port, "GET", "/index.html").get("ETag")
    for inm, desc in ((etag, "exact"), ("*", "*"), ('"0000000000000000", ' + etag, "in a list"),
                      ("W/" + etag, "weak form (If-None-Match uses weak comparison)")):
        with Conn(S.port) as c:
            c.send(request("GET", "/index.html", {"If-None-Match": inm}) + request("GET", "/robots.txt"))
            r = c.read_response()
            eq(r.status, 304, "If-None-Match %s -> 304" % desc)
            eq(r.get("ETag"), etag, "304 (%s) carries the ETag" % desc)
            check(r.get("Content-Length") in (None, "0", str(len(INDEX))), "304 Content-Length absent/0/entity",
                  "absent", r.get("Content-Length"))
            g = c.read_response()  # proves the 304 had no body
            eq((g.status, g.body), (200, ROBOTS), "next response after 304 (%s) parses" % desc)
    r = fetch(S.port, "GET", "/index.html", {"If-None-Match": '"0123456789abcdef"'})
    eq(r.status, 200, "wrong If-None-Match -> 200")
    check(r.body == INDEX, "wrong If-None-Match body")
    r = fetch(S.port, "HEAD", "/index.html", {"If-None-Match": etag})
    eq(r.status, 304, "HEAD with matching If-None-Match -> 304")
    # the gzip variant has its own validator
    gz = fetch(S.port, "GET", "/index.html", {"Accept-Encoding": "gzip"}).get("ETag")
    r = fetch(S.port, "GET", "/index.html", {"Accept-Encoding": "gzip", "If-None-Match": gz})
    eq(r.status, 304, "If-None-Match of the gzip ETag with Accept-Encoding: gzip -> 304")
    eq(r.get("ETag"), gz, "304 of the gzip variant carries the gzip ETag")


def test_gzip():
    plain = fetch(S.port, "GET", "/index.html")
    for ae in ("gzip", "gzip, deflate, br", "deflate, gzip;q=0.5", "GZip", "br;q=1.0, gzip;q=0.8"):
        r = fetch(S.port, "GET", "/index.html", {"Accept-Encoding": ae})
        eq(r.status, 200, "Accept-Encoding %r status" % ae)
        eq(r.get("Content-Encoding"), "gzip", "Accept-Encoding %r -> Content-Encoding" % ae)
        check("accept-encoding" in r.get("Vary", "").lower(), "Accept-Encoding %r -> Vary: Accept-Encoding" % ae,
              "Accept-Encoding", r.get("Vary"))
        check(ETAG_GZ_RE.match(r.get("ETag", "")), 'gzip ETag is "<16 hex>-gz"', '"…-gz"', r.get("ETag"))
        check(r.get("ETag") != plain.get("ETag"), "gzip ETag differs from plain", plain.get("ETag"), r.get("ETag"))
        eq(r.get("Content-Length"), str(len(r.body)), "gzip Content-Length is the compressed size")
        try:
            body = gunzip(r.body)
        except Exception as e:  # noqa: BLE001
            body = "not gzip: %s" % e
        check(body == INDEX, "gzip body (%r) gunzips to web/index.html" % ae, INDEX[:60], body[:60])
    for ae in ("gzip;q=0", "identity", "br", "gzip; q=0.000", ""):
        r = fetch(S.port, "GET", "/index.html", {"Accept-Encoding": ae})
        eq(r.status, 200, "Accept-Encoding %r status" % ae)
        check(not r.has("Content-Encoding"), "Accept-Encoding %r -> plain" % ae, None, r.get("Content-Encoding"))
        check(r.body == INDEX, "Accept-Encoding %r body is plain" % ae)
        eq(r.get("ETag"), plain.get("ETag"), "Accept-Encoding %r -> plain ETag" % ae)
    r = fetch(S.port, "GET", "/style.css", {"Accept-Encoding": "gzip"})
    if r.get("Content-Encoding") == "gzip":
        check(gunzip(r.body) == STYLE, "style.css gzip body gunzips to the file")
    else:
        check(r.body == STYLE, "style.css plain body")
    r = fetch(S.port, "GET", "/robots.txt", {"Accept-Encoding": "gzip"})
    eq(r.status, 200, "robots.txt with gzip status")
    if r.get("Content-Encoding") == "gzip":
        check(gunzip(r.body) == ROBOTS, "robots.txt gzip body gunzips to the file")
    else:
        check(r.body == ROBOTS, "robots.txt (no gzip variant) body is plain", ROBOTS, r.body)
        check(r.get("Content-Encoding") is None, "robots.txt no Content-Encoding", None, r.get("Content-Encoding"))


def check_problem(r, status, what):
    eq(r.status, status, what + " status")
    eq(r.get("Content-Type"), "application/problem+json", what + " Content-Type")
    try:
        p = r.json()
    except ValueError as e:
        check(False, what + " body is JSON", "JSON", "%r (%s)" % (r.body[:200], e))
        return
    for k in ("type", "title", "status", "detail"):
        check(k in p, "%s problem has %r" % (what, k), k, p)
    eq(p.get("status"), status, what + " problem status")


def test_not_found():
    for path in ("/nope.html", "/index.htm", "/index.html/", "/web/index.html", "/INDEX.HTML", "/api/none"):
        check_problem(fetch(S.port, "GET", path), 404, "GET " + path)


def test_method_not_allowed():
    for m in ("POST", "PUT", "DELETE", "PATCH"):
        r = fetch(S.port, m, "/index.html", {"Content-Length": "0"})
        check_problem(r, 405, m + " /index.html")
        allow = [t.strip() for t in r.get("Allow", "").split(",")]
        eq(sorted(allow), ["GET", "HEAD"], m + " /index.html Allow")
    r = fetch(S.port, "POST", "/", {"Content-Length": "0"})
    eq(r.status, 405, "POST / status")


TRAVERSALS = [
    "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2fetc%2fpasswd", "/..%2F..%2F..%2Fetc%2Fpasswd",
    "/index.html%00.css", "//etc/passwd", "/.%2e/", "/.%2e/.%2e/etc/passwd", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/..\\..\\etc\\passwd", "/%5c..%5c..%5cetc%5cpasswd", "/....//....//etc/passwd", "/%252e%252e/etc/passwd",
    "/%c0%ae%c0%ae/etc/passwd", "/static/../../../etc/passwd", "/.", "/..", "/%2e", "/etc/passwd",
    "/proc/self/environ", "/../web/index.html", "/./../CMakeLists.txt", "/%00", "/index.html%00",
]


def test_traversal():
    for path in TRAVERSALS + ["/web/../index.html"]:
        with Conn(S.port) as c:
            c.send(request("GET", path))
            try:
                r = c.read_response()
            except Exception as e:  # noqa: BLE001
                check(False, "GET %s answered" % path, "400 or 404", repr(e))
                continue
        ok = r.status in (400, 404)
        if path in ("/web/../index.html", "/./../CMakeLists.txt", "/../web/index.html") and r.status == 200:
            ok = r.body == INDEX  # a normalised path may only land on an embedded file
        check(ok, "GET %r -> 400/404 (never a file outside web/)" % path, "400 or 404", "%d %r" % (r.status, r.body[:80]))
        check(b"root:" not in r.body and b"PATH=" not in r.body and b"cmake_minimum" not in r.body,
              "GET %r leaks nothing" % path, "no file content", r.body[:200])
    # the server is still fine
    eq(fetch(S.port, "GET", "/index.html").status, 200, "GET /index.html after traversal attempts")


def test_request_id():
    with Conn(S.port) as c:
        r = c.roundtrip("GET", "/robots.txt", {"X-Request-Id": "abc-123"})
    eq(r.get("X-Request-Id"), "abc-123", "X-Request-Id echoed")
    ln = S.wait_log(lambda l: l.get("msg") == "request" and l.get("request_id") == "abc-123", 3)
    check(ln is not None, "request log line with request_id abc-123", "a line", S.logs("request")[-3:])
    if ln:
        eq(ln.get("method"), "GET", "log line method")
        eq(ln.get("path"), "/robots.txt", "log line path")
        eq(ln.get("status"), 200, "log line status")
        check(isinstance(ln.get("bytes"), int) and ln["bytes"] > 0, "log line bytes > 0", ">0", ln.get("bytes"))
        check(isinstance(ln.get("us"), int) and ln["us"] >= 0, "log line us >= 0", ">=0", ln.get("us"))
        for k in ("time", "level", "pid", "role"):
            check(k in ln, "log line has %s" % k, k, ln)
    # generated ones: non-empty, distinct, logged
    ids = []
    for _ in range(3):
        r = fetch(S.port, "GET", "/style.css")
        rid = r.get("X-Request-Id", "")
        check(rid and len(rid) <= 128 and re.match(r"^[\x21-\x7e]+$", rid), "generated X-Request-Id is a token",
              "non-empty token", rid)
        ids.append(rid)
    eq(len(set(ids)), 3, "generated request ids are distinct")
    if ids[0]:
        ln = S.wait_log(lambda l: l.get("msg") == "request" and l.get("request_id") == ids[0], 3)
        check(ln is not None, "generated request id appears in the log", ids[0], S.logs("request")[-3:])
    # bad ones are replaced
    for bad, desc in (("a" * 129, "129 chars"), ("a" * 1000, "1000 chars"), ("abc def", "a space"),
                      ("abc\tdef", "a tab")):
        r = fetch(S.port, "GET", "/robots.txt", [("X-Request-Id", bad)])
        eq(r.status, 200, "bad X-Request-Id (%s) status" % desc)
        rid = r.get("X-Request-Id", "")
        check(rid and rid != bad.strip() and len(rid) <= 128 and " " not in rid and "\t" not in rid,
              "X-Request-Id with %s is replaced by a generated one" % desc, "a generated id", rid)
    # an id with JSON-special characters must not break the JSON log
    r = fetch(S.port, "GET", "/robots.txt", [("X-Request-Id", 'q"u\\o{te}')])
    eq(r.status, 200, "X-Request-Id with quote/backslash status")
    rid = r.get("X-Request-Id", "")
    if rid == 'q"u\\o{te}':
        ln = S.wait_log(lambda l: l.get("msg") == "request" and l.get("request_id") == rid, 3)
        check(ln is not None, "echoed id with quote/backslash appears intact in the JSON log", rid,
              S.logs("request")[-2:])


def test_log_line_per_request():
    tag = "lpr-%d-" % time.time_ns()
    cases = [("/", 200), ("/nope-" + tag, 404), ("/style.css", 200), ("/index.html", 304)]
    etag = fetch(S.port, "GET", "/index.html").get("ETag")
    for i, (p, _) in enumerate(cases):
        hs = [("X-Request-Id", tag + str(i))] + ([("If-None-Match", etag)] if i == 3 else [])
        fetch(S.port, "GET", p, hs)
    mine = lambda: [ln for ln in S.logs("request") if str(ln.get("request_id", "")).startswith(tag)]
    deadline = time.time() + 3
    while time.time() < deadline and len(mine()) < len(cases):
        time.sleep(0.05)
    time.sleep(0.3)  # a duplicate would arrive by now
    got = sorted((ln.get("request_id"), ln.get("path"), ln.get("status")) for ln in mine())
    eq(got, [(tag + str(i), p, st) for i, (p, st) in enumerate(cases)], "exactly one request log line per request")


if __name__ == "__main__":
    run("http_static", [test_get_files, test_query_string_ignored, test_head_then_get_same_connection,
                        test_if_none_match, test_gzip, test_not_found, test_method_not_allowed, test_traversal,
                        test_request_id, test_log_line_per_request], server=S)

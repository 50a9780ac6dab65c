"""/api/images against the real binary over loopback (DESIGN §3-§4, issue 4
point 2): create, upload by PUT .../raw (Content-Length and chunked) and by
multipart POST .../upload (streamed in small writes), content sniffing,
size limits, ownership (404, not 403), listing with a cursor, the bytes
with ETag / Range / HEAD / signed links, 405/404/409 on the other kinds,
the upload's memory use (streamed, never whole in memory) and the upload
counters of /metrics.

Test images are made here with the standard library: a real PNG (zlib +
struct); JPEG, WebP and GIF only need their signatures for the sniffing."""
import base64
import hashlib
import hmac
import json
import os
import random
import re
import struct
import threading
import time
import zlib

from apiclient import sign, signed
from ttharness import (Conn, HttpError, SANITIZED, SLOW, Server, Skip, check, children_of, eq, fail, fetch,
                       request, run, vm_rss_kb)

S = Server(processes=1)  # the shared server; others are started where a flag is needed
UPLOADED = {"count": 0, "bytes": 0}  # successful uploads on S, for /metrics
RNG = random.Random(0x7A17)
ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")
RAW_LINK_RE = re.compile(r"^/api/images/([0-9a-f-]{36})/raw\?expires=(\d+)&sig=([A-Za-z0-9_-]+)&u=([0-9a-f-]{36})$")

# --------------------------------------------------------------- images


def png(width, height, seed=1):
    """A valid RGB PNG with noisy pixels (so it does not compress away)."""
    rnd = random.Random(seed)
    rows = b"".join(b"\x00" + bytes(rnd.getrandbits(8) for _ in range(width * 3)) for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")


def png_sig_blob(n, seed=2):
    """PNG signature + n-8 random bytes: enough for the sniffing."""
    return b"\x89PNG\r\n\x1a\n" + random.Random(seed).randbytes(n - 8)


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(range(256)) * 4
WEBP = b"RIFF" + struct.pack("<I", 4 + 1000) + b"WEBPVP8 " + bytes(range(250)) * 4
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff" + bytes(200) + b";"
TEXT = b"hello, this is certainly not an image\n" * 40
SMALL_PNG = png(48, 40, seed=3)

# --------------------------------------------------------------- HTTP helpers


def api(port, method, path, key=None, body=None, headers=None, raw=None, ctype=None, timeout=10.0):
    hs = []
    if key:
        hs.append(("Authorization", "Bearer " + key))
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        hs.append(("Content-Type", "application/json"))
    elif raw is not None:
        data = raw
        if ctype:
            hs.append(("Content-Type", ctype))
    if data or method in ("POST", "PUT"):
        hs.append(("Content-Length", str(len(data))))
    hs += list(headers or [])
    r = fetch(port, method, path, hs, data, timeout=timeout)
    r.j = None
    ct = r.get("Content-Type", "")
    if ("json" in ct) and r.body:
        try:
            r.j = json.loads(r.body)
        except ValueError:
            pass
    return r


def problem(r, status, kind, what):
    """r is status with an application/problem+json body of type /problems/KIND
    (kind None: any type)."""
    ct = r.get("Content-Type", "")
    if r.status != status and not ct.startswith("application/problem+json"):
        fail(what, "%d problem%s" % (status, " /problems/" + kind if kind else ""),
             "%d %s %s" % (r.status, ct, r.body[:300]))
        return None
    ok = eq(r.status, status, what + ": status")
    check(ct.startswith("application/problem+json"), what + ": problem+json", "application/problem+json", ct)
    j = None
    try:
        j = json.loads(r.body)
    except ValueError:
        fail(what + ": problem body is JSON", "JSON", r.body[:200])
        return None
    if kind is not None:
        ok &= eq(j.get("type"), "/problems/" + kind, what + ": problem type")
    eq(j.get("status"), status, what + ": problem status member")
    check(isinstance(j.get("detail"), str) and j.get("detail"), what + ": problem has a detail", "a string", j)
    if not ok:
        print("    (%s: body %r)" % (what, r.body[:300]))
    return j


_users = [0]


def signup(port, name="img"):
    _users[0] += 1
    email = "%s%d-%d@example.com" % (name, _users[0], os.getpid())
    r = api(port, "POST", "/api/users", body={"name": name, "email": email})
    if r.status != 201 or not r.j or "api_key" not in r.j:
        raise HttpError("sign-up failed: %d %r" % (r.status, r.body[:300]))
    return r.j["api_key"]


def new_image(port, key, body=None):
    r = api(port, "POST", "/api/images", key, body=body)
    if r.status != 201 or not r.j:
        raise HttpError("POST /api/images: %d %r" % (r.status, r.body[:300]))
    return r.j


RAW_FILE_RE = re.compile(r"^raw-[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")


def blob_path(data, iid):
    """The upload's file: each upload writes DATA/blobs/images/ID/raw-UPLOADID
    (a key of its own; the record names the one that won)."""
    d = os.path.join(data, "blobs", "images", iid)
    try:
        raws = [f for f in os.listdir(d) if RAW_FILE_RE.match(f)]
    except OSError:
        raws = []
    return os.path.join(d, raws[0] if len(raws) == 1 else "raw-(%d files)" % len(raws))


def blob_files(data, iid):
    """Every file (temp files included) under DATA/blobs/images/ID/."""
    d = os.path.join(data, "blobs", "images", iid)
    out = []
    for root, _dirs, files in os.walk(d):
        out += [os.path.relpath(os.path.join(root, f), d) for f in files]
    return sorted(out)


def read_blob(data, iid):
    try:
        with open(blob_path(data, iid), "rb") as f:
            return f.read()
    except OSError as e:
        return "missing: %s" % e


def check_uploaded(srv, r, iid, sent, ctype, what, count=True):
    """r is the 200 answer of an upload of `sent` to image iid, the record
    says so, and the blob on disk holds exactly those bytes."""
    if not eq(r.status, 200, what + ": status"):
        print("    (%s: body %r)" % (what, r.body[:300]))
        return None
    j = r.j or {}
    eq(j.get("id"), iid, what + ": id")
    eq(j.get("state"), "uploaded", what + ": state")
    eq(j.get("content_type"), ctype, what + ": sniffed content_type")
    eq(j.get("bytes"), len(sent), what + ": bytes")
    eq((j.get("width"), j.get("height")), (None, None), what + ": width, height null until processed")
    eq(j.get("version"), 2, what + ": version after one update")
    links = j.get("links") or {}
    eq(links.get("self"), "/api/images/%s" % iid, what + ": links.self")
    raw = links.get("raw") or ""
    m = RAW_LINK_RE.match(raw)
    check(m is not None and m.group(1) == iid, what + ": links.raw is a signed URL of this image's raw bytes",
          "/api/images/%s/raw?expires=...&sig=..." % iid, raw)
    if m:
        exp = int(m.group(2))
        check(time.time() + 60 < exp <= time.time() + 7 * 86400, what + ": links.raw expires in the future",
              "now+1min .. now+7d", exp - time.time())
    check("processed" not in links and "thumbnail" not in links, what + ": no processed/thumbnail links yet",
          "absent", links)
    on_disk = read_blob(srv.data, iid)
    check(on_disk == sent, what + ": DATA/blobs/images/ID/raw holds exactly the uploaded bytes",
          "%d bytes sha256 %s" % (len(sent), hashlib.sha256(sent).hexdigest()[:16]),
          on_disk if isinstance(on_disk, str) else
          "%d bytes sha256 %s" % (len(on_disk), hashlib.sha256(on_disk).hexdigest()[:16]))
    files = blob_files(srv.data, iid)
    check(len(files) == 1 and RAW_FILE_RE.match(files[0]),
          what + ": only the blob under DATA/blobs/images/ID/ (no temp file)", ["raw-UPLOADID"], files)
    if count and srv is S:
        UPLOADED["count"] += 1
        UPLOADED["bytes"] += len(sent)
    return j


def check_untouched(srv, key, iid, what):
    """After a refused upload: the image is still 'created' and no file is left."""
    r = api(srv.port, "GET", "/api/images/" + iid, key)
    eq(r.status, 200, what + ": GET the image afterwards")
    if r.j:
        eq((r.j.get("state"), r.j.get("bytes"), r.j.get("content_type")), ("created", 0, None),
           what + ": the image stays created, no bytes")
        eq((r.j.get("width"), r.j.get("height")), (None, None), what + ": width and height null, not 0 (issue 14)")
        check("raw" not in (r.j.get("links") or {}), what + ": no raw link", "absent", r.j.get("links"))
    eq(blob_files(srv.data, iid), [], what + ": no file (blob or temp) under DATA/blobs/images/ID/")


def put_raw(port, key, iid, data, ctype="application/octet-stream", timeout=20.0, extra=None):
    return api(port, "PUT", "/api/images/%s/raw" % iid, key, raw=data, ctype=ctype, headers=extra, timeout=timeout)


def stream_request(port, head, pieces, timeout=20.0, delay=None):
    """Sends head, then each piece as its own write (delay(i) seconds of
    sleep after piece i, when given) from a thread, while reading the
    response. Returns (Response or exception, send error or None, conn)."""
    c = Conn(port, timeout)
    err = [None]

    def sender():
        try:
            c.send(head)
            for i, p in enumerate(pieces):
                c.send(p)
                if delay:
                    d = delay(i)
                    if d:
                        time.sleep(d)
        except OSError as e:
            err[0] = e

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    try:
        r = c.read_response(timeout=timeout)
        r.j = None
        if "json" in r.get("Content-Type", "") and r.body:
            try:
                r.j = json.loads(r.body)
            except ValueError:
                pass
    except HttpError as e:
        r = e
    t.join(timeout * SLOW)
    return r, err[0], c


def chunked_pieces(data, sizes):
    """The chunked encoding of data with chunk sizes from the iterator sizes,
    as uneven writes: sometimes the size line alone, sometimes with the data
    split in two, sometimes several chunks in one write."""
    out, i, pend = [], 0, b""
    while i < len(data):
        n = min(next(sizes), len(data) - i)
        piece = b"%x\r\n" % n + data[i:i + n] + b"\r\n"
        i += n
        mode = RNG.randrange(4)
        if mode == 0:
            out += [pend + b"%x\r\n" % n, data[i - n:i] + b"\r\n"]
            pend = b""
        elif mode == 1 and n > 2:
            cut = RNG.randrange(1, len(piece) - 1)
            out += [pend + piece[:cut], piece[cut:]]
            pend = b""
        elif mode == 2 and len(pend) < 200000:
            pend += piece
        else:
            out.append(pend + piece)
            pend = b""
    out.append(pend + b"0\r\n\r\n")
    return out


def put_head(iid, key, extra):
    hs = [("Authorization", "Bearer " + key)] if key else []
    return request("PUT", "/api/images/%s/raw" % iid, hs + extra)


def multipart(parts, boundary):
    """parts: [(name, filename or None, content type or None, bytes)]."""
    out = b""
    for name, filename, ct, data in parts:
        out += b"--" + boundary + b"\r\n"
        disp = 'Content-Disposition: form-data; name="%s"' % name
        if filename is not None:
            disp += '; filename="%s"' % filename
        out += disp.encode() + b"\r\n"
        if ct:
            out += b"Content-Type: " + ct.encode() + b"\r\n"
        out += b"\r\n" + data + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def post_form(port, key, iid, body, boundary=None, ctype=None, timeout=20.0):
    if ctype is None:
        ctype = "multipart/form-data; boundary=" + boundary.decode()
    return api(port, "POST", "/api/images/%s/upload" % iid, key, raw=body, ctype=ctype, timeout=timeout)


def scrape(port):
    r = fetch(port, "GET", "/metrics")
    eq(r.status, 200, "GET /metrics")
    out = {}
    for line in r.body.decode().splitlines():
        m = re.match(r'^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$', line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


KEYS = {}


def key(name):
    if name not in KEYS:
        KEYS[name] = signup(S.port, name)
    return KEYS[name]


# --------------------------------------------------------------- tests


def test_create():
    k = key("alice")
    for body, what in ((None, "no body"), ({}, "{}")):
        r = api(S.port, "POST", "/api/images", k, body=body)
        eq(r.status, 201, "POST /api/images with %s" % what)
        j = r.j or {}
        iid = j.get("id", "")
        check(ID_RE.match(iid or ""), "id is a UUIDv7", "UUIDv7", iid)
        eq(r.get("Location"), "/api/images/%s" % iid, "Location of the new image")
        eq((j.get("state"), j.get("content_type"), j.get("bytes"), j.get("version")), ("created", None, 0, 1),
           "state, content_type, bytes, version of a new image")
        eq(j.get("links"), {"self": "/api/images/%s" % iid, "upload": "/api/images/%s/raw" % iid},
           "links of a new image: self and upload only")
        check(isinstance(j.get("created_at"), int) and j["created_at"] > 0, "created_at", "a timestamp", j)
        g = api(S.port, "GET", "/api/images/" + iid, k)
        eq(g.status, 200, "GET the new image")
        eq(g.j, j, "GET answers the record POST returned")
        eq(blob_files(S.data, iid), [], "no blob for a created image")
    r = api(S.port, "POST", "/api/images", k, body={"title": "x"})
    j = problem(r, 400, "invalid-field", "POST /api/images with an unknown field")
    eq((j or {}).get("field"), "title", "the problem names the unknown field")
    r = api(S.port, "POST", "/api/images", k, raw=b"[1,2]", ctype="application/json")
    eq(r.status, 400, "POST /api/images with a JSON array body")
    r = api(S.port, "POST", "/api/images", k, raw=b"{nope", ctype="application/json")
    problem(r, 400, "invalid-json", "POST /api/images with broken JSON")
    r = api(S.port, "POST", "/api/images", k, raw=b"{}", ctype="text/plain")
    problem(r, 415, "unsupported-media-type", "POST /api/images with a text/plain body")


def test_put_raw_sniffs():
    k = key("alice")
    cases = [(SMALL_PNG, "image/jpeg", "image/png", "a PNG sent as image/jpeg"),
             (JPEG, "image/png", "image/jpeg", "a JPEG sent as image/png"),
             (WEBP, "application/octet-stream", "image/webp", "a WebP sent as octet-stream"),
             (GIF, "text/plain", "image/gif", "a GIF sent as text/plain"),
             (b"GIF87a" + bytes(100), None, "image/gif", "a GIF87a without Content-Type")]
    for data, sent_ct, want_ct, what in cases:
        iid = new_image(S.port, k)["id"]
        r = put_raw(S.port, k, iid, data, ctype=sent_ct)
        j = check_uploaded(S, r, iid, data, want_ct, "PUT raw: " + what)
        g = api(S.port, "GET", "/api/images/" + iid, k)
        eq(g.status, 200, what + ": GET the image")
        if j and g.j:
            eq({x: g.j.get(x) for x in ("state", "content_type", "bytes")},
               {x: j.get(x) for x in ("state", "content_type", "bytes")}, what + ": GET shows the upload")
    # the image's own links.upload is where the bytes go
    im = new_image(S.port, k)
    r = api(S.port, "PUT", im["links"]["upload"], k, raw=SMALL_PNG, ctype="image/png")
    check_uploaded(S, r, im["id"], SMALL_PNG, "image/png", "PUT to links.upload")


def test_put_raw_not_an_image():
    k = key("alice")
    iid = new_image(S.port, k)["id"]
    for data, what in ((TEXT, "text"), (b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(100), "a RIFF that is not WEBP"),
                       (b"\x89PNG\r\n" + bytes(10), "a truncated PNG signature"),
                       (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "an SVG")):
        r = put_raw(S.port, k, iid, data, ctype="image/png")
        problem(r, 415, "not-an-image", "PUT raw of %s" % what)
        check_untouched(S, k, iid, "after PUT raw of %s" % what)
    # a text body larger than the 64 KiB stage: refused at the first bytes too
    big = TEXT * 3000
    r = put_raw(S.port, k, iid, big, ctype="image/png")
    problem(r, 415, "not-an-image", "PUT raw of %d bytes of text" % len(big))
    check_untouched(S, k, iid, "after a big text upload")
    # then a real upload works
    r = put_raw(S.port, k, iid, SMALL_PNG, ctype="image/png")
    check_uploaded(S, r, iid, SMALL_PNG, "image/png", "PUT raw after a refused upload")


def test_put_raw_empty_and_conflict():
    k = key("alice")
    iid = new_image(S.port, k)["id"]
    r = put_raw(S.port, k, iid, b"")
    problem(r, 400, "empty-upload", "PUT raw with Content-Length: 0")
    check_untouched(S, k, iid, "after an empty upload")
    r, err, c = stream_request(S.port, put_head(iid, k, [("Transfer-Encoding", "chunked")]), [b"0\r\n\r\n"])
    c.close()
    if isinstance(r, Exception):
        fail("PUT raw with an empty chunked body answers", "a response", repr(r))
    else:
        problem(r, 400, "empty-upload", "PUT raw with an empty chunked body")
    check_untouched(S, k, iid, "after an empty chunked upload")
    r = put_raw(S.port, k, iid, SMALL_PNG)
    check_uploaded(S, r, iid, SMALL_PNG, "image/png", "PUT raw after empty ones")
    # already uploaded: PUT and POST answer 409; the bytes stay
    r = put_raw(S.port, k, iid, JPEG)
    problem(r, 409, "already-uploaded", "PUT raw to an uploaded image")
    b = b"B0undary"
    r = post_form(S.port, k, iid, multipart([("file", "a.jpg", "image/jpeg", JPEG)], b), b)
    problem(r, 409, "already-uploaded", "POST upload to an uploaded image")
    eq(read_blob(S.data, iid), SMALL_PNG, "the first upload's bytes stay after the 409s")
    g = api(S.port, "GET", "/api/images/" + iid, k)
    eq(((g.j or {}).get("content_type"), (g.j or {}).get("bytes")), ("image/png", len(SMALL_PNG)),
       "the record keeps the first upload")
    # a 409 with a big unread body: the answer is readable in full
    r, err, c = stream_request(S.port, put_head(iid, k, [("Content-Length", str(4 << 20))]),
                               [png_sig_blob(1 << 20)] * 4)
    if isinstance(r, Exception):
        fail("a 409 before a 4 MB body is readable", "a response", repr(r))
    else:
        problem(r, 409, "already-uploaded", "PUT raw of 4 MB to an uploaded image")
    c.close()


def test_concurrent_uploads():
    """Issue 16 item 5: two PUT /raw to one image at once, 15 rounds: one
    wins (200), the other gets 409; the record, GET /raw and the file on
    disk are always the winner's upload — type, size and bytes — and the
    loser left no file."""
    k = key("alice")
    big_png = png(400, 300, seed=7)
    jpeg = JPEG + b"\0" * 50000  # a JPEG signature and a size of its own
    for rnd in range(15):
        iid = new_image(S.port, k)["id"]
        res = {}
        go = threading.Event()

        def up(name, data, res=res, go=go, iid=iid):
            go.wait(10)
            res[name] = put_raw(S.port, k, iid, data)

        ts = [threading.Thread(target=up, args=("png", big_png)), threading.Thread(target=up, args=("jpeg", jpeg))]
        for t in ts:
            t.start()
        go.set()
        for t in ts:
            t.join(30)
        sts = sorted(r.status for r in res.values())
        eq(sts, [200, 409], "round %d: one upload wins, the other gets 409" % rnd)
        won = [n for n, r in res.items() if r.status == 200]
        if len(won) != 1:
            continue
        sent, ctype = (big_png, "image/png") if won[0] == "png" else (jpeg, "image/jpeg")
        g = api(S.port, "GET", "/api/images/" + iid, k)
        eq(((g.j or {}).get("content_type"), (g.j or {}).get("bytes")), (ctype, len(sent)),
           "round %d: the record is the winner's (%s)" % (rnd, won[0]))
        raw = api(S.port, "GET", "/api/images/%s/raw" % iid, k)
        check(raw.status == 200 and raw.body == sent and raw.get("Content-Type") == ctype,
              "round %d: GET /raw serves the winner's bytes and type" % rnd, (200, ctype, len(sent)),
              (raw.status, raw.get("Content-Type"), len(raw.body)))
        deadline = time.monotonic() + 5
        while len(blob_files(S.data, iid)) > 1 and time.monotonic() < deadline:
            time.sleep(0.02)  # the loser's file is deleted right after its 409
        eq(read_blob(S.data, iid), sent, "round %d: the one file on disk is the winner's upload" % rnd)
        UPLOADED["count"] += 1
        UPLOADED["bytes"] += len(sent)


def test_put_raw_chunked_3mb():
    k = key("alice")
    iid = new_image(S.port, k)["id"]
    data = png_sig_blob(3 * 1024 * 1024 + 12345, seed=5)
    sizes = iter(lambda: RNG.choice([1, 7, 100, 4095, 4096, 4097, 65535, 65536, 65537, 99991,
                                     RNG.randrange(1, 300000)]), None)
    pieces = chunked_pieces(data, sizes)
    head = put_head(iid, k, [("Content-Type", "image/jpeg"), ("Transfer-Encoding", "chunked")])
    r, err, c = stream_request(S.port, head, pieces, timeout=30.0)
    c.close()
    if isinstance(r, Exception):
        fail("chunked 3 MB upload answers", "200", repr(r))
        return
    check(err is None, "the chunked upload was sent without error", None, err)
    j = check_uploaded(S, r, iid, data, "image/png", "chunked PUT raw of %d bytes in %d writes" % (len(data), len(pieces)))
    if j:
        g = api(S.port, "GET", "/api/images/%s/raw" % iid, k, timeout=30)
        eq(g.status, 200, "GET the 3 MB raw bytes")
        check(g.body == data, "GET raw answers the 3 MB exactly", len(data), len(g.body))
        # a range across the reader's chunk boundaries
        a, z = 100001, 2000000
        g = api(S.port, "GET", "/api/images/%s/raw" % iid, k, headers=[("Range", "bytes=%d-%d" % (a, z))], timeout=30)
        eq((g.status, g.get("Content-Range")), (206, "bytes %d-%d/%d" % (a, z, len(data))), "a 1.9 MB range")
        check(g.body == data[a:z + 1], "the 1.9 MB range's bytes", z - a + 1, len(g.body))


def test_multipart_upload():
    k = key("alice")
    b = b"----tintype-7d3Fq9"
    img = SMALL_PNG
    # one write
    iid = new_image(S.port, k)["id"]
    body = multipart([("title", None, None, b"my cat"), ("file", "cat.png", "image/jpeg", img)], b)
    r = post_form(S.port, k, iid, body, b)
    check_uploaded(S, r, iid, img, "image/png", "multipart upload (title + file part)")
    # a file part not named "file", after the title, boundary quoted
    iid = new_image(S.port, k)["id"]
    body = multipart([("title", None, None, b"x" * 5000), ("picture", "p.gif", "image/gif", GIF)], b"qq")
    r = post_form(S.port, k, iid, body, ctype='multipart/form-data; boundary="qq"')
    check_uploaded(S, r, iid, GIF, "image/gif", "multipart upload, quoted boundary, long text field")
    # streamed: 7-byte writes with small sleeps for the first KB, then uneven
    # pieces; the file holds near-boundary lookalikes that must stay data
    iid = new_image(S.port, k)["id"]
    # (RFC 2046: the full delimiter CRLF--BOUNDARY never occurs inside a part)
    trick = b"\r\n--" + b[:-1] + b"\r\n-" + b"\r\n" + b + b"\r\r\n--" + b[:5] + b"--" + b + b"--"
    data = png_sig_blob(200000, seed=9)
    data = data[:1000] + trick + data[1000:150000] + trick + data[150000:] + b"\r\n--"
    body = multipart([("title", None, None, b"streamed"), ("file", "s.png", "application/octet-stream", data)], b)
    i = 1029  # 147 pieces of 7 bytes
    pieces = [body[j:j + 7] for j in range(0, i, 7)]
    while i < len(body):
        n = RNG.choice([1, 3, 13, 100, 1500, 4096, 9000, 70000])
        pieces.append(body[i:i + n])
        i += n
    hs = [("Authorization", "Bearer " + k), ("Content-Type", "multipart/form-data; boundary=" + b.decode()),
          ("Content-Length", str(len(body)))]
    head = request("POST", "/api/images/%s/upload" % iid, hs)
    r, err, c = stream_request(S.port, head, pieces, timeout=30.0,
                               delay=lambda j: 0.002 if j < 147 else (0.001 if j % 50 == 0 else 0))
    c.close()
    if isinstance(r, Exception):
        fail("streamed multipart upload answers", "200", repr(r))
    else:
        check_uploaded(S, r, iid, data, "image/png", "multipart upload in %d small writes" % len(pieces))
    # chunked multipart
    iid = new_image(S.port, k)["id"]
    body = multipart([("file", "w.webp", "image/webp", WEBP)], b)
    hs = [("Authorization", "Bearer " + k), ("Content-Type", "multipart/form-data; boundary=" + b.decode()),
          ("Transfer-Encoding", "chunked")]
    r, err, c = stream_request(S.port, request("POST", "/api/images/%s/upload" % iid, hs),
                               chunked_pieces(body, iter(lambda: RNG.randrange(1, 300), None)))
    c.close()
    if isinstance(r, Exception):
        fail("chunked multipart upload answers", "200", repr(r))
    else:
        check_uploaded(S, r, iid, WEBP, "image/webp", "chunked multipart upload")


def test_multipart_errors():
    k = key("alice")
    b = b"xYzBoundary"
    iid = new_image(S.port, k)["id"]
    cases = [
        (multipart([("title", None, None, b"only text")], b), 400, "no-file", "no file part"),
        (multipart([("file", "a.png", "image/png", SMALL_PNG), ("file2", "b.png", "image/png", SMALL_PNG)], b),
         400, "bad-multipart", "two file parts"),
        (multipart([("file", "a.png", "image/png", SMALL_PNG)], b)[:-len(b"--" + b + b"--\r\n")], 400, None,
         "no closing boundary"),
        (b"--" + b + b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n" + SMALL_PNG,
         400, None, "a body cut in the file part"),
        (b"garbage before any boundary", 400, None, "no boundary at all"),
        (multipart([("file", "a.txt", "image/png", TEXT)], b), 415, "not-an-image", "a text file part"),
        (multipart([("file", "e.png", "image/png", b"")], b), 400, "empty-upload", "an empty file part"),
    ]
    for body, status, kind, what in cases:
        r = post_form(S.port, k, iid, body, b)
        problem(r, status, kind, "multipart with " + what)
        check_untouched(S, k, iid, "after multipart with " + what)
    for ct, what in (("application/octet-stream", "octet-stream"), ("multipart/form-data", "no boundary"),
                     ("multipart/mixed; boundary=xYzBoundary", "multipart/mixed"), (None, "no Content-Type")):
        body = multipart([("file", "a.png", "image/png", SMALL_PNG)], b)
        hs = [("Authorization", "Bearer " + k), ("Content-Length", str(len(body)))]
        if ct:
            hs.append(("Content-Type", ct))
        r = fetch(S.port, "POST", "/api/images/%s/upload" % iid, hs, body)
        problem(r, 415, "unsupported-media-type", "POST upload with Content-Type " + what)
        check_untouched(S, k, iid, "after POST upload with Content-Type " + what)
    r = post_form(S.port, k, iid, multipart([("file", "a.png", "image/png", SMALL_PNG)], b), b)
    check_uploaded(S, r, iid, SMALL_PNG, "image/png", "multipart upload after the refused ones")


def test_ownership_auth_and_ids():
    a, bk = key("alice"), key("bob")
    im = new_image(S.port, a)
    iid = im["id"]
    r = put_raw(S.port, a, iid, SMALL_PNG)
    check_uploaded(S, r, iid, SMALL_PNG, "image/png", "alice's upload")
    other = new_image(S.port, a)["id"]  # still created
    for method, path, kw, what in (
            ("GET", "/api/images/" + iid, {}, "GET another user's image"),
            ("GET", "/api/images/%s/raw" % iid, {}, "GET another user's raw bytes"),
            ("HEAD", "/api/images/%s/raw" % iid, {}, None),
            ("GET", "/api/images/%s/processed" % iid, {}, "GET another user's processed bytes"),
            ("PUT", "/api/images/%s/raw" % other, {"raw": SMALL_PNG}, "PUT raw to another user's image"),
            ("POST", "/api/images/%s/upload" % other,
             {"raw": multipart([("file", "a.png", "image/png", SMALL_PNG)], b"zz"),
              "ctype": "multipart/form-data; boundary=zz"}, "POST upload to another user's image")):
        r = api(S.port, method, path, bk, **kw)
        if method == "HEAD":
            eq(r.status, 404, "HEAD another user's raw bytes")
            continue
        problem(r, 404, "not-found", what)
    check_untouched(S, a, other, "after bob's attempts")
    eq(read_blob(S.data, iid), SMALL_PNG, "alice's bytes unchanged")
    lst = api(S.port, "GET", "/api/images", bk)
    eq(lst.status, 200, "bob lists his images")
    ids = [x.get("id") for x in (lst.j or {}).get("items", [])]
    check(iid not in ids and other not in ids, "bob's list has none of alice's images", "no alice ids", ids)
    # no auth, bad auth
    for hs, what in (([], "no Authorization"), ([("Authorization", "Bearer nope")], "an unknown key"),
                     ([("Authorization", "Basic YTpi")], "Basic auth"), ([("Authorization", "Bearer ")], "empty key")):
        for method, path, body in (("POST", "/api/images", b""), ("GET", "/api/images", b""),
                                   ("GET", "/api/images/" + iid, b""), ("GET", "/api/images/%s/raw" % iid, b""),
                                   ("PUT", "/api/images/%s/raw" % other, SMALL_PNG),
                                   ("POST", "/api/images/%s/upload" % other, b"--zz--\r\n")):
            h = hs + [("Content-Length", str(len(body)))] if method in ("POST", "PUT") else list(hs)
            if path.endswith("/upload"):
                h.append(("Content-Type", "multipart/form-data; boundary=zz"))
            r = fetch(S.port, method, path, h, body)
            problem(r, 401, "unauthorized", "%s %s with %s" % (method, path.replace(iid, "ID"), what))
            check(r.has("WWW-Authenticate"), "401 has WWW-Authenticate (%s %s, %s)" % (method, path, what),
                  "present", r.headers)
    check_untouched(S, a, other, "after unauthenticated uploads")
    # malformed and unknown ids
    unknown = iid[:-4] + ("0000" if iid[-4:] != "0000" else "1111")
    for bad in ("nope", iid.upper(), iid + "0", iid[:-1], "..%2f..%2fsecret", unknown):
        for method, suffix, kw in (("GET", "", {}), ("GET", "/raw", {}), ("PUT", "/raw", {"raw": SMALL_PNG}),
                                   ("POST", "/upload", {"raw": b"--zz--\r\n",
                                                        "ctype": "multipart/form-data; boundary=zz"})):
            r = api(S.port, method, "/api/images/" + bad + suffix, a, **kw)
            problem(r, 404, None, "%s /api/images/%s%s" % (method, bad, suffix))


def test_list_paging():
    k = signup(S.port, "lister")  # a fresh user: exactly these five
    made = [new_image(S.port, k)["id"] for _ in range(5)]
    other = new_image(S.port, key("bob"))["id"]
    r = api(S.port, "GET", "/api/images", k)
    eq(r.status, 200, "GET /api/images")
    j = r.j or {}
    eq([x.get("id") for x in j.get("items", [])], made[::-1], "all five, newest first")
    check("next_cursor" in j and j["next_cursor"] is None, "no next_cursor on the only page", None, j.get("next_cursor"))
    pages, cursor = [], None
    for n in range(4):
        q = "/api/images?limit=2" + ("&cursor=" + cursor if cursor else "")
        r = api(S.port, "GET", q, k)
        eq(r.status, 200, "GET %s" % q)
        j = r.j or {}
        pages.append([x.get("id") for x in j.get("items", [])])
        check("next_cursor" in j, "the page has a next_cursor member", "present", sorted(j))
        cursor = j.get("next_cursor")
        if not cursor:
            break
    eq([len(p) for p in pages], [2, 2, 1], "five images in pages of 2: 2+2+1")
    eq(sum(pages, []), made[::-1], "the pages in order, newest first, no repeats")
    check(other not in sum(pages, []), "only the caller's images", "no bob id", pages)
    for q in ("limit=0", "limit=-1", "limit=abc", "limit=1001", "limit=", "limit=2x"):
        r = api(S.port, "GET", "/api/images?" + q, k)
        j = problem(r, 400, "invalid-field", "GET /api/images?" + q)
        eq((j or {}).get("field"), "limit", "the problem names limit (%s)" % q)
    r = api(S.port, "GET", "/api/images?limit=1000", k)
    eq(r.status, 200, "limit=1000 is allowed")
    for q in ("cursor=bogus", "cursor=" + made[0].upper()):
        r = api(S.port, "GET", "/api/images?" + q, k)
        j = problem(r, 400, "invalid-field", "GET /api/images?" + q)
        eq((j or {}).get("field"), "cursor", "the problem names cursor (%s)" % q)


RAW = {}


def raw_image():
    """An uploaded PNG of a few KB on S: (key, id, bytes, record)."""
    if not RAW:
        k = key("alice")
        data = png(64, 64, seed=11)
        iid = new_image(S.port, k)["id"]
        j = check_uploaded(S, put_raw(S.port, k, iid, data, ctype="image/png"), iid, data, "image/png",
                           "upload for the bytes tests")
        if not j:
            raise Skip("the upload for the bytes tests failed")
        RAW.update(key=k, id=iid, data=data, rec=j)
    return RAW["key"], RAW["id"], RAW["data"], RAW["rec"]


def test_get_raw_bytes():
    k, iid, data, _ = raw_image()
    n = len(data)
    path = "/api/images/%s/raw" % iid
    with Conn(S.port, 10) as c:  # all on one keep-alive connection
        au = [("Authorization", "Bearer " + k)]
        r = c.roundtrip("GET", path, au)
        eq(r.status, 200, "GET raw")
        check(r.body == data, "GET raw answers the uploaded bytes", n, len(r.body))
        eq(r.get("Content-Type"), "image/png", "Content-Type is the sniffed type")
        cl = r.get("Content-Length")
        check(cl is None or cl == str(n), "Content-Length of GET raw, when sent, is the size", str(n), cl)
        etag = r.get("ETag")
        check(etag and re.match(r'^(W/)?"[^"]+"$', etag), "GET raw has an ETag", '"..."', etag)
        eq(r.get("Accept-Ranges"), "bytes", "Accept-Ranges")
        eq(r.get("X-Content-Type-Options"), "nosniff", "X-Content-Type-Options")
        r = c.roundtrip("GET", path, au + [("If-None-Match", etag)])
        eq((r.status, r.body), (304, b""), "If-None-Match with the ETag: 304, no body")
        eq(r.get("ETag"), etag, "the 304 repeats the ETag")
        r = c.roundtrip("GET", path, au + [("If-None-Match", '"not-it"')])
        eq(r.status, 200, "If-None-Match with another ETag: 200")
        r = c.roundtrip("GET", path, au + [("If-None-Match", '"x", %s' % etag)])
        eq(r.status, 304, "If-None-Match with a list holding the ETag: 304")
        r = c.roundtrip("HEAD", path, au)
        eq(r.status, 200, "HEAD raw")
        eq((r.get("Content-Type"), r.get("ETag"), r.get("Accept-Ranges")), ("image/png", etag, "bytes"),
           "HEAD has GET's headers")
        cl = r.get("Content-Length")
        check(cl is None or cl == str(n), "HEAD's Content-Length, when sent, is GET's (RFC 9110 §8.6)", str(n), cl)
        # no body after the HEAD: the next response on this connection parses
        r = c.roundtrip("GET", path, au + [("Range", "bytes=10-19")])
        eq(r.status, 206, "Range bytes=10-19 (after a HEAD on the same connection)")
        eq(r.get("Content-Range"), "bytes 10-19/%d" % n, "Content-Range of 10-19")
        eq(r.body, data[10:20], "exactly bytes 10..19")
        cl = r.get("Content-Length")
        check(cl is None or cl == "10", "Content-Length of the range, when sent, is 10", "10", cl)
        eq(r.get("Content-Type"), "image/png", "a 206 keeps the image's Content-Type")
        eq(r.get("ETag"), etag, "a 206 has the ETag")
        r = c.roundtrip("GET", path, au + [("Range", "bytes=-5")])
        eq((r.status, r.get("Content-Range"), r.body), (206, "bytes %d-%d/%d" % (n - 5, n - 1, n), data[-5:]),
           "Range bytes=-5: the last five")
        r = c.roundtrip("GET", path, au + [("Range", "bytes=%d-" % (n - 3))])
        eq((r.status, r.body), (206, data[-3:]), "Range bytes=SIZE-3-: the last three")
        r = c.roundtrip("GET", path, au + [("Range", "bytes=0-")])
        eq((r.status, r.get("Content-Range"), r.body == data), (206, "bytes 0-%d/%d" % (n - 1, n), True),
           "Range bytes=0-: all, as a 206")
        r = c.roundtrip("GET", path, au + [("Range", "bytes=100-99999999")])
        eq((r.status, r.get("Content-Range"), r.body == data[100:]), (206, "bytes 100-%d/%d" % (n - 1, n), True),
           "a range past the end is cut to the end")
        r = c.roundtrip("GET", path, au + [("Range", "bytes=%d-" % n)])
        eq(r.status, 416, "Range bytes=SIZE-: 416")
        eq(r.get("Content-Range"), "bytes */%d" % n, "the 416's Content-Range")
        r = c.roundtrip("GET", path, au + [("Range", "bytes=%d-%d" % (n + 10, n + 20))])
        eq((r.status, r.get("Content-Range")), (416, "bytes */%d" % n), "a range past the end: 416")
        r = c.roundtrip("GET", path, au + [("Range", "bytes=10-19"), ("If-Range", '"stale"')])
        eq((r.status, r.body == data, r.get("Content-Range")), (200, True, None),
           "If-Range with a wrong ETag: 200 with everything")
        r = c.roundtrip("GET", path, au + [("Range", "bytes=10-19"), ("If-Range", etag)])
        eq((r.status, r.body), (206, data[10:20]), "If-Range with the ETag: the range")
        r = c.roundtrip("GET", path, au + [("Range", "bytes=20-10")])
        eq((r.status, r.body == data), (200, True), "an invalid Range is ignored: 200")
        r = c.roundtrip("HEAD", path, au + [("Range", "bytes=10-19")])
        eq((r.status, r.get("Content-Range")), (206, "bytes 10-19/%d" % n), "HEAD with a Range")
        r = c.roundtrip("GET", "/api/images/" + iid, au)
        eq(r.status, 200, "the connection still works after the HEADs")


def test_other_kinds_and_methods():
    k, iid, _, _ = raw_image()
    created = new_image(S.port, k)["id"]
    for target, kind in ((iid, "processed"), (iid, "thumbnail"), (created, "raw"), (created, "processed")):
        r = api(S.port, "GET", "/api/images/%s/%s" % (target, kind), k)
        problem(r, 409, "not-ready", "GET %s of a%s image" % (kind, "n uploaded" if target == iid else " created"))
    r = api(S.port, "GET", "/api/images/%s/bogus" % iid, k)
    problem(r, 404, None, "GET /api/images/ID/bogus")
    r = api(S.port, "GET", "/api/images/%s/raw/more" % iid, k)
    eq(r.status, 404, "GET /api/images/ID/raw/more")
    for method, kind, allow in (("PUT", "processed", "GET, HEAD"), ("PUT", "thumbnail", "GET, HEAD"),
                                ("POST", "raw", "GET, HEAD, PUT"), ("DELETE", "raw", "GET, HEAD, PUT"),
                                ("DELETE", "processed", "GET, HEAD"),
                                ("GET", "upload", "POST"), ("PUT", "upload", "POST")):
        r = api(S.port, method, "/api/images/%s/%s" % (created, kind), k,
                raw=SMALL_PNG if method in ("PUT", "POST") else None, ctype="image/png")
        eq(r.status, 405, "%s /api/images/ID/%s" % (method, kind))
        eq(r.get("Allow"), allow, "Allow of /api/images/ID/%s" % kind)
        check(r.get("Content-Type", "").startswith("application/problem+json"), "the 405 is a problem",
              "application/problem+json", r.get("Content-Type"))
    check_untouched(S, k, created, "after the 405s")
    for method in ("PUT", "DELETE", "POST"):
        r = api(S.port, method, "/api/images/" + iid, k, raw=b"{}" if method != "DELETE" else None,
                ctype="application/json")
        eq(r.status, 405, "%s /api/images/ID" % method)
    r = api(S.port, "DELETE", "/api/images", k)
    eq(r.status, 405, "DELETE /api/images")


def test_signed_links():
    k, iid, data, rec = raw_image()
    link = rec["links"]["raw"]
    m = RAW_LINK_RE.match(link)
    if not m:
        fail("links.raw is a signed URL", "/api/images/ID/raw?expires=...&sig=...", link)
        return
    exp, sig, uid = int(m.group(2)), m.group(3), m.group(4)
    r = fetch(S.port, "GET", link)
    eq(r.status, 200, "GET links.raw without Authorization")
    check(r.body == data, "the signed link answers the bytes", len(data), len(r.body))
    eq(r.get("Content-Type"), "image/png", "the signed link's Content-Type")
    etag = r.get("ETag")
    r = fetch(S.port, "GET", link, [("Range", "bytes=-5")])
    eq((r.status, r.body), (206, data[-5:]), "the signed link with a Range")
    r = fetch(S.port, "GET", link, [("If-None-Match", etag or "")])
    eq(r.status, 304, "the signed link with If-None-Match")
    r = fetch(S.port, "HEAD", link)
    eq((r.status, r.body), (200, b""), "HEAD the signed link")
    r = fetch(S.port, "GET", link, [("Authorization", "Bearer " + key("bob"))])
    eq(r.status, 200, "the signed link works whoever sends it (it carries the grant)")
    # a fresh GET signs again: the link in GET /api/images/ID works too
    g = api(S.port, "GET", "/api/images/" + iid, k)
    link2 = ((g.j or {}).get("links") or {}).get("raw")
    eq(fetch(S.port, "GET", link2 or "/").status, 200, "the raw link of GET /api/images/ID works")
    lst = api(S.port, "GET", "/api/images?limit=1000", k)
    links = [x["links"].get("raw") for x in (lst.j or {}).get("items", []) if x.get("id") == iid]
    eq(len(links), 1, "the image is in the list")
    if links:
        eq(fetch(S.port, "GET", links[0]).status, 200, "the raw link of the list works")
    # tampered
    flip = ("A" if sig[-1] != "A" else "B")
    other = new_image(S.port, k)["id"]
    other_up = new_image(S.port, k)["id"]
    check_uploaded(S, put_raw(S.port, k, other_up, JPEG), other_up, JPEG, "image/jpeg", "a second uploaded image")
    q = "?expires=%d&sig=%s&u=%s" % (exp, sig, uid)
    for url, what in (
            ("/api/images/%s/raw?expires=%d&sig=%s&u=%s" % (iid, exp, sig[:-1] + flip, uid), "the sig's last character changed"),
            ("/api/images/%s/raw?expires=%d&sig=%s&u=%s" % (iid, exp, sig[:-2], uid), "a shortened sig"),
            ("/api/images/%s/raw?expires=%d&sig=&u=%s" % (iid, exp, uid), "an empty sig"),
            ("/api/images/%s/raw?expires=%d&sig=%s&u=%s" % (iid, exp + 3600, sig, uid), "expires moved later"),
            ("/api/images/%s/raw?expires=%d&sig=%s&u=%s" % (iid, exp - 7200, sig, uid), "expires moved into the past"),
            ("/api/images/%s/raw?expires=%d&sig=%s&u=%s" % (iid, 1, sig, uid), "expires=1"),
            ("/api/images/%s/raw?sig=%s&u=%s" % (iid, sig, uid), "no expires"),
            ("/api/images/%s/raw%s" % (other_up, q), "another image's path"),
            ("/api/images/%s/processed%s" % (iid, q), "the processed path"),
            ("/api/images/%s/thumbnail%s" % (iid, q), "the thumbnail path"),
            ("/api/images/%s/raw%s" % (other, q), "a created image's path")):
        r = fetch(S.port, "GET", url)
        problem(r, 403, "bad-signature", "signed link with " + what)
        check(not r.body.startswith(data[:8]), "no image bytes in the 403 (%s)" % what, "a problem", r.body[:20])
    # a link signed right but expired: read the server's secret to sign one
    try:
        with open(os.path.join(S.data, "secret"), "rb") as f:
            secret = f.read()
    except OSError:
        secret = None
    path = "/api/images/%s/raw" % iid
    if secret and sign(secret, path, exp, uid, k) == sig:
        past = int(time.time()) - 10
        r = fetch(S.port, "GET", signed(secret, path, past, uid, k))
        j = problem(r, 403, None, "a correctly signed link that has expired")
        check((j or {}).get("type") in ("/problems/link-expired", "/problems/bad-signature"),
              "an expired link's problem type", "/problems/link-expired", (j or {}).get("type"))
        soon = int(time.time()) + 30
        r = fetch(S.port, "GET", signed(secret, path, soon, uid, k))
        eq(r.status, 200, "a correctly signed link that expires in 30 s")
    else:
        print("  note: could not reproduce the link's signature from DATA/secret; expired-but-valid link not tested")


def test_upload_limits():
    limit = 100 * 1024
    with Server("--max-upload-bytes", "100k", processes=1) as s:
        k = signup(s.port, "limits")

        def fresh():
            return new_image(s.port, k)["id"]

        # exactly at the limit: accepted, by Content-Length and chunked
        iid = fresh()
        data = png_sig_blob(limit, seed=21)
        r = put_raw(s.port, k, iid, data)
        check_uploaded(s, r, iid, data, "image/png", "PUT raw of exactly max-upload-bytes")
        iid = fresh()
        r, err, c = stream_request(s.port, put_head(iid, k, [("Transfer-Encoding", "chunked")]),
                                   chunked_pieces(data, iter(lambda: 9000, None)))
        c.close()
        if isinstance(r, Exception):
            fail("chunked PUT of exactly max-upload-bytes answers", "200", repr(r))
        else:
            check_uploaded(s, r, iid, data, "image/png", "chunked PUT raw of exactly max-upload-bytes")
        # over by Content-Length: 413 before the body is read, then the connection closes
        for size in (limit + 1, limit + 60000, 10 << 20):
            iid = fresh()
            with Conn(s.port, 10) as c:
                c.send(put_head(iid, k, [("Content-Length", str(size))]))
                try:
                    r = c.read_response(timeout=3)
                except HttpError as e:
                    fail("PUT raw declaring Content-Length %d (max %d) is answered before its body is sent"
                         % (size, limit), "413", repr(e))
                    continue
                problem(r, 413, None, "PUT raw declaring Content-Length %d (max %d), body not sent" % (size, limit))
                check(c.wait_closed(3), "the connection closes after the early 413 (%d)" % size, True, False)
            check_untouched(s, k, iid, "after PUT raw declaring %d bytes (max %d)" % (size, limit))
        # over by Content-Length with the whole body sent: the 413 is still readable in full
        for size in (limit + 1, 1 << 20, 8 << 20):
            iid = fresh()
            body = png_sig_blob(size, seed=22)
            hs = put_head(iid, k, [("Content-Length", str(size))])
            r, err, c = stream_request(s.port, hs, [body[i:i + 65536] for i in range(0, size, 65536)], timeout=15)
            c.close()
            if isinstance(r, Exception):
                fail("a 413 to a %d-byte PUT sent whole is readable in full" % size, "413", repr(r))
            else:
                problem(r, 413, None, "PUT raw of %d bytes sent whole (max %d)" % (size, limit))
            check_untouched(s, k, iid, "after PUT raw of %d bytes sent whole (max %d)" % (size, limit))
        # over by chunked: 413 upload-too-large, nothing left behind
        for size in (limit + 1, limit + 70000, 3 << 20):
            iid = fresh()
            body = png_sig_blob(size, seed=23)
            r, err, c = stream_request(s.port, put_head(iid, k, [("Transfer-Encoding", "chunked")]),
                                       chunked_pieces(body, iter(lambda: 7777, None)), timeout=15)
            c.close()
            if isinstance(r, Exception):
                fail("chunked PUT of %d bytes (max %d) answers" % (size, limit), "413", repr(r))
            else:
                problem(r, 413, "upload-too-large", "chunked PUT raw of %d bytes (max %d)" % (size, limit))
            check_untouched(s, k, iid, "after a chunked upload of %d bytes (max %d)" % (size, limit))
        # multipart: a file over the limit is refused too; one at the limit is not
        b = b"LimitB"
        for size, ok in ((limit, True), (limit + 1, False), (limit + 50000, False), (2 << 20, False)):
            iid = fresh()
            f = png_sig_blob(size, seed=24)
            body = multipart([("title", None, None, b"t"), ("file", "f.png", "image/png", f)], b)
            r = post_form(s.port, k, iid, body, b)
            if ok:
                check_uploaded(s, r, iid, f, "image/png", "multipart file of exactly max-upload-bytes")
            else:
                problem(r, 413, None, "multipart file of %d bytes (max %d)" % (size, limit))
                check_untouched(s, k, iid, "after a multipart file of %d bytes (max %d)" % (size, limit))
        # the images refused above still take a proper upload
        r = put_raw(s.port, k, iid, SMALL_PNG)
        check_uploaded(s, r, iid, SMALL_PNG, "image/png", "PUT raw after a 413")


def vm_hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith("VmHWM:"):
                    return int(ln.split()[1])
    except OSError:
        return None
    return None


def test_upload_memory_streams():
    """A 15 MB upload to the one API process: its VmRSS stays far below it."""
    k = key("alice")
    iid = new_image(S.port, k)["id"]
    size = 15 * 1024 * 1024
    data = png_sig_blob(size, seed=31)
    kids = children_of(S.pid)
    eq(len(kids), 1, "one API process (--processes 1)")
    if not kids:
        return
    kid = next(iter(kids))
    base = vm_rss_kb(kid)
    peak = [base or 0]
    samples = [0]
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            v = vm_rss_kb(kid)
            if v:
                peak[0] = max(peak[0], v)
                samples[0] += 1
            time.sleep(0.001)

    t = threading.Thread(target=sampler, daemon=True)
    t.start()
    piece = 256 * 1024
    r, err, c = stream_request(S.port, put_head(iid, k, [("Content-Length", str(size)), ("Content-Type", "image/png")]),
                               [data[i:i + piece] for i in range(0, size, piece)], timeout=60)
    c.close()
    stop.set()
    t.join(2)
    if isinstance(r, Exception):
        fail("the 15 MB upload answers", "200", repr(r))
        return
    check_uploaded(S, r, iid, data, "image/png", "PUT raw of 15 MB")
    hwm = vm_hwm_kb(kid)
    print("  VmRSS of the API process: %d kB before, %d kB peak in %d samples during a %d kB upload; VmHWM %s kB"
          % (base or 0, peak[0], samples[0], size // 1024, hwm))
    check(samples[0] >= 5, "VmRSS was sampled during the upload", ">= 5 samples", samples[0])
    if SANITIZED:
        print("  (RSS bound not asserted under the sanitizers)")
        return
    check(peak[0] < 14 * 1024, "peak VmRSS during a 15 MB upload stays under 14 MB (streamed, not buffered)",
          "< 14336 kB", "%d kB (before: %d kB)" % (peak[0], base or 0))
    check(hwm is not None and hwm < 14 * 1024, "VmHWM (the process's peak RSS ever) stays under 14 MB", "< 14336 kB",
          hwm)
    check(peak[0] - (base or 0) < 8 * 1024, "VmRSS grows by less than 8 MB during a 15 MB upload",
          "< 8192 kB", "%d kB" % (peak[0] - (base or 0)))


def test_metrics():
    m = scrape(S.port)
    eq(m.get("tintype_images_uploaded_total"), float(UPLOADED["count"]),
       "tintype_images_uploaded_total counts this file's successful uploads")
    eq(m.get("tintype_upload_bytes_total"), float(UPLOADED["bytes"]),
       "tintype_upload_bytes_total sums their bytes")


if __name__ == "__main__":
    run("api_images", [test_create, test_put_raw_sniffs, test_put_raw_not_an_image, test_put_raw_empty_and_conflict,
                       test_concurrent_uploads,
                       test_put_raw_chunked_3mb, test_multipart_upload, test_multipart_errors,
                       test_ownership_auth_and_ids, test_list_paging, test_get_raw_bytes, test_other_kinds_and_methods,
                       test_signed_links, test_upload_limits, test_upload_memory_streams, test_metrics], server=S)

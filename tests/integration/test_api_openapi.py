"""The OpenAPI document (web/openapi.json, served at GET /api/openapi.json)
against the server that really runs.

- served: parses, is OpenAPI 3.1.0, equals web/openapi.json byte for byte;
  every $ref resolves, operationIds are unique, docs/API.md names every
  operation.
- forward: every path+method of the document reaches a handler (never the
  router's 404 `about:blank` nor a 405), and answers a status the document
  lists for it, with a body that fits the documented schema.
- reverse: every candidate route (DESIGN §4's routes, the document's, and
  likely ones nobody documented) that reaches a handler is in the document.
- shapes: a real session (sign-up, jobs, images, uploads, signed links, SSE)
  answers what the document says, status and schema.
- problem kinds: every `/problems/<kind>` the handlers can send is in the
  document's Problem.type enum, and every enum entry is still sent.

Python standard library only: schemas are checked by the small validator
below (the keywords the document uses).
"""
import base64
import hashlib
import hmac
import json
import os
import re
import struct
import time
import zlib

from ttharness import ROOT, WEB, Conn, Server, check, eq, fetch, request, run

DOC_FILE = os.path.join(WEB, "openapi.json")
API_MD = os.path.join(ROOT, "docs", "API.md")
FAKE_ID = "0190a5c4-7b1e-7c3a-9f00-2b5d6c7e8f90"  # a valid UUID that names nothing
SECRET = "openapi-test-secret-0123456789abcdef"
PROBE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

ADMIN_KEY = "openapi-test-admin-key-0123456789"
SERVER = Server(env={"TINTYPE_SECRET": SECRET, "TINTYPE_ADMIN_KEY": ADMIN_KEY})


try:
    with open(DOC_FILE, "rb") as f:
        DOC, DOC_ERROR = json.loads(f.read().decode("utf-8")), None
except (OSError, ValueError) as e:  # reported by test_document_is_well_formed
    DOC, DOC_ERROR = {"paths": {}, "components": {}}, "%s: %s" % (DOC_FILE, e)


# --------------------------------------------------------------- document helpers

def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError("external $ref %r" % ref)
        cur = DOC
        for part in ref[2:].split("/"):
            cur = cur[part.replace("~1", "/").replace("~0", "~")]
        node = cur
    return node


def operations():
    for path, item in DOC["paths"].items():
        for m in HTTP_METHODS:
            if m in item:
                yield path, m, item[m]


def path_params(template, method):
    """{name: parameter object} of the path parameters of template+method."""
    item = DOC["paths"][template]
    out = {}
    for p in item.get("parameters", []) + item[method].get("parameters", []):
        p = resolve(p)
        if p.get("in") == "path":
            out[p["name"]] = p
    return out


def concrete(template, method):
    """template with each {param} replaced by its example (or FAKE_ID)."""
    params = path_params(template, method)

    def sub(m):
        p = params.get(m.group(1), {})
        v = p.get("example", FAKE_ID)
        pat = resolve(p.get("schema", {})).get("pattern")
        check(pat is None or re.search(pat, v), "example of {%s} in %s matches its pattern" % (m.group(1), template),
              pat, v)
        return v
    return re.sub(r"\{([^}/]+)\}", sub, template)


def covered(method, path):
    """The document operation (template) that serves method+path, or None.
    A {param} segment matches a non-empty segment fitting its schema pattern."""
    segs = path.split("?")[0].split("/")
    for template, item in DOC["paths"].items():
        m = method.lower()
        if m not in item:
            continue
        tsegs = template.split("/")
        if len(tsegs) != len(segs):
            continue
        params = path_params(template, m)
        ok = True
        for t, s in zip(tsegs, segs):
            pm = re.fullmatch(r"\{([^}/]+)\}", t)
            if pm:
                pat = resolve(params.get(pm.group(1), {}).get("schema", {})).get("pattern")
                if not s or (pat and not re.search(pat, s)):
                    ok = False
            elif t != s:
                ok = False
            if not ok:
                break
        if ok:
            return template
    return None


# --------------------------------------------------------------- mini JSON Schema (2020-12 subset)

def _type_ok(v, t):
    return {"null": v is None, "boolean": isinstance(v, bool), "object": isinstance(v, dict),
            "array": isinstance(v, list), "string": isinstance(v, str),
            "integer": isinstance(v, int) and not isinstance(v, bool),
            "number": isinstance(v, (int, float)) and not isinstance(v, bool)}.get(t, False)


def validate(schema, v, where="$"):
    """List of error strings (empty when v fits schema)."""
    errs = []
    schema = resolve(schema)
    for sub in schema.get("allOf", []):
        errs += validate(sub, v, where)
    if "anyOf" in schema and not any(not validate(s, v, where) for s in schema["anyOf"]):
        errs.append("%s: fits none of anyOf" % where)
    t = schema.get("type")
    if t is not None:
        ts = t if isinstance(t, list) else [t]
        if not any(_type_ok(v, x) for x in ts):
            return errs + ["%s: %r is not of type %s" % (where, v, t)]
    if "const" in schema and v != schema["const"]:
        errs.append("%s: %r != const %r" % (where, v, schema["const"]))
    if "enum" in schema and v not in schema["enum"]:
        errs.append("%s: %r not in enum %r" % (where, v, schema["enum"]))
    if isinstance(v, str):
        if "pattern" in schema and not re.search(schema["pattern"], v):
            errs.append("%s: %r does not match %s" % (where, v, schema["pattern"]))
        if len(v) < schema.get("minLength", 0) or len(v) > schema.get("maxLength", len(v)):
            errs.append("%s: length of %r out of range" % (where, v))
    if _type_ok(v, "number"):
        if "minimum" in schema and v < schema["minimum"]:
            errs.append("%s: %r < minimum %r" % (where, v, schema["minimum"]))
        if "maximum" in schema and v > schema["maximum"]:
            errs.append("%s: %r > maximum %r" % (where, v, schema["maximum"]))
    if isinstance(v, dict):
        props = schema.get("properties", {})
        for k in schema.get("required", []):
            if k not in v:
                errs.append("%s: required %r missing" % (where, k))
        for k, sv in v.items():
            if k in props:
                errs += validate(props[k], sv, "%s.%s" % (where, k))
            elif schema.get("additionalProperties") is False:
                errs.append("%s: unexpected property %r" % (where, k))
    if isinstance(v, list) and "items" in schema:
        for i, x in enumerate(v):
            errs += validate(schema["items"], x, "%s[%d]" % (where, i))
    return errs


PROBLEM_TYPES = DOC["components"].get("schemas", {}).get("Problem", {}).get("properties", {}).get("type", {}).get(
    "enum", [])


def is_router_miss(r):
    """404 about:blank (no route; also the web handler's unknown file) or any 405."""
    if r.status == 405:
        return True
    if r.status != 404:
        return False
    try:
        return r.json().get("type") == "about:blank"
    except ValueError:
        return True


def media(r):
    return (r.get("Content-Type") or "").split(";")[0].strip().lower()


def conforms(template, method, r, what):
    """r answers a status documented for template+method, with a body that
    fits the documented schema of that status and content type."""
    op = DOC["paths"].get(template, {}).get(method.lower())
    if not check(op is not None, "%s: the document has %s %s" % (what, method, template)):
        return
    responses = op.get("responses", {})
    key = str(r.status)
    if key not in responses:
        key = key[0] + "XX"
    if not check(key in responses, "%s: status %d is documented for %s %s" % (what, r.status, method, template),
                 sorted(responses), r.status):
        return
    resp = resolve(responses[key])
    mt = media(r)
    if mt == "application/problem+json":
        try:
            p = r.json()
        except ValueError:
            p = None
        check(isinstance(p, dict) and p.get("type") in PROBLEM_TYPES,
              "%s: problem type is a documented one" % what, "one of Problem.type", p)
    content = resp.get("content")
    if not content or r.status in (204, 304) or method == "HEAD":
        return
    chosen = content.get(mt)
    if chosen is None:
        chosen = next((c for k, c in content.items() if k.endswith("/*") and mt.startswith(k[:-1])), None)
    if not check(chosen is not None, "%s: content type %s is documented for %d" % (what, mt, r.status),
                 sorted(content), mt):
        return
    if mt.endswith("json") and "schema" in chosen:
        try:
            body = r.json()
        except ValueError as e:
            check(False, "%s: body is JSON" % what, "JSON", "%s: %r" % (e, r.body[:200]))
            return
        errs = validate(chosen["schema"], body)
        check(not errs, "%s: body fits the documented schema" % what, [], errs[:8])


# --------------------------------------------------------------- HTTP helpers

_n = [0]


def call(port, method, path, headers=None, body=b""):
    """fetch() with a Content-Length for the body (the harness sends only
    the headers it is given)."""
    h = dict(headers or {})
    if isinstance(body, str):
        body = body.encode()
    if body or method in ("POST", "PUT", "PATCH"):
        h["Content-Length"] = str(len(body))
    return fetch(port, method, path, h, body)


def signup(port):
    _n[0] += 1
    body = json.dumps({"name": "Doc %d" % _n[0], "email": "doc%d.%d@example.com" % (_n[0], os.getpid())})
    r = call(port, "POST", "/api/users", {"Content-Type": "application/json"}, body)
    eq(r.status, 201, "sign-up answers 201")
    return r, r.json().get("api_key")


def auth(key, extra=None):
    h = {"Authorization": "Bearer %s" % key}
    h.update(extra or {})
    return h


def probe(port, method, path, key):
    """One request as a client would make it: auth, and a JSON body on
    POST/PUT/PATCH."""
    headers = auth(key)
    body = b""
    if method in ("POST", "PUT", "PATCH"):
        headers["Content-Type"] = "application/json"
        body = b"{}"
    return call(port, method, path, headers, body)


def png_1x1(rgb=(200, 30, 30)):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    raw = b"\x00" + bytes(rgb)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def sign(path, expires, uid, apikey):
    kh = hashlib.sha256(apikey.encode()).hexdigest()
    lk = hmac.new(SECRET.encode(), ("links\n%s\n%s" % (uid, kh)).encode(), hashlib.sha256).digest()
    d = hmac.new(lk, ("%s\n%d" % (path, expires)).encode(), hashlib.sha256).digest()
    return "%s?expires=%d&sig=%s&u=%s" % (path, expires, base64.urlsafe_b64encode(d).decode().rstrip("="), uid)


# --------------------------------------------------------------- tests

def test_served_document():
    r = call(SERVER.port, "GET", "/api/openapi.json")
    eq(r.status, 200, "GET /api/openapi.json")
    eq(media(r), "application/json", "content type")
    try:
        doc = json.loads(r.body.decode("utf-8"))
    except ValueError as e:
        check(False, "served document parses as JSON", "JSON", str(e))
        return
    eq(doc.get("openapi"), "3.1.0", "openapi version")
    with open(DOC_FILE, "rb") as f:
        want = f.read()
    check(r.body == want, "served document equals web/openapi.json byte for byte (rebuild after editing it)",
          "%d bytes, sha256 %s" % (len(want), hashlib.sha256(want).hexdigest()[:16]),
          "%d bytes, sha256 %s" % (len(r.body), hashlib.sha256(r.body).hexdigest()[:16]))
    eq(call(SERVER.port, "HEAD", "/api/openapi.json").status, 200, "HEAD /api/openapi.json")


def test_document_is_well_formed():
    eq(DOC_ERROR, None, "web/openapi.json reads and parses as JSON")
    eq(DOC.get("openapi"), "3.1.0", "web/openapi.json is OpenAPI 3.1.0")
    # every $ref resolves
    def walk(node, where):
        if isinstance(node, dict):
            if "$ref" in node:
                try:
                    resolve(node)
                except (KeyError, ValueError, TypeError) as e:
                    check(False, "$ref at %s resolves" % where, node["$ref"], repr(e))
            for k, v in node.items():
                walk(v, where + "/" + k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, "%s/%d" % (where, i))
    walk(DOC, "#")
    ids = [op.get("operationId") for _, _, op in operations()]
    check(all(ids), "every operation has an operationId", "all", ids)
    eq(sorted(i for i in set(ids) if ids.count(i) > 1), [], "operationIds are unique")
    for path, m, op in operations():
        check(op.get("responses"), "%s %s has responses" % (m.upper(), path))
        for t in re.findall(r"\{([^}/]+)\}", path):
            check(t in path_params(path, m), "{%s} of %s %s is a declared path parameter" % (t, m.upper(), path))
    check("bearerAuth" in DOC.get("components", {}).get("securitySchemes", {}), "bearer security scheme")
    # docs/API.md names every operation as "METHOD /path"
    try:
        with open(API_MD, encoding="utf-8") as f:
            md = f.read()
    except OSError as e:
        check(False, "docs/API.md exists", API_MD, str(e))
        return
    for path, m, _ in operations():
        check("%s %s" % (m.upper(), path) in md, "docs/API.md documents %s %s" % (m.upper(), path))


def test_every_documented_route_exists():
    _, key = signup(SERVER.port)
    n = 0
    for template, m, op in operations():
        method = m.upper()
        path = concrete(template, m)
        headers = auth(key) if op.get("security", DOC.get("security")) != [] else {}
        body = b""
        content = resolve(op.get("requestBody", {})).get("content")
        if content:  # a body of the first documented type; "{}" fails validation or meets a made-up id first
            headers["Content-Type"] = next(iter(content)).replace("/*", "/png")
            body = b"{}"
        r = call(SERVER.port, method, path, headers, body)
        n += 1
        what = "%s %s" % (method, path)
        if not check(not is_router_miss(r), "%s reaches a handler (not the router's 404/405)" % what,
                     "a handler's answer", "%d %r" % (r.status, r.body[:200])):
            continue
        conforms(template, method, r, what)
        if method == "GET":  # the router serves HEAD wherever GET is
            h = call(SERVER.port, "HEAD", path, headers)
            eq(h.status, r.status, "HEAD %s answers as GET does" % path)
    check(n >= 20, "the document has the routes", ">= 20 operations", n)


CANDIDATES = [
    # DESIGN §4
    "/", "/index.html", "/api/users", "/api/users/me", "/api/users/{id}", "/api/images",
    "/api/images/{id}/upload", "/api/images/{id}/raw", "/api/images/{id}", "/api/images/{id}/processed",
    "/api/images/{id}/thumbnail", "/api/jobs", "/api/jobs/{id}", "/api/jobs/{id}/result",
    "/api/jobs/{id}/events", "/metrics",
    # routes someone might add without documenting them
    "/api", "/api/", "/health", "/healthz", "/api/health", "/version", "/api/version", "/openapi.json",
    "/api/openapi.yaml", "/api/docs", "/api/metrics", "/api/users/{id}/key", "/api/users/me/key",
    "/api/users/{id}/keys", "/api/users/{id}/jobs", "/api/users/{id}/images", "/api/jobs/{id}/cancel",
    "/api/jobs/{id}/retry", "/api/jobs/{id}/result/raw", "/api/images/{id}/events", "/api/images/{id}/raw/x",
    "/api/jobs/{id}/events/x", "/robots.txt", "/style.css", "/no-such-file.txt", "/api/images/{id}/upload/x",
]


def test_every_served_route_is_documented():
    """Probes with the admin key (no probe can lock it out: DELETE
    /api/users/{id} and key rotation act on the user, not on it) and with
    the ids of real records, so that a handler's 404 /problems/not-found
    means "nothing here" (e.g. GET /api/images/{id}/{kind} with an unknown
    kind), not "no such record"."""
    port = SERVER.port
    r, key = signup(port)
    uid = r.json().get("id", FAKE_ID)
    jid = call(port, "POST", "/api/jobs", auth(key, {"Content-Type": "application/json"}),
               '{"url":"https://example.com/"}').json().get("id", FAKE_ID)
    iid = call(port, "POST", "/api/images", auth(key)).json().get("id", FAKE_ID)
    ids = (("/api/users/", uid), ("/api/jobs/", jid), ("/api/images/", iid))

    def real(path):
        for prefix, rid in ids:
            if path.startswith(prefix):
                return path.replace("{id}", rid).replace(FAKE_ID, rid)
        return path.replace("{id}", FAKE_ID)
    paths = set(real(c) for c in CANDIDATES) | set(real(concrete(t, m)) for t, m, _ in operations())
    served = 0
    for path in sorted(paths):
        for method in PROBE_METHODS:
            r = probe(port, method, path, ADMIN_KEY)
            if is_router_miss(r) or (r.status == 404 and media(r) == "application/problem+json" and
                                     r.json().get("type") == "/problems/not-found"):
                continue
            served += 1
            check(covered(method, path) is not None, "%s %s is served, so the document has it" % (method, path),
                  "an operation in web/openapi.json", "%d %r" % (r.status, r.body[:160]))
    check(served >= 20, "probing found the served routes", ">= 20", served)


def test_responses_match_the_document():
    port = SERVER.port
    r, key = signup(port)
    conforms("/api/users", "POST", r, "sign-up")
    me = r.json()
    check(r.get("Location") == "/api/users/%s" % me.get("id"), "sign-up Location", me.get("id"), r.get("Location"))
    r = call(port, "POST", "/api/users", {"Content-Type": "application/json"},
              json.dumps({"name": "Again", "email": me.get("email")}))
    eq(r.status, 409, "same email again")
    conforms("/api/users", "POST", r, "sign-up again")
    r = call(port, "POST", "/api/users", {"Content-Type": "application/json"}, '{"name":"x","email":"nope"}')
    eq(r.status, 400, "bad email")
    conforms("/api/users", "POST", r, "bad email")
    eq(r.json().get("field"), "email", "invalid-field names the field")
    conforms("/api/users", "POST", call(port, "POST", "/api/users", {"Content-Type": "text/plain"}, "{}"),
             "sign-up as text/plain")
    conforms("/api/users/me", "GET", call(port, "GET", "/api/users/me", auth(key)), "GET me")
    conforms("/api/users/me", "GET", call(port, "GET", "/api/users/me"), "GET me without a key")
    conforms("/api/users/{id}", "GET", call(port, "GET", "/api/users/%s" % me["id"], auth(key)), "GET self")

    # jobs
    r = call(port, "POST", "/api/jobs", auth(key, {"Content-Type": "application/json", "Idempotency-Key": "k1"}),
              json.dumps({"url": "https://example.com/", "format": "jpeg", "viewport": {"width": 390, "height": 844,
                                                                                      "mobile": True}}))
    eq(r.status, 202, "POST /api/jobs")
    conforms("/api/jobs", "POST", r, "POST /api/jobs")
    job = r.json()
    jid = job.get("id", FAKE_ID)
    r = call(port, "POST", "/api/jobs", auth(key, {"Content-Type": "application/json", "Idempotency-Key": "k1"}),
              json.dumps({"format": "jpeg", "url": "https://example.com/", "viewport": {"height": 844, "width": 390,
                                                                                      "mobile": True}}))
    eq(r.status, 200, "replay with the same Idempotency-Key")
    eq(r.get("Idempotent-Replayed"), "true", "Idempotent-Replayed header")
    conforms("/api/jobs", "POST", r, "replayed POST /api/jobs")
    r = call(port, "POST", "/api/jobs", auth(key, {"Content-Type": "application/json", "Idempotency-Key": "k1"}),
              json.dumps({"url": "https://example.org/"}))
    eq(r.status, 422, "same key, other options")
    conforms("/api/jobs", "POST", r, "reused Idempotency-Key")
    r = call(port, "POST", "/api/jobs", auth(key, {"Content-Type": "application/json"}),
              json.dumps({"url": "https://example.com/", "viewport": {"width": 99999}}))
    eq(r.status, 400, "viewport too wide")
    eq(r.json().get("field"), "viewport.width", "field of the too-wide viewport")
    conforms("/api/jobs", "POST", r, "viewport too wide")
    conforms("/api/jobs", "GET", call(port, "GET", "/api/jobs?state=queued&limit=10", auth(key)), "GET /api/jobs")
    conforms("/api/jobs", "GET", call(port, "GET", "/api/jobs?limit=0", auth(key)), "GET /api/jobs?limit=0")
    conforms("/api/jobs/{id}", "GET", call(port, "GET", "/api/jobs/%s" % jid, auth(key)), "GET job")
    r = call(port, "GET", "/api/jobs/%s/result" % jid, auth(key))
    eq(r.status, 409, "result of a queued job")
    conforms("/api/jobs/{id}/result", "GET", r, "result of a queued job")
    path = "/api/jobs/%s/result" % jid
    r = call(port, "GET", path + "?expires=4102444800&sig=AAAA")
    eq(r.status, 403, "tampered signed link")
    eq(r.json().get("type"), "/problems/bad-signature", "tampered link's type")
    conforms("/api/jobs/{id}/result", "GET", r, "tampered signed link")
    r = call(port, "GET", sign(path, int(time.time()) - 10, me.get("id"), key))
    eq(r.status, 403, "expired signed link")
    eq(r.json().get("type"), "/problems/link-expired", "expired link's type")
    conforms("/api/jobs/{id}/result", "GET", r, "expired signed link")
    r = call(port, "DELETE", "/api/jobs/%s" % jid, auth(key))
    eq(r.status, 200, "cancel")
    conforms("/api/jobs/{id}", "DELETE", r, "cancel")
    r = call(port, "DELETE", "/api/jobs/%s" % jid, auth(key))
    eq(r.status, 409, "cancel again")
    conforms("/api/jobs/{id}", "DELETE", r, "cancel again")
    # events of a finished job: one event, then the stream ends
    with Conn(port) as c:
        c.send(request("GET", "/api/jobs/%s/events" % jid, auth(key)))
        r = c.read_response(timeout=5)
    eq(r.status, 200, "events")
    conforms("/api/jobs/{id}/events", "GET", r, "events")
    events = [e for e in r.body.decode().split("\n\n") if e.strip()]
    eq(len(events), 1, "one event for a job already canceled")
    if events:
        fields = dict(ln.split(": ", 1) for ln in events[0].split("\n") if ": " in ln)
        eq(fields.get("event"), "state", "event name")
        try:
            data = json.loads(fields.get("data", ""))
        except ValueError:
            data = None
        errs = validate({"$ref": "#/components/schemas/Job"}, data)
        check(not errs, "event data is a Job", [], errs[:8])
        eq(fields.get("id"), str((data or {}).get("version")), "event id is the job's version")
        eq((data or {}).get("state"), "canceled", "event state")

    # images
    r = call(port, "POST", "/api/images", auth(key))
    eq(r.status, 201, "POST /api/images")
    conforms("/api/images", "POST", r, "POST /api/images")
    iid = r.json().get("id", FAKE_ID)
    conforms("/api/images/{id}/raw", "GET", call(port, "GET", "/api/images/%s/raw" % iid, auth(key)),
             "raw before the upload")
    r = call(port, "PUT", "/api/images/%s/raw" % iid, auth(key, {"Content-Type": "image/png"}), b"not an image")
    eq(r.status, 415, "PUT raw with no image")
    conforms("/api/images/{id}/raw", "PUT", r, "PUT raw with no image")
    img = png_1x1()
    r = call(port, "PUT", "/api/images/%s/raw" % iid, auth(key, {"Content-Type": "image/png"}), img)
    eq(r.status, 200, "PUT raw")
    conforms("/api/images/{id}/raw", "PUT", r, "PUT raw")
    raw_link = r.json().get("links", {}).get("raw")
    check(raw_link and "sig=" in raw_link, "links.raw is a signed link", "/api/images/ID/raw?expires=..&sig=..",
          raw_link)
    if raw_link:
        r = call(port, "GET", raw_link)
        eq(r.status, 200, "signed raw link without Authorization")
        conforms("/api/images/{id}/raw", "GET", r, "signed raw link")
        eq(r.body, img, "the bytes come back")
        r = call(port, "GET", raw_link, {"Range": "bytes=0-7"})
        eq(r.status, 206, "Range")
        conforms("/api/images/{id}/raw", "GET", r, "ranged raw")
        r = call(port, "GET", raw_link, {"Range": "bytes=9999-"})
        eq(r.status, 416, "unsatisfiable Range")
        conforms("/api/images/{id}/raw", "GET", r, "unsatisfiable Range")
    r = call(port, "PUT", "/api/images/%s/raw" % iid, auth(key, {"Content-Type": "image/png"}), img)
    eq(r.status, 409, "second upload")
    conforms("/api/images/{id}/raw", "PUT", r, "second upload")
    r = call(port, "GET", "/api/images/%s/thumbnail" % iid, auth(key))
    eq(r.status, 409, "thumbnail before processing")
    conforms("/api/images/{id}/thumbnail", "GET", r, "thumbnail before processing")
    iid2 = call(port, "POST", "/api/images", auth(key)).json().get("id", FAKE_ID)
    b = "tintype-doc-boundary"
    form = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
            "Content-Type: image/png\r\n\r\n" % b).encode() + img + ("\r\n--%s--\r\n" % b).encode()
    r = call(port, "POST", "/api/images/%s/upload" % iid2,
              auth(key, {"Content-Type": "multipart/form-data; boundary=%s" % b}), form)
    eq(r.status, 200, "POST upload (multipart)")
    conforms("/api/images/{id}/upload", "POST", r, "multipart upload")
    conforms("/api/images/{id}", "GET", call(port, "GET", "/api/images/%s" % iid2, auth(key)), "GET image")
    r = call(port, "GET", "/api/images?limit=1", auth(key))
    conforms("/api/images", "GET", r, "GET /api/images")
    check(isinstance(r.json().get("next_cursor"), str), "a page of 1 of 2 images has a next_cursor", "a cursor",
          r.json().get("next_cursor"))

    # metrics (loopback), key rotation, deletion
    r = call(port, "GET", "/metrics")
    eq(r.status, 200, "GET /metrics from loopback")
    conforms("/metrics", "GET", r, "metrics")
    r = call(port, "POST", "/api/users/me/key", auth(key))
    eq(r.status, 200, "rotate the key")
    conforms("/api/users/{id}/key", "POST", r, "rotate the key")
    new_key = r.json().get("api_key")
    check(new_key and new_key != key, "a new key", "a different key", new_key)
    eq(call(port, "GET", "/api/users/me", auth(key)).status, 401, "the old key stops working")
    r = call(port, "DELETE", "/api/users/%s" % me["id"], auth(new_key))
    eq(r.status, 204, "delete self")
    conforms("/api/users/{id}", "DELETE", r, "delete self")


def call_args(text, i):
    """The text of a C call's arguments from just past its '(' to the
    matching ')', string and char literals skipped over whole."""
    depth, j = 1, i
    while j < len(text) and depth:
        ch = text[j]
        if ch in "\"'":
            j += 1
            while j < len(text) and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        j += 1
    return text[i:j - 1]


def test_problem_kinds_match_the_source():
    sent = set(["invalid-field"])  # api_invalid()
    src = os.path.join(ROOT, "src", "api")
    for name in sorted(os.listdir(src)):
        if not name.endswith(".c"):
            continue
        with open(os.path.join(src, name), encoding="utf-8") as f:
            text = f.read()
        for m in re.finditer(r"\b(?:api_problem|upload_fail)\s*\(", text):
            sent |= set(re.findall(r'"([a-z]+(?:-[a-z]+)*)"', call_args(text, m.end())))
    documented = set(t[len("/problems/"):] for t in PROBLEM_TYPES if t.startswith("/problems/"))
    eq(sorted(sent - documented), [], "every problem kind the handlers send is in Problem.type")
    eq(sorted(documented - sent), [], "every documented problem kind is still sent by a handler")


if __name__ == "__main__":
    run("api_openapi", [test_served_document, test_document_is_well_formed, test_every_documented_route_exists,
                        test_every_served_route_is_documented, test_responses_match_the_document,
                        test_problem_kinds_match_the_source], server=SERVER)

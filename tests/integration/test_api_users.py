"""/api/users against the real binary over loopback (DESIGN §3-§4, issue 4
point 1): sign-up and its validation (media type, JSON, fields, sizes),
Bearer authentication (missing, malformed, unknown keys; the admin key by
flag and by TINTYPE_ADMIN_KEY), /me, read and delete of self / others /
as admin (404, not 403), key rotation, concurrent sign-ups with one email,
--routes jobs, hostile bodies, and one JSON log line per request."""
import json
import threading
import time

from apiclient import (ID_RE, KEY_RE, call, check_request_logs, invalid, new_user, now_ms, problem, signup,
                       too_large)
from ttharness import Server, check, eq, fetch, run

ADMIN = "admin-key-for-the-users-test-0123456789"
S = Server("--admin-key", ADMIN, processes=2)

USER_KEYS = {"id", "name", "email", "created_at", "version"}


def post_user(body=None, raw=None, ctype="application/json", headers=None):
    return call(S.port, "POST", "/api/users", body=body, raw=raw, ctype=ctype, headers=headers)


# --------------------------------------------------------------- sign-up


def test_signup_created():
    t0 = now_ms()
    r = post_user({"name": "Ada Lovelace", "email": "ada@example.com"})
    t1 = now_ms()
    eq(r.status, 201, "sign-up: 201")
    eq((r.get("Content-Type") or "").split(";")[0], "application/json", "sign-up: Content-Type")
    j = r.j or {}
    eq(set(j), USER_KEYS | {"api_key"}, "sign-up: members")
    check(isinstance(j.get("id"), str) and len(j["id"]) == 36 and ID_RE.match(j["id"]),
          "sign-up: id is a UUIDv7 string", "UUIDv7", j.get("id"))
    eq(j.get("name"), "Ada Lovelace", "sign-up: name")
    eq(j.get("email"), "ada@example.com", "sign-up: email")
    check(isinstance(j.get("created_at"), int) and t0 - 1000 <= j["created_at"] <= t1 + 1000,
          "sign-up: created_at is now in ms", (t0, t1), j.get("created_at"))
    eq(j.get("version"), 1, "sign-up: version")
    check(isinstance(j.get("api_key"), str) and KEY_RE.match(j["api_key"]),
          "sign-up: api_key is tt_ + 43 base64url characters", KEY_RE.pattern, j.get("api_key"))
    eq(r.get("Location"), "/api/users/%s" % j.get("id"), "sign-up: Location")
    eq(r.get("Cache-Control"), "no-store", "sign-up: Cache-Control")
    # a second user: another id, another key
    r2 = post_user({"name": "Grace Hopper", "email": "grace@example.com"})
    eq(r2.status, 201, "second sign-up: 201")
    j2 = r2.j or {}
    check(j2.get("id") != j.get("id"), "two users have different ids", "different", j2.get("id"))
    check(j2.get("api_key") != j.get("api_key"), "two users have different keys", "different", j2.get("api_key"))
    check(j2.get("id", "") > j.get("id", ""), "UUIDv7 ids grow with time", "> " + str(j.get("id")), j2.get("id"))
    # the key works at once
    r3 = call(S.port, "GET", "/api/users/me", key=j.get("api_key", "x"))
    eq(r3.status, 200, "the new key authenticates")
    # Content-Type with parameters is still JSON
    r4 = post_user({"name": "Param", "email": "param@example.com"}, ctype="application/json; charset=utf-8")
    eq(r4.status, 201, "sign-up with Content-Type application/json; charset=utf-8")
    # a name of 100 characters and an email of 254 are the maximum
    r5 = post_user({"name": "n" * 100, "email": "e" * 242 + "@example.com"})
    eq(r5.status, 201, "name of 100 characters and email of 254 accepted")
    # non-ASCII names are fine; 100 characters is 100 characters, not bytes
    r6 = post_user({"name": "Zoë Åström", "email": "zoe@example.com"})
    eq(r6.status, 201, "non-ASCII name accepted")
    eq((r6.j or {}).get("name"), "Zoë Åström", "non-ASCII name round-trips")
    r7 = post_user({"name": "é" * 100, "email": "e100@example.com"})
    eq(r7.status, 201, "name of 100 non-ASCII characters (200 UTF-8 bytes) accepted: the limit is in characters")


def test_signup_media_type():
    body = json.dumps({"name": "M", "email": "m@example.com"})
    r = post_user(raw=body, ctype=None)
    problem(r, 415, "unsupported-media-type", "sign-up without Content-Type", instance="/api/users")
    r = post_user(raw=body, ctype="text/plain")
    problem(r, 415, "unsupported-media-type", "sign-up as text/plain")
    r = post_user(raw=body, ctype="application/x-www-form-urlencoded")
    problem(r, 415, "unsupported-media-type", "sign-up as a form")
    r = post_user(raw=body, ctype="application/jsonp")
    problem(r, 415, "unsupported-media-type", "sign-up as application/jsonp")
    r = post_user(raw=body, ctype="APPLICATION/JSON")
    eq(r.status, 201, "media type names are case-insensitive: APPLICATION/JSON")


def test_signup_bad_json():
    cases = [
        ("", "empty body"),
        ("{", "truncated object"),
        ("{'name': 'x'}", "single quotes"),
        ('{"name":"x","email":"x@example.com",}', "trailing comma"),
        ("nul", "bare word"),
        ('{"name":"x"} {"email":"y@example.com"}', "two values"),
    ]
    for raw, what in cases:
        r = post_user(raw=raw)
        problem(r, 400, "invalid-json", "sign-up with %s" % what, instance="/api/users")
    for raw, what in (("[]", "an array"), ('"str"', "a string"), ("null", "null"), ("42", "a number"),
                      ('[{"name":"x","email":"x@example.com"}]', "an array of the object")):
        r = post_user(raw=raw)
        problem(r, 400, "invalid-json", "sign-up with %s (not an object)" % what)
    r = post_user(raw='{"name":"A","name":"B","email":"dup@example.com"}')
    problem(r, 400, "invalid-json", "sign-up with a duplicate key")
    r = post_user({"name": "U", "email": "unknown@example.com", "role": "admin"})
    invalid(r, "role", "sign-up with an unknown field")
    r = post_user({"name": "U", "email": "unknown2@example.com", "api_key": "tt_mine"})
    invalid(r, "api_key", "sign-up choosing its own api_key")
    r = post_user(raw=b'{"name":"bad \xff\xfe utf8","email":"utf@example.com"}')
    problem(r, 400, "invalid-json", "sign-up with invalid UTF-8 in name")
    r = post_user(raw=b'{"name":"overlong \xc0\xaf","email":"utf2@example.com"}')
    problem(r, 400, "invalid-json", "sign-up with an overlong UTF-8 sequence")
    r = post_user(raw=b'{"name":"surrogate \xed\xa0\x80","email":"utf3@example.com"}')
    problem(r, 400, "invalid-json", "sign-up with a UTF-8 encoded surrogate")
    # none of these made a user
    r = post_user({"name": "After", "email": "unknown@example.com"})
    eq(r.status, 201, "the email of a refused sign-up is still free")


def test_signup_fields():
    bad_names = [
        ({"email": "nn1@example.com"}, "missing"),
        ({"name": "", "email": "nn2@example.com"}, "empty"),
        ({"name": "n" * 101, "email": "nn3@example.com"}, "101 characters"),
        ({"name": "line\nbreak", "email": "nn4@example.com"}, "a newline"),
        ({"name": "tab\there", "email": "nn5@example.com"}, "a tab"),
        ({"name": "del\x7f", "email": "nn6@example.com"}, "DEL"),
        ({"name": "nul\u0000x", "email": "nn7@example.com"}, "NUL (\\u0000)"),
        ({"name": 42, "email": "nn8@example.com"}, "a number"),
        ({"name": None, "email": "nn9@example.com"}, "null"),
        ({"name": ["a"], "email": "nn10@example.com"}, "an array"),
        ({"name": {"first": "a"}, "email": "nn11@example.com"}, "an object"),
        ({"name": True, "email": "nn12@example.com"}, "true"),
    ]
    for body, what in bad_names:
        r = post_user(body)
        if "\\u0000" in what and r.status == 400 and (r.j or {}).get("type") == "/problems/invalid-json":
            problem(r, 400, "invalid-json", "name with NUL")  # refused by the parser: also fine
            continue
        invalid(r, "name", "name %s" % what, instance="/api/users")
    bad_emails = [
        ({"name": "E"}, "missing"),
        ({"name": "E", "email": ""}, "empty"),
        ({"name": "E", "email": "plainaddress"}, "without @"),
        ({"name": "E", "email": "a@b"}, "without a dot in the domain"),
        ({"name": "E", "email": "@example.com"}, "without a local part"),
        ({"name": "E", "email": "a@@example.com"}, "with two @"),
        ({"name": "E", "email": "a@b@example.com"}, "with two @ apart"),
        ({"name": "E", "email": "a b@example.com"}, "with a space"),
        ({"name": "E", "email": "ab@example.com\n"}, "with a newline"),
        ({"name": "E", "email": "e" * 243 + "@example.com"}, "of 255 characters"),
        ({"name": "E", "email": 7}, "a number"),
        ({"name": "E", "email": None}, "null"),
    ]
    for body, what in bad_emails:
        r = post_user(body)
        invalid(r, "email", "email %s" % what, instance="/api/users")
    r = post_user({})
    check(r.status == 400 and (r.j or {}).get("field") in ("name", "email"),
          "empty object: 400 naming name or email", 400, (r.status, r.body[:200]))


def test_signup_email_taken():
    u, _ = signup(S.port, "First", "taken@example.com")
    r = post_user({"name": "Second", "email": "taken@example.com"})
    problem(r, 409, "email-taken", "same email again", instance="/api/users")
    check("api_key" not in (r.j or {}), "a 409 shows no key", "no api_key", r.j)


def test_signup_concurrent_same_email():
    results = []
    lock = threading.Lock()

    def one(i):
        try:
            r = post_user({"name": "Racer %d" % i, "email": "race@example.com"})
            with lock:
                results.append((r.status, (r.j or {}).get("type")))
        except Exception as e:  # noqa: BLE001
            with lock:
                results.append(("exception", str(e)))

    ts = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    statuses = sorted(str(s) for s, _ in results)
    eq(len(results), 10, "10 concurrent sign-ups answered")
    eq(sum(1 for s, _ in results if s == 201), 1, "exactly one concurrent sign-up with one email wins")
    eq(sum(1 for s, t in results if s == 409 and t == "/problems/email-taken"), 9,
       "the other nine answer 409 email-taken (%s)" % statuses)


def test_signup_body_limit():
    # 16 KiB exactly (JSON padded with spaces) is accepted; one byte more is 413
    base = json.dumps({"name": "Big", "email": "big@example.com"})
    raw = base[:-1] + " " * (16 * 1024 - len(base)) + "}"
    eq(len(raw), 16 * 1024, "(test) padded body is 16 KiB")
    r = post_user(raw=raw)
    eq(r.status, 201, "sign-up body of exactly 16 KiB accepted")
    base2 = json.dumps({"name": "Big", "email": "big2@example.com"})
    raw2 = base2[:-1] + " " * (16 * 1024 + 1 - len(base2)) + "}"
    eq(len(raw2), 16 * 1024 + 1, "(test) padded body is 16 KiB + 1")
    r = post_user(raw=raw2)
    too_large(r, "sign-up body of 16 KiB + 1")
    r = post_user(raw="{" + " " * 200000 + "}")
    eq(r.status, 413, "sign-up body of 200 KB: 413")
    # chunked too
    body = b"{" + b" " * 20000 + b'"name":"C","email":"chunked@example.com"}'
    hs = [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]
    data = b"".join(b"%x\r\n" % len(body[i:i + 4000]) + body[i:i + 4000] + b"\r\n"
                    for i in range(0, len(body), 4000)) + b"0\r\n\r\n"
    r = fetch(S.port, "POST", "/api/users", hs, data)
    eq(r.status, 413, "chunked sign-up body over 16 KiB: 413")
    # the server is fine afterwards
    r = post_user({"name": "After big", "email": "afterbig@example.com"})
    eq(r.status, 201, "sign-up works after the 413s")


# --------------------------------------------------------------- authentication


def test_auth_required():
    for method, path in (("GET", "/api/users/me"), ("GET", "/api/users/01a20275-0160-7015-b567-cda4fcfa08d7"),
                         ("DELETE", "/api/users/01a20275-0160-7015-b567-cda4fcfa08d7"),
                         ("POST", "/api/users/01a20275-0160-7015-b567-cda4fcfa08d7/key")):
        r = call(S.port, method, path)
        problem(r, 401, "unauthorized", "%s %s without Authorization" % (method, path), instance=path)
        w = r.get("WWW-Authenticate") or ""
        check(w.split(" ")[0].split(",")[0] == "Bearer", "%s %s: WWW-Authenticate: Bearer" % (method, path),
              "Bearer", w)
    _, key = new_user(S.port, "auth")
    for h, what in ((("Authorization", "Bearer"), "Bearer without a key"),
                    (("Authorization", "Bearer "), "Bearer and a space"),
                    (("Authorization", "Basic " + key), "Basic scheme"),
                    (("Authorization", key), "the key without a scheme"),
                    (("Authorization", "Bearer tt_" + "A" * 43), "an unknown key"),
                    (("Authorization", "Bearer " + key[:-1]), "a truncated key"),
                    (("Authorization", "Bearer " + key + "x"), "a key with a byte more"),
                    (("Authorization", "Bearer " + "k" * 5000), "a 5000-byte key"),
                    (("Authorization", "Bearer " + ADMIN[:-1]), "the admin key minus a byte"),
                    (("X-Api-Key", key), "the key in another header")):
        r = call(S.port, "GET", "/api/users/me", headers=[h])
        problem(r, 401, "unauthorized", "GET /api/users/me with %s" % what)
        check((r.get("WWW-Authenticate") or "").startswith("Bearer"),
              "401 for %s has WWW-Authenticate Bearer" % what, "Bearer...", r.get("WWW-Authenticate"))
    # two Authorization headers: refused, not the first one used (issue 14), whatever their order or case
    _, other = new_user(S.port, "auth2")
    for hs, what in (([("Authorization", "Bearer " + key), ("Authorization", "Bearer " + other)], "two keys"),
                     ([("Authorization", "Bearer " + key), ("authorization", "Bearer tt_bogus")], "a good, a bad"),
                     ([("Authorization", "Bearer " + key), ("Authorization", "Bearer " + key)], "the same twice")):
        r = call(S.port, "GET", "/api/users/me", headers=hs)
        problem(r, 400, "bad-authorization", "GET /api/users/me with %s" % what)
    # the scheme name is case-insensitive (RFC 9110 §11.1)
    r = call(S.port, "GET", "/api/users/me", headers=[("Authorization", "bearer " + key)])
    eq(r.status, 200, "lower-case 'bearer' scheme accepted")
    # sign-up needs no key, and a key (even a bad one) does not stop it
    r = call(S.port, "POST", "/api/users", key="tt_nonsense", body={"name": "K", "email": "withkey@example.com"})
    eq(r.status, 201, "sign-up with a bogus Authorization still signs up")


def test_me():
    u, key = new_user(S.port, "me")
    r = call(S.port, "GET", "/api/users/me", key=key)
    eq(r.status, 200, "GET /api/users/me: 200")
    j = r.j or {}
    eq(set(j), USER_KEYS, "GET /api/users/me: members (no api_key, no hash)")
    for k in USER_KEYS:
        eq(j.get(k), u.get(k), "GET /api/users/me: %s as at sign-up" % k)
    check("api_key" not in r.body.decode("utf-8", "replace"), "no api_key anywhere in /me", "absent", r.body[:300])
    check(key not in r.body.decode("utf-8", "replace"), "the key itself is not echoed", "absent", r.body[:300])


def test_get_user_by_id():
    a, ka = new_user(S.port, "ga")
    b, kb = new_user(S.port, "gb")
    r = call(S.port, "GET", "/api/users/" + a["id"], key=ka)
    eq(r.status, 200, "GET own user by id: 200")
    eq((r.j or {}).get("id"), a["id"], "GET own user by id: id")
    eq(set(r.j or {}), USER_KEYS, "GET own user by id: members")
    path = "/api/users/" + b["id"]
    r = call(S.port, "GET", path, key=ka)
    problem(r, 404, "not-found", "GET another user's id: 404 not 403", instance=path)
    check(b["email"] not in r.body.decode(), "the 404 leaks nothing of the other user", "absent", r.body)
    r = call(S.port, "GET", "/api/users/01a20275-0160-7015-b567-cda4fcfa08d7", key=ka)
    problem(r, 404, "not-found", "GET a user id that does not exist")
    for bad in ("not-a-uuid", "01a20275", a["id"] + "0", a["id"].upper(), "%00", "..%2f..%2fetc"):
        r = call(S.port, "GET", "/api/users/" + bad, key=ka)
        eq(r.status, 404, "GET /api/users/%s: 404" % bad)
    # the admin reads anyone, and 404 for nobody
    for u in (a, b):
        r = call(S.port, "GET", "/api/users/" + u["id"], key=ADMIN)
        eq(r.status, 200, "admin GET /api/users/{id}: 200")
        eq((r.j or {}).get("email"), u["email"], "admin GET /api/users/{id}: the user")
    r = call(S.port, "GET", "/api/users/01a20275-0160-7015-b567-cda4fcfa08d7", key=ADMIN)
    problem(r, 404, "not-found", "admin GET of a missing user")
    # admin without a user: /me
    r = call(S.port, "GET", "/api/users/me", key=ADMIN)
    check(r.status in (200, 404), "admin GET /api/users/me answers 200 or 404, not an error", "200/404", r.status)


def test_delete_user():
    a, ka = new_user(S.port, "da")
    b, kb = new_user(S.port, "db")
    path_b = "/api/users/" + b["id"]
    r = call(S.port, "DELETE", path_b, key=ka)
    problem(r, 404, "not-found", "DELETE another user: 404", instance=path_b)
    eq(call(S.port, "GET", "/api/users/me", key=kb).status, 200, "the other user survives a foreign DELETE")
    r = call(S.port, "DELETE", "/api/users/" + a["id"], key=ka)
    eq(r.status, 204, "DELETE self: 204")
    eq(r.body, b"", "204 has no body")
    r = call(S.port, "GET", "/api/users/me", key=ka)
    problem(r, 401, "unauthorized", "a deleted user's key: 401")
    r = call(S.port, "DELETE", "/api/users/" + a["id"], key=ka)
    problem(r, 401, "unauthorized", "DELETE again with the deleted key: 401")
    r = call(S.port, "GET", "/api/users/" + a["id"], key=ADMIN)
    problem(r, 404, "not-found", "admin GET of a deleted user: 404")
    # the admin deletes anyone
    r = call(S.port, "DELETE", path_b, key=ADMIN)
    eq(r.status, 204, "admin DELETE of a user: 204")
    problem(call(S.port, "GET", "/api/users/me", key=kb), 401, "unauthorized", "key of a user the admin deleted")
    r = call(S.port, "DELETE", path_b, key=ADMIN)
    problem(r, 404, "not-found", "admin DELETE of a deleted user: 404")
    r = call(S.port, "DELETE", "/api/users/garbage", key=ADMIN)
    eq(r.status, 404, "admin DELETE of a malformed id: 404")
    # 'me' as the id of a DELETE (not in the contract: records what it does)
    c, kc = new_user(S.port, "dme")
    r = call(S.port, "DELETE", "/api/users/me", key=kc)
    print("  info: DELETE /api/users/me ->", r.status)
    check(r.status in (204, 404), "DELETE /api/users/me: 204 or 404", "204/404", r.status)
    if r.status == 204:
        eq(call(S.port, "GET", "/api/users/me", key=kc).status, 401, "after DELETE /api/users/me the key is dead")
    r = call(S.port, "DELETE", "/api/users/me", key=ADMIN)
    eq(r.status, 404, "admin DELETE /api/users/me (the admin is no user): 404")


def test_key_rotation():
    a, ka = new_user(S.port, "ka")
    b, kb = new_user(S.port, "kb")
    path = "/api/users/%s/key" % a["id"]
    r = call(S.port, "POST", path, key=ka)
    eq(r.status, 200, "POST /api/users/{id}/key: 200")
    j = r.j or {}
    k2 = j.get("api_key", "")
    check(KEY_RE.match(k2 or ""), "rotation: a new api_key", KEY_RE.pattern, k2)
    check(k2 != ka, "rotation: the key changed", "!= old", k2)
    eq(j.get("id"), a["id"], "rotation: the user's record")
    check(isinstance(j.get("version"), int) and j.get("version", 0) >= 2, "rotation: version went up", ">= 2",
          j.get("version"))
    eq(r.get("Cache-Control"), "no-store", "rotation: Cache-Control no-store")
    problem(call(S.port, "GET", "/api/users/me", key=ka), 401, "unauthorized", "the old key after rotation")
    r = call(S.port, "GET", "/api/users/me", key=k2)
    eq(r.status, 200, "the new key works")
    eq((r.j or {}).get("id"), a["id"], "the new key is the same user")
    # another user's id
    pb = "/api/users/%s/key" % b["id"]
    problem(call(S.port, "POST", pb, key=k2), 404, "not-found", "rotating another user's key: 404", instance=pb)
    eq(call(S.port, "GET", "/api/users/me", key=kb).status, 200, "the other user's key still works")
    # 'me' as the id (not in the contract: records what it does)
    r = call(S.port, "POST", "/api/users/me/key", key=k2)
    print("  info: POST /api/users/me/key ->", r.status, r.body[:160])
    if r.status == 200:
        k3 = (r.j or {}).get("api_key")
        check(KEY_RE.match(k3 or ""), "POST /api/users/me/key: a new key", KEY_RE.pattern, k3)
        eq(call(S.port, "GET", "/api/users/me", key=k2).status, 401, "me/key: the previous key is dead")
        eq(call(S.port, "GET", "/api/users/me", key=k3).status, 200, "me/key: the new key works")
        k2 = k3
    else:
        check(r.status == 404, "POST /api/users/me/key is 200 or 404", "200/404", r.status)
    # the admin rotates anyone's key
    r = call(S.port, "POST", pb, key=ADMIN)
    eq(r.status, 200, "admin rotates another user's key: 200")
    kb2 = (r.j or {}).get("api_key", "")
    eq(call(S.port, "GET", "/api/users/me", key=kb).status, 401, "admin rotation kills the old key")
    eq(call(S.port, "GET", "/api/users/me", key=kb2).status, 200, "admin rotation's key works")
    # a body is not needed and not wanted: Content-Length 0
    problem(call(S.port, "POST", "/api/users/%s/key" % a["id"]), 401, "unauthorized", "rotation without a key")


def _png(w, h):
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    raw = b"".join(b"\x00" + b"\x80\x40\x20" * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _image_with_bytes(k):
    iid = call(S.port, "POST", "/api/images", key=k).j["id"]
    r = call(S.port, "PUT", "/api/images/%s/raw" % iid, key=k, raw=_png(20, 10), ctype="image/png")
    eq(r.status, 200, "upload")
    return iid, (r.j or {}).get("links", {}).get("raw")


def test_links_die_with_key_and_user():
    """Issue 16 item 8: a signed link stops at key rotation (bad-signature);
    deleting the user deletes their jobs, images and blob files, and their
    links answer 403 link-revoked."""
    import os
    u, k = new_user(S.port, "links")
    iid, link = _image_with_bytes(k)
    jid = call(S.port, "POST", "/api/jobs", key=k, body={"url": "https://example.com/"}).j["id"]
    eq(fetch(S.port, "GET", link).status, 200, "the signed raw link works")
    r = call(S.port, "POST", "/api/users/%s/key" % u["id"], key=k)
    eq(r.status, 200, "key rotation")
    k2 = (r.j or {}).get("api_key")
    problem(fetch_problem(link), 403, "bad-signature", "the link made before the rotation")
    link2 = ((call(S.port, "GET", "/api/images/" + iid, key=k2).j or {}).get("links") or {}).get("raw")
    eq(fetch(S.port, "GET", link2).status, 200, "a link made after the rotation works")
    blob_dir = os.path.join(S.data, "blobs", "images", iid)
    check(os.path.isdir(blob_dir) and os.listdir(blob_dir), "the upload is on disk", "files", blob_dir)
    eq(call(S.port, "DELETE", "/api/users/me", key=k2).status, 204, "DELETE /api/users/me")
    problem(fetch_problem(link2), 403, "link-revoked", "the link of a deleted user")
    eq(call(S.port, "GET", "/api/images/" + iid, key=ADMIN).status, 404, "the image record is gone")
    eq(call(S.port, "GET", "/api/jobs/" + jid, key=ADMIN).status, 404, "the job record is gone")
    check(not os.path.exists(blob_dir) or not os.listdir(blob_dir), "the upload's files are gone", [],
          os.listdir(blob_dir) if os.path.isdir(blob_dir) else [])
    eq(call(S.port, "GET", "/api/users/me", key=k2).status, 401, "the key is gone")


def fetch_problem(link):
    r = call(S.port, "GET", link)
    return r


def test_admin_key_from_env():
    env_admin = "env-admin-key-0123456789abcdef"
    with Server(processes=1, env={"TINTYPE_ADMIN_KEY": env_admin}) as s2:
        u, k = signup(s2.port, "Env", "env@example.com")
        r = call(s2.port, "GET", "/api/users/" + u["id"], key=env_admin)
        eq(r.status, 200, "TINTYPE_ADMIN_KEY is an admin key")
        r = call(s2.port, "GET", "/api/users/" + u["id"], key=ADMIN)
        problem(r, 401, "unauthorized", "another server's admin key is unknown here")
    with Server(processes=1) as s3:
        u, k = signup(s3.port, "NoAdmin", "noadmin@example.com")
        for cand in ("", " ", "admin"):
            r = call(s3.port, "GET", "/api/users/" + u["id"], key=cand)
            eq(r.status, 401, "no admin key configured: %r is not one" % cand)


def test_routes_jobs_only():
    with Server("--routes", "jobs", processes=1) as s:
        r = call(s.port, "POST", "/api/users", body={"name": "R", "email": "r@example.com"})
        eq(r.status, 404, "--routes jobs: POST /api/users is 404")
        r = call(s.port, "GET", "/api/users/me", key="tt_x")
        eq(r.status, 404, "--routes jobs: GET /api/users/me is 404")
        r = fetch(s.port, "GET", "/index.html")
        eq(r.status, 200, "--routes jobs: GET /index.html is 200 (health check)")
        r = call(s.port, "GET", "/api/jobs")
        eq(r.status, 401, "--routes jobs: /api/jobs is served (401 without a key)")


# --------------------------------------------------------------- hostile input


def test_hostile_bodies():
    deep = "[" * 100000
    r = post_user(raw=deep)
    check(r.status in (400, 413), "100000-deep [ in a sign-up: 400 or 413 (over 16 KiB)", "400/413", r.status)
    for depth in (8000, 3000):
        r = post_user(raw="[" * depth + "]" * depth)
        problem(r, 400, "invalid-json", "%d-deep nested arrays in a sign-up" % depth)
        r = post_user(raw='{"name":' + '{"a":' * (depth // 6) + "1" + "}" * (depth // 6) + "}")
        check(r.status == 400, "%d-deep nested objects as name: 400" % (depth // 6), 400, r.status)
    r = post_user(raw='{"name":"N","email":"num@example.com","x":1e400}')
    check(r.status == 400, "1e400 in a sign-up: 400", 400, r.status)
    # name is a string field: a huge number there is a 400 of either kind
    for raw in ('{"name":99999999999999999999,"email":"num2@example.com"}',
                '{"name":1e400,"email":"num3@example.com"}', '{"name":-1e400,"email":"num4@example.com"}'):
        r = post_user(raw=raw)
        check(r.status == 400 and (r.j or {}).get("type") in ("/problems/invalid-json", "/problems/invalid-field"),
              "huge number as the name: 400 invalid-json or invalid-field", 400, (r.status, r.body[:200]))
    r = post_user(raw='{"name":"N","email":"nul\\u0000@example.com"}')
    check(r.status == 400, "\\u0000 in email: 400", 400, (r.status, r.body[:200]))
    r = post_user(raw=b'{"name":"N","email":"x\xc3@example.com"}')
    problem(r, 400, "invalid-json", "truncated UTF-8 in email")
    r = post_user(raw=b'\xef\xbb\xbf{"name":"BOM","email":"bom@example.com"}')
    check(r.status in (201, 400), "a UTF-8 BOM before the object: 201 or 400", "201/400", r.status)
    r = post_user(raw=b"\x00" * 100)
    problem(r, 400, "invalid-json", "NUL bytes as the body")
    r = post_user({"name": "x" * 100, "email": ("a" * 64 + ".") * 3 + "@" + "b" * 60 + ".com"})
    check(r.status in (201, 400), "odd but short email: 201 or 400", "201/400", r.status)
    # still alive and well
    u, k = new_user(S.port, "survivor")
    eq(call(S.port, "GET", "/api/users/me", key=k).status, 200, "the server answers after hostile bodies")


def test_request_logs():
    check_request_logs(S)


if __name__ == "__main__":
    run("api_users", [test_signup_created, test_signup_media_type, test_signup_bad_json, test_signup_fields,
                      test_signup_email_taken, test_signup_concurrent_same_email, test_signup_body_limit,
                      test_auth_required, test_me, test_get_user_by_id, test_delete_user, test_key_rotation,
                      test_links_die_with_key_and_user,
                      test_admin_key_from_env, test_routes_jobs_only, test_hostile_bodies, test_request_logs],
        server=S)

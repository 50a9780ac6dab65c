"""Sign-up and authentication abuse limits (hardening, issue 16 item 9).

- `--signup-rate 5`: from one address the 6th sign-up within a minute is
  429 with Retry-After (a number of seconds); a request that names another
  client in X-Forwarded-For is the same client (127.0.0.1 is not a trusted
  proxy), so spoofing the header buys nothing;
- behind `--trusted-proxies 127.0.0.1/32` the client is the rightmost
  X-Forwarded-For entry that is not a trusted proxy: two "clients" behind
  the proxy have a budget each, and a forged left-hand entry is ignored;
- `--auth-failure-rate 5`: after 5 wrong keys, even the right key is 429
  for a while (a guesser cannot tell good from bad), while another address
  (behind the trusted proxy) still gets in;
- e-mails are compared case-insensitively (409 email-taken);
- `--signup closed`: 403 signup-closed without a key or with a user's key,
  201 with the admin key; a bad --signup or --trusted-proxies is exit 2."""
from apiclient import call, problem
from ttharness import Server, check, clean_env, eq, run, run_cli

ADMIN = "admin-key-for-the-abuse-test-0123456789"
_n = [0]


def body(tag):
    _n[0] += 1
    return {"name": "%s %d" % (tag, _n[0]), "email": "%s%d@example.com" % (tag, _n[0])}


def start(*flags):
    s = Server("--admin-key", ADMIN, *flags, processes=1,
               env={"TINTYPE_SIGNUP_RATE": "5", "TINTYPE_AUTH_FAILURE_RATE": "5"})
    s.start()
    return s


def test_signup_rate():
    s = start()
    try:
        for i in range(5):
            eq(call(s.port, "POST", "/api/users", body=body("r")).status, 201, "sign-up %d of 5" % (i + 1))
        r = call(s.port, "POST", "/api/users", body=body("r"))
        problem(r, 429, "too-many-requests", "the 6th sign-up in a minute")
        ra = r.get("Retry-After") or ""
        check(ra.isdigit() and 1 <= int(ra) <= 60, "Retry-After says how long", "1..60", ra)
        r = call(s.port, "POST", "/api/users", body=body("r"), headers=[("X-Forwarded-For", "203.0.113.9")])
        eq(r.status, 429, "X-Forwarded-For from an untrusted peer changes nothing")
    finally:
        s.stop()


def test_trusted_proxy():
    s = start("--trusted-proxies", "127.0.0.1/32")
    try:
        for i in range(5):
            eq(call(s.port, "POST", "/api/users", body=body("t"), headers=[("X-Forwarded-For", "198.51.100.1")]
                    ).status, 201, "client A behind the proxy: sign-up %d" % (i + 1))
        r = call(s.port, "POST", "/api/users", body=body("t"), headers=[("X-Forwarded-For", "198.51.100.1")])
        eq(r.status, 429, "client A's 6th")
        r = call(s.port, "POST", "/api/users", body=body("t"),
                 headers=[("X-Forwarded-For", "198.51.100.1, 198.51.100.2")])
        eq(r.status, 201, "client B (the proxy appended B): its own budget; the forged left entry is ignored")
        r = call(s.port, "POST", "/api/users", body=body("t"), headers=[("X-Forwarded-For", "198.51.100.2")])
        eq(r.status, 201, "client B again")
    finally:
        s.stop()


def test_auth_failures():
    s = start("--trusted-proxies", "127.0.0.1/32")
    try:
        u = call(s.port, "POST", "/api/users", body=body("a"), headers=[("X-Forwarded-For", "192.0.2.50")])
        key = (u.j or {}).get("api_key")
        xa = [("X-Forwarded-For", "192.0.2.66")]
        for i in range(5):
            eq(call(s.port, "GET", "/api/users/me", key="tt_wrong%d" % i, headers=xa).status, 401, "wrong key %d" % i)
        r = call(s.port, "GET", "/api/users/me", key="tt_wrong", headers=xa)
        problem(r, 429, "too-many-requests", "a 6th wrong key")
        check((r.get("Retry-After") or "").isdigit(), "with Retry-After", "seconds", r.get("Retry-After"))
        eq(call(s.port, "GET", "/api/users/me", key=key, headers=xa).status, 429,
           "the right key from the throttled address waits too")
        eq(call(s.port, "GET", "/api/users/me", key=key, headers=[("X-Forwarded-For", "192.0.2.50")]).status, 200,
           "the right key from another address gets in")
    finally:
        s.stop()


def test_email_case():
    s = start()
    try:
        eq(call(s.port, "POST", "/api/users", body={"name": "Ada", "email": "Ada@Example.COM"}).status, 201,
           "Ada@Example.COM")
        r = call(s.port, "POST", "/api/users", body={"name": "Ada 2", "email": "ada@example.com"})
        problem(r, 409, "email-taken", "ada@example.com after Ada@Example.COM")
    finally:
        s.stop()


def test_signup_closed():
    s = start("--signup", "closed")
    try:
        problem(call(s.port, "POST", "/api/users", body=body("c")), 403, "signup-closed", "no key")
        eq(call(s.port, "POST", "/api/users", key=ADMIN, body=body("c")).status, 201, "the admin key makes a user")
        u = call(s.port, "POST", "/api/users", key=ADMIN, body=body("c")).j or {}
        problem(call(s.port, "POST", "/api/users", key=u.get("api_key"), body=body("c")), 403, "signup-closed",
                "a user's key cannot make users")
    finally:
        s.stop()
    for flags, what in ((["--signup", "maybe"], "--signup maybe"), (["--trusted-proxies", "10.0.0.0/33"],
                                                                     "--trusted-proxies 10.0.0.0/33")):
        p = run_cli(["api", "--port", "0"] + flags, env=clean_env())
        eq(p.returncode, 2, what + ": exit 2")
        check(flags[0] in p.stderr, what + ": stderr names the flag", flags[0], p.stderr[-300:])


if __name__ == "__main__":
    run("api_abuse", [test_signup_rate, test_trusted_proxy, test_auth_failures, test_email_case, test_signup_closed])

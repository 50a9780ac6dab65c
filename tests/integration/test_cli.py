#!/usr/bin/env python3
"""it.cli — the command line of DESIGN §1: help texts, exit codes (0 ok,
2 usage), flags and their TINTYPE_* twins rejected with a
message that names them, and `api` refusing a port that is taken."""

import os
import re
import socket
import time

from ttharness import SLOW, Server, check, eq, fetch, run, run_cli

COMMANDS = ("up", "api", "worker", "shot", "submit")
API_FLAGS = ("port", "host", "processes", "data", "routes", "max-connections", "max-header-bytes", "max-headers",
             "max-url-bytes", "max-body-bytes", "header-timeout-ms", "body-timeout-ms", "idle-timeout-ms",
             "shutdown-timeout-ms", "drain-delay-ms")
SHOT_FLAGS = ("width", "height", "scale", "mobile", "full-page", "format", "quality", "wait-until", "wait-for",
              "selector", "delay", "timeout", "dark")


def test_help():
    p = run_cli(["--help"])
    eq(p.returncode, 0, "tintype --help exit code")
    for c in COMMANDS:
        check(c in p.stdout, "tintype --help lists %s" % c, c, p.stdout)
    p = run_cli(["api", "--help"])
    eq(p.returncode, 0, "tintype api --help exit code")
    for f in API_FLAGS:
        env = "TINTYPE_" + f.upper().replace("-", "_")
        check("--" + f in p.stdout, "api --help lists --%s" % f, "--" + f, p.stdout[:2000])
        check(env in p.stdout, "api --help lists %s" % env, env, p.stdout[:2000])
    for c in COMMANDS:
        p = run_cli([c, "--help"])
        eq(p.returncode, 0, "tintype %s --help exit code" % c)
        check(p.stdout.strip(), "tintype %s --help prints usage" % c, "text", p.stdout)
    # shot --help lists its render options too (issue 14), under a usage line that reads right
    p = run_cli(["shot", "--help"])
    check("Usage: tintype shot URL -o FILE [OPTIONS]" in p.stdout, "shot --help usage line", "URL -o FILE [OPTIONS]",
          p.stdout[:200])
    for f in SHOT_FLAGS:
        check(re.search(r"^  --%s\b" % f, p.stdout, re.M), "shot --help lists --%s" % f, "--" + f, p.stdout[:3000])
    # an empty default reads "none", not "(derived)"
    p = run_cli(["api", "--help"])
    check("(derived)" not in p.stdout, "api --help: no '(derived)' default", "none", p.stdout[:3000])
    check(re.search(r"TINTYPE_ALLOW_NETWORKS; default: none\]", p.stdout), "api --help: allow-networks default none",
          "default: none", p.stdout[:3000])
    p = run_cli([])
    eq(p.returncode, 2, "tintype with no command exit code")
    check(p.stderr.strip(), "tintype with no command prints usage on stderr", "usage", p.stderr)


def test_submit():
    """submit posts a job to a running API and prints where its result will be."""
    from ttharness import Server, fetch  # noqa: PLC0415
    with Server(processes=1) as s:
        base = "http://127.0.0.1:%d" % s.port
        p = run_cli(["submit", "http://127.0.0.1:9/page", "--api", base])
        eq(p.returncode, 2, "submit without an API key exit code")
        check("TINTYPE_API_KEY" in p.stderr, "submit names TINTYPE_API_KEY", "TINTYPE_API_KEY", p.stderr)
        body = b'{"name":"cli","email":"cli@example.com"}'
        r = fetch(s.port, "POST", "/api/users", {"Content-Type": "application/json",
                                                 "Content-Length": str(len(body))}, body)
        eq(r.status, 201, "sign-up for the CLI test")
        key = r.json()["api_key"]
        p = run_cli(["submit", "http://127.0.0.1:9/page", "--api", base, "--job", '{"format":"webp"}'],
                    env={"TINTYPE_API_KEY": key})
        eq(p.returncode, 0, "submit exit code")
        lines = dict(ln.split(": ", 1) for ln in p.stdout.strip().splitlines() if ": " in ln)
        eq(lines.get("state"), "queued", "submit prints the job's state")
        job = fetch(s.port, "GET", "/api/jobs/" + lines.get("job", "?"), {"Authorization": "Bearer " + key})
        eq(job.status, 200, "the submitted job exists")
        eq(job.json()["request"]["format"], "webp", "--job options reach the job")
        check(lines.get("result", "").startswith(base + "/api/jobs/"), "submit prints the result URL", base,
              lines.get("result"))
        p = run_cli(["submit", "ftp://example.com/", "--api", base], env={"TINTYPE_API_KEY": key})
        eq(p.returncode, 1, "submit of a refused URL exit code")
        check("http or https" in p.stderr, "submit shows the API's reason", "http or https", p.stderr)
        p = run_cli(["submit", "http://x/", "--api", base, "--job", "[1]"], env={"TINTYPE_API_KEY": key})
        eq(p.returncode, 2, "submit with --job not an object exit code")


def test_usage_errors():
    p = run_cli(["bogus"])
    eq(p.returncode, 2, "tintype bogus exit code")
    check("bogus" in p.stderr, "tintype bogus names the command", "bogus", p.stderr)
    for args, name in ((["api", "--port", "notanumber"], "--port"), (["api", "--port=notanumber"], "--port"),
                       (["api", "--port", "70000"], "--port"), (["api", "--max-body-bytes", "lots"], "--max-body-bytes"),
                       (["api", "--processes", "-1"], "--processes"), (["api", "--no-such-flag"], "--no-such-flag"),
                       (["api", "--port"], "--port"), (["api", "--listen-mode", "magic"], "listen-mode")):
        p = run_cli(args, timeout=5)
        eq(p.returncode, 2, "tintype %s exit code" % " ".join(args))
        check(name in p.stderr, "tintype %s names %s on stderr" % (" ".join(args), name), name, p.stderr)
    for var, val in (("TINTYPE_PORT", "abc"), ("TINTYPE_MAX_BODY_BYTES", "lots"), ("TINTYPE_PROCESSES", "x")):
        p = run_cli(["api"], env={var: val}, timeout=5)
        eq(p.returncode, 2, "%s=%s tintype api exit code" % (var, val))
        check(var in p.stderr, "%s=%s names the variable on stderr" % (var, val), var, p.stderr)
    p = run_cli(["shot", "http://127.0.0.1/"])
    eq(p.returncode, 2, "tintype shot without -o exit code")
    # job options as flags: validated by the same code as POST /api/jobs,
    # the message names the flag; nothing is started and no file is made
    for args, name in ((["--width", "abc"], "--width"), (["--width", "0"], "--width"), (["--height", "99999"], "--height"), (["--format", "gif"], "--format"),
                       (["--quality"], "--quality"), (["--wait-until", "soon"], "--wait-until"),
                       (["--mobile=maybe"], "--mobile"), (["--timeout", "99999999"], "--timeout")):
        p = run_cli(["shot", "http://127.0.0.1/", "-o", "never.png"] + args, timeout=5)
        eq(p.returncode, 2, "tintype shot %s exit code" % " ".join(args))
        check(name in p.stderr, "tintype shot %s names %s on stderr" % (" ".join(args), name), name, p.stderr)
        check(not os.path.exists("never.png"), "tintype shot %s made no file" % " ".join(args))
    # a --format that contradicts -o FILE's extension is refused before anything starts
    for args, words in ((["-o", "never.jpg", "--format", "png"], ("--format png", "never.jpg")),
                        (["-o", "never.png", "--format=webp"], ("--format webp", "never.png"))):
        p = run_cli(["shot", "http://127.0.0.1/"] + args, timeout=5)
        eq(p.returncode, 2, "tintype shot %s exit code" % " ".join(args))
        for w in words:
            check(w in p.stderr, "tintype shot %s names %s" % (" ".join(args), w), w, p.stderr)
        check(not os.path.exists(args[1]), "tintype shot %s made no file" % " ".join(args))
    # an address without a scheme: the message says what to write (issue 14)
    for bare in ("127.0.0.1:8765/page", "localhost:8080", "example.com/x"):
        p = run_cli(["shot", bare, "-o", "never.png"], timeout=5)
        eq(p.returncode, 2, "tintype shot %s exit code" % bare)
        check("no scheme" in p.stderr and "http://" + bare in p.stderr, "tintype shot %s: says to write http://" % bare,
              "url has no scheme: write http://%s" % bare, p.stderr)
    p = run_cli(["shot", "mailto:a@b", "-o", "never.png"], timeout=5)
    check("http or https" in p.stderr, "mailto: is a scheme, not a host", "url must use http or https", p.stderr)
    p = run_cli(["shot", "not a url", "-o", "never.png"], timeout=5)
    eq(p.returncode, 2, "tintype shot 'not a url' exit code")
    check("url: url" not in p.stderr and "url" in p.stderr, "tintype shot 'not a url': the field named once",
          "tintype shot: url is not ...", p.stderr)
    p = run_cli(["shot", "ftp://127.0.0.1/", "-o", "never.png"], timeout=5)
    eq(p.returncode, 2, "tintype shot ftp:// exit code")
    check("url" in p.stderr, "tintype shot ftp:// names the url", "url", p.stderr)


def test_port_in_use():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        t0 = time.monotonic()
        try:
            p = run_cli(["api", "--host", "127.0.0.1", "--port", str(port), "--processes", "1", "--data", "/tmp"],
                        timeout=5)
            check(p.returncode not in (0, None), "tintype api on a taken port exits non-zero", "non-zero",
                  p.returncode)
            check("--port" in p.stderr and "TINTYPE_PORT" in p.stderr, "the taken port's message names --port and "
                  "TINTYPE_PORT", "--port / TINTYPE_PORT", p.stderr)
            check(time.monotonic() - t0 < 5 * SLOW, "and promptly", "< 5 s", time.monotonic() - t0)
        except Exception as e:  # noqa: BLE001 — TimeoutExpired: it kept running
            check(False, "tintype api on a taken port exits", "exit", repr(e))
    finally:
        s.close()


def test_open_line():
    # the server's start-up ends with one plain line on stderr: the URL to open (issue 14, `make up`)
    with Server() as srv:
        line = "tintype: open http://127.0.0.1:%d/" % srv.port
        deadline = time.monotonic() + 5 * SLOW
        while line not in srv.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        check(line in srv.stderr_text(), "stderr names the URL to open", line, srv.stderr_text()[-500:])


def test_env_twins_serve():
    # every flag also works as an environment variable
    with Server(env={"TINTYPE_MAX_HEADERS": "3"}) as srv:
        r = fetch(srv.port, "GET", "/index.html", [("X-A", "1"), ("X-B", "2"), ("X-C", "3"), ("X-D", "4")])
        eq(r.status, 431, "TINTYPE_MAX_HEADERS=3 and 5 headers -> status")
        eq(fetch(srv.port, "GET", "/index.html").status, 200, "TINTYPE_MAX_HEADERS=3 and 1 header -> status")


if __name__ == "__main__":
    run("cli", [test_submit, test_help, test_usage_errors, test_port_in_use, test_open_line, test_env_twins_serve])

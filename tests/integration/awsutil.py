"""awsutil — moto_server for the AWS backends' tests (test_aws_*.py).

Moto (preinstalled, 5.2.1) runs on 127.0.0.1 at a free port, started and
killed by the test. With auth=True its users are made first (IAM over the
no-auth window) and then authentication is switched on through
/moto-api/reset-auth: from then on moto recomputes every SigV4 signature,
checks STS session tokens and evaluates the caller's IAM policy. A missing
moto or boto3 is a skip (ttharness.Skip). Only loopback is ever contacted.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import ttharness as h

HOST = "127.0.0.1"


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def need_moto():
    if not shutil.which("moto_server"):
        raise h.Skip("moto_server is not installed")
    try:
        import boto3  # noqa: F401
    except ImportError:
        raise h.Skip("boto3 is not installed")


def driver():
    """tests/aws/aws_check.c, built beside TINTYPE_BIN (-asan variant too)."""
    d = os.path.dirname(h.BIN)
    name = "aws_check" + ("-asan" if h.BIN.endswith("-asan") else "")
    return os.path.join(d, name)


class Moto:
    def __init__(self, port=None):
        self.port = port or free_port()
        self.proc = None
        self.url = "http://%s:%d" % (HOST, self.port)

    def start(self):
        need_moto()
        env = dict(os.environ)
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "tt-moto-%d.log" % self.port), "ab")
        self.proc = subprocess.Popen(["moto_server", "-H", HOST, "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("moto_server exited at start")
            try:
                with urllib.request.urlopen(self.url + "/moto-api/data.json", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("moto_server did not answer within 30 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        self.proc = None

    def client(self, svc, akid="test", secret="test", token=None):
        import boto3
        return boto3.client(svc, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=akid, aws_secret_access_key=secret,
                            aws_session_token=token)

    def user(self, name, policy):
        """An IAM user with an inline policy; returns (akid, secret)."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        k = iam.create_access_key(UserName=name)["AccessKey"]
        return k["AccessKeyId"], k["SecretAccessKey"]

    def role(self, name, policy):
        """A role anyone in the account may assume; returns its ARN."""
        iam = self.client("iam")
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "*"},
             "Action": "sts:AssumeRole"}]}
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        return arn

    def auth_on(self):
        req = urllib.request.Request(self.url + "/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()

    def env(self, akid, secret, token=None, **extra):
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("AWS_"):
                del e[k]
        e.update({"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": akid,
                  "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1",
                  "AWS_EC2_METADATA_DISABLED": "true"})
        if token:
            e["AWS_SESSION_TOKEN"] = token
        e.update(extra)
        return e


class Stub:
    """A threaded HTTP server on 127.0.0.1 whose answers come from
    handler(method, path, headers, body) -> (status, headers, body).
    Every request is recorded in .seen as (method, path, headers, body)."""

    def __init__(self, handler):
        import http.server
        import threading
        self.seen = []
        self.conns = set()  # client (address, port) pairs: one per TCP connection
        stub = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                stub.seen.append((self.command, self.path, hdrs, body))
                stub.conns.add(self.client_address)
                st, rh, rb = handler(self.command, self.path, hdrs, body)
                if st is None:  # hang: never answer
                    stub.hung.wait(60)
                    return
                if isinstance(rb, str):
                    rb = rb.encode()
                self.send_response(st)
                for k, v in (rh or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(rb)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(rb)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.hung = threading.Event()
        self.srv = http.server.ThreadingHTTPServer((HOST, 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        self.url = "http://%s:%d" % (HOST, self.port)
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def stop(self):
        self.hung.set()
        self.srv.shutdown()
        self.srv.server_close()


class Proxy:
    """A TCP forwarder on 127.0.0.1 to upstream port .target (changeable):
    lets a test kill and restart the emulator behind a fixed address, and
    bring the new one in only once it holds the resources again. While the
    upstream is down, connections are accepted and closed at once."""

    def __init__(self, target):
        import threading
        self.target = target
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = "http://%s:%d" % (HOST, self.port)
        self.live = []
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _pipe(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        import threading
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection((HOST, self.target), timeout=2)
            except OSError:
                c.close()
                continue
            self.live.append((c, u))
            threading.Thread(target=self._pipe, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()

    def cut(self):
        """Drops every open connection (the emulator died under them)."""
        for c, u in self.live:
            for s in (c, u):
                try:
                    s.close()
                except OSError:
                    pass
        self.live = []

    def stop(self):
        self.cut()
        self.sock.close()


EMULATORS = os.path.join(h.ROOT, "tests", "aws", "emulators")


class NodeEmulator:
    """One of the npm emulators of tests/aws/emulators (pinned by its
    package-lock.json, installed by scripts/install-deps.sh), on 127.0.0.1
    at a free port, started and killed by the test. name: "dynalite",
    "s3rver" or "sqs" (local-aws-sqs through sqs.mjs). No signature checks:
    any credentials do (s3rver wants the access key S3RVER). Missing node or
    node_modules is a skip."""

    def __init__(self, name):
        self.name = name
        self.port = free_port()
        self.url = "http://%s:%d" % (HOST, self.port)
        self.proc = None
        self.dir = None

    def argv(self):
        nm = os.path.join(EMULATORS, "node_modules")
        if self.name == "dynalite":
            return [os.path.join(nm, "dynalite", "cli.js"), "--host", HOST, "--port", str(self.port)]
        if self.name == "s3rver":
            import tempfile
            self.dir = tempfile.mkdtemp(prefix="tt-s3rver-")
            return [os.path.join(nm, "s3rver", "bin", "s3rver.js"), "-d", self.dir, "-a", HOST, "-p",
                    str(self.port), "-s", "--no-vhost-buckets", "--configure-bucket", "tt-blobs"]
        return [os.path.join(EMULATORS, "sqs.mjs"), str(self.port)]

    def start(self):
        node = shutil.which("node")
        pkg = {"dynalite": "dynalite", "s3rver": "s3rver", "sqs": "local-aws-sqs"}[self.name]
        if not node or not os.path.isdir(os.path.join(EMULATORS, "node_modules", pkg)):
            raise h.Skip("node or tests/aws/emulators/node_modules/%s missing (scripts/install-deps.sh)" % pkg)
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "tt-%s-%d.log" % (self.name, self.port)), "ab")
        self.proc = subprocess.Popen([node] + self.argv(), stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=EMULATORS, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited at start" % self.name)
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("%s did not listen within 30 s" % self.name)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def env(self, akid="test", secret="test", **extra):
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("AWS_") or k == "TT_TEST_LACKS":
                del e[k]
        e.update({"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret,
                  "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})
        e.update(extra)
        return e


def lacks(**why):
    """TT_TEST_LACKS for the contract suites: feature=reason;... (tt_test.h)."""
    return ";".join("%s=%s" % kv for kv in why.items())


def check_skips(out, names, why):
    """Every case or check in names was reported as a named skip with why."""
    for n in names:
        h.check(("case %s: skipped (%s)" % (n, why)) in out or ("skipped: %s (%s)" % (n, why)) in out,
                "%s is a named skip" % n, why, [l for l in out.splitlines() if "skipped" in l][:8])


ALLOW_ALL = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def deny(action):
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["sqs:*", "s3:*", "dynamodb:*"], "Resource": "*"},
        {"Effect": "Deny", "Action": [action], "Resource": "*"}]}


def run_unit(name, env, timeout=240):
    """Runs a contract suite binary (tests/unit/test_NAME.c) with env;
    checks its exit status."""
    b = os.path.join(os.path.dirname(h.BIN), "test_" + name + ("-asan" if h.BIN.endswith("-asan") else ""))
    p = subprocess.run([b], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    out = p.stdout.decode(errors="replace")
    lines = [l for l in out.splitlines() if not l.startswith('{"time"')]
    h.check(p.returncode == 0, "the unchanged %s contract passes" % name, 0, "\n".join(lines[-20:]))
    return out


def run_driver(args, env, timeout=240):
    """Runs aws_check; returns (rc, output)."""
    p = subprocess.run([driver()] + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    out = p.stdout.decode(errors="replace")
    return p.returncode, out


def check_driver(args, env, what, timeout=240):
    rc, out = run_driver(args, env, timeout)
    tail = "\n".join(out.splitlines()[-25:])
    h.check(rc == 0, what + " (aws_check %s)" % " ".join(args), 0, tail)
    return out

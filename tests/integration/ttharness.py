"""ttharness — shared helpers of tintype's integration tests.

Each tests/integration/test_*.py is one ctest test (it.NAME, and
asan.it.NAME for the ASan+UBSan binary). A file starts the real `tintype`
binary (TINTYPE_BIN) with Server, speaks HTTP to it over loopback with Conn
(raw sockets: what is sent is exactly what the test wrote, and what comes
back is parsed strictly by read_response), and reports with check()/eq().
run() runs the file's tests, prints one line per test and a summary, and
exits 0 only when every check passed.

Python 3 standard library only. Every wait has a deadline; every process a
test starts is killed in Server.stop() (its whole process group).
"""

import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BIN = os.environ.get("TINTYPE_BIN", "")
SANITIZED = os.environ.get("TT_SANITIZED", "")
# "job" or "owner" for every server a test starts (TINTYPE_ISOLATION); "": the default
ISOLATION = os.environ.get("TT_ISOLATION", "")
# timing margins grow under ASan+UBSan; the limits under test do not
SLOW = 2.0 if SANITIZED else 1.0
HOST = "127.0.0.1"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB = os.path.join(ROOT, "web")

IMF_FIXDATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d:\d\d GMT$")
ETAG_RE = re.compile(r'^"[0-9a-f]{16}"$')
ETAG_GZ_RE = re.compile(r'^"[0-9a-f]{16}-gz"$')


def web_file(name):
    with open(os.path.join(WEB, name), "rb") as f:
        return f.read()


# --------------------------------------------------------------- checks

_state = {"failures": [], "test": "-", "checks": 0}


def _short(v, n=400):
    r = repr(v)
    return r if len(r) <= n else r[:n] + "...(%d chars)" % len(r)


def check(cond, what, expected=None, actual=None):
    """Soft assertion: records a failure (with expected/actual) and goes on."""
    _state["checks"] += 1
    if not cond:
        msg = "[%s] %s" % (_state["test"], what)
        if expected is not None or actual is not None:
            msg += "\n      expected: %s\n      actual:   %s" % (_short(expected), _short(actual))
        _state["failures"].append(msg)
        print("  FAIL " + msg, flush=True)
    return bool(cond)


def eq(actual, expected, what):
    return check(actual == expected, what, expected, actual)


def fail(what, expected=None, actual=None):
    return check(False, what, expected, actual)


class Skip(Exception):
    pass


def _run_one(label, fn):
    _state["test"] = label
    before = len(_state["failures"])
    t = time.monotonic()
    try:
        fn()
    except Skip as e:
        print("SKIP %s: %s" % (label, e), flush=True)
        return "skip"
    except Exception as e:  # noqa: BLE001 — any exception is a failed test
        _state["failures"].append("[%s] exception %s: %s" % (label, type(e).__name__, e))
        print("  FAIL [%s] exception %s: %s" % (label, type(e).__name__, e), flush=True)
        traceback.print_exc(file=sys.stdout)
    ok = len(_state["failures"]) == before
    print("%s %s (%.2fs)" % ("PASS" if ok else "FAIL", label, time.monotonic() - t), flush=True)
    return "pass" if ok else "fail"


def run(name, tests, server=None):
    """Runs the functions in tests, in order, each independent of the others'
    failures. server: a Server (not yet started) the tests share; it is
    started first and stopped last, and its own checks (sanitizer reports,
    JSON log lines, no crashed child) count as a test. Exits the process."""
    if not BIN or not os.access(BIN, os.X_OK):
        print("%s: TINTYPE_BIN is not set to an executable (%r)" % (name, BIN))
        sys.exit(1)
    t0 = time.monotonic()
    counts = {"pass": 0, "fail": 0, "skip": 0}
    started = True
    if server is not None:
        started = _run_one("server start", server.start) == "pass"
        if not started:
            server.stop()
            counts["fail"] += 1
    if started:
        for fn in tests:
            counts[_run_one(fn.__name__, fn)] += 1
        if server is not None:
            counts[_run_one("server stop", server.stop)] += 1
    print("%s%s: %d passed, %d failed, %d skipped, %d checks, %.1fs" %
          (SANITIZED, name, counts["pass"], counts["fail"], counts["skip"], _state["checks"],
           time.monotonic() - t0), flush=True)
    if _state["failures"]:
        print("\nfailures:")
        for f in _state["failures"]:
            print("  " + f)
    sys.exit(1 if _state["failures"] else 0)


# --------------------------------------------------------------- HTTP client

class HttpError(Exception):
    pass


class Closed(HttpError):
    """The server closed (or reset) the connection before a full response."""

    def __init__(self, msg, partial=b""):
        HttpError.__init__(self, "%s (got %d bytes: %s)" % (msg, len(partial), _short(bytes(partial), 200)))
        self.partial = bytes(partial)


class Timeout(HttpError):
    def __init__(self, msg, partial=b""):
        HttpError.__init__(self, "%s (got %d bytes: %s)" % (msg, len(partial), _short(bytes(partial), 200)))
        self.partial = bytes(partial)


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)] in order, as received
        self.body = body
        self.raw_head = raw_head

    def all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def get(self, name, default=None):
        v = self.all(name)
        return ", ".join(v) if v else default

    def has(self, name):
        return bool(self.all(name))

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def conn_tokens(self):
        return [t.strip().lower() for t in self.get("Connection", "").split(",") if t.strip()]

    def __repr__(self):
        return "<%s %d %s, %d body bytes>" % (self.version, self.status, self.headers, len(self.body))


def request(method, path, headers=None, body=b"", version="HTTP/1.1", host=True):
    """Bytes of one request. headers: list of (name, value) or a dict.
    Host: 127.0.0.1 is added first unless host is False or a Host is given."""
    hs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if host and not any(k.lower() == "host" for k, _ in hs):
        hs.insert(0, ("Host", HOST))
    head = "%s %s %s\r\n" % (method, path, version)
    for k, v in hs:
        head += "%s: %s\r\n" % (k, v)
    out = head.encode("latin-1") + b"\r\n"
    if isinstance(body, str):
        body = body.encode()
    return out + body


def chunked(*pieces, trailers=b""):
    out = b""
    for p in pieces:
        if isinstance(p, str):
            p = p.encode()
        out += b"%x\r\n" % len(p) + p + b"\r\n"
    return out + b"0\r\n" + trailers + b"\r\n"


class Conn:
    def __init__(self, port, timeout=5.0):
        self.port = port
        self.sock = socket.create_connection((HOST, port), timeout=timeout * SLOW)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Closes with RST (SO_LINGER 0)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, deadline, what):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("timed out waiting for " + what, self.buf)
        if self.eof:
            raise Closed("connection closed while waiting for " + what, self.buf)
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(262144)
        except socket.timeout:
            raise Timeout("timed out waiting for " + what, self.buf) from None
        except (ConnectionResetError, BrokenPipeError):
            self.reset = True
            data = b""
        if not data:
            self.eof = True
            raise Closed("connection closed while waiting for " + what, self.buf)
        self.buf += data

    def _take(self, n):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _line(self, deadline, what):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                return self._take(i + 2)[:-2]
            if len(self.buf) > 65536:
                raise HttpError("line too long in " + what)
            self._fill(deadline, what)

    def read_response(self, head=False, timeout=5.0):
        """Reads one response. head=True: a response to HEAD (no body).
        1xx, 204 and 304 have no body; otherwise chunked, Content-Length or
        until close. Raises Closed/Timeout/HttpError."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if len(self.buf) > 262144:
                raise HttpError("response head too long")
            self._fill(deadline, "a response head")
        raw_head = self._take(i + 4)
        lines = raw_head[:-4].split(b"\r\n")
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3}) ?(.*)$", lines[0])
        if not m:
            raise HttpError("bad status line %r" % lines[0])
        version, status, reason = m.group(1).decode(), int(m.group(2)), m.group(3).decode("latin-1")
        headers = []
        for ln in lines[1:]:
            if b":" not in ln or ln[:1] in (b" ", b"\t"):
                raise HttpError("bad response header line %r" % ln)
            k, v = ln.split(b":", 1)
            if k != k.strip():
                raise HttpError("whitespace in response header name %r" % ln)
            headers.append((k.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
        r = Response(version, status, reason, headers, b"", raw_head)
        if head or 100 <= status < 200 or status in (204, 304):
            return r
        te = r.get("Transfer-Encoding")
        if te is not None:
            if te.lower() != "chunked":
                raise HttpError("unexpected Transfer-Encoding %r" % te)
            body = bytearray()
            while True:
                size_line = self._line(deadline, "a chunk size")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self._line(deadline, "trailers") != b"":
                        pass
                    break
                while len(self.buf) < size + 2:
                    self._fill(deadline, "a chunk")
                body += self._take(size)
                if self._take(2) != b"\r\n":
                    raise HttpError("chunk not followed by CRLF")
            r.body = bytes(body)
            return r
        cls = r.all("Content-Length")
        if cls:
            if len(set(cls)) != 1 or not cls[0].isdigit():
                raise HttpError("bad Content-Length %r" % cls)
            n = int(cls[0])
            while len(self.buf) < n:
                self._fill(deadline, "%d body bytes (have %d)" % (n, len(self.buf)))
            r.body = self._take(n)
            return r
        # until close
        try:
            while True:
                self._fill(deadline, "the end of a close-delimited body")
        except Closed:
            pass
        r.body = self._take(len(self.buf))
        return r

    def wait_closed(self, timeout=2.0):
        """True when the server closes (EOF or reset) within timeout with no
        further bytes. Bytes that arrive instead are kept in self.extra."""
        self.extra = bytes(self.buf)
        if self.eof:
            return not self.extra
        deadline = time.monotonic() + timeout * SLOW
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                self.reset = self.eof = True
                return not self.extra
            if not data:
                self.eof = True
                return not self.extra
            self.extra += data

    def roundtrip(self, method, path, headers=None, body=b"", version="HTTP/1.1", timeout=5.0):
        self.send(request(method, path, headers, body, version))
        return self.read_response(head=(method == "HEAD"), timeout=timeout)


def fetch(port, method, path, headers=None, body=b"", version="HTTP/1.1", timeout=5.0):
    """One request on a fresh connection; returns the Response."""
    with Conn(port, timeout) as c:
        return c.roundtrip(method, path, headers, body, version, timeout)


def send_raw(port, data, timeout=5.0, head=False, close_wait=2.0):
    """Writes raw bytes on a fresh connection, reads one response and whether
    the server then closed (within close_wait seconds; for a response that
    keeps the connection, pass close_wait=0 to skip the wait). Returns
    (Response or the exception, closed)."""
    with Conn(port, timeout) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            r = c.read_response(head=head, timeout=timeout)
        except HttpError as e:
            return e, c.eof
        return r, (c.wait_closed(close_wait) if close_wait > 0 else False)


def gunzip(b):
    return gzip.decompress(b)


def parse_http_date(s):
    return time.mktime(time.strptime(s, "%a, %d %b %Y %H:%M:%S GMT")) - time.timezone


# --------------------------------------------------------------- processes

def proc_stat(pid):
    """(state, ppid, pgid) of pid, or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rfind(b")") + 2:].split()
    return rest[0].decode(), int(rest[1]), int(rest[2])


def children_of(ppid):
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st[1] == ppid and st[0] != "Z":
                out.add(int(d))
    return out


def vm_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1])
    except OSError:
        return None
    return None


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINTYPE_") or k == "TINTYPE_BIN"}
    env.pop("TINTYPE_BIN", None)
    if ISOLATION:
        # ctest's it.NAME.job variants: the same test against --isolation job
        env["TINTYPE_ISOLATION"] = ISOLATION
    if os.environ.get("TT_CHROMIUM"):
        # ctest's it.NAME.chromium variants: new-headless /usr/bin/chromium
        env["TINTYPE_CHROMIUM"] = os.environ["TT_CHROMIUM"]
    if SANITIZED:
        # sanitizer reports go to stderr, which Server scans
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    # the tests sign up hundreds of users and send wrong keys on purpose from
    # one address: the abuse limits are off unless a test sets them
    # (test_api_abuse.py tests them)
    env["TINTYPE_SIGNUP_RATE"] = "0"
    env["TINTYPE_AUTH_FAILURE_RATE"] = "0"
    env.update(extra or {})
    return env


def run_cli(args, env=None, timeout=10.0):
    """Runs `tintype ARGS`; returns CompletedProcess (text). On timeout kills
    its whole process group and raises subprocess.TimeoutExpired."""
    p = subprocess.Popen([BIN] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=clean_env(env), text=True, errors="replace",
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout * SLOW)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.communicate(timeout=5)
        raise
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


REQUIRED_LOG_KEYS = ("time", "level", "pid", "role", "msg")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:")


class Server:
    """`tintype api` on 127.0.0.1 and a free port, with its own --data dir.

    with Server("--max-header-bytes", "1024", processes=1) as s:
        fetch(s.port, "GET", "/")
    On exit: stops it (SIGTERM, then SIGKILL to the whole group), removes
    the data dir, and records as failures any sanitizer report on stderr,
    any stdout line that is not a JSON object with the required keys, and
    (when check_children) any child that was replaced while the test ran."""

    def __init__(self, *flags, processes=1, env=None, ready=True, check_children=True, cmd="api", workers=0):
        self.command = cmd  # "api", or "up" (api + `workers` worker processes)
        self.workers = workers if cmd == "up" else 0
        self.flags = list(flags)
        self.processes = processes
        self.env = env
        self.ready = ready
        self.check_children = check_children
        self.proc = None
        self.lines = []
        self.err = []
        self.cv = threading.Condition()
        self.data = None
        self.port = None
        self.pid = None
        self.exit_code = None
        self.initial_children = set()

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *a):
        self.stop()

    # -- output
    def _read_out(self, stream):
        for raw in iter(stream.readline, b""):
            s = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                obj = json.loads(s)
                if not isinstance(obj, dict):
                    raise ValueError
            except ValueError:
                obj = {"_bad": True, "_raw": s}
            with self.cv:
                self.lines.append(obj)
                self.cv.notify_all()
        stream.close()
        with self.cv:
            self.out_eof = True
            self.cv.notify_all()

    def _read_err(self, stream):
        for raw in iter(stream.readline, b""):
            with self.cv:
                self.err.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cv.notify_all()
        stream.close()

    def wait_log(self, pred, timeout=5.0, start=0):
        """First log line (index >= start) for which pred(line) is true, or None."""
        deadline = time.monotonic() + timeout * SLOW
        with self.cv:
            i = start
            while True:
                while i < len(self.lines):
                    ln = self.lines[i]
                    i += 1
                    if not ln.get("_bad"):
                        try:
                            if pred(ln):
                                return ln
                        except Exception:  # noqa: BLE001
                            pass
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if self.proc.poll() is not None and i >= len(self.lines):
                    # process gone: the last lines are in once the reader saw
                    # the end of its output (children may hold it a moment)
                    if getattr(self, "out_eof", False):
                        return None
                    self.cv.wait(min(left, 0.1))
                else:
                    self.cv.wait(min(left, 0.1))

    def logs(self, msg=None):
        with self.cv:
            return [ln for ln in self.lines if not ln.get("_bad") and (msg is None or ln.get("msg") == msg)]

    def stderr_text(self):
        with self.cv:
            return "\n".join(self.err)

    # -- lifecycle
    def start(self):
        self.data = tempfile.mkdtemp(prefix="tt-it-")
        cmd = [BIN, self.command, "--host", HOST, "--port", "0", "--processes", str(self.processes),
               "--data", self.data] + self.flags
        if self.command == "up":
            cmd[2:2] = ["--worker-processes", str(self.workers)]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=clean_env(self.env),
                                     start_new_session=True)
        self.pid = self.proc.pid
        self.out_eof = False
        for fn, st in ((self._read_out, self.proc.stdout), (self._read_err, self.proc.stderr)):
            t = threading.Thread(target=fn, args=(st,), daemon=True)
            t.start()
            setattr(self, "_t_" + fn.__name__, t)
        ln = self.wait_log(lambda l: l.get("msg") == "listening" and isinstance(l.get("port"), int), 10)
        if not ln:
            raise HttpError("no 'listening' line within %ds from %s; stdout=%s stderr=%s" %
                            (10 * SLOW, " ".join(cmd), _short(self.lines, 1000), _short(self.stderr_text(), 1000)))
        self.port = ln["port"]
        if not (0 < self.port < 65536):
            raise HttpError("'listening' line has port %r" % self.port)
        if self.ready:
            self.wait_ready()
            deadline = time.monotonic() + 5 * SLOW
            while len(self.logs("child started")) < self.processes + self.workers and time.monotonic() < deadline:
                time.sleep(0.02)
            self.initial_children = self.children()

    def wait_ready(self, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        last = None
        while time.monotonic() < deadline:
            try:
                r = fetch(self.port, "GET", "/index.html", timeout=2)
                if r.status == 200:
                    return
                last = r
            except (OSError, HttpError) as e:
                last = e
            time.sleep(0.05)
        raise HttpError("GET /index.html did not answer 200 within %.0fs: last %r" % (timeout * SLOW, last))

    def children(self):
        return children_of(self.pid)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.check_children = False  # children exit on purpose from now on
        os.kill(self.pid, sig)

    def wait_exit(self, timeout):
        """Exit code, or None when still running after timeout."""
        try:
            self.exit_code = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            return None
        # and its log read to the end, so logs() after this sees every line
        deadline = time.monotonic() + 5 * SLOW
        with self.cv:
            while not getattr(self, "out_eof", False) and time.monotonic() < deadline:
                self.cv.wait(0.1)
        return self.exit_code

    def stop(self):
        if self.proc is None or getattr(self, "_stopped", False):
            return
        self._stopped = True
        kids = self.children() if self.alive() else set()
        if self.alive() and self.check_children and self.initial_children:
            replaced = self.initial_children - kids
            check(not replaced, "no child process died while the test ran (crash?)",
                  sorted(self.initial_children), sorted(kids))
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait_exit(5) is None:
                fail("server stopped within %.0fs of SIGTERM" % (5 * SLOW))
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for k in kids:  # in case a child left the group
            st = proc_stat(k)
            if st and st[2] != self.pid:
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for name in ("_t__read_out", "_t__read_err"):
            t = getattr(self, name, None)
            if t:
                t.join(3)
        errtext = self.stderr_text()
        marks = [m for m in SANITIZER_MARKS if m in errtext]
        check(not marks, "no sanitizer report on stderr", "", errtext[-3000:])
        bad = [ln["_raw"] for ln in self.lines if ln.get("_bad")]
        check(not bad, "every stdout line is a JSON object", [], bad[:5])
        missing = [ln for ln in self.lines if not ln.get("_bad") and any(k not in ln for k in REQUIRED_LOG_KEYS)]
        check(not missing, "every log line has keys %s" % (REQUIRED_LOG_KEYS,), [], missing[:3])
        if self.data:
            shutil.rmtree(self.data, ignore_errors=True)
        self.data = None


def connect_refused(port, timeout=0.5):
    """True when a TCP connect to port is refused."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((HOST, port))
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()

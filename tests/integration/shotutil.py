"""shotutil — runs `tintype shot` the way a user would, and checks what
the user sees: the exit code, the file, the JSON on stdout, the reason on
stderr. Shared by test_render_shot.py, test_render_ssrf.py and
test_render_up.py (which makes its JPEG and WebP inputs with it).

shoot(url, *flags, env=..., timeout=...)  -> Shot
ok(shot, what, fmt, width, height)        -> the decoded PNG (or None)
refused(shot, what, code, words)          a failure: exit code, no file,
                                          `tintype shot: ...` naming words
Every shot is also checked for: stderr being JSON log lines (plus the one
`tintype shot:` line of a failure), no sanitizer report, and no process of
the shot (Chromium and its helpers) outliving it.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import imgutil
from ttharness import BIN, SANITIZER_MARKS, SLOW, check, clean_env, eq

ALLOW_LOOPBACK = {"TINTYPE_ALLOW_NETWORKS": "127.0.0.1/32"}
META_KEYS = ("format", "bytes", "width", "height", "http_status", "final_url", "timings", "blocked", "blocked_hosts")
OUT = tempfile.mkdtemp(prefix="tt-shot-")
_seq = [0]


def cleanup():
    shutil.rmtree(OUT, ignore_errors=True)


def _session_members(sid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d, "rb") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(b")") + 2:].split()
        if len(rest) > 3 and int(rest[3]) == sid and rest[0] != b"Z":
            out.append(int(d))
    return out


class Shot:
    def __init__(self, url, args, rc, out, err, elapsed, path):
        self.url = url
        self.args = args
        self.rc = rc
        self.stdout = out
        self.stderr = err
        self.elapsed = elapsed
        self.path = path
        self.data = None
        self.meta = None
        self.img = None
        if os.path.exists(path):
            with open(path, "rb") as f:
                self.data = f.read()
        try:
            m = json.loads(out)
            self.meta = m if isinstance(m, dict) else None
        except ValueError:
            pass

    def reason(self):
        """The `tintype shot: ...` lines of stderr."""
        return "\n".join(ln for ln in self.stderr.splitlines() if ln.startswith("tintype shot:"))

    def __repr__(self):
        return "<shot %s %s: exit %r in %.1fs, stdout %r, stderr ...%r>" % (
            self.url, " ".join(self.args), self.rc, self.elapsed, self.stdout[:300], self.stderr[-600:])


def shoot(url, *flags, env=None, timeout=45.0, ext=None, out=None):
    """Runs `tintype shot URL -o FILE FLAGS...` (FILE a fresh name in a temp
    folder unless out is given). env: extra environment (default: allow
    127.0.0.1/32); TINTYPE_* of the caller's environment are not passed."""
    _seq[0] += 1
    if out is None:
        if ext is None:
            ext = "png"
            for i, f in enumerate(flags):
                if f == "--format" and i + 1 < len(flags):
                    ext = flags[i + 1]
        out = os.path.join(OUT, "shot%03d.%s" % (_seq[0], ext))
    args = [url, "-o", out] + list(flags)
    t0 = time.monotonic()
    p = subprocess.Popen([BIN, "shot"] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=clean_env(ALLOW_LOOPBACK if env is None else env), text=True,
                         errors="replace", start_new_session=True)
    try:
        o, e = p.communicate(timeout=timeout * SLOW)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        o, e = p.communicate(timeout=10)
        e += "\n[test: killed after %.0fs]" % (timeout * SLOW)
    elapsed = time.monotonic() - t0
    s = Shot(url, list(flags), p.returncode, o, e, elapsed, out)
    # nothing the shot started may outlive it
    deadline = time.monotonic() + 3 * SLOW
    left = _session_members(p.pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = _session_members(p.pid)
    if left:
        cmds = []
        for pid in left:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    cmds.append(f.read().replace(b"\0", b" ")[:120].decode("utf-8", "replace"))
            except OSError:
                pass
        check(False, "no process of `tintype shot %s` outlives it" % url, [], cmds)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    marks = [m for m in SANITIZER_MARKS if m in e]
    check(not marks, "shot %s: no sanitizer report on stderr" % url, "", e[-3000:])
    bad = []
    for ln in e.splitlines():
        if not ln.strip() or ln.startswith("tintype shot:") or ln.startswith("[test:"):
            continue
        try:
            if not isinstance(json.loads(ln), dict):
                bad.append(ln)
        except ValueError:
            bad.append(ln)
    check(not bad, "shot %s: stderr is JSON log lines (and the `tintype shot:` reason)" % url, [], bad[:5])
    return s


def ok(s, what, fmt="png", width=None, height=None):
    """A successful shot: exit 0, FILE in fmt, stdout one JSON object that
    describes it. Returns the decoded image for PNG (else None)."""
    if not check(s.rc == 0, what + ": exit 0", 0, s):
        return None
    if not check(s.data is not None, what + ": the file was written", s.path, s):
        return None
    check(s.meta is not None and s.stdout.strip().count("\n") == 0, what + ": stdout is one JSON object", "{...}",
          s.stdout[:500])
    m = s.meta or {}
    missing = [k for k in META_KEYS if k not in m]
    check(not missing, what + ": stdout has %s" % (META_KEYS,), [], missing)
    try:
        info = imgutil.image_info(s.data)
    except ValueError as e:
        check(False, what + ": the file is a PNG, JPEG or WebP", fmt, str(e))
        return None
    eq(info[0], fmt, what + ": the file's format (by its magic)")
    eq(m.get("format"), fmt, what + ": JSON format")
    eq(m.get("bytes"), len(s.data), what + ": JSON bytes is the file's size")
    eq((m.get("width"), m.get("height")), info[1:], what + ": JSON width, height are the file's")
    if width is not None:
        eq(info[1:], (width, height), what + ": image dimensions")
    check(isinstance(m.get("http_status"), int), what + ": http_status an integer", "int", m.get("http_status"))
    check(isinstance(m.get("final_url"), str) and m.get("final_url", "").startswith("http"),
          what + ": final_url a URL", "http...", m.get("final_url"))
    t = m.get("timings")
    check(isinstance(t, dict) and t and all(isinstance(v, (int, float)) and v >= 0 for v in t.values()),
          what + ": timings is an object of milliseconds", "{name: ms}", t)
    check(isinstance(m.get("blocked"), int) and m.get("blocked") >= 0, what + ": blocked a count", ">= 0",
          m.get("blocked"))
    check(isinstance(m.get("blocked_hosts"), list) and len(m.get("blocked_hosts")) <= max(m.get("blocked") or 0, 0)
          and all(isinstance(h, str) and h for h in m.get("blocked_hosts")),
          what + ": blocked_hosts a list of at most `blocked` host names", "[host, ...]", m.get("blocked_hosts"))
    if fmt != "png":
        return None
    try:
        s.img = imgutil.decode_png(s.data)
    except ValueError as e:
        check(False, what + ": the PNG decodes", "a PNG", str(e))
        return None
    return s.img


def refused(s, what, code=1, words=()):
    """A failed shot: exit code, no FILE, a `tintype shot: REASON` line on
    stderr containing each of words (case-insensitive)."""
    eq(s.rc, code, what + ": exit %d" % code)
    check(s.data is None, what + ": no file is created", None, s.path if s.data is not None else None)
    r = s.reason()
    check(bool(r), what + ": stderr has a `tintype shot: <reason>` line", "tintype shot: ...", s.stderr[-800:])
    for w in words:
        alts = w if isinstance(w, tuple) else (w,)
        check(any(a.lower() in r.lower() for a in alts), what + ": the reason names %s" % " or ".join(alts),
              alts, r or s.stderr[-800:])
    return r


def near(c, want, tol=8):
    return c is not None and all(abs(a - b) <= tol for a, b in zip(c, want))


def px(what, img, x, y, want, tol=8):
    """Checks the colour of pixel (x, y) is want (within tol per channel)."""
    if img is None:
        return check(False, what + ": pixel (%d,%d) (no image)" % (x, y), want, None)
    try:
        c = img.rgb(x, y)
    except IndexError as e:
        return check(False, what + ": pixel (%d,%d)" % (x, y), want, str(e))
    return check(near(c, want, tol), what + ": pixel (%d,%d) colour" % (x, y), want, c)

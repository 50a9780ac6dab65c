#!/usr/bin/env python3
"""it.blobs_interrupted — an upload cut by a kill -9 of its API process
leaves no temporary file behind (issue 16 item 13): the `.tt-put-*` file the
dead process was writing is removed when the supervisor's new child opens
the blob folder, and is never served, under its own name or as the image.
Another process's upload in progress is left alone (unit.blobs
sweep_interrupted_puts covers the lock that decides it)."""

import os
import signal
import time

from apiclient import call, new_user
from ttharness import SLOW, Conn, Server, check, eq, request, run

S = Server(processes=1)


def temp_files(root):
    out = []
    for d, _dirs, files in os.walk(root):
        out += [os.path.join(d, f) for f in files if f.startswith(".tt-put-")]
    return out


def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def test_kill_mid_upload():
    u, k = new_user(S.port, "cut")
    r = call(S.port, "POST", "/api/images", key=k, body={})
    eq(r.status, 201, "an image record")
    iid = (r.j or {}).get("id")
    img_dir = os.path.join(S.data, "blobs", "images", iid)
    total = 5 * 1024 * 1024
    body = b"\x89PNG\r\n\x1a\n" + b"\0" * (1024 * 1024)  # the first MiB of a 5 MiB upload
    c = Conn(S.port, timeout=10)
    c.send(request("PUT", "/api/images/%s/raw" % iid,
                   [("Authorization", "Bearer " + k), ("Content-Type", "image/png"),
                    ("Content-Length", str(total))]))
    c.send(body)
    tmp = wait_for(lambda: temp_files(img_dir), 5)
    check(tmp, "mid-upload: the temp file exists", ".tt-put-*", os.listdir(img_dir) if os.path.isdir(img_dir)
          else "no folder")
    kids = S.children()
    eq(len(kids), 1, "one API child")
    S.check_children = False  # killed on purpose
    for pid in kids:
        os.kill(pid, signal.SIGKILL)
    c.close()
    # the supervisor forks a new child; opening the blob folder sweeps
    new = wait_for(lambda: S.children() - kids, 10)
    check(new, "the supervisor started a new child", "a new pid", S.children())
    gone = wait_for(lambda: not temp_files(img_dir), 10)
    check(gone, "after the restart the temp file is gone", "no .tt-put-*", temp_files(img_dir))
    check(S.wait_log(lambda l: "interrupted uploads" in (l.get("msg") or ""), 5) is not None,
          "the sweep is logged", "a log line", None)
    # never served: not as the image, not under its own name
    r = call(S.port, "GET", "/api/images/%s/raw" % iid, key=k)
    check(r.status in (404, 409), "the cut upload is not served as the image", "404/409", r.status)
    for t in tmp or []:
        name = os.path.relpath(t, os.path.join(S.data, "blobs"))
        r = call(S.port, "GET", "/api/blobs/" + name, key=k)
        check(r.status in (400, 403, 404), "the temp file's own name is not served", "4xx", (name, r.status))
    # and the image can be uploaded again
    small = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    r = call(S.port, "PUT", "/api/images/%s/raw" % iid, key=k, raw=small, ctype="image/png")
    check(r.status < 500, "a new upload of the same image is answered", "< 500", r.status)


if __name__ == "__main__":
    run("it.blobs_interrupted", [test_kill_mid_upload], server=S)

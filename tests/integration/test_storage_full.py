#!/usr/bin/env python3
"""it.storage_full — the data folder's disk full (issue 16 item 15, the
disk-full drill as a test): an upload that does not fit answers 507
problem+json "insufficient-storage" (not 500), /metrics counts it in
tintype_storage_full_total and the log says "storage full"; the image stored
before is served unchanged; the health check stays 200 (a full disk is not
cured by pulling the instance; see docs/ARCHITECTURE.md "Drills"); once space
returns the same upload succeeds. The data folder is a small tmpfs the test
mounts, so it needs root (skipped otherwise)."""

import os
import subprocess
import tempfile

from apiclient import call, new_user
from ttharness import Server, Skip, check, eq, fetch, run

MNT = None
S = None


def mount_tmpfs():
    global MNT
    MNT = tempfile.mkdtemp(prefix="tt-it-full-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", MNT], capture_output=True)
    if r.returncode != 0:
        os.rmdir(MNT)
        MNT = None
        raise Skip("cannot mount a tmpfs (needs root): %s" % r.stderr.decode(errors="replace").strip())


def umount_tmpfs():
    if MNT:
        subprocess.run(["umount", "-l", MNT], capture_output=True)
        os.rmdir(MNT)


def fill(path):
    """Writes path until the filesystem refuses; returns the bytes written."""
    n = 0
    with open(path, "wb", buffering=0) as f:
        chunk = b"\0" * 65536
        while True:
            try:
                n += f.write(chunk)
            except OSError:
                break
        # the last few free blocks, in small pieces
        while True:
            try:
                n += f.write(b"\0" * 512)
            except OSError:
                break
    return n


def metric(name):
    r = fetch(S.port, "GET", "/metrics")
    for ln in r.body.decode().splitlines():
        if ln.startswith(name + " "):
            return float(ln.split()[1])
    return None


def png(n, fill_byte):
    return b"\x89PNG\r\n\x1a\n" + bytes([fill_byte]) * n


def test_disk_full():
    global S
    if os.geteuid() != 0:
        raise Skip("needs root to mount a tmpfs")
    mount_tmpfs()
    try:
        S = Server("--data", MNT, processes=1)
        with S:
            _disk_full()
    finally:
        umount_tmpfs()


def _disk_full():
    u, k = new_user(S.port, "full")
    r = call(S.port, "POST", "/api/images", key=k, body={})
    eq(r.status, 201, "an image record")
    first = r.j["id"]
    before = png(20000, 1)
    r = call(S.port, "PUT", "/api/images/%s/raw" % first, key=k, raw=before, ctype="image/png")
    eq(r.status, 200, "an upload while there is space")
    r = call(S.port, "POST", "/api/images", key=k, body={})
    eq(r.status, 201, "a second image record")
    second = r.j["id"]

    filler = os.path.join(MNT, "filler")
    check(fill(filler) > 0, "the tmpfs filled", "> 0 bytes", None)
    big = png(1024 * 1024, 2)
    r = call(S.port, "PUT", "/api/images/%s/raw" % second, key=k, raw=big, ctype="image/png")
    eq(r.status, 507, "an upload to a full disk answers 507")
    eq(r.get("content-type"), "application/problem+json", "as problem+json")
    check(isinstance(r.j, dict) and r.j.get("type", "").endswith("insufficient-storage"),
          "the problem says insufficient-storage", "insufficient-storage", r.j)
    check((metric("tintype_storage_full_total") or 0) >= 1, "/metrics counts it",
          "tintype_storage_full_total >= 1", metric("tintype_storage_full_total"))
    check(S.wait_log(lambda l: l.get("msg") == "storage full", 5) is not None, "the log says 'storage full'",
          "a log line", None)
    r = fetch(S.port, "GET", "/")
    eq(r.status, 200, "the health check stays 200 while the disk is full")
    r = call(S.port, "GET", "/api/images/%s/raw" % first, key=k)
    eq(r.status, 200, "the earlier image is still served")
    check(r.body == before, "with its bytes unchanged", len(before), len(r.body))
    r = call(S.port, "GET", "/api/images/%s" % second, key=k)
    eq(r.status, 200, "the refused image's record is readable")
    check(r.j.get("state") != "uploaded", "and does not claim the refused bytes", "not uploaded", r.j)
    left = [f for f in os.listdir(os.path.join(MNT, "blobs", "images", second))
            if f.startswith(".tt-put-")] if os.path.isdir(os.path.join(MNT, "blobs", "images", second)) else []
    eq(left, [], "no temporary file of the refused upload is left")

    os.unlink(filler)
    r = call(S.port, "PUT", "/api/images/%s/raw" % second, key=k, raw=big, ctype="image/png")
    eq(r.status, 200, "once space returns the same upload succeeds")
    r = call(S.port, "GET", "/api/images/%s/raw" % second, key=k)
    check(r.status == 200 and r.body == big, "and its bytes are served", len(big), (r.status, len(r.body)))


if __name__ == "__main__":
    run("it.storage_full", [test_disk_full])

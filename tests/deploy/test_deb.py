"""deploy.deb — the Debian package `make deb` builds (infra/packaging/).

Builds tintype_VERSION_ARCH.deb from the plain binary with
infra/packaging/build-deb.sh into a temporary folder, then looks at it the
way a user and Debian's tools would: dpkg-deb's file list and control fields
(Depends names the libraries, libvips and the headless shell), lintian
clean, the systemd units pass `systemd-analyze verify` and drain on stop
(SIGTERM, a stop timeout above drain delay + shutdown timeout), the role
wrapper starts the command lines the units promise, and the package
installs into and purges from a throwaway Debian root with `dpkg --root`
(the debootstrapped rootfs tests/deploy/test_docker.py caches; skipped when
it is not there). Exit 77 (ctest SKIP) without dpkg-deb.
"""

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
import ttharness as t  # noqa: E402

PKGDIR = os.path.join(t.ROOT, "infra", "packaging")
ROOTFS_TAR = os.path.join(os.environ.get("TT_DEPLOY_CACHE", "/var/cache/tintype"), "bookworm-minbase.tar")
if not shutil.which("dpkg-deb") or not shutil.which("dpkg-shlibdeps"):
    print("SKIP deploy.deb: dpkg-deb/dpkg-dev not installed")
    sys.exit(77)

TMP = tempfile.mkdtemp(prefix="tt-deb.")
state = {}


def sh(args, **kw):
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def version():
    return sh([t.BIN, "--version"]).stdout.split()[1]


def test_build():
    r = sh(["bash", os.path.join(PKGDIR, "build-deb.sh"), t.BIN, TMP], timeout=120)
    t.eq(r.returncode, 0, "build-deb.sh exits 0")
    arch = sh(["dpkg", "--print-architecture"]).stdout.strip()
    deb = os.path.join(TMP, "tintype_%s_%s.deb" % (version(), arch))
    t.eq(r.stdout.strip(), deb, "it prints the package's path, named tintype_VERSION_ARCH.deb")
    t.check(os.path.isfile(deb), "the package exists", deb, os.listdir(TMP))
    t.eq(sorted(os.listdir(TMP)), [os.path.basename(deb)], "nothing but the package is left behind")
    state["deb"] = deb


def need_deb():
    if "deb" not in state:
        raise t.Skip("no package (the build failed)")
    return state["deb"]


def test_contents():
    deb = need_deb()
    listing = sh(["dpkg-deb", "-c", deb]).stdout
    files = {ln.split()[-1].lstrip(".") for ln in listing.splitlines()}
    for f in ("/usr/bin/tintype", "/usr/lib/tintype/tintype-role", "/etc/default/tintype",
              "/lib/systemd/system/tintype-api@.service", "/lib/systemd/system/tintype-worker.service",
              "/lib/systemd/system/tintype.target", "/usr/share/doc/tintype/copyright"):
        t.check(f in files, "the package holds " + f, f, sorted(files))
    mode = [ln for ln in listing.splitlines() if ln.endswith("./usr/bin/tintype")]
    t.check(mode and mode[0].startswith("-rwxr-xr-x root/root"), "the binary is root-owned 0755", "-rwxr-xr-x root/root",
            mode)
    f = {k: sh(["dpkg-deb", "-f", deb, k]).stdout.strip() for k in ("Package", "Version", "Depends")}
    t.eq(f["Package"], "tintype", "Package: tintype")
    t.eq(f["Version"], version(), "Version is the binary's --version")
    deps = [d.strip().split()[0] for d in f["Depends"].split(",")]
    for d in ("libc6", "libuv1", "libjansson4", "libsqlite3-0", "libcurl4", "libwebsockets17", "libwebsockets-evlib-uv", "libvips42",
              "chromium-headless-shell", "adduser"):
        t.check(d in deps, "Depends names " + d, d, f["Depends"])
    ctl = tempfile.mkdtemp(dir=TMP)
    sh(["dpkg-deb", "-e", deb, ctl])
    with open(os.path.join(ctl, "conffiles")) as fh:
        t.eq(fh.read().split(), ["/etc/default/tintype"], "/etc/default/tintype is a conffile")
    shutil.rmtree(ctl)


def test_lintian():
    deb = need_deb()
    if not shutil.which("lintian"):
        raise t.Skip("lintian not installed")
    r = sh(["lintian", "--tag-display-limit", "0", deb], timeout=300)
    tags = [ln for ln in r.stdout.splitlines() if re.match(r"^[EWI]: ", ln)]
    t.eq(tags, [], "lintian reports no errors or warnings")
    t.eq(r.returncode, 0, "lintian exits 0")


def extracted():
    if "x" not in state:
        x = os.path.join(TMP, "x")
        sh(["dpkg-deb", "-x", need_deb(), x], check=True)
        state["x"] = x
    return state["x"]


def unit(name):
    with open(os.path.join(extracted(), "lib/systemd/system", name)) as f:
        return f.read()


def defaults():
    out = {}
    with open(os.path.join(extracted(), "etc/default/tintype")) as f:
        for ln in f:
            m = re.match(r"^([A-Z_]+)=(.*)$", ln.strip())
            if m:
                out[m.group(1)] = m.group(2)
    return out


def test_units():
    x = extracted()
    if not shutil.which("systemd-analyze"):
        raise t.Skip("systemd-analyze not installed")
    # the units name /usr/lib/tintype/tintype-role, which is not installed on
    # this host: verify copies that name the extracted one instead
    vdir = os.path.join(TMP, "units")
    os.makedirs(vdir)
    role = os.path.join(x, "usr/lib/tintype/tintype-role")
    for n in ("tintype-api@.service", "tintype-worker.service", "tintype.target"):
        with open(os.path.join(vdir, n), "w") as f:
            f.write(unit(n).replace("/usr/lib/tintype/tintype-role", role))
    for inst in ("tintype-api@users.service", "tintype-api@all.service", "tintype-worker.service",
                 "tintype.target"):
        r = sh(["systemd-analyze", "verify", "--man=no", os.path.join(vdir, inst)], cwd=vdir, timeout=60)
        t.eq((r.returncode, r.stdout.strip(), r.stderr.strip()), (0, "", ""),
             "systemd-analyze verify %s is clean" % inst)
    d = defaults()
    for n, drain in (("tintype-api@.service", int(d["TINTYPE_API_DRAIN_DELAY_MS"]) +
                      int(d["TINTYPE_API_SHUTDOWN_TIMEOUT_MS"])),
                     ("tintype-worker.service", int(d["TINTYPE_WORKER_SHUTDOWN_TIMEOUT_MS"]))):
        u = unit(n)
        t.check("\nKillSignal=SIGTERM\n" in u, n + " stops with SIGTERM (the drain signal)")
        t.check("\nKillMode=mixed\n" in u, n + " sends SIGTERM to the supervisor only (it signals its children)")
        m = re.search(r"\nTimeoutStopSec=(\d+)\n", u)
        # the supervisor kills children still alive 5 s after its own deadline
        t.check(m and int(m.group(1)) * 1000 > drain + 5000, n + " waits out the drain before SIGKILL",
                "> %d ms" % (drain + 5000), m and m.group(0))
        t.check("\nUser=tintype\n" in u, n + " runs as the tintype system user")
        t.check("\nEnvironmentFile=-/etc/default/tintype\n" in u, n + " reads /etc/default/tintype")
        # each unit has its own /tmp: the ports list must live where all see it
        t.check("\nPrivateTmp=yes\n" not in u or (d.get("TINTYPE_PORTS_DIR", "").startswith("/run/tintype/")
                                                   and "\nRuntimeDirectory=tintype\n" in u
                                                   and "\nRuntimeDirectoryPreserve=yes\n" in u),
                n + ": the units share one --ports-dir outside their private /tmp")


def test_role_wrapper():
    """The command line each unit starts, with tintype replaced by echo."""
    src = os.path.join(extracted(), "usr/lib/tintype/tintype-role")
    with open(src) as f:
        body = f.read().replace("exec /usr/bin/tintype", "exec echo tintype")
    fake = os.path.join(TMP, "role-echo")
    with open(fake, "w") as f:
        f.write(body)
    env = dict(os.environ)
    for k, v in defaults().items():
        env[k] = v

    def run(*args):
        r = sh(["sh", fake] + list(args), env=env)
        return r.returncode, r.stdout.strip()

    api_tail = "--drain-delay-ms 15000 --shutdown-timeout-ms 30000"
    t.eq(run("api", "users"), (0, "tintype api --routes users --port 8081 " + api_tail), "api users")
    t.eq(run("api", "images"), (0, "tintype api --routes images --port 8082 " + api_tail), "api images")
    t.eq(run("api", "jobs"), (0, "tintype api --routes jobs --port 8083 " + api_tail), "api jobs")
    t.eq(run("api", "web"), (0, "tintype api --routes web --port 8084 " + api_tail), "api web")
    t.eq(run("api", "all"), (0, "tintype api --routes users,images,jobs,web " + api_tail), "api all (TINTYPE_PORT)")
    t.eq(run("worker"), (0, "tintype worker --shutdown-timeout-ms 90000"), "worker")
    t.eq(run("api", "bogus")[0], 2, "an unknown route group exits 2")
    t.eq(run()[0], 2, "no role exits 2")


def test_install_purge():
    deb = need_deb()
    if os.geteuid() != 0:
        raise t.Skip("dpkg --root with maintainer scripts in a chroot needs root")
    if not os.path.exists(ROOTFS_TAR):
        raise t.Skip("no debootstrapped rootfs at %s (deploy.docker makes it)" % ROOTFS_TAR)
    root = os.path.join(TMP, "root")
    os.makedirs(root)
    with tarfile.open(ROOTFS_TAR) as tf:
        tf.extractall(root, filter="fully_trusted")
    # the library dependencies are not in a minbase root: --force-depends;
    # the maintainer scripts still run (chrooted) and must succeed
    r = sh(["dpkg", "--root=" + root, "--force-depends", "-i", deb], timeout=120)
    t.check(r.returncode == 0, "dpkg --root -i installs the package", 0, (r.returncode, r.stderr[-1500:]))
    st = sh(["dpkg", "--root=" + root, "-s", "tintype"]).stdout
    t.check("Status: install ok installed" in st, "dpkg says it is installed", "install ok installed", st[:300])
    pw = sh(["chroot", root, "getent", "passwd", "tintype"]).stdout.strip()
    t.check(pw.startswith("tintype:") and pw.split(":")[5] == "/var/lib/tintype",
            "postinst made the tintype system user, home /var/lib/tintype", "tintype:...:/var/lib/tintype:...", pw)
    uid = int(pw.split(":")[2]) if pw else -1
    t.check(0 < uid < 1000, "the user is a system user (uid < 1000)", "< 1000", uid)
    s = os.stat(os.path.join(root, "var/lib/tintype"))
    t.eq((s.st_uid, oct(s.st_mode & 0o777)), (uid, "0o750"), "/var/lib/tintype is the user's, 0750")
    t.check(os.access(os.path.join(root, "usr/bin/tintype"), os.X_OK), "/usr/bin/tintype is installed")
    r = sh(["dpkg", "--root=" + root, "--purge", "tintype"], timeout=120)
    t.check(r.returncode == 0, "dpkg --purge removes it", 0, (r.returncode, r.stderr[-1500:]))
    for p in ("usr/bin/tintype", "etc/default/tintype", "lib/systemd/system/tintype-worker.service",
              "var/lib/tintype"):
        t.check(not os.path.exists(os.path.join(root, p)), "purge leaves no " + p)


def main():
    try:
        t.run("deploy.deb", [test_build, test_contents, test_lintian, test_units, test_role_wrapper,
                             test_install_purge])
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()

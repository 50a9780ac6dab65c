#!/usr/bin/env bash
# build-deb.sh TINTYPE_BINARY OUTDIR — the Debian package (`make deb`).
#
# Stages the binary, the systemd units (tintype-api@.service for one route
# group each, tintype-worker.service, tintype.target), the role wrapper and
# /etc/default/tintype, then builds OUTDIR/tintype_VERSION_amd64.deb with
# dpkg-deb (root-owned files without fakeroot). The version is the binary's
# own (`tintype --version`); Depends come from dpkg-shlibdeps on the binary,
# plus what it loads at run time: libvips42 (dlopened by the worker),
# libwebsockets-evlib-uv (the libuv plugin libwebsockets dlopens) and the
# headless shell. tests/deploy/test_deb.py checks the result.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${1:?usage: build-deb.sh TINTYPE_BINARY OUTDIR}"
OUT="${2:?usage: build-deb.sh TINTYPE_BINARY OUTDIR}"
VERSION="$("$BIN" --version | awk '{print $2}')"
ARCH="$(dpkg --print-architecture)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
STAGE="$(mktemp -d "$OUT/deb-stage.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
PKG="$STAGE/pkg"

install -d "$PKG/DEBIAN" "$PKG/usr/bin" "$PKG/usr/lib/tintype" "$PKG/lib/systemd/system" \
  "$PKG/etc/default" "$PKG/usr/share/doc/tintype" "$PKG/usr/share/lintian/overrides"
install -m 0755 "$BIN" "$PKG/usr/bin/tintype"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$PKG/usr/bin/tintype"
install -m 0755 "$HERE/tintype-role" "$PKG/usr/lib/tintype/tintype-role"
install -m 0644 "$HERE/systemd/tintype-api@.service" "$HERE/systemd/tintype-worker.service" \
  "$HERE/systemd/tintype.target" "$PKG/lib/systemd/system/"
install -m 0644 "$HERE/default" "$PKG/etc/default/tintype"
install -m 0644 "$HERE/lintian-overrides" "$PKG/usr/share/lintian/overrides/tintype"
install -m 0644 "$ROOT/README.md" "$PKG/usr/share/doc/tintype/README.md"
gzip -9n "$PKG/usr/share/doc/tintype/README.md"
install -m 0644 "$HERE/copyright" "$PKG/usr/share/doc/tintype/copyright"
{
  echo "tintype ($VERSION) unstable; urgency=medium"
  echo
  echo "  * Built from the tintype source tree."
  echo
  echo " -- tintype maintainers <tintype@example.org>  $(date -R -d @"${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n >"$PKG/usr/share/doc/tintype/changelog.gz"
chmod 0644 "$PKG/usr/share/doc/tintype/changelog.gz"

# shared-library dependencies, as dpkg-shlibdeps sees them (it wants a
# debian/control beside it)
mkdir -p "$STAGE/src/debian"
printf 'Source: tintype\n\nPackage: tintype\nArchitecture: any\n' >"$STAGE/src/debian/control"
SHLIBS="$(cd "$STAGE/src" && dpkg-shlibdeps -O -e"$PKG/usr/bin/tintype" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')"
[ -n "$SHLIBS" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

install -m 0644 "$HERE/conffiles" "$PKG/DEBIAN/conffiles"
install -m 0755 "$HERE/postinst" "$HERE/prerm" "$HERE/postrm" "$PKG/DEBIAN/"
SIZE="$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)"
cat >"$PKG/DEBIAN/control" <<CONTROL
Package: tintype
Version: $VERSION
Architecture: $ARCH
Maintainer: tintype maintainers <tintype@example.org>
Installed-Size: $SIZE
Depends: $SHLIBS, libwebsockets-evlib-uv, libvips42, chromium-headless-shell, adduser
Recommends: fonts-dejavu-core
Section: web
Priority: optional
Homepage: https://example.org/tintype
Description: screenshots and image processing over HTTP
 tintype turns URLs into screenshots and uploaded pictures into processed
 images, over an HTTP API. One binary plays every role: API route groups
 (tintype-api@users, @images, @jobs, @web, or @all) and the job worker
 (tintype-worker), each a systemd unit that drains on stop. Backends are
 embedded (SQLite, files) or AWS (DynamoDB, SQS, S3).
CONTROL
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
  >"$PKG/DEBIAN/md5sums"
chmod 0644 "$PKG/DEBIAN/md5sums"
DEB="$OUT/tintype_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
echo "$DEB"

#!/usr/bin/env bash
# Installs every Debian package tintype's build, tests, benchmarks and `tintype up`
# need, and the npm packages of the browser tests (tests/e2e). Idempotent: when
# everything is present it only runs dpkg-query, node and sha256sum, and exits.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

PKGS=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libuv1-dev node-llhttp libjansson-dev libwebsockets-dev libcurl4-openssl-dev
  libsqlite3-dev libvips-dev libssl-dev zlib1g-dev
  chromium chromium-headless-shell curl python3 wrk nginx-light haproxy valgrind iproute2 procps
  poppler-utils podman debootstrap runc dpkg-dev fakeroot lintian systemd strace
)
# Node.js and npm run the browser tests. Any node >= 18 on PATH will do (a
# machine may have one that is not Debian's, with its own npm): Debian's are
# installed only when there is none.
if ! command -v node >/dev/null 2>&1; then
  PKGS+=(nodejs npm)
elif ! command -v npm >/dev/null 2>&1; then
  PKGS+=(npm)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

# tests/e2e/node_modules from the committed lockfile, exactly (npm ci), when
# it is missing or was installed from another lockfile. playwright-core has
# no install script and fetches no browser; --ignore-scripts and the
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD guard keep it so: the tests drive
# /usr/bin/chromium.
E2E="$ROOT/tests/e2e"
if [ -f "$E2E/package-lock.json" ]; then
  want="$(sha256sum "$E2E/package-lock.json" "$E2E/package.json" | sha256sum | cut -d' ' -f1)"
  stamp="$E2E/node_modules/.tintype-installed"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "install-deps: npm ci in tests/e2e ($(node --version), npm $(npm --version 2>/dev/null))" >&2
    (cd "$E2E" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund \
        --loglevel=error </dev/null >&2)
    echo "$want" >"$stamp"
  fi
fi

# tests/aws/emulators/node_modules: the npm emulators the AWS contract
# tests run on 127.0.0.1 (dynalite, s3rver, local-aws-sqs), from their
# lockfile. Pure JavaScript: no install scripts needed.
EMU="$ROOT/tests/aws/emulators"
if [ -f "$EMU/package-lock.json" ]; then
  want="$(sha256sum "$EMU/package-lock.json" "$EMU/package.json" | sha256sum | cut -d' ' -f1)"
  stamp="$EMU/node_modules/.tintype-installed"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "install-deps: npm ci in tests/aws/emulators" >&2
    (cd "$EMU" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error </dev/null >&2)
    echo "$want" >"$stamp"
  fi
fi

# tests/aws/node_modules: the independent SigV4 signer (@smithy/signature-v4)
# the AWS tests compare tintype's signatures with, from its lockfile.
AWSN="$ROOT/tests/aws"
if [ -f "$AWSN/package-lock.json" ]; then
  want="$(sha256sum "$AWSN/package-lock.json" "$AWSN/package.json" | sha256sum | cut -d' ' -f1)"
  stamp="$AWSN/node_modules/.tintype-installed"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "install-deps: npm ci in tests/aws" >&2
    (cd "$AWSN" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error </dev/null >&2)
    echo "$want" >"$stamp"
  fi
fi

#!/usr/bin/env bash
# bench_data.sh — data-layer throughput (issue 3, point 5): queue full
# cycles/s and store point reads / conditional writes per second, with 1
# and 2 processes on one sqlite file. Builds loadtest/bench_data.c against
# the plain (not sanitized) core library. Usage: loadtest/bench_data.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
BUILD=${BUILD:-build}
[ -f "$BUILD/libtt_core.a" ] || { cmake -S . -B "$BUILD" >/dev/null && cmake --build "$BUILD" -j"$(nproc)" >/dev/null; }
OUT="$BUILD/bench_data"
# every layer library of the plain build (not the -asan twins of make test)
libs=$(ls "$BUILD"/libtt_*.a | grep -v -- '-asan\.a$')
cc -O2 -D_GNU_SOURCE -std=c17 -Wall -Wextra -Werror -I include loadtest/bench_data.c \
  -Wl,--start-group $libs -Wl,--end-group "$BUILD/libllhttp.a" $(pkg-config --libs libuv jansson sqlite3 zlib libcrypto libcurl) \
  -lm -lpthread -o "$OUT"
export TINTYPE_LOG_LEVEL=warn
echo "# sync=${TT_BENCH_SYNC:-normal} $(date -u +%FT%TZ) $(nproc) CPUs, UV_THREADPOOL_SIZE=${UV_THREADPOOL_SIZE:-4}, ${SECS}s each"
for mode in queue reads writes; do
  for procs in 1 2; do
    "$OUT" "$mode" "$procs" "$SECS" 2>/dev/null | tail -1
  done
done

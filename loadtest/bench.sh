#!/usr/bin/env bash
# loadtest/bench.sh: `make bench`. tintype against nginx on GET /index.html.
#
# In one run: starts `tintype api --processes 2` and nginx with
# worker_processes 2, both on free ports on 127.0.0.1, serving the same bytes
# (web/index.html copied into a temp root for nginx) and both writing one
# access-log line per request to a file. Runs wrk against each in alternating
# order (nginx, tintype, nginx, tintype, ...) ROUNDS times, reports the median
# requests/s and the median p99 of each, the ratios, and the RSS of each
# tintype API child when idle after start-up and after the load.
# Writes loadtest/results/bench-http.md. Builds nothing: run `make build`
# first (or `make bench`, which does).
#
# Environment: BUILD (build dir, default build), THREADS (2), CONNS (64),
# DURATION (10s), ROUNDS (3), NGINX (/usr/sbin/nginx), BENCH_NO_RENDER=1 to
# stop before the render benchmark (comparing two builds), NGINX_PLAIN=1 for
# nginx without open_file_cache and log buffering, KEEP_TMP=1 to keep
# the temp dir with both servers' logs and every wrk report.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh

BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
NGINX=${NGINX:-/usr/sbin/nginx}
BIN=$BUILD/tintype
OUT_MD=loadtest/results/bench-http.md

[[ -x $BIN ]] || lt_die "$BIN not found; build first (make build, or BUILD=dir)"
[[ -x $NGINX ]] || lt_die "nginx not found at $NGINX"
command -v wrk >/dev/null || lt_die "wrk not installed"

LT_TMP=$(mktemp -d /tmp/tintype-bench.XXXXXX)
trap lt_cleanup EXIT
trap 'exit 130' INT TERM

# --- nginx: temp prefix, same bytes, logs like tintype ---------------------
lt_start_nginx

# --- tintype ---------------------------------------------------------------
lt_start_tintype "$BIN" "$LT_TMP/tintype.log" inherit 2
TT_CHILDREN=$(lt_live_children "$LT_TMP/tintype.log" | tr '\n' ' ')

NGINX_URL=http://127.0.0.1:$NGINX_PORT/index.html
TT_URL=http://127.0.0.1:$TT_PORT/index.html

# Same bytes from both?
curl -fsS "$NGINX_URL" -o "$LT_TMP/nginx.body" || lt_die "nginx GET failed"
curl -fsS "$TT_URL" -o "$LT_TMP/tintype.body" || lt_die "tintype GET failed"
cmp -s "$LT_TMP/nginx.body" "$LT_TMP/tintype.body" ||
    lt_die "nginx and tintype serve different bodies"
nginx_hdr=$(curl -fsS -D - -o /dev/null "$NGINX_URL" | wc -c)
tt_hdr=$(curl -fsS -D - -o /dev/null "$TT_URL" | wc -c)

sleep 1
declare -A RSS_IDLE RSS_AFTER
for pid in $TT_CHILDREN; do RSS_IDLE[$pid]=$(lt_rss_kb "$pid"); done

lt_log "tintype :$TT_PORT (children $TT_CHILDREN), nginx :$NGINX_PORT"
lt_log "wrk -t$THREADS -c$CONNS -d$DURATION --latency, $ROUNDS rounds, alternating"

# Warm-up, not counted.
DURATION_SAVE=$DURATION
DURATION=2s
lt_wrk "$LT_TMP/warm-nginx.txt" "$NGINX_URL"
lt_wrk "$LT_TMP/warm-tintype.txt" "$TT_URL"
DURATION=$DURATION_SAVE

: >"$LT_TMP/runs.tsv"
for r in $(seq "$ROUNDS"); do
    for srv in nginx tintype; do
        url=$NGINX_URL
        [[ $srv == tintype ]] && url=$TT_URL
        f="$LT_TMP/wrk-$srv-$r.txt"
        port=${url#http://127.0.0.1:}
        port=${port%%/*}
        lt_wrk "$f" "$url" &
        wpid=$!
        sleep $(($(lt_seconds "$DURATION") / 2))
        spread=$(lt_conns_per_process "$port")
        wait "$wpid"
        rps=$(lt_wrk_rps "$f")
        p99=$(lt_wrk_p99_ms "$f")
        read -r ec er ew et < <(lt_wrk_socket_errors "$f")
        n2=$(lt_wrk_non2xx "$f")
        [[ -n $rps ]] || {
            cat "$f" >&2
            lt_die "wrk produced no result against $srv"
        }
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$srv" "$r" "$rps" "$p99" \
            "$((ec + er + ew + et + n2))" "${spread:-?}" >>"$LT_TMP/runs.tsv"
        printf '  round %d %-8s %10s req/s  p99 %8s ms  errors %d  connections per process %s\n' \
            "$r" "$srv" "$rps" "$p99" "$((ec + er + ew + et + n2))" "${spread:-?}" >&2
    done
done

for pid in $TT_CHILDREN; do RSS_AFTER[$pid]=$(lt_rss_kb "$pid"); done

med() { awk -F'\t' -v s="$1" -v c="$2" '$1 == s { print $c }' "$LT_TMP/runs.tsv" | lt_median; }
NG_RPS=$(med nginx 3)
TT_RPS=$(med tintype 3)
NG_P99=$(med nginx 4)
TT_P99=$(med tintype 4)
R_RPS=$(lt_ratio "$TT_RPS" "$NG_RPS")
R_P99=$(lt_ratio "$TT_P99" "$NG_P99")

all_runs() {
    awk -F'\t' -v s="$1" -v c="$2" '$1 == s { printf "%s%s", (n++ ? ", " : ""), $c }' "$LT_TMP/runs.tsv"
}

rss_rows=""
for pid in $TT_CHILDREN; do
    rss_rows+="| tintype api child $pid | ${RSS_IDLE[$pid]} kB | ${RSS_AFTER[$pid]} kB |"$'\n'
done

REPORT=$(
    cat <<EOF
### GET /index.html: tintype vs nginx

\`wrk -t$THREADS -c$CONNS -d$DURATION --latency\`, $ROUNDS rounds alternating
nginx / tintype, median of the rounds (req/s and p99 each). Both on 127.0.0.1,
2 processes each, one JSON access-log line per request to a file, same
$(wc -c <web/index.html)-byte body (response headers: tintype $tt_hdr bytes,
nginx $nginx_hdr bytes). $(nproc) CPUs shared with wrk.
$(date -u +%Y-%m-%dT%H:%MZ), $(uname -srm), nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'),
tintype $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty').
nginx: worker_processes 2, keepalive_requests 100000000, $NGINX_DESC.

| server | req/s (median) | p99 ms (median) | req/s, each round | p99 ms, each round | connections per process, each round | errors |
|---|---:|---:|---|---|---|---|
| nginx 2 workers | $NG_RPS | $NG_P99 | $(all_runs nginx 3) | $(all_runs nginx 4) | $(all_runs nginx 6) | $(all_runs nginx 5) |
| tintype api --processes 2 | $TT_RPS | $TT_P99 | $(all_runs tintype 3) | $(all_runs tintype 4) | $(all_runs tintype 6) | $(all_runs tintype 5) |
| **tintype / nginx** | **${R_RPS}×** | **${R_P99}×** | | | | |

"Connections per process": how wrk's $CONNS connections were spread over the
two processes, sampled mid-run (\`ss -tnp\`); an uneven spread raises p99.

| RSS (VmRSS) | idle after start-up | after the load |
|---|---:|---:|
${rss_rows}
Command: \`${NGINX_PLAIN:+NGINX_PLAIN=1 }BUILD=$BUILD THREADS=$THREADS CONNS=$CONNS DURATION=$DURATION ROUNDS=$ROUNDS bash loadtest/bench.sh\`
EOF
)

echo
echo "$REPORT"
mkdir -p loadtest/results
echo "$REPORT" >"$OUT_MD"
echo
echo "written: $OUT_MD"

# --- data layer --------------------------------------------------------------
# `make bench` also runs the data-layer benchmark when it exists. It is
# written and owned separately; it gets the same BUILD and wrk settings.
# Stop the HTTP servers first so it has the machine to itself.
lt_cleanup
if [[ -f loadtest/bench_data.sh ]]; then
    echo
    echo "== loadtest/bench_data.sh"
    BUILD=$BUILD THREADS=$THREADS CONNS=$CONNS DURATION=$DURATION \
        bash loadtest/bench_data.sh
fi
# The REST API (GET /api/jobs/{id}, POST /api/jobs) against nginx again,
# in its own run. CONNS is not passed on purpose: bench_api.sh defaults to
# 32 and takes CONNS only from the caller's environment.
if [[ -f loadtest/bench_api.sh ]]; then
    echo
    echo "== loadtest/bench_api.sh"
    BUILD=$BUILD THREADS=$THREADS DURATION=$DURATION ROUNDS=$ROUNDS NGINX=$NGINX \
        bash loadtest/bench_api.sh
fi
# Screenshots: tintype's render jobs through the queue against puppeteer-core
# driving the same Chromium, same page (loadtest/bench_render.sh; needs the
# render worker, node and, the first time, npm to install puppeteer-core).
if [[ -f loadtest/bench_render.sh && -z ${BENCH_NO_RENDER:-} ]]; then
    echo
    echo "== loadtest/bench_render.sh"
    BUILD=$BUILD RENDER_ROUNDS=${RENDER_ROUNDS:-3} NGINX=$NGINX bash loadtest/bench_render.sh
fi

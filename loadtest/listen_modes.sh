#!/usr/bin/env bash
# loadtest/listen_modes.sh: issue 2 point 4, the two shared-port designs.
#
# `tintype api --processes 2` with --listen-mode inherit (one listener made by
# the supervisor, inherited by every child) and --listen-mode reuseport (one
# SO_REUSEPORT socket per child), measured two ways:
#   (a) throughput: wrk keep-alive on GET /index.html, RUNS runs per mode,
#       alternating modes; also how the connections spread over the children;
#   (b) requests lost when a child is killed under load: wrk with
#       `Connection: close` (every request on a new connection) for KILL_SECS
#       seconds, `kill -9` of one child KILLS times, KILL_GAP seconds apart,
#       starting 1 s in; every socket error and non-2xx counts as a lost
#       request. A control run with no kill gives each mode's baseline.
# Every run of (b) uses a fresh server. Writes loadtest/results/listen-modes.md.
#
# Environment: BUILD (build dir, default build), THREADS (2), CONNS (64),
# DURATION (10s, for (a)), RUNS (3), KILL_RUNS (3), KILL_SECS (5), KILLS (3),
# KILL_GAP (1), KEEP_TMP=1 to keep logs and wrk reports.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh

BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
KILL_RUNS=${KILL_RUNS:-3}
KILL_SECS=${KILL_SECS:-5}
KILLS=${KILLS:-3}
KILL_GAP=${KILL_GAP:-1}
BIN=$BUILD/tintype
OUT_MD=loadtest/results/listen-modes.md
MODES=(inherit reuseport)

[[ -x $BIN ]] || lt_die "$BIN not found; build first (make build, or BUILD=dir)"
command -v wrk >/dev/null || lt_die "wrk not installed"

LT_TMP=$(mktemp -d /tmp/tintype-listen.XXXXXX)
trap lt_cleanup EXIT
trap 'exit 130' INT TERM

# Stop one server started by lt_start_tintype (and forget its pid).
stop_server() {
    local pid=$1 keep=() p
    kill -TERM "$pid" 2>/dev/null || true
    timeout 15 tail --pid="$pid" -f /dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${LT_PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    LT_PIDS=("${keep[@]}")
}

# --- (a) throughput ----------------------------------------------------------
lt_log "(a) throughput: wrk -t$THREADS -c$CONNS -d$DURATION, $RUNS runs per mode, alternating"
declare -A PORT SUP
for m in "${MODES[@]}"; do
    lt_start_tintype "$BIN" "$LT_TMP/a-$m.log" "$m" 2
    PORT[$m]=$TT_PORT
    SUP[$m]=$TT_PID
    DURATION_SAVE=$DURATION
    DURATION=2s
    lt_wrk "$LT_TMP/a-warm-$m.txt" "http://127.0.0.1:$TT_PORT/index.html"
    DURATION=$DURATION_SAVE
done
: >"$LT_TMP/a.tsv"
secs=$(lt_seconds "$DURATION")
for r in $(seq "$RUNS"); do
    order=("${MODES[@]}")
    ((r % 2 == 0)) && order=(reuseport inherit)
    for m in "${order[@]}"; do
        f="$LT_TMP/a-$m-$r.txt"
        lt_wrk "$f" "http://127.0.0.1:${PORT[$m]}/index.html" &
        wpid=$!
        sleep $((secs / 2))
        spread=$(lt_conns_per_process "${PORT[$m]}")
        wait "$wpid"
        rps=$(lt_wrk_rps "$f")
        p99=$(lt_wrk_p99_ms "$f")
        [[ -n $rps ]] || {
            cat "$f" >&2
            lt_die "wrk produced no result ($m)"
        }
        printf '%s\t%s\t%s\t%s\t%s\n' "$m" "$r" "$rps" "$p99" "${spread:-?}" >>"$LT_TMP/a.tsv"
        printf '  run %d %-9s %10s req/s  p99 %8s ms  connections per child %s\n' \
            "$r" "$m" "$rps" "$p99" "${spread:-?}" >&2
    done
done
for m in "${MODES[@]}"; do stop_server "${SUP[$m]}"; done

# --- (b) kill -9 under load --------------------------------------------------
lt_log "(b) kill under load: wrk -H 'Connection: close' -t$THREADS -c$CONNS -d${KILL_SECS}s, $KILLS kill -9 ${KILL_GAP}s apart"
: >"$LT_TMP/b.tsv"
kill_run() { # MODE RUN KILLS
    local m=$1 r=$2 nk=$3 f log wpid k victim
    log="$LT_TMP/b-$m-$r-k$nk.log"
    f="$LT_TMP/b-$m-$r-k$nk.txt"
    lt_start_tintype "$BIN" "$log" "$m" 2
    DURATION=${KILL_SECS}s lt_wrk "$f" "http://127.0.0.1:$TT_PORT/index.html" \
        -H 'Connection: close' &
    wpid=$!
    sleep 1
    for k in $(seq "$nk"); do
        victim=$(lt_live_children "$log" | awk 'NR == 1')
        [[ -n $victim ]] && kill -KILL "$victim"
        sleep "$KILL_GAP"
    done
    wait "$wpid"
    local req ec er ew et n2 started
    req=$(lt_wrk_requests "$f")
    read -r ec er ew et < <(lt_wrk_socket_errors "$f")
    n2=$(lt_wrk_non2xx "$f")
    started=$(grep -c '"msg":"child started"' "$log" || true)
    stop_server "$TT_PID"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$r" "$nk" "${req:-0}" \
        "$ec" "$er" "$ew" "$et" "$n2" "$((ec + er + ew + et + n2))" >>"$LT_TMP/b.tsv"
    printf '  %-9s run %d kills %d: %8s requests, errors connect %s read %s write %s timeout %s non-2xx %s (children started %s)\n' \
        "$m" "$r" "$nk" "${req:-0}" "$ec" "$er" "$ew" "$et" "$n2" "$started" >&2
}
for m in "${MODES[@]}"; do kill_run "$m" 0 0; done
for r in $(seq "$KILL_RUNS"); do
    order=("${MODES[@]}")
    ((r % 2 == 0)) && order=(reuseport inherit)
    for m in "${order[@]}"; do kill_run "$m" "$r" "$KILLS"; done
done

# --- report ------------------------------------------------------------------
col() { awk -F'\t' -v m="$1" -v c="$2" '$1 == m { printf "%s%s", (n++ ? ", " : ""), $c }' "$3"; }
med() { awk -F'\t' -v m="$1" -v c="$2" '$1 == m { print $c }' "$3" | lt_median; }
a_rows=""
for m in "${MODES[@]}"; do
    a_rows+="| $m | $(med "$m" 3 "$LT_TMP/a.tsv") | $(med "$m" 4 "$LT_TMP/a.tsv") | $(col "$m" 3 "$LT_TMP/a.tsv") | $(col "$m" 4 "$LT_TMP/a.tsv") | $(col "$m" 5 "$LT_TMP/a.tsv") |"$'\n'
done
b_rows=""
while IFS=$'\t' read -r m r nk req ec er ew et n2 tot; do
    label="run $r"
    [[ $nk == 0 ]] && label="control (no kill)"
    b_rows+="| $m | $label | $nk | $req | $ec | $er | $ew | $et | $n2 | **$tot** |"$'\n'
done < <(sort -t$'\t' -k1,1 -k3,3n -k2,2n "$LT_TMP/b.tsv")
b_sum=""
for m in "${MODES[@]}"; do
    b_sum+="| $m | $(awk -F'\t' -v m="$m" '$1 == m && $3 > 0 { t += $10; k += $3; n++ } END { printf "%d lost in %d kills (%.1f per kill), over %d runs", t, k, k ? t / k : 0, n }' "$LT_TMP/b.tsv") |"$'\n'
done

REPORT=$(
    cat <<EOF
### Listen modes: inherit vs reuseport (\`tintype api --processes 2\`)

$(date -u +%Y-%m-%dT%H:%MZ), $(uname -srm), $(nproc) CPUs shared with wrk,
tintype $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty'), all on 127.0.0.1.

**(a) Throughput**, GET /index.html keep-alive, \`wrk -t$THREADS -c$CONNS -d$DURATION --latency\`,
$RUNS runs per mode alternating, median of the runs. "Connections per child" is
how wrk's $CONNS connections were spread over the two children, sampled mid-run.

| mode | req/s (median) | p99 ms (median) | req/s, each run | p99 ms, each run | connections per child |
|---|---:|---:|---|---|---|
${a_rows}
**(b) Requests lost to \`kill -9\` of a child under load.** \`wrk -t$THREADS -c$CONNS -d${KILL_SECS}s -H 'Connection: close'\`
(a new connection per request); from 1 s in, $KILLS kills ${KILL_GAP} s apart, each of
the oldest live child (the supervisor replaces it). Lost = wrk's socket errors
(connect, read, write, timeout) + non-2xx. A fresh server for every run.

| mode | run | kills | requests done | connect | read | write | timeout | non-2xx | lost |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|
${b_rows}
| mode | total |
|---|---|
${b_sum}
Command: \`BUILD=$BUILD THREADS=$THREADS CONNS=$CONNS DURATION=$DURATION RUNS=$RUNS KILL_RUNS=$KILL_RUNS KILL_SECS=$KILL_SECS KILLS=$KILLS KILL_GAP=$KILL_GAP bash loadtest/listen_modes.sh\`
EOF
)
echo
echo "$REPORT"
mkdir -p loadtest/results
echo "$REPORT" >"$OUT_MD"
echo
echo "written: $OUT_MD"

#!/usr/bin/env bash
# loadtest/bench_api.sh: the REST API under load (issue 4, point 10), part of
# `make bench` (called from the hook at the end of loadtest/bench.sh).
#
# In one run, on 127.0.0.1 only: nginx with worker_processes 2 serving the
# static web/index.html (the same configuration as bench.sh: the reference),
# and `tintype api --processes 2` (API only, no workers) with its data in a
# temp dir. A user is signed up, one job created, then ROUNDS rounds of, in
# this order: nginx GET /index.html, tintype GET /api/jobs/{id}
# (loadtest/get_job.lua) and tintype POST /api/jobs (loadtest/post_jobs.lua,
# every body distinct, no Idempotency-Key). Reports the medians of req/s and
# p99, the errors, the GET ratio to nginx, and checks that the jobs really
# exist: the 202s wrk counted against tintype_jobs_created_total from
# GET /metrics, the 202 lines in tintype's access log, the queue depth, and
# GET /api/jobs?limit=1. Writes loadtest/results/bench-api.md.
#
# Targets (issue 4 "Done when"): GET /api/jobs/{id} >= 0.5x nginx's req/s;
# POST /api/jobs >= 3,000 jobs/s with no errors. A missed target is
# reported, not an exit status; a run that cannot measure exits non-zero.
#
# Environment: BUILD (build dir, default build), THREADS (2), CONNS (32),
# DURATION (10s), ROUNDS (3), NGINX (/usr/sbin/nginx), NGINX_PLAIN=1 (as in
# bench.sh), KEEP_TMP=1 to keep the temp dir (server logs, every wrk
# report, this script's log bench-api.log).
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh

BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
NGINX=${NGINX:-/usr/sbin/nginx}
BIN=$BUILD/tintype
OUT_MD=loadtest/results/bench-api.md
GET_TARGET=0.5
POST_TARGET=3000

[[ -x $BIN ]] || lt_die "$BIN not found; build first (make build, or BUILD=dir)"
[[ -x $NGINX ]] || lt_die "nginx not found at $NGINX"
command -v wrk >/dev/null || lt_die "wrk not installed"
command -v python3 >/dev/null || lt_die "python3 not installed"

LT_TMP=$(mktemp -d /tmp/tintype-bench-api.XXXXXX)
trap lt_cleanup EXIT
trap 'exit 130' INT TERM
LOG=$LT_TMP/bench-api.log
# Progress to the terminal and to the log file.
say() {
    echo "$*" | tee -a "$LOG" >&2
}

# --- nginx: the reference, configured as in bench.sh -------------------------
lt_start_nginx

# --- tintype api --processes 2, data in the temp dir -------------------------
TT_LOG=$LT_TMP/tintype.log
lt_start_tintype "$BIN" "$TT_LOG" inherit 2
TT_CHILDREN=$(lt_live_children "$TT_LOG" | tr '\n' ' ')
TT_BASE=http://127.0.0.1:$TT_PORT

# json_field FILE KEY: a top-level string/number field of a JSON body.
json_field() {
    python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# Sign up, then create the one job the GET runs read.
code=$(curl -sS -o "$LT_TMP/signup.json" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' \
    -d '{"name":"bench","email":"bench@example.com"}' "$TT_BASE/api/users")
[[ $code == 201 ]] || {
    cat "$LT_TMP/signup.json" >&2
    lt_die "POST /api/users answered $code, not 201"
}
TT_KEY=$(json_field "$LT_TMP/signup.json" api_key)
export TT_KEY
AUTH="Authorization: Bearer $TT_KEY"
code=$(curl -sS -o "$LT_TMP/job.json" -w '%{http_code}' -X POST -H "$AUTH" \
    -H 'Content-Type: application/json' -d '{"url":"http://127.0.0.1:9/"}' "$TT_BASE/api/jobs")
[[ $code == 202 ]] || {
    cat "$LT_TMP/job.json" >&2
    lt_die "POST /api/jobs answered $code, not 202"
}
JOB_ID=$(json_field "$LT_TMP/job.json" id)
code=$(curl -sS -o "$LT_TMP/job-get.json" -w '%{http_code}' -H "$AUTH" "$TT_BASE/api/jobs/$JOB_ID")
[[ $code == 200 ]] || lt_die "GET /api/jobs/$JOB_ID answered $code, not 200"
GET_BYTES=$(wc -c <"$LT_TMP/job-get.json")
curl -fsS -o "$LT_TMP/nginx.body" "http://127.0.0.1:$NGINX_PORT/index.html" || lt_die "nginx GET failed"
POST_BODY_EXAMPLE='{"url":"http://127.0.0.1:9/?t=0&n=1"}'

NGINX_URL=http://127.0.0.1:$NGINX_PORT/index.html
GET_URL=$TT_BASE/api/jobs/$JOB_ID
POST_URL=$TT_BASE/api/jobs

# jobs_created: tintype_jobs_created_total from /metrics (loopback, no key).
jobs_created() {
    curl -fsS "$TT_BASE/metrics" | awk '$1 == "tintype_jobs_created_total" { print $2; f = 1 }
        END { if (!f) print "?" }'
}
queue_visible() {
    curl -fsS "$TT_BASE/metrics" |
        awk '/^tintype_queue_messages\{queue="jobs",state="visible"\}/ { print $2; f = 1 }
        END { if (!f) print "?" }'
}
log_size() { stat -c %s "$TT_LOG"; }
# Status counts of POST /api/jobs lines in tintype's log between two byte
# offsets, as "202:n 500:m ...".
log_post_statuses() {
    dd if="$TT_LOG" bs=1M iflag=skip_bytes,count_bytes skip="$1" count=$(($2 - $1)) status=none |
        awk '/"msg":"request"/ && /"method":"POST","path":"\/api\/jobs"/ {
                if (match($0, /"status":[0-9]+/)) c[substr($0, RSTART + 9, RLENGTH - 9)]++
            }
            END { for (s in c) printf "%s%s:%d", (n++ ? " " : ""), s, c[s]; print (n ? "" : "none") }'
}

say "== bench_api: tintype :$TT_PORT (children $TT_CHILDREN), nginx :$NGINX_PORT, temp $LT_TMP"
say "== wrk -t$THREADS -c$CONNS -d$DURATION --latency, $ROUNDS rounds: nginx GET, tintype GET job, tintype POST jobs"

# Warm-up, not counted; also proves the scripts work before the real runs.
DURATION_SAVE=$DURATION
DURATION=2s
lt_wrk "$LT_TMP/warm-nginx.txt" "$NGINX_URL"
lt_wrk "$LT_TMP/warm-get.txt" "$GET_URL" -s loadtest/get_job.lua
lt_wrk "$LT_TMP/warm-post.txt" "$POST_URL" -s loadtest/post_jobs.lua
DURATION=$DURATION_SAVE
for w in get post; do
    [[ -n $(lt_wrk_rps "$LT_TMP/warm-$w.txt") ]] || {
        cat "$LT_TMP/warm-$w.txt" >&2
        lt_die "wrk warm-up against $w produced no result"
    }
done
sleep 1

: >"$LT_TMP/runs.tsv"
: >"$LT_TMP/post-check.tsv"
for r in $(seq "$ROUNDS"); do
    for kind in nginx get post; do
        f="$LT_TMP/wrk-$kind-$r.txt"
        port=$TT_PORT
        [[ $kind == nginx ]] && port=$NGINX_PORT
        if [[ $kind == post ]]; then
            m0=$(jobs_created)
            o0=$(log_size)
        fi
        case $kind in
        nginx) lt_wrk "$f" "$NGINX_URL" & ;;
        get) lt_wrk "$f" "$GET_URL" -s loadtest/get_job.lua & ;;
        post) lt_wrk "$f" "$POST_URL" -s loadtest/post_jobs.lua & ;;
        esac
        wpid=$!
        # How wrk's connections are spread over the two processes, mid-run.
        sleep $(($(lt_seconds "$DURATION") / 2))
        spread=$(lt_conns_per_process "$port")
        wait "$wpid"
        if [[ $kind == post ]]; then
            sleep 0.5 # let the last responses and log lines land
            m1=$(jobs_created)
            o1=$(log_size)
        fi
        rps=$(lt_wrk_rps "$f")
        [[ -n $rps ]] || {
            cat "$f" >&2
            lt_die "wrk produced no result against $kind"
        }
        p99=$(lt_wrk_p99_ms "$f")
        reqs=$(lt_wrk_requests "$f")
        n2=$(lt_wrk_non2xx "$f")
        read -r ec er ew et < <(lt_wrk_socket_errors "$f")
        serr=$((ec + er + ew + et))
        # Responses per second that were 2xx/3xx (for POST: jobs/s).
        ok_rps=$(awk -v r="$rps" -v n="$reqs" -v e="$n2" 'BEGIN { printf "%.2f\n", n ? r * (n - e) / n : 0 }')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$r" "$rps" "$p99" "$n2" "$serr" "$ok_rps" "$reqs" \
            "${spread:-?}" >>"$LT_TMP/runs.tsv"
        extra=""
        if [[ $kind == post ]]; then
            ok=$((reqs - n2))
            delta=$(awk -v a="$m0" -v b="$m1" 'BEGIN { if (a == "?" || b == "?") print "?"; else print b - a }')
            statuses=$(log_post_statuses "$o0" "$o1")
            built=$(awk '/^lua: request bodies built/ { print $5 }' "$f")
            printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$ok" "$delta" "$statuses" "${built:-?}" >>"$LT_TMP/post-check.tsv"
            extra="  2xx counted by wrk $ok, jobs_created_total +$delta, log: $statuses"
        fi
        say "$(printf '  round %d %-6s %10s req/s  p99 %8s ms  non-2xx %s  socket errors %s  conns/process %s%s' \
            "$r" "$kind" "$rps" "$p99" "$n2" "$serr" "${spread:-?}" "$extra")"
    done
done

# --- after the load: do the jobs exist? ----------------------------------------
FINAL_CREATED=$(jobs_created)
FINAL_VISIBLE=$(queue_visible)
code=$(curl -sS -o "$LT_TMP/list.json" -w '%{http_code}' -H "$AUTH" "$TT_BASE/api/jobs?limit=1")
LIST_CHECK=$(python3 - "$LT_TMP/list.json" "$code" <<'EOF'
import json, sys
code = sys.argv[2]
try:
    d = json.load(open(sys.argv[1]))
    items = d.get("items", [])
    print("HTTP %s, %d item, next_cursor %s, newest %s (%s)" % (
        code, len(items), "set" if d.get("next_cursor") else "null",
        items[0]["id"] if items else "-",
        items[0]["request"]["url"] if items else "-"))
except Exception as e:
    print("HTTP %s, unreadable body (%s)" % (code, e))
EOF
)
WRK_OK_TOTAL=$(awk -F'\t' '$1 == "post" { s += $8 - $5 } END { print s + 0 }' "$LT_TMP/runs.tsv")
WARM_OK=$(($(lt_wrk_requests "$LT_TMP/warm-post.txt") - $(lt_wrk_non2xx "$LT_TMP/warm-post.txt")))
say "== after: tintype_jobs_created_total $FINAL_CREATED (wrk counted $WRK_OK_TOTAL 2xx in the measured rounds + $WARM_OK in warm-up + 1 set-up job), queue visible $FINAL_VISIBLE"
say "== GET /api/jobs?limit=1: $LIST_CHECK"

# --- report ----------------------------------------------------------------------
med() { awk -F'\t' -v k="$1" -v c="$2" '$1 == k { print $c }' "$LT_TMP/runs.tsv" | lt_median; }
all_runs() { awk -F'\t' -v k="$1" -v c="$2" '$1 == k { printf "%s%s", (n++ ? ", " : ""), $c }' "$LT_TMP/runs.tsv"; }
sum_col() { awk -F'\t' -v k="$1" -v c="$2" '$1 == k { s += $c } END { print s + 0 }' "$LT_TMP/runs.tsv"; }

NG_RPS=$(med nginx 3)
NG_P99=$(med nginx 4)
GET_RPS=$(med get 3)
GET_P99=$(med get 4)
POST_RPS=$(med post 3)
POST_JOBS=$(med post 7)
POST_P99=$(med post 4)
GET_RATIO=$(lt_ratio "$GET_RPS" "$NG_RPS")
POST_RATIO=$(lt_ratio "$POST_RPS" "$NG_RPS")
GET_ERR=$(($(sum_col get 5) + $(sum_col get 6)))
POST_ERR=$(($(sum_col post 5) + $(sum_col post 6)))
NG_ERR=$(($(sum_col nginx 5) + $(sum_col nginx 6)))

GET_MET=$(awk -v r="$GET_RATIO" -v t="$GET_TARGET" -v e="$GET_ERR" 'BEGIN { print (r != "?" && r + 0 >= t && e == 0) ? "met" : "MISSED" }')
POST_MET=$(awk -v j="$POST_JOBS" -v t="$POST_TARGET" -v e="$POST_ERR" 'BEGIN { print (j != "?" && j + 0 >= t && e == 0) ? "met" : "MISSED" }')

check_rows=$(awk -F'\t' '{ printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }' "$LT_TMP/post-check.tsv")
load_now=$(cut -d' ' -f1-3 /proc/loadavg)

REPORT=$(
    cat <<EOF
### REST API: GET /api/jobs/{id} and POST /api/jobs, against nginx's static GET /index.html

\`wrk -t$THREADS -c$CONNS -d$DURATION --latency\`, $ROUNDS rounds, each round in the
order nginx GET /index.html, tintype GET /api/jobs/{id} (\`loadtest/get_job.lua\`),
tintype POST /api/jobs (\`loadtest/post_jobs.lua\`); median of the rounds. All on
127.0.0.1, $(nproc) CPUs shared with wrk. nginx: worker_processes 2, configured as in
bench.sh ($NGINX_DESC), $(wc -c <"$LT_TMP/nginx.body")-byte body. tintype: \`api --processes 2
--listen-mode inherit\`, no workers, embedded backends in a fresh temp \`--data\`, one
JSON access-log line per request to a file. GET reads one job with
\`Authorization: Bearer\` ($GET_BYTES-byte body); POST sends \`$POST_BODY_EXAMPLE\`
with a distinct url per request, no Idempotency-Key. POST rounds grow the job table
(later rounds run against more rows).
$(date -u +%Y-%m-%dT%H:%MZ), $(uname -srm), nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'),
tintype $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty'), load average at the end $load_now.

| run | req/s (median) | p99 ms (median) | req/s, each round | p99 ms, each round | non-2xx | socket errors | connections per process, each round | × nginx req/s | target |
|---|---:|---:|---|---|---:|---:|---|---:|---|
| nginx GET /index.html | $NG_RPS | $NG_P99 | $(all_runs nginx 3) | $(all_runs nginx 4) | $(sum_col nginx 5) | $(sum_col nginx 6) | $(all_runs nginx 9) | 1.00× | reference |
| tintype GET /api/jobs/{id} | $GET_RPS | $GET_P99 | $(all_runs get 3) | $(all_runs get 4) | $(sum_col get 5) | $(sum_col get 6) | $(all_runs get 9) | **${GET_RATIO}×** | ≥ ${GET_TARGET}×, no errors: **$GET_MET** |
| tintype POST /api/jobs | $POST_RPS | $POST_P99 | $(all_runs post 3) | $(all_runs post 4) | $(sum_col post 5) | $(sum_col post 6) | $(all_runs post 9) | ${POST_RATIO}× | ≥ $POST_TARGET jobs/s (median $POST_JOBS), no errors: **$POST_MET** |

Were the jobs created? Per POST round: the 2xx responses wrk counted, the rise of
\`tintype_jobs_created_total\` (GET /metrics, loopback) over the round, the statuses of
the POST lines in tintype's access log, and the bodies the script built (wrk does not
count requests still in flight when it stops, so the server may create up to
$CONNS more than wrk counted).

| round | 2xx counted by wrk | tintype_jobs_created_total rise | access log statuses | bodies built |
|---|---:|---:|---|---:|
$check_rows

After all rounds: \`tintype_jobs_created_total\` = $FINAL_CREATED (wrk counted
$WRK_OK_TOTAL in the rounds, $WARM_OK in the warm-up, plus 1 set-up job); jobs queue
visible messages = $FINAL_VISIBLE; \`GET /api/jobs?limit=1\`: $LIST_CHECK.

Command: \`${NGINX_PLAIN:+NGINX_PLAIN=1 }BUILD=$BUILD THREADS=$THREADS CONNS=$CONNS DURATION=$DURATION ROUNDS=$ROUNDS bash loadtest/bench_api.sh\`
EOF
)

echo
echo "$REPORT"
echo "$REPORT" >>"$LOG"
mkdir -p loadtest/results
echo "$REPORT" >"$OUT_MD"
echo
echo "written: $OUT_MD${KEEP_TMP:+ (temp dir kept: $LT_TMP)}"

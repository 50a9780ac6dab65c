# loadtest/lib.sh: helpers shared by the loadtest scripts (sourced, not run).
#
# Starting a tintype API on a free loopback port and finding its children,
# reading a process's RSS, running wrk bounded in time and pulling the
# numbers out of its --latency report. Everything here targets 127.0.0.1
# only. The caller owns cleanup: every pid started here is appended to
# LT_PIDS, and lt_cleanup (install it with `trap lt_cleanup EXIT`) stops them.

LT_PIDS=()
LT_TMP=""

lt_die() {
    echo "error: $*" >&2
    exit 1
}

lt_log() { echo "== $*" >&2; }

# Seconds from a wrk-style duration: 10, 10s, 2m.
lt_seconds() {
    local d=$1
    case $d in
    *m) echo $((${d%m} * 60)) ;;
    *s) echo "${d%s}" ;;
    *) echo "$d" ;;
    esac
}

lt_cleanup() {
    local pid
    for pid in "${LT_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${LT_PIDS[@]}"; do
        # Give each a moment to drain, then force.
        for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    LT_PIDS=()
    if [[ -n $LT_TMP && -d $LT_TMP && -z ${KEEP_TMP:-} ]]; then
        rm -rf "$LT_TMP"
    fi
}

# A free TCP port on 127.0.0.1 (bind to port 0, read it back, release it).
lt_free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

# Wait until 127.0.0.1:$1 accepts connections (up to ~5 s).
lt_wait_port() {
    local port=$1 i
    for i in $(seq 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# lt_start_tintype BIN LOGFILE MODE PROCESSES: starts `tintype api` on a free
# port, stdout (one JSON line per request) to LOGFILE. Sets TT_PID (the
# supervisor) and TT_PORT.
lt_start_tintype() {
    local bin=$1 log=$2 mode=$3 procs=$4 datadir
    datadir=$(mktemp -d "$LT_TMP/data.XXXXXX")
    "$bin" api --host 127.0.0.1 --port 0 --processes "$procs" \
        --listen-mode "$mode" --data "$datadir" >"$log" 2>"$log.err" &
    TT_PID=$!
    LT_PIDS+=("$TT_PID")
    local i
    TT_PORT=""
    for i in $(seq 100); do
        # (no line yet is not an error: || true under pipefail)
        TT_PORT=$( { grep -m1 '"msg":"listening"' "$log" 2>/dev/null || true; } |
            grep -o '"port":[0-9]*' | cut -d: -f2 || true)
        [[ -n $TT_PORT ]] && break
        kill -0 "$TT_PID" 2>/dev/null || break
        sleep 0.05
    done
    [[ -n $TT_PORT ]] || {
        cat "$log.err" >&2
        lt_die "tintype did not report a port (see $log)"
    }
    lt_wait_port "$TT_PORT" || lt_die "tintype not accepting on $TT_PORT"
    # Children start right after the listener; wait until all are logged.
    for i in $(seq 50); do
        [[ $(lt_live_children "$log" | wc -w) -ge $procs ]] && return 0
        sleep 0.1
    done
    lt_die "tintype did not start $procs children"
}

# Pids of the children named in a tintype log that are still alive.
lt_live_children() {
    local log=$1 pid
    for pid in $(grep -o '"msg":"child started","child_pid":[0-9]*' "$log" |
        grep -o '[0-9]*$'); do
        if kill -0 "$pid" 2>/dev/null; then
            echo "$pid"
        fi
    done
}

# Established connections to 127.0.0.1:PORT held by each server process,
# as "n/n" (one count per pid, in pid order, padded with 0 up to NPROC
# processes, default 2; needs ss -p, i.e. root or the same user).
lt_conns_per_process() {
    ss -tnpH state established "( sport = :$1 )" 2>/dev/null |
        grep -o 'pid=[0-9]*' | sort | uniq -c |
        awk -v want="${2:-2}" '{ printf "%s%d", (n++ ? "/" : ""), $1 }
            END { for (; n < want; n++) printf "%s0", (n ? "/" : "") }'
}

# VmRSS of a pid, in kB.
lt_rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo "?"
}

# Latency string from wrk (e.g. 812.00us, 1.23ms, 2.00s) to milliseconds.
lt_to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000
        else if (v ~ /ms$/) n = n
        else if (v ~ /m$/) n = n * 60000
        else if (v ~ /s$/) n = n * 1000
        printf "%.3f\n", n
    }'
}

# lt_wrk OUTFILE URL [extra wrk args...]: runs wrk with THREADS/CONNS/DURATION
# and --latency, bounded by `timeout`, output to OUTFILE.
lt_wrk() {
    local out=$1 url=$2
    shift 2
    case $url in
    http://127.0.0.1:*) ;;
    *) lt_die "refusing to load anything but 127.0.0.1: $url" ;;
    esac
    local secs
    secs=$(lt_seconds "$DURATION")
    timeout --kill-after=5 $((secs + 30)) \
        wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@" "$url" >"$out" 2>&1 || true
}

# Fields from a wrk report.
lt_wrk_rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
lt_wrk_p99_ms() {
    local v
    v=$(awk '$1 == "99%" { print $2 }' "$1")
    [[ -n $v ]] && lt_to_ms "$v" || echo "?"
}
lt_wrk_requests() { awk '/requests in/ { print $1 }' "$1"; }
# connect read write timeout (0 when wrk printed no Socket errors line).
lt_wrk_socket_errors() {
    awk '/Socket errors:/ { gsub(",", ""); print $4, $6, $8, $10; f = 1 }
         END { if (!f) print 0, 0, 0, 0 }' "$1"
}
lt_wrk_non2xx() {
    awk '/Non-2xx or 3xx responses:/ { print $5; f = 1 } END { if (!f) print 0 }' "$1"
}

# Median of numbers on stdin (mean of the middle two for an even count).
lt_median() {
    sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "?"; exit }
        if (NR % 2) print a[(NR + 1) / 2]
        else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2
    }'
}

# Ratio a/b to two decimals.
lt_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "?"; else printf "%.2f\n", a / b }'; }

# lt_start_nginx: the reference server of the benchmarks. nginx with 2
# workers under $LT_TMP/nginx, serving web/index.html on a free port
# ($NGINX_PORT), logging one JSON line per request like tintype; sets
# NGINX_DESC. Uses $NGINX (the binary) and NGINX_PLAIN (see below).
lt_start_nginx() {
    mkdir -p "$LT_TMP/nginx/root" "$LT_TMP/nginx/logs" "$LT_TMP/nginx/tmp"
    cp web/index.html "$LT_TMP/nginx/root/index.html"
    NGINX_PORT=$(lt_free_port)
    user_line=""
    # tintype serves web/ from memory and writes its log lines in one write(2)
    # per event-loop turn. By default nginx gets the same advantages:
    # open_file_cache (no open/fstat/close per request) and a buffered access
    # log. NGINX_PLAIN=1 runs nginx's defaults instead (a write(2) per log line,
    # open/fstat/close per request).
    if [[ -n ${NGINX_PLAIN:-} ]]; then
        nginx_tuning=""
        nginx_log_buffer=""
        NGINX_DESC="sendfile on, etag on, no open_file_cache, unbuffered access log (NGINX_PLAIN=1)"
    else
        nginx_tuning="    open_file_cache max=64 inactive=60s;
        open_file_cache_valid 60s;"
        nginx_log_buffer=" buffer=64k flush=1s"
        NGINX_DESC="sendfile on, etag on, open_file_cache, access log buffer=64k flush=1s"
    fi
    [[ $(id -u) -eq 0 ]] && user_line="user root;"
    cat >"$LT_TMP/nginx/nginx.conf" <<EOF
    # Generated by loadtest/lib.sh (lt_start_nginx) for one run.
    $user_line
    worker_processes 2;
    daemon off;
    master_process on;
    pid $LT_TMP/nginx/nginx.pid;
    error_log $LT_TMP/nginx/logs/error.log warn;
    events {
        worker_connections 4096;
    }
    http {
        default_type application/octet-stream;
        types { text/html html; }
        charset utf-8;
        sendfile on;
        etag on;
    $nginx_tuning
        server_tokens off;
        keepalive_requests 100000000;
        keepalive_timeout 60s;
        client_body_temp_path $LT_TMP/nginx/tmp/body;
        proxy_temp_path $LT_TMP/nginx/tmp/proxy;
        fastcgi_temp_path $LT_TMP/nginx/tmp/fastcgi;
        uwsgi_temp_path $LT_TMP/nginx/tmp/uwsgi;
        scgi_temp_path $LT_TMP/nginx/tmp/scgi;
        # One JSON line per request, like tintype (which buffers its lines and
        # writes them once per event-loop turn; see NGINX_PLAIN above).
        log_format json escape=json '{"time":"\$time_iso8601","level":"info",'
            '"pid":\$pid,"msg":"request","request_id":"\$request_id",'
            '"method":"\$request_method","path":"\$uri","status":\$status,'
            '"bytes":\$body_bytes_sent,"us":"\$request_time"}';
        access_log $LT_TMP/nginx/logs/access.log json$nginx_log_buffer;
        server {
            listen 127.0.0.1:$NGINX_PORT;
            root $LT_TMP/nginx/root;
            # The same extra headers tintype sends.
            add_header Cache-Control no-cache;
            add_header X-Content-Type-Options nosniff;
            add_header X-Request-Id \$request_id;
            add_header Vary Accept-Encoding;
        }
    }
EOF
    env -u NGINX "$NGINX" -p "$LT_TMP/nginx" -c "$LT_TMP/nginx/nginx.conf" -e "$LT_TMP/nginx/logs/error.log" &
    LT_PIDS+=("$!")
    lt_wait_port "$NGINX_PORT" || lt_die "nginx did not start (see $LT_TMP/nginx/logs/error.log)"
}

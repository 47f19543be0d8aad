#!/usr/bin/env bash
# Benchmarks GET /health of conlab against two servers answering the same
# bytes: bench/minimal, the bare libmicrohttpd baseline configured like
# conlab's daemon, and Debian's nginx.
#
# usage: bench/run.sh BUILD_DIR     (`make bench` runs it from bench/all.sh)
#
# All three run on 127.0.0.1 with two request threads or workers:
#  - conlab `--port 0 --threads 2`, its normal per-request access log to
#    bench/out/health/conlab.log, as a deployment would;
#  - minimal `0 2 BODY_FILE`, no log, answering the body of a real conlab
#    /health answer taken at start (BODY_FILE), with the same Content-Type
#    and Cache-Control;
#  - nginx with a temporary configuration (bench/out/health/nginx/):
#    `worker_processes 2`, the same body and headers from `return 200`,
#    its combined access log to a file, buffered and flushed every 100 ms
#    as conlab's is, keepalive_requests raised so that, like the two
#    others, it does not close a keep-alive connection after 1,000
#    requests. Started in the foreground (`daemon off`) as a child of this
#    script, on a port found free just before.
# For each of ROUNDS rounds, for each of CONNECTIONS (64 256 1000), each
# server in turn (the order rotates every round) gets a WARMUP run and then
# `wrk -t2 -cN -dDURATION --latency -s bench/cpu.lua`; the server's VmRSS
# (with its workers) is read half-way through. Reported per server and
# connection count (bench/health.py): the median requests/s, p50 and p99 of
# the rounds, errors (socket errors plus non-2xx answers) summed, the
# median server CPU time per request (user + system of the server and its
# workers, from /proc) and the median VmRSS; the ratios of conlab's
# requests/s to each peer's; a plot (bench/plots/health.svg). wrk runs on
# the same cores as the servers. Markdown to bench/out/health.md, raw
# outputs in bench/out/health/. Every server is stopped by its PID with
# SIGTERM (then SIGKILL) and reaped, on failure and Ctrl-C too, and must
# exit 0. Linux only (/proc).
#
# Exit status: 0, or 1 if a server fails to start or stop cleanly, wrk
# fails, or wrk reports errors.
#
# Why 9 rounds: in the minimal server libmicrohttpd's request threads
# share one listening socket, and the thread that wakes first accepts a
# series of new connections, so how a round's connections split between
# the two threads is a lottery (measured: 229,130 requests/s with its 64
# connections split evenly, 159,455 with all 64 on one thread). conlab
# accepts on a thread of its own and deals connections out evenly
# (server/http.c, accept_main()). The medians of 9 rounds move less with
# the lottery than those of 5.
#
# Tunables (environment): ROUNDS (9),
# DURATION (4s), WARMUP (1s), CONNECTIONS ("64 256 1000"), WRK_THREADS (2),
# SERVER_THREADS (2: conlab's and minimal's request threads, nginx's
# workers), BENCH_CONLAB_ARGS (extra conlab options, e.g. "--log-level
# warn" to measure without the access log).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

ROUNDS=${ROUNDS:-9}
DURATION=${DURATION:-4s}
WARMUP=${WARMUP:-1s}
CONNECTIONS=${CONNECTIONS:-64 256 1000}
WRK_THREADS=${WRK_THREADS:-2}
SERVER_THREADS=${SERVER_THREADS:-2}
BENCH_CONLAB_ARGS=${BENCH_CONLAB_ARGS:-}
SERVERS="conlab minimal nginx"
START_TIMEOUT_S=10
STOP_TIMEOUT_S=15

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
out="$root/bench/out"
raw="$out/health"
conlab_bin="$build/conlab"
minimal_bin="$build/bench/minimal"
script="$root/bench/cpu.lua"
cd "$root" # conlab's default --web-root is ./web

for bin in "$conlab_bin" "$minimal_bin"; do
    require_executable "$bin" "make all $1/bench/minimal"
done
require_tools wrk curl python3 nginx

fresh_output "$raw" "$out/health.md"
mkdir -p "$raw/nginx"

conlab_pid=""
minimal_pid=""
nginx_pid=""
wrk_pid=""

# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$wrk_pid" ]; then
        kill -TERM "$wrk_pid" 2>/dev/null || true
        wait "$wrk_pid" 2>/dev/null || true
    fi
    if [ -n "$conlab_pid" ]; then
        stop_server "$conlab_pid" conlab
    fi
    if [ -n "$minimal_pid" ]; then
        stop_server "$minimal_pid" minimal
    fi
    if [ -n "$nginx_pid" ]; then
        stop_server "$nginx_pid" nginx
    fi
}
trap_cleanup

# shellcheck disable=SC2086 # BENCH_CONLAB_ARGS is a list of options
"$conlab_bin" --port 0 --threads "$SERVER_THREADS" $BENCH_CONLAB_ARGS \
    >"$raw/conlab.log" 2>&1 &
conlab_pid=$!
conlab_port=$(wait_listening "$conlab_pid" "$raw/conlab.log" conlab)

# The peers answer the bytes of a real /health answer.
body="$raw/body.json"
curl -fsS --max-time 5 -o "$body" "http://127.0.0.1:$conlab_port/health"
if grep -q "[\$\\\\']" "$body"; then
    echo "bench: the /health body holds \$, \\ or ' (nginx's return" \
        "string cannot carry it)" >&2
    exit 1
fi

"$minimal_bin" 0 "$SERVER_THREADS" "$body" >"$raw/minimal.log" 2>&1 &
minimal_pid=$!
minimal_port=$(wait_listening "$minimal_pid" "$raw/minimal.log" minimal)

# start_nginx: nginx on a port found free just before (another program
# may take it in between: then nginx exits, and the next try takes
# another). Sets nginx_pid and nginx_port.
start_nginx() {
    local dir="$raw/nginx" try user=""
    # As root, nginx's workers would otherwise switch to nobody.
    if [ "$(id -u)" -eq 0 ]; then
        user="user root;"
    fi
    for try in 1 2 3; do
        nginx_port=$(free_port)
        cat >"$dir/nginx.conf" <<EOF
# bench/run.sh: nginx answering GET /health with conlab's /health body.
$user
worker_processes $SERVER_THREADS;
worker_rlimit_nofile 20000;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections 10000;
}
http {
    access_log $dir/access.log combined buffer=64k flush=100ms;
    keepalive_requests 1000000000;
    keepalive_timeout 15s;
    client_body_temp_path $dir/tmp-body;
    proxy_temp_path $dir/tmp-proxy;
    fastcgi_temp_path $dir/tmp-fastcgi;
    uwsgi_temp_path $dir/tmp-uwsgi;
    scgi_temp_path $dir/tmp-scgi;
    server {
        listen 127.0.0.1:$nginx_port;
        location = /health {
            default_type "application/json; charset=utf-8";
            add_header Cache-Control no-store;
            return 200 '$(cat "$body")';
        }
        location / {
            return 404;
        }
    }
}
EOF
        nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
            -g 'daemon off;' >"$raw/nginx.log" 2>&1 &
        nginx_pid=$!
        if wait_listening_on "$nginx_pid" "$nginx_port" "$raw/nginx.log" \
            nginx; then
            return 0
        fi
        wait "$nginx_pid" 2>/dev/null || true
        nginx_pid=""
        echo "bench: nginx did not start on port $nginx_port (try $try)" >&2
    done
    return 1
}

# wait_listening_on PID PORT LOG NAME: as wait_listening, for a server
# whose port is known.
wait_listening_on() {
    local pid=$1 port=$2 log=$3 name=$4 tries=0
    while [ "$tries" -lt $((START_TIMEOUT_S * 10)) ]; do
        if ! alive "$pid"; then
            tail -n 5 "$log" "$raw/nginx/error.log" 2>/dev/null |
                sed 's/^/    /' >&2
            return 1
        fi
        if curl -fsS -o /dev/null --max-time 2 \
            "http://127.0.0.1:$port/health" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
        tries=$((tries + 1))
    done
    echo "bench: $name did not answer within ${START_TIMEOUT_S}s" >&2
    return 1
}

start_nginx

machine_facts
echo "bench: conlab on 127.0.0.1:$conlab_port (pid $conlab_pid)," \
    "minimal on 127.0.0.1:$minimal_port (pid $minimal_pid)," \
    "nginx on 127.0.0.1:$nginx_port (pid $nginx_pid)"
echo "bench: $cores cores ($model), load $load_before;" \
    "wrk -t$WRK_THREADS -c{${CONNECTIONS// /,}} -d$DURATION, $ROUNDS rounds"

# The answers, as a client sees them: header bytes, body bytes, type.
for name in $SERVERS; do
    eval "port=\$${name}_port"
    curl -fsS -o "$raw/answer-$name.json" -D "$raw/answer-$name.head" \
        -w "$name %{size_header} %{size_download} %{content_type}\n" \
        "http://127.0.0.1:$port/health" >>"$raw/answers.txt"
done
if ! cmp -s "$raw/answer-minimal.json" "$raw/answer-nginx.json" ||
    ! cmp -s "$raw/answer-minimal.json" "$body"; then
    echo "bench: minimal and nginx do not answer the same body" >&2
    exit 1
fi

half_s=$(( ($(seconds "$DURATION") + 1) / 2 ))
# shellcheck disable=SC2086 # SERVERS is a list of names
set -- $SERVERS
nservers=$#
for round in $(seq 1 "$ROUNDS"); do
    for conns in $CONNECTIONS; do
        # Each round starts one server further on.
        order=""
        for i in $(seq 0 $((nservers - 1))); do
            idx=$(( (i + round - 1) % nservers + 1 ))
            order="$order ${!idx}"
        done
        for name in $order; do
            eval "port=\$${name}_port pid=\$${name}_pid"
            url="http://127.0.0.1:$port/health"
            tag="$name-c$conns-$round"
            wrk -t"$WRK_THREADS" -c"$conns" -d"$WARMUP" "$url" \
                >"$raw/warmup-$tag.txt"
            ticks_before=$(tree_ticks "$pid")
            wrk -t"$WRK_THREADS" -c"$conns" -d"$DURATION" --latency \
                -s "$script" "$url" >"$raw/wrk-$tag.txt" &
            wrk_pid=$!
            sleep "$half_s"
            tree_rss_kib "$pid" >"$raw/rss-$tag.txt"
            wrk_rc=0
            wait "$wrk_pid" || wrk_rc=$?
            wrk_pid=""
            if [ "$wrk_rc" -ne 0 ]; then
                echo "bench: wrk exited $wrk_rc ($tag)" >&2
                exit 1
            fi
            echo $(($(tree_ticks "$pid") - ticks_before)) \
                >"$raw/cpu-$tag.txt"
            rps=$(sed -n 's/^Requests\/sec:[[:space:]]*//p' \
                "$raw/wrk-$tag.txt")
            echo "bench: round $round -c$conns $name: ${rps:-?} requests/s"
        done
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Stop every server before reporting, so their exit is part of the verdict.
status=0
for name in $SERVERS; do
    eval "pid=\$${name}_pid"
    stop_server "$pid" "$name"
    eval "${name}_pid=''"
    if [ "$stopped_rc" -ne 0 ]; then
        echo "bench: $name exited $stopped_rc after SIGTERM (expected 0)" >&2
        status=1
    fi
done

# The access logs run to hundreds of MB: count them, keep head and tail.
for log in "$raw/conlab.log" "$raw/nginx/access.log"; do
    lines=$(wc -l <"$log")
    echo "$lines $(stat -c %s "$log")" >"$log.size"
    { head -n 20 "$log"; echo "[... $lines lines in all ...]"
      tail -n 20 "$log"; } >"$log.part"
    mv "$log.part" "$log"
done
nginx_version=$(nginx -v 2>&1 | sed 's/^nginx version: //')
# wrk -v prints its version and exits 1.
wrk_version=$({ wrk -v 2>&1 || true; } | awk 'NR == 1 { print $2 }')

export BENCH_DATE=$started BENCH_CORES=$cores BENCH_MODEL=$model \
    BENCH_KERNEL=$kernel BENCH_LOAD_BEFORE=$load_before \
    BENCH_LOAD_AFTER=$load_after BENCH_NGINX=$nginx_version \
    BENCH_WRK=$wrk_version ROUNDS DURATION WARMUP CONNECTIONS \
    WRK_THREADS SERVER_THREADS BENCH_CONLAB_ARGS
python3 "$root/bench/health.py" report --dir "$raw" --md "$out/health.md" ||
    status=1

echo "bench: written $out/health.md"
exit "$status"

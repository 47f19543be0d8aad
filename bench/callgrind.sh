#!/usr/bin/env bash
# Instructions per GET /health: conlab against bench/minimal (answering the
# same body), each under valgrind's callgrind, for a fixed number of
# requests. Unlike CPU time, instruction counts do not move with the
# machine's load, so a change of a few hundred instructions per request
# shows; they do not show cache misses or system calls (bench/run.sh's CPU
# per request does).
#
# usage: bench/callgrind.sh BUILD_DIR   (not part of `make bench`)
#
# Each server starts under callgrind (--threads 2 / 2 threads), gets WARMUP
# requests (bench/fixed_load.py), then its counters are zeroed, REQUESTS
# requests are sent over CONNECTIONS keep-alive connections, and the
# counters are dumped (callgrind_control). Written: bench/out/callgrind/
# SERVER.out (the profile of the counted requests only, for
# callgrind_annotate --inclusive=yes) and summary.txt: instructions per
# request of each server, the share of them in libmicrohttpd's pool
# clearing (memset), and conlab's extra. Every server is stopped by its PID
# (SIGTERM, then SIGKILL) and reaped, on failure and Ctrl-C too.
#
# Tunables (environment): CONNECTIONS (64), REQUESTS (20000), WARMUP
# (2000), BENCH_CONLAB_ARGS (extra conlab options).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

CONNECTIONS=${CONNECTIONS:-64}
REQUESTS=${REQUESTS:-20000}
WARMUP=${WARMUP:-2000}
BENCH_CONLAB_ARGS=${BENCH_CONLAB_ARGS:-}
START_TIMEOUT_S=60 # callgrind starts slowly
STOP_TIMEOUT_S=60

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
out="$root/bench/out/callgrind"
load="$root/bench/fixed_load.py"
cd "$root" # conlab's default --web-root is ./web

require_executable "$build/conlab" "make all"
require_executable "$build/bench/minimal" "make $1/bench/minimal"
require_tools valgrind callgrind_control callgrind_annotate python3 curl

fresh_output "$out" "$out/summary.txt"

server_pid=""
# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$server_pid" ]; then
        stop_server "$server_pid" "the server under callgrind"
    fi
}
trap_cleanup

# measure NAME COMMAND...: runs COMMAND under callgrind; writes
# $out/NAME.out, the profile of the counted requests, and sets ir to their
# instructions.
measure() {
    local name=$1 port
    shift
    valgrind --tool=callgrind --callgrind-out-file="$out/$name.%p" "$@" \
        >"$out/$name.log" 2>&1 &
    server_pid=$!
    port=$(wait_listening "$server_pid" "$out/$name.log" "$name")
    python3 "$load" "$port" "$CONNECTIONS" "$WARMUP"
    callgrind_control -z "$server_pid" >/dev/null 2>&1
    python3 "$load" "$port" "$CONNECTIONS" "$REQUESTS"
    callgrind_control -d "$server_pid" >/dev/null 2>&1
    stop_server "$server_pid" "$name"
    if [ "$stopped_rc" -ne 0 ]; then
        echo "bench: $name exited $stopped_rc after SIGTERM" >&2
        exit 1
    fi
    # valgrind runs in the server's own process: the dump of the counted
    # requests is PID.1 (the one written at exit is not used).
    mv "$out/$name.$server_pid.1" "$out/$name.out"
    rm -f "$out/$name.$server_pid"
    server_pid=""
    ir=$(callgrind_annotate --auto=no "$out/$name.out" 2>/dev/null |
        awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
}

# memset_of FILE: instructions in memset (libmicrohttpd's pool clearing).
memset_of() {
    callgrind_annotate --auto=no --threshold=100 "$1" 2>/dev/null |
        awk '/memset/ && !/=>/ { gsub(",", "", $1); s += $1 } END { print s + 0 }'
}

ir=0
# shellcheck disable=SC2086 # BENCH_CONLAB_ARGS is a list of options
measure conlab "$build/conlab" --port 0 --threads 2 $BENCH_CONLAB_ARGS
conlab_ir=$ir
# minimal answers the bytes of a real /health answer, as in bench/run.sh.
"$build/conlab" --port 0 --threads 2 >"$out/body-server.log" 2>&1 &
server_pid=$!
port=$(wait_listening "$server_pid" "$out/body-server.log" conlab)
curl -fsS --max-time 5 -o "$out/body.json" "http://127.0.0.1:$port/health"
stop_server "$server_pid" conlab
server_pid=""
measure minimal "$build/bench/minimal" 0 2 "$out/body.json"
minimal_ir=$ir

conlab_memset=$(memset_of "$out/conlab.out")
minimal_memset=$(memset_of "$out/minimal.out")
# line NAME IR MEMSET: one server's figures per request.
line() {
    echo "$1: $(($2 / REQUESTS)) instructions per request, $(($3 / REQUESTS))" \
        "of them in memset, $((($2 - $3) / REQUESTS)) without"
}
{
    echo "GET /health, $REQUESTS requests over $CONNECTIONS keep-alive" \
        "connections (after $WARMUP), 2 request threads, callgrind"
    line conlab "$conlab_ir" "$conlab_memset"
    line minimal "$minimal_ir" "$minimal_memset"
    echo "conlab's extra: $(((conlab_ir - minimal_ir) / REQUESTS))" \
        "instructions per request"
} | tee "$out/summary.txt"

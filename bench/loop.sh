#!/usr/bin/env bash
# Benchmarks conlab's event loop: thousands of timers and of outbound
# fetches on its one loop thread, against the same workloads written the
# asyncio tutorials' way in Python.
#
# usage: bench/loop.sh BUILD_DIR    (`make bench` runs it from bench/all.sh)
#
# A fresh conlab for each part, `--port 0 --threads 2 --workers 2
# --demo-threads 32` on a free port of 127.0.0.1, so that each part's
# memory figures start from a new process (freed memory stays in conlab's
# heap); access logs in bench/out/loop/conlab-PART.log. bench/loop.py does
# the measuring:
#  1. GET /run/sleep?mode=async&tasks=10000&ms=1000, RUNS runs: median and
#     max wall_ms (target: within 10% of 1000 ms), and conlab's VmRSS
#     (/proc) before the first run, sampled while each run is in flight, and
#     after the last.
#  2. GET /run/fetch?mode=async&count=1000&ms=100 (conlab fetching its own
#     /delay?ms=100), RUNS runs: median and max wall_ms (target: under
#     500 ms), errors (a task with a non-null error or a status other than
#     200), VmRSS before, during and after.
#  3. bench/python/sleep_gather.py (asyncio.gather of 10,000
#     asyncio.sleep(1.0)) and bench/python/fetch_aiohttp.py (one aiohttp
#     ClientSession, TCPConnector(limit=1000), 1,000 concurrent GETs of
#     conlab's /delay?ms=100), RUNS runs each, with PYTHON_ASYNC: wall time,
#     peak RSS (getrusage), errors, and the VmRSS of the conlab serving
#     /delay; shown side by side with 1 and 2.
#  4. GET /run/sleep?tasks=100&ms=1000&mode=threads once, for context: 32
#     demo threads make 4 waves (model_ms 4000).
# The report goes to stdout and, as markdown, to bench/out/loop.md (the
# headline figures for bench/report.py to bench/out/loop/summary.json); raw
# figures stay in bench/out/loop/. Each conlab and the helper are stopped
# by PID (SIGTERM, then SIGKILL) and reaped, on failure and Ctrl-C too, and
# every conlab must exit 0. Linux only (/proc).
#
# Exit status: 0, or 1 if conlab fails to start or stop cleanly, or a run
# gives a wrong answer (not a 200 of the right shape, a task that did not
# wait its time, a fetch error, a Python run that failed or counted
# errors), or the access log shows a non-2xx answer. A missed target is a
# FAIL line in the report, not an error. Tunables (environment): RUNS (5),
# PYTHON_ASYNC (/usr/bin/python3: Debian's interpreter, which sees
# python3-aiohttp), BENCH_CONLAB_ARGS (extra conlab options).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

RUNS=${RUNS:-5}
PYTHON_ASYNC=${PYTHON_ASYNC:-/usr/bin/python3}
BENCH_CONLAB_ARGS=${BENCH_CONLAB_ARGS:-}
SERVER_THREADS=2
SERVER_WORKERS=2
SERVER_DEMO_THREADS=32
SLEEP_PATH='/run/sleep?mode=async&tasks=10000&ms=1000'
FETCH_PATH='/run/fetch?mode=async&count=1000&ms=100'
THREADS_PATH='/run/sleep?tasks=100&ms=1000&mode=threads'
START_TIMEOUT_S=10
STOP_TIMEOUT_S=15

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
out="$root/bench/out"
raw="$out/loop"
conlab_bin="$build/conlab"
helper="$root/bench/loop.py"
pydir="$root/bench/python"
cd "$root" # conlab's default --web-root is ./web

require_executable "$conlab_bin" "make all"
require_tools curl python3
if ! "$PYTHON_ASYNC" -c 'import aiohttp' 2>/dev/null; then
    echo "bench: $PYTHON_ASYNC cannot import aiohttp (scripts/deps.sh" \
        "bench installs python3-aiohttp for /usr/bin/python3)" >&2
    exit 1
fi
# The interpreters themselves, not wrappers (a pyenv shim can stay as a
# parent process): the PIDs this script and the helper stop are then the
# programs' own.
python=$(python3 -c 'import sys; print(sys.executable)')
PYTHON_ASYNC=$("$PYTHON_ASYNC" -c 'import sys; print(sys.executable)')

fresh_output "$raw" "$out/loop.md"


conlab_pid=""
helper_pid=""

# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$helper_pid" ]; then
        stop_server "$helper_pid" "bench/loop.py"
    fi
    if [ -n "$conlab_pid" ]; then
        stop_server "$conlab_pid" conlab
    fi
}
trap_cleanup

# helper ARGS...: runs bench/loop.py ARGS in the background and waits for
# it, so that a signal reaches the traps at once and the clean-up can stop
# the helper (and, through it, a Python program it runs) by its PID.
# Sets helper_rc.
helper_rc=0
helper() {
    "$python" "$helper" "$@" &
    helper_pid=$!
    helper_rc=0
    wait "$helper_pid" || helper_rc=$?
    helper_pid=""
}

# start_conlab NAME: a fresh conlab for one part of the bench, its access
# log in $raw/conlab-NAME.log; sets conlab_pid and port.
start_conlab() {
    # shellcheck disable=SC2086 # BENCH_CONLAB_ARGS is a list of options
    "$conlab_bin" --port 0 --threads "$SERVER_THREADS" \
        --workers "$SERVER_WORKERS" --demo-threads "$SERVER_DEMO_THREADS" \
        $BENCH_CONLAB_ARGS >"$raw/conlab-$1.log" 2>&1 &
    conlab_pid=$!
    port=$(wait_listening "$conlab_pid" "$raw/conlab-$1.log" conlab)
    echo "bench: conlab on 127.0.0.1:$port (pid $conlab_pid)"
}

# stop_conlab NAME: SIGTERM, reap; conlab must exit 0.
stop_conlab() {
    stop_server "$conlab_pid" conlab
    conlab_pid=""
    if [ "$stopped_rc" -ne 0 ]; then
        echo "bench: conlab ($1) exited $stopped_rc after SIGTERM" \
            "(expected 0)" >&2
        tail -n 5 "$raw/conlab-$1.log" | sed 's/^/    /' >&2
        status=1
    fi
}

status=0
machine_facts
echo "bench: $cores cores ($model), load $load_before;" \
    "a fresh conlab for each part"

echo "bench: 1. $SLEEP_PATH, $RUNS runs"
start_conlab sleep
helper conlab --port "$port" --pid "$conlab_pid" --kind sleep \
    --path "$SLEEP_PATH" --tasks 10000 --runs "$RUNS" --out "$raw/sleep.json"
[ "$helper_rc" -eq 0 ] || status=1
stop_conlab sleep

echo "bench: 2. $FETCH_PATH, $RUNS runs"
start_conlab fetch
helper conlab --port "$port" --pid "$conlab_pid" --kind fetch \
    --path "$FETCH_PATH" --tasks 1000 --runs "$RUNS" --out "$raw/fetch.json"
[ "$helper_rc" -eq 0 ] || status=1
stop_conlab fetch

echo "bench: 3. Python asyncio ($PYTHON_ASYNC): gather of 10,000" \
    "asyncio.sleep(1.0), $RUNS runs"
start_conlab python
helper python --pid "$conlab_pid" --runs "$RUNS" --out "$raw/py-sleep.json" \
    -- "$PYTHON_ASYNC" "$pydir/sleep_gather.py" --tasks 10000 --seconds 1.0
[ "$helper_rc" -eq 0 ] || status=1

echo "bench: 3. Python aiohttp: 1,000 concurrent GET /delay?ms=100" \
    "of this conlab, $RUNS runs"
helper python --pid "$conlab_pid" --runs "$RUNS" --out "$raw/py-fetch.json" \
    -- "$PYTHON_ASYNC" "$pydir/fetch_aiohttp.py" \
    --url "http://127.0.0.1:$port/delay?ms=100" --count 1000
[ "$helper_rc" -eq 0 ] || status=1
stop_conlab python

echo "bench: 4. $THREADS_PATH, once"
start_conlab threads
helper conlab --port "$port" --pid "$conlab_pid" --kind threads \
    --path "$THREADS_PATH" --tasks 100 --runs 1 --out "$raw/threads.json"
[ "$helper_rc" -eq 0 ] || status=1
stop_conlab threads
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

export BENCH_DATE=$started BENCH_CORES=$cores BENCH_MODEL=$model \
    BENCH_KERNEL=$kernel BENCH_LOAD_BEFORE=$load_before \
    BENCH_LOAD_AFTER=$load_after \
    SERVER_THREADS SERVER_WORKERS SERVER_DEMO_THREADS BENCH_CONLAB_ARGS
helper report --dir "$raw" --md "$out/loop.md"
[ "$helper_rc" -eq 0 ] || status=1

echo "bench: written $out/loop.md"
exit "$status"

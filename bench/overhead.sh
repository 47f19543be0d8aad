#!/usr/bin/env bash
# Benchmarks what a unit of concurrency costs to start and to keep: conlab's
# GET /run/overhead for threads, pool jobs, fresh processes and loop tasks,
# beside the Python equivalents (threading.Thread, multiprocessing.Process,
# asyncio.create_task) measured in the same run.
#
# usage: bench/overhead.sh BUILD_DIR  (`make bench` runs it from bench/all.sh;
#                                      BENCH_PARTS=overhead runs it alone)
#
# One conlab, `--port 0 --threads 2 --workers 2` on 127.0.0.1 (its access
# log in bench/out/overhead/conlab.log); bench/overhead.py does the
# measuring (ROUNDS rounds of the four modes, then
# bench/python/overhead_units.py with the same unit counts) and writes
# bench/out/overhead.md and bench/out/overhead/summary.json. conlab is
# stopped by PID (SIGTERM, then SIGKILL) and reaped, on failure and Ctrl-C
# too, and must exit 0. Linux only (/proc).
#
# Exit status: 0, or 1 if conlab fails to start or stop cleanly or a
# measurement fails. Tunables (environment): ROUNDS (3), PYTHON
# (/usr/bin/python3), BENCH_CONLAB_ARGS (extra conlab options).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

ROUNDS=${ROUNDS:-3}
PYTHON=${PYTHON:-/usr/bin/python3}
BENCH_CONLAB_ARGS=${BENCH_CONLAB_ARGS:-}
START_TIMEOUT_S=10
STOP_TIMEOUT_S=15

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
out="$root/bench/out"
raw="$out/overhead"
conlab_bin="$build/conlab"
cd "$root" # conlab's default --web-root is ./web

require_executable "$conlab_bin" "make all"
require_tools curl python3
python=$(python3 -c 'import sys; print(sys.executable)')
PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)')

fresh_output "$raw" "$out/overhead.md"

conlab_pid=""
helper_pid=""

# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
    trap - EXIT INT TERM
    stop_helper_and_conlab "bench/overhead.py"
}
trap_cleanup

machine_facts
echo "bench: $cores cores ($model), load $load_before"
start_conlab "$conlab_bin" "$raw/conlab.log" --threads 2 --workers 2
echo "bench: conlab on 127.0.0.1:$port (pid $conlab_pid), $ROUNDS rounds"

status=0
"$python" "$root/bench/overhead.py" --port "$port" --rounds "$ROUNDS" \
    --raw "$raw" --md "$out/overhead.md" --python "$PYTHON" &
helper_pid=$!
wait "$helper_pid" || status=1
helper_pid=""

stop_conlab "$raw/conlab.log" || status=1
echo "bench: written $out/overhead.md"
exit "$status"

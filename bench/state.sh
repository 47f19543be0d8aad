#!/usr/bin/env bash
# Benchmarks the shared-state demo: ns per increment of /run/counter for
# sync none, lock and atomic at 1 and 2 tasks (threads, and processes
# sharing a memory segment), beside the tutorials' Python equivalents
# (threading.Lock, multiprocessing.Value) measured in the same run, and how
# often two unsynchronised threads lose updates.
#
# usage: bench/state.sh BUILD_DIR   (`make bench` runs it from bench/all.sh;
#                                    it runs alone too)
#
# One conlab `--port 0 --threads 2 --workers 2` on a free port of
# 127.0.0.1, its access log in bench/out/state/conlab.log; bench/state.py
# does the requests and runs bench/python/counter.py (see there for what
# is measured and checked). Markdown to bench/out/state.md, figures for
# bench/report.py in bench/out/state/summary.json: `make bench` puts it in
# bench/REPORT.md with the other parts; after a run of this part alone,
# `bench/report.py part --name state --into bench/REPORT.md` splices it
# into the last report, marked as run alone. conlab is stopped by PID
# (SIGTERM, then SIGKILL), reaped, and must exit 0, on failure and Ctrl-C
# too.
#
# Exit status: 0, or 1 if conlab fails to start or stop cleanly or an
# answer breaks an invariant (a count above expected, an update lost with
# lock or atomic). Tunables (environment): ROUNDS (5), RACE_RUNS (20),
# INCREMENTS (1000000), PY_INCREMENTS (200000), PYTHON_COUNTER
# (/usr/bin/python3), BENCH_CONLAB_ARGS (extra conlab options).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

ROUNDS=${ROUNDS:-5}
RACE_RUNS=${RACE_RUNS:-20}
INCREMENTS=${INCREMENTS:-1000000}
PY_INCREMENTS=${PY_INCREMENTS:-200000}
PYTHON_COUNTER=${PYTHON_COUNTER:-/usr/bin/python3}
BENCH_CONLAB_ARGS=${BENCH_CONLAB_ARGS:-}
START_TIMEOUT_S=10
STOP_TIMEOUT_S=15

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
out="$root/bench/out"
raw="$out/state"
conlab_bin="$build/conlab"
cd "$root"

require_executable "$conlab_bin" "make all"
require_tools curl python3
python=$(python3 -c 'import sys; print(sys.executable)')
fresh_output "$raw" "$out/state.md"

conlab_pid=""
helper_pid=""

# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
    trap - EXIT INT TERM
    stop_helper_and_conlab "bench/state.py"
}
trap_cleanup

machine_facts
echo "bench: $cores cores ($model), load $load_before"
start_conlab "$conlab_bin" "$raw/conlab.log" --threads 2 --workers 2
echo "bench: conlab on 127.0.0.1:$port (pid $conlab_pid)"

status=0
export BENCH_DATE=$started BENCH_CORES=$cores BENCH_MODEL=$model \
    BENCH_LOAD_BEFORE=$load_before
"$python" "$root/bench/state.py" --port "$port" --rounds "$ROUNDS" \
    --race-runs "$RACE_RUNS" --increments "$INCREMENTS" \
    --py-increments "$PY_INCREMENTS" --python "$PYTHON_COUNTER" \
    --out "$raw" --md "$out/state.md.tmp" &
helper_pid=$!
rc=0
wait "$helper_pid" || rc=$?
helper_pid=""
[ "$rc" -eq 0 ] || status=1

stop_conlab "$raw/conlab.log" || status=1
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
if [ -f "$out/state.md.tmp" ]; then
    sed "s|, ? after\. One conlab|, $load_after after. One conlab|" \
        "$out/state.md.tmp" >"$out/state.md"
    rm -f "$out/state.md.tmp"
    echo "bench: written $out/state.md (bench/report.py part --name state" \
        "--into bench/REPORT.md puts it in the report)"
fi
exit "$status"

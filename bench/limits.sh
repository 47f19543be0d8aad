#!/usr/bin/env bash
# Benchmarks admission by cost (issue 11's acceptance figures): the memory
# ceiling under every mix of up to 1,000 concurrent requests with the
# largest accepted parameters, fairness between two client addresses, and
# the memory each task holds with the lateness of the loop's timers.
#
# usage: bench/limits.sh BUILD_DIR    (`make bench` runs it from bench/all.sh)
#
# The measuring is the integration tests' own (tests/integration/limits.py,
# so that the test and the bench report the same figures): run.py --limits
# --mixes all starts a fresh conlab with default options for each mix and
# each case (only --port 0 on 127.0.0.1 and a web root), samples the VmRSS
# of the server and its workers every 100 ms, and records its figures in
# bench/out/limits/figures.json; its output goes to bench/out/limits/run.log.
# bench/limits.py then writes bench/out/limits.md and
# bench/out/limits/summary.json (for bench/report.py). Every server and
# client process is stopped by PID and reaped by run.py (on Ctrl-C too).
#
# Exit status: 0 when every figure was measured (a missed target is a FAIL
# line in the report, not an error), 1 when run.py could not measure them
# (a server that did not start, a crash, a missing figure). Tunables
# (environment): LIMITS_MIXES (all, or a count of the mixes of
# limits.MIXES).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

LIMITS_MIXES=${LIMITS_MIXES:-all}

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
out="$root/bench/out"
raw="$out/limits"
conlab_bin="$build/conlab"

require_executable "$conlab_bin" "make all"
require_tools python3
python=$(python3 -c 'import sys; print(sys.executable)')

fresh_output "$raw" "$out/limits.md"

run_pid=""

# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$run_pid" ]; then
        # run.py stops and reaps its servers on SIGTERM.
        stop_server "$run_pid" "tests/integration/run.py"
    fi
}
trap_cleanup

machine_facts
echo "bench: $cores cores ($model), load $load_before; mixes: $LIMITS_MIXES"

# In the background and waited for, so that a signal reaches the traps.
"$python" "$root/tests/integration/run.py" --binary "$conlab_bin" --limits \
    --mixes "$LIMITS_MIXES" --figures "$raw/figures.json" \
    >"$raw/run.log" 2>&1 &
run_pid=$!
run_rc=0
wait "$run_pid" || run_rc=$?
run_pid=""
sed 's/^/    /' "$raw/run.log"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

export BENCH_DATE=$started BENCH_CORES=$cores BENCH_MODEL=$model \
    BENCH_KERNEL=$kernel BENCH_LOAD_BEFORE=$load_before \
    BENCH_LOAD_AFTER=$load_after BENCH_RUN_RC=$run_rc
status=0
"$python" "$root/bench/limits.py" --figures "$raw/figures.json" \
    --log "$raw/run.log" --md "$out/limits.md" \
    --summary "$raw/summary.json" || status=$?
echo "bench: written $out/limits.md"
exit "$status"

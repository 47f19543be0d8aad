#!/usr/bin/env bash
# Benchmarks conlab's CPU jobs: the scaling of /run/prime per run mode,
# the cost of a trivial job's round trip through the process pool, how
# quickly /health answers while a long CPU job occupies the workers, and
# the tutorials' Python programs against the same work through conlab.
#
# usage: bench/cpu.sh BUILD_DIR     (`make bench` runs it from bench/all.sh)
#
# One conlab, `--port 0 --workers CORES --threads 2`, on a free port of
# 127.0.0.1, with its normal access log to bench/out/cpu/conlab.log.
#  1. GET /run/prime?limit=10000000&tasks=N in each mode (sequential,
#     threads, processes, gil) for N = 1 .. CORES, PRIME_ROUNDS rounds
#     round-robin after one uncounted warm-up round at N = CORES
#     (bench/cpu.py prime). Every answer must count 664579 primes, or the
#     bench fails. Reported per N and mode: median, min and max wall_ms,
#     speedup = median(sequential) / median(mode) at the same N, parallel
#     efficiency = speedup / N, a plot (bench/plots/cpu-scaling.svg), and
#     the issue's targets at N = CORES (processes and threads >= 1.9x, gil
#     <= 1.1x) as PASS/FAIL. A missed target is a measurement, not an
#     error.
#  2. wrk -t2 -c64 -dDURATION --latency on the trivial job
#     /run/prime?limit=2&tasks=1&mode=processes and on /health, alternating,
#     THROUGHPUT_ROUNDS rounds, each after a warm-up; then wrk -t1 -c1
#     -dSINGLE_DURATION on both, alternating: the difference of the mean
#     (and of the median) latencies is the pool round-trip cost. wrk loads
#     bench/cpu.lua for exact figures. Every non-2xx answer is an error
#     (wrk's counts and the access log's); a 499 in the log is no answer: a
#     queued job whose client left, as wrk's connections do when a run
#     ends.
#  3. SAMPLES sequential GET /health, idle and while
#     /run/prime?limit=50000000&tasks=2&mode=processes runs
#     (bench/cpu.py responsive).
#  4. The tutorials' programs of bench/python/ with PYTHON_TUTORIAL against
#     the same workload as one GET of this conlab, TUTORIAL_ROUNDS rounds
#     (bench/cpu.py tutorials): prime_sequential.py, prime_pool.py and
#     prime_threads.py with limit TUTORIAL_LIMIT against /run/prime in
#     modes sequential, processes and gil; squares_pool.py against
#     /run/square?mode=processes for each count of TUTORIAL_SQUARES.
#     Every answer is checked against the program's.
# Each /run/prime run also records the CPU time of conlab (with its
# workers), of other programs on the machine and the hypervisor's steal,
# from /proc: a run during which other programs used more than 5% of the
# machine is flagged as disturbed, and the report adds the speedups over
# the undisturbed runs alone. A last table gives the same split for each
# part of the bench, with conlab's memory (VmRSS, with its workers) at the
# end of each.
# The tables go to stdout and, as markdown, to bench/out/cpu.md (figures
# for bench/report.py in bench/out/cpu/summary.json); raw outputs stay in
# bench/out/cpu/. conlab and the helper are stopped by PID (SIGTERM, then
# SIGKILL) and reaped, on failure and Ctrl-C too, and conlab must exit 0.
# Linux only (/proc).
#
# Exit status: 0, or 1 if conlab fails to start or stop cleanly, a
# /run/prime answer is wrong, wrk fails, or wrk or the access log show an
# error (socket errors, non-2xx answers), or a Python program fails or
# disagrees with conlab. Tunables (environment): PRIME_ROUNDS (3),
# THROUGHPUT_ROUNDS (3), DURATION (5s), WARMUP (1s), SINGLE_DURATION (3s),
# CONNECTIONS (64), SAMPLES (50), SAMPLE_GAP_MS (0), TUTORIAL_ROUNDS (3),
# TUTORIAL_LIMIT (2000000), TUTORIAL_SQUARES (4,5000), PYTHON_TUTORIAL
# (/usr/bin/python3), BENCH_CONLAB_ARGS (extra conlab options).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

PRIME_ROUNDS=${PRIME_ROUNDS:-3}
THROUGHPUT_ROUNDS=${THROUGHPUT_ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
SINGLE_DURATION=${SINGLE_DURATION:-3s}
CONNECTIONS=${CONNECTIONS:-64}
SAMPLES=${SAMPLES:-50}
SAMPLE_GAP_MS=${SAMPLE_GAP_MS:-0}
TUTORIAL_ROUNDS=${TUTORIAL_ROUNDS:-3}
TUTORIAL_LIMIT=${TUTORIAL_LIMIT:-2000000}
TUTORIAL_SQUARES=${TUTORIAL_SQUARES:-4,5000}
PYTHON_TUTORIAL=${PYTHON_TUTORIAL:-/usr/bin/python3}
BENCH_CONLAB_ARGS=${BENCH_CONLAB_ARGS:-}
SERVER_WORKERS=$(nproc)
SERVER_THREADS=2
TRIVIAL_PATH='/run/prime?limit=2&tasks=1&mode=processes'
START_TIMEOUT_S=10
STOP_TIMEOUT_S=15

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
out="$root/bench/out"
raw="$out/cpu"
conlab_bin="$build/conlab"
helper="$root/bench/cpu.py"
script="$root/bench/cpu.lua"
cd "$root" # conlab's default --web-root is ./web

require_executable "$conlab_bin" "make all"
require_tools wrk curl python3
if [ ! -x "$PYTHON_TUTORIAL" ]; then
    echo "bench: $PYTHON_TUTORIAL is missing (PYTHON_TUTORIAL)" >&2
    exit 1
fi

fresh_output "$raw" "$out/cpu.md"


conlab_pid=""
helper_pid=""

# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$helper_pid" ]; then
        stop_server "$helper_pid" "bench/cpu.py"
    fi
    if [ -n "$conlab_pid" ]; then
        stop_server "$conlab_pid" conlab
    fi
}
trap_cleanup

# shellcheck disable=SC2086 # BENCH_CONLAB_ARGS is a list of options
"$conlab_bin" --port 0 --workers "$SERVER_WORKERS" \
    --threads "$SERVER_THREADS" $BENCH_CONLAB_ARGS \
    >"$raw/conlab.log" 2>&1 &
conlab_pid=$!
port=$(wait_listening "$conlab_pid" "$raw/conlab.log" conlab)
base="http://127.0.0.1:$port"

machine_facts
echo "bench: conlab on 127.0.0.1:$port (pid $conlab_pid);" \
    "$cores cores ($model), load $load_before"

# snap LABEL: CPU use so far (machine, server, this script's children), so
# that the report can tell what other programs took during each part.
snap() {
    python3 "$helper" snap --pid "$conlab_pid" --bench-pid $$ \
        --label "$1" --out "$raw/snaps.jsonl"
}
snap start

echo "bench: 1. /run/prime?limit=10000000&tasks=1..$cores, every mode," \
    "$PRIME_ROUNDS rounds round-robin"
python3 "$helper" prime --port "$port" --pid "$conlab_pid" \
    --tasks "$(seq -s, 1 "$cores")" --rounds "$PRIME_ROUNDS" \
    --out "$raw/prime.json"
snap "1. /run/prime scaling"

echo "bench: 2. trivial job vs /health, $THROUGHPUT_ROUNDS rounds;" \
    "wrk -t2 -c$CONNECTIONS -d$DURATION, then -t1 -c1 -d$SINGLE_DURATION"
for round in $(seq 1 "$THROUGHPUT_ROUNDS"); do
    for name in job health; do
        if [ "$name" = job ]; then url="$base$TRIVIAL_PATH"; else
            url="$base/health"; fi
        wrk -t2 -c"$CONNECTIONS" -d"$WARMUP" "$url" \
            >"$raw/wrk-load-$name-warmup-$round.txt"
        wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$script" \
            "$url" >"$raw/wrk-load-$name-$round.txt"
        rps=$(sed -n 's/^Requests\/sec:[[:space:]]*//p' \
            "$raw/wrk-load-$name-$round.txt")
        echo "bench: round $round $name -c$CONNECTIONS: ${rps:-?} requests/s"
    done
done
for round in $(seq 1 "$THROUGHPUT_ROUNDS"); do
    for name in job health; do
        if [ "$name" = job ]; then url="$base$TRIVIAL_PATH"; else
            url="$base/health"; fi
        wrk -t1 -c1 -d"$SINGLE_DURATION" --latency -s "$script" \
            "$url" >"$raw/wrk-c1-$name-$round.txt"
        mean=$(sed -n 's/.*mean_us=\([0-9.]*\).*/\1/p' \
            "$raw/wrk-c1-$name-$round.txt")
        echo "bench: round $round $name -c1: mean ${mean:-?} us"
    done
done

snap "2. trivial job vs /health"

echo "bench: 3. /health while /run/prime?limit=50000000&tasks=2 runs"
python3 "$helper" responsive --port "$port" --workers "$SERVER_WORKERS" \
    --samples "$SAMPLES" --gap-ms "$SAMPLE_GAP_MS" \
    --out "$raw/responsive.json"
snap "3. /health during a long job"

echo "bench: 4. the tutorials' Python programs ($PYTHON_TUTORIAL) against" \
    "conlab, $TUTORIAL_ROUNDS rounds"
# In the background and waited for, so that a signal reaches the traps at
# once and the clean-up can stop the helper (which kills the program it
# runs).
python3 "$helper" tutorials --port "$port" --pid "$conlab_pid" \
    --python "$PYTHON_TUTORIAL" --pydir "$root/bench/python" \
    --workers "$SERVER_WORKERS" --limit "$TUTORIAL_LIMIT" \
    --squares "$TUTORIAL_SQUARES" --rounds "$TUTORIAL_ROUNDS" \
    --out "$raw/tutorials.json" &
helper_pid=$!
tutorials_rc=0
wait "$helper_pid" || tutorials_rc=$?
helper_pid=""
snap "4. the tutorials' programs"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Stop conlab before reporting, so its exit is part of the verdict.
status=0
stop_server "$conlab_pid" conlab
conlab_pid=""
if [ "$stopped_rc" -ne 0 ]; then
    echo "bench: conlab exited $stopped_rc after SIGTERM (expected 0)" >&2
    tail -n 5 "$raw/conlab.log" | sed 's/^/    /' >&2
    status=1
fi

# Every request's status, per path: "COUNT PATH STATUS".
awk '$3 ~ /^[A-Z]+$/ && $5 ~ /^[0-9][0-9][0-9]$/ { n[$4 " " $5]++ }
     END { for (k in n) print n[k], k }' "$raw/conlab.log" |
    sort -k2 >"$raw/log-status.txt"
log_bytes=$(stat -c %s "$raw/conlab.log")
log_lines=$(wc -l <"$raw/conlab.log")
# The access log runs to hundreds of MB: keep its head and tail only.
{ head -n 20 "$raw/conlab.log"; echo "[... $log_lines lines in all ...]"
  tail -n 20 "$raw/conlab.log"; } >"$raw/conlab.log.part"
mv "$raw/conlab.log.part" "$raw/conlab.log"

[ "$tutorials_rc" -eq 0 ] || status=1
export BENCH_DATE=$started BENCH_CORES=$cores BENCH_MODEL=$model \
    BENCH_KERNEL=$kernel BENCH_LOAD_BEFORE=$load_before \
    BENCH_LOAD_AFTER=$load_after \
    BENCH_LOG_LINES=$log_lines BENCH_LOG_BYTES=$log_bytes \
    THROUGHPUT_ROUNDS DURATION WARMUP SINGLE_DURATION CONNECTIONS \
    SERVER_WORKERS SERVER_THREADS BENCH_CONLAB_ARGS TRIVIAL_PATH
python3 "$helper" report --dir "$raw" --md "$out/cpu.md" || status=1

echo "bench: written $out/cpu.md"
exit "$status"

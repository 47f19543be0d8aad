#!/usr/bin/env bash
# Benchmarks conlab under a mixed load: /health, small prime jobs on the
# worker processes and the demo threads, sleeps on the event loop and
# self-fetches, together (bench/mixed.lua has the mix), with its memory
# sampled throughout. With --soak it is the soak test of `make soak`: one
# long run and a verdict on memory growth.
#
# usage: bench/mixed.sh [--soak] BUILD_DIR
#        (`make bench` runs it from bench/all.sh; bench/soak.sh runs it
#        with --soak)
#
# One conlab, `--port 0 --threads 2 --workers CORES`, on a free port of
# 127.0.0.1, its normal access log to bench/out/KIND/conlab.log (KIND:
# mixed or soak). bench/mixed.py samples its VmRSS and its workers', its
# descriptors, threads and /health counters every SAMPLE_EVERY_S seconds
# from start to stop. After a WARMUP run, wrk -t2 -cCONNECTIONS -dDURATION
# --latency -s bench/mixed.lua, ROUNDS times. bench/mixed.py then writes
# bench/out/KIND.md (throughput, latency, answers by status as wrk counted
# them and per target from the access log, memory before, at the peak and
# after the load; for a soak every sample and the verdict), the plot
# bench/plots/KIND.svg and bench/out/KIND/summary.json. conlab, the sampler
# and wrk are stopped by PID and reaped, on failure and Ctrl-C too; conlab
# must exit 0.
#
# Exit status: 0, or 1 if conlab fails to start or stop cleanly, wrk fails
# or saw errors, an answer was not 2xx, or the soak's verdict is FAIL.
# Tunables (environment), mixed / --soak: MIXED_ROUNDS (3 / 1),
# MIXED_DURATION (10s / SOAK_DURATION, 120s), WARMUP (2s / 5s),
# CONNECTIONS (64), SAMPLE_EVERY_S (1 / 5), SOAK_MAX_GROWTH (5: percent of
# VmRSS growth allowed over the last minute), BENCH_CONLAB_ARGS (extra
# conlab options).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

kind=mixed
if [ "${1:-}" = --soak ]; then
    kind=soak
    shift
fi
if [ $# -ne 1 ]; then
    echo "usage: $0 [--soak] BUILD_DIR" >&2
    exit 2
fi

if [ "$kind" = soak ]; then
    MIXED_ROUNDS=${MIXED_ROUNDS:-1}
    MIXED_DURATION=${SOAK_DURATION:-120s}
    WARMUP=${WARMUP:-5s}
    SAMPLE_EVERY_S=${SAMPLE_EVERY_S:-5}
else
    MIXED_ROUNDS=${MIXED_ROUNDS:-3}
    MIXED_DURATION=${MIXED_DURATION:-10s}
    WARMUP=${WARMUP:-2s}
    SAMPLE_EVERY_S=${SAMPLE_EVERY_S:-1}
fi
CONNECTIONS=${CONNECTIONS:-64}
SOAK_MAX_GROWTH=${SOAK_MAX_GROWTH:-5}
BENCH_CONLAB_ARGS=${BENCH_CONLAB_ARGS:-}
SERVER_THREADS=2
SERVER_WORKERS=$(nproc)
START_TIMEOUT_S=10
STOP_TIMEOUT_S=15

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
out="$root/bench/out"
raw="$out/$kind"
conlab_bin="$build/conlab"
helper="$root/bench/mixed.py"
script="$root/bench/mixed.lua"
cd "$root" # conlab's default --web-root is ./web

require_executable "$conlab_bin" "make all"
require_tools wrk curl python3

fresh_output "$raw" "$out/$kind.md"

conlab_pid=""
sampler_pid=""
wrk_pid=""

# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$wrk_pid" ]; then
        kill -TERM "$wrk_pid" 2>/dev/null || true
        wait "$wrk_pid" 2>/dev/null || true
    fi
    if [ -n "$sampler_pid" ]; then
        stop_server "$sampler_pid" "bench/mixed.py sample"
    fi
    if [ -n "$conlab_pid" ]; then
        stop_server "$conlab_pid" conlab
    fi
}
trap_cleanup

# run_wrk DURATION FILE: wrk with the mix, in the background and waited
# for, so that a signal reaches the traps at once.
run_wrk() {
    local rc=0
    wrk -t2 -c"$CONNECTIONS" -d"$1" --latency -s "$script" \
        "http://127.0.0.1:$port/" >"$2" &
    wrk_pid=$!
    wait "$wrk_pid" || rc=$?
    wrk_pid=""
    if [ "$rc" -ne 0 ]; then
        echo "bench: wrk exited $rc" >&2
        exit 1
    fi
}

machine_facts
# The machine's CPU time and this script's (with its reaped children:
# conlab, wrk, the sampler) before and after: what other programs took.
python3 "$root/bench/report.py" snap --label start --bench-pid $$ \
    --out "$raw/snaps.jsonl"
# shellcheck disable=SC2086 # BENCH_CONLAB_ARGS is a list of options
"$conlab_bin" --port 0 --threads "$SERVER_THREADS" \
    --workers "$SERVER_WORKERS" $BENCH_CONLAB_ARGS \
    >"$raw/conlab.log" 2>&1 &
conlab_pid=$!
port=$(wait_listening "$conlab_pid" "$raw/conlab.log" conlab)
echo "bench: conlab on 127.0.0.1:$port (pid $conlab_pid); $cores cores" \
    "($model), load $load_before"

# The sampler's bound: everything below, with room to spare.
total_s=$(( (MIXED_ROUNDS * ($(seconds "$MIXED_DURATION") + 2)) +
    $(seconds "$WARMUP") + 30 ))
python3 "$helper" sample --pid "$conlab_pid" --port "$port" \
    --every "$SAMPLE_EVERY_S" --for "$total_s" \
    --out "$raw/samples.jsonl" &
sampler_pid=$!
# Two samples of the idle server before the load.
sleep "$(( SAMPLE_EVERY_S * 2 ))"

echo "bench: $kind load, wrk -t2 -c$CONNECTIONS -d$MIXED_DURATION -s" \
    "bench/mixed.lua, $MIXED_ROUNDS run(s) after a $WARMUP warm-up"
load_start=$(date +%s.%N)
run_wrk "$WARMUP" "$raw/warmup.txt"
for round in $(seq 1 "$MIXED_ROUNDS"); do
    run_wrk "$MIXED_DURATION" "$raw/wrk-$round.txt"
    rps=$(sed -n 's/^Requests\/sec:[[:space:]]*//p' "$raw/wrk-$round.txt")
    statuses=$(sed -n 's/^CONLAB-STATUS //p' "$raw/wrk-$round.txt")
    echo "bench: run $round: ${rps:-?} requests/s; statuses $statuses"
done
load_end=$(date +%s.%N)
# Two samples of the server at rest after the load.
sleep "$(( SAMPLE_EVERY_S * 2 ))"
stop_server "$sampler_pid" "bench/mixed.py sample"
sampler_pid=""
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

status=0
stop_server "$conlab_pid" conlab
conlab_pid=""
if [ "$stopped_rc" -ne 0 ]; then
    echo "bench: conlab exited $stopped_rc after SIGTERM (expected 0)" >&2
    tail -n 5 "$raw/conlab.log" | sed 's/^/    /' >&2
    status=1
fi
python3 "$root/bench/report.py" snap --label end --bench-pid $$ \
    --out "$raw/snaps.jsonl"
log_lines=$(wc -l <"$raw/conlab.log")
commit=$(commit_facts "$root")

export BENCH_DATE=$started BENCH_CORES=$cores BENCH_MODEL=$model \
    BENCH_KERNEL=$kernel BENCH_LOAD_BEFORE=$load_before \
    BENCH_LOAD_AFTER=$load_after BENCH_COMMIT=$commit \
    BENCH_LOG_LINES=$log_lines MIXED_LOAD_START=$load_start \
    MIXED_LOAD_END=$load_end MIXED_ROUNDS MIXED_DURATION WARMUP \
    CONNECTIONS SAMPLE_EVERY_S SOAK_MAX_GROWTH SERVER_THREADS \
    SERVER_WORKERS BENCH_CONLAB_ARGS
python3 "$helper" report --kind "$kind" --dir "$raw" --md "$out/$kind.md" ||
    status=1

# The access log runs to millions of lines: keep its head and tail only.
{ head -n 20 "$raw/conlab.log"; echo "[... $log_lines lines in all ...]"
  tail -n 20 "$raw/conlab.log"; } >"$raw/conlab.log.part"
mv "$raw/conlab.log.part" "$raw/conlab.log"

echo "bench: written $out/$kind.md"
exit "$status"

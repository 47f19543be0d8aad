#!/usr/bin/env bash
# The whole benchmark, as `make bench` runs it: every part in turn on this
# machine, then bench/REPORT.md assembled from their reports.
#
# usage: bench/all.sh BUILD_DIR
#
# Parts (BENCH_PARTS, in this order by default):
#   health  bench/run.sh    GET /health: conlab, minimal, nginx
#   cpu     bench/cpu.sh    CPU scaling, pool round trip, the tutorials'
#                           CPU programs against conlab
#   loop    bench/loop.sh   10,000 sleeps, 1,000 fetches, against asyncio
#                           and aiohttp
#   overhead bench/overhead.sh start-up latency and memory per unit
#                           (thread, pool job, fresh process, loop task)
#                           beside threading.Thread, multiprocessing.Process
#                           and asyncio.create_task
#   mixed   bench/mixed.sh  the mixed wrk load, with memory sampled
#   state   bench/state.sh  shared state: ns per increment of /run/counter
#                           per sync beside Python's threading.Lock and
#                           multiprocessing.Value, lost-update frequency
#   limits  bench/limits.sh admission by cost: memory ceiling under every
#                           mix of 1,000 requests, fairness, memory per
#                           task (a few minutes more: each mix waits up to
#                           70 s for the memory to come back)
# Each part starts and stops its own servers; a part that fails does not
# stop the others, and the report says which failed. Before the first part
# and after each, bench/report.py snap records the machine's CPU time,
# steal and load average (bench/out/all/snaps.jsonl), the first with the
# run's facts (date, commit, machine, versions); bench/report.py assemble
# then writes bench/REPORT.md (with the soak of `make soak` when
# bench/out/soak.md is there) and bench/plots/python-vs-conlab.svg. The
# other plots are the parts' own, all in bench/plots/.
#
# Exit status: 0, or 1 if any part failed. Each part's tunables pass
# through the environment (see each script); a quick check of the scripts
# rather than a measurement:
#   ROUNDS=1 DURATION=2s WARMUP=1s PRIME_ROUNDS=1 THROUGHPUT_ROUNDS=1 \
#   SINGLE_DURATION=1s SAMPLES=10 TUTORIAL_ROUNDS=1 TUTORIAL_LIMIT=300000 \
#   RUNS=1 MIXED_ROUNDS=1 MIXED_DURATION=3s LIMITS_MIXES=1 bench/all.sh build
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

BENCH_PARTS=${BENCH_PARTS:-health cpu loop overhead mixed state limits}
START_TIMEOUT_S=10
STOP_TIMEOUT_S=30

root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/bench"
all="$root/bench/out/all"
build=$1

for part in $BENCH_PARTS; do
    case $part in
    health | cpu | loop | overhead | mixed | state | limits) ;;
    *)
        echo "bench: unknown part '$part' (health cpu loop overhead mixed" \
            "state limits)" >&2
        exit 2
        ;;
    esac
done
require_tools python3

mkdir -p "$all"
rm -rf "${all:?}"/*

part_pid=""

# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$part_pid" ]; then
        stop_server "$part_pid" "the running part"
    fi
}
trap_cleanup

snap() {
    python3 "$bench/report.py" snap --bench-pid $$ \
        --out "$all/snaps.jsonl" "$@"
}

machine_facts
memory=$(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' \
    /proc/meminfo)
if grep -qw hypervisor /proc/cpuinfo; then
    virt="a virtual machine (the CPU's hypervisor flag is set)"
else
    virt="no hypervisor flag"
fi
py=/usr/bin/python3
versions="wrk $({ wrk -v 2>&1 || true; } | awk 'NR == 1 { print $2 }')"
versions="$versions, $(nginx -v 2>&1 | sed 's|^nginx version: ||')"
versions="$versions, Python $("$py" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo '?')"
versions="$versions with aiohttp $("$py" -c 'import aiohttp; print(aiohttp.__version__)' 2>/dev/null || echo '?')"
versions="$versions, libmicrohttpd $(pkg-config --modversion libmicrohttpd 2>/dev/null || echo '?')"
versions="$versions, libcurl $(pkg-config --modversion libcurl 2>/dev/null || echo '?')"
versions="$versions, $(cc --version 2>/dev/null | head -n 1 || echo 'cc ?')"
versions="$versions, $(gnuplot --version 2>/dev/null || echo 'no gnuplot')"

snap --label start --facts "date=$started" "commit=$(commit_facts "$root")" \
    "cores=$cores" "model=$model" "kernel=$kernel" "memory=$memory" \
    "virt=$virt" "versions=$versions"
echo "bench: parts: $BENCH_PARTS; $cores cores ($model), load $load_before"

failed=""
for part in $BENCH_PARTS; do
    case $part in
    health) script=run.sh ;;
    *) script=$part.sh ;;
    esac
    echo "bench: ==== $part: bench/$script $build"
    # In the background and waited for, so that a signal reaches the traps
    # at once and the clean-up can stop the part (which stops its servers).
    "$bench/$script" "$build" &
    part_pid=$!
    rc=0
    wait "$part_pid" || rc=$?
    part_pid=""
    snap --label "$part" --status "$rc"
    if [ "$rc" -ne 0 ]; then
        echo "bench: $part failed (exit status $rc)" >&2
        failed="$failed $part"
    fi
done

python3 "$bench/report.py" assemble --out "$bench/REPORT.md"
if [ -n "$failed" ]; then
    echo "bench: failed:$failed" >&2
    exit 1
fi

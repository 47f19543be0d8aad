#!/usr/bin/env bash
# The soak test of `make soak`: two minutes of the mixed wrk load
# (bench/mixed.lua) on one conlab, its memory sampled every 5 s, a table, a
# plot (bench/plots/soak.svg) and a verdict computed from the samples: the
# VmRSS of the server and its workers grew by less than SOAK_MAX_GROWTH
# (5) percent over the last minute of the load. The soak's own report is
# bench/out/soak.md; bench/report.py assemble then rewrites bench/REPORT.md
# with it beside the last `make bench` run's parts (when bench/out/ holds
# one; else REPORT.md is left as it is, and the next `make bench` adds the
# soak).
#
# usage: bench/soak.sh BUILD_DIR
#
# Exit status: 0, or 1 if bench/mixed.sh --soak fails (conlab did not stop
# cleanly, wrk saw errors, an answer was not 2xx, the verdict is FAIL).
# Tunables (environment): SOAK_DURATION (120s), SAMPLE_EVERY_S (5),
# SOAK_MAX_GROWTH (5), CONNECTIONS (64), and bench/mixed.sh's others.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
START_TIMEOUT_S=10
STOP_TIMEOUT_S=30
bench=$(cd "$(dirname "$0")" && pwd)

soak_pid=""

# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$soak_pid" ]; then
        stop_server "$soak_pid" "bench/mixed.sh --soak"
    fi
}
trap_cleanup

# In the background and waited for, so that a signal reaches the traps at
# once and the clean-up can stop it (which stops its server).
"$bench/mixed.sh" --soak "$1" &
soak_pid=$!
status=0
wait "$soak_pid" || status=$?
soak_pid=""

# REPORT.md is rebuilt from the parts in bench/out/: without a bench run
# there (a fresh clone), rebuilding would drop the committed report's
# figures, so it is left as it is.
snaps="$bench/out/all/snaps.jsonl"
if [ -f "$snaps" ] && [ "$(wc -l <"$snaps")" -ge 2 ]; then
    python3 "$bench/report.py" assemble --out "$bench/REPORT.md" || status=1
else
    echo "bench: no \`make bench\` run in bench/out/: bench/REPORT.md left" \
        "as it is; the soak is in bench/out/soak.md (and will be in" \
        "REPORT.md after the next \`make bench\`)"
fi
exit "$status"

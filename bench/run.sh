#!/usr/bin/env bash
# Benchmarks GET /health of conlab against bench/minimal, the bare
# libmicrohttpd baseline configured like conlab's daemon.
#
# usage: bench/run.sh BUILD_DIR     (`make bench` runs: bench/run.sh build)
#
# Both servers run on free ports of 127.0.0.1 with 2 request threads; conlab
# writes its normal per-request access log to bench/out/conlab.log, as a
# deployment would. wrk then measures them in turn, conlab then minimal, for
# ROUNDS rounds, each run after a warm-up of its own. Per server: the median
# requests/s, p50 and p99 latency of the rounds, wrk's errors (socket errors
# plus non-2xx/3xx answers) summed over the rounds, and the median server
# CPU time (user + system, from /proc) per request: wrk runs on the same
# cores, so requests/s swings from run to run while CPU per request is
# steadier. Linux only (/proc). The table goes to stdout and, as markdown,
# to bench/out/health.md; raw wrk outputs stay in bench/out/. Both servers
# are stopped with SIGTERM, on failure and Ctrl-C too, and conlab must
# exit 0.
#
# Exit status: 0, or 1 if a server fails to start or stop cleanly, wrk
# fails, or wrk reports errors. Tunables (environment): ROUNDS (5),
# DURATION (10s), WARMUP (2s), CONNECTIONS (64), WRK_THREADS (2),
# SERVER_THREADS (2), BENCH_CONLAB_ARGS (extra conlab options, e.g.
# "--log-level warn" to measure without the access log).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
SERVER_THREADS=${SERVER_THREADS:-2}
BENCH_CONLAB_ARGS=${BENCH_CONLAB_ARGS:-}
START_TIMEOUT_S=10
STOP_TIMEOUT_S=15

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
out="$root/bench/out"
conlab_bin="$build/conlab"
minimal_bin="$build/bench/minimal"
cd "$root" # conlab's default --web-root is ./web

for bin in "$conlab_bin" "$minimal_bin"; do
    if [ ! -x "$bin" ]; then
        echo "bench: $bin is missing (make all $1/bench/minimal)" >&2
        exit 1
    fi
done
require_tools wrk curl python3

clear_conlab_env

mkdir -p "$out"
rm -f "$out"/wrk-*.txt "$out"/cpu-*.txt "$out"/health.md \
    "$out"/conlab.log "$out"/minimal.log


conlab_pid=""
minimal_pid=""

# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$conlab_pid" ]; then
        stop_server "$conlab_pid" conlab
    fi
    if [ -n "$minimal_pid" ]; then
        stop_server "$minimal_pid" minimal
    fi
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT
trap 'echo "bench: terminated" >&2; exit 143' TERM

# shellcheck disable=SC2086 # BENCH_CONLAB_ARGS is a list of options
"$conlab_bin" --port 0 --threads "$SERVER_THREADS" $BENCH_CONLAB_ARGS \
    >"$out/conlab.log" 2>&1 &
conlab_pid=$!
"$minimal_bin" 0 "$SERVER_THREADS" >"$out/minimal.log" 2>&1 &
minimal_pid=$!

conlab_port=$(wait_listening "$conlab_pid" "$out/conlab.log" conlab)
minimal_port=$(wait_listening "$minimal_pid" "$out/minimal.log" minimal)

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cores=$(nproc)
model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo |
    head -n 1)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: conlab on 127.0.0.1:$conlab_port (pid $conlab_pid)," \
    "minimal on 127.0.0.1:$minimal_port (pid $minimal_pid)"
echo "bench: $cores cores ($model), load $load_before;" \
    "wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds"

for round in $(seq 1 "$ROUNDS"); do
    for name in conlab minimal; do
        if [ "$name" = conlab ]; then
            port=$conlab_port pid=$conlab_pid
        else
            port=$minimal_port pid=$minimal_pid
        fi
        url="http://127.0.0.1:$port/health"
        wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$url" \
            >"$out/wrk-$name-warmup-$round.txt"
        ticks_before=$(cpu_ticks "$pid")
        wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
            "$url" >"$out/wrk-$name-$round.txt"
        echo $(($(cpu_ticks "$pid") - ticks_before)) \
            >"$out/cpu-$name-$round.txt"
        rps=$(sed -n 's/^Requests\/sec:[[:space:]]*//p' \
            "$out/wrk-$name-$round.txt")
        echo "bench: round $round $name: ${rps:-?} requests/s"
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Stop both before reporting, so their exit is part of the verdict.
status=0
stop_server "$conlab_pid" conlab
conlab_pid=""
conlab_rc=$stopped_rc
stop_server "$minimal_pid" minimal
minimal_pid=""
minimal_rc=$stopped_rc
if [ "$conlab_rc" -ne 0 ]; then
    echo "bench: conlab exited $conlab_rc after SIGTERM (expected 0)" >&2
    tail -n 5 "$out/conlab.log" | sed 's/^/    /' >&2
    status=1
fi
if [ "$minimal_rc" -ne 0 ]; then
    echo "bench: minimal exited $minimal_rc after SIGTERM (expected 0)" >&2
    status=1
fi
log_bytes=$(stat -c %s "$out/conlab.log")
log_lines=$(wc -l <"$out/conlab.log")
# The access log runs to hundreds of MB: keep its head and tail only.
{ head -n 20 "$out/conlab.log"; echo "[... $log_lines lines in all ...]"
  tail -n 20 "$out/conlab.log"; } >"$out/conlab.log.part"
mv "$out/conlab.log.part" "$out/conlab.log"

export BENCH_OUT=$out BENCH_DATE=$started BENCH_CORES=$cores \
    BENCH_MODEL=$model BENCH_LOAD_BEFORE=$load_before \
    BENCH_LOAD_AFTER=$load_after BENCH_LOG_LINES=$log_lines \
    BENCH_LOG_BYTES=$log_bytes ROUNDS DURATION WARMUP CONNECTIONS \
    WRK_THREADS SERVER_THREADS BENCH_CONLAB_ARGS
python3 - <<'EOF' || status=1
import os, re, statistics, sys

env = os.environ
out, rounds = env["BENCH_OUT"], int(env["ROUNDS"])
servers = ("conlab", "minimal")
units = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse(path):
    text = open(path).read()
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if not rps:
        sys.exit("bench: no Requests/sec in " + path)
    lat = {}
    for pct, value, unit in re.findall(
            r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M):
        lat[pct] = float(value) * units[unit]
    if set(lat) != {"50", "99"}:
        sys.exit("bench: no latency distribution in " + path)
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), "
                     r"write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(n) for n in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    done = re.search(r"^\s*(\d+) requests in", text, re.M)
    return float(rps.group(1)), lat["50"], lat["99"], errors, int(done.group(1))


def cpu_us(name, r, requests):
    """Server CPU (user + system) per request, in microseconds."""
    ticks = int(open(f"{out}/cpu-{name}-{r}.txt").read())
    return ticks / os.sysconf("SC_CLK_TCK") * 1e6 / max(requests, 1)


rows = {}
for name in servers:
    runs = [parse(f"{out}/wrk-{name}-{r}.txt") for r in range(1, rounds + 1)]
    cpu = [cpu_us(name, r, runs[r - 1][4]) for r in range(1, rounds + 1)]
    rows[name] = {
        "cpu": statistics.median(cpu),
        "rps": statistics.median(r[0] for r in runs),
        "p50": statistics.median(r[1] for r in runs),
        "p99": statistics.median(r[2] for r in runs),
        "errors": sum(r[3] for r in runs),
        "each": [r[0] for r in runs],
    }
ratio = rows["conlab"]["rps"] / rows["minimal"]["rps"]
cpu_ratio = rows["conlab"]["cpu"] / rows["minimal"]["cpu"]

head = ("server", "requests/s", "p50 ms", "p99 ms", "errors",
        "server CPU us/req", "requests/s per round")
cells = {n: (n, f"{r['rps']:.0f}", f"{r['p50']:.3f}", f"{r['p99']:.3f}",
             str(r["errors"]), f"{r['cpu']:.2f}",
             " / ".join(f"{x:.0f}" for x in r["each"]))
         for n, r in rows.items()}
widths = [max(len(head[i]), *(len(c[i]) for c in cells.values()))
          for i in range(len(head))]
line = lambda c: "  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip()
print()
print(line(head))
for n in servers:
    print(line(cells[n]))
print(f"\nratio conlab/minimal (median requests/s): {ratio:.3f}")
print(f"server CPU per request, conlab/minimal: {cpu_ratio:.3f}")

wrk_cmd = (f"wrk -t{env['WRK_THREADS']} -c{env['CONNECTIONS']} "
           f"-d{env['DURATION']} --latency http://127.0.0.1:PORT/health")
conlab_cmd = (f"conlab --port 0 --threads {env['SERVER_THREADS']} "
              f"{env['BENCH_CONLAB_ARGS']}").rstrip()
with open(f"{out}/health.md", "w") as md:
    md.write("# Benchmark: GET /health, conlab vs minimal libmicrohttpd\n\n")
    md.write(f"- date: {env['BENCH_DATE']}\n")
    md.write(f"- machine: {env['BENCH_CORES']} cores, {env['BENCH_MODEL']}; "
             f"load average {env['BENCH_LOAD_BEFORE']} before, "
             f"{env['BENCH_LOAD_AFTER']} after\n")
    md.write(f"- wrk: `{wrk_cmd}`, {rounds} rounds alternating "
             f"conlab/minimal, {env['WARMUP']} warm-up before each run; "
             f"wrk shares the machine with the servers\n")
    md.write(f"- servers: `{conlab_cmd}` with its access log to a file "
             f"({env['BENCH_LOG_LINES']} lines, {env['BENCH_LOG_BYTES']} "
             f"bytes); `minimal 0 {env['SERVER_THREADS']}`\n")
    md.write("- figures: medians over the rounds; errors are wrk's socket "
             "errors plus non-2xx/3xx responses, summed over the rounds; "
             "server CPU is the server process's user + system time per "
             "request (steadier than requests/s when wrk and the server "
             "share the cores)\n\n")
    md.write("| " + " | ".join(head) + " |\n")
    md.write("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|\n")
    for n in servers:
        md.write("| " + " | ".join(cells[n]) + " |\n")
    md.write(f"\n**Ratio conlab/minimal (median requests/s): {ratio:.3f}**\n")
    md.write(f"\nServer CPU per request, conlab/minimal: {cpu_ratio:.3f}\n")

errors = sum(r["errors"] for r in rows.values())
if errors:
    print(f"bench: wrk reported {errors} errors", file=sys.stderr)
    sys.exit(1)
EOF

echo "bench: written $out/health.md"
exit "$status"

#!/usr/bin/env python3
"""The reporting half of bench/run.sh (which starts and stops the servers
and runs wrk): GET /health of conlab against minimal libmicrohttpd and
nginx. Only the Python standard library is used (and bench/cpu.py's
helpers).

    health.py report --dir RAW_DIR --md FILE.md
        Reads RAW_DIR/wrk-SERVER-cN-ROUND.txt (wrk with bench/cpu.lua),
        cpu-*.txt (server CPU ticks during the run), rss-*.txt (VmRSS in
        KiB half-way through), answers.txt and the access logs' sizes;
        prints the tables and writes them as markdown to FILE.md, the
        figures to RAW_DIR/summary.json (for bench/report.py) and the plot
        bench/plots/health.svg. Exit status 1 when any run shows errors
        (socket errors or non-2xx answers).
"""

import argparse
import json
import os
import statistics
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in bench/
from cpu import parse_wrk, plot, table, write_report  # noqa: E402

SERVERS = ("conlab", "minimal", "nginx")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def figures(raw, name, conns, rounds):
    """Medians over the rounds of one server at one connection count."""
    runs = []
    for r in range(1, rounds + 1):
        tag = f"{name}-c{conns}-{r}"
        fig = parse_wrk(f"{raw}/wrk-{tag}.txt")
        with open(f"{raw}/cpu-{tag}.txt") as f:
            ticks = int(f.read())
        with open(f"{raw}/rss-{tag}.txt") as f:
            fig["rss_kib"] = int(f.read())
        fig["cpu_us"] = ticks / CLK_TCK * 1e6 / max(fig["requests"], 1)
        runs.append(fig)
    return {
        "rps": statistics.median(f["rps"] for f in runs),
        "p50_ms": statistics.median(f["p50_us"] for f in runs) / 1e3,
        "p99_ms": statistics.median(f["p99_us"] for f in runs) / 1e3,
        "errors": sum(f["errors"] for f in runs),
        "cpu_us": statistics.median(f["cpu_us"] for f in runs),
        "rss_mib": statistics.median(f["rss_kib"] for f in runs) / 1024,
        "each": [f["rps"] for f in runs],
    }


def cmd_report(args):
    env = os.environ
    raw = args.dir
    rounds = int(env["ROUNDS"])
    conn_list = [int(c) for c in env["CONNECTIONS"].split()]
    figs = {c: {n: figures(raw, n, c, rounds) for n in SERVERS}
            for c in conn_list}

    answers = {}
    with open(f"{raw}/answers.txt") as f:
        for line in f:
            name, head, body, ctype = line.rstrip("\n").split(" ", 3)
            answers[name] = (int(head), int(body), ctype)
    logs = {}
    for name, path in (("conlab", "conlab.log"),
                       ("nginx", "nginx/access.log")):
        with open(f"{raw}/{path}.size") as f:
            lines, size = f.read().split()
            logs[name] = (int(lines), int(size))

    out = []
    head = ("server", "requests/s", "p50 ms", "p99 ms", "errors",
            "server CPU us/req", "RSS MiB", "requests/s per round")
    for c in conn_list:
        rows = [(n, f"{r['rps']:.0f}", f"{r['p50_ms']:.3f}",
                 f"{r['p99_ms']:.3f}", str(r["errors"]),
                 f"{r['cpu_us']:.2f}", f"{r['rss_mib']:.1f}",
                 " / ".join(f"{x:.0f}" for x in r["each"]))
                for n, r in figs[c].items()]
        out.append(("h", f"{c} connections"))
        out.append(("t", table(head, rows)))
        con = figs[c]["conlab"]
        out.append(("l", [
            f"conlab / {peer} (median requests/s): "
            f"**{con['rps'] / figs[c][peer]['rps']:.3f}**; server CPU per "
            f"request, conlab / {peer}: "
            f"{con['cpu_us'] / figs[c][peer]['cpu_us']:.2f}"
            for peer in ("minimal", "nginx")]))

    rows = []
    for c in conn_list:
        con = figs[c]["conlab"]
        rows.append((str(c),
                     *(f"{figs[c][n]['rps']:.0f}" for n in SERVERS),
                     f"{con['rps'] / figs[c]['minimal']['rps']:.3f}",
                     f"{con['rps'] / figs[c]['nginx']['rps']:.3f}"))
    out.insert(0, ("t", table(("connections", "conlab req/s",
                               "minimal req/s", "nginx req/s",
                               "conlab/minimal", "conlab/nginx"), rows)))
    out.insert(0, ("h", "Requests/s, medians, and ratios"))

    data = "".join(
        f"{i} {c} " + " ".join(f"{figs[c][n]['rps']:.0f}" for n in SERVERS)
        + " " + " ".join(f"{figs[c][n]['p99_ms']:.4f}" for n in SERVERS)
        + "\n" for i, c in enumerate(conn_list))
    link = plot("health", data, f"""
set multiplot layout 1,2 title "GET /health on {env['BENCH_CORES']} cores, wrk on the same cores (medians of {rounds} round{'s' if rounds != 1 else ''})"
set xtics ({", ".join(f'"{c}" {i}' for i, c in enumerate(conn_list))})
set xrange [-0.3:{len(conn_list) - 0.7}]
set xlabel "connections"
set grid ytics
set key bottom left
set ylabel "requests/s"
set yrange [0:*]
set format y "%.0s%c"
plot data using 1:3 with linespoints lw 2 pt 7 title "conlab", \\
     '' using 1:4 with linespoints lw 2 pt 5 title "minimal libmicrohttpd", \\
     '' using 1:5 with linespoints lw 2 pt 9 title "nginx"
set ylabel "p99 latency, ms (log)"
set logscale y
set yrange [*:*]
set format y "%g"
unset key
plot data using 1:6 with linespoints lw 2 pt 7 title "conlab", \\
     '' using 1:7 with linespoints lw 2 pt 5 title "minimal libmicrohttpd", \\
     '' using 1:8 with linespoints lw 2 pt 9 title "nginx"
unset multiplot""", f"{raw}/plot", size=(900, 420))
    if link:
        out.insert(2, ("p", f"![requests/s and p99 latency of GET /health "
                            f"per server and connection count]({link})"))

    wrk_cmd = (f"wrk -t{env['WRK_THREADS']} -cN -d{env['DURATION']} "
               "--latency -s bench/cpu.lua")
    conlab_cmd = (f"conlab --port 0 --threads {env['SERVER_THREADS']} "
                  f"{env['BENCH_CONLAB_ARGS']}").rstrip()
    meta = [
        f"date: {env['BENCH_DATE']}",
        f"machine: {env['BENCH_CORES']} cores, {env['BENCH_MODEL']}, "
        f"{env['BENCH_KERNEL']}; load average {env['BENCH_LOAD_BEFORE']} "
        f"before, {env['BENCH_LOAD_AFTER']} after",
        f"load: `{wrk_cmd}` (wrk {env['BENCH_WRK']}) with N = "
        f"{', '.join(map(str, conn_list))}; {rounds} rounds, each running "
        f"every connection count on every server in turn (the order "
        f"rotates each round), a {env['WARMUP']} warm-up before each run; "
        "wrk shares the cores with the servers",
        f"conlab: `{conlab_cmd}`, its access log to a file "
        f"({logs['conlab'][0]} lines, {logs['conlab'][1]} bytes)",
        f"minimal: `bench/minimal 0 {env['SERVER_THREADS']} BODY_FILE`, the "
        "same libmicrohttpd options as conlab, no log",
        f"nginx: Debian's {env['BENCH_NGINX']}, `worker_processes "
        f"{env['SERVER_THREADS']}`, `return 200` of the body, combined "
        "access log to a file buffered and flushed every 100 ms "
        f"({logs['nginx'][0]} lines, {logs['nginx'][1]} bytes), "
        "`keepalive_requests` raised (the default closes a connection "
        "after 1,000 requests); configuration in bench/out/health/nginx/",
        "the same body from all three: conlab's own /health answer, taken "
        "at start (" + ", ".join(
            f"{n} {a[0]} header + {a[1]} body bytes" for n, a in
            answers.items()) + f"; `{answers['conlab'][2]}`; conlab's own "
        "body grows by a few digits as its counters grow)",
        "figures: medians over the rounds; errors are wrk's socket errors "
        "plus non-2xx answers, summed; server CPU is the user + system time "
        "of the server and its children (nginx's workers, conlab's idle "
        "worker processes) per request; RSS the same processes' VmRSS "
        "half-way through the run",
    ]
    write_report("Benchmark: GET /health",
                 "Benchmark: GET /health, conlab vs minimal libmicrohttpd "
                 "vs nginx", meta, out, args.md)

    summary = {"connections": conn_list, "rounds": rounds,
               "duration": env["DURATION"], "plot": link,
               "servers": {str(c): figs[c] for c in conn_list}}
    with open(f"{raw}/summary.json", "w") as f:
        json.dump(summary, f, indent=1)

    errors = sum(figs[c][n]["errors"] for c in conn_list for n in SERVERS)
    if errors:
        print(f"bench: wrk reported {errors} errors", file=sys.stderr)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report")
    r.add_argument("--dir", required=True)
    r.add_argument("--md", required=True)
    args = ap.parse_args()
    return cmd_report(args)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The measuring and reporting half of bench/mixed.sh and bench/soak.sh
(which start and stop the server and run wrk with bench/mixed.lua). Only
the Python standard library is used (and bench/cpu.py's helpers), and
only 127.0.0.1 is contacted.

    mixed.py sample --pid PID --port P --every S --for S --out FILE.jsonl
        Every S seconds, for at most --for seconds or until SIGTERM:
        appends one line (t: seconds since the first sample, wall: the
        epoch time) with the server's VmRSS and its workers' (from
        /proc), its open descriptors and threads, and the counters of its
        /health (requests completed, jobs completed, timers and transfers
        in flight; null when /health does not answer within 2 s).
    mixed.py report --kind mixed|soak --dir RAW_DIR --md FILE.md
        Reads RAW_DIR/wrk-N.txt (wrk with bench/mixed.lua), samples.jsonl
        and conlab.log (the access log); prints the tables and writes them
        as markdown to FILE.md, the figures to RAW_DIR/summary.json (for
        bench/report.py) and the plot bench/plots/KIND.svg (memory and
        throughput over time). A soak adds the table of every sample and a
        verdict computed from them: the total VmRSS (server and workers)
        grew by less than SOAK_MAX_GROWTH percent over the last minute of
        the load (a least-squares line through that minute's samples).
        Exit status 1 when wrk saw errors, an answer was not 2xx (a 503 of
        a full queue included), or a soak's verdict is FAIL.
"""

import argparse
import json
import os
import re
import signal
import statistics
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in bench/
from cpu import (  # noqa: E402
    get, parse_wrk, plot, table, tree_rss_kib, write_report)

HEALTH_TIMEOUT_S = 2


def proc_count(pid, what):
    """Open descriptors ("fd") or threads ("task") of pid."""
    return len(os.listdir(f"/proc/{pid}/{what}"))


def cmd_sample(args):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    start = time.monotonic()
    with open(args.out, "a") as f:
        while not stop and time.monotonic() - start <= args.seconds:
            t = time.monotonic() - start
            try:
                own, kids = tree_rss_kib(args.pid)
                fds = proc_count(args.pid, "fd")
                threads = proc_count(args.pid, "task")
            except OSError:
                break  # the server is gone: its stopping says why
            health = None
            try:
                status, body, ms = get(args.port, "/health",
                                       HEALTH_TIMEOUT_S)
                if status == 200:
                    pools = json.loads(body)["pools"]
                    health = {"ms": ms,
                              "http": pools["http"]["completed"],
                              "jobs": pools["process"]["completed"],
                              "timers": pools["loop"]["timers"],
                              "transfers": pools["loop"]["transfers"]}
            except (OSError, ValueError, KeyError):
                pass
            f.write(json.dumps({"t": t, "wall": time.time(),
                                "rss_kib": own, "workers_kib": kids,
                                "fds": fds, "threads": threads,
                                "health": health}) + "\n")
            f.flush()
            # Sleep to the next multiple of the period, waking for SIGTERM.
            wake = start + (int(t / args.every) + 1) * args.every
            while not stop and time.monotonic() < wake:
                time.sleep(min(0.1, max(0.0, wake - time.monotonic())))
    return 0


def access_log(path):
    """{target: {status: count}} and {target: [server ms]} of the access
    log; status "0" or "499" is a request whose client left before the
    answer (wrk closes its connections with requests in flight when a run
    ends): nothing was sent."""
    line_re = re.compile(r" (GET|HEAD) (\S+) (\d{1,3}) \d+B (\d+)us")
    counts, times = {}, {}
    with open(path, errors="replace") as f:
        for line in f:
            m = line_re.search(line)
            if not m:
                continue
            target, status, us = m.group(2), m.group(3), int(m.group(4))
            counts.setdefault(target, {})
            counts[target][status] = counts[target].get(status, 0) + 1
            if status.startswith("2"):
                times.setdefault(target, []).append(us / 1e3)
    return counts, times


def pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1,
                             int(len(sorted_values) * p / 100))]


def linear_fit(points):
    """(slope, intercept) of the least-squares line through (x, y)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0, my
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return slope, my - slope * mx


def cmd_report(args):
    env = os.environ
    raw = args.dir
    soak = args.kind == "soak"
    rounds = int(env["MIXED_ROUNDS"])
    status = 0
    out = []

    runs = []
    for r in range(1, rounds + 1):
        path = f"{raw}/wrk-{r}.txt"
        fig = parse_wrk(path)
        with open(path) as f:
            m = re.search(r"^CONLAB-STATUS(.*)$", f.read(), re.M)
        fig["statuses"] = dict(
            (k, int(v)) for k, v in
            (kv.split("=") for kv in (m.group(1).split() if m else [])))
        runs.append(fig)
    statuses = {}
    for fig in runs:
        for k, v in fig["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    socket_errors = sum(int(f[k]) for f in runs
                        for k in ("connect", "read", "write", "timeout"))
    not_ok = sum(v for k, v in statuses.items() if not k.startswith("2"))
    if socket_errors or not_ok:
        status = 1

    samples = [json.loads(line) for line in open(f"{raw}/samples.jsonl")]
    # The load's span (warm-up included) on the samples' clock.
    offset = samples[0]["wall"] - samples[0]["t"]
    load_start = float(env["MIXED_LOAD_START"]) - offset
    load_end = float(env["MIXED_LOAD_END"]) - offset

    def total_mib(s):
        return (s["rss_kib"] + s["workers_kib"]) / 1024

    before = [s for s in samples if s["t"] < load_start]
    during = [s for s in samples if load_start <= s["t"] <= load_end]
    after = [s for s in samples if s["t"] > load_end]
    first, last = samples[0], samples[-1]
    peak = max(samples, key=total_mib)

    # Throughput over time from /health's completed counter.
    rate = []
    prev = None
    for s in samples:
        h = s["health"]
        if h and prev and prev["health"]:
            dt = s["t"] - prev["t"]
            rate.append((s["t"], (h["http"] - prev["health"]["http"]) / dt))
        prev = s

    conns = env["CONNECTIONS"]
    duration = env["MIXED_DURATION"]
    head = ("run", "requests/s", "p50 ms", "p99 ms", "max ms", "requests",
            "socket errors", "answers by status")
    rows = [(str(i), f"{f['rps']:.0f}", f"{f['p50_us'] / 1e3:.2f}",
             f"{f['p99_us'] / 1e3:.2f}", f"{f['max_us'] / 1e3:.1f}",
             f"{f['requests']:.0f}",
             str(sum(int(f[k]) for k in ("connect", "read", "write",
                                         "timeout"))),
             ", ".join(f"{k}: {v}" for k, v in sorted(f["statuses"].items())))
            for i, f in enumerate(runs, 1)]
    med = {k: statistics.median(f[k] for f in runs)
           for k in ("rps", "p50_us", "p99_us", "max_us")}
    if rounds > 1:
        rows.append(("median", f"{med['rps']:.0f}",
                     f"{med['p50_us'] / 1e3:.2f}",
                     f"{med['p99_us'] / 1e3:.2f}",
                     f"{med['max_us'] / 1e3:.1f}", "", "", ""))
    out.append(("h", "Throughput and latency (client side, wrk)"))
    out.append(("p", f"`wrk -t2 -c{conns} -d{duration} --latency -s "
                     f"bench/mixed.lua`, {rounds} run(s) after a "
                     f"{env['WARMUP']} warm-up; latency over all the "
                     "requests of the mix (wrk cannot tell them apart: see "
                     "the server's own times per target below). Socket "
                     "errors: connect, read, write and timeout."))
    out.append(("t", table(head, rows)))
    out.append(("n", "Answers by status, all runs: " + ", ".join(
        f"{k}: {v}" for k, v in sorted(statuses.items()))
        + (f"; socket errors: {socket_errors}" if socket_errors else "")
        + ("" if not not_ok else " (ERROR: answers other than 2xx)")))

    counts, times = access_log(f"{raw}/conlab.log")
    rows = []
    for target in sorted(counts, key=lambda t: -sum(counts[t].values())):
        ms = sorted(times.get(target, []))
        rows.append((f"`{target}`", str(sum(counts[target].values())),
                     ", ".join(f"{k}: {v}" for k, v in
                               sorted(counts[target].items())),
                     f"{pct(ms, 50):.2f}", f"{pct(ms, 99):.2f}",
                     f"{ms[-1]:.1f}" if ms else "-"))
    out.append(("h", "Per target (server side, the access log)"))
    out.append(("p", "Every request the server logged during the whole run "
                     "(start-up, warm-up and the samples' /health "
                     "included); `/delay` is what the fetches asked of the "
                     "server itself. Times are the server's, from the "
                     "request's arrival to its answer's last byte, over the "
                     "2xx answers. Status 0 (or 499) is no answer: the "
                     "client had gone, as wrk's connections go with "
                     "requests in flight when a run ends."))
    out.append(("t", table(("target", "requests", "statuses", "p50 ms",
                            "p99 ms", "max ms"), rows)))
    bad = {(t, k): v for t, c in counts.items() for k, v in c.items()
           if not k.startswith("2") and k not in ("0", "499")}
    if bad:
        status = 1
        out.append(("n", "ERROR: non-2xx answers in the access log: "
                         + "; ".join(f"{v} x {k} on {t}"
                                     for (t, k), v in bad.items())))

    out.append(("h", "Memory"))
    mem_rows = []
    for label, s in (("before the load", before[-1] if before else first),
                     ("peak", peak),
                     ("after the load", after[-1] if after else last)):
        mem_rows.append((label, f"{s['t']:.0f}",
                         f"{s['rss_kib'] / 1024:.1f}",
                         f"{s['workers_kib'] / 1024:.1f}",
                         f"{total_mib(s):.1f}", str(s["fds"]),
                         str(s["threads"])))
    out.append(("p", f"conlab's VmRSS and its worker processes', its open "
                     "descriptors and threads, from /proc, sampled every "
                     f"{env['SAMPLE_EVERY_S']} s ({len(samples)} samples; "
                     f"the load ran from {load_start:.0f} s to "
                     f"{load_end:.0f} s)."))
    out.append(("t", table(("when", "t s", "server MiB", "workers MiB",
                            "total MiB", "descriptors", "threads"),
                           mem_rows)))

    verdict = None
    if soak:
        rows = []
        prev = None
        for s in samples:
            h = s["health"] or {}
            rps = "-"
            if h and prev and prev.get("health"):
                done = h["http"] - prev["health"]["http"]
                rps = f"{done / (s['t'] - prev['t']):.0f}"
            rows.append((f"{s['t']:.0f}", f"{s['rss_kib'] / 1024:.1f}",
                         f"{s['workers_kib'] / 1024:.1f}",
                         f"{total_mib(s):.1f}", str(s["fds"]),
                         str(s["threads"]), rps,
                         f"{h['ms']:.1f}" if h else "no answer",
                         str(h.get("timers", "-")),
                         str(h.get("transfers", "-"))))
            prev = s
        out.append(("h", "Every sample"))
        out.append(("p", "requests/s: completed requests (/health's "
                         "pools.http.completed) since the previous sample; "
                         "/health ms: the sample's own GET /health, client "
                         "side, under the load; timers and transfers: the "
                         "event loop's in flight."))
        out.append(("t", table(("t s", "server MiB", "workers MiB",
                                "total MiB", "descriptors", "threads",
                                "requests/s", "/health ms", "timers",
                                "transfers"), rows)))
        limit = float(env["SOAK_MAX_GROWTH"])
        window = [s for s in during if s["t"] >= load_end - 60]
        if len(window) >= 3:
            slope, icept = linear_fit([(s["t"], total_mib(s))
                                       for s in window])
            t0, t1 = window[0]["t"], window[-1]["t"]
            start_fit = slope * t0 + icept
            growth = 100 * slope * (t1 - t0) / start_fit
            ok = growth < limit
            verdict = {
                "ok": ok, "growth_pct": growth, "limit_pct": limit,
                "from_s": t0, "to_s": t1, "samples": len(window),
                "text": (f"{'PASS' if ok else 'FAIL'}: over the last minute "
                         f"of the load ({t0:.0f} s to {t1:.0f} s, "
                         f"{len(window)} samples) the total VmRSS "
                         f"(server and workers) changed by {growth:+.2f}% "
                         f"(least-squares line: {slope * 60:+.2f} MiB per "
                         f"minute from {start_fit:.1f} MiB); the limit is "
                         f"+{limit:g}%")}
        else:
            verdict = {"ok": False, "text": "FAIL: fewer than 3 samples in "
                                            "the last minute of the load"}
        if not verdict["ok"]:
            status = 1
        fds = [s["fds"] for s in window] or [0]
        out.insert(0, ("l", [f"**{verdict['text']}**",
                             f"open descriptors over the last minute: "
                             f"{min(fds)} to {max(fds)}; threads "
                             f"{min(s['threads'] for s in samples)} to "
                             f"{max(s['threads'] for s in samples)}"]))
        out.insert(0, ("h", "Verdict"))

    data = "".join(f"{s['t']:.2f} {s['rss_kib'] / 1024:.3f} "
                   f"{s['workers_kib'] / 1024:.3f} {total_mib(s):.3f}\n"
                   for s in samples)
    data += "\n\n" + "".join(f"{t:.2f} {r:.1f}\n" for t, r in rate)
    title = ("Soak: VmRSS under the mixed load" if soak else
             "VmRSS during the mixed load")
    link = plot(args.kind, data, f"""
set title "{title} ({conns} connections, {len(samples)} samples every {env['SAMPLE_EVERY_S']} s)"
set xlabel "seconds since the first sample (conlab just started)"
set ylabel "VmRSS, MiB"
set y2label "requests/s"
set yrange [0:*]
set y2range [0:*]
set ytics nomirror
set y2tics
set format y2 "%.0s%c"
set grid ytics
set key below horizontal
set object 1 rect from {load_start},graph 0 to {load_end},graph 1 fc rgb "#eeeeee" fs solid noborder behind
plot data index 0 using 1:4 with linespoints lw 2 pt 7 ps 0.6 title "server + workers", \\
     '' index 0 using 1:2 with lines lw 1 dt 2 title "server", \\
     '' index 0 using 1:3 with lines lw 1.5 dt 4 title "workers", \\
     '' index 1 using 1:2 axes x1y2 with fsteps lw 1 lc rgb "gray50" title "requests/s the server completed (right)"
""", f"{raw}/plot", size=(820, 420))
    if link:
        out.insert(0, ("p", f"![VmRSS and requests/s over time; the shaded "
                            f"span is the load]({link})"))

    mix = ("60% /health, 15% /run/prime?limit=50000&tasks=1&mode=processes, "
           "5% /run/prime?limit=50000&tasks=2&mode=threads, 10% "
           "/run/sleep?tasks=10&ms=20&mode=async, 10% "
           "/run/fetch?count=5&ms=10")
    conlab_cmd = (f"conlab --port 0 --threads {env['SERVER_THREADS']} "
                  f"--workers {env['SERVER_WORKERS']} "
                  f"{env.get('BENCH_CONLAB_ARGS', '')}").rstrip()
    with open(f"{raw}/snaps.jsonl") as f:
        first_snap, last_snap = [json.loads(line) for line in f][:2]
    span = (last_snap["t"] - first_snap["t"]) * int(env["BENCH_CORES"])
    others = max(0.0, (last_snap["busy"] - first_snap["busy"]) -
                 (last_snap["bench"] - first_snap["bench"])) / span
    steal = (last_snap["steal"] - first_snap["steal"]) / span
    meta = [
        f"date: {env['BENCH_DATE']}; commit {env['BENCH_COMMIT']}",
        f"machine: {env['BENCH_CORES']} cores, {env['BENCH_MODEL']}, "
        f"{env['BENCH_KERNEL']}; load average {env['BENCH_LOAD_BEFORE']} "
        f"before, {env['BENCH_LOAD_AFTER']} after; other programs used "
        f"{100 * others:.1f}% of the machine's CPU time meanwhile, steal "
        f"{100 * steal:.2f}% (/proc/stat)",
        f"server: `{conlab_cmd}`, access log to a file "
        f"({env['BENCH_LOG_LINES']} lines)",
        f"load: `wrk -t2 -c{conns} -d{duration} -s bench/mixed.lua`, "
        f"{rounds} run(s); the mix: {mix}",
    ]
    if soak:
        meta.append(f"command: `make soak` (bench/soak.sh); memory sampled "
                    f"every {env['SAMPLE_EVERY_S']} s")
    write_report("Soak" if soak else "Mixed load",
                 "Soak: the mixed load for "
                 f"{duration}" if soak else "Mixed load", meta, out, args.md)

    summary = {
        "date": env["BENCH_DATE"], "commit": env["BENCH_COMMIT"],
        "connections": int(conns), "duration": duration, "rounds": rounds,
        "rps": med["rps"], "p50_ms": med["p50_us"] / 1e3,
        "p99_ms": med["p99_us"] / 1e3, "max_ms": med["max_us"] / 1e3,
        "statuses": statuses, "socket_errors": socket_errors,
        "rss_before_mib": total_mib(before[-1] if before else first),
        "rss_peak_mib": total_mib(peak),
        "rss_after_mib": total_mib(after[-1] if after else last),
        "plot": link, "verdict": verdict,
        "others_pct": 100 * others, "steal_pct": 100 * steal,
    }
    with open(f"{raw}/summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--every", type=float, default=5)
    s.add_argument("--for", dest="seconds", type=float, required=True)
    s.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--kind", choices=("mixed", "soak"), required=True)
    r.add_argument("--dir", required=True)
    r.add_argument("--md", required=True)
    args = ap.parse_args()
    return {"sample": cmd_sample, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

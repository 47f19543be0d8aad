#!/usr/bin/env python3
"""The report assembler: bench/REPORT.md from the parts' reports. Only the
Python standard library is used (and bench/cpu.py's helpers).

    report.py snap --label TEXT --bench-pid PID --out FILE.jsonl
        Appends the machine's CPU time so far (/proc/stat: busy, idle,
        steal), the bench's (PID, bench/all.sh, with its reaped children:
        every part, its servers and clients) and the load average. The
        first snap of a run also records the facts given as KEY=VALUE
        arguments after --facts (date, commit, machine, versions).
    report.py assemble --out bench/REPORT.md
        Writes the report: the machine, the date, the commit, the load and
        steal during the run, a summary of every part (tables of medians
        and ratios, with links to the plots in bench/plots/) and then each
        part's own report in full (bench/out/PART.md, its headings moved
        one level down). The parts are those bench/all.sh ran, read from
        bench/out/all/snaps.jsonl; a part that failed or left no report is
        said to have. The soak (bench/out/soak.md, written by `make
        soak`) is added when present, with its own date and commit, so a
        soak older than the bench says so. Also draws
        bench/plots/python-vs-conlab.svg.

    report.py part --name state --into bench/REPORT.md
        Splices one part run alone (bench/state.sh BUILD) into an existing
        report: its summary section and its report in full, replacing
        those of an earlier run, each marked as run alone with its date,
        so that the rest of the report keeps its own run.

bench/all.sh calls snap and assemble; bench/soak.sh calls `assemble` after a
soak, so the soak appears in REPORT.md beside the last bench run's parts.
"""

import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in bench/
from cpu import CLK_TCK, plot, proc_times, table  # noqa: E402


def mdt(head, rows):
    """A markdown table, as one string."""
    return "\n".join(table(head, rows)[1])

BENCH = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(BENCH, "out")
PARTS = {  # part: (its script, its report in bench/out/)
    "health": ("bench/run.sh", "health.md"),
    "cpu": ("bench/cpu.sh", "cpu.md"),
    "loop": ("bench/loop.sh", "loop.md"),
    "overhead": ("bench/overhead.sh", "overhead.md"),
    "mixed": ("bench/mixed.sh", "mixed.md"),
    "state": ("bench/state.sh", "state.md"),
    "limits": ("bench/limits.sh", "limits.md"),
}


def cmd_snap(args):
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    own, reaped, _ = proc_times(args.bench_pid)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    snap = {"label": args.label, "t": time.time(),
            "busy": (sum(cpu[:8]) - cpu[3] - cpu[4]) / CLK_TCK,
            "idle": (cpu[3] + cpu[4]) / CLK_TCK, "steal": cpu[7] / CLK_TCK,
            "bench": own + reaped, "load": load}
    if args.status is not None:
        snap["status"] = args.status
    if args.facts:
        snap["facts"] = dict(kv.split("=", 1) for kv in args.facts)
    with open(args.out, "a") as f:
        f.write(json.dumps(snap) + "\n")
    return 0


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def demote(md):
    """A part's markdown with its headings one level down and its title
    line dropped (the report gives its own)."""
    lines = md.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join("#" + line if line.startswith("#") else line
                     for line in lines).strip("\n")


def fmt(x, spec=".1f"):
    return "-" if x is None else format(x, spec)


def health_summary(doc):
    conns = doc["connections"]
    rows = []
    for c in conns:
        f = doc["servers"][str(c)]
        rows.append((str(c), *(f"{f[n]['rps']:,.0f}" for n in
                               ("conlab", "minimal", "nginx")),
                     f"{f['conlab']['rps'] / f['minimal']['rps']:.2f}",
                     f"{f['conlab']['rps'] / f['nginx']['rps']:.2f}",
                     " / ".join(f"{f[n]['p99_ms']:.2f}" for n in
                                ("conlab", "minimal", "nginx")),
                     " / ".join(f"{f[n]['cpu_us']:.2f}" for n in
                                ("conlab", "minimal", "nginx")),
                     f"{f['conlab']['cpu_us'] / f['minimal']['cpu_us']:.2f}",
                     str(sum(f[n]["errors"] for n in f))))
    out = ["", mdt(("connections", "conlab req/s", "minimal req/s",
                      "nginx req/s", "conlab / minimal", "conlab / nginx",
                      "p99 ms conlab / minimal / nginx",
                      "server CPU us/req conlab / minimal / nginx",
                      "CPU conlab / minimal", "errors"),
                     rows)]
    return out


def limits_summary(doc):
    """The targets of issue 11 measured by bench/limits.sh, as one table
    (details below, in its own report)."""
    rows = []
    for m in doc.get("ceiling") or []:
        back = m.get("back_s")
        rows.append((
            f"memory ceiling, mix {m['mix']} ({m['clients']:,} clients)",
            f"peak {m['peak_mib']:.1f} MiB (idle {m['idle_mib']:.1f}); "
            + (f"{m['after_mib']:.1f} MiB after, back in {back:.1f} s"
               if back is not None else
               f"{fmt(m.get('after_mib'))} MiB after, not back"),
            "under 256 MiB; within 25% of idle a minute after",
            "PASS" if m["ok"] else "FAIL"))
    f = doc.get("fairness")
    if f:
        rows.append(("fairness: client B's /run/prime?limit=100000",
                     f"p99 {f['prime_p99_ms']:.1f} ms over {f['prime_n']}",
                     "200, p99 under 1 s",
                     "PASS" if f["prime_p99_ms"] < 1000 and not f["bad"]
                     else "FAIL"))
        rows.append(("fairness: client B's /health",
                     f"p99 {f['health_p99_ms']:.2f} ms over {f['health_n']}",
                     "p99 under 50 ms",
                     "PASS" if f["health_p99_ms"] < 50 else "FAIL"))
    p = doc.get("per_task")
    if p:
        rows.append(("memory per task: 20 x 10,000 sleeps of 1 s",
                     f"+{p['added_mib']:.1f} MiB", "+30 MiB at most",
                     "PASS" if p["added_mib"] <= 30 else "FAIL"))
        per_task = p["added_mib"] * 1048576 / (20 * 10000)
        rows.append(("bytes a task holds in flight (the same, per task: "
                     "its record, its timer, its share of the answer)",
                     f"{per_task:.0f} B", "256 B or fewer",
                     "PASS" if per_task <= 256 else "FAIL"))
        late = p.get("lateness_p99_ms")
        rows.append(("timer lateness meanwhile",
                     "-" if late is None else f"p99 {late:.2f} ms",
                     "p99 under 5 ms",
                     "PASS" if late is not None and late < 5 else "FAIL"))
    out = ["Issue 11's targets, measured by the integration tests' own "
           "cases (`tests/integration/run.py --limits --mixes all`, default "
           "options; details below)."]
    if doc.get("missing"):
        out += ["", "**Not measured: " + ", ".join(doc["missing"]) + ".**"]
    if rows:
        out += ["", mdt(("target", "measured", "required", "verdict"),
                        rows)]
    return out


def overhead_summary(doc):
    """The overhead part's table: conlab's units beside Python's."""
    def us(v):
        return f"{v:.1f} us" if v < 1000 else f"{v / 1000:.2f} ms"

    def size(b):
        if b >= 1 << 20:
            return f"{b / (1 << 20):.2f} MiB"
        return f"{b / 1024:.1f} KiB" if b >= 1024 else f"{b:.0f} B"

    pairs = [("thread", "threads", "threading.Thread"),
             ("pool job (prefork)", "processes", None),
             ("fresh process", "spawn", "multiprocessing.Process (spawn)"),
             ("fresh process (fork)", None,
              "multiprocessing.Process (fork)"),
             ("loop task", "async", "asyncio.create_task")]
    rows = []
    for label, ck, pk in pairs:
        c = doc["conlab"].get(ck) if ck else None
        p = doc["py"].get(pk) if pk else None
        rows.append((label,
                     us(c["start_us_median"]) if c else "-",
                     size(c["memory_bytes"]) if c else "-",
                     f"{pk}: " + us(p["start_us_median"]) if p else "-",
                     size(p["memory_bytes"]) if p else "-"))
    return [f"`/run/overhead` beside bench/python/overhead_units.py "
            f"(Python {doc['python']}), same unit counts, medians of "
            f"{doc['rounds']} rounds (methods in the part's report below).",
            "", mdt(("unit", "conlab start-up", "conlab memory",
                     "Python start-up", "Python memory"), rows)]
STATE_HEADING = "### Shared state: ns per increment, lost updates"


def state_section(doc, alone=None):
    """The summary section of the shared-state part; alone: the date of a
    run of that part by itself."""
    when = (f" This part was run alone ({alone}), not in the run above."
            if alone else "")
    if doc.get("load"):
        when += (f" Load average {doc['load']}: two threads overlap only "
                 "while both have a core, so the lost-update count falls "
                 "as other programs load the machine.")
    return [STATE_HEADING, "",
            "`/run/counter` on threads, medians of "
            f"{doc['rounds']} rounds of {doc['increments']:,} "
            "increments per task, beside the tutorials' Python "
            f"equivalents ({doc['py_increments']:,} per worker) in "
            f"the same run (details below).{when}"] + state_summary(doc)


def replace_section(lines, heading, new, before):
    """lines with the section under heading (up to the next heading of
    its level or higher) replaced by new; when absent, new goes before the
    first line starting with one of before (else at the end)."""
    level = len(heading) - len(heading.lstrip("#"))

    def ends(line):
        n = len(line) - len(line.lstrip("#"))
        return line.startswith("#") and 0 < n <= level

    if heading in lines:
        at = lines.index(heading)
        end = at + 1
        while end < len(lines) and not ends(lines[end]):
            end += 1
        return lines[:at] + new + [""] + lines[end:]
    for i, line in enumerate(lines):
        if any(line.startswith(b) for b in before):
            return lines[:i] + new + [""] + lines[i:]
    return lines + [""] + new


def cmd_part(args):
    doc = load_json(os.path.join(OUT, args.name, "summary.json"))
    path = os.path.join(OUT, PARTS[args.name][1])
    if not doc or not os.path.exists(path):
        print(f"bench: no {args.name} results in {OUT}: run "
              f"{PARTS[args.name][0]} first", file=sys.stderr)
        return 1
    with open(path) as f:
        title = f.readline().lstrip("# ").strip()
        details = demote("# x\n" + f.read())
    date = doc.get("date", "date unknown")
    with open(args.into) as f:
        lines = f.read().rstrip("\n").split("\n")
    lines = replace_section(lines, STATE_HEADING, state_section(doc, date),
                            ("### Soak", "## The run, part by part"))
    lines = replace_section(lines, f"## {title}",
                            [f"## {title}", "", details], ())
    with open(args.into, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"bench: {args.name} spliced into {args.into}")
    return 0


def state_summary(doc):
    """The shared-state bench's headline: ns per increment by sync at 1
    and 2 tasks, Python's lock equivalents, the lost-update frequency."""
    ns = {(c["mode"], c["sync"], c["tasks"]): c["ns"] for c in doc["conlab"]}
    py = {(p["kind"], p["sync"], p["workers"]): p["ns"]
          for p in doc["python"]}
    rows = [(f"conlab threads, sync={s}", fmt(ns.get(("threads", s, 1)),
                                               ".2f"),
             fmt(ns.get(("threads", s, 2)), ".2f"))
            for s in ("none", "lock", "atomic")]
    rows += [("Python threads, threading.Lock",
              fmt(py.get(("threads", "lock", 1))),
              fmt(py.get(("threads", "lock", 2)))),
             ("Python processes, multiprocessing.Value with its lock",
              fmt(py.get(("processes", "lock", 1))),
              fmt(py.get(("processes", "lock", 2))))]
    r = doc["race"]
    return ["", mdt(("counter", "1 task ns", "2 tasks ns"), rows), "",
            f"tasks=2, increments=1,000,000, threads, sync=none lost "
            f"updates in {r['lost_runs']} of {r['runs']} runs (median lost "
            f"{r['median_lost']:,.0f}); lock and atomic never lost one."]


def tutorial_rows(cpu, loop):
    """(label, python ms, conlab ms, ratio) of every comparison with the
    tutorials' programs, for the table and the plot."""
    rows = []
    if cpu and "tutorials" in cpu:
        for name, f in cpu["tutorials"]["pairs"].items():
            rows.append((name, f["python_ms"], f["conlab_client_ms"],
                         f["python_ms"] / f["conlab_client_ms"]))
    if loop:
        s, fe = loop["sleep"], loop["fetch"]
        rows.append(("10,000 sleeps of 1 s, asyncio / async",
                     s["python_wall_ms"], s["conlab_wall_ms"],
                     s["python_wall_ms"] / s["conlab_wall_ms"]))
        rows.append(("1,000 fetches of /delay?ms=100, aiohttp / async",
                     fe["python_wall_ms"], fe["conlab_wall_ms"],
                     fe["python_wall_ms"] / fe["conlab_wall_ms"]))
    return rows


def cmd_assemble(args):
    snaps_path = os.path.join(OUT, "all", "snaps.jsonl")
    try:
        with open(snaps_path) as f:
            snaps = [json.loads(line) for line in f]
    except OSError:
        snaps = []
    if len(snaps) < 2:
        snaps = []  # no part finished: an interrupted run, or none
    facts = snaps[0].get("facts", {}) if snaps else {}
    ran = [s for s in snaps[1:] if s["label"] in PARTS]
    cores = int(facts.get("cores", os.cpu_count()))

    md = ["# Concurrency Lab: benchmark report", ""]
    if snaps:
        total_min = (snaps[-1]["t"] - snaps[0]["t"]) / 60
        md.append(f"Written by `make bench` (bench/all.sh), "
                  f"{facts.get('date', '?')}; the run took "
                  f"{total_min:.1f} minutes. Every figure below comes from "
                  "this one run unless marked; servers and clients share "
                  "the machine's cores, so compare medians and ratios, not "
                  "single runs.")
    else:
        md.append("No finished `make bench` run is recorded in "
                  "bench/out/all/: only the soak, if any, below.")
    md.append("")
    if snaps:
        first, last = snaps[0], snaps[-1]
        dt = last["t"] - first["t"]
        busy = last["busy"] - first["busy"]
        bench = last["bench"] - first["bench"]
        others = max(0.0, busy - bench)
        steal = last["steal"] - first["steal"]
        md += [
            f"- commit: {facts.get('commit', '?')}",
            f"- machine: {facts.get('cores', '?')} cores, "
            f"{facts.get('model', '?')}, {facts.get('memory', '?')} of "
            f"memory; {facts.get('kernel', '?')}; "
            f"{facts.get('virt', 'virtualisation unknown')}",
            f"- load during the run: load average {first['load']} at the "
            f"start, {last['load']} at the end; other programs used "
            f"{100 * others / (cores * dt):.1f}% of the machine's CPU time "
            f"(all of its busy time less the bench's, from /proc/stat), "
            f"steal {100 * steal / (cores * dt):.2f}%",
            f"- software: {facts.get('versions', '?')}",
            f"- reproduce: `make bench` (about {total_min:.0f} minutes on "
            "this machine); `make soak` adds the soak section",
        ]

    state = load_json(os.path.join(OUT, "state", "summary.json"))
    cpu = load_json(os.path.join(OUT, "cpu", "summary.json"))
    loop = load_json(os.path.join(OUT, "loop", "summary.json"))
    health = load_json(os.path.join(OUT, "health", "summary.json"))
    mixed = load_json(os.path.join(OUT, "mixed", "summary.json"))
    soak = load_json(os.path.join(OUT, "soak", "summary.json"))
    soak_md = os.path.join(OUT, "soak.md")
    ran_names = {s["label"] for s in ran}

    md += ["", "## Summary"]
    if health and "health" in ran_names:
        md += ["", "### GET /health: conlab, minimal libmicrohttpd, nginx",
               "", f"`wrk -t2 -cN -d{health['duration']}` against each "
               "server answering the same body, medians of "
               f"{health['rounds']} rounds; ratios of the median "
               "requests/s, and of the median server CPU time per request "
               "(user + system, which holds when the machine is noisy; "
               "details below)."]
        md += health_summary(health)
        if health.get("plot"):
            md += ["", f"![GET /health: requests/s and p99 latency per "
                       f"server and connection count]({health['plot']})"]

    if state and "state" in ran_names:
        md += [""] + state_section(state)

    trows = tutorial_rows(cpu if "cpu" in ran_names else None,
                          loop if "loop" in ran_names else None)
    if trows:
        md += ["", "### The tutorials' Python programs against conlab", "",
               "The same workload as the tutorials' programs "
               "(bench/python/, Debian's python3) and through conlab's "
               "endpoint; medians. Python ms is the program's own timer "
               "where the tutorial puts it; conlab ms the whole HTTP "
               "request as the client saw it (the loop's rows: the "
               "server's wall_ms, as the Python side times only the "
               "gather)."]
        rows = [(n, f"{p:,.1f}", f"{c:,.1f}", f"{r:,.1f}x")
                for n, p, c, r in trows]
        if loop and "loop" in ran_names:
            s, fe = loop["sleep"], loop["fetch"]
            for label, py_mib, cl_mib in (
                    ("10,000 sleeps: memory added while waiting, MiB",
                     s["python_added_mib"], s["conlab_added_waiting_mib"]),
                    ("1,000 fetches: memory added, client and server, MiB",
                     fe["python_added_mib"], fe["conlab_added_mib"])):
                rows.append((label, f"{py_mib:.1f}", f"{cl_mib:.1f}",
                             f"{py_mib / cl_mib:.1f}x" if cl_mib else "-"))
        md += ["", mdt(("workload", "Python ms", "conlab ms",
                          "Python / conlab"), rows)]
        data = "".join(f"{i} {r:.4f} \"{n}\"\n"
                       for i, (n, _, _, r) in enumerate(reversed(trows)))
        link = plot("python-vs-conlab", data, f"""
set title "The tutorials' Python programs: their time over conlab's"
set logscale x
set xrange [0.5:*]
set xlabel "Python time / conlab time (log scale; 1 = as fast)"
set ytics scale 0
set yrange [-0.6:{len(trows) - 0.4}]
set grid xtics
set style fill solid 0.8 border -1
set arrow from 1, graph 0 to 1, graph 1 nohead dt 2 lc rgb "gray30"
plot data using (sqrt($2)):1:(1):($2):($1 - 0.35):($1 + 0.35):ytic(3) with boxxyerror notitle lc rgb "#4477aa", \\
     '' using ($2 * 1.08):1:(sprintf("%.1fx", $2)) with labels left font ",10" notitle
""", os.path.join(OUT, "all", "plot"), size=(860, 60 + 44 * len(trows)))
        if link:
            md += ["", f"![Python time over conlab time per workload, log "
                       f"scale]({link})"]

    if cpu and "cpu" in ran_names and "prime" in cpu:
        p = cpu["prime"]
        modes = ("sequential", "threads", "processes", "gil")
        rows = [(str(t), *(f"{r['speedup']:.2f}x "
                           f"({100 * r['efficiency']:.0f}%)"
                           for r in (p["runs"][f"{t} {m}"] for m in modes)))
                for t in p["tasks"]]
        tmax = p["tasks"][-1]
        seq_ms = p["runs"][f"{tmax} sequential"]["wall_ms"]
        md += ["", "### CPU scaling", "",
               f"`/run/prime?limit={p['limit']}&tasks=N&mode=MODE`: "
               "speedup over sequential at the same N (parallel efficiency "
               f"= speedup / N), medians of {p['rounds']} rounds; "
               f"sequential at N = {tmax} took {seq_ms:.0f} ms.",
               "", mdt(("tasks",) + modes, rows)]
        if p.get("plot"):
            md += ["", f"![speedup over sequential per mode and task "
                       f"count]({p['plot']})"]

    rt = cpu.get("roundtrip") if cpu and "cpu" in ran_names else None
    if rt or (loop and "loop" in ran_names):
        md += ["", "### Pool round trip and the event loop's scale", ""]
        items = []
        if rt:
            items.append(
                f"pool round trip: {rt['mean_us']:.1f} us (mean latency on "
                f"one connection of `/run/prime?limit=2&tasks=1&mode="
                f"processes`, {rt['job_c1_mean_us']:.1f} us, less "
                f"`/health`'s, {rt['health_c1_mean_us']:.1f} us; medians: "
                f"{rt['p50_us']:.0f} us); under `wrk -c"
                f"{rt['connections']}` the trivial job runs at "
                f"{rt['job_rps']:,.0f} requests/s (p99 "
                f"{rt['job_p99_ms']:.2f} ms) against {rt['health_rps']:,.0f}"
                " for `/health`")
        mem = (cpu or {}).get("memory")
        if mem:
            start = mem.get("start")
            end = list(mem.values())[-1]
            items.append(
                f"conlab's memory through the CPU part (server + "
                f"workers): {start[0] / 1024:.1f} + {start[1] / 1024:.1f} MiB "
                f"at start, {end[0] / 1024:.1f} + {end[1] / 1024:.1f} MiB at "
                "the end")
        if loop and "loop" in ran_names:
            s, fe = loop["sleep"], loop["fetch"]
            items.append(
                f"10,000 sleeps of 1 s on the loop: {s['conlab_wall_ms']:.1f}"
                f" ms (median of {loop['runs']}, max "
                f"{s['conlab_max_ms']:.1f}); VmRSS "
                f"{s['conlab_rss_before_mib']:.1f} MiB before, "
                f"{s['conlab_added_waiting_mib']:.1f} MiB added "
                f"while the timers wait, peak {s['conlab_rss_peak_mib']:.1f} "
                f"MiB while the {s['answer_kib']:.0f} KiB answer is built, "
                f"{s['conlab_rss_after_mib']:.1f} MiB after")
            items.append(
                f"1,000 concurrent fetches of `/delay?ms=100`: "
                f"{fe['conlab_wall_ms']:.1f} ms (max "
                f"{fe['conlab_max_ms']:.1f}), {fe['conlab_errors']} errors; "
                f"VmRSS {fe['conlab_rss_before_mib']:.1f} MiB before, peak "
                f"{fe['conlab_rss_peak_mib']:.1f}, "
                f"{fe['conlab_rss_after_mib']:.1f} after")
        md += [f"- {x}" for x in items]

    overhead = load_json(os.path.join(OUT, "overhead", "summary.json"))
    if overhead and "overhead" in ran_names:
        md += ["", "### Start-up overhead and memory per unit", ""]
        md += overhead_summary(overhead)

    if mixed and "mixed" in ran_names:
        md += ["", "### Mixed load", "",
               f"`wrk -t2 -c{mixed['connections']} -d{mixed['duration']} "
               "-s bench/mixed.lua` (60% /health, 20% small prime jobs, "
               "10% sleeps, 10% self-fetches), medians of "
               f"{mixed['rounds']} runs:", ""]
        md.append(mdt(
            ("requests/s", "p50 ms", "p99 ms", "max ms", "answers by status",
             "socket errors", "VmRSS MiB before / peak / after"),
            [(f"{mixed['rps']:,.0f}", f"{mixed['p50_ms']:.2f}",
              f"{mixed['p99_ms']:.2f}", f"{mixed['max_ms']:.1f}",
              ", ".join(f"{k}: {v:,}" for k, v in
                        sorted(mixed["statuses"].items())),
              str(mixed["socket_errors"]),
              f"{mixed['rss_before_mib']:.1f} / {mixed['rss_peak_mib']:.1f}"
              f" / {mixed['rss_after_mib']:.1f}")]))
        if mixed.get("plot"):
            md += ["", f"![VmRSS and requests/s during the mixed load]"
                       f"({mixed['plot']})"]

    limits = load_json(os.path.join(OUT, "limits", "summary.json"))
    if limits and "limits" in ran_names:
        md += ["", "### Admission by cost", ""]
        md += limits_summary(limits)

    if soak and os.path.exists(soak_md):
        v = soak.get("verdict") or {}
        same = soak.get("commit") == facts.get("commit")
        md += ["", "### Soak", "",
               f"From `make soak`, {soak['date']}, commit {soak['commit']}"
               + ("" if same or not facts else
                  " (not the commit of the bench run above)") + ": "
               f"`wrk -t2 -c{soak['connections']} -d{soak['duration']} -s "
               f"bench/mixed.lua`, {soak['rps']:,.0f} requests/s, p99 "
               f"{soak['p99_ms']:.2f} ms, answers "
               + ", ".join(f"{k}: {n:,}" for k, n in
                           sorted(soak["statuses"].items()))
               + f"; VmRSS {soak['rss_before_mib']:.1f} MiB before, peak "
               f"{soak['rss_peak_mib']:.1f}, {soak['rss_after_mib']:.1f} "
               "after"
               + (f"; other programs used {soak['others_pct']:.1f}% of the "
                  f"machine meanwhile, steal {soak['steal_pct']:.2f}%"
                  if "others_pct" in soak else "") + ".",
               "", f"**{v.get('text', 'no verdict')}**"]
        if soak.get("plot"):
            md += ["", f"![VmRSS over the soak]({soak['plot']})"]
    else:
        md += ["", "### Soak", "", "Not run: `make soak` (2 minutes) adds "
                                   "it here."]

    if snaps:
        rows = []
        prev = snaps[0]
        for s in snaps[1:]:
            dt = s["t"] - prev["t"]
            busy = s["busy"] - prev["busy"]
            bench = s["bench"] - prev["bench"]
            rows.append((
                f"{s['label']} ({PARTS.get(s['label'], ('', ''))[0]})",
                "ok" if s.get("status", 0) == 0 else
                f"FAILED (exit status {s['status']})",
                f"{dt:.0f}",
                f"{100 * max(0.0, busy - bench) / (cores * dt):.1f}%",
                f"{100 * (s['steal'] - prev['steal']) / (cores * dt):.2f}%",
                s["load"]))
            prev = s
        md += ["", "## The run, part by part", "",
               "others: the machine's busy time less the bench's (its "
               "scripts, servers and clients), as a share of all cores; "
               "steal: time the hypervisor took, same share (/proc/stat).",
               "", mdt(("part", "status", "seconds", "others",
                          "steal", "load average after"), rows)]

    md += ["", "## Details", "", "Each part's own report, in full "
           "(bench/out/PART.md of the same run)."]
    for name, (script, report) in PARTS.items():
        if name not in ran_names:
            continue
        path = os.path.join(OUT, report)
        failed = [s for s in ran if s["label"] == name and s.get("status")]
        if os.path.exists(path):
            with open(path) as f:
                md += ["", f"## {f.readline().lstrip('# ').strip()}", "",
                       demote("# x\n" + f.read())]
            if failed:
                md += ["", f"**{script} exited {failed[0]['status']}**: see "
                           "its output; the figures above may be partial."]
        else:
            md += ["", f"## {script}", "", f"**No report: {script} failed "
                   "before writing one.**"]
    if soak and os.path.exists(soak_md):
        with open(soak_md) as f:
            md += ["", f"## {f.readline().lstrip('# ').strip()}", "",
                   demote("# x\n" + f.read())]

    with open(args.out, "w") as f:
        f.write("\n".join(md) + "\n")
    print(f"bench: written {args.out}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("snap")
    s.add_argument("--label", required=True)
    s.add_argument("--bench-pid", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--status", type=int)
    s.add_argument("--facts", nargs="*")
    a = sub.add_parser("assemble")
    a.add_argument("--out", required=True)
    p = sub.add_parser("part")
    p.add_argument("--name", required=True, choices=("state",))
    p.add_argument("--into", required=True)
    args = ap.parse_args()
    return {"snap": cmd_snap, "assemble": cmd_assemble,
            "part": cmd_part}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

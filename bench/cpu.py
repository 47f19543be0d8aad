#!/usr/bin/env python3
"""The measuring and reporting half of bench/cpu.sh (which starts and stops
the server and runs wrk). Only the Python standard library is used, and
only 127.0.0.1 is contacted.

    cpu.py prime --port P --pid PID --out FILE.json
        /run/prime?limit=LIMIT&tasks=TASKS in every mode, ROUNDS rounds
        round-robin (each round starting one mode further on), after
        WARMUP_ROUNDS uncounted rounds. Every answer must be a 200 with
        result.primes == EXPECT and result.checked == LIMIT - 1: anything
        else stops the bench with exit status 1.
    cpu.py responsive --port P --out FILE.json
        SAMPLES sequential GET /health with the server idle, then the same
        while /run/prime?limit=LONG_LIMIT&tasks=TASKS&mode=processes runs
        (started in a thread, and confirmed to occupy the workers first).
    cpu.py snap --pid PID --bench-pid PID --label TEXT --out FILE.jsonl
        Appends the CPU time used so far by the machine, the server (with
        its workers) and the bench (bench-pid with its reaped children), so
        that the report can tell what other programs took in each part.
    cpu.py report --dir RAW_DIR --md FILE.md
        The table of the whole bench, on stdout and as markdown. Exit status
        1 when any wrk run or the access log shows an error (socket errors
        or non-2xx answers); missed speed-up targets do not change it.

Client times are taken around a whole request on a fresh connection
(connect, send, read the full answer), like `curl -w %{time_total}`.
"""

import argparse
import http.client
import json
import os
import re
import statistics
import sys
import threading
import time

MODES = ("sequential", "threads", "processes", "gil")
TARGETS = (  # mode, comparison, speed-up over sequential
    ("processes", ">=", 1.9),
    ("threads", ">=", 1.9),
    ("gil", "<=", 1.1),
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
DISTURBED = 0.05  # others' share of the machine that marks a run disturbed


def get(port, path, timeout):
    """GET on a fresh connection: (status, body, client ms)."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    return resp.status, body, (time.perf_counter() - t0) * 1e3


def proc_times(pid):
    """(utime + stime, cutime + cstime) of PID in seconds, and its ppid."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): ppid is 4, utime 14 ... cstime 17.
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    reaped = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return own, reaped, int(fields[1])


def server_seconds(server_pid):
    """CPU time of the server, of its live children (the worker processes)
    and of its reaped ones, in seconds, from /proc."""
    own, reaped, _ = proc_times(server_pid)
    total = own + reaped
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != server_pid:
            try:
                child, _, ppid = proc_times(int(entry))
            except (OSError, IndexError, ValueError):
                continue
            if ppid == server_pid:
                total += child
    return total


def snapshot(server_pid, bench_pid=None):
    """CPU time so far, in seconds: the whole machine's busy, idle (+
    iowait) and steal (what the hypervisor reports it took) over all cores,
    the server's, and the bench's own (bench_pid's with its reaped children:
    wrk and the helpers; without bench_pid this process's)."""
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest is in user)
    idle = cpu[3] + cpu[4]
    busy = sum(cpu[:8]) - idle
    if bench_pid:
        own, reaped, _ = proc_times(bench_pid)
        bench = own + reaped
    else:
        bench = time.process_time()
    return {"t": time.monotonic(), "busy": busy / CLK_TCK,
            "idle": idle / CLK_TCK, "steal": cpu[7] / CLK_TCK,
            "server": server_seconds(server_pid), "bench": bench}


def usage(before, after):
    """CPU use between two snapshots; others is what neither the server nor
    the bench used: other programs on the machine."""
    d = {k: after[k] - before[k] for k in before if k != "label"}
    d["others"] = max(0.0, d["busy"] - d["server"] - d["bench"])
    return d


def task_figures(tasks):
    """Timeline figures of one answer's tasks, in ms from acceptance."""
    starts = [t["start_ms"] for t in tasks]
    ends = [t["end_ms"] for t in tasks]
    return {
        "last_start_ms": max(starts),
        "end_skew_ms": max(ends) - min(ends),
        "overlap_ms": max(0.0, min(ends) - max(starts)),
    }


def cmd_prime(args):
    path = "/run/prime?limit={}&tasks={}&mode={}"
    runs = []
    failures = []
    total = args.warmup_rounds + args.rounds
    for r in range(total):
        counted = r >= args.warmup_rounds
        order = MODES[r % len(MODES):] + MODES[:r % len(MODES)]
        for mode in order:
            snap0 = snapshot(args.pid)
            status, body, client_ms = get(
                args.port, path.format(args.limit, args.tasks, mode),
                args.timeout)
            use = usage(snap0, snapshot(args.pid))
            label = (f"round {r - args.warmup_rounds + 1}" if counted
                     else f"warm-up {r + 1}")
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
            problem = None
            if status != 200 or not isinstance(doc, dict):
                problem = f"HTTP {status}: {body[:200]!r}"
            elif doc.get("result", {}).get("primes") != args.expect:
                problem = (f"result.primes = {doc['result'].get('primes')}, "
                           f"expected {args.expect}")
            elif doc["result"].get("checked") != args.limit - 1:
                problem = (f"result.checked = {doc['result'].get('checked')}, "
                           f"expected {args.limit - 1}")
            elif doc.get("mode") != mode or len(doc.get("tasks", ())) != \
                    args.tasks:
                problem = "the answer's mode or task count does not match"
            if problem:
                print(f"bench: {label} {mode}: {problem}", file=sys.stderr)
                failures.append({"mode": mode, "label": label,
                                 "problem": problem})
                continue
            run = {
                "mode": mode, "round": r - args.warmup_rounds + 1,
                "counted": counted, "wall_ms": doc["wall_ms"],
                "client_ms": client_ms, "cpu_s": use["server"],
                "others_s": use["others"], "idle_s": use["idle"],
                "steal_s": use["steal"],
                "primes": doc["result"]["primes"],
                "tasks": [{"worker": t["worker"], "start_ms": t["start_ms"],
                           "end_ms": t["end_ms"]} for t in doc["tasks"]],
            }
            run.update(task_figures(doc["tasks"]))
            runs.append(run)
            print(f"bench: {label} {mode:10s}: wall {doc['wall_ms']:8.1f} ms,"
                  f" client {client_ms:8.1f} ms, server CPU"
                  f" {use['server']:4.2f} s, others {use['others']:4.2f} s,"
                  f" idle {use['idle']:4.2f} s, steal {use['steal']:4.2f} s,"
                  f" last task started at {run['last_start_ms']:.2f} ms")
    with open(args.out, "w") as f:
        json.dump({"limit": args.limit, "tasks": args.tasks,
                   "expect": args.expect, "rounds": args.rounds,
                   "warmup_rounds": args.warmup_rounds, "runs": runs,
                   "failures": failures}, f, indent=1)
    if failures:
        print(f"bench: {len(failures)} /run/prime answers were wrong; "
              "stopping", file=sys.stderr)
        return 1
    return 0


def health_samples(port, n, gap_ms, timeout):
    samples = []
    for _ in range(n):
        status, body, ms = get(port, "/health", timeout)
        if status != 200:
            raise RuntimeError(f"GET /health answered {status}: {body[:200]!r}")
        samples.append(ms)
        if gap_ms:
            time.sleep(gap_ms / 1e3)
    return samples


def cmd_snap(args):
    snap = snapshot(args.pid, args.bench_pid)
    snap["label"] = args.label
    with open(args.out, "a") as f:
        f.write(json.dumps(snap) + "\n")
    return 0


def cmd_responsive(args):
    idle = health_samples(args.port, args.samples, args.gap_ms, args.timeout)

    path = (f"/run/prime?limit={args.limit}&tasks={args.tasks}"
            f"&mode=processes")
    job = {}

    def long_job():
        try:
            job["status"], job["body"], job["client_ms"] = get(
                args.port, path, args.job_timeout)
        except Exception as e:  # reported below
            job["error"] = repr(e)

    thread = threading.Thread(target=long_job, daemon=True)
    thread.start()
    # Sample only once the job holds the workers.
    busy = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and thread.is_alive():
        _, body, _ = get(args.port, "/health", args.timeout)
        busy = json.loads(body)["pools"]["process"]["busy"]
        if busy >= min(args.tasks, args.workers):
            break
        time.sleep(0.01)
    else:
        print(f"bench: the long job never occupied the workers "
              f"(busy {busy})", file=sys.stderr)
        thread.join(args.job_timeout)
        return 1
    loaded = health_samples(args.port, args.samples, args.gap_ms,
                            args.timeout)
    overlapped = thread.is_alive()
    thread.join(args.job_timeout)
    if thread.is_alive() or "error" in job:
        print(f"bench: the long job failed: {job.get('error', 'timeout')}",
              file=sys.stderr)
        return 1
    doc = json.loads(job["body"]) if job["status"] == 200 else {}
    primes = doc.get("result", {}).get("primes")
    if job["status"] != 200 or primes != args.expect:
        print(f"bench: the long job answered {job['status']} with primes "
              f"{primes} (expected {args.expect}): {job['body'][:200]!r}",
              file=sys.stderr)
        return 1
    print(f"bench: /health idle median {statistics.median(idle):.3f} ms, "
          f"during the long job median {statistics.median(loaded):.3f} ms, "
          f"max {max(loaded):.3f} ms")
    with open(args.out, "w") as f:
        json.dump({"limit": args.limit, "tasks": args.tasks,
                   "gap_ms": args.gap_ms, "idle_ms": idle, "loaded_ms": loaded,
                   "job_still_running_after_samples": overlapped,
                   "job_wall_ms": doc["wall_ms"],
                   "job_client_ms": job["client_ms"], "job_primes": primes,
                   "job_tasks": doc["tasks"]}, f, indent=1)
    return 0


# ---------------------------------------------------------------- report

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_wrk(path):
    text = open(path).read()
    m = re.search(r"^CONLAB-BENCH (.*)$", text, re.M)
    if not m:
        sys.exit(f"bench: no CONLAB-BENCH line (bench/cpu.lua) in {path}")
    fig = {k: float(v) for k, v in
           (kv.split("=") for kv in m.group(1).split())}
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    fig["rps"] = (float(rps.group(1)) if rps else
                  fig["requests"] / fig["duration_us"] * 1e6)
    fig["errors"] = int(sum(fig[k] for k in
                            ("connect", "read", "write", "status", "timeout")))
    return fig


def table(head, rows, aligns=None):
    """(plain text lines, markdown lines) of one table."""
    aligns = aligns or ["l"] + ["r"] * (len(head) - 1)
    widths = [max(len(head[i]), *(len(r[i]) for r in rows))
              for i in range(len(head))]

    def line(cells):
        return "  ".join(
            c.ljust(w) if a == "l" else c.rjust(w)
            for c, w, a in zip(cells, widths, aligns)).rstrip()

    text = [line(head)] + [line(r) for r in rows]
    md = ["| " + " | ".join(head) + " |",
          "|" + "|".join("---" if a == "l" else "---:" for a in aligns) + "|"]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    return text, md


def write_report(title, md_title, meta, out, md_path):
    """Prints the report and writes it as markdown to md_path. out is a
    list of (kind, item): "h" heading, "p" markdown-only paragraph, "n"
    note, "t" (text lines, markdown lines) table, "l" list of lines."""
    text = ["", title] + ["  " + m.replace("`", "") for m in meta]
    md = [f"# {md_title}", ""]
    md += [f"- {m}" for m in meta]
    for kind, item in out:
        if kind == "h":
            text += ["", item]
            md += ["", f"## {item}"]
        elif kind == "p":
            md += ["", item]
        elif kind == "n":
            text += ["", item]
            md += ["", item]
        elif kind == "t":
            text += [""] + item[0]
            md += [""] + item[1]
        elif kind == "l":
            text += [""] + [f"  {x}" for x in item]
            md += [""] + [f"- {x}" for x in item]
    print("\n".join(text))
    with open(md_path, "w") as f:
        f.write("\n".join(md) + "\n")


def cmd_report(args):
    env = os.environ
    raw = args.dir
    status = 0
    out = []  # ("h", title) | ("p", text) | ("t", (text, md)) | ("l", items)

    # 1. /run/prime in every mode.
    prime = json.load(open(f"{raw}/prime.json"))
    runs = [r for r in prime["runs"] if r["counted"]]
    per = {m: [r for r in runs if r["mode"] == m] for m in MODES}
    med = {m: statistics.median(r["wall_ms"] for r in per[m]) for m in MODES}
    rows = []
    for m in MODES:
        rs = per[m]
        walls = [r["wall_ms"] for r in rs]
        rows.append((
            m, f"{med[m]:.1f}", f"{min(walls):.1f}", f"{max(walls):.1f}",
            f"{med['sequential'] / med[m]:.2f}x",
            f"{statistics.median(r['client_ms'] for r in rs):.1f}",
            f"{statistics.median(r['cpu_s'] for r in rs):.2f}",
            f"{statistics.median(r['others_s'] for r in rs):.2f}",
            f"{statistics.median(r['steal_s'] for r in rs):.2f}",
            f"{statistics.median(r['last_start_ms'] for r in rs):.2f}",
            f"{statistics.median(r['end_skew_ms'] for r in rs):.1f}",
            f"{statistics.median(100 * r['overlap_ms'] / r['wall_ms'] for r in rs):.0f}"))
    head = ("mode", "wall ms (median)", "min", "max", "speedup",
            "client ms", "server CPU s", "others' CPU s", "steal s",
            "2nd task start ms", "task end skew ms", "tasks overlap %")
    out.append(("h", f"1. GET /run/prime?limit={prime['limit']}"
                     f"&tasks={prime['tasks']}&mode=MODE"))
    out.append(("p", f"{prime['rounds']} rounds round-robin over the modes "
                     f"(each round starts one mode further on), after "
                     f"{prime['warmup_rounds']} uncounted warm-up round(s); "
                     f"every answer had result.primes == {prime['expect']}. "
                     "wall ms is the server's wall_ms; speedup is "
                     "median(sequential) / median(mode); client ms is the "
                     "median client-side time of the whole request; server "
                     "CPU is the user + system time of conlab and its "
                     "workers during the request, others' CPU the machine's "
                     "busy time less the server's and the bench's (other "
                     "programs), steal what the hypervisor reports it took "
                     "(/proc and /proc/stat, 10 ms ticks, all cores); the "
                     "task columns come from the tasks' start_ms/end_ms "
                     "(overlap: the time both tasks ran, as a share of "
                     "wall_ms)."))
    out.append(("t", table(head, rows)))
    head = ("mode",) + tuple(f"round {i}"
                             for i in range(1, prime["rounds"] + 1))
    rows = [(m,) + tuple(f"{r['wall_ms']:.0f} ms ({r['others_s']:.2f} s)"
                         for r in per[m]) for m in MODES]
    out.append(("p", "Each run: wall_ms (others' CPU s during it)."))
    out.append(("t", table(head, rows)))
    verdicts = []
    for mode, op, bound in TARGETS:
        s = med["sequential"] / med[mode]
        ok = s >= bound if op == ">=" else s <= bound
        verdicts.append(f"{'PASS' if ok else 'FAIL'}: {mode} speedup "
                        f"{s:.2f}x, target {op} {bound:.1f}x")
    missed = sum(v.startswith("FAIL") for v in verdicts)
    out.append(("l", verdicts))
    out.append(("n", f"Targets: {len(verdicts) - missed} of {len(verdicts)} "
                     "met." + (" A missed target is reported, not an error: "
                               "the exit status does not depend on it."
                               if missed else "")))

    cores = int(env["BENCH_CORES"])
    calm = {m: [r for r in per[m] if r["others_s"] <=
                DISTURBED * cores * r["wall_ms"] / 1e3] for m in MODES}
    disturbed = sum(len(per[m]) - len(calm[m]) for m in MODES)
    if disturbed:
        note = (f"WARNING: in {disturbed} of {len(runs)} runs other programs "
                f"used more than {DISTURBED:.0%} of the machine's "
                f"{cores} cores (others' CPU column): these figures measure "
                "the machine's load as much as conlab.")
        if all(calm[m] for m in MODES):
            cmed = {m: statistics.median(r["wall_ms"] for r in calm[m])
                    for m in MODES}
            note += (" Over the undisturbed runs only, speedups: "
                     + ", ".join(f"{m} {cmed['sequential'] / cmed[m]:.2f}x "
                                 f"({len(calm[m])} runs, median "
                                 f"{cmed[m]:.0f} ms)" for m in MODES[1:])
                     + f"; sequential: {len(calm['sequential'])} runs, "
                     f"median {cmed['sequential']:.0f} ms.")
        else:
            note += (" No undisturbed run of " + ", ".join(
                m for m in MODES if not calm[m]) + ".")
        out.append(("n", note))
    else:
        out.append(("n", f"No run was disturbed: other programs used at most "
                         f"{DISTURBED:.0%} of the machine during every run."))

    # 2. Trivial job versus /health.
    rounds = int(env["THROUGHPUT_ROUNDS"])
    targets = (("job", env["TRIVIAL_PATH"]), ("health", "/health"))
    load = {}
    for name, _ in targets:
        figs = [parse_wrk(f"{raw}/wrk-load-{name}-{r}.txt")
                for r in range(1, rounds + 1)]
        load[name] = {
            "rps": statistics.median(f["rps"] for f in figs),
            "p50": statistics.median(f["p50_us"] for f in figs) / 1e3,
            "p99": statistics.median(f["p99_us"] for f in figs) / 1e3,
            "errors": sum(f["errors"] for f in figs),
            "each": [f["rps"] for f in figs],
        }
    rows = [(path, f"{load[n]['rps']:.0f}", f"{load[n]['p50']:.3f}",
             f"{load[n]['p99']:.3f}", str(load[n]["errors"]),
             " / ".join(f"{x:.0f}" for x in load[n]["each"]))
            for n, path in targets]
    head = ("GET", "requests/s", "p50 ms", "p99 ms", "errors",
            "requests/s per round")
    out.append(("h", "2. Trivial job versus /health (pool round trip)"))
    out.append(("p", f"`wrk -t2 -c{env['CONNECTIONS']} -d{env['DURATION']} "
                     f"--latency`, {rounds} rounds alternating job / health, "
                     f"{env['WARMUP']} warm-up before each run; medians over "
                     "the rounds; errors are socket errors plus answers >= 400, "
                     "summed (see also the access-log tally below)."))
    out.append(("t", table(head, rows)))

    single = {}
    for name, _ in targets:
        figs = [parse_wrk(f"{raw}/wrk-c1-{name}-{r}.txt")
                for r in range(1, rounds + 1)]
        single[name] = {
            "mean": statistics.median(f["mean_us"] for f in figs),
            "p50": statistics.median(f["p50_us"] for f in figs),
            "requests": statistics.median(f["requests"] for f in figs),
            "errors": sum(f["errors"] for f in figs),
            "each": [f["mean_us"] for f in figs],
        }
    rows = [(path, f"{single[n]['mean']:.1f}", f"{single[n]['p50']:.0f}",
             f"{single[n]['requests']:.0f}", str(single[n]["errors"]),
             " / ".join(f"{x:.1f}" for x in single[n]["each"]))
            for n, path in targets]
    head = ("GET", "mean us", "p50 us", "requests/run", "errors",
            "mean us per round")
    out.append(("p", f"One connection, one request at a time: `wrk -t1 -c1 "
                     f"-d{env['SINGLE_DURATION']} --latency`, {rounds} rounds "
                     "alternating; medians over the rounds."))
    out.append(("t", table(head, rows)))
    rt_single = single["job"]["mean"] - single["health"]["mean"]
    rt_p50 = (load["job"]["p50"] - load["health"]["p50"]) * 1e3
    conns = int(env["CONNECTIONS"])
    workers = int(env["SERVER_WORKERS"])
    rt_single_p50 = single["job"]["p50"] - single["health"]["p50"]
    out.append(("l", [
        f"pool round-trip cost (one connection, mean latency of the trivial "
        f"job minus /health): {rt_single:.1f} us; with the medians instead "
        f"(robust to stalls): {rt_single_p50:.0f} us",
        f"rough upper bound under load (-c{env['CONNECTIONS']}: p50 of the "
        f"trivial job minus p50 of /health): {rt_p50:.1f} us; mostly "
        f"queueing for the {workers} workers: {conns} requests in flight / "
        f"{load['job']['rps']:.0f} requests/s = "
        f"{conns / load['job']['rps'] * 1e3:.2f} ms mean latency (Little's "
        f"law), i.e. each worker is occupied "
        f"{workers / load['job']['rps'] * 1e6:.1f} us per trivial job",
        "both include, besides the hand-off to a worker and back, the "
        "suspend/resume of the connection and the larger JSON answer"]))
    wrk_errors = sum(load[n]["errors"] + single[n]["errors"]
                     for n, _ in targets)
    if wrk_errors:
        status = 1

    # 3. Responsiveness during a long job.
    resp = json.load(open(f"{raw}/responsive.json"))
    rows = []
    for label, key in (("idle", "idle_ms"), ("during the long job",
                                              "loaded_ms")):
        s = resp[key]
        rows.append((label, str(len(s)), f"{statistics.median(s):.3f}",
                     f"{max(s):.3f}", f"{min(s):.3f}"))
    out.append(("h", "3. GET /health while a long CPU job runs"))
    out.append(("p", f"Long job: `/run/prime?limit={resp['limit']}"
                     f"&tasks={resp['tasks']}&mode=processes` in the "
                     "background; the samples start once it holds the "
                     f"workers. Sequential GET /health on fresh connections, "
                     f"{resp['gap_ms']:g} ms apart; client-side time of the "
                     "whole request. (With pauses between the samples an "
                     "idle machine answers more slowly than a busy one: its "
                     "idle CPUs have to be woken up first.)"))
    out.append(("t", table(("/health", "samples", "median ms", "max ms",
                            "min ms"), rows)))
    out.append(("l", [
        f"long job: wall_ms {resp['job_wall_ms']:.0f}, primes "
        f"{resp['job_primes']} (correct), "
        + ("still running after the last sample"
           if resp["job_still_running_after_samples"]
           else "FINISHED BEFORE THE LAST SAMPLE (samples partly idle)")]))

    # Machine use per part.
    snaps = [json.loads(line) for line in open(f"{raw}/snaps.jsonl")]
    rows = []
    busy_parts = []
    for before, after in zip(snaps, snaps[1:]):
        use = usage(before, after)
        share = use["others"] / (cores * use["t"])
        rows.append((after["label"], f"{use['t']:.1f}",
                     f"{use['server']:.1f}", f"{use['bench']:.1f}",
                     f"{use['others']:.1f}", f"{100 * share:.0f}%",
                     f"{use['idle']:.1f}", f"{use['steal']:.1f}"))
        if share > DISTURBED:
            busy_parts.append(f"{after['label']} ({100 * share:.0f}%)")
    out.append(("h", "Machine use during the bench"))
    out.append(("p", "CPU seconds over all cores, from /proc and /proc/stat: "
                     "the server with its workers; the bench's clients (wrk "
                     "and the Python helper); others: the rest of the "
                     "machine's busy time, i.e. other programs; idle; steal "
                     "as the hypervisor reports it."))
    out.append(("t", table(("part", "seconds", "server s", "clients s",
                            "others s", "others % of machine", "idle s",
                            "steal s"), rows)))
    if busy_parts:
        out.append(("n", "WARNING: other programs used more than "
                         f"{DISTURBED:.0%} of the machine during: "
                         + ", ".join(busy_parts) + ". Rerun on a quiet "
                         "machine for figures of conlab alone."))

    # Access log: every non-2xx answer of the whole bench.
    tally = []
    with open(f"{raw}/log-status.txt") as f:
        for line in f:
            count, path, code = line.split()
            tally.append((path, code, int(count)))
    # 499 is logged, never sent: the client had closed the connection (wrk
    # does, with requests in flight, when a run ends).
    bad = [(p, c, n) for p, c, n in tally
           if not c.startswith("2") and c != "499"]
    gone = [(p, c, n) for p, c, n in tally if c == "499"]
    lines = int(env["BENCH_LOG_LINES"])
    answered = sum(n for p, c, n in tally if c != "499")
    out.append(("h", "Access log"))
    if bad:
        status = 1
        out.append(("n", "ERROR: non-2xx answers: " + "; ".join(
            f"{n} x {c} on {p}" for p, c, n in bad)))
    else:
        out.append(("n", f"{lines} lines; all {answered} answers of the "
                         "bench were 2xx."))
    if gone:
        out.append(("n", "Not answers: " + "; ".join(
            f"{n} x 499 on {p}" for p, c, n in gone) + " (a queued job "
            "whose client had closed the connection: wrk closes its "
            "connections with requests in flight when a run ends; nothing "
            "is sent)."))

    # Render.
    conlab_cmd = (f"conlab --port 0 --workers {env['SERVER_WORKERS']} "
                  f"--threads {env['SERVER_THREADS']} "
                  f"{env.get('BENCH_CONLAB_ARGS', '')}").rstrip()
    meta = [
        f"date: {env['BENCH_DATE']}",
        f"machine: {env['BENCH_CORES']} cores, {env['BENCH_MODEL']}; load "
        f"average {env['BENCH_LOAD_BEFORE']} before, "
        f"{env['BENCH_LOAD_AFTER']} after",
        f"server: `{conlab_cmd}`, access log to a file ({lines} lines, "
        f"{env['BENCH_LOG_BYTES']} bytes); clients on the same machine",
    ]
    write_report("CPU benchmark",
                 "Benchmark: CPU jobs, pool round trip, responsiveness", meta,
                 out, args.md)
    if wrk_errors:
        print(f"bench: wrk reported {wrk_errors} errors", file=sys.stderr)
    if bad:
        print("bench: the access log shows non-2xx answers", file=sys.stderr)
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prime")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=10000000)
    p.add_argument("--tasks", type=int, default=2)
    p.add_argument("--expect", type=int, default=664579)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup-rounds", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60)
    r = sub.add_parser("responsive")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--limit", type=int, default=50000000)
    r.add_argument("--tasks", type=int, default=2)
    r.add_argument("--expect", type=int, default=3001134)
    r.add_argument("--samples", type=int, default=50)
    r.add_argument("--gap-ms", type=float, default=0)
    r.add_argument("--timeout", type=float, default=10)
    r.add_argument("--job-timeout", type=float, default=120)
    n = sub.add_parser("snap")
    n.add_argument("--pid", type=int, required=True)
    n.add_argument("--bench-pid", type=int, required=True)
    n.add_argument("--label", required=True)
    n.add_argument("--out", required=True)
    s = sub.add_parser("report")
    s.add_argument("--dir", required=True)
    s.add_argument("--md", required=True)
    args = ap.parse_args()
    return {"prime": cmd_prime, "responsive": cmd_responsive,
            "snap": cmd_snap,
            "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

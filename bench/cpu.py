#!/usr/bin/env python3
"""The measuring and reporting half of bench/cpu.sh (which starts and stops
the server and runs wrk), and the helpers every bench report shares
(table, write_report, plot, parse_wrk, the /proc readings). Only the
Python standard library is used, and only 127.0.0.1 is contacted.

    cpu.py prime --port P --pid PID --tasks 1,2 --out FILE.json
        /run/prime?limit=LIMIT&tasks=N in every mode for each N of --tasks,
        ROUNDS rounds round-robin (each round starting one mode further
        on), after WARMUP_ROUNDS uncounted rounds at the largest N. Every
        answer must be a 200 with result.primes == EXPECT and
        result.checked == LIMIT - 1: anything else stops the bench with
        exit status 1.
    cpu.py tutorials --port P --pid PID --python PY --pydir DIR --out F
        ROUNDS rounds of each pair: one of the tutorials' programs in DIR
        (bench/python/, run with PY, a fresh process each time) and the
        same workload as one GET of the server. Each answer is checked
        against the program's; a failed or disagreeing pair is recorded and
        the command exits 1 after the last round.
    cpu.py responsive --port P --out FILE.json
        SAMPLES sequential GET /health with the server idle, then the same
        while /run/prime?limit=LONG_LIMIT&tasks=TASKS&mode=processes runs
        (started in a thread, and confirmed to occupy the workers first).
    cpu.py snap --pid PID --bench-pid PID --label TEXT --out FILE.jsonl
        Appends the CPU time used so far by the machine, the server (with
        its workers) and the bench (bench-pid with its reaped children), so
        that the report can tell what other programs took in each part,
        and the server's VmRSS and its workers'.
    cpu.py report --dir RAW_DIR --md FILE.md
        The tables of the whole bench, on stdout and as markdown, the plot
        bench/plots/cpu-scaling.svg and RAW_DIR/summary.json (for
        bench/report.py). Exit status 1 when any wrk run or the access log
        shows an error (socket errors or non-2xx answers) or a tutorial
        pair failed; missed speed-up targets do not change it.

Client times are taken around a whole request on a fresh connection
(connect, send, read the full answer), like `curl -w %{time_total}`.
"""

import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
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
    """GET on a fresh connection: (status, body, client ms). path may be
    (path, object): then a POST of the object as a JSON body (long lists
    do not fit the 4 KiB request target)."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(path, tuple):
            conn.request("POST", path[0], body=json.dumps(path[1]),
                         headers={"Content-Type": "application/json"})
        else:
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
    tasks_list = [int(t) for t in args.tasks.split(",")]
    runs = []
    failures = []
    # Warm-up rounds run the largest task count only (they warm the
    # workers and the caches); each counted round runs every count, and
    # starts one mode further on.
    plan = [(False, r, [max(tasks_list)]) for r in range(args.warmup_rounds)]
    plan += [(True, r, tasks_list) for r in range(args.rounds)]
    for i, (counted, r, counts) in enumerate(plan):
        order = MODES[i % len(MODES):] + MODES[:i % len(MODES)]
        for tasks, mode in ((t, m) for t in counts for m in order):
            snap0 = snapshot(args.pid)
            status, body, client_ms = get(
                args.port, path.format(args.limit, tasks, mode),
                args.timeout)
            use = usage(snap0, snapshot(args.pid))
            label = (f"round {r + 1} tasks={tasks}" if counted
                     else f"warm-up {r + 1} tasks={tasks}")
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
                    tasks:
                problem = "the answer's mode or task count does not match"
            if problem:
                print(f"bench: {label} {mode}: {problem}", file=sys.stderr)
                failures.append({"mode": mode, "label": label,
                                 "problem": problem})
                continue
            run = {
                "mode": mode, "round": r + 1, "tasks_n": tasks,
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
        json.dump({"limit": args.limit, "tasks_list": tasks_list,
                   "tasks": max(tasks_list), "expect": args.expect,
                   "rounds": args.rounds,
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
    snap["rss_kib"], snap["rss_workers_kib"] = tree_rss_kib(args.pid)
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


def run_program(argv, timeout):
    """Runs one of bench/python/ in a process group of its own: (exit
    status, its JSON figures or None, last stderr line, seconds from start
    to exit). A program past timeout, or this helper stopped by SIGTERM
    (bench/cpu.sh's clean-up), kills the group (the program and its pool
    workers) by its id and reaps the program."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stdout, stderr = "", f"killed after {timeout} s"
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            proc.wait()
    seconds = time.perf_counter() - start
    lines = stdout.strip().splitlines()
    try:
        fig = json.loads(lines[-1]) if lines else None
    except ValueError:
        fig = None
    err = stderr.strip().splitlines()
    return proc.returncode, fig, err[-1] if err else "", seconds


def tutorial_pairs(args):
    """(name, python argv, conlab path, check) of each comparison: the
    tutorials' program and the same workload through conlab's endpoint."""
    py = [args.python]
    d = args.pydir
    n = args.workers
    lim = args.limit
    pairs = [
        ("prime, sequential", py + [f"{d}/prime_sequential.py", "--limit",
                                    str(lim)],
         f"/run/prime?limit={lim}&tasks=1&mode=sequential", "prime"),
        ("prime, processes", py + [f"{d}/prime_pool.py", "--limit", str(lim),
                                   "--processes", str(n)],
         f"/run/prime?limit={lim}&tasks={n}&mode=processes", "prime"),
        ("prime, threads (GIL)", py + [f"{d}/prime_threads.py", "--limit",
                                       str(lim), "--threads", str(n)],
         f"/run/prime?limit={lim}&tasks={n}&mode=gil", "prime"),
    ]
    for count in (int(c) for c in args.squares.split(",")):
        pairs.append((f"squares of {count:,} numbers, processes",
                      py + [f"{d}/squares_pool.py", "--count", str(count),
                            "--processes", str(n)],
                      ("/run/square", {"numbers": list(range(1, count + 1)),
                                       "mode": "processes"}),
                      "square"))
    return pairs


def cmd_tutorials(args):
    runs, failures = [], []
    pairs = tutorial_pairs(args)
    for r in range(1, args.rounds + 1):
        for name, argv, path, kind in pairs:
            rc, fig, err, seconds = run_program(argv, args.timeout)
            problem = None
            if rc != 0 or not isinstance(fig, dict):
                problem = f"Python exit status {rc}: {err}"
            elif fig.get("errors"):
                problem = f"Python counted {fig['errors']} wrong results"
            snap0 = snapshot(args.pid)
            status, body, client_ms = get(args.port, path, args.timeout)
            use = usage(snap0, snapshot(args.pid))
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
            if problem:
                pass
            elif status != 200 or not isinstance(doc, dict):
                problem = f"conlab answered {status}: {body[:200]!r}"
            elif kind == "prime" and (
                    doc["result"]["primes"] != fig["primes"] or
                    doc["result"]["checked"] != fig["checked"]):
                problem = (f"conlab counted {doc['result']['primes']} primes "
                           f"of {doc['result']['checked']}, Python "
                           f"{fig['primes']} of {fig['checked']}")
            elif kind == "square" and doc["result"]["squares"] != \
                    [i * i for i in range(1, fig["count"] + 1)]:
                problem = "conlab's squares are not 1, 4, 9, ... in order"
            run = {"name": name, "round": r, "ok": problem is None,
                   "problem": problem, "python": fig,
                   "python_process_ms": seconds * 1e3,
                   "conlab_wall_ms": doc.get("wall_ms") if doc else None,
                   "conlab_client_ms": client_ms,
                   "conlab_cpu_s": use["server"],
                   "conlab_answer_bytes": len(body),
                   "others_s": use["others"]}
            runs.append(run)
            if problem:
                failures.append(f"{name} round {r}: {problem}")
                print(f"bench: {name} round {r}: {problem}", file=sys.stderr)
                continue
            print(f"bench: round {r} {name}: Python {fig['wall_ms']:.1f} ms "
                  f"(process {seconds * 1e3:.0f} ms), conlab "
                  f"{doc['wall_ms']:.1f} ms (client {client_ms:.1f} ms)")
    with open(args.out, "w") as f:
        json.dump({"limit": args.limit, "workers": args.workers,
                   "squares": args.squares, "rounds": args.rounds,
                   "python": args.python,
                   "pairs": [(n, a[1:], p if len(p) < 120 else
                              p[:100] + "...", k)
                             for n, a, p, k in tutorial_pairs(args)],
                   "runs": runs, "failures": failures}, f, indent=1)
    return 1 if failures else 0


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


PLOT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plots")


def plot(name, data, script, work_dir, size=(800, 420)):
    """Draws bench/plots/NAME.svg with gnuplot. data (text, one row a line)
    goes to WORK_DIR/NAME.dat, which script reads as the string variable
    `data`; the script and gnuplot's messages stay beside it. Returns the
    SVG's path relative to bench/ ("plots/NAME.svg") for a report's link,
    or None, said on stderr, when gnuplot is missing or fails: the report
    is then written without that plot."""
    os.makedirs(PLOT_DIR, exist_ok=True)
    os.makedirs(work_dir, exist_ok=True)
    dat = os.path.join(work_dir, f"{name}.dat")
    gp = os.path.join(work_dir, f"{name}.gp")
    svg = os.path.join(PLOT_DIR, f"{name}.svg")
    with open(dat, "w") as f:
        f.write(data)
    with open(gp, "w") as f:
        f.write(f"set terminal svg size {size[0]},{size[1]} enhanced "
                "font 'sans,12' background rgb 'white'\n"
                f"set output '{svg}'\n"
                f"data = '{dat}'\n" + script + "\nset output\n")
    try:
        done = subprocess.run(["gnuplot", gp], capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"bench: no plot {name}: {e} (scripts/deps.sh bench installs "
              "gnuplot-nox)", file=sys.stderr)
        return None
    if done.returncode != 0:
        print(f"bench: no plot {name}: gnuplot: {done.stderr.strip()}",
              file=sys.stderr)
        return None
    return f"plots/{name}.svg"


def tree_rss_kib(pid):
    """VmRSS of pid and of its live children (the worker processes), in
    KiB, from /proc: (the server's own, the children's summed)."""
    def rss(p):
        with open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0
    own = rss(pid)
    kids = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == pid:
            continue
        try:
            _, _, ppid = proc_times(int(entry))
            if ppid == pid:
                kids += rss(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return own, kids


def cmd_report(args):
    env = os.environ
    raw = args.dir
    status = 0
    out = []  # ("h", title) | ("p", text) | ("t", (text, md)) | ("l", items)

    # 1. /run/prime in every mode, for 1..cores tasks.
    cores = int(env["BENCH_CORES"])
    prime = json.load(open(f"{raw}/prime.json"))
    runs = [r for r in prime["runs"] if r["counted"]]
    tlist = prime["tasks_list"]
    tmax = max(tlist)
    keys = [(t, m) for t in tlist for m in MODES]
    per = {k: [r for r in runs if (r["tasks_n"], r["mode"]) == k]
           for k in keys}
    med = {k: statistics.median(r["wall_ms"] for r in per[k]) for k in keys}
    speedup = {(t, m): med[(t, "sequential")] / med[(t, m)] for t, m in keys}
    # Parallel efficiency: the speed-up per task, each task having a core
    # of its own while tasks <= cores.
    efficiency = {(t, m): speedup[(t, m)] / min(t, cores) for t, m in keys}

    out.append(("h", f"1. CPU scaling: GET /run/prime?limit={prime['limit']}"
                     f"&tasks=N&mode=MODE, N = {', '.join(map(str, tlist))}"))
    out.append(("p", f"{prime['rounds']} rounds; each runs every task count "
                     "in every mode, the modes round-robin (each round starts "
                     "one mode further on), after "
                     f"{prime['warmup_rounds']} uncounted warm-up round(s) "
                     f"at {tmax} tasks; every answer had result.primes == "
                     f"{prime['expect']}. wall ms is the server's wall_ms, "
                     "median of the rounds; speedup is median(sequential) / "
                     "median(mode) at the same task count (sequential runs "
                     "the same tasks one after another, so it does the same "
                     "work); parallel efficiency is speedup / N (each of the "
                     f"N tasks has a core of its own up to {cores} cores)."))
    head = ("tasks", "mode", "wall ms (median)", "min", "max", "speedup",
            "parallel efficiency")
    rows = []
    for t, m in keys:
        walls = [r["wall_ms"] for r in per[(t, m)]]
        rows.append((str(t), m, f"{med[(t, m)]:.1f}", f"{min(walls):.1f}",
                     f"{max(walls):.1f}", f"{speedup[(t, m)]:.2f}x",
                     f"{100 * efficiency[(t, m)]:.0f}%"))
    out.append(("t", table(head, rows, ["r", "l"] + ["r"] * 5)))
    data = "".join(f"{t} " + " ".join(f"{speedup[(t, m)]:.4f}"
                                      for m in MODES) + "\n" for t in tlist)
    # A cluster of bars per task count, sequential first; a dashed line
    # over each cluster marks the ideal speedup, min(N, cores).
    ideal = "\n".join(
        f"set arrow from {i - 0.45},{min(t, cores)} to {i + 0.45},"
        f"{min(t, cores)} nohead dt 2 lw 2 lc rgb 'gray30'"
        for i, t in enumerate(tlist))
    bars = ", \\\n     ".join(
        f"{'data' if k == 0 else chr(39) * 2} using {k + 2}:xtic(1) "
        f"title '{m}'" for k, m in enumerate(MODES))
    labels = ", \\\n     ".join(
        f"'' using ($0 + {(k - (len(MODES) - 1) / 2) / (len(MODES) + 1):.3f})"
        f":{k + 2}:(sprintf('%.2f', ${k + 2})) with labels offset 0,0.7 "
        "font ',9' notitle" for k in range(len(MODES)))
    link = plot("cpu-scaling", data, f"""
set title "GET /run/prime?limit={prime['limit']}: speedup over sequential on {cores} cores (medians of {prime['rounds']} rounds)"
set xlabel "tasks"
set ylabel "speedup over sequential"
set yrange [0:{max(min(max(tlist), cores), 2) + 0.5}]
set grid ytics
set key top left
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xrange [-0.6:{len(tlist) - 0.4}]
{ideal}
set label "dashed: ideal, min(tasks, cores)" at graph 0.02, graph 0.62 font ',9'
plot {bars}, \\
     {labels}
""", f"{raw}/plot", size=(720, 420))
    if link:
        out.append(("p", f"![speedup over sequential per mode and task "
                         f"count]({link})"))

    rows = []
    for t, m in keys:
        rs = per[(t, m)]
        rows.append((
            str(t), m, f"{med[(t, m)]:.1f}",
            f"{statistics.median(r['client_ms'] for r in rs):.1f}",
            f"{statistics.median(r['cpu_s'] for r in rs):.2f}",
            f"{statistics.median(r['others_s'] for r in rs):.2f}",
            f"{statistics.median(r['steal_s'] for r in rs):.2f}",
            f"{statistics.median(r['last_start_ms'] for r in rs):.2f}",
            f"{statistics.median(r['end_skew_ms'] for r in rs):.1f}",
            f"{statistics.median(100 * r['overlap_ms'] / r['wall_ms'] for r in rs):.0f}"))
    head = ("tasks", "mode", "wall ms", "client ms", "server CPU s",
            "others' CPU s", "steal s", "last task start ms",
            "task end skew ms", "tasks overlap %")
    out.append(("p", "Medians of the rounds. client ms is the client-side "
                     "time of the whole request; server CPU is the user + "
                     "system time of conlab and its workers during the "
                     "request, others' CPU the machine's busy time less the "
                     "server's and the bench's (other programs), steal what "
                     "the hypervisor reports it took (/proc and /proc/stat, "
                     "10 ms ticks, all cores); the task columns come from "
                     "the tasks' start_ms/end_ms (overlap: the time all "
                     "tasks ran at once, as a share of wall_ms)."))
    out.append(("t", table(head, rows, ["r", "l"] + ["r"] * 8)))
    head = ("tasks", "mode") + tuple(f"round {i}" for i in
                                     range(1, prime["rounds"] + 1))
    rows = [(str(t), m) + tuple(
        f"{r['wall_ms']:.0f} ms ({r['others_s']:.2f} s)" for r in per[(t, m)])
        for t, m in keys]
    out.append(("p", "Each run: wall_ms (others' CPU s during it)."))
    out.append(("t", table(head, rows, ["r", "l"] +
                           ["r"] * prime["rounds"])))
    verdicts = []
    for mode, op, bound in TARGETS:
        sp = speedup[(tmax, mode)]
        ok = sp >= bound if op == ">=" else sp <= bound
        verdicts.append(f"{'PASS' if ok else 'FAIL'}: {mode} speedup at "
                        f"{tmax} tasks {sp:.2f}x, target {op} {bound:.1f}x")
    missed = sum(v.startswith("FAIL") for v in verdicts)
    out.append(("l", verdicts))
    out.append(("n", f"Targets: {len(verdicts) - missed} of {len(verdicts)} "
                     "met." + (" A missed target is reported, not an error: "
                               "the exit status does not depend on it."
                               if missed else "")))

    calm = {k: [r for r in per[k] if r["others_s"] <=
                DISTURBED * cores * r["wall_ms"] / 1e3] for k in keys}
    disturbed = sum(len(per[k]) - len(calm[k]) for k in keys)
    if disturbed:
        note = (f"WARNING: in {disturbed} of {len(runs)} runs other programs "
                f"used more than {DISTURBED:.0%} of the machine's "
                f"{cores} cores (others' CPU column): these figures measure "
                "the machine's load as much as conlab.")
        if all(calm[k] for k in keys):
            cmed = {k: statistics.median(r["wall_ms"] for r in calm[k])
                    for k in keys}
            cseq = cmed[(tmax, "sequential")]
            note += (" Over the undisturbed runs only, speedups at "
                     f"{tmax} tasks: " + ", ".join(
                         f"{m} {cseq / cmed[(tmax, m)]:.2f}x "
                         f"({len(calm[(tmax, m)])} runs, median "
                         f"{cmed[(tmax, m)]:.0f} ms)" for m in MODES[1:])
                     + f"; sequential: {len(calm[(tmax, 'sequential')])} "
                     f"runs, median {cmed[(tmax, 'sequential')]:.0f} ms.")
        else:
            note += (" No undisturbed run of " + ", ".join(
                f"{m} at {t} tasks" for t, m in keys if not calm[(t, m)])
                + ".")
        out.append(("n", note))
    else:
        out.append(("n", f"No run was disturbed: other programs used at most "
                         f"{DISTURBED:.0%} of the machine during every run."))
    summary = {"prime": {
        "limit": prime["limit"], "rounds": prime["rounds"],
        "tasks": tlist, "plot": link,
        "runs": {f"{t} {m}": {"wall_ms": med[(t, m)],
                              "speedup": speedup[(t, m)],
                              "efficiency": efficiency[(t, m)]}
                 for t, m in keys}}}

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
    summary["roundtrip"] = {
        "mean_us": rt_single, "p50_us": rt_single_p50,
        "job_c1_mean_us": single["job"]["mean"],
        "health_c1_mean_us": single["health"]["mean"],
        "job_rps": load["job"]["rps"], "job_p50_ms": load["job"]["p50"],
        "job_p99_ms": load["job"]["p99"],
        "health_rps": load["health"]["rps"],
        "health_p99_ms": load["health"]["p99"],
        "connections": conns, "duration": env["DURATION"],
        "rounds": rounds, "errors": wrk_errors}

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

    # 4. The tutorials' Python programs against the same work in conlab.
    tut = json.load(open(f"{raw}/tutorials.json"))
    names = [p[0] for p in tut["pairs"]]
    good = [r for r in tut["runs"] if r["ok"]]
    failures = tut["failures"]
    if failures:
        status = 1
    rows, ratios = [], {}
    for name in names:
        rs = [r for r in good if r["name"] == name]
        if not rs:
            rows.append((name,) + ("-",) * 9)
            continue
        py_ms = statistics.median(r["python"]["wall_ms"] for r in rs)
        proc_ms = statistics.median(r["python_process_ms"] for r in rs)
        cl_wall = statistics.median(r["conlab_wall_ms"] for r in rs)
        cl_client = statistics.median(r["conlab_client_ms"] for r in rs)
        ratios[name] = {"python_ms": py_ms, "python_process_ms": proc_ms,
                        "conlab_wall_ms": cl_wall,
                        "conlab_client_ms": cl_client,
                        "ratio": py_ms / cl_client,
                        "python_rss_mib": statistics.median(
                            r["python"]["maxrss_mib"] +
                            r["python"].get("child_maxrss_mib", 0)
                            for r in rs)}
        answer_kib = statistics.median(
            r["conlab_answer_bytes"] for r in rs) / 1024
        rows.append((
            name, f"{py_ms:.1f}", f"{proc_ms:.0f}", f"{cl_wall:.1f}",
            f"{cl_client:.1f}", f"{py_ms / cl_client:.1f}x",
            f"{statistics.median(r['python']['cpu_s'] for r in rs):.2f}",
            f"{statistics.median(r['conlab_cpu_s'] for r in rs):.2f}",
            f"{ratios[name]['python_rss_mib']:.0f}",
            f"{answer_kib:.1f}"))
    first = (good or [{"python": {}}])[0]["python"]
    out.append(("h", "4. The tutorials' Python programs against the same "
                     "work through conlab"))
    out.append(("p", f"Each of {tut['rounds']} rounds runs every pair, the "
                     "Python program (a fresh process) and then the same "
                     "workload as one GET of this conlab. Programs in "
                     "bench/python/, run with "
                     f"{tut['python']} (Python {first.get('python', '?')}): "
                     "prime_sequential.py (a trial-division is_prime over "
                     f"[1, {tut['limit']:,}) in a list comprehension) "
                     "against `/run/prime?mode=sequential&tasks=1`; "
                     "prime_pool.py (one contiguous chunk per process on a "
                     f"multiprocessing.Pool of {tut['workers']}, pool.map, "
                     "per-number results sent back and flattened) against "
                     f"`mode=processes&tasks={tut['workers']}`; "
                     "prime_threads.py (the same chunks on a "
                     "ThreadPoolExecutor) against `mode=gil`; "
                     "squares_pool.py (ProcessPoolExecutor.map(square, "
                     "numbers)) against `POST /run/square` with the numbers 1..N as a JSON body"
                     "&mode=processes`. Every answer was checked against "
                     "the program's (prime counts, the squares in order). "
                     "Python ms is the program's own timer, placed where "
                     "the tutorial places it (pool start-up and end "
                     "included); process ms adds the interpreter's start; "
                     "conlab ms is the server's wall_ms and the client's "
                     "time of the whole request (HTTP and JSON included); "
                     "Python / conlab divides Python ms by conlab's client "
                     "ms. CPU: the program with its reaped pool workers; "
                     "conlab with its workers during the request. Peak RSS: "
                     "the program's ru_maxrss plus its largest child's. "
                     "Medians of the rounds."))
    out.append(("t", table(("workload", "Python ms", "process ms",
                            "conlab wall ms", "conlab client ms",
                            "Python / conlab", "Python CPU s",
                            "conlab CPU s", "Python peak RSS MiB",
                            "conlab answer KiB"), rows)))
    notes = []
    for name in names:
        rs = [r for r in good if r["name"] == name]
        chunks = [r["python"]["chunk_ms"] for r in rs
                  if r["python"].get("chunk_ms")]
        if chunks:
            each = [statistics.median(c[i] for c in chunks)
                    for i in range(len(chunks[0]))]
            notes.append(f"{name}: the Python chunks took " + ", ".join(
                f"{ms:.0f}" for ms in each) + " ms (medians): contiguous "
                "chunks of a trial division are not equally costly"
                + (", and on threads they take turns on the GIL"
                   if "threads" in name else ""))
        maps = [r["python"] for r in rs if "map_ms" in r["python"]]
        if maps:
            notes.append(
                f"{name}: on a pool already started, map with chunksize 1 "
                f"(the tutorial's) took "
                f"{statistics.median(m['map_ms'] for m in maps):.1f} ms, "
                f"with one batch per worker (chunksize "
                f"{maps[0]['batch']}, as conlab batches) "
                f"{statistics.median(m['map_batched_ms'] for m in maps):.1f}"
                " ms; the rest of the tutorial's time is starting and "
                "ending the pool")
    if notes:
        out.append(("l", notes))
    if failures:
        out.append(("n", "ERROR: wrong or failed runs: "
                         + "; ".join(failures)))
    summary["tutorials"] = {"rounds": tut["rounds"], "limit": tut["limit"],
                            "python": first.get("python"),
                            "pairs": ratios, "failures": failures}

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
                     f"{use['idle']:.1f}", f"{use['steal']:.1f}",
                     f"{after['rss_kib'] / 1024:.1f} + "
                     f"{after['rss_workers_kib'] / 1024:.1f}"))
        if share > DISTURBED:
            busy_parts.append(f"{after['label']} ({100 * share:.0f}%)")
    out.append(("h", "Machine use and memory during the bench"))
    out.append(("p", "CPU seconds over all cores, from /proc and /proc/stat: "
                     "the server with its workers; the bench's clients (wrk "
                     "and the Python helpers and programs); others: the rest "
                     "of the machine's busy time, i.e. other programs; idle; "
                     "steal as the hypervisor reports it. Server RSS: "
                     "conlab's VmRSS + its worker processes' at the end of "
                     "the part "
                     f"(at start: {snaps[0]['rss_kib'] / 1024:.1f} + "
                     f"{snaps[0]['rss_workers_kib'] / 1024:.1f} MiB)."))
    out.append(("t", table(("part", "seconds", "server s", "clients s",
                            "others s", "others % of machine", "idle s",
                            "steal s", "server RSS MiB"), rows)))
    summary["memory"] = {s["label"]: [s["rss_kib"], s["rss_workers_kib"]]
                         for s in snaps}
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
    # 499 (0 in older builds) is logged, never sent: the client had closed
    # the connection (wrk does, with requests in flight, when a run ends).
    gone_codes = ("499", "0")
    bad = [(p, c, n) for p, c, n in tally
           if not c.startswith("2") and c not in gone_codes]
    gone = [(p, c, n) for p, c, n in tally if c in gone_codes]
    lines = int(env["BENCH_LOG_LINES"])
    answered = sum(n for p, c, n in tally if c not in gone_codes)
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
            f"{n} x {c} on {p}" for p, c, n in gone) + " (a queued job "
            "whose client had closed the connection: wrk closes its "
            "connections with requests in flight when a run ends; nothing "
            "is sent)."))

    # Render.
    conlab_cmd = (f"conlab --port 0 --workers {env['SERVER_WORKERS']} "
                  f"--threads {env['SERVER_THREADS']} "
                  f"{env.get('BENCH_CONLAB_ARGS', '')}").rstrip()
    meta = [
        f"date: {env['BENCH_DATE']}",
        f"machine: {env['BENCH_CORES']} cores, {env['BENCH_MODEL']}, "
        f"{env.get('BENCH_KERNEL', '?')}; load average "
        f"{env['BENCH_LOAD_BEFORE']} before, {env['BENCH_LOAD_AFTER']} after",
        f"server: `{conlab_cmd}`, access log to a file ({lines} lines, "
        f"{env['BENCH_LOG_BYTES']} bytes); clients on the same machine",
    ]
    write_report("CPU benchmark",
                 "Benchmark: CPU scaling, pool round trip, responsiveness, "
                 "the tutorials' Python programs", meta, out, args.md)
    with open(f"{raw}/summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    if wrk_errors:
        print(f"bench: wrk reported {wrk_errors} errors", file=sys.stderr)
    if bad:
        print("bench: the access log shows non-2xx answers", file=sys.stderr)
    return status


def main():
    # SIGTERM (bench/cpu.sh's clean-up) unwinds like an exit, so that a
    # running Python program is killed and reaped (run_program's finally).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prime")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=10000000)
    p.add_argument("--tasks", default="2",
                   help="task counts, comma-separated (1,2)")
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
    u = sub.add_parser("tutorials")
    u.add_argument("--port", type=int, required=True)
    u.add_argument("--pid", type=int, required=True)
    u.add_argument("--out", required=True)
    u.add_argument("--python", required=True)
    u.add_argument("--pydir", required=True)
    u.add_argument("--workers", type=int, default=2)
    u.add_argument("--limit", type=int, default=2000000)
    u.add_argument("--squares", default="4,5000",
                   help="counts of numbers to square, comma-separated")
    u.add_argument("--rounds", type=int, default=3)
    u.add_argument("--timeout", type=float, default=120)
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
            "snap": cmd_snap, "tutorials": cmd_tutorials,
            "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The overhead part's measuring and report (bench/overhead.sh runs it):
what a unit of concurrency costs to start and to keep, conlab's
/run/overhead beside the Python equivalents measured in the same run.

    overhead.py --port PORT --rounds R --raw DIR --md FILE [--python PY]

For each of R rounds, in turn: GET /run/overhead for threads (THREADS
units), processes (POOL units: jobs on the running pool), spawn (SPAWN
fresh processes) and async (TASKS loop tasks), then
bench/python/overhead_units.py with the same counts (threading.Thread,
multiprocessing.Process with the default start method and with "spawn",
asyncio.create_task). Reported per unit kind: the median over the rounds of
each round's median start-up (µs), its p99 (the rounds' largest), and the
median memory per unit, each with the method the measurement states; the
raw answers in DIR, the markdown in FILE, the headline figures in
DIR/summary.json for bench/report.py. Only the standard library is used;
only 127.0.0.1 is contacted.

Exit status: 0, or 1 when a request or the Python program fails.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
UNITS = {"threads": 64, "processes": 8, "spawn": 16, "async": 1000}
LABELS = {  # conlab's kind: what the service calls it
    "threads": "thread (pthread_create)",
    "processes": "pool job (prefork, warm)",
    "spawn": "fresh process (posix_spawn)",
    "async": "loop task",
}
PY_ORDER = ["threading.Thread", "multiprocessing.Process (fork)",
            "multiprocessing.Process (spawn)", "asyncio.create_task"]


def get(port, path, timeout=60):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                timeout=timeout) as r:
        return json.load(r)


def summarise(rounds):
    """{kind: figures} over rounds of {kind: one measurement}."""
    out = {}
    for kind in rounds[0]:
        ms = [r[kind] for r in rounds if kind in r]
        out[kind] = {
            "start_us_median": statistics.median(m["median"] for m in ms),
            "start_us_min": min(m["min"] for m in ms),
            "start_us_p99": max(m["p99"] for m in ms),
            "memory_bytes": statistics.median(m["memory_bytes"] for m in ms),
            "units": ms[0]["units"],
            "start_method": ms[0]["start_method"],
            "memory_method": ms[0]["memory_method"],
        }
    return out


def fmt_us(us):
    return "%.1f µs" % us if us < 1000 else "%.2f ms" % (us / 1000)


def fmt_bytes(b):
    if b >= 1 << 20:
        return "%.2f MiB" % (b / (1 << 20))
    if b >= 1 << 10:
        return "%.1f KiB" % (b / 1024)
    return "%.0f B" % b


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args()

    conlab_rounds, py_rounds = [], []
    status = 0
    py_version = "?"
    for rnd in range(a.rounds):
        one = {}
        for kind, units in UNITS.items():
            try:
                body = get(a.port, "/run/overhead?mode=%s&units=%d"
                           % (kind, units))
            except OSError as e:
                print("bench: /run/overhead %s: %s" % (kind, e),
                      file=sys.stderr)
                status = 1
                continue
            with open(os.path.join(a.raw, "conlab-%s-%d.json" % (kind, rnd)),
                      "w") as f:
                json.dump(body, f)
            s, m = body["startup_us"], body["memory_bytes"]
            one[kind] = {"min": s["min"], "median": s["median"],
                         "p99": s["p99"], "memory_bytes": m["median"],
                         "units": body["units"], "start_method": s["method"],
                         "memory_method": m["method"]}
        conlab_rounds.append(one)
        try:
            run = subprocess.run(
                [a.python, os.path.join(HERE, "python", "overhead_units.py"),
                 "--threads", str(UNITS["threads"]),
                 "--processes", str(UNITS["processes"]),
                 "--tasks", str(UNITS["async"])],
                capture_output=True, text=True, timeout=300, check=True)
            body = json.loads(run.stdout)
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            print("bench: overhead_units.py: %s" % e, file=sys.stderr)
            status = 1
            continue
        with open(os.path.join(a.raw, "python-%d.json" % rnd), "w") as f:
            json.dump(body, f)
        py_version = body.pop("python", "?")
        py_rounds.append(body)
        time.sleep(0.2)

    if not conlab_rounds or not py_rounds:
        return 1
    conlab = summarise(conlab_rounds)
    python = summarise(py_rounds)
    summary = {"rounds": a.rounds, "units": UNITS, "python": py_version,
               "conlab": conlab, "py": python}
    with open(os.path.join(a.raw, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)

    md = ["# Start-up overhead and memory per unit", "",
          "`GET /run/overhead?mode=MODE&units=N` (threads %d, pool %d, "
          "spawn %d, async %d units) beside bench/python/overhead_units.py "
          "(Python %s) with the same counts, in the same run, %d rounds: "
          "start-up is the median of the rounds' medians (min and p99 over "
          "all rounds), memory the median per unit. Each figure's method is "
          "below the table." % (UNITS["threads"], UNITS["processes"],
                                UNITS["spawn"], UNITS["async"], py_version,
                                a.rounds), "",
          "| unit | start-up median | min | p99 | memory per unit |",
          "|---|---|---|---|---|"]
    for kind in UNITS:
        if kind in conlab:
            c = conlab[kind]
            md.append("| conlab %s | %s | %s | %s | %s |" % (
                LABELS[kind], fmt_us(c["start_us_median"]),
                fmt_us(c["start_us_min"]), fmt_us(c["start_us_p99"]),
                fmt_bytes(c["memory_bytes"])))
    for kind in PY_ORDER:
        if kind in python:
            p = python[kind]
            md.append("| Python %s | %s | %s | %s | %s |" % (
                kind, fmt_us(p["start_us_median"]), fmt_us(p["start_us_min"]),
                fmt_us(p["start_us_p99"]), fmt_bytes(p["memory_bytes"])))
    md += ["", "Methods:", ""]
    for kind in UNITS:
        if kind in conlab:
            md.append("- conlab %s: start-up: %s; memory: %s." % (
                LABELS[kind], conlab[kind]["start_method"],
                conlab[kind]["memory_method"]))
    for kind in PY_ORDER:
        if kind in python:
            md.append("- Python %s: start-up: %s; memory: %s." % (
                kind, python[kind]["start_method"],
                python[kind]["memory_method"]))
    with open(a.md, "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return status


if __name__ == "__main__":
    sys.exit(main())

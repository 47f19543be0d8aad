#!/usr/bin/env python3
"""The reporting half of bench/limits.sh (tests/integration/run.py --limits
does the measuring). Only the Python standard library is used.

    limits.py --figures FIGURES.json --log RUN.log --md OUT.md
              --summary SUMMARY.json
        Writes the report of the memory-ceiling mixes, fairness and memory
        per task as markdown (and on stdout), with each figure against its
        target (the constants of tests/integration/limits.py) and the
        test's own verdict from run.py's output, and the headline figures
        for bench/report.py. Exit status 1 when a figure is missing (the
        run did not measure it: see RUN.log), else 0: a missed target is
        a FAIL line, not an error.
"""

import argparse
import importlib.util
import json
import os
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in bench/ or tests/
HERE = os.path.dirname(os.path.abspath(__file__))
from cpu import table, write_report  # noqa: E402  (bench/cpu.py)


def load_tests_limits():
    """tests/integration/limits.py, by its path: this file has its name,
    and tests/integration a cpu.py of its own (so it goes last on the
    path, for the harness it imports)."""
    tests = os.path.join(HERE, "..", "tests", "integration")
    sys.path.append(tests)
    spec = importlib.util.spec_from_file_location(
        "integration_limits", os.path.join(tests, "limits.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


limits = load_tests_limits()


def verdict(ok):
    return "PASS" if ok else "FAIL"


def test_verdict(log, words):
    """ok / FAIL / skip of the first case whose line holds every word."""
    for line in log.splitlines():
        if all(w in line for w in words):
            return line.split()[0]
    return "not run"


def fmt_answers(answers):
    return ", ".join("%s: %s" % kv for kv in sorted((answers or {}).items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--figures", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--summary", required=True)
    args = ap.parse_args()
    try:
        with open(args.figures) as f:
            fig = json.load(f)
    except (OSError, ValueError) as e:
        print("bench: no figures from run.py (%s)" % e, file=sys.stderr)
        fig = {}
    try:
        with open(args.log) as f:
            log = f.read()
    except OSError:
        log = ""
    env = os.environ
    missing = []
    out = []
    summary = {"ceiling": [], "fairness": None, "per_task": None,
               "run_s": fig.get("ran_s")}

    # Memory ceiling
    out.append(("h", "Memory ceiling: up to 1,000 concurrent requests with "
                     "the largest accepted parameters"))
    compares = fig.get("ceiling.compares")
    out.append(("p", "Each mix against a fresh conlab with default options: "
                "the clients connect at once, stay %.0f s while the VmRSS of "
                "the server and its workers is sampled every %.0f ms, then "
                "leave (their work must be cancelled). Targets: peak under "
                "%d MiB; every answer 200, 400 naming a parameter or 503 "
                "with Retry-After; every budget of /health back to 0 within "
                "%.0f s; the RSS back within %d%% of idle within %.0f s. A "
                "server past %d MiB is killed at once (the mix then stops "
                "there). Largest /run/compare accepted here: %s." % (
                    limits.LOAD_S, limits.SAMPLE_S * 1000, limits.CEILING_MIB,
                    limits.BUDGETS_ZERO_S, limits.RETURN_SHARE * 100,
                    limits.RETURN_WAIT_S, limits.ABORT_MIB,
                    "; ".join("%s `%s`" % kv for kv in compares.items())
                    if compares else "not measured")))
    rows = []
    for name in limits.MIXES:
        m = fig.get("ceiling." + name)
        if not m:
            continue
        if "peak_mib" not in m:
            missing.append("ceiling mix %s" % name)
            continue
        back = m.get("back_s")
        zero = m.get("budgets_zero_s")
        ok = (m["peak_mib"] < limits.CEILING_MIB and back is not None and
              "aborted_at_s" not in m)
        rows.append((
            name + (" (seed %d)" % m["seed"] if "seed" in m else ""),
            str(m["clients"]), "%.1f" % m["idle_mib"],
            "%.1f%s" % (m["peak_mib"], " (killed at %.1f s)" % m[
                "aborted_at_s"] if "aborted_at_s" in m else ""),
            "-" if "after_mib" not in m else "%.1f (%s)" % (
                m["after_mib"], "back in %.1f s" % back if back is not None
                else "not back in %.0f s" % m["rss_back_waited_s"]),
            "-" if zero is None else "%.1f s" % zero,
            fmt_answers(m.get("answers")), str(m.get("unanswered", "-")),
            verdict(ok)))
        summary["ceiling"].append({
            "mix": name, "clients": m["clients"], "idle_mib": m["idle_mib"],
            "peak_mib": m["peak_mib"], "after_mib": m.get("after_mib"),
            "back_s": back, "budgets_zero_s": zero,
            "answers": m.get("answers"), "ok": ok})
    if rows:
        out.append(("t", table(
            ("mix", "clients", "idle MiB", "peak MiB", "after MiB",
             "budgets at 0 after", "answers", "unanswered", "figures"),
            rows)))
        out.append(("p", "The test's verdict (it also checks every "
                         "answer's shape and /metrics): " + ", ".join(
                             "%s %s" % (n, test_verdict(log, ["mix '%s'" % n]))
                             for n in limits.MIXES
                             if fig.get("ceiling." + n))))
    else:
        missing.append("every ceiling mix")

    # Fairness
    f = fig.get("fairness")
    out.append(("h", "Fairness: a second client while the first fills "
                     "every pool"))
    if f and "prime_p99_ms" in f:
        ok = (f["prime_p99_ms"] < limits.FAIR_PRIME_P99_S * 1000 and
              f["health_p99_ms"] < limits.FAIR_HEALTH_P99_S * 1000 and
              not f["bad"])
        out.append(("p", "Client A (127.0.0.1, %d connections) sends the "
                    "largest requests it may (sleeps in processes, threads, "
                    "gil and async mode, primes of 50,000,000 in 256 tasks, "
                    "fetches of 1,000 delays of 10 s, fetches of 100 self "
                    "URLs of 10,000-task sleeps, squares of 10,000 numbers), "
                    "each again as soon as it is answered; client B "
                    "(127.0.0.2) sends `%s` then %d x `/health`, %d times, "
                    "one after another." % (
                        limits.HOG_CONNECTIONS, limits.FAIR_PRIME,
                        limits.FAIR_HEALTH_PER_PRIME, limits.FAIR_PRIMES)))
        out.append(("t", table(
            ("client B", "requests", "p50 ms", "p99 ms", "target p99 ms",
             "figures"),
            [("prime", str(f["prime_n"]), "%.1f" % f["prime_p50_ms"],
              "%.1f" % f["prime_p99_ms"],
              "%.0f" % (limits.FAIR_PRIME_P99_S * 1000),
              verdict(f["prime_p99_ms"] < limits.FAIR_PRIME_P99_S * 1000)),
             ("/health", str(f["health_n"]), "%.2f" % f["health_p50_ms"],
              "%.2f" % f["health_p99_ms"],
              "%.0f" % (limits.FAIR_HEALTH_P99_S * 1000),
              verdict(f["health_p99_ms"] < limits.FAIR_HEALTH_P99_S * 1000))
             ])))
        a = f.get("client_a")
        out.append(("l", [
            "client A: %s" % (json.dumps(a) if a else "no counts"),
            "B's failed requests: %d" % f["bad"],
            "pools when B started: %s" % json.dumps(f.get("pools_at_start")),
            "test: %s" % test_verdict(log, ["fairness"])]))
        summary["fairness"] = {k: f[k] for k in (
            "prime_n", "prime_p50_ms", "prime_p99_ms", "health_n",
            "health_p50_ms", "health_p99_ms", "bad")}
        summary["fairness"]["ok"] = ok
    else:
        missing.append("fairness")
        out.append(("n", "Not measured: see bench/out/limits/run.log."))

    # Memory per task
    p = fig.get("per_task")
    out.append(("h", "Memory per task: %d concurrent `%s`" % (
        limits.PER_TASK_RUNS, limits.PER_TASK_TARGET)))
    if p and "added_mib" in p:
        late = p.get("lateness_p99_ms")
        out.append(("t", table(
            ("figure", "measured", "target", "figures"),
            [("VmRSS added at the peak (server + workers), MiB",
              "%.1f (idle %.1f, peak %.1f)" % (p["added_mib"], p["idle_mib"],
                                               p["peak_mib"]),
              "%d at most" % limits.PER_TASK_MAX_MIB,
              verdict(p["added_mib"] <= limits.PER_TASK_MAX_MIB)),
             ("bytes held per task in flight (VmRSS added / %d tasks)"
              % (limits.PER_TASK_RUNS * 10000),
              "%.0f" % (p["added_mib"] * 1048576 /
                        (limits.PER_TASK_RUNS * 10000)),
              "256 at most",
              verdict(p["added_mib"] * 1048576 /
                      (limits.PER_TASK_RUNS * 10000) <= 256)),
             ("timer lateness p99 (end - start - 1000), ms",
              "-" if late is None else "%.2f (p50 %.2f, max %.1f)" % (
                  late, p["lateness_p50_ms"], p["lateness_max_ms"]),
              "under %.0f" % limits.LATENESS_P99_MS,
              verdict(late is not None and late < limits.LATENESS_P99_MS)),
             ("answers 200 with 10,000 tasks", "%d of %d" % (
                 p["answered"], p["runs"]), "all",
              verdict(p["answered"] == p["runs"]))])))
        out.append(("l", ["test: %s" % test_verdict(
            log, ["/run/sleep?tasks=10000&ms=1000"])]))
        summary["per_task"] = dict(p)
    else:
        missing.append("memory per task")
        out.append(("n", "Not measured: see bench/out/limits/run.log."))

    meta = [
        "date: %s" % env.get("BENCH_DATE", "?"),
        "machine: %s cores, %s, %s; load average %s before, %s after" % (
            env.get("BENCH_CORES", "?"), env.get("BENCH_MODEL", "?"),
            env.get("BENCH_KERNEL", "?"), env.get("BENCH_LOAD_BEFORE", "?"),
            env.get("BENCH_LOAD_AFTER", "?")),
        "measured by `tests/integration/run.py --limits --mixes all` "
        "(%s s; %s cases passed, %s failed; exit status %s); servers: "
        "`conlab --port 0 --web-root DIR`, default options otherwise, on "
        "127.0.0.1; clients on the same machine" % (
            fig.get("ran_s", "?"), fig.get("passed", "?"),
            fig.get("failed", "?"), env.get("BENCH_RUN_RC", "?")),
    ]
    if missing:
        out.append(("n", "ERROR: not measured: %s (see "
                         "bench/out/limits/run.log)" % ", ".join(missing)))
    write_report("Admission by cost", "Benchmark: admission by cost "
                 "(memory ceiling, fairness, memory per task)", meta, out,
                 args.md)
    summary["missing"] = missing
    with open(args.summary, "w") as fh:
        json.dump(summary, fh, indent=1)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

"""Integration tests of /run/overhead and /run/table.

Used by run.py (server_groups() below adds its groups to the run). The
tables: MEASURES (a mode and its units: each must answer that many
entries, min <= median <= p99 and memory per unit > 0, with a method per
figure) and BAD_QUERIES (a query and a piece of its 400 message). The
sequences are functions: the orderings between modes, no thread or child
left after measurements, a client that leaves mid-measurement, SIGTERM
mid-measurement, and the table (every cell present within its budget; the
cells that need what this build may lack marked so).

Orderings asserted, and why they hold on any machine: a fresh process's
start-up (posix_spawn, exec, dynamic linking, the greeting over a socket)
is above a thread's (one clone and a wake-up), by orders of magnitude, not
by a margin noise can erase; a process's memory (its own stack, heap, page
tables and private library pages: PSS) is above a thread's committed stack
pages; a loop task's record (tens of bytes) is below a thread's (at least
one 4 KiB page). Nothing else is ordered: the pool's start-up against a
thread's depends on the load (both are a wake-up of something already
running).
"""

import json
import os
import signal
import socket
import time

import cpu
import harness
from harness import (
    Background, CheckFailed, build_request, check, expect_error_shape,
    json_path, stop_and_check)

WORKERS = 2
MODES = ("threads", "processes", "spawn", "async")
MEASURES = [("threads", 32), ("processes", 4), ("spawn", 4), ("async", 500)]
BAD_QUERIES = [
    ("mode=fibers", "parameter 'mode': 'fibers' is not one of: threads, "
     "processes, spawn, async"),
    ("mode=threads&units=0", "parameter 'units': '0' is not an integer in "
     "[1, 256]"),
    ("mode=threads&units=257", "[1, 256]"),
    ("mode=spawn&units=65", "[1, 64]"),
    ("mode=processes&units=65", "[1, 64]"),
    ("mode=async&units=10001", "[1, 10000]"),
    ("mode=async&units=ten", "parameter 'units'"),
    ("mode=threads&stack=1", "stack"),
]
TABLE_ROWS = ["io_bound", "cpu_bound", "mixed", "gil", "parallelism",
              "startup", "memory"]
TABLE_BUDGET_S = 30.0


def _short(value, limit=160):
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "..."


def measure(port, mode, units, timeout=None):
    resp, body = cpu.get_json(
        port, "/run/overhead?mode=%s&units=%d" % (mode, units),
        timeout=timeout or cpu.scaled(20.0))
    check(resp.status == 200, "%s x%d: %d %s" % (mode, units, resp.status,
                                                _short(body)))
    return body


def check_measure(body, mode, units):
    check(body["mode"] == mode, "mode %r" % body["mode"])
    check(body["params"] == {"mode": mode, "units": units},
          "params %r" % body["params"])
    entries = body["entries"]
    check(len(entries) == units, "%d entries for %d units"
          % (len(entries), units))
    s = body["startup_us"]
    check(0 <= s["min"] <= s["median"] <= s["p99"],
          "start-up min/median/p99 not ordered: %r" % s)
    starts = sorted(e["startup_us"] for e in entries)
    check(abs(starts[0] - s["min"]) < 0.01 and
          abs(starts[-1] - max(starts)) < 0.01,
          "min %r is not the entries' %r" % (s["min"], starts[0]))
    m = body["memory_bytes"]
    check(0 < m["min"] <= m["median"], "memory min/median: %r" % m)
    check(all(e["bytes"] > 0 for e in entries), "an entry holds 0 bytes")
    for what in (s, m):
        check(isinstance(what.get("method"), str) and
              len(what["method"]) > 20, "no method stated: %r" % what)
    if mode in ("processes", "spawn"):
        check(m["median"] >= 64 * 1024, "a process's PSS %d bytes"
              % m["median"])
        check(all(e["id"] > 1 for e in entries), "ids are not pids")


def measure_case(mode, units):
    def run(srv, ctx):
        body = measure(srv.port, mode, units)
        check_measure(body, mode, units)
        ctx.setdefault("medians", {})[mode] = (
            body["startup_us"]["median"], body["memory_bytes"]["median"])
        return "start-up median %.1f us, p99 %.1f us; memory median %d B" % (
            body["startup_us"]["median"], body["startup_us"]["p99"],
            body["memory_bytes"]["median"])
    return run


def bad_case(query, words):
    def run(srv, ctx):
        resp, body = cpu.get_json(srv.port, "/run/overhead?" + query)
        check(resp.status == 400, "status %d: %s" % (resp.status,
                                                     _short(body)))
        expect_error_shape(resp)
        message = body["error"]["message"]
        check(words in message, "message %r lacks %r" % (message, words))
        return message
    return run


def case_orderings(srv, ctx):
    """spawn start-up > threads start-up; a process's memory > a thread's;
    a loop task's bytes < a thread's (see the module's comment)."""
    got = ctx.get("medians", {})
    for mode, units in MEASURES:
        if mode not in got:
            body = measure(srv.port, mode, units)
            got[mode] = (body["startup_us"]["median"],
                         body["memory_bytes"]["median"])
    check(got["spawn"][0] > got["threads"][0],
          "spawn start-up %.1f us <= threads' %.1f us"
          % (got["spawn"][0], got["threads"][0]))
    check(got["spawn"][1] > got["threads"][1],
          "a process's %d B <= a thread's %d B" % (got["spawn"][1],
                                                   got["threads"][1]))
    check(got["processes"][1] > got["threads"][1],
          "a pool worker's %d B <= a thread's %d B" % (got["processes"][1],
                                                       got["threads"][1]))
    check(got["async"][1] < got["threads"][1],
          "a loop task's %d B >= a thread's %d B" % (got["async"][1],
                                                     got["threads"][1]))
    return "; ".join("%s %.1f us %d B" % (m, got[m][0], got[m][1])
                     for m in MODES)


def _tasks(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def _baseline(srv):
    """The server at rest: its thread count and its children (the pool)."""
    body = cpu.wait_ready(srv, WORKERS)
    pool = set(json_path(body, "pools.process.pids"))
    return _tasks(srv.pid), pool


def _wait_rest(srv, tasks, pool, timeout, what):
    """Waits (bounded) until the server is back to at most tasks threads
    and only its pool as children; returns the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        now_tasks = _tasks(srv.pid)
        kids = set(harness.children_of(srv.pid))
        # At most as many: spawn mode's thread lives only while it has
        # children, so it may be counted at rest and be gone after.
        if now_tasks <= tasks and kids <= pool:
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise CheckFailed("%s: %d threads (at rest %d), children %s "
                              "(pool %s) after %.1f s" % (
                                  what, now_tasks, tasks, sorted(kids),
                                  sorted(pool), timeout))
        time.sleep(0.02)


def case_no_leaks(srv, ctx):
    """After a measurement of each mode, no thread and no child is left
    beyond the server's own (its /proc/PID/task count and its children
    are back to what they were at rest)."""
    tasks, pool = _baseline(srv)
    for mode, units in (("threads", 256), ("spawn", 16), ("processes", 8),
                        ("async", 10000)):
        check_measure(measure(srv.port, mode, units), mode, units)
        _wait_rest(srv, tasks, pool, cpu.scaled(3.0), mode)
    return "%d threads and %d pool workers after each mode" % (tasks,
                                                               len(pool))


def _leave_midway(srv, target, settle, what):
    """Sends target, sees units come alive, closes the socket mid-way."""
    sock = socket.create_connection((harness.LOOPBACK, srv.port),
                                    timeout=harness.SOCKET_TIMEOUT_S)
    try:
        sock.sendall(build_request("GET", target))
        time.sleep(settle)
    finally:
        sock.close()


def case_client_gone(srv, ctx):
    """A client that leaves mid-measurement frees everything: its spawned
    processes are reaped and its threads joined within a sweep and a
    release, and the metrics count the measurement as an error."""
    tasks, pool = _baseline(srv)
    notes = []
    for mode, units, see in (("spawn", 64, lambda: len(
            harness.children_of(srv.pid)) > len(pool) + 2),
                             ("threads", 256, lambda: _tasks(srv.pid) >
                              tasks + 8)):
        target = "/run/overhead?mode=%s&units=%d" % (mode, units)
        sock = socket.create_connection((harness.LOOPBACK, srv.port),
                                        timeout=harness.SOCKET_TIMEOUT_S)
        try:
            sock.sendall(build_request("GET", target))
            deadline = time.monotonic() + cpu.scaled(5.0)
            while not see():
                check(time.monotonic() < deadline,
                      "%s: no unit seen alive" % mode)
                time.sleep(0.002)
        finally:
            sock.close()
        took = _wait_rest(srv, tasks, pool, cpu.scaled(5.0),
                          "%s after the client left" % mode)
        notes.append("%s freed in %.0f ms" % (mode, took * 1000))
    text = harness.http_get(srv.port, "/metrics")[2].decode()
    for mode in ("spawn", "threads"):
        line = ('conlab_overhead_measurements_total{mode="%s",'
                'outcome="error"}' % mode)
        check(any(l.startswith(line) and float(l.split()[-1]) >= 1
                  for l in text.splitlines()),
              "metrics lack %s >= 1" % line)
    return "; ".join(notes)


def case_shutdown(srv, ctx):
    """SIGTERM during a measurement of 64 fresh processes: answered or
    closed, exit 0, no process left (the pool's and the measurement's)."""
    pool = sorted(cpu.wait_ready(srv, WORKERS)["pools"]["process"]["pids"])
    job = Background(srv.port, "/run/overhead?mode=spawn&units=64",
                     cpu.scaled(20.0))
    job.start()
    try:
        deadline = time.monotonic() + cpu.scaled(5.0)
        while len(harness.children_of(srv.pid)) <= len(pool) + 2:
            check(time.monotonic() < deadline, "no process spawned")
            time.sleep(0.002)
        spawned = sorted(set(harness.children_of(srv.pid)) - set(pool))
        note = stop_and_check(srv, signal.SIGTERM, cpu.scaled(6.0),
                              pool + spawned, ("received SIGTERM", "stopped"))
    finally:
        job.join(cpu.scaled(10.0))
    check(job.done, "the measurement is unanswered after the exit")
    left = harness.session_members(srv.pid)
    check(not left, "processes of the server's session left: %s" % left)
    status = job.resp.status if job.resp is not None else None
    return "%d processes spawned, answer %s; %s" % (len(spawned), status,
                                                    note)


# --------------------------------------------------------------------------
# /run/table

def _build_lacks(port):
    """What this build lacks of what the table needs: the work demo,
    mode=spawn, cpu_ms per task."""
    doc = cpu.get_json(port, "/openapi.json")[1]
    lacks = set()
    if "/run/work" not in doc["paths"]:
        lacks.add("work")
    modes = doc["components"]["parameters"]["sleep.mode"]
    if "spawn" not in modes["schema"]["enum"]:
        lacks.add("spawn")
    _, run = cpu.get_json(port, "/run/sleep?mode=threads&tasks=1&ms=1")
    if "cpu_ms" not in run["tasks"][0]:
        lacks.add("cpu_ms")
    return lacks


def _needs(row, column):
    """What a cell needs beyond this branch's own: see table.c's rows."""
    needs = set()
    if row == "mixed" or (row == "gil" and column == "async"):
        needs.add("work")
    if column == "spawn" and row not in ("startup", "memory"):
        needs.add("spawn")
    if row == "parallelism":
        needs.add("cpu_ms")
        if column == "async":
            needs.add("work")
    return needs


def case_table(srv, ctx):
    """Every cell present within the budget: a figure, its unit, a
    reproducing request, the claim and its rule, and a verdict (true,
    false, or null where the tutorials claim nothing); a cell that needs
    what this build lacks is not available, and says why."""
    lacks = _build_lacks(srv.port)
    started = time.monotonic()
    resp, body = cpu.get_json(srv.port, "/run/table",
                              timeout=cpu.scaled(TABLE_BUDGET_S + 10.0))
    took = time.monotonic() - started
    check(resp.status == 200, "status %d: %s" % (resp.status, _short(body)))
    check(took <= cpu.scaled(TABLE_BUDGET_S), "took %.1f s" % took)
    check(body["estimate_ms"] <= body["budget_ms"] == TABLE_BUDGET_S * 1000,
          "estimate %r, budget %r" % (body["estimate_ms"], body["budget_ms"]))
    check(body["columns"] == list(MODES), "columns %r" % body["columns"])
    check([r["id"] for r in body["rows"]] == TABLE_ROWS,
          "rows %r" % [r["id"] for r in body["rows"]])
    waiting, shown = [], 0
    for row in body["rows"]:
        check(row["tutorials"] and row["label"], "row %s unlabelled"
              % row["id"])
        check([c["column"] for c in row["cells"]] == list(MODES),
              "row %s: columns %r" % (row["id"],
                                      [c["column"] for c in row["cells"]]))
        for c in row["cells"]:
            where = "%s/%s" % (row["id"], c["column"])
            check(c["request"].startswith("/run/"), "%s: request %r"
                  % (where, c["request"]))
            check(c["claim"] and c["rule"] and c["unit"], "%s: %r"
                  % (where, c))
            if c["available"]:
                shown += 1
                check(isinstance(c["figure"], (int, float)) and
                      c["figure"] >= 0, "%s: figure %r" % (where,
                                                           c["figure"]))
                check(c["holds"] in (True, False, None), "%s: holds %r"
                      % (where, c["holds"]))
                check(not (_needs(row["id"], c["column"]) & lacks),
                      "%s: available, but this build lacks %s"
                      % (where, _needs(row["id"], c["column"]) & lacks))
            else:
                check(c["figure"] is None and c["holds"] is None,
                      "%s: unavailable with a figure" % where)
                check(c.get("reason", "").startswith("not available") or
                      c.get("reason", "").startswith("the run failed"),
                      "%s: reason %r" % (where, c.get("reason")))
                need = _needs(row["id"], c["column"])
                permanent = row["id"] == "cpu_bound" and \
                    c["column"] == "async"
                check(permanent or need & lacks or
                      c["reason"].startswith("the run failed"),
                      "%s: not available without a reason this build "
                      "explains: %r" % (where, c["reason"]))
                if need & lacks:
                    waiting.append(where)
    # The overhead rows are this branch's own: always measured.
    for row in body["rows"]:
        if row["id"] in ("startup", "memory"):
            for c in row["cells"]:
                check(c["available"], "%s/%s: %r" % (row["id"], c["column"],
                                                     c.get("reason")))
    ctx["table"] = body
    return "%d cells measured in %.1f s; waiting for %s: %s" % (
        shown, took, ",".join(sorted(lacks)) or "nothing",
        ", ".join(waiting) or "none")


def case_table_reproduce(srv, ctx):
    """A cell's request reproduces its figure's kind: the threads start-up
    cell's request answers a measurement of the same mode and units."""
    body = ctx.get("table")
    if body is None:
        raise harness.Skipped("the table case did not run")
    cell = next(c for r in body["rows"] if r["id"] == "startup"
                for c in r["cells"] if c["column"] == "threads")
    resp, again = cpu.get_json(srv.port, cell["request"])
    check(resp.status == 200, "%s: %d" % (cell["request"], resp.status))
    check(again["mode"] == "threads" and "units=%d" % again["units"] in
          cell["request"], "%s answered %r" % (cell["request"],
                                               again["params"]))
    return "%s: median %.1f us (table: %.1f us)" % (
        cell["request"], again["startup_us"]["median"], cell["figure"])


def case_table_gone(srv, ctx):
    """A client that leaves /run/table mid-way: nothing more starts and
    nothing is left (threads, children, busy pools)."""
    tasks, pool = _baseline(srv)
    _leave_midway(srv, "/run/table", 0.3, "table")
    cpu.wait_health(srv.port, lambda b: json_path(b, "pools.http.in_flight")
                    == 1 and json_path(b, "pools.threads.busy") == 0 and
                    json_path(b, "pools.process.busy") == 0,
                    cpu.scaled(5.0), "the table ended")
    took = _wait_rest(srv, tasks, pool, cpu.scaled(5.0), "table")
    done = json_path(harness.health(srv.port), "pools.process.completed")
    time.sleep(0.5)  # later steps would be running now if they had started
    after = json_path(harness.health(srv.port), "pools.process.completed")
    check(after == done, "pool jobs ran after the client left: %d -> %d"
          % (done, after))
    return "at rest %.0f ms after the sweep" % (took * 1000)


def server_groups(web_root):
    """(title, extra args, environment, cases) for run.py's server_group."""
    base = ["--web-root", web_root, "--threads", "2", "--workers",
            str(WORKERS), "--grace-ms", "1000"]
    return [
        ("overhead", base, None,
         [("overhead: %s x%d answers its entries and figures" % (m, n),
           measure_case(m, n)) for m, n in MEASURES]
         + [("overhead: %s is 400" % q, bad_case(q, w))
            for q, w in BAD_QUERIES]
         + [("overhead: spawn starts slower than threads; memory ordered",
             case_orderings),
            ("overhead: no thread or child left after each mode",
             case_no_leaks),
            ("overhead: a client that leaves frees every unit",
             case_client_gone),
            ("table: every cell within the budget, waiting ones marked",
             case_table),
            ("table: a cell's request reproduces it", case_table_reproduce),
            ("table: a client that leaves stops it", case_table_gone)]),
        ("overhead-shutdown", base[:-2] + ["--grace-ms", "300"], None,
         [("overhead: SIGTERM mid-measurement, exit 0, nothing left",
           case_shutdown)]),
    ]


if __name__ == "__main__":
    raise SystemExit("run through run.py: python3 tests/integration/run.py "
                     "--binary build/conlab --group overhead")

"""Integration tests of the shared-state demos: /run/counter and
/run/deadlock.

Used by run.py (server_groups() below adds its group to the run). The
tables: COUNTER_CASES (a mode and a sync, every one of them checked for
the invariants that must hold whatever the scheduling: final never above
expected, lost = expected - final, each task's own count exact, nothing
lost with lock, atomic, sequential or async, the service's counter still
0 with separate processes), BAD_QUERIES (a query and a piece of its 400)
and DEADLOCK_CASES (order, mode: deadlocked or not, the cycle named). No
case asserts that a race happens: how often threads lose updates is a
bench figure (bench/state.sh), recorded here only as a figure.

The sequences: a worker killed with kill -9 in the middle of a
processes+lock run (the answer comes, the next run is whole), the demo
thread pool whole after deadlocks (checked in /health), no shared memory
segment left behind by a run, and (group state-shutdown) SIGTERM in the
middle of deadlocks and counts.
"""

import os
import signal
import time

import cpu
import harness
from harness import (Background, check, expect_error_shape,
                     expect_value, stop_and_check)

WORKERS = 2
INCREMENTS = 200000
MODES = ["sequential", "threads", "processes", "async"]
SYNCS = ["none", "lock", "atomic"]
SHM_DIR = "/dev/shm"


def _short(value, limit=160):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def counter(srv, query, timeout=None):
    resp, body = cpu.get_json(srv.port, "/run/counter?" + query,
                              timeout=timeout or cpu.scaled(30.0))
    check(resp.status == 200, "%s: status %d: %s" % (query, resp.status,
                                                   _short(body)))
    return body


def check_invariants(body, mode, sync, tasks, increments):
    """What must hold in every run, raced or not."""
    r = body["result"]
    expected = tasks * increments
    expect_value("mode", body["mode"], mode)
    expect_value("params", body["params"], {"tasks": tasks,
                                            "increments": increments,
                                            "sync": sync})
    expect_value("result.sync", r["sync"], sync)
    expect_value("result.expected", r["expected"], expected)
    check(0 <= r["final"] <= expected, "final %d outside [0, %d]"
          % (r["final"], expected))
    expect_value("result.lost", r["lost"], expected - r["final"])
    # Every task made all its increments (lost ones included).
    counts = [t["count"] for t in body["tasks"]]
    expect_value("task counts", counts, [increments] * tasks)
    expect_value("result.counted", r["counted"], expected)
    check(r["ns_per_increment"] > 0, "ns_per_increment %r"
          % r["ns_per_increment"])
    check(isinstance(r["note"], str) and r["note"], "no note")
    for t in body["tasks"]:
        if sync == "lock":
            check(t["lock_wait_ms"] >= 0 and t["contended"] >= 0,
                  "task %d: lock figures %r" % (t["id"], t))
            check(t["contended"] <= increments, "contended %d > %d"
                  % (t["contended"], increments))
        else:
            check("lock_wait_ms" not in t, "a lock wait without a lock")
    separate = mode == "processes" and sync == "none"
    if separate:
        # Separate memory: the service's counter never moves; what the
        # workers sent back is every increment.
        expect_value("final (separate processes)", r["final"], 0)
        expect_value("sent_back", r["sent_back"], expected)
        expect_value("shared_memory", r["shared_memory"], "none")
        expect_value("own counters", [t["own_counter"] for t in
                                      body["tasks"]], [increments] * tasks)
        check("own memory" in r["note"], "note: %r" % r["note"])
    else:
        expect_value("shared_memory", r["shared_memory"],
                     "segment" if mode == "processes" else "process")
    if sync in ("lock", "atomic") and not separate or \
            mode in ("sequential", "async"):
        expect_value("result.lost", r["lost"], 0)
        expect_value("result.final", r["final"], expected)
    if mode == "async":
        check("no update is lost" in r["note"], "note: %r" % r["note"])
    kinds = {t["worker"]["kind"] for t in body["tasks"]}
    expect_value("worker kinds", kinds,
                 {dict(cpu.KIND_OF_MODE, **{"async": "loop"})[mode]})
    return r


def counter_case(mode, sync):
    def run(srv, ctx):
        body = counter(srv, "tasks=2&increments=%d&mode=%s&sync=%s"
                       % (INCREMENTS, mode, sync))
        r = check_invariants(body, mode, sync, 2, INCREMENTS)
        return "final %d of %d, %.2f ns/increment" % (
            r["final"], r["expected"], r["ns_per_increment"])
    return run


COUNTER_CASES = [(m, s) for m in MODES for s in SYNCS]


def case_acceptance_runs(srv, ctx):
    """tasks=2, increments=1000000 on threads, every sync, 5 times: the
    invariants each time; how often sync=none lost updates is a figure."""
    raced = 0
    runs = 5
    for _ in range(runs):
        for sync in SYNCS:
            body = counter(srv, "tasks=2&increments=1000000&mode=threads"
                           "&sync=" + sync)
            r = check_invariants(body, "threads", sync, 2, 1000000)
            if sync == "none" and r["lost"] > 0:
                raced += 1
    harness.figure("counter_threads_none_lost_runs", [raced, runs])
    return "sync=none lost updates in %d of %d runs" % (raced, runs)


def case_many_tasks(srv, ctx):
    """More tasks than workers and chunks that do not divide evenly:
    still exact with lock and atomic, in every mode."""
    for mode in MODES:
        for sync in ("lock", "atomic"):
            body = counter(srv, "tasks=5&increments=70001&mode=%s&sync=%s"
                           % (mode, sync))
            check_invariants(body, mode, sync, 5, 70001)


BAD_QUERIES = [
    ("counter?sync=mutex", "'mutex' is not one of: none, lock, atomic"),
    ("counter?sync=", "is not one of: none, lock, atomic"),
    ("counter?sync=lock&sync=none", "sync"),
    ("counter?increments=0", "increments"),
    ("counter?increments=10000001", "increments"),
    ("counter?mode=async&increments=10000001", "increments"),
    ("counter?mode=gil", "mode"),
    ("counter?tasks=17", "'tasks': '17' is not an integer in [1, 16]"),
    ("deadlock?order=sideways", "'sideways' is not one of: same, opposite"),
    ("deadlock?hold_ms=10001", "hold_ms"),
    ("deadlock?mode=processes", "mode"),
    ("deadlock?tasks=3", "tasks"),
]


def bad_case(query, words):
    def run(srv, ctx):
        resp, body = cpu.get_json(srv.port, "/run/" + query)
        check(resp.status == 400, "status %d: %s" % (resp.status,
                                                      _short(body)))
        harness.expect_error_shape(resp)
        check(words in body["error"]["message"], "message %r lacks %r"
              % (body["error"]["message"], words))
    return run


def deadlock(srv, query, timeout=None):
    resp, body = cpu.get_json(srv.port, "/run/deadlock?" + query,
                              timeout=timeout or cpu.scaled(15.0))
    check(resp.status == 200, "%s: status %d: %s" % (query, resp.status,
                                                   _short(body)))
    return body


def check_segments(task):
    """Segments in order within the task, each closed, one lock each."""
    for s in task["segments"]:
        check(s["lock"] in ("A", "B") and s["state"] in ("waiting",
                                                         "holding"),
              "segment %r" % s)
        check(0 <= s["from_ms"] <= s["to_ms"] <= task["end_ms"] -
              task["start_ms"] + 0.01, "segment %r outside the task %r"
              % (s, (task["start_ms"], task["end_ms"])))


def tpool_whole(srv):
    """The demo thread pool is all there and idle again."""
    body = cpu.wait_health(
        srv.port, lambda b: harness.json_path(b, "pools.threads.busy") == 0
        and harness.json_path(b, "pools.threads.queued") == 0,
        cpu.scaled(5.0), "an idle demo thread pool")
    t = body["pools"]["threads"]
    expect_value("threads alive", t["alive"], t["configured"])
    return t


def case_opposite(srv, ctx):
    """order=opposite on threads: caught within its hold time plus a few
    attempts, the cycle named, both tasks let go, the pool whole."""
    before = tpool_whole(srv)["completed"]
    hold = 100
    started = time.monotonic()
    body = deadlock(srv, "order=opposite&hold_ms=%d&mode=threads" % hold)
    took = time.monotonic() - started
    r = body["result"]
    expect_value("deadlocked", r["deadlocked"], True)
    edges = sorted((e["task"], e["holds"], e["waits_for"])
                   for e in r["cycle"])
    expect_value("cycle", edges, [(0, "A", "B"), (1, "B", "A")])
    expect_value("finished", r["finished"], 0)
    check(r["detected_by"] in (0, 1), "detected_by %r" % r["detected_by"])
    check(hold <= r["detected_ms"] < hold + 500 * harness.TIME_SCALE,
          "detected after %.1f ms" % r["detected_ms"])
    check(took < cpu.scaled(3.0), "answered after %.2f s" % took)
    for t in body["tasks"]:
        expect_value("task %d gave_up" % t["id"], t["gave_up"], True)
        expect_value("task %d took_both" % t["id"], t["took_both"], False)
        expect_value("task %d locks" % t["id"], t["locks"],
                     ["A", "B"] if t["id"] == 0 else ["B", "A"])
        check_segments(t)
        states = [(s["lock"], s["state"]) for s in t["segments"]]
        first, second = t["locks"]
        expect_value("task %d segments" % t["id"], states,
                     [(first, "holding"), (second, "waiting")])
    after = tpool_whole(srv)
    expect_value("demo tasks completed", after["completed"] - before, 2)
    return "caught at %.1f ms, answered in %.0f ms" % (r["detected_ms"],
                                                       took * 1000)


def case_same(srv, ctx):
    """order=same: one task waits for A, both finish, no cycle."""
    body = deadlock(srv, "order=same&hold_ms=50&mode=threads")
    r = body["result"]
    expect_value("deadlocked", r["deadlocked"], False)
    expect_value("cycle", r["cycle"], [])
    expect_value("finished", r["finished"], 2)
    waited = 0
    for t in body["tasks"]:
        expect_value("task %d locks" % t["id"], t["locks"], ["A", "B"])
        expect_value("task %d took_both" % t["id"], t["took_both"], True)
        expect_value("task %d gave_up" % t["id"], t["gave_up"], False)
        check_segments(t)
        waited += sum(1 for s in t["segments"] if s["state"] == "waiting")
        held = [s["lock"] for s in t["segments"] if s["state"] == "holding"]
        expect_value("task %d held" % t["id"], held, ["A", "B"])
    # Both started at once on two free demo threads: exactly one waited.
    expect_value("tasks that waited for A", waited, 1)
    tpool_whole(srv)


def case_sequential(srv, ctx):
    """sequential never deadlocks, whatever the order."""
    for order in ("same", "opposite"):
        body = deadlock(srv, "order=%s&hold_ms=20&mode=sequential" % order)
        r = body["result"]
        expect_value("%s deadlocked" % order, r["deadlocked"], False)
        expect_value("%s finished" % order, r["finished"], 2)
        for t in body["tasks"]:
            check(all(s["state"] == "holding" for s in t["segments"]),
                  "a sequential task waited: %r" % t["segments"])
            expect_value("worker kind", t["worker"]["kind"], "main")


def case_deadlocks_in_a_row(srv, ctx):
    """Ten deadlocks one after another, then two at once: every one caught,
    no demo thread left behind."""
    before = tpool_whole(srv)["completed"]
    for _ in range(10):
        r = deadlock(srv, "order=opposite&hold_ms=10")["result"]
        expect_value("deadlocked", r["deadlocked"], True)
    bgs = [Background(srv.port, "/run/deadlock?order=opposite&hold_ms=50",
                      cpu.scaled(15.0)).start() for _ in range(2)]
    for bg in bgs:
        bg.join(cpu.scaled(15.0))
        resp = cpu.expect_status(bg, 200, "a concurrent deadlock")
        expect_value("deadlocked", resp.json()["result"]["deadlocked"], True)
    after = tpool_whole(srv)
    expect_value("demo tasks completed", after["completed"] - before, 24)


def _segments_of(pid):
    prefix = "conlab-counter-%d-" % pid
    try:
        return [n for n in os.listdir(SHM_DIR) if n.startswith(prefix)]
    except OSError:
        return []


def case_no_segment_left(srv, ctx):
    """Every processes run with lock or atomic unlinks its segment."""
    for sync in ("lock", "atomic"):
        counter(srv, "tasks=2&increments=1000&mode=processes&sync=" + sync)
    left = _segments_of(srv.pid)
    expect_value("segments left in %s" % SHM_DIR, left, [])


def case_worker_killed_holding(srv, ctx):
    """kill -9 of a worker in the middle of a processes+lock count (it
    holds the robust lock much of the time): the request is answered (502
    for the dead worker), nothing hangs, the segment is gone, and the next
    run is exact."""
    body = cpu.wait_ready(srv, WORKERS)
    pids = harness.json_path(body, "pools.process.pids")
    victim = pids[0]
    check(victim in harness.children_of(srv.pid),
          "pid %r is not a child of the server %d" % (victim, srv.pid))
    increments = int(10000000 / harness.TIME_SCALE)
    bg = Background(srv.port, "/run/counter?tasks=2&increments=%d"
                    "&mode=processes&sync=lock" % increments,
                    cpu.scaled(60.0)).start()
    cpu.wait_health(srv.port, lambda b: harness.json_path(
        b, "pools.process.busy") == WORKERS, cpu.scaled(5.0),
        "both workers counting")
    time.sleep(0.05)
    os.kill(victim, signal.SIGKILL)
    bg.join(cpu.scaled(60.0))
    check(bg.done, "no answer %.1f s after the kill"
          % (time.monotonic() - bg.started))
    check(bg.resp is not None and bg.resp.status in (200, 502),
          "answer: %s" % bg.describe())
    cpu.wait_ready(srv, WORKERS)
    expect_value("segments left", _segments_of(srv.pid), [])
    again = counter(srv, "tasks=2&increments=100000&mode=processes&sync=lock")
    check_invariants(again, "processes", "lock", 2, 100000)
    return "answered %d in %.2f s" % (bg.resp.status, bg.elapsed)


def case_compare_counter(srv, ctx):
    """/run/compare runs every mode of one sync; the dashboard runs one
    comparison per sync. lock agrees everywhere; none differs at least in
    processes (the service's counter stays 0 there)."""
    resp, body = cpu.get_json(srv.port, "/run/compare?demo=counter&tasks=2"
                              "&increments=100000&sync=lock",
                              timeout=cpu.scaled(30.0))
    check(resp.status == 200, "status %d: %s" % (resp.status, _short(body)))
    expect_value("modes", body["modes"], MODES)
    expect_value("results_agree", body["results_agree"], True)
    for run in body["runs"]:
        check_invariants(run, run["mode"], "lock", 2, 100000)
    resp, body = cpu.get_json(srv.port, "/run/compare?demo=counter&tasks=2"
                              "&increments=100000&sync=none",
                              timeout=cpu.scaled(30.0))
    check(resp.status == 200, "status %d: %s" % (resp.status, _short(body)))
    check("processes" in body["differing_modes"], "differing %r"
          % body["differing_modes"])
    check(not {"sequential", "async"} & set(body["differing_modes"]),
          "differing %r" % body["differing_modes"])
    for run in body["runs"]:
        check_invariants(run, run["mode"], "none", 2, 100000)


def case_compare_deadlock(srv, ctx):
    """Compare of deadlock: sequential finishes, threads deadlocks: the
    outcome differs in threads only."""
    resp, body = cpu.get_json(srv.port, "/run/compare?demo=deadlock"
                              "&order=opposite&hold_ms=30",
                              timeout=cpu.scaled(15.0))
    check(resp.status == 200, "status %d: %s" % (resp.status, _short(body)))
    expect_value("modes", body["modes"], ["sequential", "threads"])
    expect_value("differing_modes", body["differing_modes"], ["threads"])
    got = {r["mode"]: r["result"]["deadlocked"] for r in body["runs"]}
    expect_value("deadlocked by mode", got, {"sequential": False,
                                             "threads": True})
    tpool_whole(srv)


def case_shutdown(srv, ctx):
    """SIGTERM while a deadlock is held, an async count runs on the loop
    and a processes+lock count holds a segment: each request gets a 503
    (or its answer, if it ended within the grace period), the server
    exits 0 with no worker left, and no segment is left behind."""
    pids = cpu.wait_ready(srv, WORKERS)["pools"]["process"]["pids"]
    jobs = [Background(srv.port, target, cpu.scaled(20.0)).start()
            for target in (
                "/run/deadlock?order=opposite&hold_ms=5000",
                "/run/deadlock?order=same&hold_ms=5000",
                "/run/counter?mode=async&tasks=16&increments=10000000"
                "&sync=lock",
                "/run/counter?mode=processes&tasks=2&increments=10000000"
                "&sync=lock")]
    try:
        cpu.wait_health(srv.port, lambda b: harness.json_path(
            b, "pools.threads.busy") >= 2, cpu.scaled(5.0),
            "the deadlock's threads busy")
        note = stop_and_check(srv, signal.SIGTERM, cpu.scaled(6.0), pids,
                              ("received SIGTERM", "stopped"))
    finally:
        for job in jobs:
            job.join(cpu.scaled(10.0))
    answers = []
    for job in jobs:
        check(job.done, "%s unanswered after the exit" % job.target)
        if job.resp is not None and job.resp.status is not None:
            check(job.resp.status in (200, 503), "%s: %s"
                  % (job.target, job.describe()))
            if job.resp.status == 503:
                expect_error_shape(job.resp)
            answers.append(str(job.resp.status))
        else:
            answers.append("closed")
    expect_value("segments left", _segments_of(srv.pid), [])
    return "%s; %s" % (", ".join(answers), note)


def server_groups(web_root):
    """(title, extra args, environment, cases) for run.py's server_group."""
    base = ["--web-root", web_root, "--threads", "2", "--workers",
            str(WORKERS), "--grace-ms", "1000"]
    return [
        ("state", base, None,
         [("state: counter %s sync=%s keeps the invariants" % (m, s),
           counter_case(m, s)) for m, s in COUNTER_CASES]
         + [("state: counter, 5 tasks x 70,001, lock and atomic exact in "
             "every mode", case_many_tasks),
            ("state: counter threads 2 x 1,000,000, every sync, 5 runs",
             case_acceptance_runs)]
         + [("state: %s is 400" % q, bad_case(q, w)) for q, w in BAD_QUERIES]
         + [("state: deadlock opposite is caught, cycle named, pool whole",
             case_opposite),
            ("state: deadlock same finishes, one waits", case_same),
            ("state: deadlock sequential never deadlocks", case_sequential),
            ("state: 12 deadlocks, the demo thread pool whole",
             case_deadlocks_in_a_row),
            ("state: no shared memory segment left", case_no_segment_left),
            ("state: compare counter per sync", case_compare_counter),
            ("state: compare deadlock", case_compare_deadlock),
            ("state: kill -9 of a worker mid processes+lock count",
             case_worker_killed_holding)]),
        ("state-shutdown", base[:-2] + ["--grace-ms", "300"], None,
         [("state: SIGTERM mid deadlock and mid counts: answered, exit 0, "
           "nothing left", case_shutdown)]),
    ]


if __name__ == "__main__":
    raise SystemExit("run through run.py: python3 tests/integration/run.py "
                     "--binary build/conlab --group state")

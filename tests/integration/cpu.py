"""Integration tests of the CPU demos: /run/prime and /run/square.

Used by run.py (server_groups() below adds its groups to the run). The
cases read as data where they fit: BAD_PARAMS (a request and the
parameter its 400 must name) and RUN_CASES (a request, the effective
parameters and result it must answer, checked against the whole /run/*
shape: worker kinds, timings, task ranges, GIL slices). The failure paths
(a worker killed mid-job, deadlines, a full queue, shutdown with jobs in
flight, recycling, a client that leaves) need sequences and are small
functions, each against its own server.

Every time limit that a sanitizer build stretches is multiplied by
harness.TIME_SCALE, and the long jobs shrink by it (see long_job()), so a
sanitizer run stays about as long as a plain one. Every wait is bounded;
the only processes signalled are the servers started here and the worker
pids their own /health reports.
"""

import os
import signal
import socket
import threading
import time

import harness
from harness import (
    Background, CheckFailed, Contains, build_request, check,
    expect_error_shape, expect_value, json_path, raw_exchange, stop_and_check)

JSON = "application/json; charset=utf-8"
WORKERS = 2              # --workers of the CPU servers (the tasks default)
DEMO_THREADS = 32        # the service's default --demo-threads
EPS_MS = 0.01            # float rounding allowed in timing comparisons
NUMBER_MAX = 3037000499  # largest |n| whose square fits in int64
SHAPE_KEYS = {"demo", "mode", "params", "cores", "result", "wall_ms",
              "tasks"}
KIND_OF_MODE = {"sequential": "main", "threads": "thread", "gil": "thread",
                "processes": "process", "spawn": "spawn"}

# Long jobs, measured on a 2-core VM (plain build): trial division of
# [1, 3e7) in 2 tasks takes ~3.7 s, [1, 2e7) in one task ~4.2 s. A
# sanitizer build computes 3-4x slower: the limits shrink by the time
# scale there (the cost grows as limit^1.5), so the jobs stay seconds long.
# Servers whose test needs a job to finish get a deadline (--job-timeout-ms)
# far beyond it: only the deadline cases are about deadlines.
LONG_DEADLINE_MS = 120000


def scaled(seconds):
    return seconds * harness.TIME_SCALE


def long_job(limit, tasks):
    """The target of a long prime job (processes mode by default)."""
    return "/run/prime?limit=%d&tasks=%d" % (int(limit / harness.TIME_SCALE),
                                            tasks)


def long_2():
    return long_job(30000000, 2)


def long_1():
    return long_job(20000000, 1)


# --------------------------------------------------------------------------
# Oracles


_sieve_cache = {}


def sieve(limit):
    """is_prime[n] for n < limit (a bytearray)."""
    if limit not in _sieve_cache:
        flags = bytearray([1]) * max(limit, 2)
        flags[0] = flags[1] = 0
        n = 2
        while n * n < limit:
            if flags[n]:
                flags[n * n::n] = bytes(len(range(n * n, limit, n)))
            n += 1
        _sieve_cache[limit] = flags[:limit]
    return _sieve_cache[limit]


def prime_result(limit):
    return {"checked": limit - 1, "primes": sum(sieve(limit)[1:limit])}


# --------------------------------------------------------------------------
# Validation: every row is a 400 whose message names the parameter.

# The cap of 10,000 numbers is not reachable in a GET (10,001 items take
# 20 KB, over the 4 KiB target cap, http.h HTTP_URI_MAX): request bodies
# reach it.
BAD_PARAMS = [
    # (name, target, the parameter the message must name)
    ("prime: limit=1 (below 2)", "/run/prime?limit=1", "limit"),
    ("prime: limit=50000001 (above 5e7)", "/run/prime?limit=50000001",
     "limit"),
    ("prime: limit=abc", "/run/prime?limit=abc", "limit"),
    ("prime: limit=1e5", "/run/prime?limit=1e5", "limit"),
    ("prime: limit=-5", "/run/prime?limit=-5", "limit"),
    ("prime: limit= (empty)", "/run/prime?limit=", "limit"),
    ("prime: limit=+100", "/run/prime?limit=%2B100", "limit"),
    ("prime: limit given twice", "/run/prime?limit=10&limit=20", "limit"),
    ("prime: limit=2^64 (overflow)", "/run/prime?limit=18446744073709551616",
     "limit"),
    ("prime: tasks=0", "/run/prime?tasks=0", "tasks"),
    ("prime: tasks=257", "/run/prime?tasks=257", "tasks"),
    ("prime: tasks=1.5", "/run/prime?tasks=1.5", "tasks"),
    ("prime: mode=fast", "/run/prime?mode=fast", "mode"),
    ("prime: mode=PROCESSES (case matters)", "/run/prime?mode=PROCESSES",
     "mode"),
    ("prime: mode= (empty)", "/run/prime?mode=", "mode"),
    ("prime: unknown parameter limt", "/run/prime?limt=5", "limt"),
    ("prime: unknown parameter after good ones",
     "/run/prime?limit=100&mode=threads&foo=1", "foo"),
    ("square: mode=gil (no gil mode)", "/run/square?mode=gil", "mode"),
    ("square: mode=fast", "/run/square?mode=fast", "mode"),
    ("square: item 3037000500 out of range",
     "/run/square?numbers=1,3037000500", "numbers"),
    ("square: item -3037000500 out of range",
     "/run/square?numbers=-3037000500", "numbers"),
    ("square: empty item 1,,2", "/run/square?numbers=1,,2", "numbers"),
    ("square: trailing empty item 1,2,", "/run/square?numbers=1,2,",
     "numbers"),
    ("square: numbers= (empty list)", "/run/square?numbers=", "numbers"),
    ("square: item x", "/run/square?numbers=1,x", "numbers"),
    ("square: numbers given twice", "/run/square?numbers=1&numbers=2",
     "numbers"),
    ("square: tasks=5 for 4 numbers", "/run/square?numbers=1,2,3,4&tasks=5",
     "tasks"),
    ("square: tasks=0", "/run/square?tasks=0", "tasks"),
    ("square: unknown parameter", "/run/square?number=1", "number"),
]


def bad_param_case(target, param):
    def run(srv, ctx):
        check(len(target) <= 4096, "target too long for the server (%d)"
              % len(target))
        resp = raw_exchange(srv.port, build_request("GET", target))
        check(resp.status is not None, "no response: %s" % resp.error)
        check(resp.status == 400, "status %d, expected 400; body %r"
              % (resp.status, resp.body[:160]))
        err = expect_error_shape(resp)
        expect_value("error.message", err["message"],
                     Contains("'%s'" % param))
    return run


# --------------------------------------------------------------------------
# Successful runs, checked against the whole /run/* shape.


class Run:
    """A request that must succeed: its mode, the effective parameters it
    must echo (defaults included) and its result (None: from the oracle:
    the sieve for prime, the squares of params.numbers for square)."""

    def __init__(self, name, target, mode, params, result=None,
                 switches=False):
        self.name, self.target, self.mode = name, target, mode
        self.params, self.result = params, result
        self.switches = switches  # gil: some task must yield the lock
        self.demo = target.split("?")[0].rsplit("/", 1)[1]

    def expected_result(self):
        if self.result is not None:
            return self.result
        if self.demo == "prime":
            return prime_result(self.params["limit"])
        return {"squares": [n * n for n in self.params["numbers"]]}


SQ = [3, -4, 0, NUMBER_MAX]
SQ_Q = "numbers=3,-4,0,3037000499"
SQ_RESULT = {"squares": [9, 16, 0, 9223372030926249001]}
P100K = {"checked": 99999, "primes": 9592}
BIG_LIST = [(i % 19) - 9 for i in range(1600)]  # 1600 items, ~4 KB
BIG_Q = ",".join(map(str, BIG_LIST))

P100K_PROCESSES = Run("prime: processes, limit=100000 -> 9592 primes",
                      "/run/prime?limit=100000&mode=processes", "processes",
                      {"limit": 100000, "tasks": WORKERS}, P100K)

RUN_CASES = [
    Run("prime: sequential, limit=100000 -> 9592 primes",
        "/run/prime?limit=100000&mode=sequential", "sequential",
        {"limit": 100000, "tasks": WORKERS}, P100K),
    Run("prime: threads, limit=100000 -> 9592 primes",
        "/run/prime?limit=100000&mode=threads", "threads",
        {"limit": 100000, "tasks": WORKERS}, P100K),
    P100K_PROCESSES,
    Run("prime: gil, limit=100000 -> 9592 primes",
        "/run/prime?limit=100000&mode=gil", "gil",
        {"limit": 100000, "tasks": WORKERS}, P100K),
    Run("prime: no parameters: limit 100000, tasks = --workers, processes",
        "/run/prime", "processes", {"limit": 100000, "tasks": WORKERS},
        P100K),
    Run("prime: gil with 4 tasks takes turns (slices never overlap)",
        "/run/prime?limit=1000000&tasks=4&mode=gil", "gil",
        {"limit": 1000000, "tasks": 4}, switches=True),
    Run("prime: threads with 7 tasks", "/run/prime?limit=50000&tasks=7"
        "&mode=threads", "threads", {"limit": 50000, "tasks": 7}),
    Run("prime: limit=2 checks only 1", "/run/prime?limit=2&mode=sequential",
        "sequential", {"limit": 2, "tasks": WORKERS},
        {"checked": 1, "primes": 0}),
    Run("prime: limit=3, one task", "/run/prime?limit=3&tasks=1"
        "&mode=processes", "processes", {"limit": 3, "tasks": 1},
        {"checked": 2, "primes": 1}),
    Run("prime: tasks=256 threads, limit=1000",
        "/run/prime?limit=1000&tasks=256&mode=threads", "threads",
        {"limit": 1000, "tasks": 256}, {"checked": 999, "primes": 168}),
    Run("prime: tasks=256 processes, limit=100 (most tasks empty)",
        "/run/prime?limit=100&tasks=256&mode=processes", "processes",
        {"limit": 100, "tasks": 256}, {"checked": 99, "primes": 25}),
    Run("square: sequential 3,-4,0,3037000499",
        "/run/square?%s&mode=sequential" % SQ_Q, "sequential",
        {"numbers": SQ, "tasks": WORKERS}, SQ_RESULT),
    Run("square: threads 3,-4,0,3037000499",
        "/run/square?%s&mode=threads" % SQ_Q, "threads",
        {"numbers": SQ, "tasks": WORKERS}, SQ_RESULT),
    Run("square: processes 3,-4,0,3037000499",
        "/run/square?%s&mode=processes" % SQ_Q, "processes",
        {"numbers": SQ, "tasks": WORKERS}, SQ_RESULT),
    Run("square: no parameters: 1,2,3,4, processes", "/run/square",
        "processes", {"numbers": [1, 2, 3, 4], "tasks": WORKERS},
        {"squares": [1, 4, 9, 16]}),
    Run("square: one number caps the tasks default at 1",
        "/run/square?numbers=-3037000499&mode=threads", "threads",
        {"numbers": [-NUMBER_MAX], "tasks": 1},
        {"squares": [9223372030926249001]}),
    Run("square: tasks=4 for 4 numbers, one each",
        "/run/square?%s&tasks=4&mode=threads" % SQ_Q, "threads",
        {"numbers": SQ, "tasks": 4}, SQ_RESULT),
    Run("square: 1600 numbers in one process job (largest in a GET)",
        "/run/square?numbers=%s&tasks=1&mode=processes" % BIG_Q, "processes",
        {"numbers": BIG_LIST, "tasks": 1}),
    Run("square: 1600 numbers, 3 threads, input order kept",
        "/run/square?numbers=%s&tasks=3&mode=threads" % BIG_Q, "threads",
        {"numbers": BIG_LIST, "tasks": 3}),
]


def get_json(port, target, timeout=None):
    resp = raw_exchange(port, build_request("GET", target),
                        timeout=timeout or harness.SOCKET_TIMEOUT_S)
    check(resp.status is not None, "GET %s: no response: %s"
          % (target[:60], resp.error))
    try:
        body = resp.json()
    except ValueError:
        raise CheckFailed("GET %s: status %d, body is not JSON: %r"
                          % (target[:60], resp.status, resp.body[:120]))
    return resp, body


def check_run(case, body, pids):
    """The API's /run/* shape for case; pids are the process pool's
    workers (from /health) for the processes mode."""
    check(isinstance(body, dict) and set(body) == SHAPE_KEYS,
          "keys %s, expected %s" % (sorted(body) if isinstance(body, dict)
                                    else body, sorted(SHAPE_KEYS)))
    expect_value("demo", body["demo"], case.demo)
    expect_value("mode", body["mode"], case.mode)
    check(body["params"] == case.params, "params %s, expected %s"
          % (_short(body["params"]), _short(case.params)))
    result = case.expected_result()
    check(body["result"] == result, "result %s, expected %s"
          % (_short(body["result"]), _short(result)))
    wall = body["wall_ms"]
    check(_is_num(wall) and wall >= 0, "wall_ms is %r" % (wall,))
    tasks = body["tasks"]
    n = case.params["tasks"]
    check(isinstance(tasks, list) and len(tasks) == n,
          "%s tasks, expected %d" % (len(tasks) if isinstance(tasks, list)
                                     else tasks, n))
    kind = KIND_OF_MODE[case.mode]
    for i, t in enumerate(tasks):
        what = "tasks[%d]" % i
        expect_value(what + ".id", t.get("id"), i)
        expect_value(what + ".worker.kind", json_path(t, "worker.kind"), kind)
        wid = json_path(t, "worker.id")
        if kind == "main":
            expect_value(what + ".worker.id", wid, 0)
        elif kind == "thread":
            check(isinstance(wid, int) and 0 <= wid < DEMO_THREADS,
                  "%s.worker.id %r is not a demo thread id" % (what, wid))
        else:
            check(wid in pids, "%s.worker.id %r is not a pool worker pid %s"
                  % (what, wid, pids))
        start, end = t.get("start_ms"), t.get("end_ms")
        check(_is_num(start) and _is_num(end), "%s times %r, %r"
              % (what, start, end))
        check(0 <= start <= end + EPS_MS and end <= wall + EPS_MS,
              "%s: start_ms %s, end_ms %s, wall_ms %s out of order"
              % (what, start, end, wall))
        # One thread or process: never more CPU than wall time.
        cpu_ms = t.get("cpu_ms")
        check(_is_num(cpu_ms) and 0 <= cpu_ms <= (end - start) * 1.02 + 1.0,
              "%s: cpu_ms %r for a task of %.3f ms" % (what, cpu_ms,
                                                      end - start))
        if case.mode == "gil":
            check_slices(what, t)
        else:
            check("slices" not in t, "%s has slices in %s mode"
                  % (what, case.mode))
    if case.mode == "gil":
        check_gil_exclusive(tasks)
    if case.switches:
        most = max(len(t["slices"]) for t in tasks)
        check(most >= 2, "no task gave the GIL up (at most %d slice per "
              "task over %.1f ms)" % (most, wall))
    if case.demo == "prime":
        check_prime_tasks(case.params["limit"], tasks, body["result"])
    else:
        check_square_tasks(len(case.params["numbers"]), tasks)


def check_slices(what, t):
    slices = t.get("slices")
    check(isinstance(slices, list) and slices, "%s has no slices" % what)
    prev_end = None
    for k, s in enumerate(slices):
        check(isinstance(s, list) and len(s) == 2 and all(map(_is_num, s)),
              "%s.slices[%d] is %r" % (what, k, s))
        a, b = s
        check(t["start_ms"] - EPS_MS <= a <= b + EPS_MS and
              b <= t["end_ms"] + EPS_MS,
              "%s.slices[%d] %r outside the task [%s, %s]"
              % (what, k, s, t["start_ms"], t["end_ms"]))
        check(prev_end is None or a >= prev_end - EPS_MS,
              "%s.slices[%d] %r starts before the previous one ended (%s)"
              % (what, k, s, prev_end))
        prev_end = b


def check_gil_exclusive(tasks):
    """One lock: no two tasks' slices overlap."""
    spans = sorted((a, b, t["id"]) for t in tasks for a, b in t["slices"])
    for (a1, b1, i1), (a2, b2, i2) in zip(spans, spans[1:]):
        check(a2 >= b1 - EPS_MS, "task %d held the GIL [%s, %s] while task "
              "%d held it [%s, %s]" % (i2, a2, b2, i1, a1, b1))


def check_prime_tasks(limit, tasks, result):
    """Block-cyclic ranges cover [1, limit) exactly once; each task's
    checked and primes match its own numbers."""
    flags = sieve(limit)
    covered = []
    sum_checked = sum_primes = 0
    for t in tasks:
        r = t.get("range")
        check(isinstance(r, dict) and set(r) == {"first", "end", "block",
                                                 "stride"},
              "tasks[%d].range is %r" % (t["id"], r))
        check(all(isinstance(r[k], int) for k in r) and r["block"] > 0 and
              r["stride"] >= r["block"] and r["end"] == limit,
              "tasks[%d].range %r is not a block-cyclic span of [1, %d)"
              % (t["id"], r, limit))
        numbers = primes = 0
        lo = r["first"]
        while lo < r["end"]:
            hi = min(lo + r["block"], r["end"])
            covered.append((lo, hi, t["id"]))
            numbers += hi - lo
            primes += sum(flags[lo:hi])
            lo += r["stride"]
        expect_value("tasks[%d].checked" % t["id"], t.get("checked"), numbers)
        expect_value("tasks[%d].primes" % t["id"], t.get("primes"), primes)
        sum_checked += t["checked"]
        sum_primes += t["primes"]
    covered.sort()
    at = 1
    for lo, hi, tid in covered:
        check(lo >= at, "task %d's block [%d, %d) overlaps numbers already "
              "covered (up to %d)" % (tid, lo, hi, at))
        check(lo == at, "[%d, %d) is in no task's range" % (at, lo))
        at = hi
    check(at == limit, "the ranges end at %d, not at limit %d" % (at, limit))
    check(sum_checked == result["checked"] and sum_primes == result["primes"],
          "tasks sum to %d checked, %d primes; result says %s"
          % (sum_checked, sum_primes, result))


def check_square_tasks(count, tasks):
    """Contiguous batches covering [0, count) in order."""
    at = 0
    for t in tasks:
        items = t.get("items")
        check(isinstance(items, dict) and set(items) == {"from", "to"},
              "tasks[%d].items is %r" % (t["id"], items))
        check(items["from"] == at and items["to"] > items["from"],
              "tasks[%d].items %r: expected to start at %d and be non-empty"
              % (t["id"], items, at))
        at = items["to"]
    check(at == count, "the batches end at %d, not at %d" % (at, count))


def run_case(case):
    def run(srv, ctx):
        check(len(case.target) <= 4096, "target too long (%d)"
              % len(case.target))
        resp, body = get_json(srv.port, case.target)
        check(resp.status == 200, "status %d: %s" % (resp.status,
                                                     _short(body, 200)))
        expect_value("Content-Type", resp.header("Content-Type"), JSON)
        pids = process_pool(srv.port)["pids"]
        check_run(case, body, pids)
        return "wall %.1f ms" % body["wall_ms"]
    return run


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _short(value, limit=120):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# --------------------------------------------------------------------------
# Helpers for the sequences


def process_pool(port, timeout=None):
    body = harness.health(port, timeout=timeout or harness.SOCKET_TIMEOUT_S)
    pool = json_path(body, "pools.process")
    check(isinstance(pool, dict), "/health has no pools.process: %s"
          % _short(body, 200))
    return pool


def wait_health(port, pred, timeout, what):
    """Polls /health until pred(body) holds; returns that body. Bounded."""
    deadline = time.monotonic() + timeout
    while True:
        body = harness.health(port)
        if pred(body):
            return body
        if time.monotonic() > deadline:
            raise CheckFailed("%s not seen within %.1f s; last /health pools: "
                              "%s" % (what, timeout,
                                      _short(body.get("pools"), 400)))
        time.sleep(0.02)


def pool_is(**want):
    """A /health predicate on pools.process fields (restarts.X as
    restarts_X)."""
    def pred(body):
        pool = json_path(body, "pools.process")
        for key, value in want.items():
            got = json_path(pool, key.replace("restarts_", "restarts."))
            if got != value:
                return False
        return True
    return pred


def wait_ready(srv, workers):
    return wait_health(srv.port, pool_is(alive=workers, busy=0),
                       scaled(10.0), "%d idle workers" % workers)


def expect_status(bg, status, what):
    check(bg.done, "%s: no answer after %.1f s" % (what, time.monotonic() -
                                                   bg.started))
    check(bg.resp is not None and bg.resp.status == status,
          "%s: %s, expected %d" % (what, bg.describe(), status))
    return bg.resp


# --------------------------------------------------------------------------
# /health while the workers compute


def case_health_during_job(srv, ctx):
    """GET /health answers within 1 s while both workers compute."""
    wait_ready(srv, WORKERS)
    job = Background(srv.port, "/run/prime?limit=10000000&tasks=2"
                     "&mode=processes", scaled(30.0)).start()
    try:
        wait_health(srv.port, pool_is(busy=WORKERS), scaled(5.0),
                    "both workers busy")
        times, busy_seen = [], 0
        for _ in range(5):
            started = time.monotonic()
            body = harness.health(srv.port, timeout=scaled(5.0))
            times.append((time.monotonic() - started) * 1000)
            busy_seen += json_path(body, "pools.process.busy") == WORKERS
            time.sleep(0.02)
        check(busy_seen >= 3, "the job ended before /health was measured "
              "(%d of 5 answers saw busy workers)" % busy_seen)
        limit_ms = 1000.0 * harness.TIME_SCALE
        check(max(times) < limit_ms, "/health took %.0f ms (limit %.0f) "
              "while the workers computed" % (max(times), limit_ms))
    finally:
        job.join(scaled(30.0))
    expect_status(job, 200, "the long job")
    expect_value("result.primes", json_path(job.resp.json(), "result.primes"),
                 664579)
    return "max %.1f ms over %d requests (median %.1f ms)" % (
        max(times), len(times), sorted(times)[len(times) // 2])


# --------------------------------------------------------------------------
# A worker killed mid-job

SEQ_LIMIT = 5000000  # the concurrent sequential request: ~0.5-1 s


def case_kill_worker(srv, ctx):
    """kill -9 of one worker mid-job: that request is 502 naming it, a
    concurrent sequential request is 200, the pool replaces the worker
    (restarts.crash == 1) and serves again."""
    wait_ready(srv, WORKERS)
    job = Background(srv.port, long_2() + "&mode=processes",
                     scaled(40.0)).start()
    seq = None
    try:
        body = wait_health(srv.port, pool_is(busy=WORKERS), scaled(5.0),
                           "both workers busy")
        pids = json_path(body, "pools.process.pids")
        check(isinstance(pids, list) and len(pids) == WORKERS,
              "pids %r with %d busy workers" % (pids, WORKERS))
        victim = pids[0]
        # Only a child of the server we started, read from its /health.
        check(victim in harness.children_of(srv.pid),
              "pid %r from /health is not a child of the server %d"
              % (victim, srv.pid))
        seq = Background(srv.port, "/run/prime?limit=%d&tasks=2"
                         "&mode=sequential" % SEQ_LIMIT, scaled(30.0)).start()
        wait_health(srv.port, lambda b: json_path(b, "pools.threads.busy")
                    == 1, scaled(5.0), "the sequential request running")
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)

        check(job.join(scaled(30.0)), "the killed job got no answer "
              "within %.0f s" % scaled(30.0))
        resp = expect_status(job, 502, "the request whose worker died")
        err = expect_error_shape(resp)
        expect_value("error.message", err["message"], Contains(str(victim)))
        answered = time.monotonic() - killed_at

        check(seq.join(scaled(30.0)), "the sequential request got no answer")
        expect_status(seq, 200, "the concurrent sequential request")
        expect_value("sequential result", seq.resp.json().get("result"),
                     prime_result(SEQ_LIMIT))

        body = wait_health(
            srv.port, lambda b: pool_is(alive=WORKERS, restarts_crash=1)(b)
            and victim not in json_path(b, "pools.process.pids") and
            len(json_path(b, "pools.process.pids")) == WORKERS,
            scaled(5.0), "alive == %d, restarts.crash == 1, pid %d gone"
            % (WORKERS, victim))
        recovered = time.monotonic() - killed_at
        expect_value("restarts.timeout",
                     json_path(body, "pools.process.restarts.timeout"), 0)
        check(not harness.pid_alive(victim), "pid %d still alive" % victim)

        resp, after = get_json(srv.port, "/run/prime?limit=100000"
                               "&mode=processes")
        check(resp.status == 200, "a request after the restart: %d %s"
              % (resp.status, _short(after)))
        new_pids = process_pool(srv.port)["pids"]
        check_run(P100K_PROCESSES, after, new_pids)
        return "502 %.1f s after the kill, pool whole after %.1f s" % (
            answered, recovered)
    finally:
        job.join(scaled(30.0))
        if seq is not None:
            seq.join(scaled(30.0))


# --------------------------------------------------------------------------
# Deadlines (--job-timeout-ms)

def worker_fds(pid):
    """{fd number: link target} of a worker, read from /proc."""
    path = "/proc/%d/fd" % pid
    return {int(fd): os.readlink(os.path.join(path, fd))
            for fd in os.listdir(path)}


def case_respawn_fds(srv, ctx):
    """kill -9 of an idle worker: its replacement, spawned while the event
    loop's libcurl socketpair (made without CLOEXEC) is open, holds only
    0-2 and its channel (a socket on fd 3), like the first workers."""
    body = wait_ready(srv, WORKERS)
    pids = json_path(body, "pools.process.pids")
    crashes = json_path(body, "pools.process.restarts.crash")
    victim = pids[0]
    check(victim in harness.children_of(srv.pid),
          "pid %r from /health is not a child of the server %d"
          % (victim, srv.pid))
    os.kill(victim, signal.SIGKILL)
    body = wait_health(
        srv.port, lambda b: pool_is(alive=WORKERS)(b) and
        json_path(b, "pools.process.restarts.crash") == crashes + 1 and
        victim not in json_path(b, "pools.process.pids") and
        len(json_path(b, "pools.process.pids")) == WORKERS,
        scaled(5.0), "alive == %d, pid %d replaced" % (WORKERS, victim))
    for pid in json_path(body, "pools.process.pids"):
        check(pid in harness.children_of(srv.pid),
              "pid %r from /health is not a child of the server" % pid)
        fds = worker_fds(pid)
        check(sorted(fds) == [0, 1, 2, 3],
              "worker %d holds descriptors %s, expected only 0-3"
              % (pid, sorted(fds.items())))
        check(fds[3].startswith("socket:"),
              "worker %d: fd 3 is %s, not its channel" % (pid, fds[3]))
    return "workers %s hold only 0-3" % json_path(body, "pools.process.pids")


DEADLINE_MS = 300
DEADLINE_WORKERS = 2
DEADLINE_MODES = ["processes", "threads", "sequential", "gil"]


def deadline_case(mode):
    def run(srv, ctx):
        before = wait_ready(srv, DEADLINE_WORKERS)
        timeouts = json_path(before, "pools.process.restarts.timeout")
        started = time.monotonic()
        target = "/run/prime?limit=50000000&tasks=1&mode=" + mode
        resp, body = get_json(srv.port, target, timeout=scaled(10.0))
        took = time.monotonic() - started
        check(resp.status == 504, "status %d after %.1f s: %s"
              % (resp.status, took, _short(body)))
        expect_error_shape(resp)
        check(took < scaled(3.0), "504 only after %.1f s (deadline %d ms)"
              % (took, DEADLINE_MS))
        check(took >= DEADLINE_MS / 1000.0 * 0.9, "504 after %.0f ms, before "
              "the %d ms deadline" % (took * 1000, DEADLINE_MS))
        # Processes mode too ends at the task's deadline between two
        # slices (ENGINE_SLICE_NS each), so no worker is killed.
        want = timeouts
        body = wait_health(
            srv.port, pool_is(alive=DEADLINE_WORKERS, busy=0,
                              restarts_timeout=want, restarts_crash=0),
            scaled(5.0), "restarts.timeout == %d, %d workers alive"
            % (want, DEADLINE_WORKERS))
        check(len(json_path(body, "pools.process.pids")) == DEADLINE_WORKERS,
              "pids %s" % json_path(body, "pools.process.pids"))
        wait_health(srv.port, lambda b: json_path(b, "pools.threads.busy") ==
                    0, scaled(5.0), "no demo thread busy")
        resp, body = get_json(srv.port, "/run/prime?limit=1000&mode=" + mode)
        check(resp.status == 200, "a short job afterwards: %d %s"
              % (resp.status, _short(body)))
        return "504 in %.0f ms" % (took * 1000)
    return run


# --------------------------------------------------------------------------
# A full queue (--workers 1 --queue 2)

QUEUE_GRACE_MS = 300


def case_queue_full(srv, ctx):
    """6 long jobs at once on 1 worker + 2 queue slots: the surplus is
    503 + Retry-After at once; the server still stops cleanly with the
    accepted ones in flight."""
    wait_ready(srv, 1)
    children = harness.children_of(srv.pid)
    jobs = [Background(srv.port, long_1(), scaled(30.0)) for _ in range(6)]
    for job in jobs:
        job.start()
    quick_s = scaled(1.0)
    deadline = time.monotonic() + quick_s
    while time.monotonic() < deadline and \
            sum(j.done for j in jobs) < len(jobs) - 3:
        time.sleep(0.01)
    rejected = []
    try:
        for j in jobs:
            if j.done:
                expect_status(j, 503, "a request answered at once")
                expect_error_shape(j.resp)
                expect_value("header Retry-After", j.resp.header(
                    "Retry-After"), harness.Regex(r"^\d+$"))
                rejected.append(j.elapsed)
        check(len(rejected) >= len(jobs) - 3,
              "%d of %d requests answered within %.1f s, expected at least "
              "%d (1 worker, 2 queue slots)" % (len(rejected), len(jobs),
                                                quick_s, len(jobs) - 3))
        # A refused request may be answered before an admitted one, on
        # another request thread, has reached the worker: wait (bounded)
        # for the worker to be busy.
        body = wait_health(srv.port, lambda b: json_path(
            b, "pools.process.busy") == 1, scaled(2.0),
            "the worker busy with an admitted job")
        pool = json_path(body, "pools.process")
        check(pool["busy"] == 1 and pool["queued"] <= 2,
              "with a full queue: busy %s, queued %s" % (pool["busy"],
                                                         pool["queued"]))
        note = "%d x 503 within %.0f ms" % (len(rejected),
                                            max(rejected) * 1000)
        stop_and_check(srv, signal.SIGTERM,
                       QUEUE_GRACE_MS / 1000.0 + scaled(3.0), children,
                       ("received SIGTERM", "stopped"))
    finally:
        for j in jobs:
            j.join(scaled(10.0))
    for j in jobs:
        check(j.done, "a request still unanswered after the server exited")
        if j.resp is not None and j.resp.status is not None:
            check(j.resp.status == 503, "in-flight request: %s"
                  % j.describe())
        else:
            check(j.exc is not None or j.resp.closed,
                  "in-flight request: %s" % j.describe())
    return note


# --------------------------------------------------------------------------
# Shutdown with jobs in flight (--workers 2 --grace-ms 500)

SHUTDOWN_GRACE_MS = 500


def case_shutdown_jobs(srv, ctx):
    """SIGTERM while both workers compute: exit 0, the requests get 503 or
    a closed connection (no hang), and every worker is reaped."""
    wait_ready(srv, WORKERS)
    jobs = [Background(srv.port, long_1() + "&mode=processes", scaled(30.0))
            for _ in range(WORKERS + 1)]  # the last one waits in the queue
    for job in jobs:
        job.start()
    try:
        body = wait_health(srv.port, pool_is(busy=WORKERS), scaled(5.0),
                           "both workers busy")
        pids = json_path(body, "pools.process.pids")
        children = harness.children_of(srv.pid)
        check(pids and set(pids) <= set(children),
              "worker pids %s are not children %s of the server"
              % (pids, children))
        note = stop_and_check(srv, signal.SIGTERM,
                              SHUTDOWN_GRACE_MS / 1000.0 + scaled(3.0),
                              children, ("received SIGTERM", "stopped"))
    finally:
        for job in jobs:
            job.join(scaled(10.0))
    outcomes = []
    for job in jobs:
        check(job.done, "a request still unanswered %.0f s after the exit"
              % scaled(10.0))
        if job.exc is None and job.resp.status is not None:
            check(job.resp.status == 503, "in-flight request: %s"
                  % job.describe())
            expect_error_shape(job.resp)
            outcomes.append("503")
        else:
            check(job.exc is not None or job.resp.closed,
                  "in-flight request: %s" % job.describe())
            outcomes.append("closed")
    deadline = time.monotonic() + 2.0
    left = [p for p in pids if os.path.exists("/proc/%d/stat" % p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in pids if os.path.exists("/proc/%d/stat" % p)]
    check(not left, "worker processes still exist (alive or zombie): %s"
          % left)
    return "%s; requests: %s" % (note, ", ".join(outcomes))


# --------------------------------------------------------------------------
# Recycling (--worker-max-jobs 3 --workers 1)


def case_recycle(srv, ctx):
    wait_ready(srv, 1)
    seen = []
    for i in range(10):
        resp, body = get_json(srv.port, "/run/prime?limit=1000&tasks=1")
        check(resp.status == 200, "request %d: %d %s" % (i + 1, resp.status,
                                                         _short(body)))
        expect_value("request %d result" % (i + 1), body.get("result"),
                     {"checked": 999, "primes": 168})
        seen.append(json_path(body, "tasks")[0]["worker"]["id"])
    body = wait_health(srv.port, pool_is(alive=1, busy=0), scaled(5.0),
                       "the worker back")
    restarts = json_path(body, "pools.process.restarts")
    check(restarts["recycle"] >= 2, "restarts %s after 10 jobs with "
          "--worker-max-jobs 3" % restarts)
    check(restarts["crash"] == 0 and restarts["timeout"] == 0,
          "restarts %s" % restarts)
    distinct = len(set(seen))
    check(distinct >= 3, "10 jobs ran on %d worker(s): %s" % (distinct, seen))
    return "%d recycles, workers %s" % (restarts["recycle"], distinct)


# --------------------------------------------------------------------------
# A client that leaves mid-job

# The job the client left keeps its workers ~3.7 s on an idle 2-core VM;
# the bound leaves room for a busy machine.
SETTLE_S = 20.0


def case_client_gone(srv, ctx):
    wait_ready(srv, WORKERS)
    sock = socket.create_connection(
        (harness.LOOPBACK, srv.port), timeout=harness.SOCKET_TIMEOUT_S)
    try:
        sock.sendall(build_request("GET", long_2()))
        time.sleep(0.1)
    finally:
        sock.close()
    left_at = time.monotonic()
    started = time.monotonic()
    body = harness.health(srv.port, timeout=scaled(5.0))
    took = time.monotonic() - started
    check(took < scaled(1.0), "/health took %.2f s after the client left"
          % took)
    body = wait_health(
        srv.port, lambda b: json_path(b, "pools.process.busy") == 0 and
        json_path(b, "pools.http.in_flight") == 1, scaled(SETTLE_S),
        "process.busy == 0 and http.in_flight == 1")
    settled = time.monotonic() - left_at
    body = wait_health(srv.port, pool_is(alive=WORKERS), scaled(5.0),
                       "%d workers alive" % WORKERS)
    restarts = json_path(body, "pools.process.restarts")
    check(restarts == {"crash": 0, "timeout": 0, "recycle": 0},
          "restarts %s" % restarts)
    resp, after = get_json(srv.port, "/run/prime?limit=1000")
    check(resp.status == 200, "a request afterwards: %d %s"
          % (resp.status, _short(after)))
    return "/health in %.0f ms; settled %.1f s after the client left" % (
        took * 1000, settled)


# --------------------------------------------------------------------------
# Groups


def server_groups(web_root):
    """(title, extra args, environment, cases) for run.py's server_group."""
    base = ["--web-root", web_root, "--threads", "2"]
    workers = ["--workers", str(WORKERS)]
    patient = ["--job-timeout-ms", str(LONG_DEADLINE_MS)]
    return [
        ("cpu", base + workers + ["--grace-ms", "1000"], None,
         [("validation: %s is 400 naming it" % name,
           bad_param_case(target, param))
          for name, target, param in BAD_PARAMS]
         + [(case.name, run_case(case)) for case in RUN_CASES]
         + [("health: answers quickly while both workers compute",
             case_health_during_job)]),
        ("kill", base + workers + patient + ["--grace-ms", "1000"], None,
         [("workers: kill -9 mid-job is 502 naming it; pool recovers",
           case_kill_worker),
          ("workers: a respawned worker holds only 0-2 and its channel",
           case_respawn_fds)]),
        ("deadline", base + ["--workers", str(DEADLINE_WORKERS),
                             "--job-timeout-ms", str(DEADLINE_MS),
                             "--grace-ms", "1000"], None,
         [("deadline: %s mode, limit=5e7 is 504 after %d ms"
           % (mode, DEADLINE_MS), deadline_case(mode))
          for mode in DEADLINE_MODES]),
        ("queue", base + ["--workers", "1", "--queue", "2",
                          "--grace-ms", str(QUEUE_GRACE_MS)], None,
         [("queue: full queue is 503 + Retry-After at once",
           case_queue_full)]),
        ("shutdown-jobs", base + workers + ["--grace-ms",
                                            str(SHUTDOWN_GRACE_MS)], None,
         [("shutdown: SIGTERM with jobs in flight, workers reaped",
           case_shutdown_jobs)]),
        ("recycle", base + ["--workers", "1", "--worker-max-jobs", "3",
                            "--grace-ms", "1000"], None,
         [("workers: --worker-max-jobs 3 recycles, no crash",
           case_recycle)]),
        ("client-gone", base + workers + patient + ["--grace-ms", "1000"],
         None,
         [("disconnect: client leaves mid-job; the server settles",
           case_client_gone)]),
    ]

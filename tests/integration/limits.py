"""Admission by cost, measured from outside: memory, fairness, memory per
task (issue 11's acceptance).

Used by run.py (server_groups() below adds its groups to the run; the
switch --limits runs only them, --mixes how many memory mixes). Each case
runs a server with default options (only --port 0 --bind 127.0.0.1 and a
web root), its own unless it says otherwise:

  limits-ceiling   mixes of up to 1,000 concurrent requests with the
                   largest accepted parameters (MIXES; --mixes 2 by
                   default, --mixes all in the bench): the service (server
                   and workers, VmRSS summed from /proc every 100 ms) stays
                   under CEILING_MIB, every answer is 200, 400 naming a
                   parameter or 503 with Retry-After; the clients then
                   leave, every budget of /health returns to 0 and the RSS
                   to within 25% of its idle value (polled up to 70 s);
  limits-fairness  client A (127.0.0.1, a separate process: hog mode of
                   this file) keeps every pool and budget full with the
                   largest requests it may send, again as soon as each
                   is answered; client B (127.0.0.2) meanwhile sends
                   /run/prime?limit=100000 and /health one after another:
                   every prime 200 with p99 under 1 s, /health p99 under
                   50 ms;
  limits-per-task  20 concurrent /run/sleep?tasks=10000&ms=1000: the RSS
                   grows by at most 30 MiB, and the timers fire on time
                   (p99 of end_ms - start_ms - 1000 under 5 ms);
  limits-burst     1,000 concurrent /delay?ms=100 (connections, no run):
                   every answer 200, the RSS back within 25% of idle
                   within 5 s.

The contract these check (issue 11): /health has "budgets" (tasks, timers,
transfers, queue, bytes: {"used", "limit"}) and "clients"; over a budget
the answer is 503 with Retry-After; a request larger than a whole budget
or a client's share of it is a 400 naming the parameter.

Memory and latency figures of a sanitizer build mean nothing: these
groups are skipped there. Every figure is also recorded with
harness.figure() for bench/limits.sh. Only loopback addresses are
contacted; every wait is bounded; a server whose RSS passes ABORT_MIB is
killed at once (it has failed, and the machine is shared).
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

import harness
from harness import CheckFailed, Herd, check, json_path

MIB = 1024  # KiB
CEILING_MIB = 256         # the service's RSS under any mix
ABORT_MIB = 1024          # beyond this the load stops and the server dies
RETURN_SHARE = 0.25       # RSS after the load within this share of idle
RETURN_WAIT_S = 70.0      # polled this long for it
BUDGETS_ZERO_S = 10.0     # every budget back to 0 after the clients left
SAMPLE_S = 0.1
LOAD_S = 5.0              # the clients stay this long, RSS sampled
MAX_CLIENTS = 1000
BUDGETS = ("tasks", "timers", "transfers", "queue", "bytes", "spawns")
REJECT_REASONS = ("busy", "too_large", "client_share")
SOURCE_B = "127.0.0.2"    # the second client's address (loopback is /8)
SHORT_MIXES = 2           # mixes run by default (make test)


def scaled(seconds):
    return seconds * harness.TIME_SCALE


def no_sanitizer():
    if harness.SANITIZER:
        raise harness.Skipped("memory and latency of a %s build mean "
                              "nothing" % harness.SANITIZER)


def pct(values, p):
    """The nearest-rank p-th percentile of values (p in 0..100)."""
    s = sorted(values)
    if not s:
        return None
    rank = max(1, -(-len(s) * p // 100))
    return s[int(rank) - 1]


def mib(kib):
    return kib / 1024.0


# --------------------------------------------------------------------------
# The largest accepted requests, read from api/openapi.json's bounds:
# prime limit 50,000,000 tasks 256; square 1,300 numbers tasks 256 (what
# fits the 4 KiB request target; 10,000 take a request body); sleep
# tasks 10,000 (async) or 1,000 and ms 10,000; fetch count 1,000 ms 10,000
# or 42 self URLs (what a 4 KiB target holds). /run/compare refuses an
# estimate over its budget: its largest accepted parameters are found by
# asking (calibrate_compare).

NUMBERS = ",".join(str(10 + i % 90) for i in range(1300))  # ~3.9 KB
PRIME_MAX = "limit=50000000&tasks=256"
SLEEP_MS = 10000


def self_sleep_urls(port):
    """fetch's url parameters: 42 self URLs of the largest async sleep
    (work this service does for the client who asked): what fits the 4 KiB
    request target (100, the cap, take a request body)."""
    inner = "http://127.0.0.1:%d/run/sleep?tasks=10000&ms=10000&mode=async" \
        % port
    quoted = urllib.parse.quote(inner, safe="")
    return "&".join("url=" + quoted for _ in range(42))


def largest_targets(port, compares):
    """{name: target} of every kind of run at its largest accepted
    parameters; compares from calibrate_compare()."""
    t = {}
    for mode in ("sequential", "threads", "processes", "gil"):
        t["prime-" + mode] = "/run/prime?%s&mode=%s" % (PRIME_MAX, mode)
    for mode in ("sequential", "threads", "processes"):
        t["square-" + mode] = "/run/square?numbers=%s&tasks=256&mode=%s" \
            % (NUMBERS, mode)
    t["sleep-async"] = "/run/sleep?tasks=10000&ms=%d&mode=async" % SLEEP_MS
    for mode in ("sequential", "threads", "processes", "gil"):
        t["sleep-" + mode] = "/run/sleep?tasks=1000&ms=%d&mode=%s" \
            % (SLEEP_MS, mode)
    for mode in ("sequential", "threads", "async"):
        t["fetch-" + mode] = "/run/fetch?count=1000&ms=10000&mode=" + mode
    t["fetch-self-sleeps"] = "/run/fetch?%s&mode=async" % \
        self_sleep_urls(port)
    for demo, query in compares.items():
        t["compare-" + demo] = "/run/compare?demo=%s&%s" % (demo, query)
    return t


def ladder(top, bottom, factor=0.8):
    """Integers from top down to bottom, each about factor times the
    previous one."""
    values, v = [], float(top)
    while int(v) > bottom:
        if not values or int(v) != values[-1]:
            values.append(int(v))
        v *= factor
    return values + [bottom]


# For each demo: the queries to try, largest first.
COMPARE_LADDERS = {
    "prime": ["limit=%d&tasks=256" % n for n in ladder(50000000, 100000)],
    "square": ["numbers=%s&tasks=256" % ",".join(NUMBERS.split(",")[:n])
               for n in (1300, 1000, 500, 256)],
    "sleep": ["tasks=1000&ms=%d" % ms for ms in ladder(10000, 1)]
    + ["tasks=%d&ms=1" % n for n in ladder(1000, 1)],
    "fetch": ["count=1000&ms=%d" % ms for ms in ladder(10000, 0)],
}
PROBE_S = 0.5  # a refusal comes at once; no answer by then is accepted


def calibrate_compare(port):
    """{demo: query} of the largest /run/compare each demo accepts here:
    the first of its ladder not refused with a 400 within PROBE_S (an
    accepted one is abandoned at once; a 503 is tried again)."""
    found = {}
    for demo, queries in COMPARE_LADDERS.items():
        for query in queries:
            target = "/run/compare?demo=%s&%s" % (demo, query)
            status = probe(port, target)
            if status == 503:
                time.sleep(0.2)
                status = probe(port, target)
            if status != 400:
                found[demo] = query
                break
        check(demo in found, "/run/compare?demo=%s refused even %s"
              % (demo, queries[-1][:60]))
    return found


def probe(port, target):
    herd = Herd(port)
    try:
        ex = herd.add(target, keep_body=False)
        herd.pump(time.monotonic() + scaled(PROBE_S))
        return ex.status
    finally:
        herd.close()


def short_query(query):
    """A query for a report: the numbers list shown as its count."""
    if "numbers=" in query:
        head, _, rest = query.partition("numbers=")
        nums, amp, tail = rest.partition("&")
        return "%snumbers=<%d numbers>%s%s" % (head, nums.count(",") + 1,
                                              amp, tail)
    return query


# --------------------------------------------------------------------------
# The mixes: (name, [(target name, clients)]) or a callable giving them.

def round_robin(names, total):
    counts = {n: 0 for n in names}
    for i in range(total):
        counts[names[i % len(names)]] += 1
    return list(counts.items())


def mix_spec(name, targets, seed):
    names = sorted(targets)
    fetches = [n for n in names if n.startswith("fetch-")]
    if name == "every-kind":
        return round_robin(names, MAX_CLIENTS)
    if name == "fetch":
        # 400 sequential fetches took today's service to 3.4 GB.
        return [("fetch-sequential", 400)] + round_robin(
            [n for n in fetches if n != "fetch-sequential"]
            + ["compare-fetch"], MAX_CLIENTS - 400)
    if name == "compare":
        return round_robin([n for n in names if n.startswith("compare-")],
                           MAX_CLIENTS)
    if name == "sleep":
        return [("fetch-self-sleeps", 20)] + round_robin(
            [n for n in names if n.startswith("sleep-")], MAX_CLIENTS - 20)
    if name == "cpu":
        return round_robin([n for n in names if n.startswith(("prime-",
                                                              "square-"))]
                           + ["compare-prime", "compare-square"],
                           MAX_CLIENTS)
    if name == "random":
        rng = random.Random(seed)
        counts = {}
        for _ in range(rng.randint(600, MAX_CLIENTS)):
            n = rng.choice(names)
            counts[n] = counts.get(n, 0) + 1
        return sorted(counts.items())
    raise ValueError(name)


MIXES = ["every-kind", "fetch", "compare", "sleep", "cpu", "random"]
GROUPS = ["limits-ceiling", "limits-fairness", "limits-per-task",
          "limits-burst"]
MIXES_TO_RUN = SHORT_MIXES  # run.py --mixes: a count, or len(MIXES)


# --------------------------------------------------------------------------
# Checks of what the service says and answers

def budgets_of(body):
    """{budget: (used, limit)} from /health, or raises naming what is
    missing."""
    budgets = body.get("budgets")
    check(isinstance(budgets, dict), "/health has no 'budgets' object "
          "(keys %s)" % sorted(body))
    out = {}
    for name in BUDGETS:
        b = budgets.get(name)
        check(isinstance(b, dict) and isinstance(b.get("used"), int) and
              isinstance(b.get("limit"), int),
              "/health budgets.%s is %r, expected {used, limit}" % (name, b))
        out[name] = (b["used"], b["limit"])
    check(isinstance(body.get("clients"), int), "/health has no integer "
          "'clients': %r" % body.get("clients"))
    return out


def metrics(port):
    """{(name, labels): value} of /metrics."""
    status, _, body = harness.http_get(port, "/metrics", timeout=scaled(5.0))
    check(status == 200, "GET /metrics answered %d" % status)
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        name, _, labels = key.partition("{")
        try:
            out[(name, labels.rstrip("}"))] = float(value)
        except ValueError:
            pass
    return out


def check_budget_metrics(port):
    """/metrics names the five budgets (used, limit) and the three
    rejection reasons; returns {reason: count}."""
    m = metrics(port)
    for name in BUDGETS:
        for kind in ("conlab_budget_used", "conlab_budget_limit"):
            check((kind, 'budget="%s"' % name) in m, "/metrics lacks "
                  '%s{budget="%s"}' % (kind, name))
    rejected = {}
    for reason in REJECT_REASONS:
        key = ("conlab_admission_rejected_total", 'reason="%s"' % reason)
        check(key in m, '/metrics lacks conlab_admission_rejected_total'
              '{reason="%s"}' % reason)
        rejected[reason] = m[key]
    return rejected


def answer_problem(ex):
    """None if what ex received is acceptable under admission by cost (no
    answer yet, 200, 400 naming one of its parameters, 503 with
    Retry-After, each in the API's error shape); else what is wrong."""
    if ex.head_len < 0:
        if ex.closed and ex.state == "done":
            return "connection closed without an answer (%s)" % (
                ex.error or "EOF")
        return None
    resp = ex.response()
    status = resp.status
    if status == 200:
        return None
    if status not in (400, 503):
        return "status %s: %r" % (status, resp.body[:160])
    if not ex.complete:
        return "a %d cut short (%d bytes)" % (status, ex.received)
    try:
        harness.expect_error_shape(resp)
    except CheckFailed as e:
        return "%d: %s" % (status, e)
    message = resp.json()["error"]["message"]
    if status == 503:
        after = resp.header("Retry-After")
        if after is None or not after.isdigit():
            return "503 without a Retry-After in seconds (%r)" % after
        return None
    query = urllib.parse.parse_qs(ex.target.partition("?")[2])
    named = [p for p in query if p in message]
    if not named:
        return "400 naming none of %s: %r" % (sorted(query), message[:160])
    return None


class Sampler:
    """VmRSS of a server and its workers, sampled on every call."""

    def __init__(self, srv):
        self.srv = srv
        self.samples = []  # (monotonic, KiB)
        self.peak = 0

    def __call__(self):
        kib = harness.tree_rss_kib(self.srv.pid)
        self.samples.append((time.monotonic(), kib))
        self.peak = max(self.peak, kib)
        return kib


def idle_rss(srv, settle_s=1.0):
    """The server's idle RSS: the last of a few samples once /health
    answers, after settle_s."""
    time.sleep(settle_s)
    harness.health(srv.port, timeout=scaled(5.0))
    return max(harness.tree_rss_kib(srv.pid) for _ in range(3))


def sampled_herd(srv, target, count, tick):
    """The idle RSS, then count concurrent GETs of target, pumped until
    all have ended (30 s at most) with the RSS sampled every tick:
    (idle KiB, the Sampler, the Herd, which the caller closes)."""
    idle = idle_rss(srv)
    sampler = Sampler(srv)
    herd = Herd(srv.port)
    try:
        for _ in range(count):
            herd.add(target)
        herd.pump(time.monotonic() + scaled(30.0), tick, sampler)
        sampler()
    except BaseException:
        herd.close()
        raise
    return idle, sampler, herd


def wait_budgets_zero(srv, timeout):
    """Polls /health until every budget's used is 0 and no client holds
    any; returns the seconds it took. Raises naming the last values."""
    started = time.monotonic()
    while True:
        body = harness.health(srv.port, timeout=scaled(5.0))
        budgets = budgets_of(body)
        if all(used == 0 for used, _ in budgets.values()) and \
                body["clients"] == 0:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise CheckFailed("%.0f s after the clients left, budgets used "
                              "%s, clients %s" % (timeout, {
                                  k: v[0] for k, v in budgets.items()},
                                  body["clients"]))
        time.sleep(0.1)


def wait_rss_back(srv, idle_kib, timeout):
    """Polls the RSS until it is within RETURN_SHARE of idle_kib: (seconds
    taken or None, last KiB)."""
    started = time.monotonic()
    while True:
        kib = harness.tree_rss_kib(srv.pid)
        if kib <= idle_kib * (1 + RETURN_SHARE):
            return time.monotonic() - started, kib
        if time.monotonic() - started > timeout or srv.proc.poll() \
                is not None:
            return None, kib
        time.sleep(0.5)


# --------------------------------------------------------------------------
# limits-ceiling

def case_calibrate(srv, ctx):
    """The largest /run/compare each demo accepts here (on this group's
    server, stopped afterwards: accepted probes may keep it busy)."""
    no_sanitizer()
    try:
        found = calibrate_compare(srv.port)
    finally:
        srv.stop()
    ctx["compares"] = found
    harness.figure("ceiling.compares", {d: short_query(q)
                                        for d, q in found.items()})
    return "; ".join("%s: %s" % (d, short_query(q)) for d, q in found.items())


def mix_case(name, web_root, binary):
    def run(srv, ctx):
        no_sanitizer()
        check("compares" in ctx, "the calibration did not run")
        return run_mix(name, web_root, binary, ctx)
    return run


def run_mix(name, web_root, binary, ctx):
    soft = raise_nofile(MAX_CLIENTS * 2 + 256)
    mix_srv = harness.Server(binary, ["--web-root", web_root],
                             name="ceiling-" + name)
    herd = None
    fig = {"mix": name}
    problems = []
    try:
        mix_srv.start()
        children = harness.children_of(mix_srv.pid)
        targets = largest_targets(mix_srv.port, ctx["compares"])
        seed = random.randrange(1 << 30)
        spec = mix_spec(name, targets, seed)
        total = sum(n for _, n in spec)
        fig.update(clients=total, spec=dict(spec))
        if name == "random":
            fig["seed"] = seed
        idle = idle_rss(mix_srv)
        fig["idle_mib"] = round(mib(idle), 1)
        sampler = Sampler(mix_srv)
        sampler()
        herd = Herd(mix_srv.port)
        order = [t for t, n in spec for _ in range(n)]
        random.Random(seed).shuffle(order)
        started = time.monotonic()
        for tname in order:
            herd.add(targets[tname], tag=tname, keep_body=False)
        aborted = []

        def tick():
            if sampler() > ABORT_MIB * MIB and not aborted:
                aborted.append(time.monotonic() - started)
        until = started + LOAD_S
        while time.monotonic() < until and not aborted:
            herd.pump(min(until, time.monotonic() + SAMPLE_S), SAMPLE_S,
                      tick, stop_when_idle=False)
        if aborted:
            # Kill first: the memory of the machine is shared.
            os.kill(mix_srv.pid, signal.SIGKILL)
        answered = [ex for ex in herd.all if ex.head_len >= 0]
        for ex in herd.all:
            p = answer_problem(ex)
            if p:
                problems.append("%s: %s" % (ex.tag, p))
        statuses = {}
        for ex in answered:
            key = "%s %s" % (ex.tag, ex.status)
            statuses[key] = statuses.get(key, 0) + 1
        by_status = {}
        for ex in answered:
            by_status[str(ex.status)] = by_status.get(str(ex.status), 0) + 1
        errors = [ex for ex in herd.all if ex.error and ex.head_len < 0]
        herd.leave()
        left_at = time.monotonic()
        fig.update(peak_mib=round(mib(sampler.peak), 1),
                   answers=by_status, answers_by_kind=statuses,
                   unanswered=total - len(answered),
                   connect_errors=len(errors), samples=len(sampler.samples))
        if aborted:
            fig["aborted_at_s"] = round(aborted[0], 2)
            raise CheckFailed(
                "RSS passed %d MiB %.1f s into the load (idle %.1f MiB): "
                "server killed; answers %s; %s" % (
                    ABORT_MIB, aborted[0], mib(idle), by_status,
                    "; ".join(problems[:3]) or "no bad answer"))
        # The clients left: their work must go, and the memory with it.
        try:
            fig["budgets_zero_s"] = round(wait_budgets_zero(
                mix_srv, scaled(BUDGETS_ZERO_S)), 2)
        except CheckFailed as e:
            problems.append(str(e))
        try:
            fig["rejected"] = check_budget_metrics(mix_srv.port)
        except CheckFailed as e:
            problems.append(str(e))
        back_s, last = wait_rss_back(mix_srv, idle, RETURN_WAIT_S)
        fig.update(after_mib=round(mib(last), 1),
                   back_s=None if back_s is None else round(back_s, 1),
                   rss_back_waited_s=round(time.monotonic() - left_at, 1))
        note = ("%d clients; idle %.1f MiB, peak %.1f MiB (limit %d), %.1f "
                "MiB %s after they left; answers %s, %d unanswered when "
                "they left" % (total, mib(idle), mib(sampler.peak),
                               CEILING_MIB, mib(last),
                               "%.1f s" % back_s if back_s is not None else
                               "%.0f s" % RETURN_WAIT_S, by_status,
                               total - len(answered)))
        if sampler.peak > CEILING_MIB * MIB:
            problems.insert(0, "peak RSS %.1f MiB over %d MiB"
                            % (mib(sampler.peak), CEILING_MIB))
        if back_s is None:
            problems.insert(0, "RSS %.1f MiB %.0f s after the load, not "
                            "within %d%% of idle %.1f MiB"
                            % (mib(last), RETURN_WAIT_S,
                               RETURN_SHARE * 100, mib(idle)))
        if not problems:
            harness.stop_and_check(mix_srv, signal.SIGTERM, scaled(10.0),
                                   children)
        if problems:
            raise CheckFailed("%s; %s" % ("; ".join(problems[:4]), note))
        return note
    finally:
        harness.figure("ceiling.%s" % name, fig)
        if herd is not None:
            herd.close()
        mix_srv.close()
        restore_nofile(soft)


def raise_nofile(want):
    import faults
    return faults.raise_nofile(want)


def restore_nofile(soft):
    import faults
    faults.restore_nofile(soft)


# --------------------------------------------------------------------------
# limits-fairness

FAIR_PRIMES = 50
FAIR_HEALTH_PER_PRIME = 4          # 200 /health in all
FAIR_PRIME = "/run/prime?limit=100000"
FAIR_PRIME_P99_S = 1.0
FAIR_HEALTH_P99_S = 0.050
# The latency targets are judged by the bench (bench/limits.py writes the
# verdict against them into bench/REPORT.md); the tests, which run on
# shared and noisy machines, fail only past this many times a target: a
# starved client or a stalled loop, not a slow moment.
TEST_MARGIN = 5.0
FAIR_TIMEOUT_S = 10.0              # one request of B at most
FAIR_GIVE_UP = 5                   # B stops after this many timeouts
HOG_CONNECTIONS = 64
HOG_MAX_S = 300.0                  # the hog stops by itself after this
HOG_PAUSE_S = 0.02                 # before sending again after a 503
STOP_AFTER_S = 2.0                 # exit after SIGTERM once A has left


def hog_targets(port):
    """Client A's requests: the largest it may send on every pool."""
    return [
        "/run/sleep?tasks=1000&ms=10000&mode=processes",
        "/run/sleep?tasks=1000&ms=10000&mode=threads",
        "/run/sleep?tasks=1000&ms=10000&mode=gil",
        "/run/sleep?tasks=10000&ms=10000&mode=async",
        "/run/prime?%s&mode=processes" % PRIME_MAX,
        "/run/prime?%s&mode=threads" % PRIME_MAX,
        "/run/fetch?count=1000&ms=10000&mode=async",
        "/run/fetch?count=1000&ms=10000&mode=threads",
        "/run/fetch?%s&mode=async" % self_sleep_urls(port),
        "/run/square?numbers=%s&tasks=256&mode=processes" % NUMBERS,
    ]


def hog_main(port, seconds):
    """Client A, run as its own process (python3 limits.py hog PORT S):
    HOG_CONNECTIONS requests always in flight from 127.0.0.1, each sent
    again as soon as it is answered (after HOG_PAUSE_S for a 503), until
    SIGTERM or seconds; prints its counts as one JSON line."""
    import resource
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    targets = hog_targets(port)
    herd = Herd(port)
    counts = {}
    later = []  # (monotonic, target) to send again
    n = [0]

    def send(target):
        n[0] += 1
        herd.add(target, source=harness.LOOPBACK, keep_body=False)

    def done(ex):
        key = str(ex.status) if ex.head_len >= 0 else "closed"
        counts[key] = counts.get(key, 0) + 1
        if ex.status == 503:
            later.append((time.monotonic() + HOG_PAUSE_S, ex.target))
        else:
            send(ex.target)

    for i in range(HOG_CONNECTIONS):
        send(targets[i % len(targets)])
    deadline = time.monotonic() + seconds
    print("hog: started", flush=True)
    while not stop and time.monotonic() < deadline:
        herd.pump(time.monotonic() + 0.05, on_done=done,
                  stop_when_idle=False)
        now = time.monotonic()
        due = [t for at, t in later if at <= now]
        later[:] = [(at, t) for at, t in later if at > now]
        for t in due:
            send(t)
    herd.close()
    print(json.dumps({"sent": n[0], "answers": counts}), flush=True)


def timed_get(port, target, timeout):
    """(seconds, harness.Response) of one GET from SOURCE_B."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    started = time.monotonic()
    try:
        sock.settimeout(timeout)
        sock.bind((SOURCE_B, 0))
        sock.connect((harness.LOOPBACK, port))
        sock.sendall(harness.build_request("GET", target))
        resp = harness.read_response(sock, timeout=timeout)
    except OSError as e:
        resp = harness.Response()
        resp.error = repr(e)
    finally:
        sock.close()
    return time.monotonic() - started, resp


def case_fairness(srv, ctx):
    no_sanitizer()
    here = os.path.abspath(__file__)
    out = open(os.path.join(srv._dir.name, "hog.out"), "w+b")
    hog = harness.start_process(
        [sys.executable, here, "hog", str(srv.port), str(HOG_MAX_S)],
        stdout=out, stderr=subprocess.STDOUT)
    fig = {}
    try:
        # A is busy once its work runs everywhere it may run.
        deadline = time.monotonic() + 15.0
        body = None
        while time.monotonic() < deadline:
            body = harness.health(srv.port)
            if json_path(body, "pools.process.busy") and \
                    json_path(body, "pools.threads.busy") and \
                    json_path(body, "pools.loop.timers"):
                break
            check(hog.poll() is None, "client A exited: %s" % _read(out))
            time.sleep(0.1)
        else:
            raise CheckFailed("client A's work is not running 15 s after "
                              "it started: pools %s" % json.dumps(
                                  body.get("pools"))[:300])
        time.sleep(1.0)  # A has met its 503s by now
        full = harness.health(srv.port)
        fig["pools_at_start"] = {
            "process_busy": json_path(full, "pools.process.busy"),
            "process_queued": json_path(full, "pools.process.queued"),
            "threads_busy": json_path(full, "pools.threads.busy"),
            "loop_timers": json_path(full, "pools.loop.timers"),
            "loop_transfers": json_path(full, "pools.loop.transfers"),
            "budgets": full.get("budgets"), "clients": full.get("clients")}
        primes, healths, bad = [], [], []
        timeouts = 0
        for i in range(FAIR_PRIMES):
            took, resp = timed_get(srv.port, FAIR_PRIME,
                                   scaled(FAIR_TIMEOUT_S))
            primes.append(took)
            if resp.status != 200:
                bad.append("prime %d: %s %s" % (i, resp.status, resp.error
                                                or resp.body[:100]))
                if resp.status is None:
                    timeouts += 1
            else:
                try:
                    got = json_path(resp.json(), "result.primes")
                except ValueError:
                    got = "not JSON"
                if got != 9592:
                    bad.append("prime %d: result.primes %r" % (i, got))
            for _ in range(FAIR_HEALTH_PER_PRIME):
                took, resp = timed_get(srv.port, "/health",
                                       scaled(FAIR_TIMEOUT_S))
                healths.append(took)
                if resp.status != 200:
                    bad.append("health: %s %s" % (resp.status, resp.error))
            if timeouts >= FAIR_GIVE_UP:
                bad.append("B gave up after %d primes timed out (%.0f s)"
                           % (timeouts, FAIR_TIMEOUT_S))
                break
            check(hog.poll() is None, "client A exited: %s" % _read(out))
    finally:
        if hog.poll() is None:
            os.kill(hog.pid, signal.SIGTERM)
        try:
            hog.wait(timeout=scaled(15.0))
        except subprocess.TimeoutExpired:
            pass
        harness.reap(hog, signal.SIGKILL)
        fig["client_a"] = _hog_counts(out)
        out.close()
        harness.figure("fairness", fig)
    p_prime, p_health = pct(primes, 99), pct(healths, 99)
    fig.update(prime_n=len(primes), prime_p50_ms=round(pct(primes, 50) *
                                                       1000, 1),
               prime_p99_ms=round(p_prime * 1000, 1),
               health_n=len(healths),
               health_p50_ms=round(pct(healths, 50) * 1000, 2),
               health_p99_ms=round(p_health * 1000, 2), bad=len(bad))
    harness.figure("fairness", fig)
    note = ("B: %d primes p50 %.0f ms p99 %.0f ms, %d /health p50 %.1f ms "
            "p99 %.1f ms; A: %s" % (len(primes), fig["prime_p50_ms"],
                                    fig["prime_p99_ms"], len(healths),
                                    fig["health_p50_ms"],
                                    fig["health_p99_ms"], fig["client_a"]))
    problems = list(bad[:3])
    if p_prime >= FAIR_PRIME_P99_S * TEST_MARGIN:
        problems.insert(0, "B's prime p99 %.0f ms, %g x the %.0f ms target"
                        % (p_prime * 1000, TEST_MARGIN,
                           FAIR_PRIME_P99_S * 1000))
    if p_health >= FAIR_HEALTH_P99_S * TEST_MARGIN:
        problems.insert(0, "B's /health p99 %.1f ms, %g x the %.0f ms target"
                        % (p_health * 1000, TEST_MARGIN,
                           FAIR_HEALTH_P99_S * 1000))
    a = fig["client_a"]
    if isinstance(a, dict) and not a.get("answers", {}).get("503"):
        problems.append("client A never got a 503: the service set it no "
                        "limit")
    if problems:
        srv.stop()  # its exit is not this case's question
        raise CheckFailed("%s; %s" % ("; ".join(problems), note))
    # Client A has gone: its work must go with it, and the exit be prompt.
    return note + "; " + harness.stop_and_check(
        srv, signal.SIGTERM, scaled(STOP_AFTER_S), harness.children_of(
            srv.pid))


def _read(f):
    f.flush()
    f.seek(0)
    return f.read().decode("utf-8", "replace")[-300:]


def _hog_counts(f):
    text = _read(f) if not f.closed else ""
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    return "no counts (%r)" % text[-120:]


# --------------------------------------------------------------------------
# limits-per-task

PER_TASK_RUNS = 20
PER_TASK_TARGET = "/run/sleep?tasks=10000&ms=1000&mode=async"
PER_TASK_MAX_MIB = 30
LATENESS_P99_MS = 5.0
# What the test fails at: a stalled loop (one timer at a time, the answers
# built on the loop thread: 50 to 600 ms were measured before), not the
# lateness a busy shared machine adds (up to about 100 ms was seen with
# other programs using both cores).
LATENESS_STALL_MS = 250.0
PER_TASK_SAMPLE_S = 0.02


def case_per_task(srv, ctx):
    no_sanitizer()
    idle, sampler, herd = sampled_herd(srv, PER_TASK_TARGET, PER_TASK_RUNS,
                                       PER_TASK_SAMPLE_S)
    try:
        late, problems = [], []
        for i, ex in enumerate(herd.all):
            resp = ex.response()
            if resp.status != 200 or not ex.complete:
                problems.append("run %d: %s %s %r" % (
                    i, resp.status, ex.error or resp.error or "",
                    resp.body[:100]))
                continue
            tasks = resp.json().get("tasks")
            if not isinstance(tasks, list) or len(tasks) != 10000:
                problems.append("run %d: %s tasks" % (
                    i, len(tasks) if isinstance(tasks, list) else tasks))
                continue
            late += [t["end_ms"] - t["start_ms"] - 1000.0 for t in tasks]
    finally:
        herd.close()
    added = mib(sampler.peak - idle)
    fig = {"runs": PER_TASK_RUNS, "idle_mib": round(mib(idle), 1),
           "peak_mib": round(mib(sampler.peak), 1),
           "added_mib": round(added, 1), "answered": PER_TASK_RUNS -
           len(problems)}
    if late:
        fig.update(lateness_p50_ms=round(pct(late, 50), 3),
                   lateness_p99_ms=round(pct(late, 99), 3),
                   lateness_max_ms=round(max(late), 3),
                   lateness_min_ms=round(min(late), 3))
    harness.figure("per_task", fig)
    note = "idle %.1f MiB, peak %.1f MiB (+%.1f MiB, limit +%d)" % (
        mib(idle), mib(sampler.peak), added, PER_TASK_MAX_MIB)
    if late:
        note += "; timer lateness p50 %.2f ms, p99 %.2f ms, max %.1f ms" % (
            fig["lateness_p50_ms"], fig["lateness_p99_ms"],
            fig["lateness_max_ms"])
    if added > PER_TASK_MAX_MIB:
        problems.insert(0, "RSS grew by %.1f MiB" % added)
    if late and fig["lateness_p99_ms"] >= LATENESS_STALL_MS:
        problems.insert(0, "timer lateness p99 %.2f ms: the loop stalled "
                        "(the target, judged by the bench, is %.0f ms)"
                        % (fig["lateness_p99_ms"], LATENESS_P99_MS))
    check(not problems, "%s; %s" % ("; ".join(problems[:4]), note))
    return note


BURST_CONNECTIONS = 1000
BURST_TARGET = "/delay?ms=100"
BURST_BACK_S = 5.0


def case_connection_burst(srv, ctx):
    """1,000 concurrent /delay requests, no run: their connections' pools
    and exchanges are freed when they close, and the memory goes back to
    the system soon after (it was held until the next run, 15 MiB)."""
    no_sanitizer()
    soft = raise_nofile(BURST_CONNECTIONS + 256)
    try:
        idle, sampler, herd = sampled_herd(srv, BURST_TARGET,
                                           BURST_CONNECTIONS, SAMPLE_S)
        try:
            bad = [ex.response().status for ex in herd.all
                   if not ex.complete or ex.response().status != 200]
        finally:
            herd.close()
    finally:
        restore_nofile(soft)
    check(not bad, "%d of %d answers were not 200: %s" % (
        len(bad), BURST_CONNECTIONS, sorted(set(bad))[:5]))
    back_s, last = wait_rss_back(srv, idle, scaled(BURST_BACK_S))
    note = "idle %.1f MiB, peak %.1f MiB, %.1f MiB %.1f s after" % (
        mib(idle), mib(sampler.peak), mib(last),
        back_s if back_s is not None else scaled(BURST_BACK_S))
    check(back_s is not None, "RSS not back within %d%% of idle: %s" % (
        RETURN_SHARE * 100, note))
    return note


# --------------------------------------------------------------------------
# Groups


def server_groups(web_root, binary):
    """(title, extra args, environment, cases) for run.py's server_group.
    Default options: only a web root."""
    args = ["--web-root", web_root]
    count = min(MIXES_TO_RUN, len(MIXES))
    return [
        ("limits-ceiling", args + ["--grace-ms", "0"], None,
         [("limits: the largest /run/compare each demo accepts",
           case_calibrate)]
         + [("limits: memory ceiling, mix '%s': under %d MiB, answers "
             "200/400/503, back within %d%% of idle" % (
                 m, CEILING_MIB, RETURN_SHARE * 100),
             mix_case(m, web_root, binary)) for m in MIXES[:count]]),
        ("limits-fairness", args, None,
         [("limits: fairness, client B is served while client A fills "
           "every pool (p99 targets 1 s and 50 ms judged by the bench)",
           case_fairness)]),
        # 20 runs of 10,000 tasks hold 51 MB of budgeted bytes since a
        # task's record keeps its CPU time (32 bytes) and its answer says
        # cpu_ms: more than one client's half of the default 96 MiB. The
        # budget is not what this group measures: it gets 112 MiB.
        ("limits-per-task", args + ["--budget-bytes", str(112 << 20)], None,
         [("limits: 20 x /run/sleep?tasks=10000&ms=1000: RSS +%d MiB at "
           "most, the loop never stalls (its %.0f ms lateness target "
           "judged by the bench)" % (PER_TASK_MAX_MIB, LATENESS_P99_MS),
           case_per_task)]),
        ("limits-burst", args, None,
         [("limits: 1,000 concurrent %s (no run): RSS back within %d%% "
           "of idle within %.0f s" % (BURST_TARGET, RETURN_SHARE * 100,
                                     BURST_BACK_S),
           case_connection_burst)]),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "hog":
        sys.dont_write_bytecode = True
        hog_main(int(sys.argv[2]), float(sys.argv[3]))
    else:
        print("usage: limits.py hog PORT SECONDS (run.py runs the tests)",
              file=sys.stderr)
        sys.exit(2)

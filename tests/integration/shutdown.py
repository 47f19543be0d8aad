"""SIGTERM at a random moment of every kind of run (issue 11's acceptance).

Used by run.py (server_groups() below adds the "shutdown" group; the
switch --shutdown runs only it, --shutdown-tries N sets the number of
tries, TRIES by default). Each try starts its own server (default options,
plus --grace-ms 0 for every other try), sends a few requests of one kind
(KINDS: each demo in each mode, /run/compare of each demo, fetches of self
targets, /delay), sends SIGTERM 0-50 ms after the last request went out
(0-2 ms for square runs, which take about 2 ms, with twice the
requests), and requires:

  - exit status 0 within the grace period plus a margin, no crash (a
    death by signal) and no sanitizer report in the log;
  - no process of the server's session left (its workers, including any
    it respawned: the server leads its own session, see harness.Server);
  - every client got a whole answer (a 200 of the right shape, or a 503
    in the error shape with Retry-After) or a clean close without a byte;
    never a cut answer, another status or a connection left hanging.

CRASH_CASE is the case known to crash before issue 11 (SIGSEGV in about 6
of 30 tries: /run/compare?demo=square with 10,000 numbers, tasks=256,
SIGTERM 0-6 ms after sending, --grace-ms 0); it gets its own tries.

The runs are kept short (well under a second, also under a sanitizer),
so that a try with the default grace period ends when they do. The group
also runs under make asan / make tsan, with harness.TIME_SCALE applied to
every bound. Each case reports its tries, how many had requests in flight
at the signal, and how many failed how; a kind none of whose tries had a
request in flight at the signal fails (it proved nothing).
"""

import os
import random
import signal
import time
import urllib.parse

import harness
from harness import CheckFailed, Herd, check

TRIES = 200               # in all, CRASH_CASE's included
SIGNAL_WINDOW_S = (0.0, 0.050)
# 2,500 numbers (what a GET holds) take about 1 ms here, 64 tasks or not.
SQUARE_WINDOW_S = (0.0, 0.002)
DEFAULT_GRACE_S = 5.0     # conlab's default --grace-ms
EXIT_MARGIN_S = 3.0       # x TIME_SCALE, beyond the grace period
GONE_WAIT_S = 2.0         # x TIME_SCALE, for the workers to be gone
PER_TRY = 3               # requests sent in each try
GROUPS = ["shutdown"]

# The largest list a 4 KiB request target holds here (10,000 numbers take
# a request body).
NUMBERS_GET = ",".join(str(i % 19 - 9) for i in range(1600))  # ~4 KB
NUMBERS_1300 = ",".join(str(i % 100) for i in range(1300))  # ~3.8 KB


def scaled(seconds):
    return seconds * harness.TIME_SCALE


def self_url(path):
    return "url=" + urllib.parse.quote("http://127.0.0.1:{port}" + path,
                                       safe="{}")


class Kind:
    """A kind of run: its target ({port} is the server's) and the key its
    200 body must have."""

    def __init__(self, name, target, key, per_try=PER_TRY,
                 window=SIGNAL_WINDOW_S, grace0_only=False):
        self.name, self.target, self.key = name, target, key
        self.per_try, self.window = per_try, window
        self.grace0_only = grace0_only


KINDS = (
    [Kind("prime " + m, "/run/prime?limit=2000000&tasks=4&mode=" + m,
          "tasks") for m in ("sequential", "threads", "processes", "gil",
                             "spawn")]
    # A square run takes about a millisecond: the signal comes sooner.
    + [Kind("square " + m, "/run/square?numbers=%s&tasks=64&mode=%s"
            % (NUMBERS_GET, m), "tasks", per_try=2 * PER_TRY,
            window=SQUARE_WINDOW_S)
       for m in ("sequential", "threads", "processes")]
    + [Kind("square spawn", "/run/square?numbers=1,2,3,4&tasks=4&mode=spawn",
            "tasks")]
    + [Kind("sleep " + m, "/run/sleep?tasks=%d&ms=30&mode=%s" % (n, m),
            "tasks")
       for m, n in (("sequential", 3), ("threads", 100), ("processes", 4),
                    ("gil", 50), ("async", 2000), ("spawn", 4))]
    + [Kind("fetch " + m, "/run/fetch?count=%d&ms=20&mode=%s" % (n, m),
            "tasks")
       for m, n in (("sequential", 3), ("threads", 64), ("async", 200))]
    + [Kind("fetch of self runs", "/run/fetch?%s&mode=async" % "&".join([
        self_url("/run/sleep?tasks=100&ms=30&mode=async"),
        self_url("/run/prime?limit=300000&mode=threads"),
        self_url("/run/square?numbers=1,2,3&mode=processes"),
        self_url("/run/compare?demo=sleep&tasks=2&ms=5"),
        self_url("/delay?ms=30")]), "tasks")]
    + [Kind("compare prime", "/run/compare?demo=prime&limit=1000000&tasks=4",
            "runs"),
       Kind("compare square", "/run/compare?demo=square&numbers=%s&tasks=16"
            % NUMBERS_1300, "runs", window=SQUARE_WINDOW_S),
       Kind("compare sleep", "/run/compare?demo=sleep&tasks=4&ms=15",
            "runs"),
       Kind("compare fetch", "/run/compare?demo=fetch&count=8&ms=15",
            "runs"),
       Kind("delay", "/delay?ms=60", "delay_ms")])

# SIGSEGV in about 6 of 30 tries before issue 11 (main.c freed the pool
# while a comparison's threads mode could still submit to it).
CRASH_CASE = Kind("compare square, 1,600 numbers, tasks=256, 0-6 ms, "
                  "--grace-ms 0",
                  "/run/compare?demo=square&numbers=%s&tasks=256"
                  % NUMBERS_GET, "runs", per_try=2, window=(0.0, 0.006),
                  grace0_only=True)
CRASH_SHARE = 30.0 / 200  # of TRIES


def split_tries(total):
    """(tries of CRASH_CASE, tries of each other kind): at least total in
    all, the crash case 30 of 200."""
    crash = max(2, int(round(total * CRASH_SHARE)))
    each = max(2, -(-(total - crash) // len(KINDS)))
    return crash, each


class Outcome:
    def __init__(self):
        self.tries = 0
        self.in_flight = 0    # tries with a request unanswered at the signal
        self.answers = {}     # "200", "503", "closed": count
        self.failures = []    # (try, text)
        self.crashes = 0      # deaths by a signal or sanitizer reports
        self.exit_ms = []

    def count(self, key):
        self.answers[key] = self.answers.get(key, 0) + 1


def client_problem(ex, kind):
    """None and what ex got ("200", "503", "closed") when acceptable, else
    (None, the problem)."""
    if ex.error and ex.sent_at is None:
        return None, "not sent: %s" % ex.error
    if ex.state not in ("done",):
        return None, "no answer and still open (%d bytes)" % ex.received
    if ex.head_len < 0:
        if ex.received == 0:
            return "closed", None
        return None, "closed after %d bytes of a head" % ex.received
    if not ex.complete:
        return None, "a %s cut short after %d bytes" % (ex.status,
                                                        ex.received)
    resp = ex.response()
    te = (resp.header("Transfer-Encoding") or "").lower()
    if te == "chunked" and not resp.raw.endswith(b"0\r\n\r\n"):
        return None, "a chunked %s without its last chunk" % resp.status
    if resp.status == 503:
        try:
            harness.expect_error_shape(resp)
        except CheckFailed as e:
            return None, "503: %s" % e
        after = resp.header("Retry-After")
        if after is None or not after.isdigit():
            return None, "503 without Retry-After (%r)" % after
        return "503", None
    if resp.status != 200:
        return None, "status %s: %r" % (resp.status, resp.body[:120])
    try:
        body = resp.json()
    except ValueError:
        return None, "a 200 whose body is not JSON (%d bytes)" % len(
            resp.body)
    if not isinstance(body, dict) or kind.key not in body:
        return None, "a 200 without %r: %r" % (kind.key, resp.body[:120])
    return "200", None


def one_try(binary, web_root, kind, grace0, rng, out, n):
    """One server, kind.per_try requests, SIGTERM at a random moment;
    records in out. Raises nothing: failures go to out.failures."""
    args = ["--web-root", web_root] + (["--grace-ms", "0"] if grace0
                                       else [])
    grace_s = 0.0 if grace0 else DEFAULT_GRACE_S
    srv = harness.Server(binary, args, name="shutdown")
    herd = None
    what = "try %d (%s)" % (n, "grace 0" if grace0 else "default grace")
    out.tries += 1
    try:
        try:
            srv.start()
        except CheckFailed as e:
            out.failures.append((what, "did not start: %s" % e))
            return
        workers = harness.children_of(srv.pid)
        herd = Herd(srv.port)
        for _ in range(kind.per_try):
            herd.add(kind.target.format(port=srv.port))
        # Every request out, then the signal at a random moment.
        deadline = time.monotonic() + scaled(5.0)
        while any(ex.sent_at is None and ex.state != "done"
                  for ex in herd.all) and time.monotonic() < deadline:
            herd.pump(time.monotonic() + 0.001, stop_when_idle=False)
        unsent = [ex for ex in herd.all if ex.sent_at is None]
        if unsent:
            out.failures.append((what, "a request was not sent: %s"
                                 % (unsent[0].error or "timed out")))
            return
        delay = rng.uniform(*kind.window)
        herd.pump(max(ex.sent_at for ex in herd.all) + delay,
                  stop_when_idle=False)
        signalled_at = time.monotonic()
        os.kill(srv.pid, signal.SIGTERM)
        if any(ex.state != "done" for ex in herd.all):
            out.in_flight += 1
        limit = grace_s + scaled(EXIT_MARGIN_S)
        herd.pump(signalled_at + limit)
        rc, _ = srv.wait_exit(signalled_at + limit)
        problems = []
        if rc is None:
            problems.append("still running %.1f s after SIGTERM; tail: %s"
                            % (limit, srv.log_tail(3)))
            harness.reap(srv.proc, signal.SIGKILL)  # no second grace
        else:
            out.exit_ms.append((time.monotonic() - signalled_at) * 1000)
        for ex in herd.all:
            got, problem = client_problem(ex, kind)
            if problem:
                problems.append("client: %s" % problem)
            else:
                out.count(got)
        srv.stop()
        if rc is not None and rc < 0:
            out.crashes += 1
            problems.insert(0, "killed by %s" % signal.Signals(-rc).name)
        elif rc not in (None, 0):
            problems.insert(0, "exit status %d" % rc)
        reports = srv.sanitizer_reports()
        if reports:
            if rc is None or rc >= 0:
                out.crashes += 1  # a sanitizer's report is a crash too
            summaries = [r for r in reports if "SUMMARY" in r]
            problems.insert(0, "sanitizer: %s" % (summaries or reports)[0])
        left = wait_session_gone(srv.pid)
        # Also by PID, should a worker have left the session.
        left += [p for p in workers if p not in left and
                 os.path.exists("/proc/%d" % p)]
        if left:
            problems.append("processes of its session left: %s" % left)
        if problems:
            out.failures.append((what + " %.1f ms after sending"
                                 % (delay * 1000), "; ".join(problems)))
    finally:
        if herd is not None:
            herd.close()
        srv.close()
        # Whatever is left of the session is ours: stop it.
        for pid in harness.session_members(srv.pid) if srv.pid else []:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_session_gone(sid):
    """PIDs of sid's session still there (zombies too) after
    GONE_WAIT_S."""
    deadline = time.monotonic() + scaled(GONE_WAIT_S)
    left = harness.session_members(sid)
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = harness.session_members(sid)
    return left


def kind_case(kind, tries, binary, web_root):
    def run(srv, ctx):
        seed = random.randrange(1 << 30)
        rng = random.Random(seed)
        out = Outcome()
        for n in range(tries):
            grace0 = kind.grace0_only or n % 2 == 0
            one_try(binary, web_root, kind, grace0, rng, out, n)
        figures = harness.FIGURES.setdefault("shutdown", {})
        figures[kind.name] = {
            "tries": out.tries, "in_flight": out.in_flight,
            "answers": out.answers, "failed": len(out.failures),
            "crashes": out.crashes,
            "exit_ms_max": round(max(out.exit_ms), 1) if out.exit_ms
            else None}
        note = "seed %d; %d tries, %d with requests in flight at the " \
               "signal; clients: %s; exit in %s ms at most" % (
                   seed, out.tries, out.in_flight,
                   ", ".join("%s %d" % kv for kv in
                             sorted(out.answers.items())),
                   "%.0f" % max(out.exit_ms) if out.exit_ms else "-")
        if out.failures:
            raise CheckFailed("%d of %d tries failed (%d crashes): %s; %s"
                              % (len(out.failures), out.tries, out.crashes,
                                 " | ".join("%s: %s" % f
                                            for f in out.failures[:3]),
                                 note))
        check(out.in_flight > 0, "no try had a request in flight at the "
              "signal: the case proved nothing; %s" % note)
        return note
    return run


def server_groups(web_root, binary):
    """(title, extra args, environment, cases) for run.py's server_group.
    The group's own server only checks a clean exit; every try starts
    another."""
    crash, each = split_tries(TRIES)
    cases = [("shutdown: SIGTERM during %s, %d tries (%s)"
              % (CRASH_CASE.name, crash, "known crash"),
              kind_case(CRASH_CASE, crash, binary, web_root))]
    cases += [("shutdown: SIGTERM 0-50 ms into %d x %s, %d tries, half "
               "with --grace-ms 0" % (k.per_try, k.name, each),
               kind_case(k, each, binary, web_root)) for k in KINDS]
    return [("shutdown", ["--web-root", web_root], None, cases)]

"""Fault injection over HTTP against the real binary.

Used by run.py (server_groups() below adds its groups to the run). Each
fault runs against its own server:

  faults-kill      kill -9 of random workers every 0.5 s during a wrk run
                   (wrk, with faults_wrk.lua counting statuses): every
                   failed request is the JSON 502 naming a dead worker, at
                   most one per kill, no connection error, the pool back
                   to full strength, restarts.crash == kills;
  faults-slow      --conn-timeout 2, --head-timeout-ms 0 (no head
                   deadline): clients trickling header bytes, one
                   every 0.5 s; clients that stop mid-headers are cut
                   conn-timeout after their last byte; a head that never
                   ends is refused at the 16 KiB connection buffer;
  faults-head      --head-timeout-ms 1500 --conn-timeout 4: clients
                   trickling one header byte per second are cut 1.5 s
                   after their head's first byte, on a new or a
                   keep-alive connection; heads sent slowly within the
                   deadline get 200; idle keep-alive connections outlive
                   the head deadline and are closed by --conn-timeout;
  faults-idle      2,000 idle connections at once (default limits);
  faults-oversized targets, headers and queries over (and at) the
                   documented caps, and beyond libmicrohttpd's own buffer
                   (OVERSIZED, a table), then the header-count edge where
                   the connection buffer runs out;
  faults-term      SIGTERM in the middle of a mixed load (CPU jobs, async
                   sleeps, delays, fetches, /health): requests in flight
                   finish with 200, later ones get 503 or no connection,
                   exit 0, no worker left;
  faults-gone      50 clients that send a long process job or a slow fetch
                   and leave after 50 ms: the server settles.

What the idle timeout is, measured (libmicrohttpd 0.9.75): --conn-timeout
is an idle timeout, and every byte received resets it. A client that
sends one header byte every 0.5 s is never cut by it (20 such clients
were still connected after 6 s with --conn-timeout 2); what bounds such a
client is the connection's 16 KiB buffer (a head that reaches it is
refused with libmicrohttpd's 431) and the connection limits
(--max-connections, --max-per-ip). The "faults-slow" cases test those
bounds with the head deadline off and report how many tricklers were
still open; "faults-head" tests the deadline (--head-timeout-ms) that the
service now enforces itself (server/http.c).

Every time limit is multiplied by harness.TIME_SCALE (sanitizer builds);
the durations asked of the server and of wrk are not. Every wait is
bounded. Only 127.0.0.1 is contacted. The only processes signalled are
the servers started here (by harness.Server), wrk (run through
harness.run_command, which reaps it) and worker pids that the server's own
/health reports and that are children of the server.
"""

import json
import os
import random
import re
import resource
import select
import shutil
import signal
import socket
import threading
import time

import cpu
import harness
from harness import (
    CheckFailed, Contains, build_request, check, expect_error_shape,
    expect_value, json_path, raw_exchange, stop_and_check)

JSON = "application/json; charset=utf-8"
HERE = os.path.dirname(os.path.abspath(__file__))
WRK_SCRIPT = os.path.join(HERE, "faults_wrk.lua")
PATIENT = ["--job-timeout-ms", "120000"]  # only deadline tests hit 504


def scaled(seconds):
    return seconds * harness.TIME_SCALE


def _short(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def health(srv, timeout=None):
    """GET /health on a fresh connection; a failure is a named check."""
    timeout = timeout or scaled(5.0)
    try:
        return harness.health(srv.port, timeout=timeout)
    except OSError as e:
        raise CheckFailed("GET /health gave no answer within %.1f s: %r"
                          % (timeout, e))


def timed_health(srv, timeout=None):
    """(seconds taken, body) of one GET /health on a fresh connection."""
    started = time.monotonic()
    body = health(srv, timeout)
    return time.monotonic() - started, body


def wait_health(srv, pred, timeout, what):
    return cpu.wait_health(srv.port, pred, timeout, what)


def metric(srv, name, labels):
    """The value of one sample of /metrics, e.g. metric(srv,
    "conlab_pool_jobs_total", 'outcome="failed"'); None if absent."""
    status, _, body = harness.http_get(srv.port, "/metrics",
                                       timeout=scaled(5.0))
    check(status == 200, "GET /metrics answered %d" % status)
    wanted = "%s{%s} " % (name, labels)
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith(wanted):
            return float(line[len(wanted):].split()[0])
    return None


def raise_nofile(want):
    """Raises this process's soft RLIMIT_NOFILE to want (the case is
    skipped if the hard limit is lower). Returns the previous soft limit,
    for restore_nofile()."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        raise harness.Skipped("RLIMIT_NOFILE hard limit %d < %d" % (hard,
                                                                    want))
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return soft


def restore_nofile(soft):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    except (ValueError, OSError):
        pass  # descriptors above it still open: keep the raised limit


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


# --------------------------------------------------------------------------
# kill -9 of random workers during a wrk run

KILL_WORKERS = 3          # --workers of faults-kill
KILL_TARGET = "/run/prime?limit=200000&tasks=1&mode=processes"  # ~5-10 ms
WRK_SECONDS = 6
WRK_ARGS = ["-t2", "-c16", "-d%ds" % WRK_SECONDS]
KILL_EVERY_S = 0.5
KILL_QUIET_END_S = 1.0    # no kill in wrk's last second: every 502 is read
# pool.c counts a death within EARLY_DEATH_NS (1 s) of a worker's start as
# an early one and delays its respawn (50 ms, doubling). Only workers that
# have run at least this long (their /proc start time) are killed, so every
# replacement is immediate and the run is the same every time.
KILL_MIN_AGE_S = 1.2
MIN_KILLS = 5
MIN_OK = 100              # 200s the run must have served around the kills
AFTER_KILLS = cpu.Run("", "/run/prime?limit=100000&tasks=%d&mode=processes"
                      % KILL_WORKERS, "processes",
                      {"limit": 100000, "tasks": KILL_WORKERS}, cpu.P100K)
WRK_LINE = re.compile(r"^faults-wrk (\{.*\})$", re.M)


def process_age(pid):
    """Seconds since pid started (Linux /proc; 0 when unknown)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError):
        return 0.0
    # Field 22, starttime in clock ticks since boot; comm may hold spaces.
    fields = stat[stat.rfind(")") + 2:].split()
    return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")


def case_wrk_kill(srv, ctx):
    """wrk sends one-task prime jobs on 16 connections for 6 s; every
    0.5 s a random worker (from /health, a child of the server, older than
    KILL_MIN_AGE_S) gets SIGKILL. A kill fails at most the job its worker
    was running (none if it was between jobs)."""
    wrk = shutil.which("wrk")
    check(wrk is not None, "wrk is not installed (Debian package wrk)")
    before = cpu.wait_ready(srv, KILL_WORKERS)
    check(json_path(before, "pools.process.restarts.crash") == 0,
          "crash restarts before the run: %s"
          % json_path(before, "pools.process.restarts"))
    failed_before = metric(srv, "conlab_pool_jobs_total",
                           'outcome="failed"') or 0
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)

    url = "http://%s:%d%s" % (harness.LOOPBACK, srv.port, KILL_TARGET)
    argv = [wrk] + WRK_ARGS + ["--timeout", "%ds" % int(scaled(10.0)),
                               "-s", WRK_SCRIPT, url]
    outcome = {}

    def run_wrk():
        try:
            outcome["result"] = harness.run_command(
                argv, timeout=WRK_SECONDS + scaled(20.0))
        except Exception as e:  # reported by the main thread
            outcome["error"] = e

    runner = threading.Thread(target=run_wrk, daemon=True)
    kills, skipped_ticks = [], 0
    started = time.monotonic()
    runner.start()
    try:
        tick = started
        while True:
            tick += KILL_EVERY_S
            if tick > started + WRK_SECONDS - KILL_QUIET_END_S:
                break
            time.sleep(max(0.0, tick - time.monotonic()))
            body = health(srv)
            pids = [p for p in json_path(body, "pools.process.pids") or []
                    if p]
            children = set(harness.children_of(srv.pid))
            ripe = sorted(p for p in pids if p in children and p not in kills
                          and process_age(p) >= KILL_MIN_AGE_S)
            if not ripe:
                skipped_ticks += 1
                continue
            victim = rng.choice(ripe)
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                raise CheckFailed("worker %d from /health was already gone"
                                  % victim)
            kills.append(victim)
    finally:
        runner.join(WRK_SECONDS + scaled(30.0))
    check(not runner.is_alive(), "wrk still running")
    if "error" in outcome:
        raise CheckFailed("running wrk: %r" % outcome["error"])
    rc, out, err = outcome["result"]
    check(rc == 0, "wrk exited %s; stderr %r; stdout tail %r"
          % (rc, err[-300:], out[-300:]))
    match = WRK_LINE.search(out)
    check(match, "no faults-wrk line in wrk's output: %r" % out[-500:])
    stats = json.loads(match.group(1))
    statuses = {int(k): v for k, v in stats["statuses"].items()}
    n502, n200 = statuses.get(502, 0), statuses.get(200, 0)
    errors = stats["errors"]
    what = "seed %d, %d kills, statuses %s" % (seed, len(kills), statuses)

    check(len(kills) >= MIN_KILLS, "only %d kills (%d ticks without a "
          "worker older than %.1f s): %s" % (len(kills), skipped_ticks,
                                        KILL_MIN_AGE_S, what))
    check(set(statuses) <= {200, 502}, "statuses other than 200 and 502: "
          "%s; first unexpected: %r" % (what, stats["sample"]))
    check(stats["unexpected"] == 0, "%d answers were not 200 nor the JSON "
          "502 naming a dead worker, e.g. %r (%s)"
          % (stats["unexpected"], stats["sample"], what))
    for kind in ("connect", "read", "write", "timeout"):
        check(errors[kind] == 0, "wrk counted %d %s errors: %s (%s)"
              % (errors[kind], kind, errors, what))
    check(n502 <= len(kills), "%d x 502 for %d kills: a kill failed more "
          "than the one job its worker ran (%s)" % (n502, len(kills), what))
    check(n200 >= MIN_OK, "only %d x 200 around the kills (%s)"
          % (n200, what))

    # The pool back to full strength: every kill one crash restart.
    wrk_done = time.monotonic()
    body = wait_health(
        srv, cpu.pool_is(alive=KILL_WORKERS, busy=0, queued=0,
                         restarts_crash=len(kills)),
        scaled(5.0), "alive == %d, busy == 0, restarts.crash == %d"
        % (KILL_WORKERS, len(kills)))
    whole_after = time.monotonic() - wrk_done
    expect_value("restarts.timeout",
                 json_path(body, "pools.process.restarts.timeout"), 0)
    pids = json_path(body, "pools.process.pids")
    children = harness.children_of(srv.pid)
    check(len(set(pids)) == KILL_WORKERS and all(p in children for p in pids),
          "pids %s are not %d children %s of the server"
          % (pids, KILL_WORKERS, children))
    left = [p for p in kills if os.path.exists("/proc/%d" % p)]
    check(not left, "killed workers still exist (alive or zombie): %s" % left)
    failed = (metric(srv, "conlab_pool_jobs_total", 'outcome="failed"') or 0)
    failed -= failed_before
    check(failed == n502, "the pool counted %d failed jobs, wrk %d x 502 (%s)"
          % (failed, n502, what))

    resp, after = cpu.get_json(srv.port, AFTER_KILLS.target)
    check(resp.status == 200, "a request after the run: %d %s"
          % (resp.status, _short(after)))
    cpu.check_run(AFTER_KILLS, after, pids)
    return "%s; %d requests; pool whole %.2f s after wrk" % (
        what, stats["requests"], whole_after)


# --------------------------------------------------------------------------
# Slow clients (--conn-timeout 2)

CONN_TIMEOUT_S = 2
TRICKLERS = 20
TRICKLE_EVERY_S = 0.5
TRICKLE_FOR_S = 3 * CONN_TIMEOUT_S
HEALTH_EVERY_S = 0.1
HEALTH_STALL_S = 1.0
HEALTH_FAST_S = 0.1       # /health latency bound (x TIME_SCALE)
CUT_EARLY_S = 0.25        # how much before conn-timeout a cut may come
CUT_LATE_S = 1.5          # and how much after (x TIME_SCALE)
TRICKLE_HEAD = (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"X-Trickle: ")


class Trickler:
    """One connection that has sent the request line and Host, then one
    byte of a never-ending header value per tick."""

    def __init__(self, port):
        self.sock = socket.create_connection((harness.LOOPBACK, port),
                                             timeout=harness.SOCKET_TIMEOUT_S)
        self.sock.sendall(TRICKLE_HEAD)
        self.last_byte = time.monotonic()
        self.sent = 0
        self.cut_at = None   # when the server closed it (or answered)
        self.answer = b""    # what it sent before closing, if anything

    def trickle(self):
        try:
            self.sock.send(b"a")
        except OSError:
            self.see_cut()
            return
        self.sent += 1
        self.last_byte = time.monotonic()

    def see_cut(self):
        """Reads what is there without blocking; marks the cut."""
        if self.cut_at is not None:
            return
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(4096)
                if not data:
                    break
                self.answer += data
        except (BlockingIOError, InterruptedError):
            if not self.answer:
                return  # nothing after all
        except OSError:
            pass  # reset: cut
        finally:
            self.sock.setblocking(True)
        self.cut_at = time.monotonic()


def watch_tricklers(tricklers, until, trickling, srv, latencies):
    """Until the monotonic time until: ticks the tricklers (if trickling),
    notices cuts, and times GET /health every HEALTH_EVERY_S."""
    next_tick = time.monotonic() + TRICKLE_EVERY_S
    next_health = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= until:
            return
        if now >= next_health:
            took, _ = timed_health(srv)
            latencies.append(took)
            next_health = time.monotonic() + HEALTH_EVERY_S
        if trickling and time.monotonic() >= next_tick:
            for t in tricklers:
                if t.cut_at is None:
                    t.trickle()
            next_tick += TRICKLE_EVERY_S
        open_ = [t for t in tricklers if t.cut_at is None]
        if not open_ and not trickling:
            return
        if not open_:
            wait = min(next_health, until) - time.monotonic()
            time.sleep(max(0.0, wait))
            continue
        wake = min(next_health, until, next_tick if trickling else until)
        ready, _, _ = select.select([t.sock for t in open_], [], [],
                                    max(0.0, wake - time.monotonic()))
        for t in open_:
            if t.sock in ready:
                t.see_cut()


def check_fast(latencies, what):
    """/health was not held up: its median under HEALTH_FAST_S, and no
    single request over HEALTH_STALL_S (a blocked request thread holds it
    for seconds; a busy shared machine adds some tens of ms to one)."""
    limit = HEALTH_FAST_S * harness.TIME_SCALE
    check(latencies, "no /health measured %s" % what)
    worst = max(latencies)
    median = sorted(latencies)[len(latencies) // 2]
    check(median < limit and worst < HEALTH_STALL_S * harness.TIME_SCALE,
          "/health took %.0f ms at worst %s, median %.1f ms (limits: median "
          "%.0f ms, each %.0f ms)" % (worst * 1000, what, median * 1000,
                                      limit * 1000, HEALTH_STALL_S * 1000))
    return worst


def case_trickle(srv, ctx):
    """20 clients send one header byte every 0.5 s for 6 s (3 x
    --conn-timeout); /health stays fast throughout. How many the idle
    timeout cut is reported, not asserted (each byte resets it)."""
    tricklers = []
    ctx["tricklers"] = tricklers
    add_cleanup_once(ctx, "tricklers",
                     lambda: close_all(t.sock for t in tricklers))
    for _ in range(TRICKLERS):
        tricklers.append(Trickler(srv.port))
    wait_health(
        srv, lambda b: json_path(b, "pools.http.connections") >= TRICKLERS,
        scaled(5.0), "%d connections counted" % TRICKLERS)
    latencies = []
    started = time.monotonic()
    watch_tricklers(tricklers, started + TRICKLE_FOR_S, True, srv,
                    latencies)
    worst = check_fast(latencies, "while %d clients trickled headers"
                       % TRICKLERS)
    cut = [t for t in tricklers if t.cut_at is not None]
    for t in cut:
        check(not t.answer.startswith(b"HTTP/1.1 200"),
              "a trickler's unfinished request was answered: %r"
              % t.answer[:60])
    return ("%d of %d still connected after %.0f s of one byte per %.1f s "
            "with --conn-timeout %d (an idle timeout); /health max %.1f ms "
            "over %d requests" % (TRICKLERS - len(cut), TRICKLERS,
                                  TRICKLE_FOR_S, TRICKLE_EVERY_S,
                                  CONN_TIMEOUT_S, worst * 1000,
                                  len(latencies)))


def case_trickle_stop(srv, ctx):
    """The tricklers stop mid-headers: each is cut conn-timeout after its
    last byte (not before, not much later); /health stays fast; the
    connection count returns to 1."""
    tricklers = ctx.get("tricklers")
    check(tricklers, "the trickle case did not run")
    try:
        waiting = [t for t in tricklers if t.cut_at is None]
        check(waiting, "no trickler left open to stop")
        latencies = []
        last = max(t.last_byte for t in waiting)
        until = last + CONN_TIMEOUT_S + CUT_LATE_S * harness.TIME_SCALE
        watch_tricklers(tricklers, until, False, srv, latencies)
        open_ = [t for t in waiting if t.cut_at is None]
        check(not open_, "%d of %d stalled clients still connected %.1f s "
              "after their last byte (--conn-timeout %d)"
              % (len(open_), len(waiting), until - last, CONN_TIMEOUT_S))
        idle = [t.cut_at - t.last_byte for t in waiting]
        check(min(idle) >= CONN_TIMEOUT_S - CUT_EARLY_S,
              "a stalled client was cut %.2f s after its last byte, before "
              "--conn-timeout %d" % (min(idle), CONN_TIMEOUT_S))
        for t in waiting:
            check(not t.answer.startswith(b"HTTP/1.1 200"),
                  "a stalled request was answered: %r" % t.answer[:60])
        worst = check_fast(latencies, "while stalled clients waited")
        wait_health(srv, lambda b: json_path(b, "pools.http.connections")
                    == 1, scaled(5.0), "connections back to 1")
        return "%d cut %.2f-%.2f s after their last byte; /health max " \
               "%.1f ms" % (len(waiting), min(idle), max(idle), worst * 1000)
    finally:
        close_all(t.sock for t in tricklers)


# --------------------------------------------------------------------------
# The request head deadline (--head-timeout-ms 1500, --conn-timeout 4)

HEAD_TIMEOUT_S = 1.5
HEAD_CONN_TIMEOUT_S = 4
HEAD_TRICKLERS = 5
HEAD_BYTE_EVERY_S = 1.0
HEAD_CUT_EARLY_S = 0.05  # the deadline is never early (clock ticks aside)
HEAD_CUT_LATE_S = 0.6    # sweep tick (0.1 s) + first-byte detection (x scale)
HEAD_GET = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def trickle_until_cut(tricklers, until):
    """Sends one more header byte to each open trickler every
    HEAD_BYTE_EVERY_S and notices cuts, until all are cut or the monotonic
    time until."""
    next_tick = time.monotonic() + HEAD_BYTE_EVERY_S
    while True:
        open_ = [t for t in tricklers if t.cut_at is None]
        now = time.monotonic()
        if not open_ or now >= until:
            return
        if now >= next_tick:
            for t in open_:
                t.trickle()
            next_tick += HEAD_BYTE_EVERY_S
            continue
        ready, _, _ = select.select([t.sock for t in open_], [], [],
                                    max(0.0, min(next_tick, until) - now))
        for t in open_:
            if t.sock in ready:
                t.see_cut()


def check_cut_at_deadline(tricklers, started, what):
    """Each trickler was cut HEAD_TIMEOUT_S after started[i] (its head's
    first byte), neither early nor much late, without a 200."""
    late = HEAD_CUT_LATE_S * harness.TIME_SCALE
    open_ = [t for t in tricklers if t.cut_at is None]
    check(not open_, "%d of %d %s still connected %.1f s after their "
          "head's first byte (--head-timeout-ms %d)"
          % (len(open_), len(tricklers), what, HEAD_TIMEOUT_S + late,
             HEAD_TIMEOUT_S * 1000))
    after = [t.cut_at - s for t, s in zip(tricklers, started)]
    check(min(after) >= HEAD_TIMEOUT_S - HEAD_CUT_EARLY_S,
          "%s cut %.2f s after the head's first byte, before the %.1f s "
          "deadline" % (what, min(after), HEAD_TIMEOUT_S))
    check(max(after) <= HEAD_TIMEOUT_S + late,
          "%s cut %.2f s after the head's first byte (deadline %.1f s, "
          "allowed %.1f s late)" % (what, max(after), HEAD_TIMEOUT_S, late))
    for t in tricklers:
        check(t.sent >= 1, "a trickler sent no byte after its first ones")
        check(not t.answer.startswith(b"HTTP/1.1 200"),
              "an unfinished head was answered: %r" % t.answer[:60])
    return min(after), max(after)


def case_head_trickle(srv, ctx):
    """Clients that send a request line and Host, then one header byte a
    second, are cut --head-timeout-ms after their first byte (the idle
    timeout, 4 s, would never cut them); the cut is logged."""
    tricklers = []
    try:
        started = []
        for _ in range(HEAD_TRICKLERS):
            started.append(time.monotonic())
            tricklers.append(Trickler(srv.port))
        until = max(started) + HEAD_TIMEOUT_S + \
            HEAD_CUT_LATE_S * harness.TIME_SCALE
        trickle_until_cut(tricklers, until)
        lo, hi = check_cut_at_deadline(tricklers, started, "tricklers")
        check(srv.wait_log(r"request head not whole \d+ ms after its first "
                           r"byte \(--head-timeout-ms 1500\)", scaled(2.0)),
              "no log line for a cut: %s" % srv.log_tail())
        return "%d cut %.2f-%.2f s after their first byte, %d byte(s) " \
               "trickled each" % (len(tricklers), lo, hi,
                                  min(t.sent for t in tricklers))
    finally:
        close_all(t.sock for t in tricklers)


def send_slowly(sock, data, pieces, over_s):
    """Sends data in pieces spread evenly over over_s seconds."""
    step = max(1, -(-len(data) // pieces))
    chunks = [data[i:i + step] for i in range(0, len(data), step)]
    for i, chunk in enumerate(chunks):
        if i:
            time.sleep(over_s / max(1, len(chunks) - 1))
        sock.sendall(chunk)


def case_head_slow_within(srv, ctx):
    """Two requests on one keep-alive connection, each head sent in 8
    pieces over 1.0 s (inside the 1.5 s deadline, 2 s together): both 200.
    The deadline is per head, not per connection."""
    sock = socket.create_connection((harness.LOOPBACK, srv.port),
                                    timeout=harness.SOCKET_TIMEOUT_S)
    try:
        began = time.monotonic()
        for i in range(2):
            send_slowly(sock, HEAD_GET, 8, 1.0)
            resp = harness.read_response(sock)
            check(resp.status == 200, "slow head %d: %r %s" % (
                i + 1, resp.status, resp.error or _short(resp.raw)))
            check(not resp.closed, "slow head %d: connection closed" % (i + 1))
        return "2 heads of 1.0 s each answered 200 on one connection " \
               "(%.2f s)" % (time.monotonic() - began)
    finally:
        sock.close()


def case_head_idle_keepalive(srv, ctx):
    """A keep-alive connection idle 2.5 s between requests (longer than the
    head deadline) is still served; left idle, it is closed by
    --conn-timeout (4 s), not by the head deadline."""
    sock = socket.create_connection((harness.LOOPBACK, srv.port),
                                    timeout=harness.SOCKET_TIMEOUT_S)
    try:
        sock.sendall(HEAD_GET)
        resp = harness.read_response(sock)
        check(resp.status == 200, "first request: %r %s"
              % (resp.status, resp.error))
        time.sleep(HEAD_TIMEOUT_S + 1.0)
        sock.sendall(HEAD_GET)
        resp = harness.read_response(sock)
        check(resp.status == 200 and not resp.closed,
              "after %.1f s idle: %r %s (closed %s)" % (
                  HEAD_TIMEOUT_S + 1.0, resp.status, resp.error, resp.closed))
        answered = time.monotonic()
        late = CUT_LATE_S * harness.TIME_SCALE
        sock.settimeout(HEAD_CONN_TIMEOUT_S + late)
        try:
            data = sock.recv(4096)
        except socket.timeout:
            raise CheckFailed("idle connection still open %.1f s after its "
                              "last answer (--conn-timeout %d)"
                              % (HEAD_CONN_TIMEOUT_S + late,
                                 HEAD_CONN_TIMEOUT_S))
        except ConnectionResetError:
            data = b""
        closed_after = time.monotonic() - answered
        check(data == b"", "idle connection got data: %r" % data[:60])
        check(closed_after >= HEAD_CONN_TIMEOUT_S - CUT_EARLY_S,
              "idle connection closed %.2f s after its last answer, before "
              "--conn-timeout %d" % (closed_after, HEAD_CONN_TIMEOUT_S))
        return "served after %.1f s idle; closed %.2f s after its last " \
               "answer" % (HEAD_TIMEOUT_S + 1.0, closed_after)
    finally:
        sock.close()


class KeptTrickler(Trickler):
    """A Trickler whose connection first served a request and then sat
    idle for idle_s: its head's deadline starts with its first byte, not
    at the end of the previous request."""

    def __init__(self, port, idle_s):
        self.sock = socket.create_connection((harness.LOOPBACK, port),
                                             timeout=harness.SOCKET_TIMEOUT_S)
        self.sock.sendall(HEAD_GET)
        resp = harness.read_response(self.sock)
        check(resp.status == 200, "request before trickling: %r %s"
              % (resp.status, resp.error))
        time.sleep(idle_s)
        self.sock.sendall(TRICKLE_HEAD)
        self.last_byte = time.monotonic()
        self.sent = 0
        self.cut_at = None
        self.answer = b""


def case_head_trickle_keepalive(srv, ctx):
    """After one request and 2 s idle, a client trickles its second head:
    cut 1.5 s after that head's first byte."""
    t = None
    try:
        t = KeptTrickler(srv.port, HEAD_TIMEOUT_S + 0.5)
        started = [t.last_byte]
        trickle_until_cut([t], started[0] + HEAD_TIMEOUT_S +
                          HEAD_CUT_LATE_S * harness.TIME_SCALE)
        lo, _ = check_cut_at_deadline([t], started, "a keep-alive trickler")
        return "cut %.2f s after its second head's first byte (%.1f s " \
               "after the first answer)" % (lo, lo + HEAD_TIMEOUT_S + 0.5)
    finally:
        if t:
            t.sock.close()


def add_cleanup_once(ctx, key, fn):
    flag = "cleanup:" + key
    if not ctx.get(flag):
        ctx[flag] = True
        harness.add_cleanup(fn)


# What a never-finished head may cost: libmicrohttpd refuses it when it
# fills the connection's 16 KiB buffer (http.h HTTP_CONN_MEMORY), at once,
# whether the head is one long line or many short ones (each header also
# takes a record from that buffer).
ENDLESS_HEADS = [
    # (name, bytes sent with no end of head)
    ("one header line of 70 KiB", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1"
     b"\r\nX-Endless: " + b"a" * (70 * 1024)),
    ("3,000 short header lines", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1"
     b"\r\n" + b"".join(b"X-H-%04d: v\r\n" % i for i in range(3000))),
    ("a request line of 70 KiB", b"GET /" + b"a" * (70 * 1024)),
]


def endless_case(data):
    def run(srv, ctx):
        sock = socket.create_connection((harness.LOOPBACK, srv.port),
                                        timeout=harness.SOCKET_TIMEOUT_S)
        try:
            started = time.monotonic()
            try:
                sock.sendall(data)
            except OSError:
                pass  # refused mid-way: the answer is read below
            limit = scaled(2.0)
            resp = harness.read_response(sock, timeout=limit)
            took = time.monotonic() - started
        finally:
            sock.close()
        check(resp.status is not None or resp.closed,
              "no answer and still open %.1f s after %d bytes of an "
              "unfinished head (%s)" % (took, len(data), resp.error))
        check(took < limit, "cut only after %.1f s" % took)
        check(resp.status in (None, 414, 431), "status %s, expected "
              "libmicrohttpd's 414/431 or a close; %r"
              % (resp.status, resp.raw[:120]))
        took_h, _ = timed_health(srv)
        return "%s after %.0f ms; /health %.1f ms" % (
            resp.status or "closed", took * 1000, took_h * 1000)
    return run


# --------------------------------------------------------------------------
# 2,000 idle connections (default --max-connections and --max-per-ip)

IDLE_CONNECTIONS = 2000


def case_idle_2000(srv, ctx):
    soft = raise_nofile(IDLE_CONNECTIONS + 256)
    socks = []
    try:
        rss_before = harness.rss_kib(srv.pid) or None
        for _ in range(IDLE_CONNECTIONS):
            socks.append(socket.create_connection(
                (harness.LOOPBACK, srv.port),
                timeout=harness.SOCKET_TIMEOUT_S))
        wait_health(srv, lambda b: json_path(b, "pools.http.connections")
                    >= IDLE_CONNECTIONS, scaled(10.0),
                    "%d connections counted" % IDLE_CONNECTIONS)
        latencies, body = [], None
        for _ in range(10):
            took, body = timed_health(srv)
            latencies.append(took)
        worst = check_fast(latencies, "with %d idle connections open"
                           % IDLE_CONNECTIONS)
        seen = json_path(body, "pools.http.connections")
        check(seen >= IDLE_CONNECTIONS, "/health counts %s connections"
              % seen)
        rss_with = harness.rss_kib(srv.pid) or None
        # The last one opened still works as a connection.
        last = socks[-1]
        last.sendall(build_request("GET", "/health"))
        resp = harness.read_response(last, timeout=scaled(5.0))
        check(resp.status == 200, "GET /health on an idle connection: %s %s"
              % (resp.status, resp.error))
    finally:
        close_all(socks)
        restore_nofile(soft)
    closed_at = time.monotonic()
    wait_health(srv, lambda b: json_path(b, "pools.http.connections") == 1,
                scaled(10.0), "connections back to 1")
    drained = time.monotonic() - closed_at
    grown = "?"
    if rss_before and rss_with:
        grown = "%.1f MiB" % ((rss_with - rss_before) / 1024.0)
    return "/health max %.1f ms with %d open (RSS +%s); back to 1 in " \
           "%.2f s" % (worst * 1000, seen, grown, drained)


# --------------------------------------------------------------------------
# Oversized requests. Already in run.py: 414 at 4200 bytes (target and
# query), 404 at 4096, 431 at 9000 bytes (one header, 20 x 500), 200 at
# 7500, 413 at 70000 (length, whole, chunked). Here: the exact edges, the
# query-pair cap, huge values under the target cap, and heads beyond
# libmicrohttpd's 16 KiB connection buffer.

# build_request adds "Host: 127.0.0.1" and "Connection: close": with the
# server's count (name + value + 4 per field) that is 17 + 19 bytes.
BASE_HEADER_BYTES = 36
HEADERS_MAX = 8192        # http.h HTTP_HEADERS_MAX
URI_MAX = 4096            # http.h HTTP_URI_MAX
PAIRS_MAX = 128           # params.h PARAMS_MAX
MESSAGE_MAX = 1024        # an error body quoting a huge value stays small


def pad_header(total):
    """One X-Pad header bringing the counted header bytes to total."""
    return [("X-Pad", "p" * (total - BASE_HEADER_BYTES - len("X-Pad") - 4))]


def pairs(n, fmt="a%d=1"):
    return "&".join(fmt % i for i in range(n))


class Big:
    """A request and what must answer it: status, and either words of the
    service's JSON error message (service=True) or, for what
    libmicrohttpd refuses itself, only the status (or a close)."""

    def __init__(self, name, target, headers=(), status=400, words=(),
                 service=True):
        self.name, self.target, self.headers = name, target, list(headers)
        self.status, self.words, self.service = status, words, service


OVERSIZED = [
    Big("a 4097-byte target (one over the cap) is 414",
        "/" + "a" * (URI_MAX), status=414, words=["at most 4096"]),
    Big("a 4097-byte query target is 414",
        "/health?" + "a" * (URI_MAX - len("/health?") + 1), status=414,
        words=["at most 4096"]),
    Big("a 4096-byte target with 8192 bytes of header fields (both "
        "caps at once) is 404", "/" + "a" * (URI_MAX - 1),
        pad_header(HEADERS_MAX), status=404),
    Big("a 70 KiB target (beyond the 16 KiB buffer): libmicrohttpd's 414",
        "/" + "a" * (70 * 1024), status=414, service=False),
    Big("header fields of exactly 8192 bytes are 200", "/health",
        pad_header(HEADERS_MAX), status=200),
    Big("header fields of 8193 bytes are 431", "/health",
        pad_header(HEADERS_MAX + 1), status=431, words=["at most 8192"]),
    Big("a 70 KiB header (beyond the 16 KiB buffer): libmicrohttpd's 431",
        "/health", [("X-Big", "b" * (70 * 1024))], status=431,
        service=False),
    Big("150 small headers are 200", "/health",
        [("X-H-%03d" % i, "v") for i in range(150)], status=200),
    Big("500 small headers (6.5 KB, under the 8 KiB cap): "
        "libmicrohttpd's 431", "/health",
        [("X-H-%04d" % i, "v") for i in range(500)], status=431,
        service=False),
    Big("129 query pairs is 400 naming the cap of 128",
        "/run/prime?" + pairs(PAIRS_MAX + 1), words=["too many parameters",
                                                      "128"]),
    Big("129 pairs of a known parameter is 400 naming the cap",
        "/run/sleep?" + pairs(PAIRS_MAX + 1, "ms=%d"),
        words=["too many parameters", "128"]),
    Big("128 unknown pairs is 400 naming the first",
        "/run/prime?" + pairs(PAIRS_MAX), words=["unknown parameter 'a0'"]),
    Big("a 4000-digit limit is 400 naming 'limit', message bounded",
        "/run/prime?limit=" + "9" * 4000, words=["'limit'", "[2, 50000000]"]),
    Big("a 4000-byte unknown parameter value is 400 naming it",
        "/health?x=" + "v" * 4000, words=["unknown parameter 'x'"]),
    Big("a 4000-byte number item is 400 naming 'numbers'",
        "/run/square?numbers=1," + "7" * 4000, words=["'numbers'"]),
    Big("a 3900-byte percent-encoded mode is 400 naming 'mode'",
        "/run/sleep?mode=" + "%41" * 1300, words=["'mode'"]),
    Big("a 4000-byte parameter name is 400", "/run/prime?" + "k" * 4000
        + "=1", words=["unknown parameter"]),
    Big("a 4000-byte url to fetch is 400 naming 'url'",
        "/run/fetch?url=http://127.0.0.1/" + "u" * 4000, words=["'url'"]),
]


def oversized_case(case):
    def run(srv, ctx):
        resp = raw_exchange(srv.port, build_request("GET", case.target,
                                                    case.headers),
                            timeout=scaled(10.0))
        if resp.status is None:
            check(not case.service, "no answer: %s" % resp.error)
            check(resp.closed, "no answer and not closed: %s" % resp.error)
        else:
            check(resp.status == case.status, "status %d, expected %d; %r"
                  % (resp.status, case.status, resp.body[:160]))
            if case.service and resp.status != 200:
                err = expect_error_shape(resp)
                for word in case.words:
                    expect_value("error.message", err["message"],
                                 Contains(word))
                check(len(resp.body) <= MESSAGE_MAX, "error body of %d bytes"
                      % len(resp.body))
            elif case.service:
                expect_value("Content-Type", resp.header("Content-Type"),
                             JSON)
        took, _ = timed_health(srv)
        check(took < scaled(1.0), "/health took %.0f ms afterwards"
              % (took * 1000))
        size = len(build_request("GET", case.target, case.headers))
        return "%s; %d-byte request" % (resp.status or "closed", size)
    return run


# Where the 16 KiB buffer runs out with short headers ("X-H-NNNN: v",
# about 60 bytes of buffer each): below the edge 200, above it
# libmicrohttpd's 431. Measured on 0.9.75 with a 64 KiB buffer: 200 up to
# 845 headers, no answer at all (the connection closed, libmicrohttpd logs
# "failed to create response header") for 846 to 848 or 849, 431 from
# there on: the request fits, the response head no longer does; with
# 32 KiB the edge was between 420 and 425, with 16 KiB 200 up to 207
# headers, closed for 208 to 210, 431 from 211. Either is accepted here;
# what must hold is an answer or a close, never a hang, and a healthy
# server afterwards. The note counts the closes.
EDGE_COUNTS = range(180, 241)


def case_header_edge(srv, ctx):
    outcomes = {}
    for n in EDGE_COUNTS:
        headers = [("X-H-%04d" % i, "v") for i in range(n)]
        resp = raw_exchange(srv.port, build_request("GET", "/health",
                                                    headers),
                            timeout=scaled(5.0))
        if resp.status is None:
            check(resp.closed, "%d headers: no answer and not closed (%s)"
                  % (n, resp.error))
            outcomes[n] = "closed"
        else:
            check(resp.status in (200, 431), "%d headers: status %d"
                  % (n, resp.status))
            outcomes[n] = resp.status
    kinds = [outcomes[n] for n in EDGE_COUNTS]
    check(kinds[0] == 200 and kinds[-1] == 431, "%d headers: %s, %d "
          "headers: %s (the edge moved out of %d..%d)"
          % (EDGE_COUNTS[0], kinds[0], EDGE_COUNTS[-1], kinds[-1],
             EDGE_COUNTS[0], EDGE_COUNTS[-1]))
    body = health(srv)
    expect_value("status", body.get("status"), "ok")

    def span(kind):
        ns = [n for n in EDGE_COUNTS if outcomes[n] == kind]
        return "%d-%d" % (ns[0], ns[-1]) if ns else "none"
    return "200 for %s headers, closed without an answer for %s, 431 for %s" \
        % (span(200), span("closed"), span(431))


# --------------------------------------------------------------------------
# SIGTERM in the middle of a mixed load (--grace-ms 3000)

TERM_GRACE_MS = 3000
TERM_WORKERS = 2
TERM_LOAD_S = 1.5         # load before the signal
# A request sent this long before the signal has been read by the server
# before it drains, and one sent this long after it is read while it
# drains (x TIME_SCALE); closer to the signal, either may happen (the
# main thread takes a moment to see the signal and start draining).
TERM_MARGIN_S = 0.05
TERM_MIN_IN_FLIGHT = 3
TERM_STAGGER_S = 0.5      # the clients of one target start spread over this
MIXED = [
    # (target, clients, check of a 200 body). The slow ones last long
    # enough that several are in flight, well clear of the margin, at the
    # signal (each client sends one request after another).
    ("/health", 1, lambda b: b.get("status") == "ok"),
    ("/run/prime?limit=100000&tasks=2&mode=processes", 2,
     lambda b: json_path(b, "result.primes") == 9592),
    ("/run/sleep?tasks=5&ms=500&mode=async", 4,
     lambda b: json_path(b, "result.slept_ms") == 500 and
     len(b.get("tasks", [])) == 5),
    ("/delay?ms=400", 4, lambda b: b.get("delay_ms") == 400),
    ("/run/fetch?count=3&ms=300", 3,
     lambda b: json_path(b, "result.ok") == 3 and
     json_path(b, "result.failed") == 0),
]


class Attempt:
    def __init__(self, target):
        self.target = target
        self.send_from = None    # monotonic, before the request was sent
        self.sent_at = None      # and after it was
        self.done_at = None
        self.resp = None
        self.exc = None          # connect or send failure


def mixed_client(port, target, offset, signalled, stop, attempts, lock,
                 deadline):
    """After offset seconds, requests target, one connection each, until
    stop; the first one sent after the signal is its last."""
    stop.wait(offset)
    while not stop.is_set() and time.monotonic() < deadline:
        a = Attempt(target)
        with lock:
            attempts.append(a)
        try:
            sock = socket.create_connection((harness.LOOPBACK, port),
                                            timeout=scaled(10.0))
        except OSError as e:
            a.exc = e
            a.send_from = a.sent_at = a.done_at = time.monotonic()
            return
        try:
            a.send_from = time.monotonic()
            try:
                sock.sendall(build_request("GET", target))
            except OSError as e:
                a.exc = e
                return
            finally:
                a.sent_at = a.done_at = time.monotonic()
            a.resp = harness.read_response(sock, timeout=scaled(10.0))
            a.done_at = time.monotonic()
        finally:
            sock.close()
        if signalled.is_set() and signalled.at <= a.send_from:
            return


def case_term_mixed(srv, ctx):
    cpu.wait_ready(srv, TERM_WORKERS)
    signalled = threading.Event()
    signalled.at = float("inf")
    stop = threading.Event()
    lock = threading.Lock()
    attempts = []
    deadline = time.monotonic() + TERM_LOAD_S + scaled(20.0)
    threads = []
    for target, n, _ in MIXED:
        for k in range(n):
            # Staggered, so that at the signal the slow requests have
            # anything from nothing to most of their time left.
            threads.append(threading.Thread(
                target=mixed_client, daemon=True,
                args=(srv.port, target, TERM_STAGGER_S * k / n, signalled,
                      stop, attempts, lock, deadline)))
    for t in threads:
        t.start()
    try:
        time.sleep(TERM_LOAD_S)
        body = health(srv)
        pids = [p for p in json_path(body, "pools.process.pids") if p]
        children = harness.children_of(srv.pid)
        check(set(pids) <= set(children), "worker pids %s are not children "
              "%s of the server" % (pids, children))
        signalled.at = time.monotonic()
        os.kill(srv.pid, signal.SIGTERM)
        signalled.set()
        limit = TERM_GRACE_MS / 1000.0 + scaled(2.0)
        note = stop_and_check(srv, signal.SIGTERM, limit, children,
                              ("received SIGTERM", "stopped"),
                              signalled_at=signalled.at)
    finally:
        stop.set()
        for t in threads:
            t.join(scaled(15.0))
    check(not any(t.is_alive() for t in threads), "client threads still "
          "running")
    check("grace period over" not in srv.log(), "the grace period ran out "
          "with requests in flight; tail: %s" % srv.log_tail(4))
    left = [p for p in pids if os.path.exists("/proc/%d" % p)]
    check(not left, "workers still exist after the exit (alive or zombie): "
          "%s" % left)

    oks = {target: ok for target, _, ok in MIXED}
    sig = signalled.at
    margin = TERM_MARGIN_S * harness.TIME_SCALE
    counts = {"before": 0, "in_flight": 0, "edge": 0, "edge_partial": 0,
              "after_503": 0, "after_refused": 0}
    in_flight_kinds = set()
    for a in attempts:
        check(a.sent_at is not None, "%s: never sent" % a.target)
        what = "%s (sent %+.3f s from the signal)" % (a.target,
                                                      a.sent_at - sig)
        if a.sent_at < sig - margin:
            # Sent before the signal: a 200, whether it was answered
            # before the signal or was in flight at it.
            check(a.exc is None and a.resp is not None and
                  a.resp.status == 200, "%s: %s, expected 200"
                  % (what, describe(a)))
            body = a.resp.json()
            check(oks[a.target](body), "%s: body %s" % (what, _short(body)))
            if a.done_at > sig:
                counts["in_flight"] += 1
                in_flight_kinds.add(a.target.split("?")[0])
            else:
                counts["before"] += 1
        elif a.send_from <= sig + margin:
            counts["edge"] += 1  # 200, 503 or closed: all fair
            check(a.exc is not None or a.resp.status in (None, 200, 503),
                  "%s: %s" % (what, describe(a)))
            if a.exc is None and a.resp.status == 200 and \
                    not oks[a.target](a.resp.json()):
                # A fetch whose own requests to /delay reached the server
                # after it began draining: those got 503, the fetch 200.
                counts["edge_partial"] += 1
        else:
            if a.exc is not None or a.resp is None or a.resp.status is None:
                counts["after_refused"] += 1
                continue
            check(a.resp.status == 503, "%s: %s, expected 503 or no "
                  "connection" % (what, describe(a)))
            expect_error_shape(a.resp)
            expect_value("Retry-After", a.resp.header("Retry-After"),
                         harness.Regex(r"^\d+$"))
            counts["after_503"] += 1
    check(counts["in_flight"] >= TERM_MIN_IN_FLIGHT, "only %d requests "
          "were in flight at the signal: the case proves little (%s)"
          % (counts["in_flight"], counts))
    check(in_flight_kinds & {"/run/sleep", "/delay", "/run/fetch"},
          "no slow request in flight at the signal: %s" % in_flight_kinds)
    return "%s; %d in flight at the signal (%s) all 200; %d before; " \
           "after it %d x 503, %d refused/closed; %d at the edge (%d " \
           "partial)" % (note, counts["in_flight"],
                         ", ".join(sorted(in_flight_kinds)),
                         counts["before"], counts["after_503"],
                         counts["after_refused"], counts["edge"],
                         counts["edge_partial"])


def describe(a):
    if a.exc is not None:
        return "error %r" % a.exc
    if a.resp is None:
        return "no response"
    if a.resp.status is None:
        return "no response (%s%s)" % (a.resp.error or "",
                                      ", closed" if a.resp.closed else "")
    return "%d %r" % (a.resp.status, a.resp.body[:160])


# --------------------------------------------------------------------------
# 50 clients leave mid-job and mid-fetch

GONE_WORKERS = 2
GONE_CLIENTS = 50
GONE_AFTER_S = 0.05
GONE_FETCH = "/run/fetch?count=4&ms=1000"
GONE_MAX_RAN = 10          # tasks that may start before the clients leave
LOOP_CONN_CACHE = 64       # loop.c: CURLMOPT_MAXCONNECTS
TCP_HELD = {"01": "ESTABLISHED", "08": "CLOSE_WAIT"}


def server_held(port, peer_ports):
    """Server-side TCP sockets (local port `port`) still open towards
    one of peer_ports on 127.0.0.1: [(peer port, state)]."""
    held = []
    try:
        with open("/proc/net/tcp") as f:
            lines = f.readlines()[1:]
    except OSError:
        return held
    for line in lines:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if int(local.split(":")[1], 16) != port:
            continue
        peer = int(remote.split(":")[1], 16)
        if peer in peer_ports and state in TCP_HELD:
            held.append((peer, TCP_HELD[state]))
    return held


def gone_prime():
    # About 0.8 s of both workers (plain build), shrunk for sanitizers.
    return cpu.long_job(10000000, 2) + "&mode=processes"


def case_gone_50(srv, ctx):
    before = cpu.wait_ready(srv, GONE_WORKERS)
    fetched_before = json_path(before, "pools.loop.transfers_done")
    ok_before = metric(srv, "conlab_pool_jobs_total", 'outcome="ok"') or 0
    socks, ports = [], set()
    try:
        for i in range(GONE_CLIENTS):
            target = gone_prime() if i % 2 == 0 else GONE_FETCH
            s = socket.create_connection((harness.LOOPBACK, srv.port),
                                         timeout=harness.SOCKET_TIMEOUT_S)
            socks.append(s)
            ports.add(s.getsockname()[1])
            s.sendall(build_request("GET", target))
        time.sleep(GONE_AFTER_S)
    finally:
        close_all(socks)
    left_at = time.monotonic()
    took, body = timed_health(srv)
    check(took < scaled(1.0), "/health took %.0f ms after 50 clients left"
          % (took * 1000))
    busy = json_path(body, "pools.process.busy")
    transfers = json_path(body, "pools.loop.transfers")
    check(busy > 0 or transfers > 0, "nothing running when the clients "
          "left (busy %s, transfers %s): the case proves nothing"
          % (busy, transfers))

    def settled(b):
        return (json_path(b, "pools.process.busy") == 0 and
                json_path(b, "pools.process.queued") == 0 and
                json_path(b, "pools.threads.busy") == 0 and
                json_path(b, "pools.loop.transfers") == 0 and
                json_path(b, "pools.loop.timers") == 0 and
                json_path(b, "pools.http.in_flight") == 1)
    body = wait_health(srv, settled, scaled(10.0),
                       "process busy/queued 0, loop transfers/timers 0, "
                       "http.in_flight 1")
    settle = time.monotonic() - left_at
    # The server closed its side of every connection of the clients that
    # left (none ESTABLISHED or CLOSE_WAIT). Its own fetches' connections
    # to itself may stay open, idle, in libcurl's cache (at most
    # LOOP_CONN_CACHE) until --conn-timeout: /health counts them.
    deadline = time.monotonic() + scaled(5.0)
    held = server_held(srv.port, ports)
    while held and time.monotonic() < deadline:
        time.sleep(0.05)
        held = server_held(srv.port, ports)
    check(not held, "the server still holds %d connections of clients that "
          "left: %s" % (len(held), held[:5]))
    body = wait_health(srv, lambda b: json_path(b, "pools.http.connections")
                       <= 1 + LOOP_CONN_CACHE and
                       cpu.pool_is(alive=GONE_WORKERS)(b),
                       scaled(5.0), "connections <= %d, %d workers alive"
                       % (1 + LOOP_CONN_CACHE, GONE_WORKERS))
    conns = json_path(body, "pools.http.connections")
    restarts = json_path(body, "pools.process.restarts")
    check(restarts == {"crash": 0, "timeout": 0, "recycle": 0},
          "restarts %s" % restarts)
    ran = (metric(srv, "conlab_pool_jobs_total", 'outcome="ok"') or 0) - \
        ok_before
    # 25 jobs of 2 tasks were queued; those of clients already gone are
    # dropped before they start (README), so only the first few run.
    check(ran <= GONE_MAX_RAN, "%d process tasks ran for %d clients that "
          "had left (at most %d expected)" % (ran, GONE_CLIENTS // 2,
                                              GONE_MAX_RAN))
    fetched = json_path(body, "pools.loop.transfers_done") - fetched_before
    resp, after = cpu.get_json(srv.port, "/run/prime?limit=100000"
                               "&mode=processes")
    check(resp.status == 200, "a job afterwards: %d %s"
          % (resp.status, _short(after)))
    expect_value("result.primes", json_path(after, "result.primes"), 9592)
    resp, after = cpu.get_json(srv.port, "/run/fetch?count=2&ms=10")
    check(resp.status == 200 and json_path(after, "result.ok") == 2,
          "a fetch afterwards: %d %s" % (resp.status, _short(after)))
    return "busy %d, %d transfers when they left; settled after %.2f s; " \
           "%d of 50 tasks ran, %d transfers finished; %d connections " \
           "left (libcurl's cache)" % (busy, transfers, settle, ran, fetched,
                                       conns)


# --------------------------------------------------------------------------
# Groups


def server_groups(web_root):
    """(title, extra args, environment, cases) for run.py's server_group."""
    base = ["--web-root", web_root, "--threads", "2", "--grace-ms", "1000"]
    return [
        ("faults-kill", base + ["--workers", str(KILL_WORKERS)] + PATIENT,
         None,
         [("faults: kill -9 of random workers during wrk: only JSON 502s, "
           "at most one per kill, pool whole", case_wrk_kill)]),
        ("faults-slow", base + ["--workers", "1", "--conn-timeout",
                                str(CONN_TIMEOUT_S), "--head-timeout-ms",
                                "0"], None,
         [("slow clients: %d trickle a header byte every %.1f s for %d s; "
           "/health stays fast" % (TRICKLERS, TRICKLE_EVERY_S,
                                   TRICKLE_FOR_S), case_trickle),
          ("slow clients: stopped mid-headers, cut --conn-timeout after "
           "their last byte", case_trickle_stop)]
         + [("slow clients: an unfinished head is refused at the 16 KiB "
             "buffer: %s" % name, endless_case(data))
            for name, data in ENDLESS_HEADS]),
        ("faults-head", base + ["--workers", "1", "--conn-timeout",
                                str(HEAD_CONN_TIMEOUT_S), "--head-timeout-ms",
                                str(int(HEAD_TIMEOUT_S * 1000))], None,
         [("head deadline: %d clients trickling a header byte a second are "
           "cut %.1f s after their first byte" % (HEAD_TRICKLERS,
                                                 HEAD_TIMEOUT_S),
           case_head_trickle),
          ("head deadline: heads sent slowly within it get 200, twice on "
           "one connection", case_head_slow_within),
          ("head deadline: an idle keep-alive connection outlives it and "
           "is closed by --conn-timeout", case_head_idle_keepalive),
          ("head deadline: a keep-alive client trickling its second head is "
           "cut %.1f s after that head's first byte" % HEAD_TIMEOUT_S,
           case_head_trickle_keepalive)]),
        ("faults-idle", base + ["--workers", "1"], None,
         [("connections: %d idle ones at once; /health fast, count back "
           "to 1" % IDLE_CONNECTIONS, case_idle_2000)]),
        ("faults-oversized", base + ["--workers", "1"], None,
         [("oversized: %s" % c.name, oversized_case(c)) for c in OVERSIZED]
         + [("oversized: %d..%d short headers, where the 16 KiB buffer "
             "runs out: 200, 431 or a close" % (EDGE_COUNTS[0],
                                                EDGE_COUNTS[-1]),
             case_header_edge)]),
        ("faults-term", ["--web-root", web_root, "--threads", "2",
                         "--workers", str(TERM_WORKERS), "--grace-ms",
                         str(TERM_GRACE_MS)] + PATIENT, None,
         [("shutdown: SIGTERM mid mixed load: in-flight requests 200, "
           "later 503 or refused, exit 0, no worker left",
           case_term_mixed)]),
        ("faults-gone", base + ["--workers", str(GONE_WORKERS)] + PATIENT,
         None,
         [("disconnect: %d clients leave mid-job and mid-fetch after "
           "%.0f ms; the server settles" % (GONE_CLIENTS, GONE_AFTER_S *
                                            1000), case_gone_50)]),
    ]

"""Integration tests of the event-loop features: /delay, /run/sleep and
/run/fetch (the allow-list, redirects, the body cap), the loop's counters
in /health, a client leaving mid-fetch and shutdown with timers in flight.

Used by run.py (server_groups() below adds its groups to the run). Cases
are data where they fit: BAD_PARAMS (a request and the parameter its 400
must name), SLEEP_RUNS (a request and the pool model its timing must
follow), FETCH_RUNS (a request and each URL's status and error),
REFUSALS (a fetch target that must be refused, 403 or 400, before any
connection) and REDIRECTS. Sequences (200 concurrent delays, a client
that leaves, shutdown) are small functions. SAFETY_OPTIONS: a libcurl
option the fetch policy rests on, made to fail for real by failopt.c (an
LD_PRELOAD shim built here at run time with cc; skipped without a C
compiler), must refuse each transfer, contact nothing and log once per
transfer; one group per option plus a control with the shim and nothing
failing (groups loop-setopt-*).

Fixtures of the test process, all on 127.0.0.1 (or ::1) only:
  trap     a listening socket that is NOT the server's: a refused URL
           points at it and the case asserts that no connection arrived
           during the request and TRAP_WINDOW_S after it (a thread
           accepts and closes, so a wrong connection fails fast);
  dead     a port bound but not listening (nothing answers), allowed to
           the server with --allow-host, so a fetch of it fails;
  helper   a small http.server (redirects, fixed-size and chunked bodies)
           allowed with --allow-host, whose redirects point at a second
           trap or back at the server.
They are created by server_groups() and closed by harness.cleanup_all().
Nothing else is ever contacted: URLs naming other addresses (10.0.0.1,
169.254.169.254, evil.example) are only sent as text and must be refused
before any connection; the test never opens anything to them.

Every time limit is multiplied by harness.TIME_SCALE (sanitizer builds);
the durations asked of the server are not. Every wait is bounded.
"""

import collections
import http.server
import os
import re
import select
import shlex
import shutil
import signal
import socket
import tempfile
import threading
import time
import urllib.parse
import uuid

import harness
from harness import (
    Background, CheckFailed, Contains, NonEmptyStr, build_request, check,
    expect_error_shape, expect_value, json_path, raw_exchange,
    stop_and_check)

JSON = "application/json; charset=utf-8"
WORKERS = 2
DEMO_THREADS = 32
WAVE_THREADS = 4          # --demo-threads of the "loop-waves" group
EPS_MS = 0.01             # float rounding in timing comparisons
EARLY_MS = 5.0            # a wait may end this much before its model
TRAP_WINDOW_S = 0.5       # how long a trap must stay untouched
FETCH_MAX_BYTES = 100     # --fetch-max-bytes of the "loop-cap" group
SHUTDOWN_GRACE_MS = 300
SHAPE_KEYS = {"demo", "mode", "params", "cores", "result", "wall_ms",
              "tasks"}
KIND_OF_MODE = {"sequential": "main", "threads": "thread", "gil": "thread",
                "processes": "process", "async": "loop"}


def scaled(seconds):
    return seconds * harness.TIME_SCALE


def slack_ms(model_ms):
    """How late a wait of model_ms may end (plain build: 150 ms + 25%)."""
    return (150.0 + 0.25 * model_ms) * harness.TIME_SCALE


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _short(value, limit=160):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# --------------------------------------------------------------------------
# Fixtures


class Trap:
    """A listening TCP socket nobody should ever connect to. A thread
    accepts and at once closes whatever arrives (so a fetch that wrongly
    gets here fails fast instead of hanging) and counts it."""

    def __init__(self, host=harness.LOOPBACK, port=0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.bind((host, port))
            self.sock.listen(64)
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self._mark = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.sock], [], [], 0.05)
            except (OSError, ValueError):
                return  # closed
            if not ready:
                continue
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return
            conn.close()
            with self._lock:
                self.count += 1

    def mark(self):
        """Starts a case: connections() counts from here."""
        with self._lock:
            self._mark = self.count

    def connections(self, window=TRAP_WINDOW_S):
        """Waits window seconds; returns how many connections arrived since
        mark()."""
        time.sleep(window)
        with self._lock:
            return self.count - self._mark

    def close(self):
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()


class DeadPort:
    """A port bound but not listening: a connection to it is refused, and
    no other process can take it meanwhile."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((harness.LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class Helper:
    """http.server on 127.0.0.1: redirects and bodies for the fetch cases.

    /ok                  200, a short body
    /to-trap             302 to http://127.0.0.1:<trap>/
    /to-trap-localhost   302 to http://localhost:<trap>/
    /to-trap-ftp         302 to ftp://127.0.0.1:<trap>/
    /to-self             302 to http://127.0.0.1:<self_port>/health
    /chain/N             302 to /chain/N-1; /chain/0 is 200
    /bytes/N             200 with N bytes (Content-Length)
    /chunked/N           200 with N bytes, chunked
    Every path hit is counted (hits), so a case can tell how far a fetch
    went."""

    def __init__(self, trap):
        self.trap = trap
        self.self_port = None  # set by a case to the server's port
        self.hits = collections.Counter()
        self.lock = threading.Lock()
        helper = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 5

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                with helper.lock:
                    helper.hits[path] += 1
                helper.route(self, path)

        self.httpd = http.server.ThreadingHTTPServer((harness.LOOPBACK, 0),
                                                     Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def reset(self):
        with self.lock:
            self.hits.clear()

    def hit_counts(self):
        with self.lock:
            return dict(self.hits)

    def route(self, h, path):
        parts = path.strip("/").split("/")
        trap = "127.0.0.1:%d" % self.trap.port
        redirects = {
            "to-trap": "http://%s/" % trap,
            "to-trap-localhost": "http://localhost:%d/" % self.trap.port,
            "to-trap-ftp": "ftp://%s/" % trap,
            "to-self": "http://127.0.0.1:%s/health" % self.self_port,
        }
        if parts[0] in redirects and len(parts) == 1:
            return self.send(h, 302, b"", [("Location", redirects[parts[0]])])
        if path == "/ok":
            return self.send(h, 200, b"helper ok\n")
        if len(parts) == 2 and parts[1].isdigit():
            n = int(parts[1])
            if parts[0] == "chain":
                if n == 0:
                    return self.send(h, 200, b"end of chain\n")
                return self.send(h, 302, b"",
                                 [("Location", "/chain/%d" % (n - 1))])
            if parts[0] == "bytes":
                return self.send(h, 200, b"b" * n)
            if parts[0] == "chunked":
                h.send_response(200)
                h.send_header("Content-Type", "application/octet-stream")
                h.send_header("Transfer-Encoding", "chunked")
                h.send_header("Connection", "close")
                h.end_headers()
                left = n
                try:
                    while left > 0:
                        piece = min(left, 1000)
                        h.wfile.write(b"%x\r\n" % piece + b"c" * piece +
                                      b"\r\n")
                        left -= piece
                    h.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass  # the fetcher stopped reading at its cap
                h.close_connection = True
                return None
        return self.send(h, 404, b"no such helper path\n")

    @staticmethod
    def send(h, status, body, headers=()):
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Type", "text/plain")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Connection", "close")
        h.end_headers()
        try:
            h.wfile.write(body)
        except OSError:
            pass
        h.close_connection = True

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5.0)


def ipv6_loopback():
    """True when ::1 can be bound here."""
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Fixtures:
    def __init__(self):
        self.trap = Trap()            # refused URLs point here
        harness.add_cleanup(self.trap.close)
        self.redirect_trap = Trap()   # the helper redirects here
        harness.add_cleanup(self.redirect_trap.close)
        self.dead = DeadPort()        # allowed, nothing listens
        harness.add_cleanup(self.dead.close)
        self.helper = Helper(self.redirect_trap)
        harness.add_cleanup(self.helper.close)
        self.ipv6 = ipv6_loopback()

    def ports(self, srv):
        """What URL templates may name."""
        return {"port": srv.port, "trap": self.trap.port,
                "dead": self.dead.port, "helper": self.helper.port,
                "rtrap": self.redirect_trap.port}


# --------------------------------------------------------------------------
# Requests


def get(srv, target, timeout=None):
    """GET target on its own connection: (response, JSON body or None,
    seconds taken)."""
    started = time.monotonic()
    resp = raw_exchange(srv.port, build_request("GET", target),
                        timeout=timeout or harness.SOCKET_TIMEOUT_S,
                        host=srv.host)
    took = time.monotonic() - started
    check(resp.status is not None, "GET %s: no response: %s"
          % (target[:80], resp.error))
    try:
        body = resp.json()
    except ValueError:
        body = None
    return resp, body, took


def get_ok(srv, target, timeout=None):
    resp, body, took = get(srv, target, timeout)
    check(resp.status == 200, "GET %s: status %d: %s"
          % (target[:80], resp.status, _short(body or resp.body, 300)))
    expect_value("Content-Type", resp.header("Content-Type"), JSON)
    check(isinstance(body, dict), "body is not a JSON object: %r"
          % resp.body[:120])
    return resp, body, took


def health(srv, timeout=None):
    """GET /health (bounded; a timeout is a failed check, named)."""
    timeout = timeout or scaled(5.0)
    try:
        return harness.health(srv.port, timeout=timeout, host=srv.host)
    except OSError as e:
        raise CheckFailed("GET /health gave no answer within %.1f s: %r"
                          % (timeout, e))


def loop_stats(body):
    stats = json_path(body, "pools.loop")
    check(isinstance(stats, dict), "/health has no pools.loop: %s"
          % _short(body.get("pools"), 300))
    return stats


def wait_health(srv, pred, timeout, what):
    """Polls /health until pred(body) holds; returns that body. Bounded."""
    deadline = time.monotonic() + timeout
    while True:
        body = health(srv)
        if pred(body):
            return body
        if time.monotonic() > deadline:
            raise CheckFailed("%s not seen within %.1f s; last /health pools: "
                              "%s" % (what, timeout,
                                      _short(body.get("pools"), 400)))
        time.sleep(0.02)


def url_query(urls, extra=""):
    """url=...&url=... with each URL percent-encoded as a query value."""
    parts = ["url=" + urllib.parse.quote(u, safe=":/") for u in urls]
    if extra:
        parts.append(extra)
    return "&".join(parts)


# --------------------------------------------------------------------------
# Validation: every row is a 400 whose message names the parameter.

TOO_MANY_URLS = url_query(["http://127.0.0.1:1/x%d" % i for i in range(101)])
LONG_URL = "http://127.0.0.1:1/" + "a" * 2100

BAD_PARAMS = [
    # (name, target, the parameter the message must name)
    ("delay: ms=-1", "/delay?ms=-1", "ms"),
    ("delay: ms=10001", "/delay?ms=10001", "ms"),
    ("delay: ms=abc", "/delay?ms=abc", "ms"),
    ("delay: ms= (empty)", "/delay?ms=", "ms"),
    ("delay: ms=1.5", "/delay?ms=1.5", "ms"),
    ("delay: ms given twice", "/delay?ms=1&ms=2", "ms"),
    ("delay: unknown parameter x=1", "/delay?x=1", "x"),
    ("sleep: tasks=10001 (async by default)", "/run/sleep?tasks=10001",
     "tasks"),
    ("sleep: tasks=10001&mode=async", "/run/sleep?tasks=10001&mode=async",
     "tasks"),
    ("sleep: tasks=1001&mode=threads", "/run/sleep?tasks=1001&mode=threads",
     "tasks"),
    ("sleep: mode=gil&tasks=1001 (mode first)",
     "/run/sleep?mode=gil&tasks=1001", "tasks"),
    ("sleep: tasks=1001&mode=processes",
     "/run/sleep?tasks=1001&mode=processes", "tasks"),
    ("sleep: tasks=1001&mode=sequential",
     "/run/sleep?tasks=1001&mode=sequential", "tasks"),
    ("sleep: tasks=0", "/run/sleep?tasks=0", "tasks"),
    ("sleep: ms=10001", "/run/sleep?ms=10001", "ms"),
    ("sleep: ms=-1", "/run/sleep?ms=-1", "ms"),
    ("sleep: mode=fast", "/run/sleep?mode=fast", "mode"),
    ("sleep: mode=ASYNC (case matters)", "/run/sleep?mode=ASYNC", "mode"),
    ("sleep: unknown parameter task", "/run/sleep?task=3", "task"),
    ("fetch: count=0", "/run/fetch?count=0", "count"),
    ("fetch: count=1001", "/run/fetch?count=1001", "count"),
    ("fetch: ms=10001", "/run/fetch?ms=10001", "ms"),
    ("fetch: ms=-1", "/run/fetch?count=2&ms=-1", "ms"),
    ("fetch: mode=processes (no such fetch mode)",
     "/run/fetch?mode=processes", "mode"),
    ("fetch: mode=gil (no such fetch mode)", "/run/fetch?mode=gil", "mode"),
    ("fetch: unknown parameter foo", "/run/fetch?count=1&foo=1", "foo"),
    ("fetch: url and count together",
     "/run/fetch?url=http://127.0.0.1:1/&count=2", "url"),
    ("fetch: url and ms together",
     "/run/fetch?ms=5&url=http://127.0.0.1:1/", "url"),
    ("fetch: 101 url parameters", "/run/fetch?" + TOO_MANY_URLS, "url"),
    ("fetch: url= (empty)", "/run/fetch?url=", "url"),
    ("fetch: a 2100-byte url", "/run/fetch?" + url_query([LONG_URL]),
     "url"),
]


def bad_param_case(target, param):
    def run(srv, ctx):
        resp, body, _ = get(srv, target)
        check(resp.status == 400, "status %d, expected 400; body %r"
              % (resp.status, resp.body[:160]))
        err = expect_error_shape(resp)
        expect_value("error.message", err["message"],
                     Contains("'%s'" % param))
    return run


# --------------------------------------------------------------------------
# The /run/* shape, shared by sleep and fetch


def check_shape(body, demo, mode, params, n):
    check(set(body) == SHAPE_KEYS, "keys %s, expected %s"
          % (sorted(body), sorted(SHAPE_KEYS)))
    expect_value("demo", body["demo"], demo)
    expect_value("mode", body["mode"], mode)
    check(body["params"] == params, "params %s, expected %s"
          % (_short(body["params"]), _short(params)))
    wall = body["wall_ms"]
    check(_is_num(wall) and wall >= 0, "wall_ms is %r" % (wall,))
    tasks = body["tasks"]
    check(isinstance(tasks, list) and len(tasks) == n, "%s tasks, expected %d"
          % (len(tasks) if isinstance(tasks, list) else _short(tasks), n))
    return tasks


def check_lanes(tasks, mode, wall, pids=(), threads=DEMO_THREADS):
    """Worker kind and id per mode; task times in order within wall_ms."""
    kind = KIND_OF_MODE[mode]
    for i, t in enumerate(tasks):
        what = "tasks[%d]" % i
        expect_value(what + ".id", t.get("id"), i)
        expect_value(what + ".worker.kind", json_path(t, "worker.kind"), kind)
        wid = json_path(t, "worker.id")
        if kind in ("main", "loop"):
            expect_value(what + ".worker.id", wid, 0)
        elif kind == "thread":
            check(isinstance(wid, int) and 0 <= wid < threads,
                  "%s.worker.id %r is not a demo thread id (< %d)"
                  % (what, wid, threads))
        else:
            check(wid in pids, "%s.worker.id %r is not a pool worker pid %s"
                  % (what, wid, pids))
        start, end = t.get("start_ms"), t.get("end_ms")
        check(_is_num(start) and _is_num(end), "%s times %r, %r"
              % (what, start, end))
        check(0 <= start <= end + EPS_MS and end <= wall + EPS_MS,
              "%s: start_ms %s, end_ms %s, wall_ms %s out of order"
              % (what, start, end, wall))


def max_overlap(tasks):
    """The most tasks running at one moment (an end at the same instant as
    a start does not overlap it)."""
    events = []
    for t in tasks:
        events.append((t["start_ms"] + EPS_MS, 1))
        events.append((t["end_ms"] - EPS_MS, -1))
    events.sort(key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


# --------------------------------------------------------------------------
# /delay


def delay_case(ms):
    """/delay?ms=N answers after N ms (not before, not much later)."""
    def run(srv, ctx):
        target = "/delay" if ms is None else "/delay?ms=%d" % ms
        want = ms or 0
        resp, body, took = get_ok(srv, target)
        expect_value("Cache-Control", resp.header("Cache-Control"),
                     "no-store")
        check(set(body) == {"delay_ms", "waited_ms"}, "keys %s"
              % sorted(body))
        expect_value("delay_ms", body["delay_ms"], want)
        waited = body["waited_ms"]
        check(_is_num(waited) and waited >= want - EPS_MS,
              "waited_ms %r < %d" % (waited, want))
        took_ms = took * 1000
        limit = want + (100.0 if want == 0 else 250.0) * harness.TIME_SCALE
        check(took_ms >= want - 1.0, "answered after %.1f ms, before %d ms"
              % (took_ms, want))
        check(took_ms <= limit, "answered after %.1f ms (limit %.0f ms)"
              % (took_ms, limit))
        return "%.1f ms" % took_ms
    return run


CONCURRENT = 200
CONCURRENT_MS = 500


def case_delay_concurrent(srv, ctx):
    """--threads 2: 200 clients each wait /delay?ms=500 on their own
    connection at once. All are answered 200 and the batch takes well under
    2 x 500 ms, so no request thread is held by a waiting request; /health
    answers quickly meanwhile and counts the timers."""
    results = [None] * CONCURRENT
    start_gate = threading.Event()
    target = "/delay?ms=%d" % CONCURRENT_MS

    def client(i):
        start_gate.wait(10)
        started = time.monotonic()
        try:
            resp = raw_exchange(srv.port, build_request("GET", target),
                                timeout=scaled(10.0), host=srv.host)
            results[i] = (resp, None, started, time.monotonic())
        except OSError as e:
            results[i] = (None, e, started, time.monotonic())

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(CONCURRENT)]
    for t in threads:
        t.start()
    batch_started = time.monotonic()
    start_gate.set()
    health_ms = []
    try:
        body = wait_health(srv, lambda b: loop_stats(b)["timers"] >= 100,
                           scaled(CONCURRENT_MS / 1000.0 * 0.8),
                           ">= 100 timers in flight")
        most_timers = loop_stats(body)["timers"]
        in_flight = json_path(body, "pools.http.in_flight")
        for _ in range(5):
            t0 = time.monotonic()
            body = health(srv, timeout=scaled(2.0))
            health_ms.append((time.monotonic() - t0) * 1000)
            most_timers = max(most_timers, loop_stats(body)["timers"])
            time.sleep(0.01)
    finally:
        for t in threads:
            t.join(scaled(15.0))
    check(not any(t.is_alive() for t in threads), "clients still waiting")
    batch_s = max(r[3] for r in results) - batch_started
    bad = []
    for i, r in enumerate(results):
        resp, exc = r[0], r[1]
        if exc is not None or resp.status != 200:
            bad.append("#%d: %s" % (i, exc or "%s %r" % (resp.status,
                                                        resp.body[:80])))
            continue
        d = resp.json()
        if d.get("delay_ms") != CONCURRENT_MS or \
                not d.get("waited_ms", 0) >= CONCURRENT_MS - EPS_MS:
            bad.append("#%d: %r" % (i, d))
    check(not bad, "%d of %d not answered 200 after %d ms: %s"
          % (len(bad), CONCURRENT, CONCURRENT_MS, "; ".join(bad[:3])))
    limit = 1.5 * harness.TIME_SCALE
    check(batch_s < limit, "the batch took %.2f s (limit %.2f s; serial on "
          "2 threads would be >= %.1f s)" % (batch_s, limit,
                                              2 * CONCURRENT_MS / 1000.0))
    check(batch_s >= CONCURRENT_MS / 1000.0, "the batch took only %.3f s"
          % batch_s)
    check(max(health_ms) < 500 * harness.TIME_SCALE,
          "/health took %.0f ms while the delays waited" % max(health_ms))
    check(isinstance(in_flight, int) and in_flight >= 100,
          "pools.http.in_flight %r with >= 100 delays waiting" % in_flight)
    return "batch %.0f ms, up to %d timers, /health max %.1f ms" % (
        batch_s * 1000, most_timers, max(health_ms))


def case_loop_health(srv, ctx):
    """pools.loop has its four counters; a /delay fires one timer and a
    fetch of /delay completes one transfer (and one more timer)."""
    before = loop_stats(health(srv))
    check(set(before) == {"timers", "transfers", "timers_fired",
                          "transfers_done"}, "pools.loop keys %s"
          % sorted(before))
    for k, v in before.items():
        check(isinstance(v, int) and v >= 0, "pools.loop.%s is %r" % (k, v))
    get_ok(srv, "/delay?ms=1")
    get_ok(srv, "/run/fetch?count=1&ms=1")
    after = loop_stats(health(srv))
    expect_value("timers_fired", after["timers_fired"],
                 before["timers_fired"] + 2)
    expect_value("transfers_done", after["transfers_done"],
                 before["transfers_done"] + 1)
    expect_value("timers", after["timers"], 0)
    expect_value("transfers", after["transfers"], 0)


SELF_FETCHES = 20


def case_self_fetch_closes(srv, ctx):
    """Self-fetches ask this server to close each connection after its
    answer and keep none in libcurl's cache: a burst of them leaves no
    connection open (a kept-alive one would stay for --conn-timeout, 15 s,
    and cost the server a cleared memory pool per answer). On a fresh
    server, so the only connection left is the /health request's own."""
    _, body, _ = get_ok(srv, "/run/fetch?mode=async&count=%d&ms=0"
                        % SELF_FETCHES)
    expect_value("result.ok", json_path(body, "result.ok"), SELF_FETCHES)
    deadline = time.monotonic() + scaled(3.0)
    while True:
        open_now = health(srv)["pools"]["http"]["connections"]
        if open_now == 1:
            break
        check(time.monotonic() < deadline,
              "%d connections still open 3 s after %d self-fetches "
              "(expected only /health's own)" % (open_now, SELF_FETCHES))
        time.sleep(0.05)


MAX_CONNECTIONS = 10000  # conlab's default --max-connections
FD_RESERVE = 256 + 2 * 1024  # server/main.c: FD_RESERVE (LOOP_CONNECTIONS_MAX)


def proc_field(pid, path, prefix):
    """The words after prefix on its line of /proc/pid/path."""
    with open("/proc/%d/%s" % (pid, path)) as f:
        for line in f:
            if line.startswith(prefix):
                return line[len(prefix):].split()
    raise AssertionError("no %r in /proc/%d/%s" % (prefix, pid, path))


def case_fd_table(srv, ctx):
    """At start-up the descriptor table already holds what the service
    may open (--max-connections and the reserve beside it, within its soft
    limit), so no burst waits for the kernel to grow it: FDSize in
    /proc/PID/status, on a server that has answered one request (without
    the reservation it was 256)."""
    get_ok(srv, "/health")
    soft = proc_field(srv.pid, "limits", "Max open files")[0]
    want = MAX_CONNECTIONS + FD_RESERVE
    if soft != "unlimited":
        want = min(want, int(soft))
    size = int(proc_field(srv.pid, "status", "FDSize:")[0])
    check(size >= want, "FDSize %d, expected at least %d (soft limit %s)"
          % (size, want, soft))
    return "FDSize %d for %d descriptors (soft limit %s)" % (size, want, soft)


SELF_LISTENER_RE = re.compile(
    r"self listener \(/delay only, [^)]*\) on "
    r"http://(\[[0-9a-f:]+\]|[0-9.]+):(\d+)")
SELF_ONLY = "this listener serves only /delay, to the service's own fetches"
PER_IP = 16          # --max-per-ip of the "loop-self-listener" group
PER_IP_FETCHES = 64  # self-fetches at once there, four times that limit


def self_listener(srv):
    """(host, port) of the server's self listener, from its start-up log."""
    match = SELF_LISTENER_RE.search(srv.log())
    check(match, "no self listener in the start-up log: %s" % srv.log_tail())
    return match.group(1), int(match.group(2))


def case_self_listener(srv, ctx):
    """The self listener is on 127.0.0.1, on a port of its own; it answers
    GET /delay and nothing else (404 naming /delay, in the error shape)."""
    host, port = self_listener(srv)
    expect_value("self listener host", host, "127.0.0.1")
    check(port != srv.port, "the self listener shares the public port %d"
          % port)
    resp = raw_exchange(port, build_request("GET", "/delay?ms=1"))
    expect_value("GET /delay?ms=1 there: status", resp.status, 200)
    expect_value("GET /delay?ms=1 there: delay_ms",
                 json_path(resp.json(), "delay_ms"), 1)
    for target in ("/health", "/run/fetch?count=1", "/", "/delay/"):
        resp = raw_exchange(port, build_request("GET", target))
        what = "GET %s on the self listener" % target
        expect_value(what + ": status", resp.status, 404)
        err = expect_error_shape(resp)
        expect_value(what + ": message", err["message"], SELF_ONLY)


SELF_NICE = 5  # server/http.h: HTTP_SELF_NICE
REQUEST_THREADS = 2  # --threads of the groups here (base)


def thread_nices(pid):
    """{tid: nice value} of pid's threads (field 19 of their stat)."""
    nices = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a thread that ended meanwhile
        nices[int(tid)] = int(fields[16])
    return nices


def case_self_nice(srv, ctx):
    """The self listener's threads (--threads of them) run %d nicer than
    the server's other threads, so that the event loop wins a contended
    core during a burst of self-fetches; every other thread keeps the
    main thread's value.""" % SELF_NICE
    nices = thread_nices(srv.pid)
    base = nices[srv.pid]
    if base + SELF_NICE > 19:
        raise harness.Skipped("the server already runs at nice %d" % base)
    nicer = sorted(t for t, n in nices.items() if n == base + SELF_NICE)
    others = {t: n for t, n in nices.items() if n not in (base,
                                                          base + SELF_NICE)}
    expect_value("threads at nice %d" % (base + SELF_NICE), len(nicer),
                 REQUEST_THREADS)
    check(not others, "threads at other nice values: %s" % others)
    return "%d of %d threads at nice %d, the rest at %d" % (
        len(nicer), len(nices), base + SELF_NICE, base)


def case_self_fetch_per_ip(srv, ctx):
    """--max-per-ip %d: %d concurrent self-fetches all answer 200, each
    naming the public URL: they connect to the self listener, which has no
    per-address limit (on the public listener, all from 127.0.0.1, most
    would have been refused). The public listener still applies it:
    keep-alive connections opened one at a time, each holding on after its
    /health answer, are served up to exactly %d; then two in a row are
    closed unanswered (the first refusal is tried again after 0.2 s, in
    case an earlier connection of this test was still closing).""" \
        % (PER_IP, PER_IP_FETCHES, PER_IP)
    _, body, took = get_ok(srv, "/run/fetch?mode=async&count=%d&ms=300"
                           % PER_IP_FETCHES)
    case = FetchRun("", "async", count=PER_IP_FETCHES, ms=300, min_ms=300)
    check_fetch(srv, case, {}, body, took)
    held = []
    try:
        served = refused = 0
        while refused < 2 and len(held) < PER_IP + 4:
            sock = socket.create_connection((harness.LOOPBACK, srv.port),
                                            timeout=scaled(5.0))
            try:
                sock.sendall(build_request(
                    "GET", "/health", headers=[("Connection", "keep-alive")]))
                ok = harness.read_response(sock, timeout=scaled(5.0)) \
                    .status == 200
            except OSError:
                ok = False  # reset: refused by the limit
            if ok:
                held.append(sock)
                served += 1
                refused = 0
            else:
                sock.close()
                refused += 1
                time.sleep(scaled(0.2))
        expect_value("public connections served at once", served, PER_IP)
    finally:
        for sock in held:
            sock.close()


# --------------------------------------------------------------------------
# /run/sleep: wall time follows the model of the mode's pool


class SleepRun:
    def __init__(self, name, query, mode, tasks, ms, lanes, threads=None):
        self.name, self.query, self.mode = name, query, mode
        self.tasks, self.ms, self.lanes = tasks, ms, lanes
        self.threads = threads or DEMO_THREADS  # --demo-threads
        self.waves = -(-tasks // lanes)
        self.model = self.waves * ms


SLEEP_RUNS = [
    SleepRun("sleep: async tasks=4&ms=300 -> 300 ms",
             "tasks=4&ms=300&mode=async", "async", 4, 300, 4),
    SleepRun("sleep: threads tasks=4&ms=300 (32 threads) -> 300 ms",
             "tasks=4&ms=300&mode=threads", "threads", 4, 300, DEMO_THREADS),
    SleepRun("sleep: gil tasks=4&ms=300 -> 300 ms (sleep drops the GIL)",
             "tasks=4&ms=300&mode=gil", "gil", 4, 300, DEMO_THREADS),
    SleepRun("sleep: processes tasks=4&ms=300 (2 workers) -> 600 ms",
             "tasks=4&ms=300&mode=processes", "processes", 4, 300, WORKERS),
    SleepRun("sleep: sequential tasks=4&ms=300 -> 1200 ms",
             "tasks=4&ms=300&mode=sequential", "sequential", 4, 300, 1),
    SleepRun("sleep: mode defaults to async", "tasks=4&ms=300", "async", 4,
             300, 4),
    SleepRun("sleep: tasks defaults to 3", "ms=100", "async", 3, 100, 3),
    SleepRun("sleep: async tasks=1001 is fine (threads' cap is 1000)",
             "tasks=1001&ms=20&mode=async", "async", 1001, 20, 1001),
    SleepRun("sleep: async tasks=10000 (the cap), 10000 timers at once",
             "tasks=10000&ms=50", "async", 10000, 50, 10000),
    SleepRun("sleep: threads tasks=1000 (the cap), ms=0",
             "tasks=1000&ms=0&mode=threads", "threads", 1000, 0,
             DEMO_THREADS),
    SleepRun("sleep: processes ms=0", "tasks=2&ms=0&mode=processes",
             "processes", 2, 0, WORKERS),
]

WAVE_RUNS = [
    SleepRun("sleep: 4 threads, tasks=8&ms=200 -> 2 waves, 400 ms",
             "tasks=8&ms=200&mode=threads", "threads", 8, 200, WAVE_THREADS,
             WAVE_THREADS),
    SleepRun("sleep: 4 threads, gil tasks=8&ms=200 -> 2 waves, 400 ms",
             "tasks=8&ms=200&mode=gil", "gil", 8, 200, WAVE_THREADS,
             WAVE_THREADS),
    SleepRun("sleep: 2 workers, processes tasks=3&ms=200 -> 400 ms",
             "tasks=3&ms=200&mode=processes", "processes", 3, 200, WORKERS,
             WAVE_THREADS),
]


def sleep_case(case):
    def run(srv, ctx):
        target = "/run/sleep?" + case.query
        resp, body, took = get_ok(srv, target, timeout=scaled(30.0))
        tasks = check_shape(body, "sleep", case.mode,
                            {"tasks": case.tasks, "ms": case.ms}, case.tasks)
        expect_value("result", body["result"],
                     {"slept_ms": case.ms, "lanes": case.lanes,
                      "waves": case.waves, "model_ms": case.model})
        wall = body["wall_ms"]
        pids = json_path(health(srv), "pools.process.pids") or []
        check_lanes(tasks, case.mode, wall, pids, case.threads)
        for t in tasks:
            check(t["end_ms"] - t["start_ms"] >= case.ms - EARLY_MS,
                  "tasks[%d] slept %.1f ms of %d" % (
                      t["id"], t["end_ms"] - t["start_ms"], case.ms))
        check(wall >= case.model - EARLY_MS, "wall_ms %.1f < model %d ms"
              % (wall, case.model))
        check(wall <= case.model + slack_ms(case.model),
              "wall_ms %.1f > model %d + %.0f ms" % (
                  wall, case.model, slack_ms(case.model)))
        took_ms = took * 1000
        check(took_ms >= case.model - EARLY_MS, "answered after %.1f ms, "
              "before the model's %d ms" % (took_ms, case.model))
        if case.ms > 0:
            most = max_overlap(tasks)
            check(most <= case.lanes, "%d tasks ran at once on %d lanes"
                  % (most, case.lanes))
            if case.waves == 1 and case.tasks <= 1001:
                check(most == case.tasks, "only %d of %d tasks overlapped in "
                      "one wave" % (most, case.tasks))
        return "wall %.1f ms, model %d ms" % (wall, case.model)
    return run


# --------------------------------------------------------------------------
# /run/fetch: successful runs (each URL's outcome is data)


OK = None  # error: null


class FetchRun:
    """A /run/fetch that must answer 200. urls: templates ({port}, {dead},
    {helper}...) or None for count mode; per task: statuses and errors
    (None = null, a Matcher = an error text); ok/failed: the result."""

    def __init__(self, name, mode, urls=None, count=None, ms=None,
                 extra="", statuses=200, errors=OK, ok=None, failed=0,
                 max_s=None, min_ms=None, echo_count=None, echo_ms=None):
        self.name, self.mode, self.urls = name, mode, urls
        self.count, self.ms, self.extra = count, ms, extra
        self.statuses, self.errors = statuses, errors
        self.ok, self.failed = ok, failed
        self.max_s, self.min_ms = max_s, min_ms
        self.echo_count, self.echo_ms = echo_count, echo_ms

    def query(self, ports):
        extra = self.extra
        if self.urls is not None:
            return url_query([u.format(**ports) for u in self.urls], extra)
        parts = []
        if self.count is not None:
            parts.append("count=%d" % self.count)
        if self.ms is not None:
            parts.append("ms=%d" % self.ms)
        if extra:
            parts.append(extra)
        return "&".join(parts)


def self_delay(srv, ms):
    host = "[::1]" if srv.host == "::1" else srv.host
    return "http://%s:%d/delay?ms=%d" % (host, srv.port, ms)


def check_fetch(srv, case, ports, body, took):
    if case.urls is not None:
        urls = [u.format(**ports) for u in case.urls]
        params = {"url": urls}
    else:
        count = case.echo_count or case.count
        ms = case.echo_ms if case.echo_ms is not None else case.ms
        urls = [self_delay(srv, ms)] * count
        params = {"count": count, "ms": ms}
    n = len(urls)
    tasks = check_shape(body, "fetch", case.mode, params, n)
    check_lanes(tasks, case.mode, body["wall_ms"])
    statuses = case.statuses if isinstance(case.statuses, list) else \
        [case.statuses] * n
    errors = case.errors if isinstance(case.errors, list) else \
        [case.errors] * n
    total = 0
    for i, t in enumerate(tasks):
        what = "tasks[%d]" % i
        check({"url", "status", "bytes", "ms", "error"} <= set(t),
              "%s lacks fetch fields: %s" % (what, sorted(t)))
        expect_value(what + ".url", t["url"], urls[i])
        expect_value(what + ".status", t["status"], statuses[i])
        if errors[i] is None:
            check(t["error"] is None, "%s.error is %r, expected null"
                  % (what, t["error"]))
        else:
            expect_value(what + ".error", t["error"], errors[i])
        check(isinstance(t["bytes"], int) and t["bytes"] >= 0,
              "%s.bytes is %r" % (what, t["bytes"]))
        if errors[i] is None and statuses[i] == 200:
            check(t["bytes"] > 0, "%s.bytes is 0 for a 200" % what)
        check(_is_num(t["ms"]) and t["ms"] >= 0, "%s.ms is %r"
              % (what, t["ms"]))
        if case.urls is None:
            check(t["ms"] >= params["ms"] - 1.0, "%s.ms %.1f < the %d ms "
                  "delay" % (what, t["ms"], params["ms"]))
        total += t["bytes"]
    ok = case.ok if case.ok is not None else n - case.failed
    expect_value("result", body["result"],
                 {"ok": ok, "failed": case.failed, "bytes": total})
    if case.mode == "sequential":
        most = max_overlap(tasks)
        check(most <= 1, "%d sequential fetches overlapped" % most)
    if case.max_s is not None:
        limit = case.max_s * harness.TIME_SCALE
        check(took < limit, "took %.0f ms (limit %.0f ms)"
              % (took * 1000, limit * 1000))
    if case.min_ms is not None:
        check(took * 1000 >= case.min_ms - EARLY_MS and
              body["wall_ms"] >= case.min_ms - EARLY_MS,
              "took %.1f ms (wall_ms %.1f), expected >= %d ms"
              % (took * 1000, body["wall_ms"], case.min_ms))


def fetch_case(case, fixtures):
    def run(srv, ctx):
        ports = fixtures.ports(srv)
        query = case.query(ports)
        target = "/run/fetch" + ("?" + query if query else "")
        resp, body, took = get_ok(srv, target, timeout=scaled(30.0))
        check_fetch(srv, case, ports, body, took)
        return "%.0f ms, result %s" % (took * 1000, body["result"])
    return run


SELF = "http://127.0.0.1:{port}"
ERR = NonEmptyStr()

FETCH_RUNS = [
    FetchRun("fetch: async count=50&ms=100 overlaps (< 1 s, not 5 s)",
             "async", count=50, ms=100, max_s=1.0, min_ms=100),
    FetchRun("fetch: threads count=50&ms=100 overlaps (< 1 s)",
             "threads", count=50, ms=100, extra="mode=threads", max_s=1.0,
             min_ms=100),
    FetchRun("fetch: sequential count=3&ms=100 takes >= 300 ms",
             "sequential", count=3, ms=100, extra="mode=sequential",
             min_ms=300, max_s=0.3 + slack_ms(300) / 1000.0),
    FetchRun("fetch: async count=1000 (the cap) &ms=100", "async",
             count=1000, ms=100, max_s=3.0, min_ms=100),
    FetchRun("fetch: no parameters: count 10, ms 100, async", "async",
             echo_count=10, echo_ms=100, max_s=1.0, min_ms=100),
    FetchRun("fetch: own /health and /no-such-file: 200 and 404, a 404 "
             "is a result (error null)", "async",
             urls=[SELF + "/health", SELF + "/no-such-file"],
             statuses=[200, 404], errors=[OK, OK], ok=1, failed=1),
    FetchRun("fetch: the same URLs in threads mode", "threads",
             urls=[SELF + "/health", SELF + "/no-such-file"],
             extra="mode=threads", statuses=[200, 404], errors=[OK, OK],
             ok=1, failed=1),
    FetchRun("fetch: the same URLs in sequential mode", "sequential",
             urls=[SELF + "/health", SELF + "/no-such-file"],
             extra="mode=sequential", statuses=[200, 404], errors=[OK, OK],
             ok=1, failed=1),
    FetchRun("fetch: url mode, 3 x own /delay?ms=100 overlap", "async",
             urls=[SELF + "/delay?ms=100"] * 3, min_ms=100, max_s=0.25),
    FetchRun("fetch: host is case-insensitive (LOCALHOST)", "async",
             urls=["http://LOCALHOST:{port}/health"]),
    FetchRun("fetch: localhost on the server's port", "async",
             urls=["http://localhost:{port}/health"]),
    FetchRun("fetch: 127.1 is 127.0.0.1", "async",
             urls=["http://127.1:{port}/health"]),
    FetchRun("fetch: scheme is case-insensitive (HTTP://)", "async",
             urls=["HTTP://127.0.0.1:{port}/health"]),
    FetchRun("fetch: allowed port where nothing listens: an error text, "
             "the request is 200", "async",
             urls=["http://127.0.0.1:{dead}/"], statuses=0, errors=ERR,
             failed=1, max_s=3.0),
    FetchRun("fetch: the dead port in threads mode", "threads",
             urls=["http://127.0.0.1:{dead}/"], extra="mode=threads",
             statuses=0, errors=ERR, failed=1, max_s=3.0),
    FetchRun("fetch: the dead port next to a good URL", "async",
             urls=[SELF + "/health", "http://127.0.0.1:{dead}/x"],
             statuses=[200, 0], errors=[OK, ERR], ok=1, failed=1,
             max_s=3.0),
]


# --------------------------------------------------------------------------
# Refusals: 403/400 before any connection


class Refusal:
    """A fetch target that must be refused with status; trap: the URL
    names the trap's port, which must accept nothing."""

    def __init__(self, name, url, status, trap=False, extra=""):
        self.name, self.url, self.status = name, url, status
        self.trap, self.extra = trap, extra


REFUSALS = [
    Refusal("refuse: 127.0.0.1 on a port that is not the server's (403, "
            "never contacted)", "http://127.0.0.1:{trap}/", 403, trap=True),
    Refusal("refuse: localhost on another port (403, never contacted)",
            "http://localhost:{trap}/", 403, trap=True),
    Refusal("refuse: the other port in threads mode (403, never contacted)",
            "http://127.0.0.1:{trap}/", 403, trap=True, extra="mode=threads"),
    Refusal("refuse: the other port in sequential mode (403, never "
            "contacted)", "http://127.0.0.1:{trap}/", 403, trap=True,
            extra="mode=sequential"),
    Refusal("refuse: 2130706433 (127.0.0.1 as a number) on another port",
            "http://2130706433:{trap}/", 403, trap=True),
    Refusal("refuse: 127.0.0.1. (trailing dot) on another port",
            "http://127.0.0.1.:{trap}/", 403, trap=True),
    Refusal("refuse: [::ffff:127.0.0.1] on another port",
            "http://[::ffff:127.0.0.1]:{trap}/", 403, trap=True),
    Refusal("refuse: http://169.254.169.254/ (metadata) is 403",
            "http://169.254.169.254/", 403),
    Refusal("refuse: http://169.254.169.254/latest/meta-data/ is 403",
            "http://169.254.169.254/latest/meta-data/", 403),
    Refusal("refuse: http://10.0.0.1/ is 403", "http://10.0.0.1/", 403),
    Refusal("refuse: https://10.0.0.1:8443/ is 403",
            "https://10.0.0.1:8443/", 403),
    Refusal("refuse: http://0.0.0.0:<port>/ is 403",
            "http://0.0.0.0:{port}/health", 403),
    Refusal("refuse: ftp://127.0.0.1:<server port>/ is 403",
            "ftp://127.0.0.1:{port}/", 403),
    Refusal("refuse: ftp:// to the trap is 403, never contacted",
            "ftp://127.0.0.1:{trap}/", 403, trap=True),
    Refusal("refuse: gopher:// to the trap is 403, never contacted",
            "gopher://127.0.0.1:{trap}/", 403, trap=True),
    Refusal("refuse: file:///etc/passwd is 403", "file:///etc/passwd", 403),
    Refusal("refuse: http://127.0.0.1@evil.example/ (user info) is 400",
            "http://127.0.0.1@evil.example/", 400),
    Refusal("refuse: http://user:pw@127.0.0.1:<server port>/ is 400",
            "http://user:pw@127.0.0.1:{port}/health", 400),
    Refusal("refuse: empty user info http://@127.0.0.1:<port>/ is 400",
            "http://@127.0.0.1:{port}/health", 400),
    Refusal("refuse: user info to the trap is 400, never contacted",
            "http://user:pw@127.0.0.1:{trap}/", 400, trap=True),
    Refusal("refuse: 'not a url' is 400", "not a url", 400),
    Refusal("refuse: no scheme '127.0.0.1:<port>/health' is 400",
            "127.0.0.1:{port}/health", 400),
    Refusal("refuse: port 0 is 400", "http://127.0.0.1:0/", 400),
    Refusal("refuse: port 65536 is 400", "http://127.0.0.1:65536/", 400),
]


def refusal_case(case, fixtures):
    def run(srv, ctx):
        ports = fixtures.ports(srv)
        url = case.url.format(**ports)
        fixtures.trap.mark()
        resp, body, _ = get(srv, "/run/fetch?" + url_query([url],
                                                          case.extra))
        check(resp.status == case.status, "status %d, expected %d; body %r"
              % (resp.status, case.status, resp.body[:200]))
        err = expect_error_shape(resp)
        expect_value("error.message", err["message"], Contains("'url'"))
        if case.trap:
            hits = fixtures.trap.connections()
            check(hits == 0, "the refused target accepted %d connection(s)"
                  % hits)
    return run


def case_refuse_mixed(fixtures):
    """One refused URL refuses the whole request before anything is
    fetched: the allowed URL next to it is not fetched either (its path is
    not in the server's access log, where the same URL fetched alone
    appears)."""
    def run(srv, ctx):
        tag = uuid.uuid4().hex[:12]
        alone = "http://127.0.0.1:%d/alone-%s" % (srv.port, tag)
        get_ok(srv, "/run/fetch?" + url_query([alone]))
        check(srv.wait_log(r"GET /alone-%s 404" % tag, scaled(2.0)),
              "the control fetch is not in the access log; tail: %s"
              % srv.log_tail(3))
        fixtures.trap.mark()
        skipped = "http://127.0.0.1:%d/mixed-%s" % (srv.port, tag)
        trap = "http://127.0.0.1:%d/" % fixtures.trap.port
        resp, body, _ = get(srv, "/run/fetch?" + url_query([skipped, trap]))
        check(resp.status == 403, "status %d, expected 403; body %r"
              % (resp.status, resp.body[:200]))
        expect_error_shape(resp)
        hits = fixtures.trap.connections()
        check(hits == 0, "the refused target accepted %d connection(s)"
              % hits)
        time.sleep(0.2)  # the access log is flushed every 100 ms
        check("GET /mixed-%s" % tag not in srv.log(),
              "the allowed URL next to a refused one was fetched")
    return run


def case_refuse_ipv6(fixtures):
    """A server bound to 127.0.0.1 refuses [::1] on its own port (403); a
    socket of ours listening on [::1]:<that port> accepts nothing."""
    def run(srv, ctx):
        if not fixtures.ipv6:
            raise harness.Skipped("::1 is not available here")
        try:
            trap = Trap("::1", srv.port)
        except OSError as e:
            raise harness.Skipped("cannot listen on [::1]:%d: %s"
                                  % (srv.port, e))
        try:
            trap.mark()
            url = "http://[::1]:%d/health" % srv.port
            resp, body, _ = get(srv, "/run/fetch?" + url_query([url]))
            check(resp.status == 403, "status %d, expected 403; body %r"
                  % (resp.status, resp.body[:200]))
            expect_error_shape(resp)
            hits = trap.connections()
            check(hits == 0, "[::1]:%d accepted %d connection(s)"
                  % (srv.port, hits))
        finally:
            trap.close()
    return run


# --------------------------------------------------------------------------
# A server bound to ::1


def case_ipv6_self(srv, ctx):
    """Bound to ::1, the server's own [::1] address is allowed."""
    url = "http://[::1]:%d/health" % srv.port
    _, body, took = get_ok(srv, "/run/fetch?" + url_query([url]))
    case = FetchRun("", "async", urls=[url])
    check_fetch(srv, case, {}, body, took)


def case_ipv6_count(srv, ctx):
    """count+ms targets the server's own /delay at [::1]."""
    _, body, took = get_ok(srv, "/run/fetch?count=2&ms=10")
    case = FetchRun("", "async", count=2, ms=10, min_ms=10)
    check_fetch(srv, case, {}, body, took)


def case_ipv6_refuses_v4(srv, ctx):
    """Bound to ::1, 127.0.0.1 on the same port is not the server: 403,
    and our socket on 127.0.0.1:<that port> accepts nothing."""
    try:
        trap = Trap(harness.LOOPBACK, srv.port)
    except OSError as e:
        raise harness.Skipped("cannot listen on 127.0.0.1:%d: %s"
                              % (srv.port, e))
    try:
        trap.mark()
        url = "http://127.0.0.1:%d/health" % srv.port
        resp, body, _ = get(srv, "/run/fetch?" + url_query([url]))
        check(resp.status == 403, "status %d, expected 403; body %r"
              % (resp.status, resp.body[:200]))
        expect_error_shape(resp)
        hits = trap.connections()
        check(hits == 0, "127.0.0.1:%d accepted %d connection(s)"
              % (srv.port, hits))
    finally:
        trap.close()


# --------------------------------------------------------------------------
# Redirects (the helper is allowed with --allow-host 127.0.0.1:<helper>)


class Redirect:
    """A fetch of one helper path: the task's status and error, and the
    helper paths that must (hit) and must not (not_hit) have been asked
    for. rtrap: the redirect trap must accept nothing."""

    def __init__(self, name, path, status, error, mode="async", hit=(),
                 not_hit=(), rtrap=False):
        self.name, self.path, self.status, self.error = name, path, status, \
            error
        self.mode, self.hit, self.not_hit, self.rtrap = mode, hit, not_hit, \
            rtrap


REDIRECTS = [
    Redirect("redirect: helper /ok is fetched (the allow-list entry works)",
             "/ok", 200, OK, hit=["/ok"]),
    Redirect("redirect: 302 to another port of 127.0.0.1 is an error, "
             "never contacted", "/to-trap", 302, ERR, hit=["/to-trap"],
             rtrap=True),
    Redirect("redirect: the same in threads mode", "/to-trap", 302, ERR,
             mode="threads", hit=["/to-trap"], rtrap=True),
    Redirect("redirect: the same in sequential mode", "/to-trap", 302, ERR,
             mode="sequential", hit=["/to-trap"], rtrap=True),
    Redirect("redirect: 302 to localhost:<other port> is an error, never "
             "contacted", "/to-trap-localhost", 302, ERR,
             hit=["/to-trap-localhost"], rtrap=True),
    Redirect("redirect: 302 to ftp:// is an error, never contacted",
             "/to-trap-ftp", 302, ERR, hit=["/to-trap-ftp"], rtrap=True),
    Redirect("redirect: 302 to the server's own /health is followed",
             "/to-self", 200, OK, hit=["/to-self"]),
    Redirect("redirect: 3 redirects are followed", "/chain/3", 200, OK,
             hit=["/chain/3", "/chain/2", "/chain/1", "/chain/0"]),
    Redirect("redirect: a 4th redirect is an error, not followed",
             "/chain/4", 302, ERR,
             hit=["/chain/4", "/chain/3", "/chain/2", "/chain/1"],
             not_hit=["/chain/0"]),
]


def redirect_case(case, fixtures):
    def run(srv, ctx):
        helper = fixtures.helper
        helper.self_port = srv.port
        helper.reset()
        fixtures.redirect_trap.mark()
        url = "http://127.0.0.1:%d%s" % (helper.port, case.path)
        extra = "" if case.mode == "async" else "mode=" + case.mode
        _, body, took = get_ok(srv, "/run/fetch?" + url_query([url], extra),
                               timeout=scaled(20.0))
        fetch = FetchRun("", case.mode, urls=[url], statuses=case.status,
                         errors=case.error,
                         failed=0 if case.error is OK else 1)
        check_fetch(srv, fetch, {}, body, took)
        hits = helper.hit_counts()
        for path in case.hit:
            check(hits.get(path, 0) == 1, "helper %s asked %d times, "
                  "expected once (all: %s)" % (path, hits.get(path, 0),
                                               hits))
        for path in case.not_hit:
            check(path not in hits, "helper %s was asked for (all: %s)"
                  % (path, hits))
        if case.rtrap:
            n = fixtures.redirect_trap.connections()
            check(n == 0, "the redirect target accepted %d connection(s)"
                  % n)
        error = body["tasks"][0]["error"]
        return "error: %s" % error if error else "status %d" % \
            body["tasks"][0]["status"]
    return run


# --------------------------------------------------------------------------
# Body cap (--fetch-max-bytes 100; the helper allowed)


TOO_BIG = Contains("body larger than %d bytes" % FETCH_MAX_BYTES)
HELPER = "http://127.0.0.1:{helper}"

CAP_RUNS = [
    FetchRun("cap: own /health (> 100 bytes) is 'body larger than 100 "
             "bytes'", "async", urls=[SELF + "/health"], errors=TOO_BIG,
             failed=1),
    FetchRun("cap: the same in threads mode", "threads",
             urls=[SELF + "/health"], extra="mode=threads", errors=TOO_BIG,
             failed=1),
    FetchRun("cap: the same in sequential mode", "sequential",
             urls=[SELF + "/health"], extra="mode=sequential",
             errors=TOO_BIG, failed=1),
    FetchRun("cap: exactly 100 bytes is fine", "async",
             urls=[HELPER + "/bytes/100"]),
    FetchRun("cap: 101 bytes is too large", "async",
             urls=[HELPER + "/bytes/101"], errors=TOO_BIG, failed=1),
    FetchRun("cap: a chunked body of 100 bytes is fine", "async",
             urls=[HELPER + "/chunked/100"]),
    FetchRun("cap: a chunked body of 5000 bytes is too large", "async",
             urls=[HELPER + "/chunked/5000"], errors=TOO_BIG, failed=1),
    FetchRun("cap: a 1 MB body is cut (too large)", "async",
             urls=[HELPER + "/bytes/1000000"], errors=TOO_BIG, failed=1),
    FetchRun("cap: small bodies (/delay, 34 bytes) still pass", "async",
             count=3, ms=0),
]


# --------------------------------------------------------------------------
# A client that leaves mid-fetch


RUN_DEADLINE_MS = 600
RUN_DEADLINE_TARGETS = [
    # (target, what would take without the whole-run deadline)
    ("/run/sleep?mode=sequential&tasks=6&ms=300", "1800 ms in a row"),
    ("/run/sleep?mode=threads&tasks=40&ms=400", "two waves of 32: 800 ms"),
    ("/run/sleep?mode=gil&tasks=40&ms=400", "two waves of 32: 800 ms"),
    ("/run/fetch?mode=sequential&count=6&ms=300", "1800 ms in a row"),
]


def run_deadline_case(target, without):
    """Every task is within --job-timeout-ms, but the run is not: it is
    stopped at the deadline with a 504 naming it, not after every wave."""
    def run(srv, ctx):
        resp, body, took = get(srv, target, timeout=scaled(10.0))
        took *= 1000
        check(resp.status == 504, "status %d after %.0f ms (%s without the "
              "deadline): %s" % (resp.status, took, without, _short(body)))
        expect_error_shape(resp)
        message = body["error"]["message"]
        check("the run exceeded its %d ms deadline" % RUN_DEADLINE_MS
              in message, "message %r" % message)
        check(RUN_DEADLINE_MS * 0.9 <= took < RUN_DEADLINE_MS +
              scaled(250), "504 after %.0f ms, deadline %d ms"
              % (took, RUN_DEADLINE_MS))
        wait_health(srv, lambda b: json_path(b, "pools.threads.busy") == 0,
                    scaled(5.0), "no demo thread busy")
        return "504 after %.0f ms" % took
    return run


def case_client_gone(srv, ctx):
    """A client asks /run/fetch?count=20&ms=2000 and leaves after 200 ms:
    within ~5 s the loop has no transfer left, only /health is in flight,
    and the server still serves fetches."""
    before = loop_stats(health(srv))
    sock = socket.create_connection((srv.host, srv.port),
                                    timeout=harness.SOCKET_TIMEOUT_S)
    try:
        sock.sendall(build_request("GET", "/run/fetch?count=20&ms=2000"))
        time.sleep(0.2)
    finally:
        sock.close()
    left_at = time.monotonic()
    t0 = time.monotonic()
    body = health(srv)
    took = time.monotonic() - t0
    check(took < scaled(1.0), "/health took %.2f s after the client left"
          % took)
    seen = loop_stats(body)["transfers"]
    check(seen > 0, "no transfer in flight 200 ms into the fetch (%s): the "
          "case proves nothing" % loop_stats(body))
    body = wait_health(
        srv, lambda b: loop_stats(b)["transfers"] == 0 and
        json_path(b, "pools.http.in_flight") == 1, scaled(5.0),
        "loop.transfers == 0 and http.in_flight == 1")
    settled = time.monotonic() - left_at
    after = loop_stats(body)
    expect_value("loop.timers", after["timers"], 0)
    check(after["transfers_done"] - before["transfers_done"] == 20,
          "transfers_done went from %d to %d, expected +20"
          % (before["transfers_done"], after["transfers_done"]))
    _, body, took = get_ok(srv, "/run/fetch?count=2&ms=10")
    check_fetch(srv, FetchRun("", "async", count=2, ms=10), {}, body, took)
    return "%d transfers in flight when it left; settled after %.1f s" % (
        seen, settled)


# --------------------------------------------------------------------------
# Half-closed and closed clients

HALF_TARGET = "/run/sleep?mode=sequential&tasks=1&ms=300"


def sleep_statuses(srv, status):
    """conlab_http_requests_total of /run/sleep with this status."""
    code, _, body = harness.http_get(srv.port, "/metrics",
                                     timeout=scaled(5.0), host=srv.host)
    check(code == 200, "GET /metrics answered %d" % code)
    total = 0
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("conlab_http_requests_total{") and \
                'route="/run/sleep"' in line and \
                'status="%s"' % status in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def read_until_close(sock, timeout):
    """Everything the server sends until it closes: (interim 1xx statuses,
    the final Response)."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
    interim = []
    while buf.startswith(b"HTTP/1.1 1") and b"\r\n\r\n" in buf:
        end = buf.find(b"\r\n\r\n")
        interim.append(int(buf[9:12]))
        del buf[:end + 4]
    resp = harness.Response()
    resp.raw = bytes(buf)
    harness._parse_into(resp, resp.raw, False)
    return interim, resp


def case_half_close(srv, ctx):
    """A client sends its request, then shutdown(SHUT_WR), and reads: a
    legal HTTP/1.1 half-close, not a departure. It gets its 200 (after at
    most one interim 100 Continue) and nothing is counted 499."""
    gone_before = sleep_statuses(srv, 499)
    # The only demo thread is busy first, so the run starts (and checks
    # its client) after the FIN has arrived.
    blocker = Background(srv.port, HALF_TARGET, scaled(10.0),
                         host=srv.host).start()
    sock = None
    try:
        wait_health(srv, lambda b: json_path(b, "pools.threads.busy") == 1,
                    scaled(5.0), "the blocking run started")
        sock = socket.create_connection((srv.host, srv.port),
                                        timeout=harness.SOCKET_TIMEOUT_S)
        sock.sendall(build_request("GET", HALF_TARGET))
        sock.shutdown(socket.SHUT_WR)
        interim, resp = read_until_close(sock, scaled(10.0))
    finally:
        if sock is not None:
            sock.close()
        blocker.join(scaled(10.0))
    check(resp.status == 200, "half-closed client got %s %r (interim %s)"
          % (resp.status, resp.body[:120], interim))
    check(interim in ([], [100]), "interim responses %s" % interim)
    body = resp.json()
    expect_value("demo", body.get("demo"), "sleep")
    expect_value("tasks", len(body.get("tasks", [])), 1)
    check(body["tasks"][0].get("error") is None,
          "task error %r" % body["tasks"][0].get("error"))
    expect_value("499s of /run/sleep", sleep_statuses(srv, 499), gone_before)
    return "200 after interim %s" % interim


# Older keep-alive connections opened one after another (each answered
# before the next opens), so that both request threads hold some.
HALF_IDLE_CONNECTIONS = 8
HALF_BEHIND_TARGETS = ["/delay?ms=100",
                       "/run/sleep?mode=sequential&tasks=1&ms=100"]
HALF_BEHIND_ROUNDS = 3


def case_half_close_behind_idle(srv, ctx):
    """Half-closed clients of suspended requests get their 200 while older
    keep-alive connections are open on the request threads. libmicrohttpd
    0.9.75 read a resumed connection's FIN before it asked for the answer
    and closed it ("connection ended: 1") unless that connection was the
    oldest of its thread: a lone half-closed client worked, one behind an
    idle keep-alive connection did not."""
    idle = []
    keep = [("Connection", "keep-alive")]
    try:
        for i in range(HALF_IDLE_CONNECTIONS):
            sock = socket.create_connection((srv.host, srv.port),
                                            timeout=harness.SOCKET_TIMEOUT_S)
            idle.append(sock)
            sock.sendall(build_request("GET", "/health", headers=keep))
            resp = harness.read_response(sock, timeout=scaled(5.0))
            check(resp.status == 200 and not resp.closed,
                  "keep-alive connection %d: %s %r" % (i, resp.status,
                                                       resp.error))
        interims = collections.Counter()
        for i in range(HALF_BEHIND_ROUNDS * len(HALF_BEHIND_TARGETS)):
            target = HALF_BEHIND_TARGETS[i % len(HALF_BEHIND_TARGETS)]
            sock = socket.create_connection((srv.host, srv.port),
                                            timeout=harness.SOCKET_TIMEOUT_S)
            try:
                sock.sendall(build_request("GET", target))
                sock.shutdown(socket.SHUT_WR)
                interim, resp = read_until_close(sock, scaled(10.0))
            finally:
                sock.close()
            check(resp.status == 200,
                  "request %d, %s, half-closed behind %d keep-alive "
                  "connections: got %s %r (interim %s)"
                  % (i, target, len(idle), resp.status, resp.body[:120],
                     interim))
            check(interim in ([], [100]), "interim responses %s" % interim)
            interims[len(interim)] += 1
        # The older connections were left alone and still serve.
        for i, sock in enumerate(idle):
            sock.sendall(build_request("GET", "/health", headers=keep))
            resp = harness.read_response(sock, timeout=scaled(5.0))
            check(resp.status == 200,
                  "keep-alive connection %d afterwards: %s %r"
                  % (i, resp.status, resp.error))
    finally:
        for sock in idle:
            sock.close()
    n = HALF_BEHIND_ROUNDS * len(HALF_BEHIND_TARGETS)
    return "%d of %d answered 200 (%d after a 100 Continue)" % (
        n, n, interims[1])


def closed_case(after_s):
    def run(srv, ctx):
        """A client that sends its request and closes its socket (after
        after_s: before the run starts, or while it runs) is gone: its
        request is counted 499, not answered 200."""
        gone_before = sleep_statuses(srv, 499)
        ok_before = sleep_statuses(srv, 200)
        sock = socket.create_connection((srv.host, srv.port),
                                        timeout=harness.SOCKET_TIMEOUT_S)
        try:
            sock.sendall(build_request("GET", HALF_TARGET))
            if after_s:
                time.sleep(after_s)
        finally:
            sock.close()
        deadline = time.monotonic() + scaled(5.0)
        while sleep_statuses(srv, 499) == gone_before and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        expect_value("499s of /run/sleep", sleep_statuses(srv, 499),
                     gone_before + 1)
        expect_value("200s of /run/sleep", sleep_statuses(srv, 200),
                     ok_before)
        wait_health(srv, lambda b: json_path(b, "pools.http.in_flight") == 1
                    and json_path(b, "pools.threads.busy") == 0, scaled(5.0),
                    "http.in_flight == 1, no demo thread busy")
        return "counted 499"
    return run


# --------------------------------------------------------------------------
# Shutdown with the loop busy


def case_shutdown_loop(srv, ctx):
    """SIGTERM with /run/sleep?tasks=100&ms=10000, /delay?ms=10000 and
    /run/fetch?count=5&ms=10000 in flight, --grace-ms 300: exit 0 within
    3 s; every client gets 503 or a closed connection. The fetches' own
    /delay requests, whose client (the fetch) is gone by then, are closed
    without libmicrohttpd's "Application reported internal error" warning
    for each (the access log counts them)."""
    targets = ["/run/sleep?tasks=100&ms=10000", "/delay?ms=10000",
               "/run/fetch?count=5&ms=10000"]
    jobs = [Background(srv.port, t, scaled(30.0), host=srv.host).start()
            for t in targets]
    try:
        wait_health(srv, lambda b: loop_stats(b)["timers"] >= 106 and
                    loop_stats(b)["transfers"] == 5, scaled(5.0),
                    "106 timers and 5 transfers in flight")
        children = harness.children_of(srv.pid)
        note = stop_and_check(srv, signal.SIGTERM, 3.0 * harness.TIME_SCALE,
                              children, ("received SIGTERM", "stopped"))
    finally:
        for job in jobs:
            job.join(scaled(10.0))
    outcomes = []
    for job in jobs:
        what = job.target
        check(job.done, "%s: still unanswered %.0f s after the exit"
              % (what, scaled(10.0)))
        check(job.elapsed < scaled(5.0), "%s: answered after %.1f s"
              % (what, job.elapsed))
        if job.exc is None and job.resp.status is not None:
            check(job.resp.status == 503, "%s: %s, expected 503 or a closed "
                  "connection" % (what, job.describe()))
            expect_error_shape(job.resp)
            outcomes.append("503")
        else:
            check(job.exc is not None or job.resp.closed,
                  "%s: %s" % (what, job.describe()))
            outcomes.append("closed")
    noise = srv.log().count("Application reported internal error")
    expect_value("libmicrohttpd's internal-error warnings", noise, 0)
    return "%s; %s" % (note, ", ".join(outcomes))


# --------------------------------------------------------------------------
# Safety options that fail to set: failopt.c, preloaded, makes one
# curl_easy_setopt() option fail for real (CONLAB_TEST_FAIL_CURLOPT).

FAILOPT_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "failopt.c")
FAILOPT_ENV = "CONLAB_TEST_FAIL_CURLOPT"
# The options the fetch policy rests on, by number: CURLOPTTYPE_* base plus
# index, fixed by libcurl's ABI (curl/curl.h).
# (name, number, the title of its group: loop-setopt-<title>)
SAFETY_OPTIONS = [
    ("CURLOPT_PROTOCOLS_STR", 10318, "protocols"),
    ("CURLOPT_REDIR_PROTOCOLS_STR", 10319, "redir"),
    ("CURLOPT_OPENSOCKETFUNCTION", 20163, "opensocket"),
]
FETCH_MODES = ["sequential", "threads", "async"]
DELAY_ROUTE = (("method", "GET"), ("route", "/delay"), ("status", "200"))
REFUSED_LINE = r"ERROR fetch: %s failed: [^\n]*; the transfer is refused"

_failopt = None  # (path of the built shim or None, why not)


def failopt_library():
    """Builds failopt.c into a temporary directory once: (path, None), or
    (None, reason) when there is no C compiler. A compiler that fails is
    (None, its message) too, but that reason fails the cases instead of
    skipping them."""
    global _failopt
    if _failopt is not None:
        return _failopt
    cc = shlex.split(os.environ.get("CC") or "cc")
    if not shutil.which(cc[0]):
        _failopt = (None, "skip: no C compiler (%s) to build failopt.c"
                    % cc[0])
        return _failopt
    tmp = tempfile.mkdtemp(prefix="conlab-failopt-")
    harness.add_cleanup(lambda: shutil.rmtree(tmp, ignore_errors=True))
    lib = os.path.join(tmp, "failopt.so")
    rc, out, err = harness.run_command(
        cc + ["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o", lib,
              FAILOPT_SOURCE, "-ldl"], timeout=120.0)
    if rc != 0:
        _failopt = (None, "building failopt.c failed (%s): %s"
                    % (rc, (err or out).strip()[-400:]))
    else:
        _failopt = (lib, None)
    return _failopt


def failopt_env(option):
    """The environment of a server with failopt.c preloaded, failing the
    option numbered option (None: no option fails); None when the shim
    could not be built (the cases then say why)."""
    lib, _ = failopt_library()
    if lib is None:
        return None
    env = {"LD_PRELOAD": lib}
    if option is not None:
        env[FAILOPT_ENV] = str(option)
    if harness.SANITIZER == "asan":
        # ASan wants its runtime first among the loaded libraries; the
        # shim intercepts nothing ASan does.
        env["ASAN_OPTIONS"] = ":".join(
            filter(None, [os.environ.get("ASAN_OPTIONS"),
                          "verify_asan_link_order=0"]))
    return env


def need_failopt():
    _, why = failopt_library()
    if why is not None and why.startswith("skip: "):
        raise harness.Skipped(why[len("skip: "):])
    check(why is None, why)


def delay_requests(srv):
    """GET /delay answered 200 so far, from /metrics (a scrape that sees
    every earlier request counted)."""
    import ops  # its scraper; ops does not import this module
    _, samples = ops.quiet_scrape(srv.port)
    return samples.get(("conlab_http_requests_total", DELAY_ROUTE), 0.0)


def setopt_case(option, mode, fixtures):
    """GET /run/fetch of the server's own /delay and of the trap (allowed
    to this server) in mode. option (a name) fails to set: each URL's
    error names it, nothing is contacted, one ERROR line per transfer.
    option None (the shim preloaded, nothing failing): both are fetched
    (the /delay counter moves, the trap is hit), so the checks above can
    see a contact."""
    def run(srv, ctx):
        need_failopt()
        urls = ["http://127.0.0.1:%d/delay?ms=1" % srv.port,
                "http://127.0.0.1:%d/" % fixtures.trap.port]
        delays = delay_requests(srv)
        log_at = len(srv.log())
        fixtures.trap.mark()
        _, body, _ = get_ok(srv, "/run/fetch?" + url_query(
            urls, "mode=" + mode), timeout=scaled(10.0))
        tasks = check_shape(body, "fetch", mode, {"url": urls}, len(urls))
        check_lanes(tasks, mode, body["wall_ms"])
        hits = fixtures.trap.connections()
        delays = delay_requests(srv) - delays
        logged = srv.log()[log_at:]
        if option is None:
            expect_value("tasks[0] (/delay)", [tasks[0][k] for k in
                                               ("status", "error")],
                         [200, None])
            expect_value("tasks[1].error (trap)", tasks[1]["error"],
                         NonEmptyStr())
            expect_value("result.ok", json_path(body, "result.ok"), 1)
            check(delays == 1, "/delay was answered %d times, expected 1"
                  % delays)
            check(hits == 1, "the trap saw %d connections, expected 1"
                  % hits)
            check("the transfer is refused" not in logged,
                  "a transfer was refused: %s" % _short(logged, 300))
            return "both fetched"
        for i, t in enumerate(tasks):
            expect_value("tasks[%d].error" % i, t["error"],
                         "the transfer could not be configured (%s)"
                         % option)
            expect_value("tasks[%d].status" % i, t["status"], 0)
        expect_value("result", body["result"],
                     {"ok": 0, "failed": len(urls), "bytes": 0})
        check(delays == 0, "/delay was answered %d times" % delays)
        check(hits == 0, "the trap accepted %d connection(s)" % hits)
        lines = re.findall(REFUSED_LINE % re.escape(option), logged)
        check(len(lines) == len(urls), "%d '%s failed' lines for %d "
              "refused transfers; log: %s" % (len(lines), option,
                                              len(urls), _short(logged, 300)))
        errors = logged.count(" ERROR ")
        check(errors == len(urls), "%d ERROR lines, expected %d: %s"
              % (errors, len(urls), _short(logged, 300)))
        return body["tasks"][0]["error"]
    return run


def setopt_groups(base, fixtures):
    """A server per failing option, and one with the shim and no failing
    option (the control)."""
    allow_trap = ["--allow-host", "127.0.0.1:%d" % fixtures.trap.port]
    groups = []
    for name, number, title in SAFETY_OPTIONS + [(None, None, "control")]:
        what = ("%s fails: refused" % name) if name else \
            "shim, no option fails: fetched"
        groups.append(("loop-setopt-" + title, base + allow_trap,
                       failopt_env(number),
                       [("setopt: %s, %s" % (what, mode),
                         setopt_case(name, mode, fixtures))
                        for mode in FETCH_MODES]))
    return groups


# --------------------------------------------------------------------------
# Groups

_fixtures = None


def get_fixtures():
    global _fixtures
    if _fixtures is None:
        _fixtures = Fixtures()
    return _fixtures


def server_groups(web_root):
    """(title, extra args, environment, cases) for run.py's server_group."""
    fx = get_fixtures()
    base = ["--web-root", web_root, "--threads", "2", "--grace-ms", "1000"]
    workers = ["--workers", str(WORKERS)]
    allow_dead = ["--allow-host", "127.0.0.1:%d" % fx.dead.port]
    allow_helper = ["--allow-host", "127.0.0.1:%d" % fx.helper.port]
    main = (
        [("validation: %s is 400 naming it" % name,
          bad_param_case(target, param)) for name, target, param in
         BAD_PARAMS]
        + [("delay: ms=200 waits 200 ms", delay_case(200)),
           ("delay: ms=0 answers at once", delay_case(0)),
           ("delay: no ms is 0", delay_case(None)),
           ("health: pools.loop counts timers and transfers",
            case_loop_health),
           ("delay: 200 concurrent ms=500 on 2 request threads",
            case_delay_concurrent)]
        + [(c.name, sleep_case(c)) for c in SLEEP_RUNS]
        + [(c.name, fetch_case(c, fx)) for c in FETCH_RUNS]
        + [(c.name, refusal_case(c, fx)) for c in REFUSALS]
        + [("refuse: one refused URL refuses the request, nothing fetched",
            case_refuse_mixed(fx)),
           ("refuse: [::1] when bound to 127.0.0.1 (403, never contacted)",
            case_refuse_ipv6(fx))])
    groups = [
        ("loop", base + workers + ["--demo-threads", str(DEMO_THREADS)]
         + allow_dead, None, main),
        ("loop-waves", base + workers + ["--demo-threads",
                                         str(WAVE_THREADS)], None,
         [(c.name, sleep_case(c)) for c in WAVE_RUNS]),
        ("loop-redirect", base + workers + allow_helper, None,
         [(c.name, redirect_case(c, fx)) for c in REDIRECTS]),
        ("loop-cap", base + workers + allow_helper
         + ["--fetch-max-bytes", str(FETCH_MAX_BYTES)], None,
         [(c.name, fetch_case(c, fx)) for c in CAP_RUNS]),
        ("loop-run-deadline", base + workers + [
            "--job-timeout-ms", str(RUN_DEADLINE_MS)], None,
         [("deadline: %s stops at the run's %d ms deadline"
           % (target, RUN_DEADLINE_MS), run_deadline_case(target, without))
          for target, without in RUN_DEADLINE_TARGETS]),
        ("loop-self-close", base + workers, None,
         [("fetch: self-fetches leave no connection open behind them",
           case_self_fetch_closes),
          ("start-up: the descriptor table covers --max-connections",
           case_fd_table)]),
        ("loop-self-listener", base + workers + ["--max-per-ip",
                                                 str(PER_IP)], None,
         [("self listener: 127.0.0.1, its own port, /delay only",
           case_self_listener),
          ("self listener: self-fetches pass --max-per-ip, the public "
           "port keeps it", case_self_fetch_per_ip),
          ("self listener: its threads run %d nicer" % SELF_NICE,
           case_self_nice)]),
        ("loop-gone", base + workers, None,
         [("disconnect: client leaves mid-fetch; the loop settles",
           case_client_gone)]),
        ("half-close", base + workers + ["--demo-threads", "1"], None,
         [("half-close: request then shutdown(SHUT_WR) gets its 200",
           case_half_close),
          ("half-close: behind older keep-alive connections, every "
           "suspended request gets its 200", case_half_close_behind_idle),
          ("disconnect: a client closed at once is counted 499",
           closed_case(0)),
          ("disconnect: a client closed mid-run is counted 499",
           closed_case(0.1))]),
        ("loop-shutdown", ["--web-root", web_root, "--threads", "2",
                           "--workers", "1", "--grace-ms",
                           str(SHUTDOWN_GRACE_MS)], None,
         [("shutdown: SIGTERM with timers and transfers in flight",
           case_shutdown_loop)]),
    ]
    groups += setopt_groups(base + workers, fx)
    if fx.ipv6:
        groups.append(
            ("loop-ipv6", base + workers + ["--bind", "::1"], None,
             [("ipv6: bound to ::1, its own [::1] is fetched",
               case_ipv6_self),
              ("ipv6: count+ms fetches [::1]/delay", case_ipv6_count),
              ("ipv6: bound to ::1, 127.0.0.1 on its port is 403, never "
               "contacted", case_ipv6_refuses_v4)]))
    return groups

"""Integration tests of the operations features: GET /metrics (the
Prometheus text format checked by promtool, idle and under load; counters
that add up exactly to what was sent), X-Request-Id (generated, echoed,
replaced, on every kind of answer), --log-format json (every line of
the server's stderr a JSON object; access lines carrying the id the client
got) and the accept thread (a burst of connections dealt out evenly among
the request threads, as the ids show; --max-connections held exactly).

Used by run.py (server_groups() below adds its groups to the run):
python3 tests/integration/run.py --binary build/conlab --group ops

Counting: a scrape is parsed into {(name, labels): value}; a case scrapes
before and after sending an exact mix (MIX: request, route label, status),
and compares every delta. A request is counted when libmicrohttpd reports
it completed, which may be just after the client has read the answer, so
the "after" scrape is retried (bounded) until the deltas match; each
scrape counts itself under route="/metrics" once completed, which the
expected deltas include.

Every server is started by harness.Server on 127.0.0.1 and stopped by its
PID; promtool runs with a time limit. Every wait is bounded and every
time limit is multiplied by harness.TIME_SCALE.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import harness
from harness import (
    Background, CheckFailed, build_request, check, expect_error_shape,
    raw_exchange, stop_and_check)

PROM_CTYPE = "text/plain; version=0.0.4; charset=utf-8"
PROMTOOL = "promtool"  # Debian's prometheus package; make test installs it
PROMTOOL_TIMEOUT_S = 60.0
ID_RE = re.compile(r"^[0-9a-f]{20}$")
ID_CHARS = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
            "0123456789._-")
LOG_TARGET_MAX = 200   # server/log.h: bytes of target in an access line
SETTLE_S = 5.0         # how long counters may lag the answers
LOAD_THREADS = 8
LONG_SLEEP_MS = 4000   # in flight during the scrapes under load
WORKERS = 2

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')

REQUESTS = "conlab_http_requests_total"
DURATION = "conlab_http_request_duration_seconds"


# --------------------------------------------------------------------------
# Scraping and parsing


def parse_metrics(text):
    """{(name, ((label, value), ...)): float} of a Prometheus text; labels
    sorted. Raises CheckFailed on a line that is not a comment or a
    sample, or on a sample written twice."""
    samples = {}
    for n, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        check(m, "line %d is not a sample: %r" % (n, line[:120]))
        labels = []
        if m.group(2):
            pos = 0
            for lm in LABEL_RE.finditer(m.group(2)):
                check(lm.start() == pos, "bad labels on line %d: %r"
                      % (n, line[:120]))
                labels.append((lm.group(1), lm.group(2)))
                pos = lm.end()
            check(pos == len(m.group(2)), "bad labels on line %d: %r"
                  % (n, line[:120]))
        key = (m.group(1), tuple(sorted(labels)))
        check(key not in samples, "sample written twice: %r" % line)
        samples[key] = float(m.group(3))
    return samples


def key(name, **labels):
    return (name, tuple(sorted(labels.items())))


def scrape(port):
    """One GET /metrics on its own connection: (response, samples)."""
    resp = raw_exchange(port, build_request("GET", "/metrics"))
    check(resp.status == 200, "GET /metrics: %s %s" % (resp.status,
                                                       resp.error))
    return resp, parse_metrics(resp.body.decode("utf-8"))


def quiet_scrape(port):
    """A scrape that counts every request completed before it: a request
    is counted just before it leaves the in-flight gauge, so a scrape that
    sees only itself in flight sees every earlier one counted. Bounded."""
    deadline = time.monotonic() + 5.0 * harness.TIME_SCALE
    while True:
        resp, samples = scrape(port)
        if samples.get(key("conlab_http_requests_in_flight")) == 1:
            return resp, samples
        check(time.monotonic() < deadline, "requests still in flight: %s"
              % samples.get(key("conlab_http_requests_in_flight")))
        time.sleep(0.01)


def family(samples, name):
    """{labels dict as sorted tuple: value} of one metric name."""
    return {labels: v for (n, labels), v in samples.items() if n == name}


def deltas(before, after, name):
    """{labels: after - before} for every series of name in either."""
    a, b = family(after, name), family(before, name)
    return {labels: a.get(labels, 0.0) - b.get(labels, 0.0)
            for labels in set(a) | set(b)}


def nonzero(d):
    return {k: v for k, v in d.items() if v != 0}


def show(d):
    return ", ".join("%s=%g" % (",".join("%s:%s" % kv for kv in k), v)
                     for k, v in sorted(d.items())) or "(none)"


def promtool_path():
    path = shutil.which(PROMTOOL) or (
        "/usr/bin/promtool" if os.access("/usr/bin/promtool", os.X_OK)
        else None)
    check(path, "promtool not found (Debian package 'prometheus'; "
          "make test installs it)")
    return path


def promtool_check(text):
    """promtool check metrics on text: raises CheckFailed with its
    output unless it passes (exit 0, nothing reported)."""
    with tempfile.TemporaryFile() as f:
        f.write(text.encode("utf-8"))
        f.seek(0)
        try:
            done = subprocess.run([promtool_path(), "check", "metrics"],
                                  stdin=f, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT,
                                  timeout=PROMTOOL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise CheckFailed("promtool ran over %.0f s" % PROMTOOL_TIMEOUT_S)
    out = done.stdout.decode("utf-8", "replace").strip()
    check(done.returncode == 0 and not out,
          "promtool check metrics: exit %d: %s" % (done.returncode,
                                                   out[:300]))


def check_histograms(samples):
    """Every route's duration histogram: the le ladder ascending to +Inf,
    cumulative, _count equal to the +Inf bucket, a _sum."""
    buckets = {}
    for (name, labels), v in samples.items():
        if name == DURATION + "_bucket":
            d = dict(labels)
            buckets.setdefault(d["route"], []).append((float(d["le"]), v))
    check(buckets, "no %s_bucket samples" % DURATION)
    for route, ladder in buckets.items():
        ladder.sort()
        check(ladder[-1][0] == float("inf"), "route %s: no +Inf bucket"
              % route)
        values = [v for _, v in ladder]
        check(values == sorted(values), "route %s: buckets not cumulative: "
              "%s" % (route, values))
        count = samples.get(key(DURATION + "_count", route=route))
        check(count == values[-1], "route %s: _count %s, +Inf bucket %s"
              % (route, count, values[-1]))
        check(key(DURATION + "_sum", route=route) in samples,
              "route %s: no _sum" % route)


# --------------------------------------------------------------------------
# Requests


def send(port, method, target, headers=(), body=b""):
    """One request on its own connection (Connection: close)."""
    return raw_exchange(port, build_request(method, target, list(headers),
                                            body),
                        head=(method == "HEAD"),
                        timeout=harness.SOCKET_TIMEOUT_S * harness.TIME_SCALE)


def health(port):
    resp = send(port, "GET", "/health")
    check(resp.status == 200, "GET /health: %s %s" % (resp.status,
                                                      resp.error))
    return resp.json()


def py_uri_quote(raw, out_len=LOG_TARGET_MAX):
    """server/uri.c uri_quote(): printable ASCII but ' kept, any other
    byte as \\xHH, cut with "..." to out_len - 1 bytes."""
    def quoted(b):
        return chr(b) if 0x20 <= b < 0x7f and b != 0x27 else "\\x%02x" % b
    parts = [quoted(b) for b in raw]
    cut = sum(len(p) for p in parts) > out_len - 1
    budget = out_len - 4 if cut else out_len - 1
    out = ""
    for p in parts:
        if len(out) + len(p) > budget:
            break
        out += p
    return out + ("..." if cut else "")


# --------------------------------------------------------------------------
# /metrics: format


def case_metrics_shape(srv, ctx):
    resp, samples = quiet_scrape(srv.port)
    check(resp.header("Content-Type") == PROM_CTYPE,
          "Content-Type %r, expected %r" % (resp.header("Content-Type"),
                                           PROM_CTYPE))
    check(resp.header("Cache-Control") == "no-store",
          "Cache-Control %r" % resp.header("Cache-Control"))
    check(ID_RE.match(resp.header("X-Request-Id") or ""),
          "X-Request-Id %r" % resp.header("X-Request-Id"))
    head = send(srv.port, "HEAD", "/metrics")
    check(head.status == 200 and head.header("Content-Type") == PROM_CTYPE,
          "HEAD /metrics: %s %r" % (head.status,
                                    head.header("Content-Type")))
    check(head.body == b"", "HEAD /metrics has a body")
    for name in (REQUESTS, DURATION + "_bucket", "conlab_pool_jobs_total",
                 "conlab_pool_worker_restarts_total", "conlab_fetches_total",
                 "conlab_demo_runs_total", "conlab_build_info",
                 "conlab_uptime_seconds", "conlab_http_requests_in_flight"):
        check(family(samples, name), "no %s sample" % name)
    check(samples[key("conlab_pool_workers")] == WORKERS,
          "conlab_pool_workers %s" % samples.get(key("conlab_pool_workers")))
    # The request that scraped is in flight while it is answered.
    check(samples[key("conlab_http_requests_in_flight")] >= 1,
          "requests in flight %s" %
          samples[key("conlab_http_requests_in_flight")])
    check_histograms(samples)
    return "%d samples" % len(samples)


def case_metrics_promtool_idle(srv, ctx):
    resp, _ = scrape(srv.port)
    promtool_check(resp.body.decode("utf-8"))


# What the load threads send: (method, target, statuses accepted).
LOAD = [
    ("GET", "/health", {200}),
    ("GET", "/run/prime?limit=1000&tasks=1", {200}),
    ("GET", "/run/sleep?ms=20&tasks=2", {200}),
    ("GET", "/delay?ms=10", {200}),
    ("GET", "/run/fetch?count=2&ms=5", {200}),
    ("GET", "/nope.txt", {404}),
    ("POST", "/health", {405}),
    ("GET", "/health?x=1", {400}),
    ("HEAD", "/index.html", {200}),
]


def case_metrics_promtool_under_load(srv, ctx):
    """8 threads send LOAD on keep-alive connections, a long sleep is in
    flight; three scrapes meanwhile must each pass promtool and show the
    in-flight requests."""
    stop = threading.Event()
    lock = threading.Lock()
    seen = {"sent": 0, "bad": []}
    timeout = harness.SOCKET_TIMEOUT_S * harness.TIME_SCALE

    def client(n):
        conn = None
        i = n
        while not stop.is_set():
            method, target, ok = LOAD[i % len(LOAD)]
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(
                        harness.LOOPBACK, srv.port, timeout=timeout)
                conn.request(method, target)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                status = repr(e)
                if conn is not None:
                    conn.close()
                    conn = None
            with lock:
                seen["sent"] += 1
                if status not in ok:
                    seen["bad"].append("%s %s: %s" % (method, target,
                                                      status))
        if conn is not None:
            conn.close()

    long_sleep = Background(srv.port, "/run/sleep?ms=%d&tasks=1"
                            % LONG_SLEEP_MS,
                            timeout=30.0 * harness.TIME_SCALE).start()
    threads = [threading.Thread(target=client, args=(n,), daemon=True)
               for n in range(LOAD_THREADS)]
    for t in threads:
        t.start()
    notes = []
    try:
        time.sleep(0.3)
        for _ in range(3):
            started = time.monotonic()
            resp, samples = scrape(srv.port)
            promtool_check(resp.body.decode("utf-8"))
            check_histograms(samples)
            in_flight = samples[key("conlab_http_requests_in_flight")]
            timers = samples[key("conlab_loop_timers")]
            # Scraped while the long sleep surely ran (a slow machine may
            # take longer over the three): it and the scrape are in flight.
            if started - long_sleep.started < LONG_SLEEP_MS / 1000.0 - 0.5:
                check(in_flight >= 2, "requests in flight %s under load"
                      % in_flight)
                check(timers >= 1, "no loop timer in flight (the long "
                      "sleep)")
                notes.append("%d in flight" % in_flight)
            time.sleep(0.3)
        check(notes, "no scrape while the long sleep was in flight")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout + 5)
    check(not any(t.is_alive() for t in threads), "load threads still run")
    check(long_sleep.join(30.0 * harness.TIME_SCALE),
          "the long sleep unanswered")
    check(long_sleep.resp and long_sleep.resp.status == 200,
          "the long sleep: %s" % long_sleep.describe())
    check(not seen["bad"], "unexpected answers under load: %s"
          % seen["bad"][:5])
    check(seen["sent"] >= LOAD_THREADS, "only %d requests sent"
          % seen["sent"])
    return "%d requests; scrapes saw %s" % (seen["sent"], ", ".join(notes))


# --------------------------------------------------------------------------
# /metrics: exact counts


class Mix:
    """count requests of method target (extra headers, body), answered
    status, counted under route label and method label."""

    def __init__(self, method, target, count, route, status, headers=(),
                 body=b"", method_label=None):
        self.method, self.target, self.count = method, target, count
        self.route, self.status = route, status
        self.headers, self.body = headers, body
        self.method_label = method_label or method


# The "ops-count" server runs --workers 1 --queue 1: a run holds one queue
# slot per lane it can use at once (a run of two process tasks on one worker
# holds one and runs them in turn), so a run of two demo-thread tasks, which
# would hold two, can never be admitted (400, counted as too_large); the
# other runs have one task each.
PRIME = "/run/prime?limit=1000"
MIX = [
    Mix("GET", "/health", 5, "/health", 200),
    Mix("HEAD", "/health", 2, "/health", 200),
    Mix("POST", "/health", 1, "/health", 405),
    Mix("GET", "/health?x=1", 1, "/health", 400),
    Mix("BREW", "/health", 1, "/health", 405, method_label="OTHER"),
    Mix("GET", "/index.html", 1, "/*", 200),
    Mix("HEAD", "/app.js", 1, "/*", 200),
    Mix("GET", "/nope.txt", 1, "/*", 404),
    Mix("DELETE", "/run/prime", 1, "/run/prime", 405),
    Mix("GET", PRIME + "&tasks=1&mode=processes", 3, "/run/prime", 200),
    Mix("GET", PRIME + "&tasks=1&mode=threads", 1, "/run/prime", 200),
    Mix("GET", PRIME + "&tasks=2&mode=sequential", 1, "/run/prime", 200),
    Mix("GET", PRIME + "&tasks=2&mode=processes", 1, "/run/prime", 200),
    Mix("GET", PRIME + "&tasks=2&mode=threads", 1, "/run/prime", 400),
    Mix("GET", "/run/prime?limit=1", 1, "/run/prime", 400),
    Mix("GET", "/run/square?numbers=1,2,3&tasks=1&mode=processes", 1,
        "/run/square", 200),
    Mix("GET", "/run/sleep?ms=5&tasks=1&mode=processes", 1, "/run/sleep",
        200),
    Mix("GET", "/run/sleep?ms=5&tasks=3", 1, "/run/sleep", 200),
    Mix("GET", "/run/fetch?count=3&ms=1", 1, "/run/fetch", 200),
    Mix("GET", "/run/fetch?count=1&ms=1&mode=threads", 1, "/run/fetch", 200),
    Mix("GET", "/delay?ms=1", 2, "/delay", 200),
    Mix("GET", "/metrics?x=1", 1, "/metrics", 400),
    Mix("POST", "/metrics", 1, "/metrics", 405),
    Mix("HEAD", "/metrics", 1, "/metrics", 200),
    Mix("GET", "/openapi.json", 1, "/openapi.json", 200),
    # Refused before routing: route "none".
    Mix("GET", "/%zz", 1, "none", 400),
    Mix("POST", "/health", 1, "none", 413,
        headers=[("Content-Length", "100000")]),
    Mix("GET", "/" + "a" * (5 * 1024), 1, "none", 414),
    Mix("GET", "/health", 1, "none", 431,
        headers=[("X-Big", "b" * (9 * 1024))]),
]
# The fetches of the mix are this server's own /delay, counted as well.
MIX_SELF_DELAYS = 3 + 1
MIX_RUNS = {  # (demo, mode, outcome): runs
    ("prime", "processes", "ok"): 4,
    ("prime", "threads", "ok"): 1,
    ("prime", "sequential", "ok"): 1,
    ("square", "processes", "ok"): 1,
    ("sleep", "processes", "ok"): 1,
    ("sleep", "async", "ok"): 1,
    ("fetch", "async", "ok"): 1,
    ("fetch", "threads", "ok"): 1,
}
MIX_JOBS = {"ok": 3 + 2 + 1 + 1}
MIX_ADMISSION = {"too_large": 1}
MIX_FETCHES = {"ok": 3 + 1}


def settle(port, before, expected_requests, scrapes_so_far=1):
    """Scrapes until the requests_total deltas since before equal
    expected_requests ({(route, method, status): n}, the scrapes
    themselves added here), bounded by SETTLE_S. Returns the last samples;
    raises CheckFailed with the difference."""
    deadline = time.monotonic() + SETTLE_S * harness.TIME_SCALE
    scrapes = scrapes_so_far  # completed /metrics GETs since before
    while True:
        want = dict(expected_requests)
        k = ("/metrics", "GET", "200")
        want[k] = want.get(k, 0) + scrapes
        _, after = scrape(port)
        scrapes += 1
        got = {}
        for labels, v in nonzero(deltas(before, after, REQUESTS)).items():
            d = dict(labels)
            got[(d["route"], d["method"], d["status"])] = v
        want = {k: v for k, v in want.items() if v}
        if got == want:
            return after
        if time.monotonic() > deadline:
            missing = {k: (got.get(k, 0), v) for k, v in want.items()
                       if got.get(k, 0) != v}
            extra = {k: v for k, v in got.items() if k not in want}
            raise CheckFailed("requests_total deltas (got, wanted): %s; "
                              "unexpected: %s" % (missing, extra))
        time.sleep(0.05)


def check_histogram_deltas(before, after):
    """Each route's _count delta equals its requests_total deltas."""
    per_route = {}
    for labels, v in deltas(before, after, REQUESTS).items():
        route = dict(labels)["route"]
        per_route[route] = per_route.get(route, 0) + v
    counts = {dict(labels)["route"]: v for labels, v in
              deltas(before, after, DURATION + "_count").items()}
    for route in set(per_route) | set(counts):
        check(per_route.get(route, 0) == counts.get(route, 0),
              "route %s: %s requests counted, histogram _count grew %s"
              % (route, per_route.get(route, 0), counts.get(route, 0)))
        if counts.get(route, 0) > 0:
            d = deltas(before, after, DURATION + "_sum")
            check(d.get((("route", route),), 0) > 0,
                  "route %s: _sum did not grow" % route)


def expect_family_deltas(before, after, name, label, wanted):
    """Deltas of name by one label equal wanted ({value: n}, others 0)."""
    got = {dict(k)[label]: v for k, v in
           nonzero(deltas(before, after, name)).items()}
    check(got == {k: v for k, v in wanted.items() if v},
          "%s deltas %s, expected %s" % (name, got, wanted))


def case_metrics_exact_mix(srv, ctx):
    _, before = quiet_scrape(srv.port)
    expected = {}
    for m in MIX:
        for _ in range(m.count):
            resp = send(srv.port, m.method, m.target, m.headers, m.body)
            check(resp.status == m.status, "%s %s: %s, expected %d (%s)"
                  % (m.method, m.target[:60], resp.status, m.status,
                     resp.error or resp.body[:120]))
        k = (m.route, m.method_label, str(m.status))
        expected[k] = expected.get(k, 0) + m.count
    k = ("/delay", "GET", "200")
    expected[k] = expected.get(k, 0) + MIX_SELF_DELAYS

    after = settle(srv.port, before, expected)
    check_histogram_deltas(before, after)
    runs = {(dict(k)["demo"], dict(k)["mode"], dict(k)["outcome"]): v
            for k, v in nonzero(deltas(before, after,
                                       "conlab_demo_runs_total")).items()}
    check(runs == MIX_RUNS, "conlab_demo_runs_total deltas %s, expected %s"
          % (runs, MIX_RUNS))
    expect_family_deltas(before, after, "conlab_pool_jobs_total", "outcome",
                         MIX_JOBS)
    expect_family_deltas(before, after, "conlab_fetches_total", "outcome",
                         MIX_FETCHES)
    expect_family_deltas(before, after, "conlab_admission_rejected_total",
                         "reason", MIX_ADMISSION)
    expect_family_deltas(before, after, "conlab_pool_worker_restarts_total",
                         "reason", {})
    return "%d requests" % sum(expected.values())


def case_metrics_full_queue(srv, ctx):
    """--workers 1 --queue 1: a 1.5 s process sleep holds the only queue
    slot; a second run is refused at once: 503 + Retry-After, counted by
    admission (the client's share of a 1-slot budget is that slot); the
    first one finishes."""
    hold = "/run/sleep?ms=1500&tasks=1&mode=processes"
    _, before = quiet_scrape(srv.port)
    polls = [0]

    def wait_pool(field, value):
        deadline = time.monotonic() + 10.0 * harness.TIME_SCALE
        while True:
            body = health(srv.port)
            polls[0] += 1
            if body["pools"]["process"][field] == value:
                return
            check(time.monotonic() < deadline, "pools.process.%s never %d"
                  % (field, value))
            time.sleep(0.01)

    timeout = 30.0 * harness.TIME_SCALE
    running = Background(srv.port, hold, timeout).start()
    wait_pool("busy", 1)
    refused = send(srv.port, "GET", "/run/sleep?ms=1&tasks=1&mode=processes")
    check(refused.status == 503, "second run: %s, expected 503 (%s)"
          % (refused.status, refused.error or refused.body[:120]))
    expect_error_shape(refused)
    check(b"queue budget" in refused.body, "503 names the queue budget: %s"
          % refused.body[:160])
    check(refused.header("Retry-After") == "1",
          "Retry-After %r" % refused.header("Retry-After"))
    check(ID_RE.match(refused.header("X-Request-Id") or ""),
          "X-Request-Id %r on the 503" % refused.header("X-Request-Id"))
    check(running.join(timeout), "the held job never answered")
    check(running.resp and running.resp.status == 200, "held job: %s"
          % running.describe())

    after = settle(srv.port, before, {
        ("/run/sleep", "GET", "200"): 1,
        ("/run/sleep", "GET", "503"): 1,
        ("/health", "GET", "200"): polls[0]})
    check_histogram_deltas(before, after)
    expect_family_deltas(before, after, "conlab_pool_jobs_total", "outcome",
                         {"ok": 15})
    expect_family_deltas(before, after, "conlab_admission_rejected_total",
                         "reason", {"client_share": 1})
    runs = {(dict(k)["demo"], dict(k)["mode"], dict(k)["outcome"]): v
            for k, v in nonzero(deltas(before, after,
                                       "conlab_demo_runs_total")).items()}
    want = {("sleep", "processes", "ok"): 1}
    check(runs == want, "conlab_demo_runs_total deltas %s, expected %s"
          % (runs, want))


def case_metrics_crash_restart(srv, ctx):
    """kill -9 of the idle worker (its pid from /health): one crash
    restart counted, no job failed, the pool back to full strength and
    serving."""
    _, before = quiet_scrape(srv.port)
    pool = health(srv.port)["pools"]["process"]
    check(pool["alive"] == pool["configured"] == len(pool["pids"]),
          "pool not at full strength: %s" % pool)
    victim = pool["pids"][0]
    check(victim in harness.children_of(srv.pid),
          "worker %d is not the server's child" % victim)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10.0 * harness.TIME_SCALE
    while True:
        pool = health(srv.port)["pools"]["process"]
        if (victim not in pool["pids"] and
                pool["alive"] == pool["configured"]):
            break
        check(time.monotonic() < deadline, "pool did not recover: %s"
              % pool)
        time.sleep(0.02)
    _, after = scrape(srv.port)
    expect_family_deltas(before, after, "conlab_pool_worker_restarts_total",
                         "reason", {"crash": 1})
    expect_family_deltas(before, after, "conlab_pool_jobs_total", "outcome",
                         {})
    check(after[key("conlab_pool_workers_alive")] == pool["configured"],
          "conlab_pool_workers_alive %s"
          % after[key("conlab_pool_workers_alive")])
    resp = send(srv.port, "GET", PRIME + "&tasks=1&mode=processes")
    check(resp.status == 200, "a job after the restart: %s" % resp.status)
    worker = resp.json()["tasks"][0]["worker"]["id"]
    check(worker in pool["pids"] and worker != victim,
          "ran on %s, pool %s" % (worker, pool["pids"]))
    return "worker %d replaced by %s" % (victim, pool["pids"])


# --------------------------------------------------------------------------
# X-Request-Id


def case_ids_generated(srv, ctx):
    """1000 requests on one keep-alive connection: 1000 distinct ids of 20
    lowercase hex digits sharing the first 8 (the process's prefix)."""
    conn = http.client.HTTPConnection(harness.LOOPBACK, srv.port,
                                      timeout=harness.SOCKET_TIMEOUT_S)
    ids = []
    try:
        for _ in range(1000):
            conn.request("GET", "/health")
            resp = conn.getresponse()
            resp.read()
            check(resp.status == 200, "GET /health: %d" % resp.status)
            ids.append(resp.getheader("X-Request-Id"))
    finally:
        conn.close()
    bad = [i for i in ids if not ID_RE.match(i or "")]
    check(not bad, "ids not 20 lowercase hex digits: %s" % bad[:3])
    check(len(set(ids)) == len(ids), "%d duplicate ids"
          % (len(ids) - len(set(ids))))
    prefixes = {i[:8] for i in ids}
    check(len(prefixes) == 1, "%d prefixes in one process: %s"
          % (len(prefixes), sorted(prefixes)[:3]))
    ctx["id_prefix"] = ids[0][:8]
    return "prefix %s" % ids[0][:8]


def case_ids_prefix_per_process(srv, ctx):
    """A second server has another prefix (equal by chance once in 2^32)."""
    check("id_prefix" in ctx, "no prefix from the previous case")
    with harness.Server(srv.binary, srv.args, name="second") as other:
        other.start()
        resp = send(other.port, "GET", "/health")
        other_id = resp.header("X-Request-Id") or ""
        check(ID_RE.match(other_id), "second server's id %r" % other_id)
        stop_and_check(other, signal.SIGTERM, 5.0 * harness.TIME_SCALE)
    check(other_id[:8] != ctx["id_prefix"], "both servers use prefix %s"
          % ctx["id_prefix"])
    return "%s and %s" % (ctx["id_prefix"], other_id[:8])


SPREAD_THREADS = 4      # --threads of the "ops-spread" group
SPREAD_CONNECTIONS = 64


def id_slot(rid):
    """The request thread's counter slot a generated id names (server/
    http.c set_request_id(): the top 5 of its 48 counter bits)."""
    return int(rid[8:], 16) >> 43


def _burst(port, n):
    """Opens n connections at once, then sends GET /health on each
    (keep-alive: an answered connection stays open, so it keeps its place
    under a connection limit) and reads the answers; returns one per
    connection, in order: the response, or None when the connection was
    closed without one. Closes them all."""
    socks = []
    answers = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection(
                (harness.LOOPBACK, port), timeout=harness.SOCKET_TIMEOUT_S))
        request = build_request("GET", "/health",
                                headers=[("Connection", "keep-alive")])
        for sock in socks:
            try:
                sock.sendall(request)
            except OSError:
                pass  # closed by the server already: read says so
        for sock in socks:
            try:
                resp = harness.read_response(
                    sock, timeout=harness.SOCKET_TIMEOUT_S)
            except OSError:
                resp = None  # reset
            answers.append(resp if resp and resp.status is not None
                           else None)
    finally:
        for sock in socks:
            sock.close()
    return answers


def case_connections_spread(srv, ctx):
    """%d connections opened at once (no other open) are spread evenly
    over its %d request threads: exactly %d each, as the generated ids of
    one /health per connection show. The accept thread hands connection
    fd to request thread fd %% %d, and a burst gets consecutive
    descriptors.""" % (
        SPREAD_CONNECTIONS, SPREAD_THREADS,
        SPREAD_CONNECTIONS // SPREAD_THREADS, SPREAD_THREADS)
    # The start-up probe's descriptor, freed during the burst, would be
    # taken out of turn.
    _wait_alone(srv.port)
    time.sleep(0.1 * harness.TIME_SCALE)  # that one's close is seen
    slots = []
    for resp in _burst(srv.port, SPREAD_CONNECTIONS):
        check(resp is not None and resp.status == 200,
              "GET /health: %s" % (resp.status if resp else "closed"))
        rid = resp.header("X-Request-Id") or ""
        check(ID_RE.match(rid), "X-Request-Id %r" % rid)
        slots.append(id_slot(rid))
    per_thread = {s: slots.count(s) for s in sorted(set(slots))}
    want = {s: SPREAD_CONNECTIONS // SPREAD_THREADS for s in per_thread}
    check(len(per_thread) == SPREAD_THREADS and per_thread == want,
          "connections per request thread (by id slot): %s; expected %d "
          "threads with %d each" % (per_thread, SPREAD_THREADS,
                                    SPREAD_CONNECTIONS // SPREAD_THREADS))
    return "connections per request thread: %s" % per_thread


LIMIT_CONNECTIONS = 16  # --max-connections of the "ops-limit" group
LIMIT_BURST = 48


def _wait_alone(port):
    """Waits (bounded) until a /health sees its own connection alone."""
    deadline = time.monotonic() + 5.0 * harness.TIME_SCALE
    while True:
        body = send(port, "GET", "/health").json()
        if harness.json_path(body, "pools.http.connections") == 1:
            return
        check(time.monotonic() < deadline,
              "connections still open: %s" % body["pools"]["http"])
        time.sleep(0.05)


def case_connections_limit(srv, ctx):
    """--max-connections %d: %d connections opened at once, twice: each
    time exactly %d are answered and the rest closed unanswered, and the
    server stops cleanly (libmicrohttpd 0.9.75 deadlocked a request thread
    on a connection past its limit when the connections came from another
    thread: see accept_main() in server/http.c).""" % (
        LIMIT_CONNECTIONS, LIMIT_BURST, LIMIT_CONNECTIONS)
    seen = []
    for _ in range(2):
        _wait_alone(srv.port)
        time.sleep(0.1 * harness.TIME_SCALE)  # that one's close is seen
        answers = _burst(srv.port, LIMIT_BURST)
        odd = [r.status for r in answers if r and r.status != 200]
        check(not odd, "GET /health: %s" % odd)
        answered = sum(1 for r in answers if r)
        closed = len(answers) - answered
        seen.append("%d answered, %d closed" % (answered, closed))
        check(answered == LIMIT_CONNECTIONS and
              closed == LIMIT_BURST - LIMIT_CONNECTIONS,
              "%s; expected %d answered" % ("; ".join(seen),
                                             LIMIT_CONNECTIONS))
    return "; ".join(seen)


PER_IP = 2           # --max-per-ip of the "ops-per-ip" group
REFUSED_TRIES = 20
MHD_LIMIT_LINE = "microhttpd: Server reached connection limit"


def _refused(port):
    """One connection past the per-address limit: closed unanswered."""
    sock = socket.create_connection((harness.LOOPBACK, port),
                                    timeout=harness.SOCKET_TIMEOUT_S)
    try:
        try:
            sock.sendall(build_request("GET", "/health"))
            status = harness.read_response(
                sock, timeout=harness.SOCKET_TIMEOUT_S).status
        except OSError:
            status = None  # reset
        check(status is None, "a connection past --max-per-ip was "
              "answered %s" % status)
    finally:
        sock.close()


def case_refusals_logged_once(srv, ctx):
    """--max-per-ip %d, %d connections held: %d more, one after another,
    each closed unanswered, make one log line of libmicrohttpd's, not %d;
    one more %.1f s later makes a second line that counts the %d left
    unwritten.""" % (PER_IP, PER_IP, REFUSED_TRIES, REFUSED_TRIES, 1.2,
                     REFUSED_TRIES - 1)
    _wait_alone(srv.port)
    time.sleep(0.1 * harness.TIME_SCALE)  # that one's close is seen
    held = []
    try:
        for _ in range(PER_IP):
            sock = socket.create_connection((harness.LOOPBACK, srv.port),
                                            timeout=harness.SOCKET_TIMEOUT_S)
            held.append(sock)
            sock.sendall(build_request(
                "GET", "/health", headers=[("Connection", "keep-alive")]))
            check(harness.read_response(sock).status == 200,
                  "a held connection was not answered")
        began = time.monotonic()
        for _ in range(REFUSED_TRIES):
            _refused(srv.port)
        took = time.monotonic() - began
        check(took < 0.9, "%d refusals took %.2f s, over the 1 s in which "
              "repeats are counted" % (REFUSED_TRIES, took))
        srv.wait_log(re.escape(MHD_LIMIT_LINE), timeout=5.0)
        lines = [ln for ln in srv.log().splitlines() if MHD_LIMIT_LINE in ln]
        check(len(lines) == 1, "%d lines for %d refusals: %s" % (
            len(lines), REFUSED_TRIES, lines[:3]))
        time.sleep(1.2)
        _refused(srv.port)
        summary = r"\(and %d more times since the line before\)" % (
            REFUSED_TRIES - 1)
        check(srv.wait_log(summary, timeout=5.0),
              "no line counting %d repeats; log: %s" % (
                  REFUSED_TRIES - 1, srv.log_tail(3)))
        lines = [ln for ln in srv.log().splitlines() if MHD_LIMIT_LINE in ln]
        check(len(lines) == 2, "%d lines: %s" % (len(lines), lines))
    finally:
        for sock in held:
            sock.close()
    return "%d refusals in %.2f s: 1 line, then %s" % (
        REFUSED_TRIES, took, lines[1].split("microhttpd: ", 1)[1])


VALID_IDS = ["a", "abc-123", "A.b_c-9", "0" * 64, ID_CHARS[:64], ID_CHARS[1:],
             "x" * 63 + "Z", "...", "-_-", "6ba7b810-9dad-11d1-80b4"]
INVALID_IDS = [
    ("65 characters", b"y" * 65),
    ("a space inside", b"a b"),
    ("a slash", b"a/b"),
    ("a quote", b'a"b'),
    ("a colon", b"a:b"),
    ("a plus", b"a+b"),
    ("non-ASCII (UTF-8)", "caf\u00e9".encode("utf-8")),
    ("non-ASCII (latin-1)", b"caf\xe9"),
    ("a control byte", b"a\x01b"),
    ("empty", b""),
]


def case_ids_valid_echoed(srv, ctx):
    for given in VALID_IDS:
        check(len(given) <= 64, "bad test id")
        resp = send(srv.port, "GET", "/health", [("X-Request-Id", given)])
        check(resp.status == 200, "status %s" % resp.status)
        got = resp.header_all("X-Request-Id")
        check(got == [given], "sent %r, got %r" % (given, got))
    # The header name is case-insensitive.
    resp = send(srv.port, "GET", "/health", [("x-request-id", "lower-1")])
    check(resp.header_all("X-Request-Id") == ["lower-1"],
          "lower-case header name: got %r" % resp.header_all("X-Request-Id"))


def case_ids_invalid_replaced(srv, ctx):
    for what, given in INVALID_IDS:
        resp = send(srv.port, "GET", "/health", [("X-Request-Id", given)])
        check(resp.status == 200, "%s: status %s" % (what, resp.status))
        got = resp.header_all("X-Request-Id")
        check(len(got) == 1 and ID_RE.match(got[0]),
              "%s (%r): answered X-Request-Id %r, expected a generated one"
              % (what, given, got))


# (name, method, target, headers, status)
ID_ANSWERS = [
    ("404 unknown file", "GET", "/nope.txt", [], 404),
    ("405 wrong method", "POST", "/health", [], 405),
    ("405 unknown method", "BREW", "/health", [], 405),
    ("400 unknown parameter", "GET", "/health?x=1", [], 400),
    ("400 bad parameter", "GET", "/run/prime?limit=1", [], 400),
    ("400 malformed path", "GET", "/%zz", [], 400),
    ("400 traversal", "GET", "/%2e%2e/etc/passwd", [], 400),
    ("413 body too large", "POST", "/health",
     [("Content-Length", "100000")], 413),
    ("414 target too long", "GET", "/" + "a" * (5 * 1024), [], 414),
    ("431 headers too large", "GET", "/health",
     [("X-Big", "b" * (9 * 1024))], 431),
    ("200 static file", "GET", "/index.html", [], 200),
    ("200 HEAD of a static file", "HEAD", "/app.js", [], 200),
    ("200 /metrics", "GET", "/metrics", [], 200),
    ("200 /openapi.json", "GET", "/openapi.json", [], 200),
    ("200 a demo run", "GET", "/run/sleep?ms=1&tasks=2", [], 200),
    ("200 /delay", "GET", "/delay?ms=1", [], 200),
]


def case_ids_on_every_answer(srv, ctx):
    for name, method, target, headers, status in ID_ANSWERS:
        resp = send(srv.port, method, target, headers)
        check(resp.status == status, "%s: status %s, expected %d (%s)"
              % (name, resp.status, status, resp.error))
        got = resp.header_all("X-Request-Id")
        check(len(got) == 1 and ID_RE.match(got[0]),
              "%s: X-Request-Id %r" % (name, got))
        given = "client-" + str(status)
        resp = send(srv.port, method, target,
                    headers + [("X-Request-Id", given)])
        check(resp.status == status, "%s with an id: status %s"
              % (name, resp.status))
        check(resp.header_all("X-Request-Id") == [given],
              "%s: sent %r, got %r" % (name, given,
                                       resp.header_all("X-Request-Id")))
    # A 304 revalidation too.
    first = send(srv.port, "GET", "/index.html")
    etag = first.header("ETag")
    check(etag, "no ETag on /index.html")
    resp = send(srv.port, "GET", "/index.html",
                [("If-None-Match", etag), ("X-Request-Id", "reval-1")])
    check(resp.status == 304, "revalidation: %s" % resp.status)
    check(resp.header_all("X-Request-Id") == ["reval-1"],
          "304: X-Request-Id %r" % resp.header_all("X-Request-Id"))
    return "%d answers" % (2 * len(ID_ANSWERS) + 1)


def case_ids_on_drain_503(srv, ctx):
    """During the grace period (held open by a stalled upload), a request
    on an open keep-alive connection is answered 503 with an id."""
    keep = harness.start_drain(srv, ctx)
    keep.sendall(build_request("GET", "/health",
                               [("Connection", "keep-alive"),
                                ("X-Request-Id", "drain-1")]))
    resp = harness.read_response(keep)
    check(resp.status == 503, "status %s (%s), expected 503"
          % (resp.status, resp.error))
    expect_error_shape(resp)
    check(resp.header_all("X-Request-Id") == ["drain-1"],
          "503: X-Request-Id %r" % resp.header_all("X-Request-Id"))


def case_drain_exit(srv, ctx):
    check("signalled_at" in ctx, "the server was not signalled")
    limit = DRAIN_GRACE_MS / 1000.0 + 2.0 * harness.TIME_SCALE
    return stop_and_check(srv, signal.SIGTERM, limit, ctx["children"],
                          ("stopped",), signalled_at=ctx["signalled_at"])


# --------------------------------------------------------------------------
# --log-format json


def json_lines(srv):
    """Every line of the server's stderr as a JSON object; raises
    CheckFailed on the first that is not one. The last line may be partial
    while the server runs: it is left out unless the text ends there."""
    with open(srv.log_path, "rb") as f:
        raw = f.read()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif srv.returncode is None and lines:
        lines.pop()  # being written
    objs = []
    for n, line in enumerate(lines, 1):
        try:
            obj = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise CheckFailed("stderr line %d is not JSON (%s): %r"
                              % (n, e, line[:160]))
        check(isinstance(obj, dict), "line %d is not an object: %r"
              % (n, line[:160]))
        check(isinstance(obj.get("time"), str) and
              re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
                       obj["time"]),
              "line %d: time %r" % (n, obj.get("time")))
        check(obj.get("level") in ("error", "warn", "info", "debug"),
              "line %d: level %r" % (n, obj.get("level")))
        check(isinstance(obj.get("msg"), str) or "request_id" in obj,
              "line %d has neither msg nor request_id: %r" % (n, obj))
        objs.append(obj)
    return objs


def access_lines(srv, ids, timeout=3.0):
    """{request_id: access line} for each id, waiting (bounded) for the
    log's 100 ms flush."""
    deadline = time.monotonic() + timeout * harness.TIME_SCALE
    while True:
        found = {}
        for obj in json_lines(srv):
            if obj.get("request_id") in ids:
                check(obj["request_id"] not in found,
                      "two access lines for %s" % obj["request_id"])
                found[obj["request_id"]] = obj
        if len(found) == len(ids):
            return found
        check(time.monotonic() < deadline, "no access line for %s"
              % sorted(set(ids) - set(found))[:5])
        time.sleep(0.05)


ACCESS_KEYS = {"time", "level", "request_id", "method", "target", "status",
               "bytes", "us"}

# (method, target as sent (bytes), headers)
LOGGED = [
    ("GET", b"/health", []),
    ("HEAD", b"/health", []),
    ("POST", b"/health", []),
    ("GET", b"/health?x=1", []),
    ("GET", b"/nope.txt", []),
    ("GET", b"/index.html", []),
    ("GET", b"/run/prime?limit=1000&tasks=2&mode=processes", []),
    ("GET", b"/metrics", []),
    ("GET", b"/health", [("X-Request-Id", "json-client-1")]),
    # Quotes, backslashes, %-escapes, a ' and bytes >= 0x80 in the target.
    ("GET", b'/a"b\\c?q="x"&r=\\', []),
    ("GET", b"/%22%5C%27%00%ff?x=%%&y=%22", []),
    ("GET", b"/it's/caf\xc3\xa9?n=\xff\xfe", []),
    ("GET", b"/" + b'"\\' * 300, []),
]


def case_json_access_lines(srv, ctx):
    sent = {}
    for method, target, headers in LOGGED:
        resp = send(srv.port, method, target, headers)
        check(resp.status is not None, "%s %r: no answer (%s)"
              % (method, target[:40], resp.error))
        rid = resp.header("X-Request-Id")
        check(rid, "%s %r: no X-Request-Id" % (method, target[:40]))
        check(rid not in sent, "id %s answered twice" % rid)
        sent[rid] = (method, target, resp)
    lines = access_lines(srv, set(sent))
    for rid, (method, target, resp) in sent.items():
        obj = lines[rid]
        check(set(obj) == ACCESS_KEYS, "%s: keys %s" % (rid, sorted(obj)))
        check(obj["method"] == method, "%s: method %r" % (rid,
                                                          obj["method"]))
        check(obj["target"] == py_uri_quote(target),
              "%s: target %r, expected %r" % (rid, obj["target"],
                                              py_uri_quote(target)))
        check(obj["status"] == resp.status, "%s: status %r, answered %d"
              % (rid, obj["status"], resp.status))
        length = int(resp.header("Content-Length") or -1)
        check(obj["bytes"] == length, "%s: bytes %r, Content-Length %d"
              % (rid, obj["bytes"], length))
        check(isinstance(obj["us"], int) and obj["us"] >= 0,
              "%s: us %r" % (rid, obj["us"]))
        check(obj["level"] == "info", "%s: level %r" % (rid, obj["level"]))
    check("json-client-1" in lines, "the client's id was not logged")
    return "%d access lines" % len(sent)


def case_json_every_line(srv, ctx):
    objs = json_lines(srv)
    msgs = [o["msg"] for o in objs if "msg" in o]
    check(any(m.startswith("listening on http://") for m in msgs),
          "no 'listening on' line: %s" % msgs[:3])
    if ctx.get("debug"):
        check(any("worker" in m for m in msgs),
              "no debug line about workers at --log-level debug")
    return "%d lines" % len(objs)


def case_json_stop(srv, ctx):
    """SIGTERM: exit 0, and the last lines (received SIGTERM, stopped) are
    JSON too."""
    note = stop_and_check(srv, signal.SIGTERM, 5.0 * harness.TIME_SCALE,
                          harness.children_of(srv.pid),
                          ("received SIGTERM", "stopped"))
    objs = json_lines(srv)
    msgs = [o.get("msg", "") for o in objs]
    check(any(m.startswith("received SIGTERM") for m in msgs),
          "no JSON 'received SIGTERM' line")
    check(any(m.startswith("stopped") for m in msgs),
          "no JSON 'stopped' line")
    return "%s; %d JSON lines" % (note, len(objs))


def case_json_env(srv, ctx):
    resp = send(srv.port, "GET", "/health", [("X-Request-Id", "env-json")])
    check(resp.status == 200, "status %s" % resp.status)
    obj = access_lines(srv, {"env-json"})["env-json"]
    check(obj["target"] == "/health" and obj["status"] == 200,
          "access line %r" % obj)
    return case_json_every_line(srv, ctx)


def case_config(argv_extra, env, rc_wanted, words):
    def run(srv, ctx):
        rc, out, err = harness.run_command(
            [srv.binary, "--port", "0", "--bind", harness.LOOPBACK] +
            argv_extra, env=harness.make_env(env),
            timeout=10.0 * harness.TIME_SCALE)
        check(rc == rc_wanted, "exit %s, expected %d; stderr %r"
              % (rc, rc_wanted, err[:200]))
        for w in words:
            check(w in err, "stderr lacks %r: %r" % (w, err[:200]))
    return run


def case_text_default(srv, ctx):
    """Without the option the log is text: access lines end with the id."""
    resp = send(srv.port, "GET", "/health", [("X-Request-Id", "text-1")])
    check(resp.status == 200, "status %s" % resp.status)
    match = srv.wait_log(r"(?m)^\S+ INFO GET /health 200 \d+B \d+us "
                         r"id=text-1$", 3.0 * harness.TIME_SCALE)
    check(match, "no text access line ending id=text-1; tail: %s"
          % srv.log_tail(3))
    check(not srv.log().lstrip().startswith("{"), "log is not text")


# --------------------------------------------------------------------------
# Groups

DRAIN_GRACE_MS = 1000


def server_groups(web_root):
    """(title, extra args, environment, cases) for run.py's server_group."""
    base = ["--web-root", web_root, "--threads", "4", "--grace-ms", "1000"]
    ops = base + ["--workers", str(WORKERS)]
    count = base + ["--workers", "1", "--queue", "1"]
    json_args = ops + ["--log-format", "json", "--log-level", "debug"]

    def debug(fn):
        def run(srv, ctx):
            ctx["debug"] = True
            return fn(srv, ctx)
        return run

    return [
        ("ops", ops, None, [
            ("metrics: 200, Prometheus text content type, no-store, HEAD",
             case_metrics_shape),
            ("metrics: promtool check metrics passes",
             case_metrics_promtool_idle),
            ("metrics: promtool passes on scrapes under load with a long "
             "sleep in flight", case_metrics_promtool_under_load),
            ("request id: 1000 generated ids, 20 hex digits, unique, one "
             "prefix", case_ids_generated),
            ("request id: another process has another prefix",
             case_ids_prefix_per_process),
            ("request id: a valid client id is echoed exactly",
             case_ids_valid_echoed),
            ("request id: invalid client ids are replaced",
             case_ids_invalid_replaced),
            ("request id: on errors, static files, 304, /metrics, demos",
             case_ids_on_every_answer),
            ("log: text by default, access lines end with id=",
             case_text_default),
        ]),
        ("ops-spread", base + ["--threads", str(SPREAD_THREADS)], None, [
            ("accept: %d connections at once, %d on each of %d request "
             "threads" % (SPREAD_CONNECTIONS,
                          SPREAD_CONNECTIONS // SPREAD_THREADS,
                          SPREAD_THREADS), case_connections_spread),
        ]),
        ("ops-limit", base + ["--max-connections",
                              str(LIMIT_CONNECTIONS)], None, [
            ("accept: --max-connections %d, %d connections at once: %d "
             "answered, twice" % (LIMIT_CONNECTIONS, LIMIT_BURST,
                                  LIMIT_CONNECTIONS),
             case_connections_limit),
        ]),
        ("ops-per-ip", base + ["--max-per-ip", str(PER_IP)], None, [
            ("log: libmicrohttpd's line for refused connections, repeated "
             "within 1 s, is counted, not written each time",
             case_refusals_logged_once),
        ]),
        ("ops-count", count, None, [
            ("metrics: counters add up to an exact mix of requests",
             case_metrics_exact_mix),
            ("metrics: a full queue's 503 is counted as rejected",
             case_metrics_full_queue),
            ("metrics: kill -9 of a worker counts one crash restart",
             case_metrics_crash_restart),
        ]),
        ("ops-drain", base + ["--workers", "1", "--grace-ms",
                              str(DRAIN_GRACE_MS)], None, [
            ("request id: on the 503 of a draining server",
             case_ids_on_drain_503),
            ("ops-drain: exit 0 after the grace period", case_drain_exit),
        ]),
        ("ops-json", json_args, None, [
            ("json log: access lines match what the client got, odd "
             "targets included", debug(case_json_access_lines)),
            ("json log: every stderr line is a JSON object",
             debug(case_json_every_line)),
            ("json log: SIGTERM, exit 0, last lines JSON too",
             debug(case_json_stop)),
        ]),
        ("ops-json-env", ops, {"CONLAB_LOG_FORMAT": "json"}, [
            ("json log: CONLAB_LOG_FORMAT=json", case_json_env),
            ("config: --log-format xml exits 2 naming the option",
             case_config(["--log-format", "xml"], None, 2,
                         ["--log-format", "xml"])),
            ("config: CONLAB_LOG_FORMAT=xml exits 2 naming the variable",
             case_config([], {"CONLAB_LOG_FORMAT": "xml"}, 2,
                         ["CONLAB_LOG_FORMAT"])),
            ("config: --log-format without a value exits 2",
             case_config(["--log-format"], None, 2, ["--log-format"])),
            ("json log: SIGTERM, exit 0, last lines JSON too",
             case_json_stop),
        ]),
    ]


if __name__ == "__main__":
    raise SystemExit("run through run.py: python3 tests/integration/run.py "
                     "--binary build/conlab --group ops")

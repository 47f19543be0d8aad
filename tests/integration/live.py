"""Integration tests of live runs: /run/<demo> and /run/compare answered as
an event stream (stream=1, Accept: text/event-stream) or as text lines
(format=text) while the run goes on.

Used by run.py (server_groups() below adds the "live" groups). The client
here reads the chunked answer as it comes and stamps every event (or
line) with its arrival time, so the cases check that events arrive while
the run is in progress, not only what they say. Exact where behaviour is
exact: a task-end event carries the very figures the final body gives
that task, and the final event is byte for byte a JSON body of the
run's shape.
"""

import json
import signal
import socket
import threading
import time

import cpu
import harness
from harness import CheckFailed, build_request, check, expect_value, json_path

WORKERS = 2
DEMO_THREADS = 4


class Stream:
    """One streamed request on its own socket: reads the head, then the
    chunked body as it arrives, split into SSE events (or text lines),
    each with its arrival time (time.monotonic())."""

    def __init__(self, port, target, headers=(), rcvbuf=None, timeout=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout or cpu.scaled(30.0))
        self.sock.connect((harness.LOOPBACK, port))
        self.sent = time.monotonic()
        self.sock.sendall(build_request("GET", target, headers=headers))
        self.raw = b""
        self.status = None
        self.headers = {}
        self.body = b""  # de-chunked so far
        self.ended = False
        self.bytes_in = 0

    def close(self):
        self.sock.close()

    def _fill(self, size=65536):
        data = self.sock.recv(size)
        if not data:
            raise CheckFailed("connection closed before the stream ended "
                              "(status %s, %d bytes)" % (self.status,
                                                         len(self.body)))
        self.bytes_in += len(data)
        self.raw += data

    def read_head(self):
        while b"\r\n\r\n" not in self.raw:
            self._fill()
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        return self.status

    def _dechunk(self):
        """Moves whole chunks from raw to body; True at the last one."""
        while True:
            if b"\r\n" not in self.raw:
                return False
            size_line, rest = self.raw.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                self.ended = True
                return True
            if len(rest) < size + 2:
                return False
            self.body += rest[:size]
            self.raw = rest[size + 2:]

    def pieces(self, sep, size=65536, pause=0.0):
        """Yields (arrival time, piece) for each piece of the body ending
        in sep, as they arrive; pause sleeps between reads (a slow
        reader)."""
        if self.status is None:
            self.read_head()
        check(self.headers.get("transfer-encoding") == "chunked",
              "not chunked: %r" % self.headers)
        while True:
            self._dechunk()
            now = time.monotonic()
            while sep in self.body:
                piece, self.body = self.body.split(sep, 1)
                yield now, piece
            if self.ended:
                return
            if pause:
                time.sleep(pause)
            self._fill(size)

    def events(self, size=65536, pause=0.0):
        """Yields (arrival, event name, parsed data) of an SSE stream."""
        for at, block in self.pieces(b"\n\n", size, pause):
            name, data = None, []
            for line in block.decode("utf-8").split("\n"):
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
            check(name is not None and data, "not an event: %r" % block[:80])
            yield at, name, "\n".join(data)


def collect(port, target, headers=()):
    s = Stream(port, target, headers)
    try:
        status = s.read_head()
        check(status == 200, "status %d" % status)
        check(s.headers.get("content-type", "").startswith(
            "text/event-stream"), "content type %r"
            % s.headers.get("content-type"))
        return [(at - s.sent, name, data) for at, name, data in s.events()]
    finally:
        s.close()


def by_name(events, name):
    return [(at, json.loads(data)) for at, n, data in events if n == name]


def check_against_final(events):
    """Every task-end carries exactly the final body's figures of its task;
    each task's start comes before its end; the final event is last."""
    names = [n for _, n, _ in events]
    expect_value("first event", names[0], "admitted")
    expect_value("last event", names[-1], "final")
    final = json.loads(events[-1][2])
    tasks = {t["id"]: t for t in final["tasks"]}
    ends = by_name(events, "task-end")
    starts = by_name(events, "task-start")
    expect_value("task-end events", len(ends), len(tasks))
    expect_value("task-start events", len(starts), len(tasks))
    start_at = {e["id"]: at for at, e in starts}
    for at, e in ends:
        t = tasks[e["id"]]
        check(start_at[e["id"]] <= at, "task %d ended before it started"
              % e["id"])
        for key, value in t.items():
            if key == "id":
                continue
            expect_value("task %d %s" % (e["id"], key), e.get(key), value)
    return final


def case_sleep_stream(srv, ctx):
    """sleep?tasks=3&ms=500 sequential, streamed: the task-ends arrive as
    the tasks end (about 500 ms apart), the final event after them."""
    cpu.wait_ready(srv, WORKERS)
    target = "/run/sleep?tasks=3&ms=500&mode=sequential"
    events = collect(srv.port, target + "&stream=1")
    final = check_against_final(events)
    ends = by_name(events, "task-end")
    gaps = [b[0] - a[0] for a, b in zip(ends, ends[1:])]
    for g in gaps:
        check(g >= 0.3, "task-end events %.0f ms apart, expected about 500"
              % (g * 1000))
    first_to_last = ends[-1][0] - ends[0][0]
    check(first_to_last >= 0.6, "first to last task-end %.0f ms"
          % (first_to_last * 1000))
    expect_value("task-end order", [e["id"] for _, e in ends], [0, 1, 2])
    # In time order: each task event's own time (start_ms of a start,
    # end_ms of an end) is no earlier than the one sent before it.
    times = [(n, json.loads(d)) for _, n, d in events
             if n in ("task-start", "task-end")]
    stamps = [e["end_ms"] if n == "task-end" else e["start_ms"]
              for n, e in times]
    expect_value("event order", [(n[5:], e["id"]) for n, e in times],
                 [("start", 0), ("end", 0), ("start", 1), ("end", 1),
                  ("start", 2), ("end", 2)])
    check(stamps == sorted(stamps), "task events out of time order: %r"
          % stamps)
    check(events[-1][0] >= ends[-1][0], "final before the last task-end")
    # The same request, not streamed: the same shape and outcome.
    resp, plain = cpu.get_json(srv.port, target)
    expect_value("status", resp.status, 200)
    expect_value("keys", sorted(final), sorted(plain))
    for key in ("demo", "mode", "params", "result"):
        expect_value(key, final[key], plain[key])
    expect_value("task ids", [t["id"] for t in final["tasks"]],
                 [t["id"] for t in plain["tasks"]])
    admitted = by_name(events, "admitted")[0][1]
    check(len(admitted.pop("estimate_ms")) == 1, "one estimate")
    expect_value("admitted", admitted, {
        "demo": "sleep", "modes": ["sequential"], "lanes": [1], "tasks": 3,
        "params": {"tasks": 3, "ms": 500}})
    return "task-ends %s ms apart" % ", ".join("%.0f" % (g * 1000)
                                                for g in gaps)


def case_prime_stream(srv, ctx):
    """prime in threads mode with Accept: text/event-stream: task events
    carry each task's own figures (range, checked, primes), the final
    result equals the non-streamed one exactly."""
    cpu.wait_ready(srv, WORKERS)
    target = "/run/prime?limit=300000&tasks=4&mode=threads"
    events = collect(srv.port, target,
                     headers=[("Accept", "text/event-stream")])
    final = check_against_final(events)
    resp, plain = cpu.get_json(srv.port, target)
    expect_value("result", final["result"], plain["result"])
    expect_value("primes below 300000", final["result"]["primes"], 25997)
    for t, u in zip(final["tasks"], plain["tasks"]):
        for key in ("range", "checked", "primes"):
            expect_value("task %d %s" % (t["id"], key), t[key], u[key])
    # Time order: each task-end's end_ms is no earlier than the ones
    # sent before it in the same scan (they are sorted per scan; across
    # scans they follow the records' publication).
    ends = [e["end_ms"] for _, e in by_name(events, "task-end")]
    check(max(ends) == final["tasks"][max(
        range(len(final["tasks"])),
        key=lambda i: final["tasks"][i]["end_ms"])]["end_ms"],
        "last end differs")
    return "%d events" % len(events)


def case_prime_progress(srv, ctx):
    """A long prime run streams progress events with the numbers checked
    so far (the demo's own figure), growing, below the final count."""
    cpu.wait_ready(srv, WORKERS)
    events = collect(srv.port, "/run/prime?limit=12000000&tasks=2"
                     "&mode=processes&stream=1")
    final = check_against_final(events)
    total = final["result"]["checked"]
    expect_value("checked", total, 12000000 - 1)
    checked = [e["checked"] for _, e in by_name(events, "progress")]
    mid = [c for c in checked if 0 < c < total]
    check(mid, "no progress event mid-run: %r" % checked)
    check(checked == sorted(checked), "checked went back: %r" % checked)
    check(checked[-1] == total, "the last progress says %d of %d"
          % (checked[-1], total))
    return "checked %s of %d" % (", ".join(str(c) for c in mid), total)


def case_process_stream(srv, ctx):
    """The process pool and gil runs stream too; sse via format=sse."""
    cpu.wait_ready(srv, WORKERS)
    for mode in ("processes", "gil", "async"):
        events = collect(srv.port, "/run/sleep?tasks=3&ms=100&mode=%s"
                         "&format=sse" % mode)
        final = check_against_final(events)
        expect_value(mode + " mode", final["mode"], mode)
    return "processes, gil, async"


def case_compare_events(srv, ctx):
    """A streamed comparison: a mode event when each mode starts and ends,
    in order; the final event is the comparison's table."""
    cpu.wait_ready(srv, WORKERS)
    events = collect(srv.port, "/run/compare?demo=sleep&tasks=2&ms=100"
                     "&stream=1")
    modes = by_name(events, "mode")
    expected = []
    for m in ("sequential", "threads", "processes", "gil", "async",
              "spawn"):
        expected += [(m, "start"), (m, "end")]
    expect_value("mode events", [(e["mode"], e["phase"]) for _, e in modes],
                 expected)
    final = json.loads(events[-1][2])
    expect_value("last event", events[-1][1], "final")
    expect_value("runs", [r["mode"] for r in final["runs"]],
                 [m for m, p in expected if p == "start"])
    for (_, e), run in zip([m for m in modes if m[1]["phase"] == "end"],
                           final["runs"]):
        expect_value(run["mode"] + " wall_ms", e["wall_ms"], run["wall_ms"])
    return "%d events" % len(events)


def case_error_event(srv, ctx):
    """A run that fails answers its error as the last event, the JSON
    error shape with the status the plain request gets."""
    cpu.wait_ready(srv, WORKERS)
    events = collect(srv.port, "/run/sleep?tasks=2&ms=800&mode=sequential"
                     "&stream=1")
    expect_value("last event", events[-1][1], "error")
    err = json.loads(events[-1][2])
    expect_value("status", json_path(err, "error.status"), 504)
    bad = harness.raw_exchange(srv.port, build_request(
        "GET", "/run/sleep?stream=0&format=sse"))
    expect_value("stream=0 with format=sse", bad.status, 400)
    return "504 as an error event"


def case_client_leaves(srv, ctx):
    """A client that leaves mid-stream cancels its run: the pool is free
    again long before the run would have ended."""
    cpu.wait_ready(srv, WORKERS)
    s = Stream(srv.port, "/run/sleep?tasks=4&ms=5000&mode=threads&stream=1")
    try:
        seen = 0
        for _, name, _ in s.events():
            seen += name == "task-start"
            if seen == 4:
                break
    finally:
        s.close()
    left = time.monotonic()
    cpu.wait_health(srv.port, lambda b: json_path(b, "pools.threads.busy") ==
                    0 and json_path(b, "budgets.tasks.used") == 0,
                    cpu.scaled(2.0), "the pool free after the client left")
    took = time.monotonic() - left
    check(streams_open(srv) == 0, "a stream still open")
    return "pool free %.0f ms after the client left" % (took * 1000)


def case_text_compare(srv, ctx):
    """The text form of a sleep comparison, streamed: lines arrive while
    it runs; each mode's ASCII timeline has one row per lane within 80
    columns. stream=0 gives the same summary in one body."""
    cpu.wait_ready(srv, WORKERS)
    s = Stream(srv.port, "/run/compare?demo=sleep&tasks=2&ms=300"
               "&format=text")
    try:
        status = s.read_head()
        expect_value("status", status, 200)
        check(s.headers.get("content-type", "").startswith("text/plain"),
              "content type %r" % s.headers.get("content-type"))
        lines = [(at - s.sent, line.decode()) for at, line in
                 s.pieces(b"\n")]
    finally:
        s.close()
    text = [line for _, line in lines]
    finished = [at for at, line in lines if " finished at " in line]
    # 2 tasks in each of sleep's 6 modes (warm-ups are not told)
    check(len(finished) == 12, "%d 'finished' lines" % len(finished))
    check(lines[-1][0] - finished[0] >= 0.5,
          "the first task's line came %.0f ms before the end"
          % ((lines[-1][0] - finished[0]) * 1000))
    check(any(line.startswith("task 0 started on the main thread at ")
              for line in text), "no 'task 0 started' line")
    for line in text:
        check(len(line) <= 80, "line over 80 columns: %r" % line)
    lanes = {"sequential": 1, "threads": 2, "processes": 2, "gil": 2,
             "async": 2, "spawn": 2}
    rows = timelines(text)
    expect_value("timelines", sorted(rows), sorted(lanes))
    for mode, n in lanes.items():
        expect_value(mode + " timeline rows", len(rows[mode]), n)
    check("summary: sleep" in text, "no summary line")
    whole = harness.raw_exchange(srv.port, build_request(
        "GET", "/run/compare?demo=sleep&tasks=2&ms=50&format=text"
        "&stream=0"), timeout=cpu.scaled(20.0))
    expect_value("stream=0 status", whole.status, 200)
    check(whole.header("Content-Length") is not None and
          whole.header("Transfer-Encoding") is None,
          "stream=0 is not one body: %r" % whole.headers)
    rows = timelines(whole.body.decode().split("\n"))
    for mode, n in lanes.items():
        expect_value(mode + " rows (stream=0)", len(rows[mode]), n)
    return "%d lines, first end %.0f ms before the last line" % (
        len(lines), (lines[-1][0] - finished[0]) * 1000)


def streams_open(srv):
    """conlab_streams_open from /metrics, once it settles (a stream is
    freed just after its last byte)."""
    deadline = time.monotonic() + cpu.scaled(2.0)
    while True:
        _, _, body = harness.http_get(srv.port, "/metrics")
        for line in body.decode().split("\n"):
            if line.startswith("conlab_streams_open "):
                value = int(line.split()[1])
        if value == 0 or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def timelines(text):
    """{mode: [rows]} of the text form's timelines."""
    rows, mode = {}, None
    for line in text:
        if line.startswith("timeline of "):
            mode = line[len("timeline of "):].split(",")[0]
            rows[mode] = []
        elif mode and "|" in line:
            rows[mode].append(line)
        else:
            mode = None
    return rows


def case_slow_readers(srv, ctx):
    """100 concurrent streamed sleep?tasks=1000 runs read by slow readers
    (a small receive buffer, 2 KiB every 50 ms: about 40 KB/s against
    about 400 KB of events each): server memory stays
    bounded, every reader gets its final event, nothing is left over."""
    cpu.wait_ready(srv, WORKERS)
    base = harness.tree_rss_kib(srv.proc.pid)
    n, results, errors = 100, {}, []
    lock = threading.Lock()

    def reader(i):
        try:
            s = Stream(srv.port, "/run/sleep?tasks=1000&ms=1000&mode=async"
                       "&stream=1", rcvbuf=8192, timeout=cpu.scaled(60.0))
            try:
                counts = {}
                final = None
                for _, name, data in s.events(size=2048, pause=0.05):
                    counts[name] = counts.get(name, 0) + 1
                    if name in ("final", "error"):
                        final = (name, json.loads(data))
                with lock:
                    results[i] = (counts, final)
            finally:
                s.close()
        except Exception as e:  # reported below, with the others
            with lock:
                errors.append("%d: %s" % (i, e))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    peak = base
    while any(t.is_alive() for t in threads):
        peak = max(peak, harness.tree_rss_kib(srv.proc.pid))
        time.sleep(0.05)
    for t in threads:
        t.join()
    check(not errors, "%d readers failed: %s" % (len(errors), errors[:3]))
    coalesced = 0
    for i in range(n):
        counts, final = results[i]
        check(final and final[0] == "final", "reader %d: %r" % (i, final and
                                                             final[0]))
        expect_value("reader %d tasks" % i, len(final[1]["tasks"]), 1000)
        coalesced += counts.get("coalesced", 0)
    body = cpu.wait_health(srv.port, lambda b: json_path(
        b, "budgets.bytes.used") == 0 and json_path(
        b, "pools.http.in_flight") == 1, cpu.scaled(5.0), "nothing held")
    check(streams_open(srv) == 0, "a stream still open")
    check(coalesced > 0, "no reader lagged enough to get a coalesced event")
    grew_mib = (peak - base) / 1024.0
    harness.figure("live_slow_readers_rss_growth_mib", round(grew_mib, 1))
    if not harness.SANITIZER:
        check(grew_mib < 256, "server memory grew %.0f MiB" % grew_mib)
    return "peak RSS +%.1f MiB over %.1f MiB; %d coalesced events; %s" % (
        grew_mib, base / 1024.0, coalesced,
        json_path(body, "budgets.bytes.used"))


def case_sigterm_streams(srv, ctx):
    """SIGTERM with streams in flight (runs longer than the grace period,
    in each kind of back end, event and text forms): every stream ends
    cleanly with its last event (a 503 error, the API's shape) and the
    server exits 0 with no worker left."""
    pids = cpu.wait_ready(srv, WORKERS)["pools"]["process"]["pids"]
    targets = ["/run/sleep?tasks=2&ms=4000&mode=%s&stream=1" % m
               for m in ("sequential", "threads", "processes", "gil",
                         "async")]
    targets += ["/run/compare?demo=sleep&tasks=2&ms=1500&stream=1",
                "/run/sleep?tasks=2&ms=4000&mode=threads&format=text"]
    streams = [Stream(srv.port, t) for t in targets]
    lasts, errors = [None] * len(streams), []

    def read(i):
        try:
            text = streams[i].headers.get("content-type", "").startswith(
                "text/plain")
            if text:
                for _, line in streams[i].pieces(b"\n"):
                    lasts[i] = line.decode()
            else:
                for _, name, data in streams[i].events():
                    lasts[i] = (name, json.loads(data))
        except Exception as e:  # reported below
            errors.append("%s: %s" % (targets[i], e))

    readers = []
    try:
        for i, s in enumerate(streams):
            expect_value(targets[i] + " status", s.read_head(), 200)
            readers.append(threading.Thread(target=read, args=(i,)))
            readers[-1].start()
        time.sleep(0.3)
        note = harness.stop_and_check(srv, signal.SIGTERM,
                                      cpu.scaled(8.0), pids)
        for t in readers:
            t.join(cpu.scaled(5.0))
    finally:
        for s in streams:
            s.close()
    check(not errors, "; ".join(errors[:3]))
    for i, last in enumerate(lasts[:-1]):
        check(last and last[0] == "error" and
              json_path(last[1], "error.status") == 503,
              "%s ended with %r" % (targets[i], last and last[0]))
    check(lasts[-1] and lasts[-1].startswith("error 503: "),
          "text stream ended with %r" % lasts[-1])
    return note


def server_groups(web_root):
    """(title, extra args, environment, cases) for run.py's server_group."""
    base = ["--web-root", web_root, "--threads", "2", "--workers",
            str(WORKERS), "--demo-threads", str(DEMO_THREADS),
            "--grace-ms", "1000"]
    return [
        ("live", base, None, [
            ("live: sleep streamed, task-ends arrive as tasks end",
             case_sleep_stream),
            ("live: prime streamed (Accept), figures equal the body",
             case_prime_stream),
            ("live: processes, gil and async runs stream",
             case_process_stream),
            ("live: prime's progress tells the numbers checked so far",
             case_prime_progress),
            ("live: a comparison streams a mode event per mode",
             case_compare_events),
            ("live: a client that leaves mid-stream frees the pool",
             case_client_leaves),
            ("live: the text form of a comparison, lines as they happen",
             case_text_compare),
            ("live: 100 streamed 1000-task runs, slow readers",
             case_slow_readers),
        ]),
        ("live-shutdown", base[:-2] + ["--grace-ms", "500"], None, [
            ("live: SIGTERM with streams in flight ends each with 503",
             case_sigterm_streams),
        ]),
        ("live-deadline", base + ["--job-timeout-ms", "500"], None, [
            ("live: a run past its deadline ends with an error event",
             case_error_event),
        ]),
    ]

"""Chaos run: a bounded, seeded, randomized load against the real binary.

Used by run.py (server_groups() below adds its groups to the run):

    python3 tests/integration/run.py --binary build/conlab --chaos \\
        [--chaos-seed N] [--chaos-seconds S]

--chaos runs only the chaos groups ("chaos" with a fresh seed, or the one
given, and one short "chaos-seed-N" group per entry of REGRESSION_SEEDS);
--group chaos runs the random one alone. The seed is printed with the
exact command that reruns it. A seed fixes every random choice (each
client's requests and parameters, the kill times, the SIGTERM moment); the
thread interleaving is the machine's, so a timing-dependent failure may
need a few reruns. A seed that found a defect goes into REGRESSION_SEEDS.

What one run does (one server, --workers 2 --threads 2 --conn-timeout 2):

  load     CLIENTS threads send, for the given seconds, a random mix of
           every route (/health, /run/prime, /run/square, /run/sleep,
           /run/fetch with count+ms and with url= targets on the server's
           own address, /run/compare, /delay, /metrics, /openapi.json,
           static files, unknown and malformed paths, wrong methods,
           oversized requests) with valid, boundary (min, max, min-1,
           max+1, from api/openapi.json) and invalid parameters. A maximum
           that would run long is sent with an unknown parameter as well:
           the 400 must then name only that parameter (so the maximum
           passed its own check) and nothing runs. Each client picks per
           request: one request per connection, two pipelined on one
           keep-alive connection, a half-close (shutdown(SHUT_WR) after
           sending; the answer must still come), leaving (close or reset)
           mid-request, or garbage bytes. A killer sends kill -9 to random
           workers (pids from /health that are children of the server).
  checks   every answer to a well-formed request has a status documented
           for its route in api/openapi.json (requests refused before
           routing: the exact 400/413/414/431 expected), the status the
           request calls for where it is known (400 for a bad parameter,
           405 for a wrong method...), never 499; errors have the JSON error
           shape with the HTTP status; 405 has Allow, 503 Retry-After; the
           X-Request-Id sent comes back; 200 bodies are right (primes,
           squares, sleeps, fetched URLs, static files, the document).
  metrics  the clients stop, the server is quiesced (/health: nothing
           busy, queued or in flight) and /metrics is scraped until it
           sees only itself in flight. Let M(k) be the growth of
           conlab_http_requests_total{route,method,status} = k since the
           scrape before the load, C(k) the exchanges with label k whose
           answer a client read completely (the scrape before the load
           included, the last one not: a request is counted when it
           completes), plus the requests the server's own fetches made
           whose status their answer reports. Uncertain attempts (clients
           that left mid-request, garbage with a line break, requests left
           unanswered, fetches not answered 200) may each add at most one
           count per request they could have caused, to labels of their
           route and method (or "none"). Asserted, exactly: M(k) >= C(k) for every k,
           and the excess M - C can be assigned to the uncertain attempts
           within those caps (a max flow). Measured: libmicrohttpd may
           count even a piece of a request line, or noise without a line
           break, when the close arrives with it (under "none", 499), so
           those are uncertain too. Also:
           each route's histogram _count grew as its requests_total; the
           crash restarts grew by the number of kills; failed jobs <= kills,
           and 502s read by clients <= failed jobs.
  baseline after the load, bounded by a settle wait (polled): the server's
           descriptors by kind equal those before the load, apart from the
           connections to and from itself that libcurl may keep (at most
           LOOP_CONN_CACHE), with no client connection left; its children
           are exactly the workers /health lists, alive, as many as before;
           each worker holds only 0-2 and its channel (issue 12).
  SIGTERM  a last burst of requests, most of them slow (sleeps, delays,
           fetches, comparisons of 0.1 to 4 s, some longer than the
           --grace-ms 1000), SIGTERM at a seeded moment with requests in
           flight: those sent before it are answered (what they asked, or
           503 once draining or at the end of the grace period), later ones
           get 503 or no connection; exit 0 within the grace period, no
           sanitizer report, no process of the server's session left.

Load is kept light for a shared 2-core machine: CLIENTS threads with a
short think time, demo parameters small (primes below 10^5, sleeps and
delays of a few hundred ms at most). Every wait is bounded and scaled by
harness.TIME_SCALE; only 127.0.0.1 is contacted (fetch targets that must
be refused name loopback addresses too); the only processes signalled are
the server (by its PID) and workers it lists in /health that are its
children.
"""

import json
import os
import random
import re
import signal
import socket
import threading
import time
import traceback
import urllib.parse
from collections import Counter

import cpu
import harness
import ops
from harness import CheckFailed, check, expect_error_shape

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DOC_PATH = os.path.join(REPO, "api", "openapi.json")

# Seeds that found a defect, rerun on every run for a few seconds each:
# (seed, load seconds, what it found).
REGRESSION_SECONDS = 6
REGRESSION_SEEDS = [
    (1, REGRESSION_SECONDS, "half-closed clients answered 499 or closed "
     "without an answer; static 301 and dot-segment 400 not in the "
     "document; respawned workers hold the loop's libcurl socketpair"),
    (2, REGRESSION_SECONDS, "a url= whose path is not UTF-8 once decoded "
     "vanished from params.url and from its task"),
]

DEFAULT_SECONDS = 40      # load; the group takes about 5 s more
CLIENTS = 6               # load threads
TERM_CLIENTS = 4          # threads of the burst around SIGTERM
THINK_S = 0.03            # at most this pause between a client's requests
WORKERS = 2
GRACE_MS = 1000          # shorter than the slowest requests of the burst
CONN_TIMEOUT_S = 2        # idle connections (libcurl's cached ones) cut soon
LOOP_CONN_CACHE = 64      # loop.c: CURLMOPT_MAXCONNECTS
KILL_MIN_AGE_S = 1.2      # pool.c backs off respawns of younger workers
PROBE = "zz_probe"        # unknown parameter, checked after all others
REQUEST_TIMEOUT_S = 20.0  # one exchange (x TIME_SCALE)
PRIME_MAX = 100000        # largest limit run (the result is checked)
MAX_SHOWN = 12            # violations printed per run
TERM_MARGIN_S = 0.2       # sent this close to SIGTERM: may go unanswered

JSON_CTYPE = "application/json; charset=utf-8"
METHOD_LABELS = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"}
REQUESTS = ops.REQUESTS
DURATION = ops.DURATION

# Set by run.py from its command line (configure()).
_config = {"seed": None, "seconds": DEFAULT_SECONDS, "binary": "build/conlab"}


def configure(seed=None, seconds=None, binary=None):
    """run.py: the seed (None: a fresh one), the load seconds, and the
    binary path to print in the rerun command."""
    if seed is not None:
        _config["seed"] = seed
    if seconds is not None:
        _config["seconds"] = seconds
    if binary is not None:
        _config["binary"] = binary


def rerun_command(seed, seconds):
    return ("python3 tests/integration/run.py --binary %s --group chaos "
            "--chaos-seed %d --chaos-seconds %g"
            % (_config["binary"], seed, seconds))


def scaled(seconds):
    return seconds * harness.TIME_SCALE


def _short(value, limit=160):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# --------------------------------------------------------------------------
# The document: statuses and parameter bounds

with open(DOC_PATH) as _f:
    DOC = json.load(_f)
API_PATHS = sorted(p for p in DOC["paths"] if p != "/")


def _param(name):
    return DOC["components"]["parameters"][name]["schema"]


def _bounds(name):
    s = _param(name)
    if s.get("type") == "array":
        s = s["items"]
    return s["minimum"], s["maximum"]


def _enum(name):
    return list(_param(name)["enum"])


LIMIT = _bounds("prime.limit")
PRIME_TASKS = _bounds("prime.tasks")
SQ_ITEM = _bounds("square.numbers")
GET_ITEMS_MAX = 1900  # one-digit items under the 4 KiB target cap
TARGET_MAX = 4096     # http.h HTTP_URI_MAX: a longer target is 414
SQ_ITEMS = (_param("square.numbers")["minItems"],
            _param("square.numbers")["maxItems"])
SQ_TASKS = _bounds("square.tasks")
SLEEP_TASKS = _bounds("sleep.tasks")
SLEEP_TASKS_BY_MODE = DOC["components"]["parameters"]["sleep.tasks"][
    "x-conlab-max-by-mode"]
SLEEP_MS = _bounds("sleep.ms")
FETCH_COUNT = _bounds("fetch.count")
FETCH_MS = _bounds("fetch.ms")
FETCH_URLS = (_param("fetch.url")["minItems"], _param("fetch.url")["maxItems"])
DELAY_MS = _bounds("delay.ms")
MODES = {d: _enum(d + ".mode") for d in ("prime", "square", "sleep",
                                         "fetch", "work", "counter",
                                         "deadlock")}
COMPARE_DEMOS = _enum("compare.demo")
COMPARE_TASKS = _bounds("compare.tasks")


def documented(doc_path, method):
    """Statuses (ints) documented for method on doc_path; a method the
    path does not have answers as its GET documents (405 among them)."""
    ops_ = DOC["paths"][doc_path]
    op = ops_.get(method.lower()) or ops_["get"]
    return {int(s) for s in op["responses"]}


def route_of(target, status=None):
    """The route label the service counts a request under: "none" when it
    is refused before routing (413/414/431, a target that is not
    origin-form, an invalid %-escape or %00 in the path), the API path
    when the decoded path is one, else the static handler's "/*"."""
    if status in (413, 414, 431):
        return "none"
    if isinstance(target, str):
        target = target.encode("latin-1")
    if not target.startswith(b"/"):
        return "none"
    path = target.split(b"?", 1)[0]
    out = bytearray()
    i = 0
    while i < len(path):
        c = path[i]
        if c == 0x25:  # '%'
            hexpart = path[i + 1:i + 3]
            if len(hexpart) < 2 or not re.match(rb"^[0-9a-fA-F]{2}$",
                                                hexpart):
                return "none"
            c = int(hexpart, 16)
            if c == 0:
                return "none"
            i += 3
        else:
            i += 1
        out.append(c)
    decoded = bytes(out).decode("latin-1")
    return decoded if decoded in API_PATHS else "/*"


def method_label(method):
    return method if method in METHOD_LABELS else "OTHER"


# server/metrics.c: the statuses with their own label; others are "other".
METRIC_STATUSES = {200, 301, 304, 400, 403, 404, 405, 411, 413, 414, 415,
                   431, 499, 500, 502, 503, 504}


def status_label(status):
    return str(status) if status in METRIC_STATUSES else "other"


# --------------------------------------------------------------------------
# Reading responses on a connection that may carry several


class Conn:
    """A client connection with a read buffer, so that pipelined answers
    are split where they end."""

    def __init__(self, port, timeout):
        self.sock = socket.create_connection((harness.LOOPBACK, port),
                                             timeout=timeout)
        self.buf = bytearray()
        self.eof = False

    def close(self, reset=False):
        if reset:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
        self.buf += chunk

    def read(self, head, timeout):
        """One response (harness.Response); status None with .error when
        none came whole."""
        resp = harness.Response()
        deadline = time.monotonic() + timeout
        try:
            while True:
                end = _response_end(bytes(self.buf), head)
                if end is not None:
                    raw = bytes(self.buf[:end])
                    del self.buf[:end]
                    info = _head_info(raw)
                    if info and info[1] is not None and 100 <= info[1] < 200:
                        continue  # interim (RFC 9110 15.2): the answer follows
                    break
                if self.eof:
                    raw = bytes(self.buf)
                    self.buf.clear()
                    resp.closed = True
                    if not _to_eof(raw, head):
                        resp.error = ("closed after %d bytes" % len(raw)
                                      if raw else "closed without an answer")
                        resp.raw = raw
                        return resp
                    break
                if len(self.buf) > harness.MAX_RESPONSE_BYTES:
                    resp.error = "response too large"
                    return resp
                self._fill(deadline)
        except socket.timeout:
            resp.error = "no whole answer within %.1f s (%d bytes)" % (
                timeout, len(self.buf))
            return resp
        except OSError as e:
            resp.error = "read failed: %r" % e
            return resp
        resp.raw = raw
        harness._parse_into(resp, raw, head)
        return resp


def _head_info(data):
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = data[:end].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        status = None
    length, chunked = None, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                pass
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return end + 4, status, length, chunked


def _response_end(data, head):
    """Bytes of data that make one whole response, or None (not yet, or
    only the server's close can tell)."""
    info = _head_info(data)
    if info is None:
        return None
    start, status, length, chunked = info
    if head or status in (204, 304) or (status is not None and status < 200):
        return start
    if chunked:
        pos = start
        while True:
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                return None
            try:
                size = int(data[pos:eol].split(b";")[0], 16)
            except ValueError:
                return None
            if size == 0:
                trailer = data.find(b"\r\n\r\n", eol)
                if data[eol:eol + 4] == b"\r\n\r\n":
                    return eol + 4
                return trailer + 4 if trailer >= 0 else None
            pos = eol + 2 + size + 2
            if pos > len(data):
                return None
    if length is not None:
        return start + length if len(data) >= start + length else None
    return None


def _to_eof(raw, head):
    """Whether raw, ended by the server's close, is one whole response."""
    info = _head_info(raw)
    if info is None:
        return False
    start, status, length, chunked = info
    if length is not None and not head and status not in (204, 304):
        return len(raw) >= start + length
    return not chunked


# --------------------------------------------------------------------------
# Requests: what is sent and what must come back


class Ask:
    """One request. doc: the api/openapi.json path whose responses apply
    (None: refused before routing, only expect applies); expect: the
    statuses it calls for (None: any documented one); verify(resp) returns
    what is wrong with a 200 (or a 400 naming the probe), or None.
    fetches: (self targets, modes) of a fetch or a comparison of fetch."""

    def __init__(self, what, method, target, doc, expect=None, headers=(),
                 body=b"", verify=None, fetches=None, simple=True):
        self.what, self.method, self.target = what, method, target
        self.doc, self.expect = doc, set(expect) if expect else None
        self.headers, self.body = list(headers), body
        self.verify, self.fetches = verify, fetches
        self.simple = simple  # may be pipelined or half-closed
        self.rid = None

    def data(self, keep_alive=False):
        headers = list(self.headers)
        if self.rid:
            headers.append(("X-Request-Id", self.rid))
        if keep_alive:
            headers.append(("Connection", "keep-alive"))
        return harness.build_request(self.method, self.target, headers,
                                     self.body)

    @property
    def head(self):
        return self.method == "HEAD"


def _json(resp):
    try:
        return resp.json()
    except ValueError:
        return None


def _q(pairs):
    return "&".join("%s=%s" % kv for kv in pairs)


class Gen:
    """Random requests of every kind, from one client's rng."""

    def __init__(self, rng, port, web_root):
        self.rng, self.port, self.web_root = rng, port, web_root
        self.files, self.hidden, self.dirs = _web_files(web_root)

    # ---- parameter values

    def number(self, lo, hi, typical, costly_max=True):
        """(text, state) for an integer parameter: state "ok", "max" (the
        maximum: sent with the probe if costly_max) or "bad"."""
        r = self.rng.random()
        if r < 0.72:
            return str(typical()), "ok"
        if r < 0.80:
            return str(lo), "ok"
        if r < 0.86:
            return str(hi), "max" if costly_max else "ok"
        if r < 0.91:
            return str(lo - 1), "bad"
        if r < 0.96:
            return str(hi + 1), "bad"
        return self.rng.choice(["abc", "1e5", "", "%2B5", "1.5",
                                "18446744073709551616", "0x10"]), "bad"

    def mode(self, demo, weight_bad=0.05):
        if self.rng.random() < weight_bad:
            return self.rng.choice(["fast", "PROCESSES", "", "gil2"]), "bad"
        return self.rng.choice(MODES[demo]), "ok"

    # ---- assembling

    def finish(self, what, route, pairs, states, verify):
        """An Ask for GET route?pairs; a "bad" state expects 400, a "max"
        one adds the probe and expects the 400 naming only it."""
        bad = "bad" in states
        probe = not bad and "max" in states
        short = sum(len(k) + len(v) for k, v in pairs) < 2000
        if not bad and short and self.rng.random() < 0.03:
            pairs = pairs + [("zz_unknown", "1")]  # unknown parameter
            bad = True
        once = [kv for kv in pairs if kv[0] != "url"]  # url repeats
        if not bad and short and once and self.rng.random() < 0.02:
            pairs = pairs + [once[0]]  # a parameter given twice
            bad = True
        if probe:
            pairs = pairs + [(PROBE, "1")]
        target = route + ("?" + _q(pairs) if pairs else "")
        if len(target) > TARGET_MAX:
            # The most URLs a fetch takes do not always fit a GET's target
            # (a POST body carries them): refused for its length first.
            return Ask(what + " (target over the cap)", self.get_or_head(),
                       target, None, {414})
        if bad or probe:
            return Ask(what + (" (bad)" if bad else " (max + probe)"),
                       self.get_or_head(), target, route, {400},
                       verify=None if bad else _names_probe)
        return Ask(what, self.get_or_head(), target, route,
                   _valid(route), verify=verify)

    def get_or_head(self):
        return "HEAD" if self.rng.random() < 0.12 else "GET"

    # ---- routes

    def prime(self):
        rng = self.rng
        pairs, states = [], []
        limit = None
        if rng.random() < 0.9:
            text, st = self.number(
                LIMIT[0], LIMIT[1],
                lambda: rng.choice([rng.randint(2, 50), rng.randint(2, 3000),
                                    rng.randint(2, 30000), PRIME_MAX]))
            pairs.append(("limit", text))
            states.append(st)
            limit = int(text) if st == "ok" else None
        else:
            limit = _param("prime.limit")["default"]
        tasks = None
        if rng.random() < 0.8:
            text, st = self.number(PRIME_TASKS[0], PRIME_TASKS[1],
                                   lambda: rng.randint(1, 4),
                                   costly_max=False)
            if st == "ok" and int(text) > 8 and (limit or 0) < 1000:
                text = "8"  # many tasks only where there is work to split
            pairs.append(("tasks", text))
            states.append(st)
            tasks = int(text) if st == "ok" else None
        if rng.random() < 0.7:
            mode, st = self.mode("prime")
            pairs.append(("mode", mode))
            states.append(st)
        rng.shuffle(pairs)
        want_tasks = tasks if tasks is not None else WORKERS

        def verify(resp):
            if limit is None or limit > PRIME_MAX:
                return None
            return _expect_fields(resp, {"result": primes_below(limit)},
                                  tasks=want_tasks)
        return self.finish("prime", "/run/prime", pairs, states, verify)

    def square(self):
        rng = self.rng
        pairs, states = [], []
        nums = None
        r = rng.random()
        if r < 0.75:
            nums = [rng.choice([rng.randint(-1000, 1000),
                                rng.randint(SQ_ITEM[0], SQ_ITEM[1]),
                                SQ_ITEM[0], SQ_ITEM[1], 0])
                    for _ in range(rng.randint(1, 12))]
            text, st = ",".join(map(str, nums)), "ok"
        elif r < 0.80:
            # The most items a 4 KiB target holds (the cap of
            # SQ_ITEMS[1] takes a request body).
            nums = [rng.randint(0, 9)
                    for _ in range(min(SQ_ITEMS[1], GET_ITEMS_MAX))]
            text, st = ",".join(map(str, nums)), "ok"
        elif r < 0.83:
            text, st = "1,2," + "7" * 40, "bad"  # an item out of range
        else:
            text = rng.choice(["%d" % (SQ_ITEM[1] + 1), "%d" % (SQ_ITEM[0] - 1),
                               "1,,2", "1,2,", "", "x", "1,x", "2.5"])
            st = "bad"
        pairs.append(("numbers", text))
        states.append(st)
        count = len(nums) if nums else 1
        tasks = None
        if rng.random() < 0.7:
            r = rng.random()
            if r < 0.7:
                tasks, st = rng.randint(1, min(count, 4)), "ok"
            elif r < 0.8:
                tasks, st = min(count, SQ_TASKS[1]), "ok"
            elif r < 0.9:
                tasks, st = min(count, SQ_TASKS[1]) + 1, "bad"
            else:
                tasks, st = 0, "bad"
            pairs.append(("tasks", str(tasks)))
            states.append(st)
        if rng.random() < 0.6:
            mode, st = self.mode("square")
            pairs.append(("mode", mode))
            states.append(st)
        rng.shuffle(pairs)

        def verify(resp):
            if nums is None:
                return None
            return _expect_fields(resp, {"result": {
                "squares": [n * n for n in nums]}}, tasks=tasks or min(
                    WORKERS, count))
        ask = self.finish("square", "/run/square", pairs, states, verify)
        ask.simple = len(ask.target) < 4096
        return ask

    def sleep(self):
        rng = self.rng
        pairs, states = [], []
        mode, mst = self.mode("sleep")
        if rng.random() < 0.8 or mst == "bad":
            pairs.append(("mode", mode))
            states.append(mst)
        else:
            mode = "async"  # the default
        mode_max = SLEEP_TASKS_BY_MODE.get(mode, SLEEP_TASKS[1])
        ms_text, ms_st = self.number(SLEEP_MS[0], SLEEP_MS[1],
                                     lambda: rng.choice([0, 1, rng.randint(
                                         0, 60), rng.randint(0, 250)]))
        pairs.append(("ms", ms_text))
        states.append(ms_st)
        r = rng.random()
        tasks = None
        if r < 0.7:
            tasks, st = rng.randint(1, 4), "ok"
        elif r < 0.76:
            tasks, st = SLEEP_TASKS[0], "ok"
        elif r < 0.82:
            tasks, st = mode_max, "max"
        elif r < 0.88:
            tasks, st = mode_max + 1, "bad"
        elif r < 0.93 and mode == "async":
            # Past every other mode's bound, valid here: short sleeps only.
            tasks, st = SLEEP_TASKS_BY_MODE["threads"] + 1, "ok"
            if ms_st == "ok" and int(ms_text) > 20:
                ms_text = "20"
                pairs[-1] = ("ms", ms_text)
        else:
            tasks, st = 0, "bad"
        pairs.append(("tasks", str(tasks)))
        states.append(st)
        rng.shuffle(pairs)
        ms = int(ms_text) if ms_st == "ok" else None

        def verify(resp):
            if ms is None:
                return None
            return _expect_fields(resp, {"result": {"slept_ms": ms}},
                                  tasks=tasks)
        return self.finish("sleep", "/run/sleep", pairs, states, verify)

    def self_url(self, host=None):
        """(url, path) of an allowed target on this server."""
        path = self.rng.choice(["/health", "/delay?ms=%d" % self.rng.randint(
            0, 120), "/nope.txt", "/index.html", "/health?x=1",
            "/openapi.json"])
        host = host or self.rng.choice(["127.0.0.1", "localhost"])
        return "http://%s:%d%s" % (host, self.port, path), path

    def refused_url(self):
        """(url, status): a loopback target the policy must refuse (403)
        or a malformed one (400)."""
        p = self.port
        return self.rng.choice([
            ("http://127.0.0.1:1/", 403),
            ("http://[::1]:%d/health" % p, 403),
            ("http://127.0.0.2:%d/health" % p, 403),
            ("http://localhost:1/", 403),
            ("ftp://127.0.0.1:%d/" % p, 403),
            ("http://user@127.0.0.1:%d/health" % p, 400),
            ("notaurl", 400),
            ("http://", 400),
        ])

    def fetch(self):
        rng = self.rng
        pairs, states = [], []
        targets, refused, utf8 = None, None, False
        urls = []
        if rng.random() < 0.55:
            count_text, cst = self.number(FETCH_COUNT[0], FETCH_COUNT[1],
                                          lambda: rng.randint(1, 4))
            ms_text, mst = self.number(FETCH_MS[0], FETCH_MS[1],
                                       lambda: rng.randint(0, 120))
            pairs += [("count", count_text), ("ms", ms_text)]
            states += [cst, mst]
            if rng.random() < 0.04:
                pairs.append(("url", urllib.parse.quote(
                    self.self_url()[0], safe="")))
                states.append("bad")  # url and count: not both
            if cst == "ok" and mst == "ok":
                targets = ["/delay?ms=%s" % ms_text] * int(count_text)
        else:
            r = rng.random()
            if r < 0.04:
                n, st = FETCH_URLS[1] + 1, "bad"
            elif r < 0.07:
                n, st = FETCH_URLS[1], "max"
            else:
                n, st = rng.randint(1, 3), "ok"
            states.append(st)
            paths = []
            for _ in range(n):
                url, path = self.self_url()
                urls.append(url)
                paths.append(path)
            r = rng.random()
            if r < 0.12:
                url, refused = self.refused_url()
                at = rng.randrange(len(urls) + 1)
                urls.insert(at, url)
            elif r < 0.16 and st == "ok":
                # A path that is not UTF-8 once decoded: refused (400), or
                # fetched and reported as sent. (Not on top of the most
                # URLs allowed: one more would be refused for its count.)
                urls.append("http://127.0.0.1:%d/%%FF" % self.port)
                paths.append("/%FF")
                utf8 = True
            pairs += [("url", u if u.endswith("%FF") else
                       urllib.parse.quote(u, safe="")) for u in urls]
            if st == "ok" and refused is None:
                targets = paths
        if rng.random() < 0.6:
            mode, st = self.mode("fetch")
            pairs.append(("mode", mode))
            states.append(st)
        if refused is not None:
            rng.shuffle(pairs)
            # Which refusal comes first, a bad parameter's or the
            # target's, is not specified: both are fair then.
            expect = {refused} if all(s == "ok" for s in states) else \
                {400, 403}
            target = "/run/fetch?" + _q(pairs)
            if len(target) > TARGET_MAX:  # refused before routing
                return Ask("fetch (refused url, target over the cap)",
                           self.get_or_head(), target, None, {414})
            return Ask("fetch (refused url)", self.get_or_head(), target,
                       "/run/fetch", expect)
        n_targets = len(targets) if targets else None

        def verify(resp):
            return _check_fetch(resp, n_targets, urls)
        ask = self.finish("fetch", "/run/fetch", pairs, states, verify)
        if ask.expect == _valid("/run/fetch") and targets:
            ask.fetches = (targets, 1)
            if utf8:
                ask.expect = ask.expect | {400}
        return ask

    def compare(self):
        rng = self.rng
        r = rng.random()
        p = self.port
        if r < 0.15:
            query, status = rng.choice([
                ("", 400), ("demo=tetris", 400), ("demo=prime&mode=threads",
                                                   400),
                ("demo=prime&limit=1", 400), ("demo=sleep&limit=10", 400),
                ("demo=sleep&tasks=%d&ms=1" % (COMPARE_TASKS[1] + 1), 400),
                ("demo=prime&limit=%d" % LIMIT[1], 400),
                ("demo=sleep&tasks=10&ms=%d" % SLEEP_MS[1], 400),
                ("demo=fetch&count=%d&ms=100" % FETCH_COUNT[1], 400),
                ("demo=fetch&url=http%3A%2F%2F127.0.0.1%3A1%2F", 403),
                ("demo=fetch&url=http%%3A%%2F%%2F127.0.0.1%%3A%d%%2F&count=2"
                 % p, 400),
            ])
            return Ask("compare (bad)", self.get_or_head(),
                       "/run/compare?" + query, "/run/compare", {status})
        demo = rng.choice(COMPARE_DEMOS)
        fetches, verify_extra = None, {}
        if demo == "prime":
            limit = rng.randint(2, 20000)
            query = "demo=prime&limit=%d&tasks=%d" % (limit, rng.randint(1, 3))
            verify_extra = {"result": primes_below(limit)}
        elif demo == "square":
            nums = [rng.randint(-99, 99) for _ in range(rng.randint(1, 6))]
            query = "demo=square&numbers=%s&tasks=%d" % (
                ",".join(map(str, nums)), rng.randint(1, len(nums)))
            verify_extra = {"result": {"squares": [n * n for n in nums]}}
        elif demo == "sleep":
            ms = rng.randint(0, 40)
            query = "demo=sleep&tasks=%d&ms=%d" % (rng.randint(1, 3), ms)
            verify_extra = {"result": {"slept_ms": ms}}
        elif demo == "work":
            query = "demo=work&tasks=%d&ms=%d&io_ratio=%s&variance=%s" % (
                rng.randint(1, 3), rng.randint(1, 30),
                rng.choice(["0", "0.25", "0.5", "1"]),
                rng.choice(["0", "0.5"]))
        elif demo == "counter":
            # lock and atomic: no mode loses an update, so every mode
            # agrees (none may race: the bench counts that)
            tasks, incs = rng.randint(1, 3), rng.randint(1, 5000)
            query = "demo=counter&tasks=%d&increments=%d&sync=%s" % (
                tasks, incs, rng.choice(["lock", "atomic"]))
            verify_extra = {"result": {"final": tasks * incs, "lost": 0}}
        elif demo == "deadlock":
            # the same order never deadlocks, in any mode
            query = "demo=deadlock&order=same&hold_ms=%d" % rng.randint(0, 20)
            verify_extra = {"result": {"deadlocked": False}}
        else:
            if rng.random() < 0.6:
                count, ms = rng.randint(1, 3), rng.randint(0, 30)
                query = "demo=fetch&count=%d&ms=%d" % (count, ms)
                fetches = (["/delay?ms=%d" % ms] * count, 3)
            else:
                url, path = self.self_url("127.0.0.1")
                query = "demo=fetch&url=%s" % urllib.parse.quote(url, safe="")
                fetches = ([path], 3)
        modes = MODES[demo]

        def verify(resp):
            return _check_compare(resp, demo, modes, verify_extra)
        return Ask("compare %s" % demo, self.get_or_head(),
                   "/run/compare?" + query, "/run/compare",
                   _valid("/run/compare"), verify=verify, fetches=fetches)

    def delay(self):
        rng = self.rng
        pairs, states = [], []
        ms = 0
        if rng.random() < 0.9:
            text, st = self.number(DELAY_MS[0], DELAY_MS[1],
                                   lambda: rng.randint(0, 300))
            pairs.append(("ms", text))
            states.append(st)
            ms = int(text) if st == "ok" else None

        def verify(resp):
            if ms is None:
                return None
            return _expect_fields(resp, {"delay_ms": ms})
        return self.finish("delay", "/delay", pairs, states, verify)

    def plain_route(self):
        route = self.rng.choice(["/health", "/metrics", "/openapi.json"])
        if self.rng.random() < 0.1:
            return Ask("%s?x=1" % route, self.get_or_head(), route + "?x=1",
                       route, {400})
        verify = {"/health": _check_health, "/metrics": _check_metrics,
                  "/openapi.json": _check_document}[route]
        return Ask(route, self.get_or_head(), route, route, _valid(route),
                   verify=verify)

    def static(self):
        rng = self.rng
        r = rng.random()
        if r < 0.6:
            rel, content = rng.choice(self.files)
            target = "/" + urllib.parse.quote(rel)
            if rel.endswith("index.html") and rng.random() < 0.5:
                target = target[:-len("index.html")]
            if rel == "big.bin" and rng.random() < 0.8:
                rel, content = self.files[0]
                target = "/" + urllib.parse.quote(rel)
            if rng.random() < 0.1:
                target += "?v=%d" % rng.randint(0, 9)
            headers = []
            expect = {200}
            if rng.random() < 0.1:
                headers = [("If-None-Match", "*")]
                expect = {304}
            return Ask("static file", self.get_or_head(), target, "/",
                       expect, headers=headers,
                       verify=lambda resp, c=content: _check_static(resp, c))
        if r < 0.7 and self.hidden:
            return Ask("hidden or outside file", self.get_or_head(),
                       "/" + rng.choice(self.hidden), "/", {404})
        if r < 0.8:
            return Ask("missing file", self.get_or_head(),
                       rng.choice(["/nope-%d.html" % rng.randint(0, 99),
                                   "/nodir/x.js", "/run/nope", "/run/prime/x",
                                   "/RUN/PRIME", "/health/", "/%2fhealth",
                                   "/\xc3\xa9"]), "/", {404})
        if r < 0.88:
            return Ask("dot segment", self.get_or_head(),
                       rng.choice(["/%2e%2e/x", "/sub/../index.html",
                                   "/./index.html", "/%2E%2E/%2e%2e/etc/passwd",
                                   "/sub/%2e%2e/%2e%2e/etc/passwd"]),
                       "/", {400, 404})
        if r < 0.94 and self.dirs:
            return Ask("directory without its slash", self.get_or_head(),
                       "/" + urllib.parse.quote(rng.choice(self.dirs)), "/",
                       {301})
        return Ask("malformed target", self.get_or_head(),
                   rng.choice(["/%zz", "/%", "/%4", "/health%00", "/%00", "*",
                               "http://127.0.0.1/health", "127.0.0.1:80"]),
                   None, {400})

    def wrong_method(self):
        rng = self.rng
        method = rng.choice(["POST", "PUT", "DELETE", "PATCH", "OPTIONS",
                             "BREW", "TRACE"])
        route = rng.choice(API_PATHS + ["/", "/index.html", "/nope.txt"])
        headers, body = [], b""
        if method in ("POST", "PUT", "PATCH"):
            body = b"x" * rng.choice([0, 1, 100, 4000])
            headers = [("Content-Length", str(len(body)))]
        doc = route if route in API_PATHS else "/"
        expect = {405}
        if method.lower() in DOC["paths"].get(route, {}):
            # A route that takes this method (POST with a JSON body): what
            # is sent here is not JSON, so it is refused as such.
            expect = {415}
        ask = Ask("%s %s" % (method, route), method, route, doc, expect,
                  headers=headers, body=body)
        return ask

    def oversized(self):
        rng = self.rng
        kind = rng.randrange(4)
        if kind == 0:
            return Ask("413 body length", "POST", "/health", None, {413},
                       headers=[("Content-Length", "70000")], simple=False)
        if kind == 1:
            return Ask("413 body", "POST", "/health", None, {413},
                       body=b"z" * 70000, simple=False)
        if kind == 2:
            return Ask("414 target", "GET", "/health?" + "a" * 4096, None,
                       {414}, simple=False)
        return Ask("431 header", "GET", "/health", None, {431},
                   headers=[("X-Big", "b" * 9000)], simple=False)

    ROUTES = [("prime", 14), ("square", 8), ("sleep", 12), ("fetch", 12),
              ("compare", 6), ("delay", 8), ("plain_route", 14),
              ("static", 14), ("wrong_method", 6), ("oversized", 1)]

    def any(self):
        names = [n for n, _ in self.ROUTES]
        weights = [w for _, w in self.ROUTES]
        return getattr(self, self.rng.choices(names, weights)[0])()

    def slow(self, compare_only=False):
        """A request of 0.1 to about 4 s, for the burst around SIGTERM:
        some finish within the grace period, some outlast it (comparisons
        mid-chain among them) and must get the 503 of its end."""
        rng = self.rng
        p = self.port
        kinds = [
            lambda: Ask("slow sleep", "GET", "/run/sleep?ms=%d&tasks=%d&"
                        "mode=%s" % (rng.randint(100, 1200), rng.randint(1, 3),
                                     rng.choice(MODES["sleep"])),
                        "/run/sleep", _valid("/run/sleep")),
            lambda: Ask("slow delay", "GET", "/delay?ms=%d"
                        % rng.randint(100, 1500), "/delay", _valid("/delay")),
            lambda: Ask("slow fetch", "GET", "/run/fetch?count=%d&ms=%d&"
                        "mode=%s" % (rng.randint(1, 3), rng.randint(100, 600),
                                     rng.choice(MODES["fetch"])),
                        "/run/fetch", _valid("/run/fetch")),
            lambda: Ask("slow compare", "GET", "/run/compare?demo=sleep&"
                        "tasks=2&ms=%d" % rng.randint(50, 500),
                        "/run/compare", _valid("/run/compare")),
            lambda: Ask("slow compare prime", "GET", "/run/compare?demo="
                        "prime&limit=%d&tasks=2" % rng.randint(100000, 1000000),
                        "/run/compare", _valid("/run/compare")),
            lambda: Ask("slow compare fetch", "GET", "/run/compare?demo=fetch"
                        "&url=%s" % urllib.parse.quote(
                            "http://127.0.0.1:%d/delay?ms=%d"
                            % (p, rng.randint(50, 400)), safe=""),
                        "/run/compare", _valid("/run/compare")),
            lambda: Ask("slow prime", "GET", "/run/prime?limit=%d&tasks=2"
                        % PRIME_MAX, "/run/prime", _valid("/run/prime")),
        ]
        if compare_only:
            kinds = kinds[3:6]
        return rng.choice(kinds)()


_prime_prefix = []
_prime_prefix_lock = threading.Lock()


def primes_below(limit):
    """The prime demo's result for limit (<= PRIME_MAX): one sieve, made
    by the first client thread to ask while the others wait for it (a
    thread that saw the list half-filled read past its end)."""
    with _prime_prefix_lock:
        if not _prime_prefix:
            flags = cpu.sieve(PRIME_MAX + 1)
            total = 0
            prefix = []
            for n in range(PRIME_MAX + 1):
                prefix.append(total)
                total += flags[n]
            _prime_prefix[:] = prefix
    return {"checked": limit - 1, "primes": _prime_prefix[limit]}


def _valid(route):
    """Statuses a well-formed, admissible request may get: 200 or an
    overload / worker / deadline error the document lists for the route."""
    return {200} | (documented(route, "GET") & {500, 502, 503, 504})


def _web_files(root):
    """([(relative path, bytes)], [hidden or outside names], [dirs])."""
    files, hidden, dirs = [], [], []
    for base, dnames, fnames in os.walk(root):
        rel_base = os.path.relpath(base, root)
        for d in dnames:
            rel = os.path.normpath(os.path.join(rel_base, d))
            if os.path.islink(os.path.join(base, d)) or d.startswith("."):
                hidden.append(rel + "/x")
            else:
                dirs.append(rel)
        for f in fnames:
            rel = os.path.normpath(os.path.join(rel_base, f))
            path = os.path.join(base, f)
            if f.startswith(".") or os.path.islink(path):
                hidden.append(rel)
                continue
            with open(path, "rb") as fh:
                files.append((rel, fh.read()))
    files.sort()
    dnames = [d for d in dirs if not any(part.startswith(".")
                                         for part in d.split(os.sep))]
    return files, sorted(hidden), sorted(dnames)


# --------------------------------------------------------------------------
# Checks of 200 bodies (and of the probe's 400)


def _names_probe(resp):
    if resp.status != 400 or resp.method_head:
        return None
    body = _json(resp)
    msg = body.get("error", {}).get("message", "") if isinstance(
        body, dict) else ""
    if "'%s'" % PROBE not in msg:
        return "the 400 does not name only the probe (the maximum was " \
               "refused?): %r" % msg[:160]
    return None


def _expect_fields(resp, fields, tasks=None):
    body = _json(resp)
    if not isinstance(body, dict):
        return "200 body is not a JSON object: %r" % resp.body[:120]
    for name, want in fields.items():
        if want is None:
            continue
        got = body.get(name)
        if isinstance(want, dict) and isinstance(got, dict):
            for k, v in want.items():
                if got.get(k) != v:
                    return "%s.%s is %s, expected %s" % (
                        name, k, _short(got.get(k), 80), _short(v, 80))
        elif got != want:
            return "%s is %s, expected %s" % (name, _short(got, 80),
                                              _short(want, 80))
    if tasks is not None and len(body.get("tasks") or []) != tasks:
        return "%d tasks, expected %d" % (len(body.get("tasks") or []),
                                          tasks)
    return None


def _check_fetch(resp, n_targets, urls):
    body = _json(resp)
    if not isinstance(body, dict):
        return "200 body is not a JSON object: %r" % resp.body[:120]
    result = body.get("result") or {}
    tasks = body.get("tasks") or []
    if n_targets is not None:
        if len(tasks) != n_targets:
            return "%d tasks for %d targets" % (len(tasks), n_targets)
        if result.get("ok", 0) + result.get("failed", 0) != n_targets:
            return "result %s does not add up to %d targets" % (
                _short(result), n_targets)
    if urls:
        sent = (body.get("params") or {}).get("url")
        if not isinstance(sent, list) or len(sent) != len(urls):
            return "params.url is %s for %d url parameters sent (a URL " \
                   "vanished from the answer)" % (_short(sent, 100),
                                                  len(urls))
        for t in tasks:
            if not isinstance(t.get("url"), str) or not t["url"]:
                return "task %s has no url: %s" % (t.get("id"), _short(t))
    return None


def _check_compare(resp, demo, modes, fields):
    body = _json(resp)
    if not isinstance(body, dict):
        return "200 body is not a JSON object: %r" % resp.body[:120]
    if body.get("demo") != demo or body.get("modes") != modes:
        return "demo %s modes %s, expected %s %s" % (
            body.get("demo"), body.get("modes"), demo, modes)
    runs = body.get("runs") or []
    if len(runs) != len(modes):
        return "%d runs for %d modes" % (len(runs), len(modes))
    if demo != "fetch":
        if body.get("results_agree") is not True:
            return "results_agree is %s; differing %s" % (
                body.get("results_agree"), body.get("differing_modes"))
        for run in runs:
            for name, want in fields.items():
                got = run.get(name)
                for k, v in want.items():
                    if (got or {}).get(k) != v:
                        return "mode %s: %s.%s is %s, expected %s" % (
                            run.get("mode"), name, k,
                            _short((got or {}).get(k), 60), _short(v, 60))
    return None


def _check_health(resp):
    return _expect_fields(resp, {"status": "ok"})


def _check_metrics(resp):
    try:
        ops.parse_metrics(resp.body.decode("utf-8"))
    except (CheckFailed, UnicodeDecodeError) as e:
        return "/metrics does not parse: %s" % e
    return None


def _check_document(resp):
    if _json(resp) != DOC:
        return "/openapi.json differs from api/openapi.json"
    return None


def _check_static(resp, content):
    if resp.status == 200 and resp.body != content:
        return "%d bytes, expected the file's %d" % (len(resp.body),
                                                     len(content))
    return None


# --------------------------------------------------------------------------
# The books: what clients completed, what was uncertain, what was wrong


class Books:
    def __init__(self, seed):
        self.seed = seed
        self.lock = threading.Lock()
        self.certain = Counter()    # (route, method, status): exchanges
        self.uncertain = Counter()  # (route or None, method or None): cap
        self.violations = Counter()
        self.examples = []
        self.stats = Counter()
        self.statuses = Counter()
        self.in_flight = 0

    def bad(self, kind, text):
        with self.lock:
            self.violations[kind] += 1
            if self.violations[kind] <= 3 and len(self.examples) < 60:
                self.examples.append("%s: %s" % (kind, text))

    def count(self, label, n=1):
        with self.lock:
            self.certain[label] += n

    def maybe(self, routes, method, n=1):
        """Up to n counts under one of routes (None: any) and method (None:
        any). A request whose head did not arrive whole is counted, if at
        all, under "none": it was never routed."""
        if routes is not None:
            routes = frozenset(routes) | {"none"}
        with self.lock:
            self.uncertain[(routes, method)] += n

    def summary(self):
        with self.lock:
            shown = self.examples[:MAX_SHOWN]
            return ("%d violations (%s); e.g. %s"
                    % (sum(self.violations.values()),
                       ", ".join("%s x%d" % kv for kv in
                                 self.violations.most_common()),
                       " | ".join(shown)))


def judge(books, ask, resp, style):
    """Checks one whole answer to a well-formed request and books it."""
    status = resp.status
    label = (route_of(ask.target, status), method_label(ask.method),
             status_label(status))
    books.count(label)
    book_fetches(books, ask, resp)
    with books.lock:
        books.statuses[status] += 1
    what = "%s %s %s [%s, %s]" % (ask.method, _short(ask.target, 70)[1:-1],
                                  "->", ask.what, style)
    if status == 499:
        books.bad("499", "%s 499%s" % (what, (
            " (a half-closed client taken for gone)"
            if style == "half-close" else "")))
        return
    if ask.doc is not None:
        docs = documented(ask.doc, ask.method)
        if status not in docs:
            books.bad("undocumented", "%s %d is not documented for %s %s "
                      "(documented: %s)" % (what, status, ask.method.upper()
                                            if ask.method in ("GET", "HEAD")
                                            else "GET", ask.doc,
                                            ",".join(map(str, sorted(docs)))))
            return
    if ask.expect is not None and status not in ask.expect:
        books.bad("status", "%s %d, expected %s; body %r" % (
            what, status, "/".join(map(str, sorted(ask.expect))),
            resp.body[:120]))
        return
    if status >= 400:
        try:
            if ask.head:
                check(resp.header("Content-Type") == JSON_CTYPE,
                      "content type %r" % resp.header("Content-Type"))
            else:
                expect_error_shape(resp)
        except CheckFailed as e:
            books.bad("error-shape", "%s %d: %s" % (what, status, e))
    if status == 405 and not resp.header("Allow"):
        books.bad("header", "%s 405 without Allow" % what)
    if status == 503 and not re.match(r"^\d+$",
                                      resp.header("Retry-After") or ""):
        books.bad("header", "%s 503 with Retry-After %r" % (
            what, resp.header("Retry-After")))
    if ask.rid and resp.header_all("X-Request-Id") != [ask.rid]:
        books.bad("request-id", "%s sent X-Request-Id %s, got %s" % (
            what, ask.rid, resp.header_all("X-Request-Id")))
    if ask.head and resp.body:
        books.bad("body", "%s HEAD answered %d body bytes" % (
            what, len(resp.body)))
    if ask.verify and not ask.head and status in (200, 400):
        resp.method_head = ask.head
        problem = ask.verify(resp) if status == 200 or \
            ask.verify is _names_probe else None
        if problem:
            books.bad("body", "%s %d: %s" % (what, status, problem))


def book_fetches(books, ask, resp):
    """The requests a fetch (or a comparison of fetches) made to this
    server: certain when its answer reports their status, else each at
    most once."""
    if not ask.fetches:
        return
    targets, modes = ask.fetches
    if resp is not None and resp.status in (400, 403):
        return  # refused before anything was fetched
    if modes > 1:
        # A comparison's untimed warm-up: the first target, once, on the
        # demo threads (fetch has no processes mode), its status unreported.
        books.maybe({route_of(targets[0])}, "GET")
    body = _json(resp) if resp is not None and resp.status == 200 and \
        not ask.head else None
    runs = None
    if isinstance(body, dict):
        runs = body.get("runs") if "runs" in body else [body]
    if not isinstance(runs, list) or len(runs) != modes:
        for path in targets:
            books.maybe({route_of(path)}, "GET", modes)
        return
    for run in runs:
        tasks = run.get("tasks") if isinstance(run, dict) else None
        if not isinstance(tasks, list) or len(tasks) != len(targets):
            for path in targets:
                books.maybe({route_of(path)}, "GET")
            continue
        for t in tasks:
            i = t.get("id")
            path = targets[i] if isinstance(i, int) and \
                0 <= i < len(targets) else None
            st = t.get("status")
            if path is None:
                for p in targets:
                    books.maybe({route_of(p)}, "GET")
            elif isinstance(st, int) and st >= 100:
                books.count((route_of(path, st), "GET", status_label(st)))
            else:
                books.maybe({route_of(path)}, "GET")


# --------------------------------------------------------------------------
# Client styles


class Client:
    def __init__(self, idx, books, gen, port, rid_prefix):
        self.idx, self.books, self.gen, self.port = idx, books, gen, port
        self.rid_prefix = rid_prefix
        self.n = 0
        self.timeout = scaled(REQUEST_TIMEOUT_S)
        self.draining = False  # the SIGTERM burst
        self.compare_only = False  # its slow requests all comparisons

    def next_ask(self, slow=False):
        ask = self.gen.slow(self.compare_only) if slow else self.gen.any()
        if self.draining and ask.expect is not None:
            ask.expect.add(503)  # any request may meet the shutdown
        self.n += 1
        ask.rid = "%s-%d-%d" % (self.rid_prefix, self.idx, self.n)
        return ask

    def connect(self):
        return Conn(self.port, self.timeout)

    def exchange(self, ask, style="plain", half_close=False):
        """One request on its own connection. Returns the Response (status
        None when no whole answer came)."""
        conn = self.connect()
        try:
            with self.books.lock:
                self.books.in_flight += 1
            send_error = None
            try:
                conn.sock.sendall(ask.data())
                if half_close:
                    conn.sock.shutdown(socket.SHUT_WR)
            except OSError as e:
                send_error = e
            ask.sent_at = time.monotonic()
            resp = conn.read(ask.head, self.timeout)
            if resp.status is None and send_error is not None:
                resp.error = "send failed (%r); %s" % (send_error, resp.error)
            return resp
        finally:
            with self.books.lock:
                self.books.in_flight -= 1
            conn.close()

    def plain(self, ask, half_close=False):
        style = "half-close" if half_close else "plain"
        resp = self.exchange(ask, style, half_close)
        if resp.status is None:
            self.unanswered(ask, style, resp.error)
        else:
            judge(self.books, ask, resp, style)
        return resp

    def unanswered(self, ask, style, error):
        """A well-formed request without a whole answer: wrong during the
        load; booked as uncertain (it may have been counted)."""
        self.books.maybe({route_of(ask.target)}, method_label(ask.method))
        book_fetches(self.books, ask, None)
        if getattr(self, "tolerate_unanswered", None) and \
                self.tolerate_unanswered(ask):
            self.books.stats["unanswered after SIGTERM"] += 1
            return
        if style == "half-close":
            self.books.bad("half-close", "%s %s [%s]: %s (a half-closed "
                           "client must still get its answer)" % (
                               ask.method, _short(ask.target, 70)[1:-1],
                               ask.what, error))
            return
        self.books.bad("no-answer", "%s %s [%s, %s]: %s" % (
            ask.method, _short(ask.target, 70)[1:-1], ask.what, style,
            error))

    def pipelined(self, first, second):
        conn = self.connect()
        try:
            with self.books.lock:
                self.books.in_flight += 1
            try:
                conn.sock.sendall(first.data(keep_alive=True) + second.data())
            except OSError as e:
                self.unanswered(first, "pipelined", "send failed: %r" % e)
                self.unanswered(second, "pipelined", "send failed: %r" % e)
                return
            first.sent_at = second.sent_at = time.monotonic()
            r1 = conn.read(first.head, self.timeout)
            if r1.status is None:
                self.unanswered(first, "pipelined 1/2", r1.error)
                self.unanswered(second, "pipelined 2/2", "after no answer "
                                "to the first")
                return
            judge(self.books, first, r1, "pipelined 1/2")
            if "close" in (r1.header("Connection") or "").lower():
                # Closed after the first (HTTP lets the server): the
                # second may have been read, never answered.
                self.books.stats["pipeline closed after the first"] += 1
                self.books.maybe({route_of(second.target)},
                                 method_label(second.method))
                book_fetches(self.books, second, None)
                return
            r2 = conn.read(second.head, self.timeout)
            if r2.status is None:
                self.unanswered(second, "pipelined 2/2", r2.error)
            else:
                judge(self.books, second, r2, "pipelined 2/2")
        finally:
            with self.books.lock:
                self.books.in_flight -= 1
            conn.close()

    def leave(self, ask, rng, stop):
        """Sends part or all of the request, then closes or resets."""
        data = ask.data()
        line_end = data.find(b"\r\n")
        inside_line = rng.random() < 0.3
        cut = rng.randint(1, line_end - 1) if inside_line else \
            rng.choice([len(data), rng.randint(line_end + 2, len(data))])
        conn = self.connect()
        try:
            try:
                conn.sock.sendall(data[:cut])
            except OSError:
                pass
            stop.wait(rng.uniform(0.0, 0.3))
        finally:
            conn.close(reset=rng.random() < 0.5)
        if inside_line:
            # libmicrohttpd may still take the piece for a request line
            # (measured: a few of them counted under "none", 499).
            self.books.maybe(set(), None)
        else:
            self.books.maybe({route_of(ask.target)},
                             method_label(ask.method))
            book_fetches(self.books, ask, None)

    def garbage(self, rng, stop):
        kind = rng.randrange(3)
        noise = bytes(rng.choice([b for b in range(1, 256)
                                  if b not in (10, 13, 32)])
                      for _ in range(rng.randint(1, 400)))
        if kind == 0:
            data = noise  # no line break
        elif kind == 1:
            data = b"\x01" + noise + b"\r\n\r\n"
        else:
            data = (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                    rng.choice([b"bad header line", b"Content-Length: zz",
                                b"Transfer-Encoding: chunked\r\n\r\nzz",
                                b"Content-Length: -1"]) + b"\r\n\r\n")
        conn = self.connect()
        try:
            try:
                conn.sock.sendall(data)
            except OSError:
                pass
            if kind == 0:
                stop.wait(rng.uniform(0.0, 0.2))
                return
            resp = conn.read(False, scaled(3.0))
            if resp.status is not None:
                self.books.stats["garbage answered %d" % resp.status] += 1
                if resp.status < 400 and kind == 1:
                    self.books.bad("garbage", "garbage %r answered %d"
                                   % (data[:40], resp.status))
                elif resp.header("Content-Type") != JSON_CTYPE:
                    self.books.stats["garbage answered by libmicrohttpd "
                                     "(not JSON)"] += 1
        finally:
            conn.close()
            if kind in (0, 1):
                self.books.maybe(set(), None)
            elif kind == 2:
                self.books.maybe({"/health"}, "GET")

    STYLES = [("plain", 62), ("pipelined", 10), ("half-close", 10),
              ("leave", 10), ("garbage", 8)]

    def run(self, rng, until, stop, styles=None, slow_share=0.0,
            signalled=None):
        """Sends until the monotonic time until or stop. With signalled
        (an Event with .at, the SIGTERM burst): returns after the first
        action begun after the signal, or at a refused connection once
        signalled."""
        styles = styles or self.STYLES
        names = [n for n, _ in styles]
        weights = [w for _, w in styles]
        while time.monotonic() < until and not stop.is_set():
            began = time.monotonic()
            style = rng.choices(names, weights)[0]
            slow = rng.random() < slow_share
            try:
                if style == "plain" or style == "half-close":
                    ask = self.next_ask(slow)
                    if style == "half-close" and not ask.simple:
                        style = "plain"
                    self.plain(ask, style == "half-close")
                elif style == "pipelined":
                    first, second = self.next_ask(slow), self.next_ask()
                    if first.simple and second.simple:
                        self.pipelined(first, second)
                    else:
                        self.plain(first)
                        self.plain(second)
                elif style == "leave":
                    self.leave(self.next_ask(), rng, stop)
                else:
                    self.garbage(rng, stop)
                self.books.stats[style] += 1
            except OSError as e:
                if signalled is not None and signalled.is_set():
                    self.books.stats["no connection after SIGTERM"] += 1
                    return
                self.books.bad("connect", "%s: %r" % (style, e))
                stop.wait(0.2)
            except Exception as e:  # a broken client is a failed run
                where = traceback.extract_tb(e.__traceback__)[-1]
                self.books.bad("client", "%s: %s: %s (at %s:%d)" % (
                    style, type(e).__name__, e,
                    os.path.basename(where.filename), where.lineno))
            if signalled is not None and signalled.is_set() and \
                    began > signalled.at:
                return
            stop.wait(rng.uniform(0.0, THINK_S))


# --------------------------------------------------------------------------
# The server's processes and descriptors


def _tcp_table():
    """{inode: (local port, remote port, state hex)} of TCP sockets."""
    table = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            local = int(fields[1].rsplit(":", 1)[1], 16)
            remote = int(fields[2].rsplit(":", 1)[1], 16)
            table[fields[9]] = (local, remote, fields[3])
    return table


def fd_kinds(pid, port):
    """Counter of the kinds of pid's descriptors: sockets split into
    tcp-listen, tcp-accepted (a client's connection to port),
    tcp-self-fetch (the loop's connection to port), tcp-other, socket;
    anon inodes by name; pipes; files by path."""
    kinds = Counter()
    tcp = _tcp_table()
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return None
    for name in names:
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, name))
        except OSError:
            continue  # closed meanwhile
        m = re.match(r"^socket:\[(\d+)\]$", link)
        if m:
            entry = tcp.get(m.group(1))
            if entry is None:
                kinds["socket"] += 1
            elif entry[2] == "0A":
                kinds["tcp-listen"] += 1
            elif entry[0] == port:
                kinds["tcp-accepted"] += 1
            elif entry[1] == port:
                kinds["tcp-self-fetch"] += 1
            else:
                kinds["tcp-other"] += 1
        elif link.startswith("pipe:"):
            kinds["pipe"] += 1
        elif link.startswith("anon_inode:"):
            kinds[link] += 1
        else:
            kinds["file " + link] += 1
    return kinds


CONNECTION_KINDS = ("tcp-accepted", "tcp-self-fetch")


def idle_kinds(kinds):
    return Counter({k: v for k, v in kinds.items()
                    if k not in CONNECTION_KINDS})


def worker_extra_fds(pid):
    """pid's descriptors above 2 ({fd: link}), or None if it is gone."""
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return None
    out = {}
    for name in names:
        if int(name) <= 2:
            continue
        try:
            out[int(name)] = os.readlink("/proc/%d/fd/%s" % (pid, name))
        except OSError:
            pass
    return out


def proc_ids(pid):
    """(ppid, pgid, sid, state) of pid, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return int(fields[1]), int(fields[2]), int(fields[3]), fields[0]


def session_members(sid):
    """PIDs (zombies included) whose session or process group is sid."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        ids = proc_ids(int(name))
        if ids and (ids[1] == sid or ids[2] == sid):
            found.append(int(name))
    return found


# --------------------------------------------------------------------------
# The checker's own requests (each booked like a client's)


class Probe:
    def __init__(self, srv, books):
        self.srv, self.books = srv, books

    def get(self, target, what=None):
        what = what or "GET " + target
        data = harness.build_request("GET", target)
        resp = harness.raw_exchange(self.srv.port, data, timeout=scaled(10.0))
        check(resp.status is not None, "%s: no answer (%s); server %s"
              % (what, resp.error, self.alive()))
        self.books.count((route_of(target, resp.status), "GET",
                          status_label(resp.status)))
        check(resp.status == 200, "%s: %d %r" % (what, resp.status,
                                                 resp.body[:160]))
        return resp

    def health(self):
        return self.get("/health").json()

    def wait(self, pred, timeout, what):
        """Polls /health until pred(body); returns that body. Bounded."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.health()
            if pred(body):
                return body
            check(time.monotonic() < deadline, "%s not seen within %.1f s; "
                  "last pools: %s" % (what, timeout,
                                      _short(body.get("pools"), 400)))
            time.sleep(0.05)

    def scrape(self):
        resp = self.get("/metrics")
        return ops.parse_metrics(resp.body.decode("utf-8"))

    def quiet_scrape(self, timeout):
        """A scrape that sees only itself in flight, so that every earlier
        request is counted in it. It is not booked: it counts itself only
        once completed, after its body was made."""
        deadline = time.monotonic() + timeout
        while True:
            samples = self.scrape()
            if samples.get(ops.key("conlab_http_requests_in_flight")) == 1:
                self.books.count(("/metrics", "GET", "200"), -1)
                return samples
            check(time.monotonic() < deadline, "requests still in flight "
                  "%.0f s after the load: %s" % (
                      timeout, samples.get(ops.key(
                          "conlab_http_requests_in_flight"))))
            time.sleep(0.05)

    def alive(self):
        rc = self.srv.proc.poll()
        return "running" if rc is None else _signal_name(rc)


def quiesced(body):
    p = body.get("pools", {})
    proc, thr, loop, http = (p.get("process", {}), p.get("threads", {}),
                             p.get("loop", {}), p.get("http", {}))
    return (proc.get("busy") == 0 and proc.get("queued") == 0 and
            proc.get("alive") == WORKERS and thr.get("busy") == 0 and
            thr.get("queued") == 0 and loop.get("timers") == 0 and
            loop.get("transfers") == 0 and http.get("in_flight") == 1)


# Before the baseline, every part that may allocate descriptors lazily
# (the loop's first transfer, the pools, static files) is used once.
WARM_UP = ["/run/fetch?count=1&ms=0", "/run/prime?limit=100&mode=processes",
           "/run/sleep?ms=0&tasks=2&mode=threads",
           "/run/sleep?ms=0&tasks=2&mode=gil", "/delay?ms=0", "/index.html",
           "/openapi.json", "/metrics",
           "/run/compare?demo=square&numbers=1,2&tasks=2"]


# --------------------------------------------------------------------------
# The cases


def start_line(ctx):
    return "seed %d" % ctx["run"]["seed"]


def _signal_name(rc):
    if isinstance(rc, int) and rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit status %s" % rc


def case_load(seed, seconds):
    def run(srv, ctx):
        rerun = rerun_command(seed, seconds)
        print("# chaos: seed %d, %g s of load, %d clients; rerun: %s"
              % (seed, seconds, CLIENTS, rerun), flush=True)
        books = Books(seed)
        probe = Probe(srv, books)
        ctx["run"] = state = {"seed": seed, "rerun": rerun, "books": books,
                              "probe": probe, "kills": []}
        for target in WARM_UP:
            probe.get(target, "warm-up GET %s" % target)
        before = probe.wait(quiesced, scaled(10.0),
                            "%d idle workers, nothing in flight" % WORKERS)
        state["children_before"] = sorted(harness.children_of(srv.pid))
        state["fds_before"] = fd_kinds(srv.pid, srv.port)
        state["worker_fds_before"] = {
            p: worker_extra_fds(p) for p in
            before["pools"]["process"]["pids"]}
        state["seen_workers"] = set(before["pools"]["process"]["pids"])
        state["metrics_before"] = probe.quiet_scrape(scaled(5.0))
        # From here on every request counts: the scrape itself first.
        books.certain.clear()
        books.count(("/metrics", "GET", "200"))

        stop = threading.Event()
        load_started = time.monotonic()
        until = load_started + seconds
        clients = []
        for i in range(CLIENTS):
            gen = Gen(random.Random("%d:load:%d" % (seed, i)), srv.port,
                      ctx["web_root"])
            c = Client(i, books, gen, srv.port, "cx%d" % (seed % 100000))
            rng = random.Random("%d:style:%d" % (seed, i))
            clients.append(threading.Thread(target=c.run,
                                            args=(rng, until, stop),
                                            daemon=True))
        kill_rng = random.Random("%d:kill" % seed)
        n_kills = kill_rng.randint(1, 2) if seconds < 15 else \
            kill_rng.randint(2, 4)
        kill_at = sorted(load_started + kill_rng.uniform(0.1, 0.8) * seconds
                         for _ in range(n_kills))
        for t in clients:
            t.start()
        died = None
        try:
            for at in kill_at:
                while time.monotonic() < until and srv.proc.poll() is None:
                    if time.monotonic() < at:
                        stop.wait(min(0.2, at - time.monotonic()))
                        continue
                    if kill_one(srv, probe, kill_rng, state):
                        break
                    stop.wait(0.2)
            while time.monotonic() < until and srv.proc.poll() is None:
                stop.wait(min(0.2, max(0.0, until - time.monotonic())))
            if srv.proc.poll() is not None:
                died = srv.proc.returncode
        finally:
            stop.set()
            for t in clients:
                t.join(scaled(REQUEST_TIMEOUT_S) + 5.0)
        check(not any(t.is_alive() for t in clients),
              "client threads still running")
        state["load_s"] = time.monotonic() - load_started
        check(died is None, "%s: the server exited during the load (%s); "
              "sanitizer: %s; log: %s (rerun: %s)" % (
                  start_line(ctx), _signal_name(died),
                  " | ".join(srv.sanitizer_reports()[:3]) or "none",
                  srv.log_tail(6), rerun))
        st = books.stats
        note = ("%s; %.1f s; %d answers %s; %d kills; %s%s" % (
            start_line(ctx), state["load_s"], sum(books.statuses.values()),
            dict(sorted(books.statuses.items())), len(state["kills"]),
            ", ".join("%s %d" % (k, st[k]) for k in
                      ("plain", "pipelined", "half-close", "leave",
                       "garbage")),
            "".join("; %s %d" % (k, v) for k, v in sorted(st.items())
                    if k.startswith("garbage answered by") or
                    k.startswith("pipeline closed"))))
        print("# chaos: %s" % note, flush=True)
        if books.violations:
            for line in books.examples[:MAX_SHOWN]:
                print("#   %s" % line, flush=True)
            raise CheckFailed("%s (rerun: %s): %s" % (
                start_line(ctx), rerun, books.summary()))
        return note
    return run


def kill_one(srv, probe, rng, state):
    """kill -9 of a random worker that /health lists, that is a child of
    the server and old enough to be replaced at once. True if done."""
    body = probe.health()
    pids = [p for p in body["pools"]["process"]["pids"] if p]
    state["seen_workers"].update(pids)
    children = set(harness.children_of(srv.pid))
    ripe = sorted(p for p in pids if p in children and
                  p not in state["kills"] and harness.pid_alive(p) and
                  process_age(p) >= KILL_MIN_AGE_S)
    if not ripe:
        return False
    victim = rng.choice(ripe)
    os.kill(victim, signal.SIGKILL)
    state["kills"].append(victim)
    return True


def process_age(pid):
    """Seconds since pid started (0 when unknown)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError):
        return 0.0
    fields = stat[stat.rfind(")") + 2:].split()
    return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")


def need_run(srv, ctx):
    check("run" in ctx, "the load case did not run")
    check(srv.proc.poll() is None, "%s: the server is not running (%s)"
          % (start_line(ctx), _signal_name(srv.proc.returncode)))
    return ctx["run"]


def case_metrics(srv, ctx):
    state = need_run(srv, ctx)
    books, probe = state["books"], state["probe"]
    body = probe.wait(quiesced, scaled(15.0),
                      "nothing busy, queued or in flight")
    state["seen_workers"].update(body["pools"]["process"]["pids"])
    before = state["metrics_before"]
    after = probe.quiet_scrape(scaled(5.0))
    grew = {}
    for labels, v in ops.deltas(before, after, REQUESTS).items():
        if v:
            d = dict(labels)
            grew[(d["route"], d["method"], d["status"])] = int(v)
    certain = {k: v for k, v in books.certain.items() if v}
    lower = {k: (grew.get(k, 0), v) for k, v in certain.items()
             if grew.get(k, 0) < v}
    excess = {k: grew[k] - certain.get(k, 0) for k in grew
              if grew[k] > certain.get(k, 0)}
    unexplained = explain(excess, dict(books.uncertain))
    total_m, total_c = sum(grew.values()), sum(certain.values())
    total_u = sum(books.uncertain.values())
    what = ("%s: requests_total grew %d; %d exchanges completed; %d "
            "uncertain attempts" % (start_line(ctx), total_m, total_c,
                                    total_u))
    check(not lower, "%s; counted fewer than completed (counted, "
          "completed): %s" % (what, _short(lower, 300)))
    check(not unexplained, "%s; counts no uncertain attempt explains: %s "
          "(uncertain: %s)" % (what, _short(unexplained, 200),
                               _short(_show_caps(books.uncertain), 150)))
    ops.check_histogram_deltas(before, after)
    kills = len(state["kills"])
    restarts = ops.deltas(before, after, "conlab_pool_worker_restarts_total")
    crash = restarts.get((("reason", "crash"),), 0)
    check(crash == kills, "%s: %d kills, crash restarts grew %d (%s)"
          % (start_line(ctx), kills, crash, _short(restarts)))
    jobs = ops.deltas(before, after, "conlab_pool_jobs_total")
    failed = jobs.get((("outcome", "failed"),), 0)
    n502 = sum(v for (r, m, s), v in certain.items() if s == "502")
    check(n502 <= failed <= kills, "%s: %d x 502 read, %d failed jobs, "
          "%d kills: expected 502s <= failed jobs <= kills" % (
              start_line(ctx), n502, failed, kills))
    return "%s: %d counted = %d completed + %d of %d uncertain; %d kills " \
           "= crash restarts; %d failed jobs, %d x 502" % (
               start_line(ctx), total_m, total_c, total_m - total_c,
               total_u, kills, failed, n502)


def _show_caps(caps):
    return {("*" if r is None else "|".join(sorted(r)), m or "*"): n
            for (r, m), n in caps.items()}


def explain(excess, caps):
    """Labels whose excess count cannot be assigned to the uncertain
    attempts (caps: {(routes or None, method or None): n}), as {label:
    count left}: a max flow from the attempts to the labels they match.
    {} when all of it can be."""
    sources = [(k, n) for k, n in caps.items() if n > 0]
    labels = [(k, n) for k, n in excess.items() if n > 0]
    left_src = [n for _, n in sources]
    left_lab = [n for _, n in labels]
    edges = [[li for li, ((r, m, _s), _) in enumerate(labels)
              if (routes is None or r in routes) and
              (method is None or method == m)]
             for (routes, method), _ in sources]
    flow = {}  # (source, label) -> count assigned
    by_label = [set() for _ in labels]  # sources with flow to a label

    def augmenting_path():
        parent = {("s", si): None for si in range(len(sources))
                  if left_src[si] > 0}
        queue = list(parent)
        while queue:
            node = queue.pop(0)
            if node[0] == "s":
                for li in edges[node[1]]:
                    if ("l", li) not in parent:
                        parent[("l", li)] = node
                        if left_lab[li] > 0:
                            path = [("l", li)]
                            while parent[path[-1]] is not None:
                                path.append(parent[path[-1]])
                            return path[::-1]
                        queue.append(("l", li))
            else:
                for si in by_label[node[1]]:
                    if ("s", si) not in parent:
                        parent[("s", si)] = node
                        queue.append(("s", si))
        return None

    while True:
        path = augmenting_path()
        if path is None:
            break
        amount = min(left_src[path[0][1]], left_lab[path[-1][1]])
        for a, b in zip(path, path[1:]):
            if a[0] == "l":  # moving flow back: label a no longer from b
                amount = min(amount, flow[(b[1], a[1])])
        for a, b in zip(path, path[1:]):
            key = (a[1], b[1]) if a[0] == "s" else (b[1], a[1])
            flow[key] = flow.get(key, 0) + (amount if a[0] == "s"
                                            else -amount)
            if flow[key] > 0:
                by_label[key[1]].add(key[0])
            else:
                by_label[key[1]].discard(key[0])
        left_src[path[0][1]] -= amount
        left_lab[path[-1][1]] -= amount
    return {labels[li][0]: left_lab[li] for li in range(len(labels))
            if left_lab[li] > 0}


def case_baseline(srv, ctx):
    state = need_run(srv, ctx)
    probe = state["probe"]
    base = idle_kinds(state["fds_before"])
    deadline = time.monotonic() + CONN_TIMEOUT_S + scaled(8.0)
    while True:
        body = probe.health()
        pids = sorted(p for p in body["pools"]["process"]["pids"] if p)
        state["seen_workers"].update(pids)
        # Read /proc with none of our connections open (the probe's is
        # closed by the client; the server's side may take a moment).
        kinds = fd_kinds(srv.pid, srv.port) or Counter()
        children = sorted(harness.children_of(srv.pid))
        problems = []
        if idle_kinds(kinds) != base:
            diff = {k: (base.get(k, 0), v) for k, v in
                    idle_kinds(kinds).items() if base.get(k, 0) != v}
            diff.update({k: (v, 0) for k, v in base.items()
                         if k not in kinds})
            problems.append("descriptors by kind (before, now): %s" % diff)
        if kinds.get("tcp-accepted", 0):
            problems.append("%d client connections still open"
                            % kinds["tcp-accepted"])
        if kinds.get("tcp-self-fetch", 0) > LOOP_CONN_CACHE:
            problems.append("%d connections to itself (libcurl caches at "
                            "most %d)" % (kinds["tcp-self-fetch"],
                                          LOOP_CONN_CACHE))
        zombies = [p for p in children if not harness.pid_alive(p)]
        if children != pids or len(pids) != WORKERS or zombies:
            problems.append("children %s (zombies %s), /health workers %s, "
                            "expected %d" % (children, zombies, pids,
                                             WORKERS))
        if not problems:
            break
        if time.monotonic() > deadline:
            raise CheckFailed("%s: not back to the idle baseline %.0f s "
                              "after the load: %s" % (
                                  start_line(ctx), CONN_TIMEOUT_S +
                                  scaled(8.0), "; ".join(problems)))
        time.sleep(0.1)
    # Each worker holds 0-2 and its own channel, nothing of the parent's.
    leaks = {}
    for p in pids:
        extra = worker_extra_fds(p) or {}
        if len(extra) != 1:
            leaks[p] = extra
    before = {p: fds for p, fds in state["worker_fds_before"].items()
              if fds is not None and len(fds) != 1}
    check(not leaks, "%s: workers hold descriptors besides 0-2 and their "
          "channel: %s%s" % (start_line(ctx), _short(leaks, 200),
                             " (at start-up already: %s)" % _short(before, 120)
                             if before else " (not at start-up)"))
    return "%d descriptors as before (%s), %d self-fetch connections " \
           "cached; workers %s" % (sum(base.values()), ", ".join(
               "%s %d" % kv for kv in sorted(base.items())),
               kinds.get("tcp-self-fetch", 0), pids)


def case_term(seed):
    def run(srv, ctx):
        check("run" in ctx, "the load case did not run")
        state = ctx["run"]
        rc = srv.proc.poll()
        if rc is not None:
            raise CheckFailed("%s: the server had already exited (%s); "
                              "sanitizer: %s" % (
                                  start_line(ctx), _signal_name(rc),
                                  " | ".join(srv.sanitizer_reports()[:3])
                                  or "none"))
        books = Books(seed)
        rng = random.Random("%d:term" % seed)
        body = state["probe"].health()
        state["seen_workers"].update(body["pools"]["process"]["pids"])
        children = harness.children_of(srv.pid)
        signalled = threading.Event()
        signalled.at = float("inf")
        stop = threading.Event()
        deadline = time.monotonic() + scaled(30.0)

        def tolerate(ask):
            # Sent after (or just before) the signal: 503, refused, closed.
            return getattr(ask, "sent_at", 0) >= \
                signalled.at - scaled(TERM_MARGIN_S)

        threads = []
        for i in range(TERM_CLIENTS):
            gen = Gen(random.Random("%d:term:%d" % (seed, i)), srv.port,
                      ctx["web_root"])
            c = Client(i, books, gen, srv.port, "ct%d" % (seed % 100000))
            c.tolerate_unanswered = tolerate
            c.draining = True
            # One client keeps a comparison chain in flight: a chain that
            # goes on submitting while the pools stop.
            c.compare_only = i == 0
            crng = random.Random("%d:termstyle:%d" % (seed, i))
            threads.append(threading.Thread(
                target=c.run, args=(crng, deadline, stop,
                                    [("plain", 70), ("half-close", 15),
                                     ("pipelined", 15)],
                                    1.0 if i == 0 else 0.6, signalled),
                daemon=True))
        for t in threads:
            t.start()
        try:
            stop.wait(rng.uniform(0.5, 2.0))
            wait_until = time.monotonic() + scaled(3.0)
            while books.in_flight == 0 and time.monotonic() < wait_until:
                time.sleep(0.01)
            in_flight = books.in_flight
            signalled.at = time.monotonic()
            signalled.set()
            try:
                note = harness.stop_and_check(
                    srv, signal.SIGTERM, GRACE_MS / 1000.0 + scaled(3.0),
                    children, ("received SIGTERM", "stopped"))
            except CheckFailed as e:
                raise CheckFailed("%s: %s after SIGTERM with %d requests in "
                                  "flight: %s (rerun: %s)" % (
                                      start_line(ctx),
                                      _signal_name(srv.returncode),
                                      in_flight, e, state["rerun"]))
        finally:
            stop.set()
            for t in threads:
                t.join(scaled(REQUEST_TIMEOUT_S) + 5.0)
        check(not any(t.is_alive() for t in threads),
              "client threads still running")
        check(in_flight > 0, "%s: no request in flight at SIGTERM"
              % start_line(ctx))
        wait_end = time.monotonic() + scaled(3.0)
        left = session_members(srv.pid)
        while left and time.monotonic() < wait_end:
            time.sleep(0.05)
            left = session_members(srv.pid)
        workers = sorted(p for p in state["seen_workers"]
                         if harness.pid_alive(p) and
                         (proc_ids(p) or (0,))[0] == srv.pid)
        check(not left and not workers, "%s: processes of the server's "
              "session left after its exit: %s; its workers: %s"
              % (start_line(ctx), left, workers))
        if books.violations:
            for line in books.examples[:MAX_SHOWN]:
                print("#   %s" % line, flush=True)
            raise CheckFailed("%s (rerun: %s): around SIGTERM: %s" % (
                start_line(ctx), state["rerun"], books.summary()))
        return "%s; %d in flight at SIGTERM; answers %s; %d unanswered, " \
               "%d not connected after it" % (
                   note, in_flight, dict(sorted(books.statuses.items())),
                   books.stats["unanswered after SIGTERM"],
                   books.stats["no connection after SIGTERM"])
    return run


# --------------------------------------------------------------------------
# Groups


def _group(title, seed, seconds, web_root):
    args = ["--web-root", web_root, "--threads", "2", "--workers",
            str(WORKERS), "--grace-ms", str(GRACE_MS), "--conn-timeout",
            str(CONN_TIMEOUT_S)]

    def with_root(fn):
        def run(srv, ctx):
            ctx["web_root"] = web_root
            return fn(srv, ctx)
        return run
    return (title, args, None, [
        ("%s: seed %d, %g s of random requests of every kind, kill -9 of "
         "workers: documented statuses, JSON errors, right bodies, no 499"
         % (title, seed, seconds), with_root(case_load(seed, seconds))),
        ("%s: /metrics after quiescing adds up to what was sent" % title,
         case_metrics),
        ("%s: descriptors and processes back to the idle baseline" % title,
         case_baseline),
        ("%s: SIGTERM with requests in flight: answered, exit 0, no "
         "sanitizer report, no process left" % title, case_term(seed)),
    ])


def server_groups(web_root):
    """(title, extra args, environment, cases) for run.py's server_group:
    "chaos" (the configured or a fresh seed) and one "chaos-seed-N" per
    REGRESSION_SEEDS entry."""
    seed = _config["seed"]
    if seed is None:
        seed = random.SystemRandom().randrange(1, 1 << 31)
        _config["seed"] = seed
    groups = [_group("chaos", seed, _config["seconds"], web_root)]
    for entry in REGRESSION_SEEDS:
        s, seconds = entry[0], entry[1]
        groups.append(_group("chaos-seed-%d" % s, s, seconds, web_root))
    return groups


if __name__ == "__main__":
    raise SystemExit("run through run.py: python3 tests/integration/run.py "
                     "--binary build/conlab --chaos [--chaos-seed N] "
                     "[--chaos-seconds S]")

"""Integration-test harness for conlab: server processes, raw HTTP, checks.

Python 3 standard library only. Everything here talks to loopback
addresses only, and every wait is bounded.

Process rule: every process this module starts is put in a registry the
moment it exists and is stopped by its PID and reaped (Popen.wait, i.e.
waitpid) by stop() or, at the latest, by cleanup_all(), which run.py calls
from a finally block and which is also registered with atexit.
"""

import atexit
import errno
import http.client
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import tempfile
import threading
import time

LOOPBACK = "127.0.0.1"
LOOPBACK6 = "::1"  # a server may bind it instead (--bind ::1 in its args)

STARTUP_TIMEOUT_S = 20.0  # listening line + first 200 from /health
SOCKET_TIMEOUT_S = 15.0   # any single socket operation
MAX_RESPONSE_BYTES = 8 * 1024 * 1024

# Multiplies the time limits that are themselves under test (shutdown
# latency...); set by run.py for sanitizer builds, which are slower.
TIME_SCALE = 1.0

# "asan", "tsan" or "ubsan" when the binary under test links a sanitizer
# runtime (set by run.py): memory figures of such a build mean nothing.
SANITIZER = None

# Figures the cases measured, by name (JSON-serialisable values); run.py
# --figures writes them to a file for the bench's report.
FIGURES = {}


def figure(name, value):
    """Records one measured figure under name (see FIGURES)."""
    FIGURES[name] = value

LISTEN_RES = {
    LOOPBACK: re.compile(r"listening on http://127\.0\.0\.1:(\d+)"),
    LOOPBACK6: re.compile(r"listening on http://\[::1\]:(\d+)"),
}
LISTEN_RE = LISTEN_RES[LOOPBACK]

# A sanitizer report anywhere in a server's stderr fails the run.
SANITIZER_RES = [
    re.compile(r"AddressSanitizer"),
    re.compile(r"LeakSanitizer"),
    re.compile(r"ThreadSanitizer"),
    re.compile(r"UndefinedBehaviorSanitizer"),
    re.compile(r"runtime error:"),
    re.compile(r"==\d+==\s*ERROR: "),
]


class CheckFailed(Exception):
    """A test expectation that did not hold; the message is the reason."""


class Skipped(Exception):
    """A case that cannot run here (e.g. no IPv6 loopback); the message is
    the reason. Counted as skipped, neither passed nor failed."""


def check(condition, reason):
    if not condition:
        raise CheckFailed(reason)


# --------------------------------------------------------------------------
# Process registry

_registry_lock = threading.Lock()
_registry = []  # subprocess.Popen objects not yet reaped
_cleanups = []  # callables: test fixtures (sockets, helper servers) to close


def _register(proc):
    with _registry_lock:
        _registry.append(proc)


def _unregister(proc):
    with _registry_lock:
        if proc in _registry:
            _registry.remove(proc)


def reap(proc, sig=signal.SIGTERM, timeout=5.0):
    """Signals proc by PID (if still running) and waits for it; SIGKILL if
    it does not exit within timeout. Returns the exit status."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
    _unregister(proc)
    return proc.returncode


def add_cleanup(fn):
    """Registers fn() to be called once by cleanup_all(), after the
    processes are reaped (sockets, helper HTTP servers of the tests)."""
    with _registry_lock:
        _cleanups.append(fn)


def start_drain(srv, ctx):
    """Holds the server's grace period open with a stalled upload, serves
    one request on a keep-alive connection, sends SIGTERM and waits for the
    server to log it. ctx gets "sockets" [stall, keep], "children" (the
    server's before the signal) and "signalled_at"; both sockets are also
    closed by cleanup_all(). Returns the keep-alive socket."""
    stall = socket.create_connection((LOOPBACK, srv.port),
                                     timeout=SOCKET_TIMEOUT_S)
    add_cleanup(stall.close)
    stall.sendall(b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Length: 10\r\n\r\nab")
    keep = socket.create_connection((LOOPBACK, srv.port),
                                    timeout=SOCKET_TIMEOUT_S)
    add_cleanup(keep.close)
    ctx["sockets"] = [stall, keep]
    keep.sendall(build_request("GET", "/health",
                               [("Connection", "keep-alive")]))
    first = read_response(keep)
    check(first.status == 200, "first request: %s %s" % (first.status,
                                                          first.error))
    ctx["children"] = children_of(srv.pid)
    ctx["signalled_at"] = time.monotonic()
    os.kill(srv.pid, signal.SIGTERM)
    check(srv.wait_log(r"received SIGTERM", 5.0 * TIME_SCALE),
          "no 'received SIGTERM' in the log")
    return keep


def cleanup_all():
    """Stops and reaps every process still in the registry, then runs the
    registered cleanups."""
    with _registry_lock:
        procs = list(_registry)
    for proc in procs:
        try:
            reap(proc, signal.SIGTERM, timeout=5.0)
        except Exception:  # keep cleaning the others
            pass
    with _registry_lock:
        fns = list(_cleanups)
        del _cleanups[:]
    for fn in reversed(fns):
        try:
            fn()
        except Exception:  # keep cleaning the others
            pass


atexit.register(cleanup_all)


def _popen(argv, env, stdout, stderr):
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=stderr, env=env, close_fds=True,
                            start_new_session=True)
    _register(proc)
    return proc


def make_env(extra=None, drop_prefix="CONLAB_"):
    """The runner's environment without any CONLAB_* variable, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(drop_prefix)}
    if extra:
        env.update(extra)
    return env


def start_process(argv, stdout=subprocess.DEVNULL, stderr=None, env=None):
    """Starts argv in its own session, registered for reaping: stop it
    with reap(proc)."""
    return _popen(argv, env if env is not None else make_env(), stdout,
                  stderr)


def run_command(argv, env=None, timeout=10.0):
    """Runs argv to completion (bounded), output captured in files.
    Returns (returncode, stdout, stderr); returncode None on timeout (the
    process is then killed and reaped)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = _popen(argv, env if env is not None else make_env(), out, err)
        try:
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                rc = None
        finally:
            reap(proc, signal.SIGKILL, timeout=5.0)
        out.seek(0)
        err.seek(0)
        return (rc, out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"))


def _proc_stats():
    """(pid, fields after the command) of every process in /proc: fields[0]
    is the state, [1] the parent, [2] the group, [3] the session (comm may
    hold spaces, so the line is split after its ')'). Empty elsewhere."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        yield int(name), stat[stat.rfind(")") + 2:].split()


def children_of(pid):
    """PIDs whose parent is pid (Linux /proc; empty elsewhere)."""
    return [p for p, fields in _proc_stats()
            if len(fields) >= 2 and fields[1] == str(pid)]


def session_members(sid):
    """PIDs (zombies included) whose session id is sid. A server started
    here leads its own session, and its workers inherit it: after the
    server exits, any member left is a process it did not reap or stop."""
    return [p for p, fields in _proc_stats()
            if p != sid and len(fields) >= 4 and fields[3] == str(sid)]


def rss_kib(pid):
    """VmRSS of pid in KiB; 0 when it is gone (or a zombie)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pid):
    """VmRSS of pid plus that of its children (a server and its worker
    processes), in KiB."""
    return rss_kib(pid) + sum(rss_kib(kid) for kid in children_of(pid))


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return False
    state = stat[stat.rfind(")") + 2:].split()[0]
    return state != "Z"


# --------------------------------------------------------------------------
# Server

class Server:
    """One conlab process on 127.0.0.1 with a free port. Its stderr goes to
    a file (never a pipe), read back by log(). args may say "--bind ::1"
    (the IPv6 loopback; no other address is accepted): self.host is then
    "::1"."""

    def __init__(self, binary, args=(), env_extra=None, name="server"):
        self.binary = binary
        self.args = list(args)
        self.host = LOOPBACK
        if "--bind" in self.args:
            at = self.args.index("--bind")
            host = self.args[at + 1] if at + 1 < len(self.args) else None
            if host not in LISTEN_RES:
                raise ValueError("--bind %r: only %s" % (host,
                                                         sorted(LISTEN_RES)))
            self.host = host
            del self.args[at:at + 2]
        self.env = make_env(env_extra)
        self.name = name
        self.proc = None
        self.port = None
        self.returncode = None
        self._dir = tempfile.TemporaryDirectory(prefix="conlab-it-")
        self.log_path = os.path.join(self._dir.name, "stderr.log")
        self._log_file = None

    def start(self):
        """Starts the process, reads the port from the log and waits for
        GET /health to answer 200. Raises CheckFailed with the log tail."""
        argv = [self.binary, "--port", "0", "--bind", self.host] + self.args
        self._log_file = open(self.log_path, "wb")
        self.proc = _popen(argv, self.env, subprocess.DEVNULL, self._log_file)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while self.port is None:
            match = LISTEN_RES[self.host].search(self.log())
            if match:
                self.port = int(match.group(1))
                break
            if self.proc.poll() is not None:
                raise CheckFailed("exited with %s before listening; log: %s"
                                  % (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                raise CheckFailed("no 'listening on' line within %.0f s; "
                                  "log: %s" % (STARTUP_TIMEOUT_S,
                                               self.log_tail()))
            time.sleep(0.02)
        last = "no answer"
        while True:
            try:
                status, _, _ = http_get(self.port, "/health", timeout=2.0,
                                        host=self.host)
                if status == 200:
                    return self
                last = "status %d" % status
            except OSError as e:
                last = repr(e)
            if self.proc.poll() is not None:
                raise CheckFailed("exited with %s during start-up; log: %s"
                                  % (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                raise CheckFailed("GET /health did not answer 200 within "
                                  "%.0f s (%s)" % (STARTUP_TIMEOUT_S, last))
            time.sleep(0.05)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=8):
        text = self.log().strip().splitlines()
        return " | ".join(text[-lines:]) if text else "(empty)"

    def wait_log(self, pattern, timeout=5.0):
        """Waits (bounded) for a regex to appear in the log; returns the
        match or None."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.log())
            if match or time.monotonic() > deadline:
                return match
            time.sleep(0.02)

    def signal_and_wait(self, sig, timeout):
        """Sends sig by PID and waits up to timeout. Returns (returncode or
        None if it did not exit in time, seconds taken). A process still
        running after timeout is left for stop() to kill."""
        started = time.monotonic()
        os.kill(self.proc.pid, sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, time.monotonic() - started
        self.returncode = rc
        _unregister(self.proc)
        return rc, time.monotonic() - started

    def wait_exit(self, deadline):
        """Waits until the monotonic deadline for the process to exit on
        its own. Returns (returncode or None, seconds waited)."""
        started = time.monotonic()
        try:
            rc = self.proc.wait(timeout=max(0.0, deadline - started))
        except subprocess.TimeoutExpired:
            return None, time.monotonic() - started
        self.returncode = rc
        _unregister(self.proc)
        return rc, time.monotonic() - started

    def stop(self):
        """Stops (SIGTERM, then SIGKILL after a while) and reaps the
        process if it still runs; idempotent."""
        if self.proc is not None:
            rc = reap(self.proc, signal.SIGTERM, timeout=10.0 * TIME_SCALE)
            if self.returncode is None:
                self.returncode = rc
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def sanitizer_reports(self):
        """Lines of the log that look like a sanitizer report."""
        found = []
        for line in self.log().splitlines():
            if any(r.search(line) for r in SANITIZER_RES):
                found.append(line.strip())
        return found

    def close(self):
        self.stop()
        self._dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def stop_and_check(srv, sig, limit_s, children=(), log_words=("stopped",),
                   signalled_at=None):
    """Sends sig (unless it was sent at signalled_at, a monotonic time),
    requires exit status 0 within limit_s of the signal, the log words and
    no sanitizer report, and that no child of the server outlives it."""
    name = signal.Signals(sig).name
    if signalled_at is None:
        rc, took = srv.signal_and_wait(sig, limit_s)
    else:
        rc, took = srv.wait_exit(signalled_at + limit_s)
        took = time.monotonic() - signalled_at
    if rc is None:
        # Too slow: tell a slow shutdown from a lost signal before killing.
        late_rc, late = srv.wait_exit(time.monotonic() +
                                      10.0 * TIME_SCALE)
        srv.stop()  # kills and reaps it if it still runs
        fate = ("then exited by itself with status %s after %.2f s"
                % (late_rc, took + late)) if late_rc is not None else \
            "still running %.0f s later (killed, exit %s)" % (
                took + late, srv.returncode)
        raise CheckFailed("still running %.1f s after %s, %s; tail: %s"
                          % (limit_s, name, fate, srv.log_tail(5)))
    srv.stop()
    reports = srv.sanitizer_reports()
    summaries = sorted({r for r in reports if "SUMMARY:" in r})
    check(not reports, "sanitizer report (%d lines): %s" % (
        len(reports), " | ".join((summaries or reports)[:3])))
    check(rc == 0, "exit status %d after %s; tail: %s"
          % (rc, name, srv.log_tail(4)))
    log = srv.log()
    for word in log_words:
        check(word in log, "log lacks %r; tail: %s" % (word,
                                                       srv.log_tail(4)))
    deadline = time.monotonic() + 2.0
    left = [pid for pid in children if pid_alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [pid for pid in children if pid_alive(pid)]
    check(not left, "child processes left running: %s" % left)
    return "exit 0 in %.0f ms" % (took * 1000)


# --------------------------------------------------------------------------
# HTTP

class Response:
    def __init__(self):
        self.status = None
        self.reason = ""
        self.version = ""
        self.headers = []  # (name, value) in order
        self.body = b""
        self.raw = b""
        self.error = None  # what went wrong reading it, if anything
        self.closed = False  # the server closed the connection

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<%s %s, %d body bytes>" % (self.status, self.reason,
                                           len(self.body))


def http_get(port, target, headers=None, timeout=SOCKET_TIMEOUT_S,
             host=LOOPBACK):
    """One GET with http.client on a fresh connection: (status, headers
    message, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", target, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def health(port, timeout=SOCKET_TIMEOUT_S, host=LOOPBACK):
    status, _, body = http_get(port, "/health", timeout=timeout, host=host)
    check(status == 200, "GET /health answered %d" % status)
    return json.loads(body)


def build_request(method, target, headers=(), body=b"", version="HTTP/1.1"):
    """Raw request bytes. target is sent exactly as given (bytes or str).
    Host and Connection: close are added unless headers name them;
    Content-Length is added for a non-empty body unless headers give one
    or Transfer-Encoding."""
    if isinstance(target, str):
        target = target.encode("latin-1")
    names = {k.lower() for k, _ in headers}
    lines = [method.encode("ascii") + b" " + target + b" " +
             version.encode("ascii")]
    if "host" not in names:
        lines.append(b"Host: 127.0.0.1")
    if "connection" not in names:
        lines.append(b"Connection: close")
    for k, v in headers:
        if isinstance(v, str):
            v = v.encode("latin-1")
        lines.append(k.encode("latin-1") + b": " + v)
    if body and "content-length" not in names and \
            "transfer-encoding" not in names:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def raw_exchange(port, data, head=False, timeout=SOCKET_TIMEOUT_S,
                 host=LOOPBACK):
    """Sends data on a new TCP connection and reads one response until the
    server closes (the request should say Connection: close) or, for a
    response with a length, until it is complete. A send error (the server
    may answer early and close) is tolerated when a response arrives."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.settimeout(timeout)
        send_error = None
        try:
            sock.sendall(data)
        except OSError as e:
            send_error = e
        resp = read_response(sock, head, timeout)
        if resp.status is None and send_error and not resp.raw:
            resp.error = "send failed: %r" % send_error
        return resp
    finally:
        sock.close()


def read_response(sock, head=False, timeout=SOCKET_TIMEOUT_S):
    """Reads one response from sock: up to its Content-Length when it has
    one (so a keep-alive socket stays usable), else until the server
    closes. Bounded by timeout overall."""
    resp = Response()
    buf = bytearray()
    deadline = time.monotonic() + timeout
    header_end = -1
    want = None  # total bytes once the length is known
    while True:
        if want is not None and len(buf) >= want:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            resp.error = "timed out after %d bytes" % len(buf)
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            resp.error = "timed out after %d bytes" % len(buf)
            break
        except ConnectionResetError:
            resp.closed = True
            if not buf:
                resp.error = "connection reset"
            break
        if not chunk:
            resp.closed = True
            break
        buf += chunk
        if len(buf) > MAX_RESPONSE_BYTES:
            resp.error = "response larger than %d bytes" % MAX_RESPONSE_BYTES
            break
        if header_end < 0:
            header_end = buf.find(b"\r\n\r\n")
            if header_end >= 0:
                want = _expected_total(bytes(buf[:header_end]),
                                       header_end + 4, head)
    resp.raw = bytes(buf)
    _parse_into(resp, resp.raw, head)
    return resp


def _expected_total(head_bytes, body_start, head):
    """Total response size when it can be known from the head: only for a
    Content-Length on a response that has a body. None means: read to EOF
    (HEAD, 1xx/204/304 and chunked are read to EOF so that a body that
    should not be there is seen)."""
    lines = head_bytes.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        return None
    if head or status in (204, 304) or status < 200:
        return None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return body_start + int(value.strip())
            except ValueError:
                return None
    return None


def _parse_into(resp, raw, head):
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        if resp.error is None:
            resp.error = "no complete response head (%d bytes)" % len(raw)
        return
    lines = raw[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        resp.error = "bad status line %r" % lines[0][:80]
        return
    resp.version = parts[0]
    try:
        resp.status = int(parts[1])
    except ValueError:
        resp.error = "bad status line %r" % lines[0][:80]
        return
    resp.reason = parts[2] if len(parts) > 2 else ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        resp.headers.append((name.strip(), value.strip()))
    rest = raw[end + 4:]
    te = (resp.header("Transfer-Encoding") or "").lower()
    if te == "chunked" and not head:
        resp.body = _dechunk(rest)
        return
    length = resp.header("Content-Length")
    if length is not None and not head and resp.status not in (204, 304):
        try:
            resp.body = rest[:int(length)]
            return
        except ValueError:
            pass
    resp.body = rest


def _dechunk(data):
    out = bytearray()
    pos = 0
    while pos < len(data):
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            break
        try:
            size = int(data[pos:eol].split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += data[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2
    return bytes(out)


# --------------------------------------------------------------------------
# Matchers for expected JSON fields and headers

class Matcher:
    def matches(self, value):
        raise NotImplementedError


class Absent(Matcher):
    """The header or field must not be there."""

    def matches(self, value):
        return value is None

    def __repr__(self):
        return "absent"


class Present(Matcher):
    def matches(self, value):
        return value is not None and value != ""

    def __repr__(self):
        return "present"


class Type(Matcher):
    def __init__(self, *types, min=None):
        self.types = types
        self.min = min

    def matches(self, value):
        if isinstance(value, bool) and bool not in self.types:
            return False
        if not isinstance(value, self.types):
            return False
        return self.min is None or value >= self.min

    def __repr__(self):
        names = "|".join(t.__name__ for t in self.types)
        return names + (" >= %r" % self.min if self.min is not None else "")


class NonEmptyStr(Matcher):
    def matches(self, value):
        return isinstance(value, str) and value.strip() != ""

    def __repr__(self):
        return "non-empty string"


class Contains(Matcher):
    def __init__(self, text, ci=False):
        self.text = text
        self.ci = ci

    def matches(self, value):
        if not isinstance(value, str):
            return False
        if self.ci:
            return self.text.lower() in value.lower()
        return self.text in value

    def __repr__(self):
        return "containing %r" % self.text


class NotEqualCI(Matcher):
    """Absent, or present and not equal (case-insensitively) to text."""

    def __init__(self, text):
        self.text = text

    def matches(self, value):
        return value is None or value.strip().lower() != self.text.lower()

    def __repr__(self):
        return "not %r" % self.text


class Regex(Matcher):
    def __init__(self, pattern):
        self.regex = re.compile(pattern)

    def matches(self, value):
        return isinstance(value, str) and self.regex.search(value) is not None

    def __repr__(self):
        return "matching /%s/" % self.regex.pattern


_MISSING = object()


def json_path(obj, dotted):
    """obj['a']['b'] for 'a.b', or _MISSING."""
    for key in dotted.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def expect_value(what, value, expected):
    """Raises CheckFailed unless value satisfies expected (a Matcher or a
    plain value compared with ==, bools and numbers kept apart)."""
    if isinstance(expected, Matcher):
        shown = None if value is _MISSING else value
        check(expected.matches(shown),
              "%s is %s, expected %r" % (what, _short(shown), expected))
        return
    check(value is not _MISSING, "%s missing, expected %r" % (what, expected))
    same = value == expected and \
        isinstance(value, bool) == isinstance(expected, bool)
    check(same, "%s is %s, expected %r" % (what, _short(value), expected))


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def expect_error_shape(resp):
    """The API's error body: {"error": {"status": N, "message": "..."}}
    with N the HTTP status and a JSON content type."""
    ctype = resp.header("Content-Type")
    check(ctype == "application/json; charset=utf-8",
          "error content type is %r" % ctype)
    try:
        body = resp.json()
    except ValueError:
        raise CheckFailed("error body is not JSON: %r" % resp.body[:80])
    check(isinstance(body, dict) and set(body) == {"error"},
          "error body keys %r, expected only 'error'" %
          (sorted(body) if isinstance(body, dict) else body,))
    err = body["error"]
    check(isinstance(err, dict), "error is not an object")
    expect_value("error.status", err.get("status", _MISSING), resp.status)
    expect_value("error.message", err.get("message", _MISSING),
                 NonEmptyStr())
    return err


class Background:
    """One GET on its own connection in a thread; the result is a
    harness.Response (status None when the connection closed first or
    timed out: see .error and .closed) and the seconds it took."""

    def __init__(self, port, target, timeout, host=LOOPBACK):
        self.port, self.target, self.timeout = port, target, timeout
        self.host = host
        self.resp = None
        self.exc = None
        self.elapsed = None
        self.started = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.started = time.monotonic()
        self._thread.start()
        return self

    def _run(self):
        try:
            self.resp = raw_exchange(self.port,
                                     build_request("GET", self.target),
                                     timeout=self.timeout, host=self.host)
        except OSError as e:  # refused, reset while connecting...
            self.exc = e
        finally:
            self.elapsed = time.monotonic() - self.started

    def join(self, timeout):
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def done(self):
        return not self._thread.is_alive()

    def describe(self):
        if self.exc is not None:
            return "error %r" % self.exc
        if self.resp is None:
            return "still waiting"
        if self.resp.status is None:
            return "no response (%s%s)" % (
                self.resp.error or "", ", closed" if self.resp.closed else "")
        return "%d %r" % (self.resp.status, self.resp.body[:160])


# --------------------------------------------------------------------------
# Many concurrent exchanges on one thread

SMALL_BODY_BYTES = 4096  # what an Exchange keeps of a body it does not keep


class Exchange:
    """One GET on its own non-blocking connection, driven by a Herd.
    keep_body=False keeps only the first SMALL_BODY_BYTES of the body (an
    error's whole JSON) and counts the rest.
    state: "connecting", "sending", "reading", then "done" (a whole
    response, or the server closed or reset the connection: see
    complete, closed, error) or "left" (the client closed it first)."""

    def __init__(self, target, source=None, tag=None, keep_body=True):
        self.target, self.source, self.tag = target, source, tag
        self.keep_body = keep_body
        self.sock = None
        self.state = "connecting"
        self.out = build_request("GET", target)
        self.started = time.monotonic()
        self.sent_at = None     # monotonic, when the whole request was sent
        self.first_byte_at = None
        self.done_at = None     # when it reached "done" or "left"
        self.buf = bytearray()  # the head, and the body if keep_body
        self.head_len = -1      # bytes of head, once complete
        self.want = None        # total response bytes, once known
        self.received = 0
        self.complete = False   # a whole response arrived
        self.closed = False     # the server closed (or reset) first
        self.error = None       # connect, send or receive failure
        self._resp = None

    def response(self):
        """The harness.Response of what arrived (status None if no whole
        head arrived)."""
        if self._resp is None or self.state not in ("done", "left"):
            resp = Response()
            resp.raw = bytes(self.buf)
            resp.closed = self.closed
            _parse_into(resp, resp.raw, False)
            if self.error and resp.error is None:
                resp.error = self.error
            if self.state not in ("done", "left"):
                return resp
            self._resp = resp
        return self._resp

    @property
    def status(self):
        return self.response().status if self.head_len >= 0 else None

    @property
    def latency(self):
        """Seconds from the start of the connection to the whole answer."""
        if self.done_at is None:
            return None
        return self.done_at - self.started


class Herd:
    """Exchanges with one server, all on one selector: a thousand
    connections cost a thousand sockets, not a thousand threads (raise
    RLIMIT_NOFILE first). Not thread-safe: one thread adds and pumps."""

    def __init__(self, port, host=LOOPBACK):
        self.port, self.host = port, host
        self.sel = selectors.DefaultSelector()
        self.open = set()
        self.all = []

    def add(self, target, source=None, tag=None, keep_body=True):
        """Starts a non-blocking connect (from source, an IP literal of
        the loopback, when given) and returns the Exchange; a failure to
        connect ends it at once with .error."""
        ex = Exchange(target, source, tag, keep_body)
        self.all.append(ex)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as e:
            self._finish(ex, "socket: %r" % e)
            return ex
        ex.sock = sock
        sock.setblocking(False)
        try:
            if source:
                sock.bind((source, 0))
            rc = sock.connect_ex((self.host, self.port))
        except OSError as e:
            self._finish(ex, "connect: %r" % e)
            return ex
        if rc not in (0, errno.EINPROGRESS):
            self._finish(ex, "connect: %s" % os.strerror(rc))
            return ex
        self.open.add(ex)
        self.sel.register(sock, selectors.EVENT_WRITE, ex)
        return ex

    def _finish(self, ex, error=None, state="done"):
        if error and ex.error is None:
            ex.error = error
        ex.state = state
        ex.done_at = time.monotonic()
        if ex.sock is not None:
            if ex in self.open:
                try:
                    self.sel.unregister(ex.sock)
                except (KeyError, ValueError):
                    pass
            try:
                ex.sock.close()
            except OSError:
                pass
        self.open.discard(ex)

    def _on_write(self, ex):
        if ex.state == "connecting":
            err = ex.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._finish(ex, "connect: %s" % os.strerror(err))
                return
            ex.state = "sending"
        try:
            n = ex.sock.send(ex.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            # The server may answer early and close: read what it sent.
            ex.error = "send: %r" % e
            ex.out = b""
            n = 0
        ex.out = ex.out[n:]
        if not ex.out:
            ex.sent_at = time.monotonic()
            ex.state = "reading"
            self.sel.modify(ex.sock, selectors.EVENT_READ, ex)

    def _on_read(self, ex):
        try:
            chunk = ex.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:  # reset
            ex.closed = True
            self._finish(ex, None if ex.received else "recv: %r" % e)
            return
        if not chunk:
            ex.closed = True
            # A response without a length ends at the close.
            ex.complete = ex.head_len >= 0 and ex.want is None
            self._finish(ex)
            return
        if ex.first_byte_at is None:
            ex.first_byte_at = time.monotonic()
        ex.received += len(chunk)
        if ex.head_len < 0 or ex.keep_body or \
                len(ex.buf) < ex.head_len + SMALL_BODY_BYTES:
            ex.buf += chunk
        if ex.head_len < 0:
            end = ex.buf.find(b"\r\n\r\n")
            if end >= 0:
                ex.head_len = end + 4
                ex.want = _expected_total(bytes(ex.buf[:end]), end + 4,
                                          False)
        if not ex.keep_body and ex.head_len >= 0:
            del ex.buf[ex.head_len + SMALL_BODY_BYTES:]
        if ex.want is not None and ex.received >= ex.want:
            ex.complete = True
            self._finish(ex)
        elif ex.keep_body and len(ex.buf) > MAX_RESPONSE_BYTES:
            self._finish(ex, "response larger than %d bytes"
                         % MAX_RESPONSE_BYTES)

    def pump(self, until, tick=None, on_tick=None, on_done=None,
             stop_when_idle=True):
        """Drives every open exchange until the monotonic time until (or,
        with stop_when_idle, until none is open). on_tick() is called
        every tick seconds; on_done(ex) when an exchange ends by itself
        (it may add more)."""
        next_tick = time.monotonic() if on_tick else None
        while True:
            now = time.monotonic()
            if next_tick is not None and now >= next_tick:
                on_tick()
                next_tick += tick
                if next_tick < now:
                    next_tick = now + tick
            if now >= until or (stop_when_idle and not self.open):
                return
            wake = until if next_tick is None else min(until, next_tick)
            if not self.open:
                time.sleep(max(0.0, wake - now))
                continue
            for key, events in self.sel.select(max(0.0, wake - now)):
                ex = key.data
                if ex.state in ("done", "left"):
                    continue
                if events & selectors.EVENT_WRITE:
                    self._on_write(ex)
                elif events & selectors.EVENT_READ:
                    self._on_read(ex)
                if ex.state == "done" and on_done:
                    on_done(ex)

    def leave(self):
        """Closes every exchange still open (the clients go away)."""
        for ex in list(self.open):
            self._finish(ex, state="left")

    def close(self):
        self.leave()
        self.sel.close()

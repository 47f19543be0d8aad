#!/usr/bin/env python3
"""Integration test of the scale-out set-up: Debian's nginx running the
shipped deploy/nginx/conlab.conf in front of two conlab instances.

    python3 tests/integration/run.py --binary build/conlab --group nginx

(run.py adds the group of server_groups() below: it starts
instance A, the group's first case starts instance B and nginx). The
config nginx runs is the shipped file itself, with three lines replaced
by loopback ones: the upstream's `server conlab:8080 PARAMS;` becomes one
`server 127.0.0.1:PORT PARAMS;` per instance (same parameters), `listen
80;` becomes `listen 127.0.0.1:PORT;` and the access_log path a file in
the test's directory; each must occur exactly once or the test fails. A
generated main file (nginx.conf) wraps it: two workers, every path (pid,
logs, temp directories) inside the test's directory, and `user root;`
when the test runs as root (CI does: nginx's workers would otherwise
switch to nobody, who cannot enter the directory).

The cases, in order, share the fixture in ctx["cluster"]:
  set-up      B starts, `nginx -t` accepts the rendered config;
  start       nginx starts and answers /health through the proxy;
  balance     BALANCE_REQUESTS GETs reach both instances (told apart by
              the worker pids each instance's /health and /run/prime
              report; nginx's access log names the upstream too);
  request id  X-Request-Id passes through (a valid one unchanged, an
              invalid or missing one replaced by nginx's own);
  oversized   requests too large answered 413/414/431 in the service's
              JSON error shape, by the service or by nginx;
  buffering   a ~750 KiB answer arrives whole, no temporary file written;
  failover    a bounded stream of GETs (/health, /run/prime, /delay) from
              several threads; once KILL_AFTER are answered and B holds a
              /delay in flight, B is killed with SIGKILL by its PID: every
              request must still answer 200 (nginx retries the idempotent
              GET on A), A must answer everything after the kill, nginx
              must stop sending B new requests (max_fails) and log that it
              disabled it, and B's workers must die with it;
  all down    A stops on SIGTERM (exit 0, workers gone); nginx then
              answers 502 in the service's JSON error shape;
  teardown    nginx stops on SIGQUIT with exit 0, no nginx process left.
A case whose fixture is missing fails with the reason. Every process is
in the harness registry from the moment it exists and is stopped by PID:
the teardown case stops them in a finally block and harness.cleanup_all()
(run.py's finally, atexit) catches anything left. Only 127.0.0.1 is used;
every wait and every request count is bounded; time limits are multiplied
by harness.TIME_SCALE (sanitizer builds).

nginx not installed is a failure, not a skip: `make test` installs it
(Debian package "nginx", see scripts/deps.sh).
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (  # noqa: E402
    CheckFailed, check, expect_error_shape, stop_and_check)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SHIPPED_CONF = os.path.join(REPO, "deploy", "nginx", "conlab.conf")
NGINX_PACKAGE = "nginx"  # Debian 12; nginx-light works too
JSON = "application/json; charset=utf-8"

WORKERS = 2                # --workers of each instance
GRACE_MS = 1000            # --grace-ms of each instance
NGINX_WORKERS = 2          # worker_processes of the test's nginx
BALANCE_REQUESTS = 40
STREAM_THREADS = 4         # each sends STREAM_PER_THREAD fast GETs
STREAM_PER_THREAD = 100
FAST_TARGETS = ("/health", "/run/prime?limit=1000&tasks=1")
SLOW_THREADS = 2           # each sends SLOW_PER_THREAD /delay GETs
SLOW_PER_THREAD = 6
SLOW_TARGET = "/delay?ms=300"
KILL_AFTER = 100           # fast answers before B is killed
MIN_AFTER_KILL = 150       # fast requests that must start after the kill
PACE_S = 0.003             # pause between two requests of one thread
BIG_TARGET = "/run/sleep?mode=async&tasks=10000&ms=0"

# The lines of the shipped config that the test replaces.
UPSTREAM_LINE = re.compile(
    r"^([ \t]*)server[ \t]+conlab:8080((?:[ \t]+[^;\s]+)*)[ \t]*;[^\n]*$",
    re.M)
LISTEN_LINE = re.compile(r"^([ \t]*)listen[ \t]+80[ \t]*;[^\n]*$", re.M)
ACCESS_LOG_LINE = re.compile(
    r"^([ \t]*)access_log[ \t]+/var/log/nginx/access\.log((?:[ \t]+[^;\s]+)*)"
    r"[ \t]*;[^\n]*$", re.M)

# One line of the shipped log_format conlab.
LOG_LINE = re.compile(
    r'^(?P<addr>\S+) \[(?P<time>[^\]]+)\] (?P<msec>[\d.]+)'
    r' "(?P<request>[^"]*)" (?P<status>\d+) (?P<bytes>\d+) rt=(?P<rt>[\d.]+)'
    r' upstream="(?P<upstream>[^"]*)" ustatus="(?P<ustatus>[^"]*)"'
    r' urt="(?P<urt>[^"]*)" rid=(?P<rid>\S*)$')


def scaled(seconds):
    return seconds * harness.TIME_SCALE


def find_nginx():
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return shutil.which("nginx", path=path)


def free_port():
    """A port free on 127.0.0.1 right now (nginx binds it a moment later;
    start() retries when another process took it in between)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((harness.LOOPBACK, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# The config

def render_conlab_conf(text, listen_port, upstream_ports, access_log):
    """The shipped http-context file with the upstream servers, the listen
    address and the access log replaced. Returns (text, server params)."""
    found = {}

    def sub(regex, what, repl):
        nonlocal text
        text, count = regex.subn(repl, text)
        check(count == 1, "%s: expected exactly one %s line, found %d"
              % (SHIPPED_CONF, what, count))

    def upstream(match):
        indent, params = match.group(1), match.group(2)
        found["params"] = params.strip()
        return "\n".join("%sserver %s:%d%s;" % (indent, harness.LOOPBACK,
                                                 port, params)
                         for port in upstream_ports)

    sub(UPSTREAM_LINE, "'server conlab:8080 ...;'", upstream)
    sub(LISTEN_LINE, "'listen 80;'", lambda m: "%slisten %s:%d;" % (
        m.group(1), harness.LOOPBACK, listen_port))
    sub(ACCESS_LOG_LINE, "'access_log /var/log/nginx/access.log ...;'",
        lambda m: "%saccess_log %s%s;" % (m.group(1), access_log,
                                           m.group(2)))
    return text, found["params"]


def server_param(params, name, default):
    match = re.search(r"(?:^|\s)%s=(\d+)" % re.escape(name), params)
    return int(match.group(1)) if match else default


def main_conf(base):
    """The generated main file: everything inside base."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    tmp = os.path.join(base, "tmp")
    return ("# Generated by tests/integration/nginx.py around the shipped\n"
            "# deploy/nginx/conlab.conf.\n"
            "%(user)sworker_processes %(workers)d;\n"
            "pid %(base)s/nginx.pid;\n"
            "error_log %(base)s/error.log warn;\n"
            "events {\n    worker_connections 512;\n}\n"
            "http {\n"
            "    client_body_temp_path %(tmp)s/client_body;\n"
            "    proxy_temp_path %(tmp)s/proxy;\n"
            "    fastcgi_temp_path %(tmp)s/fastcgi;\n"
            "    uwsgi_temp_path %(tmp)s/uwsgi;\n"
            "    scgi_temp_path %(tmp)s/scgi;\n"
            "    access_log %(base)s/default-access.log;\n"
            "    include %(base)s/conlab.conf;\n"
            "}\n") % {"user": user, "workers": NGINX_WORKERS, "base": base,
                      "tmp": tmp}


# --------------------------------------------------------------------------
# The fixture

class Cluster:
    """Instance B, nginx and the directory of both. close() is idempotent
    and registered with harness.add_cleanup()."""

    def __init__(self, a):
        self.a = a
        self.b = None
        self.nginx_bin = None
        self.nginx = None       # Popen of the master
        self.nginx_pids = []    # master and workers, for the final check
        self.port = None
        self.params = ""
        self.dir = tempfile.mkdtemp(prefix="conlab-nginx-")
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        self.ids = {}           # instance name -> set of its worker pids
        self.stream = None      # the failover case's record
        self.ready = False      # set-up passed: B up, nginx -t accepted
        self._out = None
        harness.add_cleanup(self.close)

    # ---- set-up

    def setup(self):
        self.nginx_bin = find_nginx()
        check(self.nginx_bin is not None,
              "nginx is not installed (apt-get install %s; make test "
              "installs it through scripts/deps.sh)" % NGINX_PACKAGE)
        self.b = harness.Server(self.a.binary, self.a.args, name="nginx-b")
        self.b.start()
        self.ids = {"A": pool_pids(self.a.port), "B": pool_pids(self.b.port)}
        check(all(self.ids.values()) and not (self.ids["A"] & self.ids["B"]),
              "instances not told apart by their worker pids: %r" % self.ids)
        os.makedirs(os.path.join(self.dir, "tmp"))
        said = self.write_conf()
        self.ready = True
        return said

    def write_conf(self):
        self.port = free_port()
        with open(SHIPPED_CONF, encoding="utf-8") as f:
            text, self.params = render_conlab_conf(
                f.read(), self.port, [self.a.port, self.b.port],
                self.access_log)
        with open(os.path.join(self.dir, "conlab.conf"), "w",
                  encoding="utf-8") as f:
            f.write(text)
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write(main_conf(self.dir))
        rc, out, err = harness.run_command(
            [self.nginx_bin, "-t", "-p", self.dir + "/", "-c", self.conf],
            timeout=scaled(10.0))
        check(rc == 0 and "test is successful" in err,
              "nginx -t exit %s: %s" % (rc, " | ".join(
                  (out + err).strip().splitlines()[-6:])))
        return err.strip().splitlines()[-1] if err.strip() else ""

    def start_nginx(self):
        """Starts nginx in the foreground (daemon off), waits for /health
        through it. Retries with a new port if the chosen one was taken."""
        for attempt in range(3):
            if attempt:
                self.write_conf()
            self._out = open(os.path.join(self.dir, "stderr.log"), "ab")
            self.nginx = harness._popen(
                [self.nginx_bin, "-p", self.dir + "/", "-c", self.conf,
                 "-g", "daemon off;"],
                harness.make_env(), self._out, self._out)
            deadline = time.monotonic() + scaled(10.0)
            while True:
                if self.nginx.poll() is not None:
                    break
                try:
                    status, _, _ = harness.http_get(self.port, "/health",
                                                    timeout=2.0)
                    if status == 200:
                        self.nginx_pids = [self.nginx.pid] + \
                            harness.children_of(self.nginx.pid)
                        return "pid %d, %d workers, port %d" % (
                            self.nginx.pid, len(self.nginx_pids) - 1,
                            self.port)
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise CheckFailed("nginx answered no 200 on /health "
                                      "within %.0f s; error log: %s"
                                      % (scaled(10.0), self.log_tail()))
                time.sleep(0.05)
            rc = harness.reap(self.nginx)
            self.nginx = None
            self._out.close()
            self._out = None
            if "Address already in use" not in self.log_tail(2):
                break
        raise CheckFailed("nginx exited with %s at start: %s"
                          % (rc, self.log_tail()))

    def log_tail(self, lines=6):
        text = ""
        for name in ("stderr.log", "error.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    text += f.read().decode("utf-8", "replace")
            except OSError:
                pass
        text = text.strip().splitlines()
        return " | ".join(text[-lines:]) if text else "(empty)"

    # ---- tear-down

    def stop_nginx(self):
        """SIGQUIT (graceful), SIGKILL after a while; then any worker still
        running is killed by its PID. Returns (exit status, leftovers)."""
        if self.nginx is None:  # never started, or already stopped
            return None, []
        if not self.nginx_pids and self.nginx.poll() is None:
            self.nginx_pids = [self.nginx.pid] + \
                harness.children_of(self.nginx.pid)
        rc = harness.reap(self.nginx, signal.SIGQUIT, timeout=scaled(10.0))
        self.nginx = None
        if self._out is not None:
            self._out.close()
            self._out = None
        left = wait_gone(self.nginx_pids, 2.0)
        for pid in left:
            if is_nginx(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return rc, left

    def close(self):
        try:
            self.stop_nginx()
        finally:
            if self.b is not None:
                self.b.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- traffic

    def instance_of(self, body):
        """'A' or 'B' for a /health or /run/prime (processes) answer, by
        the worker pids it names; None when it names none or both."""
        try:
            doc = json.loads(body)
        except ValueError:
            return None
        if "pools" in doc:
            pids = set(doc["pools"]["process"]["pids"])
        else:
            pids = {t["worker"]["id"] for t in doc.get("tasks", ())
                    if t.get("worker", {}).get("kind") == "process"}
        names = [n for n, ids in self.ids.items() if pids and pids <= ids]
        return names[0] if len(names) == 1 else None

    def upstream(self, addr):
        """'A'/'B' for an upstream address nginx logged."""
        port = int(addr.rsplit(":", 1)[1]) if ":" in addr else None
        return {self.a.port: "A", self.b.port: "B"}.get(port, addr)

    def access_entries(self):
        entries = []
        with open(self.access_log, encoding="utf-8", errors="replace") as f:
            for line in f:
                match = LOG_LINE.match(line.rstrip("\n"))
                check(match is not None, "access log line not in the shipped "
                      "log_format: %r" % line[:200])
                e = match.groupdict()
                e["msec"] = float(e["msec"])
                e["rt"] = float(e["rt"])
                e["status"] = int(e["status"])
                e["tried"] = [self.upstream(u.strip()) for u in
                              e["upstream"].split(",") if u.strip()]
                entries.append(e)
        return entries

    def wait_entries(self, key, wanted):
        """{key(entry): entry} of the access log once every key in wanted
        is there (nginx writes a line after the answer is sent, so the last
        ones may lag the client a little). Bounded."""
        deadline = time.monotonic() + scaled(5.0)
        while True:
            found = {}
            for e in self.access_entries():
                k = key(e)
                if k in wanted:
                    check(k not in found, "%r logged twice" % k)
                    found[k] = e
            missing = wanted - set(found)
            if not missing:
                return found
            check(time.monotonic() < deadline,
                  "%d requests not in nginx's access log after %.0f s, "
                  "e.g. %s" % (len(missing), scaled(5.0),
                               sorted(missing)[:3]))
            time.sleep(0.05)


def pool_pids(port):
    """The worker pids of the instance on port, once all its workers are
    alive (a /health right after start-up may list fewer)."""
    deadline = time.monotonic() + scaled(10.0)
    while True:
        pool = harness.health(port)["pools"]["process"]
        if pool["alive"] == pool["configured"] == len(pool["pids"]):
            return set(pool["pids"])
        check(time.monotonic() < deadline, "port %d: workers not all alive "
              "after %.0f s: %r" % (port, scaled(10.0), pool))
        time.sleep(0.05)


def wait_gone(pids, seconds):
    deadline = time.monotonic() + seconds
    left = [p for p in pids if harness.pid_alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if harness.pid_alive(p)]
    return left


def is_nginx(pid):
    try:
        with open("/proc/%d/comm" % pid, encoding="ascii",
                  errors="replace") as f:
            return f.read().strip() == "nginx"
    except OSError:
        return False


class Client:
    """A keep-alive HTTP/1.1 client of nginx for one thread: a request that
    fails is recorded with the reason and the connection is renewed."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def get(self, target, headers=None):
        """(status or None, headers, body, error)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(
                harness.LOOPBACK, self.port, timeout=scaled(15.0))
        try:
            self.conn.request("GET", target, headers=headers or {})
            resp = self.conn.getresponse()
            body = resp.read()
            if resp.will_close:
                self.close()
            return resp.status, resp.headers, body, None
        except (OSError, http.client.HTTPException) as e:
            self.close()
            return None, None, b"", repr(e)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def cluster_of(ctx):
    cluster = ctx.get("cluster")
    check(cluster is not None, "no cluster: the set-up case failed")
    return cluster


def started(ctx):
    cluster = cluster_of(ctx)
    check(cluster.nginx is not None and cluster.nginx.poll() is None,
          "nginx is not running: the start case failed")
    return cluster


# --------------------------------------------------------------------------
# Cases

def case_setup(srv, ctx):
    cluster = Cluster(srv)
    ctx["cluster"] = cluster
    said = cluster.setup()
    _, _, err = harness.run_command([cluster.nginx_bin, "-v"], timeout=5.0)
    return "%s; %s" % (err.strip(), said)


def case_start(srv, ctx):
    cluster = cluster_of(ctx)
    check(cluster.ready, "not started: the set-up case failed")
    return cluster.start_nginx()


def case_balance(srv, ctx):
    cluster = started(ctx)
    client = Client(cluster.port)
    counts = {"A": 0, "B": 0, None: 0}
    try:
        for i in range(BALANCE_REQUESTS):
            status, _, body, error = client.get(FAST_TARGETS[i % 2])
            check(status == 200, "request %d: %s" % (i, error or status))
            counts[cluster.instance_of(body)] += 1
    finally:
        client.close()
    check(counts[None] == 0, "%d answers named neither instance"
          % counts[None])
    low = BALANCE_REQUESTS // 4
    check(counts["A"] >= low and counts["B"] >= low,
          "unbalanced: A %d, B %d of %d (each must have >= %d)"
          % (counts["A"], counts["B"], BALANCE_REQUESTS, low))
    return "A %d, B %d of %d" % (counts["A"], counts["B"], BALANCE_REQUESTS)


def case_request_id(srv, ctx):
    cluster = started(ctx)
    # Does the service itself answer X-Request-Id? Then it must be the id
    # nginx forwarded; either way nginx's log must show the right id. Each
    # request has its own path (a 404 from the service) to find its line.
    _, direct, _ = harness.http_get(srv.port, "/health",
                                    headers={"X-Request-Id": "nx-probe"})
    echoes = direct.get("X-Request-Id") == "nx-probe"
    cases = [("nx-rid.check_1", "nx-rid.check_1"),
             (None, None),
             ("bad id!", None),
             ("x" * 65, None)]
    client = Client(cluster.port)
    got = {}
    try:
        for i, (sent, expect) in enumerate(cases):
            headers = {"X-Request-Id": sent} if sent is not None else {}
            target = "/nx-rid-%d" % i
            status, resp_headers, _, error = client.get(target, headers)
            check(status == 404, "id %r: %s, expected the service's 404"
                  % (sent, error or status))
            got[target] = resp_headers.get("X-Request-Id")
    finally:
        client.close()
    entries = cluster.wait_entries(
        lambda e: e["request"].split(" ")[1], set(got))
    for i, (sent, expect) in enumerate(cases):
        target = "/nx-rid-%d" % i
        logged = entries[target]["rid"]
        if expect is not None:
            check(logged == expect, "sent %r, nginx forwarded %r"
                  % (sent, logged))
        else:
            check(re.fullmatch(r"[0-9a-f]{32}", logged) is not None,
                  "sent %r: nginx forwarded %r, expected its own 32-hex "
                  "$request_id" % (sent, logged))
        if echoes:
            check(got[target] == logged, "sent %r: the answer says %r, "
                  "nginx forwarded %r" % (sent, got[target], logged))
    return ("forwarded ids checked in nginx's log; the service %s" %
            ("echoes them: answers checked too" if echoes else
             "sets no X-Request-Id yet: answers not checked"))


# Requests too large: the service answers those its buffers hold, nginx
# (the config's error_page) those that are larger; both in the service's
# JSON error shape with the status on the HTTP line. (name, method, target,
# headers, body, status)
OVERSIZED = [
    ("a 6 KB target (the service's 414)", "GET", "/health?" + "a" * 6000,
     (), b"", 414),
    ("a 40 KB target (nginx's 414)", "GET", "/health?" + "a" * 40000,
     (), b"", 414),
    ("a 9 KB header (the service's 431)", "GET", "/health",
     (("X-Big", "b" * 9000),), b"", 431),
    ("a 70 KB header (nginx's 431)", "GET", "/health",
     (("X-Big", "b" * 70000),), b"", 431),
    ("a 100 KB body (nginx's 413)", "POST", "/health", (), b"c" * 100000,
     413),
]


def case_oversized(srv, ctx):
    cluster = started(ctx)
    for name, method, target, headers, body, status in OVERSIZED:
        resp = harness.raw_exchange(cluster.port, harness.build_request(
            method, target, headers, body))
        check(resp.status == status, "%s: status %s (%s), expected %d; "
              "body %r" % (name, resp.status, resp.error, status,
                           resp.body[:100]))
        try:
            expect_error_shape(resp)
        except CheckFailed as e:
            raise CheckFailed("%s: %s" % (name, e))
    return "%d requests" % len(OVERSIZED)


def case_big_answer(srv, ctx):
    cluster = started(ctx)
    client = Client(cluster.port)
    try:
        status, headers, body, error = client.get(BIG_TARGET)
    finally:
        client.close()
    check(status == 200, "%s: %s" % (BIG_TARGET, error or status))
    doc = json.loads(body)
    check(len(doc.get("tasks", ())) == 10000, "%d tasks in the answer"
          % len(doc.get("tasks", ())))
    length = headers.get("Content-Length")
    check(length is None or int(length) == len(body),
          "Content-Length %s, body %d bytes" % (length, len(body)))
    temp = os.path.join(cluster.dir, "tmp", "proxy")
    files = [os.path.join(d, n) for d, _, names in os.walk(temp)
             for n in names]
    check(not files, "nginx wrote temporary files: %s" % files[:3])
    return "%d KiB through nginx, no temporary file" % (len(body) // 1024)


class Stream:
    """The failover case's traffic: fast threads (FAST_TARGETS in turn)
    and slow ones (SLOW_TARGET), all bounded, each request recorded."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.lock = threading.Lock()
        self.records = []        # dicts: rid, target, start, end, status...
        self.fast_done = 0
        self.kill_wall = None    # time.time() of the kill
        self.kill_mono = None
        self.dead_wall = None    # once B was reaped
        self.dead_mono = None
        self.threads = []

    def run_thread(self, name, targets, count):
        client = Client(self.cluster.port)
        try:
            for i in range(count):
                target = targets[i % len(targets)]
                rid = "nx-%s-%d" % (name, i)
                start = time.monotonic()
                status, _, body, error = client.get(
                    target, {"X-Request-Id": rid})
                rec = {"rid": rid, "target": target, "start": start,
                       "end": time.monotonic(), "status": status,
                       "error": error,
                       "instance": self.cluster.instance_of(body)
                       if target in FAST_TARGETS and status == 200 else None}
                with self.lock:
                    self.records.append(rec)
                    if target in FAST_TARGETS:
                        self.fast_done += 1
                time.sleep(PACE_S)
        finally:
            client.close()

    def start(self):
        for t in range(STREAM_THREADS):
            self.threads.append(threading.Thread(
                target=self.run_thread, daemon=True,
                args=("f%d" % t, FAST_TARGETS, STREAM_PER_THREAD)))
        for t in range(SLOW_THREADS):
            self.threads.append(threading.Thread(
                target=self.run_thread, daemon=True,
                args=("s%d" % t, (SLOW_TARGET,), SLOW_PER_THREAD)))
        for thread in self.threads:
            thread.start()

    def join(self, seconds):
        deadline = time.monotonic() + seconds
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)


def case_failover(srv, ctx):
    cluster = started(ctx)
    b = cluster.b
    b_workers = harness.children_of(b.pid)
    total = STREAM_THREADS * STREAM_PER_THREAD + SLOW_THREADS * \
        SLOW_PER_THREAD
    stream = Stream(cluster)
    cluster.stream = stream
    stream.start()
    # Kill B once KILL_AFTER fast answers came back and B has a /delay in
    # flight (a timer in its loop), so that the kill cuts a request.
    deadline = time.monotonic() + scaled(30.0)
    while stream.fast_done < KILL_AFTER and time.monotonic() < deadline:
        time.sleep(0.001)
    check(stream.fast_done >= KILL_AFTER, "only %d answers in %.0f s"
          % (stream.fast_done, scaled(30.0)))
    in_flight = 0
    deadline = time.monotonic() + scaled(1.0)
    while time.monotonic() < deadline:
        in_flight = harness.health(b.port)["pools"]["loop"]["timers"]
        if in_flight:
            break
        time.sleep(0.005)
    stream.kill_wall = time.time()
    stream.kill_mono = time.monotonic()
    os.kill(b.pid, signal.SIGKILL)
    try:
        rc = b.proc.wait(timeout=5.0)
        # From here nothing of B's can still be on its way: an answer B
        # wrote just before the signal landed may end after kill_mono.
        stream.dead_wall = time.time()
        stream.dead_mono = time.monotonic()
    finally:
        b.stop()  # reaps it (and unregisters it) in any case
    check(rc == -signal.SIGKILL, "B exited with %s, not by SIGKILL" % rc)
    finished = stream.join(scaled(60.0))
    check(finished, "the stream did not finish within %.0f s"
          % scaled(60.0))
    left = wait_gone(b_workers, 2.0)
    check(not left, "B's workers still running after its death: %s" % left)

    records = stream.records
    check(len(records) == total, "%d of %d requests recorded"
          % (len(records), total))
    failed = [r for r in records if r["status"] != 200]
    after = [r for r in records if r["start"] >= stream.kill_mono]
    fast_after = [r for r in after if r["target"] in FAST_TARGETS]
    check(not failed, "%d of %d requests failed, e.g. %s"
          % (len(failed), total, ["%s %s: %s" % (r["rid"], r["target"],
                                                 r["error"] or r["status"])
                                  for r in failed[:3]]))
    check(len(fast_after) >= MIN_AFTER_KILL,
          "only %d fast requests started after the kill (need %d): the "
          "kill came too late to test anything" % (len(fast_after),
                                                   MIN_AFTER_KILL))
    return "%d GETs, %d started after the kill, %d in flight on B at the " \
        "kill, 0 failed" % (total, len(after), in_flight)


def case_survivor(srv, ctx):
    cluster = started(ctx)
    stream = cluster.stream
    check(stream is not None and stream.dead_mono is not None,
          "no failover run: that case failed before the kill")
    records = stream.records
    # Answers that ended after B was dead (all of them: retried ones too)
    # must come from A.
    late = [r for r in records if r["end"] > stream.dead_mono and
            r["target"] in FAST_TARGETS]
    wrong = [r for r in late if r["instance"] != "A"]
    check(not wrong, "%d answers after the kill not from A, e.g. %s"
          % (len(wrong), [(r["rid"], r["instance"]) for r in wrong[:3]]))
    before = [r for r in records if r["end"] <= stream.kill_mono and
              r["target"] in FAST_TARGETS]
    by = {n: sum(1 for r in before if r["instance"] == n) for n in "AB"}
    check(by["A"] + by["B"] == len(before), "%d answers before the kill "
          "named neither instance" % (len(before) - by["A"] - by["B"]))
    check(by["A"] and by["B"], "before the kill: A %d, B %d" % (
        by["A"], by["B"]))

    # nginx's view: every stream request logged once with 200; after the
    # kill the last upstream tried is A; new requests stop going to B.
    entries = cluster.wait_entries(lambda e: e["rid"],
                                   {r["rid"] for r in records})
    bad = [e for e in entries.values() if e["status"] != 200]
    check(not bad, "nginx logged non-200 answers: %s"
          % [(e["rid"], e["status"]) for e in bad[:3]])
    kill = stream.kill_wall
    ended_after = [e for e in entries.values() if e["msec"] > kill]
    not_a = [e for e in ended_after if e["tried"][-1] != "A" and
             e["msec"] > stream.dead_wall]
    check(not not_a, "after the kill, answered by %s"
          % [(e["rid"], e["upstream"]) for e in not_a[:3]])
    retried = [e for e in ended_after if "B" in e["tried"]]
    # Requests sent to B after the kill: started (end minus request time)
    # at or after it. max_fails of them at most, plus one per client
    # thread that was already on its way.
    new_to_b = [e for e in retried if e["msec"] - e["rt"] >= kill - 0.001]
    max_fails = server_param(cluster.params, "max_fails", 1)
    clients = STREAM_THREADS + SLOW_THREADS
    check(len(new_to_b) <= max_fails + clients,
          "%d new requests still sent to the dead instance (max_fails=%d, "
          "%d clients)" % (len(new_to_b), max_fails, clients))
    marked_ms = max([(e["msec"] - e["rt"] - kill) * 1000 for e in new_to_b]
                    or [0.0])
    with open(cluster.error_log, encoding="utf-8", errors="replace") as f:
        errors = f.read()
    disabled = re.search(r"upstream server temporarily disabled[^\n]*"
                         r"upstream: \"http://127\.0\.0\.1:%d"
                         % cluster.b.port, errors)
    check(disabled, "nginx's error log does not say it disabled B "
          "(127.0.0.1:%d); tail: %s" % (cluster.b.port, cluster.log_tail()))
    by_nginx = {n: sum(1 for e in entries.values() if e["tried"][-1] == n)
                for n in "AB"}
    return ("before the kill A %d, B %d answers; after it A %d of %d; "
            "%d retried on A after trying B (%d sent to B after the kill, "
            "the last %.0f ms after it, then B marked down); nginx log: "
            "A %d, B %d" % (by["A"], by["B"], len(late), len(late),
                            len(retried), len(new_to_b), marked_ms,
                            by_nginx["A"], by_nginx["B"]))


def case_all_down(srv, ctx):
    cluster = started(ctx)
    note = stop_and_check(srv, signal.SIGTERM,
                          GRACE_MS / 1000.0 + scaled(2.0),
                          harness.children_of(srv.pid))
    client = Client(cluster.port)
    try:
        status, headers, body, error = client.get("/health")
    finally:
        client.close()
    check(status == 502, "with no instance left nginx answered %s"
          % (error or status))
    check(headers.get("Content-Type") == JSON, "Content-Type %r"
          % headers.get("Content-Type"))
    check(headers.get("Retry-After") is not None, "no Retry-After")
    resp = harness.Response()
    resp.status, resp.body = status, body
    resp.headers = list(headers.items())
    err = expect_error_shape(resp)
    check(err["status"] == 502, "error.status %r" % err["status"])
    return "A: %s; nginx: 502 %s" % (note, body.decode().strip()[:60])


def case_teardown(srv, ctx):
    cluster = cluster_of(ctx)
    try:
        had = cluster.nginx is not None
        rc, left = cluster.stop_nginx()
        check(not had or rc == 0, "nginx exit status %s on SIGQUIT; %s"
              % (rc, cluster.log_tail()))
        check(not left, "nginx processes left running: %s" % left)
    finally:
        cluster.close()
    if not had:
        return "nginx was never started; B stopped"
    return "nginx exit 0, %d processes gone" % len(cluster.nginx_pids)


def server_groups(web_root):
    """(title, extra args, environment, cases) for run.py's server_group:
    instance A is the group's server; the cases start B and nginx."""
    args = ["--web-root", web_root, "--threads", "2",
            "--workers", str(WORKERS), "--grace-ms", str(GRACE_MS)]
    return [
        ("nginx", args, None, [
            ("nginx: set-up: instance B up, nginx -t accepts "
             "deploy/nginx/conlab.conf", case_setup),
            ("nginx: starts in front of both instances", case_start),
            ("nginx: round robin reaches both instances", case_balance),
            ("nginx: X-Request-Id passed through or replaced",
             case_request_id),
            ("nginx: too large requests: 413/414/431 in the error shape",
             case_oversized),
            ("nginx: a 10,000-task answer (~750 KiB) passes whole, no temp "
             "file",
             case_big_answer),
            ("nginx: kill -9 one instance under a stream of GETs: none "
             "fails", case_failover),
            ("nginx: the survivor answers everything after the kill; the "
             "dead one is marked down", case_survivor),
            ("nginx: survivor exits 0 on SIGTERM; no replica left is a "
             "JSON 502", case_all_down),
            ("nginx: stops on SIGQUIT, nothing left running",
             case_teardown),
        ]),
    ]


if __name__ == "__main__":
    raise SystemExit("run through run.py: python3 tests/integration/run.py "
                     "--binary build/conlab --group nginx")

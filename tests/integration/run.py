#!/usr/bin/env python3
"""Integration tests of conlab: the real binary on a free loopback port.

    python3 tests/integration/run.py --binary build/conlab

Cases read as data where they fit: CONFIG_CASES (command lines and their
exit status and output) and the HTTP tables (request, expected status,
JSON fields, headers, content type). Behaviour that needs a sequence
(keep-alive, conditional requests, 300 idle connections, shutdown under
load) is written as small functions. Each case prints one line, ok or
FAIL with the reason; the last line is "N passed, M failed"; the exit
status is 1 when anything failed.

Every server is started with --port 0 --bind 127.0.0.1 (one group binds
::1 instead), found through its "listening on" log line and stopped by PID
and reaped in a finally block (see harness.py); the groups' own sockets
and helper servers are closed by harness.cleanup_all(). Only the Python
standard library is used. The groups of cpu.py (CPU demos), loop.py
(event loop: /delay, /run/sleep, /run/fetch), compare.py (/run/compare),
live.py (streamed runs: event streams and text lines as the run goes),
state.py (shared state: /run/counter and /run/deadlock),
work.py (/run/work, mixed work, and compare's repeat, warm-up and notes),
spawn.py (spawn mode, cpu_ms and cores), openapi.py (the OpenAPI document
against the service), overhead.py (/run/overhead and /run/table), nginx.py (two
instances behind Debian's nginx), ops.py (/metrics checked by promtool,
request ids, JSON logs), faults.py (kill -9 under wrk, slow clients,
2,000 idle connections, oversized requests, SIGTERM mid-load), chaos.py
(a seeded randomized run of every route with kills and SIGTERM; --chaos runs
only it, --chaos-seed and --chaos-seconds set its seed and load time),
limits.py (admission by cost: memory ceiling under 1,000 concurrent
requests, fairness between client addresses, memory per task), spawn.py
(spawn mode, cpu_ms, the cores parameter) and
shutdown.py (SIGTERM at a random moment of every kind of run) are added by
server_groups().

Switches: --group TITLE runs one server group alone (repeatable);
--limits runs only the limits-* groups, --mixes N|all chooses how many
memory-ceiling mixes (2 by default, all in bench/limits.sh); --shutdown
runs only the shutdown group, --shutdown-tries N its tries (200);
--figures FILE writes what the cases measured as JSON.
"""

import argparse
import http.client
import json
import os
import re
import resource
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid

sys.dont_write_bytecode = True  # leave no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bodies  # noqa: E402
import chaos  # noqa: E402
import compare  # noqa: E402
import cpu  # noqa: E402
import faults  # noqa: E402
import harness  # noqa: E402
import limits  # noqa: E402
import live  # noqa: E402
import loop  # noqa: E402
import nginx  # noqa: E402
import ops  # noqa: E402
import openapi  # noqa: E402
import overhead  # noqa: E402
import shutdown  # noqa: E402
import state  # noqa: E402
import work  # noqa: E402
import spawn  # noqa: E402
from harness import (  # noqa: E402
    CheckFailed, Contains, NonEmptyStr, Present, Regex, Server, Type,
    build_request, check, expect_error_shape, expect_value, json_path,
    raw_exchange, stop_and_check)

JSON = "application/json; charset=utf-8"
HTML = "text/html; charset=utf-8"
MAIN_THREADS = 3
GRACE_MS = 3000
DRAIN_GRACE_MS = 1000
OUTSIDE_MARKER = "OUTSIDE-MARKER-" + uuid.uuid4().hex
SECRET_MARKER = "SECRET-DOTFILE-CONTENT"

# --------------------------------------------------------------------------
# Results


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def ok(self, name, note=""):
        self.passed += 1
        print("ok   %s%s" % (name, (" (%s)" % note) if note else ""),
              flush=True)

    def fail(self, name, reason):
        self.failed += 1
        reason = " ".join(str(reason).split())
        if len(reason) > 400:
            reason = reason[:400] + "..."
        print("FAIL %s: %s" % (name, reason), flush=True)

    def skip(self, name, reason):
        self.skipped += 1
        print("skip %s (%s)" % (name, reason), flush=True)

    def run(self, name, fn, *args):
        """Runs one case: it passes unless it raises; a returned string is
        printed as a note."""
        try:
            note = fn(*args)
        except CheckFailed as e:
            self.fail(name, e)
        except harness.Skipped as e:
            self.skip(name, e)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a broken case is a failed case
            self.fail(name, "%s: %s" % (type(e).__name__, e))
        else:
            self.ok(name, note or "")


# --------------------------------------------------------------------------
# Command-line cases: no server is left running (a wrong start-up would
# still only bind 127.0.0.1 on a free port, and is killed at the timeout).


class Cmd:
    def __init__(self, name, args, rc, env=None, stdout=(), stderr=(),
                 stdout_re=None):
        self.name, self.args, self.rc, self.env = name, args, rc, env or {}
        self.stdout, self.stderr, self.stdout_re = stdout, stderr, stdout_re


NO_DIR = "/nonexistent-conlab-" + uuid.uuid4().hex[:8]

CONFIG_CASES = [
    Cmd("config: --help prints usage, exits 0", ["--help"], 0,
        stdout=["usage:", "--threads", "--web-root", "CONLAB_THREADS"]),
    Cmd("config: -h prints usage, exits 0", ["-h"], 0, stdout=["usage:"]),
    Cmd("config: --version prints the version, exits 0", ["--version"], 0,
        stdout_re=r"^conlab \d+\.\d+\.\d+"),
    Cmd("config: unknown option exits 2 naming it",
        ["--port", "0", "--no-such-option"], 2,
        stderr=["--no-such-option"]),
    Cmd("config: --port 70000 exits 2",
        ["--bind", "127.0.0.1", "--port", "70000"], 2,
        stderr=["--port", "70000"]),
    Cmd("config: --port -1 exits 2", ["--bind", "127.0.0.1", "--port=-1"], 2,
        stderr=["--port"]),
    Cmd("config: --threads 1 exits 2", ["--port", "0", "--threads", "1"], 2,
        stderr=["--threads"]),
    Cmd("config: --threads abc exits 2", ["--port", "0", "--threads", "abc"],
        2, stderr=["--threads"]),
    Cmd("config: --bind nothost exits 2", ["--port", "0", "--bind", "nothost"],
        2, stderr=["--bind", "nothost"]),
    Cmd("config: --web-root /nonexistent exits 2",
        ["--port", "0", "--web-root", NO_DIR], 2, stderr=["--web-root"]),
    Cmd("config: --port without a value exits 2", ["--port"], 2,
        stderr=["--port"]),
    Cmd("config: stray argument exits 2", ["--port", "0", "stray"], 2,
        stderr=["stray"]),
    Cmd("config: CONLAB_THREADS=1 exits 2 naming the variable",
        ["--port", "0"], 2, env={"CONLAB_THREADS": "1"},
        stderr=["CONLAB_THREADS"]),
]


def run_cmd_case(binary, case, ctx):
    rc, out, err = harness.run_command(
        [binary] + case.args, env=harness.make_env(case.env),
        timeout=10.0 * harness.TIME_SCALE)
    check(rc is not None, "did not exit within %.0f s (killed); stderr: %s"
          % (10.0 * harness.TIME_SCALE, err.strip()[-200:]))
    check(rc == case.rc, "exit status %s, expected %s; stderr: %s"
          % (rc, case.rc, err.strip()[-200:]))
    for text in case.stdout:
        check(text in out, "stdout lacks %r: %r" % (text, out[:200]))
    for text in case.stderr:
        check(text in err, "stderr lacks %r: %r" % (text, err[:200]))
    if case.rc != 0:
        check(err.strip() != "", "no message on stderr")
    if case.stdout_re:
        match = re.search(case.stdout_re, out)
        check(match, "stdout %r does not match /%s/" % (out[:200],
                                                        case.stdout_re))
    for line in err.splitlines():
        check(not any(r.search(line) for r in harness.SANITIZER_RES),
              "sanitizer report: %s" % line)
    if "--version" in case.args:
        ctx["version"] = out.split()[1] if len(out.split()) > 1 else None


# --------------------------------------------------------------------------
# HTTP cases as data


class Req:
    """One request on its own connection, sent byte for byte as written
    (raw socket: no client normalizes the target), and what must come
    back. status may be a tuple of acceptable statuses. Header values
    containing '{' are formatted with the group's context (etag...)."""

    def __init__(self, name, method, target, headers=(), body=b"",
                 status=200, ctype=None, fields=None, hdrs=None,
                 body_has=(), body_equals=None, body_lacks=(),
                 body_empty=False, error_shape=None, version="HTTP/1.1"):
        self.name, self.method, self.target = name, method, target
        self.headers, self.body, self.status = list(headers), body, status
        self.ctype, self.fields, self.hdrs = ctype, fields or {}, hdrs or {}
        self.body_has, self.body_lacks = body_has, body_lacks
        self.body_equals, self.body_empty = body_equals, body_empty
        self.version = version
        statuses = status if isinstance(status, tuple) else (status,)
        self.error_shape = (all(s >= 400 for s in statuses)
                            if error_shape is None else error_shape)


def run_req(port, case, ctx):
    headers = []
    for k, v in case.headers:
        if isinstance(v, str) and "{" in v:
            v = v.format(**ctx)
        headers.append((k, v))
    data = build_request(case.method, case.target, headers, case.body,
                         case.version)
    resp = raw_exchange(port, data, head=case.method == "HEAD")
    check(resp.status is not None, "no response: %s" % resp.error)
    statuses = case.status if isinstance(case.status, tuple) else \
        (case.status,)
    check(resp.status in statuses, "status %d, expected %s; body %r"
          % (resp.status, "/".join(map(str, statuses)), resp.body[:160]))
    if case.ctype is not None:
        expect_value("Content-Type", resp.header("Content-Type"), case.ctype)
    for name, expected in case.hdrs.items():
        expect_value("header %s" % name, resp.header(name), expected)
    if case.body_empty:
        check(resp.body == b"", "body should be empty, got %d bytes: %r"
              % (len(resp.body), resp.body[:80]))
    for text in case.body_has:
        check(text.encode() in resp.body, "body lacks %r: %r"
              % (text, resp.body[:120]))
    for text in case.body_lacks:
        check(text.encode() not in resp.body, "body contains %r" % text)
    if case.body_equals is not None:
        want = case.body_equals
        if isinstance(want, str):
            want = want.encode()
        check(resp.body == want, "body (%d bytes) %r, expected (%d bytes) %r"
              % (len(resp.body), resp.body[:60], len(want), want[:60]))
    if case.error_shape:
        expect_error_shape(resp)
    if case.fields:
        try:
            body = resp.json()
        except ValueError:
            raise CheckFailed("body is not JSON: %r" % resp.body[:120])
        for path, expected in case.fields.items():
            expect_value(path, json_path(body, path), expected)
    return resp


def chunked(total, piece=4096):
    out = bytearray()
    left = total
    while left > 0:
        n = min(piece, left)
        out += b"%x\r\n" % n + b"b" * n + b"\r\n"
        left -= n
    return bytes(out + b"0\r\n\r\n")


HEALTH_CASES = [
    Req("health: GET /health", "GET", "/health", ctype=JSON,
        fields={"status": "ok", "version": NonEmptyStr(),
                "uptime_s": Type(int, float, min=0),
                "pools.http.configured": MAIN_THREADS,
                "pools.http.alive": Type(int, min=0)},
        hdrs={"Cache-Control": "no-store"}),
    Req("health: HEAD /health has no body", "HEAD", "/health", ctype=JSON,
        body_empty=True),
    Req("health: GET /health over HTTP/1.0", "GET", "/health",
        version="HTTP/1.0", ctype=JSON, fields={"status": "ok"}),
    Req("health: GET /health with a small body is still 200", "GET",
        "/health", body=b"x" * 100, ctype=JSON, fields={"status": "ok"}),
    Req("health: /health?x=1 is 400 naming 'x'", "GET", "/health?x=1",
        status=400, fields={"error.message": Contains("'x'")}),
    Req("health: /health?%zz=1 is 400", "GET", "/health?%zz=1", status=400),
]

ALLOW = {"Allow": "GET, HEAD"}

ERROR_CASES = [
    Req("error: 404 for /run/nope", "GET", "/run/nope", status=404),
    Req("error: 404 for /run/nope?x=1", "GET", "/run/nope?x=1", status=404),
    Req("error: 404 for a missing file", "GET", "/no-such-file.html",
        status=404, fields={"error.message": Contains("no-such-file")}),
    Req("error: 405 POST /health with Allow", "POST", "/health",
        headers=[("Content-Length", "0")], status=405, hdrs=ALLOW),
    Req("error: 405 PUT /health with Allow", "PUT", "/health",
        headers=[("Content-Length", "0")], status=405, hdrs=ALLOW),
    Req("error: 405 DELETE /health with Allow", "DELETE", "/health",
        status=405, hdrs=ALLOW),
    Req("error: 405 PATCH /health with Allow", "PATCH", "/health",
        headers=[("Content-Length", "2")], body=b"{}", status=405,
        hdrs=ALLOW),
    Req("error: 405 for an unknown method BREW", "BREW", "/health",
        status=405, hdrs=ALLOW),
    Req("error: HEAD of a missing file is 404 without a body", "HEAD",
        "/missing.html", status=404, ctype=JSON, body_empty=True,
        error_shape=False),
    Req("error: 413 for Content-Length 70000 (headers only)", "POST",
        "/health", headers=[("Content-Length", "70000")], status=413),
    Req("error: 413 for a 70000-byte body sent whole", "POST", "/health",
        body=b"z" * 70000, status=413),
    Req("error: 413 for a 70000-byte chunked body", "POST", "/health",
        headers=[("Transfer-Encoding", "chunked")], body=chunked(70000),
        status=413),
    Req("error: a 65536-byte chunked body is not 413 (405)", "POST",
        "/health", headers=[("Transfer-Encoding", "chunked")],
        body=chunked(65536), status=405, hdrs=ALLOW),
    Req("error: 65536-byte body is not 413 (405)", "POST", "/health",
        body=b"a" * 65536, status=405, hdrs=ALLOW),
    Req("error: 414 for a 4200-byte target", "GET", "/" + "a" * 4199,
        status=414),
    Req("error: 414 for a 4200-byte query", "GET",
        "/health?" + "a" * 4096, status=414),
    Req("error: a 4096-byte target is not 414 (404)", "GET",
        "/" + "a" * 4095, status=404),
    Req("error: 431 for a 9000-byte header", "GET", "/health",
        headers=[("X-Big", "b" * 9000)], status=431),
    Req("error: 431 for 20 headers of 500 bytes", "GET", "/health",
        headers=[("X-Pad-%02d" % i, "p" * 500) for i in range(20)],
        status=431),
    Req("error: a 7500-byte header is not 431", "GET", "/health",
        headers=[("X-Pad", "p" * 7500)], status=200, ctype=JSON),
    Req("error: 400 for /%zz", "GET", "/%zz", status=400),
    Req("error: raw non-ASCII and control bytes in the path: JSON 404",
        "GET", b"/\xc3\xa9\xff\x01", status=404),
    Req("error: /health?%ff=1 is 400 with a valid JSON message", "GET",
        "/health?%ff=1", status=400),
    Req("error: /health?=1 (empty parameter name) is 400", "GET",
        "/health?=1", status=400),
    Req("error: 400 for a truncated escape /%4", "GET", "/%4", status=400),
    Req("error: 400 for a lone % ", "GET", "/%", status=400),
    Req("error: 400 for %00 in the path", "GET", "/%00", status=400),
    Req("error: 400 for /health%00", "GET", "/health%00", status=400),
    Req("error: 400 for an absolute-form target", "GET",
        "http://127.0.0.1/health", status=400),
    Req("error: 400 for GET *", "GET", "*", status=400),
    Req("error: 400 for OPTIONS *", "OPTIONS", "*", status=400),
    Req("error: 400 for an authority-form target", "GET", "127.0.0.1:80",
        status=400),
]

# Files of the temporary web root; the body text doubles as a marker.
WEB_FILES = {
    "index.html": "<!doctype html><title>t</title><p>INDEX-PAGE</p>\n",
    "app.js": "console.log('APP-JS');\n",
    "style.css": "body { color: #123 } /* STYLE-CSS */\n",
    "data.json": '{"data": "DATA-JSON"}\n',
    "img.svg": ('<svg xmlns="http://www.w3.org/2000/svg">'
                '<!--IMG-SVG--></svg>\n'),
    "sub/index.html": "<p>SUB-INDEX</p>\n",
    "a b/index.html": "<p>SPACE-DIR</p>\n",
    "empty.txt": "",
    "big.bin": bytes((i * 7919 + i // 256) % 251 for i in range(1 << 20)),
    ".secret": SECRET_MARKER + "\n",
}

STATIC_CASES = [
    Req("static: / serves index.html", "GET", "/", ctype=HTML,
        body_equals=WEB_FILES["index.html"],
        hdrs={"ETag": Present(), "Last-Modified": Present()}),
    Req("static: /index.html", "GET", "/index.html", ctype=HTML,
        body_equals=WEB_FILES["index.html"],
        hdrs={"ETag": Regex(r'^"[^"]+"$'),
              "Last-Modified": Regex(r"^\w{3}, \d\d \w{3} \d{4} "
                                     r"\d\d:\d\d:\d\d GMT$")}),
    Req("static: .js is text/javascript", "GET", "/app.js",
        ctype="text/javascript; charset=utf-8",
        body_equals=WEB_FILES["app.js"]),
    Req("static: .css is text/css", "GET", "/style.css",
        ctype="text/css; charset=utf-8", body_equals=WEB_FILES["style.css"]),
    Req("static: .json is application/json", "GET", "/data.json",
        ctype=JSON, body_equals=WEB_FILES["data.json"]),
    Req("static: .svg is image/svg+xml", "GET", "/img.svg",
        ctype="image/svg+xml", body_equals=WEB_FILES["img.svg"]),
    Req("static: /sub/ serves sub/index.html", "GET", "/sub/", ctype=HTML,
        body_equals=WEB_FILES["sub/index.html"]),
    Req("static: /sub/index.html", "GET", "/sub/index.html", ctype=HTML,
        body_equals=WEB_FILES["sub/index.html"]),
    Req("static: /sub is 301 to /sub/", "GET", "/sub", status=301,
        hdrs={"Location": "/sub/"}),
    Req("static: /a%20b/ serves the directory 'a b'", "GET", "/a%20b/",
        ctype=HTML, body_equals=WEB_FILES["a b/index.html"]),
    Req("static: 301 Location is percent-encoded (/a%20b -> /a%20b/)",
        "GET", "/a%20b", status=301, hdrs={"Location": "/a%20b/"}),
    Req("static: an empty .txt file", "GET", "/empty.txt",
        ctype="text/plain; charset=utf-8", body_equals="",
        hdrs={"Content-Length": "0"}),
    Req("static: 1 MiB file, unknown extension is octet-stream", "GET",
        "/big.bin", ctype="application/octet-stream",
        body_equals=WEB_FILES["big.bin"],
        hdrs={"Content-Length": str(1 << 20)}),
    Req("static: query string is ignored", "GET", "/app.js?v=2",
        ctype="text/javascript; charset=utf-8",
        body_equals=WEB_FILES["app.js"]),
    Req("static: HEAD /app.js has no body", "HEAD", "/app.js",
        ctype="text/javascript; charset=utf-8", body_empty=True,
        hdrs={"ETag": Present()}),
    Req("static: missing file is 404 JSON", "GET", "/missing.css",
        status=404),
    Req("static: missing directory is 404 JSON", "GET", "/nodir/x.js",
        status=404),
    # Conditional requests; {etag} and {last_modified} come from the
    # first case of CONDITIONAL_CASES' setup.
    Req("static: If-None-Match with the ETag is 304, no body", "GET",
        "/index.html", headers=[("If-None-Match", "{etag}")], status=304,
        body_empty=True, hdrs={"ETag": Present()}),
    Req("static: If-None-Match * is 304", "GET", "/index.html",
        headers=[("If-None-Match", "*")], status=304, body_empty=True),
    Req("static: If-None-Match with another ETag is 200", "GET",
        "/index.html", headers=[("If-None-Match", '"not-it"')], ctype=HTML,
        body_equals=WEB_FILES["index.html"]),
    Req("static: If-Modified-Since = Last-Modified is 304, no body", "GET",
        "/index.html", headers=[("If-Modified-Since", "{last_modified}")],
        status=304, body_empty=True),
    Req("static: If-Modified-Since in 1970 is 200", "GET", "/index.html",
        headers=[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")],
        ctype=HTML, body_equals=WEB_FILES["index.html"]),
    Req("static: HEAD with If-None-Match is 304", "HEAD", "/index.html",
        headers=[("If-None-Match", "{etag}")], status=304, body_empty=True),
]

# Sent raw: no client may normalize the dots. 400 or 404, never a file
# from outside the root, a dot file or /etc/passwd.
TRAVERSAL_TARGETS = [
    "/../x", "/..", "/%2e%2e", "/%2e%2e/x", "/%2E%2E/%2e%2e/etc/passwd",
    "/sub/..%2f..%2fetc%2fpasswd", "/%2f..%2f..%2fetc/passwd",
    "/sub/%2e%2e/%2e%2e/etc/passwd", "/sub/../../etc/passwd",
    "/a%00.html", "/.secret", "/sub/../.secret", "/%2esecret",
    "/outside-link", "/outside-dir/outside.txt", "/..%5c..%5cetc",
    "/..\\..\\etc\\passwd", "//etc/passwd", "/%2f%2fetc%2fpasswd",
    "/%252e%252e/etc/passwd", "/./index.html/../../etc/passwd",
]

TRAVERSAL_CASES = [
    Req("traversal: %s" % t, "GET", t, status=(400, 404),
        body_lacks=(OUTSIDE_MARKER, SECRET_MARKER, "root:x:0:0"))
    for t in TRAVERSAL_TARGETS
]


# --------------------------------------------------------------------------
# Sequences


def make_web_root(base):
    """The web root under base, plus an outside file the root links to."""
    root = os.path.join(base, "web")
    outside = os.path.join(base, "outside")
    os.makedirs(os.path.join(root, "sub"))
    os.makedirs(os.path.join(root, "a b"))
    os.makedirs(outside)
    for rel, content in WEB_FILES.items():
        if isinstance(content, str):
            content = content.encode()
        with open(os.path.join(root, rel), "wb") as f:
            f.write(content)
    secret_out = os.path.join(outside, "outside.txt")
    with open(secret_out, "w") as f:
        f.write(OUTSIDE_MARKER + "\n")
    os.symlink(secret_out, os.path.join(root, "outside-link"))
    os.symlink(outside, os.path.join(root, "outside-dir"))
    return root


def case_conditional_setup(srv, ctx):
    resp = raw_exchange(srv.port, build_request("GET", "/index.html"))
    check(resp.status == 200, "GET /index.html: %s %s" % (resp.status,
                                                          resp.error))
    ctx["etag"] = resp.header("ETag")
    ctx["last_modified"] = resp.header("Last-Modified")
    check(ctx["etag"], "no ETag")
    check(ctx["last_modified"], "no Last-Modified")


def case_health_version(srv, ctx):
    check(ctx.get("version"), "--version gave no version")
    body = harness.health(srv.port)
    expect_value("version", body.get("version"), ctx["version"])


def case_keep_alive(srv, ctx):
    conn = http.client.HTTPConnection(harness.LOOPBACK, srv.port,
                                      timeout=harness.SOCKET_TIMEOUT_S)
    try:
        conn.connect()
        sock = conn.sock
        targets = ["/health"] * 4 + ["/index.html", "/app.js", "/health"]
        for i, target in enumerate(targets):
            conn.request("GET", target)
            resp = conn.getresponse()
            resp.read()
            check(resp.status == 200, "request %d (%s): status %d"
                  % (i + 1, target, resp.status))
            connection = resp.getheader("Connection")
            check(connection is None or connection.lower() != "close",
                  "request %d (%s) answered 'Connection: %s'"
                  % (i + 1, target, connection))
            check(not resp.will_close and conn.sock is sock,
                  "connection not kept after request %d" % (i + 1))
        return "%d requests on one connection" % len(targets)
    finally:
        conn.close()


def case_access_log(srv, ctx):
    harness.http_get(srv.port, "/health")
    for pattern in (r"GET /health 200 \d+B \d+us",
                    r"HEAD /health 200 \d+B \d+us",
                    r"GET /no-such-file\.html 404 \d+B \d+us",
                    r"POST /health 405 \d+B \d+us"):
        check(srv.wait_log(pattern, timeout=5.0),
              "no log line matching /%s/; tail: %s"
              % (pattern, srv.log_tail(3)))


def case_many_connections(srv, ctx, count=300):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (min(hard, count + 256), hard))
    socks = []
    try:
        for i in range(count):
            s = socket.create_connection((harness.LOOPBACK, srv.port),
                                         timeout=harness.SOCKET_TIMEOUT_S)
            socks.append(s)
        # The server must still answer while they are open, and count them.
        deadline = time.monotonic() + 10.0 * harness.TIME_SCALE
        while True:
            body = harness.health(srv.port)
            seen = json_path(body, "pools.http.connections")
            if isinstance(seen, int) and seen >= count:
                break
            check(time.monotonic() < deadline,
                  "/health counts %s connections with %d idle ones open"
                  % (seen, count))
            time.sleep(0.05)
        # One idle connection still works as a connection.
        socks[0].sendall(build_request("GET", "/health"))
        socks[0].settimeout(harness.SOCKET_TIMEOUT_S)
        first = socks[0].recv(64)
        check(first.startswith(b"HTTP/1.1 200"),
              "request on an idle connection got %r" % first[:40])
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 10.0 * harness.TIME_SCALE
    while True:
        body = harness.health(srv.port)
        seen = json_path(body, "pools.http.connections")
        if isinstance(seen, int) and seen < 10:
            break
        check(time.monotonic() < deadline,
              "%s connections still counted after closing them" % (seen,))
        time.sleep(0.05)
    return "%d idle connections" % count


def case_drain_503(srv, ctx):
    """During the grace period (held open by a stalled upload), a request
    on an open keep-alive connection is answered 503 + Retry-After +
    Connection: close."""
    keep = harness.start_drain(srv, ctx)
    keep.sendall(build_request("GET", "/health",
                               [("Connection", "keep-alive")]))
    resp = harness.read_response(keep)
    check(resp.status == 503, "status %s (%s), expected 503; body %r"
          % (resp.status, resp.error, resp.body[:100]))
    expect_error_shape(resp)
    expect_value("header Retry-After", resp.header("Retry-After"),
                 Regex(r"^\d+$"))
    expect_value("header Connection", resp.header("Connection"),
                 Contains("close", ci=True))


def case_drain_refuses(srv, ctx):
    check("signalled_at" in ctx, "the server was not signalled")
    try:
        s = socket.create_connection((harness.LOOPBACK, srv.port),
                                     timeout=5.0)
    except ConnectionRefusedError:
        return
    try:
        s.sendall(build_request("GET", "/health"))
        resp = harness.read_response(s, timeout=5.0)
    except OSError:
        return  # accepted by the kernel backlog, then dropped
    finally:
        s.close()
    check(resp.status in (None, 503), "a new connection was served %s "
          "while draining" % resp.status)


def case_drain_exit(srv, ctx):
    check("signalled_at" in ctx, "the server was not signalled")
    try:
        limit = DRAIN_GRACE_MS / 1000.0 + 2.0 * harness.TIME_SCALE
        note = stop_and_check(srv, signal.SIGTERM, limit, ctx["children"],
                              ("grace period over", "stopped"),
                              signalled_at=ctx["signalled_at"])
        stall = ctx["sockets"][0]
        stall.settimeout(5.0)
        try:
            rest = stall.recv(4096)
        except OSError:
            rest = b""
        check(not rest.startswith(b"HTTP/1.1 200"),
              "the stalled upload was answered %r" % rest[:40])
        return note
    finally:
        for s in ctx.get("sockets", []):
            s.close()


def case_idle_timeout(srv, ctx):
    """--conn-timeout 1: a kept-alive connection left idle is closed."""
    s = socket.create_connection((harness.LOOPBACK, srv.port),
                                 timeout=harness.SOCKET_TIMEOUT_S)
    try:
        s.sendall(build_request("GET", "/health",
                                [("Connection", "keep-alive")]))
        resp = harness.read_response(s)
        check(resp.status == 200, "status %s %s" % (resp.status, resp.error))
        started = time.monotonic()
        limit = 5.0 * harness.TIME_SCALE
        s.settimeout(limit)
        try:
            data = s.recv(1)
        except socket.timeout:
            raise CheckFailed("still open %.0f s later" % limit)
        except ConnectionResetError:
            data = b""
        took = time.monotonic() - started
        check(data == b"", "unexpected data %r" % data)
        check(took >= 0.5, "closed after only %.2f s" % took)
        return "closed after %.1f s" % took
    finally:
        s.close()


def case_shutdown_under_load(srv, ctx, clients=8, before_s=1.0):
    """Keep-alive GET /health from several threads, SIGTERM mid-way."""
    signalled = threading.Event()
    stop = threading.Event()
    hard_deadline = time.monotonic() + 20.0 * harness.TIME_SCALE
    lock = threading.Lock()
    stats = {"200": 0, "503": 0, "other": [], "early_errors": [],
             "closed_after": 0, "ok_before": 0}

    def client():
        conn = None
        try:
            while not stop.is_set() and time.monotonic() < hard_deadline:
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(
                            harness.LOOPBACK, srv.port,
                            timeout=harness.SOCKET_TIMEOUT_S)
                    conn.request("GET", "/health")
                    resp = conn.getresponse()
                    resp.read()
                except (OSError, http.client.HTTPException) as e:
                    with lock:
                        if signalled.is_set():
                            stats["closed_after"] += 1
                        else:
                            stats["early_errors"].append(repr(e))
                    return
                with lock:
                    if resp.status in (200, 503):
                        stats[str(resp.status)] += 1
                        if not signalled.is_set():
                            stats["ok_before"] += 1
                    else:
                        stats["other"].append(resp.status)
        finally:
            if conn is not None:
                conn.close()

    threads = [threading.Thread(target=client, daemon=True)
               for _ in range(clients)]
    children = harness.children_of(srv.pid)
    for t in threads:
        t.start()
    try:
        time.sleep(before_s)
        signalled.set()
        limit = GRACE_MS / 1000.0 + 2.0 * harness.TIME_SCALE
        result = stop_and_check(srv, signal.SIGTERM, limit, children,
                                log_words=("received SIGTERM", "stopped"))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=harness.SOCKET_TIMEOUT_S + 5)
    check(not any(t.is_alive() for t in threads),
          "client threads still running")
    check(not stats["early_errors"], "errors before the signal: %s"
          % stats["early_errors"][:3])
    check(not stats["other"], "statuses other than 200/503: %s"
          % stats["other"][:10])
    check(stats["ok_before"] > 0, "no request succeeded before the signal")
    return "%s; %d x 200, %d x 503, %d connections closed/refused after " \
           "the signal" % (result, stats["200"], stats["503"],
                           stats["closed_after"])


def case_threads_configured(expected):
    def run(srv, ctx):
        body = harness.health(srv.port)
        expect_value("pools.http.configured",
                     json_path(body, "pools.http.configured"), expected)
    return run


# --------------------------------------------------------------------------
# Groups


def server_group(results, binary, title, args, env, cases, shared):
    """Starts one server, runs cases (name, fn(srv, ctx)) in order against
    it, and always stops and reaps it. ctx starts as a copy of shared. If
    the server cannot start, every case fails with the reason; if no case
    stopped it, a last case checks its exit on SIGTERM."""
    ctx = dict(shared)
    srv = Server(binary, args, env, name=title)
    try:
        try:
            srv.start()
        except CheckFailed as e:
            for name, _ in cases:
                results.fail(name, "server did not start: %s" % e)
            return
        for name, fn in cases:
            results.run(name, fn, srv, ctx)
        if srv.returncode is None:  # no case stopped it: check the exit
            results.run("%s: exits 0 on SIGTERM, no sanitizer report" % title,
                        lambda s, c: stop_and_check(
                            s, signal.SIGTERM, 1.0 * harness.TIME_SCALE),
                        srv, ctx)
    finally:
        srv.close()


def req_cases(table):
    """(name, fn) pairs running the Req cases of a table."""
    def runner(case):
        def run(srv, ctx):
            run_req(srv.port, case, ctx)
        return run
    return [(c.name, runner(c)) for c in table]


def case_stop(sig, limit_s, log_words):
    def run(srv, ctx):
        return stop_and_check(srv, sig, limit_s, harness.children_of(srv.pid),
                              log_words)
    return run


def server_groups(web_root, binary):
    """(title, extra args, environment, cases) for each server started."""
    common = ["--web-root", web_root, "--grace-ms", str(GRACE_MS)]
    scale = harness.TIME_SCALE
    main_cases = (
        req_cases(HEALTH_CASES)
        + [("health: version equals --version", case_health_version)]
        + req_cases(ERROR_CASES)
        + [("static: GET /index.html gives ETag, Last-Modified",
            case_conditional_setup)]
        + req_cases(STATIC_CASES)
        + req_cases(TRAVERSAL_CASES)
        + [("keep-alive: requests share one connection", case_keep_alive),
           ("access log: method, path, status, bytes, us", case_access_log),
           ("connections: 300 idle ones, /health still answers",
            case_many_connections),
           ("main: SIGTERM exits 0, clean log",
            case_stop(signal.SIGTERM, GRACE_MS / 1000.0 + 2.0 * scale,
                      ("stopped",)))])
    return [
        ("main", common + ["--threads", str(MAIN_THREADS)], None,
         main_cases),
        ("env", common, {"CONLAB_THREADS": "3"},
         [("config: CONLAB_THREADS=3 shows in /health",
           case_threads_configured(3))]),
        ("env+flag", common + ["--threads", "4"], {"CONLAB_THREADS": "3"},
         [("config: --threads 4 wins over CONLAB_THREADS=3",
           case_threads_configured(4))]),
        ("idle-timeout", common + ["--conn-timeout", "1"], None,
         [("connections: idle one closed after --conn-timeout 1",
           case_idle_timeout)]),
        ("idle-term", common, None,
         [("shutdown: idle SIGTERM exits 0 within 1 s, logs 'stopped'",
           case_stop(signal.SIGTERM, 1.0 * scale,
                     ("received SIGTERM", "stopped")))]),
        ("idle-int", common, None,
         [("shutdown: idle SIGINT exits 0 within 1 s, logs 'stopped'",
           case_stop(signal.SIGINT, 1.0 * scale,
                     ("received SIGINT", "stopped")))]),
        ("drain", ["--web-root", web_root, "--grace-ms", str(DRAIN_GRACE_MS),
                   "--threads", "2"], None,
         [("drain: keep-alive request after SIGTERM is 503, Retry-After, "
           "close", case_drain_503),
          ("drain: a new connection is answered 503 or refused",
           case_drain_refuses),
          ("drain: stalled upload cut after the grace period, exit 0",
           case_drain_exit)]),
        ("load", common + ["--threads", "2"], None,
         [("shutdown: SIGTERM under keep-alive load",
           case_shutdown_under_load)]),
    ] + (cpu.server_groups(web_root) + bodies.server_groups(web_root) +
         loop.server_groups(web_root) +
         compare.server_groups(web_root) + openapi.server_groups(web_root) +
         overhead.server_groups(web_root) +
         state.server_groups(web_root) + work.server_groups(web_root) +
         nginx.server_groups(web_root) + ops.server_groups(web_root) +
         faults.server_groups(web_root) + chaos.server_groups(web_root) +
         limits.server_groups(web_root, binary) +
         live.server_groups(web_root) +
         shutdown.server_groups(web_root, binary) +
         spawn.server_groups(web_root))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", required=True, help="path to conlab")
    parser.add_argument("--time-scale", type=float, default=None,
                        help="multiply time limits under test (default: 1, "
                             "or 3 for a sanitizer build)")
    parser.add_argument("--group", action="append", default=[],
                        metavar="TITLE",
                        help="run only this server group (repeatable; the "
                             "command-line cases are then skipped)")
    parser.add_argument("--chaos", action="store_true",
                        help="run only the chaos groups (the random seed "
                             "and chaos.REGRESSION_SEEDS)")
    parser.add_argument("--chaos-seed", type=int, default=None,
                        metavar="N", help="seed of the chaos group (default: "
                        "a fresh one, printed)")
    parser.add_argument("--chaos-seconds", type=float, default=None,
                        metavar="S", help="load seconds of the chaos group "
                        "(default %d)" % chaos.DEFAULT_SECONDS)
    parser.add_argument("--limits", action="store_true",
                        help="run only the limits-* groups (memory ceiling, "
                             "fairness, memory per task)")
    parser.add_argument("--shutdown", action="store_true",
                        help="run only the shutdown group (SIGTERM at "
                             "random moments)")
    parser.add_argument("--mixes", default=str(limits.SHORT_MIXES),
                        metavar="N|all",
                        help="memory-ceiling mixes to run (default %d; "
                             "'all': %d)" % (limits.SHORT_MIXES,
                                             len(limits.MIXES)))
    parser.add_argument("--shutdown-tries", type=int,
                        default=shutdown.TRIES, metavar="N",
                        help="SIGTERM tries of the shutdown group in all "
                             "(default %d)" % shutdown.TRIES)
    parser.add_argument("--figures", metavar="FILE",
                        help="write the figures the cases measured (JSON) "
                             "to FILE")
    opts = parser.parse_args()
    chaos.configure(opts.chaos_seed, opts.chaos_seconds, opts.binary)
    if opts.limits:
        opts.group += [g for g in limits.GROUPS if g not in opts.group]
    if opts.shutdown:
        opts.group += [g for g in shutdown.GROUPS if g not in opts.group]
    limits.MIXES_TO_RUN = len(limits.MIXES) if opts.mixes == "all" else \
        int(opts.mixes)
    shutdown.TRIES = opts.shutdown_tries
    binary = os.path.abspath(opts.binary)
    if not os.access(binary, os.X_OK):
        print("no executable at %s (run make first)" % binary)
        print("0 passed, 1 failed")
        return 1

    sanitizer = detect_sanitizer(binary)
    harness.SANITIZER = sanitizer
    harness.TIME_SCALE = opts.time_scale or (3.0 if sanitizer else 1.0)
    print("# binary %s%s, time scale %g" % (
        binary, " (%s)" % sanitizer if sanitizer else "", harness.TIME_SCALE),
        flush=True)

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    results = Results()
    started = time.monotonic()
    durations = []  # (seconds, title) of each server group run
    ctx = {}  # shared by the groups: the --version output
    try:
        for case in CONFIG_CASES if not (opts.group or opts.chaos) else []:
            results.run(case.name, run_cmd_case, binary, case, ctx)
        with tempfile.TemporaryDirectory(prefix="conlab-web-") as base:
            web_root = make_web_root(base)
            groups = server_groups(web_root, binary)
            unknown = set(opts.group) - {g[0] for g in groups}
            if unknown:
                results.fail("runner", "no server group %s" % sorted(unknown))
            for title, args, env, cases in groups:
                if opts.group and title not in opts.group:
                    continue
                if opts.chaos and not opts.group and \
                        not title.startswith("chaos"):
                    continue
                group_started = time.monotonic()
                server_group(results, binary, title, args, env, cases, ctx)
                durations.append((time.monotonic() - group_started, title))
    except KeyboardInterrupt as e:
        results.fail("runner", "interrupted (%s)" % (str(e) or "SIGINT"))
    finally:
        harness.cleanup_all()

    durations.sort(reverse=True)
    if durations:
        print("# slowest groups: " + ", ".join(
            "%s %.1f s" % (title, secs) for secs, title in durations[:12]))
    print("# ran in %.1f s" % (time.monotonic() - started))
    if opts.figures:
        harness.FIGURES["ran_s"] = round(time.monotonic() - started, 1)
        harness.FIGURES["passed"] = results.passed
        harness.FIGURES["failed"] = results.failed
        with open(opts.figures, "w") as f:
            json.dump(harness.FIGURES, f, indent=1, sort_keys=True)
    summary = "%d passed, %d failed" % (results.passed, results.failed)
    if results.skipped:
        summary += ", %d skipped" % results.skipped
    print(summary, flush=True)
    return 1 if results.failed else 0


def detect_sanitizer(binary):
    """'asan'/'tsan'/'ubsan' when the binary links a sanitizer runtime."""
    try:
        with open(binary, "rb") as f:
            data = f.read(64 * 1024 * 1024)
    except OSError:
        return None
    if b"__tsan_init" in data:
        return "tsan"
    if b"__asan_init" in data:
        return "asan"
    if b"__ubsan_handle" in data:
        return "ubsan"
    return None


if __name__ == "__main__":
    sys.exit(main())

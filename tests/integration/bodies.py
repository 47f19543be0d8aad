"""Integration tests of JSON request bodies: POST /run/square, /run/fetch
and /run/compare.

Used by run.py (server_groups() below adds the "bodies" group). One server
with a small --body-max (BODY_MAX) for the limit cases, and one with the
default (16 MiB) for 1,000,000 numbers in every mode. The client builds
each large body once, as bytes, and reads only the squares' text of the
answer (no parsed tree of a million integers). Every socket is closed in
a finally block; servers are stopped and reaped by run.py's harness.
"""

import http.client
import json
import random
import socket
import time

import harness
from harness import CheckFailed, check, json_path

BODY_MAX = 4096
JSON_TYPE = "application/json"
BIG_COUNT = 1000000
NUMBER_MAX = 3037000499


def post(port, path, body, content_type=JSON_TYPE, timeout=None,
         headers=None):
    """POSTs body (bytes or an object) and returns (status, parsed body)."""
    if not isinstance(body, (bytes, bytearray)):
        body = json.dumps(body).encode()
    h = {"Content-Type": content_type} if content_type else {}
    h.update(headers or {})
    conn = http.client.HTTPConnection(
        harness.LOOPBACK, port, timeout=timeout or harness.SOCKET_TIMEOUT_S)
    try:
        conn.request("POST", path, body, h)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = data
    return resp.status, parsed


def expect_error(status, body, want, *fragments):
    check(status == want, "status %d, want %d: %.200s" % (status, want, body))
    msg = json_path(body, "error.message") or ""
    check(json_path(body, "error.status") == want, "error shape: %.200s"
          % body)
    for f in fragments:
        check(f in msg, "message %r lacks %r" % (msg, f))
    return msg


# (name, path, body, content type, status, fragments of the message)
ERROR_CASES = [
    ("square: malformed JSON names the byte", "/run/square",
     b'{"numbers": [1, 2,', JSON_TYPE, 400,
     ("malformed JSON at byte 18", "line 1, column 19")),
    ("square: a top level that is not an object", "/run/square", b"[1, 2]",
     JSON_TYPE, 400, ("malformed JSON at byte 0", "JSON object")),
    ("square: unknown member", "/run/square", {"numbers": [1], "nums": 2},
     JSON_TYPE, 400, ("unknown parameter 'nums'",
                      "mode, format, stream, cores, numbers, tasks")),
    ("square: numbers as a string", "/run/square", {"numbers": "1,2"},
     JSON_TYPE, 400, ("parameter 'numbers'", "an array of integers",
                      "string")),
    ("square: a real among the numbers", "/run/square",
     {"numbers": [1, 2.5]}, JSON_TYPE, 400,
     ("parameter 'numbers': item 2 is a number", "an integer")),
    ("square: tasks as a string", "/run/square",
     {"numbers": [1, 2], "tasks": "2"}, JSON_TYPE, 400,
     ("parameter 'tasks': expected an integer, got a string",)),
    ("square: a number out of range", "/run/square",
     {"numbers": [1, NUMBER_MAX + 1]}, JSON_TYPE, 400,
     ("parameter 'numbers': item 2", "[-3037000499, 3037000499]")),
    ("square: tasks over the count", "/run/square",
     {"numbers": [1, 2], "tasks": 3}, JSON_TYPE, 400,
     ("parameter 'tasks'", "[1, 2]")),
    ("square: an unknown mode", "/run/square",
     {"numbers": [1], "mode": "gil"}, JSON_TYPE, 400,
     ("parameter 'mode'", "sequential, threads, processes")),
    ("square: a repeated member", "/run/square",
     b'{"numbers": [1], "numbers": [2]}', JSON_TYPE, 400,
     ("given more than once",)),
    ("square: text/plain is 415", "/run/square", {"numbers": [1]},
     "text/plain", 415, ("application/json",)),
    ("square: no Content-Type is 415", "/run/square", {"numbers": [1]},
     None, 415, ("application/json",)),
    ("square: a query string on a POST is 400", "/run/square?tasks=1",
     {"numbers": [1]}, JSON_TYPE, 400, ("not in the query string",)),
    ("fetch: a target not allowed is 403", "/run/fetch",
     {"url": ["http://192.0.2.1/"]}, JSON_TYPE, 403,
     ("parameter 'url'", "not an allowed fetch target")),
    ("fetch: url as a string", "/run/fetch", {"url": "http://x/"},
     JSON_TYPE, 400, ("parameter 'url'", "an array of strings")),
    ("fetch: more than 100 URLs", "/run/fetch",
     {"url": ["http://127.0.0.1:1/"] * 101}, JSON_TYPE, 400,
     ("parameter 'url': at most 100 values",)),
    ("prime takes no POST (405)", "/run/prime", {"limit": 10}, JSON_TYPE,
     405, ("GET, HEAD",)),
]


def error_case(path, body, ctype, status, fragments):
    def run(srv, ctx):
        st, got = post(srv.port, path, body, ctype)
        return expect_error(st, got, status, *fragments)
    return run


def case_square_small(srv, ctx):
    out = []
    for mode in ("sequential", "threads", "processes", "spawn"):
        st, body = post(srv.port, "/run/square",
                        {"numbers": [3, -4, 5], "tasks": 2, "mode": mode})
        check(st == 200, "%s: %d %.200s" % (mode, st, body))
        check(body["mode"] == mode and body["result"]["squares"] == [9, 16,
                                                                     25],
              "%s: %.200s" % (mode, body))
        check(body["params"] == {"numbers": [3, -4, 5], "tasks": 2},
              "params %s" % body["params"])
        out.append(mode)
    st, body = post(srv.port, "/run/square", {"numbers": [7]})
    check(st == 200 and body["params"] == {"numbers": [7], "tasks": 1},
          "defaults: %d %.200s" % (st, body))
    return ", ".join(out)


def case_fetch(srv, ctx):
    url = "http://%s:%d/delay?ms=1" % (harness.LOOPBACK, srv.port)
    st, body = post(srv.port, "/run/fetch", {"url": [url, url],
                                            "mode": "async"})
    check(st == 200, "%d %.300s" % (st, body))
    check(body["result"]["ok"] == 2 and body["params"]["url"] == [url, url],
          "%.300s" % body)
    return "2 URLs fetched"


def case_compare(srv, ctx):
    st, body = post(srv.port, "/run/compare",
                    {"demo": "square", "numbers": [1, 2, 3], "tasks": 2})
    check(st == 200, "%d %.300s" % (st, body))
    check(body["results_agree"] is True and len(body["runs"]) == 4,
          "%.300s" % body)
    check(body["params"] == {"numbers": [1, 2, 3], "tasks": 2},
          "params %s" % body["params"])
    st, body = post(srv.port, "/run/compare", {"numbers": [1]})
    expect_error(st, body, 400, "parameter 'demo' is required")
    # The run-wide cores, as a JSON integer, echoed by every run.
    st, body = post(srv.port, "/run/compare",
                    {"demo": "square", "numbers": [1, 2], "cores": 1})
    check(st == 200 and body["cores"] == 1 and
          all(r["cores"] == 1 for r in body["runs"]), "%d %.300s" % (st, body))
    st, body = post(srv.port, "/run/square", {"numbers": [1], "cores": "1"})
    expect_error(st, body, 400, "parameter 'cores': expected an integer, "
                 "got a string")
    return "4 modes agree"


def case_limit(srv, ctx):
    """Exactly --body-max is read; one byte more is 413 from the head."""
    def body_of(size):
        head = b'{"numbers": [1], "tasks": 1'
        pad = size - len(head) - 1
        return head + b" " * pad + b"}"
    st, body = post(srv.port, "/run/square", body_of(BODY_MAX))
    check(st == 200, "exactly %d bytes: %d %.200s" % (BODY_MAX, st, body))
    st, body = post(srv.port, "/run/square", body_of(BODY_MAX + 1))
    expect_error(st, body, 413, "%d bytes, at most %d" % (BODY_MAX + 1,
                                                          BODY_MAX),
                 "--body-max")
    # Answered from Content-Length alone: no body byte is sent.
    sock = socket.create_connection((harness.LOOPBACK, srv.port),
                                    timeout=harness.SOCKET_TIMEOUT_S)
    try:
        sock.sendall(b"POST /run/square HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: 1000000000\r\n\r\n")
        data = sock.recv(4096)
    finally:
        sock.close()
    check(b" 413 " in data.split(b"\r\n")[0], "head only: %r" % data[:80])
    return "%d read, %d refused" % (BODY_MAX, BODY_MAX + 1)


def in_flight(port):
    return json_path(harness.health(port), "pools.http.in_flight")


def case_half_body(srv, ctx):
    """A client that sends half its body and closes: nothing answered,
    nothing left in flight, the bytes budget back to zero."""
    body = json.dumps({"numbers": list(range(400))}).encode()
    check(len(body) <= BODY_MAX, "body too large for the case")
    sock = socket.create_connection((harness.LOOPBACK, srv.port),
                                    timeout=harness.SOCKET_TIMEOUT_S)
    try:
        sock.sendall(b"POST /run/square HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        sock.sendall(body[:len(body) // 2])
        time.sleep(0.2)
    finally:
        sock.close()
    deadline = time.monotonic() + 5.0 * harness.TIME_SCALE
    while True:
        n = in_flight(srv.port)
        # This /health request itself is in flight.
        if n == 1:
            break
        if time.monotonic() > deadline:
            raise CheckFailed("in flight stays %s" % n)
        time.sleep(0.05)
    metrics = harness.http_get(srv.port, "/metrics")[2]
    text = metrics.decode() if isinstance(metrics, bytes) else metrics
    check('budget="bytes"} 0' in text, "bytes budget not back to 0")
    check('status="499"' in text, "no 499 counted")
    st, got = post(srv.port, "/run/square", {"numbers": [2]})
    check(st == 200, "afterwards: %d" % st)
    return "settled, 499 counted, budget 0"


def big_body(mode):
    rnd = random.Random(13)
    nums = [rnd.randint(-NUMBER_MAX, NUMBER_MAX) for _ in range(BIG_COUNT)]
    text = '{"numbers":[%s],"tasks":4,"mode":"%s"}' % (
        ",".join(map(str, nums)), mode)
    return nums, text.encode()


def case_million(srv, ctx):
    out = []
    nums, _ = big_body("sequential")
    for mode in ("sequential", "threads", "processes", "spawn"):
        _, body = big_body(mode)
        conn = http.client.HTTPConnection(
            harness.LOOPBACK, srv.port, timeout=60 * harness.TIME_SCALE)
        try:
            started = time.monotonic()
            conn.request("POST", "/run/square", body,
                         {"Content-Type": JSON_TYPE})
            resp = conn.getresponse()
            data = resp.read()
            took = time.monotonic() - started
        finally:
            conn.close()
        check(resp.status == 200, "%s: %d %.200s" % (mode, resp.status,
                                                     data[:200]))
        at = data.index(b'"squares":[') + len(b'"squares":[')
        squares = data[at:data.index(b"]", at)].split(b",")
        check(len(squares) == BIG_COUNT, "%s: %d squares" % (mode,
                                                            len(squares)))
        for k in (0, 1, BIG_COUNT // 2, BIG_COUNT - 1):
            check(int(squares[k]) == nums[k] * nums[k],
                  "%s: square %d is %s" % (mode, k, squares[k]))
        out.append("%s %.1f s" % (mode, took))
        del data, squares
    return "; ".join(out) + "; body %.1f MB" % (len(body) / 1e6)


def server_groups(web_root):
    base = ["--web-root", web_root, "--threads", "2", "--workers", "2"]
    return [
        ("bodies", base + ["--body-max", str(BODY_MAX)], None,
         [(name, error_case(path, body, ctype, status, frags))
          for name, path, body, ctype, status, frags in ERROR_CASES]
         + [("square: a body in every mode", case_square_small),
            ("fetch: a body with URLs", case_fetch),
            ("compare: a body", case_compare),
            ("limit: exactly --body-max and one over", case_limit),
            ("a body that stops half-way: 499, nothing left",
             case_half_body)]),
        ("bodies-million", base, None,
         [("square: 1,000,000 numbers in every mode", case_million),
          ("compare: square keeps the query's 10,000",
           error_case("/run/compare",
                      {"demo": "square", "numbers": list(range(10001))},
                      JSON_TYPE, 400,
                      ("parameter 'numbers': at most 10000 items, "
                       "got 10001",)))]),
    ]

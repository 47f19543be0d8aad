#!/usr/bin/env python3
"""Integration tests of the OpenAPI document (api/openapi.json) against the
live service: the document and the binary must agree.

    python3 tests/integration/run.py --binary build/conlab --group openapi

(run.py adds the "openapi" group of server_groups() below.)

The first case fetches GET /openapi.json from a server started with the
default web root (the repository's web/, which holds no openapi.json, so
the answer can only come from the binary) and requires it to equal
api/openapi.json. If the binary does not serve it (a 404), that case fails
and, so that the rest can still be developed, the document is fetched from
a second server whose --web-root is a temporary copy holding
api/openapi.json (the static handler serves it).

Every other case is generated from the document, not listed by hand:
each documented path answers its documented status, content type and
schema (a small validator of the JSON Schema subset the document uses is
below; the document may use no keyword it lacks); HEAD works where
documented and every other method is a 405 whose Allow lists the
documented methods; integer parameters accept their minimum and maximum
and refuse one past each with a 400 naming the parameter and the range
"[MIN, MAX]" the document gives; enumerations accept every documented
value and refuse others with a message listing exactly the documented
values; unknown, missing required and mutually exclusive parameters are
400s; defaults are echoed; the documented response headers are sent; the
error statuses the test can cause cheaply (400, 403, 405, 413, 414, 431,
304, and 503 while draining) answer the documented error shape.

Cost: no case runs expensive work. A maximum that would take long to run
(a parameter marked x-conlab-scales-time) is shown accepted without
running it: it is sent with an unknown parameter, and the 400 that names
only the unknown parameter proves the value passed its own check (unknown
parameters are checked last); every maximum is also shown refused one
past it, with the documented range in the message. Real runs set every
time-scaling parameter to its minimum.

Every server is started with --port 0 --bind 127.0.0.1, stopped by PID
and reaped (harness.py). Only the Python standard library is used.
"""

import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (  # noqa: E402
    CheckFailed, Server, build_request, check, raw_exchange, stop_and_check)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DOC_PATH = os.path.join(REPO, "api", "openapi.json")
DEFAULT_WEB_ROOT = os.path.join(REPO, "web")
DOC_ROUTE = "/openapi.json"

GROUP = "openapi"
WORKERS = 2
GRACE_MS = 1000
PROBE = "zz_probe"        # an unknown parameter, refused after all others
# Sent with a value that must be refused: should the service accept the
# value after all, the probe is refused instead and nothing runs.
NO_RUN = ((PROBE, "1"),)
UNKNOWN = "zz_unknown"
BOGUS = "zz-bogus"        # a value no enumeration has
METHODS = ("get", "head", "post", "put", "delete", "patch", "options",
           "trace")
# Sizes past the service's request limits (README: 64 KiB body, 4 KiB
# target, 8 KiB of header fields).
BODY_OVER = 64 * 1024 + 1
TARGET_OVER = 4 * 1024 + 1
BODY_MAX = 16 * 1024 * 1024  # --body-max's default (README)
# Bytes of list a GET may carry here: the rest of the 4 KiB target is for
# the path and the other parameters. Longer lists take a request body.
GET_LIST_MAX = 3000
HEADER_OVER = 8 * 1024 + 1
REQUEST_TIMEOUT_S = 10.0
BUDGET_TIMEOUT_S = 5.0
# Where a x-conlab-default-from option (or x-conlab-max-from) shows in
# /health.
OPTION_IN_HEALTH = {"--workers": "pools.process.configured",
                    "online CPUs": "cores"}
# The JSON Schema keywords the validator below implements or may ignore.
SCHEMA_CHECKED = {"type", "nullable", "enum", "minimum", "maximum",
                  "minLength", "pattern", "minItems", "maxItems", "items",
                  "required", "properties", "additionalProperties", "allOf",
                  "$ref"}
SCHEMA_IGNORED = {"description", "format", "default", "example", "title"}


def scaled(seconds):
    return seconds * harness.TIME_SCALE


def _op_budget_s(op):
    """What an operation that documents x-conlab-budget-ms may take (a
    measurement such as /run/table runs for seconds by design), with a
    margin; 0 for the others."""
    if op is None:
        return 0.0
    get = op.spec.ops.get((op.path, "get")) or op  # HEAD runs it too
    budget = op.raw.get("x-conlab-budget-ms",
                        get.raw.get("x-conlab-budget-ms"))
    return 0.0 if budget is None else budget / 1000.0 + 5.0


def _short(value, limit=160):
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# --------------------------------------------------------------------------
# The document


class Raw:
    """A query value sent exactly as given (after percent-encoding)."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return repr(self.text)


class Op:
    """One operation of the document, references resolved."""

    def __init__(self, spec, path, method, raw):
        self.spec, self.path, self.method, self.raw = spec, path, method, raw
        self.params = [spec.resolve(p) for p in raw.get("parameters", [])]
        self.query = {p["name"]: p for p in self.params if p["in"] == "query"}
        self.headers = {p["name"]: p for p in self.params
                        if p["in"] == "header"}
        self.responses = {str(s): spec.resolve(r)
                          for s, r in raw.get("responses", {}).items()}

    @property
    def key(self):
        return "%s %s" % (self.method.upper(), self.path)

    def ext(self, name, default=None):
        return self.raw.get("x-conlab-" + name, default)

    def media(self, status, ctype=None):
        """(media type, schema) documented for status, or (None, None):
        the one ctype (a Content-Type answered) matches if any, else the
        first (a run path documents its JSON body, its event stream and
        its text form)."""
        content = self.responses.get(str(status), {}).get("content") or {}
        for media, body in content.items():
            if ctype and media_matches(media, ctype):
                return media, body.get("schema")
        for media, body in content.items():
            return media, body.get("schema")
        return None, None

    def runs_var(self):
        """The parameter that picks the endpoint x-conlab-runs names."""
        runs = self.ext("runs")
        if not runs:
            return None
        match = re.search(r"\{(\w+)\}", runs)
        return match.group(1) if match else None

    def runs_op(self, value):
        return self.spec.op(self.ext("runs").replace(
            "{%s}" % self.runs_var(), value), "get")


class Spec:
    def __init__(self, doc):
        self.doc = doc
        self.ops = {}
        for path, item in doc.get("paths", {}).items():
            for method in METHODS:
                if method in item:
                    self.ops[(path, method)] = Op(self, path, method,
                                                  item[method])

    def pointer(self, ref):
        check(isinstance(ref, str) and ref.startswith("#/"),
              "only local references are used: %r" % ref)
        node = self.doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            check(isinstance(node, dict) and part in node,
                  "unresolved reference %s" % ref)
            node = node[part]
        return node

    def resolve(self, node):
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            node = self.pointer(node["$ref"])
            seen += 1
            check(seen < 20, "reference loop")
        return node

    def op(self, path, method="get"):
        found = self.ops.get((path, method))
        check(found is not None, "the document has no %s %s"
              % (method.upper(), path))
        return found

    def paths(self):
        return list(self.doc.get("paths", {}))

    def methods(self, path):
        return [m for m in METHODS if (path, m) in self.ops]

    # Validation of a JSON value against a schema (the subset in
    # SCHEMA_CHECKED). Returns a list of "where: what" strings.

    def errors(self, schema, value, where="$"):
        out = []
        self._validate(schema, value, where, out)
        return out

    def _validate(self, schema, value, where, out):
        schema = self.resolve(schema)
        for sub in schema.get("allOf", []):
            self._validate(sub, value, where, out)
        if value is None:
            if not schema.get("nullable") and "type" in schema:
                out.append("%s: null, expected %s" % (where, schema["type"]))
            return
        kind = schema.get("type")
        if kind is not None and not _type_ok(kind, value):
            out.append("%s: %s, expected %s" % (where, _short(value, 60),
                                                 kind))
            return
        if "enum" in schema and value not in schema["enum"]:
            out.append("%s: %r not in %r" % (where, value, schema["enum"]))
        if _is_num(value):
            if "minimum" in schema and value < schema["minimum"]:
                out.append("%s: %r < minimum %r" % (where, value,
                                                     schema["minimum"]))
            if "maximum" in schema and value > schema["maximum"]:
                out.append("%s: %r > maximum %r" % (where, value,
                                                     schema["maximum"]))
        if isinstance(value, str):
            if len(value) < schema.get("minLength", 0):
                out.append("%s: shorter than %d" % (where,
                                                    schema["minLength"]))
            if "pattern" in schema and \
                    not re.search(schema["pattern"], value):
                out.append("%s: %r does not match %s" % (
                    where, value, schema["pattern"]))
        if isinstance(value, list):
            if len(value) < schema.get("minItems", 0):
                out.append("%s: %d items < minItems %d" % (
                    where, len(value), schema["minItems"]))
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                out.append("%s: %d items > maxItems %d" % (
                    where, len(value), schema["maxItems"]))
            if "items" in schema:
                for i, item in enumerate(value):
                    self._validate(schema["items"], item,
                                   "%s[%d]" % (where, i), out)
                    if len(out) > 20:
                        return
        if isinstance(value, dict):
            for name in schema.get("required", []):
                if name not in value:
                    out.append("%s: missing %r" % (where, name))
            props = schema.get("properties", {})
            for name, sub in props.items():
                if name in value:
                    self._validate(sub, value[name], "%s.%s" % (where, name),
                                   out)
            extra = schema.get("additionalProperties", True)
            for name in value:
                if name in props:
                    continue
                if extra is False:
                    out.append("%s: unexpected %r" % (where, name))
                elif isinstance(extra, dict):
                    self._validate(extra, value[name],
                                   "%s.%s" % (where, name), out)

    def schema_has(self, schema, prop):
        """Whether an object schema (allOf included) declares prop."""
        schema = self.resolve(schema)
        if prop in schema.get("properties", {}):
            return True
        return any(self.schema_has(s, prop) for s in schema.get("allOf", []))


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _type_ok(kind, v):
    return {
        "object": lambda: isinstance(v, dict),
        "array": lambda: isinstance(v, list),
        "string": lambda: isinstance(v, str),
        "boolean": lambda: isinstance(v, bool),
        "integer": lambda: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda: _is_num(v),
    }.get(kind, lambda: False)()


def load_repo_doc():
    with open(DOC_PATH, "rb") as f:
        raw = f.read()
    return raw, json.loads(raw.decode("utf-8"))


def media_matches(documented, header):
    """The header's media type is the documented one and carries every
    parameter the documented key names (a charset may be added)."""
    if not header:
        return False

    def split(text):
        parts = [p.strip() for p in text.split(";")]
        params = set()
        for p in parts[1:]:
            k, _, v = p.partition("=")
            params.add((k.strip().lower(), v.strip().strip('"').lower()))
        return parts[0].lower(), params
    d_type, d_params = split(documented)
    h_type, h_params = split(header)
    return d_type == h_type and d_params <= h_params


# --------------------------------------------------------------------------
# Requests and expectations


class Tester:
    """The checks of one case against one server and the document in
    ctx["spec"]; every response is recorded in ctx["seen"]."""

    def __init__(self, srv, ctx):
        self.srv, self.ctx = srv, ctx
        self.spec = ctx["spec"]
        self.origin = "http://%s:%d" % (harness.LOOPBACK, srv.port)
        servers = self.spec.doc.get("servers") or [{}]
        self.doc_origin = servers[0].get("url", "").rstrip("/")

    # -- values

    def live(self, value):
        """An example value with the documented server replaced by the
        server under test."""
        if isinstance(value, str) and self.doc_origin:
            return value.replace(self.doc_origin, self.origin)
        if isinstance(value, list):
            return [self.live(v) for v in value]
        return value

    def cheap(self, param):
        """The value a real run uses for param: the minimum of a
        time-scaling one, else its example; None when it has neither."""
        schema = param.get("schema", {})
        if param.get("x-conlab-scales-time") and "minimum" in schema:
            return schema["minimum"]
        if "example" in param:
            return self.live(param["example"])
        return None

    def effective(self, op, name, demo=None):
        """The parameter that governs name: for a x-conlab-demos parameter
        of a x-conlab-runs operation, the one of that demo's endpoint."""
        p = op.query[name]
        if p.get("x-conlab-demos") is not None and demo is not None:
            return op.runs_op(demo).query[name]
        return p

    def base(self, op, focus=None, demo=None):
        """The cheap request of op, as {name: value}: the runs selector,
        examples (minimum for time-scaling parameters), one group of each
        exclusive set (focus's if it is in one), focus itself left out."""
        vals = {}
        var = op.runs_var()
        if var:
            demo = demo or op.query[var]["schema"]["enum"][0]
            vals[var] = demo
        groups = op.ext("exclusive") or []
        chosen = next((g for g in groups if focus in g),
                      groups[0] if groups else [])
        banned = {n for g in groups if g is not chosen for n in g}
        # A parameter bounded by focus's count is left to its default.
        banned |= {n for n, p in op.query.items()
                   if focus and p.get("x-conlab-max-count-of") == focus}
        for name, p in op.query.items():
            if name in vals or name == focus or name in banned:
                continue
            demos = p.get("x-conlab-demos")
            if demos is not None and demo not in demos:
                continue
            v = self.cheap(self.effective(op, name, demo))
            if v is None and p.get("required"):
                enum = p.get("schema", {}).get("enum")
                check(enum, "no value for required %r of %s"
                      % (name, op.key))
                v = enum[0]
            if v is not None:
                vals[name] = v
        return vals

    def query(self, op, vals, extra=()):
        pairs = []
        for name, value in vals.items():
            p = op.query.get(name, {"name": name})
            pairs += _serialize(p, value)
        pairs += list(extra)
        return "&".join(urllib.parse.quote(k, safe="") + "=" +
                        urllib.parse.quote(v, safe=",:/")
                        for k, v in pairs)

    # -- requests

    def send(self, method, target, headers=(), body=b"", op=None,
             timeout=REQUEST_TIMEOUT_S):
        timeout = max(timeout, _op_budget_s(op))
        resp = raw_exchange(self.srv.port,
                            build_request(method, target, list(headers),
                                          body),
                            head=(method == "HEAD"), timeout=scaled(timeout))
        check(resp.status is not None, "%s %s: no response (%s)" % (
            method, _short(target, 100), resp.error))
        if op is not None:
            self.ctx.setdefault("seen", []).append((op.path, op.method,
                                                    resp))
        return resp

    def call(self, op, vals=None, extra=(), method=None, headers=(),
             timeout=REQUEST_TIMEOUT_S):
        vals = self.base(op) if vals is None else vals
        q = self.query(op, vals, extra)
        target = op.path + ("?" + q if q else "")
        method = (method or op.method).upper()
        return self.send(method, target, headers, op=op, timeout=timeout)

    # -- expectations

    def documented(self, op, resp, what=""):
        """Status documented for op; content type and body as documented
        for it (HEAD: no body); documented required headers present, except
        the ones every response must carry (checked by their own case).
        Returns the parsed JSON body, if any."""
        status = str(resp.status)
        label = "%s%s: %s" % (op.key, (" " + what) if what else "", status)
        check(status in op.responses, "%s is not a documented status of %s "
              "(documented: %s); body %s" % (status, op.key,
                                             ", ".join(op.responses),
                                             _short(resp.body, 200)))
        for name, h in op.responses[status].get("headers", {}).items():
            h = self.spec.resolve(h)
            if h.get("required") and name not in self.ctx["universal"]:
                check(resp.header(name) is not None,
                      "%s: no %s header" % (label, name))
        if op.method == "head" or resp.status == 304:
            check(resp.body == b"", "%s: a body %r" % (
                label, _short(resp.body, 60)))
            return None
        ctype = resp.header("Content-Type")
        media, schema = op.media(status, ctype)
        if media is None:
            return None
        check(media_matches(media, ctype), "%s: content type %r, "
              "documented %r" % (label, ctype, media))
        if not media.startswith("application/json"):
            return resp.body
        try:
            body = json.loads(resp.body.decode("utf-8"))
        except ValueError:
            raise CheckFailed("%s: body is not JSON: %r" % (
                label, _short(resp.body, 100)))
        if schema is not None:
            errs = self.spec.errors(schema, body)
            check(not errs, "%s: body does not match the schema: %s" % (
                label, "; ".join(errs[:5])))
        if resp.status >= 400:
            got = body.get("error", {}).get("status") \
                if isinstance(body, dict) else None
            check(got == resp.status, "%s: error.status %r" % (label, got))
        return body

    def ok(self, op, vals, what=""):
        """A real run that must answer 200 as documented and echo the sent
        values where the body echoes parameters."""
        resp = self.call(op, vals)
        check(resp.status == 200, "%s?%s: %s %s" % (
            op.path, _short(self.query(op, vals), 120), resp.status,
            _short(resp.body, 200)))
        body = self.documented(op, resp, what)
        if isinstance(body, dict):
            for name, sent in vals.items():
                if isinstance(sent, Raw):
                    continue
                got = echo_of(body, name)
                if got is not _MISSING:
                    check(got == sent, "%s: %s echoed as %s, sent %s" % (
                        op.key, name, _short(got, 80), _short(sent, 80)))
        return body

    def refused(self, op, vals, status=400, words=(), what="", extra=()):
        """A refusal with status, documented, whose message has words.
        Returns the message."""
        resp = self.call(op, vals, extra)
        q = self.query(op, vals, extra)
        check(resp.status == status, "%s?%s: %s, expected %d; body %s" % (
            op.path, _short(q, 120), resp.status, status,
            _short(resp.body, 200)))
        body = self.documented(op, resp, what)
        message = body["error"]["message"]
        for word in words:
            check(word in message, "%s?%s: message %r lacks %r" % (
                op.path, _short(q, 120), message, word))
        return message

    def accepted(self, op, vals, name):
        """vals pass every parameter check: sent with an unknown parameter,
        the only refusal is that unknown parameter's (checked last)."""
        msg = self.refused(op, vals, 400, extra=[(PROBE, "1")])
        check("'%s'" % PROBE in msg and "unknown" in msg,
              "%s: %s=%s refused: %r" % (op.key, name,
                                         _short(vals.get(name), 60), msg))

    def health(self):
        status, _, body = harness.http_get(self.srv.port, "/health",
                                           timeout=scaled(5.0))
        check(status == 200, "GET /health answered %d" % status)
        return json.loads(body)


_MISSING = object()


def echo_of(body, name):
    """Where a run-shaped body echoes parameter name: params[name], or a
    top-level field of that name (mode, demo: strings; cores, run-wide:
    an integer)."""
    params = body.get("params")
    if isinstance(params, dict) and name in params:
        return params[name]
    if isinstance(body.get(name), (str, int)) and \
            not isinstance(body.get(name), bool):
        return body[name]
    return _MISSING


def _fmt(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _serialize(param, value):
    """(name, text) pairs of one query parameter, per its style (form) and
    explode (form's default: true)."""
    name = param["name"]
    if isinstance(value, Raw):
        return [(name, value.text)]
    if isinstance(value, list):
        if param.get("explode", True):
            return [(name, _fmt(v)) for v in value]
        return [(name, ",".join(_fmt(v) for v in value))]
    return [(name, _fmt(value))]


def _cycle(items, n):
    items = list(items) or [1]
    return [items[i % len(items)] for i in range(n)]


def _int_range(lo, hi):
    return "[%d, %d]" % (lo, hi)


def _modes_of(op):
    mode = op.query.get("mode")
    return list(mode["schema"]["enum"]) if mode else []


def _default_mode(op):
    mode = op.query.get("mode")
    return mode["schema"].get("default") if mode else None


# --------------------------------------------------------------------------
# Cases. Each generator returns (name, fn(srv, ctx)) pairs built from the
# repository's document; the functions look their operation up again in
# ctx["spec"], the document the server answered.


def case_served(srv, ctx):
    """GET /openapi.json from this server (default web root) equals
    api/openapi.json; else the copy from a temporary web root is used."""
    raw, doc = load_repo_doc()
    ctx["spec"] = Spec(doc)
    ctx["doc_source"] = "api/openapi.json (read from the repository)"
    stray = os.path.join(DEFAULT_WEB_ROOT, DOC_ROUTE.lstrip("/"))
    check(not os.path.exists(stray), "%s exists: the web root must not "
          "hold the document, or the static handler could serve it" % stray)
    resp = raw_exchange(srv.port, build_request("GET", DOC_ROUTE),
                        timeout=scaled(5.0))
    if resp.status == 404:
        served = fetch_from_copy(srv.binary)
        ctx["spec"] = Spec(served)
        ctx["doc_source"] = "a copy served from a temporary --web-root"
        raise CheckFailed("GET %s answers 404: the binary does not serve "
                          "the document yet (the cases below use %s)"
                          % (DOC_ROUTE, ctx["doc_source"]))
    check(resp.status == 200, "GET %s: %s %s" % (DOC_ROUTE, resp.status,
                                                 _short(resp.body, 200)))
    ctype = resp.header("Content-Type")
    check(media_matches("application/json", ctype),
          "content type %r" % ctype)
    try:
        served = json.loads(resp.body.decode("utf-8"))
    except ValueError as e:
        raise CheckFailed("the served document is not JSON: %s" % e)
    ctx["spec"] = Spec(served)
    ctx["doc_source"] = "GET %s" % DOC_ROUTE
    check(served == doc, "the served document differs from "
          "api/openapi.json (rebuild after editing it?): %s"
          % _first_difference(doc, served))
    return "byte-identical" if resp.body == raw else \
        "equal as parsed JSON (%d vs %d bytes)" % (len(resp.body), len(raw))


def fetch_from_copy(binary):
    """The document as the static handler serves a copy of it."""
    with tempfile.TemporaryDirectory(prefix="conlab-oa-web-") as root:
        shutil.copy(DOC_PATH, os.path.join(root, DOC_ROUTE.lstrip("/")))
        with Server(binary, ["--web-root", root, "--workers", "1",
                             "--threads", "2"], name="openapi-copy") as dev:
            dev.start()
            resp = raw_exchange(dev.port, build_request("GET", DOC_ROUTE),
                                timeout=scaled(5.0))
            check(resp.status == 200, "the copy: GET %s answered %s"
                  % (DOC_ROUTE, resp.status))
            return json.loads(resp.body.decode("utf-8"))


def _first_difference(a, b, where="$"):
    if type(a) is not type(b):
        return "%s: %s vs %s" % (where, type(a).__name__, type(b).__name__)
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return "%s.%s only in %s" % (where, k, "the repository"
                                             if k in a else "the served one")
            if a[k] != b[k]:
                return _first_difference(a[k], b[k], "%s.%s" % (where, k))
    if isinstance(a, list):
        if len(a) != len(b):
            return "%s: %d vs %d items" % (where, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, "%s[%d]" % (where, i))
    return "%s: %s vs %s" % (where, _short(a, 60), _short(b, 60))


def case_document(srv, ctx):
    """The document is well formed, uses only what the test can check,
    and names the binary's version."""
    spec = ctx["spec"]
    doc = spec.doc
    check(str(doc.get("openapi", "")).startswith("3."),
          "openapi is %r" % doc.get("openapi"))
    version = doc.get("info", {}).get("version")
    rc, out, err = harness.run_command([srv.binary, "--version"],
                                       timeout=scaled(10.0))
    check(rc == 0, "--version exited %s" % rc)
    check(out.split() == ["conlab", str(version)],
          "info.version %r, --version says %r" % (version, out.strip()))
    check(Tester(srv, ctx).health().get("version") == version,
          "info.version %r differs from /health's version" % version)
    servers = doc.get("servers") or []
    check(servers and urllib.parse.urlsplit(servers[0].get("url", "")).hostname
          == harness.LOOPBACK, "servers[0] is %r" % servers[:1])

    problems = []
    _walk_refs(spec, doc, "$", problems)
    ids = set()
    for op in spec.ops.values():
        oid = op.raw.get("operationId")
        if not oid or oid in ids:
            problems.append("%s: operationId %r missing or repeated"
                            % (op.key, oid))
        ids.add(oid)
        if "200" not in op.responses:
            problems.append("%s: no 200 response" % op.key)
        for p in op.params:
            problems += _param_problems(spec, op, p)
        for g in op.ext("exclusive") or []:
            for name in g:
                if name not in op.query:
                    problems.append("%s: x-conlab-exclusive names %r, "
                                    "not a parameter" % (op.key, name))
        if op.ext("runs"):
            var = op.runs_var()
            enum = op.query.get(var, {}).get("schema", {}).get("enum") or []
            if not enum:
                problems.append("%s: x-conlab-runs without an enum %r"
                                % (op.key, var))
            for value in enum:
                target = op.runs_op(value)
                for name, p in op.query.items():
                    if value in (p.get("x-conlab-demos") or []) and \
                            name not in target.query:
                        problems.append("%s: %s is not a parameter of %s"
                                        % (op.key, name, target.key))
    for path in spec.paths():
        if "get" not in spec.doc["paths"][path]:
            problems.append("%s: no GET" % path)
    _walk_schemas(doc, "$", problems)
    check(not problems, "; ".join(problems[:8]))
    return "%d paths, %d operations (from %s)" % (
        len(spec.paths()), len(spec.ops), ctx["doc_source"])


def _walk_refs(spec, node, where, problems):
    if isinstance(node, dict):
        if "$ref" in node:
            try:
                spec.pointer(node["$ref"])
            except CheckFailed as e:
                problems.append("%s: %s" % (where, e))
        for k, v in node.items():
            _walk_refs(spec, v, "%s.%s" % (where, k), problems)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _walk_refs(spec, v, "%s[%d]" % (where, i), problems)


def _walk_schemas(node, where, problems, in_schema=False):
    """Every keyword under a 'schema'/'schemas' is one the validator
    implements or may ignore (x- extensions aside)."""
    if isinstance(node, dict):
        if in_schema:
            for k in node:
                if k not in SCHEMA_CHECKED | SCHEMA_IGNORED and \
                        not k.startswith("x-"):
                    problems.append("%s: schema keyword %r is not checked "
                                    "by the test's validator" % (where, k))
            for k in ("items", "additionalProperties"):
                if isinstance(node.get(k), dict):
                    _walk_schemas(node[k], "%s.%s" % (where, k), problems,
                                  True)
            for k in ("allOf",):
                for i, s in enumerate(node.get(k, [])):
                    _walk_schemas(s, "%s.%s[%d]" % (where, k, i), problems,
                                  True)
            for name, s in node.get("properties", {}).items():
                _walk_schemas(s, "%s.%s" % (where, name), problems, True)
            return
        for k, v in node.items():
            if k == "schema":
                _walk_schemas(v, "%s.%s" % (where, k), problems, True)
            elif k == "schemas" and isinstance(v, dict):
                for name, s in v.items():
                    _walk_schemas(s, "%s.%s" % (where, name), problems, True)
            else:
                _walk_schemas(v, "%s.%s" % (where, k), problems)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _walk_schemas(v, "%s[%d]" % (where, i), problems)


def _param_problems(spec, op, p):
    out = []
    label = "%s %s" % (op.key, p.get("name"))
    schema = p.get("schema")
    if not p.get("name") or p.get("in") not in ("query", "header") or \
            not isinstance(schema, dict):
        return ["%s: parameter without name, in or schema" % label]
    if p["in"] == "query" and schema.get("type") not in (
            "integer", "number", "string", "array"):
        out.append("%s: type %r" % (label, schema.get("type")))
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if schema.get("type") in ("integer", "number"):
        if lo is None or hi is None or lo > hi:
            out.append("%s: %s without minimum <= maximum"
                       % (label, schema.get("type")))
        for what in ("default", "example"):
            v = schema.get(what, p.get(what))
            if v is not None and lo is not None and hi is not None and \
                    not lo <= v <= hi:
                out.append("%s: %s %r outside [%r, %r]" % (label, what, v,
                                                          lo, hi))
    by_mode = p.get("x-conlab-max-by-mode")
    if by_mode is not None:
        if sorted(by_mode) != sorted(_modes_of(op)):
            out.append("%s: x-conlab-max-by-mode modes %s, mode enum %s"
                       % (label, sorted(by_mode), sorted(_modes_of(op))))
        if max(by_mode.values()) != hi:
            out.append("%s: schema maximum %r is not the largest of "
                       "x-conlab-max-by-mode" % (label, hi))
    count_of = p.get("x-conlab-max-count-of")
    if count_of is not None and count_of not in op.query:
        out.append("%s: x-conlab-max-count-of %r is not a parameter"
                   % (label, count_of))
    opt = p.get("x-conlab-default-from")
    if opt is not None and opt not in OPTION_IN_HEALTH:
        out.append("%s: x-conlab-default-from %r unknown to the test"
                   % (label, opt))
    opt = p.get("x-conlab-max-from")
    if opt is not None and opt not in OPTION_IN_HEALTH:
        out.append("%s: x-conlab-max-from %r unknown to the test"
                   % (label, opt))
    if schema.get("type") == "array":
        items = schema.get("items", {})
        if "maxItems" not in schema or items.get("type") not in (
                "integer", "string"):
            out.append("%s: array without maxItems or scalar items" % label)
    return out


def case_path(path):
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "get")
        resp = t.call(op)
        check(resp.status == 200, "GET %s?%s: %s %s" % (
            path, _short(t.query(op, t.base(op)), 100), resp.status,
            _short(resp.body, 200)))
        t.documented(op, resp)
        media, schema = op.media("200")
        return "%s%s" % (media, (", " + schema["$ref"].split("/")[-1])
                         if isinstance(schema, dict) and "$ref" in schema
                         else "")
    return run


def case_head(path):
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "head")
        get = t.spec.op(path, "get")
        resp = t.call(op, t.base(get), method="HEAD")
        check(resp.status == 200, "HEAD %s: %s" % (path, resp.status))
        t.documented(op, resp)
        media, _ = get.media("200")
        ctype = resp.header("Content-Type")
        check(media is None or media_matches(media, ctype),
              "HEAD %s: content type %r, GET's is %r" % (path, ctype, media))
    return run


def case_methods(path):
    """Every method the path does not document is a 405 with Allow."""
    def run(srv, ctx):
        t = Tester(srv, ctx)
        documented = t.spec.methods(path)
        get = t.spec.op(path, "get")
        allow = {m.upper() for m in documented}
        for method in METHODS:
            if method in documented:
                continue
            resp = t.call(get, t.base(get), method=method.upper())
            check(resp.status == 405, "%s %s: %s, expected 405" % (
                method.upper(), path, resp.status))
            t.documented(get, resp, method.upper())
            got = {m.strip().upper() for m in
                   (resp.header("Allow") or "").split(",") if m.strip()}
            check(got == allow, "%s %s: Allow %r, documented %s" % (
                method.upper(), path, resp.header("Allow"), sorted(allow)))
        return "Allow: %s" % ", ".join(sorted(allow))
    return run


def case_unknown(path):
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "get")
        vals = t.base(op)
        if op.ext("unknown-parameters") == "ignored":
            resp = t.call(op, vals, extra=[(UNKNOWN, "1")])
            check(resp.status == 200, "%s?%s=1: %s, documented as ignored"
                  % (path, UNKNOWN, resp.status))
            t.documented(op, resp)
            return "ignored, as documented"
        t.refused(op, vals, 400, ["'%s'" % UNKNOWN], extra=[(UNKNOWN, "1")])
    return run


def case_oversized(path):
    """The request-size refusals the operation documents."""
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "get")
        tried = []
        if "413" in op.responses:
            resp = t.send("GET", path, body=b"a" * BODY_OVER, op=op)
            check(resp.status == 413, "a %d-byte body: %s" % (BODY_OVER,
                                                              resp.status))
            t.documented(op, resp, "body")
            tried.append("413")
        if "414" in op.responses:
            resp = t.send("GET", path + "?" + UNKNOWN + "=" +
                          "a" * TARGET_OVER, op=op)
            check(resp.status == 414, "a %d-byte target: %s" % (
                TARGET_OVER, resp.status))
            t.documented(op, resp, "target")
            tried.append("414")
        if "431" in op.responses:
            resp = t.send("GET", path, headers=[("X-Fill", "a" * HEADER_OVER)],
                          op=op)
            check(resp.status == 431, "a %d-byte header: %s" % (
                HEADER_OVER, resp.status))
            t.documented(op, resp, "header")
            tried.append("431")
        return ", ".join(tried) or "none documented"
    return run


def case_not_modified(path):
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "get")
        first = t.call(op)
        t.documented(op, first)
        etag, modified = first.header("ETag"), first.header("Last-Modified")
        check(etag and modified, "no ETag or Last-Modified to revalidate")
        for name, value in (("If-None-Match", etag),
                            ("If-Modified-Since", modified)):
            if name not in op.headers:
                continue
            resp = t.call(op, headers=[(name, value)])
            check(resp.status == 304, "%s: %s: %s, expected 304" % (
                path, name, resp.status))
            t.documented(op, resp, name)
    return run


def case_required(path, name):
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "get")
        vals = t.base(op)
        vals.pop(name, None)
        for p in list(vals):  # drop what only applies with it
            if op.query[p].get("x-conlab-demos") is not None:
                vals.pop(p)
        t.refused(op, vals, 400, ["'%s'" % name])
    return run


def case_exclusive(path):
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "get")
        groups = op.ext("exclusive")
        notes = []
        for i, g1 in enumerate(groups):
            for g2 in groups[i + 1:]:
                demo = _demo_with(op, g1 + g2)
                vals = t.base(op, focus=g1[0], demo=demo)
                for name in g2:
                    v = t.cheap(t.effective(op, name, demo))
                    if v is not None:
                        vals[name] = v
                t.refused(op, vals, 400, ["'%s'" % g1[0], "'%s'" % g2[0]])
                notes.append("%s with %s" % ("+".join(g1), "+".join(g2)))
        return "refused: " + "; ".join(notes)
    return run


def _demo_with(op, names):
    """For a x-conlab-runs operation, a demo all names belong to."""
    var = op.runs_var()
    if not var:
        return None
    for demo in op.query[var]["schema"]["enum"]:
        if all(demo in (op.query[n].get("x-conlab-demos") or [demo])
               for n in names):
            return demo
    raise CheckFailed("no demo takes all of %s" % names)


def case_forbidden(path):
    """403: a URL parameter naming this host on another port."""
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "get")
        for name, p in op.query.items():
            schema = p.get("schema", {})
            items = schema.get("items", {}) if schema.get("type") == "array" \
                else schema
            if items.get("format") != "uri":
                continue
            demo = _demo_with(op, [name])
            vals = t.base(op, focus=name, demo=demo)
            refused = "http://%s:1/" % harness.LOOPBACK  # never contacted
            vals[name] = [refused] if schema.get("type") == "array" \
                else refused
            t.refused(op, vals, 403, ["'%s'" % name])
            return "%s=%s" % (name, refused)
        raise CheckFailed("403 documented but no parameter of format uri")
    return run


def case_int_bounds(path, name):
    """[minimum, maximum] accepted (the maximum per mode and at most the
    count of its list where documented so), one past each refused with the
    documented range in the message, a non-integer refused."""
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "get")
        p = op.query[name]
        schema = p["schema"]
        lo, hi = schema["minimum"], schema["maximum"]
        if p.get("x-conlab-max-from"):  # the machine's: /health says
            hi = harness.json_path(t.health(),
                                   OPTION_IN_HEALTH[p["x-conlab-max-from"]])
        costly = bool(p.get("x-conlab-scales-time"))
        by_mode = p.get("x-conlab-max-by-mode")
        count_of = p.get("x-conlab-max-count-of")
        notes = []

        contexts = [(m, by_mode[m]) for m in _modes_of(op)] if by_mode \
            else [(None, hi)]
        for mode, top in contexts:
            vals = t.base(op, focus=name)
            if mode is not None:
                vals["mode"] = mode
            if count_of:
                vals[count_of] = _cycle(vals.get(count_of) or
                                        op.query[count_of]["schema"]
                                        .get("default", []), top)
            where = " (mode=%s)" % mode if mode else ""
            t.accepted(op, dict(vals, **{name: top}), name)
            if not costly:
                t.ok(op, dict(vals, **{name: top}), "%s=%d%s" % (name, top,
                                                                 where))
            t.refused(op, dict(vals, **{name: top + 1}), 400,
                      ["'%s'" % name, _int_range(lo, top)], extra=NO_RUN)
            notes.append("max %d%s%s" % (top, where, "" if not costly
                                         else " (not run)"))

        vals = t.base(op, focus=name)
        top = _effective_max(op, p, vals, t.health())
        t.accepted(op, dict(vals, **{name: lo}), name)
        t.ok(op, dict(vals, **{name: lo}), "%s=%d" % (name, lo))
        t.refused(op, dict(vals, **{name: lo - 1}), 400,
                  ["'%s'" % name, _int_range(lo, top)], extra=NO_RUN)
        t.refused(op, dict(vals, **{name: Raw("1.5")}), 400, ["'%s'" % name],
                  extra=NO_RUN)
        t.refused(op, dict(vals, **{name: Raw("")}), 400, ["'%s'" % name],
                  extra=NO_RUN)
        if count_of:
            n = len(vals.get(count_of) or
                    op.query[count_of]["schema"].get("default", []))
            if n < hi:
                t.accepted(op, dict(vals, **{name: n}), name)
                t.refused(op, dict(vals, **{name: n + 1}), 400,
                          ["'%s'" % name, _int_range(lo, n)], extra=NO_RUN)
                notes.append("at most the %d %s" % (n, count_of))
        return "min %d; %s" % (lo, "; ".join(notes))
    return run


def case_real_bounds(path, name):
    """A real: [minimum, maximum] accepted and run, a little past each
    refused with the documented range in the message, what is not a plain
    decimal number refused."""
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "get")
        schema = op.query[name]["schema"]
        lo, hi = schema["minimum"], schema["maximum"]
        vals = t.base(op, focus=name)
        for v in (lo, hi, (lo + hi) / 2):
            t.accepted(op, dict(vals, **{name: v}), name)
            t.ok(op, dict(vals, **{name: v}), "%s=%g" % (name, v))
        for v in (lo - 0.5, hi + 0.5):
            t.refused(op, dict(vals, **{name: v}), 400,
                      ["'%s'" % name, _real_range(lo, hi)], extra=NO_RUN)
        for raw in ("x", "", "nan", "0x1", ".5"):
            t.refused(op, dict(vals, **{name: Raw(raw)}), 400,
                      ["'%s'" % name, "not a number"], extra=NO_RUN)
        return "%s in %s" % (name, _real_range(lo, hi))
    return run


def _real_range(lo, hi):
    return "[%g, %g]" % (lo, hi)


def _effective_max(op, p, vals, health=None):
    hi = p["schema"]["maximum"]
    if p.get("x-conlab-max-from") and health is not None:
        hi = harness.json_path(health, OPTION_IN_HEALTH[p["x-conlab-max-from"]])
    by_mode = p.get("x-conlab-max-by-mode")
    if by_mode:
        hi = by_mode[vals.get("mode", _default_mode(op))]
    count_of = p.get("x-conlab-max-count-of")
    if count_of:
        items = vals.get(count_of) or \
            op.query[count_of]["schema"].get("default", [])
        hi = min(hi, len(items))
    return hi


def case_array(path, name):
    """minItems and maxItems accepted, maxItems + 1 refused; the items'
    bounds as for integers; an empty item refused."""
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "get")
        p = op.query[name]
        schema = p["schema"]
        items = schema["items"]
        lo_n, hi_n = schema.get("minItems", 1), schema["maxItems"]
        vals = t.base(op, focus=name)
        sample = t.cheap(p) or schema.get("default") or [1]
        notes = []

        # The cap itself when a GET holds it, else the most a GET holds.
        fit_n = hi_n
        while len(",".join(map(str, _cycle(sample, fit_n + 1)))) > \
                GET_LIST_MAX:
            fit_n = fit_n * 9 // 10
        t.accepted(op, dict(vals, **{name: _cycle(sample, fit_n)}), name)
        t.ok(op, dict(vals, **{name: _cycle(sample, fit_n)}),
             "%d items" % fit_n)
        t.ok(op, dict(vals, **{name: _cycle(sample, lo_n)}),
             "%d items" % lo_n)
        if fit_n == hi_n:
            t.refused(op, dict(vals, **{name: _cycle(sample, hi_n + 1)}),
                      400, ["'%s'" % name, str(hi_n)], extra=NO_RUN)
            notes.append("%d .. %d items" % (lo_n, hi_n))
        else:
            notes.append("%d .. %d items (of %d: more take a request body)"
                         % (lo_n, fit_n, hi_n))
        if not p.get("explode", True):
            t.refused(op, dict(vals, **{name: Raw("")}), 400,
                      ["'%s'" % name], extra=NO_RUN)
        if items.get("type") == "integer":
            ilo, ihi = items["minimum"], items["maximum"]
            for v in (ilo, ihi):
                t.accepted(op, dict(vals, **{name: [v]}), name)
                t.ok(op, dict(vals, **{name: [v]}), "item %d" % v)
            for v in (ilo - 1, ihi + 1):
                t.refused(op, dict(vals, **{name: [v]}), 400,
                          ["'%s'" % name, _int_range(ilo, ihi)],
                          extra=NO_RUN)
            t.refused(op, dict(vals, **{name: Raw("%s,x" % sample[0])}), 400,
                      ["'%s'" % name], extra=NO_RUN)
            notes.append("items in %s" % _int_range(ilo, ihi))
        if items.get("type") == "string" and items.get("minLength", 0) >= 1:
            t.refused(op, dict(vals, **{name: [""]}), 400, ["'%s'" % name],
                      extra=NO_RUN)
            notes.append("no empty item")
        return "; ".join(notes)
    return run


# --------------------------------------------------------------------------
# POST operations with a JSON request body

# Lists longer than this are not run at their maximum here (square's body
# takes 1,000,000 numbers: the "bodies-million" group runs that once); the
# maximum + 1 is still sent, as a cheap refusal ("0," per item).
BODY_RUN_ITEMS_MAX = 10000


def _body_bytes(body):
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def _zeros(n):
    """{"numbers": [0, 0, ...]}'s list text without building a list."""
    return "[" + ",".join(["0"] * n) + "]"


class BodyTester(Tester):
    """Tester for a POST operation: requests carry their parameters as one
    JSON object, sent as application/json."""

    def post(self, op, body, headers=None, raw=None):
        data = raw if raw is not None else _body_bytes(body)
        if headers is None:
            headers = [("Content-Type", "application/json")]
        return self.send("POST", op.path, headers, data, op=op)

    def body_ok(self, op, body, what):
        resp = self.post(op, body)
        check(resp.status == 200, "POST %s %s: %s %s" % (
            op.path, what, resp.status, _short(resp.body, 200)))
        got = self.documented(op, resp, what)
        if isinstance(got, dict) and isinstance(got.get("params"), dict):
            for name, sent in body.items():
                if name in got["params"] and isinstance(sent, (int, list)):
                    check(got["params"][name] == sent,
                          "POST %s %s: %s echoed as %s" % (
                              op.path, what, name,
                              _short(got["params"][name], 80)))
        return got

    def body_refused(self, op, body, words, what, status=400, raw=None,
                     headers=None):
        resp = self.post(op, body, headers=headers, raw=raw)
        check(resp.status == status, "POST %s %s: %s, expected %d; body %s"
              % (op.path, what, resp.status, status, _short(resp.body, 200)))
        got = self.documented(op, resp, what)
        message = got["error"]["message"] if isinstance(got, dict) else ""
        for word in words:
            check(word in message, "POST %s %s: message %r lacks %r" % (
                op.path, what, message, word))
        return message


def case_post_body(path):
    """The request body's documented bounds against the service: every
    integer member at minimum and maximum accepted (run, unless it scales
    time) and one past each refused with the range in the message; every
    list at minItems and maxItems (run up to BODY_RUN_ITEMS_MAX items) and
    one past each refused; items at their bounds; every enumeration value;
    wrong JSON types (a string for an integer, a number for a list, an
    object) and an unknown member refused with a message naming them."""
    def run(srv, ctx):
        t = BodyTester(srv, ctx)
        op = t.spec.op(path, "post")
        get = t.spec.op(path, "get")
        schema = t.spec.resolve(
            op.raw["requestBody"]["content"]["application/json"]["schema"])
        props = {k: t.spec.resolve(v)
                 for k, v in schema.get("properties", {}).items()}
        notes = []
        base = {k: v for k, v in t.base(get).items() if k in props}
        t.body_ok(op, base, "the cheap run")

        for name, prop in props.items():
            kind = prop.get("type")
            gp = get.query.get(name, {})
            vals = {k: v for k, v in t.base(get, focus=name).items()
                    if k in props}
            if kind == "integer":
                lo, hi = prop["minimum"], prop["maximum"]
                if gp.get("x-conlab-max-from"):  # as the query's
                    hi = _effective_max(get, gp, vals, t.health())
                count_of = gp.get("x-conlab-max-count-of")
                if count_of:
                    vals[count_of] = _cycle(vals.get(count_of) or [1], hi)
                t.body_ok(op, dict(vals, **{name: lo}), "%s=%d" % (name, lo))
                if gp.get("x-conlab-scales-time"):
                    notes.append("%s=%d not run (scales time)" % (name, hi))
                else:
                    t.body_ok(op, dict(vals, **{name: hi}),
                              "%s=%d" % (name, hi))
                for v in (lo - 1, hi + 1):
                    t.body_refused(op, dict(vals, **{name: v}),
                                   ["'%s'" % name, _int_range(lo, hi)],
                                   "%s=%d" % (name, v))
                t.body_refused(op, dict(vals, **{name: str(lo)}),
                               ["'%s'" % name, "expected an integer"],
                               "%s as a string" % name)
                t.body_refused(op, dict(vals, **{name: {"value": lo}}),
                               ["'%s'" % name, "got an object"],
                               "%s as an object" % name)
                notes.append("%s in %s" % (name, _int_range(lo, hi)))
            elif kind == "number":
                lo, hi = prop["minimum"], prop["maximum"]
                for v in (lo, hi, int(hi)):
                    t.body_ok(op, dict(vals, **{name: v}), "%s=%r" % (name, v))
                for v in (lo - 0.5, hi + 0.5):
                    t.body_refused(op, dict(vals, **{name: v}),
                                   ["'%s'" % name, _real_range(lo, hi)],
                                   "%s=%r" % (name, v))
                t.body_refused(op, dict(vals, **{name: str(lo)}),
                               ["'%s'" % name, "expected a number"],
                               "%s as a string" % name)
                notes.append("%s in %s" % (name, _real_range(lo, hi)))
            elif kind == "array":
                items = prop.get("items", {})
                lo_n, hi_n = prop.get("minItems", 1), prop["maxItems"]
                sample = t.cheap(gp) or vals.get(name) or [1]
                t.body_ok(op, dict(vals, **{name: _cycle(sample, lo_n)}),
                          "%d %s" % (lo_n, name))
                if hi_n <= BODY_RUN_ITEMS_MAX:
                    t.body_ok(op, dict(vals, **{name: _cycle(sample, hi_n)}),
                              "%d %s" % (hi_n, name))
                    t.body_refused(op, dict(vals, **{
                        name: _cycle(sample, hi_n + 1)}),
                        ["'%s'" % name, str(hi_n)], "%d %s" % (hi_n + 1, name))
                else:
                    notes.append("%d %s not run here (bodies-million runs it)"
                                 % (hi_n, name))
                    raw = _body_bytes(vals)[:-1] + (
                        ',"%s":%s}' % (name, _zeros(hi_n + 1))).encode()
                    if not vals:
                        raw = ('{"%s":%s}' % (name, _zeros(hi_n + 1))).encode()
                    t.body_refused(op, None, ["'%s'" % name, str(hi_n)],
                                   "%d %s" % (hi_n + 1, name), raw=raw)
                if lo_n >= 1:
                    t.body_refused(op, dict(vals, **{name: []}),
                                   ["'%s'" % name, "empty array"],
                                   "%s empty" % name)
                if items.get("type") == "integer":
                    ilo, ihi = items["minimum"], items["maximum"]
                    t.body_ok(op, dict(vals, **{name: [ilo, ihi]}),
                              "%s [%d, %d]" % (name, ilo, ihi))
                    for v in (ilo - 1, ihi + 1):
                        t.body_refused(op, dict(vals, **{name: [ilo, v]}),
                                       ["'%s'" % name, "item 2",
                                        _int_range(ilo, ihi)],
                                       "%s item %d" % (name, v))
                    t.body_refused(op, dict(vals, **{name: [1, "2"]}),
                                   ["'%s'" % name, "item 2 is a string"],
                                   "%s with a string item" % name)
                if items.get("type") == "string" and \
                        items.get("minLength", 0) >= 1:
                    t.body_refused(op, dict(vals, **{name: [""]}),
                                   ["'%s'" % name, "empty"],
                                   "%s with an empty item" % name)
                t.body_refused(op, dict(vals, **{name: 5}),
                               ["'%s'" % name, "expected an array",
                                "got an integer"], "%s as a number" % name)
                t.body_refused(op, dict(vals, **{name: {"0": 1}}),
                               ["'%s'" % name, "got an object"],
                               "%s as an object" % name)
                notes.append("%s: %d .. %d items" % (name, lo_n, hi_n))
            elif "enum" in prop:
                for v in prop["enum"]:
                    t.body_ok(op, dict(base, **{name: v}), "%s=%s" % (name, v))
                t.body_refused(op, dict(base, **{name: BOGUS}),
                               ["'%s'" % name, BOGUS], "%s=%s" % (name, BOGUS))
                t.body_refused(op, dict(base, **{name: 1}), ["'%s'" % name],
                               "%s as a number" % name)
        if schema.get("additionalProperties") is False:
            t.body_refused(op, dict(base, **{UNKNOWN: 1}),
                           ["'%s'" % UNKNOWN, "unknown"], "an unknown member")
        return "; ".join(notes)
    return run


def case_post_compare(path):
    """POST /run/compare: each demo's cheap parameters as a body run;
    without demo, with an unknown demo, with a member the demo does not
    take, and with a list over the query's limit (kept for a comparison)
    it is a 400."""
    def run(srv, ctx):
        t = BodyTester(srv, ctx)
        op = t.spec.op(path, "post")
        get = t.spec.op(path, "get")
        var = get.runs_var()
        notes = []
        for demo in get.query[var]["schema"]["enum"]:
            body = t.base(get, demo=demo)
            got = t.body_ok(op, body, "demo=%s" % demo)
            check(got.get("demo") == demo, "POST %s demo=%s: answered %r"
                  % (path, demo, got.get("demo")))
            t.body_refused(op, dict(body, **{UNKNOWN: 1}),
                           ["'%s'" % UNKNOWN], "demo=%s, unknown" % demo)
            target = get.runs_op(demo)
            for name, p in target.query.items():
                s = p.get("schema", {})
                if s.get("type") == "array" and s.get("maxItems", 0) \
                        <= BODY_RUN_ITEMS_MAX and name in get.query:
                    sample = t.cheap(p) or s.get("default") or [1]
                    t.body_refused(op, dict(body, **{
                        name: _cycle(sample, s["maxItems"] + 1)}),
                        ["'%s'" % name, str(s["maxItems"])],
                        "demo=%s, %d %s" % (demo, s["maxItems"] + 1, name))
                    notes.append("%s %s at most %d" % (demo, name,
                                                       s["maxItems"]))
        t.body_refused(op, {}, ["'%s'" % var], "without %s" % var)
        t.body_refused(op, {var: BOGUS}, ["'%s'" % var, BOGUS],
                       "%s=%s" % (var, BOGUS))
        t.body_refused(op, {var: 1}, ["'%s'" % var], "%s as a number" % var)
        return "; ".join(notes)
    return run


def case_post_transport(path):
    """The body's framing: a content type other than application/json is
    a 415, a chunked body a 411, a Content-Length over --body-max a 413
    (answered from the header alone), malformed JSON and a top level that
    is not an object 400s naming the byte, a query string on a POST a 400."""
    def run(srv, ctx):
        t = BodyTester(srv, ctx)
        op = t.spec.op(path, "post")
        get = t.spec.op(path, "get")
        body = t.base(get)
        t.body_refused(op, body, [], "as text/plain", status=415,
                       headers=[("Content-Type", "text/plain")])
        t.body_refused(op, None, [], "chunked", status=411,
                       raw=b"2\r\n{}\r\n0\r\n\r\n",
                       headers=[("Content-Type", "application/json"),
                                ("Transfer-Encoding", "chunked")])
        resp = t.send("POST", path, [("Content-Type", "application/json"),
                                     ("Content-Length", str(BODY_MAX + 1))],
                      b"", op=op)
        check(resp.status == 413, "POST %s, Content-Length %d: %s" % (
            path, BODY_MAX + 1, resp.status))
        t.documented(op, resp, "over --body-max")
        t.body_refused(op, None, ["malformed JSON", "byte"], "malformed",
                       raw=b'{"a": [1, 2}')
        t.body_refused(op, None, ["malformed JSON"], "an array",
                       raw=b"[1, 2]")
        resp = t.send("POST", path + "?" + t.query(get, {}, [("a", "1")]),
                      [("Content-Type", "application/json")],
                      _body_bytes(body), op=op)
        check(resp.status == 400, "POST %s?a=1: %s" % (path, resp.status))
        t.documented(op, resp, "with a query")
        return "415, 411, 413, 400 (malformed, not an object, a query)"
    return run


def case_enum(path, name):
    """Every documented value runs; another is refused with a message
    that lists exactly the documented values."""
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "get")
        enum = op.query[name]["schema"]["enum"]
        runs_var = op.runs_var()
        for value in enum:
            if name == runs_var:
                vals = t.base(op, demo=value)
            else:
                vals = dict(t.base(op, focus=name), **{name: value})
            t.ok(op, vals, "%s=%s" % (name, value))
        vals = t.base(op, focus=name) if name != runs_var else \
            {k: v for k, v in t.base(op).items()
             if op.query[k].get("x-conlab-demos") is None}
        vals[name] = BOGUS
        msg = t.refused(op, vals, 400, ["'%s'" % name, BOGUS])
        listed = re.search(r"one of:? (.*)$", msg)
        if listed:
            got = [v.strip() for v in listed.group(1).split(",")]
            check(got == list(enum), "the message lists %s, documented %s"
                  % (got, enum))
        return ", ".join(enum)
    return run


def case_defaults(path):
    """Omitted parameters take their documented defaults, as echoed."""
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "get")
        checked, skipped = [], []
        workers = None
        for name, p in op.query.items():
            schema = p.get("schema", {})
            opt = p.get("x-conlab-default-from")
            if "default" not in schema and not opt:
                continue
            if p.get("x-conlab-scales-time") and \
                    schema.get("default") != schema.get("minimum"):
                skipped.append(name)
                continue
            variants = [t.base(op, focus=name)]
            count_of = p.get("x-conlab-max-count-of")
            if count_of:
                one = dict(variants[0])
                one[count_of] = _cycle(one.get(count_of) or
                                       op.query[count_of]["schema"]
                                       .get("default", []), 1)
                variants.append(one)
            for vals in variants:
                if opt:
                    if workers is None:
                        workers = harness.json_path(
                            t.health(), OPTION_IN_HEALTH[opt])
                    want = workers
                    if count_of:
                        want = min(want, len(
                            vals.get(count_of) or
                            op.query[count_of]["schema"].get("default", [])))
                else:
                    want = schema["default"]
                body = t.ok(op, vals, "without %s" % name)
                got = echo_of(body, name)
                check(got == want, "without %s: echoed %s, documented "
                      "default %s" % (name, _short(got, 60), want))
            checked.append(name)
        return "checked %s%s" % (", ".join(checked) or "none",
                                 "; not run (time-scaling): %s" %
                                 ", ".join(skipped) if skipped else "")
    return run


def case_compare_demo(path, demo):
    """x-conlab-runs: one table of the demo's modes whose runs are that
    endpoint's bodies, params as that endpoint echoes them."""
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "get")
        target = op.runs_op(demo)
        vals = t.base(op, demo=demo)
        body = t.ok(op, vals, "demo=%s" % demo)
        modes = _modes_of(target)
        check(body.get("modes") == modes, "modes %s, %s documents %s" % (
            body.get("modes"), target.key, modes))
        runs = body.get("runs", [])
        check([r.get("mode") for r in runs] == modes,
              "runs in modes %s" % [r.get("mode") for r in runs])
        _, run_schema = target.media("200")
        for r in runs:
            errs = t.spec.errors(run_schema, r)
            check(not errs, "run %s does not match %s's schema: %s" % (
                r.get("mode"), target.key, "; ".join(errs[:4])))
        differing = [r["mode"] for r in runs if not r.get("same_result")]
        check(body.get("differing_modes") == differing and
              body.get("results_agree") == (not differing),
              "differing_modes %s, results_agree %s; runs differing %s" % (
                  body.get("differing_modes"), body.get("results_agree"),
                  differing))
        own = {k: v for k, v in vals.items() if k != op.runs_var()}
        direct = t.ok(target, own)
        check(body.get("params") == direct.get("params"),
              "params %s, %s echoes %s" % (body.get("params"), target.key,
                                           direct.get("params")))
        budget = op.ext("budget-ms")
        if budget is not None:
            check(body.get("budget_ms") == budget, "budget_ms %r, "
                  "documented %r" % (body.get("budget_ms"), budget))
        return "%d modes, params %s" % (len(runs), body.get("params"))
    return run


def case_compare_params(path, demo):
    """The demo's parameters are bounded as on its own endpoint, in every
    mode: a refusal is the message that endpoint gives in the first mode
    that refuses; another demo's parameter and mode are unknown."""
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "get")
        target = op.runs_op(demo)
        modes = _modes_of(target)
        var = op.runs_var()
        tried = 0
        for name, cp in op.query.items():
            demos = cp.get("x-conlab-demos")
            if demos is None:
                continue
            if demo not in demos:
                vals = t.base(op, demo=demo)
                v = t.cheap(cp) or cp["schema"].get("minimum", 1)
                vals[name] = v
                t.refused(op, vals, 400, ["unknown", "'%s'" % name])
                tried += 1
                continue
            p = target.query[name]
            schema = p["schema"]
            base = t.base(op, focus=name, demo=demo)
            health = t.health() if p.get("x-conlab-max-from") else None
            for bad, refusing in _bad_values(target, p, base, modes, health):
                vals = dict(base, **{name: bad})
                msg = t.refused(op, vals, 400, ["'%s'" % name],
                                extra=NO_RUN)
                direct = {k: v for k, v in vals.items() if k != var}
                if refusing:
                    direct["mode"] = refusing
                want = t.refused(target, direct, 400, extra=NO_RUN)
                check(msg == want, "%s=%s: %r; %s%s says %r" % (
                    name, _short(getattr(bad, "text", bad), 40), msg,
                    target.key, " (mode=%s)" % refusing if refusing else "",
                    want))
                tried += 1
            if schema.get("type") == "integer":
                top = min(_effective_max(target, p, dict(base, mode=m),
                                         health)
                          for m in modes) if modes else \
                    _effective_max(target, p, base, health)
                for v in (schema["minimum"], top):
                    t.accepted(op, dict(base, **{name: v}), name)
            if schema.get("type") == "number":
                for v in (schema["minimum"], schema["maximum"]):
                    t.accepted(op, dict(base, **{name: v}), name)
        if "mode" in target.query and "mode" not in op.query:
            vals = t.base(op, demo=demo)
            vals["mode"] = modes[0]
            t.refused(op, vals, 400, ["unknown", "'mode'"])
        return "%d refusals as %s gives them" % (tried, target.key)
    return run


def _bad_values(target, p, vals, modes, health=None):
    """(value, the mode whose refusal the comparison must give, or None
    without modes) pairs past p's bounds. A comparison accepts what every
    one of its modes accepts, so it refuses with the range of its tightest
    mode (the first of those), whichever bound is passed."""
    schema = p["schema"]
    first = modes[0] if modes else None
    if schema.get("type") == "integer":
        lo = schema["minimum"]
        tops = {m: _effective_max(target, p, dict(vals, mode=m), health)
                for m in modes} or {None: _effective_max(target, p, vals,
                                                         health)}
        # A value every mode refuses is refused with the comparison's own
        # range: that of its tightest mode (the first of those).
        tightest = min(tops, key=lambda m: tops[m]) if modes else None
        out = [(lo - 1, tightest), (Raw("x"), tightest)]
        # Past any mode's maximum: the comparison refuses it with its own
        # range too (demo_param_max over every mode).
        for v in sorted({top + 1 for top in tops.values()}):
            out.append((v, tightest))
        return out
    if schema.get("type") == "number":
        return [(schema["minimum"] - 0.5, first), (Raw("x"), first),
                (schema["maximum"] + 0.5, first)]
    if schema.get("type") == "array":
        items = schema["items"]
        over = _cycle(p.get("example") or [1], schema["maxItems"] + 1)
        # A list over the cap that a GET cannot hold takes a request body.
        out = [(over, first)] if len(",".join(map(str, over))) <= \
            GET_LIST_MAX else []
        if items.get("type") == "integer":
            out += [([items["minimum"] - 1], first),
                    ([items["maximum"] + 1], first)]
        return out
    return []


def case_compare_budget(path, demo):
    """Time-scaling parameters at their maximum put the comparison over
    its budget: a 400 naming the budget and a parameter to lower. A demo
    too cheap to reach the budget even there (the counter: 10,000,000
    increments a task) runs instead, and its estimate must fit."""
    def run(srv, ctx):
        t = Tester(srv, ctx)
        op = t.spec.op(path, "get")
        target = op.runs_op(demo)
        budget = op.ext("budget-ms")
        vals = t.base(op, demo=demo)
        raised = []
        for name in list(vals):
            p = op.query[name]
            if p.get("x-conlab-demos") is None:
                continue
            tp = target.query[name]
            if tp.get("x-conlab-scales-time"):
                vals[name] = tp["schema"]["maximum"]
                raised.append(name)
        resp = t.call(op, vals, timeout=BUDGET_TIMEOUT_S)
        if resp.status == 200:
            est = t.documented(op, resp)["estimate_ms"]
            check(est <= budget, "%s at their maximum: 200 with an "
                  "estimate of %s ms over the budget %s" % (
                      ", ".join(raised), est, budget))
            return "within the budget at the maximum: estimate %.0f ms" % est
        check(resp.status == 400, "%s at their maximum: %s, expected 400"
              % (", ".join(raised), resp.status))
        body = t.documented(op, resp)
        msg = body["error"]["message"]
        check(str(int(budget)) in msg and any(n in msg for n in raised),
              "message %r names neither the budget %s nor %s" % (
                  msg, budget, raised))
        return msg
    return run


def case_request_id(srv, ctx):
    """The X-Request-Id header parameter: a valid one is echoed, an
    invalid one replaced (every operation that documents it)."""
    t = Tester(srv, ctx)
    problems, n = [], 0
    for op in t.spec.ops.values():
        for name, hp in op.headers.items():
            if name not in t.spec.doc.get("components", {}).get(
                    "headers", {}):
                continue
            pattern = hp.get("schema", {}).get("pattern")
            good = hp.get("example") or "oa-%d" % n
            bad = "not valid!" + "x" * 64
            if pattern and not re.search(pattern, good):
                problems.append("%s: its example %r fails its pattern"
                                % (op.key, good))
            get = t.spec.op(op.path, "get")
            for value, echoed in ((good, True), (bad, False)):
                resp = t.call(op, t.base(get), headers=[(name, value)])
                got = resp.header(name)
                n += 1
                if echoed and got != value:
                    problems.append("%s: sent %s %r, got %r" % (
                        op.key, name, value, got))
                if not echoed and (got is None or got == value or (
                        pattern and not re.search(pattern, got))):
                    problems.append("%s: sent invalid %s, got %r" % (
                        op.key, name, got))
    check(not problems, "%d problems, e.g. %s" % (len(problems),
                                                  "; ".join(problems[:3])))
    return "%d requests" % n


def case_headers(name):
    """A response header the document requires on every response is on
    every response this group received."""
    def run(srv, ctx):
        spec = ctx["spec"]
        missing, n = [], 0
        for path, method, resp in ctx.get("seen", []):
            op = spec.ops.get((path, method))
            if op is None or str(resp.status) not in op.responses:
                continue
            n += 1
            if resp.header(name) is None:
                missing.append("%s %s %s" % (method.upper(), path,
                                             resp.status))
        check(n > 0, "no response seen")
        check(not missing, "missing on %d of %d responses, e.g. %s" % (
            len(missing), n, "; ".join(missing[:4])))
        return "on all %d responses" % n
    return run


def case_coverage(srv, ctx):
    """Every status the group saw answered is documented for its path and
    method; the note lists the documented ones it did not cause."""
    spec = ctx["spec"]
    seen = {(p, m, str(r.status)) for p, m, r in ctx.get("seen", [])}
    check(seen, "the group recorded no responses")
    undocumented = sorted(
        "%s %s %s" % (m.upper(), p, s) for p, m, s in seen
        if (p, m) not in spec.ops or s not in spec.ops[(p, m)].responses)
    check(not undocumented, "answered but not documented: %s"
          % ", ".join(undocumented))
    seen_any = {(p, s) for p, _, s in seen}
    unseen = []
    for op in spec.ops.values():
        if op.method != "get":
            continue
        for status in op.responses:
            if (op.path, status) not in seen_any:
                unseen.append("%s %s" % (op.path, status))
    return "%d statuses seen, all documented; not caused here: %s" % (
        len(seen), ", ".join(sorted(unseen)) or "none")


def case_drain(srv, ctx):
    """During shutdown every path answers the documented 503 with its
    Retry-After on an open keep-alive connection; then exit 0."""
    t = Tester(srv, ctx)
    stall = socket.create_connection((harness.LOOPBACK, srv.port),
                                     timeout=scaled(5.0))
    harness.add_cleanup(stall.close)
    stall.sendall(b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Length: 10\r\n\r\nab")  # holds the grace period
    conns = []
    for path in t.spec.paths():
        op = t.spec.op(path, "get")
        s = socket.create_connection((harness.LOOPBACK, srv.port),
                                     timeout=scaled(5.0))
        harness.add_cleanup(s.close)
        target = path + "?" + t.query(op, t.base(op))
        s.sendall(build_request("GET", target, [("Connection",
                                                 "keep-alive")]))
        first = harness.read_response(
            s, timeout=scaled(max(5.0, _op_budget_s(op))))
        check(first.status is not None and not first.closed and
              "close" not in (first.header("Connection") or "").lower(),
              "GET %s on a keep-alive connection: %s %s" % (
                  path, first.status, first.error))
        conns.append((op, target, s))
    children = harness.children_of(srv.pid)
    signalled_at = time.monotonic()
    os.kill(srv.pid, signal.SIGTERM)
    check(srv.wait_log(r"received SIGTERM", scaled(5.0)),
          "no 'received SIGTERM' in the log")
    for op, target, s in conns:
        s.sendall(build_request("GET", target, [("Connection",
                                                 "keep-alive")]))
        resp = harness.read_response(s, timeout=scaled(5.0))
        ctx.setdefault("seen", []).append((op.path, op.method, resp))
        check(resp.status == 503, "GET %s while draining: %s %s" % (
            op.path, resp.status, resp.error))
        t.documented(op, resp, "draining")
    stall.close()
    note = stop_and_check(srv, signal.SIGTERM,
                          GRACE_MS / 1000.0 + scaled(2.0), children,
                          ("stopped",), signalled_at=signalled_at)
    return "%d paths answered 503; %s" % (len(conns), note)


# --------------------------------------------------------------------------
# The group


def cases_from(doc):
    """(name, fn) pairs generated from the document."""
    spec = Spec(doc)
    P = "openapi: "
    out = [(P + "GET %s from the binary equals api/openapi.json" % DOC_ROUTE,
            case_served),
           (P + "the document is well formed and names this version",
            case_document)]
    for path in spec.paths():
        get = spec.ops.get((path, "get"))
        if get is None:
            continue
        media, _ = get.media("200")
        out.append((P + "GET %s answers 200 %s as documented" % (path, media),
                    case_path(path)))
        if (path, "head") in spec.ops:
            out.append((P + "HEAD %s answers 200, headers only" % path,
                        case_head(path)))
        out.append((P + "%s: undocumented methods are 405 with Allow" % path,
                    case_methods(path)))
        out.append((P + "%s: an unknown parameter is %s" % (
            path, "ignored" if get.ext("unknown-parameters") == "ignored"
            else "a 400 naming it"), case_unknown(path)))
        out.append((P + "%s: oversized requests get the documented errors"
                    % path, case_oversized(path)))
        if "304" in get.responses:
            out.append((P + "%s: revalidation answers 304" % path,
                        case_not_modified(path)))
        if "403" in get.responses:
            out.append((P + "%s: a refused URL is a 403" % path,
                        case_forbidden(path)))
        if get.ext("exclusive"):
            out.append((P + "%s: exclusive parameters together are a 400"
                        % path, case_exclusive(path)))
        for name, p in get.query.items():
            if p.get("required"):
                out.append((P + "%s: without required %s is a 400"
                            % (path, name), case_required(path, name)))
            if p.get("x-conlab-demos") is not None:
                continue
            kind = p.get("schema", {}).get("type")
            if kind == "integer":
                s = p["schema"]
                out.append((P + "%s %s: [%d, %d] enforced" % (
                    path, name, s["minimum"], s["maximum"]),
                    case_int_bounds(path, name)))
            elif kind == "number":
                s = p["schema"]
                out.append((P + "%s %s: [%g, %g] enforced" % (
                    path, name, s["minimum"], s["maximum"]),
                    case_real_bounds(path, name)))
            elif kind == "array":
                out.append((P + "%s %s: list bounds enforced" % (path, name),
                            case_array(path, name)))
            elif "enum" in p.get("schema", {}):
                out.append((P + "%s %s: every documented value, no other"
                            % (path, name), case_enum(path, name)))
        if any("default" in p.get("schema", {}) or
               p.get("x-conlab-default-from") for p in get.query.values()) \
                and spec.schema_has(get.media("200")[1] or {}, "params"):
            out.append((P + "%s: omitted parameters echo their defaults"
                        % path, case_defaults(path)))
        var = get.runs_var()
        if var:
            for demo in get.query[var]["schema"]["enum"]:
                target = get.runs_op(demo)
                out.append((P + "%s demo=%s: the runs are %s's" % (
                    path, demo, target.path), case_compare_demo(path, demo)))
                out.append((P + "%s demo=%s: parameters as %s bounds them"
                            % (path, demo, target.path),
                            case_compare_params(path, demo)))
                if get.ext("budget-ms") is not None and any(
                        p.get("x-conlab-scales-time")
                        for p in target.query.values()):
                    out.append((P + "%s demo=%s: over the budget is a 400"
                                % (path, demo),
                                case_compare_budget(path, demo)))
    for (path, method), op in spec.ops.items():
        if method != "post" or "requestBody" not in op.raw:
            continue
        out.append((P + "POST %s: a body's framing gets the documented "
                    "statuses" % path, case_post_transport(path)))
        if spec.ops.get((path, "get")) is not None and \
                spec.ops[(path, "get")].runs_var():
            out.append((P + "POST %s: every demo by body, and its refusals"
                        % path, case_post_compare(path)))
        else:
            out.append((P + "POST %s: the body's bounds and types enforced"
                        % path, case_post_body(path)))
    out.append((P + "the X-Request-Id header parameter", case_request_id))
    out.append((P + "SIGTERM: every path answers the documented 503, exit 0",
                case_drain))
    # These only read what the cases above received.
    for name in sorted(universal_headers(spec)):
        out.append((P + "response header %s on every response" % name,
                    case_headers(name)))
    out.append((P + "every status answered is documented",
                case_coverage))
    return out


def universal_headers(spec):
    """Headers the document requires on every response."""
    common = None
    for op in spec.ops.values():
        for resp in op.responses.values():
            names = {n for n, h in resp.get("headers", {}).items()
                     if spec.resolve(h).get("required")}
            common = names if common is None else common & names
    return common or set()


def server_groups(web_root):
    """(title, extra args, environment, cases) for run.py's server_group.
    web_root is not used: the server runs with the default web root (the
    repository's web/), so /openapi.json can only come from the binary."""
    del web_root
    args = ["--web-root", DEFAULT_WEB_ROOT, "--workers", str(WORKERS),
            "--threads", "2", "--grace-ms", str(GRACE_MS)]
    try:
        _, doc = load_repo_doc()
        cases = cases_from(doc)
        universal = universal_headers(Spec(doc))
    except (OSError, ValueError, KeyError, TypeError, CheckFailed) as e:
        reason = "%s: %s" % (type(e).__name__, e)

        def broken(srv, ctx):
            raise CheckFailed("api/openapi.json: %s" % reason)
        cases, universal = [("openapi: api/openapi.json loads", broken)], ()

    def with_universal(fn):
        def run(srv, ctx):
            ctx.setdefault("universal", set(universal))
            return fn(srv, ctx)
        return run
    return [(GROUP, args, None, [(n, with_universal(f)) for n, f in cases])]


if __name__ == "__main__":
    raise SystemExit("run through run.py: python3 tests/integration/run.py "
                     "--binary build/conlab --group openapi")

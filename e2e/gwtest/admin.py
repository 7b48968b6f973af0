"""The admin API (milestone 03 on): raw HTTP/1.1 exchanges, JSON and /metrics helpers, and a
strict parser of the Prometheus text exposition format (version 0.0.4).

Raw sockets rather than http.client, so that a test sees exactly what the server sent (a
malformed status line, a missing Content-Length, a body longer than announced) and whether
it closed the connection afterwards.

  get(addr, path, token=)            one GET with `Connection: close`: a Response
  exchange(addr, data)               sends DATA as is, reads one response, then waits for the
                                     server to close: (Response, end) with end "eof",
                                     "reset" or "open"
  get_json(addr, path, token=)       the decoded body of a 200 answer
  scrape(addr, token=)               GET /metrics, parsed strictly: an Exposition
  parse_exposition(text)             an Exposition; raises ExpositionError naming the line
"""
import json
import math
import re
import socket

from . import env
from .wait import Deadline


class Response:
    """One parsed HTTP response."""

    def __init__(self, status, reason, version, headers, body, raw_head):
        self.status, self.reason, self.version = status, reason, version
        self.headers = headers  # [(name, value)] in order
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        """The first header NAME (case-insensitive), or None."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body.decode())

    def __repr__(self):
        body = self.body if len(self.body) < 300 else self.body[:300] + b"..."
        return "Response(%d %s, headers=%r, body=%r)" % (self.status, self.reason, self.headers, body)


class MalformedResponse(AssertionError):
    pass


_STATUS_RE = re.compile(rb"^HTTP/(1\.[01]) ([1-5][0-9][0-9]) ([\t !-~]*)$")
_TOKEN_RE = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _recv_some(sock, dl):
    sock.settimeout(max(0.001, dl.left()))
    try:
        return sock.recv(65536)
    except socket.timeout:
        raise AssertionError("no complete response within %.1fs" % dl.seconds) from None


def read_response(sock, method="GET", timeout=None):
    """Reads one response from SOCK and checks its form strictly: a valid status line,
    header lines `token: value` ending in CRLF, exactly one Content-Length, and a body of
    exactly that length (none for HEAD). Bytes after the body are an error (the admin API
    answers one request at a time). Raises MalformedResponse or AssertionError."""
    dl = Deadline(timeout or env.timeout(5))
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        b = _recv_some(sock, dl)
        if not b:
            raise MalformedResponse("connection ended before a complete response head: %r" % bytes(buf[:300]))
        buf += b
        if len(buf) > 64 * 1024:
            raise MalformedResponse("response head over 64 KiB")
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    m = _STATUS_RE.match(lines[0])
    if not m:
        raise MalformedResponse("bad status line %r" % lines[0])
    headers = []
    for ln in lines[1:]:
        name, sep, value = ln.partition(b":")
        if not sep or not _TOKEN_RE.match(name) or b"\n" in ln or b"\r" in ln:
            raise MalformedResponse("bad header line %r in %r" % (ln, head))
        headers.append((name.decode(), value.strip(b" \t").decode("latin-1")))
    resp = Response(int(m.group(2)), m.group(3).decode(), m.group(1).decode(), headers, b"", head)
    cls = resp.header_all("Content-Length")
    if len(cls) != 1 or not re.fullmatch(r"[0-9]+", cls[0]):
        raise MalformedResponse("expected exactly one numeric Content-Length: %r" % headers)
    length = 0 if method == "HEAD" or resp.status in (204, 304) else int(cls[0])
    body = bytearray(rest)
    while len(body) < length:
        b = _recv_some(sock, dl)
        if not b:
            raise MalformedResponse("body ended after %d of %d bytes" % (len(body), length))
        body += b
    if len(body) > length:
        raise MalformedResponse("%d bytes after a %d-byte body: %r" % (len(body) - length, length, bytes(body[length:][:100])))
    resp.body = bytes(body)
    return resp


def wait_closed(sock, timeout=None):
    """After a response: reads until the server closes. Returns "eof", "reset", or "open"
    if it is still open after TIMEOUT; extra bytes fail."""
    dl = Deadline(timeout or env.timeout(3))
    while True:
        sock.settimeout(max(0.001, dl.left()))
        try:
            b = sock.recv(4096)
        except socket.timeout:
            return "open"
        except ConnectionResetError:
            return "reset"
        if not b:
            return "eof"
        raise MalformedResponse("bytes after the response: %r" % b[:200])


def connect(addr, timeout=None):
    s = socket.create_connection(addr, timeout=timeout or env.timeout(5))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def request_bytes(method, path, headers=(), body=b""):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: admin"]
    lines += ["%s: %s" % kv for kv in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def exchange(addr, data, method="GET", close_timeout=None, transcript=None):
    """Sends DATA (raw bytes) on a new connection, reads one response strictly, then waits
    up to CLOSE_TIMEOUT for the server to close. Returns (Response, end)."""
    s = connect(addr)
    try:
        if transcript is not None:
            transcript.note("admin <- %r" % data[:120])
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before all of a big request is sent
        resp = read_response(s, method=method)
        if transcript is not None:
            transcript.note("admin -> %d %s" % (resp.status, resp.reason))
        return resp, wait_closed(s, close_timeout)
    finally:
        s.close()


def auth(token):
    return [("Authorization", "Bearer %s" % token)] if token is not None else []


def get(addr, path, token=None, method="GET", headers=()):
    """One request with `Connection: close`; returns the Response (not waiting for EOF)."""
    s = connect(addr)
    try:
        s.sendall(request_bytes(method, path, list(headers) + auth(token) + [("Connection", "close")]))
        return read_response(s, method=method)
    finally:
        s.close()


def get_json(addr, path, token=None):
    r = get(addr, path, token=token)
    assert r.status == 200, "GET %s: %r" % (path, r)
    ct = r.header("Content-Type") or ""
    assert ct.startswith("application/json"), "GET %s: Content-Type %r" % (path, ct)
    return r.json()


def backend_entry(doc, address, upstream="app"):
    """The /backends entry of backend ADDRESS ("host:port") in UPSTREAM."""
    for u in doc["upstreams"]:
        if u["name"] == upstream:
            for b in u["backends"]:
                if b["address"] == address:
                    return b
    raise AssertionError("no backend %s in upstream %s of /backends: %s" % (address, upstream, doc))


# ---- the Prometheus text format, strictly -----------------------------------------------------

_METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_HELP_RE = re.compile(r"^# HELP (%s) (.*)$" % _METRIC_NAME)
_HELP_BARE_RE = re.compile(r"^# HELP (%s)$" % _METRIC_NAME)
_TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % _METRIC_NAME)
_SAMPLE_RE = re.compile(r"^(%s)(\{.*\})? ([^ ]+)( -?[0-9]+)?$" % _METRIC_NAME)
_LABEL_RE = re.compile(r'(%s)="((?:[^"\\\n]|\\[\\"n])*)"' % _LABEL_NAME)
_FLOAT_RE = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")


class ExpositionError(AssertionError):
    pass


def parse_float(s):
    """A sample value as the format allows it (Go's ParseFloat: decimal, exponent, NaN,
    +Inf, -Inf); None if it is not one."""
    if s in ("NaN",):
        return math.nan
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    return float(s) if _FLOAT_RE.match(s) else None


def _unescape(v):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], v)


def _labels(text, where):
    """{name: value} from `{a="x",b="y"}` (a trailing comma allowed, as the format says)."""
    inner = text[1:-1]
    out = {}
    pos = 0
    while pos < len(inner):
        m = _LABEL_RE.match(inner, pos)
        if not m:
            raise ExpositionError("%s: bad label at %r" % (where, inner[pos:]))
        k = m.group(1)
        if k.startswith("__"):
            raise ExpositionError("%s: label name %s is reserved" % (where, k))
        if k in out:
            raise ExpositionError("%s: label %s twice" % (where, k))
        out[k] = _unescape(m.group(2))
        pos = m.end()
        if pos < len(inner):
            if inner[pos] != ",":
                raise ExpositionError("%s: expected a comma at %r" % (where, inner[pos:]))
            pos += 1
    return out


class Family:
    def __init__(self, name, type_, help_):
        self.name, self.type, self.help = name, type_, help_
        self.samples = []  # (sample name, labels dict, value)


class Exposition:
    """Families by name, each with its samples, and lookups by series."""

    def __init__(self, families, text):
        self.families = families
        self.text = text
        self.series = {}
        for f in families.values():
            for name, labels, value in f.samples:
                self.series[(name, tuple(sorted(labels.items())))] = value

    def value(self, name, **labels):
        """The value of the series NAME{LABELS} (exactly those labels); None if absent."""
        return self.series.get((name, tuple(sorted(labels.items()))))

    def get(self, name, **labels):
        v = self.value(name, **labels)
        if v is None:
            have = [(n, dict(l)) for n, l in self.series if n == name]
            raise AssertionError("no series %s%s in /metrics; %s has: %s" % (name, labels, name, have))
        return v

    def find(self, name, **labels):
        """Every (labels, value) of samples named NAME whose labels include LABELS."""
        out = []
        for (n, lab), v in self.series.items():
            d = dict(lab)
            if n == name and all(d.get(k) == x for k, x in labels.items()):
                out.append((d, v))
        return out


def _family_of(sample, families):
    """The declared family SAMPLE belongs to (histogram samples carry a suffix)."""
    if sample in families:
        return families[sample]
    for suffix in ("_bucket", "_sum", "_count"):
        if sample.endswith(suffix):
            f = families.get(sample[: -len(suffix)])
            if f is not None and f.type in ("histogram", "summary"):
                return f
    return None


def parse_exposition(text):
    """Parses TEXT strictly; returns an Exposition or raises ExpositionError naming the line.

    Every line is a `# HELP name text`, a `# TYPE name type`, another comment, or a sample
    `name{k="v",...} value [timestamp]` with a valid name, labels and float. HELP and TYPE
    come at most once per family and before its samples; every sample belongs to a family
    declared with TYPE, and a family's lines form one group; counters are never negative;
    no series appears twice; a histogram has, per label set, buckets with ascending `le`
    ending with +Inf, cumulative counts, and _sum and _count, the +Inf bucket equal to
    _count."""
    if text and not text.endswith("\n"):
        raise ExpositionError("the exposition does not end with a newline")
    families = {}
    seen_help = set()
    closed = set()  # families whose group of lines has ended
    current = None
    series = set()
    for i, line in enumerate(text.split("\n")[:-1] if text else [], 1):
        where = "line %d %r" % (i, line)
        if line == "":
            continue  # the format ignores empty lines
        if line.startswith("#"):
            parts = line.split(" ", 2)
            kw = parts[1] if len(parts) > 1 and parts[0] == "#" else None
            if kw == "HELP":
                m = _HELP_RE.match(line) or _HELP_BARE_RE.match(line)
                if not m:
                    raise ExpositionError("%s: malformed HELP" % where)
                name = m.group(1)
                help_ = m.group(2) if m.lastindex and m.lastindex >= 2 else ""
                if not re.fullmatch(r"(?:[^\\]|\\[\\n])*", help_):
                    raise ExpositionError("%s: HELP text may escape only \\\\ and \\n" % where)
                if name in seen_help:
                    raise ExpositionError("%s: second HELP for %s" % (where, name))
                seen_help.add(name)
                if name in closed or (name in families and families[name].samples):
                    raise ExpositionError("%s: HELP for %s after its samples" % (where, name))
                if current is not None and current != name:
                    closed.add(current)
                current = name
                if name in families:
                    families[name].help = help_
                else:
                    families[name] = Family(name, None, help_)
            elif kw == "TYPE":
                m = _TYPE_RE.match(line)
                if not m:
                    raise ExpositionError("%s: malformed TYPE (name and one of counter, gauge, histogram, "
                                          "summary, untyped)" % where)
                name, type_ = m.group(1), m.group(2)
                f = families.get(name)
                if f is not None and f.type is not None:
                    raise ExpositionError("%s: second TYPE for %s" % (where, name))
                if name in closed or (f is not None and f.samples):
                    raise ExpositionError("%s: TYPE for %s after its samples" % (where, name))
                if current is not None and current != name:
                    closed.add(current)
                current = name
                if f is None:
                    families[name] = Family(name, type_, None)
                else:
                    f.type = type_
            # any other comment is allowed and ignored
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise ExpositionError("%s: not a sample line (name{labels} value [timestamp])" % where)
        sname, ltext, vtext = m.group(1), m.group(2), m.group(3)
        labels = _labels(ltext, where) if ltext else {}
        value = parse_float(vtext)
        if value is None:
            raise ExpositionError("%s: value %r is not a float" % (where, vtext))
        f = _family_of(sname, families)
        if f is None or f.type is None:
            raise ExpositionError("%s: sample before (or without) a TYPE line for its family" % where)
        if f.name in closed:
            raise ExpositionError("%s: %s's lines are not one group" % (where, f.name))
        if current != f.name:
            if current is not None:
                closed.add(current)
            current = f.name
        if f.type == "histogram":
            if sname == f.name:
                raise ExpositionError("%s: a histogram's samples are _bucket, _sum and _count" % where)
            if sname.endswith("_bucket"):
                if "le" not in labels or parse_float(labels["le"]) is None:
                    raise ExpositionError("%s: a bucket needs a float `le` label" % where)
            elif "le" in labels:
                raise ExpositionError("%s: only buckets carry `le`" % where)
        if f.type == "counter" and not (value >= 0):
            raise ExpositionError("%s: a counter must be a non-negative number" % where)
        key = (sname, tuple(sorted(labels.items())))
        if key in series:
            raise ExpositionError("%s: duplicate series" % where)
        series.add(key)
        f.samples.append((sname, labels, value))
    for f in families.values():
        if f.type is None:
            raise ExpositionError("family %s has HELP but no TYPE" % f.name)
        if f.type == "histogram":
            _check_histogram(f)
    return Exposition(families, text)


def _check_histogram(f):
    groups = {}
    for sname, labels, value in f.samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sname.endswith("_bucket"):
            g["buckets"].append((labels["le"], value))
        elif sname.endswith("_sum"):
            g["sum"] = value
        else:
            g["count"] = value
    for rest, g in groups.items():
        what = "histogram %s%s" % (f.name, dict(rest))
        bs = g["buckets"]
        if not bs:
            raise ExpositionError("%s: no buckets" % what)
        if g["sum"] is None or g["count"] is None:
            raise ExpositionError("%s: _sum and _count are both required" % what)
        les = [parse_float(le) for le, _ in bs]
        if any(b >= a for a, b in zip(les[1:], les)):
            raise ExpositionError("%s: `le` not strictly ascending: %s" % (what, [le for le, _ in bs]))
        if bs[-1][0] != "+Inf":
            raise ExpositionError("%s: the last bucket must be le=\"+Inf\", got %r" % (what, bs[-1][0]))
        counts = [v for _, v in bs]
        if any(b < a for a, b in zip(counts, counts[1:])):
            raise ExpositionError("%s: bucket counts are not cumulative: %s" % (what, counts))
        if counts[-1] != g["count"]:
            raise ExpositionError("%s: +Inf bucket %s != _count %s" % (what, counts[-1], g["count"]))
        if g["count"] > 0 and not g["sum"] >= 0:
            raise ExpositionError("%s: negative _sum %s" % (what, g["sum"]))


def scrape(addr, token=None):
    """GET /metrics: checks the status and Content-Type (text/plain; version=0.0.4), parses
    the body strictly; returns the Exposition."""
    r = get(addr, "/metrics", token=token)
    assert r.status == 200, "GET /metrics: %r" % r
    ct = (r.header("Content-Type") or "").replace(" ", "")
    assert ct.startswith("text/plain") and "version=0.0.4" in ct, "GET /metrics: Content-Type %r" % ct
    return parse_exposition(r.body.decode())

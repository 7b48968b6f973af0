"""HTTP/1.1 on both sides of the proxy (milestone 04 on): a fake upstream server and a
raw-socket client with a strict response reader.

Raw sockets rather than http.server / http.client: the tests must see exactly what crossed
the wire (a duplicated header, a body longer than announced, a connection left open after
`Connection: close`) and must be able to send what no library would (smuggling attempts,
bare LF, obs-fold).

  HttpBackend           threaded keep-alive upstream; counts .accepted (TCP connections) and
                        .requests; records every request (.log: Request objects); answers
                        through .handler(req) -> Reply (default: Reply.echo(), a JSON
                        description of the request). The test may change .handler any time.
  Reply                 what the backend does: echo(), fixed(status, body), data(n, seed),
                        chunked(...), delay(...), close() (no answer), interim 100, ...
  HttpClient            one connection: request(), send(), read_response(), wait_closed()
  Response              a strictly parsed response (status, headers, body or its digest,
                        trailers, interim 1xx responses)
  request_bytes(...)    a request as bytes (the client adds nothing on its own)
"""
import hashlib
import json
import re
import socket
import time

from . import data as gwdata
from . import env
from .backends import Server
from .wait import Deadline, wait_until

CRLF = b"\r\n"
MAX_HEAD = 256 * 1024
KEEP_LIMIT = 4 * 1024 * 1024  # bodies up to this are kept in memory; bigger ones only hashed

_TOKEN_RE = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_STATUS_RE = re.compile(rb"^HTTP/(1\.[01]) ([1-5][0-9][0-9]) ([\t !-~\x80-\xff]*)$")
_REQLINE_RE = re.compile(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([!-~]+) HTTP/(1\.[01])$")
_CHUNK_RE = re.compile(rb"^([0-9A-Fa-f]+)(;[^\r\n]*)?$")


class ProtocolError(AssertionError):
    """The peer broke HTTP/1.1 framing (what the test should see as a failure)."""


def header_get(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def header_all(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def header_tokens(headers, name):
    """Every comma-separated element of every NAME field, lower-cased and trimmed."""
    out = []
    for v in header_all(headers, name):
        out += [x.strip().lower() for x in v.split(",") if x.strip()]
    return out


# ---- a buffered reader over a socket, with one deadline per call -------------------------------


class Reader:
    """Buffered reads from SOCK; every call has a deadline. ON_RECV(bytes) sees what came in."""

    def __init__(self, sock, on_recv=None):
        self.sock = sock
        self.buf = bytearray()
        self.on_recv = on_recv
        self.eof = False

    def _fill(self, dl, what):
        if self.eof:
            return False
        self.sock.settimeout(max(0.001, dl.left()))
        try:
            b = self.sock.recv(1 << 20)
        except socket.timeout:
            raise AssertionError("timed out after %.1fs waiting for %s (buffered %r)" % (
                dl.seconds, what, bytes(self.buf[:200]))) from None
        if not b:
            self.eof = True
            return False
        if self.on_recv is not None:
            self.on_recv(b)
        self.buf += b
        return True

    def read_until(self, sep, dl, limit, what):
        """Bytes up to and including SEP; None if the stream ends first with nothing buffered."""
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                out = bytes(self.buf[: i + len(sep)])
                del self.buf[: i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise ProtocolError("%s: no %r in the first %d bytes: %r" % (what, sep, limit, bytes(self.buf[:200])))
            start = max(0, len(self.buf) - len(sep) + 1)
            if not self._fill(dl, what):
                if not self.buf:
                    return None
                raise ProtocolError("%s: stream ended inside it: %r" % (what, bytes(self.buf[:300])))

    def read_exact_into(self, n, dl, sink, what):
        """Passes exactly N bytes to SINK(memoryview); fails if the stream ends first. Never
        buffers more than 1 MiB ahead (so a sink that pauses really stops reading)."""
        left = n
        while left:
            if not self.buf and not self._fill(dl, what):
                raise ProtocolError("%s: stream ended with %d of %d bytes missing" % (what, left, n))
            k = min(left, len(self.buf), 256 * 1024)
            sink(memoryview(self.buf)[:k])
            del self.buf[:k]
            left -= k

    def read_to_eof(self, dl, sink, what):
        n = 0
        while True:
            if self.buf:
                sink(memoryview(self.buf))
                n += len(self.buf)
                self.buf.clear()
            try:
                if not self._fill(dl, what):
                    return n
            except ConnectionResetError:
                raise ProtocolError("%s: reset before the end of a close-delimited body" % what) from None


class BodySink:
    """Hashes and counts a body; keeps it when it is small. With STALL (a backends.Stall),
    the reader pauses once when stall.after bytes were read (CH: the channel to note it in)."""

    def __init__(self, keep_limit=KEEP_LIMIT, stall=None, ch=None):
        self.h = hashlib.sha256()
        self.count = 0
        self.kept = bytearray()
        self.keep_limit = keep_limit
        self.stall, self.ch = stall, ch

    def __call__(self, mv):
        self.h.update(mv)
        self.count += len(mv)
        if len(self.kept) < self.keep_limit:
            self.kept += mv[: self.keep_limit - len(self.kept)]
        if self.stall is not None and self.count >= self.stall.after:
            st, self.stall = self.stall, None
            st.pause(self.ch, self.count)

    @property
    def sha256(self):
        return self.h.hexdigest()

    @property
    def complete(self):
        return self.count <= self.keep_limit


def parse_fields(lines, what):
    """[(name, value)] from raw field lines, strictly (no obs-fold, no space before ':')."""
    out = []
    for ln in lines:
        if b"\r" in ln or b"\n" in ln or b"\0" in ln:
            raise ProtocolError("%s: bare CR/LF or NUL in %r" % (what, ln))
        name, sep, value = ln.partition(b":")
        if not sep or not _TOKEN_RE.match(name):
            raise ProtocolError("%s: bad field line %r" % (what, ln))
        out.append((name.decode(), value.strip(b" \t").decode("latin-1")))
    return out


def read_chunked(rd, dl, sink, what):
    """A chunked body into SINK; returns the trailer fields."""
    while True:
        line = rd.read_until(CRLF, dl, 4096, what + " chunk size")
        if line is None:
            raise ProtocolError("%s: stream ended before a chunk size" % what)
        m = _CHUNK_RE.match(line[:-2])
        if not m:
            raise ProtocolError("%s: bad chunk size line %r" % (what, line))
        n = int(m.group(1), 16)
        if n == 0:
            break
        rd.read_exact_into(n, dl, sink, what + " chunk data")
        end = rd.read_until(CRLF, dl, 2, what + " chunk end")
        if end != CRLF:
            raise ProtocolError("%s: chunk data not followed by CRLF: %r" % (what, end))
    lines = []
    while True:
        line = rd.read_until(CRLF, dl, 64 * 1024, what + " trailers")
        if line is None:
            raise ProtocolError("%s: stream ended in the trailers" % what)
        if line == CRLF:
            break
        lines.append(line[:-2])
    return parse_fields(lines, what + " trailers")


def send_chunked(sock, chunks, trailers=(), on_send=None):
    """Sends CHUNKS (iterable of bytes-like) as a chunked body, then TRAILERS."""
    for c in chunks:
        if not len(c):
            continue
        for piece in (b"%x\r\n" % len(c), c, CRLF):
            sock.sendall(piece)
            if on_send is not None:
                on_send(piece)
    end = b"0\r\n" + b"".join(("%s: %s\r\n" % kv).encode() for kv in trailers) + CRLF
    sock.sendall(end)
    if on_send is not None:
        on_send(end)


# ---- the backend ------------------------------------------------------------------------------


class Request:
    """One request as the backend received it."""

    def __init__(self, method, target, version, headers, raw_head, conn_id, index):
        self.method, self.target, self.version = method, target, version
        self.headers = headers  # [(name, value)] in order, as received
        self.raw_head = raw_head
        self.conn_id = conn_id  # which backend connection (1, 2, ... in accept order)
        self.index = index      # 1 for the first request on that connection
        self.body_len = 0
        self.body_sha256 = hashlib.sha256(b"").hexdigest()
        self.body = b""         # kept when small (see KEEP_LIMIT)
        self.framing = "none"   # none | length | chunked
        self.trailers = []
        self.time = time.monotonic()

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    def header(self, name):
        return header_get(self.headers, name)

    def header_all(self, name):
        return header_all(self.headers, name)

    def names(self):
        return {k.lower() for k, _ in self.headers}

    def describe(self):
        return {"method": self.method, "target": self.target, "version": self.version,
                "headers": [[k, v] for k, v in self.headers], "body_len": self.body_len,
                "body_sha256": self.body_sha256, "framing": self.framing,
                "trailers": [[k, v] for k, v in self.trailers], "conn": self.conn_id, "index": self.index}

    def __repr__(self):
        return "Request(%s %s, conn %d #%d, %d header(s), body %d)" % (
            self.method, self.target, self.conn_id, self.index, len(self.headers), self.body_len)


class Reply:
    """What the backend does with a request. Build with the class methods; fields:
    status, reason, headers [(k, v)], body (bytes) or data (nbytes, seed), chunked (bool),
    chunk_size, trailers, delay (seconds) or wait (threading.Event) before the head,
    close_without_answer, close_after (close the connection after answering),
    interim ([status] 1xx heads sent first), no_length (close-delimited body), raw (bytes
    sent as they are, then close)."""

    def __init__(self, status=200, headers=(), body=b"", reason=None):
        self.status = status
        self.reason = reason
        self.headers = list(headers)
        self.body = body
        self.data = None
        self.chunked = False
        self.chunk_size = 64 * 1024
        self.trailers = []
        self.delay = 0.0
        self.wait = None
        self.close_without_answer = False
        self.close_after = False
        self.interim = []
        self.no_length = False
        self.echo = False
        self.raw = None

    @classmethod
    def echo_json(cls, status=200, headers=()):
        r = cls(status, headers)
        r.echo = True
        return r

    @classmethod
    def fixed(cls, status, body=b"", headers=()):
        return cls(status, headers, body)

    @classmethod
    def generated(cls, nbytes, seed, chunked=False, headers=()):
        """NBYTES of gwdata's SEED data, Content-Length or chunked framing."""
        r = cls(200, headers)
        r.data = (nbytes, seed)
        r.chunked = chunked
        return r

    @classmethod
    def delayed(cls, seconds=0.0, wait=None, then=None):
        """THEN (a Reply, default echo) after SECONDS or once the Event WAIT is set."""
        r = then or cls.echo_json()
        r.delay, r.wait = seconds, wait
        return r

    @classmethod
    def raw_bytes(cls, data):
        """Sends DATA exactly as given (a malformed answer, say), then closes."""
        r = cls()
        r.raw = data
        return r

    @classmethod
    def hang_up(cls):
        """Reads the request, then closes without a byte of answer."""
        r = cls()
        r.close_without_answer = True
        return r


REASONS = {100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified",
           400: "Bad Request", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}


def default_handler(req):
    return Reply.echo_json()


class HttpBackend(Server):
    """An HTTP/1.1 upstream: keep-alive, pipelining-safe (one request at a time, in order),
    Content-Length and chunked request bodies (with trailers), `Expect: 100-continue`
    answered with a 100 before the body is read. NAME (default "host:port") is put in
    every echo and in an X-Backend header of every answer."""

    kind = "http"

    def __init__(self, transcript, handler=None, name=None, continue_100=True, body_stall=None, **kw):
        self.handler = handler or default_handler
        self.body_stall = body_stall  # a backends.Stall: pause once while reading a request body
        self.continue_100 = continue_100
        self.log = []
        self.requests = 0
        self.conn_seq = 0
        self.hangups = 0
        super().__init__(transcript, **kw)
        self.name = name or self.address_str

    # ---- for the test ------------------------------------------------------------------
    def wait_requests(self, n, timeout=None):
        return wait_until(lambda: self.requests >= n, timeout or env.timeout(5),
                          "%s to receive %d request(s)" % (self.name, n),
                          describe=lambda: "received: %s" % self.log[-10:])

    def paths(self):
        with self.lock:
            return [r.target for r in self.log]

    def last(self):
        with self.lock:
            assert self.log, "%s received no request" % self.name
            return self.log[-1]

    # ---- serving -----------------------------------------------------------------------
    def handle(self, conn, ch):
        # A head and its body go out in separate sends: without NODELAY, Nagle holds the body
        # for the proxy's delayed ACK (40 ms a response), which is not what a test measures.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self.conn_seq += 1
            conn_id = self.conn_seq
        rd = Reader(conn, on_recv=ch.recv)
        index = 0
        while True:
            dl = Deadline(self.op_timeout)
            try:
                head = rd.read_until(b"\r\n\r\n", dl, MAX_HEAD, "request head")
            except ConnectionResetError:
                ch.event("reset while waiting for a request")
                return
            except AssertionError:
                if self.stopping.is_set():
                    return
                raise
            if head is None:
                ch.event("EOF between requests")
                return
            index += 1
            req = self._parse_head(head, conn_id, index)
            ch.event("request %s %s" % (req.method, req.target))
            expect = (req.header("Expect") or "").lower()
            if expect == "100-continue" and self.continue_100:
                out = b"HTTP/1.1 100 Continue\r\n\r\n"
                conn.sendall(out)
                ch.sent(out)
            stall, self.body_stall = self.body_stall, None
            sink = BodySink(stall=stall, ch=ch)
            te = header_tokens(req.headers, "Transfer-Encoding")
            cl = req.header_all("Content-Length")
            if te:
                if te != ["chunked"] or cl:
                    raise ProtocolError("backend got bad framing from the proxy: %r" % req.headers)
                req.framing = "chunked"
                req.trailers = read_chunked(rd, dl, sink, "request body")
            elif cl:
                if len(cl) != 1 or not cl[0].isdigit():
                    raise ProtocolError("backend got bad Content-Length from the proxy: %r" % cl)
                req.framing = "length"
                rd.read_exact_into(int(cl[0]), Deadline(self.op_timeout * 4), sink, "request body")
            req.body_len, req.body_sha256 = sink.count, sink.sha256
            req.body = bytes(sink.kept) if sink.complete else b""
            with self.lock:
                self.log.append(req)
                self.requests += 1
            reply = self.handler(req)
            if reply.wait is not None:
                ch.event("holding the answer until released")
                reply.wait.wait(env.timeout(60))
            elif reply.delay:
                ch.event("holding the answer %.2fs" % reply.delay)
                time.sleep(reply.delay)  # allowed-sleep: a slow upstream on purpose
            if reply.close_without_answer:
                with self.lock:
                    self.hangups += 1
                ch.event("closing without an answer")
                return
            if reply.raw is not None:
                conn.sendall(reply.raw)
                ch.sent(reply.raw)
                ch.event("sent %d raw bytes; closing" % len(reply.raw))
                return
            keep = self._send_reply(conn, ch, req, reply)
            if not keep:
                ch.event("closing after the answer")
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                # Read what remains so the close is a FIN, not an RST.
                try:
                    conn.settimeout(env.timeout(2))
                    while conn.recv(65536):
                        pass
                except OSError:
                    pass
                return

    def _parse_head(self, head, conn_id, index):
        lines = head[:-4].split(CRLF)
        m = _REQLINE_RE.match(lines[0])
        if not m:
            raise ProtocolError("backend got a bad request line from the proxy: %r" % lines[0])
        headers = parse_fields(lines[1:], "request head from the proxy")
        return Request(m.group(1).decode(), m.group(2).decode("latin-1"), m.group(3).decode(), headers,
                       head, conn_id, index)

    def _send_reply(self, conn, ch, req, reply):
        """Sends REPLY; returns whether the connection stays open."""
        for st in reply.interim:
            out = b"HTTP/1.1 %d %s\r\n\r\n" % (st, REASONS.get(st, "Info").encode())
            conn.sendall(out)
            ch.sent(out)
        body = reply.body
        if reply.echo:
            doc = req.describe()
            doc["backend"] = self.name
            body = json.dumps(doc).encode()
        headers = [("X-Backend", self.name)] + list(reply.headers)
        if reply.echo:
            headers.append(("Content-Type", "application/json"))
        req_conn = header_tokens(req.headers, "Connection")
        keep = not reply.close_after and not reply.no_length
        if req.version == "1.0":
            keep = keep and "keep-alive" in req_conn
        if "close" in req_conn:
            keep = False
        no_body = req.method == "HEAD" or reply.status in (204, 304) or reply.status < 200
        if reply.data is not None:
            nbytes = reply.data[0]
        else:
            nbytes = len(body)
        if reply.chunked and not no_body:
            headers.append(("Transfer-Encoding", "chunked"))
        elif reply.no_length:
            pass
        elif reply.status not in (204, 304) and not any(k.lower() == "content-length" for k, _ in headers):
            headers.append(("Content-Length", str(nbytes)))
        if not keep:
            headers.append(("Connection", "close"))
        reason = reply.reason or REASONS.get(reply.status, "Status")
        out = ("HTTP/1.1 %d %s\r\n" % (reply.status, reason)).encode()
        out += "".join("%s: %s\r\n" % kv for kv in headers).encode("latin-1") + CRLF
        conn.sendall(out)
        ch.sent(out)
        if no_body:
            return keep
        if reply.data is not None:
            chunks = gwdata.chunks(reply.data[0], reply.data[1])
        else:
            chunks = [body[i : i + reply.chunk_size] for i in range(0, len(body), reply.chunk_size)]
        if reply.chunked:
            send_chunked(conn, chunks, reply.trailers, on_send=ch.sent)
        else:
            for c in chunks:
                conn.sendall(c)
                ch.sent(c)
        return keep


# ---- the client -------------------------------------------------------------------------------


class Response:
    """One parsed response: status, reason, version, headers [(k, v)], body (kept when
    small), body_len, sha256, framing (none | length | chunked | close), trailers, interim
    (the 1xx responses before it, as (status, headers))."""

    def __init__(self, status, reason, version, headers, raw_head):
        self.status, self.reason, self.version = status, reason, version
        self.headers = headers
        self.raw_head = raw_head
        self.body = b""
        self.body_len = 0
        self.sha256 = hashlib.sha256(b"").hexdigest()
        self.framing = "none"
        self.trailers = []
        self.interim = []

    def header(self, name):
        return header_get(self.headers, name)

    def header_all(self, name):
        return header_all(self.headers, name)

    def tokens(self, name):
        return header_tokens(self.headers, name)

    def json(self):
        try:
            return json.loads(self.body.decode())
        except ValueError as e:
            raise AssertionError("response body is not JSON (%s): %r" % (e, self)) from None

    @property
    def closes(self):
        """The response announced that the server closes the connection."""
        return "close" in self.tokens("Connection") or (self.version == "1.0" and "keep-alive" not in self.tokens("Connection"))

    def __repr__(self):
        body = self.body if len(self.body) < 400 else self.body[:400] + b"..."
        return "Response(HTTP/%s %d %s, headers=%r, body_len=%d, body=%r)" % (
            self.version, self.status, self.reason, self.headers, self.body_len, body)


def request_bytes(method, target, headers=(), body=b"", host="gw.test", version="1.1"):
    """A request head (plus BODY) exactly as given: Host first (unless HOST is None),
    then HEADERS; Content-Length is added for a non-empty BODY unless HEADERS frame it."""
    lines = ["%s %s HTTP/%s" % (method, target, version)]
    if host is not None:
        lines.append("Host: %s" % host)
    lines += ["%s: %s" % kv for kv in headers]
    names = {k.lower() for k, _ in headers}
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class HttpClient:
    """One client connection to ADDR (from SOURCE, a local IP, if given). Every read has a
    deadline (OP_TIMEOUT by default)."""

    def __init__(self, addr, transcript, op_timeout=None, source=None, label="hclient", tls=None,
                 server_hostname=None, session=None):
        """TLS: an ssl.SSLContext to speak TLS with (the handshake runs here, with SNI
        SERVER_HOSTNAME, resuming SESSION if given); then .sock is the ssl.SSLSocket."""
        self.addr = addr
        self.op_timeout = op_timeout or env.timeout(10)
        self.ch = transcript.channel(label)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.settimeout(self.op_timeout)
        self.sock.connect(addr)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=server_hostname, session=session)
            self.ch.event("TLS %s %s" % (self.sock.version(), self.sock.cipher()[0]))
        self.rd = Reader(self.sock, on_recv=self.ch.recv)
        self.responses = 0        # final responses read on this connection
        self.last_response = None
        self.ch.event("connected to %s:%d" % addr)

    def send(self, data):
        self.sock.settimeout(self.op_timeout)
        self.sock.sendall(data)
        self.ch.sent(data)

    def send_request(self, method, target, headers=(), body=b"", **kw):
        self.send(request_bytes(method, target, headers, body, **kw))

    def request(self, method, target, headers=(), body=b"", timeout=None, **kw):
        """Sends one request and reads its response."""
        self.send_request(method, target, headers, body, **kw)
        return self.read_response(method=method, timeout=timeout)

    def get(self, target, headers=(), **kw):
        return self.request("GET", target, headers, **kw)

    def send_data(self, nbytes, seed):
        """Streams NBYTES of SEED's data (a body after a head sent with send()); returns its sha256."""
        self.sock.settimeout(self.op_timeout)
        for c in gwdata.chunks(nbytes, seed):
            self.sock.sendall(c)
            self.ch.sent(c)
        return gwdata.sha256_of(nbytes, seed)

    def send_chunked(self, chunks, trailers=()):
        self.sock.settimeout(self.op_timeout)
        send_chunked(self.sock, chunks, trailers, on_send=self.ch.sent)

    def read_head(self, timeout=None):
        """The next response head (1xx included) as a Response without body; None on a
        clean EOF before any byte."""
        dl = Deadline(timeout or self.op_timeout)
        try:
            head = self.rd.read_until(b"\r\n\r\n", dl, MAX_HEAD, "response head")
        except ConnectionResetError:
            raise ProtocolError("connection reset before a complete response head (buffered %r)"
                                % bytes(self.rd.buf[:200])) from None
        if head is None:
            return None
        if b"\n" in head[:-4].replace(CRLF, b""):
            raise ProtocolError("bare LF in a response head: %r" % head)
        lines = head[:-4].split(CRLF)
        m = _STATUS_RE.match(lines[0])
        if not m:
            raise ProtocolError("bad status line %r" % lines[0])
        headers = parse_fields(lines[1:], "response head")
        return Response(int(m.group(2)), m.group(3).decode("latin-1"), m.group(1).decode(), headers, head)

    def read_response(self, method="GET", timeout=None, keep_limit=KEEP_LIMIT, stall=None):
        """Reads one final response (collecting 1xx ones in .interim) and its body, strictly:
        at most one Content-Length (digits), never with Transfer-Encoding; chunked must be the
        only coding; no body for HEAD, 1xx, 204, 304; otherwise close-delimited."""
        dl = Deadline(timeout or self.op_timeout)
        interim = []
        while True:
            resp = self.read_head(timeout=dl.left() or 0.001)
            if resp is None:
                last = self.last_response
                if last is not None and not last.closes:
                    raise ProtocolError(
                        "the proxy closed the connection instead of answering request #%d on it, although "
                        "its previous response (%d) did not announce Connection: close (keep-alive broken?)"
                        % (self.responses + 1, last.status))
                raise ProtocolError("connection closed before a response (request #%d on this connection, "
                                    "after %d interim)" % (self.responses + 1, len(interim)))
            if 100 <= resp.status < 200 and resp.status != 101:
                interim.append((resp.status, resp.headers))
                continue
            break
        resp.interim = interim
        cls = resp.header_all("Content-Length")
        te = resp.tokens("Transfer-Encoding")
        if len(cls) > 1:
            raise ProtocolError("several Content-Length fields: %r" % resp)
        if cls and not re.fullmatch(r"[0-9]+", cls[0]):
            raise ProtocolError("bad Content-Length: %r" % resp)
        if cls and te:
            raise ProtocolError("both Content-Length and Transfer-Encoding: %r" % resp)
        if resp.status in (204, 304) and te:
            raise ProtocolError("%d with Transfer-Encoding: %r" % (resp.status, resp))
        if resp.status == 204 and cls and cls[0] != "0":
            raise ProtocolError("204 with a nonzero Content-Length: %r" % resp)
        sink = BodySink(keep_limit, stall=stall, ch=self.ch)
        if method == "HEAD" or resp.status in (204, 304):
            resp.framing = "none"
        elif te:
            if te != ["chunked"]:
                raise ProtocolError("unexpected transfer coding: %r" % resp)
            resp.framing = "chunked"
            resp.trailers = read_chunked(self.rd, Deadline(max(dl.left(), self.op_timeout)), sink, "response body")
        elif cls:
            resp.framing = "length"
            self.rd.read_exact_into(int(cls[0]), Deadline(max(dl.left(), self.op_timeout)), sink, "response body")
        else:
            resp.framing = "close"
            self.rd.read_to_eof(Deadline(max(dl.left(), self.op_timeout)), sink, "close-delimited response body")
        resp.body_len, resp.sha256 = sink.count, sink.sha256
        resp.body = bytes(sink.kept)
        self.responses += 1
        self.last_response = resp
        self.ch.event("response %d (%s, %d body bytes)" % (resp.status, resp.framing, resp.body_len))
        return resp

    def read_response_sized(self, method="GET", timeout=None, stall=None):
        """A response for a big transfer: the body is hashed, not kept (STALL: pause once)."""
        return self.read_response(method=method, timeout=timeout, keep_limit=0, stall=stall)

    def wait_closed(self, timeout=None):
        """After a response: waits for the server to close. Returns "eof", "reset", or "open"
        if it is still open after TIMEOUT. Bytes arriving meanwhile fail (the server must not
        send anything unasked)."""
        if self.rd.buf:
            raise ProtocolError("bytes after the response: %r" % bytes(self.rd.buf[:200]))
        if self.rd.eof:
            return "eof"
        dl = Deadline(timeout or env.timeout(3))
        self.sock.settimeout(max(0.001, dl.left()))
        try:
            b = self.sock.recv(4096)
        except socket.timeout:
            return "open"
        except ConnectionResetError:
            self.ch.event("reset by peer")
            return "reset"
        if not b:
            self.rd.eof = True
            self.ch.event("EOF")
            return "eof"
        raise ProtocolError("unexpected bytes after the response: %r" % b[:200])

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

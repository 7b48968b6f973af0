"""Milestone 04 under attack: what a hostile or broken peer can make the gateway spend.

Each test plays one attack from issue 11 with raw sockets and checks the bound that defeats
it: memory per connection (peak RSS, plain build only, like the streaming tests), what the
gateway accepts from a peer that will not read, and that an innocent client next to the
attacker is still served. The attacks are bounded in bytes and time; every wait polls to a
deadline."""
import json
import select
import socket
import threading
import time

import pytest

from gwtest import admin, config, env
from gwtest.env import KiB, MiB
from gwtest.http import Reply, request_bytes
from gwtest.jwt import JWT_SECRET, jwt_token
from gwtest.wait import Deadline, wait_until

GW = "gw04"


def proxy(gateway, upstreams, routes=None, http=None, **kw):
    """gw04 with one http listener `edge` and the admin API (for /metrics)."""
    return gateway(GW, config.http_proxy(upstreams, routes=routes, http=http,
                                         admin={"address": config.Port("admin")}, **kw))


def requests_seen(gw):
    return admin.scrape(gw.addr("admin")).get("gw_http_requests_total")


def settle(gw, quiet=0.5, limit=30.0):
    """Polls /metrics until gw_http_requests_total stops moving for QUIET seconds: the
    gateway has done all it will do with what the attackers sent (the kernels hold many MiB
    of it, so 'the client could send' proves nothing). Returns the count."""
    last = {"n": -1, "since": Deadline(0)}

    def still():
        n = requests_seen(gw)
        if n != last["n"]:
            last["n"], last["since"] = n, Deadline(0)
            return False
        return last["since"].elapsed() >= quiet

    wait_until(still, env.timeout(limit), "the gateway to stop taking requests from the attacker",
               describe=lambda: "gw_http_requests_total still moving: %s" % last["n"], interval=0.05)
    return last["n"]


def small_buffers_socket(rcvbuf=4 * KiB, sndbuf=64 * KiB):
    """A client socket whose kernel buffers are small, so that what the gateway queues for
    it is not hidden in the client's kernel."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    return s


def flood(sock, unit, total, quiet=1.0):
    """Sends UNIT repeatedly (up to TOTAL bytes, whole units), never reading, until the peer
    stops taking bytes for QUIET seconds or TOTAL is reached. Returns the bytes sent."""
    sock.setblocking(False)
    blob = unit * max(1, (64 * KiB) // len(unit))
    total -= total % len(unit)
    sent, pos = 0, 0  # pos: where in BLOB the stream stands (a partial send continues there)
    while sent < total:
        _, w, _ = select.select([], [sock], [], env.timeout(quiet))
        if not w:
            break  # the gateway stopped reading us
        try:
            n = sock.send(blob[pos: pos + min(len(blob) - pos, total - sent)])
        except BlockingIOError:
            continue
        except OSError:
            break
        sent += n
        pos = (pos + n) % len(blob)
    sock.setblocking(True)
    return sent


def peak_growth(gw):
    before, after = gw.ready_rss, gw.rss()
    return after["VmHWM"] - before["VmRSS"]


# ---- a client that pipelines and never reads ---------------------------------------------


@pytest.mark.gw_timeout(120)
def test_pipelining_client_that_never_reads_is_not_read(gateway, backend, http_client, transcript):
    """40 MiB of pipelined requests answered locally (404) grew the process to ~500 MB:
    nothing stopped reading a client whose answers piled up. Now the gateway stops reading
    it once its queue passes high_water, so it takes only what the kernels buffer."""
    b = backend.http()
    gw = proxy(gateway, b, routes=[config.route("app", name="app", path_prefix="/app")])
    unit = request_bytes("GET", "/nothing-here")
    total = env.scaled_bytes(16 * MiB)
    s = small_buffers_socket()
    s.connect(gw.addr("edge"))
    sent = flood(s, unit, total)
    handled = settle(gw)
    transcript.note("the attacker sent %.1f MiB (%d requests); the gateway handled %d" % (
        sent / MiB, sent // len(unit), handled))
    # What the client's kernel takes (a few KiB here) and the gateway's send buffer (up to
    # tcp_wmem's 4 MiB, ~16k answers) hold, plus high_water of queued answers: far below the
    # ~470k requests sent.
    assert handled < 40000, (
        "the gateway answered %d of %d pipelined requests from a client that reads none of its "
        "answers: reading must stop while the client's queue is above high_water" % (
            handled, sent // len(unit)))
    # Its answers are intact and in order: read a few.
    s.settimeout(env.timeout(5))
    got = b""
    while got.count(b"HTTP/1.1 404") < 5:
        chunk = s.recv(4096)
        assert chunk, "the gateway closed the pipelining client: %r" % got[:200]
        got += chunk
    assert got.startswith(b"HTTP/1.1 404"), got[:200]
    s.close()
    if env.rss_checks():
        growth = peak_growth(gw)
        transcript.note("peak RSS growth %.1f MiB" % (growth / MiB))
        assert growth < 16 * MiB, "peak RSS grew by %.1f MiB for one pipelining client" % (growth / MiB)
    # An innocent client is served.
    c = http_client(gw)
    assert c.get("/app/ok").status == 200


# What one connection may keep queued (README, operator guide): high_water + chunk_size +
# 2 x the head limit, with the defaults 64 + 16 + 32 KiB, plus its exchange state (two
# parsers' heads, a read chunk: ~40 KiB).
PER_CONNECTION_BOUND = (64 + 16 + 32 + 40) * KiB


@pytest.mark.gw_timeout(120)
def test_pipelining_memory_per_connection_within_the_formula(gateway, backend, http_client, transcript):
    """Many pipelining clients that never read: the gateway's memory grows by at most the
    documented bound per connection (plus the allocator's slack), not by what they send."""
    if not env.rss_checks():
        pytest.skip("RSS bounds on the plain build only")
    b = backend.http()
    gw = proxy(gateway, b, routes=[config.route("app", name="app", path_prefix="/app")])
    n = 32
    socks = []
    for _ in range(n):
        s = small_buffers_socket()
        s.connect(gw.addr("edge"))
        socks.append(s)
    unit = request_bytes("GET", "/nothing-here")
    sent = [0] * n

    def attack(i):
        sent[i] = flood(socks[i], unit, 1 * MiB)

    threads = [threading.Thread(target=attack, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(env.timeout(60))
    handled = settle(gw)
    growth = peak_growth(gw)
    limit = n * PER_CONNECTION_BOUND + 4 * MiB
    transcript.note("%d clients sent %.1f MiB; %d requests handled; peak RSS growth %.1f MiB (limit %.1f)" % (
        n, sum(sent) / MiB, handled, growth / MiB, limit / MiB))
    assert growth < limit, "peak RSS grew by %.1f MiB for %d pipelining clients (bound %.1f MiB)" % (
        growth / MiB, n, limit / MiB)
    for s in socks:
        s.close()
    assert http_client(gw).get("/app/ok").status == 200


@pytest.mark.gw_timeout(120)
def test_pipelined_small_responses_do_not_pin_the_pool(gateway, backend, http_client, transcript):
    """Proxied, each small response pinned the 16 KiB chunk it was read into: ~0.9 MB of
    pipelined GETs from a client that does not read pinned all of buffers.max_memory (once
    the kernel's send buffer was full), and other clients' reads failed (ENOBUFS). Small
    responses are copied now (1000 bytes here, under the writer's copy limit), what a queued
    write keeps alive is charged to its client, and the pool keeps room for everyone."""
    b = backend.http(handler=lambda req: Reply.fixed(200, b"x" * 1000))
    gw = proxy(gateway, b, buffers={"max_memory": "4MiB"})
    attackers = []
    for _ in range(2):
        s = small_buffers_socket()
        s.connect(gw.addr("edge"))
        attackers.append(s)
    sent = [0, 0]

    def attack(i):
        sent[i] = flood(attackers[i], request_bytes("GET", "/small"), 2 * MiB)

    threads = [threading.Thread(target=attack, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(env.timeout(60))
    handled = settle(gw)
    m = admin.scrape(gw.addr("admin"))
    in_use = m.get("gw_buffer_pool_bytes", state="in_use")
    transcript.note("attackers sent %s bytes; the gateway handled %d requests; pool in use %.0f KiB" % (
        sent, handled, in_use / KiB))
    # The pool was never exhausted, and the attackers hold little of it: what their queued
    # answers keep is charged to them, and they are not read past high_water.
    assert m.get("gw_buffer_exhausted_total") == 0, "the pool ran dry while the attackers ran"
    assert in_use < 1 * MiB, "the attackers pin %.0f KiB of buffers" % (in_use / KiB)
    # And a victim's requests are read and answered.
    c = http_client(gw)
    for i in range(20):
        r = c.get("/victim/%d" % i, timeout=env.timeout(3))
        assert r.status == 200, r
    assert admin.scrape(gw.addr("admin")).get("gw_buffer_exhausted_total") == 0
    for s in attackers:
        s.close()
    if env.rss_checks():
        growth = peak_growth(gw)
        transcript.note("peak RSS growth %.1f MiB" % (growth / MiB))
        assert growth < 24 * MiB, "peak RSS grew by %.1f MiB" % (growth / MiB)


# ---- tiny chunks toward an upstream that stops reading --------------------------------------


class NeverReads:
    """An upstream that accepts connections and never reads from them."""

    def __init__(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Small before listen, so accepted sockets advertise a small window from the start.
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * KiB)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.address_str = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.lsock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                continue
            self.conns.append(conn)

    def close(self):
        self.stop = True
        self.t.join(2)
        for c in self.conns:
            c.close()
        self.lsock.close()


@pytest.mark.gw_timeout(120)
def test_tiny_chunks_toward_a_stalled_upstream_stay_bounded(gateway, http_client, transcript):
    """1-byte chunks cost one write each, and backpressure counted payload bytes only: 20
    connections of them toward an upstream that stopped reading grew RSS by ~21 MiB (~1 MiB
    each, where the buffer settings promise ~64 KiB). Now a read's chunks leave as one, and
    the queue is charged what it keeps alive."""
    up = NeverReads()
    try:
        gw = proxy(gateway, up, http={"body_timeout": "60s"})
        n = 20
        socks = []
        head = (b"POST /upload HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(n):
            s = socket.create_connection(gw.addr("edge"))
            s.sendall(head)
            socks.append(s)
        sent = [0] * n

        def attack(i):
            sent[i] = flood(socks[i], b"1\r\nx\r\n", env.scaled_bytes(8 * MiB), quiet=2.0)

        threads = [threading.Thread(target=attack, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(env.timeout(90))
        # A read's chunks leave as one chunk, so the upstream's kernel may well take all of
        # it (6:1 smaller); what matters is what the gateway itself holds.
        transcript.note("each connection got %.1f MiB in on average" % (sum(sent) / n / MiB))
        if env.rss_checks():
            growth = peak_growth(gw)
            transcript.note("peak RSS growth %.1f MiB for %d connections" % (growth / MiB, n))
            assert growth < 12 * MiB, "peak RSS grew by %.1f MiB for %d connections of 1-byte chunks" % (
                growth / MiB, n)
        for s in socks:
            s.close()
    finally:
        up.close()


# ---- trailers -------------------------------------------------------------------------------


def test_request_trailers_cannot_inject_fields(gateway, backend, http_client):
    """A valid token for alice, then trailers claiming to be admin, from 10.0.0.1, with
    another token, a Content-Length and a Host: all of them reached the upstream. Trailers
    pass now only by the listener's allow-list, and never a field the head's checks guard."""
    b = backend.http()
    mw = [{"jwt": {"secret": JWT_SECRET, "claims": {"sub": "X-User-Id"}}}]
    gw = proxy(gateway, b, routes=[config.route(name="secure", middleware=mw)],
               http={"forward_trailers": ["X-Checksum"]})
    c = http_client(gw)
    tok = jwt_token({"sub": "alice", "exp": int(time.time()) + 600})
    c.send(request_bytes("POST", "/transfer", [("Authorization", "Bearer " + tok),
                                                ("Transfer-Encoding", "chunked")]))
    c.send_chunked([b"amount=100"], trailers=[
        ("X-User-Id", "admin"), ("X-Forwarded-For", "10.0.0.1"), ("Authorization", "Bearer forged"),
        ("Content-Length", "0"), ("Host", "internal.example"), ("X-Checksum", "abc123")])
    r = c.read_response()
    assert r.status == 200, r
    doc = r.json()
    assert [k.lower() for k, _ in doc["trailers"]] == ["x-checksum"], \
        "only the allow-listed trailer may reach the upstream: %s" % doc["trailers"]
    assert [v for k, v in doc["headers"] if k.lower() == "x-user-id"] == ["alice"], doc["headers"]


def test_trailers_dropped_by_default_both_ways(gateway, backend, http_client):
    def handler(req):
        r = Reply.generated(1000, seed=5, chunked=True)
        r.trailers = [("X-Sum", "s1"), ("Set-Cookie", "session=evil")]
        return r

    b = backend.http(handler=handler)
    gw = proxy(gateway, b)
    c = http_client(gw)
    c.send(request_bytes("POST", "/up", [("Transfer-Encoding", "chunked")]))
    c.send_chunked([b"data"], trailers=[("X-Sum", "abc")])
    r = c.read_response()
    assert r.status == 200 and r.body_len == 1000, r
    assert r.trailers == [], "no forward_trailers: response trailers are dropped: %s" % r.trailers
    assert b.last().trailers == [], "no forward_trailers: request trailers are dropped"


# ---- slow and departed clients --------------------------------------------------------------


def test_request_body_deadline_408(gateway, backend, http_client, transcript):
    """body_timeout measures silence only: a byte every so often holds an upstream connection
    for ever. request_body_deadline bounds the whole body."""
    b = backend.http()
    gw = proxy(gateway, b, http={"body_timeout": "30s", "request_body_deadline": "1s"})
    c = http_client(gw)
    c.send(request_bytes("POST", "/slow", [("Content-Length", "1000")]))
    started = Deadline(0)
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            try:
                c.sock.send(b"x")
            except OSError:
                return
            stop.wait(0.2)  # allowed-sleep: the slow client's pace

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        r = c.read_response(timeout=env.timeout(10))
    finally:
        stop.set()
        t.join(5)
    assert r.status == 408 and b"deadline" in r.body, r
    assert started.elapsed() < env.timeout(5), "the deadline should end it, not body_timeout"
    transcript.note("408 after %.2fs" % started.elapsed())


def test_request_buffering_slow_small_bodies_hold_no_backend(gateway, backend, http_client):
    """1,000 slow bodies became 1,000 backend connections. With request_buffering, a body up
    to the size is read whole before a backend is picked."""
    b = backend.http()
    gw = proxy(gateway, b, routes=[config.route("app", name="buffered", request_buffering="64KiB")])
    n = 20
    clients = []
    for i in range(n):
        c = http_client(gw)
        c.send(request_bytes("POST", "/slow/%d" % i, [("Content-Length", "3000")]))
        c.send(b"a" * 1000)
        clients.append(c)
    # Every body is incomplete: no backend connection and no request yet. (A request that
    # reached the backend would show within this poll; none may.)
    probe = http_client(gw)
    assert probe.get("/probe").status == 200  # the gateway is serving, and read what came
    assert b.requests == 1 and b.paths() == ["/probe"], "an incomplete body reached the backend: %s" % b.paths()
    assert b.accepted == 1, "%d backend connections for one complete request" % b.accepted
    for c in clients:
        c.send(b"b" * 2000)
    for i, c in enumerate(clients):
        doc = c.read_response().json()
        assert (doc["target"], doc["body_len"]) == ("/slow/%d" % i, 3000), doc


def test_request_buffering_answers_expect_100(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b, routes=[config.route("app", name="buffered", request_buffering="64KiB")])
    c = http_client(gw)
    c.send(request_bytes("POST", "/expect", [("Content-Length", "5"), ("Expect", "100-continue")]))
    head = c.read_head(timeout=env.timeout(5))
    assert head.status == 100, "the gateway should invite the body itself: %r" % head
    c.send(b"hello")
    doc = c.read_response().json()
    assert doc["body_len"] == 5
    assert not [v for k, v in doc["headers"] if k.lower() == "expect"], "Expect went upstream: %s" % doc["headers"]


def test_request_buffering_larger_bodies_stream(gateway, backend, http_client):
    """Announced larger than request_buffering: streams as usual. Chunked and longer than
    it: what was buffered goes first, the rest streams after it."""
    from gwtest import data as gwdata
    b = backend.http()
    gw = proxy(gateway, b, routes=[config.route("app", name="buffered", request_buffering="16KiB")])
    c = http_client(gw)
    n = 1 * MiB + 3
    c.send(request_bytes("POST", "/big", [("Content-Length", str(n))]))
    c.send_data(n, 11)
    doc = c.read_response().json()
    assert (doc["body_len"], doc["body_sha256"]) == (n, gwdata.sha256_of(n, 11))
    c.send(request_bytes("POST", "/bigchunked", [("Transfer-Encoding", "chunked")]))
    c.send_chunked(gwdata.chunks(n, 12))
    doc = c.read_response().json()
    assert (doc["body_len"], doc["body_sha256"]) == (n, gwdata.sha256_of(n, 12))


def test_client_eof_before_response_aborts_exchange(gateway, backend, http_client, tmp_path):
    """A client that half-closes before any answer has left: the exchange is aborted (499 in
    the access log) and its upstream connection closed, instead of holding it for nobody."""
    release = threading.Event()
    b = backend.http(handler=lambda req: Reply.delayed(wait=release))
    path = str(tmp_path / "access.log")
    gw = proxy(gateway, b, routes=[config.route(name="logged", middleware=[{"access_log": {"file": path}}])])
    try:
        c = http_client(gw)
        c.send(request_bytes("GET", "/gone"))
        b.wait_requests(1)
        c.sock.shutdown(socket.SHUT_WR)
        assert c.wait_closed(timeout=env.timeout(3)) in ("eof", "reset"), \
            "the gateway should close a client that left before its answer"

        def logged():
            try:
                with open(path) as f:
                    return [json.loads(x) for x in f.read().splitlines()]
            except FileNotFoundError:
                return []

        recs = wait_until(logged, env.timeout(5), "the access log line")
        assert recs[0]["status"] == 499, recs
    finally:
        release.set()
    # The aborted exchange's upstream connection was closed, not pooled: the next request
    # needs a new one.
    assert http_client(gw).get("/next").status == 200
    assert b.accepted == 2, "the aborted exchange's upstream connection was reused"


# ---- heads two parsers could read differently -------------------------------------------------


# Field names that are not tokens (": chunked", ":authority: x"): 400, in
# conformance/04/smuggle_field_names.vtc.


def test_http_1_2_is_handled_as_1_1(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b)
    c = http_client(gw)
    c.send(b"GET /v12 HTTP/1.2\r\nHost: gw.test\r\n\r\n")
    r = c.read_response()
    assert r.status == 200, "RFC 9110 2.5: a higher 1.x minor is handled as 1.1: %r" % r
    assert b.last().version == "1.1"
    c2 = http_client(gw)
    c2.send(b"GET /v2 HTTP/2.0\r\nHost: gw.test\r\n\r\n")
    assert c2.read_response().status == 505


def test_bodiless_responses_lose_framing_fields(gateway, backend, http_client):
    """Content-Length on an upstream's 204 reached the client (RFC 9110 8.6 forbids it)."""
    b = backend.http(handler=lambda req: Reply.raw_bytes(
        b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-Ok: 1\r\n\r\n"))
    gw = proxy(gateway, b)
    c = http_client(gw)
    r = c.get("/nothing")
    assert r.status == 204 and r.header("X-Ok") == "1", r
    assert r.header("Content-Length") is None and r.header("Transfer-Encoding") is None, r

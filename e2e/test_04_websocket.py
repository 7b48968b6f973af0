"""Milestone 04 end to end: Upgrade tunnels (htunnel.c). A route that allows `websocket`
forwards an Upgrade request with its Upgrade and Connection: upgrade; the backend's 101 turns
the client connection and the upstream connection into a tunnel driven by 01's state
machine (half-close, backpressure, tunnel_idle_timeout).

The WebSocket backend is python3-websockets (asyncio, in a thread of its own) and records
each handshake's request headers; the client is python3-websockets too, with max_size raised
for the 16 MiB message. Raw-socket backends play what a library would not: a 101 and a first
frame in one write, a 101 for a request whose Upgrade was stripped. Every wait polls to a
deadline (gwtest.wait)."""
import asyncio
import json
import os
import socket
import ssl
import threading

import pytest

websockets = pytest.importorskip("websockets")

from gwtest import admin, config, env  # noqa: E402
from gwtest.env import MiB  # noqa: E402
from gwtest.wait import wait_until  # noqa: E402

GW = "gw04"
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
WS_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


# ---- backends ------------------------------------------------------------------------------


class WsEcho:
    """A WebSocket echo server (python3-websockets) on a loop in its own thread. .heads: the
    request headers of each handshake, as a list of (name, value)."""

    def __init__(self):
        self.heads = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "websocket backend did not start"

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def echo(ws, path=None):
            try:
                async for msg in ws:
                    await ws.send(msg)
            except websockets.ConnectionClosed:
                pass

        async def record(path, headers):
            self.heads.append(list(headers.raw_items()))
            return None

        async def main():
            self.server = await websockets.serve(echo, "127.0.0.1", 0, max_size=None,
                                                 process_request=record)
            self.port = self.server.sockets[0].getsockname()[1]
            self.ready.set()

        self.loop.run_until_complete(main())
        self.loop.run_forever()

    @property
    def address_str(self):
        return "127.0.0.1:%d" % self.port

    def close(self):
        async def stop():
            self.server.close()
            await self.server.wait_closed()
        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


@pytest.fixture
def ws_backend():
    b = WsEcho()
    yield b
    b.close()


class RawBackend:
    """A TCP backend that reads one request head and runs SCRIPT(conn, head) in a thread."""

    def __init__(self, script):
        self.script = script
        self.heads = []
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.address_str = "127.0.0.1:%d" % self.port
        self.conns = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = conn.recv(65536)
                if not d:
                    return
                buf += d
            head, rest = buf.split(b"\r\n\r\n", 1)
            self.heads.append(head.decode("latin-1"))
            self.script(conn, head.decode("latin-1"), rest)
        except OSError:
            pass

    def close(self):
        self.lsock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


@pytest.fixture
def raw_backend():
    made = []

    def make(script):
        b = RawBackend(script)
        made.append(b)
        return b
    yield make
    for b in made:
        b.close()


def ws_proxy(gateway, upstream, http=None, routes=None, listener=None, **top):
    cfg = config.http_proxy(upstream, http=http, listener=listener,
                            routes=routes or [config.route("app", name="ws", websocket=True)], **top)
    cfg["admin"] = {"address": config.Port("admin")}
    return gateway(GW, cfg)


def url(gw, path="/chat", scheme="ws"):
    return "%s://%s:%d%s" % ((scheme,) + gw.addr("edge") + (path,))


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def frame(payload, opcode=1, mask=None):
    """One unfragmented WebSocket frame (RFC 6455 5.2): masked when MASK (4 bytes)."""
    n = len(payload)
    b0 = 0x80 | opcode
    if n < 126:
        hdr = bytes([b0, (0x80 if mask else 0) | n])
    elif n < 65536:
        hdr = bytes([b0, (0x80 if mask else 0) | 126]) + n.to_bytes(2, "big")
    else:
        hdr = bytes([b0, (0x80 if mask else 0) | 127]) + n.to_bytes(8, "big")
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        hdr += mask
    return hdr + payload


def upgrade_request(path="/chat", proto="websocket", extra=""):
    return ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: %s\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n" % (
                path, proto, WS_KEY, extra)).encode()


def read_until(sock, n_or_marker, timeout=None):
    sock.settimeout(timeout or env.timeout(5))
    buf = b""
    while True:
        if isinstance(n_or_marker, bytes) and n_or_marker in buf:
            return buf
        if isinstance(n_or_marker, int) and len(buf) >= n_or_marker:
            return buf
        d = sock.recv(65536)
        if not d:
            return buf
        buf += d


def header_names(head):
    return [line.split(":", 1)[0].strip().lower() for line in head.split("\r\n")[1:] if ":" in line]


def scrape(gw):
    return admin.scrape(gw.addr("admin"))


# ---- echo through the gateway ------------------------------------------------------------


def test_ws_echo_text_binary_and_16mib(gateway, ws_backend):
    gw = ws_proxy(gateway, ws_backend)
    big = os.urandom(16 * MiB)

    async def go():
        async with websockets.connect(url(gw), max_size=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01binary")
            assert await ws.recv() == b"\x00\x01binary"
            await ws.send(big)
            got = await asyncio.wait_for(ws.recv(), env.timeout(30))
            assert got == big, "the 16 MiB message came back changed (%d bytes)" % len(got)

    run(go())
    names = [k.lower() for k, _ in ws_backend.heads[0]]
    assert "upgrade" in names and "sec-websocket-key" in names, ws_backend.heads[0]
    conn = [v for k, v in ws_backend.heads[0] if k.lower() == "connection"]
    assert conn == ["upgrade"], "the backend should see Connection: upgrade, got %r" % conn


def test_ws_ping_pong_and_close_handshake(gateway, ws_backend):
    gw = ws_proxy(gateway, ws_backend)

    async def go():
        ws = await websockets.connect(url(gw), max_size=None)
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, env.timeout(5))  # the backend's pong came back through
        await ws.close(code=4001, reason="done here")
        assert ws.close_code == 4001, "the backend's close frame should echo our code: %r" % ws.close_code
        assert ws.close_reason == "done here"

    run(go())


def test_tunnel_half_close_each_way(gateway, raw_backend):
    """The client's FIN reaches the backend as a FIN while the backend still sends; then the
    backend's last bytes and FIN reach the client (01's half-close rules)."""
    saw_eof = threading.Event()

    def script(conn, head, rest):
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + WS_ACCEPT.encode() + b"\r\n\r\n")
        got = rest
        while True:
            d = conn.recv(65536)
            if not d:
                break
            got += d
        saw_eof.set()
        conn.sendall(b"after your FIN: " + got)
        conn.shutdown(socket.SHUT_WR)

    b = raw_backend(script)
    gw = ws_proxy(gateway, b)
    s = socket.create_connection(gw.addr("edge"))
    s.sendall(upgrade_request())
    head = read_until(s, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    s.sendall(b"last words")
    s.shutdown(socket.SHUT_WR)
    wait_until(saw_eof.is_set, env.timeout(5), "the backend to see the client's FIN")
    rest = head.split(b"\r\n\r\n", 1)[1]
    while True:
        d = s.recv(65536)
        if not d:
            break
        rest += d
    assert rest == b"after your FIN: last words", rest
    s.close()


# ---- bytes that come with the heads --------------------------------------------------------


def test_101_and_first_frame_in_one_write(gateway, raw_backend):
    first = frame(b"welcome")

    def script(conn, head, rest):
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + WS_ACCEPT.encode() + b"\r\n\r\n" + first)
        conn.recv(10)  # until the client goes

    b = raw_backend(script)
    gw = ws_proxy(gateway, b)
    s = socket.create_connection(gw.addr("edge"))
    s.sendall(upgrade_request())
    buf = read_until(s, b"\r\n\r\n")
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    rest += read_until(s, len(first) - len(rest)) if len(rest) < len(first) else b""
    assert rest == first, "the frame sent with the 101 should follow it: %r" % rest
    lines = head.decode().lower().split("\r\n")
    assert "connection: upgrade" in lines and "upgrade: websocket" in lines, head
    s.close()


def test_client_frame_in_the_same_write_as_the_request(gateway, ws_backend):
    gw = ws_proxy(gateway, ws_backend)
    s = socket.create_connection(gw.addr("edge"))
    s.sendall(upgrade_request() + frame(b"early bird", mask=b"\x01\x02\x03\x04"))
    buf = read_until(s, b"early bird")
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert rest == frame(b"early bird"), "the echo of the frame sent with the request: %r" % rest
    s.close()


# ---- what a route that does not allow it gets ------------------------------------------------


def test_upgrade_on_a_route_without_websocket_is_a_plain_request(gateway, backend, http_client):
    b = backend.http()
    gw = ws_proxy(gateway, b, routes=[config.route("app", name="plain")])
    c = http_client(gw)
    r = c.request("GET", "/chat", headers=[("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                          ("Sec-WebSocket-Key", WS_KEY), ("Sec-WebSocket-Version", "13")])
    assert r.status == 200, r
    names = [k.lower() for k, _ in b.last().headers]
    assert "upgrade" not in names, "Upgrade reached the backend: %r" % b.last().headers
    assert "connection" not in names or "upgrade" not in [
        v.lower() for k, v in b.last().headers if k.lower() == "connection"]


def switching_backend(raw_backend):
    def script(conn, head, rest):
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        conn.recv(10)
    return raw_backend(script)


def test_101_for_a_stripped_upgrade_is_a_502(gateway, raw_backend, http_client):
    b = switching_backend(raw_backend)
    gw = ws_proxy(gateway, b, routes=[config.route("app", name="plain")])
    c = http_client(gw)
    r = c.request("GET", "/chat", headers=[("Connection", "Upgrade"), ("Upgrade", "websocket")])
    assert r.status == 502, r
    wait_until(lambda: b.heads, env.timeout(5), "the backend to get the request")
    assert "upgrade" not in header_names(b.heads[0]), b.heads[0]


def test_upgrade_on_a_post_with_a_body_is_stripped(gateway, backend, http_client):
    b = backend.http()
    gw = ws_proxy(gateway, b)
    c = http_client(gw)
    r = c.request("POST", "/chat", headers=[("Connection", "Upgrade"), ("Upgrade", "websocket")], body=b"x" * 10)
    assert r.status == 200, r
    assert "upgrade" not in [k.lower() for k, _ in b.last().headers], b.last().headers


@pytest.mark.parametrize("offer", ["h2c", "websocket, h2c", "H2C"])
def test_h2c_never_reaches_the_backend(gateway, backend, http_client, offer):
    b = backend.http()
    gw = ws_proxy(gateway, b, routes=[config.route("app", name="ws", upgrade=["websocket"])])
    c = http_client(gw)
    r = c.request("GET", "/", headers=[("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", offer),
                                      ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])
    assert r.status == 200, r
    names = [k.lower() for k, _ in b.last().headers]
    assert "upgrade" not in names and "http2-settings" not in names, b.last().headers


def test_two_upgrade_fields_are_stripped(gateway, backend, http_client):
    b = backend.http()
    gw = ws_proxy(gateway, b)
    c = http_client(gw)
    r = c.request("GET", "/", headers=[("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Upgrade", "h2c")])
    assert r.status == 200, r
    assert "upgrade" not in [k.lower() for k, _ in b.last().headers], b.last().headers


# ---- the tunnel's life: idle timeout, drain, metrics and the access log ----------------------


def read_to_end(sock, timeout):
    """What SOCK still receives, and how it ended: "eof" or "reset"."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            d = sock.recv(65536)
        except ConnectionResetError:
            return data, "reset"
        if not d:
            return data, "eof"
        data += d


def open_tunnel(gw):
    s = socket.create_connection(gw.addr("edge"))
    s.sendall(upgrade_request())
    head = read_until(s, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def access_records(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def logged_route(log):
    return [config.route("app", name="ws", websocket=True, middleware=[{"access_log": {"file": str(log)}}])]


def test_tunnel_idle_timeout_closes_it(gateway, ws_backend, tmp_path):
    log = tmp_path / "access.log"
    gw = ws_proxy(gateway, ws_backend, http={"tunnel_idle_timeout": "300ms"}, routes=logged_route(log))
    s = open_tunnel(gw)
    t0 = __import__("time").monotonic()
    data, end = read_to_end(s, env.timeout(10))
    took = __import__("time").monotonic() - t0
    assert end in ("eof", "reset") and took >= 0.25, "closed after %.2fs (%s)" % (took, end)
    recs = wait_until(lambda: access_records(log), env.timeout(5), "the tunnel's access log line")
    assert (recs[0]["status"], recs[0].get("end")) == (101, "idle_timeout"), recs[0]
    wait_until(lambda: scrape(gw).value("gw_tunnels_active") == 0, env.timeout(5), "gw_tunnels_active back to 0")


def test_tunnel_that_keeps_talking_outlives_the_idle_timeout(gateway, ws_backend):
    gw = ws_proxy(gateway, ws_backend, http={"tunnel_idle_timeout": "400ms"})

    async def go():
        async with websockets.connect(url(gw)) as ws:
            for i in range(8):  # 8 x 100 ms: twice the idle timeout, never idle that long
                await ws.send("tick %d" % i)
                assert await ws.recv() == "tick %d" % i
                await asyncio.sleep(0.1)  # allowed-sleep: the pace of a chatty client

    run(go())


def test_tunnel_metrics_and_access_log_line(gateway, ws_backend, tmp_path):
    log = tmp_path / "access.log"
    gw = ws_proxy(gateway, ws_backend, routes=logged_route(log))
    before = scrape(gw).value("gw_connections_active", listener="edge") or 0

    async def go():
        async with websockets.connect(url(gw), max_size=None) as ws:
            await ws.send(os.urandom(100000))  # random: permessage-deflate cannot shrink it
            assert len(await ws.recv()) == 100000
            m = scrape(gw)
            assert m.value("gw_tunnels_active") == 1, m.find("gw_tunnels_active")
            assert m.value("gw_tunnels_total") == 1
            assert m.value("gw_connections_active", listener="edge") == before + 1
            assert not access_records(log), "the access log line comes at the tunnel's end"
            await asyncio.sleep(0.3)  # allowed-sleep: the tunnel's duration, measured in the log

    run(go())
    recs = wait_until(lambda: access_records(log), env.timeout(5), "the tunnel's access log line")
    r = recs[0]
    assert r["status"] == 101 and r.get("end") is None, r
    assert r["bytes_in"] > 100000 and r["bytes_out"] > 100000, r
    assert r["latency_ms"] >= 300, "latency_ms is the tunnel's whole life, from the request head: %s" % r
    wait_until(lambda: scrape(gw).value("gw_tunnels_active") == 0, env.timeout(5), "gw_tunnels_active back to 0")


def test_drain_lets_a_tunnel_run_until_drain_timeout(gateway, ws_backend, tmp_path):
    import signal
    import time
    log = tmp_path / "access.log"
    gw = ws_proxy(gateway, ws_backend, routes=logged_route(log), drain_timeout="1s")
    s = open_tunnel(gw)
    t0 = time.monotonic()
    gw.signal(signal.SIGTERM)
    # Still a tunnel while draining: a frame goes and its echo comes back.
    s.sendall(frame(b"still here", mask=b"abcd"))
    assert read_until(s, frame(b"still here")).endswith(frame(b"still here"))
    data, end = read_to_end(s, env.timeout(10))
    took = time.monotonic() - t0
    assert took >= 0.9, "the tunnel was closed %.2fs after SIGTERM, before drain_timeout" % took
    assert gw.wait_exit(timeout=env.timeout(10)) == 0
    recs = wait_until(lambda: access_records(log), env.timeout(5), "the tunnel's access log line")
    assert (recs[0]["status"], recs[0]["end"]) == (101, "drain_timeout"), recs[0]


# ---- over a TLS listener (wss) -----------------------------------------------------------------


def test_wss_through_a_tls_listener(gateway, ws_backend, pki):
    from test_04_tls import client_ctx, tls_block
    cfg = config.http_proxy(ws_backend, routes=[config.route("app", name="ws", websocket=True)],
                            listener={"tls": tls_block(pki, None)})
    gw = gateway(GW, cfg)
    ctx = client_ctx(pki, alpn=None)
    big = os.urandom(4 * MiB)

    async def go():
        async with websockets.connect(url(gw, scheme="wss"), ssl=ctx, server_hostname="localhost",
                                      max_size=None) as ws:
            await ws.send("over tls")
            assert await ws.recv() == "over tls"
            await ws.send(big)
            assert await asyncio.wait_for(ws.recv(), env.timeout(30)) == big
            await ws.close(code=1000)

    run(go())


def test_tunnel_backpressure_bounds_what_waits_for_a_slow_client(gateway, raw_backend):
    """A backend that floods a client that does not read: the tunnel stops reading the
    backend past buffers.high_water (01's rule), so what the backend manages to send stays
    within the kernel's socket buffers plus high_water, and every byte still arrives."""
    total = 48 * MiB
    sent = [0]
    done = threading.Event()
    block = os.urandom(64 * 1024)

    def script(conn, head, rest):
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        while sent[0] < total:
            n = conn.send(block[:min(len(block), total - sent[0])])
            sent[0] += n
        done.set()
        conn.recv(10)

    b = raw_backend(script)
    gw = ws_proxy(gateway, b)
    s = socket.create_connection(gw.addr("edge"))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.sendall(upgrade_request())
    # Not reading: wait until the backend's sending stalls (no progress over a few polls).
    last = [-1, 0]

    def stalled():
        if sent[0] == last[0]:
            last[1] += 1
        else:
            last[0], last[1] = sent[0], 0
        return last[1] >= 20 or done.is_set()

    wait_until(stalled, env.timeout(20), "the backend's sends to stall", interval=0.05)
    assert not done.is_set() and sent[0] < 24 * MiB, \
        "the backend sent %d bytes to a client that reads nothing: the tunnel does not push back" % sent[0]
    got = 0
    s.settimeout(env.timeout(30))
    buf = read_until(s, b"\r\n\r\n")
    got = len(buf.split(b"\r\n\r\n", 1)[1])
    while got < total:
        d = s.recv(1 << 20)
        assert d, "the tunnel closed after %d of %d bytes" % (got, total)
        got += len(d)
    assert got == total
    s.close()


def test_declined_upgrade_is_an_ordinary_exchange_and_the_connection_goes_on(gateway, backend, http_client):
    """A tunnel request the backend answers with a 200 (it declined to switch): the client
    gets the 200, and its connection carries its next request as HTTP."""
    b = backend.http()
    gw = ws_proxy(gateway, b)
    c = http_client(gw)
    r = c.request("GET", "/chat", headers=[("Connection", "Upgrade"), ("Upgrade", "websocket")])
    assert r.status == 200, r
    assert [v.lower() for v in b.last().header_all("Upgrade")] == ["websocket"], b.last().headers
    r = c.request("GET", "/after")
    assert r.status == 200 and b.last().target == "/after", r
    m = scrape(gw)
    assert m.value("gw_tunnels_total") == 0, "a declined upgrade is no tunnel"

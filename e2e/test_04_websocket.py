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

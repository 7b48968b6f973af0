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

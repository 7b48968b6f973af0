"""Milestone 04 end to end: TLS termination on tcp listeners (build/bin/gw04, a `tls` block
on a `protocol: tcp` listener). 01's forwarder with a TLS stream on the client side (01's
picker `wrap` hook, 04's htls.c): the client speaks TLS to the gateway, the backend gets the
plaintext bytes, and no backend is connected before the client's handshake completed.

Clients are Python's ssl module over a socket; certificates come from the session fixture
`pki` (gwtest/certs.py). Backends are gwtest's plain TCP servers. Metrics come from /metrics
(gw_tls_handshakes_total, gw_tls_handshake_failures_total with listener="edge")."""
import hashlib
import os
import socket
import ssl

import pytest

from gwtest import admin, config, env
from gwtest import data as gwdata
from gwtest.env import KiB, MiB
from gwtest.wait import wait_until

GW = "gw04"


def tls_tcp_proxy(gateway, backend, pki, tls=None, **listener):
    """gw04 with one tcp listener `edge` terminating TLS towards BACKEND, and an admin listener."""
    t = {"certificates": [{"cert": pki.server_ec.cert, "key": pki.server_ec.key}]}
    t.update(tls or {})
    lst = {"tls": t}
    lst.update(listener)
    cfg = config.tcp_proxy(backend, listener=lst)
    cfg["admin"] = {"address": config.Port("admin")}
    return gateway(GW, cfg)


def client_ctx(pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca.cert)
    return ctx


def connect(gw, pki, session=None, ctx=None):
    """A TLS client socket to GW's edge listener, verified against the test CA."""
    ctx = ctx or client_ctx(pki)
    raw = socket.create_connection(gw.addr("edge"), timeout=env.timeout(10))
    return ctx.wrap_socket(raw, server_hostname="localhost", session=session)


def recv_exact(s, n):
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(min(256 * KiB, n - len(out)))
        assert chunk, "EOF after %d of %d bytes" % (len(out), n)
        out += chunk
    return bytes(out)


def metric(gw, family):
    return {tuple(sorted(d.items())): v for d, v in admin.scrape(gw.addr("admin")).find(family, listener="edge")}


def failures(gw):
    return {d["reason"]: v for d, v in admin.scrape(gw.addr("admin")).find(
        "gw_tls_handshake_failures_total", listener="edge")}


def test_tls_tcp_echo_round_trip_and_resumption(gateway, backend, pki):
    echo = backend.echo()
    gw = tls_tcp_proxy(gateway, echo, pki)
    ctx = client_ctx(pki)
    s = connect(gw, pki, ctx=ctx)
    assert s.version() == "TLSv1.2"
    assert s.selected_alpn_protocol() is None, "a tcp listener offers no ALPN by default"
    msg = b"hello through TLS on a tcp listener\n" + gwdata.make(300 * KiB, seed=5)
    s.sendall(msg)
    assert recv_exact(s, len(msg)) == msg, "the backend echoes the plaintext"
    session = s.session
    s.close()
    again = connect(gw, pki, session=session, ctx=ctx)
    assert again.session_reused, "the listener's session cache resumes the second connection"
    again.sendall(b"x")
    assert recv_exact(again, 1) == b"x"
    again.close()
    hs = {d["resumed"]: v for d, v in admin.scrape(gw.addr("admin")).find(
        "gw_tls_handshakes_total", listener="edge")}
    assert hs == {"false": 1, "true": 1}, hs
    assert echo.accepted == 2


def test_tls_tcp_no_backend_before_the_handshake(gateway, backend, pki):
    """A client that connects and never says hello gets no backend connection; it is closed
    after handshake_timeout and counted; a plaintext client is refused and counted."""
    echo = backend.echo()
    gw = tls_tcp_proxy(gateway, echo, pki, tls={"handshake_timeout": "300ms"})
    silent = socket.create_connection(gw.addr("edge"), timeout=env.timeout(10))
    plain = socket.create_connection(gw.addr("edge"), timeout=env.timeout(10))
    plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    for sock in (silent, plain):
        got = b""
        try:
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
        assert b"HTTP" not in got, "nothing of HTTP (nor of a backend) comes back"
        sock.close()
    wait_until(lambda: failures(gw).get("timeout", 0) >= 1, env.timeout(5),
               "the silent client counted as a handshake timeout", describe=lambda: failures(gw))
    wait_until(lambda: sum(v for r, v in failures(gw).items() if r not in ("timeout", "eof")) >= 1,
               env.timeout(5), "the plaintext client counted with BearSSL's reason",
               describe=lambda: failures(gw))
    assert echo.accepted == 0, "no backend was connected for clients that never completed a handshake"


def test_tls_tcp_half_close_by_fin_keeps_the_other_direction(gateway, backend, pki):
    """A client that ends its side with a TCP FIN (no close_notify) ends reads at the
    backend, and the backend's answer still comes back over TLS (tls_stream.h: a FIN
    without close_notify ends reads only)."""
    srv = backend.reply_after_eof()
    gw = tls_tcp_proxy(gateway, srv, pki)
    s = connect(gw, pki)
    n = 1 * MiB + 7
    data = gwdata.make(n, seed=9)
    s.sendall(data)
    # SSLSocket.shutdown would drop the TLS session; a FIN on a duplicate of the descriptor
    # ends the TCP write side under it, without a close_notify.
    with socket.socket(fileno=os.dup(s.fileno())) as dup:
        dup.shutdown(socket.SHUT_WR)
    want = ("%s %d\n" % (hashlib.sha256(data).hexdigest(), n)).encode()
    got = b""
    while len(got) < len(want):
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    assert got == want, "the backend saw EOF after the whole upload and its reply came back"
    s.close()


@pytest.mark.gw_timeout(120)
def test_tls_tcp_bulk_both_ways(gateway, backend, pki):
    """32 MiB echoed in 256 KiB steps (one thread: an SSL socket is not shared)."""
    echo = backend.echo()
    gw = tls_tcp_proxy(gateway, echo, pki)
    s = connect(gw, pki)
    step, steps = 256 * KiB, 128
    sent, back = hashlib.sha256(), hashlib.sha256()
    for i in range(steps):
        part = gwdata.make(step, seed=100 + i)
        sent.update(part)
        s.sendall(part)
        back.update(recv_exact(s, step))
    assert back.hexdigest() == sent.hexdigest(), "32 MiB echoed through TLS intact"
    s.close()

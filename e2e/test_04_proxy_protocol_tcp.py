"""Milestone 04 end to end: the PROXY protocol on tcp listeners and tcp upstreams (01's
forwarder with 01's picker hooks `header` and `hello`, filled by 04's hproxyproto.c).

Accept side: `listeners.X.proxy_protocol` on a `protocol: tcp` listener. The header is read
before the connection is admitted (03's per-client rate limit sees the carried address),
before a TLS handshake (tls on the listener) and before a passthrough's ClientHello; the
bytes after it are the client's stream. Send side: `upstreams.X.proxy_protocol: v1|v2` for
an upstream of a tcp listener: the header is the backend's first bytes on every connect.
The headers are built and checked in Python (gwtest/proxyproto.py), from the spec."""
import socket
import ssl
import struct

import pytest

from gwtest import admin, config, env
from gwtest.clients import closed_without_answer, tls_client_hello
from gwtest.proxyproto import PPEcho, v1, v2
from gwtest.wait import wait_until

GW = "gw04"


def tcp_pp(gateway, backend, accept=True, send=None, frm=("127.0.0.0/8",), timeout=None,
           listener=None, **top):
    """gw04 with one tcp listener `edge` towards BACKEND and an admin listener. ACCEPT: the
    listener reads a PROXY header (from FRM, within TIMEOUT); SEND: "v1"/"v2", the upstream
    sends one."""
    lst = dict(listener or {})
    if accept:
        pp = {"from": list(frm)}
        if timeout is not None:
            pp["timeout"] = timeout
        lst["proxy_protocol"] = pp
    cfg = config.tcp_proxy(backend, listener=lst, **top)
    if send is not None:
        cfg["upstreams"]["app"]["proxy_protocol"] = send
    cfg["admin"] = {"address": config.Port("admin")}
    return gateway(GW, cfg)


def counts(gw, listener="edge"):
    m = admin.scrape(gw.addr("admin"))
    return {d["result"]: v for d, v in m.find("gw_proxy_protocol_total", listener=listener)}


def wait_count(gw, result, n, listener="edge"):
    return wait_until(lambda: counts(gw, listener).get(result, 0) >= n, env.timeout(5),
                      "gw_proxy_protocol_total{result=%s} to reach %d" % (result, n),
                      describe=lambda: "counts: %s" % counts(gw, listener))


def connect(gw, name="edge"):
    return socket.create_connection(gw.addr(name), timeout=env.timeout(10))


def echo_round(s, data):
    """Sends DATA, half-closes, reads the echo to EOF."""
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return got
        got += chunk


def closed_after(gw, data):
    return closed_without_answer(gw.addr("edge"), data)


@pytest.mark.parametrize("inv,outv", [("v1", "v2"), ("v2", "v1")])
def test_tcp_pp_carried_address_reaches_the_backend(gateway, backend, inv, outv):
    """A header in (either version), the same client out (the other version): src is the
    carried client, dst the listener; the bytes that came after the header, in the same
    write, are the backend's first after its header; the echo comes back whole."""
    b = backend(PPEcho)
    gw = tcp_pp(gateway, b, send=outv)
    hdr = (v1 if inv == "v1" else v2)("203.0.113.9", "198.51.100.1", 40000, 443)
    with connect(gw) as s:
        assert echo_round(s, hdr + b"hello after the header") == b"hello after the header"
    got = b.headers[0]
    assert got["version"] == int(outv[1]) and got["command"] == "proxy", got
    assert got["src"] == ("203.0.113.9", 40000), got
    assert got["dst"] == tuple(gw.addr("edge")), got
    wait_count(gw, "accepted", 1)


def test_tcp_pp_header_in_pieces_then_data(gateway, backend, client):
    """The header a byte at a time (separate reads), then data: nothing of the header
    reaches the backend, nothing of the data is lost."""
    b = backend(PPEcho)
    gw = tcp_pp(gateway, b, send="v2")
    c = client(gw.addr("edge"))
    hdr = v2("2001:db8::5", "2001:db8::1", 5555, 80)
    for i in range(len(hdr)):
        c.send(hdr[i:i + 1])
    c.send(b"x" * 100000)
    c.shutdown_write()
    data, end = c.read_to_end(env.timeout(10))
    assert (end, data) == ("eof", b"x" * 100000)
    assert b.headers[0]["src"] == ("2001:db8::5", 5555)


def test_tcp_pp_real_client_sent_without_listener_header(gateway, backend):
    """No header in (a plain tcp listener), one out: src is the socket's peer."""
    b = backend(PPEcho)
    gw = tcp_pp(gateway, b, accept=False, send="v1")
    with connect(gw) as s:
        me = s.getsockname()
        assert echo_round(s, b"ping") == b"ping"
    got = b.headers[0]
    assert (got["family"], got["src"], got["dst"]) == ("TCP4", me, tuple(gw.addr("edge"))), got


def test_tcp_pp_forged_slow_and_bad_headers_never_reach_a_backend(gateway, backend):
    """From outside `from`: refused before a byte is read. A header that does not come in
    time, garbage, a client that leaves mid-header: closed and counted; no backend
    connection for any of them."""
    b = backend(PPEcho)
    gw = tcp_pp(gateway, b, frm=("10.0.0.0/8",))
    assert closed_after(gw, v1("203.0.113.9", "127.0.0.1", 1, 2) + b"data")
    wait_count(gw, "refused_from", 1)
    gw2 = tcp_pp(gateway, b, timeout="300ms")
    assert closed_after(gw2, b"PROXY TCP4 ")
    wait_count(gw2, "timeout", 1)
    assert closed_after(gw2, b"GET / HTTP/1.1\r\n\r\n")
    wait_count(gw2, "bad_signature", 1)
    with connect(gw2) as s:
        s.sendall(b"PROXY TCP4 1.2.3.4")
        s.shutdown(socket.SHUT_WR)
        assert s.recv(10) == b""
    wait_count(gw2, "closed", 1)
    assert b.accepted == 0


def test_tcp_pp_per_client_rate_limit_uses_the_carried_address(gateway, backend):
    """03's per-client rate limit on a tcp listener runs after the header: two carried
    addresses have a bucket each (the socket's address, 127.0.0.1, would share one)."""
    b = backend(PPEcho)
    rl = {"per_client": {"rate": 1, "burst": 1, "max_clients": 100}}
    gw = tcp_pp(gateway, b, send="v1", listener={"rate_limit": rl})
    a = v1("203.0.113.1", "127.0.0.1", 1000, 80)
    with connect(gw) as s:
        assert echo_round(s, a + b"one") == b"one"
    assert closed_after(gw, a + b"two"), "the second connection from .1 is over its burst"
    with connect(gw) as s:
        assert echo_round(s, v1("203.0.113.2", "127.0.0.1", 1000, 80) + b"three") == b"three"
    assert [h["src"][0] for h in b.headers] == ["203.0.113.1", "203.0.113.2"]


def test_tcp_pp_then_tls_on_the_listener(gateway, backend, pki):
    """tcp listener with tls and proxy_protocol: the header precedes the handshake, and the
    ClientHello that follows it in the same write is the TLS stream's."""
    b = backend(PPEcho)
    tls = {"certificates": [{"cert": pki.server_ec.cert, "key": pki.server_ec.key}]}
    gw = tcp_pp(gateway, b, send="v2", listener={"tls": tls})
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca.cert)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with connect(gw) as s:
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        s.sendall(v1("203.0.113.7", "127.0.0.1", 7777, 443) + out.read())  # one write
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                if out.pending:
                    s.sendall(out.read())
                data = s.recv(65536)
                assert data, "the gateway closed during the handshake"
                inc.write(data)
        if out.pending:
            s.sendall(out.read())
        obj.write(b"secret echo")
        s.sendall(out.read())
        got = b""
        while len(got) < len(b"secret echo"):
            inc.write(s.recv(65536))
            try:
                got += obj.read(65536)
            except ssl.SSLWantReadError:
                pass
    assert got == b"secret echo"
    assert b.headers[0]["src"] == ("203.0.113.7", 7777)


def test_tcp_pp_then_passthrough_routes_the_client_hello(gateway, backend):
    """A passthrough listener with proxy_protocol: the header, then the ClientHello in the
    same write; the hello is routed by its SNI, the routed upstream gets its own header
    (the carried client) and then the hello unchanged."""
    b = backend(PPEcho)
    hello = tls_client_hello("api.example.com")
    cfg = config.base()
    cfg["listeners"] = [{"name": "tls", "protocol": "tcp", "address": config.Port("tls"),
                         "proxy_protocol": {"from": ["127.0.0.0/8"]},
                         "tls_passthrough": {"routes": [{"sni": "api.example.com", "upstream": "api"}]}}]
    cfg["upstreams"] = {"api": {"backends": [{"address": b}], "proxy_protocol": "v1"}}
    cfg["admin"] = {"address": config.Port("admin")}
    gw = gateway(GW, cfg)
    with connect(gw, "tls") as s:
        assert echo_round(s, v2("203.0.113.3", "127.0.0.1", 3333, 443) + hello) == hello
    assert b.headers[0]["src"] == ("203.0.113.3", 3333)
    wait_count(gw, "accepted", 1, listener="tls")


def test_tcp_pp_sent_on_every_connect_attempt(gateway, backend):
    """An upstream whose first backend refuses: a connection that retries on the second
    sends that backend its header first, written anew for the attempt (01 writes the
    hello at each pick), never the client's bytes without it."""
    from gwtest.ports import fmt, refused_address
    b = backend(PPEcho)
    dead = fmt(refused_address())
    gw = tcp_pp(gateway, [dead, b], accept=False, send="v2")
    for i in range(4):
        with connect(gw) as s:
            assert echo_round(s, b"attempt %d" % i) == b"attempt %d" % i
    assert len(b.headers) == 4 and all(h["command"] == "proxy" for h in b.headers), b.headers
    m = admin.scrape(gw.addr("admin"))
    assert m.get("gw_backend_failures_total", upstream="app", backend=dead) >= 1, \
        "no connection tried the refusing backend first: nothing was retried"


def test_tcp_pp_header_longer_than_a_chunk_is_refused(gateway, backend):
    """01 keeps one chunk per connection in its header: with buffers.chunk_size 1KiB, a v2
    header of 1.5 KB (legal: a TLV the parser skips) cannot fit. Refused and counted as
    no_buffers, not buffered beyond the chunk; a short header still works there."""
    b = backend(PPEcho)
    gw = tcp_pp(gateway, b, send="v1", buffers={"chunk_size": "1KiB"})
    tlv = bytes([0xE0]) + struct.pack("!H", 1500) + b"x" * 1500
    assert closed_after(gw, v2("203.0.113.4", "127.0.0.1", 4444, 80, tlvs=tlv) + b"data")
    wait_count(gw, "no_buffers", 1)
    with connect(gw) as s:
        assert echo_round(s, v2("203.0.113.5", "127.0.0.1", 5555, 80) + b"ok") == b"ok"
    assert [h["src"] for h in b.headers] == [("203.0.113.5", 5555)]

"""Milestone 04 end to end: the PROXY protocol (v1 and v2) on http listeners
(listeners.*.proxy_protocol: {accept, from, timeout}) and towards upstreams
(upstreams.*.proxy_protocol: v1|v2).

The headers the tests send and check are built and parsed here, in Python, from the spec
(haproxy doc/proxy-protocol.txt), independently of common/proxyproto.c. Metrics come from
/metrics (gw_proxy_protocol_total{listener,result}). Workers: GW_WORKERS (2 under TSan, as
every e2e file)."""
import ipaddress
import json
import socket
import ssl
import time

import pytest

from gwtest import admin, config, env
from gwtest.backends import Server
from gwtest.clients import closed_without_answer
from gwtest.proxyproto import read_pp, v1, v2
from gwtest.wait import wait_until

GW = "gw04"


class PPBackend(Server):
    """An HTTP backend behind a PROXY header: parses the header (read_pp), then answers every
    request on the connection with 200 and "ok". Records, per connection, the header and the
    request paths it carried."""

    kind = "ppback"

    def __init__(self, transcript):
        self.conns_seen = []  # [(header dict, [paths])]
        super().__init__(transcript)

    def handle(self, conn, ch):
        hdr = read_pp(conn)
        ch.event("PROXY header %r" % hdr)
        rec = (hdr, [])
        with self.lock:
            self.conns_seen.append(rec)
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            rec[1].append(head.split(b" ")[1].decode())
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


# ---- the gateway ---------------------------------------------------------------------------------


def pp_proxy(gateway, upstreams, accept="any", frm=("127.0.0.0/8",), timeout=None, routes=None,
             listener=None, **kw):
    pp = {"accept": accept, "from": list(frm)}
    if timeout is not None:
        pp["timeout"] = timeout
    lst = {"proxy_protocol": pp}
    lst.update(listener or {})
    cfg = config.http_proxy(upstreams, routes=routes, listener=lst, **kw)
    cfg["admin"] = {"address": config.Port("admin")}
    return gateway(GW, cfg)


def counts(gw):
    m = admin.scrape(gw.addr("admin"))
    return {d["result"]: v for d, v in m.find("gw_proxy_protocol_total", listener="edge")}


def wait_count(gw, result, n):
    return wait_until(lambda: counts(gw).get(result, 0) >= n, env.timeout(5),
                      "gw_proxy_protocol_total{result=%s} to reach %d" % (result, n),
                      describe=lambda: "counts: %s" % counts(gw))


def connect(gw):
    return socket.create_connection(gw.addr("edge"), timeout=env.timeout(10))


def read_response(s):
    """Reads one Connection: close response to EOF: (status, headers dict lower-cased, body)."""
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding") == "chunked":
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return status, hdrs, body


def request(path="/", extra=b""):
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: pp.test\r\nConnection: close\r\n" + extra + b"\r\n"


def echo_headers(body):
    doc = json.loads(body)
    return [(k.lower(), v) for k, v in doc["headers"]]


def ask(gw, header, path="/", pieces=None, extra=b""):
    """Sends HEADER then a request (in one write, or split at PIECES), returns the response."""
    data = header + request(path, extra)
    with connect(gw) as s:
        if pieces is None:
            s.sendall(data)
        else:
            last = 0
            for p in list(pieces) + [len(data)]:
                s.sendall(data[last:p])
                last = p
                time.sleep(0.02)  # allowed-sleep: separate reads are the point here, not a readiness wait
        return read_response(s)


def closed_after(gw, data):
    return closed_without_answer(gw.addr("edge"), data)


# ---- accept side ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_pp_carried_address_is_the_client(gateway, backend, version, tmp_path):
    """The header and the request in one write: the request is served (the bytes after the
    header are kept) and the carried address is X-Forwarded-For, X-Real-IP and the access
    log's client."""
    b = backend.http()
    log = tmp_path / "access.log"
    mw = [{"forwarded": {"x_real_ip": True}}, {"access_log": {"file": str(log)}}]
    gw = pp_proxy(gateway, b, accept=version, routes=[config.route(name="r", middleware=mw)])
    hdr = (v1 if version == "v1" else v2)("203.0.113.7", "198.51.100.1", 51200, 443)
    status, _, body = ask(gw, hdr, "/one")
    assert status == 200, body
    h = echo_headers(body)
    assert ("x-forwarded-for", "203.0.113.7") in h, h
    assert ("x-real-ip", "203.0.113.7") in h, h
    wait_until(lambda: log.exists() and log.read_text().strip(), env.timeout(5), "an access log line")
    rec = json.loads(log.read_text().splitlines()[0])
    assert rec["client"].startswith("203.0.113.7"), rec
    wait_count(gw, "accepted", 1)


def test_pp_v2_tcp6_and_pieces(gateway, backend):
    """A v2 TCP6 header sent in pieces (the read is resumed), the request after it."""
    b = backend.http()
    gw = pp_proxy(gateway, b, accept="v2")
    hdr = v2("2001:db8::42", "2001:db8::1", 40000, 80)
    status, _, body = ask(gw, hdr, pieces=[5, 17, len(hdr) - 3, len(hdr) + 4])
    assert status == 200, body
    assert ("x-forwarded-for", "2001:db8::42") in echo_headers(body)


def test_pp_local_keeps_the_socket_address(gateway, backend):
    """v2 LOCAL (a health check from the balancer): the connection's own address stays."""
    b = backend.http()
    gw = pp_proxy(gateway, b)
    status, _, body = ask(gw, v2(None, None, 0, 0, command=0))
    assert status == 200
    assert ("x-forwarded-for", "127.0.0.1") in echo_headers(body)
    wait_count(gw, "accepted_local", 1)


def test_pp_forged_header_from_outside_from_is_refused(gateway, backend):
    """A peer outside `from` is closed before anything is read, and counted."""
    b = backend.http()
    gw = pp_proxy(gateway, b, frm=["10.0.0.0/8"])
    assert closed_after(gw, v1("203.0.113.7", "10.0.0.1", 1, 80) + request())
    wait_count(gw, "refused_from", 1)
    assert b.requests == 0
    assert counts(gw).get("accepted", 0) == 0


def test_pp_garbage_and_wrong_version_are_closed(gateway, backend):
    b = backend.http()
    gw = pp_proxy(gateway, b, accept="v2")
    for data in (request(), v1("203.0.113.7", "10.0.0.1", 1, 80) + request(),
                 b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"):
        assert closed_after(gw, data), data
    wait_count(gw, "bad_signature", 1)  # the request
    wait_count(gw, "version_not_accepted", 2)  # "PROXY " is v1's signature: the wrong version
    assert b.requests == 0
    gw2 = pp_proxy(gateway, b, accept="v1")
    assert closed_after(gw2, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n")
    assert closed_after(gw2, v2("1.2.3.4", "5.6.7.8", 1, 2))
    wait_count(gw2, "v1_bad_line_end", 1)
    wait_count(gw2, "version_not_accepted", 1)


def test_pp_slow_header_times_out(gateway, backend):
    b = backend.http()
    gw = pp_proxy(gateway, b, timeout="300ms")
    t0 = time.monotonic()
    assert closed_after(gw, b"PROXY TCP4 ")
    assert time.monotonic() - t0 < env.timeout(5)
    assert closed_after(gw, b"")  # nothing at all
    wait_count(gw, "timeout", 2)
    assert b.requests == 0


def test_pp_rate_limit_keyed_by_carried_address(gateway, backend):
    """rate_limit (key: client_ip) counts each carried address on its own: without the
    header's address, every connection would be 127.0.0.1 and share one bucket."""
    b = backend.http()
    mw = [{"rate_limit": {"rate": 0.001, "burst": 1}}]
    gw = pp_proxy(gateway, b, routes=[config.route(name="rl", middleware=mw)])
    a = v1("203.0.113.1", "127.0.0.1", 1000, 80)
    assert ask(gw, a)[0] == 200
    assert ask(gw, a)[0] == 429
    assert ask(gw, v1("203.0.113.2", "127.0.0.1", 1000, 80))[0] == 200


def test_pp_over_tls_listener(gateway, backend, pki):
    """The PROXY header precedes the TLS handshake; the ClientHello right behind it in the
    same write is kept."""
    from test_04_tls import client_ctx, tls_block

    b = backend.http()
    gw = pp_proxy(gateway, b, listener={"tls": tls_block(pki, None)})
    raw = connect(gw)
    ctx = client_ctx(pki)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    raw.sendall(v2("203.0.113.9", "127.0.0.1", 5555, 443) + out.read())  # one write
    # finish the handshake by hand over the raw socket
    while True:
        data = raw.recv(65536)
        assert data, "the gateway closed during the handshake"
        inc.write(data)
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pass
        finally:
            pending = out.read()
            if pending:
                raw.sendall(pending)
    pending = out.read()
    if pending:
        raw.sendall(pending)
    obj.write(request())
    raw.sendall(out.read())
    got = b""
    while True:
        try:
            chunk = obj.read(65536)
            if not chunk:
                break
            got += chunk
        except ssl.SSLWantReadError:
            data = raw.recv(65536)
            if not data:
                break
            inc.write(data)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
    raw.close()
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), got[:200]
    assert b"203.0.113.9" in body, body
    wait_count(gw, "accepted", 1)


# ---- upstream side ----------------------------------------------------------------------------


def up_proxy(gateway, b, version, listener_pp=False, **kw):
    cfg = config.http_proxy(b, **kw)
    cfg["upstreams"]["app"]["proxy_protocol"] = version
    if listener_pp:
        cfg["listeners"][0]["proxy_protocol"] = {"from": ["127.0.0.0/8"]}
    return gateway(GW, cfg)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_pp_sent_upstream_with_the_real_client(gateway, backend, version):
    """Every field at the backend: the client's address and port as the gateway saw them,
    the listener's address and port."""
    b = backend(PPBackend)
    gw = up_proxy(gateway, b, version)
    with connect(gw) as s:
        me = s.getsockname()
        s.sendall(request("/a"))
        status, _, body = read_response(s)
    assert (status, body) == (200, b"ok")
    wait_until(lambda: b.conns_seen, env.timeout(5), "the backend to read a header")
    hdr, paths = b.conns_seen[0]
    assert hdr["version"] == int(version[1])
    assert hdr["command"] == "proxy"
    assert hdr["family"] in ("TCP4", 0x11), hdr
    assert hdr["src"] == (me[0], me[1]), hdr
    assert hdr["dst"] == tuple(gw.addr("edge")), hdr
    assert paths == ["/a"]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_pp_carried_address_goes_upstream(gateway, backend, version):
    """A header received is the header sent: the carried client, the listener's address."""
    b = backend(PPBackend)
    gw = up_proxy(gateway, b, version, listener_pp=True)
    status, _, body = ask(gw, v2("2001:db8::7", "2001:db8::1", 51200, 443), "/b")
    assert status == 200
    hdr = b.conns_seen[0][0]
    assert hdr["src"] == ("2001:db8::7", 51200), hdr
    # the listener is IPv4: v1 then says TCP6 with the local address mapped, v2 too (as HAProxy)
    assert hdr["dst"][1] == gw.addr("edge")[1], hdr
    dst = ipaddress.ip_address(hdr["dst"][0])
    assert dst.version == 6 and str(dst.ipv4_mapped) == "127.0.0.1", hdr


def test_pp_upstream_connection_never_reused_for_another_client(gateway, backend):
    """Two clients one after the other: two upstream connections, each with its client's
    header and only that client's request (a pooled one would carry B's request under A's
    header)."""
    b = backend(PPBackend)
    # One worker: pools are per worker, and two workers could hide a reuse by chance.
    gw = up_proxy(gateway, b, "v2", listener_pp=True, workers=1)
    assert ask(gw, v1("203.0.113.1", "127.0.0.1", 1111, 80), "/from-a")[0] == 200
    assert ask(gw, v1("203.0.113.2", "127.0.0.1", 2222, 80), "/from-b")[0] == 200
    wait_until(lambda: len(b.conns_seen) >= 2, env.timeout(5), "two upstream connections",
               describe=lambda: "seen: %r" % b.conns_seen)
    seen = [(h["src"], p) for h, p in b.conns_seen]
    assert seen == [(("203.0.113.1", 1111), ["/from-a"]), (("203.0.113.2", 2222), ["/from-b"])], seen


def test_pp_sent_before_the_tls_handshake_to_a_tls_upstream(gateway, backend, pki):
    """A TLS upstream with proxy_protocol: the header comes first, then the ClientHello (the
    backend reads the header, then does its handshake on what follows)."""
    from test_04_tls_upstream import SERVER_NAME, TlsHttpBackend

    class TlsPP(TlsHttpBackend):
        def handle(self, conn, ch):
            hdr = read_pp(conn)
            with self.lock:
                self.pp_seen = getattr(self, "pp_seen", []) + [hdr]
            super().handle(conn, ch)

    b = backend(TlsPP, pki.server_ec)
    cfg = config.http_proxy(b, listener={"proxy_protocol": {"from": ["127.0.0.0/8"]}})
    cfg["upstreams"]["app"]["tls"] = {"ca": pki.ca.cert, "server_name": SERVER_NAME}
    cfg["upstreams"]["app"]["proxy_protocol"] = "v1"
    gw = gateway(GW, cfg)
    status, _, body = ask(gw, v1("203.0.113.77", "127.0.0.1", 4242, 443), "/tls")
    assert status == 200, body
    assert json.loads(body)["target"] == "/tls"
    assert b.tls_errors == []
    hdr = b.pp_seen[0]
    assert (hdr["version"], hdr["family"], hdr["src"]) == (1, "TCP4", ("203.0.113.77", 4242)), hdr
    assert hdr["dst"] == tuple(gw.addr("edge")), hdr


def test_pp_hash_client_ip_uses_the_carried_address(gateway, backend):
    """consistent_hash on client_ip: each carried address sticks to one backend, and 16
    addresses reach more than one (on the socket's address they would all share one)."""
    bs = [backend.http() for _ in range(3)]
    cfg = config.http_proxy(bs, listener={"proxy_protocol": {"from": ["127.0.0.0/8"]}})
    cfg["upstreams"]["app"]["balancer"] = "consistent_hash"
    cfg["upstreams"]["app"]["hash"] = "client_ip"
    gw = gateway(GW, cfg)
    where = {}
    for i in range(16):
        for _ in range(2):
            status, hdrs, body = ask(gw, v1("198.51.100.%d" % (i + 1), "127.0.0.1", 1000, 80))
            assert status == 200, body
            where.setdefault(i, set()).add(json.loads(body)["backend"])
    assert all(len(v) == 1 for v in where.values()), "one address, one backend: %s" % where
    assert len(set.union(*where.values())) > 1, "16 addresses all on one backend: %s" % where


def test_pp_per_client_connection_limit_on_the_carried_address(gateway, backend):
    """03's per_client connection rate (1/s, burst 1) applies after the header, to the
    carried address: a second connection of one client is refused, another client's is not
    (on the socket's address, every connection would share one bucket)."""
    b = backend.http()
    gw = pp_proxy(gateway, b, workers=1,
                  listener={"rate_limit": {"per_client": {"rate": 1, "burst": 1}}})
    a = v1("203.0.113.1", "127.0.0.1", 1000, 80)
    assert ask(gw, a)[0] == 200
    assert closed_after(gw, a + request()), "the same carried client: over its rate"
    assert ask(gw, v1("203.0.113.2", "127.0.0.1", 1000, 80))[0] == 200, "another carried client"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_pp_health_checks_send_their_own_header(gateway, backend, version):
    """An upstream with proxy_protocol and http health checks: each check opens with a
    header of its own (v1 UNKNOWN, v2 LOCAL: the checker relays nobody), so a backend that
    expects one on every connection answers the check and stays healthy."""
    b = backend(PPBackend)
    hc = {"type": "http", "path": "/healthz", "interval": "100ms", "timeout": "1s", "rise": 1, "fall": 1}
    cfg = config.http_proxy(b)
    cfg["upstreams"]["app"]["proxy_protocol"] = version
    cfg["upstreams"]["app"]["health_check"] = hc
    gw = gateway(GW, cfg)
    wait_until(lambda: len(b.conns_seen) >= 3, env.timeout(5), "three health checks",
               describe=lambda: "seen: %r" % b.conns_seen)
    checks = [h for h, paths in b.conns_seen if paths == ["/healthz"]]
    assert len(checks) >= 3, b.conns_seen
    for h in checks:
        if version == "v1":
            assert (h["version"], h["family"]) == (1, "UNKNOWN"), h
        else:
            assert (h["version"], h["command"], h["family"]) == (2, "local", 0), h
    with connect(gw) as s:  # and the upstream is healthy: a request goes through
        s.sendall(request("/after"))
        assert read_response(s)[:1] == (200,)

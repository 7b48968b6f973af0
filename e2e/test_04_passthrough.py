"""Milestone 04 end to end: TLS passthrough by SNI on a tcp listener (build/bin/gw04,
listeners.*.tls_passthrough). The gateway reads the ClientHello's server name without
terminating TLS and picks the upstream; the client's TLS session runs with the backend.

Backends are Python ssl servers with certificates from the run's PKI (the `pki` fixture:
made at test time, no key is committed), each answering its own name once the handshake is done;
one raw backend records the bytes it receives, to compare them with what the client sent.
Metrics come from /metrics (gw_tls_passthrough_total{listener,result})."""
import socket
import ssl

import pytest

from gwtest import admin, clients, config, env
from gwtest.backends import Server
from gwtest.wait import wait_until

GW = "gw04"


# ---- certificates and backends ------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(pki):
    """name -> (cert file, key file): a certificate per backend from the run's PKI (conftest.py's
    `pki`, gwtest/certs.py), made once per module."""
    return {name: (c.cert, c.key) for name in ("api", "web") for c in [pki.leaf([name], name="pt-" + name)]}


class TLSNamed(Server):
    """Completes a TLS handshake, sends b"I am NAME, you asked for SNI\\n", then closes."""

    kind = "tls"

    def __init__(self, transcript, name, cert):
        self.name = name
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*cert)
        self.seen = []  # the SNI each client sent (None: none)
        self.ctx.sni_callback = lambda sock, sni, ctx: self.seen.append(sni)
        super().__init__(transcript)

    def handle(self, conn, ch):
        with self.ctx.wrap_socket(conn, server_side=True) as tls:
            ch.event("handshake done, %s" % tls.version())
            tls.sendall(b"I am %s\n" % self.name.encode())


class Recorder(Server):
    """Keeps the first bytes of each connection (until the peer pauses or 64 KiB)."""

    kind = "recorder"

    def __init__(self, transcript, expect):
        self.expect = expect
        self.got = []
        super().__init__(transcript)

    def handle(self, conn, ch):
        data = b""
        while len(data) < self.expect:
            chunk = conn.recv(65536)
            if not chunk:
                break
            ch.recv(chunk)
            data += chunk
        self.got.append(data)


def tls_ask(addr, sni, timeout=None):
    """Connects through the gateway with SNI (None: none sent) and returns the backend's line."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # which backend answered is what matters here
    raw = socket.create_connection(addr, timeout=timeout or env.timeout(10))
    with ctx.wrap_socket(raw, server_hostname=sni) as tls:
        line = b""
        while not line.endswith(b"\n"):
            chunk = tls.recv(100)
            if not chunk:
                break
            line += chunk
        return line


client_hello = clients.tls_client_hello


def passthrough(gateway, routes, default=None, timeout=None, **top):
    """gw04 with one tcp listener `tls` (tls_passthrough) and an admin listener. ROUTES:
    [(sni, backend)]; upstreams are named u0, u1... in the order backends first appear."""
    ups, names = {}, {}
    for _, b in routes + ([(None, default)] if default is not None else []):
        if id(b) not in names:
            names[id(b)] = "u%d" % len(names)
            ups[names[id(b)]] = {"backends": [{"address": b}]}
    tp = {"routes": [{"sni": s, "upstream": names[id(b)]} for s, b in routes]}
    if default is not None:
        tp["default"] = names[id(default)]
    if timeout is not None:
        tp["timeout"] = timeout
    cfg = config.base(**top)
    cfg["listeners"] = [{"name": "tls", "protocol": "tcp", "tls_passthrough": tp}]
    cfg["upstreams"] = ups
    cfg["admin"] = {"address": config.Port("admin")}
    return gateway(GW, cfg)


def counts(gw):
    m = admin.scrape(gw.addr("admin"))
    return {d["result"]: v for d, v in m.find("gw_tls_passthrough_total", listener="tls")}


def wait_count(gw, result, n):
    return wait_until(lambda: counts(gw).get(result, 0) >= n, env.timeout(5),
                      "gw_tls_passthrough_total{result=%s} to reach %d" % (result, n),
                      describe=lambda: "counts: %s" % counts(gw))


# ---- routing ------------------------------------------------------------------------------


def test_passthrough_routes_by_sni_exact_wildcard_and_default(gateway, backend, certs):
    api = backend(TLSNamed, "api", certs["api"])
    web = backend(TLSNamed, "web", certs["web"])
    gw = passthrough(gateway, [("api.example.com", api), ("*.example.com", web)], default=api)
    addr = gw.addr("tls")
    assert tls_ask(addr, "api.example.com") == b"I am api\n"
    assert tls_ask(addr, "API.Example.com") == b"I am api\n", "names are compared in lower case"
    assert tls_ask(addr, "www.example.com") == b"I am web\n"
    assert tls_ask(addr, "a.b.example.com") == b"I am web\n", "a wildcard covers deeper names"
    assert tls_ask(addr, "example.com") == b"I am api\n", "*.example.com is not example.com: default"
    assert tls_ask(addr, "other.org") == b"I am api\n"
    assert tls_ask(addr, None) == b"I am api\n", "no SNI: the default"
    # The TLS session is the backend's: it saw the client's own SNI, not something the
    # gateway made up (the gateway never decrypts).
    assert sorted(web.seen) == ["a.b.example.com", "www.example.com"]
    assert api.seen.count(None) == 1
    c = counts(gw)
    assert (c["routed"], c["default"], c["no_sni"]) == (4, 2, 1), c
    assert c["malformed"] == c["too_big"] == c["timeout"] == c["no_route"] == 0, c


def test_passthrough_without_default_closes_unknown_names(gateway, backend, client, certs):
    web = backend(TLSNamed, "web", certs["web"])
    gw = passthrough(gateway, [("*.example.com", web)])
    assert tls_ask(gw.addr("tls"), "www.example.com") == b"I am web\n"
    for sni in ("other.org", None):
        c = client(gw.addr("tls"))
        c.send(client_hello(sni))
        assert c.wait_end(env.timeout(5))[0] in ("eof", "reset")
    c = counts(gw)
    assert (c["routed"], c["no_route"], c["no_sni"]) == (1, 1, 1), c
    assert web.accepted == 1


def test_passthrough_backend_sees_the_original_client_hello(gateway, backend, client):
    hello = client_hello("api.example.com")
    rec = backend(Recorder, expect=len(hello) + 5)
    gw = passthrough(gateway, [("api.example.com", rec)])
    c = client(gw.addr("tls"))
    # In pieces, as a slow client would send it: the gateway waits for the whole record.
    c.send(hello[:3])
    c.send(hello[3:40])
    c.send(hello[40:])
    c.send(b"\x17\x03\x03")  # what follows the hello goes on unchanged
    c.shutdown_write()
    wait_until(lambda: rec.got, env.timeout(5), "the backend to record the client's bytes")
    assert rec.got[0] == hello + b"\x17\x03\x03", "the backend must see the client's bytes unchanged"
    wait_count(gw, "routed", 1)


# ---- refusals -----------------------------------------------------------------------------


def test_passthrough_malformed_oversized_and_plaintext_are_closed_and_counted(gateway, backend, client):
    rec = backend(Recorder, expect=1)
    gw = passthrough(gateway, [("a.example.com", rec)], default=rec)
    cases = [
        (b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n", "malformed"),  # plaintext
        (b"\x16\x03\x01\x00\x08\x02\x00\x00\x04\x03\x03\x00\x00", "malformed"),  # not a ClientHello
        (b"\x16\x03\x01\x40\x01", "too_big"),  # a record over 16 KiB, told by its header
        (b"\x16\x03\x01\x00\x10\x01\x00\x01\x00", "too_big"),  # a hello longer than its record
    ]
    for data, _ in cases:
        c = client(gw.addr("tls"))
        c.send(data)
        end, _ = c.wait_end(env.timeout(5))
        assert end in ("eof", "reset"), "%r: the connection must be closed" % data[:16]
    wait_count(gw, "too_big", 2)
    c = counts(gw)
    assert (c["malformed"], c["too_big"]) == (2, 2), c
    assert rec.accepted == 0, "nothing refused may reach a backend"


def test_passthrough_silent_client_is_timed_out(gateway, backend, client):
    rec = backend(Recorder, expect=1)
    gw = passthrough(gateway, [("a.example.com", rec)], default=rec, timeout="300ms")
    c = client(gw.addr("tls"))
    end, waited = c.wait_end(env.timeout(5))
    assert end in ("eof", "reset") and waited >= 0.25, (end, waited)
    half = client(gw.addr("tls"))  # half a hello, then nothing
    half.send(client_hello("a.example.com")[:20])
    assert half.wait_end(env.timeout(5))[0] in ("eof", "reset")
    wait_count(gw, "timeout", 2)
    assert rec.accepted == 0


# ---- configuration --------------------------------------------------------------------------


def test_config_tls_passthrough_needs_gw04(run_binary, config_file):
    cfg = {"listeners": [{"name": "t", "address": "127.0.0.1:1", "protocol": "tcp",
                          "tls_passthrough": {"routes": [{"sni": "a.example.com", "upstream": "u"}]}}],
           "upstreams": {"u": {"backends": [{"address": "127.0.0.1:2"}]}}}
    path, _ = config_file(cfg, "pt.yaml")
    r = run_binary("gw03", ["-t", "-c", path])
    assert r.code == 1
    assert "tls_passthrough: needs gw04 or later" in r.stderr, r.stderr
    assert "upstream" not in r.stderr.replace("upstreams", ""), "no missing-upstream noise: " + r.stderr
    assert run_binary(GW, ["-t", "-c", path]).code == 0

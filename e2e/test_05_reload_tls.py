"""Milestone 05 end to end: what a reload does to 04's listener side (issue 17, step 8).

TLS credentials are built per generation: a reload reads the certificates again, new
connections get the new ones, and a connection that handshook with the old ones keeps
working after its generation was freed (it holds its credential). The TLS counters are kept
by listener name, so a reload is no counter reset. A listener a reload adds, with tls and
its own timeouts, serves at once (idle lists are keyed by timeout, not by listener).

Every wait polls to a deadline; no sleep waits for readiness."""
import hashlib
import socket
import ssl

import pytest

from gwtest import admin, config, env
from gwtest.wait import Deadline, wait_until

GW = "gw05"


def tls_listener(pki, cert, name="edge", **http):
    """A `tls` http listener NAME towards upstream `app`, serving CERT."""
    lst = {"name": name, "address": config.Port(name), "protocol": "http",
           "routes": [config.route("app", name="default")],
           "tls": {"certificates": [{"cert": cert.cert, "key": cert.key}]}}
    if http:
        lst["http"] = dict(http)
    return lst


def tls_config(app, pki, listeners):
    cfg = config.http_proxy(app)
    cfg["listeners"] = listeners
    cfg["admin"] = {"address": config.Port("admin")}
    return cfg


def client_ctx(pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca.cert)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def served_fingerprint(c):
    """The SHA-256 (hex) of the certificate the gateway served on client C."""
    return hashlib.sha256(c.sock.getpeercert(binary_form=True)).hexdigest()


def handshakes(gw, listener="edge"):
    s = admin.scrape(gw.addr("admin"))
    return sum(v for _, v in s.find("gw_tls_handshakes_total", listener=listener))


def test_reload_new_certificate_for_new_connections_old_connection_keeps_its_own(
        gateway, backend, http_client, pki):
    app = backend.http(name="a")
    gw = gateway(GW, tls_config(app, pki, [tls_listener(pki, pki.server_ec)]))
    old = http_client(gw, tls=client_ctx(pki), server_hostname="localhost")
    assert old.get("/").status == 200
    assert served_fingerprint(old) == pki.server_ec.fingerprint_sha256
    at = 0
    # Two reloads: the generation `old` handshook in is retired and freed meanwhile, while
    # the connection (and BearSSL's engine in it) still points into its credential.
    for n, cert in ((2, pki.server_rsa), (3, pki.server_rsa)):
        gw.rewrite(tls_config(app, pki, [tls_listener(pki, cert)]))
        gw.reload()
        at = gw.wait_applied(n, after=at)
    new = http_client(gw, tls=client_ctx(pki), server_hostname="localhost")
    assert new.get("/").status == 200
    assert served_fingerprint(new) == pki.server_rsa.fingerprint_sha256, \
        "the reload did not read the new certificate"
    for _ in range(20):  # the old connection works on, with the old certificate's session
        assert old.get("/").status == 200
    assert served_fingerprint(old) == pki.server_ec.fingerprint_sha256
    # Counted under the listener's name across the three generations: not reset.
    assert handshakes(gw) == 2


def test_reload_adds_a_tls_listener_with_its_own_timeouts(gateway, backend, http_client, pki):
    app = backend.http(name="a")
    gw = gateway(GW, tls_config(app, pki, [tls_listener(pki, pki.server_ec)]))
    assert http_client(gw, tls=client_ctx(pki), server_hostname="localhost").get("/").status == 200
    gw.rewrite(tls_config(app, pki, [
        tls_listener(pki, pki.server_ec),
        tls_listener(pki, pki.server_rsa, name="edge2", keepalive_timeout="300ms",
                     request_head_timeout="2s")]))
    gw.reload()
    gw.wait_applied(2)
    c = http_client(gw.addr("edge2"), tls=client_ctx(pki), server_hostname="localhost")
    assert c.get("/").status == 200
    assert served_fingerprint(c) == pki.server_rsa.fingerprint_sha256
    assert handshakes(gw, "edge2") == 1
    # Its keep-alive list has its own timeout (300ms), which no listener had before: the
    # idle connection is closed then (the other listener's default is 60s).
    end = c.wait_closed(timeout=env.timeout(3))
    assert end in ("eof", "reset"), "the added listener's keepalive_timeout did not apply (%s)" % end


def pump_handshake(sock, obj, inc, out):
    """Drives OBJ's (an SSLObject over INC/OUT) handshake on SOCK to its end."""
    dl = Deadline(env.timeout(5))
    while True:
        try:
            obj.do_handshake()
            sock.sendall(out.read())
            return
        except ssl.SSLWantReadError:
            sock.sendall(out.read())
            sock.settimeout(max(0.001, dl.left()))
            data = sock.recv(65536)
            assert data, "the gateway closed the connection mid-handshake"
            inc.write(data)


@pytest.mark.asan_leg
def test_reload_mid_handshake_finishes_with_the_credential_it_started_with(gateway, backend, pki):
    """A connection accepted in generation 1 sends half its ClientHello; five reloads with
    another certificate retire generation 1 and free it; then the handshake ends with
    generation 1's certificate and key, which the connection holds (its credential). On the
    ASan build (`make test`'s asan leg) a connection that did not hold them reads freed
    memory here."""
    app = backend.http(name="a")
    gw = gateway(GW, tls_config(app, pki, [tls_listener(pki, pki.server_ec)]))
    sock = socket.create_connection(gw.addr("edge"), timeout=env.timeout(5))
    try:
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = client_ctx(pki).wrap_bio(inc, out, server_hostname="localhost")
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = out.read()
        sock.sendall(hello[:20])

        def accepted():
            s = admin.scrape(gw.addr("admin"))
            return sum(v for _, v in s.find("gw_connections_active", listener="edge")) >= 1

        assert wait_until(accepted, timeout=env.timeout(5)), "the connection was not accepted"
        at = 0
        for n in range(2, 7):
            gw.rewrite(tls_config(app, pki, [tls_listener(pki, pki.server_rsa)]))
            gw.reload()
            at = gw.wait_applied(n, after=at)
        # Another client's full exchange: every worker went through loop turns (quiescent
        # points) since generation 1 was retired.
        fresh = socket.create_connection(gw.addr("edge"), timeout=env.timeout(5))
        fresh.close()
        sock.sendall(hello[20:])
        pump_handshake(sock, obj, inc, out)
        der = obj.getpeercert(binary_form=True)
        assert hashlib.sha256(der).hexdigest() == pki.server_ec.fingerprint_sha256, \
            "the handshake did not finish with the credential it started with"
        obj.write(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        sock.sendall(out.read())
        dl = Deadline(env.timeout(5))
        got = b""
        while b"\r\n" not in got:
            try:
                got += obj.read(4096)
            except ssl.SSLWantReadError:
                sock.settimeout(max(0.001, dl.left()))
                data = sock.recv(65536)
                assert data, "closed before the response"
                inc.write(data)
        assert got.startswith(b"HTTP/1.1 200"), got[:80]
    finally:
        sock.close()

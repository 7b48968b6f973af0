"""Milestone 04 end to end: TLS termination on http listeners (build/bin/gw04,
listeners.*.tls). Clients are Python's ssl module (gwtest.http.HttpClient with tls=...) and
`openssl s_client`; certificates come from the session fixture `pki` (gwtest/certs.py), made
at test time. Backends are plain HTTP (gwtest.http.HttpBackend): the gateway terminates.

Metrics come from /metrics: gw_tls_handshakes_total{listener,resumed},
gw_tls_handshake_failures_total{listener,reason}, gw_tls_session_cache_*{listener}."""
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from gwtest import admin, config, env
from gwtest import data as gwdata
from gwtest.env import GiB, KiB, MiB
from gwtest.http import Reply, request_bytes
from gwtest.wait import Deadline, wait_until

GW = "gw04"


# ---- helpers ------------------------------------------------------------------------------


def tls_block(pki, certs=None, **keys):
    """The listener's `tls` mapping: CERTS (default: the EC server certificate) and KEYS."""
    t = {"certificates": [{"cert": c.cert, "key": c.key} for c in (certs or [pki.server_ec])]}
    t.update(keys)
    return t


def tls_proxy(gateway, upstream, pki, certs=None, tls=None, http=None, routes=None, **top):
    """gw04 with one TLS http listener `edge` towards UPSTREAM, and an admin listener."""
    cfg = config.http_proxy(upstream, routes=routes, http=http,
                            listener={"tls": tls_block(pki, certs, **(tls or {}))}, **top)
    cfg["admin"] = {"address": config.Port("admin")}
    return gateway(GW, cfg)


def client_ctx(pki, cert=None, alpn=("http/1.1",), verify=True):
    """A client context trusting the test CA; CERT: a client certificate to present."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(pki.ca.cert)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def tls_client(http_client, gw, pki, name="localhost", ctx=None, **kw):
    """A connected HTTP client over TLS to GW's edge listener, SNI NAME (None: none)."""
    return http_client(gw, tls=ctx or client_ctx(pki, verify=name is not None),
                       server_hostname=name, **kw)


def scrape(gw):
    return admin.scrape(gw.addr("admin"))


def handshakes(gw):
    """{"true": n, "false": n}: gw_tls_handshakes_total{listener=edge} by resumed."""
    return {d["resumed"]: v for d, v in scrape(gw).find("gw_tls_handshakes_total", listener="edge")}


def failures(gw):
    """{reason: n}: gw_tls_handshake_failures_total{listener=edge}."""
    return {d["reason"]: v for d, v in scrape(gw).find("gw_tls_handshake_failures_total", listener="edge")}


def wait_failure(gw, reason, n=1):
    return wait_until(lambda: failures(gw).get(reason, 0) >= n, env.timeout(5),
                      "gw_tls_handshake_failures_total{reason=%s} to reach %d" % (reason, n),
                      describe=lambda: "failures: %s" % failures(gw))


def echo_doc(resp):
    assert resp.status == 200, resp
    return resp.json()


def doc_header_all(doc, name):
    return [v for k, v in doc["headers"] if k.lower() == name.lower()]


# ---- the basics -----------------------------------------------------------------------------


def test_tls_get_round_trip(gateway, backend, http_client, pki):
    b = backend.http()
    gw = tls_proxy(gateway, b, pki)
    c = tls_client(http_client, gw, pki)
    assert c.sock.version() == "TLSv1.2", "BearSSL speaks TLS 1.2"
    assert c.sock.selected_alpn_protocol() == "http/1.1"
    doc = echo_doc(c.get("/hello"))
    assert doc["target"] == "/hello"
    assert doc_header_all(doc, "X-Forwarded-Proto") == ["https"], doc["headers"]
    assert c.get("/again").status == 200, "keep-alive over TLS"
    assert handshakes(gw) == {"false": 1, "true": 0}


def der_sha256(sock):
    return hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()


def test_tls_sni_picks_the_certificate_and_the_default_covers_the_rest(gateway, backend, http_client, pki):
    """Two certificates: the RSA one (localhost, gw.example.test, ...) first, so the default,
    then the EC wildcard *.example.test. Exact names beat wildcards."""
    b = backend.http()
    gw = tls_proxy(gateway, b, pki, certs=[pki.server_rsa, pki.wildcard])
    cases = [
        ("a.example.test", pki.wildcard),   # the wildcard covers it
        ("gw.example.test", pki.server_rsa),  # exact beats the wildcard that also covers it
        ("localhost", pki.server_rsa),
        ("other.invalid", pki.server_rsa),  # unknown: the default
        (None, pki.server_rsa),             # no SNI: the default
    ]
    for sni, want in cases:
        c = tls_client(http_client, gw, pki, name=sni, ctx=client_ctx(pki, verify=False))
        got = der_sha256(c.sock)
        assert got == want.fingerprint_sha256, "SNI %r: served %s, expected %s" % (
            sni, got[:16], want.name)
        assert c.get("/x").status == 200
        c.close()
    # A verifying client for the wildcard name gets a chain that verifies.
    c = tls_client(http_client, gw, pki, name="api.example.test")
    assert c.get("/verified").status == 200
    assert handshakes(gw)["false"] == len(cases) + 1


def test_tls_alpn_http11_and_h2_only_refused(gateway, backend, http_client, pki):
    b = backend.http()
    gw = tls_proxy(gateway, b, pki)
    c = tls_client(http_client, gw, pki, ctx=client_ctx(pki, alpn=("h2", "http/1.1")))
    assert c.sock.selected_alpn_protocol() == "http/1.1", "h2 is not offered by the gateway"
    assert c.get("/a").status == 200
    c = tls_client(http_client, gw, pki, ctx=client_ctx(pki, alpn=None))
    assert c.sock.selected_alpn_protocol() is None, "a client without ALPN is served"
    assert c.get("/b").status == 200
    # openssl s_client offering only h2: refused with the no_application_protocol alert.
    out = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % gw.addr("edge"), "-alpn", "h2",
                          "-servername", "localhost", "-CAfile", pki.ca.cert],
                         input=b"", capture_output=True, timeout=env.timeout(10))
    text = (out.stdout + out.stderr).decode(errors="replace")
    assert out.returncode != 0 and "no application protocol" in text, text[-2000:]
    wait_failure(gw, "sent_alert_no_application_protocol")
    assert b.requests == 2


def test_tls_resumption_across_workers(gateway, backend, http_client, pki, transcript):
    """workers: 2, one cache shared: a client that saves its session resumes it on every
    reconnect, whichever worker the kernel hands the new connection to. With a cache per
    worker, each reconnect would land on the other worker half the time and miss."""
    b = backend.http()
    gw = tls_proxy(gateway, b, pki, workers=2)
    ctx = client_ctx(pki)
    c = tls_client(http_client, gw, pki, ctx=ctx)
    assert c.get("/first").status == 200
    session = c.sock.session
    assert not c.sock.session_reused
    c.close()
    n = 8
    reused = []
    for i in range(n):
        c = tls_client(http_client, gw, pki, ctx=ctx, session=session)
        reused.append(c.sock.session_reused)
        assert c.get("/again/%d" % i).status == 200
        c.close()
    transcript.note("reconnects resumed: %s" % reused)
    assert all(reused), "every reconnect should resume the saved session: %s" % reused
    assert handshakes(gw) == {"false": 1, "true": n}
    m = scrape(gw)
    assert (m.get("gw_tls_session_cache_stores_total", listener="edge"),
            m.get("gw_tls_session_cache_hits_total", listener="edge"),
            m.get("gw_tls_session_cache_entries", listener="edge")) == (1, n, 1)


def test_tls_plaintext_request_closed_promptly_and_counted(gateway, backend, client, pki):
    b = backend.http()
    gw = tls_proxy(gateway, b, pki)
    c = client(gw.addr("edge"))
    c.send(b"GET / HTTP/1.1\r\nHost: gw.test\r\n\r\n")
    data, end = c.read_to_end(timeout=env.timeout(3))
    assert end in ("eof", "reset"), "a plaintext request on a TLS port must be closed"
    assert not data.startswith(b"HTTP/"), "no HTTP answer in plaintext: %r" % data[:100]
    f = wait_until(lambda: {k: v for k, v in failures(gw).items() if v and k not in ("timeout", "eof")},
                   env.timeout(5), "a handshake failure with a named reason")
    assert "unknown" not in f and sum(f.values()) == 1, f
    assert b.requests == 0


def test_tls_stalled_handshake_closed_after_handshake_timeout(gateway, backend, client, pki):
    b = backend.http()
    gw = tls_proxy(gateway, b, pki, tls={"handshake_timeout": "300ms"},
                   http={"request_head_timeout": "30s"})
    silent = client(gw.addr("edge"))
    end, waited = silent.wait_end(env.timeout(5))
    assert end in ("eof", "reset") and waited >= 0.25, (end, waited)
    # Half a ClientHello, then nothing: the same.
    hello = client_hello("localhost")
    half = client(gw.addr("edge"))
    half.send(hello[: len(hello) // 2])
    end, waited = half.wait_end(env.timeout(5))
    assert end in ("eof", "reset") and waited >= 0.25, (end, waited)
    wait_failure(gw, "timeout", 2)
    # A client that leaves in the middle of its hello: "eof".
    gone = client(gw.addr("edge"))
    gone.send(hello[:20])
    gone.close()
    wait_failure(gw, "eof", 1)
    assert failures(gw)["timeout"] == 2


def client_hello(sni):
    """The first flight of a Python TLS client for SNI: its ClientHello record."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


# ---- mTLS -------------------------------------------------------------------------------------


def mtls(pki, required=True):
    return {"client_auth": {"ca": pki.client_ca.cert, "required": required}}


def expect_refused(http_client, gw, pki, cert):
    """A handshake with CERT (None: none) must fail: in the handshake (TLS 1.2: the server
    checks the certificate before its Finished), or at the latest on the first read."""
    try:
        c = tls_client(http_client, gw, pki, ctx=client_ctx(pki, cert=cert))
        c.send(request_bytes("GET", "/secret"))
        c.sock.recv(1)
    except (ssl.SSLError, ConnectionError, OSError):
        return
    raise AssertionError("a client with %s was let in" % (cert.name if cert else "no certificate"))


def test_mtls_required_refuses_missing_and_foreign_and_passes_identity(gateway, backend, http_client, pki):
    b = backend.http()
    gw = tls_proxy(gateway, b, pki, tls=mtls(pki))
    expect_refused(http_client, gw, pki, None)
    expect_refused(http_client, gw, pki, pki.foreign_client)
    wait_until(lambda: sum(failures(gw).values()) >= 2, env.timeout(5), "two failed handshakes",
               describe=lambda: failures(gw))
    f = failures(gw)
    assert f.get("no_client_auth", 0) + f.get("sent_alert_handshake_failure", 0) >= 1, f
    assert f.get("x509_not_trusted", 0) == 1, f
    assert b.requests == 0, "nothing reaches the backend without a verified certificate"
    c = tls_client(http_client, gw, pki, ctx=client_ctx(pki, cert=pki.client_cert))
    doc = echo_doc(c.get("/who", headers=[("X-Client-Cert-Subject", "admin"),
                                          ("x-client-cert-sha256", "00" * 32)]))
    assert doc_header_all(doc, "X-Client-Cert-Subject") == ["alice"], doc["headers"]
    assert doc_header_all(doc, "X-Client-Cert-Sha256") == [pki.client_cert.fingerprint_sha256], doc["headers"]


def test_mtls_client_fields_never_come_from_the_client(gateway, backend, http_client, pki):
    """Not as fields of the head, not as trailers (even listed in forward_trailers)."""
    b = backend.http()
    gw = tls_proxy(gateway, b, pki, tls=mtls(pki),
                   http={"forward_trailers": ["X-Client-Cert-Subject", "X-Checksum"]})
    c = tls_client(http_client, gw, pki, ctx=client_ctx(pki, cert=pki.client_cert))
    c.send(request_bytes("POST", "/up", [("Transfer-Encoding", "chunked"), ("X-Client-Cert-Subject", "root")]))
    c.send_chunked([b"hello"], trailers=[("X-Client-Cert-Subject", "root"), ("X-Checksum", "1")])
    doc = echo_doc(c.read_response())
    assert doc_header_all(doc, "X-Client-Cert-Subject") == ["alice"], doc["headers"]
    trailers = [k.lower() for k, _ in doc.get("trailers", [])]
    assert "x-checksum" in trailers and "x-client-cert-subject" not in trailers, doc.get("trailers")


def test_mtls_optional_lets_anonymous_through_without_fields(gateway, backend, http_client, pki):
    b = backend.http()
    gw = tls_proxy(gateway, b, pki, tls=mtls(pki, required=False))
    for cert in (None, pki.foreign_client):  # none, and one that does not verify
        c = tls_client(http_client, gw, pki, ctx=client_ctx(pki, cert=cert))
        doc = echo_doc(c.get("/anon", headers=[("X-Client-Cert-Subject", "alice")]))
        assert doc_header_all(doc, "X-Client-Cert-Subject") == [], doc["headers"]
        assert doc_header_all(doc, "X-Client-Cert-Sha256") == [], doc["headers"]
    c = tls_client(http_client, gw, pki, ctx=client_ctx(pki, cert=pki.client_cert))
    doc = echo_doc(c.get("/known"))
    assert doc_header_all(doc, "X-Client-Cert-Subject") == ["alice"], doc["headers"]


def test_mtls_listener_does_not_resume_sessions(gateway, backend, http_client, pki):
    """BearSSL resumes without asking for the certificate again, and a cached session holds
    no identity: an mTLS listener has no session cache, so every connection proves itself."""
    b = backend.http()
    gw = tls_proxy(gateway, b, pki, tls=mtls(pki))
    ctx = client_ctx(pki, cert=pki.client_cert)
    c = tls_client(http_client, gw, pki, ctx=ctx)
    assert c.get("/1").status == 200
    session = c.sock.session
    c.close()
    for i in range(3):
        c = tls_client(http_client, gw, pki, ctx=ctx, session=session)
        assert not c.sock.session_reused
        doc = echo_doc(c.get("/again"))
        assert doc_header_all(doc, "X-Client-Cert-Sha256") == [pki.client_cert.fingerprint_sha256]
        c.close()
    assert handshakes(gw) == {"false": 4, "true": 0}
    assert scrape(gw).get("gw_tls_session_cache_entries", listener="edge") == 0

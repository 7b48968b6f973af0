"""Milestone 04 end to end: TLS to upstreams (build/bin/gw04, upstreams.*.tls). The gateway is
the TLS client: it verifies the backend's certificate against the configured CA and name,
sends SNI, keeps its pooled connections' TLS sessions, resumes sessions on new connections,
and can present a client certificate.

Backends are Python ssl servers (HTTP/1.1, gwtest.http's HttpBackend under TLS), with the
certificates of the session's `pki` fixture (gwtest/certs.py, made at test time); each
records, per handshake, the SNI the gateway sent, whether the session was resumed, and the
client certificate it saw. The gateway's view comes from its log, the access log and
/metrics (gw_upstream_tls_handshakes_total, gw_upstream_tls_handshake_failures_total)."""
import json
import select
import socket
import ssl

import pytest

from gwtest import admin, config, env
from gwtest import data as gwdata
from gwtest.backends import Server
from gwtest.env import MiB
from gwtest.http import HttpBackend, Reply, request_bytes
from gwtest.wait import wait_until

GW = "gw04"
SERVER_NAME = "gw.example.test"  # a name the pki's server certificates cover


class _Tls:
    """The SSLSocket HttpBackend.handle works on: its shutdown() ends TLS first (close_notify,
    then the peer's: unwrap), as a careful server does, unless CLOSE_NOTIFY is false (then the
    TCP FIN comes alone: a truncation). OpenSSL also drops a session from its cache when the
    connection did not end with our close_notify, which would defeat resumption."""

    def __init__(self, tls, close_notify):
        self.tls, self.close_notify, self.unwrapped = tls, close_notify, False

    def __getattr__(self, name):
        return getattr(self.tls, name)

    def shutdown(self, how):
        if not self.close_notify:
            self.tls.shutdown(how)
            return
        self.end()

    def end(self):
        if self.unwrapped or not self.close_notify:
            return
        self.unwrapped = True
        try:
            self.tls.settimeout(env.timeout(2))
            self.tls.unwrap().shutdown(socket.SHUT_WR)
        except (ssl.SSLError, OSError):
            pass


class TlsHttpBackend(HttpBackend):
    """An HttpBackend that speaks TLS 1.2 (what BearSSL speaks) with CERT (a certs.Cert).
    CLIENT_CA: require a client certificate signed by it. Records per handshake: .sni
    (names sent, None for none), .resumed (session_reused), .peer_certs (getpeercert()),
    and .tls_errors (handshakes that failed, with OpenSSL's reason)."""

    kind = "https"

    def __init__(self, transcript, cert, client_ca=None, close_notify=True, **kw):
        self.close_notify = close_notify
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.load_cert_chain(cert.cert, cert.key)
        if client_ca is not None:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(client_ca.cert)
        self.sni = []
        self.ctx.sni_callback = self._on_sni
        self.next_ctx = []  # contexts for the next connections, in order (None: the usual one)
        self.resumed = []
        self.peer_certs = []
        self.tls_errors = []
        super().__init__(transcript, **kw)

    def _on_sni(self, sslobj, name, ctx):
        with self.lock:
            self.sni.append(name)

    @property
    def handshakes(self):
        with self.lock:
            return len(self.resumed)

    def handle(self, conn, ch):
        ctx = self.ctx
        with self.lock:
            self.nconn = getattr(self, "nconn", 0) + 1
            if self.next_ctx:  # a test's plan: this connection gets another certificate
                ctx = self.next_ctx.pop(0) or self.ctx
        try:
            tls = ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with self.lock:
                self.tls_errors.append(str(e))
            ch.event("TLS handshake failed: %s" % e)
            return
        with self.lock:
            self.resumed.append(tls.session_reused)
            self.peer_certs.append(tls.getpeercert())
            self.conns.add(tls)  # stop() shuts it down too
        ch.event("TLS handshake done (%s, %s, resumed %s)" % (tls.version(), tls.cipher()[0], tls.session_reused))
        conn_tls = _Tls(tls, self.close_notify)
        try:
            super().handle(conn_tls, ch)
        finally:
            conn_tls.end()
            with self.lock:
                self.conns.discard(tls)
            tls.close()


class HandshakeStall(Server):
    """Accepts, reads the ClientHello, and then says nothing until stopped: a backend whose
    TCP is up and whose TLS never finishes."""

    kind = "stall"

    def handle(self, conn, ch):
        data = conn.recv(65536)
        ch.recv(data)
        ch.event("holding the handshake")
        self.stopping.wait(env.timeout(60))


def tls_backend(backend, cert, **kw):
    return backend(TlsHttpBackend, cert, **kw)


def proxy(gateway, b, tls, tmp_path, keepalive=None, listener=None, **top):
    """gw04 with listener `edge` (every path to upstream app = B, with TLS block TLS), the
    admin API and an access log in tmp_path/access.log."""
    route = config.route("app", name="tls", middleware=[{"access_log": {"file": str(tmp_path / "access.log")}}])
    cfg = config.http_proxy(b, routes=[route], keepalive=keepalive, listener=listener,
                            admin={"address": config.Port("admin")}, **top)
    cfg["upstreams"]["app"]["tls"] = tls
    return gateway(GW, cfg)


def tls_cfg(pki, **kw):
    t = {"ca": pki.ca.cert, "server_name": SERVER_NAME}
    t.update(kw)
    return t


def log_records(tmp_path):
    try:
        with open(tmp_path / "access.log") as f:
            return [json.loads(ln) for ln in f.read().splitlines()]
    except FileNotFoundError:
        return []


def wait_log_records(tmp_path, n):
    return wait_until(lambda: (lambda r: r if len(r) >= n else None)(log_records(tmp_path)), env.timeout(5),
                      "%d access log line(s)" % n, describe=lambda: log_records(tmp_path))


def scrape(gw):
    return admin.scrape(gw.addr("admin"))


def handshakes(gw, resumed):
    return scrape(gw).value("gw_upstream_tls_handshakes_total", upstream="app",
                            resumed="true" if resumed else "false")


def failures(gw, reason):
    return scrape(gw).get("gw_upstream_tls_handshake_failures_total", upstream="app", reason=reason)


# ---- verification and SNI -------------------------------------------------------------------


def test_good_certificate_200_and_sni_is_the_server_name(gateway, backend, http_client, pki, tmp_path):
    b = tls_backend(backend, pki.server_ec)
    gw = proxy(gateway, b, tls_cfg(pki), tmp_path)
    r = http_client(gw).get("/hello")
    assert r.status == 200, r
    assert r.json()["target"] == "/hello", "the request reached the backend through TLS"
    assert b.sni == [SERVER_NAME], "the SNI the backend saw is the configured server_name"
    assert handshakes(gw, resumed=False) == 1
    assert b.tls_errors == []


def test_rsa_certificate_and_default_server_name_from_the_backend_host(gateway, backend, http_client, pki,
                                                                        tmp_path):
    """No server_name: a backend given by name sends that name as SNI and verifies it."""
    b = tls_backend(backend, pki.server_rsa)
    gw = proxy(gateway, "localhost:%d" % b.address[1], {"ca": pki.ca.cert}, tmp_path)
    r = http_client(gw).get("/")
    assert r.status == 200, r
    assert b.sni == ["localhost"]


@pytest.mark.parametrize("which,reason", [
    ("expired", "x509_expired"),
    ("wrong_name", "x509_bad_server_name"),
    ("foreign", "x509_not_trusted"),
])
def test_bad_certificate_502_reason_logged_nothing_sent(which, reason, gateway, backend, http_client, pki,
                                                       tmp_path):
    b = tls_backend(backend, getattr(pki, which))
    gw = proxy(gateway, b, tls_cfg(pki), tmp_path)
    c = http_client(gw)
    r = c.request("POST", "/secret", body=b"the request body must never reach this backend")
    assert r.status == 502, r
    gw.wait_log(r"upstream TLS handshake failed: %s" % reason)
    rec = wait_log_records(tmp_path, 1)[-1]
    assert (rec["status"], rec["end"]) == (502, "upstream_tls_" + reason), rec
    assert b.tls_errors and b.requests == 0, (
        "the backend's handshake never completed, so no request byte could reach it")
    assert failures(gw, reason) >= 1
    assert handshakes(gw, resumed=False) == 0
    assert scrape(gw).value("gw_http_upstream_requests_total", connection="new") == 0, (
        "a connection whose handshake failed carried no request")


def test_verify_false_accepts_a_wrong_name_and_warns_at_start(gateway, backend, http_client, pki, tmp_path):
    b = tls_backend(backend, pki.wrong_name)
    gw = proxy(gateway, b, {"verify": False, "server_name": SERVER_NAME}, tmp_path)
    assert "verify: false" in gw.stderr_text() and "NOT checked" in gw.stderr_text(), (
        "verify: false is warned about at start")
    r = http_client(gw).get("/")
    assert r.status == 200, r


def test_ip_backend_without_server_name_verifies_the_chain_and_warns(gateway, backend, http_client, pki,
                                                                      tmp_path):
    """An IP address is no name to check: no SNI, the chain is verified, and the start warns."""
    good = tls_backend(backend, pki.wrong_name)  # its name is wrong, its chain is good
    gw = proxy(gateway, good, {"ca": pki.ca.cert}, tmp_path)
    assert "is an IP address" in gw.stderr_text(), "the start warns that the name is not checked"
    assert http_client(gw).get("/").status == 200
    assert good.sni == [None], "no SNI for an IP address"


def test_ip_backend_without_server_name_still_refuses_a_foreign_chain(gateway, backend, http_client, pki,
                                                                       tmp_path):
    b = tls_backend(backend, pki.foreign)
    gw = proxy(gateway, b, {"ca": pki.ca.cert}, tmp_path)
    assert http_client(gw).get("/").status == 502
    gw.wait_log(r"upstream TLS handshake failed: x509_not_trusted")


# ---- retries, pools and resumption ----------------------------------------------------------


def test_a_bad_certificate_is_retried_on_another_backend_like_a_refused_connect(gateway, backend, http_client,
                                                                               pki, tmp_path):
    bad = tls_backend(backend, pki.expired)
    good = tls_backend(backend, pki.server_ec)
    gw = proxy(gateway, [bad, good], tls_cfg(pki), tmp_path)
    for i in range(6):  # round robin: the bad backend is picked first at least once
        c = http_client(gw)
        assert c.get("/%d" % i).status == 200
        c.close()
    assert bad.tls_errors and bad.requests == 0, "the bad backend was tried, and got no request"
    assert good.requests == 6
    m = scrape(gw)
    assert m.value("gw_http_retries_total") >= 1
    assert m.get("gw_upstream_tls_handshake_failures_total", upstream="app", reason="x509_expired") >= 1


def test_keepalive_20_requests_one_handshake(gateway, backend, http_client, pki, tmp_path):
    b = tls_backend(backend, pki.server_ec)
    gw = proxy(gateway, b, tls_cfg(pki), tmp_path)
    c = http_client(gw)
    for i in range(20):
        r = c.get("/r%d" % i)
        assert r.status == 200 and r.json()["target"] == "/r%d" % i, r
    assert b.handshakes == 1 and b.accepted == 1, "one pooled TLS connection carried every request"
    assert [req.conn_id for req in b.log] == [1] * 20
    assert handshakes(gw, resumed=False) == 1
    m = scrape(gw)
    assert m.value("gw_http_upstream_requests_total", connection="reused") == 19


def test_a_new_connection_resumes_the_session_after_the_backend_closed_the_pooled_one(
        gateway, backend, http_client, pki, tmp_path):
    closing = {"first": True}

    def handler(req):
        r = Reply.echo_json()
        if closing["first"]:  # the backend closes this connection after the answer
            closing["first"] = False
            r.close_after = True
        return r

    b = tls_backend(backend, pki.server_ec, handler=handler)
    gw = proxy(gateway, b, tls_cfg(pki), tmp_path)
    c = http_client(gw)  # one client connection: one worker, whose session slot is used
    assert c.get("/one").status == 200
    b.wait_idle()  # the first upstream connection is gone
    assert c.get("/two").status == 200
    assert b.accepted == 2
    assert b.resumed == [False, True], "the second connection resumed the first one's session"
    assert handshakes(gw, resumed=False) == 1 and handshakes(gw, resumed=True) == 1


def test_a_failed_handshake_forgets_the_saved_session(gateway, backend, http_client, pki, tmp_path):
    """After a refused certificate the next connection verifies afresh: were the session kept,
    a backend that still had it in its cache would resume it, and no certificate would be
    looked at again."""
    b = tls_backend(backend, pki.server_ec, handler=lambda req: _closing(Reply.echo_json()))
    expired = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    expired.maximum_version = ssl.TLSVersion.TLSv1_2
    expired.load_cert_chain(pki.expired.cert, pki.expired.key)
    b.next_ctx = [None, expired]  # connection 2 shows an expired certificate, 3 the good one again
    gw = proxy(gateway, b, tls_cfg(pki), tmp_path, workers=1)  # one worker: one session slot
    assert http_client(gw).get("/1").status == 200
    b.wait_idle()
    # Connection 2 offers the saved session, which the expired context does not know: a full
    # handshake, refused; the connect retry (connection 3) meets the good certificate again.
    assert http_client(gw).get("/2").status == 200
    assert len(b.tls_errors) == 1
    assert b.resumed == [False, False], "the retry did a full handshake: the session was forgotten"


def _closing(reply):
    reply.close_after = True
    return reply


def test_client_certificate_to_the_upstream(gateway, backend, http_client, pki, tmp_path):
    b = tls_backend(backend, pki.server_ec, client_ca=pki.client_ca)
    cc = {"cert": pki.client_cert.cert, "key": pki.client_cert.key}
    gw = proxy(gateway, b, tls_cfg(pki, client_cert=cc), tmp_path)
    assert http_client(gw).get("/").status == 200
    subject = dict(x[0] for x in b.peer_certs[0]["subject"])
    assert subject["commonName"] == "alice", "the backend saw the gateway's client certificate"


def test_no_client_certificate_where_the_upstream_requires_one_is_502(gateway, backend, http_client, pki,
                                                                      tmp_path):
    b = tls_backend(backend, pki.server_ec, client_ca=pki.client_ca)
    gw = proxy(gateway, b, tls_cfg(pki), tmp_path)
    assert http_client(gw).get("/").status == 502
    # The backend's alert, or, when its close overtook our last flight, the reset it caused.
    gw.wait_log(r"upstream TLS handshake failed: (recv_alert_\w+|reset) ")
    assert b.requests == 0


# ---- bodies, truncation, time and memory --------------------------------------------------------


@pytest.mark.gw_timeout(120)
def test_64mib_both_ways_through_tls(gateway, backend, http_client, pki, tmp_path):
    n = 64 * MiB

    def handler(req):
        return Reply.generated(n, seed=61)

    b = tls_backend(backend, pki.server_ec, handler=handler)
    gw = proxy(gateway, b, tls_cfg(pki), tmp_path)
    c = http_client(gw, op_timeout=env.timeout(60))
    c.send(request_bytes("POST", "/both", [("Content-Length", str(n))]))
    sent = c.send_data(n, seed=60)
    r = c.read_response_sized(timeout=env.timeout(120))
    assert r.status == 200 and (r.body_len, r.sha256) == (n, gwdata.sha256_of(n, 61)), "what the client received"
    req = b.last()
    assert (req.body_len, req.body_sha256) == (n, sent), "what the backend received"


@pytest.mark.parametrize("close_notify", [True, False])
def test_a_close_delimited_body_is_whole_only_with_close_notify(close_notify, gateway, backend, http_client, pki,
                                                                tmp_path):
    def handler(req):
        r = Reply.fixed(200, b"x" * 5000)
        r.no_length = True  # the body ends with the connection
        return r

    b = tls_backend(backend, pki.server_ec, handler=handler, close_notify=close_notify)
    gw = proxy(gateway, b, tls_cfg(pki), tmp_path)
    c = http_client(gw)
    c.send_request("GET", "/")
    if close_notify:
        r = c.read_response()
        assert (r.status, r.body_len) == (200, 5000), r
        assert wait_log_records(tmp_path, 1)[-1]["end"] is None
    else:
        with pytest.raises((AssertionError, ConnectionError)):  # no last chunk: a cut, not an end
            c.read_response()
        rec = wait_log_records(tmp_path, 1)[-1]
        assert rec["end"] == "upstream_tls_truncated", rec


def test_a_stalled_handshake_hits_the_connect_timeout(gateway, backend, http_client, pki, tmp_path):
    b = backend(HandshakeStall)
    gw = proxy(gateway, b, tls_cfg(pki), tmp_path, listener={"connect_timeout": "300ms"})
    r = http_client(gw).get("/")
    assert r.status == 502, r
    gw.wait_log(r"upstream TLS handshake timed out")
    assert wait_log_records(tmp_path, 1)[-1]["end"] == "upstream_tls_timeout"
    assert failures(gw, "timeout") >= 1


def test_no_memory_for_tls_is_503_not_retried(gateway, backend, http_client, pki, tmp_path):
    """buffers.max_memory counts each TLS connection's 41 KB (here one 256 KiB chunk of 4):
    once it is spent, a new upstream TLS connection is the gateway's own shortage."""
    b = backend(HandshakeStall)  # every TLS connection it gets stays open, holding its memory
    gw = proxy(gateway, b, tls_cfg(pki), tmp_path, listener={"connect_timeout": "30s"}, workers=1,
               buffers={"chunk_size": "256KiB", "max_memory": "1MiB"})
    status = None
    for i in range(6):
        c = http_client(gw)
        c.send_request("GET", "/%d" % i)
        # Either its upstream connection reaches the stalling backend, or an answer comes.
        wait_until(lambda: b.accepted > i or select.select([c.sock], [], [], 0)[0], env.timeout(5),
                   "request %d to connect upstream or be answered" % i)
        if b.accepted <= i:
            status = c.read_response().status
            break
    assert status == 503, "a TLS connection that does not fit in buffers.max_memory is refused with 503"
    assert b.accepted == i, "the refused attempt opened no socket, and was not retried"
    assert i >= 1, "the first TLS connection fits"

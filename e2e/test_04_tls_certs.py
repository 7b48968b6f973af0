"""The TLS tests' certificate fixtures (gwtest/certs.py) checked with Python's ssl module
before any gateway relies on them: each verifies, or fails to verify, for the reason it is
made for. Handshakes run in memory (ssl.MemoryBIO), no socket and no gateway, so the file
takes well under a second once the session's keys exist."""
import hashlib
import os
import ssl
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
X509_V_ERR_CERT_HAS_EXPIRED = 10
X509_V_ERR_HOSTNAME_MISMATCH = 62


def _server_ctx(cert, client_ca=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.cert, cert.key)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca.cert)
    return ctx


def _client_ctx(ca, client_cert=None):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca.cert)
    if client_cert is not None:
        ctx.load_cert_chain(client_cert.cert, client_cert.key)
    return ctx


def handshake(server_ctx, client_ctx, server_hostname):
    """Runs a TLS handshake between the two contexts in memory. Returns the server side's
    SSLObject (its peer certificate, for mTLS); raises what either side raised. TLS 1.2 at
    most on the client, like the gateway (BearSSL has no 1.3), so that a refused client
    certificate fails the handshake itself rather than the first read after it."""
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(50):
        for name, side in (("client", client), ("server", server)):
            if done[name]:
                continue
            try:
                side.do_handshake()
                done[name] = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return server
    raise AssertionError("handshake did not finish in 50 rounds")


def test_server_leaves_chain_to_the_ca(pki):
    for cert in (pki.server_ec, pki.server_rsa):
        for name in ("localhost", "gw.example.test", "127.0.0.1"):
            handshake(_server_ctx(cert), _client_ctx(pki.ca), name)


def test_key_kinds_are_as_named(pki):
    assert isinstance(pki.server_ec.private_key, ec.EllipticCurvePrivateKey)
    assert isinstance(pki.server_rsa.private_key, rsa.RSAPrivateKey)
    with open(pki.server_ec.key, "rb") as f:
        assert f.read().startswith(b"-----BEGIN EC PRIVATE KEY-----")
    with open(pki.server_rsa.key, "rb") as f:
        assert f.read().startswith(b"-----BEGIN RSA PRIVATE KEY-----")


def test_wildcard_covers_one_label_only(pki):
    handshake(_server_ctx(pki.wildcard), _client_ctx(pki.ca), "api.example.test")
    with pytest.raises(ssl.SSLCertVerificationError) as e:
        handshake(_server_ctx(pki.wildcard), _client_ctx(pki.ca), "a.b.example.test")
    assert e.value.verify_code == X509_V_ERR_HOSTNAME_MISMATCH


def test_expired_leaf_fails_as_expired(pki):
    with pytest.raises(ssl.SSLCertVerificationError) as e:
        handshake(_server_ctx(pki.expired), _client_ctx(pki.ca), "localhost")
    assert e.value.verify_code == X509_V_ERR_CERT_HAS_EXPIRED, e.value.verify_message


def test_wrong_name_leaf_fails_the_hostname_check(pki):
    with pytest.raises(ssl.SSLCertVerificationError) as e:
        handshake(_server_ctx(pki.wrong_name), _client_ctx(pki.ca), "localhost")
    assert e.value.verify_code == X509_V_ERR_HOSTNAME_MISMATCH, e.value.verify_message
    handshake(_server_ctx(pki.wrong_name), _client_ctx(pki.ca), "wrong.invalid")  # its own name is fine


def test_leaf_of_the_unrelated_ca_fails(pki):
    with pytest.raises(ssl.SSLCertVerificationError) as e:
        handshake(_server_ctx(pki.foreign), _client_ctx(pki.ca), "localhost")
    assert e.value.verify_code == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, e.value.verify_message
    handshake(_server_ctx(pki.foreign), _client_ctx(pki.other_ca), "localhost")


def test_client_cert_chains_to_the_client_ca(pki):
    server = handshake(_server_ctx(pki.server_ec, client_ca=pki.client_ca),
                       _client_ctx(pki.ca, client_cert=pki.client_cert), "localhost")
    peer = server.getpeercert()
    assert dict(x[0] for x in peer["subject"])["commonName"] == "alice"
    assert pki.client_cert.common_name == "alice"
    der = server.getpeercert(binary_form=True)
    assert hashlib.sha256(der).hexdigest() == pki.client_cert.fingerprint_sha256


def test_client_cert_of_another_ca_or_none_is_refused(pki):
    with pytest.raises(ssl.SSLError):
        handshake(_server_ctx(pki.server_ec, client_ca=pki.client_ca),
                  _client_ctx(pki.ca, client_cert=pki.foreign_client), "localhost")
    with pytest.raises(ssl.SSLError):
        handshake(_server_ctx(pki.server_ec, client_ca=pki.client_ca), _client_ctx(pki.ca), "localhost")
    with pytest.raises(ssl.SSLError):  # the server CA does not sign clients' certificates
        handshake(_server_ctx(pki.server_ec, client_ca=pki.ca),
                  _client_ctx(pki.ca, client_cert=pki.client_cert), "localhost")


def test_keys_are_private_and_outside_the_tree(pki):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    certs = [pki.ca, pki.client_ca, pki.other_ca, pki.server_ec, pki.server_rsa, pki.wildcard, pki.expired,
             pki.wrong_name, pki.foreign, pki.client_cert, pki.foreign_client]
    for c in certs:
        assert stat.S_IMODE(os.stat(c.key).st_mode) == 0o600, c
        assert not os.path.abspath(c.key).startswith(repo + os.sep), c


def test_pkcs8_key_on_request(pki):
    leaf = pki.leaf(["pkcs8.example.test"], key="rsa", pkcs8=True)
    with open(leaf.key, "rb") as f:
        assert f.read().startswith(b"-----BEGIN PRIVATE KEY-----")
    handshake(_server_ctx(leaf), _client_ctx(pki.ca), "pkcs8.example.test")

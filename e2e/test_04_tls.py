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

"""Milestone 04 end to end: the HTTP/1.1 reverse proxy (build/bin/gw04 = gw03 plus http
listeners with routes and per-route middleware), on free loopback ports, with `workers` from
GW_WORKERS.

Upstreams are gwtest.http.HttpBackend servers: keep-alive HTTP/1.1, they count accepted TCP
connections (.accepted) and requests (.requests), record every request (method, target,
headers as received, body length and sha256, trailers) and answer through a handler (by
default a JSON description of the request, with the backend's name). Clients are raw
sockets (gwtest.http.HttpClient) with a strict response reader, so a test sees exactly what
the proxy sent and whether it closed the connection afterwards.

One behaviour per test. Every wait polls to a deadline (stretched x5 under sanitizers, where
request counts are divided by 4 and 1 GiB transfers are skipped in favour of the 32 MiB
ones); the only pauses are deliberate slowness (a slow upstream, a trickling client),
marked allowed-sleep."""
import base64
import collections
import hashlib
import json
import math
import os
import re
import select
import signal
import socket
import threading
import time

import pytest

from gwtest import config, env
from gwtest import data as gwdata
from gwtest.cfgerrors import position
from gwtest.clients import try_connect
from gwtest.env import GiB, KiB, MiB
from gwtest.http import Reply, request_bytes
from gwtest.jwt import JWT_SECRET, AsymmetricKey, jwt_token
from gwtest.wait import Deadline, wait_until

GW = "gw04"
GW03 = "gw03"

# Streaming must not buffer: the proxy's peak RSS may grow by less than this during a
# 1 GiB transfer (plain build only).
RSS_GROWTH_LIMIT = 64 * MiB
BIG = 1 * GiB
SMALL = 32 * MiB
STALL_SECONDS = 2.0

HEX32 = re.compile(r"^[0-9a-f]{32}$")


# ---- helpers -----------------------------------------------------------------------------------


def proxy(gateway, upstreams, routes=None, http=None, **kw):
    """gw04 with one http listener `edge`; see config.http_proxy."""
    return gateway(GW, config.http_proxy(upstreams, routes=routes, http=http, **kw))


def echo_doc(resp, what="response"):
    """The backend's JSON description of the request it received (Reply.echo_json)."""
    assert resp.status == 200, "%s: expected the backend's 200, got %r" % (what, resp)
    doc = resp.json()
    assert "backend" in doc and "headers" in doc, "%s: not the backend's echo: %r" % (what, resp)
    return doc


def doc_header_all(doc, name):
    return [v for k, v in doc["headers"] if k.lower() == name.lower()]


def assert_error(resp, status, what=""):
    """RESP is the proxy's own error answer STATUS: a small JSON body with "status" and
    "request_id"."""
    assert resp.status == status, "%s: expected %d, got %r" % (what, status, resp)
    try:
        doc = json.loads(resp.body.decode())
    except ValueError:
        raise AssertionError("%s: the %d's body should be JSON with status and request_id: %r" % (
            what, status, resp)) from None
    assert isinstance(doc, dict) and doc.get("status") == status, \
        "%s: the JSON body should say \"status\": %d: %r" % (what, status, doc)
    assert "request_id" in doc, "%s: the JSON body should carry \"request_id\": %r" % (what, doc)
    return doc


def assert_closed(c, resp, what=""):
    end = c.wait_closed(timeout=env.timeout(3))
    assert end in ("eof", "reset"), "%s: after the %d the proxy should close the connection (it is %s)" % (
        what, resp.status, end)


def assert_state_consistent(c, resp, what="", path=None, want=(200,)):
    """After RESP: if it announced `Connection: close` the proxy must close; otherwise the
    connection must carry another request (GET PATH, default /after-STATUS), answered with
    one of the statuses WANT (a stray byte left over would turn it into something else)."""
    if resp.closes:
        assert_closed(c, resp, what)
        return "closed"
    path = path or "/after-%d" % resp.status
    try:
        nxt = c.get(path, timeout=env.timeout(5))
    except AssertionError as e:
        raise AssertionError("%s: the %d did not say Connection: close, yet the connection did not carry "
                             "another request: %s" % (what, resp.status, e)) from None
    assert nxt.status in want, "%s: after the %d (kept open), GET %s got %r, expected %s" % (
        what, resp.status, path, nxt, list(want))
    return "open"


def rss_growth(gw):
    before, after = gw.ready_rss, gw.rss()
    assert before and after, "could not read /proc/%d/status" % gw.pid
    return after["VmHWM"] - before["VmRSS"], before, after


def assert_rss_bounded(gw, what):
    if not env.rss_checks():
        return
    growth, before, after = rss_growth(gw)
    gw.transcript.note("%s: peak RSS growth %.1f MiB" % (what, growth / MiB))
    assert growth < RSS_GROWTH_LIMIT, (
        "%s: peak RSS grew by %.1f MiB (VmRSS at ready %.1f MiB, VmHWM now %.1f MiB), limit %d MiB: "
        "is the proxy buffering a body instead of streaming it with backpressure?"
        % (what, growth / MiB, before["VmRSS"] / MiB, after["VmHWM"] / MiB, RSS_GROWTH_LIMIT // MiB))


def fresh(gw, http_client, method, target, headers=(), body=b"", **kw):
    """One request on a new connection (for tests of something other than keep-alive)."""
    c = http_client(gw)
    try:
        return c.request(method, target, headers, body, **kw)
    finally:
        c.close()


def fget(gw, http_client, target, headers=(), **kw):
    return fresh(gw, http_client, "GET", target, headers, **kw)


def by_path(table, default=None):
    """A backend handler choosing a Reply factory by exact path (default: echo)."""
    def handler(req):
        f = table.get(req.path)
        if f is not None:
            return f(req) if callable(f) else f
        return default(req) if default else Reply.echo_json()
    return handler


# ---- forwarding --------------------------------------------------------------------------------


def test_get_round_trip(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b)
    c = http_client(gw)
    r = c.get("/hello/world?x=1&y=2", headers=[("X-Custom", "kept as is")])
    doc = echo_doc(r)
    assert (doc["method"], doc["target"]) == ("GET", "/hello/world?x=1&y=2")
    assert doc_header_all(doc, "X-Custom") == ["kept as is"]
    assert doc_header_all(doc, "Host") == ["gw.test"], "Host is preserved without host_rewrite: %s" % doc["headers"]
    assert doc["body_len"] == 0 and doc["framing"] == "none", "a GET without body must reach the backend without one"
    via = [x.strip() for v in doc_header_all(doc, "Via") for x in v.split(",")]
    assert any(x.startswith("1.1 ") for x in via), "the proxy should add Via: 1.1 ... upstream: %s" % doc["headers"]
    assert r.header("X-Backend") == b.name, "the backend's own response fields reach the client"
    assert b.requests == 1


def test_post_bodies_both_ways(gateway, backend, http_client):
    """A Content-Length body up, a generated body down, on one connection."""
    b = backend.http(handler=by_path({"/down": lambda req: Reply.generated(300 * KiB + 7, seed=42)}))
    gw = proxy(gateway, b)
    c = http_client(gw)
    body = gwdata.make(200 * KiB + 3, seed=41)
    doc = echo_doc(c.request("POST", "/up", [("Content-Type", "application/octet-stream")], body))
    assert (doc["method"], doc["body_len"], doc["body_sha256"]) == ("POST", len(body), gwdata.sha256(body))
    r = fget(gw, http_client, "/down")
    assert r.status == 200
    assert (r.body_len, r.sha256) == (300 * KiB + 7, gwdata.sha256_of(300 * KiB + 7, 42)), "the download's bytes"


def test_upstream_status_and_body_intact(gateway, backend, http_client):
    """The upstream's own statuses, reasons and bodies (errors included) pass unchanged."""
    b = backend.http(handler=by_path({
        "/created": Reply.fixed(201, b'{"id": 7}', headers=[("Location", "/items/7")]),
        "/missing": Reply.fixed(404, b"no such thing"),
        "/boom": Reply.fixed(500, b"backend stack trace"),
        "/teapot": Reply(418, body=b"short and stout", reason="I'm a teapot"),
    }))
    gw = proxy(gateway, b)
    for path, status, body in [("/created", 201, b'{"id": 7}'), ("/missing", 404, b"no such thing"),
                               ("/boom", 500, b"backend stack trace"), ("/teapot", 418, b"short and stout")]:
        r = fget(gw, http_client, path)
        assert (r.status, r.body) == (status, body), "GET %s: the upstream's %d should pass as is: %r" % (path, status, r)
    assert fget(gw, http_client, "/created").header("Location") == "/items/7"


def test_upstream_connection_close_not_reused(gateway, backend, http_client):
    def handler(req):
        r = Reply.echo_json()
        r.close_after = True  # answers with Connection: close, then closes
        return r

    b = backend.http(handler=handler)
    gw = proxy(gateway, b)
    c = http_client(gw)
    for i in range(3):
        r = c.get("/once/%d" % i)
        assert echo_doc(r, "request %d" % i)["index"] == 1, "a connection the upstream closed was reused"
        if r.closes:
            c = http_client(gw)
    assert b.requests == 3 and b.accepted == 3 and b.hangups == 0


def test_close_delimited_upstream_body(gateway, backend, http_client):
    body = gwdata.make(300 * KiB + 1, seed=46)

    def handler(req):
        r = Reply.fixed(200, body)
        r.no_length = True  # no Content-Length, no chunked: the body ends when the upstream closes
        return r

    b = backend.http(handler=handler)
    gw = proxy(gateway, b)
    c = http_client(gw)
    r = c.get("/until-close")
    assert r.status == 200 and (r.body_len, r.sha256) == (len(body), gwdata.sha256(body)), r
    if r.framing == "close":
        assert_closed(c, r, "a close-delimited body")
    else:
        r2 = c.get("/next")
        assert r2.status == 200 and r2.body_len == len(body), \
            "re-framed (%s), the connection should carry another request: %r" % (r.framing, r2)


def test_chunked_upload_with_trailers(gateway, backend, http_client):
    b = backend.http()
    # Trailers are dropped unless the listener lists them (issue 11).
    gw = proxy(gateway, b, http={"forward_trailers": ["X-Checksum"]})
    c = http_client(gw)
    n = 1 * MiB + 11
    c.send(request_bytes("POST", "/chunked", [("Transfer-Encoding", "chunked"), ("Trailer", "X-Checksum")]))
    c.send_chunked(gwdata.chunks(n, 43), trailers=[("X-Checksum", "abc123")])
    doc = echo_doc(c.read_response())
    assert (doc["body_len"], doc["body_sha256"]) == (n, gwdata.sha256_of(n, 43)), "the chunked body, re-framed"
    assert ["X-Checksum", "abc123"] in [[k, v] for k, v in doc["trailers"]], \
        "the request's trailers should reach the backend: %s" % doc["trailers"]


def test_chunked_download(gateway, backend, http_client):
    n = 2 * MiB + 5

    def handler(req):
        r = Reply.generated(n, seed=44, chunked=True)
        r.trailers = [("X-Sum", "s1")]
        return r

    b = backend.http(handler=handler)
    gw = proxy(gateway, b, http={"forward_trailers": ["X-Sum"]})
    c = http_client(gw)
    r = c.get("/stream")
    assert r.status == 200 and (r.body_len, r.sha256) == (n, gwdata.sha256_of(n, 44)), r
    assert ("X-Sum", "s1") in r.trailers, "the response's trailers should reach the client: %s" % r.trailers
    r2 = c.get("/again")
    assert r2.status == 200 and r2.body_len == n, "the connection should carry a request after a chunked response"


def test_forwarded_headers_from_untrusted_client(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b, routes=[config.route(name="fw", middleware=[{"forwarded": {}}])])
    c = http_client(gw)
    forged = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-Proto", "https"),
              ("X-Forwarded-Host", "evil.example"), ("Forwarded", "for=6.6.6.6;proto=https")]
    doc = echo_doc(c.get("/fw", headers=forged, host="shop.example:8080"))
    h = lambda n: doc_header_all(doc, n)  # noqa: E731
    assert h("X-Forwarded-For") == ["127.0.0.1"], "an untrusted peer's X-Forwarded-For is replaced: %s" % doc["headers"]
    assert h("X-Forwarded-Proto") == ["http"], doc["headers"]
    assert h("X-Forwarded-Host") == ["shop.example:8080"], doc["headers"]
    fwd = ",".join(h("Forwarded"))
    assert re.search(r'for="?127\.0\.0\.1', fwd) and "6.6.6.6" not in fwd, "Forwarded: %r" % fwd
    via = [x.strip() for v in h("Via") for x in v.split(",")]
    assert any(x.startswith("1.1 ") for x in via), "a Via: 1.1 ... element should be added: %s" % via
    assert len(via) == 1, "one Via element, the middleware's (the engine adds none then): %s" % via


def test_forwarded_headers_from_trusted_proxy(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b, http={"trusted_proxies": ["127.0.0.0/8"]},
               routes=[config.route(name="fw", middleware=[{"forwarded": {}}])])
    c = http_client(gw)
    doc = echo_doc(c.get("/fw", headers=[("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-Proto", "https")]))
    xff = ",".join(doc_header_all(doc, "X-Forwarded-For"))
    assert [x.strip() for x in xff.split(",")] == ["6.6.6.6", "127.0.0.1"], \
        "a trusted peer's chain is extended with the peer: %r" % xff
    assert doc_header_all(doc, "X-Forwarded-Proto") == ["https"], "a trusted peer's proto is kept: %s" % doc["headers"]


def test_forwarded_headers_on_by_default(gateway, backend, http_client):
    """A route that does not list `forwarded` still sets X-Forwarded-For/-Proto/-Host and
    Forwarded (issue 14: Envoy, Traefik and Caddy add them by default), with the same trust
    rule: a client's own values are replaced, and so is a client's X-Real-IP."""
    b = backend.http()
    gw = proxy(gateway, b)
    c = http_client(gw)
    doc = echo_doc(c.get("/plain", headers=[("X-Forwarded-For", "6.6.6.6"), ("X-Real-IP", "6.6.6.6")],
                         host="shop.example"))
    h = lambda n: doc_header_all(doc, n)  # noqa: E731
    assert h("X-Forwarded-For") == ["127.0.0.1"], doc["headers"]
    assert h("X-Forwarded-Proto") == ["http"], doc["headers"]
    assert h("X-Forwarded-Host") == ["shop.example"], doc["headers"]
    assert re.search(r'for="?127\.0\.0\.1', ",".join(h("Forwarded"))), doc["headers"]
    assert h("X-Real-IP") == [], "a client's X-Real-IP never reaches the backend: %s" % doc["headers"]
    assert len([x for v in h("Via") for x in v.split(",")]) == 1, doc["headers"]


def test_forwarded_false_turns_them_off(gateway, backend, http_client):
    """`forwarded: false`: the request's forwarding fields pass as the client sent them (a
    gateway behind another proxy that owns them), only Via is added."""
    b = backend.http()
    gw = proxy(gateway, b, routes=[config.route(name="off", middleware=[{"forwarded": False}])])
    c = http_client(gw)
    doc = echo_doc(c.get("/off", headers=[("X-Forwarded-For", "6.6.6.6")]))
    h = lambda n: doc_header_all(doc, n)  # noqa: E731
    assert h("X-Forwarded-For") == ["6.6.6.6"], doc["headers"]
    assert h("X-Forwarded-Proto") == [] and h("Forwarded") == [], doc["headers"]
    via = [x.strip() for v in h("Via") for x in v.split(",")]
    assert len(via) == 1 and via[0].startswith("1.1 "), "Via is a proxy's duty, even then: %s" % via


def test_x_real_ip_option(gateway, backend, http_client):
    """`forwarded: {x_real_ip: true}`: X-Real-IP is the client: the peer when untrusted, else
    read from a trusted proxy's chain past the trusted hops."""
    b = backend.http()
    gw = proxy(gateway, b, http={"trusted_proxies": ["127.0.0.1"]},
               routes=[config.route(name="rip", middleware=[{"forwarded": {"x_real_ip": True}}])])
    c = http_client(gw)
    doc = echo_doc(c.get("/rip", headers=[("X-Forwarded-For", "203.0.113.5, 127.0.0.1")]))
    assert doc_header_all(doc, "X-Real-IP") == ["203.0.113.5"], doc["headers"]
    assert doc_header_all(doc, "X-Forwarded-For") == ["203.0.113.5, 127.0.0.1, 127.0.0.1"], doc["headers"]
    doc = echo_doc(c.get("/rip"))
    assert doc_header_all(doc, "X-Real-IP") == ["127.0.0.1"], doc["headers"]


def test_hop_by_hop_headers_not_forwarded(gateway, backend, http_client):
    b = backend.http(handler=lambda req: Reply.echo_json(headers=[
        ("Connection", "X-Bar"), ("X-Bar", "upstream-private"), ("X-Stay", "1")]))
    gw = proxy(gateway, b)
    c = http_client(gw)
    r = c.get("/hop", headers=[("Connection", "close, X-Foo"), ("X-Foo", "secret"), ("Keep-Alive", "timeout=5"),
                               ("TE", "trailers"), ("Proxy-Connection", "keep-alive"), ("X-Keep", "yes")])
    doc = echo_doc(r)
    names = {k.lower() for k, _ in doc["headers"]}
    leaked = names & {"x-foo", "keep-alive", "te", "proxy-connection"}
    assert not leaked, "hop-by-hop fields reached the backend: %s in %s" % (leaked, doc["headers"])
    conn = ",".join(doc_header_all(doc, "Connection")).lower()
    assert "x-foo" not in conn, "the client's Connection field was forwarded: %r" % conn
    assert doc_header_all(doc, "X-Keep") == ["yes"], "an end-to-end field was dropped: %s" % doc["headers"]
    assert r.header("X-Bar") is None, "a field the upstream's Connection named reached the client: %r" % r
    assert r.header("X-Stay") == "1"
    assert_closed(c, r, "the client sent Connection: close")


def test_host_rewrite(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b, routes=[config.route(name="rw", path_prefix="/rw", host_rewrite="app.internal"),
                                   config.route(name="keep", path_prefix="/")])
    assert doc_header_all(echo_doc(fget(gw, http_client, "/rw/x")), "Host") == ["app.internal"]
    assert doc_header_all(echo_doc(fget(gw, http_client, "/other")), "Host") == ["gw.test"]


def test_http10_client_gets_close(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b)
    c = http_client(gw)
    r = c.request("GET", "/old", version="1.0")
    assert r.status == 200 and r.json()["target"] == "/old"
    assert_closed(c, r, "an HTTP/1.0 request without keep-alive")


def test_http10_chunked_upstream_body_is_close_delimited(gateway, backend, http_client):
    """An HTTP/1.0 client cannot read chunked framing: a chunked upstream body reaches it
    delimited by the close, even when it asked for keep-alive (the request's version was
    rewritten to 1.1 for the upstream and then read back: issue 11)."""
    n = 70000
    b = backend.http(handler=lambda req: Reply.generated(n, seed=7, chunked=True))
    gw = proxy(gateway, b)
    c = http_client(gw)
    r = c.request("GET", "/old", headers=[("Connection", "keep-alive")], version="1.0")
    assert r.status == 200 and r.framing == "close", "a 1.0 client got %r" % r
    assert r.header("Transfer-Encoding") is None, r
    assert (r.body_len, r.sha256) == (n, gwdata.sha256_of(n, 7))


def test_http10_client_gets_no_interim_responses(gateway, backend, http_client):
    """A 1.0 client takes a 1xx for the final answer: behind a keep-alive 1.0 proxy the real
    response would then answer its next request, maybe another user's."""
    def handler(req):
        r = Reply.echo_json()
        r.interim = [103]
        return r

    b = backend.http(handler=handler)
    gw = proxy(gateway, b)
    c = http_client(gw)
    r = c.request("GET", "/hints", headers=[("Connection", "keep-alive")], version="1.0")
    assert r.status == 200 and r.interim == [], "a 1.0 client got interim responses: %r" % r.interim
    assert r.header("Connection") == "keep-alive" and r.framing == "length", r
    r2 = c.request("GET", "/next", headers=[("Connection", "keep-alive")], version="1.0")
    assert r2.status == 200 and r2.json()["target"] == "/next", r2
    c11 = http_client(gw)
    r3 = c11.get("/hints11")
    assert r3.status == 200 and [st for st, _ in r3.interim] == [103], "a 1.1 client should see the 103: %r" % r3.interim


def test_http10_request_without_host_gets_one_upstream(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b, routes=[config.route("app", name="plain", path_prefix="/plain"),
                                   config.route("app", name="rw", path_prefix="/rw",
                                                host_rewrite="app.internal")])
    c = http_client(gw)
    c.send(request_bytes("GET", "/plain", host=None, version="1.0"))
    doc = echo_doc(c.read_response())
    assert doc_header_all(doc, "Host") == [b.address_str], \
        "a 1.0 request without Host goes upstream as 1.1 with the backend's address: %s" % doc["headers"]
    c2 = http_client(gw)
    c2.send(request_bytes("GET", "/rw", host=None, version="1.0"))
    doc = echo_doc(c2.read_response())
    assert doc_header_all(doc, "Host") == ["app.internal"], doc["headers"]


# ---- keep-alive, pipelining, pools ------------------------------------------------------------


def test_keepalive_reuses_connections(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b)
    c = http_client(gw)
    for i in range(20):
        doc = echo_doc(c.get("/ka/%d" % i), "request %d" % i)
        assert doc["target"] == "/ka/%d" % i
    assert b.requests == 20
    assert b.accepted <= env.WORKERS, (
        "20 sequential requests on one client connection opened %d upstream connections "
        "(the pool should reuse them; workers: %d)" % (b.accepted, env.WORKERS))


def test_pool_shared_by_client_connections(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b)
    for i in range(10):
        c = http_client(gw)
        assert c.get("/c/%d" % i, headers=[("Connection", "close")]).status == 200
        c.close()
    assert b.accepted <= env.WORKERS, (
        "10 sequential client connections opened %d upstream connections; idle ones should be "
        "reused (workers: %d)" % (b.accepted, env.WORKERS))


def test_pipelined_requests_answered_in_order(gateway, backend, http_client):
    # The first one is the slowest: an engine that answers as upstreams finish would reorder.
    b = backend.http(handler=by_path({"/p1": lambda req: Reply.delayed(0.2)}))
    gw = proxy(gateway, b)
    c = http_client(gw)
    body = b"pipelined body"
    c.send(request_bytes("GET", "/p1") + request_bytes("POST", "/p2", body=body) + request_bytes("GET", "/p3"))
    got = [c.read_response() for _ in range(3)]
    assert [r.status for r in got] == [200] * 3, got
    docs = [r.json() for r in got]
    assert [d["target"] for d in docs] == ["/p1", "/p2", "/p3"], "pipelined responses out of order"
    assert docs[1]["body_len"] == len(body)


def test_upstream_max_requests_per_connection(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b, keepalive={"max_requests": 2})
    c = http_client(gw)
    for i in range(6):
        assert c.get("/m/%d" % i).status == 200
    per_conn = collections.Counter(r.conn_id for r in b.log)
    assert max(per_conn.values()) <= 2, "max_requests 2, yet an upstream connection carried %s" % dict(per_conn)
    assert b.accepted >= 3


def test_upstream_max_idle_trims_pool(gateway, backend, http_client):
    n = 6
    release = threading.Event()
    b = backend.http(handler=lambda req: Reply.delayed(wait=release))
    # One worker: with several, the bound is per worker and how the kernel spreads the
    # clients decides whether one connection too many shows (check-labs saw it hide).
    gw = proxy(gateway, b, keepalive={"max_idle": 1}, workers=1)
    try:
        clients = [http_client(gw) for _ in range(n)]
        for i, c in enumerate(clients):
            c.send_request("GET", "/held/%d" % i)
        b.wait_requests(n)
        assert b.accepted == n, "%d requests in flight at once need %d upstream connections" % (n, n)
        release.set()
        for c in clients:
            assert c.read_response().status == 200
    finally:
        release.set()
    wait_until(lambda: b.active <= 1, env.timeout(3), "the pool to keep at most max_idle 1 idle connection",
               describe=lambda: "upstream connections still open: %d" % b.active)


def test_upstream_idle_timeout_closes_pooled_connection(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b, keepalive={"idle_timeout": "300ms"})
    c = http_client(gw)
    assert c.get("/idle").status == 200
    dl = Deadline(0)
    b.wait_idle(timeout=env.timeout(3))
    assert dl.elapsed() >= 0.25, "the pooled connection closed after %.2fs, before idle_timeout (300ms)" % dl.elapsed()


def test_client_keepalive_timeout(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b, http={"keepalive_timeout": "500ms"})
    c = http_client(gw)
    r = c.get("/k")
    assert r.status == 200
    dl = Deadline(0)
    end = c.wait_closed(timeout=env.timeout(3))
    assert end in ("eof", "reset"), "keepalive_timeout 500ms should close the idle client connection (%s)" % end
    assert dl.elapsed() >= 0.45, "closed after %.2fs, before keepalive_timeout" % dl.elapsed()


def test_retry_on_reused_connection_closed_for_get_only(gateway, backend, http_client):
    """The backend answers the first request of each connection and hangs up on the second
    without a byte: a GET is retried once (on a new connection), a POST never."""
    b = backend.http(handler=lambda req: Reply.hang_up() if req.index >= 2 else Reply.echo_json())
    gw = proxy(gateway, b)
    c = http_client(gw)
    assert c.get("/first").status == 200
    r = c.get("/idempotent")
    doc = echo_doc(r, "a GET whose reused upstream connection closed before answering")
    assert doc["target"] == "/idempotent"
    assert b.paths().count("/idempotent") == 2, "the GET should be sent twice: %s" % b.paths()
    # Now the pooled connection carried one request again: a POST on it is hung up on.
    r = c.request("POST", "/not-idempotent", body=b"once")
    assert r.status == 502, "a POST must not be retried: expected 502, got %r" % r
    assert b.paths().count("/not-idempotent") == 1, "the POST reached the backend %d times" % b.paths().count(
        "/not-idempotent")
    # A POST without a body could be replayed byte for byte, yet it is not idempotent: the
    # rule is the method's, not the body's.
    c2 = http_client(gw)
    assert c2.get("/warm").status == 200  # this worker's pool now holds a used connection
    r = c2.request("POST", "/bodiless-post")
    assert r.status == 502, "a bodiless POST must not be retried either: expected 502, got %r" % r
    assert b.paths().count("/bodiless-post") == 1, "the bodiless POST reached the backend %d times" % (
        b.paths().count("/bodiless-post"))


def test_retry_middleware_sends_a_get_to_another_backend(gateway, backend, http_client):
    """One backend hangs up on every request without a byte, the other answers. On a route
    with the retry middleware a GET that met the first is sent again on a fresh pick and
    answered by the second; a POST is never sent twice; a route without it answers 502."""
    bad = backend.http(name="bad", handler=lambda req: Reply.hang_up())
    good = backend.http(name="good")
    cfg = config.http_proxy([bad, good], routes=[
        config.route(name="retried", path_prefix="/r/", middleware=[{"retry": {"max_attempts": 2}}]),
        config.route(name="plain", path_prefix="/p/"),
    ])
    cfg["upstreams"]["app"]["outlier"] = {"consecutive_failures": 0}  # the bad one stays in
    gw = gateway(GW, cfg)
    # Round robin per worker: over 6 requests some worker takes the bad backend first.
    for i in range(6):
        path = "/r/get-%d" % i
        doc = echo_doc(http_client(gw).get(path), "a GET on the retried route")
        assert doc["target"] == path
        assert good.paths().count(path) == 1
    assert any(p.startswith("/r/get-") for p in bad.paths()), "no GET met the bad backend: %s" % bad.paths()
    statuses = []
    for i in range(6):
        path = "/r/post-%d" % i
        r = http_client(gw).request("POST", path, body=b"once")
        statuses.append(r.status)
        sent = bad.paths().count(path) + good.paths().count(path)
        assert sent == 1, "POST %s reached the backends %d times (%r)" % (path, sent, r)
    assert 502 in statuses and 200 in statuses, "POSTs: %s" % statuses
    statuses = [http_client(gw).get("/p/get-%d" % i).status for i in range(6)]
    assert 502 in statuses and 200 in statuses, "GETs without the retry middleware: %s" % statuses


# ---- HEAD, 1xx, 204, 304 ------------------------------------------------------------------------


def test_head_has_no_body(gateway, backend, http_client):
    b = backend.http(handler=lambda req: Reply.fixed(200, b"x" * 1234))
    gw = proxy(gateway, b)
    c = http_client(gw)
    r = c.request("HEAD", "/thing")
    assert r.status == 200 and r.body_len == 0
    assert r.header("Content-Length") in (None, "1234"), "HEAD should announce the GET's length: %r" % r
    r2 = c.get("/thing")
    assert (r2.status, r2.body) == (200, b"x" * 1234), "a stray body after the HEAD answer would corrupt this: %r" % r2
    assert [x.method for x in b.log] == ["HEAD", "GET"]


def test_204_and_304_have_no_body(gateway, backend, http_client):
    b = backend.http(handler=by_path({
        "/204": Reply.fixed(204),
        "/304": lambda req: Reply.fixed(304, headers=[("ETag", '"v1"')]),
    }))
    gw = proxy(gateway, b)
    c = http_client(gw)
    r = c.get("/204")
    assert r.status == 204 and r.body_len == 0 and r.header("Transfer-Encoding") is None, r
    r = c.get("/304", headers=[("If-None-Match", '"v1"')])
    assert r.status == 304 and r.body_len == 0 and r.header("ETag") == '"v1"', r
    r = c.get("/after")
    assert echo_doc(r)["target"] == "/after", "the connection should carry a request after 204 and 304"


def test_expect_100_refused_gets_final_answer(gateway, backend, http_client):
    """A request the proxy refuses (413 here) gets the final answer at once, no 100."""
    b = backend.http()
    gw = proxy(gateway, b, http={"max_body": "1KiB"})
    c = http_client(gw)
    c.send(request_bytes("PUT", "/upload", [("Expect", "100-continue"), ("Content-Length", "5000")]))
    head = c.read_head(timeout=env.timeout(3))
    assert head is not None and head.status == 413, "expected the 413 and no 100 Continue: %r" % head
    assert b.requests == 0


def test_expect_100_continue(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b)
    c = http_client(gw)
    body = gwdata.make(5000, seed=45)
    c.send(request_bytes("PUT", "/upload", [("Expect", "100-continue"), ("Content-Length", str(len(body)))]))
    head = c.read_head(timeout=env.timeout(3))
    assert head is not None and head.status == 100, (
        "with Expect: 100-continue the client waits for 100 Continue before its body; got %r" % head)
    c.send(body)
    r = c.read_response()
    doc = echo_doc(r)
    assert (doc["body_len"], doc["body_sha256"]) == (len(body), gwdata.sha256(body))


# ---- big transfers -------------------------------------------------------------------------------


def upload(gw, http_client, n, seed, chunked):
    c = http_client(gw, op_timeout=env.timeout(60))
    if chunked:
        c.send(request_bytes("POST", "/upload", [("Transfer-Encoding", "chunked")]))
        c.send_chunked(gwdata.chunks(n, seed))
    else:
        c.send(request_bytes("POST", "/upload", [("Content-Length", str(n))]))
        c.send_data(n, seed)
    doc = echo_doc(c.read_response(timeout=env.timeout(60)), "upload of %d bytes" % n)
    assert (doc["body_len"], doc["body_sha256"]) == (n, gwdata.sha256_of(n, seed)), "what the backend received"


def download(gw, http_client, n, seed, chunked, stall=None):
    c = http_client(gw, op_timeout=env.timeout(60))
    c.send(request_bytes("GET", "/download"))
    r = c.read_response_sized(timeout=env.timeout(120), stall=stall)
    assert r.status == 200 and r.framing == ("chunked" if chunked else "length"), r
    assert (r.body_len, r.sha256) == (n, gwdata.sha256_of(n, seed)), "what the client received"


@pytest.mark.skipif(not env.rss_checks(), reason="1 GiB and RSS bounds on the plain build only")
@pytest.mark.gw_timeout(240)
def test_upload_1gib_sha256_rss(gateway, backend, http_client):
    # The backend stops reading halfway for a while: the proxy must stop reading the client.
    b = backend.http(body_stall=backend.stall(after=BIG // 2, seconds=STALL_SECONDS))
    gw = proxy(gateway, b)
    upload(gw, http_client, BIG, 51, chunked=False)
    assert_rss_bounded(gw, "upload of 1 GiB")


@pytest.mark.skipif(not env.rss_checks(), reason="1 GiB and RSS bounds on the plain build only")
@pytest.mark.gw_timeout(240)
def test_download_1gib_sha256_rss(gateway, backend, http_client):
    b = backend.http(handler=lambda req: Reply.generated(BIG, seed=52))
    gw = proxy(gateway, b)
    # The client stops reading halfway for a while: the proxy must stop reading the backend.
    download(gw, http_client, BIG, 52, chunked=False, stall=backend.stall(after=BIG // 2, seconds=STALL_SECONDS))
    assert_rss_bounded(gw, "download of 1 GiB")


@pytest.mark.gw_timeout(120)
def test_upload_32mib_chunked(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b)
    upload(gw, http_client, SMALL, 53, chunked=True)
    upload(gw, http_client, SMALL + 1, 54, chunked=False)


@pytest.mark.gw_timeout(120)
def test_download_32mib_chunked(gateway, backend, http_client):
    b = backend.http(handler=by_path({"/download": lambda req: Reply.generated(SMALL, seed=55, chunked=True)}))
    gw = proxy(gateway, b)
    download(gw, http_client, SMALL, 55, chunked=True)


# ---- statuses and the connection after them -----------------------------------------------------


# The malformed and ambiguous requests (400 and close, nothing forwarded) are varnishtest
# scripts: conformance/04/bad_*.vtc and smuggle_*.vtc (conformance/README.md).


def test_404_no_route(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b, routes=[config.route(name="api", path_prefix="/api")])
    c = http_client(gw)
    r = c.get("/elsewhere")
    assert_error(r, 404, "GET /elsewhere with only /api routed")
    state = assert_state_consistent(c, r, "404", path="/api/after")
    c2 = c if state == "open" else http_client(gw)
    assert echo_doc(c2.get("/api/x"))["target"] == "/api/x"
    assert [p for p in b.paths() if p != "/api/after"] == ["/api/x"], "only routed requests reach the backend"


def test_408_request_head_timeout(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b, http={"request_head_timeout": "300ms"})
    c = http_client(gw)
    dl = Deadline(0)
    c.send(b"GET /slow-head HTTP/1.1\r\nHost: gw.test\r\nX-Partial: ")
    r = c.read_response(timeout=env.timeout(3))
    elapsed = dl.elapsed()
    assert_error(r, 408, "a head left incomplete past request_head_timeout")
    assert elapsed >= 0.25, "408 after %.2fs, before request_head_timeout (300ms)" % elapsed
    assert_closed(c, r, "408")
    assert b.requests == 0


def test_408_body_timeout(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b, http={"body_timeout": "300ms"})
    c = http_client(gw)
    dl = Deadline(0)
    c.send(request_bytes("POST", "/slow-body", [("Content-Length", "100")]) + b"only ten..")
    r = c.read_response(timeout=env.timeout(3))
    assert_error(r, 408, "a body that stalls past body_timeout")
    assert dl.elapsed() >= 0.25, "408 after %.2fs, before body_timeout (300ms)" % dl.elapsed()
    assert_closed(c, r, "408")
    assert b.requests == 0, "an incomplete body must not complete a request upstream: %s" % b.log


def test_413_body_over_route_max_body(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b, routes=[config.route(name="small", path_prefix="/small", max_body="1KiB"),
                                   config.route(name="rest", path_prefix="/")])
    c = http_client(gw)
    ok = c.request("POST", "/small/ok", body=b"y" * 1024)
    assert echo_doc(ok)["body_len"] == 1024, "exactly max_body is allowed"
    c.send(request_bytes("POST", "/small/big", [("Content-Length", "4096")]))
    r = c.read_response()
    assert_error(r, 413, "Content-Length 4096 over max_body 1KiB")
    try:
        c.send(b"z" * 4096)
    except OSError:
        pass
    assert_state_consistent(c, r, "413")
    assert "/small/big" not in b.paths(), "the refused request reached the backend"
    # A chunked body that grows past the limit is refused too.
    c2 = http_client(gw)
    c2.send(request_bytes("POST", "/small/chunked", [("Transfer-Encoding", "chunked")]))
    try:
        c2.send_chunked([b"q" * 1000] * 4)
    except OSError:
        pass
    r2 = c2.read_response()
    assert_error(r2, 413, "a chunked body of 4000 bytes over max_body 1KiB")
    assert not [x for x in b.log if x.body_len > 1024], "a body over max_body reached the backend: %s" % b.log


def test_413_listener_max_body(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b, http={"max_body": "2KiB"})
    c = http_client(gw)
    c.send(request_bytes("PUT", "/x", [("Content-Length", "10000")]))
    assert_error(c.read_response(), 413, "Content-Length 10000 over the listener's max_body 2KiB")
    assert b.requests == 0


def test_414_uri_too_long(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b, http={"max_uri": "1KiB"})
    c = http_client(gw)
    assert c.get("/" + "a" * 900).status == 200, "a target under max_uri passes"
    c2 = http_client(gw)
    c2.send(request_bytes("GET", "/" + "a" * 2000))
    r = c2.read_response()
    assert_error(r, 414, "a 2001-byte target with max_uri 1KiB")
    assert_closed(c2, r, "414")
    assert b.requests == 1


@pytest.mark.parametrize("what", ["head_size", "field_count"])
def test_431_head_too_large(gateway, backend, http_client, what):
    b = backend.http()
    gw = proxy(gateway, b, http={"max_head_size": "2KiB", "max_headers": 10})
    c = http_client(gw)
    if what == "head_size":
        headers = [("X-Big", "b" * 4000)]
    else:
        headers = [("X-F%d" % i, "v") for i in range(20)]
    c.send(request_bytes("GET", "/big-head", headers))
    r = c.read_response()
    assert_error(r, 431, what)
    assert_closed(c, r, "431")
    assert b.requests == 0


def test_429_rate_limit_with_retry_after(gateway, backend, http_client):
    b = backend.http()
    mw = [{"request_id": {}}, {"rate_limit": {"rate": 1, "burst": 2}}]
    gw = proxy(gateway, b, routes=[config.route(name="limited", middleware=mw)])
    got = []
    for i in range(4):
        c = http_client(gw)
        got.append(c.get("/rl/%d" % i))
        if got[-1].status != 200:
            break
    statuses = [r.status for r in got]
    assert statuses[:2] == [200, 200], "the burst of 2 should pass: %s" % statuses
    refused = [r for r in got if r.status == 429]
    assert refused, "4 quick requests with rate 1/s, burst 2: none was refused (%s)" % statuses
    r = refused[0]
    doc = assert_error(r, 429, "rate limited")
    ra = r.header("Retry-After")
    assert ra is not None and re.fullmatch(r"[0-9]+", ra) and int(ra) >= 1, "429 needs Retry-After seconds: %r" % r
    assert doc["request_id"] == r.header("X-Request-ID") and HEX32.match(doc["request_id"] or ""), \
        "the error body's request_id should be the X-Request-ID sent back: %r" % r
    assert b.requests == statuses.count(200)
    assert_state_consistent(c, r, "429", want=(200, 429))


# Upstream answers with ambiguous framing or a malformed head (502): the script
# conformance/04/smuggle_upstream_response.vtc.


def test_502_backend_refuses(gateway, backend, http_client):
    gw = proxy(gateway, backend.refused())
    c = http_client(gw)
    dl = Deadline(0)
    r = c.get("/nobody-home")
    assert_error(r, 502, "the only backend refuses connections")
    assert dl.elapsed() < env.timeout(2), "a refused connect should be answered at once (%.2fs)" % dl.elapsed()
    assert_state_consistent(c, r, "502", want=(502,))


def test_connect_retry_reaches_another_backend(gateway, backend, http_client):
    """One backend refuses connections: 02's connect retries (through the picker, with no
    middleware) take every request, a POST with its body too, to the other one."""
    good = backend.http(name="good")
    cfg = config.http_proxy([backend.refused(), good])
    cfg["upstreams"]["app"]["outlier"] = {"consecutive_failures": 0}  # the refusing one stays in
    gw = gateway(GW, cfg)
    for i in range(6):
        path = "/get-%d" % i
        assert echo_doc(http_client(gw).get(path))["target"] == path
        r = http_client(gw).request("POST", "/post-%d" % i, body=b"body %d" % i)
        assert r.status == 200, "a POST whose connect was refused never left: it may be sent on: %r" % r
    assert good.paths() == [p for i in range(6) for p in ("/get-%d" % i, "/post-%d" % i)]


def test_503_breaker_open(gateway, backend, http_client, transcript):
    mw = [{"breaker": {"consecutive_failures": 2, "open_timeout": "60s"}}]
    gw = proxy(gateway, backend.refused(), routes=[config.route(name="guarded", middleware=mw)])
    statuses = []
    for i in range(8):
        c = http_client(gw)
        r = c.get("/b/%d" % i)
        statuses.append(r.status)
        if r.status == 503:
            assert_error(r, 503, "breaker open")
            assert_state_consistent(c, r, "503", want=(503,))
            break
        assert_error(r, 502, "a failed request before the breaker opens")
    transcript.note("statuses: %s" % statuses)
    assert statuses[-1] == 503, "after 2 consecutive failures the breaker should open and answer 503: %s" % statuses
    assert statuses.count(502) >= 2


def test_503_no_healthy_backend(gateway, backend, http_client):
    cfg = config.http_proxy(backend.refused())
    cfg["upstreams"]["app"]["health_check"] = {"type": "tcp", "interval": "200ms", "timeout": "1s", "rise": 2, "fall": 2}
    cfg["upstreams"]["app"]["panic_threshold"] = 0  # no panic mode: unhealthy backends are not used
    gw = gateway(GW, cfg)
    gw.wait_log(r"\bUNHEALTHY\b", timeout=env.timeout(5))
    c = http_client(gw)
    r = c.get("/nobody-healthy")
    assert_error(r, 503, "every backend of the upstream is unhealthy")


def test_504_response_timeout(gateway, backend, http_client):
    release = threading.Event()
    b = backend.http(handler=by_path({"/slow": lambda req: Reply.delayed(wait=release)}))
    gw = proxy(gateway, b, http={"response_timeout": "300ms"})
    try:
        c = http_client(gw)
        dl = Deadline(0)
        r = c.get("/slow", timeout=env.timeout(5))
        elapsed = dl.elapsed()
        assert_error(r, 504, "the backend holds its head past response_timeout")
        assert elapsed >= 0.25, "504 after %.2fs, before response_timeout (300ms)" % elapsed
        assert elapsed < env.timeout(2), "504 only after %.2fs" % elapsed
        assert_state_consistent(c, r, "504")
        assert echo_doc(http_client(gw).get("/fast"))["target"] == "/fast", "other requests still work"
    finally:
        release.set()


# ---- one reading of the path ---------------------------------------------------------------------


def test_path_normalised_once(gateway, backend, http_client):
    pub = backend.http(name="pub")
    gw = proxy(gateway, {"pub": pub}, routes=[config.route("pub", name="public", path_prefix="/public")])
    cases = [  # (target sent, status expected, target the backend must see)
        ("//public//a/./b", 200, "/public/a/b"),
        ("/public/%7Euser?q=%2e%2e", 200, "/public/~user?q=%2e%2e"),
        ("/public/x/../y", 200, "/public/y"),
        ("/public/../admin", 404, None),
        ("/public/%2e%2e/admin", 404, None),
        ("/public/..%2fadmin", 400, None),
        ("/public/a%2Fb", 400, None),
        ("/public/a%5cb", 400, None),
        ("/../public/x", 400, None),
    ]
    wrong = []
    for target, status, seen in cases:
        r = fget(gw, http_client, target)
        got = r.json().get("target") if r.status == 200 else None
        if r.status != status or (seen is not None and got != seen):
            wrong.append("%s -> %d %s, expected %d %s" % (target, r.status, got, status, seen))
        if r.status != 200:
            assert_error(r, r.status, target)
    assert not wrong, "path normalisation:\n" + "\n".join(wrong)
    assert not [p for p in pub.paths() if ".." in p or "//" in p], "the backend saw an unnormalised path: %s" % pub.paths()


# ---- smuggling and malformed heads --------------------------------------------------------------

# Every vector (CL.TE, TE.CL, obfuscated Transfer-Encoding, double Content-Length, obs-fold,
# bare CR or LF, NUL, non-token names, bad chunk-size lines): conformance/04/smuggle_*.vtc.
# Each asserts the 400 and the close, and that nothing smuggled ever reaches the upstream.


# ---- slowloris ----------------------------------------------------------------------------------


@pytest.mark.gw_timeout(90)
def test_slowloris_does_not_starve_normal_clients(gateway, backend, http_client, transcript):
    head_timeout = 2.0
    b = backend.http()
    gw = proxy(gateway, b, http={"request_head_timeout": "%dms" % (head_timeout * 1000)})
    n = env.scaled_count(500, floor=50)
    addr = gw.addr("edge")
    socks = []
    opened = Deadline(0)
    for i in range(n):
        s = socket.create_connection(addr, timeout=env.timeout(5))
        s.sendall(b"GET /loris/%d HTTP/1.1\r\nHost: gw.test\r\nX-Slow: " % i)
        socks.append(s)
    transcript.note("%d slowloris connections open with partial heads (%.2fs)" % (n, opened.elapsed()))
    stop = threading.Event()

    def trickle():
        # Half of them keep sending a byte now and then (a head that never ends); the rest idle.
        while not stop.is_set():
            for s in socks[::2]:
                try:
                    s.send(b"a")
                except OSError:
                    pass
            stop.wait(0.1)  # allowed-sleep: the attacker's pace

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        slowest = 0.0
        for i in range(20):
            dl = Deadline(0)
            assert fget(gw, http_client, "/normal/%d" % i).status == 200
            slowest = max(slowest, dl.elapsed())
        assert slowest < env.timeout(0.5), "with %d slowloris connections a normal request took %.2fs" % (n, slowest)
        # Trickling does not extend the head deadline: every one of them is closed.
        left = set(range(n))
        deadline = Deadline(head_timeout + env.timeout(5) - opened.elapsed())

        poller = select.poll()
        fd_index = {}
        for i, s in enumerate(socks):
            poller.register(s, select.POLLIN)
            fd_index[s.fileno()] = i

        def poll():
            for fd, _ in poller.poll(50):
                i = fd_index[fd]
                try:
                    data = socks[i].recv(65536)
                except OSError:
                    data = b""
                if not data:
                    left.discard(i)
                    poller.unregister(fd)
            return not left

        wait_until(poll, max(deadline.left(), 1.0), "every slowloris connection to be closed",
                   describe=lambda: "%d of %d still open" % (len(left), n))
        assert opened.elapsed() >= head_timeout * 0.9, "closed before request_head_timeout"
    finally:
        stop.set()
        t.join(env.timeout(2))
        for s in socks:
            s.close()
    assert not [p for p in b.paths() if p.startswith("/loris")], "an incomplete head reached the backend"


# ---- JWT ----------------------------------------------------------------------------------------

def jwt_proxy(gateway, b):
    mw = [{"request_id": {}}, {"jwt": {"secret": JWT_SECRET, "realm": "api", "claims": {"sub": "X-User-Id"}}}]
    return proxy(gateway, b, routes=[config.route(name="secure", middleware=mw)])


def test_jwt_good_token_passes_claims(gateway, backend, http_client):
    b = backend.http()
    gw = jwt_proxy(gateway, b)
    c = http_client(gw)
    tok = jwt_token({"sub": "alice", "exp": int(time.time()) + 600})
    doc = echo_doc(c.get("/me", headers=[("Authorization", "Bearer " + tok), ("X-User-Id", "mallory")]))
    assert doc_header_all(doc, "X-User-Id") == ["alice"], \
        "the claim header should carry the token's sub (and replace a forged one): %s" % doc["headers"]


@pytest.mark.parametrize("case", ["missing", "expired", "bad_signature", "alg_none", "basic_scheme", "garbage"])
def test_jwt_refused_401(gateway, backend, http_client, case):
    b = backend.http()
    gw = jwt_proxy(gateway, b)
    now = int(time.time())
    good = {"sub": "alice", "exp": now + 600}
    auth = {
        "missing": None,
        "expired": "Bearer " + jwt_token({"sub": "alice", "exp": now - 3600}),
        "bad_signature": "Bearer " + jwt_token(good, secret=JWT_SECRET + "x"),
        "alg_none": "Bearer " + jwt_token(good, header={"alg": "none", "typ": "JWT"}, sign=False),
        "basic_scheme": "Basic " + base64.b64encode(b"alice:pw").decode(),
        "garbage": "Bearer not.a.token",
    }[case]
    c = http_client(gw)
    r = c.get("/me", headers=[("Authorization", auth)] if auth else [])
    doc = assert_error(r, 401, case)
    www = r.header("WWW-Authenticate") or ""
    assert www.startswith("Bearer") and 'realm="api"' in www, "401 needs WWW-Authenticate: Bearer realm=\"api\": %r" % r
    if case in ("expired", "bad_signature", "alg_none", "garbage"):
        assert "invalid_token" in www, "a bad token's 401 should say error=\"invalid_token\": %r" % www
    assert doc["request_id"] == r.header("X-Request-ID"), "error body and X-Request-ID disagree: %r" % r
    assert b.requests == 0, "a refused request reached the backend"
    assert_state_consistent(c, r, "401", want=(401,))


@pytest.mark.parametrize("alg,source", [("RS256", "jwks"), ("RS256", "pem"), ("ES256", "jwks"), ("ES256", "pem")])
def test_jwt_asymmetric_tokens_end_to_end(gateway, backend, http_client, tmp_path, alg, source):
    """RS256 and ES256 tokens through the gateway, with keys from a JWKS file or a PEM
    certificate (`keys`, with `kid` for PEM): a good one passes with its claim header, a
    tampered one (payload changed, signature kept; or signed by another key under the same
    kid) is refused 401 and never reaches the backend."""
    key = AsymmetricKey(tmp_path, alg, "k-" + alg.lower())
    (tmp_path / "other").mkdir()
    other = AsymmetricKey(tmp_path / "other", alg, "other-" + alg.lower())
    jwt = {"keys": key.jwks if source == "jwks" else key.cert, "audiences": ["gw-e2e"],
           "claims": {"sub": "X-User-Id"}}
    if source == "pem":
        jwt["kid"] = key.kid
    b = backend.http()
    gw = proxy(gateway, b, routes=[config.route(name="asym", middleware=[{"jwt": jwt}])])
    c = http_client(gw)
    claims = {"sub": "alice", "aud": "gw-e2e", "exp": int(time.time()) + 600}
    good = key.token(claims)
    doc = echo_doc(c.get("/me", headers=[("Authorization", "Bearer " + good)]), alg)
    assert doc_header_all(doc, "X-User-Id") == ["alice"], doc["headers"]
    head, _, sig = good.split(".")
    forged = base64.urlsafe_b64encode(json.dumps(dict(claims, sub="admin")).encode()).rstrip(b"=").decode()
    bad_sig = sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")
    for what, tok in [("payload changed", head + "." + forged + "." + sig),
                      ("signature changed", head + "." + good.split(".")[1] + "." + bad_sig),
                      ("another key, same kid", other.token(claims, kid=key.kid))]:
        r = c.get("/me", headers=[("Authorization", "Bearer " + tok)])
        assert_error(r, 401, "%s %s" % (alg, what))
        assert "invalid_token" in (r.header("WWW-Authenticate") or ""), r
    assert b.requests == 1, "only the good token reached the backend"


@pytest.mark.parametrize("sub", ["al\r\nice", "alice\nX-Admin: true", "alice\u0000", " alice", "alice\x7f"])
def test_jwt_claim_that_cannot_be_a_header_is_401(gateway, backend, http_client, sub):
    """A correctly signed token whose mapped claim cannot be sent exactly as a header value is
    refused: forwarded without X-User-Id (or with it trimmed), a backend may read a missing
    or different identity as anonymous or as someone else (issue 14)."""
    b = backend.http()
    gw = jwt_proxy(gateway, b)
    c = http_client(gw)
    tok = jwt_token({"sub": sub, "exp": int(time.time()) + 600})
    r = c.get("/me", headers=[("Authorization", "Bearer " + tok)])
    assert_error(r, 401, repr(sub))
    www = r.header("WWW-Authenticate") or ""
    assert 'error="invalid_token"' in www, www
    if "\0" not in sub:  # jansson refuses a NUL in a JSON string: a bad payload already
        assert "header" in www, "the 401 should say why: %r" % www
    assert b.requests == 0, "the token reached the backend"


def test_request_id_one_rule_for_answers_and_proxied(gateway, backend, http_client, tmp_path):
    """Without the request_id middleware, every exchange still has one id: a proxied request
    logs one (not null) and the gateway's own 401 logs the id its body and X-Request-ID show;
    no X-Request-ID goes upstream or on a proxied response (that is the middleware's)."""
    b = backend.http()
    path = str(tmp_path / "access.log")
    mw = [{"access_log": {"file": path}}, {"jwt": {"secret": JWT_SECRET, "claims": {"sub": "X-User-Id"}}}]
    gw = proxy(gateway, b, routes=[config.route(name="logged", middleware=mw)])
    c = http_client(gw)
    tok = jwt_token({"sub": "alice", "exp": int(time.time()) + 600})
    ok = c.get("/ok", headers=[("Authorization", "Bearer " + tok)])
    assert doc_header_all(echo_doc(ok), "X-Request-ID") == [] and ok.header("X-Request-ID") is None, ok
    refused = c.get("/refused")
    doc = assert_error(refused, 401)
    assert HEX32.match(doc["request_id"] or "") and refused.header("X-Request-ID") == doc["request_id"], refused

    def recs():
        try:
            with open(path) as f:
                return [json.loads(ln) for ln in f.read().splitlines()]
        except FileNotFoundError:
            return []

    wait_until(lambda: len(recs()) >= 2, env.timeout(5), "2 access log lines", describe=recs)
    by_path = {r["path"]: r for r in recs()}
    assert HEX32.match(by_path["/ok"]["request_id"] or ""), "a proxied request logs an id: %s" % by_path
    assert by_path["/refused"]["request_id"] == doc["request_id"], by_path
    assert by_path["/ok"]["request_id"] != doc["request_id"], by_path


# ---- CORS ---------------------------------------------------------------------------------------


def cors_proxy(gateway, b):
    cors = {"origins": ["https://a.example"], "methods": ["GET", "POST"], "headers": ["Content-Type"],
            "expose": ["X-Total"], "credentials": True, "max_age": "10m"}
    return proxy(gateway, b, routes=[config.route(name="api", middleware=[{"cors": cors}])])


def test_cors_preflight_allowed(gateway, backend, http_client):
    b = backend.http()
    gw = cors_proxy(gateway, b)
    c = http_client(gw)
    r = c.request("OPTIONS", "/items", [("Origin", "https://a.example"), ("Access-Control-Request-Method", "POST"),
                                        ("Access-Control-Request-Headers", "content-type")])
    assert r.status == 204 and r.body_len == 0, r
    assert r.header("Access-Control-Allow-Origin") == "https://a.example", r
    assert "POST" in [m.strip() for m in (r.header("Access-Control-Allow-Methods") or "").split(",")], r
    assert "content-type" in r.tokens("Access-Control-Allow-Headers"), r
    assert r.header("Access-Control-Allow-Credentials") == "true", r
    assert r.header("Access-Control-Max-Age") == "600", r
    assert "origin" in r.tokens("Vary"), r
    assert b.requests == 0, "a preflight is answered by the proxy"


def test_cors_preflight_refused_origin(gateway, backend, http_client):
    b = backend.http()
    gw = cors_proxy(gateway, b)
    c = http_client(gw)
    r = c.request("OPTIONS", "/items", [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")])
    assert r.status == 403, r
    assert not [k for k, _ in r.headers if k.lower().startswith("access-control-allow")], \
        "a refused preflight carries no Access-Control-Allow-* field: %r" % r
    assert b.requests == 0


def test_cors_actual_request_decorated(gateway, backend, http_client):
    # The upstream tries to grant everyone; the policy is the only source of CORS fields.
    b = backend.http(handler=lambda req: Reply.echo_json(headers=[("Access-Control-Allow-Origin", "*"),
                                                                  ("X-Total", "3")]))
    gw = cors_proxy(gateway, b)
    r = fget(gw, http_client, "/items", headers=[("Origin", "https://a.example")])
    assert r.status == 200
    assert r.header_all("Access-Control-Allow-Origin") == ["https://a.example"], r
    assert r.header("Access-Control-Allow-Credentials") == "true", r
    assert "x-total" in r.tokens("Access-Control-Expose-Headers"), r
    assert "origin" in r.tokens("Vary"), r
    r = fget(gw, http_client, "/items", headers=[("Origin", "https://evil.example")])
    assert r.status == 200 and r.header("Access-Control-Allow-Origin") is None, \
        "an unlisted origin gets no Access-Control-Allow-Origin (the upstream's * removed): %r" % r


# ---- routing and traffic split ------------------------------------------------------------------


def test_route_priority(gateway, backend, http_client):
    names = ["prefix", "param", "exact", "wild", "host", "root"]
    bs = {n: backend.http(name=n) for n in names}
    routes = [  # listed least specific first: the first match in config order would be wrong
        config.route("root", name="r-root", path_prefix="/"),
        config.route("prefix", name="r-prefix", path_prefix="/users"),
        config.route("param", name="r-param", path="/users/:id"),
        config.route("exact", name="r-exact", path="/users/me"),
        config.route("wild", name="r-wild", host="*.example.com", path_prefix="/"),
        config.route("host", name="r-host", host="api.example.com", path_prefix="/"),
    ]
    gw = proxy(gateway, bs, routes=routes)
    cases = [
        ("gw.test", "/users/me", "exact"),
        ("gw.test", "/users/42", "param"),
        ("gw.test", "/users/42/posts", "prefix"),
        ("gw.test", "/users", "prefix"),
        ("gw.test", "/usersx", "root"),
        ("gw.test", "/", "root"),
        ("api.example.com", "/users/me", "host"),
        ("API.Example.COM", "/anything", "host"),
        ("a.b.example.com", "/users/me", "wild"),
        ("example.com", "/users/me", "exact"),
    ]
    wrong = []
    for host, path, want in cases:
        r = fget(gw, http_client, path, host=host)
        got = r.header("X-Backend") if r.status == 200 else "status %d" % r.status
        if got != want:
            wrong.append("%s %s -> %s, expected %s" % (host, path, got, want))
    assert not wrong, "routes chosen wrongly:\n" + "\n".join(wrong)


def test_traffic_split_proportions(gateway, backend, http_client):
    v1, v2 = backend.http(name="v1"), backend.http(name="v2")
    gw = proxy(gateway, {"v1": v1, "v2": v2},
               routes=[config.route(name="canary", split=[("v1", 80), ("v2", 20)])])
    n = env.scaled_count(500, floor=100)
    counts = collections.Counter(fget(gw, http_client, "/s/%d" % i).header("X-Backend") for i in range(n))
    assert set(counts) <= {"v1", "v2"}, counts
    sd = math.sqrt(n * 0.8 * 0.2)
    lo, hi = n * 0.8 - 5 * sd, n * 0.8 + 5 * sd
    assert lo <= counts["v1"] <= hi, "80/20 over %d requests: %s (v1 expected in %.0f..%.0f)" % (n, dict(counts), lo, hi)


def test_traffic_split_sticky_by_header(gateway, backend, http_client):
    v1, v2 = backend.http(name="v1"), backend.http(name="v2")
    gw = proxy(gateway, {"v1": v1, "v2": v2},
               routes=[config.route(name="ab", split=[("v1", 50), ("v2", 50)], sticky_header="X-User")])
    seen = collections.defaultdict(set)
    for rnd in range(3):
        for u in range(20):
            seen["user%d" % u].add(fget(gw, http_client, "/ab", headers=[("X-User", "user%d" % u)]).header("X-Backend"))
    flappers = {u: s for u, s in seen.items() if len(s) != 1}
    assert not flappers, "a sticky split sent one user to several upstreams: %s" % flappers
    sides = collections.Counter(next(iter(s)) for s in seen.values())
    assert set(sides) == {"v1", "v2"}, "20 users over a 50/50 split all landed on one side: %s" % dict(sides)


def test_traffic_split_sticky_by_cookie(gateway, backend, http_client):
    """`sticky_cookie: session`: the value of the cookie named `session` decides the side,
    wherever it sits among the others and in whichever Cookie field; a cookie whose name
    only ends in `session` is no key (such requests are split at random)."""
    v1, v2 = backend.http(name="v1"), backend.http(name="v2")
    gw = proxy(gateway, {"v1": v1, "v2": v2},
               routes=[config.route(name="ab", split=[("v1", 50), ("v2", 50)], sticky_cookie="session")])
    c = http_client(gw)

    def side(*cookie_fields):
        r = c.get("/ab", headers=[("Cookie", v) for v in cookie_fields])
        assert r.status == 200, r
        return r.header("X-Backend")

    seen = collections.defaultdict(set)
    for rnd in range(3):
        for u in range(20):
            seen["user%d" % u].add(side("theme=dark; session=user%d; lang=fr" % u))
            seen["user%d" % u].add(side("theme=dark", "session=user%d" % u))
    flappers = {u: s for u, s in seen.items() if len(s) != 1}
    assert not flappers, "a sticky cookie split sent one user to several upstreams: %s" % flappers
    sides = collections.Counter(next(iter(s)) for s in seen.values())
    assert set(sides) == {"v1", "v2"}, "20 users over a 50/50 split all landed on one side: %s" % dict(sides)
    unkeyed = collections.Counter(side("xsession=user1; sessionx=user1") for _ in range(40))
    assert set(unkeyed) == {"v1", "v2"}, \
        "requests without the `session` cookie should be split at random, got %s" % dict(unkeyed)


# ---- rewriting middleware --------------------------------------------------------------------


def test_strip_prefix_and_rewrite(gateway, backend, http_client):
    b = backend.http()
    routes = [
        config.route(name="api", path_prefix="/api", middleware=[{"strip_prefix": "/api"}]),
        config.route(name="old", path_prefix="/old", middleware=[{"rewrite": {"prefix": "/old", "replace": "/new/v2"}}]),
    ]
    gw = proxy(gateway, b, routes=routes)
    cases = [("/api/users/7?x=1", "/users/7?x=1"), ("/api", "/"), ("/old/thing", "/new/v2/thing"), ("/old", "/new/v2")]
    wrong = []
    for sent, want in cases:
        got = echo_doc(fget(gw, http_client, sent), sent)["target"]
        if got != want:
            wrong.append("%s -> %s, expected %s" % (sent, got, want))
    assert not wrong, "prefix rewriting:\n" + "\n".join(wrong)


def test_header_rules(gateway, backend, http_client):
    b = backend.http(handler=lambda req: Reply.echo_json(headers=[("Server", "backend/1.0"), ("X-Internal", "x")]))
    rules = {"request": {"remove": ["X-Drop"], "set": {"X-Env": "prod"}, "add": {"X-Tag": "gw"}},
             "response": {"remove": ["X-Internal"], "set": {"Server": "gw"}, "add": {"X-Served-By": "gw04"}}}
    gw = proxy(gateway, b, routes=[config.route(name="hdr", middleware=[{"headers": rules}])])
    r = fget(gw, http_client, "/h", headers=[("X-Drop", "1"), ("X-Env", "dev"), ("X-Tag", "client")])
    doc = echo_doc(r)
    assert doc_header_all(doc, "X-Drop") == [], doc["headers"]
    assert doc_header_all(doc, "X-Env") == ["prod"], "set replaces: %s" % doc["headers"]
    assert sorted(doc_header_all(doc, "X-Tag")) == ["client", "gw"], "add appends: %s" % doc["headers"]
    assert r.header("X-Internal") is None and r.header_all("Server") == ["gw"] and r.header("X-Served-By") == "gw04", r


# ---- request id, access log ---------------------------------------------------------------------


def test_request_id_generated_and_kept(gateway, backend, http_client):
    b = backend.http()
    gw = proxy(gateway, b, routes=[config.route(name="rid", middleware=[{"request_id": {}}])])
    r = fget(gw, http_client, "/a")
    doc = echo_doc(r)
    sent = doc_header_all(doc, "X-Request-ID")
    assert len(sent) == 1 and HEX32.match(sent[0]), "a generated id is 32 lower-case hex digits: %s" % sent
    assert r.header("X-Request-ID") == sent[0], "the client gets the id the backend got"
    r2 = fget(gw, http_client, "/b")
    assert r2.header("X-Request-ID") != sent[0], "each request gets its own id"
    r = fget(gw, http_client, "/c", headers=[("X-Request-ID", "client-id_1.2")])
    assert doc_header_all(echo_doc(r), "X-Request-ID") == ["client-id_1.2"] and r.header("X-Request-ID") == "client-id_1.2"
    r = fget(gw, http_client, "/d", headers=[("X-Request-ID", "no good <id>")])
    got = doc_header_all(echo_doc(r), "X-Request-ID")
    assert len(got) == 1 and HEX32.match(got[0]), "an insane id is replaced: %s" % got


def test_access_log_lines(gateway, backend, http_client, tmp_path):
    b = backend.http(handler=by_path({"/missing": Reply.fixed(404, b"nope")}))
    path = str(tmp_path / "access.log")
    mw = [{"request_id": {}}, {"access_log": {"file": path}}]
    gw = proxy(gateway, b, routes=[config.route(name="logged", middleware=mw)])
    sent = [fget(gw, http_client, "/one?q=1"), fresh(gw, http_client, "POST", "/two", body=b"p" * 1000),
            fget(gw, http_client, "/missing")]
    ids = [r.header("X-Request-ID") for r in sent]

    def lines():
        try:
            with open(path) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    wait_until(lambda: len(lines()) >= 3, env.timeout(5), "3 access log lines", describe=lambda: lines())
    recs = []
    for ln in lines():
        try:
            recs.append(json.loads(ln))
        except ValueError:
            raise AssertionError("an access log line is not JSON: %r" % ln) from None
    assert len(recs) == 3, recs
    keys = {"time", "request_id", "client", "method", "path", "status", "bytes_in", "bytes_out", "upstream",
            "backend", "latency_ms", "route"}
    for rec in recs:
        assert keys <= set(rec), "missing keys %s in %s" % (keys - set(rec), rec)
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", rec["time"]), rec
        assert rec["client"].startswith("127.0.0.1"), rec
        assert (rec["upstream"], rec["backend"], rec["route"]) == ("app", b.address_str, "logged"), rec
        assert isinstance(rec["latency_ms"], (int, float)) and rec["latency_ms"] >= 0, rec
        assert rec["bytes_in"] > 0 and rec["bytes_out"] > 0, rec
    by_id = {r["request_id"]: r for r in recs}
    assert set(by_id) == set(ids), "request ids in the log %s vs sent back %s" % (list(by_id), ids)
    one, two, missing = (by_id[i] for i in ids)
    assert (one["method"], one["status"]) == ("GET", 200) and one["path"] in ("/one", "/one?q=1"), one
    assert (two["method"], two["status"]) == ("POST", 200) and two["bytes_in"] > 1000, two
    assert (missing["path"], missing["status"]) == ("/missing", 404), missing


def test_access_log_reopened_on_sigusr1(gateway, backend, http_client, tmp_path):
    b = backend.http()
    path = str(tmp_path / "access.log")
    gw = proxy(gateway, b, routes=[config.route(name="logged", middleware=[{"access_log": {"file": path}}])])
    assert fget(gw, http_client, "/first").status == 200
    wait_until(lambda: os.path.exists(path) and os.path.getsize(path) > 0, env.timeout(5), "the first access log line")
    os.rename(path, path + ".1")  # what logrotate does
    gw.signal(signal.SIGUSR1)

    def new_file_written():
        assert gw.alive(), "gw04 died on SIGUSR1 (exit %s)" % gw.proc.poll()
        assert fget(gw, http_client, "/after-rotate").status == 200
        return os.path.exists(path) and os.path.getsize(path) > 0

    wait_until(new_file_written, env.timeout(5), "a line in the reopened access log after SIGUSR1")
    with open(path) as f:
        assert all(json.loads(ln)["path"].startswith("/after-rotate") for ln in f.read().splitlines())


# ---- drain, tcp beside http ---------------------------------------------------------------------


def test_drain_keepalive_gets_connection_close(gateway, backend, http_client):
    release = threading.Event()
    b = backend.http(handler=by_path({"/during": lambda req: Reply.delayed(wait=release)}))
    gw = gateway(GW, config.http_proxy(b, drain_timeout="10s"))
    c = http_client(gw)
    try:
        assert c.get("/before").status == 200
        c.send_request("GET", "/during")
        wait_until(lambda: "/during" in b.paths(), env.timeout(5), "the request to reach the backend")
        gw.signal(signal.SIGTERM)
        wait_until(lambda: try_connect(gw.addr("edge"), timeout=env.timeout(1)) == "refused",
                   env.timeout(3), "new connects to be refused while draining")
        release.set()
        r = c.read_response()
    finally:
        release.set()
    assert r.status == 200 and "close" in r.tokens("Connection"), \
        "a keep-alive response finished during the drain should carry Connection: close: %r" % r
    assert_closed(c, r, "drain")
    assert gw.wait_exit(timeout=env.timeout(10)) == 0


def test_tcp_listener_beside_http(gateway, backend, http_client, client):
    b = backend.http()
    echo = backend.echo()
    cfg = config.http_proxy(b)
    cfg["listeners"].append({"name": "raw", "address": config.Port("raw"), "protocol": "tcp", "upstream": "tcpapp"})
    cfg["upstreams"]["tcpapp"] = {"backends": [{"address": echo}]}
    gw = gateway(GW, cfg)
    assert echo_doc(http_client(gw).get("/web"))["target"] == "/web"
    t = client(gw.addr("raw"))
    t.send(b"raw bytes, not HTTP\n")
    assert t.recv_exact(20) == b"raw bytes, not HTTP\n"
    assert echo.accepted == 1 and b.requests == 1


# ---- configuration ------------------------------------------------------------------------------

GOOD_TEXT = """\
workers: 1
log: {level: info, format: plain}
listeners:
  - name: web
    address: 127.0.0.1:1
    protocol: http
    routes:
      - name: r
        match:
          path: /a
        upstream: app
        middleware:
          - request_id: {}
upstreams:
  app:
    backends:
      - address: 127.0.0.1:2
"""

CONFIG_ERRORS = [
    ("unknown_middleware", GOOD_TEXT.replace("- request_id: {}", "- nosuch_mw: {}"), [("nosuch_mw", 0)], ["nosuch_mw"]),
    ("unknown_upstream", GOOD_TEXT.replace("upstream: app", "upstream: nowhere"), [("nowhere", 0)], ["nowhere"]),
    ("path_and_prefix", GOOD_TEXT.replace("path: /a\n", "path: /a\n          path_prefix: /b\n"),
     [("path_prefix", 0), ("path: /a", 0), ("match:", 0)], ["path_prefix"]),
]


@pytest.mark.parametrize("text,wheres,words", [c[1:] for c in CONFIG_ERRORS], ids=[c[0] for c in CONFIG_ERRORS])
def test_config_errors_04(config_file, run_binary, text, wheres, words):
    path, _ = config_file(text, "bad.yaml")
    r = run_binary(GW, ["-t", "-c", path])
    assert r.code == 1, "gw04 -t should reject this config:\n%s" % text
    prefixes = ["%s:%d:%d:" % ((path,) + position(text, *w)) for w in wheres]
    hits = [ln for ln in r.stderr.splitlines() if any(p in ln for p in prefixes)]
    assert hits, "no error reported at %s; stderr:\n%s" % (" or ".join(prefixes), r.stderr)
    missing = [w for w in words if not any(re.search(r"\b%s\b" % re.escape(w), ln) for ln in hits)]
    assert not missing, "the error should mention %s: %s" % (missing, hits)


def test_config_http_needs_gw04(config_file, run_binary):
    path, _ = config_file(GOOD_TEXT, "http.yaml")
    ok = run_binary(GW, ["-t", "-c", path])
    assert ok.code == 0, "gw04 -t should accept this config:\n%s" % ok.stderr
    old = run_binary(GW03, ["-t", "-c", path])
    assert old.code == 1 and "gw04" in old.stderr, "gw03 should say http listeners need gw04:\n%s" % old.stderr

"""Milestone 04 end to end: what /metrics and /stats say about HTTP traffic (issue 14).

Known traffic goes through gw04 (a few GETs, POSTs with bodies, a route miss, a 429 from a
rate limit, a 502 from a dead backend), then every `gw_http_*` family is read with the strict
Prometheus parser (gwtest.admin) and compared with exact counts: the deltas from a scrape
taken before the traffic, so that nothing the harness does at start can shift them. A family
this file does not know fails the test: a new family comes with its expected counts here."""
import pytest

from gwtest import admin, config, env
from gwtest.http import request_bytes
from gwtest.wait import wait_until

GW = "gw04"

# Every gw_http_* family and its type: the test reads each of them.
FAMILIES = {
    "gw_http_connections_total": "counter",
    "gw_http_requests_total": "counter",
    "gw_http_responses_total": "counter",
    "gw_http_local_errors_total": "counter",
    "gw_http_upstream_requests_total": "counter",
    "gw_http_retries_total": "counter",
    "gw_http_request_duration_seconds": "histogram",
    "gw_http_upstream_responses_total": "counter",
    "gw_http_rate_limited_total": "counter",
}

CLASSES = ("2xx", "3xx", "4xx", "5xx")


def metrics_proxy(gateway, backend):
    """gw04 with routes api (-> app), limited (-> app, rate_limit 1 per 1000 s) and dead
    (-> an upstream whose only backend refuses connections); /nowhere matches no route."""
    app = backend.http(name="app")
    dead = backend.refused()
    routes = [
        config.route("app", name="api", path_prefix="/api"),
        config.route("app", name="limited", path="/limited",
                     middleware=[{"rate_limit": {"rate": 0.001, "burst": 1}}]),
        config.route("dead", name="dead", path_prefix="/dead"),
    ]
    cfg = config.http_proxy({"app": app, "dead": dead}, routes=routes,
                            admin={"address": config.Port("admin")})
    # The dead backend is not ejected; its request is tried max_attempts times (2 retries,
    # gw_http_retries_total), then answered 502.
    cfg["upstreams"]["dead"]["outlier"] = {"consecutive_failures": 0}
    cfg["upstreams"]["dead"]["retry"] = {"max_attempts": 3}
    return gateway(GW, cfg), app, dead


class Tally:
    """The bytes one client sent and received, counted from the wire (heads and bodies as
    framed; every response here has a Content-Length)."""

    def __init__(self):
        self.sent = self.received = 0

    def exchange(self, c, method, target, body=b"", want=200):
        raw = request_bytes(method, target, body=body)
        c.send(raw)
        self.sent += len(raw)
        r = c.read_response(method=method)
        assert r.status == want, "%s %s: expected %d, got %r" % (method, target, want, r)
        assert r.framing == "length", "%s %s: expected a Content-Length answer: %r" % (method, target, r)
        self.received += len(r.raw_head) + r.body_len
        return r


def delta(before, after, name, **labels):
    return after.get(name, **labels) - (before.value(name, **labels) or 0)


def hist_count(m, listener, route, cls):
    return m.value("gw_http_request_duration_seconds_count", listener=listener, route=route, **{"class": cls})


def test_every_http_family_counts_known_traffic(gateway, backend, http_client):
    gw, app, dead = metrics_proxy(gateway, backend)
    adm = gw.addr("admin")
    before = admin.scrape(adm)
    stats_before = admin.get_json(adm, "/stats")["bytes"]
    t = Tally()

    # One keep-alive connection: everything for `app` uses one upstream connection.
    c = http_client(gw)
    for i in range(3):
        t.exchange(c, "GET", "/api/get-%d" % i)
    for i, n in enumerate((1000, 70000)):
        t.exchange(c, "POST", "/api/post-%d" % i, body=bytes([65 + i]) * n)
    t.exchange(c, "GET", "/nowhere", want=404)
    t.exchange(c, "GET", "/limited")
    t.exchange(c, "GET", "/limited", want=429)
    t.exchange(c, "GET", "/dead/x", want=502)  # the gateway closes after a 502
    assert app.requests == 6

    def done():
        m = admin.scrape(adm)
        return sum(hist_count(m, "edge", r, k) or 0 for r in ("api", "limited", "dead", "") for k in CLASSES) \
            - sum(hist_count(before, "edge", r, k) or 0 for r in ("api", "limited", "dead", "") for k in CLASSES) >= 9
    wait_until(done, env.timeout(5), "every request recorded in gw_http_request_duration_seconds")
    m = admin.scrape(adm)

    # Every gw_http_* family, no more, no less.
    have = {n: f.type for n, f in m.families.items() if n.startswith("gw_http_")}
    assert have == FAMILIES, "gw_http_* families: %s, expected %s" % (have, FAMILIES)

    # Requests and responses.
    assert delta(before, m, "gw_http_connections_total") == 1
    assert delta(before, m, "gw_http_requests_total") == 9
    want_classes = {"2xx": 6, "3xx": 0, "4xx": 2, "5xx": 1}
    got = {k: delta(before, m, "gw_http_responses_total", **{"class": k}) for k in CLASSES}
    assert got == want_classes, "gw_http_responses_total: %s" % got
    assert delta(before, m, "gw_http_local_errors_total") == 3  # 404, 429, 502
    assert delta(before, m, "gw_http_upstream_requests_total", connection="new") == 1
    assert delta(before, m, "gw_http_upstream_requests_total", connection="reused") == 5
    assert delta(before, m, "gw_http_retries_total") == 2  # the dead route's 2nd and 3rd connects

    # Duration by route and class: one observation per request, in its own series.
    want = {("api", "2xx"): 5, ("limited", "2xx"): 1, ("limited", "4xx"): 1, ("dead", "5xx"): 1,
            ("", "4xx"): 1}
    for route in ("api", "limited", "dead", ""):
        for k in CLASSES:
            n = hist_count(m, "edge", route, k) - (hist_count(before, "edge", route, k) or 0)
            assert n == want.get((route, k), 0), "duration{route=%r,class=%s}: %d" % (route, k, n)
    s = m.get("gw_http_request_duration_seconds_sum", listener="edge", route="api", **{"class": "2xx"})
    assert 0 < s < 5 * env.timeout(10), "the 5 api requests took %s s in all" % s
    assert len(m.find("gw_http_request_duration_seconds_count")) == 4 * 4, \
        "series only for the routes of the config (3 and no route) times 4 classes"

    # Upstream responses by backend and class.
    ok = {"upstream": "app", "backend": app.address_str}
    assert delta(before, m, "gw_http_upstream_responses_total", **ok, **{"class": "2xx"}) == 6
    for k in ("3xx", "4xx", "5xx"):
        assert delta(before, m, "gw_http_upstream_responses_total", **ok, **{"class": k}) == 0
    for k in CLASSES:
        assert delta(before, m, "gw_http_upstream_responses_total", upstream="dead",
                     backend="%s:%d" % dead, **{"class": k}) == 0

    # Rate limits by route.
    assert delta(before, m, "gw_http_rate_limited_total", listener="edge", route="limited") == 1
    for route in ("api", "dead"):
        assert delta(before, m, "gw_http_rate_limited_total", listener="edge", route=route) == 0

    # Connect time: one sample per connection made (one to app), none for a reused one or a
    # refused connect.
    assert delta(before, m, "gw_upstream_connect_seconds_count", upstream="app") == 1
    assert delta(before, m, "gw_upstream_connect_seconds_count", upstream="dead") == 0

    # Bytes at L7, exactly what crossed the client's socket, in /metrics and /stats.
    assert delta(before, m, "gw_bytes_total", direction="in") == t.sent
    assert delta(before, m, "gw_bytes_total", direction="out") == t.received
    st = admin.get_json(adm, "/stats")["bytes"]
    assert (st["in"] - stats_before["in"], st["out"] - stats_before["out"]) == (t.sent, t.received)


def test_upstream_connect_seconds_only_for_new_connections(gateway, backend, http_client):
    """Ten requests on one keep-alive client connection make one upstream connection: one
    connect-time sample, not ten."""
    b = backend.http()
    gw = gateway(GW, config.http_proxy(b, admin={"address": config.Port("admin")}))
    c = http_client(gw)
    for i in range(10):
        assert c.get("/k/%d" % i).status == 200
    m = admin.scrape(gw.addr("admin"))
    assert b.accepted == 1
    assert m.get("gw_http_upstream_requests_total", connection="new") == 1
    assert m.get("gw_upstream_connect_seconds_count", upstream="app") == 1, \
        "a pooled connection reused is no connect: no sample"


@pytest.mark.parametrize("chunked", [False, True])
def test_http_bytes_counted_both_ways(gateway, backend, http_client, chunked):
    """Three POSTs through an http listener (issue 14 found gw_bytes_total at 0)."""
    b = backend.http()
    gw = gateway(GW, config.http_proxy(b, admin={"address": config.Port("admin")}))
    t = Tally()
    c = http_client(gw)
    for i in range(3):
        body = b"x" * (1000 * (i + 1))
        if chunked:
            head = request_bytes("POST", "/p/%d" % i, headers=[("Transfer-Encoding", "chunked")])
            raw = head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
            c.send(raw)
            t.sent += len(raw)
            r = c.read_response()
            assert r.status == 200 and r.framing == "length", r
            t.received += len(r.raw_head) + r.body_len
        else:
            t.exchange(c, "POST", "/p/%d" % i, body=body)
    wait_until(lambda: admin.scrape(gw.addr("admin")).get("gw_bytes_total", direction="out") == t.received,
               env.timeout(5), "gw_bytes_total{direction=out} to reach %d" % t.received)
    m = admin.scrape(gw.addr("admin"))
    assert m.get("gw_bytes_total", direction="in") == t.sent

"""Milestone 03 end to end: circuit breakers, rate limits, retry backoff with a budget,
metrics and the admin API (build/bin/gw03 = gw02 plus this layer), on free loopback ports,
with `workers` from GW_WORKERS.

Backends are backends.Tagged servers (a request, clients.ask_backend, is answered with the
backend's name), so the client knows where the proxy sent it. The admin API is read with
gwtest.admin: raw HTTP/1.1 exchanges checked strictly, and /metrics parsed by a strict
parser of the Prometheus text format (every line, every scrape).

Breaker state, rate-limit buckets and backend counters are shared by the workers; counters
kept per worker (bytes, rate-limit refusals, retries, the connect histogram) are summed when
scraped, and bytes are counted when a connection closes: a test polls /metrics until the
numbers settle rather than reading once.

One behaviour per test. Every wait polls to a deadline (stretched x5 under sanitizers, where
connection counts are also divided by 4); nothing sleeps."""
import collections
import re
import shutil
import signal
import socket
import subprocess

import pytest

from gwtest import admin, config, env
from gwtest.clients import BackendUnreachable, Client, ask_backend, tally
from gwtest.cfgerrors import assert_error_at, position
from gwtest.wait import Deadline, wait_until

GW = "gw03"
GW02 = "gw02"

TOKEN = "0123456789abcdef0123"
NO_OUTLIER = {"consecutive_failures": 0}
# The breaker's open period: 1 s on the plain build, stretched under sanitizers so that the
# checks made while it is open (a few scrapes and requests) fit in it on a slow machine.
OPEN_TIMEOUT_S = env.timeout(1.0)
SUCCESS_TO_CLOSE = 2
# Active health checks: fast, so that a verdict takes well under a second.
INTERVAL_S = 0.2
FALL = 2


def with_admin(cfg, token=None):
    """CFG with an admin listener on a free port (gw.addr("admin")), and TOKEN if given."""
    cfg["admin"] = {"address": config.Port("admin")}
    if token is not None:
        cfg["admin"]["token"] = token
    return cfg


def breaker_cfg(**over):
    cb = {"consecutive_failures": 3, "open_timeout": "%dms" % (OPEN_TIMEOUT_S * 1000),
          "half_open_max": 1, "success_to_close": SUCCESS_TO_CLOSE}
    cb.update(over)
    return cb


def addr_re(b):
    """A regex for backend B's "host:port" that does not also match a longer port."""
    return re.escape(b.address_str) + r"(?!\d)"


def breaker_re(b, word):
    """A log line naming backend B and `circuit breaker WORD`."""
    return r"(?m)^(?=.*%s)(?=.*\bcircuit breaker %s\b).*$" % (addr_re(b), word)


def requests_until(addr, transcript, stop, deadline, what):
    """Sequential requests until STOP() is true (checked between requests) or DEADLINE (a
    wait.Deadline) passes, which fails the test. Returns (Counter of where they went, list
    of failures). One at a time, so no request of ours is in flight when STOP() turns true."""
    where, failures = collections.Counter(), []
    while not stop():
        if deadline.expired():
            raise AssertionError("timed out after %.1fs waiting for %s (requests so far: %s, failures: %d)"
                                 % (deadline.seconds, what, dict(where), len(failures)))
        try:
            where[ask_backend(addr, transcript)] += 1
        except BackendUnreachable as e:
            failures.append(str(e))
    return where, failures


def backends_doc(gw, token=None):
    return admin.get_json(gw.addr("admin"), "/backends", token=token)


def breaker_of(gw, b):
    return admin.backend_entry(backends_doc(gw), b.address_str)["breaker"]


# ---- circuit breaker -------------------------------------------------------------------------


def breaker_proxy(gateway, backend, transcript):
    """Two tagged backends behind round robin, a breaker per backend, nothing else that could
    take a backend out (no active checks, outlier detection off). Returns (gw, a, b)."""
    a, b = backend.tagged(), backend.tagged()
    cfg = config.lb_proxy([a, b], balancer="round_robin",
                          upstream={"outlier": NO_OUTLIER, "circuit_breaker": breaker_cfg()})
    gw = gateway(GW, with_admin(cfg))
    counts = tally(gw.addr("edge"), 8, transcript)
    assert counts.get(a.name, 0) > 0 and counts.get(b.name, 0) > 0, \
        "both backends should serve before the test breaks one: %s" % dict(counts)
    return gw, a, b


def open_breaker(gw, victim, transcript):
    """Refuses connects on VICTIM while clients keep coming, until the proxy logs its breaker
    OPEN. Returns (Deadline started when OPEN was seen, requests' Counter, failures)."""
    at_kill = len(gw.stderr_text())
    victim.refuse()
    transcript.note("%s refuses connects" % victim.name)
    rx = re.compile(breaker_re(victim, "OPEN"))
    seen = {}

    def opened():
        if rx.search(gw.stderr_text(), at_kill):
            seen["since"] = Deadline(0)
            return True
        return False

    where, failures = requests_until(gw.addr("edge"), transcript, opened, Deadline(env.timeout(5)),
                                     "%s's breaker to be logged OPEN (3 consecutive failures)" % victim.name)
    transcript.note("breaker OPEN seen for %s after %s" % (victim.name, dict(where)))
    return seen["since"], where, failures


def test_breaker_opens_and_traffic_shifts(gateway, backend, transcript):
    gw, a, b = breaker_proxy(gateway, backend, transcript)
    since_open, during, failures = open_breaker(gw, b, transcript)
    assert not failures, "requests failed while %s was refusing (a retry could go to %s):\n%s" % (
        b.name, a.name, "\n".join(failures[:10]))
    assert set(during) <= {a.name}, "a refusing backend served requests: %s" % dict(during)

    doc = backends_doc(gw)
    eb, ea = admin.backend_entry(doc, b.address_str), admin.backend_entry(doc, a.address_str)
    assert (eb["breaker"], ea["breaker"]) == ("open", "closed"), \
        "/backends %.2fs after OPEN (open_timeout %.1fs): %s" % (since_open.elapsed(), OPEN_TIMEOUT_S, doc)
    assert eb["health"] == "healthy" and not eb["ejected"], "only the breaker may act here: %s" % eb
    m = admin.scrape(gw.addr("admin"))
    assert m.get("gw_breaker_state", upstream="app", backend=b.address_str) == 1
    assert m.get("gw_breaker_state", upstream="app", backend=a.address_str) == 0
    assert m.get("gw_upstream_retries_total", upstream="app", result="granted") > 0, \
        "no retry was granted, yet no request failed while %s refused connects" % b.name

    # While it is open, no connection goes to B: its picks and failures stay put.
    picks, fails = eb["picks"], eb["failures"]
    n = env.scaled_count(40, floor=10)
    after, failures = collections.Counter(), []
    for _ in range(n):
        try:
            after[ask_backend(gw.addr("edge"), transcript)] += 1
        except BackendUnreachable as e:
            failures.append(str(e))
    doc = backends_doc(gw)
    eb = admin.backend_entry(doc, b.address_str)
    assert eb["breaker"] == "open", (
        "the breaker left `open` %.2fs after OPEN, before the checks were done (open_timeout %.1fs): "
        "this machine is too slow for the test" % (since_open.elapsed(), OPEN_TIMEOUT_S))
    assert not failures, "requests failed with the breaker open:\n%s" % "\n".join(failures[:10])
    assert after == {a.name: n}, "with %s's breaker open every request goes to %s: %s" % (b.name, a.name, dict(after))
    assert (eb["picks"], eb["failures"]) == (picks, fails), (
        "connections went to %s while its breaker was open: picks %d -> %d, failures %d -> %d"
        % (b.name, picks, eb["picks"], fails, eb["failures"]))


def test_breaker_trial_closes_after_recovery(gateway, backend, transcript):
    gw, a, b = breaker_proxy(gateway, backend, transcript)
    since_open, _, failures = open_breaker(gw, b, transcript)
    assert not failures
    at_open = len(gw.stderr_text())
    b.resume()
    served_at_resume = b.served
    transcript.note("%s listens again" % b.name)
    closed_rx = re.compile(breaker_re(b, "CLOSED"))
    seen = {}

    def closed():
        if "first_trial" not in seen and b.served > served_at_resume:
            seen["first_trial"] = since_open.elapsed()
        if closed_rx.search(gw.stderr_text(), at_open):
            seen["closed_after"] = since_open.elapsed()
            seen["served"] = b.served - served_at_resume
            return True
        return False

    where, failures = requests_until(gw.addr("edge"), transcript, closed, Deadline(OPEN_TIMEOUT_S + env.timeout(5)),
                                     "%s's breaker to be logged CLOSED after open_timeout and %d successful trials"
                                     % (b.name, SUCCESS_TO_CLOSE))
    assert not failures, "requests failed while the breaker recovered:\n%s" % "\n".join(failures[:10])
    assert "first_trial" in seen or seen["served"] > 0, "CLOSED without a single trial reaching %s" % b.name
    first = seen.get("first_trial", seen["closed_after"])
    # The OPEN line was seen a moment after it was written, so elapsed times here are a
    # little short of the real ones: 10% slack.
    assert first >= 0.9 * OPEN_TIMEOUT_S, (
        "a request reached %s %.3fs after its breaker opened, before open_timeout (%.1fs)"
        % (b.name, first, OPEN_TIMEOUT_S))
    assert seen["served"] >= SUCCESS_TO_CLOSE, (
        "CLOSED after %d trial(s); success_to_close is %d" % (seen["served"], SUCCESS_TO_CLOSE))

    doc = backends_doc(gw)
    assert admin.backend_entry(doc, b.address_str)["breaker"] == "closed", doc
    m = admin.scrape(gw.addr("admin"))
    assert m.get("gw_breaker_state", upstream="app", backend=b.address_str) == 0
    n = env.scaled_count(40, floor=10)
    counts = tally(gw.addr("edge"), n, transcript)
    assert counts.get(b.name, 0) >= n // 4, "%s should share the traffic again once closed: %s" % (b.name, dict(counts))


# ---- rate limits -----------------------------------------------------------------------------


def try_request(addr, transcript, source=None):
    """One request that a rate limit may refuse. Returns ("served", name, seconds) or
    ("reset", None, seconds); anything else (EOF, a timeout) fails."""
    dl = Deadline(0)
    c = Client(addr, transcript, op_timeout=env.timeout(5), source=source)
    try:
        if c.reset_at_connect:
            return "reset", None, dl.elapsed()
        try:
            c.send(b"who\n")
            name = c.recv_line(limit=256).decode(errors="replace").rstrip("\n")
        except (ConnectionResetError, BrokenPipeError):
            c.ch.event("reset")
            return "reset", None, dl.elapsed()
        return "served", name, dl.elapsed()
    finally:
        c.close()


def burst(addr, n, transcript, source=None):
    """N quick sequential requests; returns (list of outcomes, seconds the burst took)."""
    dl = Deadline(0)
    out = [try_request(addr, transcript, source=source) for _ in range(n)]
    return out, dl.elapsed()


def assert_bucket(outcomes, elapsed, rate, burst_size, what):
    """The first BURST_SIZE got through (the bucket starts full); in all, at most burst +
    rate x elapsed + 1 did; every refusal came at once."""
    kinds = [o[0] for o in outcomes]
    served = kinds.count("served")
    assert kinds[:burst_size] == ["served"] * burst_size, \
        "%s: the first %d connections should all get through (burst): %s" % (what, burst_size, kinds)
    most = burst_size + rate * elapsed + 1
    assert served <= most, "%s: %d of %d served in %.2fs; the bucket allows at most %.1f (%s)" % (
        what, served, len(kinds), elapsed, most, kinds)
    slow = [round(o[2], 3) for o in outcomes if o[0] == "reset" and o[2] > env.timeout(1)]
    assert not slow, "%s: refusals should come at once, some took %s s" % (what, slow)
    return served


def wait_metric(gw, name, want, what, **labels):
    """Polls /metrics until NAME{LABELS} == WANT; returns the last Exposition."""
    last = {}

    def ok():
        last["m"] = admin.scrape(gw.addr("admin"))
        last["v"] = last["m"].value(name, **labels)
        return last["v"] == want

    wait_until(ok, env.timeout(5), what, describe=lambda: "%s%s = %s" % (name, labels, last.get("v")))
    return last["m"]


def test_global_rate_limit_holds_burst(gateway, backend, transcript):
    rate, size, n = 2, 5, 12
    t = backend.tagged()
    gw = gateway(GW, with_admin(config.lb_proxy([t], listener={"rate_limit": {"global": {"rate": rate, "burst": size}}})))
    outcomes, elapsed = burst(gw.addr("edge"), n, transcript)
    served = assert_bucket(outcomes, elapsed, rate, size, "global {rate: %d, burst: %d}" % (rate, size))
    refused = n - served
    assert refused > 0 and t.served == served
    m = wait_metric(gw, "gw_ratelimit_rejected_total", refused,
                    "the global refusals in /metrics to match the %d the clients saw" % refused,
                    listener="edge", scope="global")
    assert m.get("gw_ratelimit_rejected_total", listener="edge", scope="client") == 0
    assert m.get("gw_connections_total", listener="edge") == served, "refused connections are not admitted"
    stats = admin.get_json(gw.addr("admin"), "/stats")
    (ls,) = [x for x in stats["listeners"] if x["name"] == "edge"]
    assert (ls["rejected_rate_global"], ls["rejected_rate_client"], ls["accepted"]) == (refused, 0, served), stats
    gw.wait_log(r"rate limit reached, connection refused", timeout=env.timeout(2))


def test_per_client_limit_is_per_address(gateway, backend, transcript):
    rate, size, n = 1, 3, 6
    t = backend.tagged()
    gw = gateway(GW, with_admin(config.lb_proxy(
        [t], listener={"rate_limit": {"per_client": {"rate": rate, "burst": size, "max_clients": 1000}}})))
    addr = gw.addr("edge")
    first, elapsed = burst(addr, n, transcript, source="127.0.0.2")
    served2 = assert_bucket(first, elapsed, rate, size, "127.0.0.2 with per_client {rate: %d, burst: %d}" % (rate, size))
    assert served2 < n, "127.0.0.2 was never refused: %s" % [o[0] for o in first]
    # Right away, another address has its own full bucket.
    other, elapsed = burst(addr, size, transcript, source="127.0.0.3")
    kinds = [o[0] for o in other]
    assert kinds == ["served"] * size, (
        "127.0.0.3 should get its own %d through while 127.0.0.2 is limited: %s" % (size, kinds))
    refused = n - served2
    m = wait_metric(gw, "gw_ratelimit_rejected_total", refused,
                    "the per-client refusals in /metrics to match the %d the clients saw" % refused,
                    listener="edge", scope="client")
    assert m.get("gw_ratelimit_rejected_total", listener="edge", scope="global") == 0


# ---- metrics and the admin API -------------------------------------------------------------

# Every family the contract names, with its type.
FAMILIES = {
    "gw_connections_total": "counter",
    "gw_connections_active": "gauge",
    "gw_connections_rejected_total": "counter",
    "gw_ratelimit_rejected_total": "counter",
    "gw_bytes_total": "counter",
    "gw_upstream_connect_seconds": "histogram",
    "gw_upstream_retries_total": "counter",
    "gw_backend_healthy": "gauge",
    "gw_backend_active_connections": "gauge",
    "gw_backend_failures_total": "counter",
    "gw_backend_ejected": "gauge",
    "gw_breaker_state": "gauge",
    "gw_draining": "gauge",
    "gw_buffer_pool_bytes": "gauge",
    "gw_buffer_pool_limit_bytes": "gauge",
    "gw_buffer_exhausted_total": "counter",
}


def test_metrics_is_valid_exposition_and_counts_traffic(gateway, backend, client, transcript):
    # A tagged backend answers with its name before echoing, so the bytes each way differ
    # (in: what the clients sent; out: what the backend sent back) and a swap shows.
    t = backend.tagged()
    gw = gateway(GW, with_admin(config.lb_proxy([t])))
    n = env.scaled_count(24, floor=6)
    sizes = [1000 + 37 * i for i in range(n)]
    total_in = total_out = 0
    for i, size in enumerate(sizes):
        payload = bytes([65 + i % 26]) * size
        c = client(gw)
        c.send(b"who\n" + payload)
        c.shutdown_write()
        data, end = c.read_to_end()
        want = t.name.encode() + b"\n" + payload
        assert end == "eof" and data == want, "connection %d: got %d bytes (%s), expected %d" % (
            i, len(data), end, len(want))
        c.close()
        total_in += 4 + size
        total_out += len(want)
    last = {}

    def settled():
        m = admin.scrape(gw.addr("admin"))  # every scrape is parsed strictly
        last["m"] = m
        return (m.value("gw_bytes_total", direction="in") == total_in
                and m.value("gw_bytes_total", direction="out") == total_out
                and m.value("gw_connections_active", listener="edge") == 0)

    wait_until(settled, env.timeout(5), "gw_bytes_total to reach in %d, out %d and no connection to be open"
               % (total_in, total_out),
               describe=lambda: "bytes %s, active %s" % (
                   last["m"].find("gw_bytes_total"), last["m"].value("gw_connections_active", listener="edge")))
    m = last["m"]
    wrong = {k: (m.families[k].type if k in m.families else None, t) for k, t in FAMILIES.items()
             if k not in m.families or m.families[k].type != t}
    assert not wrong, "families missing or of the wrong type (got, expected): %s" % wrong
    assert m.get("gw_connections_total", listener="edge") == n
    assert m.get("gw_upstream_connect_seconds_count", upstream="app") == n
    assert m.get("gw_upstream_connect_seconds_bucket", upstream="app", le="+Inf") == n
    assert m.get("gw_upstream_connect_seconds_sum", upstream="app") > 0
    assert m.get("gw_connections_rejected_total", listener="edge") == 0
    for scope in ("global", "client"):
        assert m.get("gw_ratelimit_rejected_total", listener="edge", scope=scope) == 0
    for result in ("granted", "denied"):
        assert m.get("gw_upstream_retries_total", upstream="app", result=result) == 0
    be = dict(upstream="app", backend=t.address_str)
    assert [m.get(f, **be) for f in ("gw_backend_healthy", "gw_backend_active_connections",
                                     "gw_backend_failures_total", "gw_backend_ejected", "gw_breaker_state")] == [1, 0, 0, 0, 0]
    assert m.get("gw_draining") == 0

    stats = admin.get_json(gw.addr("admin"), "/stats")
    (ls,) = [x for x in stats["listeners"] if x["name"] == "edge"]
    assert (ls["accepted"], ls["active"], stats["bytes"]["in"], stats["bytes"]["out"]) == (n, 0, total_in, total_out), stats
    assert stats["workers"] == env.WORKERS and stats["draining"] is False and stats["uptime_ms"] >= 0, stats
    assert stats["upstream_connects"]["failed"] == 0, stats

    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=m.text.encode(), capture_output=True,
                           timeout=env.timeout(10))
        assert r.returncode == 0, "promtool check metrics:\n%s%s" % (r.stdout.decode(), r.stderr.decode())
    else:
        transcript.note("promtool not installed: the strict parser alone checked the format")


def test_metrics_buffer_pool_after_traffic(gateway, backend, client, transcript):
    """gw_buffer_pool_bytes{state} is 0 before any connection and holds chunks after traffic
    (the workers cache them for reuse), in whole chunks and under the cap; nothing is in use
    once every connection closed; gw_buffer_exhausted_total stays 0 far below the cap."""
    chunk, cap = 16 * 1024, 4 * 1024 * 1024
    e = backend.echo()
    gw = gateway(GW, with_admin(config.lb_proxy([e], buffers={"chunk_size": "16KiB", "max_memory": "4MiB"})))
    addr = gw.addr("admin")
    m = admin.scrape(addr)
    for name, kind in (("gw_buffer_pool_bytes", "gauge"), ("gw_buffer_pool_limit_bytes", "gauge"),
                       ("gw_buffer_exhausted_total", "counter")):
        assert name in m.families and m.families[name].type == kind, "%s should be a %s" % (name, kind)
    assert [m.get("gw_buffer_pool_bytes", state=s) for s in ("in_use", "cached")] == [0, 0], \
        "no connection yet, so no chunk: %s" % m.find("gw_buffer_pool_bytes")
    assert m.get("gw_buffer_pool_limit_bytes") == cap
    assert m.get("gw_buffer_exhausted_total") == 0
    for i in range(env.scaled_count(8, floor=4)):
        payload = bytes([97 + i % 26]) * (100 * 1000 + i)
        c = client(gw)
        c.send(payload)
        c.shutdown_write()
        assert c.read_to_end() == (payload, "eof"), "connection %d: the echo came back wrong" % i
        c.close()
    last = {}

    def settled():
        last["m"] = admin.scrape(addr)
        return (last["m"].value("gw_connections_active", listener="edge") == 0
                and last["m"].value("gw_buffer_pool_bytes", state="in_use") == 0)

    wait_until(settled, env.timeout(5), "every connection closed and no chunk in use",
               describe=lambda: "%s, active %s" % (last["m"].find("gw_buffer_pool_bytes"),
                                                   last["m"].value("gw_connections_active", listener="edge")))
    m = last["m"]
    cached = m.get("gw_buffer_pool_bytes", state="cached")
    assert 0 < cached <= cap and cached % chunk == 0, \
        "after traffic the workers keep whole chunks for reuse, under the cap: cached %d" % cached
    assert m.get("gw_buffer_exhausted_total") == 0, "the pool never ran out at this load"


def test_backends_reflects_killed_backend(gateway, backend, transcript):
    a, b = backend.tagged(), backend.tagged()
    hc = {"type": "tcp", "interval": "%dms" % (INTERVAL_S * 1000), "timeout": "1s", "rise": 2, "fall": FALL}
    gw = gateway(GW, with_admin(config.lb_proxy([a, b], upstream={"health_check": hc, "outlier": NO_OUTLIER})))
    doc = backends_doc(gw)
    (up,) = doc["upstreams"]
    assert up["name"] == "app" and up["balancer"] and len(up["backends"]) == 2, doc
    for x in (a, b):
        e = admin.backend_entry(doc, x.address_str)
        assert (e["health"], e["ejected"], e["breaker"], e["weight"]) == ("healthy", False, "closed", 1), e
        for k in ("active_connections", "picks", "failures"):
            assert isinstance(e[k], int) and e[k] >= 0, e
    b.refuse()
    transcript.note("%s refuses connects" % b.name)
    last = {}

    def unhealthy():
        last["doc"] = backends_doc(gw)
        return admin.backend_entry(last["doc"], b.address_str)["health"] == "unhealthy"

    wait_until(unhealthy, env.timeout((FALL + 1) * INTERVAL_S * 1.1 + 2.0),
               "/backends to show %s unhealthy (fall %d x interval %.0fms)" % (b.name, FALL, INTERVAL_S * 1000),
               describe=lambda: last.get("doc"))
    assert admin.backend_entry(last["doc"], a.address_str)["health"] == "healthy", last["doc"]
    m = admin.scrape(gw.addr("admin"))
    assert m.get("gw_backend_healthy", upstream="app", backend=b.address_str) == 0
    assert m.get("gw_backend_healthy", upstream="app", backend=a.address_str) == 1
    assert m.get("gw_backend_ejected", upstream="app", backend=b.address_str) == 0, "outlier detection is off"


def test_admin_token_enforced(gateway, backend, transcript):
    gw = gateway(GW, with_admin(config.lb_proxy([backend.tagged()]), token=TOKEN))
    addr = gw.addr("admin")
    wrong = [None, TOKEN[:-1] + ("x" if TOKEN[-1] != "x" else "y"), TOKEN[:-1], TOKEN + "0", TOKEN.upper() + "X"]
    for path in ("/metrics", "/stats", "/backends", "/readyz"):
        for tok in wrong:
            r = admin.get(addr, path, token=tok)
            assert r.status == 401, "GET %s with token %r: %r" % (path, tok, r)
            assert (r.header("WWW-Authenticate") or "").startswith("Bearer"), "401 without WWW-Authenticate: Bearer: %r" % r
            assert b"gw_" not in r.body and b"upstreams" not in r.body, "a 401 leaked data: %r" % r
        r = admin.get(addr, path, headers=[("Authorization", "Basic " + TOKEN)])
        assert r.status == 401, "GET %s with a Basic credential: %r" % (path, r)
        r = admin.get(addr, path, token=TOKEN)
        assert r.status == 200, "GET %s with the token: %r" % (path, r)
    m = admin.parse_exposition(admin.get(addr, "/metrics", token=TOKEN).body.decode())
    assert "gw_connections_total" in m.families
    r = admin.get(addr, "/healthz")
    assert r.status == 200 and r.json() == {"status": "ok"}, "/healthz needs no token: %r" % r


def test_admin_errors_close_cleanly(gateway, backend, transcript):
    gw = gateway(GW, with_admin(config.lb_proxy([backend.tagged()])))
    addr = gw.addr("admin")
    rq = admin.request_bytes
    # A 404 or 405 leaves a keep-alive connection usable, so those requests ask for the
    # close; a malformed, oversized or bodied request must be answered and closed by the
    # server on its own (with a lingering close, so the client reads the answer).
    cases = [
        ("unknown path", rq("GET", "/nope", [("Connection", "close")]), "GET", 404),
        ("wrong method", rq("DELETE", "/metrics", [("Connection", "close")]), "DELETE", 405),
        ("garbage", b"HELLO THERE\r\n\r\n", "GET", 400),
        ("request body", rq("POST", "/metrics", [("Content-Length", "5")], b"hello"), "POST", 413),
        ("huge header", rq("GET", "/metrics", [("X-Filler", "a" * (32 * 1024))]), "GET", 431),
    ]
    for what, data, method, status in cases:
        r, end = admin.exchange(addr, data, method=method, transcript=transcript)
        assert r.status == status, "%s: expected %d, got %r" % (what, status, r)
        assert end == "eof", "%s: after the %d the server should close the connection (got %s)" % (what, status, end)
        if status == 405:
            allow = [x.strip() for x in (r.header("Allow") or "").split(",")]
            assert sorted(allow) == ["GET", "HEAD"], "405 needs `Allow: GET, HEAD`: %r" % r
        if status >= 400 and status != 405 and status != 404:
            assert (r.header("Connection") or "").lower() == "close", "%s: the %d should say Connection: close: %r" % (
                what, status, r)
    # The server is still fine afterwards.
    assert admin.get(addr, "/healthz").status == 200


def test_readyz_turns_503_on_drain(gateway, backend, client, transcript):
    e = backend.echo()
    gw = gateway(GW, with_admin(config.lb_proxy([e], drain_timeout="30s")))
    addr = gw.addr("admin")
    c = client(gw)
    c.send(b"ping")
    assert c.recv_exact(4) == b"ping"
    assert admin.get(addr, "/readyz").status == 200
    gw.signal(signal.SIGTERM)
    last = {}

    def not_ready():
        last["r"] = admin.get(addr, "/readyz")
        return last["r"].status == 503

    wait_until(not_ready, env.timeout(5), "/readyz to answer 503 once draining", describe=lambda: last.get("r"))
    assert gw.alive(), "the proxy should keep draining while a client is connected"
    assert admin.get(addr, "/healthz").status == 200, "/healthz stays 200 while draining"
    m = admin.scrape(addr)
    assert m.get("gw_draining") == 1
    assert admin.get_json(addr, "/stats")["draining"] is True
    c.send(b"more")
    assert c.recv_exact(4) == b"more", "the held connection keeps working during the drain"
    c.close()
    assert gw.wait_exit(env.timeout(10)) == 0
    with socket.socket() as s:
        s.settimeout(env.timeout(2))
        assert s.connect_ex(addr) != 0, "the admin listener should be gone once the process exited"


def test_counters_do_not_go_back_during_drain(gateway, backend, client, transcript):
    e = backend.echo()
    gw = gateway(GW, with_admin(config.lb_proxy([e], drain_timeout="30s")))
    addr = gw.addr("admin")
    done = client(gw)
    done.send(b"hello")
    done.shutdown_write()
    assert done.read_to_end() == (b"hello", "eof")
    wait_metric(gw, "gw_bytes_total", 5, "the first connection's bytes to be counted", direction="in")
    held = client(gw)
    held.send(b"x")
    assert held.recv_exact(1) == b"x"
    gw.signal(signal.SIGTERM)
    wait_until(lambda: admin.scrape(addr).get("gw_draining") == 1, env.timeout(5), "gw_draining 1")
    m = admin.scrape(addr)
    stats = admin.get_json(addr, "/stats")
    held.close()
    assert (m.get("gw_bytes_total", direction="in"), m.get("gw_bytes_total", direction="out")) == (5, 5), \
        "a counter went back during the drain: %s" % m.find("gw_bytes_total")
    assert stats["bytes"] == {"in": 5, "out": 5}, "/stats during the drain: %s" % stats
    assert gw.wait_exit(env.timeout(10)) == 0


# ---- retry budget ------------------------------------------------------------------------------


def test_retry_budget_limits_retries(gateway, backend, client, transcript):
    bs = [backend.tagged() for _ in range(2)]
    for b in bs:
        b.refuse()
    retry = {"max_attempts": 3, "backoff": "10ms", "backoff_max": "100ms", "budget_percent": 0, "min_concurrent": 0}
    gw = gateway(GW, with_admin(config.lb_proxy(bs, upstream={"outlier": NO_OUTLIER, "retry": retry})))
    n = env.scaled_count(8, floor=4)
    for i in range(n):
        c = client(gw)
        if not c.reset_at_connect:
            try:
                c.send(b"who\n")
            except OSError:
                pass  # already closed
        end, elapsed = c.wait_end(timeout=env.timeout(2))
        assert end in ("eof", "reset"), "client %d: should be closed promptly (%s after %.2fs)" % (i, end, elapsed)
        c.close()
    m = wait_metric(gw, "gw_upstream_retries_total", n,
                    "every connection's one retry to be denied by the budget (%d)" % n,
                    upstream="app", result="denied")
    assert m.get("gw_upstream_retries_total", upstream="app", result="granted") == 0
    doc = backends_doc(gw)
    picks = sum(admin.backend_entry(doc, b.address_str)["picks"] for b in bs)
    assert picks == n, "with no retry granted each of the %d connections makes one attempt; picks: %d" % (n, picks)
    stats = admin.get_json(gw.addr("admin"), "/stats")
    assert stats["upstream_connects"]["failed"] == n, stats


# ---- configuration -----------------------------------------------------------------------------


def config_text(admin_block="", listener_extra="", upstream_extra=""):
    """A gw03 config text; each *_extra is YAML at its block's indentation."""
    text = "workers: 1\nlog: {level: info, format: plain}\n"
    if admin_block:
        text += "admin:\n" + "".join("  %s\n" % ln for ln in admin_block.splitlines())
    text += "listeners:\n  - name: edge\n    address: 127.0.0.1:1\n    protocol: tcp\n    upstream: app\n"
    text += "".join("    %s\n" % ln for ln in listener_extra.splitlines())
    text += "upstreams:\n  app:\n"
    text += "".join("    %s\n" % ln for ln in upstream_extra.splitlines())
    text += "    backends:\n      - address: 127.0.0.1:2\n      - address: 127.0.0.1:3\n"
    return text


CONFIG_ERRORS = [
    ("short_token", config_text(admin_block="address: 127.0.0.1:4\ntoken: tooshort"), ("tooshort", 0), ["token", "16"]),
    ("empty_rate_limit", config_text(listener_extra="rate_limit: {}"), ("{}", 0), ["global", "per_client"]),
    ("breaker_rules_off", config_text(upstream_extra="circuit_breaker:\n  consecutive_failures: 0\n  failure_rate_percent: 0"),
     ("consecutive_failures: 0", 0), ["consecutive_failures", "failure_rate_percent"]),
    ("backoff_max_below_backoff", config_text(upstream_extra="retry:\n  backoff: 100ms\n  backoff_max: 50ms"),
     ("50ms", 0), ["backoff_max", "backoff"]),
]


@pytest.mark.parametrize("text,where,words", [c[1:] for c in CONFIG_ERRORS], ids=[c[0] for c in CONFIG_ERRORS])
def test_config_errors_03(config_file, run_binary, text, where, words):
    path, _ = config_file(text, "bad.yaml")
    assert_error_at(run_binary, GW, path, text, where, words)


def test_config_03_keys_need_gw03(config_file, run_binary):
    text = config_text(
        admin_block="address: 127.0.0.1:4\ntoken: \"%s\"" % TOKEN,
        listener_extra="rate_limit:\n  global: {rate: 5, burst: 10}\n  per_client: {rate: 2, burst: 4, max_clients: 1000}",
        upstream_extra=("circuit_breaker:\n  consecutive_failures: 3\n  failure_rate_percent: 50\n  min_requests: 20\n"
                        "  window: 10s\n  open_timeout: 1s\n  half_open_max: 1\n  success_to_close: 2\n"
                        "retry:\n  max_attempts: 3\n  backoff: 10ms\n  backoff_max: 1s\n  budget_percent: 20\n"
                        "  min_concurrent: 3"))
    path, _ = config_file(text, "res.yaml")
    ok = run_binary(GW, ["-t", "-c", path])
    assert ok.code == 0, "gw03 -t should accept every milestone 03 key:\n%s" % ok.stderr
    assert TOKEN not in ok.stdout + ok.stderr, "the admin token must never be printed"
    old = run_binary(GW02, ["-t", "-c", path])
    assert old.code == 1, "gw02 -t should reject milestone 03 keys"
    line, col = position(text, "admin:")
    prefix = "%s:%d:%d:" % (path, line, col)
    hits = [ln for ln in old.stderr.splitlines() if prefix in ln]
    assert hits and any("needs gw03 or later" in ln for ln in hits), \
        "gw02 should say `admin` needs gw03 or later at %s; stderr:\n%s" % (prefix, old.stderr)


# ---- the admin API's exposure -------------------------------------------------------------------
# These tests never let the proxy bind anything but loopback: `-t` binds nothing, and the one
# start below is stopped by the test's own loopback socket before any listener exists.

OPEN_ADMIN = [("any_ipv4", "0.0.0.0:4", "listens on every interface"),
              ("any_ipv6", "\"[::]:4\"", "listens on every interface"),
              ("other_host", "192.0.2.7:4", "is not a loopback address")]


@pytest.mark.parametrize("address,says", [c[1:] for c in OPEN_ADMIN], ids=[c[0] for c in OPEN_ADMIN])
def test_config_admin_open_without_token_refused(config_file, run_binary, address, says):
    text = config_text(admin_block="address: %s" % address)
    path, _ = config_file(text, "open.yaml")
    r = run_binary(GW, ["-t", "-c", path])
    assert r.code == 1, "gw03 -t should refuse an admin API open to other hosts without a token:\n%s" % r.stderr
    line, col = position(text, address)
    want = "%s:%d:%d: admin.address %s %s and admin.token is not set" % (path, line, col, address.strip('"'), says)
    hits = [ln for ln in r.stderr.splitlines() if ln.startswith(want)]
    assert hits, "expected a line starting %r; stderr:\n%s" % (want, r.stderr)
    assert "`allow_unauthenticated: true`" in hits[0], "the error should say how to consent: %s" % hits[0]


def test_config_admin_consent_loads_and_prints_back(config_file, run_binary):
    text = config_text(admin_block="address: 0.0.0.0:4\nallow_unauthenticated: true")
    path, _ = config_file(text, "consent.yaml")
    ok = run_binary(GW, ["-t", "-c", path])
    assert ok.code == 0, "allow_unauthenticated: true should make the open admin API valid:\n%s" % ok.stderr
    printed = run_binary(GW, ["-T", "-c", path])
    assert printed.code == 0, printed
    assert re.search(r"(?m)^admin:\n  address: \"0\.0\.0\.0:4\"\n  allow_unauthenticated: true$", printed.stdout), \
        "-T should print the consent under admin:\n%s" % printed.stdout
    again, _ = config_file(printed.stdout, "printed.yaml")
    back = run_binary(GW, ["-t", "-c", again])
    assert back.code == 0, "-T's output should load back:\n%s\n%s" % (printed.stdout, back.stderr)


def test_admin_open_start_warns(config_file, run_binary):
    """A start with allow_unauthenticated: true on 0.0.0.0 logs the warning before anything
    binds. The test holds 127.0.0.1:PORT and gives that port to the listener and to the admin
    API, so the start ends at the listener's probe bind (address in use, exit 1): the proxy
    never listens, and even if the order changed, 0.0.0.0:PORT could not be bound while
    127.0.0.1:PORT is held."""
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen(8)
        port = taken.getsockname()[1]
        cfg = config.lb_proxy(["127.0.0.1:2"], listener={"address": "127.0.0.1:%d" % port})
        cfg["admin"] = {"address": "0.0.0.0:%d" % port, "allow_unauthenticated": True}
        path, _ = config_file(cfg, "open-start.yaml")
        r = run_binary(GW, ["-c", path], timeout=env.timeout(5))
    finally:
        taken.close()
    assert r.code == 1, "the held port should stop the start: %r" % r
    warning = ("admin API on 0.0.0.0:%d listens on every interface and has no token: anyone who can reach "
               "it can read /metrics, /stats and /backends (admin.allow_unauthenticated: true)" % port)
    lines = r.stderr.splitlines()
    hits = [i for i, ln in enumerate(lines) if warning in ln]
    assert hits, "the start should warn about the open admin API; stderr:\n%s" % r.stderr
    assert re.search(r"\bwarn", lines[hits[0]], re.I), "the line should be a warning: %s" % lines[hits[0]]
    in_use = [i for i, ln in enumerate(lines) if "in use" in ln.lower()]
    assert in_use and hits[0] < in_use[0], "the warning comes before any bind; stderr:\n%s" % r.stderr
    assert "admin API on http://" not in r.stderr and not re.search(r"(?<!not )\bready\b", r.stderr), r.stderr

"""Milestone 04 end to end: a route's `retry` middleware (mw_retry.c, the decision in
hretry.c): retry_on (connect_failure, reset, 502, 503, 504; default the first two), 03's
backoff, idempotent methods only, a 5xx retried only while nothing of the request or of the
response is lost, and on a fresh pick that avoids the backend that answered it.

Backends are gwtest.http.HttpBackend servers whose handlers answer 503 the first time they
see a path (or always) and echo afterwards; each request they receive is logged with its
arrival time (Request.time, monotonic), which is how the backoff is seen: by order and a
lower bound over many draws, never by an upper bound that a loaded machine could break."""
import threading

from gwtest import config
from gwtest.cfgerrors import assert_error_at
from gwtest.env import KiB
from gwtest.http import Reply

GW = "gw04"


def first_time(first, then=Reply.echo_json):
    """A handler: FIRST() the first time a path is seen, THEN() afterwards."""
    seen, lock = set(), threading.Lock()

    def handler(req):
        with lock:
            new = req.target not in seen
            seen.add(req.target)
        return first() if new else then()
    return handler


def busy():
    return Reply.fixed(503, b"busy", headers=[("Retry-After", "1")])


def retry_route(retry, **keys):
    return config.route(name="r", middleware=[{"retry": retry}], **keys)


def proxy(gateway, backends, retry, **route_keys):
    cfg = config.http_proxy(backends, routes=[retry_route(retry, **route_keys)])
    cfg["upstreams"]["app"]["outlier"] = {"consecutive_failures": 0}  # nothing ejected here
    return gateway(GW, cfg)


def test_retry_503_once_then_200(gateway, backend, http_client):
    """The only backend answers 503 the first time it sees a path: with 503 in retry_on the
    GET is sent again and the client sees the 200, not a byte of the 503."""
    b = backend.http(handler=first_time(busy))
    gw = proxy(gateway, b, {"max_attempts": 2, "retry_on": [503], "backoff": "0ms"})
    c = http_client(gw)
    for i in range(3):
        path = "/once-%d" % i
        r = c.get(path)
        assert r.status == 200, "a GET answered 503 once should be retried: %r" % r
        assert r.json()["target"] == path and b"busy" not in r.body
        assert r.header("Retry-After") is None, "a header of the dropped 503 reached the client: %r" % r
        assert b.paths().count(path) == 2, "the GET should reach the backend twice: %s" % b.paths()


def test_retry_503_goes_to_another_backend(gateway, backend, http_client):
    """consistent_hash on the client address sends every request to the same backend first;
    that one answers 503 to everything. The retry must avoid it (its pick keeps away from the
    backends tried), or it would meet the same 503 again."""
    first = []
    lock = threading.Lock()

    def handler_for(name):
        def handler(req):
            with lock:
                if not first:
                    first.append(name)
                bad = first[0] == name
            return busy() if bad else Reply.echo_json()
        return handler

    b1 = backend.http(name="one", handler=handler_for("one"))
    b2 = backend.http(name="two", handler=handler_for("two"))
    cfg = config.http_proxy([b1, b2], routes=[retry_route({"max_attempts": 2, "retry_on": [503], "backoff": "0ms"})])
    cfg["upstreams"]["app"].update({"balancer": "consistent_hash", "hash": "client_ip",
                                    "outlier": {"consecutive_failures": 0}})
    gw = gateway(GW, cfg)
    c = http_client(gw)
    for i in range(6):
        path = "/elsewhere-%d" % i
        r = c.get(path)
        assert r.status == 200, "the retry went back to the backend that answered 503: %r" % r
        bad, good = (b1, b2) if first[0] == "one" else (b2, b1)
        assert bad.paths().count(path) == 1 and good.paths().count(path) == 1, \
            "each GET should meet the 503 once, then the other backend: bad %s, good %s" % (
                bad.paths(), good.paths())


def test_post_answered_503_is_not_retried(gateway, backend, http_client):
    b = backend.http(handler=first_time(busy))
    gw = proxy(gateway, b, {"max_attempts": 3, "retry_on": [503], "backoff": "0ms"})
    r = http_client(gw).request("POST", "/post", body=b"once")
    assert r.status == 503 and r.body == b"busy", "a POST's 503 should go to the client as it came: %r" % r
    assert b.paths().count("/post") == 1, "a POST must not be sent twice: %s" % b.paths()


def test_503_not_in_retry_on_is_passed_through(gateway, backend, http_client):
    """The default retry_on is connect_failure and reset: a 503 goes to the client as the
    backend sent it, head and body, and is sent once."""
    b = backend.http(handler=first_time(busy))
    gw = proxy(gateway, b, {"max_attempts": 3, "backoff": "0ms"})
    c = http_client(gw)
    r = c.get("/default")
    assert (r.status, r.body, r.header("Retry-After")) == (503, b"busy", "1"), \
        "a 503 the route does not list should pass through untouched: %r" % r
    assert b.paths().count("/default") == 1
    assert c.get("/default").status == 200  # the connection and the backend still serve


def test_503_after_a_streamed_body_is_not_retried(gateway, backend, http_client):
    """A PUT (idempotent) whose body streamed to the backend cannot be sent again: the body
    is gone. Its 503 goes to the client."""
    b = backend.http(handler=first_time(busy))
    gw = proxy(gateway, b, {"max_attempts": 3, "retry_on": [503], "backoff": "0ms"})
    body = bytes(range(256)) * (1024 // 256) * 256  # 256 KiB
    r = http_client(gw).request("PUT", "/streamed", body=body)
    assert r.status == 503 and r.body == b"busy", "a streamed body's 503 must not be retried: %r" % r
    assert b.paths().count("/streamed") == 1
    assert b.last().body_len == len(body)


def test_503_with_a_buffered_body_is_retried_whole(gateway, backend, http_client):
    """With request_buffering the body is held whole: the PUT is sent again, body and all."""
    b = backend.http(handler=first_time(busy))
    gw = proxy(gateway, b, {"max_attempts": 2, "retry_on": [503], "backoff": "0ms"},
               request_buffering="64KiB")
    body = b"0123456789abcdef" * (10 * KiB // 16)
    r = http_client(gw).request("PUT", "/buffered", body=body)
    assert r.status == 200, "a buffered PUT answered 503 once should be retried: %r" % r
    got = [q for q in b.log if q.target == "/buffered"]
    assert len(got) == 2 and got[0].body_sha256 == got[1].body_sha256 and got[1].body_len == len(body), \
        "both attempts should carry the whole body: %s" % [(q.body_len, q.body_sha256[:8]) for q in got]


def test_503_after_an_interim_response_is_not_retried(gateway, backend, http_client):
    """A 103 relayed to the client is a byte of the response: the 503 that follows is the
    client's answer, not a reason to start over."""
    def early_hints_then_busy():
        r = busy()
        r.interim = [103]
        return r
    b = backend.http(handler=first_time(early_hints_then_busy))
    gw = proxy(gateway, b, {"max_attempts": 3, "retry_on": [503], "backoff": "0ms"})
    r = http_client(gw).get("/hints")
    assert [st for st, _ in r.interim] == [103], "the 103 should reach the client: %r" % r
    assert r.status == 503, "a 503 after a 103 went out must not be retried: %r" % r
    assert b.paths().count("/hints") == 1


def test_retry_backoff_delays_the_retry(gateway, backend, http_client):
    """backoff 200ms (cap 200ms): each retry waits a draw uniform in [0, 200] ms (03's full
    jitter). Over 12 retries, the retry always comes after the 503 and at least one waited
    50 ms or more (all 12 below 50 ms: probability 0.25^12, about 6e-8). The same route
    without backoff is in the unit tests (test_chain: delay 0)."""
    b = backend.http(handler=first_time(busy))
    gw = proxy(gateway, b, {"max_attempts": 2, "retry_on": [503], "backoff": "200ms", "backoff_max": "200ms"})
    c = http_client(gw)
    gaps = []
    for i in range(12):
        path = "/backoff-%d" % i
        assert c.get(path).status == 200
        times = [q.time for q in b.log if q.target == path]
        assert len(times) == 2, "the GET should reach the backend twice: %s" % times
        gaps.append(times[1] - times[0])
    assert all(g > 0 for g in gaps), "a retry arrived before the 503 it follows: %s" % gaps
    assert max(gaps) >= 0.05, "no retry waited 50 ms of a 200 ms backoff: gaps %s" % (
        ["%.3f" % g for g in gaps])


RETRY_TEXT = """\
workers: 1
listeners:
  - name: web
    address: 127.0.0.1:1
    protocol: http
    routes:
      - match: {path_prefix: /}
        upstream: app
        middleware:
          - retry: {max_attempts: 2, retry_on: [reset, RETRY_ON]}
upstreams:
  app:
    backends:
      - address: 127.0.0.1:2
"""


def test_config_retry_on_errors(config_file, run_binary):
    ok = RETRY_TEXT.replace("RETRY_ON", "503")
    path, _ = config_file(ok, "ok.yaml")
    r = run_binary(GW, ["-t", "-c", path])
    assert r.code == 0, "retry_on: [reset, 503] should be accepted:\n%s" % r.stderr
    bad = RETRY_TEXT.replace("RETRY_ON", "500")
    path, _ = config_file(bad, "bad.yaml")
    assert_error_at(run_binary, GW, path, bad, ("500", 0), ["retry_on", "503"])
    bad = RETRY_TEXT.replace("retry_on: [reset, RETRY_ON]}", "backoff: 1s, backoff_max: 10ms}")
    path, _ = config_file(bad, "bad2.yaml")
    assert_error_at(run_binary, GW, path, bad, ("10ms", 0), ["backoff_max"])

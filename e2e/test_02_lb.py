"""Milestone 02 end to end: backends, balancers and health checks (build/bin/gw02 = gw01
plus an upstream of several backends), on free loopback ports, with `workers` from
GW_WORKERS.

The backends are backends.Tagged servers: a request (clients.ask_backend: send b"who\\n")
is answered with the backend's name ("host:port"), so the client knows where the proxy
sent it, and health checks (tcp connects, HTTP GETs) are counted apart from requests.

Each worker has its own balancer, so with several workers an exact rotation holds per
worker only: the split tests check proportions over many sequential connections. Shared
state (health, active connections, ejections) is per backend, for all workers at once.

One behaviour per test. Every wait polls to a deadline (stretched x5 under sanitizers,
where connection counts are also divided by 4); nothing sleeps."""
import collections
import re

import pytest

from gwtest import config, env
from gwtest.clients import BackendUnreachable, ask_backend, tally
from gwtest.cfgerrors import assert_error_at, position
from gwtest.wait import Deadline, WaitTimeout, wait_until

GW = "gw02"
GW01 = "gw01"

# Active health checks in these tests: fast, so that a verdict takes well under a second.
INTERVAL_S = 0.2
RISE = 2
FALL = 2
# The proxy's connect-failure warnings are rate limited to one a second per worker
# (milestone 01): to prove that no connection went to a backend, watch for longer.
LOG_RATE_PERIOD_S = 1.0


def tcp_check(**over):
    hc = {"type": "tcp", "interval": "%dms" % (INTERVAL_S * 1000), "timeout": "1s", "rise": RISE, "fall": FALL}
    hc.update(over)
    return hc


def http_check(**over):
    return tcp_check(type="http", path="/healthz", expect_status="200-299", **over)


NO_OUTLIER = {"consecutive_failures": 0}

# Client source addresses (consistent hashing): Linux's loopback answers for all of 127/8.
SOURCES = ["127.0.0.%d" % i for i in range(2, 41)]


def verdict_deadline(checks):
    """How long CHECKS consecutive health checks may take to produce a verdict: the first
    check comes within one interval (jitter), each next one within interval +10%, plus
    generous slack for a loaded machine."""
    return env.timeout((checks + 1) * INTERVAL_S * 1.1 + 2.0)


def addr_re(b):
    """A regex for backend B's "host:port" that does not also match a longer port."""
    return re.escape(b.address_str) + r"(?!\d)"


def verdict_re(b, word):
    """A log line naming backend B with the word UNHEALTHY or HEALTHY (not part of
    UNHEALTHY: \\b does not match inside a word)."""
    return r"(?m)^(?=.*%s)(?=.*\b%s\b).*$" % (addr_re(b), word)


def lines_naming(text, b, but_not=("HEALTHY", "UNHEALTHY")):
    """Lines of TEXT that name backend B, except health verdicts."""
    rx = re.compile(addr_re(b))
    return [ln for ln in text.splitlines()
            if rx.search(ln) and not any(re.search(r"\b%s\b" % w, ln) for w in but_not)]


def shares(counts, backends):
    total = sum(counts.values())
    assert total > 0
    return [counts.get(b.name, 0) / total for b in backends]


def assert_shares(counts, backends, expected, tolerance, what):
    got = shares(counts, backends)
    bad = [i for i in range(len(backends)) if abs(got[i] - expected[i]) > tolerance]
    assert not bad, "%s: shares %s, expected %s within +-%.0f points (counts %s)" % (
        what, ["%.3f" % g for g in got], ["%.3f" % e for e in expected], tolerance * 100,
        [counts.get(b.name, 0) for b in backends])


def requests_until(addr, transcript, stop, deadline, what):
    """Sequential requests until STOP() is true (checked between requests) or DEADLINE (a
    wait.Deadline) passes, which fails the test. Returns (Counter of where they went, list
    of failures). One at a time on purpose: when STOP() turns true, no request of ours is
    in flight."""
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


def requests_for(addr, transcript, seconds):
    """Sequential requests for SECONDS (a workload of that length, not a wait)."""
    dl = Deadline(seconds)
    return requests_until(addr, transcript, dl.expired, Deadline(seconds + env.timeout(10)), "the workload")


def kill_until_unhealthy(gw, victim, transcript):
    """Refuses connects on VICTIM while clients keep coming, until the proxy logs it
    UNHEALTHY. Returns (stderr offset at the kill, stderr offset when UNHEALTHY was seen,
    Counter of where the requests went, failures)."""
    at_kill = len(gw.stderr_text())
    since_kill = Deadline(0)
    victim.refuse()
    transcript.note("killed %s" % victim.name)
    rx = re.compile(verdict_re(victim, "UNHEALTHY"))
    seen = {}

    def unhealthy():
        text = gw.stderr_text()
        if rx.search(text, at_kill):
            seen["at"] = len(text)
            return True
        return False

    where, failures = requests_until(gw.addr("edge"), transcript, unhealthy, Deadline(verdict_deadline(FALL)),
                                     "%s to be logged UNHEALTHY (fall %d x interval %.0fms)"
                                     % (victim.name, FALL, INTERVAL_S * 1000))
    transcript.note("UNHEALTHY logged for %s after %.2fs" % (victim.name, since_kill.elapsed()))
    assert_not_before(since_kill, FALL, "UNHEALTHY")
    return at_kill, seen["at"], where, failures


def assert_not_before(since, checks, verdict):
    """CHECKS checks in a row, all started after SINCE, are at least (CHECKS - 1) x 0.9
    interval apart (the jitter is +-10%): a verdict seen sooner did not wait for them."""
    least = (checks - 1) * INTERVAL_S * 0.9
    assert since.elapsed() >= least, "%s after %.3fs: %d checks %.0fms apart take at least %.3fs" % (
        verdict, since.elapsed(), checks, INTERVAL_S * 1000, least)


# ---- balancers -------------------------------------------------------------------------------


def test_weighted_split_matches_weights(gateway, backend, transcript):
    bs = [backend.tagged() for _ in range(3)]
    gw = gateway(GW, config.lb_proxy(bs, balancer="weighted_round_robin", weights=[5, 1, 1]))
    n = env.scaled_count(700)
    counts = tally(gw.addr("edge"), n, transcript)
    assert sum(b.served for b in bs) == n, "every request should reach exactly one backend"
    assert_shares(counts, bs, [5 / 7, 1 / 7, 1 / 7], 0.05, "weighted_round_robin 5:1:1 over %d connections" % n)


def test_round_robin_spreads_evenly(gateway, backend, transcript):
    # Weights are set on purpose: round_robin ignores them (that is what tells it apart
    # from weighted_round_robin).
    bs = [backend.tagged() for _ in range(3)]
    gw = gateway(GW, config.lb_proxy(bs, balancer="round_robin", weights=[5, 1, 1]))
    n = env.scaled_count(300)
    counts = tally(gw.addr("edge"), n, transcript)
    assert_shares(counts, bs, [1 / 3] * 3, 0.05, "round_robin over %d connections" % n)


def test_least_connections_prefers_idle(gateway, backend, transcript):
    bs = [backend.tagged() for _ in range(3)]
    gw = gateway(GW, config.lb_proxy(bs, balancer="least_connections"))
    addr = gw.addr("edge")
    held = 6
    # Long-lived connections opened one after the other: each goes to a least loaded
    # backend (the count is shared by the workers), so they end up exactly even.
    conns = collections.defaultdict(list)
    try:
        check_least_connections(addr, bs, conns, held, transcript)
    finally:
        for c in [c for cs in conns.values() for c in cs]:
            c.close()


def check_least_connections(addr, bs, conns, held, transcript):
    for _ in range(3 * held):
        name, c = ask_backend(addr, transcript, keep=True)
        conns[name].append(c)
    assert sorted(len(conns[b.name]) for b in bs) == [held] * 3, \
        "%d long-lived connections over 3 idle backends: %s" % (3 * held, {k: len(v) for k, v in conns.items()})
    busy, idle = bs[0], bs[1:]
    for b in idle:
        for c in conns[b.name]:
            c.close()
    for b in idle:
        b.wait_idle()
    transcript.note("%s holds %d connections; the others none" % (busy.name, held))

    n = env.scaled_count(120, floor=30)
    counts = tally(addr, n, transcript)
    assert counts.get(busy.name, 0) == 0, \
        "short connections went to the backend holding %d connections: %s" % (held, dict(counts))
    for b in idle:
        assert counts.get(b.name, 0) >= n // 4, "the two idle backends should share the ties: %s" % dict(counts)
    assert busy.active == held, "the long-lived connections should still be open"


def test_random_two_choices_spreads_by_weight(gateway, backend, transcript):
    bs = [backend.tagged() for _ in range(3)]
    gw = gateway(GW, config.lb_proxy(bs, balancer="random_two_choices", weights=[5, 1, 1]))
    # Random: the count is kept high enough even under sanitizers that the bounds below
    # are 3.5 standard deviations away (requests are cheap; the proxy is not the limit).
    n = env.scaled_count(1200, floor=600)
    counts = tally(gw.addr("edge"), n, transcript)
    # With idle backends (sequential requests) two choices takes the heavier of the two it
    # draws ((0+1)/5 < (0+1)/1): 2/3, 1/6, 1/6 for uniform draws, 5/7, 1/7, 1/7 for draws
    # by weight. Either is a spread by weight; an even or an inverted split is not.
    assert_shares(counts, bs, [0.69, 0.155, 0.155], 0.09, "random_two_choices 5:1:1 over %d connections" % n)
    assert all(counts.get(b.name, 0) > 0 for b in bs), "no backend may be starved: %s" % dict(counts)


# ---- health: active checks -------------------------------------------------------------------


def test_killed_backend_is_ejected_without_client_failures(gateway, backend, transcript):
    # Outlier detection off: only the active checks may take the backend out.
    bs = [backend.tagged() for _ in range(3)]
    gw = gateway(GW, config.lb_proxy(bs, upstream={"health_check": tcp_check(), "outlier": NO_OUTLIER}))
    addr = gw.addr("edge")
    before = tally(addr, 30, transcript)
    assert all(before.get(b.name, 0) > 0 for b in bs), "every backend should serve before the kill: %s" % dict(before)

    victim = bs[1]
    # Requests run one at a time, so the kill never catches one of ours in the victim's
    # accept queue (a connection the kernel completed, then reset at the close: a real
    # client failure, but one no proxy could retry).
    at_kill, at_verdict, during, failures = kill_until_unhealthy(gw, victim, transcript)
    assert not failures, "%d requests failed while the backend was down but not yet marked:\n%s" % (
        len(failures), "\n".join(failures[:10]))
    tried = lines_naming(gw.stderr_text()[at_kill:at_verdict], victim)
    assert tried, ("no connect failure to %s was logged before the verdict (%d requests ran): the "
                   "test did not exercise the connect retry" % (victim.name, sum(during.values())))

    served_at_verdict = victim.served
    after, failures = requests_for(addr, transcript, max(1.5 * LOG_RATE_PERIOD_S, env.timeout(0.5)))
    assert not failures, "%d requests failed after the verdict:\n%s" % (len(failures), "\n".join(failures[:10]))
    assert victim.served == served_at_verdict and victim.name not in after
    late = lines_naming(gw.stderr_text()[at_verdict:], victim)
    assert not late, "after the UNHEALTHY verdict the proxy still connected to %s:\n%s" % (
        victim.name, "\n".join(late[:10]))
    assert all(after.get(b.name, 0) > 0 for b in bs if b is not victim), \
        "the remaining backends should share the load: %s" % dict(after)


def test_restarted_backend_returns_after_rise(gateway, backend, transcript):
    # rise 3: the HEALTHY verdict then needs 2 intervals after the restart, while the first
    # check alone comes within 1.1 intervals, so a verdict that did not wait for `rise`
    # checks is always too early (with rise 2 it would be only most of the time).
    rise = 3
    bs = [backend.tagged() for _ in range(3)]
    gw = gateway(GW, config.lb_proxy(bs, upstream={"health_check": tcp_check(rise=rise), "outlier": NO_OUTLIER}))
    addr = gw.addr("edge")
    victim = bs[2]
    _, _, _, failures = kill_until_unhealthy(gw, victim, transcript)
    assert not failures, "requests failed while the backend was going down:\n%s" % "\n".join(failures[:10])

    at_restart = len(gw.stderr_text())
    since_restart = Deadline(0)
    victim.resume()
    transcript.note("restarted %s on the same port" % victim.name)
    healthy = re.compile(verdict_re(victim, "HEALTHY"))
    returned, seen = [], {}

    def back_in_rotation():
        name = ask_backend(addr, transcript)
        if "healthy_after" not in seen and healthy.search(gw.stderr_text(), at_restart):
            seen["healthy_after"] = since_restart.elapsed()
        if name != victim.name:
            return False
        if "healthy_after" not in seen:
            # The proxy publishes the verdict, then logs it: a request may land a moment
            # before the line is written, never long before.
            try:
                gw.wait_log(verdict_re(victim, "HEALTHY"), timeout=env.timeout(0.1), after=at_restart)
            except WaitTimeout:
                raise AssertionError("a request reached %s %.3fs after its restart, before it was logged "
                                     "HEALTHY: a backend must pass `rise` checks first"
                                     % (victim.name, since_restart.elapsed())) from None
            seen["healthy_after"] = since_restart.elapsed()
        returned.append(name)
        return len(returned) >= 3

    # Between the restart and `rise` passed checks the backend listens but is still out:
    # a request reaching it with no HEALTHY line fails in back_in_rotation().
    wait_until(back_in_rotation, verdict_deadline(rise), "%s to get requests again after %d passed checks"
               % (victim.name, rise), interval=0)
    transcript.note("HEALTHY seen %.2fs after the restart" % seen["healthy_after"])
    assert seen["healthy_after"] >= (rise - 1) * INTERVAL_S * 0.9, (
        "HEALTHY %.3fs after the restart: %d passed checks %.0fms apart take longer"
        % (seen["healthy_after"], rise, INTERVAL_S * 1000))
    assert victim.served >= 3


def test_http_check_503_removes_backend(gateway, backend, transcript):
    bs = [backend.tagged() for _ in range(3)]
    sick = bs[0]
    sick.http_status = 503
    gw = gateway(GW, config.lb_proxy(bs, upstream={"health_check": http_check(), "outlier": NO_OUTLIER}))
    gw.wait_log(verdict_re(sick, "UNHEALTHY"), timeout=verdict_deadline(FALL))
    served_at_verdict = sick.served
    n = env.scaled_count(200, floor=40)
    counts = tally(gw.addr("edge"), n, transcript)
    assert sick.served == served_at_verdict and sick.name not in counts, \
        "the backend answering 503 still got requests: %s" % dict(counts)
    for b in bs[1:]:
        assert counts.get(b.name, 0) >= n // 4, "the healthy backends should share the load: %s" % dict(counts)
        assert b.health_requests > 0, "%s was never checked over HTTP" % b.name
        assert not re.search(verdict_re(b, "UNHEALTHY"), gw.stderr_text()), "%s answers 200 but was marked down" % b.name
    assert sick.health_requests >= FALL
    assert all(b.probes == 0 for b in bs), "an http check should send its GET, not just connect"


def test_all_backends_down_closes_client_promptly(gateway, backend, client, transcript):
    bs = [backend.tagged() for _ in range(2)]
    for b in bs:
        b.refuse()
    gw = gateway(GW, config.lb_proxy(bs, upstream={"health_check": tcp_check()}))  # panic_threshold 50, 3 attempts

    def closes_promptly(what):
        c = client(gw)
        if not c.reset_at_connect:
            try:
                c.send(b"who\n")
            except OSError:
                pass  # already reset
        end, elapsed = c.wait_end(timeout=env.timeout(2))
        assert end in ("eof", "reset"), "%s: the client should be closed within 2s (%s after %.2fs)" % (
            what, end, elapsed)
        c.close()

    closes_promptly("every backend refusing, not yet marked")
    gw.wait_log(r"no usable backend|refused", timeout=env.timeout(2))
    for b in bs:
        gw.wait_log(verdict_re(b, "UNHEALTHY"), timeout=verdict_deadline(FALL))
    closes_promptly("every backend marked UNHEALTHY (panic: try them all anyway)")

    bs[0].resume()
    transcript.note("restarted %s" % bs[0].name)
    # No backend is usable (both UNHEALTHY, well under panic_threshold): panic mode balances
    # over all of them, so the very first request finds the one that came back, long
    # before `rise` checks could mark it HEALTHY.
    try:
        first = ask_backend(gw.addr("edge"), transcript)
    except BackendUnreachable as e:
        raise AssertionError("in panic mode the proxy should try every backend, and one is back: %s" % e) from None
    assert first == bs[0].name
    assert tally(gw.addr("edge"), 10, transcript) == {bs[0].name: 10}


def test_no_usable_backend_without_panic_closes_client_at_once(gateway, backend, client, transcript):
    bs = [backend.tagged() for _ in range(2)]
    for b in bs:
        b.refuse()
    gw = gateway(GW, config.lb_proxy(bs, upstream={"panic_threshold": 0, "health_check": tcp_check(),
                                                   "outlier": NO_OUTLIER}))
    for b in bs:
        gw.wait_log(verdict_re(b, "UNHEALTHY"), timeout=verdict_deadline(FALL))
    at_verdicts = len(gw.stderr_text())
    # One backend listens again, but is still UNHEALTHY for `rise` checks (at least one
    # interval): with panic mode off, nothing is usable and the proxy must not try it.
    bs[0].resume()
    c = client(gw)
    if not c.reset_at_connect:
        try:
            c.send(b"who\n")
        except OSError:
            pass  # already reset
    end, elapsed = c.wait_end(timeout=env.timeout(2))
    healthy_yet = bool(re.search(verdict_re(bs[0], "HEALTHY"), gw.stderr_text()[at_verdicts:]))
    assert end in ("eof", "reset") and bs[0].served == 0, (
        "with no usable backend and panic_threshold 0 the client should be closed at once, without trying "
        "the unhealthy backends (%s after %.2fs, %d requests served; HEALTHY logged yet: %s)"
        % (end, elapsed, bs[0].served, healthy_yet))
    gw.wait_log(r"no usable backend", timeout=env.timeout(2), after=at_verdicts)


def test_connect_retry_never_tries_a_failed_backend_again(gateway, backend, transcript):
    # 2 of 4 backends down, not yet known as such (no active checks, no outlier): with
    # retry.max_attempts 3 (the default) every request can reach a live backend if no
    # attempt goes to a backend that already failed. consistent_hash makes the order of the
    # attempts fixed per source: about half of the 39 sources start on a dead backend, and
    # a third of those have the other dead one next on the ring.
    bs = [backend.tagged() for _ in range(4)]
    gw = gateway(GW, config.lb_proxy(bs, balancer="consistent_hash",
                                     upstream={"hash": "client_ip", "outlier": NO_OUTLIER}))
    for b in bs[:2]:
        b.refuse()
    failures = []
    for s in SOURCES:
        try:
            ask_backend(gw.addr("edge"), transcript, source=s)
        except BackendUnreachable as e:
            failures.append(str(e))
    assert not failures, "%d of %d sources failed with 2 of 4 backends alive and 3 attempts:\n%s" % (
        len(failures), len(SOURCES), "\n".join(failures[:10]))


# ---- health: passive checks ------------------------------------------------------------------


def test_outlier_ejects_failing_backend_without_health_checks(gateway, backend, transcript):
    bs = [backend.tagged() for _ in range(3)]
    gw = gateway(GW, config.lb_proxy(bs, upstream={"outlier": {"consecutive_failures": 3, "base_ejection": "30s"}}))
    addr = gw.addr("edge")
    victim = bs[0]
    at_kill = len(gw.stderr_text())
    victim.refuse()
    rx = re.compile(r"(?m)^(?=.*%s)(?=.*\beject)" % addr_re(victim))
    seen = {}

    def ejected():
        text = gw.stderr_text()
        if rx.search(text, at_kill):
            seen["at"] = len(text)
            return True
        return False

    _, failures = requests_until(addr, transcript, ejected, Deadline(env.timeout(5)),
                                 "%s to be ejected after 3 consecutive connect failures" % victim.name)
    assert not failures, "requests failed although a retry could go elsewhere:\n%s" % "\n".join(failures[:10])
    after, failures = requests_for(addr, transcript, max(1.5 * LOG_RATE_PERIOD_S, env.timeout(0.5)))
    assert not failures
    late = lines_naming(gw.stderr_text()[seen["at"]:], victim, but_not=("eject", "ejected"))
    assert not late, "the ejected backend was still tried:\n%s" % "\n".join(late[:10])
    assert all(after.get(b.name, 0) > 0 for b in bs[1:]), dict(after)


# ---- consistent hashing ----------------------------------------------------------------------

def map_sources(addr, transcript, sources, reps):
    """{source: set of backend names its REPS requests reached}."""
    seen = collections.defaultdict(set)
    for _ in range(reps):
        for s in sources:
            seen[s].add(ask_backend(addr, transcript, source=s))
    return seen


def test_consistent_hash_sticks_client_to_backend(gateway, backend, transcript):
    bs = [backend.tagged() for _ in range(3)]
    gw = gateway(GW, config.lb_proxy(bs, balancer="consistent_hash", upstream={"hash": "client_ip"}))
    seen = map_sources(gw.addr("edge"), transcript, SOURCES, reps=3)
    moved = {s: sorted(v) for s, v in seen.items() if len(v) != 1}
    assert not moved, "sources whose requests reached several backends: %s" % moved
    used = collections.Counter(next(iter(v)) for v in seen.values())
    assert len(used) > 1, "%d sources all hashed to one backend: %s" % (len(SOURCES), dict(used))


def test_consistent_hash_remaps_few_on_removal(gateway, backend, transcript):
    bs = [backend.tagged() for _ in range(4)]
    gw = gateway(GW, config.lb_proxy(bs, balancer="consistent_hash",
                                     upstream={"hash": "client_ip", "health_check": tcp_check(), "outlier": NO_OUTLIER}))
    addr = gw.addr("edge")
    before = {s: next(iter(v)) for s, v in map_sources(addr, transcript, SOURCES, reps=1).items()}
    per_backend = collections.Counter(before.values())
    victim = max(bs, key=lambda b: per_backend.get(b.name, 0))
    assert per_backend[victim.name] > 0
    victim.refuse()
    transcript.note("killed %s (%d sources)" % (victim.name, per_backend[victim.name]))
    gw.wait_log(verdict_re(victim, "UNHEALTHY"), timeout=verdict_deadline(FALL))

    after = {s: next(iter(v)) for s, v in map_sources(addr, transcript, SOURCES, reps=1).items()}
    moved = {s: (before[s], after[s]) for s in SOURCES if before[s] != victim.name and after[s] != before[s]}
    assert not moved, "sources of the remaining backends moved: %s" % moved
    assert all(after[s] != victim.name for s in SOURCES)


# ---- configuration ---------------------------------------------------------------------------


def bad_config(up_extra="", backend_extra="", hc=None):
    """A gw02 config text with the upstream keys UP_EXTRA (YAML lines at the upstream's
    indentation), the first backend's extra keys and an optional health_check block."""
    text = """\
workers: 1
log: {level: info, format: plain}
listeners:
  - name: edge
    address: 127.0.0.1:1
    protocol: tcp
    upstream: app
upstreams:
  app:
"""
    for line in up_extra.splitlines():
        text += "    %s\n" % line
    if hc is not None:
        text += "    health_check:\n"
        for line in hc.splitlines():
            text += "      %s\n" % line
    text += "    backends:\n      - address: 127.0.0.1:2\n"
    for line in backend_extra.splitlines():
        text += "        %s\n" % line
    text += "      - address: 127.0.0.1:3\n"
    return text


# (id, config text, (needle, offset into it) that locates the error, words the message needs)
CONFIG_ERRORS = [
    ("unknown_balancer", bad_config("balancer: fastest"), ("fastest", 0),
     ["fastest", "round_robin", "weighted_round_robin", "least_connections", "random_two_choices", "consistent_hash"]),
    ("weight_zero", bad_config(backend_extra="weight: 0"), ("weight: 0", 8), ["weight", "1", "1000"]),
    ("hash_without_consistent_hash", bad_config("balancer: round_robin\nhash: client_ip"), ("client_ip", 0), ["hash"]),
    ("consistent_hash_without_hash", bad_config("balancer: consistent_hash"), ("consistent_hash", 0), ["hash"]),
    ("health_check_without_type", bad_config(hc="interval: 1s"), ("interval: 1s", 0), ["type"]),
    ("path_on_tcp_check", bad_config(hc="type: tcp\npath: /healthz"), ("/healthz", 0), ["path"]),
]


@pytest.mark.parametrize("text,where,words", [c[1:] for c in CONFIG_ERRORS], ids=[c[0] for c in CONFIG_ERRORS])
def test_config_errors_02(config_file, run_binary, text, where, words):
    path, _ = config_file(text, "bad.yaml")
    assert_error_at(run_binary, GW, path, text, where, words)


def test_config_02_keys_need_gw02(config_file, run_binary):
    text = bad_config("balancer: weighted_round_robin\npanic_threshold: 0\nretry: {max_attempts: 2}",
                      backend_extra="weight: 5", hc="type: http\npath: /healthz\nexpect_status: 200-299")
    path, _ = config_file(text, "lb.yaml")
    ok = run_binary(GW, ["-t", "-c", path])
    assert ok.code == 0, "gw02 -t should accept every milestone 02 key:\n%s" % ok.stderr
    old = run_binary(GW01, ["-t", "-c", path])
    assert old.code == 1, "gw01 -t should reject milestone 02 keys"
    line, col = position(text, "balancer:")
    prefix = "%s:%d:%d:" % (path, line, col)
    hits = [ln for ln in old.stderr.splitlines() if prefix in ln]
    assert hits and any("needs gw02 or later" in ln for ln in hits), \
        "gw01 should say `balancer` needs gw02 or later at %s; stderr:\n%s" % (prefix, old.stderr)

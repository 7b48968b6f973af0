"""Fixtures shared by every milestone's end-to-end suite (see gwtest/ and README.md).

  gateway(binary, cfg, expect_exit=0, args=())  start a proxy, wait for `ready`; a proc.Gateway
  backend.echo() / .sink() / .source(n) / ...   fake upstreams on free loopback ports
  client(addr_or_gateway)                        a connected client (every op has a timeout)
  http_client(addr_or_gateway)                   a connected HTTP/1.1 client (gwtest.http, gw04 on)
  run_binary(binary, args)                       one-shot runs: -t, -T, -h, --version
  config_file(cfg, name)                         write a config, get (path, addrs)
  transcript                                     what crossed each side; printed on failure
  pki                                            certificates made once per run (gwtest.certs)

On failure the report shows the proxy's stderr (last 200 lines) and the transcript. At
teardown every gateway is stopped (SIGTERM), its exit code must be the expected one (0),
and its stderr must hold no sanitizer report. Each test runs under a harness timeout
(default 60 s, x5 under sanitizers; @pytest.mark.gw_timeout(seconds) to change it).
"""
import signal

import pytest

pytest.register_assert_rewrite("gwtest")

from gwtest import env  # noqa: E402
from gwtest import harness as gwharness  # noqa: E402

DEFAULT_TEST_TIMEOUT = 60


def pytest_configure(config):
    config.addinivalue_line("markers", "gw_timeout(seconds): the harness's per-test timeout (before x5 under sanitizers)")
    config.addinivalue_line("markers", "asan_leg: also run against the ASan build, LeakSanitizer on at exit (scripts/gwtest.py ASAN_E2E)")


def pytest_report_header(config):
    return "gw e2e: bin dir %s, workers %d, sanitizer %s" % (env.BIN_DIR, env.WORKERS, env.SANITIZER or "none")


class TestTimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """The harness's own per-test timeout (pytest-timeout may be missing): SIGALRM raises
    in the main thread, which interrupts whatever blocking call the test is in."""
    m = item.get_closest_marker("gw_timeout")
    seconds = env.timeout(m.args[0] if m else DEFAULT_TEST_TIMEOUT)

    def on_alarm(signum, frame):
        raise TestTimeout("test exceeded its %.0fs harness timeout" % seconds)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    h = getattr(item, "_gw_harness", None)
    if h is not None and rep.failed:
        for title, text in h.report_sections():
            rep.sections.append((title, text))
        # In a handout a proxy dies at a lab stub: say which, as a junit property, so that
        # `make test` can name the lab in one line instead of printing the transcript.
        for stub in h.lab_stubs():
            if ("lab_stub", stub) not in item.user_properties:
                item.user_properties.append(("lab_stub", stub))
                if call.when == "teardown":  # this report copied the list already
                    rep.user_properties.append(("lab_stub", stub))


def pytest_sessionfinish(session, exitstatus):
    gwharness.stop_all_now()


@pytest.fixture
def harness(request, tmp_path):
    h = gwharness.Harness(request.node.nodeid, str(tmp_path))
    request.node._gw_harness = h
    yield h
    problems = h.close()
    if problems:
        pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def gateway(harness):
    return harness.gateway


@pytest.fixture
def backend(harness):
    return harness.backend


@pytest.fixture
def client(harness):
    return harness.client


@pytest.fixture
def http_client(harness):
    return harness.http_client


@pytest.fixture
def run_binary(harness):
    return harness.run_binary


@pytest.fixture
def config_file(harness):
    return harness.config_file


@pytest.fixture
def transcript(harness):
    return harness.transcript


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """CAs, server and client certificates for the TLS tests, made once per pytest run in a
    temporary directory (gwtest/certs.py): no private key is committed. Imported here, not at
    the top, so that the suites without TLS run even where python3-cryptography is missing."""
    from gwtest import certs as gwcerts

    return gwcerts.standard_pki(tmp_path_factory.mktemp("pki"))

"""Milestone 01 end to end: the L4 TCP proxy (build/bin/gw01) between real clients and
fake backends, on free loopback ports, with `workers` from GW_WORKERS.

One behaviour per test. Every wait polls to a deadline (stretched x5 under sanitizers);
the only pauses are the slow readers' deliberate stalls, marked allowed-sleep in gwtest."""
import os
import random
import re
import signal
import socket
import threading

import pytest

from gwtest import config, env
from gwtest import data as gwdata
from gwtest.clients import echo_many, try_connect
from gwtest.env import GiB, KiB, MiB
from gwtest.wait import wait_until

GW = "gw01"

# Streaming must not buffer: the proxy's peak RSS may grow by less than this during a
# bulk transfer with a stalled reader (plain build only; see DESIGN.md, Tests).
RSS_GROWTH_LIMIT = 32 * MiB
BULK = env.scaled_bytes(1 * GiB)
STALL_SECONDS = 3.0


def proxy(gateway, upstream, **listener):
    """gw01 with one listener `edge` forwarding to UPSTREAM; LISTENER overrides its keys."""
    return gateway(GW, config.tcp_proxy(upstream, listener=listener))


def assert_rss_bounded(gw, what):
    if not env.rss_checks():
        return
    before, after = gw.ready_rss, gw.rss()
    assert before and after, "could not read /proc/%d/status" % gw.pid
    growth = after["VmHWM"] - before["VmRSS"]
    assert growth < RSS_GROWTH_LIMIT, (
        "%s: peak RSS grew by %.1f MiB (VmRSS at ready %.1f MiB, VmHWM now %.1f MiB), limit %d MiB: "
        "is the proxy buffering instead of applying backpressure?"
        % (what, growth / MiB, before["VmRSS"] / MiB, after["VmHWM"] / MiB, RSS_GROWTH_LIMIT // MiB))


# ---- forwarding ----------------------------------------------------------------------------


def test_echo_round_trip(gateway, backend, client):
    echo = backend.echo()
    gw = proxy(gateway, echo)
    c = client(gw)
    msg = b"hello through gw01\n" + gwdata.make(100 * KiB, seed=11)
    c.send(msg)
    assert c.recv_exact(len(msg)) == msg
    c.shutdown_write()
    rest, end = c.read_to_end(timeout=env.timeout(5))
    assert (rest, end) == (b"", "eof"), "after the echo, expected a clean EOF and no extra bytes"
    assert echo.accepted == 1


def test_concurrent_clients(gateway, backend, transcript):
    n, size = 200, 64 * KiB
    echo = backend.echo()
    gw = proxy(gateway, echo)
    payloads = [random.Random(1000 + i).randbytes(size) for i in range(n)]
    got = echo_many(gw.addr("edge"), payloads, transcript, timeout=env.timeout(30))
    bad = [i for i in range(n) if got[i] != payloads[i]]
    assert not bad, "%d of %d clients got wrong data, e.g. client %d: %d bytes back, expected %d" % (
        len(bad), n, bad[0], len(got[bad[0]]), size)
    assert echo.accepted == n


# ---- half-close ----------------------------------------------------------------------------


def test_client_half_close(gateway, backend, client):
    """Client EOF reaches the backend as EOF, and the other direction keeps flowing."""
    srv = backend.reply_after_eof()
    gw = proxy(gateway, srv)
    c = client(gw)
    n = 1 * MiB + 123
    sha = c.send_data(n, seed=21)
    c.shutdown_write()
    reply, end = c.read_to_end(timeout=env.timeout(10))
    assert reply == ("%s %d\n" % (sha, n)).encode(), "the backend's reply (sent only after it saw EOF)"
    assert end == "eof"


def test_backend_half_close(gateway, backend, client):
    """Backend EOF reaches the client as EOF, and the client can still send."""
    greeting = b"greetings, then my write side closes\n"
    srv = backend.half_close_first(greeting=greeting)
    gw = proxy(gateway, srv)
    c = client(gw)
    early, end = c.read_to_end(timeout=env.timeout(5))
    assert (early, end) == (greeting, "eof"), "the client should see the greeting, then EOF"
    n = 512 * KiB
    sha = c.send_data(n, seed=22)
    c.shutdown_write()
    got = srv.result(timeout=env.timeout(10))
    assert (got.count, got.sha256, got.end) == (n, sha, "eof"), "what the backend read after its half-close"


# ---- bulk transfers with a stalled reader --------------------------------------------------


@pytest.mark.gw_timeout(120)
def test_bulk_upload_sha256_rss(gateway, backend, client):
    sink = backend.sink(stall=backend.stall(after=BULK // 2, seconds=STALL_SECONDS))
    gw = proxy(gateway, sink)
    c = client(gw, op_timeout=env.timeout(30))
    sha = c.send_data(BULK, seed=31)
    c.shutdown_write()
    got = sink.result(timeout=env.timeout(60))
    assert (got.count, got.sha256, got.end) == (BULK, sha, "eof"), "what the sink received"
    end, _ = c.wait_end(timeout=env.timeout(10))
    assert end == "eof", "once the sink closed, the client should see EOF"
    assert_rss_bounded(gw, "upload of %d MiB" % (BULK // MiB))


@pytest.mark.gw_timeout(120)
def test_bulk_download_sha256_rss(gateway, backend, client):
    src = backend.source(BULK, seed=32)
    gw = proxy(gateway, src)
    c = client(gw, op_timeout=env.timeout(30))
    got = c.drain(stall=backend.stall(after=BULK // 2, seconds=STALL_SECONDS), timeout=env.timeout(90))
    assert (got.count, got.sha256, got.end) == (BULK, src.sha256, "eof"), "what the client received"
    c.shutdown_write()
    assert src.result(timeout=env.timeout(10)).count == 0
    assert_rss_bounded(gw, "download of %d MiB" % (BULK // MiB))


# ---- upstream failures -------------------------------------------------------------------


def test_backend_refused_closes_client(gateway, backend, client):
    gw = proxy(gateway, backend.refused())
    c = client(gw)
    end, elapsed = c.wait_end(timeout=env.timeout(1))
    assert end in ("eof", "reset"), "a refused upstream connect should close the client at once (%s after %.2fs)" % (
        end, elapsed)


def test_backend_blackhole_connect_timeout(gateway, backend, client):
    hole = backend.blackhole()
    gw = proxy(gateway, hole, connect_timeout="1s")
    c = client(gw)
    end, elapsed = c.wait_end(timeout=env.timeout(1 + 1))
    assert end in ("eof", "reset"), "connect_timeout 1s should close the client (%s after %.2fs)" % (end, elapsed)
    assert elapsed >= 0.9, "closed after %.2fs: before connect_timeout (1s) expired?" % elapsed


def test_reset_propagates(gateway, backend, client):
    """The backend resets mid-stream: the client's connection ends promptly."""
    srv = backend.reset_after(send=64 * KiB)
    gw = proxy(gateway, srv)
    c = client(gw)
    c.send(b"start\n")
    assert srv.reset_done.wait(env.timeout(5)), "the backend never got to reset"
    end, elapsed = c.wait_end(timeout=env.timeout(1))
    assert end in ("eof", "reset"), "the backend's reset should end the client's connection (%s after %.2fs)" % (
        end, elapsed)


def test_client_reset_propagates(gateway, backend, client):
    """The client resets mid-stream: the backend's connection ends promptly."""
    sink = backend.sink()
    gw = proxy(gateway, sink)
    c = client(gw)
    c.send(b"x" * 1000)
    sink.wait_received(1000)
    c.reset()
    got = sink.result(timeout=env.timeout(1))
    assert got.end in ("eof", "reset") and got.count == 1000


# ---- timeouts and limits -------------------------------------------------------------------


def test_idle_timeout(gateway, backend, client):
    echo = backend.echo()
    gw = proxy(gateway, echo, idle_timeout="1s")
    c = client(gw)
    c.send(b"ping")
    assert c.recv_exact(4) == b"ping"
    end, elapsed = c.wait_end(timeout=env.timeout(1) + 1.5)
    assert end in ("eof", "reset"), "idle_timeout 1s should close the idle pair (%s after %.2fs)" % (end, elapsed)
    assert elapsed >= 0.9, "idle pair closed after %.2fs, before idle_timeout (1s)" % elapsed
    echo.wait_idle(timeout=env.timeout(2))


def test_max_connections(gateway, backend, client):
    echo = backend.echo()
    gw = proxy(gateway, echo, max_connections=2)
    first, second = client(gw), client(gw)
    for i, c in enumerate((first, second)):
        c.send(b"hello %d" % i)
        assert c.recv_exact(7) == b"hello %d" % i
    third = client(gw)
    end, elapsed = third.wait_end(timeout=env.timeout(1))
    assert end in ("eof", "reset"), "over max_connections, the third client should be closed at once (%s after %.2fs)" % (
        end, elapsed)
    for i, c in enumerate((first, second)):
        c.send(b"still %d" % i)
        assert c.recv_exact(7) == b"still %d" % i, "a client under the limit stopped working"
    assert echo.accepted == 2, "the rejected client must not reach the backend"


def test_max_connections_frees_slot_on_close(gateway, backend, client):
    echo = backend.echo()
    gw = proxy(gateway, echo, max_connections=1)
    first = client(gw)
    first.send(b"one")
    assert first.recv_exact(3) == b"one"
    first.close()

    def admitted():
        # A rejected attempt is closed at once, so retrying until the slot is free is a poll.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(env.timeout(2))
        try:
            s.connect(gw.addr("edge"))
            s.sendall(b"two")
            return s.recv(3) == b"two"
        except (ConnectionResetError, BrokenPipeError):
            return False
        finally:
            s.close()

    wait_until(admitted, env.timeout(3), "a new client to be admitted after the first one closed")


# ---- signals -------------------------------------------------------------------------------


@pytest.mark.gw_timeout(90)
def test_sigterm_drains_transfer(gateway, backend, client, transcript):
    n = env.scaled_bytes(64 * MiB)
    src = backend.source(n, seed=41)
    gw = gateway(GW, config.tcp_proxy(src, drain_timeout="30s"))
    c = client(gw, op_timeout=env.timeout(30))
    release = threading.Event()
    stall = backend.stall(after=n // 4, release=release)
    result = {}
    reader = threading.Thread(target=lambda: result.update(got=c.drain(stall=stall)), daemon=True)
    reader.start()
    assert stall.stalled.wait(env.timeout(10)), "the download never reached the stall point"

    gw.signal(signal.SIGTERM)
    wait_until(lambda: try_connect(gw.addr("edge"), timeout=env.timeout(1)) == "refused",
               env.timeout(3), "new connects to be refused while draining")
    assert gw.alive(), "gw01 exited with a transfer still in flight (exit %s)" % gw.proc.poll()

    transcript.note("releasing the reader")
    release.set()
    reader.join(env.timeout(60))
    assert "got" in result, "the reader did not finish"
    got = result["got"]
    assert (got.count, got.sha256, got.end) == (n, src.sha256, "eof"), "the drained transfer"
    c.close()
    assert gw.wait_exit(timeout=env.timeout(10)) == 0


def test_sigterm_drain_deadline_resets_the_pair(gateway, backend, client):
    """A pair still open at drain_timeout is reset on both sides (a FIN would tell the client
    its data was complete), and the process still exits 0."""
    echo = backend.echo()
    gw = gateway(GW, config.tcp_proxy(echo, drain_timeout="1s"))
    c = client(gw)
    c.send(b"held")
    assert c.recv_exact(4) == b"held"
    gw.signal(signal.SIGTERM)
    end, elapsed = c.wait_end(timeout=env.timeout(10))
    assert end == "reset", "a pair left at the drain deadline should be reset, got %s" % end
    assert elapsed >= 0.9, "reset %.2fs after SIGTERM, before drain_timeout (1s)" % elapsed
    gw.wait_log(r"drain timeout: closing 1 connection")
    assert gw.wait_exit(timeout=env.timeout(10)) == 0


def test_sighup_is_logged_and_ignored(gateway, backend, client):
    """Before milestone 05 there is no reload: SIGHUP is logged, and the proxy carries on,
    open connections and new ones alike."""
    echo = backend.echo()
    gw = proxy(gateway, echo)
    c = client(gw)
    c.send(b"before")
    assert c.recv_exact(6) == b"before"
    gw.signal(signal.SIGHUP)
    gw.wait_log(r"SIGHUP ignored")
    assert gw.alive(), "gw01 exited on SIGHUP (code %s)" % gw.proc.poll()
    c.send(b"after")
    assert c.recv_exact(5) == b"after", "an open connection stopped working after SIGHUP"
    d = client(gw)
    d.send(b"new")
    assert d.recv_exact(3) == b"new", "a new connection failed after SIGHUP"


def test_second_sigint_exits_at_once(gateway, backend, client):
    """A first SIGINT drains like SIGTERM (here a client holds the drain open for up to 30 s);
    a second one exits at once, with code 1 (the drain did not finish)."""
    echo = backend.echo()
    gw = gateway(GW, config.tcp_proxy(echo, drain_timeout="30s"), expect_exit=1)
    c = client(gw)
    c.send(b"held")
    assert c.recv_exact(4) == b"held"
    gw.signal(signal.SIGINT)
    gw.wait_log(r"SIGINT received")
    wait_until(lambda: try_connect(gw.addr("edge"), timeout=env.timeout(1)) == "refused",
               env.timeout(3), "new connects to be refused while draining")
    assert gw.alive(), "gw01 exited on the first SIGINT with a client still connected (code %s)" % gw.proc.poll()
    gw.signal(signal.SIGINT)
    assert gw.wait_exit(timeout=env.timeout(5)) == 1, "a second SIGINT should exit at once with code 1"


def test_sigusr1_reopens_the_log_file(gateway, backend, client, tmp_path):
    """`log.file`: after logrotate's rename, SIGUSR1 makes the proxy write to a new file at
    the configured path, and the renamed one gets nothing more. The path is the one the
    harness reads the proxy's stderr from, so `ready` is still seen (the log file takes
    stderr's place)."""
    path = str(tmp_path / "gw01.stderr")
    echo = backend.echo()
    gw = gateway(GW, config.tcp_proxy(echo, log={"level": "info", "format": "plain", "file": path}))
    assert gw.stderr_path == path, "the harness's stderr file moved: %s" % gw.stderr_path

    def read(p):
        try:
            with open(p) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    os.rename(path, path + ".1")  # what logrotate does
    gw.signal(signal.SIGUSR1)
    wait_until(lambda: "SIGUSR1: log file reopened" in read(path), env.timeout(5),
               "the reopened log file to get the SIGUSR1 line",
               describe=lambda: "new: %r\nold: %r" % (read(path), read(path + ".1")[-500:]))
    c = client(gw)
    c.send(b"x")
    assert c.recv_exact(1) == b"x", "the proxy stopped working after SIGUSR1"
    old = read(path + ".1")
    assert "ready" in old and "SIGUSR1" not in old, "the renamed file: %r" % old[-500:]


# ---- command line and configuration ----------------------------------------------------------


BAD_CONFIG = """\
workers: zero
drain_timeout: 30s
log: {{level: info, format: plain}}
listeners:
  - name: edge
    address: 127.0.0.1:{port}
    protocol: tcp
    upstream: app
    colour: blue
upstreams:
  app:
    backends:
      - address: 127.0.0.1:{port2}
"""
# (line, column, a word the message should contain) of each mistake above
BAD_CONFIG_ERRORS = [(1, 10, "workers"), (9, 5, "colour")]


def bad_config_text():
    return BAD_CONFIG.format(port=1, port2=2)


def test_bad_config_reports_position(config_file, run_binary):
    path, _ = config_file(bad_config_text(), "bad.yaml")
    r = run_binary(GW, ["-c", path], timeout=env.timeout(5))
    assert r.code == 1
    lines = r.stderr.splitlines()
    for line_no, col, word in BAD_CONFIG_ERRORS:
        prefix = "%s:%d:%d:" % (path, line_no, col)
        hits = [ln for ln in lines if prefix in ln]
        assert hits, "no error reported at %s (%s)" % (prefix, word)
        assert any(word in ln for ln in hits), "the error at %s should name %r: %s" % (prefix, word, hits)


def test_check_config_flag(backend, config_file, run_binary):
    good, _ = config_file(config.tcp_proxy(backend.refused()), "good.yaml")
    bad, _ = config_file(bad_config_text(), "bad.yaml")
    ok = run_binary(GW, ["-t", "-c", good])
    assert ok.code == 0, "-t on a good config"
    ko = run_binary(GW, ["-t", "-c", bad])
    assert ko.code == 1, "-t on a bad config"
    assert "%s:1:10:" % bad in ko.stderr


def test_address_in_use(backend, config_file, run_binary):
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen(8)
        port = taken.getsockname()[1]
        cfg = config.tcp_proxy(backend.refused())
        cfg["listeners"][0]["address"] = "127.0.0.1:%d" % port
        path, _ = config_file(cfg)
        r = run_binary(GW, ["-c", path], timeout=env.timeout(5))
    finally:
        taken.close()
    assert r.code == 1
    assert "in use" in r.stderr.lower() or str(port) in r.stderr, "the message should say what is wrong"
    # and where: the listener's address in the file, as any config error
    assert re.search(re.escape(path) + r":\d+:\d+: listener 'edge': cannot bind", r.stderr), r.stderr

"""The scenarios: what each measurement does and what figure it returns. A Scenario names the
route it needs (protocol and backend kind; targets.py turns it into a listener), drives a
load generator against the port it gets (blast, connrate, wrk) under cpu_meter, and
returns {"value": ..., extras...} for one target. SCENARIOS lists them in report order.

L4 (milestone 01 on): bulk upload and download, connection rate, RSS per idle connection,
peak RSS over an upload. L7 (milestone 04 on, min_milestone = 4): wrk requests/s and
latency, 1 MiB responses, tiny chunks, the middleware chain, and the L7 variants of the two
memory scenarios. TLS (milestone 04 on, proxies only: the backend speaks no TLS): handshakes/s
full and resumed (tlsrate), small requests and 1 MiB responses over TLS keep-alive (wrk over
https), RSS per idle TLS connection (tlsrate hold). Reloads (milestone 05 on, proxies only):
l7-rps-c50's load while the proxy reloads once a second (Reload). benchmarks/README.md says
what each one measures and why.
"""
import os
import re
import http.client
import select
import signal
import subprocess
import threading
import time

from .machine import (BUILD, GIB, LOOPBACK, MIB, BenchError, child_setup, cpu_meter,
                      group_memory, pinned, reset_peak_rss, run_client)
from .targets import MAX_CONNECTIONS, RELOAD_HEADER, Direct, Ours, fresh_instance

CONN_PARALLEL = 64  # parallel connectors in the connection-rate scenario
CONN_PAYLOAD = 16
WRK_SECONDS = 2  # per wrk run (smoke: WRK_SECONDS_SMOKE); the full run must stay under 15 min
WRK_SECONDS_SMOKE = 1
WRK_TIMEOUT_S = 5  # a request without its response after this counts as a timeout error
BIG_RESPONSE = 1 << 20  # l7-1mib: bytes per response
BIG_CONNS = 8  # l7-1mib: wrk connections

IDLE_CONNS = 5000  # idle-conns scenario: connections held at once (smoke: IDLE_CONNS_SMOKE)
IDLE_CONNS_SMOKE = 500
IDLE_PAYLOAD = 16  # bytes each idle connection exchanges once (echoed) before it idles
IDLE_SETTLE_S = 0.5  # after the last one is held, before RSS is read
IDLE_MAXCONN_MARGIN = 256  # each proxy's connection cap in that scenario: N + this

TLS_SECONDS = 1  # per handshake-rate run (smoke: TLS_SECONDS_SMOKE); short for the 15 min budget
TLS_SECONDS_SMOKE = 0.5
TLS_PARALLEL = CONN_PARALLEL  # handshakes in flight, as many as connrate's connections
TLS_RESUMED_MIN = 0.95  # below this share of resumed handshakes the figure is not "resumed"
# tls-idle-conns: each connection POSTs a 16 KiB body and gets a 16 KiB response before it
# idles, so a full TLS record has gone through the proxy each way: a proxy that keeps its TLS
# buffers attached (ours: BearSSL's, about 37 KB) has then touched all of them; one that
# frees them when idle (nginx, HAProxy: SSL_MODE_RELEASE_BUFFERS) has given them back. After
# a 2-byte exchange only the touched pages would count (ours ~17 KB at 2,000 connections).
TLS_RECORD = 16384
# ... and it holds at most this many (--idle-conns N: min(N, this)): a TLS connection costs
# 13-42 KB, so 2,000 give a figure as steady as 5,000 (measured: ours 41.5 KB/conn at both)
# in half the time, each being a handshake and 32 KiB through the proxy (the 15 min budget).
TLS_IDLE_CONNS_MAX = 2000
TLS_IDLE_BODY = TLS_RECORD
TLS_IDLE_PATH = f"/size/{TLS_RECORD}"
TLS_WRK_SECONDS = 1  # wrk over https (the smoke's length already)


class Scenario:
    """One measurement kind. run() returns {"value": float, ...extras} for one target
    ("value" may be missing for direct when the figure is the proxy's own, e.g. its RSS)."""

    key = title = unit = ""
    route = ("", "", "")  # (route name, protocol, backend kind)
    higher_is_better = True  # of `value`; the report says which way each table reads
    min_milestone = 1
    extras = ()  # (key, column title, format) shown next to the median
    # True: every measurement starts a backend and an instance of the target of its own
    # (fresh_instance) instead of using the phase's long-running ones; `port` is then None.
    fresh = False
    cpu_bound = True  # False: other processes' CPU load does not move the figure (memory)

    def applies(self, target):
        return True

    def runs_at(self, ctx, workers):
        """Whether it runs in the phase of WORKERS (every phase, but see Reload)."""
        return True

    def run(self, ctx, port, target):
        raise NotImplementedError

    def est_s(self, ctx):
        """Rough wall time of one measurement (for the estimate printed at the start)."""
        return 1.0


class Bulk(Scenario):
    route = ("bulk", "tcp", "blast")
    unit = "MB/s"
    extras = (("cpu_s_per_gib", "proxy CPU s/GiB", "{:.2f}"),)

    def __init__(self, key, mode, title):
        self.key, self.mode, self.title = key, mode, title

    def est_s(self, ctx):
        return 0.2 + ctx.bulk_bytes / 1e9

    def run(self, ctx, port, target):
        nbytes = ctx.bulk_bytes
        argv = pinned(ctx.pin["load"], [BUILD / "blast", self.mode, "--connect",
                                        f"{LOOPBACK}:{port}", "--bytes", nbytes])
        # Bounded: even 20 MB/s finishes well inside this.
        with cpu_meter(ctx, target) as cpu:
            out = run_client(argv, timeout=10 + nbytes / 20e6)
        res = {"value": float(out["mbps"]), "other_load": cpu.other_load}
        if cpu.seconds is not None:
            res["cpu_s_per_gib"] = cpu.seconds / (nbytes / GIB)
        return res


class ConnRate(Scenario):
    key = "connrate"
    route = ("echo", "tcp", "echo")
    unit = "conn/s"
    extras = (("p50_us", "p50 µs", "{:.0f}"), ("p99_us", "p99 µs", "{:.0f}"),
              ("cpu_us_per_conn", "proxy CPU µs/conn", "{:.1f}"),
              ("errors", "failed connections", "{:.0f}"))

    def __init__(self):
        self.title = (f"new connections per second ({CONN_PARALLEL} parallel connectors: "
                      f"connect, send {CONN_PAYLOAD} bytes, read the echo, close)")

    def est_s(self, ctx):
        return 0.3 + ctx.conn_seconds

    def run(self, ctx, port, target):
        argv = pinned(ctx.pin["load"], [BUILD / "connrate", "client", "--connect",
                                        f"{LOOPBACK}:{port}", "--parallel", CONN_PARALLEL,
                                        "--duration", ctx.conn_seconds, "--payload",
                                        CONN_PAYLOAD])
        with cpu_meter(ctx, target) as cpu:
            out = run_client(argv, timeout=ctx.conn_seconds + 15)
        conns = int(out["conns"])
        res = {"value": float(out["rate"]), "other_load": cpu.other_load,
               "p50_us": float(out["p50_us"]),
               "p99_us": float(out["p99_us"]), "errors": int(out["errors"])}
        if cpu.seconds is not None and conns > 0:
            res["cpu_us_per_conn"] = cpu.seconds * 1e6 / conns
        return res


def mem_sum(snapshot, field):
    return sum(v[field] for v in snapshot.values())


class IdleConns(Scenario):
    """L4 (echo backend, 16 bytes echoed once) or, with HTTP, L7: each client connection
    makes one keep-alive request (GET /, a 2-byte response) through the proxy to an HTTP
    backend, then idles (the proxy then holds it alone: its upstream connection went back
    to the pool)."""
    key = "idle-conns"
    route = ("idle", "tcp", "echo")
    http = False
    unit = "B/conn"
    higher_is_better = False
    fresh = True
    cpu_bound = False
    extras = (("rss_before_mib", "proxy RSS before MiB", "{:.1f}"),
              ("rss_after_mib", "proxy RSS after MiB", "{:.1f}"),
              ("fds_per_conn", "proxy fds/conn", "{:.2f}"),
              ("backend_b_per_conn", "backend B/conn", "{:,.0f}"),
              ("open_s", "time to open all s", "{:.2f}"))

    tls = False

    def __init__(self, http=False, tls=False):
        self.title = ("RSS per idle connection (N connections, each echoed "
                      f"{IDLE_PAYLOAD} bytes once, then held idle)")
        if http:
            self.key, self.route, self.http, self.min_milestone = (
                "l7-idle-conns", ("idle", "http", "http"), True, 4)
            self.title = ("RSS per idle keep-alive HTTP client connection (N connections, "
                          "each made one request, then held idle)")
        if tls:  # tlsrate instead of connrate; every connection resumes one session
            self.key, self.route, self.http, self.tls, self.min_milestone = (
                "tls-idle-conns", ("idle", "https", "http"), True, True, 4)
            self.title = ("RSS per idle keep-alive TLS client connection (N connections, "
                          "each made one resumed TLS handshake and one request with a 16 KiB "
                          "body and a 16 KiB response, then held idle)")

    def applies(self, target):
        return target.tls or not self.tls

    def count(self, ctx):
        return min(ctx.idle_conns, TLS_IDLE_CONNS_MAX) if self.tls else ctx.idle_conns

    def est_s(self, ctx):
        # TLS: a handshake and 32 KiB each: 2,000 in 1.9-3.6 s (smoke, busy machine)
        return 0.7 + self.count(ctx) / (1000 if self.tls else 5000)

    def run(self, ctx, port, target):
        n = self.count(ctx)
        _, proto, kind = self.route
        # connrate (plain) or tlsrate (TLS: --http implied; --reuse: every connection
        # resumes the session of its first, so the proxy's session cache grows by one entry,
        # not N, and the figure is what a connection holds, not what the cache does).
        tool, flags = ((BUILD / "tlsrate", ["--reuse"]) if self.tls else
                       (BUILD / "connrate", ["--http"] if self.http else []))
        with fresh_instance(ctx, target, kind, n + IDLE_MAXCONN_MARGIN, proto) as inst:
            t, tport = inst.target, inst.port
            # Warm-up: 64 connections at a time for 0.2 s (as many in flight as while the
            # N are opened), so what is measured below is what stays attached to a
            # connection once it is idle, not the proxy's first allocations.
            run_client(pinned(ctx.pin["load"], [
                tool, "client", "--connect", f"{LOOPBACK}:{tport}",
                "--parallel", CONN_PARALLEL, "--duration", 0.2] + flags +
                (["--http"] if self.tls else [])), timeout=20)
            time.sleep(0.2)
            before, bk_before = group_memory(t.pgid()), group_memory(inst.backend.pid)
            hold_s = 30 + n / 500  # bounds each phase of the client (open, then hold)
            payload = (["--path", TLS_IDLE_PATH, "--body", TLS_IDLE_BODY] if self.tls
                       else ["--payload", IDLE_PAYLOAD])
            argv = [str(a) for a in pinned(ctx.pin["load"], [
                tool, "hold", "--connect", f"{LOOPBACK}:{tport}", "--count", n,
                "--parallel", CONN_PARALLEL, "--duration", hold_s] + payload + flags)]
            with cpu_meter(ctx, t, inst.backend_pgids) as cpu:
                p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     start_new_session=True, preexec_fn=child_setup)
                try:
                    ready, _, _ = select.select([p.stdout], [], [], hold_s + 10)
                    first = p.stdout.readline() if ready else ""
                    kv = dict(x.split("=", 1) for x in first.split() if "=" in x)
                    if "held" not in kv:
                        raise BenchError(f"{tool.name} hold: no `held=` line within "
                                         f"{hold_s + 10:.0f} s")
                    if int(kv["held"]) != n:
                        raise BenchError(f"only {kv['held']} of {n} connections held "
                                         f"({kv.get('errors')} failed)")
                    time.sleep(IDLE_SETTLE_S)
                    after, bk_after = group_memory(t.pgid()), group_memory(inst.backend.pid)
                    # Closing its stdin ends the hold; it then reports connections that
                    # were closed under it meanwhile (they would not have been idle ones).
                    rest, err = p.communicate(timeout=15)
                finally:
                    if p.returncode is None:
                        try:
                            os.killpg(p.pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                        p.communicate()
            m = re.search(r"dropped=(\d+)", rest)
            if p.returncode != 0 or not m:
                raise BenchError(f"{tool.name} hold: {(err.strip() or rest.strip() or 'failed')}")
            if int(m.group(1)):
                raise BenchError(f"{m.group(1)} of {n} idle connections were closed while held")
        res = {"other_load": cpu.other_load, "open_s": float(kv["seconds"]),
               "backend_b_per_conn": (mem_sum(bk_after, 0) - mem_sum(bk_before, 0)) / n}
        if before:  # a proxy (direct has none: its row has the backend's figure only)
            res.update(value=(mem_sum(after, 0) - mem_sum(before, 0)) / n,
                       rss_before_mib=mem_sum(before, 0) / MIB,
                       rss_after_mib=mem_sum(after, 0) / MIB,
                       fds_per_conn=(mem_sum(after, 2) - mem_sum(before, 2)) / n)
        return res


class UploadPeakRss(Scenario):
    """L4 (blast send to the sink) or, with HTTP, L7: one POST with a Content-Length body
    through the proxy to the HTTP backend, which discards it and answers after the last
    byte."""
    key = "upload-rss"
    route = ("upload", "tcp", "blast")
    http = False
    unit = "KiB"
    higher_is_better = False
    fresh = True
    cpu_bound = False
    extras = (("rss_before_mib", "proxy RSS before MiB", "{:.1f}"),
              ("mbps", "upload MB/s", "{:,.0f}"))

    def __init__(self, http=False):
        self.title = "peak RSS increase of the proxy over one bulk upload (client → proxy → sink)"
        if http:
            self.key, self.route, self.http, self.min_milestone = (
                "l7-upload-rss", ("upload", "http", "http"), True, 4)
            self.title = ("peak RSS increase of the proxy over one HTTP upload (POST, "
                          "Content-Length body, client → proxy → HTTP backend)")

    def applies(self, target):
        return not isinstance(target, Direct)  # no proxy, no proxy RSS

    def est_s(self, ctx):
        return 0.5 + ctx.bulk_bytes / 1e9

    def run(self, ctx, port, target):
        nbytes = ctx.bulk_bytes
        _, proto, kind = self.route
        with fresh_instance(ctx, target, kind, MAX_CONNECTIONS, proto) as inst:
            t = inst.target
            reset_peak_rss(t.pgid())
            before = group_memory(t.pgid())
            mode = "post" if self.http else "send"
            argv = pinned(ctx.pin["load"], [BUILD / "blast", mode, "--connect",
                                            f"{LOOPBACK}:{inst.port}", "--bytes", nbytes])
            with cpu_meter(ctx, t, inst.backend_pgids) as cpu:
                out = run_client(argv, timeout=10 + nbytes / 20e6)
            after = group_memory(t.pgid())
        # Per process: its peak during the upload minus its RSS before (a process that
        # appeared meanwhile counts whole); summed over the proxy's processes.
        peak = sum(hwm - before.get(pid, (0, 0, 0))[0] for pid, (_, hwm, _) in after.items())
        return {"value": peak / 1024, "other_load": cpu.other_load,
                "rss_before_mib": mem_sum(before, 0) / MIB, "mbps": float(out["mbps"])}


# ---- L7 scenarios (milestone 04): wrk ---------------------------------------------------

# wrk's --latency prints no p99.9: this script's done() prints one parseable line instead.
# main() writes it (write_wrk_script) next to the load tools before the run.
WRK_SCRIPT = BUILD / "wrkstats.lua"
WRK_LUA = """-- generated by benchmarks/bench.py: one key=value line with wrk's figures
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wrkstats requests=%d duration_us=%d bytes=%d err_connect=%d "
    .. "err_read=%d err_write=%d err_status=%d err_timeout=%d p50_us=%d p99_us=%d "
    .. "p999_us=%d max_us=%d\\n", summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""


def write_wrk_script():
    WRK_SCRIPT.write_text(WRK_LUA)


def run_wrk(ctx, port, path, conns, tls=False, seconds=None, count_errors=False):
    """One wrk run (WRK_SECONDS; over TLS: TLS_WRK_SECONDS; or SECONDS) with CONNS keep-alive
    connections on GET PATH, pinned like every load; one wrk thread per load CPU (at most one
    per connection). Returns its figures; a run with non-2xx responses, or with more than 1 %
    of requests failing, is a failure, unless COUNT_ERRORS (the reload scenario, where the
    failures are the figure): then they are only counted."""
    nload = len(ctx.pin["load"].split(","))
    secs = min(ctx.wrk_seconds, TLS_WRK_SECONDS) if tls else seconds or ctx.wrk_seconds
    argv = pinned(ctx.pin["load"], [
        "wrk", "-t", min(conns, nload), "-c", conns, "-d", f"{secs}s",
        "--timeout", f"{WRK_TIMEOUT_S}s", "-s", WRK_SCRIPT,
        f"{'https' if tls else 'http'}://{LOOPBACK}:{port}{path}"])
    out = run_client(argv, timeout=secs + WRK_TIMEOUT_S + 15)
    if "requests" not in out:
        raise BenchError("wrk printed no figures")
    w = {k: int(v) for k, v in out.items() if v.lstrip("-").isdigit()}
    errors = sum(w[k] for k in w if k.startswith("err_"))
    if w["requests"] == 0:
        raise BenchError("wrk: no request completed")
    if not count_errors and (w["err_status"] or errors > w["requests"] / 100):
        raise BenchError(f"wrk: {w['requests']} requests, errors: " + ", ".join(
            f"{k[4:]} {w[k]}" for k in sorted(w) if k.startswith("err_") and w[k]))
    secs = w["duration_us"] / 1e6
    return {"rps": w["requests"] / secs, "mbps": w["bytes"] / secs / 1e6, "requests":
            w["requests"], "errors": errors, "p50_us": w["p50_us"], "p99_us": w["p99_us"],
            "p999_us": w["p999_us"], "max_us": w["max_us"], "bytes": w["bytes"],
            "err": {k[4:]: w[k] for k in w if k.startswith("err_")}}


class Wrk(Scenario):
    """requests/s and latency of GET PATH over CONNS keep-alive connections (wrk); with
    TLS, over https to the TLS route (proxies only)."""
    route = ("http", "http", "http")
    min_milestone = 4
    tls = False
    unit = "req/s"
    extras = (("p50_us", "p50 µs", "{:,.0f}"), ("p99_us", "p99 µs", "{:,.0f}"),
              ("p999_us", "p99.9 µs", "{:,.0f}"),
              ("cpu_us_per_req", "proxy CPU µs/req", "{:.1f}"), ("errors", "errors", "{:.0f}"))

    def __init__(self, key, conns, path, title, tls=False):
        self.key, self.conns, self.path, self.title = key, conns, path, title
        if tls:
            self.tls, self.route = True, ("tls", "https", "http")

    def applies(self, target):
        return target.tls or not self.tls

    def est_s(self, ctx):
        return 0.15 + (min(ctx.wrk_seconds, TLS_WRK_SECONDS) if self.tls else ctx.wrk_seconds)

    def run(self, ctx, port, target):
        with cpu_meter(ctx, target) as cpu:
            w = run_wrk(ctx, port, self.path, self.conns, self.tls)
        res = {"value": w["rps"], "other_load": cpu.other_load, "errors": w["errors"],
               "p50_us": w["p50_us"], "p99_us": w["p99_us"], "p999_us": w["p999_us"]}
        if cpu.seconds is not None:
            res["cpu_us_per_req"] = cpu.seconds * 1e6 / w["requests"]
        return res


class WrkBig(Scenario):
    """Throughput of 1 MiB responses (GET /size/1048576) over BIG_CONNS connections; with
    TLS, over https to the TLS route (proxies only)."""
    key = "l7-1mib"
    route = ("http", "http", "http")
    min_milestone = 4
    tls = False
    unit = "MB/s"
    extras = (("rps", "req/s", "{:,.0f}"), ("p99_us", "p99 µs", "{:,.0f}"),
              ("cpu_s_per_gib", "proxy CPU s/GiB", "{:.2f}"), ("errors", "errors", "{:.0f}"))

    def __init__(self, tls=False):
        self.title = (f"1 MiB responses: throughput over {BIG_CONNS} keep-alive connections "
                      "(wrk)")
        if tls:
            self.key, self.tls, self.route = "tls-1mib", True, ("tls", "https", "http")
            self.title = (f"1 MiB responses over TLS: throughput over {BIG_CONNS} keep-alive "
                          "TLS connections (wrk over https)")

    def applies(self, target):
        return target.tls or not self.tls

    def est_s(self, ctx):
        return 0.15 + (min(ctx.wrk_seconds, TLS_WRK_SECONDS) if self.tls else ctx.wrk_seconds)

    def run(self, ctx, port, target):
        with cpu_meter(ctx, target) as cpu:
            w = run_wrk(ctx, port, f"/size/{BIG_RESPONSE}", BIG_CONNS, self.tls)
        if w["bytes"] < w["requests"] * BIG_RESPONSE:
            raise BenchError(f"wrk: {w['bytes']} bytes for {w['requests']} responses of "
                             f"{BIG_RESPONSE}")
        res = {"value": w["mbps"], "other_load": cpu.other_load, "rps": w["rps"],
               "p99_us": w["p99_us"], "errors": w["errors"]}
        if cpu.seconds is not None:
            res["cpu_s_per_gib"] = cpu.seconds / (w["bytes"] / GIB)
        return res


TINY_CHUNK, BIG_CHUNK = 1, 8192  # l7-tiny-chunks: the two chunk sizes compared
# Payload per upload (smoke: 1/16 of each). Sized so each upload's proxy CPU is many clock
# ticks (/proc counts CPU in 10 ms ticks) and each takes well under a few seconds.
TINY_CHUNK_BYTES = 16 * MIB
BIG_CHUNK_BYTES = 256 * MIB
# ... and each upload stops sending (ends its chunked body) after this long, so a proxy that
# is very slow per chunk (a write per chunk: ~100 times slower) still gives a figure, per
# byte actually sent, in bounded time; what is already in the socket buffers then drains.
CHUNK_MAX_S = 4


class TinyChunks(Scenario):
    """The proxy's CPU per byte of a chunked request body in 1-byte chunks against 8 KiB
    chunks: one `POST /upload` of each (blast post --chunk) through the http route, each
    under its own cpu_meter. A proxy that makes a system call (or a write) per parsed chunk
    pays it per payload byte at chunk 1."""
    key = "l7-tiny-chunks"
    route = ("http", "http", "http")
    min_milestone = 4
    unit = "CPU s/GiB"
    higher_is_better = False
    extras = (("cpu_s_per_gib_big", f"chunk {BIG_CHUNK}: CPU s/GiB", "{:.2f}"),
              ("chunk_ratio", f"chunk {TINY_CHUNK} ÷ chunk {BIG_CHUNK} ×", "{:,.0f}"),
              ("mbps_tiny", f"chunk {TINY_CHUNK}: MB/s", "{:,.2f}"),
              ("mbps_big", f"chunk {BIG_CHUNK}: MB/s", "{:,.0f}"))

    def __init__(self):
        self.title = (f"proxy CPU per GiB of a chunked request body in {TINY_CHUNK}-byte "
                      f"chunks (vs {BIG_CHUNK}-byte chunks), one upload each")

    def sizes(self, ctx):
        div = 16 if ctx.smoke else 1
        return ((TINY_CHUNK, TINY_CHUNK_BYTES // div, "tiny"),
                (BIG_CHUNK, BIG_CHUNK_BYTES // div, "big"))

    def est_s(self, ctx):
        # The mean over the four targets (wall_s in the json): at chunk 1 ours took about
        # 2 s, nginx 1.4, HAProxy and direct about 0.6 (both uploads).
        return 0.2 + sum(n / rate for (_, n, _), rate in zip(self.sizes(ctx), (25e6, 800e6)))

    def run(self, ctx, port, target):
        res = {"other_load": 0.0}
        for chunk, nbytes, tag in self.sizes(ctx):
            argv = pinned(ctx.pin["load"], [BUILD / "blast", "post", "--connect",
                                            f"{LOOPBACK}:{port}", "--bytes", nbytes,
                                            "--chunk", chunk, "--seconds", CHUNK_MAX_S])
            with cpu_meter(ctx, target) as cpu:
                out = run_client(argv, timeout=2 * CHUNK_MAX_S + 15)
            sent = int(out["payload"])  # NBYTES unless cut at CHUNK_MAX_S
            if not 0 < sent <= nbytes:
                raise BenchError(f"blast post: {sent} payload bytes, {nbytes} asked")
            res[f"mbps_{tag}"], res[f"payload_{tag}"] = float(out["mbps"]), sent
            res["other_load"] = max(res["other_load"], cpu.other_load)
            if cpu.seconds is not None:
                res[f"cpu_s_per_gib_{tag}"] = cpu.seconds / (sent / GIB)
        if "cpu_s_per_gib_tiny" in res:  # a proxy (direct: the load's own speed only)
            res["value"] = res.pop("cpu_s_per_gib_tiny")
            if res["cpu_s_per_gib_big"] > 0:
                res["chunk_ratio"] = res["value"] / res["cpu_s_per_gib_big"]
        return res


CHAIN_CONNS = 50


class Chain(Scenario):
    """Ours only: the realistic middleware chain (request_id, forwarded, rate_limit with a
    limit nothing reaches, access_log to a file) against the plain route, measured back to
    back in the same measurement (order alternating) with the same wrk load."""
    key = "l7-chain"
    route = ("chain", "http-chain", "http")
    min_milestone = 4
    unit = "req/s"
    extras = (("plain_rps", "plain route req/s", "{:,.0f}"),
              ("chain_ratio", "chain ÷ plain ×", "{:.2f}"),
              ("p99_us", "p99 µs", "{:,.0f}"), ("plain_p99_us", "plain p99 µs", "{:,.0f}"),
              ("cpu_us_per_req", "proxy CPU µs/req", "{:.1f}"))

    def __init__(self):
        self.title = (f"middleware chain (request id, forwarded, rate limit, access log to a "
                      f"file) vs the plain route, {CHAIN_CONNS} connections (ours only)")

    def applies(self, target):
        return isinstance(target, Ours)

    def est_s(self, ctx):
        return 0.2 + 2 * ctx.wrk_seconds

    def run(self, ctx, port, target):
        plain_port = ctx.ports[target.name]["http"]
        ctx.chain_flip = not getattr(ctx, "chain_flip", False)
        res = {}
        for which in (("chain", "plain") if ctx.chain_flip else ("plain", "chain")):
            with cpu_meter(ctx, target) as cpu:
                w = run_wrk(ctx, port if which == "chain" else plain_port, "/", CHAIN_CONNS)
            if which == "chain":
                res.update(value=w["rps"], p99_us=w["p99_us"], other_load=cpu.other_load)
                if cpu.seconds is not None:
                    res["cpu_us_per_req"] = cpu.seconds * 1e6 / w["requests"]
            else:
                res.update(plain_rps=w["rps"], plain_p99_us=w["p99_us"])
        res["chain_ratio"] = res["value"] / res["plain_rps"]
        return res


RELOAD_CONNS = 50  # l7-rps-reload: the load of l7-rps-c50 (RELOAD_PLAIN), its plain figure
RELOAD_PLAIN = "l7-rps-c50"
# Its wrk run under reloads (smoke: RELOAD_SECONDS_SMOKE), one reload a second: 2 reloads per
# measurement, 6 per proxy and worker count in 3 rounds. 3 s would put the full run's
# estimate over its 15 minutes (issue 7): 15.1 against 14.8.
RELOAD_SECONDS = 2
RELOAD_SECONDS_SMOKE = 1
RELOAD_INTERVAL_S = 1.0
RELOAD_CHECK_S = 5  # after the run, the last reload must serve within this


def reload_generation(port):
    """RELOAD_HEADER's value in a GET / on a new connection (None if absent)."""
    c = http.client.HTTPConnection(LOOPBACK, port, timeout=2)
    try:
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        return r.getheader(RELOAD_HEADER)
    finally:
        c.close()


class Reload(Scenario):
    """requests/s and failed requests of l7-rps-c50's load while the proxy reloads its
    configuration once a second; the report sets them beside l7-rps-c50's figures from the
    same run (the plain figure: a run without reloads inside each measurement would put the
    full run over its 15 minutes). Each proxy reloads its own way (Target.reload: ours
    SIGHUP, nginx `nginx -s reload`, HAProxy SIGUSR2 to its master in master-worker mode),
    and each reload changes a response header's value (RELOAD_HEADER), so every reload
    builds a new configuration;
    after the run a GET must show the last value (the reloads really happened). A fresh
    instance per measurement: the reloads leave old workers draining and must not reach the
    other scenarios' instances, and HAProxy runs in master-worker mode here only."""
    key = "l7-rps-reload"
    # The smoke measures it on every target (not one per phase, as the others): what it
    # proves is that each proxy's reload driver works.
    smoke_every_target = True
    route = ("reload", "http-reload", "http")
    min_milestone = 5
    unit = "req/s"
    fresh = True
    extras = (("failed", "failed requests", "{:,.0f}"),
              ("failed_pct", "failed %", "{:.3f}"),
              ("p50_us", "p50 µs", "{:,.0f}"), ("p99_us", "p99 µs", "{:,.0f}"),
              ("max_us", "max µs", "{:,.0f}"), ("reloads", "reloads", "{:.0f}"),
              ("cpu_us_per_req", "proxy CPU µs/req", "{:.1f}"))

    def __init__(self):
        self.title = (f"small responses (2 bytes), {RELOAD_CONNS} keep-alive connections (wrk), "
                      f"while the proxy reloads its configuration every {RELOAD_INTERVAL_S:g} s, "
                      "vs no reload")

    def applies(self, target):
        return not isinstance(target, Direct)  # no proxy, nothing to reload

    def runs_at(self, ctx, workers):
        # Smoke: in the first phase only (workers 1 in `make bench-smoke`): one path through
        # each proxy's reload is the proof, and a second phase would add 4 s to `make test`.
        return not ctx.smoke or workers == ctx.workers_list[0]

    def seconds(self, ctx):
        return RELOAD_SECONDS_SMOKE if ctx.smoke else RELOAD_SECONDS

    def est_s(self, ctx):
        # a fresh instance, its warm-up (not in smoke), the run, the check (smoke: 1.3-1.5 s
        # in all, measured)
        return 0.35 + (0 if ctx.smoke else 0.3) + self.seconds(ctx)

    def run(self, ctx, port, target):
        secs = self.seconds(ctx)
        with fresh_instance(ctx, target, "http", MAX_CONNECTIONS, "http-reload") as inst:
            t, tport = inst.target, inst.port
            # A warm-up, since the instance is new (l7-rps-c50's has served for a while):
            # 0.2 s of requests on new connections. Not in smoke, which proves paths only.
            if not ctx.smoke:
                run_client(pinned(ctx.pin["load"], [
                    BUILD / "connrate", "client", "--connect", f"{LOOPBACK}:{tport}",
                    "--parallel", 2, "--duration", 0.2, "--http"]), timeout=10)
            # The reloads, from a thread while wrk runs: the k-th at (k + 0.5) intervals
            # after wrk starts, so a run of S seconds holds S reloads.
            stop, done, errs = threading.Event(), [0], []

            def drive(t0):
                try:
                    for k in range(int(secs / RELOAD_INTERVAL_S)):
                        if stop.wait(max(0.0, t0 + (k + 0.5) * RELOAD_INTERVAL_S
                                         - time.monotonic())):
                            return
                        t.reload(ctx, t.gen + 1)
                        done[0] += 1
                except Exception as e:  # reported by the measurement, below
                    errs.append(e)

            with cpu_meter(ctx, t, inst.backend_pgids) as cpu:
                th = threading.Thread(target=drive, args=(time.monotonic(),), daemon=True)
                th.start()
                try:
                    w = run_wrk(ctx, tport, "/", RELOAD_CONNS, seconds=secs, count_errors=True)
                finally:
                    stop.set()
                    th.join()
            if errs:
                raise BenchError(f"reload {done[0] + 1}: {errs[0]}")
            # The last reload serves (bounded): each one really was applied, or the header
            # would still show an older value.
            deadline, got = time.monotonic() + RELOAD_CHECK_S, None
            while time.monotonic() < deadline:
                try:
                    got = reload_generation(tport)
                except OSError as e:
                    got = f"({e})"
                if got == str(t.gen):
                    break
                time.sleep(0.02)
            else:
                raise BenchError(f"{RELOAD_HEADER} still {got!r} {RELOAD_CHECK_S} s after "
                                 f"reload {done[0]} (generation {t.gen})")
        failed = sum(w["err"].values())
        res = {"value": w["rps"], "p50_us": w["p50_us"], "p99_us": w["p99_us"],
               "max_us": w["max_us"], "failed": failed, "err": w["err"], "reloads": done[0],
               # wrk counts a response with status >= 400 in requests too
               "failed_pct": 100 * failed / (w["requests"] + failed - w["err"]["status"]),
               "other_load": cpu.other_load}
        if cpu.seconds is not None:
            res["cpu_us_per_req"] = cpu.seconds * 1e6 / w["requests"]
        return res


class TlsHandshake(Scenario):
    """New TLS connections per second through the TLS route (tlsrate client): each one
    connects, makes a TLS 1.2 handshake, sends close_notify and waits for the proxy to close;
    no request, so no upstream work. Full (no session offered) or resumed (each of the
    TLS_PARALLEL slots offers the session of its own first handshake, made before the
    clock starts: a resumption by session id from the proxy's shared cache)."""
    min_milestone = 4
    route = ("tls", "https", "http")
    unit = "hs/s"
    extras = (("p50_us", "p50 µs", "{:,.0f}"), ("p99_us", "p99 µs", "{:,.0f}"),
              ("cpu_us_per_hs", "proxy CPU µs/handshake", "{:.1f}"),
              ("resumed_pct", "resumed %", "{:.1f}"), ("errors", "errors", "{:.0f}"))

    def __init__(self, reuse):
        self.reuse = reuse
        self.key = "tls-handshake-resumed" if reuse else "tls-handshake-full"
        self.title = (f"TLS handshakes per second, {'resumed (session id)' if reuse else 'full'}"
                      f" ({TLS_PARALLEL} in flight: connect, handshake, close_notify, close)")

    def applies(self, target):
        return target.tls

    def est_s(self, ctx):
        # smoke (0.5 s runs): 0.57-0.61 s full, 0.62-0.72 s resumed (its priming)
        return 0.12 + ctx.tls_seconds + (0.1 if self.reuse else 0)

    def run(self, ctx, port, target):
        argv = pinned(ctx.pin["load"], [BUILD / "tlsrate", "client", "--connect",
                                        f"{LOOPBACK}:{port}", "--parallel", TLS_PARALLEL,
                                        "--duration", ctx.tls_seconds]
                      + (["--reuse"] if self.reuse else []))
        with cpu_meter(ctx, target) as cpu:
            out = run_client(argv, timeout=ctx.tls_seconds + 25)
        conns, resumed = int(out["conns"]), int(out["resumed"])
        share = resumed / conns
        if self.reuse and share < TLS_RESUMED_MIN:
            raise BenchError(f"only {resumed} of {conns} handshakes resumed ({100 * share:.0f} %):"
                             " the proxy's session cache is missing them")
        if not self.reuse and resumed:
            raise BenchError(f"{resumed} of {conns} handshakes resumed without a session offered")
        res = {"value": float(out["rate"]), "other_load": cpu.other_load,
               "p50_us": float(out["p50_us"]), "p99_us": float(out["p99_us"]),
               "resumed_pct": 100 * share, "errors": int(out["errors"])}
        if cpu.seconds is not None:
            res["cpu_us_per_hs"] = cpu.seconds * 1e6 / conns
        return res


SCENARIOS = [
    Bulk("bulk-upload", "send", "bulk upload: client → proxy → sink backend"),
    Bulk("bulk-download", "recv", "bulk download: source backend → proxy → client"),
    ConnRate(),
    IdleConns(),
    UploadPeakRss(),
    # L7 (milestone 04 on): wrk through an http route to httpback, and the L7 variants of
    # the memory scenarios.
    Wrk("l7-rps-c1", 1, "/", "small responses (2 bytes), 1 keep-alive connection (wrk)"),
    Wrk("l7-rps-c50", 50, "/", "small responses (2 bytes), 50 keep-alive connections (wrk)"),
    Wrk("l7-rps-c500", 500, "/", "small responses (2 bytes), 500 keep-alive connections "
        "(wrk)"),
    WrkBig(),
    TinyChunks(),
    Chain(),
    IdleConns(http=True),
    UploadPeakRss(http=True),
    # TLS (milestone 04 on; the proxies only): TLS terminated in front of the http route.
    TlsHandshake(reuse=False),
    TlsHandshake(reuse=True),
    Wrk("tls-rps-c50", 50, "/", "small responses (2 bytes) over TLS, 50 keep-alive TLS "
        "connections (wrk over https)", tls=True),
    WrkBig(tls=True),
    IdleConns(tls=True),
    # Reloads (milestone 05 on; the proxies only): l7-rps-c50's load while reloading.
    Reload(),
]
L7_RPS = ("l7-rps-c1", "l7-rps-c50", "l7-rps-c500")
TLS_KEYS = ("tls-handshake-full", "tls-handshake-resumed", "tls-rps-c50", "tls-1mib",
            "tls-idle-conns")

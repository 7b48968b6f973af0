#!/usr/bin/python3
"""Side-by-side benchmark: our proxy against HAProxy, nginx and no proxy at all (direct).

    benchmarks/bench.py [--milestone NN] [--smoke] [--workers 1,2] [--rounds N] [--name NAME]
                        [--profile] [--idle-conns N] [--scenarios a,b] [--out DIR]

Everything runs on loopback (127.0.0.0/8) on ports picked free. For each worker count it
starts, per target, a backend of our own load tools (benchmarks/tools/, built here into
build/bench/) and the target in front of it, each proxy with a generated config in a temp
dir; then runs every scenario on every target, rounds interleaved across targets (the order
rotates each round), and writes benchmarks/results/<name>.md with tables, ratios and PNG
plots (gnuplot), plus latest.md and <name>.json (every sample). --smoke writes to
build/bench/smoke/ instead and only proves the harness works: a target that fails to start
or a scenario with no figure exits non-zero; speed is never asserted. See
benchmarks/README.md for what each scenario measures and the CPU pinning.

The memory scenarios (idle-conns: RSS per idle connection; upload-rss: peak RSS over one
upload) read /proc/PID/status of every process of the proxy and run each measurement on a
freshly started instance of the target (Scenario.fresh, fresh_instance()).

It installs nothing: `scripts/deps.sh bench` does (the Makefile runs it first), and the
release binaries come from `make V=release bins`.

The L7 scenarios (milestone 04 on: min_milestone = 4): a scenario names the route it needs
(a route is a protocol, "tcp", "http" or "http-chain", plus a backend kind); each target
turns routes into listeners in its config (ours: `protocol: http` listeners with one route
and an upstream keep-alive pool; nginx: an http block with upstream keepalive; HAProxy:
mode http with http-reuse always). The HTTP backend is tools/httpback.c; the speed
scenarios drive wrk with a Lua done() callback (WRK_LUA) that prints p50/p99/p99.9; the
L7 memory scenarios reuse IdleConns/UploadPeakRss with `connrate hold --http` and
`blast post`; l7-tiny-chunks (TinyChunks) uploads chunked bodies (`blast post --chunk`) in
1-byte and 8 KiB chunks and reports the proxy's CPU per GiB of payload. The full run stays under 15 minutes on a quiet machine (issue 7): the
durations are chosen for that, and the script prints its estimate (Scenario.est_s).
"""
import argparse
import ctypes
import datetime
import copy
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS_SRC = ROOT / "benchmarks" / "tools"
BUILD = ROOT / "build" / "bench"
RESULTS = ROOT / "benchmarks" / "results"
NGINX_STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
LOOPBACK = "127.0.0.1"

START_TIMEOUT_S = 10  # a target or backend not ready by then has failed to start
STOP_TIMEOUT_S = 5  # SIGTERM, then SIGKILL after this
CONNECT_TIMEOUT_S = 5  # the same connect and idle timeouts for every proxy
IDLE_TIMEOUT_S = 300
MAX_CONNECTIONS = 4096
CONN_PARALLEL = 64  # parallel connectors in the connection-rate scenario
CONN_PAYLOAD = 16
OTHER_LOAD_WARN = 0.1  # CPUs used by processes not ours: flag the figure as noisy
OTHER_LOAD_RETRY = 0.25  # ... and measure once more (within RETRY_BUDGET per run)
RETRY_BUDGET = 12
QUIET_WAIT_MAX_S = 15  # per measurement: wait this long at most for other load to settle
QUIET_WAIT_BUDGET_S = 300  # in all, so a busy machine cannot stretch the run past its budget
RUN_LIMIT_S = 15 * 60  # issue 7: a full run stays under 15 minutes, waiting included, so the
RUN_MARGIN_S = 30  # waiting budget shrinks to what the estimate leaves under the limit
WARMUP_MAX_S = 20  # TIME_WAIT warm-up before the rounds (see warm_up)

# L7 (milestone 04): the same timeouts and limits for every proxy's http listener.
HEAD_TIMEOUT_S = 10  # the whole request head
BODY_TIMEOUT_S = 30  # silence while a request body streams
RESPONSE_TIMEOUT_S = 30  # the upstream's response (nginx: between two reads)
KEEPALIVE_TIMEOUT_S = IDLE_TIMEOUT_S  # idle client connection between requests
UPSTREAM_KEEPALIVE = 64  # idle upstream connections kept per worker (nginx `keepalive 64`)
HTTP_BUFFER = "16k"  # one 16 KiB buffer per direction (nginx proxy_buffer_size, HAProxy bufsize)
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
NOFILE_HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
if NOFILE_HARD == resource.RLIM_INFINITY:
    NOFILE_HARD = 1 << 20

MIB = 1 << 20
GIB = 1 << 30


def log(msg):
    print(msg, flush=True)


class BenchError(Exception):
    """A failure that ends the run (a target that does not start, a missing tool)."""


# ---- processes -----------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _child_setup():
    # If this script dies without cleaning up (SIGKILL), the kernel kills the child too.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # Thousands of idle connections (the idle-conns scenario) need descriptors: the soft
    # open-files limit goes up to the hard one (20000 here) in every child.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass


def pinned(cpus, argv):
    return ["taskset", "-c", cpus] + [str(a) for a in argv] if cpus else [str(a) for a in argv]


class Procs:
    """Every long-lived process this run started, each in its own process group, so that
    stopping one also stops the workers it forked (nginx). Nothing else is ever killed."""

    def __init__(self):
        self.live = []

    def start(self, name, argv, log_path, pipe_stdout=False):
        out = open(log_path, "ab")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE if pipe_stdout else out, stderr=out,
                                 start_new_session=True, preexec_fn=_child_setup)
        finally:
            out.close()
        p.bench_name = name
        p.bench_log = log_path
        self.live.append(p)
        return p

    def stop(self, p):
        if p not in self.live:
            return
        self.live.remove(p)
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
            try:
                os.killpg(p.pid, sig)  # the group we created for it (start_new_session)
            except ProcessLookupError:
                break
            try:
                p.wait(timeout=wait)
                # The leader is gone; make sure its forked workers are too.
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                break
            except subprocess.TimeoutExpired:
                continue
        if p.stdout is not None:
            p.stdout.close()

    def stop_all(self):
        for p in list(reversed(self.live)):
            self.stop(p)


def run_client(argv, timeout):
    """Runs a load-generator client to completion (bounded by TIMEOUT); returns its
    key=value output line as a dict, or raises BenchError with its stderr."""
    argv = [str(a) for a in argv]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=_child_setup)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        tool = next((Path(x).name + " " + argv[i + 1] for i, x in enumerate(argv)
                     if x.startswith(str(BUILD))), argv[0])
        raise BenchError(f"{tool} timed out after {timeout:.0f} s")
    except BaseException:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        raise
    if p.returncode != 0:
        raise BenchError((err.strip() or out.strip() or f"exit {p.returncode}").splitlines()[-1])
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def group_cpu_seconds(pgids):
    """{pgid: user + system CPU seconds of every process in that process group} (a proxy
    and the workers it forked, a backend). Read from /proc before and after a measurement."""
    tick = os.sysconf("SC_CLK_TCK")
    total = dict.fromkeys(pgids, 0)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
        if int(fields[2]) in total:
            total[int(fields[2])] += int(fields[11]) + int(fields[12])
    return {g: t / tick for g, t in total.items()}


def group_memory(pgid):
    """{pid: (VmRSS, VmHWM, open descriptors)} for every process in process group PGID (a
    proxy and the workers it forked), sizes in bytes. Read before and after a measurement."""
    out = {}
    if pgid is None:
        return out
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[2]) != pgid:
                    continue
            rss = hwm = 0
            with open(f"/proc/{d}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1]) * 1024
                    elif line.startswith("VmHWM:"):
                        hwm = int(line.split()[1]) * 1024
            out[int(d)] = (rss, hwm, len(os.listdir(f"/proc/{d}/fd")))
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
    return out


def reset_peak_rss(pgid):
    """Resets VmHWM to the current VmRSS in every process of PGID (`echo 5 >
    /proc/PID/clear_refs`, Linux 4.0+), so the peak measured is the measurement's own."""
    for pid in group_memory(pgid):
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError as e:
            raise BenchError(f"cannot reset the peak RSS of pid {pid}: {e}")


def machine_cpu_seconds():
    """User + system CPU seconds of the whole machine since boot (softirq time, which
    loopback traffic makes a lot of, is in neither)."""
    with open("/proc/stat") as f:
        v = f.readline().split()
    return (int(v[1]) + int(v[2]) + int(v[3])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    """CPU seconds of this script and of the children it has reaped (the clients)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_port(port, p, deadline):
    """Polls until PORT accepts a connection; False if process P exits or time runs out."""
    while time.monotonic() < deadline:
        if p.poll() is not None:
            return False
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_log(path, word, p, deadline):
    while time.monotonic() < deadline:
        if p.poll() is not None:
            return False
        try:
            if word in Path(path).read_text(errors="replace"):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def log_tail(path, n=15):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + l for l in lines[-n:]) or "    (empty log)"


# ---- backends: our own load tools ---------------------------------------------------------

# A backend kind: how to start it. Each prints `port=P` once it listens.
BACKENDS = {
    "blast": lambda b, ctx: [b / "blast", "server"],  # bulk sink and source (per request)
    "echo": lambda b, ctx: [b / "connrate", "echo"],  # echo for the connection-rate scenario
    # HTTP/1.1 (L7): GET /size/N -> N bytes, anything else -> "ok", bodies discarded; one
    # thread per load CPU (SO_REUSEPORT), like the peers' workers.
    "http": lambda b, ctx: [b / "httpback", "--threads", len(ctx.pin["load"].split(","))],
}


def spawn_backend(ctx, kind, tag):
    """Starts a backend of KIND; returns (process, port)."""
    argv = pinned(ctx.pin["load"], BACKENDS[kind](BUILD, ctx))
    p = ctx.procs.start(f"{kind}-{tag}", argv, ctx.tmp / f"backend-{kind}-{tag}.log",
                        pipe_stdout=True)
    ready, _, _ = select.select([p.stdout], [], [], START_TIMEOUT_S)
    line = p.stdout.readline().decode() if ready else ""
    m = re.match(r"port=(\d+)", line)
    if not m:
        raise BenchError(f"backend {kind} did not start:\n{log_tail(p.bench_log)}")
    return p, int(m.group(1))


def start_backend(ctx, kind, tag, owner):
    p, port = spawn_backend(ctx, kind, tag)
    ctx.backend_pgids.setdefault(owner, []).append(p.pid)
    return port


# ---- targets -------------------------------------------------------------------------------

class Target:
    """A thing a client can connect to: our proxy, a peer proxy, or the backend directly.
    start() gets {route: (protocol, backend_port)} and returns {route: listen_port}."""

    name = label = ""
    proc = None
    inst = ""  # file-name suffix of a fresh instance (memory scenarios); "" for the main one
    maxconn = MAX_CONNECTIONS  # the connection cap written into the config

    def fresh(self, inst, maxconn):
        """A copy of this target for a freshly started instance of its own (its own config,
        log and listeners), with a connection cap of MAXCONN."""
        t = copy.copy(self)
        t.inst, t.maxconn, t.proc = inst, maxconn, None
        return t

    def version(self):
        return ""

    def start(self, ctx, routes):
        raise NotImplementedError

    def pgid(self):
        return self.proc.pid if self.proc is not None else None

    def _launch(self, ctx, argv, routes, ready_word=None):
        ports = {r: free_port() for r in routes}
        self.write_config(ctx, routes, ports)
        logp = ctx.tmp / f"{self.name}{self.inst}-w{ctx.workers}.log"
        self.proc = ctx.procs.start(self.name, pinned(ctx.pin["proxy"], argv(ctx)), logp)
        deadline = time.monotonic() + START_TIMEOUT_S
        ok = ready_word is None or wait_log(logp, ready_word, self.proc, deadline)
        ok = ok and all(wait_port(port, self.proc, deadline) for port in ports.values())
        if not ok:
            raise BenchError(f"{self.label} did not start (workers {ctx.workers}):\n"
                             f"{log_tail(logp)}")
        return ports

    def conf(self, ctx, ext):
        return ctx.tmp / f"{self.name}{self.inst}-w{ctx.workers}.{ext}"

    # Route protocols: "tcp" (L4), "http" (L7, one route to the backend) and "http-chain"
    # (L7 with the realistic middleware chain; only ours has it: the peers serve it as a
    # plain http route, and the chain scenario runs on ours only).
    @staticmethod
    def _need(routes, protos=("tcp", "http", "http-chain")):
        for r, (proto, _) in routes.items():
            if proto not in protos:
                raise BenchError(f"route {r}: protocol {proto} is not supported")


class Direct(Target):
    name, label = "direct", "direct"

    def start(self, ctx, routes):
        self.proc = None
        return {r: port for r, (_, port) in routes.items()}


class Ours(Target):
    def __init__(self, milestone, binary):
        self.name = f"gw{milestone}"
        self.label = f"gw{milestone} (ours)"
        self.binary = binary

    def version(self):
        r = subprocess.run([self.binary, "--version"], capture_output=True, text=True)
        return (r.stdout or r.stderr).strip().splitlines()[0] if r.returncode == 0 else "?"

    def write_config(self, ctx, routes, ports):
        self._need(routes)
        if any(p != "tcp" for p, _ in routes.values()) and int(self.name[2:]) < 4:
            raise BenchError(f"{self.label}: http routes need gw04 or later")
        # Info level: the `ready` line is info, and nothing per connection is logged
        # above debug. Buffers stay at their defaults (16 KiB chunks, like the peers').
        lines = [f"workers: {ctx.workers}", "drain_timeout: 1s", "log: {level: info}",
                 "listeners:"]
        for r, (proto, _) in routes.items():
            lines += [f"  - name: {r}", f"    address: {LOOPBACK}:{ports[r]}",
                      f"    protocol: {'tcp' if proto == 'tcp' else 'http'}",
                      f"    max_connections: {self.maxconn}",
                      f"    connect_timeout: {CONNECT_TIMEOUT_S}s",
                      f"    idle_timeout: {IDLE_TIMEOUT_S}s"]
            if proto == "tcp":
                lines.append(f"    upstream: {r}")
                continue
            lines += ["    http:", f"      request_head_timeout: {HEAD_TIMEOUT_S}s",
                      f"      body_timeout: {BODY_TIMEOUT_S}s",
                      f"      keepalive_timeout: {KEEPALIVE_TIMEOUT_S}s",
                      f"      response_timeout: {RESPONSE_TIMEOUT_S}s",
                      "    routes:", f"      - name: {r}", "        match: {path_prefix: /}",
                      f"        upstream: {r}"]
            if proto == "http-chain":
                # The realistic chain: request id, forwarded headers, a rate limit nothing
                # reaches (one key: every client is 127.0.0.1), an access log to a file.
                log_file = self.conf(ctx, "access.log")
                lines += ["        middleware:", "          - request_id: {}",
                          "          - forwarded: {}",
                          "          - rate_limit: {rate: 10000000, burst: 1000000}",
                          f"          - access_log: {{file: \"{log_file}\"}}"]
        lines.append("upstreams:")
        for r, (proto, bport) in routes.items():
            lines += [f"  {r}:", "    backends:", f"      - address: {LOOPBACK}:{bport}"]
            if proto != "tcp":
                lines.append(f"    keepalive: {{max_idle: {UPSTREAM_KEEPALIVE}, idle_timeout: "
                             f"{IDLE_TIMEOUT_S}s, max_requests: 0}}")
        self.conf(ctx, "yaml").write_text("\n".join(lines) + "\n")

    def start(self, ctx, routes):
        return self._launch(ctx, lambda c: [self.binary, "-c", self.conf(c, "yaml")], routes,
                            ready_word="ready")


class Nginx(Target):
    name, label = "nginx", "nginx"

    def version(self):
        r = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
        return r.stderr.strip().replace("nginx version: nginx/", "")

    def write_config(self, ctx, routes, ports):
        self._need(routes)
        stem = self.conf(ctx, "conf").with_suffix("")
        servers = "".join(
            f"""
    server {{
        listen {LOOPBACK}:{ports[r]} reuseport;
        proxy_pass {LOOPBACK}:{bport};
        proxy_connect_timeout {CONNECT_TIMEOUT_S}s;
        proxy_timeout {IDLE_TIMEOUT_S}s;
        proxy_buffer_size 16k;
        proxy_half_close on;
    }}"""
            for r, (proto, bport) in routes.items() if proto == "tcp")
        stream = f"""
stream {{
    access_log off;
    tcp_nodelay on;{servers}
}}
""" if servers else ""
        # L7: HTTP/1.1 to the upstream with a keep-alive pool (`keepalive` idle connections
        # per worker; Connection "" so the upstream connection is not closed), bodies
        # streamed both ways through one 16 KiB buffer (no request buffering, no response
        # buffering, so no temp file), no access log, no request-count limit per
        # connection (nginx's default closes a client connection after 1000 requests).
        https = "".join(
            f"""
    upstream u_{r} {{
        server {LOOPBACK}:{bport};
        keepalive {UPSTREAM_KEEPALIVE};
        keepalive_timeout {IDLE_TIMEOUT_S}s;
        keepalive_requests 100000000;
    }}
    server {{
        listen {LOOPBACK}:{ports[r]} reuseport;
        location / {{
            proxy_pass http://u_{r};
        }}
    }}"""
            for r, (proto, bport) in routes.items() if proto != "tcp")
        tmp = ctx.tmp
        http = f"""
http {{
    access_log off;
    tcp_nodelay on;
    keepalive_timeout {KEEPALIVE_TIMEOUT_S}s;
    keepalive_requests 100000000;
    client_header_timeout {HEAD_TIMEOUT_S}s;
    client_body_timeout {BODY_TIMEOUT_S}s;
    client_max_body_size 0;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_connect_timeout {CONNECT_TIMEOUT_S}s;
    proxy_read_timeout {RESPONSE_TIMEOUT_S}s;
    proxy_send_timeout {RESPONSE_TIMEOUT_S}s;
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_buffer_size {HTTP_BUFFER};
    proxy_buffers 4 {HTTP_BUFFER};  # unused without buffering; keeps busy_buffers_size valid{https}
}}
""" if https else ""
        self.conf(ctx, "conf").write_text(f"""# generated by benchmarks/bench.py
load_module {NGINX_STREAM_MODULE};
daemon off;
worker_processes {ctx.workers};
worker_rlimit_nofile {NOFILE_HARD};
pid {stem}.pid;
error_log {stem}-error.log warn;
events {{
    worker_connections {2 * self.maxconn};
}}{stream}{http}""")

    def start(self, ctx, routes):
        conf = self.conf(ctx, "conf")
        return self._launch(ctx, lambda c: ["nginx", "-p", c.tmp, "-e",
                                            f"{conf.with_suffix('')}-error.log",
                                            "-c", conf], routes)


class Haproxy(Target):
    name, label = "haproxy", "HAProxy"

    def version(self):
        r = subprocess.run(["haproxy", "-v"], capture_output=True, text=True)
        m = re.search(r"version (\S+)", r.stdout)
        return m.group(1) if m else "?"

    def write_config(self, ctx, routes, ports):
        self._need(routes)
        sections = "".join(
            f"""
frontend {r}
    bind {LOOPBACK}:{ports[r]} shards by-thread
    default_backend {r}
backend {r}
    server s1 {LOOPBACK}:{bport}
"""
            for r, (proto, bport) in routes.items() if proto == "tcp")
        # L7: mode http (keep-alive both sides is HAProxy's default), idle upstream
        # connections shared by every client connection (`http-reuse always`), at most
        # UPSTREAM_KEEPALIVE idle per thread (pool-max-conn counts for the whole process).
        sections += "".join(
            f"""
frontend {r}
    mode http
    bind {LOOPBACK}:{ports[r]} shards by-thread
    timeout http-request {HEAD_TIMEOUT_S}s
    timeout http-keep-alive {KEEPALIVE_TIMEOUT_S}s
    default_backend {r}
backend {r}
    mode http
    http-reuse always
    timeout server {RESPONSE_TIMEOUT_S}s
    server s1 {LOOPBACK}:{bport} pool-max-conn {UPSTREAM_KEEPALIVE * ctx.workers} pool-purge-delay {IDLE_TIMEOUT_S}s
"""
            for r, (proto, bport) in routes.items() if proto != "tcp")
        self.conf(ctx, "cfg").write_text(f"""# generated by benchmarks/bench.py (no `log`: no logging)
global
    nbthread {ctx.workers}
    maxconn {self.maxconn}
defaults
    mode tcp
    maxconn {self.maxconn}
    timeout connect {CONNECT_TIMEOUT_S}s
    timeout client {IDLE_TIMEOUT_S}s
    timeout server {IDLE_TIMEOUT_S}s
{sections}""")

    def start(self, ctx, routes):
        return self._launch(ctx, lambda c: ["haproxy", "-db", "-f", self.conf(c, "cfg")], routes)


# ---- scenarios -----------------------------------------------------------------------------

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


class fresh_instance:
    """For the memory scenarios: a new backend of KIND and a freshly started instance of
    TARGET in front of it (its own config and listener, connection cap MAXCONN), stopped
    when the block ends. A proxy that already ran other measurements keeps the memory its
    allocator got back from them, and that memory would hide the growth being measured."""

    def __init__(self, ctx, target, kind, maxconn, proto="tcp"):
        self.ctx, self.orig, self.kind, self.maxconn = ctx, target, kind, maxconn
        self.proto = proto

    def __enter__(self):
        ctx = self.ctx
        ctx.fresh_seq += 1
        inst = f"-m{ctx.fresh_seq}"
        self.target, self.backend = self.orig.fresh(inst, self.maxconn), None
        try:
            self.backend, bport = spawn_backend(ctx, self.kind,
                                                f"{self.orig.name}{inst}-w{ctx.workers}")
            self.port = self.target.start(ctx, {"mem": (self.proto, bport)})["mem"]
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.backend_pgids = [self.backend.pid]
        return self

    def __exit__(self, *exc):
        for p in (self.target.proc, self.backend):
            if p is not None:
                self.ctx.procs.stop(p)


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

    def __init__(self, http=False):
        self.title = ("RSS per idle connection (N connections, each echoed "
                      f"{IDLE_PAYLOAD} bytes once, then held idle)")
        if http:
            self.key, self.route, self.http, self.min_milestone = (
                "l7-idle-conns", ("idle", "http", "http"), True, 4)
            self.title = ("RSS per idle keep-alive HTTP client connection (N connections, "
                          "each made one request, then held idle)")

    def est_s(self, ctx):
        return 0.7 + ctx.idle_conns / 5000

    def run(self, ctx, port, target):
        n = ctx.idle_conns
        _, proto, kind = self.route
        http = ["--http"] if self.http else []
        with fresh_instance(ctx, target, kind, n + IDLE_MAXCONN_MARGIN, proto) as inst:
            t, tport = inst.target, inst.port
            # Warm-up: 64 connections at a time for 0.2 s (as many in flight as while the
            # N are opened), so what is measured below is what stays attached to a
            # connection once it is idle, not the proxy's first allocations.
            run_client(pinned(ctx.pin["load"], [
                BUILD / "connrate", "client", "--connect", f"{LOOPBACK}:{tport}",
                "--parallel", CONN_PARALLEL, "--duration", 0.2] + http), timeout=10)
            time.sleep(0.2)
            before, bk_before = group_memory(t.pgid()), group_memory(inst.backend.pid)
            hold_s = 30 + n / 500  # bounds each phase of the client (open, then hold)
            argv = [str(a) for a in pinned(ctx.pin["load"], [
                BUILD / "connrate", "hold", "--connect", f"{LOOPBACK}:{tport}", "--count", n,
                "--parallel", CONN_PARALLEL, "--payload", IDLE_PAYLOAD, "--duration",
                hold_s] + http)]
            with cpu_meter(ctx, t, inst.backend_pgids) as cpu:
                p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     start_new_session=True, preexec_fn=_child_setup)
                try:
                    ready, _, _ = select.select([p.stdout], [], [], hold_s + 10)
                    first = p.stdout.readline() if ready else ""
                    kv = dict(x.split("=", 1) for x in first.split() if "=" in x)
                    if "held" not in kv:
                        raise BenchError("connrate hold: no `held=` line within "
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
                raise BenchError(f"connrate hold: {(err.strip() or rest.strip() or 'failed')}")
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


def run_wrk(ctx, port, path, conns):
    """One wrk run (WRK_SECONDS) with CONNS keep-alive connections on GET PATH, pinned like
    every load; one wrk thread per load CPU (at most one per connection). Returns its figures;
    a run with non-2xx responses, or with more than 1 % of requests failing, is a failure."""
    nload = len(ctx.pin["load"].split(","))
    argv = pinned(ctx.pin["load"], [
        "wrk", "-t", min(conns, nload), "-c", conns, "-d", f"{ctx.wrk_seconds}s",
        "--timeout", f"{WRK_TIMEOUT_S}s", "-s", BUILD / "wrkstats.lua",
        f"http://{LOOPBACK}:{port}{path}"])
    out = run_client(argv, timeout=ctx.wrk_seconds + WRK_TIMEOUT_S + 15)
    if "requests" not in out:
        raise BenchError("wrk printed no figures")
    w = {k: int(v) for k, v in out.items() if v.lstrip("-").isdigit()}
    errors = sum(w[k] for k in w if k.startswith("err_"))
    if w["requests"] == 0:
        raise BenchError("wrk: no request completed")
    if w["err_status"] or errors > w["requests"] / 100:
        raise BenchError(f"wrk: {w['requests']} requests, errors: " + ", ".join(
            f"{k[4:]} {w[k]}" for k in sorted(w) if k.startswith("err_") and w[k]))
    secs = w["duration_us"] / 1e6
    return {"rps": w["requests"] / secs, "mbps": w["bytes"] / secs / 1e6, "requests":
            w["requests"], "errors": errors, "p50_us": w["p50_us"], "p99_us": w["p99_us"],
            "p999_us": w["p999_us"], "bytes": w["bytes"]}


class Wrk(Scenario):
    """requests/s and latency of GET PATH over CONNS keep-alive connections (wrk)."""
    route = ("http", "http", "http")
    min_milestone = 4
    unit = "req/s"
    extras = (("p50_us", "p50 µs", "{:,.0f}"), ("p99_us", "p99 µs", "{:,.0f}"),
              ("p999_us", "p99.9 µs", "{:,.0f}"),
              ("cpu_us_per_req", "proxy CPU µs/req", "{:.1f}"), ("errors", "errors", "{:.0f}"))

    def __init__(self, key, conns, path, title):
        self.key, self.conns, self.path, self.title = key, conns, path, title

    def est_s(self, ctx):
        return 0.15 + ctx.wrk_seconds

    def run(self, ctx, port, target):
        with cpu_meter(ctx, target) as cpu:
            w = run_wrk(ctx, port, self.path, self.conns)
        res = {"value": w["rps"], "other_load": cpu.other_load, "errors": w["errors"],
               "p50_us": w["p50_us"], "p99_us": w["p99_us"], "p999_us": w["p999_us"]}
        if cpu.seconds is not None:
            res["cpu_us_per_req"] = cpu.seconds * 1e6 / w["requests"]
        return res


class WrkBig(Scenario):
    """Throughput of 1 MiB responses (GET /size/1048576) over BIG_CONNS connections."""
    key = "l7-1mib"
    route = ("http", "http", "http")
    min_milestone = 4
    unit = "MB/s"
    extras = (("rps", "req/s", "{:,.0f}"), ("p99_us", "p99 µs", "{:,.0f}"),
              ("cpu_s_per_gib", "proxy CPU s/GiB", "{:.2f}"), ("errors", "errors", "{:.0f}"))

    def __init__(self):
        self.title = (f"1 MiB responses: throughput over {BIG_CONNS} keep-alive connections "
                      "(wrk)")

    def est_s(self, ctx):
        return 0.15 + ctx.wrk_seconds

    def run(self, ctx, port, target):
        with cpu_meter(ctx, target) as cpu:
            w = run_wrk(ctx, port, f"/size/{BIG_RESPONSE}", BIG_CONNS)
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


class cpu_meter:
    """Measures, while the block runs, the CPU seconds of the target's processes (None for
    direct) and the load other processes put on the machine, in CPUs: everything busy that
    is neither the target, its backends, this script nor its clients. The box may be shared
    (someone's `make test`); the report shows that load so a noisy figure can be told."""

    def __init__(self, ctx, target, backend_pgids=None):
        self.proxy = target.pgid()
        if backend_pgids is None:
            backend_pgids = ctx.backend_pgids[target.name]
        self.pgids = [g for g in [self.proxy] + backend_pgids if g]
        self.seconds = self.other_load = None

    def __enter__(self):
        self.t0 = (time.monotonic(), machine_cpu_seconds(), own_cpu_seconds(),
                   group_cpu_seconds(self.pgids))
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            return
        wall, machine, own = (time.monotonic() - self.t0[0], machine_cpu_seconds() - self.t0[1],
                              own_cpu_seconds() - self.t0[2])
        groups = group_cpu_seconds(self.pgids)
        used = {g: groups[g] - self.t0[3][g] for g in self.pgids}
        if self.proxy:
            self.seconds = used[self.proxy]
        self.other_load = max(0.0, machine - own - sum(used.values())) / wall


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
]
L7_RPS = ("l7-rps-c1", "l7-rps-c50", "l7-rps-c500")


# ---- the run -------------------------------------------------------------------------------

class Ctx:
    pass


def pin_plan(workers):
    """Which CPUs the proxy and the load (clients + backends) may use. The proxy gets
    cores of its own when the machine has room for its workers plus one for the load;
    otherwise everything shares all cores. Same plan for every target. README explains."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= workers + 1:
        fmt = lambda cs: ",".join(map(str, cs))
        return {"proxy": fmt(cpus[:workers]), "load": fmt(cpus[workers:]),
                "text": f"proxy on CPU {fmt(cpus[:workers])}, load (clients and backends) on "
                        f"CPU {fmt(cpus[workers:])}"}
    allc = ",".join(map(str, cpus))
    return {"proxy": allc, "load": allc,
            "text": f"everything shares CPUs {allc} (too few cores to give {workers} "
                    "worker(s) and the load cores of their own)"}


def build_tools():
    BUILD.mkdir(parents=True, exist_ok=True)
    (BUILD / "wrkstats.lua").write_text(WRK_LUA)
    for tool, libs in (("blast", ["-lpthread"]), ("connrate", []), ("httpback", ["-lpthread"])):
        src, out = TOOLS_SRC / f"{tool}.c", BUILD / tool
        newest = max(src.stat().st_mtime, (TOOLS_SRC / "loopback.h").stat().st_mtime,
                     Path(__file__).stat().st_mtime)  # the flags below live here
        if out.exists() and out.stat().st_mtime >= newest:
            continue
        # The project's warnings (Makefile WARN), so the tools are held to the same bar.
        cmd = ["cc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-Wshadow",
               "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wvla", "-o", str(out),
               str(src)] + libs
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"building {tool} failed:\n{r.stderr}")


def check_tools(milestone):
    missing = [t for t in ("nginx", "haproxy", "gnuplot", "taskset", "cc", "wrk")
               if shutil.which(t) is None]
    if not NGINX_STREAM_MODULE.exists():
        missing.append(f"{NGINX_STREAM_MODULE} (libnginx-mod-stream)")
    if missing:
        raise BenchError(f"missing: {', '.join(missing)}; run `scripts/deps.sh bench`")
    binary = ROOT / "build" / "release" / "bin" / f"gw{milestone}"
    if not binary.exists():
        raise BenchError(f"{binary.relative_to(ROOT)} is missing; run `make V=release bins`")
    return binary


def default_milestone():
    # The newest milestone that builds a binary (a folder being started has no main.c).
    ms = sorted(p.name[:2] for p in (ROOT / "milestones").glob("[0-9][0-9]-*")
                if (p / "main.c").exists())
    if not ms:
        raise BenchError("no milestones/NN-*/main.c")
    return ms[-1]


def start_phase(ctx, targets, scenarios):
    """Starts, for one worker count, each target with backends of its own (separate
    backends keep one target's TIME_WAIT sockets out of another's port space). Returns
    {target name: {route: port}}, after a short functional check through each."""
    routes = {s.route[0]: s.route for s in scenarios if not s.fresh}
    if "chain" in routes:  # compared with the plain route in the same measurement
        routes.setdefault("http", ("http", "http", "http"))
    ports = {}
    ctx.backend_pgids = {}
    for t in targets:
        if not routes:  # only scenarios with instances of their own
            ports[t.name] = {}
            continue
        backend = {r: (proto, start_backend(ctx, kind, f"{t.name}-w{ctx.workers}", t.name))
                   for r, (_, proto, kind) in routes.items()}
        ports[t.name] = t.start(ctx, backend)
        # A target that does not forward has failed to start.
        try:
            if "bulk" in ports[t.name]:
                run_client([BUILD / "blast", "send", "--connect",
                            f"{LOOPBACK}:{ports[t.name]['bulk']}", "--bytes", MIB], timeout=10)
            if "echo" in ports[t.name]:
                run_client([BUILD / "connrate", "client", "--connect",
                            f"{LOOPBACK}:{ports[t.name]['echo']}", "--parallel", 2,
                            "--duration", 0.2], timeout=10)
            # HTTP routes: requests on new connections, each answered 200 with its body.
            for r, (_, proto, _) in routes.items():
                if proto != "tcp":
                    run_client([BUILD / "connrate", "client", "--connect",
                                f"{LOOPBACK}:{ports[t.name][r]}", "--parallel", 2,
                                "--duration", 0.2, "--http"], timeout=10)
        except BenchError as e:
            raise BenchError(f"{t.label} does not forward (workers {ctx.workers}): {e}")
    return ports


def time_wait():
    """(sockets in TIME_WAIT in this network namespace, the kernel's cap on them)."""
    tw = 0
    with open("/proc/net/sockstat") as f:
        for line in f:
            m = re.match(r"TCP:.* tw (\d+)", line)
            if m:
                tw = int(m.group(1))
    with open("/proc/sys/net/ipv4/tcp_max_tw_buckets") as f:
        return tw, int(f.read())


def warm_up(ctx, echo_port):
    """Every short connection leaves sockets in TIME_WAIT for 60 s, and a loopback
    benchmark makes them by the hundred thousand: the first connection-rate run on an empty
    table would be measured on a different kernel state (ephemeral port search, table at its
    cap or not) than the ones after it. So fill the table to its steady state first (until
    it is near tcp_max_tw_buckets, where the kernel stops adding to it), directly against an
    echo backend; bounded by WARMUP_MAX_S."""
    tw, cap = time_wait()
    deadline = time.monotonic() + WARMUP_MAX_S
    while tw < 0.9 * cap and time.monotonic() < deadline:
        run_client(pinned(ctx.pin["load"], [BUILD / "connrate", "client", "--connect",
                                             f"{LOOPBACK}:{echo_port}", "--parallel",
                                             CONN_PARALLEL, "--duration", 2]), timeout=20)
        tw, cap = time_wait()
    log(f"bench: warm-up done: {tw} sockets in TIME_WAIT (kernel cap {cap})")


def wait_quiet(ctx):
    """Before a measurement, waits (bounded per measurement and in all) until processes
    that are not ours use less than OTHER_LOAD_WARN CPU over 0.5 s: on a shared machine
    someone's test run would otherwise land inside some figures and not others."""
    if ctx.smoke:
        return
    t0 = time.monotonic()
    limit = min(QUIET_WAIT_MAX_S, ctx.quiet_budget)
    while True:
        m0, o0 = machine_cpu_seconds(), own_cpu_seconds()
        time.sleep(0.5)
        # Our idle proxies and backends use next to nothing between measurements.
        load = (machine_cpu_seconds() - m0 - (own_cpu_seconds() - o0)) / 0.5
        waited = time.monotonic() - t0
        if load < OTHER_LOAD_WARN or waited >= limit:
            break
    extra = max(0.0, waited - 0.5)  # beyond the one sample every measurement takes
    ctx.quiet_budget = max(0.0, ctx.quiet_budget - extra)
    ctx.quiet_waited += extra


def measure(ctx, s, t, port, tag):
    """One measurement, after waiting for a quiet machine; measured once more (within a
    per-run budget) when other processes used OTHER_LOAD_RETRY CPU or more meanwhile.
    Prints the progress line; returns the result, or None after recording a failure."""
    for attempt in range(2):
        if s.cpu_bound:
            wait_quiet(ctx)
        t0 = time.monotonic()
        try:
            res = s.run(ctx, port, t)
            res["wall_s"] = time.monotonic() - t0  # in the json: to calibrate the est_s() estimates
        except BenchError as e:
            ctx.failures.append(f"w{ctx.workers} {s.key} {t.name}: {e}")
            log(f"{tag}  FAILED: {e}")
            if t.proc is not None and t.proc.poll() is not None:
                raise BenchError(f"{t.label} exited:\n{log_tail(t.proc.bench_log)}")
            return None
        # "proxy CPU s/GiB" -> "proxy CPU 0.67 s/GiB"
        extra = "  ".join(" ".join(title.split()[:-1]) + " " + fmt.format(res[k]) + " " +
                          title.split()[-1] for k, title, fmt in s.extras if k in res)
        if res["other_load"] >= OTHER_LOAD_WARN:
            extra += f"  (other processes: {res['other_load']:.2f} CPU)"
        retry = (attempt == 0 and res["other_load"] >= OTHER_LOAD_RETRY and ctx.retries > 0
                 and not ctx.smoke and s.cpu_bound)
        val = (f"{res['value']:10.1f} {s.unit:<7}" if "value" in res
               else f"{'(no proxy)':>18}")
        log(f"{tag}  {val} {extra}" +
            ("  -> noisy, measuring again" if retry else ""))
        if not retry:
            return res
        ctx.retries -= 1
        ctx.retried += 1
    return res


def run_phase(ctx, targets, scenarios, samples, counter):
    ports = ctx.ports = start_phase(ctx, targets, scenarios)
    if not ctx.smoke and any(isinstance(s, ConnRate) for s in scenarios):
        warm_up(ctx, ports["direct"]["echo"])
    for rnd in range(ctx.rounds):
        for s in scenarios:
            # Rotate the order each round so no target always goes first (or last).
            order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
            for t in order:
                if not s.applies(t):
                    continue
                counter[0] += 1
                tag = (f"[{counter[0]:3d}/{counter[1]}] w{ctx.workers} round {rnd + 1}/"
                       f"{ctx.rounds}  {s.key:<14} {t.name:<8}")
                cell = samples.setdefault(s.key, {}).setdefault(ctx.workers, {}) \
                              .setdefault(t.name, [])
                res = measure(ctx, s, t, ports[t.name].get(s.route[0]), tag)
                if res is not None:
                    cell.append(res)
    if ctx.profile:
        profile_ours(ctx, targets[0], scenarios, ports[targets[0].name])


def profile_ours(ctx, ours, scenarios, ports):
    """One extra, unrecorded run of each scenario on our proxy under `perf record`."""
    if shutil.which("perf") is None:
        log("profile: perf is not installed; skipped")
        return
    outdir = BUILD / "profiles"
    outdir.mkdir(parents=True, exist_ok=True)
    for s in scenarios:
        if s.fresh:
            log(f"profile {s.key}: skipped (it runs on instances of its own; use perf by hand)")
            continue
        data = outdir / f"{s.key}-w{ctx.workers}.data"
        rec = subprocess.Popen(["perf", "record", "-q", "-g", "-o", data, "-p",
                                str(ours.proc.pid)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True,
                               preexec_fn=_child_setup)
        time.sleep(0.3)
        try:
            s.run(ctx, ports[s.route[0]], ours)
        except BenchError as e:
            log(f"profile {s.key}: {e}")
        rec.send_signal(signal.SIGINT)
        try:
            rec.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(rec.pid, signal.SIGKILL)
            rec.wait()
        txt = outdir / f"{s.key}-w{ctx.workers}.txt"
        with open(txt, "w") as f:
            subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                            "--percent-limit", "0.7", "-g", "none"], stdout=f,
                           stderr=subprocess.DEVNULL, timeout=120)
        log(f"profile: {txt.relative_to(ROOT)}")


# ---- report --------------------------------------------------------------------------------

def summarize(values):
    return statistics.median(values), min(values), max(values)


def values(samples, scen, w, tname):
    return [r["value"] for r in samples.get(scen, {}).get(w, {}).get(tname, []) if "value" in r]


def med(samples, scen, w, tname, key="value"):
    vals = [r[key] for r in samples.get(scen, {}).get(w, {}).get(tname, []) if key in r]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "-"


def fmt_ratio(v):
    return "-" if v is None else f"{v:.2f}×"


def fmt_num(v):
    return "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")


def plot(ctx, s, samples, targets, path_png):
    dat = path_png.with_suffix(".dat")
    rows = []
    for t in targets:
        cols = [f'"{t.label}"']
        for w in ctx.workers_list:
            vals = values(samples, s.key, w, t.name)
            cols += [f"{x:.2f}" for x in summarize(vals)] if vals else ["?", "?", "?"]
        rows.append(" ".join(cols))
    dat.write_text("\n".join(rows) + "\n")
    using = ", ".join(
        f"'{dat}' using {2 + 3 * i}:{3 + 3 * i}:{4 + 3 * i}"
        + (":xtic(1)" if i == 0 else "") + f" title 'workers {w}'"
        for i, w in enumerate(ctx.workers_list))
    script = f"""set terminal pngcairo size 900,480 noenhanced font ",10"
set output '{path_png}'
set title "{s.title}\\n({s.unit}, median of {ctx.rounds} round(s); bars: min-max; {ctx.stamp})"
set datafile missing '?'
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.75 border -1
set yrange [0:*]
set xrange [-0.6:{len(targets) - 0.4}]
set ylabel '{s.unit}'
set grid ytics
set key top right
plot {using}
"""
    gp = path_png.with_suffix(".gp")
    gp.write_text(script)
    r = subprocess.run(["gnuplot", str(gp)], capture_output=True, text=True, timeout=60)
    dat.unlink()
    gp.unlink()
    if r.returncode != 0 or not path_png.exists():
        raise BenchError(f"gnuplot failed for {s.key}: {r.stderr.strip()}")


def memory_goals(ctx, scenarios, samples, ours):
    """The goal lines for the memory scenarios (issue 7 states them for L7; at L4 the same
    bounds are checked against the L4 peers)."""
    L = []
    for s in scenarios:
        if isinstance(s, IdleConns):
            L += ["Goal (issue 7), L7: an idle keep-alive client connection costs no more RSS "
                  "than in nginx (about 0.5 KiB each; HAProxy about 1 KiB):" if s.http else
                  "Goal (issue 7), idle connections: no more RSS per idle connection than nginx "
                  "(the issue's figures, about 0.5 KiB for nginx and 1 KiB for HAProxy, are L7 "
                  "keep-alive ones; here at L4 ours is compared with both peers):", ""]
            for w in ctx.workers_list:
                a = med(samples, s.key, w, ours)
                n, h = med(samples, s.key, w, "nginx"), med(samples, s.key, w, "haproxy")
                if a is None or n is None:
                    verdict = "no figure"
                else:
                    verdict = "met" if a <= n else "NOT met"
                L.append(f"- workers {w}: ours {fmt_num(a)} B/conn, nginx {fmt_num(n)}, HAProxy "
                         f"{fmt_num(h)}: {ratio(a, n)} nginx, {ratio(a, h)} HAProxy: {verdict}")
            L.append("")
        if isinstance(s, UploadPeakRss):
            size = ("" if ctx.bulk_bytes == GIB else
                    f" (this run uploads {ctx.bulk_bytes // MIB} MiB, not 1 GiB: not the goal's "
                    "measurement)")
            L += [f"Goal (issue 7): a 1 GiB upload raises the proxy's peak RSS by less than "
                  f"16 MiB{size} ({'HTTP POST, L7' if s.http else 'L4'}):", ""]
            for w in ctx.workers_list:
                vals = values(samples, s.key, w, ours)
                if not vals:
                    verdict = "no figure"
                else:
                    verdict = "met" if max(vals) < 16 * 1024 else (
                        "NOT met" if statistics.median(vals) >= 16 * 1024 else
                        "median met, but not in every round")
                a = med(samples, s.key, w, ours)
                L.append(f"- workers {w}: ours {fmt_num(a)} KiB (max "
                         f"{fmt_num(max(vals) if vals else None)}); HAProxy "
                         f"{fmt_num(med(samples, s.key, w, 'haproxy'))}, nginx "
                         f"{fmt_num(med(samples, s.key, w, 'nginx'))}: {verdict}")
            L.append("")
    return L


def l7_goals(ctx, scenarios, samples, ours):
    """The L7 speed goal lines: requests/s at least 1.1 × nginx with p99 no worse than
    nginx's, per rps scenario and worker count; and the chain's cost."""
    L = []
    rps = [s for s in scenarios if s.key in L7_RPS]
    if rps:
        L += ["Goal (issue 7), L7: requests/s at least 1.1 × nginx's, with p99 no worse than "
              "nginx's, at workers 1 and 2:", ""]
        for s in rps:
            for w in ctx.workers_list:
                a, n = med(samples, s.key, w, ours), med(samples, s.key, w, "nginx")
                pa, pn = (med(samples, s.key, w, ours, "p99_us"),
                          med(samples, s.key, w, "nginx", "p99_us"))
                h = med(samples, s.key, w, "haproxy")
                if None in (a, n, pa, pn):
                    verdict = "no figure"
                else:
                    ok_r, ok_p = a >= 1.1 * n, pa <= pn
                    verdict = ("met" if ok_r and ok_p else "NOT met (" + ", ".join(
                        x for x, bad in (("requests/s", not ok_r), ("p99", not ok_p)) if bad)
                        + ")")
                L.append(f"- {s.key}, workers {w}: {ratio(a, n)} nginx's requests/s "
                         f"({ratio(a, h)} HAProxy's), p99 {fmt_num(pa)} µs vs nginx "
                         f"{fmt_num(pn)} µs: {verdict}")
        L.append("")
    for s in scenarios:
        if isinstance(s, Chain):
            L += ["The middleware chain (ours only): requests/s with the chain ÷ requests/s "
                  "on the plain route, same run:", ""]
            for w in ctx.workers_list:
                L.append(f"- workers {w}: chain {fmt_num(med(samples, s.key, w, ours))} req/s,"
                         f" plain {fmt_num(med(samples, s.key, w, ours, 'plain_rps'))} req/s: "
                         f"{fmt_ratio(med(samples, s.key, w, ours, 'chain_ratio'))} (median of "
                         "the per-round ratios)")
            L.append("")
    return L


def write_report(ctx, targets, scenarios, samples, outdir):
    ours, names = targets[0].name, [t.name for t in targets]
    l4 = any(s.route[1] == "tcp" for s in scenarios)
    l7 = any(s.route[1] != "tcp" for s in scenarios)
    modes = (" and ".join(m for m, on in (("tcp mode for L4", l4), ("http mode for L7", l7))
                          if on),
             " and ".join(m for m, on in (("stream module for L4", l4), ("http module for L7",
                                                                         l7)) if on))
    by_name = {t.name: t for t in targets}
    has = lambda *kinds: any(isinstance(s, kinds) for s in scenarios)
    L = [f"# Benchmark {ctx.name}: {targets[0].label} vs HAProxy vs nginx vs direct", "",
         f"- run: {ctx.stamp}, {ctx.elapsed:.0f} s; milestone {ctx.milestone} "
         f"({targets[0].version()}, release build); workers {', '.join(map(str, ctx.workers_list))}; "
         f"{ctx.rounds} round(s), interleaved{'; SMOKE run: figures are not meaningful' if ctx.smoke else ''}",
         f"- peers: HAProxy {by_name['haproxy'].version()} ({modes[0]}), nginx "
         f"{by_name['nginx'].version()} ({modes[1]})",
         f"- machine: {os.cpu_count()} CPUs ({ctx.cpu_model}), Linux {platform.release()}",
         "- " + "; ".join(what for what, on in (
             (f"bulk transfer: {ctx.bulk_bytes // MIB} MiB per run", has(Bulk)),
             (f"connection rate: {ctx.conn_seconds:g} s per run, {CONN_PARALLEL} parallel "
              "connectors", has(ConnRate)),
             (f"idle connections: {ctx.idle_conns:,} held at once", has(IdleConns)),
             (f"upload peak RSS: one {ctx.bulk_bytes // MIB} MiB upload", has(UploadPeakRss)),
             (f"L7: wrk, {ctx.wrk_seconds:g} s per run, one thread per load CPU",
              has(Wrk, WrkBig, Chain)),
             (f"chunked uploads: {TINY_CHUNK_BYTES // MIB} MiB in {TINY_CHUNK}-byte chunks, "
              f"{BIG_CHUNK_BYTES // MIB} MiB in {BIG_CHUNK}-byte chunks, {CHUNK_MAX_S} s at "
              "most each" + (" (smoke: 1/16 of each)" if ctx.smoke else ""), has(TinyChunks)))
             if on),
         "- pinning: " + "; ".join(f"workers {w}: {pin_plan(w)['text']}" for w in ctx.workers_list),
         "- how to read this: [benchmarks/README.md](../README.md). Ratios compare medians "
         "measured in this same run; × HAProxy > 1 means faster than HAProxy for speed, "
         "more memory than HAProxy for the memory scenarios (idle-conns, upload-rss: lower is "
         "better), and more CPU per byte for l7-tiny-chunks (lower is better). Memory is "
         "measured on a freshly started instance of each target per measurement.", ""]
    loads = [r["other_load"] for sc in samples.values() for wv in sc.values()
             for tv in wv.values() for r in tv]
    if loads:
        noisy = sum(1 for x in loads if x >= OTHER_LOAD_WARN)
        L.insert(-1, f"- other processes on the machine during the measurements: median "
                     f"{statistics.median(loads):.2f} CPU, max {max(loads):.2f} CPU; "
                     f"{noisy} of {len(loads)} measurement(s) at {OTHER_LOAD_WARN} CPU or more"
                     f" (waited {ctx.quiet_waited:.0f} s in all for a quiet machine; "
                     f"{ctx.retried} noisy measurement(s) replaced by a second one)")
        if noisy:
            L += [f"**Warning:** other processes used the CPUs during {noisy} measurement(s) "
                  "(column `other load`): those figures are noisy; rerun on a quiet machine "
                  "to compare closely.", ""]
    if ctx.failures:
        L += ["**Failed measurements:**", ""] + [f"- {f}" for f in ctx.failures] + [""]
    # Summary: our proxy against each peer.
    L += ["## Summary: our proxy's median relative to each peer's", "",
          f"| scenario | workers | {ours} | HAProxy | nginx | direct | × HAProxy | × nginx | × direct |",
          "|---|---|---|---|---|---|---|---|---|"]
    for s in scenarios:
        for w in ctx.workers_list:
            m = {n: med(samples, s.key, w, n) for n in names}
            L.append(f"| {s.key} ({s.unit}) | {w} | {fmt_num(m[ours])} | {fmt_num(m['haproxy'])} | "
                     f"{fmt_num(m['nginx'])} | {fmt_num(m['direct'])} | {ratio(m[ours], m['haproxy'])} | "
                     f"{ratio(m[ours], m['nginx'])} | {ratio(m[ours], m['direct'])} |")
    if any(isinstance(s, Bulk) for s in scenarios):
        L += ["", "Goal (issue 7), L4: bulk throughput at least HAProxy's in tcp mode, both "
              "directions, at workers 1 and 2:", ""]
    for s in scenarios:
        if not isinstance(s, Bulk):
            continue
        for w in ctx.workers_list:
            a, b = med(samples, s.key, w, ours), med(samples, s.key, w, "haproxy")
            va, vb = values(samples, s.key, w, ours), values(samples, s.key, w, "haproxy")
            if a is None or b is None:
                verdict = "no figure"
            elif a >= b:
                verdict = "met"
            elif min(len(va), len(vb)) < 2:
                verdict = "not met in a single round (no spread to judge by)"
            elif max(va) >= min(vb):
                verdict = "not met, but within the spread (min–max ranges overlap): rerun"
            else:
                verdict = "NOT met (every round slower)"
            L.append(f"- {s.key}, workers {w}: {ratio(a, b)} HAProxy: {verdict}")
    L.append("")
    L += l7_goals(ctx, scenarios, samples, ours)
    L += memory_goals(ctx, scenarios, samples, ours)
    for s in scenarios:
        png = outdir / f"{ctx.name}-{s.key}.png"
        plot(ctx, s, samples, targets, png)
        better = "higher" if s.higher_is_better else "lower"
        how = ""
        if isinstance(s, IdleConns) and s.http:
            how = (f" Figure: (proxy RSS with {ctx.idle_conns:,} idle keep-alive connections "
                   f"− proxy RSS before) / {ctx.idle_conns:,}, RSS summed over the proxy's "
                   "processes (VmRSS); each connection made one request (GET /, 2-byte "
                   f"response) through the proxy, opened {CONN_PARALLEL} at a time, after a "
                   "0.2 s warm-up of the same requests; `proxy fds/conn` near 1 means the "
                   "proxy holds the client side only (the upstream connection went back to "
                   "its pool); direct: no proxy, only the backend's figure (httpback: no "
                   "buffer on an idle connection), for reference.")
        elif isinstance(s, IdleConns):
            how = (f" Figure: (proxy RSS with {ctx.idle_conns:,} idle connections − proxy RSS "
                       f"before) / {ctx.idle_conns:,}, RSS summed over the proxy's processes "
                       "(VmRSS); each connection exchanged "
                       f"{IDLE_PAYLOAD} bytes once through the proxy, opened {CONN_PARALLEL} at "
                       "a time, after a 0.2 s warm-up; direct: no proxy, only the backend's "
                       "figure (an epoll echo server with a 4 KiB buffer per connection), for "
                       "reference.")
        elif isinstance(s, Wrk):
            how = (f" wrk, {s.conns} connection(s), {ctx.wrk_seconds:g} s per run; latency "
                   "percentiles from wrk's own histogram (done() callback); `proxy CPU µs/req`"
                   " is the proxy's CPU time over the run divided by the requests served.")
        elif isinstance(s, Chain):
            how = (" Ours only: the chain route and the plain route measured back to back "
                   "in each measurement (order alternating), same wrk load; `chain ÷ plain` "
                   "is the cost of the chain (1.00 = free).")
        elif isinstance(s, TinyChunks):
            (c1, n1, _), (c2, n2, _) = s.sizes(ctx)
            how = (f" Figure: the proxy's CPU seconds (all its processes, from /proc) over one "
                   f"`POST /upload` of {n1 // MIB} MiB of payload in {c1}-byte chunks "
                   "(`Transfer-Encoding: chunked`, `blast post --chunk`), per GiB of payload "
                   f"(an upload stops sending after {CHUNK_MAX_S} s: per GiB sent);"
                   f" next to it the same for {n2 // MIB} MiB in {c2}-byte chunks, their ratio "
                   "(the cost of tiny chunks relative to large ones) and each upload's "
                   "payload MB/s. Every proxy streams the body (nginx: "
                   "`proxy_request_buffering off`, `proxy_http_version 1.1`). Direct: no "
                   "proxy, only the load's own speed (client and backend on the load CPU).")
        elif isinstance(s, UploadPeakRss):
            how = (" Figure: Σ over the proxy's processes of (VmHWM after − VmRSS before), "
                   "the peak reset (clear_refs) just before the upload; the goal is < 16 MiB "
                   "(16,384 KiB) for 1 GiB.")
        L += [f"## {s.key}: {s.title}", "", f"{s.unit}, {better} is better; the ratios divide "
              "this row's median by the peer's." + how, "", f"![{s.key}]({png.name})", "",
              "| workers | target | median " + s.unit + " | min–max | " +
              " | ".join(title for _, title, _ in s.extras) +
              " | × HAProxy | × nginx | × direct | other load (max CPU) |",
              "|---|---|---|---|" + "---|" * len(s.extras) + "---|---|---|---|"]
        for w in ctx.workers_list:
            for t in targets:
                if not s.applies(t):
                    continue
                vals = values(samples, s.key, w, t.name)
                got = samples.get(s.key, {}).get(w, {}).get(t.name, [])
                ex = []
                for k, _, fmt in s.extras:
                    v = med(samples, s.key, w, t.name, k)
                    ex.append(fmt.format(v) if v is not None else "-")
                if not vals:
                    what = "no proxy" if got and isinstance(t, Direct) else "no figure"
                    L.append(f"| {w} | {t.label} | {what} | | " + " | ".join(ex) +
                             " | | | | " + (f"{max(r['other_load'] for r in got):.2f} |"
                                           if got else "|"))
                    continue
                load = max(r["other_load"] for r in got)
                m, lo, hi = summarize(vals)
                L.append(f"| {w} | {t.label} | {fmt_num(m)} | {fmt_num(lo)}–{fmt_num(hi)} | " +
                         " | ".join(ex) + f" | {ratio(m, med(samples, s.key, w, 'haproxy'))} | "
                         f"{ratio(m, med(samples, s.key, w, 'nginx'))} | "
                         f"{ratio(m, med(samples, s.key, w, 'direct'))} | {load:.2f} |")
        L.append("")
    md = outdir / f"{ctx.name}.md"
    md.write_text("\n".join(L))
    (outdir / f"{ctx.name}.json").write_text(json.dumps(
        {"name": ctx.name, "stamp": ctx.stamp, "milestone": ctx.milestone,
         "workers": ctx.workers_list, "rounds": ctx.rounds, "bulk_bytes": ctx.bulk_bytes,
         "conn_seconds": ctx.conn_seconds, "idle_conns": ctx.idle_conns,
         "failures": ctx.failures, "samples": samples},
        indent=1))
    return md


# ---- main ----------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--milestone", help="NN: benchmark build/release/bin/gwNN (default: the "
                    "newest milestone with a main.c)")
    ap.add_argument("--smoke", action="store_true", help="1 round, a few seconds per scenario,"
                    " results in build/bench/smoke/: proves the harness works")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts (1,2)")
    ap.add_argument("--rounds", type=int, help="rounds per scenario (default 3; smoke 1)")
    ap.add_argument("--idle-conns", type=int, help="connections held at once in the idle-conns "
                    f"scenario (default {IDLE_CONNS}; smoke {IDLE_CONNS_SMOKE})")
    ap.add_argument("--name", help="result name (default: DATE-mNN)")
    ap.add_argument("--scenarios", help="comma-separated subset of: " +
                    ", ".join(s.key for s in SCENARIOS))
    ap.add_argument("--out", help="directory for the report (default benchmarks/results, "
                    "smoke: build/bench/smoke); latest.md is written only to the default, "
                    "and only by a run of every scenario (no --scenarios)")
    ap.add_argument("--profile", action="store_true", help="also run each scenario once on "
                    "our proxy under perf record: build/bench/profiles/")
    a = ap.parse_args(argv)
    try:
        a.workers_list = sorted({int(x) for x in a.workers.split(",")})
    except ValueError:
        ap.error("--workers: comma-separated integers, e.g. 1,2")
    if not a.workers_list or min(a.workers_list) < 1 or max(a.workers_list) > 64:
        ap.error("--workers: each between 1 and 64")
    if a.rounds is not None and not 1 <= a.rounds <= 20:
        ap.error("--rounds: 1..20")
    if a.scenarios is not None:
        a.scenarios = a.scenarios.split(",")
        unknown = set(a.scenarios) - {s.key for s in SCENARIOS}
        if unknown:
            ap.error(f"--scenarios: unknown {', '.join(sorted(unknown))}")
    if a.idle_conns is not None and not 1 <= a.idle_conns <= 100000:
        ap.error("--idle-conns: 1..100000")
    if a.milestone is not None and not re.fullmatch(r"\d\d", a.milestone):
        ap.error("--milestone: two digits, e.g. 01")
    return a


def main(argv):
    a = parse_args(argv)
    ctx = Ctx()
    ctx.milestone = a.milestone or default_milestone()
    ctx.smoke, ctx.profile, ctx.workers_list = a.smoke, a.profile, a.workers_list
    ctx.rounds = a.rounds or (1 if a.smoke else 3)
    ctx.bulk_bytes = 64 * MIB if a.smoke else GIB
    ctx.conn_seconds = 1.0 if a.smoke else 5.0
    ctx.wrk_seconds = WRK_SECONDS_SMOKE if a.smoke else WRK_SECONDS
    ctx.idle_conns = a.idle_conns or (IDLE_CONNS_SMOKE if a.smoke else IDLE_CONNS)
    ctx.fresh_seq = 0
    now = datetime.datetime.now()
    ctx.stamp = now.strftime("%Y-%m-%d %H:%M")
    ctx.name = a.name or ("smoke" if a.smoke else f"{now:%Y-%m-%d}-m{ctx.milestone}")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", ctx.name) or ctx.name == "latest":
        raise BenchError("--name: letters, digits, . _ - only, and not 'latest'")
    ctx.failures = []
    ctx.quiet_budget, ctx.quiet_waited = QUIET_WAIT_BUDGET_S, 0.0
    ctx.retries, ctx.retried = RETRY_BUDGET, 0
    try:
        ctx.cpu_model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                             if l.startswith("model name"))
    except (OSError, StopIteration):
        ctx.cpu_model = "?"

    binary = check_tools(ctx.milestone)
    build_tools()
    scenarios = [s for s in SCENARIOS if int(ctx.milestone) >= s.min_milestone
                 and (a.scenarios is None or s.key in a.scenarios)]
    if not scenarios:
        raise BenchError(f"no scenario selected runs at milestone {ctx.milestone}")
    # HAProxy holds two descriptors per proxied connection (nginx and ours too, but nginx
    # spreads them over its workers), plus listeners, pollers and logs.
    need = 2 * (ctx.idle_conns + IDLE_MAXCONN_MARGIN) + 256
    if any(isinstance(s, IdleConns) for s in scenarios) and need > NOFILE_HARD:
        raise BenchError(f"--idle-conns {ctx.idle_conns} needs about {need} open files per "
                         f"proxy process; the hard limit is {NOFILE_HARD}")
    # Ours first: the report reads targets[0] as ours.
    targets = [Ours(ctx.milestone, binary), Nginx(), Haproxy(), Direct()]
    outdir = Path(a.out).resolve() if a.out else BUILD / "smoke" if a.smoke else RESULTS
    outdir.mkdir(parents=True, exist_ok=True)
    total = len(ctx.workers_list) * ctx.rounds * sum(s.applies(t) for s in scenarios
                                                      for t in targets)
    # Calibrated on measured wall times (wall_s in the json) on the 2-CPU VM; each
    # measurement also samples the machine's load for 0.5 s first (not in smoke), and a
    # busy machine adds waiting (at most QUIET_WAIT_BUDGET_S).
    est = len(ctx.workers_list) * (
        3 + (0 if ctx.smoke or not any(isinstance(s, ConnRate) for s in scenarios)
             else WARMUP_MAX_S)
        + ctx.rounds * sum(s.est_s(ctx) + (0.1 if ctx.smoke else 0.6)
                           for s in scenarios for t in targets if s.applies(t)))
    ctx.quiet_budget = min(QUIET_WAIT_BUDGET_S, max(60.0, RUN_LIMIT_S - RUN_MARGIN_S - est))
    log(f"bench: gw{ctx.milestone} vs nginx vs HAProxy vs direct; workers "
        f"{','.join(map(str, ctx.workers_list))}; {ctx.rounds} round(s); {total} measurements;"
        + (f" estimated {est / 60:.1f} min on a quiet machine (a busy one adds at most "
           f"{ctx.quiet_budget:.0f} s of waiting for quiet)" if not ctx.smoke else
           f" estimated {est:.0f} s"))

    samples, counter = {}, [0, total]
    t0 = time.monotonic()
    ctx.procs = Procs()
    try:
        with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
            ctx.tmp = Path(tmp)
            for w in ctx.workers_list:
                ctx.workers, ctx.pin = w, pin_plan(w)
                log(f"bench: workers {w}: {ctx.pin['text']}")
                try:
                    run_phase(ctx, targets, scenarios, samples, counter)
                finally:
                    ctx.procs.stop_all()
    finally:
        ctx.procs.stop_all()
    ctx.elapsed = time.monotonic() - t0

    md = write_report(ctx, targets, scenarios, samples, outdir)
    # latest.md is the last full run: a run of some scenarios only keeps its own files.
    latest = not a.smoke and outdir == RESULTS and a.scenarios is None
    if latest:
        shutil.copyfile(md, outdir / "latest.md")
    log(f"bench: {ctx.elapsed:.0f} s; report {md}" + (" (and latest.md)" if latest else ""))
    empty = [f"w{w} {s.key} {t.name}" for s in scenarios for w in ctx.workers_list
             for t in targets
             if s.applies(t) and not samples.get(s.key, {}).get(w, {}).get(t.name)]
    if empty or ctx.failures:
        log(f"bench: FAILED: {len(ctx.failures)} failed measurement(s); no figure for: "
            f"{', '.join(empty) or 'none'}")
        return 1
    return 0


def _on_term(signum, frame):
    raise KeyboardInterrupt  # unwinds through the finally blocks that stop every process


if __name__ == "__main__":
    # Also SIGINT: a shell that starts us in the background would otherwise leave it ignored.
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench: interrupted; every process it started was stopped", file=sys.stderr)
        sys.exit(130)

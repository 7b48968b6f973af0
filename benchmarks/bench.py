#!/usr/bin/python3
"""Side-by-side benchmark: our proxy against HAProxy, nginx and no proxy at all (direct).

    benchmarks/bench.py [--milestone NN] [--smoke] [--workers 1,2] [--rounds N] [--name NAME]
                        [--profile]

Everything runs on loopback (127.0.0.0/8) on ports picked free. For each worker count it
starts, per target, a backend of our own load tools (benchmarks/tools/, built here into
build/bench/) and the target in front of it, each proxy with a generated config in a temp
dir; then runs every scenario on every target, rounds interleaved across targets (the order
rotates each round), and writes benchmarks/results/<name>.md with tables, ratios and PNG
plots (gnuplot), plus latest.md and <name>.json (every sample). --smoke writes to
build/bench/smoke/ instead and only proves the harness works: a target that fails to start
or a scenario with no figure exits non-zero; speed is never asserted. See
benchmarks/README.md for what each scenario measures and the CPU pinning.

It installs nothing: `scripts/deps.sh bench` does (the Makefile runs it first), and the
release binaries come from `make V=release bins`.

Adding the L7 scenarios (milestone 04): a scenario names the route it needs (a route is a
protocol plus a backend kind); a target turns routes into listeners in its config. Add an
'http' branch to each target's config writer, an HTTP backend kind to BACKENDS, and
Scenario subclasses that drive wrk; set min_milestone = 4 so they run only from gw04 on.
"""
import argparse
import ctypes
import datetime
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
WARMUP_MAX_S = 20  # TIME_WAIT warm-up before the rounds (see warm_up)

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
    "blast": lambda b: [b / "blast", "server"],  # bulk sink and source (per request)
    "echo": lambda b: [b / "connrate", "echo"],  # echo for the connection-rate scenario
}


def start_backend(ctx, kind, tag, owner):
    argv = pinned(ctx.pin["load"], BACKENDS[kind](BUILD))
    p = ctx.procs.start(f"{kind}-{tag}", argv, ctx.tmp / f"backend-{kind}-{tag}.log",
                        pipe_stdout=True)
    ready, _, _ = select.select([p.stdout], [], [], START_TIMEOUT_S)
    line = p.stdout.readline().decode() if ready else ""
    m = re.match(r"port=(\d+)", line)
    if not m:
        raise BenchError(f"backend {kind} did not start:\n{log_tail(p.bench_log)}")
    ctx.backend_pgids.setdefault(owner, []).append(p.pid)
    return int(m.group(1))


# ---- targets -------------------------------------------------------------------------------

class Target:
    """A thing a client can connect to: our proxy, a peer proxy, or the backend directly.
    start() gets {route: (protocol, backend_port)} and returns {route: listen_port}."""

    name = label = ""
    proc = None

    def version(self):
        return ""

    def start(self, ctx, routes):
        raise NotImplementedError

    def pgid(self):
        return self.proc.pid if self.proc is not None else None

    def _launch(self, ctx, argv, routes, ready_word=None):
        ports = {r: free_port() for r in routes}
        self.write_config(ctx, routes, ports)
        logp = ctx.tmp / f"{self.name}-w{ctx.workers}.log"
        self.proc = ctx.procs.start(self.name, pinned(ctx.pin["proxy"], argv(ctx)), logp)
        deadline = time.monotonic() + START_TIMEOUT_S
        ok = ready_word is None or wait_log(logp, ready_word, self.proc, deadline)
        ok = ok and all(wait_port(port, self.proc, deadline) for port in ports.values())
        if not ok:
            raise BenchError(f"{self.label} did not start (workers {ctx.workers}):\n"
                             f"{log_tail(logp)}")
        return ports

    def conf(self, ctx, ext):
        return ctx.tmp / f"{self.name}-w{ctx.workers}.{ext}"

    @staticmethod
    def _need_tcp(routes):
        for r, (proto, _) in routes.items():
            if proto != "tcp":
                raise BenchError(f"route {r}: protocol {proto} is not written yet (L7 comes "
                                 "with milestone 04)")


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
        self._need_tcp(routes)
        # Info level: the `ready` line is info, and nothing per connection is logged
        # above debug. Buffers stay at their defaults (16 KiB chunks, like the peers').
        lines = [f"workers: {ctx.workers}", "drain_timeout: 1s", "log: {level: info}",
                 "listeners:"]
        for r in routes:
            lines += [f"  - name: {r}", f"    address: {LOOPBACK}:{ports[r]}",
                      "    protocol: tcp", f"    upstream: {r}",
                      f"    max_connections: {MAX_CONNECTIONS}",
                      f"    connect_timeout: {CONNECT_TIMEOUT_S}s",
                      f"    idle_timeout: {IDLE_TIMEOUT_S}s"]
        lines.append("upstreams:")
        for r, (_, bport) in routes.items():
            lines += [f"  {r}:", "    backends:", f"      - address: {LOOPBACK}:{bport}"]
        self.conf(ctx, "yaml").write_text("\n".join(lines) + "\n")

    def start(self, ctx, routes):
        return self._launch(ctx, lambda c: [self.binary, "-c", self.conf(c, "yaml")], routes,
                            ready_word="ready")


class Nginx(Target):
    name, label = "nginx", "nginx stream"

    def version(self):
        r = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
        return r.stderr.strip().replace("nginx version: nginx/", "")

    def write_config(self, ctx, routes, ports):
        self._need_tcp(routes)
        d = ctx.tmp
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
            for r, (_, bport) in routes.items())
        self.conf(ctx, "conf").write_text(f"""# generated by benchmarks/bench.py
load_module {NGINX_STREAM_MODULE};
daemon off;
worker_processes {ctx.workers};
worker_rlimit_nofile 20000;
pid {d}/nginx-w{ctx.workers}.pid;
error_log {d}/nginx-w{ctx.workers}-error.log warn;
events {{
    worker_connections {2 * MAX_CONNECTIONS};
}}
stream {{
    access_log off;
    tcp_nodelay on;{servers}
}}
""")

    def start(self, ctx, routes):
        conf = self.conf(ctx, "conf")
        return self._launch(ctx, lambda c: ["nginx", "-p", c.tmp, "-e",
                                            c.tmp / f"nginx-w{c.workers}-error.log",
                                            "-c", conf], routes)


class Haproxy(Target):
    name, label = "haproxy", "HAProxy tcp"

    def version(self):
        r = subprocess.run(["haproxy", "-v"], capture_output=True, text=True)
        m = re.search(r"version (\S+)", r.stdout)
        return m.group(1) if m else "?"

    def write_config(self, ctx, routes, ports):
        self._need_tcp(routes)
        sections = "".join(
            f"""
frontend {r}
    bind {LOOPBACK}:{ports[r]} shards by-thread
    default_backend {r}
backend {r}
    server s1 {LOOPBACK}:{bport}
"""
            for r, (_, bport) in routes.items())
        self.conf(ctx, "cfg").write_text(f"""# generated by benchmarks/bench.py (no `log`: no logging)
global
    nbthread {ctx.workers}
    maxconn {MAX_CONNECTIONS}
defaults
    mode tcp
    maxconn {MAX_CONNECTIONS}
    timeout connect {CONNECT_TIMEOUT_S}s
    timeout client {IDLE_TIMEOUT_S}s
    timeout server {IDLE_TIMEOUT_S}s
{sections}""")

    def start(self, ctx, routes):
        return self._launch(ctx, lambda c: ["haproxy", "-db", "-f", self.conf(c, "cfg")], routes)


# ---- scenarios -----------------------------------------------------------------------------

class Scenario:
    """One measurement kind. run() returns {"value": float, ...extras} for one target."""

    key = title = unit = ""
    route = ("", "", "")  # (route name, protocol, backend kind)
    higher_is_better = True  # of `value`; the report says which way each table reads
    min_milestone = 1
    extras = ()  # (key, column title, format) shown next to the median

    def run(self, ctx, port, target):
        raise NotImplementedError


class Bulk(Scenario):
    route = ("bulk", "tcp", "blast")
    unit = "MB/s"
    extras = (("cpu_s_per_gib", "proxy CPU s/GiB", "{:.2f}"),)

    def __init__(self, key, mode, title):
        self.key, self.mode, self.title = key, mode, title

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


class cpu_meter:
    """Measures, while the block runs, the CPU seconds of the target's processes (None for
    direct) and the load other processes put on the machine, in CPUs: everything busy that
    is neither the target, its backends, this script nor its clients. The box may be shared
    (someone's `make test`); the report shows that load so a noisy figure can be told."""

    def __init__(self, ctx, target):
        self.proxy = target.pgid()
        self.pgids = [g for g in [self.proxy] + ctx.backend_pgids[target.name] if g]
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
    # L7 scenarios (wrk) join here with min_milestone = 4.
]


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
    for tool, libs in (("blast", ["-lpthread"]), ("connrate", [])):
        src, out = TOOLS_SRC / f"{tool}.c", BUILD / tool
        if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
            continue
        cmd = ["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(src)] + libs
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
    routes = {s.route[0]: s.route for s in scenarios}
    ports = {}
    ctx.backend_pgids = {}
    for t in targets:
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
        wait_quiet(ctx)
        try:
            res = s.run(ctx, port, t)
        except BenchError as e:
            ctx.failures.append(f"w{ctx.workers} {s.key} {t.name}: {e}")
            log(f"{tag}  FAILED: {e}")
            if t.proc is not None and t.proc.poll() is not None:
                raise BenchError(f"{t.label} exited:\n{log_tail(t.proc.bench_log)}")
            return None
        extra = "  ".join(f"{title.split()[0]} " + fmt.format(res[k]) + " " +
                          title.split()[-1] for k, title, fmt in s.extras if k in res)
        if res["other_load"] >= OTHER_LOAD_WARN:
            extra += f"  (other processes: {res['other_load']:.2f} CPU)"
        retry = (attempt == 0 and res["other_load"] >= OTHER_LOAD_RETRY and ctx.retries > 0
                 and not ctx.smoke)
        log(f"{tag}  {res['value']:10.1f} {s.unit:<7} {extra}" +
            ("  -> noisy, measuring again" if retry else ""))
        if not retry:
            return res
        ctx.retries -= 1
        ctx.retried += 1
    return res


def run_phase(ctx, targets, scenarios, samples, counter):
    ports = start_phase(ctx, targets, scenarios)
    if not ctx.smoke and any(isinstance(s, ConnRate) for s in scenarios):
        warm_up(ctx, ports["direct"]["echo"])
    for rnd in range(ctx.rounds):
        for s in scenarios:
            # Rotate the order each round so no target always goes first (or last).
            order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
            for t in order:
                counter[0] += 1
                tag = (f"[{counter[0]:3d}/{counter[1]}] w{ctx.workers} round {rnd + 1}/"
                       f"{ctx.rounds}  {s.key:<14} {t.name:<8}")
                cell = samples.setdefault(s.key, {}).setdefault(ctx.workers, {}) \
                              .setdefault(t.name, [])
                res = measure(ctx, s, t, ports[t.name][s.route[0]], tag)
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


def med(samples, scen, w, tname, key="value"):
    vals = [r[key] for r in samples.get(scen, {}).get(w, {}).get(tname, []) if key in r]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "-"


def fmt_num(v):
    return "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")


def plot(ctx, s, samples, targets, path_png):
    dat = path_png.with_suffix(".dat")
    rows = []
    for t in targets:
        cols = [f'"{t.label}"']
        for w in ctx.workers_list:
            vals = [r["value"] for r in samples.get(s.key, {}).get(w, {}).get(t.name, [])]
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


def write_report(ctx, targets, scenarios, samples, outdir):
    ours, names = targets[0].name, [t.name for t in targets]
    by_name = {t.name: t for t in targets}
    L = [f"# Benchmark {ctx.name}: {targets[0].label} vs HAProxy vs nginx vs direct", "",
         f"- run: {ctx.stamp}, {ctx.elapsed:.0f} s; milestone {ctx.milestone} "
         f"({targets[0].version()}, release build); workers {', '.join(map(str, ctx.workers_list))}; "
         f"{ctx.rounds} round(s), interleaved{'; SMOKE run: figures are not meaningful' if ctx.smoke else ''}",
         f"- peers: HAProxy {by_name['haproxy'].version()} (tcp mode), nginx "
         f"{by_name['nginx'].version()} (stream module)",
         f"- machine: {os.cpu_count()} CPUs ({ctx.cpu_model}), Linux {platform.release()}",
         f"- bulk transfer: {ctx.bulk_bytes // MIB} MiB per run; connection rate: "
         f"{ctx.conn_seconds:g} s per run, {CONN_PARALLEL} parallel connectors",
         "- pinning: " + "; ".join(f"workers {w}: {pin_plan(w)['text']}" for w in ctx.workers_list),
         "- how to read this: [benchmarks/README.md](../README.md). Ratios compare medians "
         "measured in this same run; × HAProxy > 1 means faster than HAProxy.", ""]
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
    L += ["", "Goal (issue 7), L4: bulk throughput at least HAProxy's in tcp mode, both "
          "directions, at workers 1 and 2:", ""]
    for s in scenarios:
        if not isinstance(s, Bulk):
            continue
        for w in ctx.workers_list:
            a, b = med(samples, s.key, w, ours), med(samples, s.key, w, "haproxy")
            va = [r["value"] for r in samples.get(s.key, {}).get(w, {}).get(ours, [])]
            vb = [r["value"] for r in samples.get(s.key, {}).get(w, {}).get("haproxy", [])]
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
    for s in scenarios:
        png = outdir / f"{ctx.name}-{s.key}.png"
        plot(ctx, s, samples, targets, png)
        better = "higher" if s.higher_is_better else "lower"
        L += [f"## {s.key}: {s.title}", "", f"{s.unit}, {better} is better; the ratios divide "
              "this row's median by the peer's.", "", f"![{s.key}]({png.name})", "",
              "| workers | target | median " + s.unit + " | min–max | " +
              " | ".join(title for _, title, _ in s.extras) +
              " | × HAProxy | × nginx | × direct | other load (max CPU) |",
              "|---|---|---|---|" + "---|" * len(s.extras) + "---|---|---|---|"]
        for w in ctx.workers_list:
            for t in targets:
                vals = [r["value"] for r in samples.get(s.key, {}).get(w, {}).get(t.name, [])]
                if not vals:
                    L.append(f"| {w} | {t.label} | no figure | | " + "| " * len(s.extras) +
                             "| | | |")
                    continue
                load = max(r["other_load"] for r in samples[s.key][w][t.name])
                m, lo, hi = summarize(vals)
                ex = []
                for k, _, fmt in s.extras:
                    v = med(samples, s.key, w, t.name, k)
                    ex.append(fmt.format(v) if v is not None else "-")
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
         "conn_seconds": ctx.conn_seconds, "failures": ctx.failures, "samples": samples},
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
    ap.add_argument("--name", help="result name (default: DATE-mNN)")
    ap.add_argument("--scenarios", help="comma-separated subset of: " +
                    ", ".join(s.key for s in SCENARIOS))
    ap.add_argument("--out", help="directory for the report (default benchmarks/results, "
                    "smoke: build/bench/smoke); latest.md is written only to the default")
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
    # Ours first: the report reads targets[0] as ours.
    targets = [Ours(ctx.milestone, binary), Nginx(), Haproxy(), Direct()]
    outdir = Path(a.out).resolve() if a.out else BUILD / "smoke" if a.smoke else RESULTS
    outdir.mkdir(parents=True, exist_ok=True)
    total = len(ctx.workers_list) * ctx.rounds * len(scenarios) * len(targets)
    log(f"bench: gw{ctx.milestone} vs nginx vs HAProxy vs direct; workers "
        f"{','.join(map(str, ctx.workers_list))}; {ctx.rounds} round(s); {total} measurements")

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
    latest = not a.smoke and outdir == RESULTS
    if latest:
        shutil.copyfile(md, outdir / "latest.md")
    log(f"bench: {ctx.elapsed:.0f} s; report {md}" + (" (and latest.md)" if latest else ""))
    empty = [f"w{w} {s.key} {t.name}" for s in scenarios for w in ctx.workers_list
             for t in targets if not samples.get(s.key, {}).get(w, {}).get(t.name)]
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

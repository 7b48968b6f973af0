"""The targets: what a client connects to in a measurement. Our proxy (gwNN), nginx, HAProxy
and "direct" (the backend itself, no proxy), each turned from a set of routes into a config
file of its own and started on free loopback ports; the backends behind them (our load tools
in benchmarks/tools/, built here into build/bench/); and the checks that every tool is there.

The configs make the three proxies equivalent (same timeouts, buffers, keep-alive pools;
for TLS the same protocol, suite, curve, certificate and session cache); benchmarks/README.md
has the tables. A scenario never writes a config: it names the route it needs (scenarios.py)
and gets a port. The TLS certificate is made at run time (bench_cert), never committed.
"""
import copy
import os
import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .machine import (BUILD, LOOPBACK, NOFILE_HARD, ROOT, BenchError, free_port, log_tail,
                      pinned, wait_log, wait_port)

TOOLS_SRC = ROOT / "benchmarks" / "tools"
NGINX_STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")

START_TIMEOUT_S = 10  # a target or backend not ready by then has failed to start
CONNECT_TIMEOUT_S = 5  # the same connect and idle timeouts for every proxy
IDLE_TIMEOUT_S = 300
MAX_CONNECTIONS = 4096

# L7 (milestone 04): the same timeouts and limits for every proxy's http listener.
HEAD_TIMEOUT_S = 10  # the whole request head
BODY_TIMEOUT_S = 30  # silence while a request body streams
RESPONSE_TIMEOUT_S = 30  # the upstream's response (nginx: between two reads)
KEEPALIVE_TIMEOUT_S = IDLE_TIMEOUT_S  # idle client connection between requests
UPSTREAM_KEEPALIVE = 64  # idle upstream connections kept per worker (nginx `keepalive 64`)
HTTP_BUFFER = "16k"  # one 16 KiB buffer per direction (nginx proxy_buffer_size, HAProxy bufsize)

# TLS (route protocol "https": TLS terminated in front of the L7 route). Ours speaks TLS 1.2
# only (BearSSL) and, with an ECDSA key, prefers ECDHE-ECDSA-AES128-GCM-SHA256; the peers are
# held to that same protocol and suite and to one curve, so every handshake does the same
# work. Resumption by session id from a cache shared by all workers, no tickets (ours has
# none): nginx `ssl_session_cache shared:` (a per-worker builtin cache would miss on about
# half the resumptions at 2 workers, SO_REUSEPORT sends them anywhere), HAProxy its own
# cache (shared by its threads). Each holds about TLS_SESSIONS sessions.
TLS_DIR = BUILD / "tls"
TLS_CERT, TLS_KEY, TLS_PEM = TLS_DIR / "cert.pem", TLS_DIR / "key.pem", TLS_DIR / "cert+key.pem"
TLS_PROTOCOL = "TLSv1.2"
TLS_CIPHER = "ECDHE-ECDSA-AES128-GCM-SHA256"  # OpenSSL's name; ours: its first choice for EC
TLS_CURVE = "X25519"
TLS_SESSIONS = 20000  # ours' default session_cache size, HAProxy's default tune.ssl.cachesize
TLS_NGINX_CACHE = "5m"  # nginx: "one megabyte can store about 4000 sessions"
TLS_SESSION_LIFETIME_S = 300  # nginx and HAProxy's default (ours: LRU, no lifetime)
TLS_CONN_RESERVE = 64 * 1024  # ours: what one TLS connection may charge to buffers.max_memory

# Reloads (route protocol "http-reload", milestone 05 on: the l7-rps-reload scenario): the
# http route with one response header whose value is the config's generation as the harness
# counts it (Target.gen). Each reload writes the next value and has the proxy reload, so
# every reload really builds a new configuration, and a GET shows which one serves.
RELOAD_HEADER = "X-Bench-Generation"


def write_atomic(path, text):
    """Writes a config by rename, so a proxy that reloads never reads half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def bench_cert():
    """An ECDSA P-256 key and a self-signed certificate for localhost (30 days), made with
    the openssl CLI into build/bench/tls/ at every run (no key is committed); HAProxy reads
    both from one file."""
    TLS_DIR.mkdir(parents=True, exist_ok=True)
    for f in (TLS_KEY, TLS_PEM):
        f.unlink(missing_ok=True)
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", TLS_KEY, "-out",
                        TLS_CERT, "-days", "30", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost"], capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"openssl req (the bench certificate) failed:\n{r.stderr}")
    TLS_KEY.chmod(0o600)  # ours warns about a key readable by others
    TLS_PEM.touch(mode=0o600)
    TLS_PEM.write_text(TLS_CERT.read_text() + TLS_KEY.read_text())


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
    tls = True  # serves routes of protocol "https" (TLS in front of the http route)
    inst = ""  # file-name suffix of a fresh instance (memory scenarios); "" for the main one
    maxconn = MAX_CONNECTIONS  # the connection cap written into the config
    gen = 1  # RELOAD_HEADER's value in an http-reload route; reload() sets the next one

    def fresh(self, inst, maxconn):
        """A copy of this target for a freshly started instance of its own (its own config,
        log and listeners), with a connection cap of MAXCONN."""
        t = copy.copy(self)
        t.inst, t.maxconn, t.proc, t.gen = inst, maxconn, None, 1
        return t

    def version(self):
        return ""

    def start(self, ctx, routes):
        raise NotImplementedError

    def pgid(self):
        return self.proc.pid if self.proc is not None else None

    def reload(self, ctx, gen):
        """Rewrites the config with RELOAD_HEADER = GEN and has the proxy reload it the
        proxy's own way; returns without waiting for the reload to finish."""
        raise NotImplementedError

    def _rewrite(self, ctx, gen):
        self.gen = gen
        self.write_config(ctx, self.routes, self.ports)

    def _launch(self, ctx, argv, routes, ready_word=None):
        ports = {r: free_port() for r in routes}
        self.routes, self.ports = routes, ports  # for reload(): the same config, next gen
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

    # Route protocols: "tcp" (L4), "http" (L7, one route to the backend), "http-chain"
    # (L7 with the realistic middleware chain; only ours has it: the peers serve it as a
    # plain http route, and the chain scenario runs on ours only), "https" (the http
    # route behind TLS termination; not direct: the backend speaks no TLS) and "http-reload"
    # (the http route plus the RELOAD_HEADER response header, for reload()).
    @staticmethod
    def _need(routes, protos=("tcp", "http", "http-chain", "https", "http-reload")):
        for r, (proto, _) in routes.items():
            if proto not in protos:
                raise BenchError(f"route {r}: protocol {proto} is not supported")


class Direct(Target):
    name, label = "direct", "direct"
    tls = False

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
        lines = [f"workers: {ctx.workers}", "drain_timeout: 1s", "log: {level: info}"]
        # A TLS connection's engine buffers (about 37 KB) are charged to buffers.max_memory
        # (default 256 MiB); the peers have no such cap, so it is raised to fit every
        # connection the listener may hold (the idle scenario holds N + 256).
        tls_mem = sum(self.maxconn for p, _ in routes.values() if p == "https") * TLS_CONN_RESERVE
        if tls_mem > 256 * (1 << 20):
            lines.append(f"buffers: {{max_memory: {-(-tls_mem // (1 << 20))}MiB}}")
        lines.append("listeners:")
        for r, (proto, _) in routes.items():
            lines += [f"  - name: {r}", f"    address: {LOOPBACK}:{ports[r]}",
                      f"    protocol: {'tcp' if proto == 'tcp' else 'http'}",
                      f"    max_connections: {self.maxconn}",
                      f"    connect_timeout: {CONNECT_TIMEOUT_S}s",
                      f"    idle_timeout: {IDLE_TIMEOUT_S}s"]
            if proto == "tcp":
                lines.append(f"    upstream: {r}")
                continue
            if proto == "https":
                lines += ["    tls:", "      certificates:",
                          f"        - {{cert: \"{TLS_CERT}\", key: \"{TLS_KEY}\"}}",
                          f"      session_cache: {{size: {TLS_SESSIONS}}}"]
            lines += ["    http:", f"      request_head_timeout: {HEAD_TIMEOUT_S}s",
                      f"      body_timeout: {BODY_TIMEOUT_S}s",
                      f"      keepalive_timeout: {KEEPALIVE_TIMEOUT_S}s",
                      f"      response_timeout: {RESPONSE_TIMEOUT_S}s",
                      "    routes:", f"      - name: {r}", "        match: {path_prefix: /}",
                      f"        upstream: {r}"]
            if proto == "http-reload":
                lines += ["        middleware:", "          - headers: {response: {set: "
                          f"{{{RELOAD_HEADER}: \"{self.gen}\"}}}}}}"]
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
        write_atomic(self.conf(ctx, "yaml"), "\n".join(lines) + "\n")

    def start(self, ctx, routes):
        return self._launch(ctx, lambda c: [self.binary, "-c", self.conf(c, "yaml")], routes,
                            ready_word="ready")

    def reload(self, ctx, gen):
        # gw05: SIGHUP re-reads the file; the control thread builds and publishes the new
        # generation (log: `config generation N applied`), the workers keep their sockets.
        self._rewrite(ctx, gen)
        os.kill(self.proc.pid, signal.SIGHUP)


class Nginx(Target):
    name, label = "nginx", "nginx"
    # TLS on an http server: TLS_PROTOCOL, TLS_CIPHER and TLS_CURVE only, a session cache
    # shared by the workers, no tickets; ssl_buffer_size stays at its default (16k).
    ssl = f"""
        ssl_certificate {TLS_CERT};
        ssl_certificate_key {TLS_KEY};
        ssl_protocols {TLS_PROTOCOL};
        ssl_ciphers {TLS_CIPHER};
        ssl_prefer_server_ciphers on;
        ssl_ecdh_curve {TLS_CURVE};
        ssl_session_cache shared:bench_tls:{TLS_NGINX_CACHE};
        ssl_session_timeout {TLS_SESSION_LIFETIME_S}s;
        ssl_session_tickets off;"""

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
        header = lambda proto: (f'\n            add_header {RELOAD_HEADER} "{self.gen}" always;'
                                if proto == "http-reload" else "")
        https = "".join(
            f"""
    upstream u_{r} {{
        server {LOOPBACK}:{bport};
        keepalive {UPSTREAM_KEEPALIVE};
        keepalive_timeout {IDLE_TIMEOUT_S}s;
        keepalive_requests 100000000;
    }}
    server {{
        listen {LOOPBACK}:{ports[r]}{" ssl" if proto == "https" else ""} reuseport;{self.ssl if proto == "https" else ""}
        location / {{
            proxy_pass http://u_{r};{header(proto)}
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
        # A master and its workers (nginx's default, written out: `nginx -s reload` needs
        # the master and its pid file), in the foreground so the harness owns it.
        write_atomic(self.conf(ctx, "conf"), f"""# generated by benchmarks/bench.py
load_module {NGINX_STREAM_MODULE};
daemon off;
master_process on;
worker_processes {ctx.workers};
worker_rlimit_nofile {NOFILE_HARD};
pid {stem}.pid;
error_log {stem}-error.log warn;
events {{
    worker_connections {2 * self.maxconn};
}}{stream}{http}""")

    def _argv(self, ctx):
        conf = self.conf(ctx, "conf")
        return ["nginx", "-p", ctx.tmp, "-e", f"{conf.with_suffix('')}-error.log", "-c", conf]

    def start(self, ctx, routes):
        return self._launch(ctx, self._argv, routes)

    def reload(self, ctx, gen):
        # `nginx -s reload`: a second nginx reads the config (for the pid file) and sends
        # SIGHUP to the master, which parses it, starts new workers on the same listening
        # sockets and tells the old ones to finish their requests and exit.
        self._rewrite(ctx, gen)
        r = subprocess.run(pinned(ctx.pin["proxy"], self._argv(ctx) + ["-s", "reload"]),
                           capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if r.returncode != 0:
            raise BenchError(f"nginx -s reload: {r.stderr.strip()}")


class Haproxy(Target):
    name, label = "haproxy", "HAProxy"
    # TLS on a bind: the same protocol, suite and curve as the others, no tickets; its
    # session cache (tune.ssl.cachesize, shared by the threads) is set in `global`.
    ssl = (f" ssl crt {TLS_PEM} ssl-min-ver {TLS_PROTOCOL} ssl-max-ver {TLS_PROTOCOL} "
           f"ciphers {TLS_CIPHER} curves {TLS_CURVE} no-tls-tickets")

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
        header = lambda proto: (f'\n    http-response set-header {RELOAD_HEADER} "{self.gen}"'
                                if proto == "http-reload" else "")
        # L7: mode http (keep-alive both sides is HAProxy's default), idle upstream
        # connections shared by every client connection (`http-reuse always`), at most
        # UPSTREAM_KEEPALIVE idle per thread (pool-max-conn counts for the whole process).
        sections += "".join(
            f"""
frontend {r}
    mode http
    bind {LOOPBACK}:{ports[r]} shards by-thread{self.ssl if proto == "https" else ""}
    timeout http-request {HEAD_TIMEOUT_S}s
    timeout http-keep-alive {KEEPALIVE_TIMEOUT_S}s
    default_backend {r}
backend {r}
    mode http
    http-reuse always{header(proto)}
    timeout server {RESPONSE_TIMEOUT_S}s
    server s1 {LOOPBACK}:{bport} pool-max-conn {UPSTREAM_KEEPALIVE * ctx.workers} pool-purge-delay {IDLE_TIMEOUT_S}s
"""
            for r, (proto, bport) in routes.items() if proto != "tcp")
        tls_global = (f"\n    tune.ssl.cachesize {TLS_SESSIONS}\n    tune.ssl.lifetime "
                      f"{TLS_SESSION_LIFETIME_S}" if any(p == "https" for p, _ in routes.values())
                      else "")
        # An http-reload route: master-worker mode (-W), reloaded by SIGUSR2 to the master.
        self.master_worker = any(p == "http-reload" for p, _ in routes.values())
        write_atomic(self.conf(ctx, "cfg"), f"""# generated by benchmarks/bench.py (no `log`: no logging)
global
    nbthread {ctx.workers}
    maxconn {self.maxconn}{tls_global}
defaults
    mode tcp
    maxconn {self.maxconn}
    timeout connect {CONNECT_TIMEOUT_S}s
    timeout client {IDLE_TIMEOUT_S}s
    timeout server {IDLE_TIMEOUT_S}s
{sections}""")

    def start(self, ctx, routes):
        # -db: in the foreground (the harness owns it); with -W, the master stays there and
        # its worker is its child, in the same process group.
        return self._launch(ctx, lambda c: ["haproxy"] + (["-W"] if self.master_worker else [])
                            + ["-db", "-f", self.conf(c, "cfg")], routes)

    def reload(self, ctx, gen):
        # Master-worker reload: SIGUSR2 makes the master re-execute itself on the new config
        # and fork a new worker, which takes the listening sockets over from the old one; the
        # old worker stops accepting, finishes its connections and exits.
        self._rewrite(ctx, gen)
        os.kill(self.proc.pid, signal.SIGUSR2)


# ---- a fresh instance (memory scenarios) -----------------------------------------------

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


# ---- the tools: our load generators and backends, and the peers --------------------------

def build_tools():
    """Compiles our load tools and HTTP backend (benchmarks/tools/*.c; tlsrate on OpenSSL)
    into build/bench/, each only when its source, loopback.h or this file is newer than the binary."""
    BUILD.mkdir(parents=True, exist_ok=True)
    for tool, libs in (("blast", ["-lpthread"]), ("connrate", []), ("httpback", ["-lpthread"]),
                       ("tlsrate", ["-lssl", "-lcrypto"])):
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
    """Raises BenchError naming what is missing (the peers, gnuplot, wrk, ...: `scripts/deps.sh
    bench` installs them); returns the path of our release binary for MILESTONE."""
    missing = [t for t in ("nginx", "haproxy", "gnuplot", "taskset", "cc", "wrk", "openssl")
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

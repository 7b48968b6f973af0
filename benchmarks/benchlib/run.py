"""The run: for each worker count a phase that starts every target with backends of its own,
checks each forwards, warms the TIME_WAIT table, then runs the rounds (every scenario on
every target, the target order rotating each round; the smoke: each scenario on one target
per phase, see measured()), each measurement after waiting for a
quiet machine and measured again when other processes were busy. Samples are collected as
{scenario: {workers: {target: [result, ...]}}} for report.py.

Also the run's settings (new_ctx: the command line's choices and the smoke defaults), its
estimate and its budgets (quiet waiting, retries), and the optional perf profile.
"""
import datetime
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .machine import (BUILD, GIB, LOOPBACK, MIB, OTHER_LOAD_WARN, ROOT, BenchError, Procs,
                      child_setup, log, log_tail, machine_cpu_seconds, own_cpu_seconds,
                      pin_plan, pinned, run_client, time_wait)
from .scenarios import (CONN_PARALLEL, IDLE_CONNS, IDLE_CONNS_SMOKE, TLS_SECONDS,
                        TLS_SECONDS_SMOKE, WRK_SECONDS, WRK_SECONDS_SMOKE, ConnRate)
from .targets import default_milestone, start_backend

# Other processes' load (CPUs) from which a measurement is taken once more (within
# RETRY_BUDGET per run); from machine.OTHER_LOAD_WARN on it is only flagged as noisy.
OTHER_LOAD_RETRY = 0.25
RETRY_BUDGET = 12
QUIET_WAIT_MAX_S = 15  # per measurement: wait this long at most for other load to settle
QUIET_WAIT_BUDGET_S = 300  # in all, so a busy machine cannot stretch the run past its budget
RUN_LIMIT_S = 15 * 60  # issue 7: a full run stays under 15 minutes, waiting included, so the
RUN_MARGIN_S = 30  # waiting budget shrinks to what the estimate leaves under the limit
WARMUP_MAX_S = 20  # TIME_WAIT warm-up before the rounds (see warm_up)
WARMUP_EST_S = 8  # what it took in the runs measured (the run's length less its measurements)
# The other load is sampled this long before each CPU-bound measurement: /proc/stat counts
# 100 ticks a second per CPU, so 0.3 s on 2 CPUs resolves 0.017 CPU against the 0.1 that
# marks a figure noisy (0.5 s until issue 15: its TLS scenarios needed the minute it saves).
QUIET_SAMPLE_S = 0.3


class Ctx:
    """The run's settings and state, shared by every phase and measurement."""


def new_ctx(a):
    """The run's settings from the parsed command line A (bench.py parse_args)."""
    ctx = Ctx()
    ctx.milestone = a.milestone or default_milestone()
    ctx.smoke, ctx.profile, ctx.workers_list = a.smoke, a.profile, a.workers_list
    ctx.rounds = a.rounds or (1 if a.smoke else 3)
    ctx.bulk_bytes = 64 * MIB if a.smoke else GIB
    ctx.conn_seconds = 1.0 if a.smoke else 5.0
    ctx.wrk_seconds = WRK_SECONDS_SMOKE if a.smoke else WRK_SECONDS
    ctx.tls_seconds = TLS_SECONDS_SMOKE if a.smoke else TLS_SECONDS
    ctx.tls_params = {}  # {(workers, target name): what the start check's handshake negotiated}
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
    return ctx


def estimate(ctx, targets, scenarios):
    """The run's wall time on a quiet machine, in seconds. Calibrated on measured wall times
    (wall_s in the json, and the run's length: 2026-12-07-m04 took 662 s for 541 s of
    measurements, 282 of them, 198 CPU-bound with a 0.5 s load sample each) on the 2-CPU
    VM: each CPU-bound measurement also samples the machine's load first (QUIET_SAMPLE_S;
    not in smoke); a memory one starts its fresh instance inside its own wall time. A busy
    machine adds waiting (at most QUIET_WAIT_BUDGET_S)."""
    per = lambda s: 0.1 if ctx.smoke else QUIET_SAMPLE_S + 0.03 if s.cpu_bound else 0.05
    return (len(ctx.workers_list) * (
        3 + (0 if ctx.smoke or not any(isinstance(s, ConnRate) for s in scenarios)
             else WARMUP_EST_S))
        + ctx.rounds * sum(s.est_s(ctx) + per(s) for w in ctx.workers_list
                           for s in scenarios for t in targets if measured(ctx, s, t, w)))


def run_all(ctx, targets, scenarios):
    """Prints the run's estimate, then runs one phase per worker count, every process it
    starts stopped after each phase (and on any exit); returns the samples."""
    ctx.targets, ctx.scenarios = targets, scenarios  # for measured()
    total = ctx.rounds * sum(measured(ctx, s, t, w) for w in ctx.workers_list
                             for s in scenarios for t in targets)
    est = estimate(ctx, targets, scenarios)
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
    return samples


def start_phase(ctx, targets, scenarios):
    """Starts, for one worker count, each target with backends of its own (separate
    backends keep one target's TIME_WAIT sockets out of another's port space). Returns
    {target name: {route: port}}, after a short functional check through each."""
    all_routes = {s.route[0]: s.route for s in scenarios if not s.fresh}
    if "chain" in all_routes:  # compared with the plain route in the same measurement
        all_routes.setdefault("http", ("http", "http", "http"))
    ports = {}
    ctx.backend_pgids = {}
    for t in targets:
        # TLS routes only on the targets that terminate TLS (not direct)
        routes = {r: v for r, v in all_routes.items() if v[1] != "https" or t.tls}
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
                if proto in ("http", "http-chain"):
                    run_client([BUILD / "connrate", "client", "--connect",
                                f"{LOOPBACK}:{ports[t.name][r]}", "--parallel", 2,
                                "--duration", 0.2, "--http"], timeout=10)
                elif proto == "https":  # the same over TLS; and what the handshake chose
                    out = run_client([BUILD / "tlsrate", "client", "--connect",
                                      f"{LOOPBACK}:{ports[t.name][r]}", "--parallel", 2,
                                      "--duration", 0.2, "--http"], timeout=10)
                    ctx.tls_params[(ctx.workers, t.name)] = (
                        f"{out['proto']} {out['cipher']} {out['kx']}")
        except BenchError as e:
            raise BenchError(f"{t.label} does not forward (workers {ctx.workers}): {e}")
    return ports


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
    that are not ours use less than OTHER_LOAD_WARN CPU over QUIET_SAMPLE_S: on a shared machine
    someone's test run would otherwise land inside some figures and not others."""
    if ctx.smoke:
        return
    t0 = time.monotonic()
    limit = min(QUIET_WAIT_MAX_S, ctx.quiet_budget)
    while True:
        m0, o0 = machine_cpu_seconds(), own_cpu_seconds()
        time.sleep(QUIET_SAMPLE_S)
        # Our idle proxies and backends use next to nothing between measurements.
        load = (machine_cpu_seconds() - m0 - (own_cpu_seconds() - o0)) / QUIET_SAMPLE_S
        waited = time.monotonic() - t0
        if load < OTHER_LOAD_WARN or waited >= limit:
            break
    extra = max(0.0, waited - QUIET_SAMPLE_S)  # beyond the one sample every measurement takes
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


def measured(ctx, s, t, w):
    """Whether scenario S is measured on target T at W workers. A full run measures every
    applicable pair. The smoke only proves the harness works, so it measures each scenario
    on one target per phase, the target rotating with the scenario's place in the list and
    with the phase (so across the two phases a scenario meets two targets, and each target
    is measured in several scenarios of each phase). Every target is still started in every
    phase with every route, and checked to forward through each (start_phase)."""
    if not ctx.smoke:
        return s.applies(t)
    fit = [x for x in ctx.targets if s.applies(x)]
    i = [x.key for x in ctx.scenarios].index(s.key) + ctx.workers_list.index(w)
    return bool(fit) and fit[i % len(fit)] is t


def run_phase(ctx, targets, scenarios, samples, counter):
    ports = ctx.ports = start_phase(ctx, targets, scenarios)
    if not ctx.smoke and any(isinstance(s, ConnRate) for s in scenarios):
        warm_up(ctx, ports["direct"]["echo"])
    for rnd in range(ctx.rounds):
        for s in scenarios:
            # Rotate the order each round so no target always goes first (or last).
            order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
            for t in order:
                if not measured(ctx, s, t, ctx.workers):
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
                               preexec_fn=child_setup)
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

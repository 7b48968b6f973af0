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
build/bench/smoke/ instead and only proves the harness works: every target starts and
forwards on every route, each scenario is measured on one target per worker count (rotating:
benchlib/run.py, measured()), and a target that fails to start or a measurement with no
figure exits non-zero; speed is never asserted. See
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
1-byte and 8 KiB chunks and reports the proxy's CPU per GiB of payload. The TLS scenarios
(tls-*, milestone 04 on, proxies only) put TLS 1.2 in front of the http route, with a
certificate made at run time (openssl CLI, build/bench/tls/): handshakes/s full and resumed
(tools/tlsrate.c, on OpenSSL), wrk over https, and RSS per idle TLS connection (tlsrate hold). The full run stays
under 15 minutes on a quiet machine (issue 7): the durations are chosen for that, and the
script prints its estimate (Scenario.est_s).

Where things live (benchmarks/benchlib/, one room per concern; each file says what it owns):
machine.py (processes, /proc readings, ports, CPU pinning), targets.py (our proxy, nginx,
HAProxy, direct, their configs and backends, the tools), scenarios.py (what each scenario
runs and measures), run.py (phases, rounds, one measurement, the estimate) and report.py
(tables, goal lines, plots, json). This file is the command line only.
"""
import argparse
import re
import shutil
import signal
import sys
from pathlib import Path

from benchlib.machine import BUILD, NOFILE_HARD, ROOT, BenchError, log
from benchlib.report import write_report
from benchlib.run import measured, new_ctx, run_all
from benchlib.scenarios import (IDLE_CONNS, IDLE_CONNS_SMOKE, IDLE_MAXCONN_MARGIN, SCENARIOS,
                                IdleConns, write_wrk_script)
from benchlib.targets import (Direct, Haproxy, Nginx, Ours, bench_cert, build_tools,
                              check_tools)

RESULTS = ROOT / "benchmarks" / "results"


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
    ctx = new_ctx(a)

    binary = check_tools(ctx.milestone)
    build_tools()
    write_wrk_script()
    scenarios = [s for s in SCENARIOS if int(ctx.milestone) >= s.min_milestone
                 and (a.scenarios is None or s.key in a.scenarios)]
    if not scenarios:
        raise BenchError(f"no scenario selected runs at milestone {ctx.milestone}")
    if any(s.route[1] == "https" for s in scenarios):
        bench_cert()  # made at every run, never committed
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

    samples = run_all(ctx, targets, scenarios)

    md = write_report(ctx, targets, scenarios, samples, outdir)
    # latest.md is the last full run: a run of some scenarios only keeps its own files.
    latest = not a.smoke and outdir == RESULTS and a.scenarios is None
    if latest:
        shutil.copyfile(md, outdir / "latest.md")
    log(f"bench: {ctx.elapsed:.0f} s; report {md}" + (" (and latest.md)" if latest else ""))
    empty = [f"w{w} {s.key} {t.name}" for s in scenarios for w in ctx.workers_list
             for t in targets
             if measured(ctx, s, t, w) and not samples.get(s.key, {}).get(w, {}).get(t.name)]
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

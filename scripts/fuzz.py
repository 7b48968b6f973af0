#!/usr/bin/python3
"""Runs the libFuzzer targets (`make fuzz`; NOTES.md, "Fuzzing").

  fuzz.py list                     the targets, with their seeds and dictionary
  fuzz.py run NAME [--seconds S]   fuzz one target for S seconds (default 60), niced
  fuzz.py smoke [--seconds S] [--jobs J]
                                   every target for S seconds (default 3) from its committed
                                   seeds only, J at once (default 2): the part of `make test`
                                   that proves the targets still build and run
  fuzz.py fill [--cpu-minutes M] [--jobs J] [--chunk S]
                                   long runs: fuzz the target with the fewest CPU-minutes
                                   in the log, S seconds at a time (default 600), J at once
                                   (default 1), until every target has M (default 30)
  fuzz.py stats                    CPU-minutes, runs and findings per target, from the log

A target is common/fuzz/fuzz_NAME.c or milestones/NN-x/fuzz/fuzz_NAME.c, built by
`make V=fuzz fuzz-bins` into build/fuzz/fuzz/fuzz_NAME. Its committed seeds are
<folder>/fuzz/corpus/NAME/ and are never written to: what a run discovers goes to
build/fuzz/corpus/NAME/, crashes and leaks to build/fuzz/artifacts/. Every `run` appends a
line to common/fuzz/runs.jsonl (CPU seconds, runs, corpus size, result), which `stats` sums.
The log is committed: machines come and go, long runs span sessions, and the totals in
NOTES.md must survive both (the grown corpus does not; it is rebuilt from the seeds).
"""
import argparse
import concurrent.futures
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "fuzz")
LOG = os.path.join(ROOT, "common", "fuzz", "runs.jsonl")
STOP = os.path.join(BUILD, "STOP")  # `fuzz.py stop` creates it: `fill` starts no new chunk
INTERRUPTED = 72


def targets():
    """name -> dict(src, folder, bin, seeds, dict)."""
    srcs = glob.glob(os.path.join(ROOT, "common", "fuzz", "fuzz_*.c"))
    srcs += glob.glob(os.path.join(ROOT, "milestones", "*", "fuzz", "fuzz_*.c"))
    out = {}
    for src in sorted(srcs):
        stem = os.path.splitext(os.path.basename(src))[0]
        name = stem[len("fuzz_"):]
        folder = os.path.dirname(src)
        d = os.path.join(folder, name + ".dict")
        out[name] = dict(src=os.path.relpath(src, ROOT), bin=os.path.join(BUILD, "fuzz", stem),
                         seeds=os.path.join(folder, "corpus", name), dict=d if os.path.exists(d) else None)
    return out


def libfuzzer_args(t, seconds, corpus):
    args = [t["bin"], corpus]
    if os.path.isdir(t["seeds"]):
        args.append(t["seeds"])
    if t["dict"]:
        args.append("-dict=" + t["dict"])
    os.makedirs(os.path.join(BUILD, "artifacts"), exist_ok=True)
    name = os.path.basename(t["bin"])[len("fuzz_"):]
    # -timeout: an input slower than 10 s is a hang (a finding); -rss_limit_mb: a target
    # that grows past 2 GiB is one too. Leak checking is libFuzzer's default under ASan.
    args += [f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1",
             "-artifact_prefix=" + os.path.join(BUILD, "artifacts", name + "-")]
    return args


def run_one(name, t, seconds, corpus, nice):
    os.makedirs(corpus, exist_ok=True)
    cmd = (["nice", "-n", "19"] if nice else []) + libfuzzer_args(t, seconds, corpus)
    t0 = time.time()
    # The unit tests' string checks (gwtest.SAN_ENV): a strstr past a buffer's end is a finding.
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:strict_string_checks=1")
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         errors="replace", env=env)
    if nice:  # a long run says which process it is, so that it can be interrupted alone
        with open(os.path.join(BUILD, f"running-{name}.pid"), "w") as f:
            f.write(f"{p.pid}\n")
    out = p.stdout.read()
    p.stdout.close()
    # wait4, not RUSAGE_CHILDREN: `fill` runs several targets at once, and the CPU time must be
    # this child's own (nice execs the fuzzer, so the pid is the fuzzer's).
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    cpu = ru.ru_utime + ru.ru_stime
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", out)
    runs = int(m.group(1)) if m else 0
    arts = re.findall(r"Test unit written to (\S+)", out)
    # 72 is libFuzzer's exit code when interrupted (SIGINT): a run cut short, not a finding.
    rc = 0 if p.returncode == INTERRUPTED else p.returncode
    return dict(target=name, seconds=round(time.time() - t0, 1), cpu=round(cpu, 1), runs=runs,
                corpus=len(os.listdir(corpus)), rc=rc, artifacts=arts,
                when=time.strftime("%Y-%m-%d %H:%M:%S")), out


def cmd_list(ts):
    for name, t in ts.items():
        seeds = len(os.listdir(t["seeds"])) if os.path.isdir(t["seeds"]) else 0
        print(f"  {name:12} {t['src']:44} {seeds:3} seeds{'  + dict' if t['dict'] else ''}")
    print("run one with: make fuzz T=NAME S=SECONDS")


LOG_LOCK = threading.Lock()


def cmd_run(ts, name, seconds, quiet=False):
    if name not in ts:
        sys.exit(f"no fuzz target '{name}'; have: {' '.join(ts)}")
    t = ts[name]
    rec, out = run_one(name, t, seconds, os.path.join(BUILD, "corpus", name), nice=True)
    with LOG_LOCK:
        if not quiet or rec["rc"]:
            print(out[-6000:] if rec["rc"] else "\n".join(out.splitlines()[-12:]))
        with open(LOG, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(f"{rec['when']} {name}: {rec['runs']} runs, {rec['cpu'] / 60:.1f} CPU-minutes, corpus {rec['corpus']}, "
              f"{'FINDING: ' + ' '.join(rec['artifacts']) if rec['rc'] else 'nothing found'}", flush=True)
    return rec["rc"]


def totals():
    """target -> dict(cpu seconds, runs, last corpus size, findings) summed over the log."""
    rows = {}
    if os.path.exists(LOG):
        for line in open(LOG):
            r = json.loads(line)
            s = rows.setdefault(r["target"], dict(cpu=0.0, runs=0, corpus=0, findings=[]))
            s["cpu"] += r["cpu"]
            s["runs"] += r["runs"]
            s["corpus"] = r["corpus"]
            s["findings"] += [os.path.basename(a) for a in r.get("artifacts", [])]
    return rows


def cmd_fill(ts, minutes, jobs, chunk):
    """Long runs: J threads, each taking the target with the fewest CPU-minutes (not already
    being fuzzed) for CHUNK seconds, until every target has MINUTES. A finding stops nothing:
    it is in the log and in build/fuzz/artifacts/, and the next chunk goes on. To stop it and
    keep every CPU-second in the log: `scripts/fuzz.py stop` (no new chunk starts; the running
    fuzzers are interrupted, and their runs are logged as cut short)."""
    if os.path.exists(STOP):
        os.unlink(STOP)
    busy = set()
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if os.path.exists(STOP):
                    return
                have = totals()
                todo = sorted((have.get(n, {}).get("cpu", 0.0), n) for n in ts if n not in busy)
                todo = [(c, n) for c, n in todo if c < minutes * 60]
                if not todo:
                    return
                name = todo[0][1]
                busy.add(name)
            try:
                cmd_run(ts, name, chunk, quiet=True)
            finally:
                with lock:
                    busy.discard(name)

    threads = [threading.Thread(target=worker) for _ in range(jobs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def cmd_stop():
    """Stops a `fill` gracefully: the STOP file keeps it from starting another chunk, and
    SIGINT ends each running fuzzer (libFuzzer exits with 72), whose run is then logged."""
    os.makedirs(BUILD, exist_ok=True)
    open(STOP, "w").close()
    for f in glob.glob(os.path.join(BUILD, "running-*.pid")):
        try:
            os.kill(int(open(f).read()), signal.SIGINT)
        except (ProcessLookupError, ValueError):
            pass


def smoke(seconds, names=None, jobs=2):
    """Runs every target (or NAMES) for SECONDS from a fresh corpus plus its seeds, JOBS at
    a time (a fuzzer is one single-threaded process: on 2 cores two of them take the time
    of one, each with its own CPU). Returns a list of (name, ok, seconds, detail), in the
    targets' order."""
    def one(item):
        name, t = item
        corpus = os.path.join(BUILD, "smoke", name)
        shutil.rmtree(corpus, ignore_errors=True)
        if not os.path.exists(t["bin"]):
            return (name, False, 0.0, f"{t['bin']} was not built")
        rec, out = run_one(name, t, seconds, corpus, nice=False)
        return (name, rec["rc"] == 0, rec["seconds"], out[-4000:] if rec["rc"] else f"{rec['runs']} runs")

    todo = [(n, t) for n, t in targets().items() if not names or n in names]
    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        return list(pool.map(one, todo))


def cmd_stats():
    rows = totals()
    print("| target | CPU-minutes | runs | corpus | findings |")
    print("|---|---:|---:|---:|---|")
    for name in targets():
        s = rows.get(name, dict(cpu=0.0, runs=0, corpus=0, findings=[]))
        print(f"| {name} | {s['cpu'] / 60:.1f} | {s['runs']:,} | {s['corpus']} | {', '.join(s['findings']) or '-'} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["list", "run", "smoke", "fill", "stats", "stop"])
    ap.add_argument("name", nargs="?")
    ap.add_argument("--seconds", type=int)
    ap.add_argument("--cpu-minutes", type=float, default=30.0)
    ap.add_argument("--jobs", type=int, help="fill: targets at once (default 1); smoke: (default 2)")
    ap.add_argument("--chunk", type=int, default=600)
    args = ap.parse_args()
    ts = targets()
    if args.command == "list":
        cmd_list(ts)
    elif args.command == "run":
        if not args.name:
            sys.exit("usage: fuzz.py run NAME [--seconds S]")
        sys.exit(1 if cmd_run(ts, args.name, args.seconds or 60) else 0)
    elif args.command == "stop":
        cmd_stop()
    elif args.command == "fill":
        cmd_fill(ts, args.cpu_minutes, args.jobs or 1, args.chunk)
    elif args.command == "smoke":
        bad = 0
        for name, ok, secs, detail in smoke(args.seconds or 3, jobs=args.jobs or 2):
            print(f"[{'ok  ' if ok else 'FAIL'}] fuzz {name:12} {secs:5.1f}s  {detail if ok else ''}")
            if not ok:
                bad += 1
                print(detail)
        sys.exit(1 if bad else 0)
    else:
        cmd_stats()


if __name__ == "__main__":
    main()

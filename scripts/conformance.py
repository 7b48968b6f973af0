#!/usr/bin/python3
"""`make conformance`: the varnishtest conformance scripts, conformance/NN/*.vtc, against gwNN.

Each script is one behaviour of the HTTP/1.1 proxy written as `client` and `server` blocks
around the gateway (conformance/README.md). Every script runs in its own varnishtest
process, `--jobs` at a time, so that each gets its own result, time and log; a script
passes when varnishtest exits 0: every `expect` held, the gateway exited 0 at the end.
`make test` runs them as a stage of scripts/gwtest.py (suite conformance/NN, on the plain
build and on the TSan build with 2 workers); `make conformance` runs them alone:

  make conformance [M=NN] [T=name] [V=plain|tsan] [JOBS=2]

T keeps the scripts whose name contains it (or matches it, with * or ?); like pytest -k,
"a or b" keeps either. A failing script prints varnishtest's log of it, and its directory
(gw.yaml, the gateway's stderr) is left under build/VARIANT/vtc/.
"""
import argparse
import concurrent.futures
import fnmatch
import glob
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARNISHTEST = "varnishtest"
# gw.sh reports a gateway that could not bind the port varnishtest lent it (another
# process took it between the two): that script is run once more on a new port.
IN_USE = re.compile(r"address already in use", re.I)
SAN_ENV = {
    # exitcode=66: a race the gateway reported fails `process pgw -kill TERM -wait`.
    "TSAN_OPTIONS": "halt_on_error=0:second_deadlock_stack=1:exitcode=66",
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
}


def script_paths(ms, only=None):
    """The scripts of milestone MS ("04-http" or "04"), sorted, filtered by ONLY."""
    paths = sorted(glob.glob(os.path.join(ROOT, "conformance", ms[:2], "*.vtc")))
    return [p for p in paths if selected(name_of(p), only)]


def name_of(path):
    return os.path.splitext(os.path.basename(path))[0]


def selected(name, only):
    if not only:
        return True
    for word in re.split(r"\s+or\s+", only.strip()):
        if any(ch in word for ch in "*?[") and fnmatch.fnmatchcase(name, word):
            return True
        if word in name:
            return True
    return False


def bin_dir(variant):
    return os.path.join(ROOT, "build", "bin") if variant == "plain" else os.path.join(ROOT, "build", variant, "bin")


def run_script(path, ms, variant, timeout):
    """Runs one script; returns a case dict (name, ok, detail, seconds)."""
    tmp = os.path.join(ROOT, "build", variant, "vtc")
    os.makedirs(tmp, exist_ok=True)
    env = dict(os.environ, **SAN_ENV)
    env.update(TMPDIR=tmp, GW_BIN=os.path.join(bin_dir(variant), "gw" + ms[:2]),
               GW_SANITIZER="" if variant == "plain" else variant)
    env.setdefault("GW_WORKERS", "2")
    # -l: leave the directory of a failing script (gw.yaml, the gateway's stderr).
    cmd = [VARNISHTEST, "-l", "-t", str(timeout), path]
    t0 = time.time()
    for attempt in (1, 2):
        try:
            p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace", timeout=timeout + 30)
            out, rc = p.stdout, p.returncode
        except subprocess.TimeoutExpired as ex:
            out = ex.stdout.decode(errors="replace") if isinstance(ex.stdout, bytes) else (ex.stdout or "")
            out, rc = out + f"\n(varnishtest itself still running after {timeout + 30}s: killed)", -1
        if rc == 0 or attempt == 2 or not IN_USE.search(out):
            break
    detail = ""
    if rc != 0:
        left = re.findall(r"(/\S+/vtc\.\d+\.[0-9a-f]+)", out)
        detail = out[-8000:] + (f"\n(its files: {left[-1]})" if left else "")
    return {"name": name_of(path), "ok": rc == 0, "detail": detail, "seconds": round(time.time() - t0, 2)}


def run_suite(ms, variant, jobs=2, only=None):
    """Runs the scripts of MS against the VARIANT build (already built); returns the cases
    (dicts name, ok, detail), in script order, or None when MS has no scripts."""
    paths = script_paths(ms, only)
    if not paths and not glob.glob(os.path.join(ROOT, "conformance", ms[:2], "*.vtc")):
        return None
    if not paths:
        return []
    if shutil.which(VARNISHTEST) is None:
        return [{"name": "(varnishtest)", "ok": False,
                 "detail": "varnishtest not found: `make deps` installs Debian's varnish package"}]
    timeout = 60 if variant == "plain" else 180
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda p: run_script(p, ms, variant, timeout), paths))


def milestones(arg):
    dirs = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "conformance", "[0-9][0-9]")))
    return [d for d in dirs if arg is None or d == arg]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--milestone", help="NN: only this stage's scripts")
    ap.add_argument("--only", help="only scripts whose name contains this (or matches it, with * ?)")
    ap.add_argument("--variant", default="plain", choices=("plain", "tsan"))
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    mss = milestones(args.milestone)
    if not mss:
        sys.exit(f"conformance: no scripts for milestone {args.milestone} (conformance/NN/*.vtc)")
    passed = failed = 0
    t0 = time.time()
    for nn in mss:
        ms = next((os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "milestones", nn + "-*"))), nn)
        b = subprocess.run(["make", "--no-print-directory", f"-j{args.jobs}", f"V={args.variant}", f"M={nn}", "bins"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if b.returncode != 0:
            print(b.stdout[-6000:])
            sys.exit(f"conformance: the {args.variant} build of gw{nn} failed")
        cases = run_suite(ms, args.variant, args.jobs, args.only) or []
        for c in cases:
            mark = "ok  " if c["ok"] else "FAIL"
            print(f"[{mark}] {args.variant:5} conformance/{nn}/{c['name']:44} {c.get('seconds', 0):6.1f}s", flush=True)
            if not c["ok"]:
                print(c["detail"])
        passed += sum(1 for c in cases if c["ok"])
        failed += sum(1 for c in cases if not c["ok"])
    print(f"\nconformance: {time.time() - t0:.0f}s")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or passed == 0 else 0)


if __name__ == "__main__":
    main()

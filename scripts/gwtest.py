#!/usr/bin/python3
"""The test driver behind `make test` and `make tsan`.

For each selected milestone (all of them by default) it runs, in order:
  1. the unit tests (cmocka) of common/ and of the milestone, built with ASan + UBSan;
  2. the milestone's end-to-end suite (pytest, e2e/test_NN_*.py) against the plain build,
     then its conformance scripts (varnishtest, conformance/NN/*.vtc; scripts/conformance.py);
  3. all three again against the ThreadSanitizer build, with 2 workers.
A full run (no M, no T) then runs every fuzz target for a few seconds, check-labs and the
benchmark smoke. It prints one line per suite as it goes and a summary at the end, and exits non-zero if
anything failed. Results are also written to build/test-results.json.

What it prints about a failing test is short by default: one line when the test stopped at
a lab stub (which lab, which function, where), otherwise its name and the first
DETAIL_LINES lines of what went wrong; a test that already failed the same way on an
earlier build is counted, not listed again. `T=name` (--only) or `VERBOSE=1` (--verbose)
prints everything: cmocka's whole output for the test, pytest's tracebacks, the proxy's
stderr and the e2e transcript.

Debian's /usr/bin/python3 runs this (it has pytest; another python3 on PATH may not).
"""
import argparse
import concurrent.futures
import fnmatch
import glob
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conformance  # noqa: E402 (a sibling script)
PYTHON = "/usr/bin/python3"

SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:strict_string_checks=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    # exitcode=66 makes a race fail the unit test binary even when its asserts pass.
    "TSAN_OPTIONS": "halt_on_error=0:second_deadlock_stack=1:exitcode=66",
    "CMOCKA_MESSAGE_OUTPUT": "stdout",
}


# The builds an e2e suite runs on; each builds stage NN's binaries with `make bins`, which
# are gw01 .. gwNN (scripts/tests/test_stages.py checks that this covers what suites run).
E2E_VARIANTS = ("plain", "tsan")

# Stages whose e2e suite also runs, in part, on the ASan build: the tests with this marker,
# LeakSanitizer on at the gateway's exit (a reload that leaks a generation, a listener or a
# backend is caught there). Milestone 05's reload test only: about 20 s to `make test`.
ASAN_E2E = {"05": "asan_leg"}


def milestones():
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "milestones", "[0-9][0-9]-*")))


# What a lab stub says (common/lab.c), in a unit test's output or a proxy's stderr.
LAB_RE = re.compile(r"LAB (\d\d) not implemented: (.*) \((\w+)\) at (\S+:\d+)")
# Lines of detail shown per failing test unless the learner asks for all (T= or VERBOSE=1).
DETAIL_LINES = 8


class Results:
    def __init__(self, verbose=False, again_hint="make test", filtered=False):
        self.cases = []  # dicts: suite, variant, name, ok, detail
        self.suites = []  # dicts: suite, variant, passed, failed, seconds
        self.verbose = verbose
        self.filtered = filtered  # T=name: only some tests ran
        self.again_hint = again_hint  # the command that reruns one test, e.g. "make test M=02"
        self.failed_names = {}  # (suite, name) -> variant it was first listed for
        self.labs = {}  # (lab, function) -> dict(title, where, tests: set of names)

    def add_suite(self, suite, variant, cases, seconds, crashed=None):
        passed = sum(1 for c in cases if c["ok"])
        failed = len(cases) - passed
        if crashed is not None:
            cases.append({"name": "(suite)", "ok": False, "detail": crashed})
            failed += 1
        for c in cases:
            c.update(suite=suite, variant=variant)
            self.cases.append(c)
        self.suites.append(dict(suite=suite, variant=variant, passed=passed, failed=failed, seconds=round(seconds, 1)))
        if not cases and self.filtered:
            return  # T=name matched nothing here: not worth a line
        mark = "ok  " if failed == 0 else "FAIL"
        print(f"[{mark}] {variant:5} {suite:34} {passed:4} passed {failed:4} failed  {seconds:6.1f}s", flush=True)
        again = {}
        for c in cases:
            if c["ok"]:
                continue
            first = self.failed_names.setdefault((suite, c["name"]), variant)
            if first != variant and not self.verbose:
                again[first] = again.get(first, 0) + 1
                continue
            self.print_failure(c)
        for v, n in again.items():
            print(f"        failed: {n} more test(s), listed above for {v}", flush=True)

    def print_failure(self, c):
        """One line for a test stopped by a lab stub; else its name and the start of what
        went wrong (all of it when verbose)."""
        m = LAB_RE.search(c["detail"] or "")
        if m:
            lab = self.labs.setdefault((m.group(1), m.group(3)), dict(title=m.group(2), where=m.group(4), tests=set()))
            lab["tests"].add(c["name"])
            if not self.verbose:
                print(f"        failed: {c['name']}: stopped at LAB {m.group(1)} ({m.group(3)}, {m.group(4)})", flush=True)
                return
        print(f"        failed: {c['name']}", flush=True)
        lines = [ln for ln in (c["detail"] or "").splitlines() if ln.strip()]
        shown = lines if self.verbose else lines[:DETAIL_LINES]
        for ln in shown:
            print(f"            {ln}")
        if len(lines) > len(shown):
            name = c["name"].split("[")[0]
            print(f"            (... {len(lines) - len(shown)} more lines: {self.again_hint} T={name})")
        sys.stdout.flush()

    def print_labs(self):
        """Which labs the failing tests stopped at: what to write next."""
        if not self.labs:
            return
        print("\nLabs not written yet (the stubs the failing tests stopped at):")
        for (lab, func), info in sorted(self.labs.items(), key=lambda kv: kv[1]["where"]):
            print(f"  LAB {lab} {info['title']}: {func} at {info['where']} ({len(info['tests'])} test(s))")


def make(targets, variant, ms, jobs):
    cmd = ["make", "--no-print-directory", f"-j{jobs}", f"V={variant}"] + (["M=" + ms[:2]] if ms else []) + targets
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        print(p.stdout[-6000:])
        print(f"build failed: {' '.join(cmd)}", file=sys.stderr)
        sys.exit(2)


CMOCKA_LINE = re.compile(r"^\[\s+(OK|FAILED|ERROR|SKIPPED)\s+\] (\S+)\s*$")
CMOCKA_RUN = re.compile(r"^\[ RUN\s+\] (\S+)\s*$")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer",
                     "ThreadSanitizer:", "runtime error:")


def run_unit(path, env, only, timeout):
    """Runs one cmocka binary; returns (cases, crashed-or-None, output). A case's detail is
    what the binary printed while that test ran (between its RUN and result lines)."""
    e = dict(os.environ, **env)
    if only:
        e["GW_TEST_FILTER"] = only if any(ch in only for ch in "*?") else f"*{only}*"
    try:
        p = subprocess.run([path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=e, timeout=timeout)
        out, rc = p.stdout, p.returncode
    except subprocess.TimeoutExpired as ex:
        out, rc = (ex.stdout or b"").decode(errors="replace") if isinstance(ex.stdout, bytes) else (ex.stdout or ""), -1
        out += f"\n(timed out after {timeout}s)"
    cases, seen, running, block, outside = [], set(), None, [], []
    for line in out.splitlines():
        r = CMOCKA_RUN.match(line)
        if r:
            running, block = r.group(1), []
            continue
        m = CMOCKA_LINE.match(line)
        if m and m.group(2) not in seen:
            seen.add(m.group(2))
            ok = m.group(1) in ("OK", "SKIPPED")
            cases.append({"name": m.group(2), "ok": ok, "detail": "" if ok else "\n".join(block)})
            running, block = None, []
            continue
        (block if running is not None else outside).append(line)
    if rc != 0 and running is not None and running not in seen:
        # The binary died inside this test (a crash cmocka could not catch, a sanitizer
        # abort, a lab stub reached on a thread the test started, a timeout): it failed,
        # and the tests after it never ran.
        why = "stopped the whole test binary" if rc == 70 else "crashed or timed out"
        cases.append({"name": running, "ok": False,
                      "detail": "\n".join(block + [f"({why}, exit code {rc}: the tests after it did not run)"])})
    crashed = None
    report = next((i for i, ln in enumerate(outside) if any(k in ln for k in SANITIZER_MARKERS)), None)
    if rc != 0 and (all(c["ok"] for c in cases) or report is not None):
        # Found after the tests (LeakSanitizer at exit) or a non-zero exit with every test
        # passed: the binary as a whole failed.
        tail = outside[report - 1 if report else 0:] if report is not None else outside[-80:]
        crashed = f"exit code {rc} (sanitizer report or crash):\n" + "\n".join(tail)
    return cases, crashed, out


def unit_binaries(root, variant, ms_list, no_common):
    """The unit test binaries of VARIANT under ROOT/build for milestones MS_LIST (and common's
    unless NO_COMMON), as (path, suite): only those whose source is still there. A binary
    whose test file was deleted or renamed would go on running from an old build in a
    working tree, and count, where a fresh clone has none."""
    tdir = os.path.join(root, "build", variant, "tests")
    dirs = ([] if no_common else [("common", "common")]) + [(ms, os.path.join("milestones", ms)) for ms in ms_list]
    out = []
    for where, src in dirs:
        for b in sorted(glob.glob(os.path.join(tdir, where, "test_*"))):
            name = os.path.basename(b)
            if not b.endswith((".o", ".d")) and os.path.exists(os.path.join(root, src, "tests", name + ".c")):
                out.append((b, os.path.relpath(b, tdir)))
    return out


def unit_suites(variant, ms_list, args, results):
    timeout = 600 if variant == "tsan" else 300
    for b, suite in unit_binaries(ROOT, variant, ms_list, args.no_common):
        t0 = time.time()
        cases, crashed, out = run_unit(b, SAN_ENV, args.only, timeout)
        results.add_suite(suite, variant, cases, time.time() - t0, crashed)


# An e2e suite mostly waits (on sockets, on the timeouts it tests): e2e/test_04 used 47
# CPU-seconds in 148 s. With GW_E2E_PROCS=N (N > 1) its files run as a queue served by N
# pytest processes at once, one process per file, the largest files first (a file's size
# stands for its length: a fresh clone has no earlier timings); each test picks its ports
# free, as check-labs' two mutants side by side do. Not the default yet (NOTES.md, time
# budget): measured once or twice only, and its timing tests then share the machine.
E2E_PROCS = int(os.environ.get("GW_E2E_PROCS", "1"))


def e2e_suite(variant, ms, args, results, marker=None):
    files = sorted(glob.glob(os.path.join(ROOT, "e2e", f"test_{ms[:2]}_*.py")))
    if not files:
        return
    out_dir = os.path.join(ROOT, "build", variant)
    os.makedirs(out_dir, exist_ok=True)
    env = dict(os.environ, **SAN_ENV)
    env["GW_BIN_DIR"] = os.path.join(ROOT, "build", "bin") if variant == "plain" else os.path.join(ROOT, "build", variant, "bin")
    env["GW_SANITIZER"] = "" if variant == "plain" else variant
    env.setdefault("GW_WORKERS", "2")
    if E2E_PROCS > 1 and len(files) > 1:
        groups = [[f] for f in sorted(files, key=os.path.getsize, reverse=True)]
    else:
        groups = [files]

    def run(group):
        name = os.path.splitext(os.path.basename(group[0]))[0] if len(groups) > 1 else f"e2e-{ms[:2]}"
        junit = os.path.join(out_dir, f"{name}.xml")
        if os.path.exists(junit):
            os.unlink(junit)
        cmd = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", junit] + group
        if args.only:
            cmd += ["-k", args.only]
        if marker:
            cmd += ["-m", marker]
        if not results.verbose:
            cmd += ["--tb=no"]  # the summary below says enough; T= or VERBOSE=1 shows it all
        p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return p, parse_junit(junit)

    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(E2E_PROCS) as pool:
        done = list(pool.map(run, groups))
    cases, crashed = [], None
    for p, mine in done:
        cases += mine
        if p.returncode not in (0, 5) and all(c["ok"] for c in mine) and crashed is None:
            crashed = f"pytest exit {p.returncode}:\n" + "\n".join(p.stdout.splitlines()[-60:])
        if results.verbose and p.returncode not in (0, 5):
            print(p.stdout)
    results.add_suite(f"e2e/test_{ms[:2]}", variant, cases, time.time() - t0, crashed)


def conformance_suite(variant, ms, args, results):
    """The milestone's varnishtest scripts (conformance/NN/*.vtc), one case per script."""
    t0 = time.time()
    cases = conformance.run_suite(ms, variant, args.jobs, args.only)
    if cases is None:
        return
    for c in cases:  # varnishtest's whole log only on request (T=, VERBOSE=1): a handout fails them all
        if not c["ok"] and results.verbose:
            print(f"--- conformance/{ms[:2]}/{c['name']}.vtc ({variant}) failed:\n{c['detail']}", flush=True)
    results.add_suite(f"conformance/{ms[:2]}", variant, [dict(name=c["name"], ok=c["ok"], detail=c["detail"]) for c in cases],
                      time.time() - t0)


def parse_junit(path):
    """Cases of a pytest junit file. A failure's detail is its message, led by the lab stub
    a proxy of the test stopped at (the e2e harness records it as the property lab_stub)."""
    cases = {}
    if not os.path.exists(path):
        return []
    for tc in ET.parse(path).getroot().iter("testcase"):
        # A test that fails and then errors in teardown has two entries: one case here.
        c = cases.setdefault((tc.get("classname"), tc.get("name")), {"name": tc.get("name"), "ok": True, "detail": ""})
        stubs = [p.get("value") for p in tc.iter("property") if p.get("name") == "lab_stub"]
        msgs = [b.get("message") or "" for b in tc if b.tag in ("failure", "error")]
        if msgs:
            c["ok"] = False
        lines = c["detail"].splitlines()
        c["detail"] = "\n".join(dict.fromkeys(stubs + lines + msgs))
    return list(cases.values())


def run_variant(variant, ms_list, args, results):
    if variant == "asan":
        make(["unit-bins"], "asan", None if len(ms_list) > 1 else ms_list[0], args.jobs)
        unit_suites("asan", ms_list, args, results)
        legs = [ms for ms in ms_list if ms[:2] in ASAN_E2E]
        if legs:
            make(["bins"], "asan", legs[-1], args.jobs)
        for ms in legs:
            e2e_suite("asan", ms, args, results, marker=ASAN_E2E[ms[:2]])
        return
    targets = ["bins", "unit-bins"] if variant == "tsan" else ["bins"]
    make(targets, variant, None if len(ms_list) > 1 else ms_list[0], args.jobs)
    if variant == "tsan":
        unit_suites("tsan", ms_list, args, results)
    for ms in ms_list:
        e2e_suite(variant, ms, args, results)
        conformance_suite(variant, ms, args, results)


def load_checkpoints(ms):
    """Checkpoints of milestone MS from its checkpoints.txt: dicts id, points, title, patterns."""
    path = os.path.join(ROOT, "milestones", ms, "checkpoints.txt")
    out = []
    if not os.path.exists(path):
        return out
    for n, line in enumerate(open(path), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\S+)\s+(\d+)\s+(lab\s+)?(.*?)\s*\|\s*(.*)$", line)
        if not m:
            sys.exit(f"{path}:{n}: expected 'ID POINTS [lab] TITLE | TESTS'")
        out.append(dict(id=m.group(1), points=int(m.group(2)), lab=bool(m.group(3)), title=m.group(4),
                        patterns=m.group(5).split(), line=n))
    return out


def case_matches(pattern, ms, case):
    """unit:BINARY:NAME matches a cmocka case of milestones/MS/tests/BINARY, common:BINARY:NAME
    one of common/tests/BINARY, e2e:NAME a pytest case of e2e/test_NN_*.py (parameters in
    brackets ignored), vtc:NAME a conformance script conformance/NN/NAME.vtc."""
    kind, _, rest = pattern.partition(":")
    name = case["name"].split("[")[0]
    if kind == "unit":
        binary, _, test = rest.partition(":")
        return case["suite"] == f"{ms}/{binary}" and fnmatch.fnmatchcase(name, test)
    if kind == "common":
        binary, _, test = rest.partition(":")
        return case["suite"] == f"common/{binary}" and fnmatch.fnmatchcase(name, test)
    if kind == "e2e":
        return case["suite"] == f"e2e/test_{ms[:2]}" and fnmatch.fnmatchcase(name, rest)
    if kind == "vtc":
        return case["suite"] == f"conformance/{ms[:2]}" and fnmatch.fnmatchcase(name, rest)
    return False


def scorecard(ms, results, filtered):
    """Prints the per-checkpoint table of MS and returns its rows (also saved as JSON)."""
    rows = []
    for cp in load_checkpoints(ms):
        matched, missing = [], []
        for pat in cp["patterns"]:
            hits = [c for c in results.cases if case_matches(pat, ms, c)]
            if not hits:
                missing.append(pat)
            matched += hits
        variants = {}
        for c in matched:
            if not c["ok"]:
                variants.setdefault(c["name"], []).append(c["variant"])
        failing = [f"{n} ({', '.join(sorted(set(v)))})" for n, v in sorted(variants.items())]
        if filtered and not matched:
            status = "not run"
        elif failing or (missing and not filtered):
            status = "FAIL"
        else:
            status = "pass"
        rows.append(dict(id=cp["id"], title=cp["title"], points=cp["points"], status=status,
                         earned=cp["points"] if status == "pass" else 0, failing=failing,
                         unmatched=missing if not filtered else [], line=cp["line"]))
    if not rows:
        return rows
    print(f"\nScorecard, milestone {ms}")
    print(f"  {'checkpoint':10} {'title':58} {'points':>6}  result")
    for r in rows:
        print(f"  {r['id']:10} {r['title'][:58]:58} {r['earned']:>3}/{r['points']:<3} {r['status']}")
        for f in r["failing"][:8]:
            print(f"  {'':10}   failing: {f}")
        if len(r["failing"]) > 8:
            print(f"  {'':10}   ... and {len(r['failing']) - 8} more")
        for u in r["unmatched"]:
            print(f"  {'':10}   no test matches '{u}' (milestones/{ms}/checkpoints.txt:{r['line']})")
    got, total = sum(r["earned"] for r in rows), sum(r["points"] for r in rows)
    print(f"  {'total':10} {'':58} {got:>3}/{total:<3}")
    if any(r["status"] == "FAIL" for r in rows):
        print(f"  what to do: read the failing test's message above (all of it: make test M={ms[:2]} T=name),")
        print(f"  then 'When this test fails' in milestones/{ms}/README.md")
    with open(os.path.join(ROOT, "build", f"scorecard-{ms[:2]}.json"), "w") as f:
        json.dump({"milestone": ms, "checkpoints": rows, "earned": got, "total": total}, f, indent=1)
    return rows


def tools_suite(args, results):
    """The course tools' own tests (scripts/tests): handout generator and friends."""
    files = sorted(glob.glob(os.path.join(ROOT, "scripts", "tests", "test_*.py")))
    if not files or args.tsan_only or os.environ.get("GW_CHECK_LABS_INNER"):
        return
    junit = os.path.join(ROOT, "build", "tools.xml")
    os.makedirs(os.path.dirname(junit), exist_ok=True)
    t0 = time.time()
    cmd = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", junit] + files
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode not in (0, 5) and results.verbose:
        print(p.stdout)
    results.add_suite("scripts/tests", "tools", parse_junit(junit), time.time() - t0)


def full_run(args):
    """`make test` with no M in the reference tree: also prove the labs (check-labs)."""
    return (args.milestone is None and not args.only and not args.tsan_only and args.repeat == 1
            and not os.environ.get("GW_CHECK_LABS_INNER") and not os.path.exists(os.path.join(ROOT, ".handout")))


def run_check_labs(ms_list, results):
    import checklabs  # noqa: E402 (a sibling script)
    t0 = time.time()
    defects = checklabs.check(ms_list, results.cases)
    cases = [{"name": d, "ok": False, "detail": d} for d in defects]
    cases.append({"name": "lab tests fail on stubs, pass on reference; mutants killed", "ok": not defects, "detail": ""})
    results.add_suite("check-labs", "-", cases[-1:] if not defects else cases[:-1], time.time() - t0)


FUZZ_SMOKE_SECONDS = 5


def run_fuzz_smoke(results, jobs):
    """Builds the fuzz variant (clang) and runs every libFuzzer target for a few seconds from
    its committed seeds (scripts/fuzz.py smoke), JOBS targets at once: a target that stops
    building or crashes on its own seeds fails here. Long runs happen outside `make test` (NOTES.md, "Fuzzing")."""
    import fuzz  # noqa: E402 (a sibling script)
    t0 = time.time()
    p = subprocess.run(["make", "--no-print-directory", f"-j{jobs}", "V=fuzz", "fuzz-bins"], cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        print(p.stdout[-6000:])
        cases = [{"name": "make V=fuzz fuzz-bins", "ok": False, "detail": p.stdout[-2000:]}]
    else:
        cases = [{"name": f"fuzz_{name}", "ok": ok, "detail": detail}
                 for name, ok, _, detail in fuzz.smoke(FUZZ_SMOKE_SECONDS, jobs=jobs)]
        for c in cases:
            if not c["ok"]:
                print(c["detail"])
    results.add_suite("fuzz smoke", "fuzz", cases, time.time() - t0)


def run_bench_smoke(results):
    """A few seconds per scenario through the benchmark harness, no assertion on speed: it
    only proves `make bench` has not rotted (a target that fails to start fails it)."""
    t0 = time.time()
    p = subprocess.run(["make", "--no-print-directory", "bench-smoke"], cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        print(p.stdout[-6000:])
    case = {"name": "make bench-smoke", "ok": p.returncode == 0, "detail": p.stdout[-2000:]}
    results.add_suite("benchmarks", "bench", [case], time.time() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--milestone", help="NN: only this stage")
    ap.add_argument("--only", help="only tests whose name matches (pytest -k / cmocka filter / script name)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--tsan-only", action="store_true")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--verbose", action="store_true", default=False,
                    help="print everything about each failing test (implied by --only)")
    ap.add_argument("--variants", default="asan,plain,tsan", help="comma-separated subset of asan,plain,tsan")
    ap.add_argument("--no-common", action="store_true", help="skip common/'s unit tests")
    ap.add_argument("--fuzz-smoke", action="store_true", help="also the fuzz smoke (part of a full run anyway)")
    args = ap.parse_args()
    all_ms = milestones()
    ms_list = [m for m in all_ms if args.milestone is None or m.startswith(args.milestone + "-")]
    if not ms_list:
        sys.exit(f"no milestone {args.milestone}; have: {' '.join(all_ms)}")
    variants = ["tsan"] if args.tsan_only else args.variants.split(",")
    hint = "make test" + (f" M={args.milestone}" if args.milestone else "")
    results = Results(verbose=args.verbose or bool(args.only), again_hint=hint, filtered=bool(args.only))
    t0 = time.time()
    tools_suite(args, results)
    for rnd in range(args.repeat):
        if args.repeat > 1:
            print(f"--- round {rnd + 1} of {args.repeat}", flush=True)
        for v in variants:
            run_variant(v, ms_list, args, results)
    if full_run(args) or args.fuzz_smoke:
        run_fuzz_smoke(results, args.jobs)
    if full_run(args):
        run_check_labs(ms_list, results)
        run_bench_smoke(results)
    results.print_labs()
    cards_failed = 0
    for ms in ms_list:
        rows = scorecard(ms, results, bool(args.only))
        cards_failed += sum(1 for r in rows if r["status"] == "FAIL")
    passed = sum(1 for c in results.cases if c["ok"])
    failed = len(results.cases) - passed
    out = os.path.join(ROOT, "build", "test-results.json")
    with open(out, "w") as f:
        json.dump({"milestones": ms_list, "suites": results.suites, "cases": results.cases}, f, indent=1)
    print(f"\ntotal time {time.time() - t0:.0f}s; results in {os.path.relpath(out, ROOT)}")
    if failed and args.repeat > 1:
        names = sorted({f"{c['variant']} {c['suite']}::{c['name']}" for c in results.cases if not c["ok"]})
        print("failed at least once:\n  " + "\n  ".join(names))
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or cards_failed or passed == 0 else 0)


if __name__ == "__main__":
    main()

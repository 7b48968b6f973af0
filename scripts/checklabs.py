#!/usr/bin/python3
"""`make check-labs`: proof that the lab tests really test.

For every milestone (or M=NN):
  1. the reference passes every test of its `lab` checkpoints (from the last `make test`
     results, or a fresh run);
  2. in the handout (LAB regions stubbed, scripts/labs.py), every one of those tests FAILS:
     a lab test that passes on the stubs is a defect, reported by name;
  3. every seeded-bug mutant of the milestone (milestones/NN-*/mutants.txt) is caught: at
     least one of the milestone's tests fails on it. A surviving mutant is a defect. A
     mutant line may end with `@@ E2E`, a pytest -k expression: it is one only the e2e
     suite sees, and only those e2e tests run. Any other mutant first meets the unit test
     of its own file (FILE's tests/test_STEM.c, built alone), which catches most of them in
     a second or two; if that passes, or there is none, the milestone's unit tests run in
     full, then the whole e2e suite. Mutants and handouts run two at a time (JOBS), all
     milestones' in one pool: most of a mutant's time is an e2e test waiting on sockets,
     not CPU;
  4. the handout's run is short: it prints at most LINES_PER_FAILING_TEST lines per failing
     test, besides one line per suite, one per checkpoint and LINES_FIXED more (a learner's
     first run should say which labs are missing and which tests fail, and little else).
The handout and mutant runs use the ASan unit tests and the plain e2e suite (not TSan: a
stub or a mutant fails the same way there, at five times the cost; that a stub is quiet
under TSan too is proven by scripts/tests/test_stubs.py, in seconds).
"""
import argparse
import concurrent.futures
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest  # noqa: E402
import labs  # noqa: E402

ROOT = gwtest.ROOT
VARIANTS = "asan,plain"
# The bound on a handout's output (point 4 above). A stubbed test takes one line today,
# plus its share of the scorecard.
LINES_PER_FAILING_TEST = 3
LINES_FIXED = 15
JOBS = 2  # mutants at once


def copy_tree(dest, variants=VARIANTS):
    """The working tree's files (tracked and untracked, not ignored) into DEST, timestamps
    kept, plus the current builds of VARIANTS, so that only changed files recompile."""
    for p in labs.tracked_files(ROOT):
        d = os.path.join(dest, p)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, p), d)
    seed_build(dest, variants)


# The build folders each variant's run needs (gwtest: asan = unit tests, plain = build/plain's
# objects and the binaries in build/bin). A mutant copies only those of the runs it makes:
# the ASan tree is 117 MB of the 130 (milestone 04), and an e2e-only mutant never reads it.
SEED_DIRS = {"asan": ("asan",), "plain": ("plain", "bin")}


def seed_build(dest, variants=VARIANTS):
    for v in variants.split(","):
        for sub in SEED_DIRS[v]:
            src = os.path.join(ROOT, "build", sub)
            if os.path.isdir(src) and not os.path.isdir(os.path.join(dest, "build", sub)):
                shutil.copytree(src, os.path.join(dest, "build", sub), symlinks=True, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("*.xml"))


def run_tests(tree, ms, variants=VARIANTS, only=None, report=None):
    """Runs the milestone's tests in TREE (ONLY: just those matching, as gwtest --only);
    returns the list of cases (dicts). REPORT (a dict), if given, receives what the run
    printed ("output") and its suites ("suites")."""
    env = dict(os.environ, GW_CHECK_LABS_INNER="1")
    cmd = ["/usr/bin/python3", "scripts/gwtest.py", "--milestone", ms[:2], "--variants", variants]
    if not needs_common(ms):
        cmd.append("--no-common")
    if only:
        cmd += ["--only", only]
    p = subprocess.run(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    path = os.path.join(tree, "build", "test-results.json")
    if not os.path.exists(path):
        print(p.stdout[-4000:])
        return None
    results = json.load(open(path))
    if report is not None:
        report.update(output=p.stdout, suites=results["suites"])
    return results["cases"]


def needs_common(ms):
    """Whether MS's lab checkpoints name common/ tests (05's pins and quiescence live in
    common/snapshot.c): its runs then take common's unit tests too."""
    return any(pat.startswith("common:") for _, pat in lab_patterns(ms))


def lab_patterns(ms):
    return [(cp["id"], pat) for cp in gwtest.load_checkpoints(ms) if cp["lab"] for pat in cp["patterns"]]


def check_handout(ms, defects):
    num = int(ms[:2])
    with tempfile.TemporaryDirectory(prefix=f"gw-handout-{ms[:2]}-") as tmp:
        dest = os.path.join(tmp, "handout")
        labs.make_handout(ROOT, num, dest)
        seed_build(dest)
        report = {}
        cases = run_tests(dest, ms, report=report)
    if cases is None:
        defects.append(f"{ms}: the handout did not build or run (see above)")
        return 0
    check_output_bound(ms, cases, report, defects)
    n = 0
    for cid, pat in lab_patterns(ms):
        hits = [c for c in cases if gwtest.case_matches(pat, ms, c)]
        if not hits:
            defects.append(f"{ms} checkpoint {cid}: no test matches '{pat}' in the handout")
        for c in hits:
            n += 1
            if c["ok"]:
                defects.append(f"{ms} checkpoint {cid}: lab test {c['suite']}::{c['name']} ({c['variant']}) PASSES on the stubs")
    return n


def check_output_bound(ms, cases, report, defects):
    """Point 4: the handout's run printed no more than its budget of lines."""
    failed = sum(1 for c in cases if not c["ok"])
    lines = report["output"].splitlines()
    budget = LINES_FIXED + len(report["suites"]) + len(gwtest.load_checkpoints(ms)) + LINES_PER_FAILING_TEST * failed
    print(f"  handout {ms[:2]}: {len(lines)} lines printed for {failed} failing test(s) (budget {budget})", flush=True)
    if len(lines) > budget:
        defects.append(f"{ms}: the handout's run printed {len(lines)} lines for {failed} failing test(s), over its budget of "
                       f"{budget} ({LINES_PER_FAILING_TEST} per failing test, one per suite and checkpoint, {LINES_FIXED} more); "
                       f"it starts:\n" + "\n".join(lines[:40]))


def check_reference(ms, defects, reference=None):
    """REFERENCE: the cases of a test run of this very tree (make test passes its own), or
    None to run the milestone's tests on a copy now (a results file on disk may be stale)."""
    cases = reference or []
    if not any(c["suite"].startswith(ms) or c["suite"] == f"e2e/test_{ms[:2]}" for c in cases):
        with tempfile.TemporaryDirectory(prefix=f"gw-ref-{ms[:2]}-") as tmp:
            copy_tree(tmp)
            cases = run_tests(tmp, ms) or []
    for cid, pat in lab_patterns(ms):
        hits = [c for c in cases if gwtest.case_matches(pat, ms, c)]
        if not hits:
            defects.append(f"{ms} checkpoint {cid}: no test matches '{pat}' in the reference")
        for c in hits:
            if not c["ok"]:
                defects.append(f"{ms} checkpoint {cid}: {c['suite']}::{c['name']} ({c['variant']}) fails on the reference")


def load_mutants(ms):
    path = os.path.join(ROOT, "milestones", ms, "mutants.txt")
    out = []
    if not os.path.exists(path):
        return out
    for n, line in enumerate(open(path), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.rstrip("\n").split("@@")]
        if len(parts) not in (4, 5):
            sys.exit(f"{path}:{n}: expected 'NAME @@ FILE @@ FIND @@ REPLACE [@@ E2E]'")
        mu = dict(zip(("name", "file", "find", "replace"), parts[:4]), line=n)
        mu["e2e"] = parts[4] if len(parts) == 5 else None
        out.append(mu)
    return out


INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"(?:[^"]*/)?([^"/]+\.h)"', re.M)


def local_headers(tree, path):
    """The headers of PATH's own folder that PATH includes (by base name)."""
    d = os.path.join(tree, os.path.dirname(path))
    return {h for h in INCLUDE_RE.findall(open(os.path.join(tree, path)).read())
            if os.path.exists(os.path.join(d, h))}


def related_unit_tests(tree, path):
    """The unit tests of PATH's folder, other than its own (test_STEM.c), that include a
    header PATH includes from that folder: the ones that call what PATH implements when it
    has no test of its own (h1frame.c, h1head.c, h1parse.c: test_h1.c through h1.h). Most
    shared headers first, then by name."""
    d, stem = os.path.dirname(path), os.path.splitext(os.path.basename(path))[0]
    mine = local_headers(tree, path)
    scored = []
    for t in sorted(glob.glob(os.path.join(tree, d, "tests", "test_*.c"))):
        name = os.path.splitext(os.path.basename(t))[0]
        shared = len(mine & set(INCLUDE_RE.findall(open(t).read())))
        if shared and name != f"test_{stem}":
            scored.append((-shared, name))
    return [name for _, name in sorted(scored)]


def own_unit_test(tree, path, name=None):
    """The unit test of source file PATH (DIR/x.c -> DIR/tests/test_x.c; or NAME, another
    test of DIR/tests), built alone in TREE's ASan build and run: its cases, or None when
    there is none or it does not build (the full run then says why)."""
    d, stem = os.path.dirname(path), os.path.splitext(os.path.basename(path))[0]
    name = name or f"test_{stem}"
    if not os.path.exists(os.path.join(tree, d, "tests", f"{name}.c")):
        return None
    target = os.path.join("build", "asan", "tests", os.path.basename(d), name)
    p = subprocess.run(["make", "--no-print-directory", "V=asan", target], cwd=tree,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if p.returncode != 0:
        return None
    cases, crashed, _ = gwtest.run_unit(os.path.join(tree, target), gwtest.SAN_ENV, None, 300)
    if crashed:
        cases.append({"suite": target, "name": "(the binary)", "ok": False})
    return cases


def check_mutant(ms, mu, defects):
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix=f"gw-mutant-{ms[:2]}-") as tmp:
        copy_tree(tmp, "plain" if mu["e2e"] else "asan")
        path = os.path.join(tmp, mu["file"])
        text = open(path).read() if os.path.exists(path) else ""
        if text.count(mu["find"]) != 1:
            defects.append(f"{ms} mutant '{mu['name']}': its FIND text occurs {text.count(mu['find'])} times in {mu['file']} (want 1): update mutants.txt:{mu['line']}")
            return False
        with open(path, "w") as f:
            f.write(text.replace(mu["find"], mu["replace"]))
        # The cheapest test that can catch it first. A mutant only the e2e suite can see
        # names the e2e tests to run (a fifth field, a pytest -k expression): a minute saved
        # each. Otherwise its own file's unit test alone (usually the one that catches it,
        # in a second or two, where building and running every unit test takes ten, and 40
        # to 75 with two mutants at once), then each unit test that includes a header of
        # its file (related_unit_tests), alone, until one catches it; then all unit tests,
        # then the e2e suite: a mutant that hangs transfers never costs a
        # timeout when a unit test sees it.
        if mu["e2e"]:
            stage = "e2e -k"
            cases = run_tests(tmp, ms, "plain", only=mu["e2e"])
        else:
            stage = "own unit test"
            cases = own_unit_test(tmp, mu["file"])
            for name in related_unit_tests(tmp, mu["file"]):
                if cases is not None and not all(c["ok"] for c in cases):
                    break
                stage = f"related unit test {name}"
                cases = own_unit_test(tmp, mu["file"], name)
            if cases is None or all(c["ok"] for c in cases):
                stage = "unit tests"
                cases = run_tests(tmp, ms, "asan")
            if cases is not None and all(c["ok"] for c in cases):
                stage = "e2e suite"
                seed_build(tmp, "plain")
                cases = run_tests(tmp, ms, "plain")
    if cases is None:  # a mutant that does not build proves nothing about the tests
        defects.append(f"{ms} mutant '{mu['name']}' does not build (warnings are errors): rewrite it in mutants.txt:{mu['line']}")
        return False
    killers = [c for c in cases if not c["ok"]]
    if not killers:
        defects.append(f"{ms} mutant '{mu['name']}' SURVIVED: no test of the milestone fails on it")
        return False
    names = sorted({c["name"] for c in killers})
    print(f"  mutant {mu['name']}: caught by {', '.join(names[:3])}{' ...' if len(names) > 3 else ''} "
          f"({stage}, {time.time() - t0:.0f}s)", flush=True)
    return True


def check(ms_list, reference=None):
    """Runs every check; returns the list of defects (strings). REFERENCE: see
    check_reference. The handouts and the mutants of every milestone share one pool of
    JOBS: a handout's run (its build, then stubbed tests failing fast) and a mutant's leave
    a core idle much of the time, and one pool has no idle tail per milestone. Handouts go
    first, the newest milestone's (the longest) first."""
    defects = []
    t0 = time.time()
    for ms in ms_list:
        check_reference(ms, defects, reference)
    tasks = [(ms, None) for ms in reversed(ms_list)] + [(ms, mu) for ms in ms_list for mu in load_mutants(ms)]

    def run(task):
        ms, mu = task
        return check_handout(ms, defects) if mu is None else int(check_mutant(ms, mu, defects))

    with concurrent.futures.ThreadPoolExecutor(JOBS) as pool:  # defects: list.append is atomic
        done = list(pool.map(run, tasks))
    for ms in ms_list:
        n = sum(r for (m, mu), r in zip(tasks, done) if m == ms and mu is None)
        killed = sum(r for (m, mu), r in zip(tasks, done) if m == ms and mu is not None)
        total = sum(1 for m, mu in tasks if m == ms and mu is not None)
        print(f"check-labs {ms}: {n} lab test run(s) on the stubs; mutants killed {killed}/{total}", flush=True)
    print(f"check-labs: {time.time() - t0:.0f}s", flush=True)
    for d in defects:
        print(f"  DEFECT: {d}")
    return defects


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--milestone")
    args = ap.parse_args()
    ms_list = [m for m in gwtest.milestones() if args.milestone is None or m.startswith(args.milestone + "-")]
    gwtest.make(["unit-bins"], "asan", None, 2)
    gwtest.make(["bins"], "plain", None, 2)
    defects = check(ms_list)
    print(f"{0 if defects else 1} passed, {len(defects)} failed")
    sys.exit(1 if defects else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""LAB regions: parsing, stubbing, and handouts.

A LAB region is a span of a C file fenced by two comment lines:

    /* LAB 01: backpressure */
    ...comments and complete function definitions...
    /* END LAB */

`make handout M=NN DEST=DIR` copies the project into DIR with every function inside a
`LAB NN` region reduced to a stub that calls gw_lab_missing() (common/lab.h), so the code
compiles warning-free and the tests that need it fail at once with "LAB NN not
implemented". Earlier milestones stay complete; later milestones are left out.

Used by: make handout, make check-labs (scripts/checklabs.py), make grade (scripts/grade.py).
"""
import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

OPEN_RE = re.compile(r"^\s*/\* LAB (\S+)(?::\s*(.*?))?\s*\*/\s*$")
CLOSE_RE = re.compile(r"^\s*/\* END LAB \*/\s*$")
LOOSE_RE = re.compile(r"/\*\s*(LAB\b|END\s+LAB\b)")


class LabError(Exception):
    """A marker problem, reported as FILE:LINE: message."""


class Region:
    def __init__(self, path, lab, title, start, end):
        self.path, self.lab, self.title = path, lab, title
        self.start, self.end = start, end  # 0-based line indexes of the two markers


def parse_regions(path, text):
    """Returns the LAB regions of TEXT; raises LabError for nested, unclosed, stray or
    malformed markers."""
    regions, cur = [], None
    for i, line in enumerate(text.split("\n")):
        m = OPEN_RE.match(line)
        if m:
            lab, title = m.group(1), m.group(2)
            if not re.fullmatch(r"\d\d", lab) or not title:
                raise LabError(f"{path}:{i + 1}: malformed LAB marker: expected '/* LAB NN: title */'")
            if cur is not None:
                raise LabError(f"{path}:{i + 1}: LAB {lab} opened inside LAB {cur.lab} (opened at line {cur.start + 1}): regions cannot nest")
            cur = Region(path, lab, title, i, None)
        elif CLOSE_RE.match(line):
            if cur is None:
                raise LabError(f"{path}:{i + 1}: END LAB without an open LAB region")
            cur.end = i
            regions.append(cur)
            cur = None
        elif LOOSE_RE.search(line):
            raise LabError(f"{path}:{i + 1}: malformed LAB marker: expected '/* LAB NN: title */' or '/* END LAB */' alone on the line")
    if cur is not None:
        raise LabError(f"{path}:{cur.start + 1}: LAB {cur.lab} is never closed (missing '/* END LAB */')")
    return regions


def param_names(params):
    """Names of the parameters in a C parameter list such as 'gw_sm_t *sm, size_t n'."""
    parts, depth, cur = [], 0, ""
    for ch in params:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch in "([" and 1 or (ch in ")]" and -1 or 0)
        cur += ch
    parts.append(cur)
    names = []
    for p in (x.strip() for x in parts):
        if p in ("", "void", "..."):
            continue
        fp = re.search(r"\(\s*\*\s*(\w+)\s*\)", p)  # function pointer: ret (*name)(args)
        if fp:
            names.append(fp.group(1))
            continue
        p = re.sub(r"\[.*?\]", "", p)
        m = re.search(r"(\w+)\s*$", p)
        if m:
            names.append(m.group(1))
    return names


def stub_region(region, lines):
    """The replacement lines for REGION (markers kept): comments stay, each function keeps
    its signature and gets a stub body; anything else is an error."""
    out, i, end = [], region.start + 1, region.end
    out.append(lines[region.start])
    while i < end:
        line = lines[i]
        stripped = line.strip()
        if stripped == "" or stripped.startswith(("/*", "*", "//")):
            out.append(line)
            i += 1
            continue
        if line[:1].isspace() or stripped.startswith("#"):
            raise LabError(f"{region.path}:{i + 1}: LAB regions may hold only comments and function definitions")
        sig = []
        while i < end and lines[i].rstrip() != "{":
            if lines[i].rstrip().endswith(";"):
                raise LabError(f"{region.path}:{i + 1}: LAB regions may hold only comments and function definitions")
            sig.append(lines[i])
            i += 1
        if i >= end:
            raise LabError(f"{region.path}:{region.start + 1}: could not find the '{{' line of the function starting at line {i - len(sig) + 1}")
        j = i + 1
        while j < end and lines[j].rstrip() != "}":
            j += 1
        if j >= end:
            raise LabError(f"{region.path}:{i + 1}: function body not closed by a '}}' line inside the LAB region")
        signature = " ".join(s.strip() for s in sig)
        m = re.search(r"\((.*)\)\s*$", signature)
        if not m:
            raise LabError(f"{region.path}:{i}: cannot read the parameter list of: {signature}")
        out += sig + ["{"]
        out += [f"    (void){n};" for n in param_names(m.group(1))]
        title = region.title.replace("\\", "\\\\").replace('"', '\\"')
        out += [f'    gw_lab_missing("{region.lab}", "{title}", __func__);', "}"]
        i = j + 1
    out.append(lines[end])
    return out


def stub_file(path, text, lab):
    """TEXT with the functions of every LAB LAB region stubbed; (new_text, n_regions)."""
    regions = [r for r in parse_regions(path, text) if r.lab == lab]
    if not regions:
        return text, 0
    lines = text.split("\n")
    for r in reversed(regions):
        lines[r.start:r.end + 1] = stub_region(r, lines)
    # Helpers that only the stubbed code called are unused now: that is expected, not a
    # warning the learner should have to silence.
    k = next(i for i, l in enumerate(lines) if l.startswith("#include"))
    lines[k:k] = ['#include "lab.h"', '#pragma GCC diagnostic ignored "-Wunused-function" /* handout stubs */']
    return "\n".join(lines), len(regions)


# What a tree that is not a git checkout (a handout) leaves out when walked: .gitignore's
# entries, plus the handout's own bookkeeping.
UNTRACKED_DIRS = {".git", "build", "__pycache__", ".pytest_cache", ".handout"}


def is_checkout(root):
    """True when ROOT is the top of a git work tree (a handout is not: it is a copy)."""
    p = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return p.returncode == 0 and os.path.realpath(p.stdout.strip()) == os.path.realpath(root)


def tracked_files(root):
    """The project's files under ROOT, relative: git's tracked and untracked-but-not-ignored
    files in a checkout; elsewhere (a handout, an unpacked archive) every file outside
    UNTRACKED_DIRS."""
    if is_checkout(root):
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root, stdout=subprocess.PIPE, check=True).stdout
        return [p for p in out.decode().split("\0") if p and os.path.exists(os.path.join(root, p))]
    found = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in UNTRACKED_DIRS)
        found += [os.path.relpath(os.path.join(d, f), root) for f in sorted(files) if not f.endswith(".pyc")]
    return found


def milestone_of(path):
    m = re.match(r"(?:milestones/(\d\d)-|e2e/test_(\d\d)_|conformance/(\d\d)/)", path)
    return int(m.group(1) or m.group(2) or m.group(3)) if m else None


def lint_tree(root):
    """Every LAB region of every C file parses and stubs; returns [(path, lab)] or raises."""
    found = []
    for p in tracked_files(root):
        if p.endswith((".c", ".h")):
            text = open(os.path.join(root, p)).read()
            for r in parse_regions(p, text):
                stub_region(r, text.split("\n"))
                found.append((p, r.lab))
    return found


GRADED = re.compile(r"^(e2e/|conformance/|common/tests/|common/testsupport/|milestones/\d\d-[^/]+/tests/|milestones/\d\d-[^/]+/checkpoints.txt$|scripts/gwtest.py$|scripts/conformance.py$)")


def make_handout(root, num, dest):
    """Writes the handout of milestone NUM (int) into DEST. Returns the stubbed regions count."""
    if os.path.exists(dest) and os.listdir(dest):
        raise SystemExit(f"handout: {dest} exists and is not empty")
    lab = f"{num:02d}"
    stubbed, manifest = 0, []
    for p in tracked_files(root):
        ms = milestone_of(p)
        if ms is not None and ms > num:
            continue
        if p.startswith("milestones/") and p.endswith("/mutants.txt"):
            continue  # the seeded bugs would point at the solution
        src = os.path.join(root, p)
        dst = os.path.join(dest, p)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        text, n = stub_file(p, open(src).read(), lab) if p.endswith((".c", ".h")) else (None, 0)
        if n:
            stubbed += n
            with open(dst, "w") as f:
                f.write(text)
            shutil.copymode(src, dst)
        else:
            shutil.copy2(src, dst)  # keeps the timestamp: a seeded build stays valid
        if GRADED.match(p):
            manifest.append((hashlib.sha256(open(dst, "rb").read()).hexdigest(), p))
    write_manifest(dest, num, manifest)
    return stubbed


def write_manifest(dest, num, manifest):
    """.handout/manifest lists the sha256 of every test and fixture; .handout/pristine keeps
    copies, so `make grade` can tell (and undo) edits to them."""
    meta = os.path.join(dest, ".handout")
    os.makedirs(meta, exist_ok=True)
    with open(os.path.join(meta, "manifest"), "w") as f:
        f.write(f"# handout of milestone {num:02d}: sha256 of the files `make grade` trusts\n")
        for digest, p in sorted(manifest, key=lambda x: x[1]):
            f.write(f"{digest}  {p}\n")
            keep = os.path.join(meta, "pristine", p)
            os.makedirs(os.path.dirname(keep), exist_ok=True)
            shutil.copy2(os.path.join(dest, p), keep)
    with open(os.path.join(meta, "milestone"), "w") as f:
        f.write(f"{num:02d}\n")


def main():
    ap = argparse.ArgumentParser(description="LAB regions: handouts and marker checks")
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("handout", help="write the handout of milestone M into DEST")
    h.add_argument("milestone")
    h.add_argument("dest")
    sub.add_parser("lint", help="check every LAB marker of the tree")
    args = ap.parse_args()
    try:
        if args.cmd == "lint":
            for p, lab in lint_tree(ROOT):
                print(f"{p}: LAB {lab}")
            return
        num = int(args.milestone)
        n = make_handout(ROOT, num, os.path.abspath(args.dest))
        print(f"handout of milestone {num:02d} written to {args.dest}: {n} LAB region(s) stubbed")
        print(f"next: cd {args.dest} && make test M={num:02d}")
    except LabError as e:
        sys.exit(f"handout: {e}")


if __name__ == "__main__":
    main()

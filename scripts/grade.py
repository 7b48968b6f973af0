#!/usr/bin/python3
"""`make grade M=NN`, in a handout: grade from pristine tests.

The handout recorded the sha256 of every test, fixture and checkpoint file in
.handout/manifest and kept copies in .handout/pristine/. Grading refuses to run when one
of them was edited (listing them), or with RESTORE=1 puts the pristine copies back first;
then it runs `make test M=NN` and leaves the scorecard in build/scorecard-NN.json.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
META = os.path.join(ROOT, ".handout")


def changed_files():
    out = []
    for line in open(os.path.join(META, "manifest")):
        if line.startswith("#") or not line.strip():
            continue
        digest, path = line.rstrip("\n").split("  ", 1)
        full = os.path.join(ROOT, path)
        if not os.path.exists(full) or hashlib.sha256(open(full, "rb").read()).hexdigest() != digest:
            out.append(path)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--milestone")
    ap.add_argument("--restore", action="store_true")
    args = ap.parse_args()
    if not os.path.isdir(META):
        sys.exit("grade: this is not a handout (no .handout/): run `make handout M=NN DEST=DIR` first")
    ms = open(os.path.join(META, "milestone")).read().strip()
    if args.milestone and args.milestone != ms:
        sys.exit(f"grade: this handout is for milestone {ms}, not {args.milestone}")
    changed = changed_files()
    if changed and not args.restore:
        print("grade: these test files differ from the handout, so the grade would not be trusted:")
        for p in changed:
            print(f"  {p}")
        sys.exit("grade: undo the edits, or run `make grade M=%s RESTORE=1` to restore the originals" % ms)
    for p in changed:
        os.makedirs(os.path.dirname(os.path.join(ROOT, p)), exist_ok=True)
        shutil.copy2(os.path.join(META, "pristine", p), os.path.join(ROOT, p))
        print(f"grade: restored {p}")
    rc = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "gwtest.py"), "--milestone", ms], cwd=ROOT).returncode
    print(f"grade: scorecard saved in build/scorecard-{ms}.json")
    sys.exit(rc)


if __name__ == "__main__":
    main()

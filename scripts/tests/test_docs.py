"""Code the lab guides show must still build against today's headers: a guide whose example
no longer compiles teaches an API that is gone (issue 14: claims that need a test)."""
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import gwtest  # noqa: E402

ROOT = gwtest.ROOT
GUIDE_04 = os.path.join(ROOT, "milestones", "04-http", "README.md")
# The example's file name, then its ```c block (the first one after the name).
MW_EXAMPLE_RE = re.compile(r"`milestones/04-http/mw_deny_methods\.c`.*?```c\n(.*?)```", re.S)


def base_cflags():
    """The Makefile's compile flags for our own sources (warnings are errors), without the
    dependency-file options."""
    out = subprocess.run(["make", "--no-print-directory", "-s", "print-BASE_CFLAGS"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.split() if f not in ("-MMD", "-MP")]


def test_04_adding_a_middleware_example_compiles(tmp_path):
    """'Adding a middleware' says a middleware is its file plus one line in GW_MW_LIST. The
    file it shows must compile as it stands, with the project's warnings as errors."""
    if not os.path.exists(GUIDE_04):
        pytest.skip("no milestone 04 in this tree (a handout of an earlier milestone)")
    text = open(GUIDE_04).read()
    m = MW_EXAMPLE_RE.search(text)
    assert m, "the lab guide's 'Adding a middleware' example (mw_deny_methods.c, a ```c block) is gone"
    assert "X(DENY_METHODS, deny_methods)" in text, "the guide no longer shows the GW_MW_LIST line"
    src = tmp_path / "mw_deny_methods.c"
    src.write_text(m.group(1))
    r = subprocess.run(["gcc"] + base_cflags() + ["-Werror", "-fsyntax-only", str(src)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, "the guide's mw_deny_methods.c does not compile:\n" + r.stderr

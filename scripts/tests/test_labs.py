"""Tests of the handout generator (scripts/labs.py): marker parsing and stubbing."""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import labs  # noqa: E402

GOOD = """#include "x.h"

/* LAB 07: add things */
/* Adds. */
static int add(int a, int b)
{
    return a + b;
}

void run(void (*cb)(int status), const char *names[], ...)
{
    cb(0);
}
/* END LAB */

int keep(void)
{
    return 1;
}
"""


def test_parse_finds_region_with_title():
    (r,) = labs.parse_regions("f.c", GOOD)
    assert (r.lab, r.title, r.start + 1, r.end + 1) == ("07", "add things", 3, 14)


@pytest.mark.parametrize("text, where, what", [
    ("/* LAB 07: a */\n/* LAB 07: b */\n/* END LAB */\n", "f.c:2:", "cannot nest"),
    ("x\n/* LAB 07: a */\nint f(void)\n{\n}\n", "f.c:2:", "never closed"),
    ("int x;\n/* END LAB */\n", "f.c:2:", "without an open LAB"),
    ("/* LAB 7: a */\n/* END LAB */\n", "f.c:1:", "malformed"),
    ("/* LAB 07 */\n/* END LAB */\n", "f.c:1:", "malformed"),
    ("int a; /* LAB 07: inline */\n", "f.c:1:", "malformed"),
])
def test_bad_markers_are_reported_with_file_and_line(text, where, what):
    with pytest.raises(labs.LabError) as e:
        labs.parse_regions("f.c", text)
    assert str(e.value).startswith(where) and what in str(e.value), str(e.value)


def test_region_with_code_outside_functions_is_rejected():
    text = "/* LAB 07: a */\nstatic int counter;\n    int x = 1;\n/* END LAB */\n"
    with pytest.raises(labs.LabError) as e:
        labs.stub_file("f.c", text, "07")
    assert str(e.value).startswith("f.c:2:") and "only comments and function" in str(e.value)


def test_stub_keeps_signatures_and_comments_and_voids_parameters():
    out, n = labs.stub_file("f.c", GOOD, "07")
    assert n == 1
    assert "return a + b;" not in out and "cb(0);" not in out
    assert "/* Adds. */" in out and "static int add(int a, int b)" in out
    for name in ("a", "b", "cb", "names"):
        assert f"(void){name};" in out
    assert out.count('gw_lab_missing("07", "add things", __func__);') == 2
    assert '#include "lab.h"' in out
    assert "int keep(void)\n{\n    return 1;\n}" in out  # outside the region: untouched


def test_other_labs_are_left_alone():
    out, n = labs.stub_file("f.c", GOOD, "03")
    assert (out, n) == (GOOD, 0)


def test_param_names():
    assert labs.param_names("void") == []
    assert labs.param_names("gw_sm_t *sm, gw_side_t side, size_t n") == ["sm", "side", "n"]
    assert labs.param_names("int (*cmp)(const void *, const void *), char buf[16]") == ["cmp", "buf"]


def test_stub_compiles_warning_free(tmp_path):
    """The stubbed file builds with the project's warnings (the handout promise)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    src = GOOD.replace('#include "x.h"', "#include <stddef.h>") + "int main(void) { return keep() - 1 + add(0, 0); }\n"
    out, _ = labs.stub_file("f.c", src, "07")
    (tmp_path / "f.c").write_text(out)
    p = subprocess.run(["gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Wmissing-prototypes", "-Wno-missing-prototypes",
                        "-I", os.path.join(root, "common"), "-c", str(tmp_path / "f.c"), "-o", str(tmp_path / "f.o")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert p.returncode == 0, p.stdout


def test_reference_tree_markers_are_valid():
    assert labs.lint_tree(labs.ROOT), "no LAB region found in the project"


def test_tree_is_listed_without_git(tmp_path):
    """A handout is a copy, not a git checkout: the listing walks it instead (and leaves out
    what .gitignore would), so the marker check above also runs in a learner's tree."""
    for p in ("common/a.c", "build/asan/x.o", "scripts/__pycache__/y.pyc", ".handout/manifest", "README.md"):
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text("/* LAB 07: a */\n/* END LAB */\n" if p.endswith(".c") else "x\n")
    assert not labs.is_checkout(str(tmp_path))
    assert sorted(labs.tracked_files(str(tmp_path))) == ["README.md", "common/a.c"]
    assert labs.lint_tree(str(tmp_path)) == [("common/a.c", "07")]

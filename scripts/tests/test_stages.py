"""What `make test M=NN` builds: every binary its e2e suite runs, in both variants it runs
them on (plain and TSan). A stage that forgets one passes under the full `make test`
(which builds everything first) and fails from a fresh clone (issue 12)."""
import glob
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import gwtest  # noqa: E402

ROOT = gwtest.ROOT
# A binary named in a suite: GW = "gw02", GW01 = "gw01", run_binary("gw03", ...).
BINARY_RE = re.compile(r"""["'](gw\d\d)["']""")


def binaries_used(num):
    """Binary names that e2e/test_NN_*.py mention as string literals."""
    names = set()
    for path in glob.glob(os.path.join(ROOT, "e2e", f"test_{num}_*.py")):
        names |= set(BINARY_RE.findall(open(path).read()))
    return names


def binaries_built(num, variant):
    """What the driver's `make V=VARIANT M=NN bins` builds (the Makefile's own list)."""
    out = subprocess.run(["make", "--no-print-directory", "-s", f"V={variant}", f"M={num}", "print-SEL_BINS"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True).stdout
    return {os.path.basename(p) for p in out.split()}


@pytest.mark.parametrize("ms", gwtest.milestones())
def test_stage_builds_every_binary_its_e2e_suite_runs(ms):
    num = ms[:2]
    used = binaries_used(num)
    variants = gwtest.E2E_VARIANTS + (("asan",) if num in gwtest.ASAN_E2E else ())
    for variant in variants:
        missing = used - binaries_built(num, variant)
        assert not missing, (f"e2e/test_{num}_*.py runs {sorted(missing)}, which `make V={variant} M={num} bins` "
                             f"does not build: `make test M={num}` fails from a fresh clone (Makefile: STAGE_MS)")


def test_the_scan_sees_cross_milestone_binaries():
    """The check above is only as good as its scan: it must find the earlier binary that a
    stage's config test runs (test_config_02_keys_need_gw02 runs gw01)."""
    if not glob.glob(os.path.join(ROOT, "e2e", "test_02_*.py")):
        pytest.skip("no milestone 02 suite in this tree")
    assert {"gw01", "gw02"} <= binaries_used("02")

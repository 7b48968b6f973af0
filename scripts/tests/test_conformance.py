"""Tests of the conformance runner (scripts/conformance.py): a failing `expect` fails the
script, and so `make test`; selection by name; a handout's milestone of a script."""
import glob
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import conformance  # noqa: E402
import labs  # noqa: E402

# A client and a server only: no gateway, so no build is needed. s1 answers 200.
TINY = """varnishtest "the runner's self-test"

server s1 {
    rxreq
    txresp -status 200 -body "ok"
} -start

client c1 -connect ${s1_sock} {
    txreq
    rxresp
    expect resp.status == %s
} -run
"""

needs_varnishtest = pytest.mark.skipif(shutil.which("varnishtest") is None,
                                       reason="varnishtest missing: `make deps` installs Debian's varnish")


@needs_varnishtest
def test_a_script_whose_expects_hold_passes(tmp_path):
    p = tmp_path / "tiny_pass.vtc"
    p.write_text(TINY % "200")
    case = conformance.run_script(str(p), "04", "plain", 20)
    assert case["ok"] and case["name"] == "tiny_pass", case["detail"]


@needs_varnishtest
def test_a_failing_expect_fails_the_script_with_its_log(tmp_path):
    p = tmp_path / "tiny_fail.vtc"
    p.write_text(TINY % "404")
    case = conformance.run_script(str(p), "04", "plain", 20)
    assert not case["ok"]
    assert 'EXPECT resp.status (200) == "404" failed' in case["detail"], case["detail"]


def test_selection_by_substring_glob_and_or():
    assert conformance.selected("smuggle_cl_and_te", None)
    assert conformance.selected("smuggle_cl_and_te", "cl_and")
    assert conformance.selected("smuggle_cl_and_te", "smuggle_*")
    assert not conformance.selected("bodiless_head", "smuggle_*")
    assert conformance.selected("bodiless_head", "smuggle or head")
    assert not conformance.selected("bodiless_head", "max_idle or keepalive_reuses")


def test_every_script_of_04_uses_the_shared_preamble():
    if not glob.glob(os.path.join(conformance.ROOT, "milestones", "04-*")):
        pytest.skip("no milestone 04 in this tree (a handout of an earlier milestone leaves its scripts out)")
    paths = conformance.script_paths("04-http")
    assert len(paths) >= 20
    for p in paths:
        text = open(p).read()
        assert text.startswith('varnishtest "'), p
        assert "${testdir}/../gw.sh start ${s1_sock} ${sgw_sock}" in text, p
        assert "${testdir}/../gw.sh ready ${pgw_pid} ${pgw_err}" in text, p
        assert text.rstrip().endswith("process pgw -kill TERM -wait"), "%s: the gateway must be stopped and exit 0" % p


def test_scripts_belong_to_their_milestones_handout():
    assert labs.milestone_of("conformance/04/bodiless_head.vtc") == 4
    assert labs.milestone_of("conformance/gw.sh") is None
    assert labs.GRADED.match("conformance/04/bodiless_head.vtc")
    assert labs.GRADED.match("scripts/conformance.py")

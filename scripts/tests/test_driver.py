"""The test driver's reading of results and what it prints about failures (issue 12: a
learner's first run says which labs are missing and which tests fail, and little else)."""
import os
import stat
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import gwtest  # noqa: E402

CMOCKA_OUT = """[==========] Running 3 test(s).
[ RUN      ] first
[       OK ] first
[ RUN      ] second
LAB 02 not implemented: smooth weighted round robin (pick_wrr) at milestones/02-lb/balancer.c:112
[  ERROR   ] --- [   LINE   ] --- milestones/02-lb/balancer.c:112: error: Failure!
[  FAILED  ] second
[ RUN      ] third
[  ERROR   ] --- 0x1 != 0x2
[   LINE   ] --- milestones/02-lb/tests/test_x.c:40: error: Failure!
[  FAILED  ] third
[==========] 3 test(s) run.
[  PASSED  ] 1 test(s).
[  FAILED  ] 2 test(s), listed below:
[  FAILED  ] second
[  FAILED  ] third
"""


def fake_binary(tmp_path, text, rc):
    (tmp_path / "out.txt").write_text(text)
    exe = tmp_path / "test_fake"
    exe.write_text(f"#!/bin/sh\ncat '{tmp_path / 'out.txt'}'\nexit {rc}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


def test_unit_binaries_without_a_source_do_not_run(tmp_path):
    """A test file deleted or renamed leaves its binary in an old build: it must not run."""
    for rel in ("build/asan/tests/common/test_a", "build/asan/tests/04-http/test_kept",
                "build/asan/tests/04-http/test_gone", "build/asan/tests/04-http/test_kept.o",
                "common/tests/test_a.c", "milestones/04-http/tests/test_kept.c"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    got = [suite for _, suite in gwtest.unit_binaries(str(tmp_path), "asan", ["04-http"], False)]
    assert got == ["common/test_a", "04-http/test_kept"]
    got = [suite for _, suite in gwtest.unit_binaries(str(tmp_path), "asan", ["04-http"], True)]
    assert got == ["04-http/test_kept"]


def test_each_failed_case_gets_the_output_of_its_own_test(tmp_path):
    cases, crashed, _ = gwtest.run_unit(fake_binary(tmp_path, CMOCKA_OUT, 2), {}, None, 10)
    assert [(c["name"], c["ok"]) for c in cases] == [("first", True), ("second", False), ("third", False)]
    assert cases[1]["detail"].startswith("LAB 02 not implemented") and "0x1 != 0x2" not in cases[1]["detail"]
    assert "0x1 != 0x2" in cases[2]["detail"] and "LAB 02" not in cases[2]["detail"]
    assert crashed is None


def test_a_report_after_the_tests_fails_the_binary_even_with_failed_tests(tmp_path):
    text = CMOCKA_OUT + "\n=================================================================\n==1==ERROR: LeakSanitizer: detected memory leaks\n"
    cases, crashed, _ = gwtest.run_unit(fake_binary(tmp_path, text, 23), {}, None, 10)
    assert crashed is not None and "LeakSanitizer" in crashed


def test_a_binary_stopped_inside_a_test_fails_that_test(tmp_path):
    text = "[ RUN      ] racing\nLAB 03 not implemented: breaker (gw_breaker_record) at milestones/03-resilience/breaker.c:9\n"
    cases, crashed, _ = gwtest.run_unit(fake_binary(tmp_path, text, 70), {}, None, 10)
    assert [(c["name"], c["ok"]) for c in cases] == [("racing", False)]
    assert "the tests after it did not run" in cases[0]["detail"] and "LAB 03" in cases[0]["detail"]


def test_stub_failures_print_one_line_and_repeats_are_counted(capsys):
    r = gwtest.Results(again_hint="make test M=02")
    lab = "LAB 02 not implemented: smooth weighted round robin (pick_wrr) at milestones/02-lb/balancer.c:112"
    long_detail = "\n".join(f"line {i}" for i in range(50))
    r.add_suite("02-lb/test_x", "asan", [{"name": "a", "ok": False, "detail": lab},
                                         {"name": "b", "ok": False, "detail": long_detail}], 0.1)
    r.add_suite("02-lb/test_x", "tsan", [{"name": "a", "ok": False, "detail": lab},
                                         {"name": "b", "ok": False, "detail": long_detail}], 0.1)
    r.print_labs()
    out = capsys.readouterr().out.splitlines()
    assert "        failed: a: stopped at LAB 02 (pick_wrr, milestones/02-lb/balancer.c:112)" in out
    assert sum(1 for ln in out if ln.strip().startswith("line ")) == gwtest.DETAIL_LINES
    assert f"            (... {50 - gwtest.DETAIL_LINES} more lines: make test M=02 T=b)" in out
    assert "        failed: 2 more test(s), listed above for asan" in out
    assert "  LAB 02 smooth weighted round robin: pick_wrr at milestones/02-lb/balancer.c:112 (1 test(s))" in out
    assert len(out) == 2 + 1 + 1 + gwtest.DETAIL_LINES + 1 + 1 + 2 + 1


def test_verbose_prints_every_line(capsys):
    r = gwtest.Results(verbose=True)
    r.add_suite("s", "asan", [{"name": "b", "ok": False, "detail": "\n".join(f"line {i}" for i in range(50))}], 0.1)
    assert sum(1 for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("line ")) == 50


def test_junit_entries_of_one_test_are_merged_with_its_lab_stub(tmp_path):
    (tmp_path / "j.xml").write_text("""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
 <testcase classname="test_02_lb" name="test_a"><failure message="AssertionError: timed out">tb</failure></testcase>
 <testcase classname="test_02_lb" name="test_a"><properties><property name="lab_stub"
   value="gw02: LAB 02 not implemented: t (f) at x.c:1"/></properties><error message="teardown: gw02 exited with code 70"/></testcase>
 <testcase classname="test_02_lb" name="test_b"/>
</testsuite></testsuites>""")
    cases = gwtest.parse_junit(str(tmp_path / "j.xml"))
    assert [(c["name"], c["ok"]) for c in cases] == [("test_a", False), ("test_b", True)]
    assert cases[0]["detail"].splitlines() == ["gw02: LAB 02 not implemented: t (f) at x.c:1", "AssertionError: timed out",
                                               "teardown: gw02 exited with code 70"]

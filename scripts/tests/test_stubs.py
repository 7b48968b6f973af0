"""A lab stub's failure is quiet under every build (issue 12): in a unit test it fails that
test only, with no sanitizer report about the stub itself, while a real leak is still
reported; in a proxy (no test support linked) it exits with 70 and one line."""
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The stub lives in its own file, as in a handout: the test's compiler cannot see that it
# never returns, so the test keeps its pointers live across the call.
STUB = """#include "lab.h"
void stubbed(void);
void stubbed(void)
{
    gw_lab_missing("99", "a lab", __func__);
}
"""

TESTS = """#include "gwtest.h"
#include <stdlib.h>
void stubbed(void);
static void *sink;
static void leaks_then_stops(void **state)
{
    (void)state;
    char *p = malloc(111); /* unreachable before the stub: a real leak */
    p[0] = 1;
    sink = p;
    sink = NULL;
    stubbed();
}
static void holds_then_stops(void **state)
{
    (void)state;
    char **p = malloc(sizeof *p);
    *p = malloc(222);
    stubbed(); /* still reachable here: the stub cut the test short, no leak of its own */
    free(*p);
    free(p);
}
static void passes(void **state)
{
    (void)state;
}
int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(leaks_then_stops), cmocka_unit_test(holds_then_stops),
                                       cmocka_unit_test(passes)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
"""

PROXY = """void stubbed(void);
int main(void)
{
    stubbed();
    return 0;
}
"""

SAN = {"asan": ["-fsanitize=address,undefined"], "tsan": ["-fsanitize=thread"], "plain": []}
ENV = {"ASAN_OPTIONS": "detect_leaks=1", "TSAN_OPTIONS": "halt_on_error=0:exitcode=66", "CMOCKA_MESSAGE_OUTPUT": "stdout"}


def build(tmp_path, variant, main_src, with_tests):
    (tmp_path / "stub.c").write_text(STUB)
    (tmp_path / "main.c").write_text(main_src)
    srcs = [str(tmp_path / "main.c"), str(tmp_path / "stub.c"), os.path.join(ROOT, "common", "lab.c")]
    if with_tests:
        srcs.append(os.path.join(ROOT, "common", "testsupport", "gwtest.c"))
    exe = str(tmp_path / f"t_{variant}")
    cmd = (["gcc", "-std=gnu11", "-g", "-O1", "-fno-omit-frame-pointer", "-D_GNU_SOURCE", "-I", os.path.join(ROOT, "common"),
            "-I", os.path.join(ROOT, "common", "testsupport")] + SAN[variant] + srcs
           + ["-o", exe, "-lcmocka", "-luv", "-lpthread"])
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert p.returncode == 0, p.stdout
    return subprocess.run([exe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60,
                          env=dict(os.environ, **ENV))


@pytest.mark.parametrize("variant", ["asan", "tsan"])
def test_stub_fails_only_its_test_and_sanitizers_see_only_the_real_leak(tmp_path, variant):
    p = build(tmp_path, variant, TESTS, True)
    out = p.stdout
    assert "[  FAILED  ] leaks_then_stops" in out and "[  FAILED  ] holds_then_stops" in out, out
    assert "[       OK ] passes" in out, out
    assert out.count("LAB 99 not implemented: a lab (stubbed) at ") == 2, out
    assert "ThreadSanitizer" not in out and "DEADLYSIGNAL" not in out, out
    if variant == "asan":
        assert "Direct leak of 111 byte(s)" in out, out  # the real one is still reported
        assert "222 byte" not in out and "Direct leak of 8 byte" not in out, out


@pytest.mark.parametrize("variant", ["plain", "tsan"])
def test_stub_in_a_proxy_exits_70_with_one_line(tmp_path, variant):
    p = build(tmp_path, variant, PROXY, False)
    assert p.returncode == 70, p.stdout
    assert p.stdout.strip().splitlines() == [f"LAB 99 not implemented: a lab (stubbed) at {tmp_path}/stub.c:5"], p.stdout

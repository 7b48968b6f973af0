"""Checks of configuration errors reported as FILE:LINE:COL: message (every milestone)."""
import re


def position(text, needle, offset=0):
    """(line, column), both from 1, of NEEDLE's first character plus OFFSET in TEXT."""
    i = text.index(needle) + offset
    return text.count("\n", 0, i) + 1, i - (text.rfind("\n", 0, i) + 1) + 1


def assert_error_at(run_binary, binary, path, text, where, words):
    """`BINARY -t -c PATH` must exit 1 with an error at WHERE (needle, offset) in TEXT whose
    line mentions every one of WORDS."""
    r = run_binary(binary, ["-t", "-c", path])
    assert r.code == 1, "%s -t should reject this config:\n%s" % (binary, text)
    line, col = position(text, *where)
    prefix = "%s:%d:%d:" % (path, line, col)
    hits = [ln for ln in r.stderr.splitlines() if prefix in ln]
    assert hits, "no error reported at %s; stderr:\n%s" % (prefix, r.stderr)
    missing = [w for w in words if not any(re.search(r"\b%s\b" % re.escape(w), ln) for ln in hits)]
    assert not missing, "the error at %s should mention %s: %s" % (prefix, missing, hits)

"""A tiny YAML writer for generated configs: mappings, sequences, strings, ints, bools, None.

Block style only, two-space indents, keys in the order given, so a test can tell on which
line a key lands. Strings are written plain when that reads back as the same string and
double-quoted otherwise ("10", "true", "a: b", ...). Durations and sizes are strings: "5s".
"""
import json
import re

_PLAIN = re.compile(r"^[A-Za-z0-9_./@+-][A-Za-z0-9_./@+: -]*$")
_SPECIAL = {"", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n"}
_NUMBER = re.compile(r"^[-+]?(\d[\d_]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^0[xob]", re.I)


def scalar(v):
    """One scalar as YAML text."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    s = str(v)
    if (
        _PLAIN.match(s)
        and s.lower() not in _SPECIAL
        and not _NUMBER.match(s)
        and not s.endswith(" ")
        and ": " not in s
        and " #" not in s
        and not s.endswith(":")
        and not s.startswith("- ")
    ):
        return s
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def _is_collection(v):
    return isinstance(v, (dict, list, tuple))


def _emit(v, indent, out):
    pad = " " * indent
    if isinstance(v, dict):
        if not v:
            out.append(pad + "{}")
            return
        for k, item in v.items():
            key = scalar(k)
            if _is_collection(item) and item:
                out.append("%s%s:" % (pad, key))
                _emit(item, indent + 2, out)
            elif _is_collection(item):
                out.append("%s%s: %s" % (pad, key, "{}" if isinstance(item, dict) else "[]"))
            else:
                out.append("%s%s: %s" % (pad, key, scalar(item)))
    elif isinstance(v, (list, tuple)):
        if not v:
            out.append(pad + "[]")
            return
        for item in v:
            if isinstance(item, dict) and item:
                sub = []
                _emit(item, indent + 2, sub)
                # "- " takes the place of the first line's indent
                sub[0] = pad + "- " + sub[0][indent + 2 :]
                out.extend(sub)
            elif isinstance(item, (list, tuple)) and item:
                out.append(pad + "-")
                _emit(item, indent + 2, out)
            elif _is_collection(item):
                out.append(pad + "- " + ("{}" if isinstance(item, dict) else "[]"))
            else:
                out.append(pad + "- " + scalar(item))
    else:
        out.append(pad + scalar(v))


def dump(doc):
    """DOC (a dict, normally) as YAML text ending with a newline."""
    out = []
    _emit(doc, 0, out)
    return "\n".join(out) + "\n"

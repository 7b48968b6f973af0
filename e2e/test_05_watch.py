"""Milestone 05: gw05 reloads when its config file changes (reload: {watch_file: true}).

The watcher watches the file's directory (an editor's save renames a new file over the old
one, which a watch on the file itself would not follow) and waits for a quiet period after
the last event, so that one save applies once, and a file written in two parts within the
quiet period is read whole. Each test counts the `applied` lines: exactly one per save."""
import os
import re
import time

from gwtest import config
from gwtest.config import Port
from gwtest.wait import wait_until
from gwtest import env

GW = "gw05"
QUIET = "300ms"


def watched(n, app, watch=True):
    cfg = config.http_proxy(app, routes=[config.route(
        "app", name="all", middleware=[{"headers": {"response": {"set": {"X-Gen": str(n)}}}}])])
    cfg["reload"] = {"watch_file": watch, "quiet_period": QUIET}
    cfg["admin"] = {"address": Port("admin")}
    return cfg


def applied_count(gw):
    return len(re.findall(r"config generation \d+ applied", gw.stderr_text()))


def settle(gw, want):
    """Waits for WANT applied lines, then for a further quiet period and a half, and checks
    that no more came (a second apply of one save would land within it)."""
    wait_until(lambda: applied_count(gw) >= want, env.timeout(10), "%d applied line(s)" % want)
    # A second reload of the same save would follow the first within one quiet period.
    time.sleep(0.45)  # allowed-sleep: proving that nothing more happens takes time
    assert applied_count(gw) == want, "expected exactly %d applied line(s):\n%s" % (
        want, gw.stderr_text()[-3000:])


def test_editor_style_save_applies_once(gateway, backend, http_client):
    app = backend.http(name="a")
    gw = gateway(GW, watched(1, app))
    gw.wait_log("reload: watching")
    gw.rewrite(watched(2, app))  # a temporary file renamed over the config, as editors do
    settle(gw, 1)
    assert http_client(gw).get("/").header("X-Gen") == "2"
    gw.rewrite(watched(3, app))  # the watch survived the rename
    settle(gw, 2)
    assert http_client(gw).get("/").header("X-Gen") == "3"


def test_truncate_then_write_applies_once(gateway, backend, http_client):
    app = backend.http(name="a")
    gw = gateway(GW, watched(1, app))
    gw.wait_log("reload: watching")
    text = gw.render(watched(2, app))
    with open(gw.config_path, "w") as f:  # truncates, then writes
        f.write(text)
    settle(gw, 1)
    assert http_client(gw).get("/").header("X-Gen") == "2"


def test_two_part_write_within_quiet_period_applies_once(gateway, backend, http_client):
    """An invalid prefix, then the rest, within the quiet period: one applied, no refusal."""
    app = backend.http(name="a")
    gw = gateway(GW, watched(1, app))
    gw.wait_log("reload: watching")
    text = gw.render(watched(2, app))
    half = len(text) // 2
    with open(gw.config_path, "w") as f:
        f.write(text[:half])
        f.flush()
        os.fsync(f.fileno())
        f.write(text[half:])
    settle(gw, 1)
    assert "refused" not in gw.stderr_text(), gw.stderr_text()
    assert http_client(gw).get("/").header("X-Gen") == "2"


def test_watch_off_ignores_changes(gateway, backend, http_client):
    app = backend.http(name="a")
    gw = gateway(GW, watched(1, app, watch=False))
    gw.rewrite(watched(2, app, watch=False))
    time.sleep(0.6)  # allowed-sleep: proving that nothing happens takes time
    assert applied_count(gw) == 0
    assert http_client(gw).get("/").header("X-Gen") == "1"

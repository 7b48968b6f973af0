"""Milestone 05's configuration as the binaries see it: what gw04 says about 05's keys, as
every stage's "needs gwNN" test does (a user who writes `reload:` for gw04 is told which
binary reloads). gw05's own use of them is in test_05_reload.py and test_05_watch.py."""
from gwtest.cfgerrors import assert_error_at

GW04 = "gw04"

CONFIG = """workers: 1
listeners:
  - name: web
    address: 127.0.0.1:18080
    protocol: http
    routes:
      - {name: all, match: {path_prefix: /}, upstream: app}
upstreams:
  app:
    backends:
      - address: 127.0.0.1:19001
%s"""


def test_config_05_reload_needs_gw05(config_file, run_binary):
    text = CONFIG % "reload:\n  watch_file: true\n  quiet_period: 1s\n"
    path, _ = config_file(text, "reload.yaml")
    assert_error_at(run_binary, GW04, path, text, ("reload:",), ["reload", "needs gw05 or later"])


def test_config_05_without_reload_block_loads_in_gw04(config_file, run_binary):
    """The same file without the block is valid for gw04: the error above is the block's."""
    text = CONFIG % ""
    path, _ = config_file(text, "plain.yaml")
    r = run_binary(GW04, ["-t", "-c", path])
    assert r.code == 0, r

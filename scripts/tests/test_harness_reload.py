"""The e2e harness's reload helpers (e2e/gwtest/proc.py, milestone 05): a rewritten config
keeps its resolved ports, wait_applied finds the right line and returns where it ends,
listen_inodes sees exactly a process's listening sockets on a port, and reload sends
SIGHUP or POST /reload. No gateway is run: the process is this one, or a small child."""
import http.server
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# e2e's package is also called gwtest, like scripts/gwtest.py that other tool tests import:
# load it under another name so both can live in one pytest run.
_spec = importlib.util.spec_from_file_location("e2e_gwtest", os.path.join(ROOT, "e2e", "gwtest", "__init__.py"),
                                               submodule_search_locations=[os.path.join(ROOT, "e2e", "gwtest")])
_pkg = importlib.util.module_from_spec(_spec)
sys.modules["e2e_gwtest"] = _pkg
_spec.loader.exec_module(_pkg)
from e2e_gwtest import config, proc  # noqa: E402
from e2e_gwtest.wait import WaitTimeout  # noqa: E402


def gateway(tmp_path, cfg=None):
    """A Gateway handle that is never started (the helpers under test need no process)."""
    return proc.Gateway("gw05", cfg or {}, str(tmp_path))


def test_rewrite_keeps_resolved_ports_and_resolves_new_ones(tmp_path):
    gw = gateway(tmp_path)
    first = config.http_proxy("127.0.0.1:9001", admin={"address": config.Port("admin")})
    gw.addrs = proc.write_config(first, gw.config_path)
    edge, adm = gw.addr("edge"), gw.addr("admin")
    second = config.http_proxy("127.0.0.1:9002", admin={"address": config.Port("admin")})
    second["listeners"].append({"name": "extra", "protocol": "http", "routes": [config.route()]})
    text = gw.rewrite(second)
    assert gw.addr("edge") == edge and gw.addr("admin") == adm
    assert gw.addr("extra")[1] not in (edge[1], adm[1])
    with open(gw.config_path) as f:
        assert f.read() == text
    assert "127.0.0.1:9002" in text and "127.0.0.1:%d" % edge[1] in text
    assert not os.path.exists(gw.config_path + ".tmp")
    assert gw.cfg is second


def test_rewrite_replaces_the_file_by_rename(tmp_path):
    """A reload reading the file sees the old or the new text, never a part: a new inode."""
    gw = gateway(tmp_path)
    gw.addrs = proc.write_config(config.tcp_proxy("127.0.0.1:9001"), gw.config_path)
    before = os.stat(gw.config_path).st_ino
    gw.rewrite(config.tcp_proxy("127.0.0.1:9002"))
    assert os.stat(gw.config_path).st_ino != before


def test_wait_applied_returns_the_offset_past_its_line(tmp_path):
    gw = gateway(tmp_path)
    lines = ["ready\n", "config generation 2 applied (1 change): routes\n", "x\n",
             "config generation 12 applied (3 changes)\n"]
    with open(gw.stderr_path, "w") as f:
        f.write("".join(lines))
    off = gw.wait_applied(2, timeout=1)
    assert off == len(lines[0]) + len(lines[1])
    # Generation 1 never logged: "generation 12" must not pass for it.
    with pytest.raises(WaitTimeout):
        gw.wait_applied(1, timeout=0.2)
    assert gw.wait_applied(12, timeout=1, after=off) == sum(len(x) for x in lines)
    # A line before AFTER does not count.
    with pytest.raises(WaitTimeout):
        gw.wait_applied(2, timeout=0.2, after=off)


def test_listen_inodes_sees_this_process_listeners_on_the_port(tmp_path):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    port = ls.getsockname()[1]
    assert proc.listen_inodes(os.getpid(), port) == set()  # bound, not listening
    ls.listen()
    inode = os.fstat(ls.fileno()).st_ino
    assert proc.listen_inodes(os.getpid(), port) == {inode}
    # A connection to it is not a listener, on either side.
    c = socket.create_connection(("127.0.0.1", port))
    s, _ = ls.accept()
    assert proc.listen_inodes(os.getpid(), port) == {inode}
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    assert proc.listen_inodes(os.getpid(), port) == {inode}
    for x in (c, s, other):
        x.close()
    ls.close()
    assert proc.listen_inodes(os.getpid(), port) == set()


def test_listen_inodes_ignores_another_process(tmp_path):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    port = ls.getsockname()[1]
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                             close_fds=True)
    try:
        assert proc.listen_inodes(child.pid, port) == set()
    finally:
        child.communicate(b"")
        ls.close()


def test_reload_via_hup_signals_the_process(tmp_path):
    gw = gateway(tmp_path)
    code = ("import signal, sys\n"
            "signal.signal(signal.SIGHUP, lambda *a: sys.exit(42))\n"
            "print('up', flush=True)\n"
            "signal.pause()\n")
    gw.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert gw.proc.stdout.readline() == b"up\n"  # the handler is installed
        assert gw.reload("hup") is None
        assert gw.proc.wait(timeout=10) == 42
    finally:
        if gw.proc.poll() is None:
            gw.proc.kill()
            gw.proc.wait()
        gw.proc.stdout.close()


def test_reload_via_admin_posts_with_the_token(tmp_path):
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append((self.command, self.path, self.headers.get("Authorization")))
            body = b'{"generation":2}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.handle_request, daemon=True)
    t.start()
    try:
        gw = gateway(tmp_path)
        gw.addrs = {"admin": srv.server_address}
        r = gw.reload("admin", token="0123456789abcdef")
        assert r.status == 200 and r.json() == {"generation": 2}
        assert seen == [("POST", "/reload", "Bearer 0123456789abcdef")]
    finally:
        t.join(10)
        srv.server_close()


def test_reload_via_anything_else_is_refused(tmp_path):
    with pytest.raises(ValueError):
        gateway(tmp_path).reload("usr1")

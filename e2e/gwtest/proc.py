"""The gateway process: write its config, start it, wait until it is ready, stop it, and
check what it left behind (exit code, sanitizer reports). Also one-shot runs (-t, -T, -h)."""
import os
import re
import resource
from signal import SIGHUP, SIGTERM, Signals
import subprocess
import weakref

from . import admin as gwadmin
from . import config as gwconfig
from . import env, yamlw
from .wait import Deadline, WaitTimeout, wait_until

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "WARNING: ThreadSanitizer",
    "runtime error:",  # UBSan
    "LeakSanitizer",
)
READY_RE = re.compile(r"(?<!not )\bready\b")
# What a handout's stub prints before the process exits with LAB_EXIT (common/lab.h).
LAB_STUB_RE = re.compile(r"^LAB \d\d not implemented: .*$", re.M)
LAB_EXIT = 70
IN_USE_RE = re.compile(r"in use|EADDRINUSE", re.I)
_DURATION_RE = re.compile(r"^(\d+)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}

# Every process started, so none outlives the session even if a teardown never ran.
_LIVE = weakref.WeakSet()


def kill_leftovers():
    for gw in list(_LIVE):
        if gw.proc is not None and gw.proc.poll() is None:
            gw.proc.kill()
            gw.proc.wait()


def duration_seconds(text, default):
    m = _DURATION_RE.match(str(text)) if text is not None else None
    return int(m.group(1)) * _UNITS[m.group(2)] if m else default


def sanitizer_report(text):
    """The first sanitizer report in TEXT (up to 60 lines from its first line), or None."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if any(m in line for m in SANITIZER_MARKERS):
            return "\n".join(lines[max(0, i - 1) : i + 60])
    return None


class LabStubStopped(AssertionError):
    """A proxy of the test exited at a lab stub: whatever the test waits for cannot come."""


def lab_stub_lines(text):
    """The lab-stub lines in TEXT (a proxy's stderr), each once."""
    return list(dict.fromkeys(LAB_STUB_RE.findall(text)))


def tail(text, n=200):
    lines = text.splitlines()
    if len(lines) <= n:
        return text
    return "(... %d earlier lines)\n" % (len(lines) - n) + "\n".join(lines[-n:])


def render_config(cfg, known=None):
    """CFG (a dict with placeholders, or YAML text) as YAML text; returns (text, {name: addr}).
    KNOWN: placeholders resolved before, kept at their addresses (config.resolve)."""
    if isinstance(cfg, str):
        return cfg, {}
    resolved, addrs = gwconfig.resolve(cfg, known)
    return yamlw.dump(resolved), addrs


def write_config(cfg, path):
    """Writes CFG (a dict with placeholders, or YAML text) to PATH; returns {name: addr}."""
    text, addrs = render_config(cfg)
    with open(path, "w") as f:
        f.write(text)
    return addrs


# The line a reload logs once the new generation is published (milestone 05, issue 17).
APPLIED_RE = "config generation %d applied"


def listen_inodes(pid, port):
    """The inodes of the listening TCP sockets on PORT (any local address, IPv4 or IPv6) that
    process PID holds open: the LISTEN rows of /proc/net/tcp and tcp6 whose inode is also a
    `socket:[INODE]` link in /proc/PID/fd. Equal sets before and after a reload mean the
    listener kept its sockets (one per worker with SO_REUSEPORT); a rebind makes new ones."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            cols = row.split()
            # sl local_address rem_address st ... inode: local is HEXADDR:HEXPORT, 0A = LISTEN
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                listening.add(int(cols[9]))
    held = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except FileNotFoundError:  # closed meanwhile
            continue
        if link.startswith("socket:["):
            held.add(int(link[8:-1]))
    return listening & held


class Result:
    """Outcome of a one-shot run."""

    def __init__(self, args, code, stdout, stderr):
        self.args, self.code, self.stdout, self.stderr = args, code, stdout, stderr

    def __repr__(self):
        return "Result(args=%r, code=%r,\n  stdout=%s\n  stderr=%s)" % (
            self.args, self.code, tail(self.stdout, 40), tail(self.stderr, 40))


def run_binary(name, args, timeout=None, cwd=None):
    """Runs BIN ARGS to completion (e.g. gw01 -t -c FILE) and returns a Result. A run that
    outlives TIMEOUT (default 10s, stretched under sanitizers) is killed and fails."""
    path = env.binary(name)
    if not os.path.exists(path):
        raise AssertionError("%s not found (build it: make M=NN; GW_BIN_DIR=%s)" % (path, env.BIN_DIR))
    cmd = [path] + [str(a) for a in args]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, cwd=cwd,
                           timeout=timeout or env.timeout(10))
    except subprocess.TimeoutExpired as e:
        raise AssertionError("%s did not exit within %.0fs\nstderr:\n%s" % (
            " ".join(cmd), e.timeout, (e.stderr or b"").decode(errors="replace")))
    r = Result(cmd, p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))
    rep = sanitizer_report(r.stderr)
    if rep:
        raise AssertionError("sanitizer report from %s:\n%s" % (" ".join(cmd), rep))
    return r


class Gateway:
    """One running proxy. Made by the `gateway` fixture; the test reads .pid, .addr(name),
    .stderr_text(), and may call .stop(). EXPECT_EXIT is the code teardown asserts (None:
    do not check)."""

    def __init__(self, name, cfg, workdir, transcript=None, args=(), expect_exit=0, tag=None,
                 rlimit_nofile=None):
        self.name = name
        self.rlimit_nofile = rlimit_nofile  # (soft, hard) open-files limit to start under
        self.cfg = cfg
        self.workdir = workdir
        self.transcript = transcript
        self.args = list(args)
        self.expect_exit = expect_exit
        self.tag = tag or name
        self.proc = None
        self.addrs = {}
        self.exit_code = None
        self.ready_rss = None
        self.start_failed = False  # the test already failed on that: teardown says no more
        self.config_path = os.path.join(workdir, "%s.yaml" % self.tag)
        self.stderr_path = os.path.join(workdir, "%s.stderr" % self.tag)
        self.stdout_path = os.path.join(workdir, "%s.stdout" % self.tag)
        drain = cfg.get("drain_timeout") if isinstance(cfg, dict) else None
        self.drain_seconds = duration_seconds(drain, 30)

    # ---- start ----------------------------------------------------------------------
    def start(self, ready_timeout=None):
        path = env.binary(self.name)
        if not os.path.exists(path):
            raise AssertionError("%s not found (build it: make M=NN; GW_BIN_DIR=%s)" % (path, env.BIN_DIR))
        attempts = 3 if isinstance(self.cfg, dict) else 1
        for attempt in range(attempts):
            self.addrs = write_config(self.cfg, self.config_path)
            self._spawn(path)
            self.start_failed = False
            try:
                self.wait_ready(ready_timeout)
                return self
            except _ExitedEarly as e:
                # A port picked as free may have been taken meanwhile by someone else.
                if attempt + 1 < attempts and IN_USE_RE.search(self.stderr_text()):
                    self._note("exited early (address in use); retrying with new ports")
                    continue
                raise AssertionError(str(e)) from None
        return self

    def _spawn(self, path):
        cmd = [path, "-c", self.config_path] + self.args
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            limit = self.rlimit_nofile
            # Set in the child before exec, as `prlimit --nofile=SOFT:HARD gwNN ...` would.
            pre = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limit)) if limit else None
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         cwd=self.workdir, preexec_fn=pre)
        _LIVE.add(self)
        self.exit_code = None
        self._note("started %s (pid %d)" % (" ".join(cmd), self.proc.pid))

    def wait_ready(self, timeout=None):
        """Polls stderr for the `ready` line; fails fast if the process exits first."""
        timeout = timeout or env.timeout(10)
        dl = Deadline(timeout)

        def check():
            if READY_RE.search(self.stderr_text()):
                return True
            if self.proc.poll() is not None:
                self.exit_code = self.proc.returncode
                raise _ExitedEarly("%s exited with code %s before it was ready; stderr ends:\n%s" % (
                    self.name, self.exit_code, tail(self.stderr_text(), 20)))
            return False

        try:
            wait_until(check, timeout, "%s to log `ready`" % self.name,
                       describe=lambda: "stderr ends:\n" + tail(self.stderr_text(), 20))
        except WaitTimeout:
            self.start_failed = True
            self.proc.kill()
            self.proc.wait()
            self.exit_code = self.proc.returncode
            raise
        except _ExitedEarly:
            self.start_failed = True
            raise
        self.ready_rss = self.rss()
        self._note("ready after %.2fs" % dl.elapsed())

    # ---- what the test reads --------------------------------------------------------
    @property
    def pid(self):
        return self.proc.pid

    def addr(self, name="edge"):
        """(host, port) of the listener (or other placeholder) called NAME."""
        return self.addrs[name]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def stdout_text(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=None, after=0):
        """Polls stderr until regex PATTERN matches (in the text from offset AFTER on);
        returns the match."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.stderr_text()[after:]), timeout or env.timeout(10),
                          "%s to log /%s/" % (self.name, pattern),
                          describe=lambda: "stderr so far:\n" + tail(self.stderr_text(), 100))

    # ---- reloads (milestone 05) ------------------------------------------------------
    def render(self, cfg):
        """CFG as the YAML text a rewrite would write: placeholders resolved before keep
        their ports. Records the new addresses (gw.addr) and CFG as the current config. For
        tests that write the file their own way (in parts, truncate-then-write)."""
        text, addrs = render_config(cfg, self.addrs)
        self.cfg = cfg
        self.addrs = addrs if not isinstance(cfg, str) else self.addrs
        if isinstance(cfg, dict):
            self.drain_seconds = duration_seconds(cfg.get("drain_timeout"), self.drain_seconds)
        return text

    def rewrite(self, cfg):
        """Replaces the config file with CFG (see render), whole in one step: written to a
        temporary name beside it, then renamed over it, so a reload never reads half a
        file. Returns the text written."""
        text = self.render(cfg)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        self._note("config rewritten (%d bytes)" % len(text))
        return text

    def reload(self, via="hup", token=None, admin="admin"):
        """Asks for a reload: VIA "hup" sends SIGHUP (returns None); "admin" sends POST
        /reload to the admin listener named ADMIN, with TOKEN if given, and returns the
        Response (200 applied, 400 refused, JSON either way). Pair with wait_applied."""
        if via == "hup":
            self.signal(SIGHUP)
            return None
        if via == "admin":
            self._note("POST /reload")
            return gwadmin.get(self.addr(admin), "/reload", token=token, method="POST")
        raise ValueError("reload via %r: expected 'hup' or 'admin'" % (via,))

    def wait_applied(self, n, timeout=None, after=0):
        """Waits for `config generation N applied` in stderr (from offset AFTER on) and
        returns the offset just past that line: a request sent after this returns must be
        served by generation N, and a later wait can start from there."""
        m = self.wait_log(APPLIED_RE % n + r"[^\n]*\n?", timeout, after)
        return after + m.end()

    def listen_inodes(self, port):
        """See listen_inodes(): this process's listening sockets on PORT."""
        return listen_inodes(self.pid, port)

    def rss(self):
        """{'VmRSS': bytes, 'VmHWM': bytes} from /proc/PID/status (None once exited)."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                text = f.read()
        except (FileNotFoundError, ProcessLookupError):
            return None
        out = {}
        for line in text.splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
        return out

    # ---- stop -----------------------------------------------------------------------
    def signal(self, sig):
        self._note("signal %s" % Signals(sig).name)
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=None):
        """Waits for the process to exit; returns its code (negative: killed by a signal).
        Past the deadline it is killed and the wait fails."""
        timeout = timeout or (self.drain_seconds + env.timeout(10))
        try:
            self.exit_code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.exit_code = self.proc.returncode
            raise AssertionError("%s did not exit within %.1fs; killed" % (self.name, timeout))
        self._note("exited with code %d" % self.exit_code)
        return self.exit_code

    def stop(self, sig=SIGTERM, timeout=None):
        """Sends SIG (if still running) and waits for the exit; returns the exit code."""
        if self.alive():
            self.signal(sig)
        return self.wait_exit(timeout)

    def finish(self):
        """Teardown: stop if needed, then a list of problems (empty when all is well)."""
        problems = []
        if self.proc is None:
            return problems
        try:
            if self.alive():
                self.stop()
            elif self.exit_code is None:
                self.exit_code = self.proc.wait()
        except AssertionError as e:
            problems.append(str(e))
        stubs = lab_stub_lines(self.stderr_text()) if self.exit_code == LAB_EXIT else []
        if stubs:
            problems.append("%s exited at a lab stub (code %d): %s" % (self.name, LAB_EXIT, stubs[0]))
        elif self.expect_exit is not None and not self.start_failed and self.exit_code != self.expect_exit:
            problems.append("%s exited with code %s, expected %s" % (self.name, self.exit_code, self.expect_exit))
        rep = sanitizer_report(self.stderr_text())
        if rep:
            problems.append("sanitizer report in %s's stderr:\n%s" % (self.name, rep))
        return problems

    def _note(self, what):
        if self.transcript is not None:
            self.transcript.event("%s: %s" % (self.tag, what))


class _ExitedEarly(Exception):
    pass

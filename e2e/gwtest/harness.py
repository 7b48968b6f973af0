"""One test's world: its gateways, backends, clients and transcript, torn down in the right
order (clients, then gateways, then backends) with every problem reported together."""
import os
import signal

from . import backends as gwbackends
from . import clients as gwclients
from . import env, ports, proc
from . import http as gwhttp
from . import wait
from .transcript import Transcript


class BackendFactory:
    """The `backend` fixture: backend.echo(), backend.sink(...), ... Each starts a server on
    a free loopback port that the harness stops at teardown."""

    def __init__(self, h):
        self.h = h

    def __call__(self, cls, *args, **kw):
        srv = cls(self.h.transcript, *args, **kw)
        self.h.servers.append(srv)
        return srv

    def echo(self, **kw):
        return self(gwbackends.Echo, **kw)

    def reply_after_eof(self, **kw):
        return self(gwbackends.ReplyAfterEOF, **kw)

    def half_close_first(self, **kw):
        return self(gwbackends.HalfCloseFirst, **kw)

    def sink(self, **kw):
        return self(gwbackends.Sink, **kw)

    def source(self, nbytes, seed=1, **kw):
        return self(gwbackends.Source, nbytes, seed, **kw)

    def reset_after(self, **kw):
        return self(gwbackends.ResetAfter, **kw)

    def tagged(self, **kw):
        """A backends.Tagged: answers b"who\\n" with its name (default "host:port"), then
        echoes; answers HTTP health checks (http_status=, health_path=)."""
        return self(gwbackends.Tagged, **kw)

    def http(self, **kw):
        """A gwhttp.HttpBackend (milestone 04): keep-alive HTTP/1.1 upstream that records
        every request and answers through its .handler (default: a JSON echo)."""
        return self(gwhttp.HttpBackend, **kw)

    def blackhole(self):
        bh = ports.Blackhole()
        self.h.closers.append(bh.close)
        return bh

    def stall(self, after, seconds=0.0, release=None):
        """A backends.Stall for a sink or a client's drain()."""
        return gwbackends.Stall(after, seconds, release)

    def refused(self):
        """A (host, port) whose connects are refused."""
        return ports.refused_address()


class Harness:
    def __init__(self, name, workdir):
        self.name = name
        self.workdir = workdir
        self.transcript = Transcript(name)
        self.gateways = []
        self.servers = []
        self.clients = []
        self.closers = []
        self.runs = []
        self.backend = BackendFactory(self)
        wait.set_interrupt(self._stopped_at_stub)

    def _stopped_at_stub(self):
        """Raises LabStubStopped once a gateway of this test has exited at a lab stub (a
        handout): every wait of the test then ends at its next poll instead of at its
        deadline, which made a handout's e2e suite spend most of its time waiting."""
        for gw in self.gateways:
            if gw.proc is not None and gw.proc.poll() == proc.LAB_EXIT:
                lines = proc.lab_stub_lines(gw.stderr_text())
                if lines:
                    raise proc.LabStubStopped("%s exited at a lab stub: %s" % (gw.tag, lines[0]))

    # ---- factories behind the fixtures --------------------------------------------------
    def gateway(self, binary, cfg, expect_exit=0, args=(), ready_timeout=None, rlimit_nofile=None):
        """Starts BINARY (e.g. "gw01") on CFG (dict with placeholders, or YAML text) and
        waits until it logs `ready`. RLIMIT_NOFILE, (soft, hard): the open-files limit it
        starts under. Returns a proc.Gateway."""
        tag = binary if not self.gateways else "%s-%d" % (binary, len(self.gateways) + 1)
        gw = proc.Gateway(binary, cfg, self.workdir, self.transcript, args=args,
                          expect_exit=expect_exit, tag=tag, rlimit_nofile=rlimit_nofile)
        self.gateways.append(gw)
        gw.start(ready_timeout)
        return gw

    def client(self, addr, **kw):
        """A connected gwclients.Client (closed at teardown). ADDR: (host, port) or a Gateway
        (its "edge" listener)."""
        if isinstance(addr, proc.Gateway):
            addr = addr.addr("edge")
        c = gwclients.Client(addr, self.transcript, **kw)
        self.clients.append(c)
        return c

    def http_client(self, addr, **kw):
        """A connected gwhttp.HttpClient (closed at teardown). ADDR: (host, port) or a
        Gateway (its "edge" listener)."""
        if isinstance(addr, proc.Gateway):
            addr = addr.addr("edge")
        c = gwhttp.HttpClient(addr, self.transcript, **kw)
        self.clients.append(c)
        return c

    def config_file(self, cfg, name="config.yaml"):
        """Writes CFG (dict or YAML text) to the test's directory; returns (path, addrs)."""
        path = os.path.join(self.workdir, name)
        return path, proc.write_config(cfg, path)

    def run_binary(self, binary, args, timeout=None):
        """One-shot run (e.g. ["-t", "-c", path]); returns a proc.Result."""
        r = proc.run_binary(binary, args, timeout=timeout, cwd=self.workdir)
        self.runs.append(r)
        self.transcript.event("ran %s -> exit %s" % (" ".join(r.args), r.code))
        return r

    # ---- failure report and teardown -------------------------------------------------
    def report_sections(self):
        """(title, text) pairs printed when the test fails."""
        out = []
        for gw in self.gateways:
            out.append(("%s stderr (last 200 lines; pid %s, exit %s)" % (
                gw.tag, gw.proc.pid if gw.proc else "-", gw.exit_code),
                proc.tail(gw.stderr_text(), 200) or "(empty)"))
        for r in self.runs:
            out.append(("run %s (exit %s)" % (" ".join(r.args), r.code),
                        "stdout:\n%s\nstderr:\n%s" % (proc.tail(r.stdout, 60), proc.tail(r.stderr, 60))))
        errs = [e for s in self.servers for e in s.errors]
        if errs:
            out.append(("backend errors", "\n".join(errs[:50])))
        out.append(("transcript", self.transcript.render()))
        return out

    def lab_stubs(self):
        """The lab stubs (common/lab.h) that stopped a proxy of this test: "gw02: LAB 02 not
        implemented: ... at FILE:LINE" lines, usually none."""
        out = []
        for gw in self.gateways:
            out += ["%s: %s" % (gw.tag, line) for line in proc.lab_stub_lines(gw.stderr_text())]
        for r in self.runs:
            out += ["%s: %s" % (os.path.basename(r.args[0]), line) for line in proc.lab_stub_lines(r.stderr)]
        return out

    def close(self):
        """Tears everything down; returns the list of problems found (exit codes,
        sanitizer reports)."""
        wait.set_interrupt(None)
        problems = []
        gwbackends.release_all_stalls()
        for c in self.clients:
            c.close()
        for gw in self.gateways:
            try:
                problems += gw.finish()
            except Exception as e:  # keep tearing down; report it with the rest
                problems.append("%s teardown: %s: %s" % (gw.tag, type(e).__name__, e))
        for s in self.servers:
            s.stop()
        for f in self.closers:
            f()
        if env.TRANSCRIPT_FILE:
            with open(env.TRANSCRIPT_FILE, "a") as f:
                f.write(self.transcript.render() + "\n\n")
        return problems


def stop_all_now():
    proc.kill_leftovers()


SIGTERM = signal.SIGTERM
SIGINT = signal.SIGINT

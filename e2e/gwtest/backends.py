"""Fake upstreams: threaded servers on free loopback ports, one thread per connection.

Every server counts accepted connections (.accepted, .wait_accepted(n)), records what
crossed its side in the test's transcript, keeps handler errors in .errors, and reports
per-connection outcomes through .results (a queue.Queue; .result() takes the next one).
stop() closes the listener and every connection and joins the threads (bounded).
refuse() / resume() take a server down (connects refused, port kept) and bring it back on
the same port. Tagged (milestone 02) answers a request line with its name, then echoes,
and answers HTTP health checks on the same port."""
import hashlib
import queue
import socket
import struct
import threading
import time
import weakref

from . import data as gwdata
from . import env
from .ports import HOST, fmt
from .wait import wait_until

RECV_BUF = 1 << 20


class Received:
    """What one side read: byte count, sha256, the first bytes, and (when KEEP) all of it."""

    def __init__(self, count, sha256, head, data=None, end="eof"):
        self.count, self.sha256, self.head, self.data, self.end = count, sha256, head, data, end

    def __repr__(self):
        return "Received(count=%d, sha256=%s, end=%s, head=%r)" % (
            self.count, self.sha256[:16] + "...", self.end, bytes(self.head[:32]))


_STALLS = weakref.WeakSet()


def release_all_stalls():
    """Teardown: lets every reader still waiting on a Stall's release go."""
    for st in list(_STALLS):
        if st.release is not None:
            st.release.set()


class Stall:
    """A reader's planned pause: after AFTER bytes, stop reading for SECONDS, or, with
    RELEASE (a threading.Event), until the test sets it. .stalled is set when the pause
    begins, so the test can act while the reader is known to be stopped."""

    def __init__(self, after, seconds=0.0, release=None):
        self.after, self.seconds, self.release = after, seconds, release
        self.stalled = threading.Event()
        _STALLS.add(self)

    def pause(self, ch, count):
        self.stalled.set()
        if self.release is not None:
            ch.event("stalled after %d bytes until released" % count)
            if not self.release.wait(env.timeout(60)):
                raise AssertionError("stalled reader was never released")
        else:
            ch.event("stalling %.1fs after %d bytes" % (self.seconds, count))
            # A deliberate pause: the proxy must hold its memory bound meanwhile.
            time.sleep(self.seconds)  # allowed-sleep
        ch.event("draining again")


def read_all(conn, ch, keep=False, stall=None):
    """Reads CONN until EOF (or a reset, recorded as end="reset"); hashes as it goes.
    With STALL (a Stall), pauses once after stall.after bytes."""
    stall_after = stall.after if stall is not None else None
    h = hashlib.sha256()
    buf = bytearray(RECV_BUF)
    mv = memoryview(buf)
    count = 0
    head = bytearray()
    kept = bytearray() if keep else None
    stalled = stall_after is None
    end = "eof"
    while True:
        want = RECV_BUF
        if not stalled:
            want = max(1, min(RECV_BUF, stall_after - count))
        try:
            n = conn.recv_into(mv[:want])
        except ConnectionResetError:
            end = "reset"
            break
        if n == 0:
            break
        chunk = mv[:n]
        h.update(chunk)
        ch.recv(chunk)
        if len(head) < 64:
            head += chunk[: 64 - len(head)]
        if kept is not None:
            kept += chunk
        count += n
        if not stalled and count >= stall_after:
            stalled = True
            stall.pause(ch, count)
    ch.event("read end: %s after %d bytes" % (end, count))
    return Received(count, h.hexdigest(), bytes(head), bytes(kept) if kept is not None else None, end)


def echo_until_eof(conn, ch, bufsize):
    """Sends back everything CONN sends until its EOF, recording both ways in CH."""
    buf = bytearray(bufsize)
    mv = memoryview(buf)
    while True:
        n = conn.recv_into(buf)
        if n == 0:
            return
        ch.recv(mv[:n])
        conn.sendall(mv[:n])
        ch.sent(mv[:n])


def send_data(conn, ch, nbytes, seed):
    """Sends NBYTES of gwdata's SEED data."""
    for c in gwdata.chunks(nbytes, seed):
        conn.sendall(c)
        ch.sent(c)


class Server:
    """Base: accept loop + one handler thread per connection. Subclasses define handle()."""

    kind = "server"

    def __init__(self, transcript, op_timeout=None, backlog=1024):
        self.transcript = transcript
        self.op_timeout = op_timeout or env.timeout(30)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, 0))
        self.listener.listen(backlog)
        # The accept loop wakes up this often to notice stop(): a poll interval.
        self.listener.settimeout(0.2)
        self.address = self.listener.getsockname()
        self.lock = threading.Lock()
        self.accepted = 0
        self.active = 0
        self.errors = []
        self.results = queue.Queue()
        self.conns = set()
        self.channels = []
        self.threads = []
        self.stopping = threading.Event()
        self.refusing = None  # while refuse()d: the socket that keeps the port bound
        self.acceptor = threading.Thread(target=self._accept_loop, name="%s-accept" % self.kind, daemon=True)
        self.acceptor.start()

    @property
    def address_str(self):
        return fmt(self.address)

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                conn, peer = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conn.settimeout(self.op_timeout)
            with self.lock:
                self.accepted += 1
                self.active += 1
                self.conns.add(conn)
            ch = self.transcript.channel(self.kind)
            self.channels.append(ch)
            ch.event("accepted from %s" % fmt(peer))
            t = threading.Thread(target=self._run, args=(conn, ch), name="%s-conn" % self.kind, daemon=True)
            with self.lock:
                self.threads.append(t)
            t.start()

    def _run(self, conn, ch):
        try:
            self.handle(conn, ch)
        except Exception as e:  # recorded for the test; the transcript shows it too
            if not self.stopping.is_set():
                self.errors.append("%s: %s: %s" % (ch.label, type(e).__name__, e))
                ch.event("error %s: %s" % (type(e).__name__, e))
        finally:
            with self.lock:
                self.active -= 1
                self.conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass
            ch.event("closed")

    def handle(self, conn, ch):
        raise NotImplementedError

    # ---- for the test -----------------------------------------------------------------
    def wait_accepted(self, n, timeout=None):
        """Polls until at least N connections were accepted."""
        return wait_until(lambda: self.accepted >= n, timeout or env.timeout(5),
                          "%s to accept %d connection(s)" % (self.kind, n),
                          describe=lambda: "accepted so far: %d" % self.accepted)

    def received(self):
        """Bytes read so far over all connections."""
        return sum(ch.counts["recv"] for ch in self.channels)

    def wait_received(self, n, timeout=None):
        """Polls until at least N bytes were read (over all connections)."""
        return wait_until(lambda: self.received() >= n, timeout or env.timeout(5),
                          "%s to receive %d bytes" % (self.kind, n),
                          describe=lambda: "received so far: %d" % self.received())

    def wait_idle(self, timeout=None):
        """Polls until no connection is open on this server."""
        return wait_until(lambda: self.active == 0, timeout or env.timeout(5),
                          "%s to have no open connection" % self.kind,
                          describe=lambda: "still open: %d" % self.active)

    def result(self, timeout=None):
        """The next per-connection report (fails after TIMEOUT)."""
        timeout = timeout or env.timeout(10)
        try:
            return self.results.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("%s reported nothing within %.0fs (errors: %s)"
                                 % (self.kind, timeout, self.errors or "none")) from None

    # ---- going down and coming back (milestone 02's health tests) --------------------------
    def refuse(self):
        """Closes the listener so connects to this port are refused (RST), but keeps the
        port: a fresh socket stays bound to it (bound, not listening), so nothing else can
        take it before resume(). Connections already accepted stay open; any still in the
        accept queue are reset by the kernel, as with a real crash."""
        with self.lock:
            if self.refusing is not None:
                return
            listener = self.listener
        try:
            listener.shutdown(socket.SHUT_RDWR)  # stops listening at once; wakes the accept loop
        except OSError:
            pass
        self.acceptor.join(env.timeout(2))
        listener.close()
        hold = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hold.bind(self.address)
        with self.lock:
            self.listener = self.refusing = hold
        self.transcript.event("%s %s: listener closed (connects refused)" % (self.kind, self.address_str))

    def resume(self, backlog=1024):
        """Listens again on the same port (the socket refuse() kept bound)."""
        with self.lock:
            hold = self.refusing
            if hold is None:
                return
            self.refusing = None
        hold.listen(backlog)
        hold.settimeout(0.2)
        self.acceptor = threading.Thread(target=self._accept_loop, name="%s-accept" % self.kind, daemon=True)
        self.acceptor.start()
        self.transcript.event("%s %s: listening again" % (self.kind, self.address_str))

    def stop(self):
        self.stopping.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept loop at once
        except OSError:
            pass
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
            threads = list(self.threads)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)  # wakes a handler blocked in recv/send
            except OSError:
                pass
        self.acceptor.join(env.timeout(2))
        for t in threads:
            t.join(env.timeout(2))


class Echo(Server):
    """Echoes until EOF, then shuts down its write side, then closes."""

    kind = "echo"

    def handle(self, conn, ch):
        echo_until_eof(conn, ch, 256 * 1024)
        ch.event("EOF; shutting down write side")
        conn.shutdown(socket.SHUT_WR)


class Sink(Server):
    """Reads everything, hashing it; reports a Received per connection. STALL (a Stall):
    pause once mid-transfer, then drain (one Stall is shared by every connection, so use
    it with one). With REPLY, sends
    reply(received) after the client's EOF (default "SHA256HEX COUNT\\n"), then closes."""

    kind = "sink"

    def __init__(self, transcript, stall=None, keep=False, reply=None, **kw):
        self.stall, self.keep, self.reply = stall, keep, reply
        super().__init__(transcript, **kw)

    def handle(self, conn, ch):
        got = read_all(conn, ch, keep=self.keep, stall=self.stall)
        self.results.put(got)
        if self.reply is not None and got.end == "eof":
            out = self.reply(got)
            conn.sendall(out)
            ch.sent(out)
            ch.event("replied %d bytes" % len(out))


def digest_reply(got):
    return ("%s %d\n" % (got.sha256, got.count)).encode()


class ReplyAfterEOF(Sink):
    """Reads until the client's EOF, then sends a reply computed from what it read
    (default: sha256 hex + byte count + newline), then closes."""

    kind = "reply_after_eof"

    def __init__(self, transcript, reply=digest_reply, **kw):
        super().__init__(transcript, reply=reply, **kw)


class HalfCloseFirst(Server):
    """Sends GREETING, shuts down its write side at once, then keeps reading until EOF and
    reports a Received (with the data kept) through .results."""

    kind = "half_close_first"

    def __init__(self, transcript, greeting=b"hello from the backend\n", **kw):
        self.greeting = greeting
        super().__init__(transcript, **kw)

    def handle(self, conn, ch):
        conn.sendall(self.greeting)
        ch.sent(self.greeting)
        conn.shutdown(socket.SHUT_WR)
        ch.event("shut down write side")
        self.results.put(read_all(conn, ch, keep=True))


class Source(Server):
    """Sends NBYTES of SEED's data (.sha256 is its digest), shuts down its write side, then
    reads until the client's EOF and reports a Received of what the client sent."""

    kind = "source"

    def __init__(self, transcript, nbytes, seed=1, **kw):
        self.nbytes, self.seed = nbytes, seed
        self.sha256 = gwdata.sha256_of(nbytes, seed)
        super().__init__(transcript, **kw)

    def handle(self, conn, ch):
        send_data(conn, ch, self.nbytes, self.seed)
        conn.shutdown(socket.SHUT_WR)
        ch.event("sent %d bytes; shut down write side" % self.nbytes)
        self.results.put(read_all(conn, ch))


class ResetAfter(Server):
    """Waits for the client's first bytes, sends SEND bytes of data, then resets the
    connection (SO_LINGER {1, 0} then close: an RST, not a FIN)."""

    kind = "reset_after"

    def __init__(self, transcript, send=64 * 1024, **kw):
        self.send = send
        self.reset_done = threading.Event()
        super().__init__(transcript, **kw)

    def handle(self, conn, ch):
        first = conn.recv(4096)
        ch.recv(first)
        send_data(conn, ch, self.send, 7)
        reset(conn)
        ch.event("reset (SO_LINGER 0 close)")
        self.reset_done.set()


def reset(sock):
    """Closes SOCK with an RST."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# ---- milestone 02: a backend that says who it is -------------------------------------------


def http_response(status):
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "Status")
    return ("HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % (status, reason)).encode()


class Tagged(Server):
    """A backend that says who it is, and answers HTTP health checks on the same port.

    The client speaks first, one line (e.g. b"who\\n", see clients.ask_backend): the
    backend answers with its NAME and a newline (default: its own "host:port"), then
    echoes everything after that line until EOF. Counters, by what the first bytes were:
      .served          requests (the connections that matter for balancing)
      .probes          connections closed without a byte (tcp health checks)
      .health_requests `GET ...` requests: answered `HTTP/1.1 <status>` and closed, where
                       status is .http_status (200 by default; the test may change it at
                       any time) for HEALTH_PATH and 404 for any other path.
    .served_sources lists the peers of served connections (the proxy's side: an L4 proxy
    does not pass the client's address on)."""

    kind = "tagged"

    def __init__(self, transcript, name=None, http_status=200, health_path="/healthz", **kw):
        self.name = name
        self.http_status = http_status
        self.health_path = health_path
        self.served = 0
        self.probes = 0
        self.health_requests = 0
        super().__init__(transcript, **kw)
        if self.name is None:
            self.name = self.address_str

    def handle(self, conn, ch):
        first = bytearray()
        while b"\n" not in first and len(first) < 4096:
            b = conn.recv(4096)
            if not b:
                break
            first += b
        ch.recv(first)
        if not first:
            with self.lock:
                self.probes += 1
            ch.event("closed without a byte (a tcp health check?)")
            return
        if first.startswith(b"GET "):
            path = bytes(first[4:]).split(b" ", 1)[0].decode(errors="replace")
            status = self.http_status if path == self.health_path else 404
            with self.lock:
                self.health_requests += 1
            out = http_response(status)
            conn.sendall(out)
            ch.sent(out)
            ch.event("health check GET %s: answered %d" % (path, status))
            return
        with self.lock:
            self.served += 1
        _, _, rest = bytes(first).partition(b"\n")
        out = self.name.encode() + b"\n" + rest
        conn.sendall(out)
        ch.sent(out)
        echo_until_eof(conn, ch, 64 * 1024)
        conn.shutdown(socket.SHUT_WR)

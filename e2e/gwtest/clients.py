"""Client helpers: connections with a timeout on every operation, reading to the end,
bulk transfers, and many concurrent echo clients in one thread (selectors)."""
import collections
import errno
import selectors
import socket

from . import backends
from . import data as gwdata
from . import env
from .wait import Deadline

RECV_BUF = 1 << 20


class Client:
    """One client connection. Every blocking call has a timeout (OP_TIMEOUT by default)."""

    def __init__(self, addr, transcript, op_timeout=None, label="client", source=None):
        self.addr = addr
        self.op_timeout = op_timeout or env.timeout(10)
        self.ch = transcript.channel(label)
        # A proxy that turns a client away at once (max_connections) may reset it before
        # connect() even returns: then the connection exists and already ended.
        self.reset_at_connect = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(self.op_timeout)
        if source is not None:
            # SOURCE: a local IP (any of 127/8 on Linux loopback) or an (ip, port) pair.
            self.sock.bind((source, 0) if isinstance(source, str) else source)
            self.ch.event("bound to %s:%d" % self.sock.getsockname())
        try:
            self.sock.connect(addr)
        except ConnectionResetError:
            self.reset_at_connect = True
            self.ch.event("reset during connect to %s:%d" % addr)
            return
        except OSError:
            self.sock.close()
            raise
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ch.event("connected to %s:%d" % addr)

    def _check_open(self):
        if self.reset_at_connect:
            raise ConnectionResetError("the connection was reset during connect")

    def send(self, data):
        self._check_open()
        self.sock.sendall(data)
        self.ch.sent(data)

    def shutdown_write(self):
        self._check_open()
        self.sock.shutdown(socket.SHUT_WR)
        self.ch.event("shut down write side")

    def recv_exact(self, n, timeout=None):
        """Exactly N bytes; fails if the stream ends or TIMEOUT passes first."""
        self._check_open()
        dl = Deadline(timeout or self.op_timeout)
        out = bytearray()
        while len(out) < n:
            self.sock.settimeout(max(0.001, dl.left()))
            try:
                b = self.sock.recv(min(RECV_BUF, n - len(out)))
            except socket.timeout:
                raise AssertionError("expected %d bytes, got %d within %.1fs" % (n, len(out), dl.seconds)) from None
            if not b:
                raise AssertionError("stream ended after %d of %d expected bytes" % (len(out), n))
            self.ch.recv(b)
            out += b
        self.sock.settimeout(self.op_timeout)
        return bytes(out)

    def recv_line(self, limit=4096, timeout=None):
        """Bytes up to and including the first newline (read byte-exact: nothing after it is
        consumed); fails if the stream ends, LIMIT bytes pass without one, or TIMEOUT."""
        self._check_open()
        dl = Deadline(timeout or self.op_timeout)
        out = bytearray()
        while not out.endswith(b"\n"):
            if len(out) >= limit:
                raise AssertionError("no newline in the first %d bytes: %r" % (limit, bytes(out[:64])))
            self.sock.settimeout(max(0.001, dl.left()))
            try:
                b = self.sock.recv(1)
            except socket.timeout:
                raise AssertionError("no complete line within %.1fs (got %r)" % (dl.seconds, bytes(out))) from None
            if not b:
                raise AssertionError("stream ended before a complete line (got %r)" % bytes(out))
            out += b
        self.ch.recv(out)
        self.sock.settimeout(self.op_timeout)
        return bytes(out)

    def read_to_end(self, timeout=None, keep=True):
        """Reads until EOF or a reset. Returns (data, end) with end "eof" or "reset"; fails
        if neither comes within TIMEOUT. With KEEP false, data is only counted (b"")."""
        if self.reset_at_connect:
            return b"", "reset"
        dl = Deadline(timeout or self.op_timeout)
        out = bytearray()
        buf = bytearray(RECV_BUF)
        while True:
            self.sock.settimeout(max(0.001, dl.left()))
            try:
                n = self.sock.recv_into(buf)
            except socket.timeout:
                raise AssertionError("connection still open after %.1fs (read %d bytes)" % (dl.seconds, len(out))) from None
            except ConnectionResetError:
                self.ch.event("reset by peer")
                return bytes(out), "reset"
            if n == 0:
                self.ch.event("EOF")
                return bytes(out), "eof"
            self.ch.recv(memoryview(buf)[:n])
            if keep:
                out += memoryview(buf)[:n]

    def wait_end(self, timeout=None):
        """Waits up to TIMEOUT for the connection to end, discarding what arrives meanwhile.
        Returns (end, seconds waited): end is "eof", "reset", or "open" if it did not end."""
        dl = Deadline(timeout or self.op_timeout)
        try:
            _, end = self.read_to_end(timeout=dl.seconds, keep=False)
        except AssertionError:
            self.ch.event("still open after %.2fs" % dl.elapsed())
            return "open", dl.elapsed()
        return end, dl.elapsed()

    def send_data(self, nbytes, seed):
        """Streams NBYTES of SEED's data; returns its sha256."""
        self._check_open()
        self.sock.settimeout(self.op_timeout)
        backends.send_data(self.sock, self.ch, nbytes, seed)
        return gwdata.sha256_of(nbytes, seed)

    def drain(self, stall=None, timeout=None):
        """Reads to the end hashing everything (pausing once if STALL, a backends.Stall, is
        given); returns a backends.Received. Each recv has the op timeout; TIMEOUT bounds
        the whole read."""
        self._check_open()
        self.sock.settimeout(self.op_timeout)
        dl = Deadline(timeout or env.timeout(120))
        got = backends.read_all(self.sock, self.ch, stall=stall)
        assert not dl.expired(), "drain took %.1fs, over its %.1fs budget" % (dl.elapsed(), dl.seconds)
        return got

    def reset(self):
        """Closes with an RST."""
        self._check_open()
        backends.reset(self.sock)
        self.ch.event("reset (SO_LINGER 0 close)")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class BackendUnreachable(AssertionError):
    """ask_backend() failed: the connection was refused, reset, closed or too slow."""


def ask_backend(addr, transcript, source=None, keep=False, op_timeout=None):
    """One request through the proxy at ADDR to a backends.Tagged backend: connects (from
    SOURCE, a local IP, if given), sends b"who\\n", reads the backend's name line.
    Returns the name (str), or (name, Client) with KEEP (the connection stays open; the
    caller closes it). Raises BackendUnreachable on any failure, naming what happened."""
    c = None
    try:
        c = Client(addr, transcript, op_timeout=op_timeout or env.timeout(5), source=source)
        c.send(b"who\n")
        name = c.recv_line(limit=256).decode(errors="replace").rstrip("\n")
    except (OSError, AssertionError) as e:
        if c is not None:
            c.close()
        raise BackendUnreachable("request via %s:%d%s failed: %s: %s" % (
            addr[0], addr[1], " from %s" % source if source else "", type(e).__name__, e)) from None
    if keep:
        return name, c
    c.close()
    return name


def tally(addr, n, transcript, source=None):
    """N sequential ask_backend() requests; returns a collections.Counter {name: count}.
    Any failed request fails the call."""
    counts = collections.Counter()
    for _ in range(n):
        counts[ask_backend(addr, transcript, source=source)] += 1
    return counts


def try_connect(addr, timeout=None):
    """Attempts one connect; returns "connected", "refused", "timeout" or an errno name.
    The socket is closed either way."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout or env.timeout(2))
    try:
        s.connect(addr)
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
    finally:
        s.close()


def echo_many(addr, payloads, transcript, timeout=None):
    """Opens len(PAYLOADS) connections at once (all connected before any data moves), sends
    payload i on connection i while reading, shuts down the write side when sent, and reads
    until EOF. Returns the list of what each connection received (in order). All in one
    thread with a selector; fails if it is not done within TIMEOUT."""
    dl = Deadline(timeout or env.timeout(60))
    sel = selectors.DefaultSelector()
    states = []
    for i, p in enumerate(payloads):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS):
            raise AssertionError("client %d: connect: %s" % (i, errno.errorcode.get(err, err)))
        st = {"i": i, "sock": s, "out": memoryview(p), "sent": 0, "in": bytearray(), "done": False,
              "connected": False, "ch": transcript.channel("client")}
        states.append(st)
        sel.register(s, selectors.EVENT_WRITE, st)

    try:
        # Phase 1: every connect completes.
        pending = len(states)
        while pending:
            if dl.expired():
                raise AssertionError("only %d of %d clients connected in time" % (len(states) - pending, len(states)))
            for key, _ in sel.select(timeout=dl.left()):
                st = key.data
                if st["connected"]:
                    continue
                err = st["sock"].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise AssertionError("client %d: connect: %s" % (st["i"], errno.errorcode.get(err, err)))
                st["connected"] = True
                pending -= 1
                sel.modify(st["sock"], selectors.EVENT_READ, st)  # parked until phase 2

        # Phase 2: send and receive on all of them.
        for st in states:
            sel.modify(st["sock"], selectors.EVENT_READ | selectors.EVENT_WRITE, st)
        left = len(states)
        buf = bytearray(256 * 1024)
        while left:
            if dl.expired():
                late = [st["i"] for st in states if not st["done"]][:10]
                raise AssertionError("%d clients not finished in time (e.g. %s)" % (left, late))
            for key, mask in sel.select(timeout=dl.left()):
                st = key.data
                s = st["sock"]
                if mask & selectors.EVENT_WRITE and st["sent"] < len(st["out"]):
                    try:
                        n = s.send(st["out"][st["sent"] : st["sent"] + 65536])
                    except BlockingIOError:
                        n = 0
                    st["ch"].sent(st["out"][st["sent"] : st["sent"] + n])
                    st["sent"] += n
                    if st["sent"] == len(st["out"]):
                        s.shutdown(socket.SHUT_WR)
                        sel.modify(s, selectors.EVENT_READ, st)
                if mask & selectors.EVENT_READ:
                    try:
                        n = s.recv_into(buf)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        raise AssertionError("client %d: reset after receiving %d bytes" % (st["i"], len(st["in"])))
                    if n == 0:
                        st["ch"].event("EOF")
                        st["done"] = True
                        left -= 1
                        sel.unregister(s)
                        s.close()
                    else:
                        st["in"] += memoryview(buf)[:n]
                        st["ch"].recv(memoryview(buf)[:n])
    finally:
        sel.close()
        for st in states:
            st["sock"].close()
    return [bytes(st["in"]) for st in states]


def tls_client_hello(sni):
    """The exact first flight of a Python TLS client for SNI (None: no SNI): its ClientHello
    record, made without a socket (memory BIOs)."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:  # waits for the server's answer: the hello is out
        return out.read()
    raise AssertionError("a TLS client finished a handshake without a server")


def closed_without_answer(addr, data):
    """Connects to ADDR, sends DATA (nothing if empty) and says whether the peer closed the
    connection without a byte of answer (EOF or reset, which may come as early as the
    connect): what a gateway does with a connection it refuses."""
    try:
        with socket.create_connection(addr, timeout=env.timeout(10)) as s:
            if data:
                s.sendall(data)
            return s.recv(100) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True

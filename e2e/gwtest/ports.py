"""Loopback addresses for tests: free ports, a refused address, a blackhole address."""
import select
import socket

from . import env
from .wait import Deadline

HOST = "127.0.0.1"


def free_port():
    """A port nothing listens on right now: bind port 0, read it, close. (Another process
    could take it before the proxy binds it; the gateway fixture retries on "in use".)"""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def fmt(addr):
    """(host, port) -> "host:port"."""
    return "%s:%d" % addr


def refused_address():
    """An address whose connects are refused at once: a port that was bound, then closed,
    and nobody listens on."""
    return (HOST, free_port())


class Blackhole:
    """An address whose connects never complete: a loopback listener with backlog 0 whose
    accept queue is full (two connections made and never accepted), so the kernel drops
    every further SYN and the connecting side waits until it gives up. Loopback only, as
    DESIGN.md asks; close() releases everything."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((HOST, 0))
        self.listener.listen(0)
        self.address = self.listener.getsockname()
        self.fillers = []
        for _ in range(2):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            c.connect_ex(self.address)
            self.fillers.append(c)
        # The first filler completes at once (it takes the one queue slot); wait for it so
        # the queue is known to be full before the address is handed out.
        dl = Deadline(env.timeout(2))
        _, w, _ = select.select([], [self.fillers[0]], [], dl.left())
        if not w or self.fillers[0].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
            self.close()
            raise RuntimeError("blackhole: could not fill the accept queue")

    @property
    def address_str(self):
        return fmt(self.address)

    def close(self):
        for c in self.fillers:
            c.close()
        self.fillers = []
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

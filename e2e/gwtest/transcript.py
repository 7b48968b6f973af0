"""What crossed each side of the proxy, kept small: per connection and direction, the byte
count and the first bytes, plus notable events (accepted, EOF, reset, stall). Printed when
a test fails; appended to $GW_E2E_TRANSCRIPT for every test when that is set."""
import threading
import time

HEAD = 48  # first bytes kept per direction


def _show(b):
    text = repr(bytes(b))
    return text if len(text) < 120 else text[:117] + "..."


class Channel:
    """One connection seen from one side, e.g. "client#3" or "echo#1"."""

    def __init__(self, transcript, label):
        self.t = transcript
        self.label = label
        self.counts = {"sent": 0, "recv": 0}
        self.heads = {"sent": bytearray(), "recv": bytearray()}

    def sent(self, data):
        self._add("sent", data)

    def recv(self, data):
        self._add("recv", data)

    def _add(self, direction, data):
        n = len(data)
        with self.t.lock:
            self.counts[direction] += n
            head = self.heads[direction]
            if len(head) < HEAD:
                head += bytes(data[: HEAD - len(head)])

    def event(self, what):
        self.t.event("%s: %s" % (self.label, what))


class Transcript:
    def __init__(self, name=""):
        self.name = name
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.channels = []
        self.events = []
        self.seq = {}

    def channel(self, kind):
        """A new channel labelled KIND#N (N counts per kind from 1)."""
        with self.lock:
            n = self.seq.get(kind, 0) + 1
            self.seq[kind] = n
            ch = Channel(self, "%s#%d" % (kind, n))
            self.channels.append(ch)
        ch.event("open")
        return ch

    def event(self, what):
        with self.lock:
            self.events.append((time.monotonic() - self.start, what))

    def note(self, what):
        """A free-form line from the test itself, e.g. "sent SIGTERM"."""
        self.event("test: " + what)

    def render(self, max_events=200, max_channels=60):
        with self.lock:
            lines = ["transcript %s" % self.name]
            chans = self.channels
            if len(chans) > max_channels:
                lines.append("  (%d channels; first %d shown)" % (len(chans), max_channels))
                chans = chans[:max_channels]
            for ch in chans:
                for d in ("sent", "recv"):
                    if ch.counts[d]:
                        lines.append("  %-14s %s %10d bytes  first: %s"
                                     % (ch.label, d, ch.counts[d], _show(ch.heads[d])))
            ev = self.events
            if len(ev) > max_events:
                lines.append("  (%d events; last %d shown)" % (len(ev), max_events))
                ev = ev[-max_events:]
            for t, what in ev:
                lines.append("  %8.3fs %s" % (t, what))
        return "\n".join(lines)

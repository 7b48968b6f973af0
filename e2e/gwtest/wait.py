"""Waiting without sleeping a guessed time: poll a condition until a deadline."""
import threading
import time

# Called at every poll of the test's own thread; raises when waiting on is pointless (the
# harness sets it: a proxy of the current test stopped at a lab stub). None: no check.
_interrupt = None


def set_interrupt(check):
    """CHECK() is called at every poll from now on (None: stop checking)."""
    global _interrupt
    _interrupt = check


def _poll_interrupt():
    check = _interrupt
    if check is not None and threading.current_thread() is threading.main_thread():
        check()


class Deadline:
    """A point in (monotonic) time; `left()` is what remains, never negative."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.start = time.monotonic()
        self.end = self.start + seconds

    def left(self):
        _poll_interrupt()
        return max(0.0, self.end - time.monotonic())

    def expired(self):
        _poll_interrupt()
        return time.monotonic() >= self.end

    def elapsed(self):
        return time.monotonic() - self.start


class WaitTimeout(AssertionError):
    pass


def wait_until(cond, timeout, what="condition", interval=0.01, describe=None):
    """Calls COND until it returns something truthy (returned) or TIMEOUT seconds pass
    (raises WaitTimeout naming WHAT, plus DESCRIBE() if given, e.g. the current state).
    The short pause between polls is a poll interval, not a guess at how long things take."""
    dl = Deadline(timeout)
    step = interval
    while True:
        v = cond()
        if v:
            return v
        if dl.expired():
            msg = "timed out after %.1fs waiting for %s" % (timeout, what)
            if describe is not None:
                msg += "\n" + str(describe())
            raise WaitTimeout(msg)
        time.sleep(min(step, dl.left()))  # poll
        step = min(step * 1.5, 0.1)

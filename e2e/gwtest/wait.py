"""Waiting without sleeping a guessed time: poll a condition until a deadline."""
import time


class Deadline:
    """A point in (monotonic) time; `left()` is what remains, never negative."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.start = time.monotonic()
        self.end = self.start + seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def expired(self):
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

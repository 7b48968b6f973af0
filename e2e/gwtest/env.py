"""Environment knobs every suite reads, and the time/size scaling that follows from them.

GW_BIN_DIR         where the milestone binaries are (default <repo>/build/bin; TSan: build/tsan/bin)
GW_WORKERS         `workers` in every generated config (default 2)
GW_SANITIZER       "" (plain build), "tsan" or "asan": timeouts x5, big transfers scaled down,
                   RSS assertions skipped
GW_E2E_TRANSCRIPT  optional file: every test's transcript is appended to it (pass or fail)
"""
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BIN_DIR = os.environ.get("GW_BIN_DIR") or os.path.join(REPO, "build", "bin")
if not os.path.isabs(BIN_DIR):
    BIN_DIR = os.path.join(REPO, BIN_DIR)

try:
    WORKERS = int(os.environ.get("GW_WORKERS") or "2")
except ValueError:
    raise SystemExit("GW_WORKERS must be an integer, got %r" % os.environ.get("GW_WORKERS"))

SANITIZER = (os.environ.get("GW_SANITIZER") or "").strip().lower()
if SANITIZER not in ("", "tsan", "asan"):
    raise SystemExit('GW_SANITIZER must be "", "tsan" or "asan", got %r' % SANITIZER)

TRANSCRIPT_FILE = os.environ.get("GW_E2E_TRANSCRIPT") or None

# Sanitized binaries are several times slower: every deadline stretches by this much.
FACTOR = 5.0 if SANITIZER else 1.0

# Under a sanitizer a transfer is scaled down by this much (1 GiB becomes 128 MiB).
BYTES_DIVISOR = 8 if SANITIZER else 1

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def timeout(seconds):
    """A deadline length in seconds, stretched under sanitizers."""
    return seconds * FACTOR


def scaled_bytes(n):
    """A transfer size, scaled down under sanitizers (but never below 1 MiB or N)."""
    if BYTES_DIVISOR == 1:
        return n
    return max(min(n, MiB), n // BYTES_DIVISOR)


# Under a sanitizer a count of connections or requests is divided by this much.
COUNT_DIVISOR = 4 if SANITIZER else 1


def scaled_count(n, floor=1):
    """A number of connections/requests, divided by 4 under sanitizers (never below FLOOR).
    Tests that check proportions must size their tolerance for the smaller count."""
    return max(floor, n // COUNT_DIVISOR)


def rss_checks():
    """RSS bounds are meaningful on the plain build only (ASan quarantine, TSan shadow)."""
    return SANITIZER == ""


def binary(name):
    """Path of a milestone binary, e.g. binary("gw01")."""
    return os.path.join(BIN_DIR, name)

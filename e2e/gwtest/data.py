"""Deterministic test data: N bytes made of a repeating 1 MiB pseudo-random block derived
from a seed, and its sha256 (cached, since a 1 GiB hash takes most of a second)."""
import functools
import hashlib
import random

from .env import MiB

BLOCK = MiB


@functools.lru_cache(maxsize=8)
def block(seed):
    """The 1 MiB block that data of SEED repeats."""
    return random.Random(seed).randbytes(BLOCK)


def chunks(nbytes, seed):
    """Memoryviews covering exactly NBYTES of SEED's data, in order, each <= 1 MiB."""
    mv = memoryview(block(seed))
    left = nbytes
    while left > 0:
        k = min(left, BLOCK)
        yield mv[:k]
        left -= k


def make(nbytes, seed):
    """NBYTES of SEED's data as one bytes object (for small payloads)."""
    return b"".join(bytes(c) for c in chunks(nbytes, seed))


@functools.lru_cache(maxsize=32)
def sha256_of(nbytes, seed):
    """Hex sha256 of make(NBYTES, SEED), computed without building it."""
    h = hashlib.sha256()
    for c in chunks(nbytes, seed):
        h.update(c)
    return h.hexdigest()


def sha256(data):
    return hashlib.sha256(data).hexdigest()

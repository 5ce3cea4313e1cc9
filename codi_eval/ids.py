"""UUIDv7 ids (RFC 9562): time-ordered, which Opik requires for traces and spans."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> uuid.UUID:
    """A new UUIDv7; monotonic within this process even for ids made in the same millisecond."""
    global _last_ms, _counter
    entropy = int.from_bytes(os.urandom(10), "big")  # one system call per id
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            # Same (or earlier, clock went back) millisecond: bump the 12-bit counter so
            # ids still sort in creation order; borrow the next millisecond on overflow.
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = (entropy >> 64) & 0x3FF  # a random start that leaves room to count up
        rand_b = entropy & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= _counter << 64
        value |= 0b10 << 62
        value |= rand_b
        return uuid.UUID(int=value)


def uuid7_time_ms(value: uuid.UUID) -> int:
    return value.int >> 80

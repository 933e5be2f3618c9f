"""Object ids: 24 lowercase hex characters, like the hosted service's MongoDB ObjectIds."""

from __future__ import annotations

import itertools
import os
import re
import threading
import time

_ID = re.compile(r"^[0-9a-f]{24}$")
_process_random = os.urandom(5)
_counter = itertools.count(int.from_bytes(os.urandom(3), "big"))
_lock = threading.Lock()


def new_id() -> str:
    """A new id: 4 bytes of unix time, 5 random bytes per process, a 3-byte counter."""
    with _lock:
        count = next(_counter) & 0xFFFFFF
    return (int(time.time()).to_bytes(4, "big") + _process_random + count.to_bytes(3, "big")).hex()


def is_valid(value: str) -> bool:
    return bool(_ID.match(value))

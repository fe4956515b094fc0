"""Fresh random octets for per-request values, read from the kernel in blocks.

RAND (TS 33.102 §6.3.2) must be unpredictable; the HSS draws one per vector, thousands per
second. ``secrets.token_bytes`` makes one ``getrandom`` system call per draw (about 10 µs in
the HSS's profile); this module reads ``os.urandom`` 4 KiB at a time and hands out slices, so
the octets are the kernel CSPRNG's as before, at one system call per 256 RANDs.

Each thread has its own block (no two callers ever get the same octets), and a forked child
drops its parent's blocks (``os.register_at_fork``), so parent and child never share values.
Not for long-term secrets: those use :func:`secrets.token_bytes` directly.
"""

from __future__ import annotations

import os
import threading

BLOCK = 4096


class _Pool(threading.local):
    buf: bytes = b""
    pos: int = 0


_pool = _Pool()


def random_octets(n: int) -> bytes:
    """``n`` (1..BLOCK) fresh octets from the kernel's CSPRNG, never handed out twice."""
    if not 0 < n <= BLOCK:
        raise ValueError(f"random_octets: n must be 1..{BLOCK}")
    pool = _pool
    pos = pool.pos
    end = pos + n
    if end > len(pool.buf):
        pool.buf = os.urandom(BLOCK)
        pos, end = 0, n
    pool.pos = end
    return pool.buf[pos:end]


def _forget() -> None:
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_forget)

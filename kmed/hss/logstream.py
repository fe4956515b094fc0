"""A log stream that writes one burst per event-loop iteration.

structlog's PrintLogger flushes after every line (one ``write`` system call per log event).
The HSS logs one event per request; under load an event-loop iteration answers dozens of
requests, so this stream defers ``flush`` to the end of the iteration (``call_soon``) and the
lines of the iteration leave in one write. Outside a running loop (start-up, shutdown) every
flush is immediate. A SIGKILL can lose the lines of the iteration in progress, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from typing import TextIO


class LoopFlushedStream(io.TextIOBase):
    """Wraps a buffered text stream; ``flush`` is deferred to the end of the loop iteration."""

    def __init__(self, raw: TextIO) -> None:
        super().__init__()
        self.raw = raw
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False

    def attach(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Defer flushes to ``loop`` (None: flush at once again, after flushing what is held)."""
        if loop is None:
            self._flush_now()
        self._loop = loop

    def write(self, s: str) -> int:
        return self.raw.write(s)

    def flush(self) -> None:
        if self._loop is None or self._loop.is_closed():
            self._flush_now()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._scheduled = False
        with contextlib.suppress(OSError, ValueError):  # a broken log stream must not stop the HSS
            self.raw.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self._flush_now()
        self.raw.close()
        super().close()

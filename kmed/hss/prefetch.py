"""Subscriber reads ahead of the request, in the store writer child (docs/hss.md, "Read cache").

A read-cache miss read on the event loop costs ~50 µs of its CPU with a million subscribers
(measured in the daemon: the loop's SQLite connection sees the writer's commits, so it drops
its page cache and file mapping before its next read, and each page of the lookup is fetched
and faulted in again), against ~14 µs for the same lookup on a connection that sees no other
writer. The writer child's connection is that one: only it writes. So when a request's
subscriber is not cached, :class:`Prefetch` asks the child to read it (one frame for the
misses of a loop iteration), the answer goes into the read cache, and only then is the
request handled, on the event loop as before, finding its subscriber cached.

Correct because a read is asked for only while its IMSI has no write in flight
(:meth:`ReadCache.wants`), so every write of that IMSI has been committed by the child's own
connection, which the read uses; and the cache keeps what it got only if the IMSI still has
no write in flight when the read comes back (:meth:`ReadCache.load`). The child may answer a
read before committing batches sent earlier (they hold no write of that IMSI). A read that
cannot be kept, or an IMSI that is not in the store, leaves the request to read the store
itself as without prefetching.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

from kmed.hss.cache import ReadCache
from kmed.hss.store import Subscriber

#: ``read(imsis, on_rows)``: on_rows gets one subscriber (or None) per IMSI, or None if failed.
ReadFn = Callable[[list[str], Callable[[list[Subscriber | None] | None], None]], None]


class Prefetch:
    """Reads missing subscribers with ``read`` before their requests run (module doc)."""

    __slots__ = ("_loop", "_queued", "_waiting", "cache", "read", "reads")

    def __init__(self, cache: ReadCache, read: ReadFn, loop: asyncio.AbstractEventLoop) -> None:
        self.cache = cache
        self.read = read
        self._loop = loop
        self._waiting: dict[str, list[Callable[[], None]]] = {}
        self._queued: list[str] = []
        self.reads = 0  # statistics: subscribers read ahead

    def needs(self, imsi: str) -> bool:
        """Whether a request for ``imsi`` should wait for a read ahead."""
        return imsi in self._waiting or self.cache.wants(imsi)

    def wait(self, imsi: str, resume: Callable[[], None]) -> None:
        """Call ``resume`` (on the loop) once ``imsi`` has been read ahead."""
        waiters = self._waiting.get(imsi)
        if waiters is not None:
            waiters.append(resume)
            return
        self._waiting[imsi] = [resume]
        self._queued.append(imsi)
        if len(self._queued) == 1:
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        imsis, self._queued = self._queued, []
        if imsis:
            self.reads += len(imsis)
            self.read(imsis, partial(self._loaded, imsis, self.cache.generation))

    def _loaded(self, imsis: list[str], generation: int, subs: list[Subscriber | None] | None) -> None:
        try:
            for sub in subs or ():  # None: the read failed, the requests read the store themselves
                if sub is not None:
                    self.cache.load(sub, generation)
        finally:  # whatever happens, no waiter of this read is left behind
            for imsi in imsis:
                for resume in self._waiting.pop(imsi, ()):
                    resume()

"""Filling the read cache from the store at start and after SIGHUP (docs/hss.md, "Read cache").

With the subscribers already in memory, an AIR for any of them is a cache hit: no read ahead
by the writer child, no read of its own, no cache churn for the collector to walk. That is
what makes traffic spread over a million subscribers cost about what traffic over a thousand
does (docs/hss.md, "Performance / Session 5").

The pages are read on the event loop's own connection, in IMSI order, ``chunk`` subscribers
per loop turn (a SIGHUP's warm-up runs while requests are served). Each page is read and
loaded in one step (no ``await`` between), each read a statement of its own that leaves no
cursor open, so it sees every commit finished before it; and each row goes through
:meth:`ReadCache.load`, which keeps it only while its IMSI has no write in flight (a commit
that finished during the read has not had its callback yet, so its IMSI still counts as in
flight) and the cache was not cleared since the warm-up was asked for. So the invariants of
:mod:`kmed.hss.cache` hold as for any miss. The warm-up stops at the cache's capacity (it
never evicts what it loaded) or when a newer clear (SIGHUP) starts another one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kmed.hss.cache import ReadCache
from kmed.hss.store import Subscriber

#: ``page(after, limit)``: up to ``limit`` subscribers with IMSIs above ``after``, in order.
PageFn = Callable[[str, int], list[Subscriber]]

#: Subscribers read per loop turn: ~10 ms of the loop at ~4 µs each.
CHUNK = 2_500


async def warm(cache: ReadCache, page: PageFn, chunk: int = CHUNK, generation: int | None = None,
               on_page: Callable[[], object] | None = None) -> tuple[int, int, bool]:
    """Load subscribers into ``cache`` page by page (module doc), for the cache's
    ``generation`` when it was asked for (default: now). Returns how many were read and kept,
    and whether the warm-up ran to its end (the store's last subscriber or the cache full):
    False when a clear overtook it. ``on_page`` is called after each page (e.g. to tell
    systemd that start-up goes on). Store errors propagate."""
    if generation is None:
        generation = cache.generation
    after = ""
    read = kept = 0
    while generation == cache.generation:
        room = cache.capacity - len(cache)
        if room <= 0:
            return read, kept, True
        subs = page(after, min(chunk, room))
        for sub in subs:
            kept += cache.load(sub, generation)
        read += len(subs)
        if on_page is not None:
            on_page()
        if len(subs) < min(chunk, room):
            return read, kept, True
        after = subs[-1].imsi
        await asyncio.sleep(0)
    return read, kept, False

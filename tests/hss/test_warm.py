"""kmed.hss.warm over a real SQLite store: the read cache filled page by page at start and
after SIGHUP, within its capacity, never keeping a row a write or a clear may have made stale
(docs/hss.md, "Read cache")."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kmed.hss.cache import ReadCache
from kmed.hss.sqlite_store import SqliteStore
from kmed.hss.store import SetSqn, StoreKme, Subscriber
from kmed.hss.warm import warm
from tests.hss.conftest import IMEI, OPC, K

IMSIS = [f"0010100000000{i:02d}" for i in range(12)]


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "hss.sqlite")
    for i, imsi in enumerate(reversed(IMSIS)):  # inserted out of order: pages come in IMSI order
        s.add_subscriber(imsi, K, OPC, b"\x80\x00", 32 * i)
    s.add_device(IMEI, "A", bytes(32))
    s.apply([StoreKme(IMSIS[3], IMEI, b"\x07" * 32, 10, 11, "fp", "mme")])
    return s


def test_pages_come_in_imsi_order_with_the_kme_held(store: SqliteStore) -> None:
    first = store.subscribers_after("", 5)
    assert [s.imsi for s in first] == IMSIS[:5]
    rest = store.subscribers_after(first[-1].imsi, 100)
    assert [s.imsi for s in rest] == IMSIS[5:]
    assert store.subscribers_after(IMSIS[-1], 5) == []
    held = {s.imsi: s.kme for s in first if s.kme is not None}
    assert list(held) == [IMSIS[3]]
    assert (held[IMSIS[3]].kme, held[IMSIS[3]].imei, held[IMSIS[3]].issued_at) == (b"\x07" * 32, IMEI, 10)
    one = store.subscriber(IMSIS[7])
    assert one is not None and (one.k, one.opc, one.amf, one.sqn) == (rest[2].k, rest[2].opc, rest[2].amf, rest[2].sqn)


def test_warm_loads_every_subscriber_so_requests_hit(store: SqliteStore) -> None:
    cache = ReadCache(store, 100)
    assert asyncio.run(warm(cache, store.subscribers_after, chunk=5)) == (12, 12, True)
    assert len(cache) == 12
    for i, imsi in enumerate(reversed(IMSIS)):
        sub = cache.subscriber(imsi)
        assert sub is not None and sub.sqn == 32 * i
    assert (cache.hits, cache.misses) == (12, 0)
    held = cache.subscriber(IMSIS[3])
    assert held is not None and held.kme is not None and held.kme.kme == b"\x07" * 32


def test_warm_stops_at_the_capacity_and_evicts_nothing(store: SqliteStore) -> None:
    cache = ReadCache(store, 5)
    cache.subscriber(IMSIS[9])  # served before the warm-up: stays
    assert asyncio.run(warm(cache, store.subscribers_after, chunk=3)) == (4, 4, True)
    assert len(cache) == 5
    cache.hits = cache.misses = 0
    for imsi in [*IMSIS[:4], IMSIS[9]]:
        cache.subscriber(imsi)
    assert (cache.hits, cache.misses) == (5, 0)


def test_a_subscriber_with_a_write_in_flight_is_not_kept(store: SqliteStore) -> None:
    cache = ReadCache(store, 100)
    pending = [SetSqn(IMSIS[2], 10_000)]
    cache.writing(pending)  # submitted, not committed: the page may predate it
    assert asyncio.run(warm(cache, store.subscribers_after)) == (12, 11, True)
    assert len(cache) == 11
    store.apply(pending)
    cache.written(pending, [True])
    sub = cache.subscriber(IMSIS[2])  # read on demand, after the commit
    assert sub is not None and sub.sqn == 10_000 and cache.misses == 1


def test_a_clear_overtakes_the_warm_up_and_nothing_read_before_it_is_kept(store: SqliteStore) -> None:
    cache = ReadCache(store, 100)
    pages: list[list[Subscriber]] = []

    def page(after: str, limit: int) -> list[Subscriber]:
        pages.append(store.subscribers_after(after, limit))
        if len(pages) == 2:
            cache.clear()  # SIGHUP between the read of the second page and its loading
        return pages[-1]

    assert asyncio.run(warm(cache, page, chunk=4)) == (8, 4, False)
    assert len(pages) == 2 and len(cache) == 0


def test_no_capacity_no_warm_up(store: SqliteStore) -> None:
    cache = ReadCache(store, 0)
    assert asyncio.run(warm(cache, store.subscribers_after)) == (0, 0, True)
    assert cache.subscriber(IMSIS[0]) is not None and len(cache) == 0


def test_commits_between_pages_are_seen_whichever_page_holds_their_imsi(store: SqliteStore) -> None:
    """A commit that finishes between two pages (its callback run, as on the loop): an IMSI of
    a page already loaded gets it through ReadCache.written, one of a later page is read after it."""
    cache = ReadCache(store, 100)
    pages = 0

    def page(after: str, limit: int) -> list[Subscriber]:
        nonlocal pages
        pages += 1
        if pages == 2:
            for imsi, sqn in ((IMSIS[1], 7_000), (IMSIS[10], 9_000)):  # loaded already / still to come
                w = [SetSqn(imsi, sqn)]
                cache.writing(w)
                store.apply(w)
                cache.written(w, [True])
        return store.subscribers_after(after, limit)

    assert asyncio.run(warm(cache, page, chunk=4)) == (12, 12, True)
    cache.misses = 0
    assert [cache.subscriber(i).sqn for i in (IMSIS[1], IMSIS[10])] == [7_000, 9_000]  # type: ignore[union-attr]
    assert cache.misses == 0


def test_a_warm_up_asked_for_before_a_clear_loads_nothing(store: SqliteStore) -> None:
    """Two SIGHUPs in one loop turn: the first warm-up was asked for before the second clear."""
    cache = ReadCache(store, 100)
    asked = cache.generation
    cache.clear()
    assert asyncio.run(warm(cache, store.subscribers_after, generation=asked)) == (0, 0, False)
    assert len(cache) == 0

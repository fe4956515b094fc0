"""kmed.hss.cache.ReadCache over a real SQLite store: what is cached, how commits update it,
and what must never be cached (docs/hss.md, "Read cache")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kmed.hss.cache import ReadCache
from kmed.hss.sqlite_store import SqliteStore
from kmed.hss.store import SetLocation, SetSqn, StoreKme, Subscriber
from tests.hss.conftest import IMEI, IMSI, OPC, K

OTHER = "001010000000002"
OTHER_SUB = "001010000000003"


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "hss.sqlite")
    s.add_subscriber(IMSI, K, OPC, b"\x80\x00", 32)
    s.add_subscriber(OTHER_SUB, K, OPC, b"\x80\x00", 0)
    return s


def _hit(cache: ReadCache, imsi: str) -> Subscriber:
    """The subscriber, asserted to come from the cache (a hit, no read of the store)."""
    hits, misses = cache.hits, cache.misses
    sub = cache.subscriber(imsi)
    assert sub is not None and (cache.hits, cache.misses) == (hits + 1, misses), f"{imsi} is not cached"
    return sub


def _kme_write(kme: bytes, issued_at: int) -> StoreKme:
    return StoreKme(IMSI, IMEI, kme, issued_at, issued_at + 1, "fp", "mme")


def test_a_served_subscriber_is_read_once(store: SqliteStore) -> None:
    cache = ReadCache(store, 10)
    first = cache.subscriber(IMSI, False)
    assert first is not None and (first.k, first.opc, first.sqn) == (K, OPC, 32)
    assert _hit(cache, IMSI) == first
    assert (cache.hits, cache.misses) == (1, 1)


def test_misses_are_not_cached_so_admin_additions_are_seen(store: SqliteStore) -> None:
    cache = ReadCache(store, 10)
    assert cache.subscriber(OTHER) is None
    store.add_subscriber(OTHER, K, OPC, b"\x80\x00", 0)  # as `kmed admin` would, meanwhile
    assert cache.subscriber(OTHER) is not None
    assert cache.device(IMEI) is None
    store.add_device(IMEI, "A", bytes(32))
    dev = cache.device(IMEI)
    assert dev is not None and cache.device(IMEI) is dev


def test_pair_changes_move_the_version_whoever_writes(store: SqliteStore) -> None:
    seen = [store.pairs_version()]
    store.add_device(IMEI, "A", bytes(32))
    store.allow_pair(IMSI, IMEI)
    seen.append(store.pairs_version())
    store.deny_pair(IMSI, IMEI)
    seen.append(store.pairs_version())
    store._db.execute("INSERT INTO pairs (imsi, imei) VALUES (?, ?)", (IMSI, IMEI))  # an SQL shell
    seen.append(store.pairs_version())
    assert len(set(seen)) == 4


def test_without_a_scheduler_a_deny_is_seen_by_the_next_lookup(store: SqliteStore) -> None:
    cache = ReadCache(store, 10)
    store.add_device(IMEI, "A", bytes(32))
    assert not cache.pair_allowed(IMSI, IMEI)  # a refusal is cached too ...
    store.allow_pair(IMSI, IMEI)
    assert cache.pair_allowed(IMSI, IMEI)  # ... until the version moves
    store.deny_pair(IMSI, IMEI)
    assert not cache.pair_allowed(IMSI, IMEI)


def test_with_a_scheduler_pairs_are_checked_once_per_turn(store: SqliteStore) -> None:
    turns: list[Callable[[], None]] = []
    cache = ReadCache(store, 10, schedule=turns.append)
    store.add_device(IMEI, "A", bytes(32))
    store.allow_pair(IMSI, IMEI)
    assert cache.pair_allowed(IMSI, IMEI)
    store.deny_pair(IMSI, IMEI)
    assert cache.pair_allowed(IMSI, IMEI)  # the same turn: the answer it began with
    assert len(turns) == 1
    turns.pop()()  # the event loop's next turn
    assert not cache.pair_allowed(IMSI, IMEI)
    assert cache.pair_allowed(OTHER, IMEI) is False  # an unknown pair: refused


def test_commits_update_the_entry_in_order(store: SqliteStore) -> None:
    cache = ReadCache(store, 10)
    sub = cache.subscriber(IMSI)
    assert sub is not None and sub.kme is None
    first, second = [SetSqn(IMSI, 40)], [SetSqn(IMSI, 48), SetLocation(IMSI, "m", "r", b"\0\0\0", 1004, None, None, 1)]
    cache.writing(first)
    cache.writing(second)
    for writes in (first, second):
        flags = store.apply(writes)
        cache.written(writes, flags)
    assert _hit(cache, IMSI).sqn == 48 == store.subscriber(IMSI).sqn  # type: ignore[union-attr]
    stored, refused = _kme_write(b"\x11" * 32, 100), _kme_write(b"\x22" * 32, 50)  # the older one loses
    for w in (stored, refused):
        cache.writing([w])
        cache.written([w], store.apply([w]))
    held = _hit(cache, IMSI).kme
    assert held is not None and held.kme == b"\x11" * 32
    assert store.subscriber(IMSI).kme.kme == held.kme  # type: ignore[union-attr]


def test_no_entry_is_created_while_the_imsi_has_writes_in_flight(store: SqliteStore) -> None:
    cache = ReadCache(store, 10)
    writes = [SetSqn(IMSI, 64)]
    cache.writing(writes)
    store.apply(writes)  # committed, its callback not yet run: a read now sees 64 ...
    assert cache.subscriber(IMSI).sqn == 64  # type: ignore[union-attr]
    assert len(cache) == 0  # ... but is not kept, since the callback will still apply it
    cache.written(writes, [True])
    assert cache.subscriber(IMSI).sqn == 64 and len(cache) == 1  # type: ignore[union-attr]


def test_a_failed_commit_drops_the_entry(store: SqliteStore) -> None:
    cache = ReadCache(store, 10)
    assert cache.subscriber(IMSI) is not None
    writes = [SetSqn(IMSI, 99)]
    cache.writing(writes)
    cache.written(writes, None)
    assert len(cache) == 0
    assert cache.subscriber(IMSI).sqn == 32  # type: ignore[union-attr]  # the store's value


def test_entries_that_leave_give_their_slot_and_kme_to_no_one_else(store: SqliteStore) -> None:
    """The record layout (kmed.hss.cache, module doc): each entry's SQN sits at a slot of a
    shared array and its KME in a side table; an entry evicted, or dropped by a failed commit,
    frees its slot, and the entry that reuses the slot sees its own SQN and no KME."""
    imsis = [f"0010100000002{i:02d}" for i in range(6)]
    for n, imsi in enumerate(imsis):
        store.add_subscriber(imsi, K, OPC, b"\x80\x00", 32 * (n + 1))
    cache = ReadCache(store, 3)
    for imsi in imsis[:3]:
        assert cache.subscriber(imsi) is not None
    held = [StoreKme(imsis[0], IMEI, b"\x11" * 32, 5, 6, "fp", "mme")]
    cache.writing(held)
    cache.written(held, [True])
    bumped = [SetSqn(imsis[1], 999)]
    cache.writing(bumped)
    cache.written(bumped, None)  # the commit failed: the entry goes, its slot is free
    assert cache.wants(imsis[1]) and len(cache) == 2
    assert _hit(cache, imsis[0]).kme is not None
    cache.subscriber(imsis[3])  # takes the freed slot
    assert len(cache._sqns) == 3, "the slot freed by the failed commit was not reused"
    cache.subscriber(imsis[4])  # evicts the oldest (imsis[0], with its KME)
    assert cache.wants(imsis[0]) and len(cache) == 3
    assert len(cache._sqns) == 3 and imsis[0] not in cache._kmes, "the evicted entry kept its slot or KME"
    for n in (2, 3, 4):
        sub = _hit(cache, imsis[n])
        assert (sub.sqn, sub.kme) == (32 * (n + 1), None), imsis[n]
    again = cache.subscriber(imsis[0])  # read from the store again: no KME was stored there
    assert again is not None and again.kme is None and again.sqn == 32


@pytest.mark.parametrize("field,value", [("k", b"\x01" * 15), ("opc", bytearray(16)), ("amf", b"\x80"),
                                         ("sqn", 2.0), ("sqn", 1 << 48), ("sqn", -1)])
def test_a_row_a_record_cannot_hold_is_served_but_not_cached(store: SqliteStore, field: str, value: object) -> None:
    """Only an SQL shell could store such a row (the schema's CHECKs): struct would pad or cut
    it silently and the SQN array refuses it, so it is not cached (and nothing raises)."""
    sub = store.subscriber(IMSI)
    assert sub is not None
    setattr(sub, field, value)
    cache = ReadCache(store, 10)
    assert cache.load(sub, cache.generation) is False and len(cache) == 0 and cache.wants(IMSI)
    sub.k, sub.opc, sub.amf, sub.sqn = K, OPC, b"\x80\x00", 32
    assert cache.load(sub, cache.generation) is True and _hit(cache, IMSI) == sub


def test_capacity_bounds_the_entries_and_zero_turns_it_off(store: SqliteStore) -> None:
    imsis = [f"0010100000001{i:02d}" for i in range(20)]
    for imsi in imsis:
        store.add_subscriber(imsi, K, OPC, b"\x80\x00", 0)
    cache = ReadCache(store, 5)
    for imsi in imsis:
        cache.subscriber(imsi)
    assert len(cache) == 5
    assert _hit(cache, imsis[-1]).imsi == imsis[-1] and cache.wants(imsis[0])  # the newest stayed, the oldest left
    off = ReadCache(store, 0)
    assert off.subscriber(IMSI) is not off.subscriber(IMSI) and len(off) == 0
    cache.clear()
    assert len(cache) == 0


def test_a_subscriber_read_elsewhere_is_kept_unless_a_write_is_in_flight(store: SqliteStore) -> None:
    cache = ReadCache(store, 10)
    sub = store.subscriber(IMSI)
    assert sub is not None and cache.wants(IMSI)
    writes = [SetSqn(IMSI, 64)]
    cache.writing(writes)
    assert not cache.wants(IMSI)
    cache.load(sub, cache.generation)  # read before the write: stale once the write commits
    assert len(cache) == 0
    cache.written(writes, store.apply(writes))
    fresh = store.subscriber(IMSI)
    assert fresh is not None
    asked_at = cache.generation
    cache.clear()  # SIGHUP while the read was in flight: the row may predate an edit
    cache.load(fresh, asked_at)
    assert len(cache) == 0
    cache.load(fresh, cache.generation)
    assert len(cache) == 1 and not cache.wants(IMSI)
    assert _hit(cache, IMSI) == fresh and fresh.sqn == 64
    cache.load(sub, cache.generation)  # an entry already there is not replaced
    assert _hit(cache, IMSI).sqn == 64
    assert not ReadCache(store, 0).wants(IMSI), "no cache, nothing to read ahead"


@pytest.mark.parametrize("cleared", [False, True], ids=["kept", "cleared-meanwhile"])
def test_prefetch_reads_each_missing_imsi_once_per_turn_then_resumes(store: SqliteStore, cleared: bool) -> None:
    import asyncio

    from kmed.hss.prefetch import Prefetch

    async def run() -> tuple[list[list[str]], list[str], int]:
        loop = asyncio.get_running_loop()
        cache = ReadCache(store, 10)
        asked: list[list[str]] = []
        done: asyncio.Future[None] = loop.create_future()

        def read(imsis: list[str], on_rows: Callable[[list[object] | None], None]) -> None:
            asked.append(list(imsis))
            if cleared:
                cache.clear()  # SIGHUP while the read is out: its rows may predate a store edit
            loop.call_soon(on_rows, [store.subscriber(i) for i in imsis])

        pf = Prefetch(cache, read, loop)  # type: ignore[arg-type]
        resumed: list[str] = []
        for name, imsi in (("a", IMSI), ("b", IMSI), ("c", OTHER)):
            assert pf.needs(imsi)
            pf.wait(imsi, lambda name=name: resumed.append(name))  # type: ignore[misc]
        pf.wait(OTHER, lambda: done.set_result(None))  # resumed after "c"
        await asyncio.wait_for(done, 5)
        return asked, resumed, len(cache)

    asked, resumed, cached = asyncio.run(run())
    assert asked == [[IMSI, OTHER]], "one read for the turn, each IMSI once"
    assert resumed == ["a", "b", "c"]
    if cleared:
        assert cached == 0, "a read asked for before a clear is not kept after it"
    else:
        assert cached == 1, "the known subscriber is cached; the unknown IMSI is not (misses never are)"


def test_a_read_ahead_that_fails_midway_still_resumes_every_waiter(store: SqliteStore) -> None:
    """kmed.hss.prefetch: an error while keeping one row (here the cache raising) must not
    leave the requests waiting for the other IMSIs of the read hanging."""
    import asyncio

    from kmed.hss.prefetch import Prefetch

    class Failing(ReadCache):
        __slots__ = ()

        def load(self, sub: Subscriber, generation: int) -> bool:
            raise RuntimeError("boom")

    async def run() -> list[str]:
        loop = asyncio.get_running_loop()
        failed: asyncio.Future[BaseException] = loop.create_future()
        loop.set_exception_handler(lambda _loop, ctx: failed.done() or failed.set_result(ctx["exception"]))
        pf = Prefetch(Failing(store, 10), lambda imsis, on_rows: loop.call_soon(
            on_rows, [store.subscriber(i) for i in imsis]), loop)
        resumed: list[str] = []
        pf.wait(IMSI, lambda: resumed.append(IMSI))
        pf.wait(OTHER, lambda: resumed.append(OTHER))
        assert str(await asyncio.wait_for(failed, 5)) == "boom"
        return resumed

    assert sorted(asyncio.run(run())) == sorted([IMSI, OTHER])


def test_another_hss_committing_to_the_store_empties_the_cache(store: SqliteStore, tmp_path: Path) -> None:
    """A standby HSS on the same store (the CNN fails over to it): what the other HSS committed
    meanwhile (SQN, KME) must not be answered from this one's cache."""
    store.instance = "standby"
    cache = ReadCache(store, 10)
    foreign: list[int] = []
    cache.follow_writers("standby", lambda: foreign.append(cache.generation))
    first = cache.subscriber(IMSI)
    assert first is not None and first.sqn == 32
    own = [SetSqn(IMSI, 64)]
    cache.writing(own)
    store.apply(own)  # this HSS's own commit: marked "standby", nothing emptied
    cache.written(own, [True])
    assert _hit(cache, IMSI).sqn == 64 and foreign == []
    other = SqliteStore(tmp_path / "hss.sqlite")
    other.instance = "primary"
    other.apply([SetSqn(IMSI, 96)])  # the other HSS serves the subscriber
    other.close()
    assert cache.wants(IMSI), "emptied: the subscriber is read again"
    again = cache.subscriber(IMSI)
    assert again is not None and again.sqn == 96 and foreign == [cache.generation]
    admin = SqliteStore(tmp_path / "hss.sqlite")  # kmed admin adds a subscriber: no HSS mark
    admin.add_subscriber(OTHER, K, OPC, b"\x80\x00", 0)
    admin.close()
    assert _hit(cache, IMSI) == again and foreign == [cache.generation]


def test_a_commit_of_the_other_hss_just_before_ours_is_caught_by_ours(store: SqliteStore, tmp_path: Path) -> None:
    """The other HSS commits after this one's last check, then this one commits before checking
    again: the mark now names this HSS, and only its commit, which read the mark in its write
    transaction, saw the other's (SqliteStore.taken_over -> ReadCache.taken_over)."""
    store.instance = "standby"
    cache = ReadCache(store, 10)
    foreign: list[int] = []
    cache.follow_writers("standby", lambda: foreign.append(1))
    assert cache.subscriber(IMSI) is not None
    other = SqliteStore(tmp_path / "hss.sqlite")
    other.instance = "primary"
    other.apply([SetSqn(IMSI, 96)])
    mark = other.writer_mark()
    other.close()
    own = [SetSqn(OTHER_SUB, 64)]
    cache.writing(own)
    store.apply(own)
    assert store.taken_over == mark and store.writer_mark()[0] == "standby"
    cache.taken_over(store.taken_over)  # as the committer reports it, before the outcomes
    cache.written(own, [True])
    assert foreign == [1]
    again = cache.subscriber(IMSI)
    assert again is not None and again.sqn == 96
    store.apply([SetSqn(IMSI, 128)])  # this HSS's own commits from now on: no take-over
    assert store.taken_over is None


def test_the_writer_check_runs_once_per_loop_turn(store: SqliteStore, tmp_path: Path) -> None:
    turns: list[Callable[[], None]] = []
    cache = ReadCache(store, 10, schedule=turns.append)
    cache.follow_writers("standby")
    first = cache.subscriber(IMSI)
    assert first is not None and first.sqn == 32
    other = SqliteStore(tmp_path / "hss.sqlite")
    other.instance = "primary"
    other.apply([SetSqn(IMSI, 96)])
    other.close()
    assert _hit(cache, IMSI).sqn == 32, "the same turn: checked at its first lookup"
    for callback in turns:
        callback()  # the next turn
    again = cache.subscriber(IMSI)
    assert again is not None and again.sqn == 96 and cache.misses == 2

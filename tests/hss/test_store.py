"""The SQLite store: schema migrations, file modes, admin operations, transactional writes,
group commit."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from kmed.crypto import kme as kmefn
from kmed.hss import migrations
from kmed.hss.files import load_or_create_key
from kmed.hss.groupcommit import CommitFailed, GroupCommitter
from kmed.hss.sqlite_store import SqliteStore, sqlite_path
from kmed.hss.store import Duplicate, NotFound, SetLocation, SetSqn, StoreError, StoreKme, WriteRejected
from tests.hss.conftest import IMEI, IMSI, OPC, K, add_subscribers


def mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)



def test_schema_versioned_and_migrated_once(tmp_path: Path) -> None:
    path = tmp_path / "db" / "hss.sqlite"
    s = SqliteStore(path)
    conn = sqlite3.connect(path)
    assert [r[0] for r in conn.execute("SELECT version FROM schema_version")] == list(range(1, migrations.LATEST + 1))
    s.close()
    SqliteStore(path).close()  # reopening applies nothing again
    assert conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == migrations.LATEST
    conn.execute(f"INSERT INTO schema_version (version) VALUES ({migrations.LATEST + 1})")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        SqliteStore(path)


def test_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "hss.sqlite"
    old = os.umask(0o022)
    try:
        s = SqliteStore(path)
        s.add_subscriber(IMSI, K, OPC, b"\x80\x00", 0)  # creates -wal and -shm
        files = [path, path.with_name("hss.sqlite-wal"), path.with_name("hss.sqlite-shm")]
        assert all(p.exists() for p in files)
        assert [mode(p) for p in files] == [0o600] * 3
        s.close()
        path.chmod(0o644)  # an existing store made readable is tightened at open
        SqliteStore(path).close()
        assert mode(path) == 0o600
        key = tmp_path / "token.key"
        k1 = load_or_create_key(key)
        assert mode(key) == 0o600 and load_or_create_key(key) == k1 and len(k1) == 32
    finally:
        os.umask(old)


def test_admin_operations(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "hss.sqlite")
    s.add_subscriber(IMSI, K, OPC, b"\x80\x00", 5)
    with pytest.raises(Duplicate):
        s.add_subscriber(IMSI, K, OPC, b"\x80\x00", 0)
    with pytest.raises(NotFound):
        s.allow_pair(IMSI, IMEI)  # no such device
    s.add_device(IMEI, "A", bytes(32))
    with pytest.raises(Duplicate):
        s.add_device(IMEI, "A", bytes(32))
    with pytest.raises(NotFound):
        s.allow_pair("001019999999999", IMEI)
    assert s.allow_pair(IMSI, IMEI) is True
    assert s.allow_pair(IMSI, IMEI) is False
    assert s.pair_allowed(IMSI, IMEI)
    assert s.deny_pair(IMSI, IMEI) is True and s.deny_pair(IMSI, IMEI) is False
    assert not s.pair_allowed(IMSI, IMEI)
    sub = s.subscriber(IMSI)
    assert sub is not None and sub.sqn == 5 and sub.kme is None
    assert K.hex() not in repr(sub)


def test_show_never_prints_secrets(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "hss.sqlite")
    s.add_subscriber(IMSI, K, OPC, b"\x80\x00", 0)
    kme = kmefn.new_kme()
    s.apply([StoreKme(IMSI, IMEI, kme, 10, 11, kmefn.fingerprint(kme), "mme")])
    text = json.dumps(s.show(IMSI))
    for secret in (K, OPC, kme):
        assert secret.hex() not in text and secret.hex().upper() not in text
    shown = json.loads(text)
    assert shown["kme_fingerprint"] == kmefn.fingerprint(kme)
    assert shown["k_fingerprint"] == kmefn.fingerprint(K)
    assert s.show("001019999999999") is None


def test_apply_is_atomic(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "hss.sqlite")
    s.add_subscriber(IMSI, K, OPC, b"\x80\x00", 0)
    bad = SetLocation("001019999999999", "mme", "realm", b"\0\0\0", 1004, None, None, 1)  # FK violation
    with pytest.raises(WriteRejected):
        s.apply([SetSqn(IMSI, 99), bad])
    assert s.subscriber(IMSI).sqn == 0  # type: ignore[union-attr]


def test_provision_all_or_nothing(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "hss.sqlite")
    s.add_subscriber("001010000000003", K, OPC, b"\x80\x00", 0)
    subs = [(f"00101000000000{i}", K, OPC, b"\x80\x00", 0) for i in range(1, 5)]
    with pytest.raises(Duplicate):
        s.provision(subs, [], [])
    assert s.subscriber("001010000000001") is None
    s.provision(subs[:2], [(IMEI, "A", bytes(32))], [("001010000000001", IMEI)])
    assert s.pair_allowed("001010000000001", IMEI)


def test_sqlite_url() -> None:
    assert sqlite_path("sqlite:///var/lib/kmed/hss.sqlite") == Path("/var/lib/kmed/hss.sqlite")
    assert sqlite_path("sqlite:////var/lib/kmed/hss.sqlite") == Path("/var/lib/kmed/hss.sqlite")
    assert sqlite_path("sqlite://hss.sqlite", Path("/etc/kmed")) == Path("/etc/kmed/hss.sqlite")
    for bad in ("sqlite://", "sqlite:///", "postgresql://x/y"):
        with pytest.raises(ValueError):
            sqlite_path(bad)


def test_group_commit_batches_and_resolves_after_commit(tmp_path: Path) -> None:
    path = tmp_path / "hss.sqlite"
    s = SqliteStore(path)
    imsis = add_subscribers(s, 200)
    s.close()

    async def run() -> GroupCommitter:
        gc = GroupCommitter(lambda: SqliteStore(path), max_batch=64)
        gc.start()
        futs = [gc.submit([SetSqn(imsi, n + 1)]) for n, imsi in enumerate(imsis)]
        bad = gc.submit([SetLocation("001019999999999", "m", "r", b"\0\0\0", 1004, None, None, 1)])
        for n, fut in enumerate(futs):
            assert await fut == [True]
            # committed: another connection sees it once the future resolved
            reader = sqlite3.connect(path)
            assert reader.execute("SELECT sqn FROM subscribers WHERE imsi = ?", (imsis[n],)).fetchone()[0] == n + 1
            reader.close()
        with pytest.raises(CommitFailed):
            await bad
        await gc.close()
        return gc

    gc = asyncio.run(run())
    assert gc.requests == 201
    assert gc.batches < gc.requests  # grouped: fewer transactions than requests


def test_group_commit_store_locked_fails_batch_once(tmp_path: Path) -> None:
    """An admin transaction holding the write lock past the busy timeout fails the waiting
    batch as a whole (no per-request retries into the same lock), then service resumes."""
    path = tmp_path / "hss.sqlite"
    s = SqliteStore(path)
    imsis = add_subscribers(s, 10)
    s.close()
    admin = sqlite3.connect(path, isolation_level=None)
    admin.execute("BEGIN IMMEDIATE")

    applies: list[int] = []

    class Counting(SqliteStore):
        def apply(self, writes: Any) -> list[bool]:
            applies.append(len(writes))
            return super().apply(writes)

    async def run() -> None:
        gc = GroupCommitter(lambda: Counting(path, busy_timeout_s=0.3))
        gc.start()
        futs = [gc.submit([SetSqn(imsi, 7)]) for imsi in imsis]
        for fut in futs:
            with pytest.raises(CommitFailed, match="locked"):
                await fut
        assert applies == [10]  # one attempt for the batch, not one more per request
        admin.execute("ROLLBACK")
        assert await gc.submit([SetSqn(imsis[0], 9)]) == [True]
        await gc.close()

    asyncio.run(run())
    admin.close()


def test_group_commit_callbacks_run_on_the_loop_after_commit(tmp_path: Path) -> None:
    """submit_with: the callback gets the flags (or CommitFailed) on the event loop's thread,
    after the commit; one raising callback does not keep the others of its batch waiting."""
    import threading

    path = tmp_path / "hss.sqlite"
    s = SqliteStore(path)
    imsis = add_subscribers(s, 50)
    s.close()
    loop_thread = threading.get_ident()
    got: dict[int, Any] = {}

    async def run() -> None:
        gc = GroupCommitter(lambda: SqliteStore(path), max_batch=16)
        gc.start()
        done = asyncio.get_running_loop().create_future()
        errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))

        def on_done(n: int, result: Any) -> None:
            assert threading.get_ident() == loop_thread
            reader = sqlite3.connect(path)
            if n < len(imsis):  # committed when called: another connection sees it
                assert reader.execute("SELECT sqn FROM subscribers WHERE imsi = ?", (imsis[n],)).fetchone()[0] == n + 1
            reader.close()
            got[n] = result
            if n == 3:
                raise RuntimeError("a broken callback")
            if len(got) == len(imsis) + 2 and not done.done():
                done.set_result(None)

        for n, imsi in enumerate(imsis):
            gc.submit_with([SetSqn(imsi, n + 1)], lambda r, n=n: on_done(n, r))
        gc.submit_with([SetLocation("001019999999999", "m", "r", b"\0\0\0", 1004, None, None, 1)],
                       lambda r: on_done(len(imsis), r))
        gc.submit_with([], lambda r: on_done(len(imsis) + 1, r))
        await asyncio.wait_for(done, 30)
        assert [e["exception"].args for e in errors] == [("a broken callback",)]
        await gc.close()

    asyncio.run(run())
    assert all(got[n] == [True] for n in range(len(imsis)))
    assert isinstance(got[len(imsis)], CommitFailed)  # an unknown IMSI: refused by the store
    assert got[len(imsis) + 1] == []


def test_group_commit_hands_over_within_a_loop_iteration(tmp_path: Path) -> None:
    """Every ``handover_chunk`` requests reach the writer at once, not only when the loop
    iteration ends: a long burst of requests overlaps its commits with its processing."""
    import threading

    path = tmp_path / "hss.sqlite"
    s = SqliteStore(path)
    imsis = add_subscribers(s, 20)
    s.close()
    applying = threading.Event()
    sizes: list[int] = []

    class Watched(SqliteStore):
        def apply(self, writes: Any) -> list[bool]:
            sizes.append(len(writes))
            applying.set()
            return super().apply(writes)

    async def run() -> None:
        gc = GroupCommitter(lambda: Watched(path), handover_chunk=8)
        gc.start()
        futs = [gc.submit([SetSqn(imsi, 5)]) for imsi in imsis[:8]]
        # Still inside this iteration (no await yet): the writer has the first 8 already.
        assert applying.wait(10), "the writer got nothing before the loop iteration ended"
        futs += [gc.submit([SetSqn(imsi, 5)]) for imsi in imsis[8:]]
        assert [await f for f in futs] == [[True]] * len(imsis)
        await gc.close()

    asyncio.run(run())
    assert sizes[0] == 8 and sum(sizes) == len(imsis)


def test_apply_sets_every_sqn_of_a_large_batch_last_write_winning(tmp_path: Path) -> None:
    """SQN updates are grouped into padded multi-row statements: sizes on and off the padding
    steps, over the 64-row chunk, and an IMSI written twice (the later value wins)."""
    s = SqliteStore(tmp_path / "hss.sqlite")
    imsis = add_subscribers(s, 700)
    expected = dict.fromkeys(imsis, 0)
    for n in (1, 3, 16, 17, 513, 700):
        writes = [SetSqn(imsi, 1000 * n + i) for i, imsi in enumerate(imsis[:n])]
        writes.append(SetSqn(imsis[0], 1000 * n + 999))
        assert s.apply(writes) == [True] * len(writes)
        for w in writes:
            expected[w.imsi] = w.sqn
        got = {imsi: s.subscriber(imsi, False).sqn for imsi in imsis}  # type: ignore[union-attr]
        assert got == expected
    s.close()


def test_apply_upserts_locations_of_a_batch_last_ulr_winning(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "hss.sqlite")
    imsis = add_subscribers(s, 70)
    first = [SetLocation(imsi, f"mme{n}", "r", b"\x00\xf1\x10", 1004, None, None, n) for n, imsi in enumerate(imsis)]
    again = [SetLocation(imsis[3], "mme-late", "r2", b"\x00\xf1\x20", 1004, IMEI, "01", 999)]
    assert s.apply(first + again) == [True] * 71
    rows = dict(s._db.execute("SELECT imsi, origin_host FROM locations").fetchall())
    assert len(rows) == 70 and rows[imsis[0]] == "mme0" and rows[imsis[69]] == "mme69"
    late = s._db.execute("SELECT origin_host, origin_realm, imei, software_version, updated_at FROM locations"
                         " WHERE imsi = ?", (imsis[3],)).fetchone()
    assert late == ("mme-late", "r2", IMEI, "01", 999)
    s.close()

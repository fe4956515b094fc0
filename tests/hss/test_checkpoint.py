"""WAL checkpoints off the commit path (kmed.hss.checkpoint) on a real SQLite file: the writer's
connection no longer checkpoints, the thread copies the WAL back, a long WAL starts over after
the writer's catch-up, a reader in the WAL holds no commit back, a store that fails is reported
and the thread keeps going."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from functools import partial
from pathlib import Path

import pytest

from kmed.hss.checkpoint import BACKSTOP_FRAMES, Checkpointer
from kmed.hss.sqlite_store import SqliteStore
from kmed.hss.store import SetSqn
from tests.hss.conftest import OPC, K

pytestmark = pytest.mark.timeout(60)

IMSIS = [f"00101000000{i:04d}" for i in range(200)]


def _provisioned(tmp_path: Path) -> Path:
    path = tmp_path / "hss.sqlite"
    setup = SqliteStore(path)
    setup.provision([(imsi, K, OPC, b"\x80\x00", 0) for imsi in IMSIS], [], [])
    setup.close()
    return path


def _writer(tmp_path: Path) -> tuple[SqliteStore, partial[SqliteStore]]:
    path = _provisioned(tmp_path)
    return SqliteStore(path, wal_autocheckpoint=0), partial(SqliteStore, path)


def _in_database_file(path: Path, imsi: str) -> int:
    """The SQN of ``imsi`` in the database file itself, without its WAL: a copy made by another
    process (closing a descriptor of the file here would drop this process's SQLite locks)."""
    copy = path.with_name("copy.sqlite")
    subprocess.run(["cp", str(path), str(copy)], check=True)
    db = sqlite3.connect(copy)
    try:
        return int(db.execute("SELECT sqn FROM subscribers WHERE imsi = ?", (imsi,)).fetchone()[0])
    finally:
        db.close()
        copy.unlink()


def _commit_many(store: SqliteStore, rounds: int, base: int = 0) -> None:
    for r in range(rounds):
        store.apply([SetSqn(imsi, base + 32 * (r + 1)) for imsi in IMSIS[r % 4 :: 4]])


def _until(cond: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize("auto", [True, False])
def test_without_autocheckpoint_the_writer_leaves_the_wal_to_grow(tmp_path: Path, auto: bool) -> None:
    path = _provisioned(tmp_path)
    writer = SqliteStore(path, wal_autocheckpoint=None if auto else BACKSTOP_FRAMES)
    try:
        _commit_many(writer, 300)  # ~4 pages each: past SQLite's 1,000-frame autocheckpoint
        probe = SqliteStore(path)
        try:
            _, frames, copied = probe.checkpoint()
        finally:
            probe.close()
    finally:
        writer.close()
    assert copied == frames
    if auto:
        assert frames < 1000, "the writer's commits checkpointed (SQLite's default)"
    else:
        assert frames > 1000, "the backstop is far off: the WAL holds every commit"


def test_the_thread_copies_the_wal_after_commits_and_only_then(tmp_path: Path) -> None:
    writer, opener = _writer(tmp_path)
    ck = Checkpointer(opener, writer, interval_s=0.01)
    ck.start()
    try:
        time.sleep(0.1)
        assert ck.runs == 0, "no commit, no checkpoint"
        _commit_many(writer, 20)
        path = opener.args[0]
        assert _in_database_file(path, IMSIS[0]) == 0, "committed to the WAL only"
        ck.committed()
        _until(lambda: ck.runs >= 1)
        assert _in_database_file(path, IMSIS[0]) == 32 * 17, "copied back into the database file"
        assert ck.error is None and ck.catch_ups == 0
    finally:
        ck.stop()
        writer.close()


def _wal_frames(opener: partial[SqliteStore]) -> int:
    probe = opener()
    try:
        return probe.checkpoint()[1]
    finally:
        probe.close()


def test_a_long_wal_starts_over_after_the_writers_catch_up(tmp_path: Path) -> None:
    writer, opener = _writer(tmp_path)
    ck = Checkpointer(opener, writer, interval_s=0.0, restart_frames=20)
    ck.start()
    try:
        _commit_many(writer, 30)
        ck.committed()
        _until(lambda: ck._catch_up.is_set())  # the thread found the WAL long and stopped
        _commit_many(writer, 3, base=5_000)  # meanwhile: left to the writer's catch-up
        runs = ck.runs
        ck.before_write()
        assert ck.catch_ups == 1 and not ck._catch_up.is_set()
        # The catch-up copied the rest: the next transaction writes the WAL from its start.
        _commit_many(writer, 1, base=10_000)
        assert _wal_frames(opener) <= 5, "the WAL did not start over"
        ck.committed()
        _until(lambda: ck.runs > runs)  # the thread's passes resume
        ck.before_write()  # nothing asked: no checkpoint on the writer's connection
        assert ck.catch_ups == 1 and ck.error is None
    finally:
        ck.stop()
        writer.close()


def test_a_reader_in_the_wal_holds_no_commit_back(tmp_path: Path) -> None:
    """Session 4's RESTART checkpoint waited for readers while holding the write lock: with a
    reader in the WAL every commit stalled for the busy timeout. Here that would be 5 s for
    each of 20 commits, past the module's 60 s timeout. The catch-up never waits; while the
    reader is there no catch-up is asked for; once it has gone the thread copies the backlog
    and the WAL starts over."""
    path = _provisioned(tmp_path)
    writer = SqliteStore(path, wal_autocheckpoint=0, busy_timeout_s=5.0)
    opener = partial(SqliteStore, path)
    reader = opener()
    ck = Checkpointer(opener, writer, interval_s=0.0, restart_frames=20)
    ck.start()
    try:
        _commit_many(writer, 30)
        reader._db.execute("BEGIN")
        assert reader.subscriber(IMSIS[0]) is not None  # holds a snapshot in the WAL
        for r in range(20):
            ck.before_write()
            _commit_many(writer, 1, base=20_000 + 32 * r)
            ck.committed()
            time.sleep(0.005)  # the thread's passes run meanwhile
        assert _wal_frames(opener) > 30, "the WAL cannot start over under a reader"
        _until(lambda: not ck._catch_up.is_set())
        runs = ck.runs
        ck.committed()
        _until(lambda: ck.runs > runs)
        assert not ck._catch_up.is_set(), "an incomplete pass asks for no catch-up"
        reader._db.execute("COMMIT")  # the reader leaves
        ck.committed()
        _until(lambda: ck._catch_up.is_set())  # the thread copied the backlog, then asked
        catch_ups = ck.catch_ups
        ck.before_write()
        assert ck.catch_ups == catch_ups + 1
        _commit_many(writer, 1, base=30_000)
        assert _wal_frames(opener) <= 5, "the WAL did not start over once the reader left"
        assert ck.error is None
    finally:
        ck.stop()
        reader.close()
        writer.close()


def test_a_failing_checkpoint_is_reported_and_the_thread_goes_on(tmp_path: Path) -> None:
    class Flaky:
        def __init__(self) -> None:
            self.calls = 0

        def checkpoint(self) -> tuple[int, int, int]:
            self.calls += 1
            if self.calls == 1:
                raise OSError("disk I/O error")
            return 0, 3, 3

        def close(self) -> None:
            pass

    flaky = Flaky()
    reported: list[str] = []
    ck = Checkpointer(lambda: flaky, flaky, interval_s=0.0, report=reported.append)
    ck.start()
    try:
        ck.committed()
        _until(lambda: ck.error is not None)
        assert ck.error == "OSError: disk I/O error" and ck.runs == 0
        assert reported == ["OSError: disk I/O error"]
        ck.committed()
        _until(lambda: ck.runs == 1)
    finally:
        ck.stop()
    assert flaky.calls >= 2


def test_a_store_the_thread_cannot_open_fails_start(tmp_path: Path) -> None:
    def broken() -> SqliteStore:
        raise OSError("no such directory")

    writer = SqliteStore(tmp_path / "hss.sqlite", wal_autocheckpoint=0)
    try:
        with pytest.raises(OSError):
            Checkpointer(broken, writer).start()
    finally:
        writer.close()

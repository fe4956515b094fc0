"""The group commit's child-process writer (kmed.hss.writer) on a real SQLite file: the wire
form of the writes, commits and their outcomes, a child that cannot open the store, a child
that dies with requests in flight."""

from __future__ import annotations

import asyncio
import os
import signal
from functools import partial
from pathlib import Path

import pytest

from kmed.hss.groupcommit import CommitFailed, Committer, GroupCommitter
from kmed.hss.sqlite_store import SqliteStore
from kmed.hss.store import AuditKme, SetLocation, SetSqn, StoreError, StoreKme
from kmed.hss.writer import ProcessCommitter, from_wire, to_wire
from tests.hss.conftest import IMEI, IMSI, OPC, K, add_subscribers, stored_sqn

pytestmark = pytest.mark.timeout(120)

WRITES = [
    SetSqn(IMSI, 12345),
    StoreKme(IMSI, IMEI, bytes(range(32)), 10, 11, "ab" * 8, "mme.localdomain"),
    AuditKme(12, "issued", IMSI, IMEI, "cd" * 8, 12, None, "mme.localdomain"),
    SetLocation(IMSI, "mme.localdomain", "localdomain", b"\x00\xf1\x10", 1004, IMEI, "01", 13),
]


@pytest.mark.parametrize("write", WRITES, ids=lambda w: type(w).__name__)
def test_wire_form_round_trips(write: object) -> None:
    import marshal

    t = to_wire(write)  # type: ignore[arg-type]
    back = from_wire(marshal.loads(marshal.dumps(t)))
    assert type(back) is type(write) and back == write


@pytest.mark.parametrize("bad", [(), (9, 1), (0, "only-imsi"), ("x",), (-1, "imsi", "k", "opc", "amf", "plmn", [1],
                                                                           None, 0)])
def test_wire_form_refuses_garbage(bad: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        from_wire(bad)


def _store(tmp_path: Path, subscribers: int = 3) -> Path:
    path = tmp_path / "hss.sqlite"
    store = SqliteStore(path)
    add_subscribers(store, subscribers)
    store.close()
    return path


def test_commits_in_the_child_and_reports_each_request(tmp_path: Path) -> None:
    path = _store(tmp_path)

    async def run() -> tuple[list[object], int, int, int | None]:
        pc = ProcessCommitter((str(path), "full", 5.0), max_batch=8)
        await pc.open()
        futs = [pc.submit([SetSqn(f"00101000000{i % 3:04d}", 32 * (i + 1))]) for i in range(40)]
        # A KME stored, then one with an older issued_at: the store refuses the second.
        futs.append(pc.submit([StoreKme("001010000000000", IMEI, bytes(32), 100, 101, "00" * 8, "p")]))
        futs.append(pc.submit([StoreKme("001010000000000", IMEI, bytes(32), 50, 102, "00" * 8, "p")]))
        results = await asyncio.gather(*futs)
        batches, requests = pc.batches, pc.requests
        proc = pc._proc
        await pc.close()
        return results, batches, requests, None if proc is None else proc.returncode

    results, batches, requests, status = asyncio.run(run())
    assert results[:40] == [[True]] * 40
    assert results[40:] == [[True], [False]]
    # max_batch 8: the 42 requests leave in 6 frames; frames that reach the child together
    # share a transaction, so 1 to 6 transactions (not one per request).
    assert requests == 42 and 1 <= batches <= 6
    assert status == 0, "the child exits 0 once the parent closes the link"
    # The last SQN reserved per IMSI is what the store holds (i = 39, 37 and 38).
    assert [stored_sqn(path, f"00101000000{i:04d}") for i in range(3)] == [40 * 32, 38 * 32, 39 * 32]


def test_child_that_cannot_open_the_store_fails_open(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()

    async def run() -> None:
        pc = ProcessCommitter((str(tmp_path / "dir.sqlite"), "full", 1.0))
        await pc.open()

    with pytest.raises(StoreError, match="store writer"):
        asyncio.run(run())


def test_child_death_fails_what_waits_and_reports(tmp_path: Path) -> None:
    path = _store(tmp_path)

    async def run() -> tuple[list[object], list[str], object]:
        dead: list[str] = []
        ended = asyncio.Event()
        pc = ProcessCommitter((str(path), "full", 5.0), on_dead=lambda why: (dead.append(why), ended.set()))
        await pc.open()
        assert await pc.submit([SetSqn("001010000000001", 32)]) == [True]
        assert pc._proc is not None
        os.kill(pc._proc.pid, signal.SIGSTOP)  # it cannot take the next batch ...
        inside = pc.submit([SetSqn("001010000000001", 48)])
        await asyncio.sleep(0)  # the hand-over: the batch is written to the child's socket
        assert len(pc._in_child) == 1
        os.kill(pc._proc.pid, signal.SIGKILL)  # ... and dies with it
        await asyncio.get_running_loop().run_in_executor(None, pc._proc.wait)
        waiting = pc.submit([SetSqn("001010000000001", 64)])
        outcome = await asyncio.gather(inside, waiting, return_exceptions=True)
        await asyncio.wait_for(ended.wait(), 30)  # the link's end reaches the loop after the exit
        later = await asyncio.gather(pc.submit([SetSqn("001010000000001", 96)]), return_exceptions=True)
        await pc.close()
        return outcome + later, dead, len(pc._waiting) + len(pc._staged) + sum(map(len, pc._in_child))

    outcomes, dead, pending = asyncio.run(run())
    assert all(isinstance(o, CommitFailed) for o in outcomes), outcomes
    assert dead and "writer process" in dead[0]
    assert pending == 0
    assert stored_sqn(path, "001010000000001") == 32, "what failed was not written"


def test_reads_in_the_child_see_the_batches_committed_before(tmp_path: Path) -> None:
    """A read asked for after a batch's outcome came back sees that batch (the read cache asks
    only for IMSIs without a write in flight: kmed.hss.cache.ReadCache.wants)."""
    path = _store(tmp_path)

    async def run() -> tuple[list[object], object]:
        loop = asyncio.get_running_loop()
        ended = asyncio.Event()
        pc = ProcessCommitter((str(path), "full", 5.0), on_dead=lambda _why: ended.set())
        await pc.open()
        await pc.submit([SetSqn("001010000000001", 320)])
        got: asyncio.Future[object] = loop.create_future()
        pc.read_subscribers(["001010000000001", "001010000009999"], got.set_result)
        rows = await got
        assert pc._proc is not None
        os.kill(pc._proc.pid, signal.SIGKILL)
        await loop.run_in_executor(None, pc._proc.wait)
        await asyncio.wait_for(ended.wait(), 30)
        late: asyncio.Future[object] = loop.create_future()
        pc.read_subscribers(["001010000000001"], late.set_result)
        after_death = await late
        await pc.close()
        return rows, after_death  # type: ignore[return-value]

    rows, after_death = asyncio.run(run())
    known, unknown = rows  # type: ignore[misc]
    assert known.imsi == "001010000000001" and known.sqn == 320 and (known.k, known.opc) == (K, OPC)
    assert unknown is None
    assert after_death is None, "a read the child cannot answer is reported as None (read elsewhere)"


def test_subscriber_rows_round_trip() -> None:
    import marshal

    from kmed.hss.store import StoredKme, Subscriber
    from kmed.hss.writer import subscriber_from_row, subscriber_row

    for sub in (Subscriber(IMSI, K, OPC, b"\x80\x00", 7),
                Subscriber(IMSI, K, OPC, b"\x80\x00", 7, StoredKme(bytes(32), IMEI, 1, 2))):
        back = subscriber_from_row(IMSI, marshal.loads(marshal.dumps(subscriber_row(sub))))
        assert back == sub
    assert subscriber_from_row(IMSI, None) is None
    with pytest.raises(ValueError):
        subscriber_from_row(IMSI, (K,))


def test_the_child_makes_the_vectors_after_the_commit(tmp_path: Path) -> None:
    """A VectorJob queued after a request's writes: its vectors come back in its place, made
    with the SQNs reserved (checked by recomputing them independently)."""
    from kmed.diameter import dictionary as d
    from kmed.hss.vectors import VectorJob
    from tests.hss.conftest import PLMN
    from tests.hss.test_s6a import check_vector

    path = _store(tmp_path)
    job = VectorJob("001010000000001", K, OPC, b"\x80\x00", PLMN, [64, 96], None, d.KME_BINDING_NOT_BOUND)

    async def run() -> list[object]:
        pc = ProcessCommitter((str(path), "full", 5.0))
        await pc.open()
        try:
            return await pc.submit([SetSqn("001010000000001", 96), job])
        finally:
            await pc.close()

    flag, vectors = asyncio.run(run())
    assert flag is True and stored_sqn(path, "001010000000001") == 96
    assert [v[0] for v in vectors] == [1, 2]  # type: ignore[attr-defined]
    from kmed.diameter.message import Message
    from kmed.diameter.s6a import authentication_info

    answer = Message.answer_to(Message.request("AIR", None, [("Session-Id", "x;1")]),
                               [("Result-Code", 2001), authentication_info(vectors)])  # type: ignore[arg-type]
    info = answer.group("Authentication-Info")
    assert info is not None
    assert [check_vector(v)[0] for v in info.groups("E-UTRAN-Vector")] == [64, 96]
    assert "redacted" in repr(job) and K.hex() not in repr(job)


def test_frames_that_arrive_together_reads_first_then_one_transaction(tmp_path: Path) -> None:
    """writer._serve: the reads of a chunk are answered first, before its batches commit (they
    see the store as committed before the chunk: a read ahead never waits for a commit), then
    the batches' outcomes in their order, committed in one transaction counted once."""
    from kmed.hss.writer import _serve

    path = _store(tmp_path)
    store = SqliteStore(path)
    sent: list[list[object]] = []
    try:
        frames = [("r", ["001010000000001"]), ("w", [[to_wire(SetSqn("001010000000001", 64))]]),
                  ("w", [[to_wire(SetSqn("001010000000002", 96))]]), ("r", ["001010000000002", "001019999999999"])]
        _serve(store, frames, lambda data: sent.append(_frames(data)))
        _serve(store, [("r", ["001010000000002"])], lambda data: sent.append(_frames(data)))
    finally:
        store.close()
    reads, outcomes, only_reads = sent
    assert [r[0] for r in reads] == ["r", "r"] and [r[0] for r in outcomes] == ["w", "w"]
    assert reads[0][1][0][3] == 0 and reads[1][1][0][3] == 0, "the reads ran before the chunk's commit"
    assert reads[1][1][1] is None
    assert (outcomes[0][1], outcomes[0][2]) == ([[True]], 1) and (outcomes[1][1], outcomes[1][2]) == ([[True]], 0)
    (only_read,) = only_reads
    assert only_read[0] == "r" and only_read[1][0][3] == 96, "the next chunk's read sees the commit"
    assert stored_sqn(path, "001010000000001") == 64 and stored_sqn(path, "001010000000002") == 96


def _frames(data: bytes) -> list[object]:
    from kmed.hss.writer import _FrameSplitter

    return _FrameSplitter().feed(data)


def test_a_read_the_store_cannot_do_answers_none_for_each(tmp_path: Path) -> None:
    from kmed.hss.writer import _read

    store = SqliteStore(_store(tmp_path))
    assert _read(store, ["001010000000001"])[0] is not None
    store.close()  # a store that cannot be read any more
    assert _read(store, ["001010000000001", "001010000000002"]) == [None, None]


def test_reads_pending_at_close_are_answered(tmp_path: Path) -> None:
    path = _store(tmp_path)

    async def run() -> object:
        loop = asyncio.get_running_loop()
        pc = ProcessCommitter((str(path), "full", 5.0))
        await pc.open()
        got: asyncio.Future[object] = loop.create_future()
        pc.read_subscribers(["001010000000001"], got.set_result)
        await pc.close()
        return await asyncio.wait_for(got, 10)

    rows = asyncio.run(run())
    # close() fails the reads still out before it yields: answered None (read elsewhere), not left waiting
    assert rows is None


def test_the_child_ignores_sigterm_and_sigint(tmp_path: Path) -> None:
    """systemd and a terminal signal the HSS's whole process group: the child must outlive
    those signals (the parent decides when writing ends) and keep committing."""
    path = _store(tmp_path)

    async def run() -> tuple[list[object], int | None]:
        pc = ProcessCommitter((str(path), "full", 5.0))
        await pc.open()
        assert pc._proc is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            os.kill(pc._proc.pid, sig)
        await asyncio.sleep(0.2)
        alive = pc._proc.poll()
        result = await pc.submit([SetSqn("001010000000001", 160)])
        await pc.close()
        return result, alive

    result, alive = asyncio.run(run())
    assert alive is None and result == [True]
    assert stored_sqn(path, "001010000000001") == 160


def test_the_child_checkpoints_beside_its_commits_and_the_wal_starts_over(tmp_path: Path) -> None:
    """kmed.hss.checkpoint wired into the child: commits one by one (each its own transaction),
    the child's thread copies them into the database file, and with restart_frames 40 the WAL
    starts over instead of holding every commit."""
    from tests.hss.test_checkpoint import _in_database_file, _wal_frames

    path = _store(tmp_path, subscribers=50)
    imsis = [f"00101000000{i:04d}" for i in range(50)]

    async def run() -> tuple[int, int]:
        pc = ProcessCommitter((str(path), "full", 5.0, {"restart_frames": 40, "interval_s": 0.1}),
                              max_batch=8)
        await pc.open()
        try:
            for r in range(150):  # each awaited: 150 transactions of ~2 frames
                await pc.submit([SetSqn(imsis[(7 * r) % 50], 32 * (r + 1)), SetSqn(imsis[(7 * r + 25) % 50], 32 * r)])
                if r % 10 == 9:
                    await asyncio.sleep(0.15)  # longer than the thread's interval (0.1 s)
            # r = 139 wrote 32 * 140 for IMSI 23 (not written again after), then slept.
            in_file = _in_database_file(path, imsis[23])
            frames = _wal_frames(partial(SqliteStore, path))
        finally:
            await pc.close()
        return in_file, frames

    in_file, frames = asyncio.run(run())
    assert in_file == 32 * 140, "the child's thread did not copy the WAL into the database file"
    assert 0 <= frames < 150, f"the WAL holds {frames} frames: it never started over"


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_the_writer_reports_taking_the_store_over_before_the_outcomes(tmp_path: Path, writer: str) -> None:
    """The commit that took the store over from another HSS process is reported (the child:
    ("m", mark) before the outcomes; the thread: scheduled before them); later commits
    report nothing."""
    path = _store(tmp_path)
    other = SqliteStore(path)
    other.instance = "primary"
    other.apply([SetSqn("001010000000000", 96)])
    mark = other.writer_mark()
    other.close()
    order: list[object] = []

    async def run() -> None:
        def open_writer() -> SqliteStore:
            store = SqliteStore(path)
            store.instance = "standby"
            return store

        pc: Committer = (ProcessCommitter((str(path), "full", 5.0, {"instance": "standby"})) if writer == "process"
                         else GroupCommitter(open_writer))
        pc.on_taken_over = order.append
        await pc.open()
        try:
            for i in range(2):
                fut = pc.submit([SetSqn("001010000000001", 32 * (i + 1))])
                fut.add_done_callback(lambda f: order.append("outcome"))
                await fut
        finally:
            await pc.close()

    asyncio.run(run())
    assert order == [mark, "outcome", "outcome"]
    store = SqliteStore(path)
    try:
        assert store.writer_mark() == ("standby", mark[1] + 1)
    finally:
        store.close()


def test_a_checkpoint_failure_is_a_json_event_in_the_daemons_format() -> None:
    """The child's only log line (kmed.hss.checkpoint's report): kmed.log's JSON format."""
    import io
    import json

    import structlog

    from kmed import log as klog
    from kmed.hss.writer import _report_checkpoint_error

    stream = io.StringIO()
    klog.setup("error", "json", stream)
    try:
        _report_checkpoint_error("OSError: disk I/O error")
    finally:
        structlog.reset_defaults()
    (line,) = stream.getvalue().splitlines()
    event = json.loads(line)
    assert (event["event"], event["component"], event["level"], event["error"]) == (
        "hss_checkpoint_failed", "hss", "error", "OSError: disk I/O error")
    assert event["timestamp"].endswith("Z")

"""Group commit in a child process (``[store] writer = "process"``, the default; docs/hss.md,
"Durability").

:class:`ProcessCommitter` is a :class:`~kmed.hss.groupcommit.Committer` whose batches are
applied by ``python -m kmed.hss.writer FD``, a child process with its own store connection,
instead of by a thread of the HSS (:class:`~kmed.hss.groupcommit.GroupCommitter`).

Why: a writer *thread* shares the GIL with the event loop. It needs the GIL back after every
SQLite call and after every wake-up, and while the loop is busy that takes up to the switch
interval (5 ms) each time: measured with ``kmed bench hss`` (64 AIRs in flight), a commit of
~40 requests took 2.3 ms (median), and the next one started 4.4 ms after it ended, so the
requests in flight all waited for commits and the loop thread slept ~25 % of the time. The
child has its own GIL and runs on the other core; the loop only encodes the batch and reads
the outcome, both through uvloop without waiting for anything.

The protocol over a socket pair (both ends ours, started together: ``marshal`` is safe), each
frame a 4-octet length and a marshalled value:

1. parent -> child: ``(store path, synchronous, busy_timeout_s)``; child -> parent:
   ``"ready"`` or an error message;
2. then batches: parent -> child: ``("w", list)``, each request's writes, each write a tuple
   (:func:`to_wire`); child -> parent: ``("w", list)``, one outcome per request, the flags of
   its writes or the :class:`~kmed.hss.groupcommit.CommitFailed` message, in the order of the
   batches, preceded by ``("m", (instance, n))`` when that commit took the store over from
   another HSS process (``SqliteStore.taken_over``); and reads: parent -> child
   ``("r", IMSIs)``, child -> parent ``("r", rows)``, one
   :func:`subscriber_row` (or None) per IMSI, read after every batch whose outcome the parent
   had when it asked, and answered before the batches that arrived with it are committed
   (:func:`_serve`; reads and outcomes each come back in order). The parent keeps up to two
   batches in the child: the second is committed right after the first, without waiting for the
   first's outcome to reach the busy event loop and the next batch to come back (measured,
   ``kmed bench hss`` on the idle machine, back to back: one batch 8,396 and 8,262 answers/s
   with 27 requests per commit; two 9,002 and 8,827 with 19; four 8,539 and 8,978 with 16).
   Meanwhile new requests queue up and form the next batch.

The child checkpoints the WAL in a thread of its own (:mod:`kmed.hss.checkpoint`), not inside
the commits, and catches the WAL up before a transaction when the thread asks, so that the WAL
starts over.

The child ignores SIGINT and SIGTERM (systemd and a terminal signal the whole group: the parent
decides when writing ends) and exits when the socket closes, so it also ends with a parent
that was killed. If the child ends, every request waiting for it fails with
:class:`~kmed.hss.groupcommit.CommitFailed` and ``on_dead`` is called (the daemon then stops
with exit status 1; systemd restarts it).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import marshal
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from kmed import log as klog
from kmed.hss.checkpoint import BACKSTOP_FRAMES, INTERVAL_S, RESTART_FRAMES, Checkpointer
from kmed.hss.groupcommit import CommitFailed, Committer, Queued, _Item, _resolve, commit_batch
from kmed.hss.store import AuditKme, SetLocation, SetSqn, Store, StoredKme, StoreError, StoreKme, Subscriber
from kmed.hss.vectors import VectorJob

_LEN = struct.Struct("!I")
#: How long open() waits for the child to open the store.
START_TIMEOUT_S = 120.0

_TYPES: tuple[type[Any], ...] = (SetSqn, StoreKme, AuditKme, SetLocation, VectorJob)
_TAG = {t: i for i, t in enumerate(_TYPES)}
_FIELDS = [tuple(f.name for f in dataclasses.fields(t)) for t in _TYPES]


def to_wire(w: Queued) -> tuple[Any, ...]:
    """A write as a tuple of plain values: its type's tag, then its fields in order."""
    if type(w) is SetSqn:  # the AIR's one write: the hot path
        return (0, w.imsi, w.sqn)
    tag = _TAG[type(w)]
    return (tag, *[getattr(w, f) for f in _FIELDS[tag]])


def from_wire(t: tuple[Any, ...] | list[Any]) -> Queued:
    """The inverse of :func:`to_wire`; ValueError for anything else."""
    try:
        if type(t[0]) is not int or t[0] < 0:
            raise IndexError(f"tag {t[0]!r}")
        return _TYPES[t[0]](*t[1:])  # type: ignore[no-any-return]
    except (IndexError, TypeError) as exc:
        raise ValueError(f"not a write: {exc}") from None


def subscriber_row(sub: Subscriber | None) -> tuple[Any, ...] | None:
    """A subscriber as plain values for the wire (None stays None)."""
    if sub is None:
        return None
    kme = sub.kme
    if kme is None:
        return (sub.k, sub.opc, sub.amf, sub.sqn)
    return (sub.k, sub.opc, sub.amf, sub.sqn, kme.kme, kme.imei, kme.issued_at, kme.stored_at)


def subscriber_from_row(imsi: str, row: Any) -> Subscriber | None:
    """The inverse of :func:`subscriber_row`; ValueError for anything else."""
    if row is None:
        return None
    try:
        kme = None if len(row) == 4 else StoredKme(*row[4:8])
        return Subscriber(imsi, row[0], row[1], row[2], row[3], kme)
    except (TypeError, IndexError) as exc:
        raise ValueError(f"not a subscriber row: {exc}") from None


def _frame(value: Any) -> bytes:
    data = marshal.dumps(value)
    return _LEN.pack(len(data)) + data


class _FrameSplitter:
    """Length-prefixed frames out of a byte stream."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buf = self._buf
        buf += data
        out = []
        pos = 0
        while len(buf) - pos >= 4:
            (size,) = _LEN.unpack_from(buf, pos)
            if len(buf) - pos - 4 < size:
                break
            out.append(marshal.loads(buf[pos + 4 : pos + 4 + size]))  # the slice is already a copy
            pos += 4 + size
        del buf[:pos]
        return out


class _ChildLink(asyncio.Protocol):
    def __init__(self, owner: ProcessCommitter) -> None:
        self.owner = owner
        self.frames = _FrameSplitter()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.frames.feed(data)
        except (EOFError, ValueError, TypeError) as exc:
            self.owner._died(f"the store writer process sent garbage ({exc})")
            return
        for frame in frames:
            if isinstance(frame, tuple) and len(frame) == 3 and frame[0] == "w":
                self.owner._outcomes(frame[1], frame[2])
            elif isinstance(frame, tuple) and len(frame) == 2 and frame[0] == "r":
                self.owner._rows(frame[1])
            elif isinstance(frame, tuple) and len(frame) == 2 and frame[0] == "m":
                if self.owner.on_taken_over is not None:
                    self.owner.on_taken_over((str(frame[1][0]), int(frame[1][1])))
            else:
                self.owner._died("the store writer process sent an unknown frame")
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._died("the store writer process ended")


class ProcessCommitter(Committer):
    """A :class:`~kmed.hss.groupcommit.Committer` whose writer is a child process (module doc). ``store_spec``
    is ``(path, synchronous, busy_timeout_s[, options])``, what the child opens; options: the
    ``instance`` that marks its commits (kmed.hss.cache) and, for tests, the checkpoints'
    ``restart_frames`` and ``interval_s`` (kmed.hss.checkpoint); up to ``max_in_child``
    batches are sent before the first is answered (the child commits them in order)."""

    def __init__(self, store_spec: tuple[str, str, float] | tuple[str, str, float, dict[str, Any]],
                 max_batch: int = 1024, handover_chunk: int = 16, on_dead: Callable[[str], None] | None = None,
                 max_in_child: int = 2) -> None:
        super().__init__(max_batch, handover_chunk)
        self.store_spec = store_spec
        self.on_dead = on_dead
        self._transport: asyncio.Transport | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._waiting: collections.deque[_Item] = collections.deque()
        #: Batches sent to the child and not answered yet, oldest first (answers come in order).
        self._in_child: collections.deque[list[_Item]] = collections.deque()
        #: Reads sent to the child, oldest first: their IMSIs and callbacks.
        self._reads: collections.deque[tuple[list[str], Callable[[list[Subscriber | None] | None], None]]] = (
            collections.deque())
        self.max_in_child = max(1, max_in_child)
        self._dead: str | None = None
        self._idle = asyncio.Event()

    async def open(self) -> None:
        """Start the child and wait until it has opened the store; raises StoreError if not."""
        loop = self._loop = asyncio.get_running_loop()
        parent, child = socket.socketpair()
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", "kmed.hss.writer", str(child.fileno())],
                                          pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)
        finally:
            child.close()
        parent.settimeout(START_TIMEOUT_S)

        def hello() -> object:
            parent.sendall(_frame(self.store_spec))
            return _recv_blocking(parent)

        try:
            reply = await loop.run_in_executor(None, hello)
        except OSError as exc:
            reply = f"{type(exc).__name__}: {exc}"
        if reply != "ready":
            parent.close()
            self._proc.kill()
            await loop.run_in_executor(None, self._proc.wait)
            raise StoreError(f"store writer: {reply or 'the writer process ended'}")
        parent.setblocking(False)
        transport, _ = await loop.connect_accepted_socket(lambda: _ChildLink(self), parent)
        self._transport = transport
        self._idle.set()

    def _hand_over(self) -> None:
        staged, self._staged = self._staged, []
        if not staged:
            return
        if self._dead is not None:
            _resolve(staged, [CommitFailed(self._dead)] * len(staged))
            return
        self._waiting.extend(staged)
        if len(self._in_child) < self.max_in_child:
            self._send_batch()

    def _send_batch(self) -> None:
        n = min(len(self._waiting), self._max_batch)
        batch = [self._waiting.popleft() for _ in range(n)]
        self._in_child.append(batch)
        self._idle.clear()
        assert self._transport is not None
        self._transport.write(_frame(("w", [[to_wire(w) for w in writes] for writes, _ in batch])))

    def read_subscribers(self, imsis: list[str], on_rows: Callable[[list[Subscriber | None] | None], None]) -> None:
        """Read ``imsis`` in the child, which has committed every write whose outcome came back
        (writes still in flight may or may not be seen: ask only for IMSIs without one, see
        kmed.hss.prefetch); ``on_rows`` gets one subscriber (or None) per IMSI, or None if the
        child is gone (then read elsewhere)."""
        if self._dead is not None or self._transport is None:
            self._loop_call(on_rows, None)
            return
        self._reads.append((imsis, on_rows))
        self._transport.write(_frame(("r", imsis)))

    def _loop_call(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon(fn, *args)

    def _rows(self, rows: Any) -> None:
        if not self._reads or not isinstance(rows, list) or len(rows) != len(self._reads[0][0]):
            self._died("the store writer process answered a read out of step")
            return
        imsis, on_rows = self._reads.popleft()
        try:
            subs = [subscriber_from_row(imsi, row) for imsi, row in zip(imsis, rows, strict=True)]
        except ValueError as exc:
            self._died(f"the store writer process sent a bad row ({exc})")
            return
        on_rows(subs)

    def _outcomes(self, outcomes: Any, transactions: Any) -> None:
        if not self._in_child or not isinstance(outcomes, list) or len(outcomes) != len(self._in_child[0]):
            self._died("the store writer process answered out of step")
            return
        batch = self._in_child.popleft()
        self.batches += transactions if isinstance(transactions, int) else 0
        self.requests += len(batch)
        _resolve(batch, [o if isinstance(o, list) else CommitFailed(str(o)) for o in outcomes])
        if self._waiting:
            self._send_batch()
        elif not self._in_child:
            self._idle.set()

    def _died(self, why: str) -> None:
        """The child is gone or broke the protocol: fail what waits for it, and end it (a
        child that broke the protocol must not commit what its requests were failed for)."""
        if self._dead is not None:
            return
        self._dead = why
        if self._transport is not None:
            self._transport.abort()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        failed = [*(item for b in self._in_child for item in b), *self._waiting, *self._staged]
        self._in_child.clear()
        self._staged = []
        self._waiting.clear()
        self._fail_reads()
        _resolve(failed, [CommitFailed(why)] * len(failed))
        self._idle.set()
        if self.on_dead is not None and not self._closing:
            self.on_dead(why)

    def _fail_reads(self) -> None:
        """Reads that will not be answered: their callers read elsewhere."""
        reads, self._reads = list(self._reads), collections.deque()
        for _, on_rows in reads:
            self._loop_call(on_rows, None)

    async def close(self) -> None:
        """Commit what is queued, then end the child (it exits when the socket closes)."""
        self._hand_over()
        self._closing = True
        await self._idle.wait()
        self._dead = self._dead or "the store is closing"
        self._fail_reads()
        if self._transport is not None:
            self._transport.close()
        if self._proc is not None:
            proc = self._proc
            try:
                await asyncio.get_running_loop().run_in_executor(None, proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _recv_blocking(sock: socket.socket) -> Any:
    """One frame from a blocking socket, or None at the end of the stream."""
    splitter = _FrameSplitter()
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return None
        frames = splitter.feed(chunk)
        if frames:
            return frames[0]


def _serve(store: Store, frames: list[Any], send: Callable[[bytes], object],
           checkpointer: Checkpointer | None = None) -> None:
    """Answer ``frames`` (all that arrived together) with ``send``: the reads first, then the
    batches, in their order, committed in one transaction (when the child falls behind,
    commits grow by themselves: one fsync for all). The reads are answered before that
    commit, so a read ahead never waits for a commit it does not need: it was asked for an
    IMSI with no write in flight (:meth:`~kmed.hss.cache.ReadCache.wants`), so every write of
    that IMSI was committed before (the parent had its outcome), and the parent keeps a row
    only if its IMSI still has no write in flight when the row arrives."""
    reads = [_frame(("r", _read(store, body))) for kind, body in frames if kind == "r"]
    if reads:
        send(b"".join(reads))
    batches = [body for kind, body in frames if kind == "w"]
    if not batches:
        return
    items = [([from_wire(t) for t in writes], None) for body in batches for writes in body]
    if checkpointer is not None:
        checkpointer.before_write()
    outcomes = commit_batch(store, items)
    if checkpointer is not None:
        checkpointer.committed()
    replies: list[bytes] = []
    if store.taken_over is not None:  # before the outcomes: the parent empties its cache first
        replies.append(_frame(("m", store.taken_over)))
    done = 0
    for body in batches:
        mine = outcomes[done : done + len(body)]
        # The transaction is counted with the first batch it holds (statistics only).
        replies.append(_frame(("w", [o if isinstance(o, list) else str(o) for o in mine], int(done == 0))))
        done += len(body)
    send(b"".join(replies))


def _read(store: Store, imsis: list[str]) -> list[tuple[Any, ...] | None]:
    """The rows of ``imsis``; all None if the store cannot be read (a read ahead is only a
    shortcut: the parent then reads the store itself)."""
    try:
        return [subscriber_row(store.subscriber(imsi)) for imsi in imsis]
    except Exception:
        return [None] * len(imsis)


def _report_checkpoint_error(error: str) -> None:
    """A checkpoint failed (kmed.hss.checkpoint): an ``hss_checkpoint_failed`` event on the
    child's stderr, which is the HSS's own (the journal under systemd), in the daemons' JSON
    line format (:func:`kmed.log.setup`, called by :func:`child_main`)."""
    klog.get("hss").error("hss_checkpoint_failed", error=error)


def child_main(fd: int) -> int:
    """The child: open the store, then commit batches and answer reads until the socket closes."""
    from kmed.hss.sqlite_store import SqliteStore

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    klog.setup("error", "json")  # stderr: only checkpoint failures are logged here
    sock = socket.socket(fileno=fd)
    spec = _recv_blocking(sock)
    if spec is None:
        return 0
    try:
        path, synchronous, busy, *more = spec  # more: {"instance": …, "restart_frames", "interval_s" (tests)}
        options = more[0] if more else {}

        def open_store(wal_autocheckpoint: int | None) -> SqliteStore:
            return SqliteStore(str(path), synchronous=str(synchronous), busy_timeout_s=float(busy), migrate=False,
                               wal_autocheckpoint=wal_autocheckpoint)

        store = open_store(BACKSTOP_FRAMES)
        store.instance = options.get("instance")
        checkpointer = Checkpointer(partial(open_store, None), store, report=_report_checkpoint_error,
                                    interval_s=float(options.get("interval_s", INTERVAL_S)),
                                    restart_frames=int(options.get("restart_frames", RESTART_FRAMES)))
        checkpointer.start()
    except Exception as exc:  # reported to the parent's start
        sock.sendall(_frame(f"{type(exc).__name__}: {exc}"))
        return 1
    sock.sendall(_frame("ready"))
    splitter = _FrameSplitter()
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return 0
            _serve(store, splitter.feed(chunk), sock.sendall, checkpointer)
    except (BrokenPipeError, ConnectionResetError):
        return 0  # the parent is gone: nothing waits for an answer
    finally:
        checkpointer.stop()
        store.close()


if __name__ == "__main__":
    sys.exit(child_main(int(sys.argv[1])))

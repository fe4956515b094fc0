"""Group commit: many requests' writes, one transaction, one fsync (docs/hss.md, "Durability").

Handlers queue their writes with :meth:`GroupCommitter.submit` and await the future it
returns; the answer is sent only once that future resolves, i.e. after the transaction
holding those writes has committed. A dedicated thread with its own store connection takes
everything queued so far (up to ``max_batch`` requests), applies it in one transaction and
commits it; while it commits, new writes queue up and form the next batch. Under load the
batch grows on its own, so 8,000 requests per second cost a few hundred fsyncs, and an idle
HSS commits each request at once (no timer adds latency).

Writes reach the writer at the end of each event-loop iteration, and also every
``handover_chunk`` requests within one: a burst of pipelined requests (all that a peer had in
flight, read at once) would otherwise form one batch that commits only after the whole burst
is processed, while no new request arrives, so processing and fsync would take turns instead
of overlapping. Measured with ``kmed bench hss`` (64 in flight, busy machine, back to back):
one hand-over per iteration gave 64 requests per commit, 2,300–2,800 answers/s and the loop
thread asleep 20–22 % of the time; every 16 requests gave 17 per commit, 3,900–5,000 answers/s
and the loop thread asleep 3–6 %.

SQLite releases the GIL while it steps statements and syncs, so the event loop keeps
decoding requests and generating vectors while a batch commits.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from kmed.hss.store import Store, Write, WriteRejected
from kmed.hss.vectors import VectorJob

#: What a request queues: store writes, and at most one vector job (run after the commit).
Queued = Write | VectorJob
#: A commit's callback: gets one result per queued item (a flag per write: took effect; the
#: vectors of a :class:`VectorJob`), or the :class:`CommitFailed` error.
OnDone = Callable[["list[Any] | CommitFailed"], None]
_Item = tuple[Sequence[Queued], "asyncio.Future[list[Any]] | OnDone"]


class CommitFailed(Exception):
    """The writes could not be committed (message names the store error, never a secret)."""


class Committer:
    """What the daemon submits writes to: staging on the event loop, handed to a writer once
    per loop iteration (and every ``handover_chunk`` requests within one). Subclasses write:
    :class:`GroupCommitter` with a thread, :class:`kmed.hss.writer.ProcessCommitter` with a
    child process."""

    def __init__(self, max_batch: int = 1024, handover_chunk: int = 16) -> None:
        self._max_batch = max_batch
        self._handover_chunk = max(1, handover_chunk)
        self._staged: list[_Item] = []
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        #: statistics: transactions committed and requests in them (for the benchmark and logs)
        self.batches = 0
        self.requests = 0
        #: called on the loop, before the outcomes of the batch, when a commit took the store
        #: over from another HSS process (SqliteStore.taken_over: the mark it found)
        self.on_taken_over: Callable[[tuple[str, int]], object] | None = None

    async def open(self) -> None:
        """Start writing (from the event loop); raises if the store cannot open."""
        raise NotImplementedError

    async def close(self) -> None:
        """Commit what is queued, then stop writing."""
        raise NotImplementedError

    def _hand_over(self) -> None:
        """Pass what is staged to the writer."""
        raise NotImplementedError

    def submit(self, writes: Sequence[Queued]) -> asyncio.Future[list[Any]]:
        """Queue ``writes`` (applied atomically together); the future resolves after commit
        with one flag per write, or fails with :class:`CommitFailed`."""
        assert self._loop is not None, "open() first"
        fut: asyncio.Future[list[Any]] = self._loop.create_future()
        if not writes:
            fut.set_result([])
        elif self._closing:
            fut.set_exception(CommitFailed("the store is closing"))
        else:
            self._stage((writes, fut))
        return fut

    def submit_with(self, writes: Sequence[Queued], on_done: OnDone) -> None:
        """Queue ``writes`` like :meth:`submit`; ``on_done`` is called on the event loop after
        the commit with one flag per write, or with the :class:`CommitFailed` error (no future:
        the cheaper way when the caller has its own)."""
        assert self._loop is not None, "open() first"
        if not writes:
            self._loop.call_soon(on_done, [])
        elif self._closing:
            self._loop.call_soon(on_done, CommitFailed("the store is closing"))
        else:
            self._stage((writes, on_done))

    def _stage(self, item: _Item) -> None:
        # Staged on the loop thread and handed to the writer once per loop iteration: one
        # lock and one wake-up for all the requests a burst of received data produced.
        self._staged.append(item)
        n = len(self._staged)
        if n == 1:
            assert self._loop is not None
            self._loop.call_soon(self._hand_over)
        elif n >= self._handover_chunk:
            self._hand_over()  # mid-iteration (see the module doc); the scheduled call finds none


class GroupCommitter(Committer):
    """A writer thread committing queued writes in batches; see the module doc."""

    def __init__(self, open_store: Callable[[], Store], max_batch: int = 1024, handover_chunk: int = 16) -> None:
        super().__init__(max_batch, handover_chunk)
        self._open_store = open_store
        # Hand-over to the writer: lists of items, None to stop. SimpleQueue.put is one C call
        # that never blocks: with a Condition the loop thread would wait for its lock while the
        # writer thread held it (and the GIL), ~6 % of the loop's time in a profile.
        self._queue: queue.SimpleQueue[list[_Item] | None] = queue.SimpleQueue()
        self._carry: list[_Item] = []  # taken from the queue beyond max_batch: the next batch
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    async def open(self) -> None:
        self.start()

    def start(self) -> None:
        """Start the writer thread (from the event loop's thread); raises if the store cannot open."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="kmed-hss-writer", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            raise self._start_error

    def _hand_over(self) -> None:
        staged, self._staged = self._staged, []
        if not staged:
            return
        self._queue.put(staged)

    async def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        self._hand_over()
        if not self._closing:
            self._closing = True
            self._queue.put(None)
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    # --- writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            store = self._open_store()
        except BaseException as exc:  # reported to start()
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        try:
            while True:
                batch = self._take()
                if batch is None:
                    return  # closing and drained
                outcomes = commit_batch(store, batch)
                self.batches += 1
                self.requests += len(batch)
                assert self._loop is not None
                taken_over = store.taken_over
                try:
                    if taken_over is not None and self.on_taken_over is not None:
                        self._loop.call_soon_threadsafe(self.on_taken_over, taken_over)
                    self._loop.call_soon_threadsafe(_resolve, batch, outcomes)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    return
        finally:
            store.close()

    def _take(self) -> list[_Item] | None:
        """The next batch (up to ``max_batch`` requests): blocks for the first hand-over, then
        takes whatever else is queued. None once closing and everything is committed."""
        batch, self._carry = self._carry, []
        stop = False
        if not batch:
            first = self._queue.get()
            if first is None:
                return None
            batch = first
        while len(batch) < self._max_batch:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                stop = True
                break
            batch += more
        if len(batch) > self._max_batch:
            batch, self._carry = batch[: self._max_batch], batch[self._max_batch :]
        if stop:
            self._queue.put(None)  # seen again once the carry and this batch are committed
        return batch


def commit_batch(store: Store, batch: Sequence[tuple[Sequence[Queued], Any]]) -> list[list[Any] | BaseException]:
    """Apply the batch's store writes in one transaction, then run its vector jobs (each
    result in its job's place); one outcome per request (its results, or the
    :class:`CommitFailed` error). Used by the writer thread and the writer child alike."""
    flat: list[Write] = [w for writes, _ in batch for w in writes if type(w) is not VectorJob]  # type: ignore[misc]
    try:
        results = store.apply(flat)
    except WriteRejected as exc:
        if len(batch) == 1:
            return [CommitFailed(str(exc))]
        # A constraint refused one request's writes: commit each request alone.
        return [commit_batch(store, [item])[0] for item in batch]
    except Exception as exc:
        # The store is unavailable (locked past the busy timeout, I/O error): the whole
        # batch fails at once, without retrying each request into the same wall.
        failed = CommitFailed(f"store write failed: {type(exc).__name__}: {exc}")
        return [failed] * len(batch)
    out: list[list[Any] | BaseException] = []
    i = 0
    for writes, _ in batch:
        done: list[Any] = []
        try:
            for w in writes:
                if type(w) is VectorJob:
                    done.append(w.run())
                else:
                    done.append(results[i])
                    i += 1
        except Exception as exc:  # a job that cannot run (the writes are committed)
            out.append(CommitFailed(f"vectors failed: {type(exc).__name__}: {exc}"))
            i += sum(1 for w in writes[len(done):] if type(w) is not VectorJob)
            continue
        out.append(done)
    return out


def _resolve(batch: list[_Item], outcomes: list[list[Any] | BaseException]) -> None:
    for (_, target), outcome in zip(batch, outcomes, strict=True):
        if not isinstance(target, asyncio.Future):
            try:
                target(outcome)  # type: ignore[arg-type]  # CommitFailed is the only exception
            except Exception as exc:  # one broken callback must not leave the others unresolved
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "group commit callback failed", "exception": exc})
        elif target.done():
            continue
        elif isinstance(outcome, BaseException):
            target.set_exception(outcome)
        else:
            target.set_result(outcome)

"""WAL checkpoints in a thread of their own, off the commit path (docs/hss.md, "Durability").

SQLite copies the WAL back into the database file ("checkpoint") by default inside the COMMIT
that takes the WAL past 1,000 frames: that commit then also copies up to 1,000 pages and
fsyncs the database file. With a million subscribers each AIR dirties a page of its own, so a
checkpoint writes ~1,000 pages scattered over the file: measured in the writer child
(``kmed bench hss --subscribers 1000000``), such commits took 15–42 ms instead of the usual
0.7 ms, once every ~80 commits, and every request in flight waited behind them.

:class:`Checkpointer` turns the writer connection's automatic checkpoints off
(``wal_autocheckpoint = 0``) and runs ``PRAGMA wal_checkpoint(PASSIVE)`` on a connection of
its own, in a thread: SQLite releases the GIL while it checkpoints, and a PASSIVE checkpoint
takes no lock that the writer needs, so commits go on meanwhile. Its connection has the
store's ``synchronous`` setting, so a checkpoint syncs the WAL before copying it and the
database file after (the durability of ``full`` is unchanged).

The WAL starts over from its beginning once a checkpoint has copied all of it and the writer
begins its next transaction, if no commit came in between; under steady load that happens
often enough, but if a checkpoint finds the WAL longer than ``restart_frames`` frames, the
thread runs a ``RESTART`` checkpoint, which holds new writes back (through the writer's busy timeout) until the WAL has
been copied and can start over: the WAL cannot grow without bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol


class Checkpointing(Protocol):
    """A store connection that can checkpoint (:class:`kmed.hss.sqlite_store.SqliteStore`)."""

    def checkpoint(self, mode: str) -> tuple[int, int, int]: ...

    def close(self) -> None: ...


class Checkpointer:
    """Checkpoints the WAL with its own connection (``open_store()``) in a thread: at most every
    ``interval_s`` while commits come (:meth:`committed`), never while none come."""

    def __init__(self, open_store: Callable[[], Checkpointing], interval_s: float = 0.1,
                 restart_frames: int = 20_000) -> None:
        self._open_store = open_store
        self.interval_s = interval_s
        self.restart_frames = restart_frames
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: statistics: checkpoints run, frames copied, RESTART checkpoints, the last error
        self.runs = 0
        self.copied = 0
        self.restarts = 0
        self.error: str | None = None

    def start(self) -> None:
        """Open the connection (raises if it cannot) and start the thread."""
        store = self._open_store()
        self._thread = threading.Thread(target=self._run, args=(store,), name="kmed-hss-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """A transaction was committed: the WAL has grown (cheap: sets an event)."""
        self._wake.set()

    def stop(self) -> None:
        """Run a last checkpoint and end the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self, store: Checkpointing) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait()
                # Let the WAL gather frames: fewer, larger checkpoints (one database fsync
                # each, and a page written twice meanwhile is copied once).
                self._stop.wait(self.interval_s)
                self._wake.clear()
                self._checkpoint(store)
        finally:
            store.close()

    def _checkpoint(self, store: Checkpointing) -> None:
        try:
            _, frames, copied = store.checkpoint("PASSIVE")
            self.runs += 1
            self.copied += max(0, copied)
            if frames > self.restart_frames:
                store.checkpoint("RESTART")
                self.restarts += 1
        except Exception as exc:  # the next commit wakes us again; the writer is not affected
            self.error = f"{type(exc).__name__}: {exc}"

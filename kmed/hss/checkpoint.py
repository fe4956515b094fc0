"""WAL checkpoints beside the writer, off its commit path (docs/hss.md, "Durability").

SQLite copies the WAL back into the database file ("checkpoint") by default inside the COMMIT
that takes the WAL past 1,000 frames: that commit then also copies up to 1,000 pages and
fsyncs the database file. With traffic spread over a million subscribers each AIR dirties a
page of its own, so such a checkpoint writes ~1,000 pages scattered over the file: 15–42 ms
instead of the usual ~1 ms, once every ~55 commits, while every request in flight waits
(`kmed bench hss --subscribers 1000000`: with no checkpoint during the run, 8,100–9,200
answers/s and p99 12.5 ms against 7,700–8,400 and 24–26 ms; session 5).

:class:`Checkpointer` runs ``PRAGMA wal_checkpoint(PASSIVE)`` on a connection of its own, in a
thread of the writer child (SQLite releases the GIL meanwhile, and a PASSIVE checkpoint takes
only brief locks, never the writer's), at most every ``interval_s`` while commits come; the
writer's own connection checkpoints only as a backstop (below). The interval is 1 s, not 0.1 s
as in session 5: a page written again within it is copied once, and with AIRs spread over a
million subscribers (a leaf page per AIR) 0.1 s meant one page copy per AIR. Measured
(session 6, `kmed bench hss --subscribers 1000000`, six runs each, interleaved): the thread's
CPU 6.3–8.0 µs per AIR with 0.1 s, 3.6–4.8 µs with 1 s, and p99 lower in every pair
(e.g. 19.3 -> 16.3 ms). With ~10,000 frames a second the first pass after the WAL passed
``restart_frames`` (5,000; 10,000 before) then starts it over: the WAL file peaked at 47 MB in
a 150,000-AIR run over the million (88 MB with 10,000, as a pass came only after ~20,000
frames), far below the backstop.

Starting the WAL over. SQLite restarts the WAL from its beginning when a writer begins a
transaction after a checkpoint has copied all of it (and no reader still reads an older part).
With a checkpointer running beside steady commits that moment rarely comes by itself (session
4 saw the WAL reach ~40,000 frames in 20 s). So once the WAL holds more than
``restart_frames`` frames and a pass copied all of it, the thread runs passes back to back
until one had little left to copy (at most ``settle_frames`` new frames: those committed
during the pass before), then pauses and leaves the rest to the writer: before its next
transaction the writer checkpoints on its own connection (:meth:`before_write`), which copies
only the frames committed since that short pass, and its transaction starts the WAL over.
Whatever the catch-up's outcome the thread then resumes. Nothing waits for readers (session
4's ``RESTART`` did, holding every commit back behind a long reader): while a reader keeps
part of the WAL, passes are incomplete, no catch-up is asked for, and the WAL grows as with
SQLite's own checkpoints; the thread copies the backlog once the reader has gone. The WAL
file keeps the size it reached (SQLite reuses it from the start). The writer's connection
keeps SQLite's automatic checkpoint at a high mark (``BACKSTOP_FRAMES``) should the thread
fail, and errors are reported through ``report`` (the child writes them to its stderr).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

#: The writer connection's ``wal_autocheckpoint``: SQLite's own checkpoint, inside a COMMIT,
#: only if the WAL got this long anyway (the thread failing, a reader holding the WAL).
BACKSTOP_FRAMES = 40_000
#: The thread's pace (module doc) and the WAL's length past which it starts the WAL over.
INTERVAL_S = 1.0
RESTART_FRAMES = 5_000


class Checkpointing(Protocol):
    """A store connection that can checkpoint (:class:`kmed.hss.sqlite_store.SqliteStore`)."""

    def checkpoint(self) -> tuple[int, int, int]: ...

    def close(self) -> None: ...


class Checkpointer:
    """PASSIVE checkpoints on ``open_store()``'s connection in a thread, and the catch-ups of
    the ``writer``'s connection (module doc)."""

    def __init__(self, open_store: Callable[[], Checkpointing], writer: Checkpointing, interval_s: float = INTERVAL_S,
                 restart_frames: int = RESTART_FRAMES, settle_frames: int = 256,
                 report: Callable[[str], None] | None = None) -> None:
        self._open_store = open_store
        self._writer = writer
        self.interval_s = interval_s
        self.restart_frames = restart_frames
        self.settle_frames = settle_frames
        self._report = report
        self._copied = 0  # frames copied when the last pass ended (to tell what a pass copied)
        self._wake = threading.Event()
        self._stop = threading.Event()
        #: set by the thread when the WAL should start over: the writer catches up, then clears it
        self._catch_up = threading.Event()
        self._thread: threading.Thread | None = None
        #: statistics: passes of the thread, the WAL's frames at the last, the writer's catch-ups, the last error
        self.runs = 0
        self.frames = 0
        self.catch_ups = 0
        self.error: str | None = None

    def start(self) -> None:
        """Open the connection (raises if it cannot) and start the thread."""
        store = self._open_store()
        self._thread = threading.Thread(target=self._run, args=(store,), name="kmed-hss-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """The writer committed a transaction: the WAL has grown (cheap: sets an event)."""
        self._wake.set()

    def before_write(self) -> None:
        """Called by the writer before each transaction: when the thread asked for it, copy the
        rest of the WAL on the writer's connection so that the transaction starts it over."""
        if not self._catch_up.is_set():
            return
        try:
            busy, frames, copied = self._writer.checkpoint()
        except Exception as exc:  # the commit goes on; the WAL starts over another time
            self._failed(exc)
        else:
            if not busy and copied >= frames:  # else a reader came in: the thread asks again later
                self.catch_ups += 1
        self._catch_up.clear()
        self._wake.set()  # the thread resumes its passes

    def stop(self) -> None:
        """End the thread (after its pass in progress, and one more if commits came since)."""
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
                if not self._catch_up.is_set():
                    self._pass(store)
        finally:
            store.close()

    def _pass(self, store: Checkpointing) -> None:
        """One pass, then more back to back while the WAL is long and fully copied, until one
        had little to copy: then the writer is asked to catch up (module doc). After eight
        passes that each still had more than ``settle_frames`` to copy (commits outpacing the
        checkpoints) the writer is asked anyway: its catch-up is then longer, but the WAL
        cannot grow without end."""
        for _ in range(8):
            try:
                busy, frames, copied = store.checkpoint()
            except Exception as exc:  # the next commit wakes us again; the writer is not affected
                self._failed(exc)
                return
            self.runs += 1
            # frames copied by this pass: all of them if the WAL started over since the last
            new = copied if frames < self.frames or copied < self._copied else copied - self._copied
            self.frames = frames
            self._copied = max(0, copied)
            if busy or copied < frames or frames <= self.restart_frames:
                return  # a reader holds part of the WAL, or it is not long yet
            if new <= self.settle_frames:
                break
        self._catch_up.set()

    def _failed(self, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if error != self.error and self._report is not None:
            self._report(error)  # each new error once
        self.error = error

"""The WAL's fsync in a thread of its own, for the store writer child (docs/hss.md, "Durability").

With ``synchronous = FULL`` SQLite fsyncs the WAL inside every COMMIT, and the writer child
can do nothing else meanwhile: measured with a million subscribers (``kmed bench hss``), the
child spent ~45 % of its time inside COMMIT, while the read-aheads the event loop waited for
queued behind it. So the child's writer connection commits with ``synchronous = OFF`` (SQLite
writes the WAL frames and returns) and :class:`WalSync` makes them durable: a thread calls
``fdatasync`` on the WAL file, and an outcome is sent to the parent only once a sync that
started after its COMMIT returned has completed. One sync covers every commit before it.
Meanwhile the child answers reads and applies the next batch.

Why this keeps the rule "an answer only after its state change is committed" (and durable):

- an outcome waits for its commit's ticket (:meth:`applied`) to be synced, and the sync for a
  ticket starts after that ticket was taken, i.e. after the COMMIT had written its frames;
- the WAL header that SQLite rewrites when the WAL starts over is written by such a COMMIT too,
  so the same sync covers it (with ``FULL`` SQLite syncs it first; the order does not matter
  here because nothing is acknowledged before both are on disk);
- checkpoints run on another connection with the store's own ``synchronous`` setting
  (:mod:`kmed.hss.checkpoint`): they sync the WAL before copying it and the database after;
- a read answered meanwhile can see a committed, not yet synced row, but only of an IMSI whose
  outcome the parent already has (:meth:`kmed.hss.cache.ReadCache.wants`), i.e. synced.

If ``fdatasync`` fails the child exits at once (``die``): after a failed fsync the kernel may
have dropped the dirty pages, so neither retrying nor answering is safe (PostgreSQL learned
this in 2018). The parent then fails every request waiting (4181/5012) and stops; SQLite
recovers the WAL at the next start from what reached the disk.

Outcomes and reads share the socket: every send holds :attr:`lock`, so frames never interleave.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable


class WalSync:
    """Syncs ``fd`` (the WAL) in a thread and sends replies once their commits are synced."""

    def __init__(self, fd: int, send: Callable[[bytes], object], sync: Callable[[int], None] = os.fdatasync,
                 die: Callable[[int], object] = os._exit) -> None:
        self._fd = fd
        self._send = send
        self._sync = sync
        self._die = die
        self.lock = threading.Lock()  # held for every send on the socket
        self._wake = threading.Condition(self.lock)
        self._taken = 0  # tickets handed out (commits applied)
        self._synced = 0  # the highest ticket a completed sync covers
        self._queued: list[tuple[int, bytes]] = []  # replies waiting for their sync, in order
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="kmed-hss-walsync", daemon=True)
        #: statistics: syncs done
        self.syncs = 0

    def start(self) -> None:
        self._thread.start()

    def applied(self) -> int:
        """A COMMIT returned: the ticket its outcome waits for (a sync starts soon)."""
        with self.lock:
            self._taken += 1
            self._wake.notify()
            return self._taken

    def send_after(self, ticket: int, reply: bytes) -> None:
        """Send ``reply`` once ``ticket`` is synced (now if it is and nothing waits before it)."""
        with self.lock:
            if ticket <= self._synced and not self._queued:
                self._send(reply)
            else:
                self._queued.append((ticket, reply))

    def send_now(self, reply: bytes) -> None:
        """A reply that needs no sync (a read)."""
        with self.lock:
            self._send(reply)

    def close(self) -> None:
        """Sync and send what waits, then end the thread."""
        with self.lock:
            self._closing = True
            self._wake.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self.lock:
                while self._taken == self._synced and not self._queued and not self._closing:
                    self._wake.wait()
                if self._taken == self._synced and not self._queued:
                    return  # closing, and nothing is left
                target = self._taken
            try:
                self._sync(self._fd)  # without the lock: reads and commits go on meanwhile
            except OSError as exc:
                print(f"kmed hss writer: fdatasync of the WAL failed ({exc}): exiting", file=sys.stderr, flush=True)
                self._die(70)  # EX_SOFTWARE; see the module doc
                return
            with self.lock:
                self.syncs += 1
                self._synced = target
                ready = 0
                while ready < len(self._queued) and self._queued[ready][0] <= target:
                    ready += 1
                if ready:
                    replies, self._queued = self._queued[:ready], self._queued[ready:]
                    try:
                        self._send(b"".join(r for _, r in replies))
                    except OSError:
                        return  # the parent is gone; the main thread sees it too

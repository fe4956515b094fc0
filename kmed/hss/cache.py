"""The HSS's read cache: subscribers and devices it has served, kept in memory (docs/hss.md,
"Read cache").

An AIR reads the subscriber (K, OPc, AMF, SQN, the KME held) and a ULR reads it again a few
milliseconds later; with SQLite each read is a query costing 10-30 µs of the event loop. What
is cached, and why it stays right:

- **K, OPc, AMF** and a **device's public key** never change once stored: ``kmed admin`` can
  only add subscribers and devices (a second add of the same IMSI or IMEI is refused).
- **SQN and the KME held** change only through this HSS's own writes, and each committed write
  is applied to the cached entry in commit order (:meth:`ReadCache.written`). An entry is
  created only while its IMSI has no write in flight, so a read of the store can never race a
  commit whose callback is still to come.
- **Pairs** (allowed or not) are cached but checked once per event-loop turn: every change
  to the pairs table moves a counter (triggers, migration 2), and the first pair lookup of a
  turn reads it and empties the pair cache when it moved, so a ``pair deny`` applies to every
  request handled in a later turn. Without a scheduler (``schedule`` None) the counter is read
  on every lookup.
- **Misses** are not cached (a subscriber or device that ``admin`` adds is served at once).
- **Another HSS on the same store** (a standby the CNN fails over to): every HSS commit marks
  the ``hss_writer`` row with its process (migration 3), and once :meth:`ReadCache.follow_writers`
  was called the first subscriber lookup of a turn reads that row; when another process has
  committed since, the cache is emptied (and ``on_foreign`` warms it again). A commit of the
  other process that lands between a check and this HSS's next commit is caught by that commit
  itself, which reads the mark in its write transaction (:meth:`ReadCache.taken_over`); the
  requests already in flight then may carry an SQN below the other's (a resync) or a stale KME
  state (a new KME), never a forged one. Two HSSs *serving*
  at once are still not supported: their SQN ledgers do not see each other.

Changing the store by other means than ``kmed admin`` (an SQL shell) needs a reload (SIGHUP
calls :meth:`ReadCache.clear`) or a restart. One HSS per store: two HSS processes writing the
same store would not see each other's SQNs (they would not with the SQN ledger either).

The cache holds at most ``capacity`` subscribers and as many devices; beyond that the oldest
entry leaves first. Entries hold key material in this process's memory only, as the store's
pages do; nothing here is logged (the dataclasses' reprs redact keys).

**A subscriber entry is one bytes record** (docs/hss.md, "Read cache"), not a
:class:`~kmed.hss.store.Subscriber`: K ‖ OPc ‖ AMF ‖ slot ‖ KME flag (:data:`_RECORD`), keyed
by IMSI, with the SQN in a flat ``array`` at the record's slot and the KME held (rare) in a
dict of its own; each lookup builds a fresh :class:`~kmed.hss.store.Subscriber` from them
(~0.4 µs). Why: memory, ~230 bytes per subscriber instead of ~385 (a Subscriber entry was
five objects: itself, K, OPc, the SQN's int, the key), with nothing for the collector to
track, and an SQN update that frees nothing. It was also meant to cut the cache misses of
AIRs spread over a million subscribers; the rate did not move measurably (session 6).
"""

from __future__ import annotations

import struct
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kmed.hss.store import Device, SetSqn, StoredKme, StoreKme, StoreReader, Subscriber, Write
from kmed.hss.vectors import VectorJob

_K = TypeVar("_K")
_V = TypeVar("_V")

#: A subscriber entry (module doc): K, OPc, AMF, the slot of its SQN in the array, and 1 if a
#: KME is held (then in ``_kmes``).
_RECORD = struct.Struct("<16s16s2sIB")
_SLOT = struct.Struct("<I")


def _slot(rec: bytes) -> int:
    """The SQN slot of a record."""
    return int(_SLOT.unpack_from(rec, 34)[0])


class ReadCache:
    """A :class:`StoreReader` over ``store`` that keeps subscribers and devices (module doc).

    The handlers read through it; the daemon calls :meth:`writing` when it submits a request's
    writes and :meth:`written` when their commit finished (on the event loop, in commit order).
    ``capacity`` 0 turns caching off (every read goes to the store).
    """

    __slots__ = ("_devices", "_free", "_in_flight", "_kmes", "_mark_checked", "_mark_seen", "_on_foreign", "_pairs",
                 "_pairs_seen", "_schedule", "_sqns", "_subs", "_turn_checked", "capacity", "generation", "hits",
                 "instance", "misses", "store")

    def __init__(self, store: StoreReader, capacity: int,
                 schedule: Callable[[Callable[[], None]], object] | None = None) -> None:
        self.store = store
        self.capacity = max(0, capacity)
        # OrderedDict: the oldest entry leaves in O(1) (a dict's first entry is found by
        # scanning past the slots its deletions left: 64 µs per put at 100,000 entries).
        self._subs: OrderedDict[str, bytes] = OrderedDict()  # IMSI -> _RECORD
        self._sqns = array("Q")  # the SQN of each entry, at its record's slot
        self._free: list[int] = []  # the slots of entries that left
        self._kmes: dict[str, StoredKme] = {}  # the KME held, for the entries flagged so
        self._devices: OrderedDict[str, Device] = OrderedDict()
        self._pairs: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._pairs_seen: int | None = None
        self._turn_checked = False
        self._schedule = schedule  # e.g. loop.call_soon: runs its argument at the next turn
        self._in_flight: dict[str, int] = {}
        #: this HSS process (the ``hss_writer`` mark of its commits), once it follows other writers
        self.instance: str | None = None
        self._mark_seen: tuple[str, int] | None = None
        self._mark_checked = True  # until follow_writers
        self._on_foreign: Callable[[], object] | None = None
        #: moved by :meth:`clear`: a read asked for before a clear is not kept after it (:meth:`load`)
        self.generation = 0
        #: statistics (for logs and the benchmark)
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._subs)

    # --- StoreReader ------------------------------------------------------------------

    def subscriber(self, imsi: str, with_kme: bool = True) -> Subscriber | None:
        """The subscriber, with its KME whatever ``with_kme`` says: callers that asked without
        the KME must not look at ``kme``. A hit is a fresh object built from the entry."""
        if not self._mark_checked:
            self._check_writers()
        rec = self._subs.get(imsi)
        if rec is not None:
            self.hits += 1
            k, opc, amf, slot, held = _RECORD.unpack(rec)
            return Subscriber(imsi, k, opc, amf, self._sqns[slot], self._kmes[imsi] if held else None)
        self.misses += 1
        if not self.capacity:
            return self.store.subscriber(imsi, with_kme)
        sub = self.store.subscriber(imsi, True)
        if sub is not None and imsi not in self._in_flight:
            self._keep(sub)
        return sub

    def _keep(self, sub: Subscriber) -> bool:
        """Make ``sub`` (not cached yet) an entry, the oldest leaving when the cache is full;
        False (not kept: served from the store each time) for a row a record cannot hold as it
        is (K or OPc not 16 octets, AMF not 2, SQN not a 48-bit int: only an SQL shell could
        store one, and ``struct`` would pad or cut it silently)."""
        k, opc, amf, sqn = sub.k, sub.opc, sub.amf, sub.sqn
        if not (type(k) is bytes and len(k) == 16 and type(opc) is bytes and len(opc) == 16
                and type(amf) is bytes and len(amf) == 2 and type(sqn) is int and 0 <= sqn < 1 << 48):
            return False
        subs = self._subs
        if len(subs) >= self.capacity:
            self._drop(*subs.popitem(last=False))
        sqns = self._sqns
        if self._free:
            slot = self._free.pop()
            sqns[slot] = sqn
        else:
            slot = len(sqns)
            sqns.append(sqn)
        if sub.kme is not None:
            self._kmes[sub.imsi] = sub.kme
        subs[sub.imsi] = _RECORD.pack(k, opc, amf, slot, sub.kme is not None)
        return True

    def _drop(self, imsi: str, rec: bytes) -> None:
        """The entry ``rec`` of ``imsi`` has left ``_subs``: free its slot and its KME."""
        self._free.append(_slot(rec))
        self._kmes.pop(imsi, None)

    def device(self, imei: str) -> Device | None:
        dev = self._devices.get(imei)
        if dev is None:
            dev = self.store.device(imei)
            if dev is not None and self.capacity:
                _put(self._devices, imei, dev, self.capacity)
        return dev

    def pair_allowed(self, imsi: str, imei: str) -> bool:
        if not self.capacity:
            return self.store.pair_allowed(imsi, imei)
        if not self._turn_checked:
            seen = self.store.pairs_version()
            if seen != self._pairs_seen:
                self._pairs.clear()
                self._pairs_seen = seen
            if self._schedule is not None:
                self._turn_checked = True
                self._schedule(self._next_turn)
        key = (imsi, imei)
        allowed = self._pairs.get(key)
        if allowed is None:
            allowed = self.store.pair_allowed(imsi, imei)
            _put(self._pairs, key, allowed, self.capacity)
        return allowed

    def pairs_version(self) -> int:
        return self.store.pairs_version()

    def writer_mark(self) -> tuple[str, int]:
        return self.store.writer_mark()

    # --- another HSS on the same store ----------------------------------------------------

    def follow_writers(self, instance: str, on_foreign: Callable[[], object] | None = None) -> None:
        """From now on, empty the cache (then call ``on_foreign``) when a process other than
        ``instance`` has committed to the store since the last check: checked at the first
        subscriber lookup of each turn (module doc). The store's mark now is the baseline."""
        self.instance = instance
        self._on_foreign = on_foreign
        self._mark_seen = self.store.writer_mark()
        self._mark_checked = False

    def _check_writers(self) -> None:
        mark = self.store.writer_mark()
        if self._schedule is not None:
            self._mark_checked = True
            self._schedule(self._next_mark_turn)
        if mark == self._mark_seen:
            return
        self._mark_seen = mark
        if mark[0] != self.instance:  # another HSS wrote (this one would mark its own name)
            self._foreign()

    def taken_over(self, mark: tuple[str, int]) -> None:
        """A commit of this HSS took the store over from ``mark``, the last commit of another
        process: unless that is the mark already seen (the state warmed from, or a change the
        turn check has handled), that process committed unseen (e.g. just before this HSS's
        own commit, between two checks): empty the cache as :meth:`_check_writers` would."""
        seen, self._mark_seen = self._mark_seen, (self.instance or "", mark[1] + 1)
        if self.instance is not None and mark != seen:
            self._foreign()

    def _foreign(self) -> None:
        """Another HSS process has committed: forget everything, then tell the daemon."""
        self.clear()
        if self._on_foreign is not None:
            self._on_foreign()

    def _next_mark_turn(self) -> None:
        self._mark_checked = False

    # --- subscribers read elsewhere (kmed.hss.prefetch) ---------------------------------

    def wants(self, imsi: str) -> bool:
        """Whether a subscriber read for ``imsi`` would miss and its result could be kept."""
        if not self._mark_checked:
            self._check_writers()
        return bool(self.capacity) and imsi not in self._subs and imsi not in self._in_flight

    def load(self, sub: Subscriber, generation: int) -> bool:
        """Keep ``sub``, read by another connection that had committed every write of its IMSI
        when the read was asked for (the store writer child, asked only while :meth:`wants`;
        kmed.hss.prefetch) at ``generation``: kept only if its IMSI has no write in flight now
        (a later write would make it stale), it is not cached already, and the cache was not
        cleared since the read was asked for (SIGHUP after an edit of the store by other means:
        the row may predate the edit). Returns whether it was kept."""
        imsi = sub.imsi
        if self.capacity and generation == self.generation and imsi not in self._in_flight \
                and imsi not in self._subs:
            return self._keep(sub)
        return False

    def _next_turn(self) -> None:
        self._turn_checked = False

    # --- the daemon's commit hooks ------------------------------------------------------

    def writing(self, writes: Sequence[Write | VectorJob]) -> None:
        """``writes`` were submitted for commit: their IMSIs are in flight until :meth:`written`."""
        in_flight = self._in_flight
        for imsi in {w.imsi for w in writes}:
            in_flight[imsi] = in_flight.get(imsi, 0) + 1

    def written(self, writes: Sequence[Write | VectorJob], applied: list[Any] | None) -> None:
        """The commit of ``writes`` finished: ``applied`` has one flag per write, or is None when
        the commit failed (the entries of its IMSIs are dropped: the store is the truth)."""
        subs = self._subs
        for i, w in enumerate(writes):
            rec = subs.get(w.imsi)
            if rec is None:
                continue
            if applied is None:
                del subs[w.imsi]
                self._drop(w.imsi, rec)
            elif type(w) is SetSqn:
                self._sqns[_slot(rec)] = w.sqn
            elif type(w) is StoreKme and applied[i]:  # stored (not refused for a newer KME held)
                self._kmes[w.imsi] = StoredKme(w.kme, w.imei, w.issued_at, w.stored_at)
                subs[w.imsi] = rec[:-1] + b"\x01"  # flagged (it keeps its place in the order)
        in_flight = self._in_flight
        for imsi in {w.imsi for w in writes}:
            left = in_flight.get(imsi, 0) - 1
            if left > 0:
                in_flight[imsi] = left
            else:
                in_flight.pop(imsi, None)

    def clear(self) -> None:
        """Forget every entry (SIGHUP): the next reads go to the store, and reads ahead still
        in flight are not kept."""
        self.generation += 1
        self._subs.clear()
        self._sqns = array("Q")
        self._free.clear()
        self._kmes.clear()
        self._devices.clear()
        self._pairs.clear()
        self._pairs_seen = None


def _put(table: OrderedDict[_K, _V], key: _K, value: _V, capacity: int) -> None:
    if len(table) >= capacity:
        table.popitem(last=False)  # the oldest entry
    table[key] = value

"""The HSS store interface: what the S6a handlers read, the writes they ask for, and the
admin operations. One implementation today (:mod:`kmed.hss.sqlite_store`); a PostgreSQL one
implements the same :class:`Store` protocol.

Records hold secrets (K, OPc, KME): their ``repr`` never shows them. They are plain slotted
dataclasses (not frozen: construction is on the hot path); treat them as read-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class StoreError(Exception):
    """A store operation failed (message names what, never a secret)."""


class Duplicate(StoreError):
    """The record already exists."""


class NotFound(StoreError):
    """A record the operation needs does not exist."""


class WriteRejected(StoreError):
    """:meth:`Store.apply` refused the writes themselves (a constraint), as opposed to the
    store being unavailable (locked, I/O error), which raises the driver's own error."""


@dataclass(slots=True)
class StoredKme:
    """The KME held for an IMSI (seed step 13): issued for ``imei`` at ``issued_at`` (µs)."""

    kme: bytes
    imei: str
    issued_at: int
    stored_at: int

    def __repr__(self) -> str:
        return f"StoredKme(imei={self.imei}, issued_at={self.issued_at}, <kme redacted>)"


@dataclass(slots=True)
class Subscriber:
    """A subscription: K, OPc, AMF, the highest SQN handed out, and the KME held (if any)."""

    imsi: str
    k: bytes
    opc: bytes
    amf: bytes
    sqn: int
    kme: StoredKme | None = None

    def __repr__(self) -> str:
        return f"Subscriber(imsi={self.imsi}, amf={self.amf.hex()}, sqn={self.sqn}, <keys redacted>)"


@dataclass(slots=True)
class Device:
    """A device: its IMEI, ECIES profile ("A" X25519, "B" P-256) and raw public key."""

    imei: str
    profile: str
    public_key: bytes


# --- writes: queued by the handlers, committed in groups before the answer goes out --------


@dataclass(slots=True)
class SetSqn:
    """Persist the highest SQN handed out (reserved before the vectors are answered)."""

    imsi: str
    sqn: int


@dataclass(slots=True)
class StoreKme:
    """Store a KME for an IMSI if ``issued_at`` is newer than the one held (seed step 13).

    Applying it reports whether it was stored; the store writes the audit row itself
    (``stored``, or ``refused`` when a newer KME got there first).
    """

    imsi: str
    imei: str
    kme: bytes
    issued_at: int
    stored_at: int
    fingerprint: str
    peer: str

    def __repr__(self) -> str:
        return f"StoreKme(imsi={self.imsi}, imei={self.imei}, issued_at={self.issued_at}, <kme redacted>)"


@dataclass(slots=True)
class AuditKme:
    """One row of the KME audit trail: ``event`` is issued, stored or refused. No secrets:
    the KME appears as its fingerprint only."""

    at: int
    event: str
    imsi: str
    imei: str | None
    fingerprint: str | None
    issued_at: int | None
    reason: str | None
    peer: str


@dataclass(slots=True)
class SetLocation:
    """The serving node and terminal seen in the last ULR (TS 29.272 §5.2.1.1.3)."""

    imsi: str
    origin_host: str
    origin_realm: str
    visited_plmn: bytes
    rat_type: int
    imei: str | None
    software_version: str | None
    at: int


Write = SetSqn | StoreKme | AuditKme | SetLocation


class StoreReader(Protocol):
    """What the S6a handlers read, per request (admin writes are seen at once)."""

    def subscriber(self, imsi: str, with_kme: bool = True) -> Subscriber | None:
        """The subscription (with the KME held unless ``with_kme`` is False: then ``kme`` may
        be None whatever is stored, and callers must not look at it), or None."""
        ...

    def device(self, imei: str) -> Device | None:
        """The device, or None."""
        ...

    def pair_allowed(self, imsi: str, imei: str) -> bool:
        """Whether (IMSI, IMEI) is an allowed pair (seed step 0)."""
        ...

    def pairs_version(self) -> int:
        """A number that changes whenever an allowed pair is added or removed (by anyone)."""
        ...

    def writer_mark(self) -> tuple[str, int]:
        """The HSS process that committed last (its instance name) and a count of HSS commits."""
        ...


class Store(StoreReader, Protocol):
    """The whole store: reads, transactional writes, admin operations."""

    #: the HSS process whose commits :meth:`apply` marks (None: not an HSS writer)
    instance: str | None
    #: after :meth:`apply`: the mark of another HSS process its commit took the store over from
    taken_over: tuple[str, int] | None

    def apply(self, writes: Sequence[Write]) -> list[bool]:
        """Apply ``writes`` in one transaction and commit it durably. Returns one flag per
        write: True when it took effect (a :class:`StoreKme` can lose to a newer KME)."""
        ...

    def subscribers_after(self, imsi: str, limit: int) -> list[Subscriber]:
        """Up to ``limit`` subscriptions (KME held included) with IMSIs above ``imsi`` (the empty
        string for the first), in IMSI order: the read cache's warm-up pages through them."""
        ...

    def add_subscriber(self, imsi: str, k: bytes, opc: bytes, amf: bytes, sqn: int) -> None: ...

    def add_device(self, imei: str, profile: str, public_key: bytes) -> None: ...

    def allow_pair(self, imsi: str, imei: str) -> bool:
        """True when newly allowed, False when it already was."""
        ...

    def deny_pair(self, imsi: str, imei: str) -> bool:
        """True when it was allowed, False when it was not."""
        ...

    def provision(
        self,
        subscribers: Iterable[tuple[str, bytes, bytes, bytes, int]],
        devices: Iterable[tuple[str, str, bytes]],
        pairs: Iterable[tuple[str, str]],
    ) -> None:
        """Bulk insert in one transaction; :class:`Duplicate` (and nothing inserted) on any clash."""
        ...

    def show(self, imsi: str) -> dict[str, Any] | None:
        """What ``kmed admin show`` prints (secrets as fingerprints only)."""
        ...

    def close(self) -> None: ...

"""UE contexts of the CNN: procedures by link UE id, registrations by M-TMSI and IMSI.

Two kinds of entry share one bound (``cnn.max_ue_contexts``):

- a running procedure, keyed by its *link key* (connection number and the frame's UE id,
  docs/ue-link.md), created by an Attach/TAU Request and dropped when it ends or the UE's
  link is released;
- a registration (:class:`Registration`) kept after a successful attach: IMSI, the GUTI's
  M-TMSI and the IMEI, so that a later TAU or attach with that GUTI maps back to the IMSI
  (TS 23.401 §5.3.2.1, TS 24.301 §5.5.1.2.2). Registrations are evicted oldest first when the
  table is full; procedures are never evicted (a new one is refused instead: EMM #22).

GUTI allocation (TS 23.003 §2.8): GUMMEI = PLMN ‖ MME group id ‖ MME code from the
configuration; M-TMSI random 32 bits, unique among the registrations, never 0xFFFFFFFF (all
ones marks an unused TMSI, TS 23.003 §2.4).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from kmed.records import value_record

__all__ = ["ContextTable", "Guti", "Registration", "TableFull", "link_key", "split_link_key"]

P = TypeVar("P")

_TMSI_UNUSED = 0xFFFFFFFF


def link_key(connection: int, ue_id: int) -> int:
    """One int naming a UE on a link: connection number (any size) and the 32-bit frame UE id."""
    return (connection << 32) | (ue_id & 0xFFFFFFFF)


def split_link_key(key: int) -> tuple[int, int]:
    """(connection, ue_id) of a :func:`link_key`."""
    return key >> 32, key & 0xFFFFFFFF


@value_record
class Guti:
    """GUTI = MCC ‖ MNC ‖ MME group id (16 bits) ‖ MME code (8 bits) ‖ M-TMSI (32 bits), TS 23.003 §2.8.1."""

    mcc: str
    mnc: str
    mme_group_id: int
    mme_code: int
    m_tmsi: int


@dataclass(slots=True)
class Registration:
    """What the CNN keeps of a registered UE: enough to map its GUTI back to the IMSI."""

    imsi: str
    m_tmsi: int
    imei: str | None = None
    ue_capability: bytes | None = None  # replayed in a Security Mode Command when a TAU omits it


class TableFull(Exception):
    """No room for another procedure (every entry is a running procedure)."""


class ContextTable(Generic[P]):
    """Procedures by link key and registrations by M-TMSI / IMSI, bounded together.

    ``P`` is the procedure type (kept generic so this module does not depend on it).
    """

    __slots__ = ("_by_imsi", "_by_tmsi", "_procedures", "_rng", "capacity", "mcc", "mme_code", "mme_group_id", "mnc")

    def __init__(
        self, capacity: int, mcc: str, mnc: str, mme_group_id: int, mme_code: int, rng: random.Random | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.mcc = mcc
        self.mnc = mnc
        self.mme_group_id = mme_group_id
        self.mme_code = mme_code
        self._rng = rng or random.SystemRandom()
        self._procedures: dict[int, P] = {}
        self._by_tmsi: dict[int, Registration] = {}  # insertion order = age (oldest first)
        self._by_imsi: dict[str, Registration] = {}

    # --- sizes ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._procedures) + len(self._by_tmsi)

    @property
    def procedures(self) -> int:
        return len(self._procedures)

    @property
    def registrations(self) -> int:
        return len(self._by_tmsi)

    # --- procedures -------------------------------------------------------------------------
    def procedure(self, key: int) -> P | None:
        return self._procedures.get(key)

    def add_procedure(self, key: int, proc: P) -> None:
        """Add (or replace) the procedure of ``key``; evict the oldest registration to make
        room. Raises :class:`TableFull` when every entry is a running procedure."""
        if key not in self._procedures and len(self) >= self.capacity and not self._evict_oldest():
            raise TableFull(f"{self.capacity} UE contexts in use")
        self._procedures[key] = proc

    def remove_procedure(self, key: int) -> P | None:
        return self._procedures.pop(key, None)

    def procedure_keys(self) -> list[int]:
        return list(self._procedures)

    def iter_procedures(self) -> Iterator[tuple[int, P]]:
        return iter(list(self._procedures.items()))

    # --- registrations ----------------------------------------------------------------------
    def by_tmsi(self, m_tmsi: int) -> Registration | None:
        return self._by_tmsi.get(m_tmsi)

    def by_imsi(self, imsi: str) -> Registration | None:
        return self._by_imsi.get(imsi)

    def imsi_for_guti(self, guti: Guti) -> str | None:
        """The IMSI registered under ``guti`` if this CNN allocated it, else None."""
        if (
            guti.mme_group_id != self.mme_group_id
            or guti.mme_code != self.mme_code
            or guti.mcc != self.mcc
            or guti.mnc != self.mnc
        ):
            return None
        reg = self._by_tmsi.get(guti.m_tmsi)
        return reg.imsi if reg is not None else None

    def allocate_tmsi(self) -> int:
        """A fresh M-TMSI not in use (bounded tries; the table is far from 2**32 entries)."""
        for _ in range(64):
            tmsi = self._rng.getrandbits(32)
            if tmsi != _TMSI_UNUSED and tmsi not in self._by_tmsi:
                return tmsi
        raise RuntimeError("could not find a free M-TMSI")  # pragma: no cover - 2**32 space

    def register(self, imsi: str, m_tmsi: int, imei: str | None, ue_capability: bytes | None = None) -> Registration:
        """Record ``imsi`` under ``m_tmsi`` (replacing its previous registration); evict the
        oldest registration when the table is full."""
        self.deregister(imsi)
        while len(self) >= self.capacity and self._evict_oldest():
            pass
        reg = Registration(imsi, m_tmsi, imei, ue_capability)
        self._by_tmsi[m_tmsi] = reg
        self._by_imsi[imsi] = reg
        return reg

    def deregister(self, imsi: str) -> None:
        old = self._by_imsi.pop(imsi, None)
        if old is not None:
            self._by_tmsi.pop(old.m_tmsi, None)

    def guti(self, m_tmsi: int) -> Guti:
        return Guti(self.mcc, self.mnc, self.mme_group_id, self.mme_code, m_tmsi)

    def _evict_oldest(self) -> bool:
        if not self._by_tmsi:
            return False
        tmsi = next(iter(self._by_tmsi))
        reg = self._by_tmsi.pop(tmsi)
        if self._by_imsi.get(reg.imsi) is reg:
            del self._by_imsi[reg.imsi]
        return True

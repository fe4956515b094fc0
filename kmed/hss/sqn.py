"""HSS sequence numbers: SQN = SEQ ‖ IND (TS 33.102 Annex C.1.1, C.3.2).

The HSS keeps one 48-bit value per subscriber, ``sqn``: the highest SQN it has handed out
(SEQ_HE in its top ``48 - ind_bits`` bits, the last IND used in the low ``ind_bits`` bits).
Each new vector takes SEQ = SEQ_HE + 1 and the next IND in cyclic order (C.3.2: the index
values are allocated cyclically, so consecutive vectors land in different USIM array
slots), so the SQNs a subscriber receives are strictly increasing.

After a verified resynchronisation (TS 33.102 §6.3.5) SEQ_HE is reset to SEQ_MS, the SEQ part
of the SQN_MS the USIM reported; the IND counter carries on. The next vector then has
SEQ_MS + 1, which the USIM accepts whichever IND slot it falls in (C.2.2).
"""

from __future__ import annotations

from dataclasses import dataclass

SQN_BITS = 48
SQN_MAX = (1 << SQN_BITS) - 1


class SqnExhausted(Exception):
    """SEQ would wrap past 2^(48 - ind_bits) - 1: no fresh SQN can be allocated."""


@dataclass(frozen=True, slots=True)
class SqnScheme:
    """SQN layout for one HSS: ``ind_bits`` low bits of IND (TS 33.102 C.3.2; 5 is typical)."""

    ind_bits: int = 5

    def __post_init__(self) -> None:
        if not 0 <= self.ind_bits <= 10:
            raise ValueError(f"ind_bits must be 0 to 10, got {self.ind_bits}")

    @property
    def ind_mask(self) -> int:
        return (1 << self.ind_bits) - 1

    def split(self, sqn: int) -> tuple[int, int]:
        """(SEQ, IND) of a 48-bit SQN."""
        return sqn >> self.ind_bits, sqn & self.ind_mask

    def join(self, seq: int, ind: int) -> int:
        """SEQ ‖ IND as a 48-bit SQN; raises :class:`SqnExhausted` when SEQ does not fit."""
        if seq > SQN_MAX >> self.ind_bits:
            raise SqnExhausted("SEQ exhausted: the subscriber's SQN space is used up")
        return (seq << self.ind_bits) | (ind & self.ind_mask)

    def next(self, sqn_he: int) -> int:
        """The SQN of the next vector after ``sqn_he`` (the highest handed out)."""
        seq, ind = self.split(sqn_he)
        return self.join(seq + 1, ind + 1)

    def allocate(self, sqn_he: int, count: int) -> list[int]:
        """``count`` consecutive fresh SQNs after ``sqn_he``, strictly increasing."""
        out: list[int] = []
        for _ in range(count):
            sqn_he = self.next(sqn_he)
            out.append(sqn_he)
        return out

    def resync(self, sqn_he: int, sqn_ms: int) -> int:
        """The new SQN_HE after a verified resynchronisation (TS 33.102 §6.3.5 step 5):
        SEQ_HE := SEQ_MS, IND counter kept."""
        seq_ms, _ = self.split(sqn_ms)
        _, ind = self.split(sqn_he)
        return self.join(seq_ms, ind)


class SqnLedger:
    """SQNs reserved but not yet committed, per IMSI (the HSS's in-flight overlay).

    A request reads the subscriber's committed ``sqn`` from the store, but an earlier request
    for the same IMSI may have reserved higher SQNs whose commit is still in flight. The
    ledger holds the latest reservation until its commit settles, so two concurrent AIRs
    never allocate the same SQN. Entries live only while a commit is pending: the ledger's
    size is bounded by the requests in flight, not by the subscriber count.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[str, list[int]] = {}

    def current(self, imsi: str, stored: int) -> int:
        """SQN_HE for ``imsi``: the latest reservation in flight, else the stored value."""
        entry = self._pending.get(imsi)
        return stored if entry is None else entry[0]

    def reserve(self, imsi: str, sqn: int) -> None:
        """Record ``sqn`` as SQN_HE for ``imsi`` until :meth:`settle`."""
        entry = self._pending.get(imsi)
        if entry is None:
            self._pending[imsi] = [sqn, 1]
        else:
            entry[0] = sqn
            entry[1] += 1

    def settle(self, imsi: str) -> None:
        """One reservation's commit finished (or failed): forget it once none is in flight."""
        entry = self._pending.get(imsi)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del self._pending[imsi]

    def __len__(self) -> int:
        return len(self._pending)

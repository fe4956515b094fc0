"""The USIM: EPS AKA on the UE side with SQN freshness (TS 33.102 §6.3.3 and Annex C).

:meth:`Usim.authenticate` runs, in this order (TS 33.102 §6.3.3, TS 33.401 §6.1.1):

1. MAC-A (``aka.check_autn``): wrong → MAC failure, EMM cause #20; nothing else is looked at;
2. the AMF separation bit (TS 33.401 §6.1.1: bit 0 of the AMF is 1 in an E-UTRAN vector):
   clear → "non-EPS authentication unacceptable", EMM cause #26. It is checked after MAC-A so
   that only an authentic AUTN can elicit #26;
3. SQN freshness with the array scheme of Annex C.2.2 and the wrap-around limit Δ of C.2.1:
   SQN = SEQ ‖ IND (IND the ``ind_bits`` low bits, C.1.2); SQN is accepted when
   SEQ > SEQ_MS(IND) and SEQ − SEQ_MS ≤ Δ, SEQ_MS being the highest SEQ accepted so far.
   Out of range → synchronisation failure, EMM cause #21 with AUTS = ``aka.make_auts`` over
   SQN_MS, the highest SQN accepted so far (§6.3.3, §6.3.5). The age limit L of C.2.3 is
   optional and not applied;
4. only then the state changes (SEQ_MS(IND), SQN_MS), is saved (before RES leaves the UE, so
   that a crash cannot make a used AUTN acceptable again), and RES, CK, IK are returned.

The USIM also keeps the EPS location information (the GUTI and last visited TAI, as the
EF_EPSLOCI of TS 31.102 does), so that a USIM moved to another ME attaches with its GUTI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmed.crypto import aka
from kmed.nas.causes import EmmCause
from kmed.ue.state import StateError, hex_field, read_state, write_atomic

__all__ = [
    "DEFAULT_DELTA",
    "DEFAULT_IND_BITS",
    "AkaFailure",
    "AkaResult",
    "AkaSuccess",
    "Usim",
    "UsimState",
    "load_usim_state",
    "save_usim_state",
]

#: TS 33.102 C.3.2 / C.1.2: default IND length (32 array slots); the HSS uses the same default.
DEFAULT_IND_BITS = 5
#: TS 33.102 C.2.1: the wrap-around limit Δ on SEQ − SEQ_MS (a suggested value of 2^28).
DEFAULT_DELTA = 1 << 28
_SQN_MAX = (1 << 48) - 1
_STATE_VERSION = 1


@dataclass(slots=True)
class UsimState:
    """What the USIM keeps between power cycles: the SQN array and the EPS location info."""

    seq_ms: list[int]
    """SEQ_MS(i) for each IND slot i (TS 33.102 C.2.2); length 2^ind_bits."""
    sqn_ms: int = 0
    """The highest SQN (SEQ ‖ IND) accepted so far: the SQN_MS of an AUTS (§6.3.3)."""
    guti: bytes | None = None
    """The GUTI as its EPS mobile identity value (TS 24.301 §9.9.3.12, after the length octet)."""
    last_tai: bytes | None = None
    """The last visited registered TAI (TS 24.301 §9.9.3.32, 5 octets)."""

    @classmethod
    def fresh(cls, ind_bits: int) -> UsimState:
        return cls(seq_ms=[0] * (1 << ind_bits))

    @property
    def ind_bits(self) -> int:
        return len(self.seq_ms).bit_length() - 1


@dataclass(frozen=True, slots=True)
class AkaSuccess:
    """The authentication was accepted: RES for the Authentication Response, CK/IK for KASME."""

    res: bytes
    ck: bytes
    ik: bytes
    sqn: int

    def __repr__(self) -> str:
        return f"AkaSuccess(sqn={self.sqn}, <keys redacted>)"


@dataclass(frozen=True, slots=True)
class AkaFailure:
    """The authentication was refused: EMM cause #20, #21 (with AUTS) or #26 (TS 24.301 §5.4.2.6)."""

    cause: EmmCause
    auts: bytes | None = None


AkaResult = AkaSuccess | AkaFailure


class Usim:
    """A USIM with MILENAGE (K, OPc), its SQN state and EPS location information.

    ``save`` is called with the state after each change, before the change is acted on
    (``None``: kept in memory only, as the load harness does).
    """

    __slots__ = ("_k", "_opc", "delta", "imsi", "save", "state")

    def __init__(
        self,
        imsi: str,
        k: bytes,
        opc: bytes,
        *,
        state: UsimState | None = None,
        ind_bits: int = DEFAULT_IND_BITS,
        delta: int = DEFAULT_DELTA,
        save: Callable[[UsimState], None] | None = None,
    ) -> None:
        if not imsi.isdigit() or not 6 <= len(imsi) <= 15:
            raise ValueError("imsi must be 6 to 15 decimal digits")
        if len(k) != 16 or len(opc) != 16:
            raise ValueError("k and opc must be 16 octets each")
        if not 0 <= ind_bits <= 10:
            raise ValueError("ind_bits must be 0 to 10")
        self.imsi = imsi
        self._k = bytes(k)
        self._opc = bytes(opc)
        self.state = state if state is not None else UsimState.fresh(ind_bits)
        if self.state.ind_bits != ind_bits:
            raise ValueError(f"USIM state has {self.state.ind_bits} IND bits, the configuration {ind_bits}")
        self.delta = delta
        self.save = save

    def __repr__(self) -> str:
        return f"Usim(imsi={self.imsi}, <keys redacted>)"

    @property
    def ind_bits(self) -> int:
        return self.state.ind_bits

    def sqn_fresh(self, sqn: int) -> bool:
        """TS 33.102 C.2.1 and C.2.2: SEQ > SEQ_MS(IND) and SEQ − SEQ_MS ≤ Δ."""
        bits = self.state.ind_bits
        seq, ind = sqn >> bits, sqn & ((1 << bits) - 1)
        highest_seq = self.state.sqn_ms >> bits
        return seq > self.state.seq_ms[ind] and seq - highest_seq <= self.delta

    def authenticate(self, rand: bytes, autn: bytes) -> AkaResult:
        """Run the USIM authentication on RAND and AUTN (order in the module docstring)."""
        try:
            r = aka.check_autn(self._k, self._opc, rand, autn)
        except aka.MacFailure:
            return AkaFailure(EmmCause.MAC_FAILURE)
        if not int.from_bytes(r.amf, "big") & aka.AMF_SEPARATION_BIT:
            return AkaFailure(EmmCause.NON_EPS_AUTHENTICATION_UNACCEPTABLE)
        if not self.sqn_fresh(r.sqn):
            auts = aka.make_auts(self._k, self._opc, rand, self.state.sqn_ms)
            return AkaFailure(EmmCause.SYNCH_FAILURE, auts)
        bits = self.state.ind_bits
        self.state.seq_ms[r.sqn & ((1 << bits) - 1)] = r.sqn >> bits
        self.state.sqn_ms = max(self.state.sqn_ms, r.sqn)
        self._changed()
        return AkaSuccess(res=r.res, ck=r.ck, ik=r.ik, sqn=r.sqn)

    def set_location(self, guti: bytes | None, last_tai: bytes | None = None) -> None:
        """Store the GUTI (and TAI) received in Attach/TAU Accept (TS 24.301 §5.5.1.2.4)."""
        if guti == self.state.guti and (last_tai is None or last_tai == self.state.last_tai):
            return
        self.state.guti = guti
        if last_tai is not None:
            self.state.last_tai = last_tai
        self._changed()

    def forget_location(self) -> None:
        """Delete the GUTI and last visited TAI (TS 24.301 §5.5.1.2.5: e.g. causes #3, #6, #7, #8)."""
        if self.state.guti is None and self.state.last_tai is None:
            return
        self.state.guti = None
        self.state.last_tai = None
        self._changed()

    def _changed(self) -> None:
        if self.save is not None:
            self.save(self.state)


# --- persistence (usim/state.json) -----------------------------------------------------------


def _state_to_json(imsi: str, state: UsimState) -> dict[str, Any]:
    return {
        "version": _STATE_VERSION,
        "imsi": imsi,
        "ind_bits": state.ind_bits,
        "seq_ms": list(state.seq_ms),
        "sqn_ms": state.sqn_ms,
        "guti": state.guti.hex() if state.guti is not None else None,
        "last_tai": state.last_tai.hex() if state.last_tai is not None else None,
    }


def save_usim_state(path: Path, imsi: str, state: UsimState) -> None:
    """Write the USIM state atomically (``kmed.ue.state.write_atomic``)."""
    write_atomic(path, _state_to_json(imsi, state))


def load_usim_state(path: Path, imsi: str, ind_bits: int) -> UsimState:
    """The USIM state in ``path`` (a fresh one when the file does not exist).

    :class:`StateError` when the file is malformed, belongs to another IMSI, or was written
    with another IND length (changing ``ind_bits`` needs a fresh USIM state: the array
    would no longer line up with the HSS's SQN = SEQ ‖ IND).
    """
    obj = read_state(path)
    if obj is None:
        return UsimState.fresh(ind_bits)
    if obj.get("imsi") != imsi:
        raise StateError(f"{path}: USIM state belongs to another IMSI ({obj.get('imsi')!r}, configured {imsi})")
    if obj.get("ind_bits") != ind_bits:
        raise StateError(
            f"{path}: USIM state has ind_bits {obj.get('ind_bits')!r}, configured {ind_bits}; "
            "remove the usim/ state to start afresh"
        )
    seq_ms = obj.get("seq_ms")
    sqn_ms = obj.get("sqn_ms")
    if (
        not isinstance(seq_ms, list)
        or len(seq_ms) != 1 << ind_bits
        or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= _SQN_MAX for x in seq_ms)
    ):
        raise StateError(f"{path}: field 'seq_ms' must be a list of {1 << ind_bits} SEQ values")
    if not isinstance(sqn_ms, int) or isinstance(sqn_ms, bool) or not 0 <= sqn_ms <= _SQN_MAX:
        raise StateError(f"{path}: field 'sqn_ms' must be a 48-bit integer")
    return UsimState(
        seq_ms=list(seq_ms),
        sqn_ms=sqn_ms,
        guti=hex_field(path, obj, "guti", None),
        last_tai=hex_field(path, obj, "last_tai", 5),
    )

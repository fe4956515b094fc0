"""The simulated UEs: the population that ``kmed admin provision-range`` created, rebuilt.

``provision-range`` gives subscriber i the IMSI ``imsi_at(imsi_first, i)`` with the shared K and
OPc, device i the IMEI ``imei_at(imei_first, i)`` with the key pair
``derive_device_key(seed, IMEI, profile)``, and allows the pair (IMSI_i, IMEI_i) only
(kmed.crypto.devkeys). The harness derives the same values from the same ``[subscribers]``
parameters, so nothing is exchanged with the HSS but the parameters.

Each :class:`SimUe` is a :class:`~kmed.ue.usim.Usim` and a :class:`~kmed.ue.me.Me` of
:mod:`kmed.ue` (the same UE implementation as ``kmed ue``), kept in memory. A device key costs
about 50 µs to derive, so it is derived when the UE is first used, in the worker that owns it.

The ``provision`` scenario needs a *new ME* for a USIM. Only (IMSI_i, IMEI_i) is allowed, so the
only other ME the HSS would provision for IMSI_i is IMEI_i's ME with no KME: a factory-reset
device (:meth:`SimUe.factory_reset_me`). The HSS then receives no KME_Check and provisions.

State can be saved and restored (:func:`save_states`, :func:`load_states`) so that a later run
starts with the USIMs' SQN state, GUTIs and the MEs' KMEs of an earlier one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmed.crypto import devkeys, kme
from kmed.ue.me import Me, MeState
from kmed.ue.state import StateError, read_state, write_atomic
from kmed.ue.usim import DEFAULT_IND_BITS, Usim, UsimState

__all__ = ["Population", "PopulationSpec", "SimUe", "load_states", "save_states"]


@dataclass(frozen=True)
class PopulationSpec:
    """The ``[subscribers]`` parameters (the same ones given to ``kmed admin provision-range``)."""

    count: int
    imsi_first: str
    imei_first: str
    k: bytes
    opc: bytes
    device_key_seed: bytes
    profile: str = "A"
    ind_bits: int = DEFAULT_IND_BITS
    software_version: str = "01"

    def __repr__(self) -> str:  # K, OPc and the seed are secrets
        return (f"PopulationSpec(count={self.count}, imsi_first={self.imsi_first}, "
                f"imei_first={self.imei_first}, profile={self.profile}, <keys redacted>)")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Mapping[str, Any]]) -> PopulationSpec:
        """From a validated load configuration (``kmed.config.LOAD_SCHEMA``)."""
        s = cfg["subscribers"]
        return cls(
            count=int(s["count"]), imsi_first=s["imsi_first"], imei_first=s["imei_first"],
            k=s["k"], opc=s["opc"], device_key_seed=s["device_key_seed"], profile=s["profile"],
            ind_bits=int(s.get("ind_bits") or DEFAULT_IND_BITS),
        )

    def imsi(self, i: int) -> str:
        return devkeys.imsi_at(self.imsi_first, i)

    def imei(self, i: int) -> str:
        return devkeys.imei_at(self.imei_first, i)

    def check(self) -> None:
        """ValueError when the ranges overflow their digits for ``count`` UEs."""
        self.imsi(self.count - 1)
        self.imei(self.count - 1)


class SimUe:
    """One simulated UE: index in the range, USIM and ME (from :mod:`kmed.ue`)."""

    __slots__ = ("busy", "index", "me", "spec", "usim")

    def __init__(self, spec: PopulationSpec, index: int) -> None:
        self.spec = spec
        self.index = index
        imei = spec.imei(index)
        self.usim = Usim(spec.imsi(index), spec.k, spec.opc, ind_bits=spec.ind_bits)
        private, _ = devkeys.derive_device_key(spec.device_key_seed, imei, spec.profile)
        self.me = Me(imei, spec.profile, private, svn=spec.software_version)
        self.busy = False

    def __repr__(self) -> str:
        return f"SimUe({self.index}, imsi={self.usim.imsi}, imei={self.me.imei})"

    @property
    def holds_kme(self) -> bool:
        """The ME holds a KME provisioned for this USIM (its attaches can match)."""
        return self.me.kme_for_check(self.usim.imsi) is not None

    @property
    def has_guti(self) -> bool:
        return self.usim.state.guti is not None

    def factory_reset_me(self) -> None:
        """Give the USIM a *new ME*: the same device (the only one allowed with this IMSI) with
        its KME state erased, as after a factory reset (:meth:`Me.factory_reset`)."""
        self.me.factory_reset()

    def state_dict(self) -> dict[str, Any]:
        """USIM and ME state as JSON values (holds the KME: written only to 0600 files)."""
        u, m = self.usim.state, self.me.state
        return {
            "seq_ms": list(u.seq_ms), "sqn_ms": u.sqn_ms,
            "guti": u.guti.hex() if u.guti is not None else None,
            "last_tai": u.last_tai.hex() if u.last_tai is not None else None,
            "kme": m.current_kme.hex() if m.current_kme is not None else None,
            "kme_imsi": m.kme_imsi,
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Set the state saved by :meth:`state_dict` (ValueError when malformed)."""
        seq_ms = data["seq_ms"]
        if not isinstance(seq_ms, list) or len(seq_ms) != 1 << self.spec.ind_bits:
            raise ValueError("seq_ms does not match ind_bits")
        guti, tai, key = data.get("guti"), data.get("last_tai"), data.get("kme")
        self.usim.state = UsimState(
            seq_ms=[int(x) for x in seq_ms], sqn_ms=int(data["sqn_ms"]),
            guti=bytes.fromhex(guti) if guti else None, last_tai=bytes.fromhex(tai) if tai else None,
        )
        current = bytes.fromhex(key) if key else None
        if current is not None and len(current) != kme.KME_LEN:
            raise ValueError("kme has the wrong length")
        self.me.state = MeState(current_kme=current, kme_imsi=data.get("kme_imsi") if current else None)


class Population:
    """The UEs with the given indices of a :class:`PopulationSpec` range, created on first use."""

    __slots__ = ("_states", "_ues", "indices", "spec")

    def __init__(
        self, spec: PopulationSpec, indices: Iterable[int], states: Mapping[int, Mapping[str, Any]] | None = None
    ) -> None:
        """``states``: saved states (:func:`load_states`) restored into UEs as they are created."""
        self.spec = spec
        self.indices = list(indices)
        self._states = states or {}
        for i in (self.indices[0], self.indices[-1]) if self.indices else ():
            if not 0 <= i < spec.count:
                raise ValueError(f"UE index {i} outside the range of {spec.count} subscribers")
        self._ues: dict[int, SimUe] = {}

    def __len__(self) -> int:
        return len(self.indices)

    def ue(self, index: int) -> SimUe:
        ue = self._ues.get(index)
        if ue is None:
            ue = self._ues[index] = SimUe(self.spec, index)
            saved = self._states.get(index)
            if saved is not None:
                try:
                    ue.restore(saved)
                except (KeyError, TypeError, ValueError):
                    raise StateError(f"saved state of UE {index} is malformed") from None
        return ue

    def created(self) -> list[SimUe]:
        """The UEs used so far."""
        return list(self._ues.values())


_STATE_VERSION = 1


def save_states(path: Path, spec: PopulationSpec, states: Mapping[int, Mapping[str, Any]]) -> None:
    """Write UE states (index → :meth:`SimUe.state_dict`) atomically, mode 0600 (KMEs inside)."""
    write_atomic(path, {
        "version": _STATE_VERSION, "imsi_first": spec.imsi_first, "imei_first": spec.imei_first,
        "ind_bits": spec.ind_bits, "ues": {str(i): s for i, s in sorted(states.items())},
    })


def load_states(path: Path, spec: PopulationSpec) -> dict[int, dict[str, Any]]:
    """UE states saved by :func:`save_states` for this range (empty when the file does not exist);
    :class:`StateError` when it is malformed or belongs to another range."""
    obj = read_state(path)
    if obj is None:
        return {}
    if (obj.get("version") != _STATE_VERSION or obj.get("imsi_first") != spec.imsi_first
            or obj.get("imei_first") != spec.imei_first or obj.get("ind_bits") != spec.ind_bits):
        raise StateError(f"{path}: state of another population (imsi_first, imei_first or ind_bits differ)")
    ues = obj.get("ues")
    if not isinstance(ues, dict):
        raise StateError(f"{path}: field 'ues' must be an object")
    try:
        return {int(i): dict(s) for i, s in ues.items()}
    except (TypeError, ValueError):
        raise StateError(f"{path}: field 'ues' must map UE indices to states") from None

"""The ME: IMEI/IMEISV, the device private key, and its KME state (seed steps 7 and 10).

KME state (docs/procedure.md): a *current* KME (the one the HSS is believed to hold for the
USIM in use; none before the first provisioning) and a *pending* one:

- :meth:`Me.receive_kme` (step 7): decrypts the KME of a KME Provisioning Command with the
  device private key (ECIES, TS 33.501 Annex C.3) and holds it as pending; the current KME
  is kept. Returns ME_Rsp (step 8);
- :meth:`Me.kasme_for` (steps 2 and 10): K'ASME for the KME binding indicator of an
  Authentication Request: NOT_BOUND → KASME, BOUND_TO_CURRENT → bound_kasme(KASME, current),
  BOUND_TO_NEW → bound_kasme(KASME, pending); :class:`KmeUnavailable` when that KME is missing;
- :meth:`Me.commit_pending` (steps 10–11): when the Security Mode Command of the
  authentication bound to the new KME verifies, the pending KME becomes current and the
  previous one is deleted;
- :meth:`Me.revert_pending` (step 7): the UE went idle before that: the pending KME is dropped.

One KME slot per ME, not one per IMSI: the seed binds one KME to a USIM/ME pair and the HSS
keeps one KME per subscription, so a KME the ME held for a USIM is useless once that USIM
has been provisioned in another ME (the HSS then holds the other ME's KME). The ME records
the IMSI its KME was provisioned for (``kme_imsi``) and sends KME_Check only for that IMSI:
with another USIM inserted it omits the IE and the HSS provisions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmed.crypto import ecies, kme
from kmed.nas.identity import imeisv_identity
from kmed.nas.ies import KmeBindingIndicator as KmeBinding
from kmed.ue.state import StateError, hex_field, read_state, write_atomic

__all__ = [
    "KmeBinding",
    "KmeDecryptError",
    "KmeUnavailable",
    "Me",
    "MeState",
    "imeisv_of",
    "load_me_state",
    "save_me_state",
]

_STATE_VERSION = 1


class KmeUnavailable(Exception):
    """The binding indicator names a KME the ME does not hold."""


class KmeDecryptError(Exception):
    """The encrypted KME could not be decrypted with this device's key (wrong key, scheme or MAC)."""


def imeisv_of(imei: str, svn: str) -> str:
    """IMEISV (TS 23.003 §6.2.2): the IMEI's 14 digits (TAC ‖ SNR, no check digit) ‖ 2-digit SVN."""
    if len(imei) != 15 or not imei.isdigit():
        raise ValueError("imei must be 15 decimal digits")
    if len(svn) != 2 or not svn.isdigit():
        raise ValueError("software version (SVN) must be 2 decimal digits")
    return imei[:14] + svn


@dataclass(slots=True)
class MeState:
    """What the ME keeps between power cycles."""

    current_kme: bytes | None = None
    pending_kme: bytes | None = None
    kme_imsi: str | None = None
    """The IMSI of the USIM the current KME was provisioned with."""
    pending_imsi: str | None = None

    def __repr__(self) -> str:
        return f"MeState(current={self.current_kme is not None}, pending={self.pending_kme is not None})"


class Me:
    """The mobile equipment: identity, device key and KME state.

    ``save`` is called with the state after each change (``None``: memory only).
    """

    __slots__ = ("_device_key", "_fingerprint", "_imeisv_identity", "_private_key", "imei", "imeisv", "profile", "save",
                 "state")

    def __init__(
        self,
        imei: str,
        profile: str,
        private_key: bytes,
        *,
        svn: str = "01",
        state: MeState | None = None,
        save: Callable[[MeState], None] | None = None,
    ) -> None:
        if profile not in ("A", "B"):
            raise ValueError("profile must be 'A' or 'B'")
        self.imei = imei
        self.imeisv = imeisv_of(imei, svn)
        self.profile = profile
        self._private_key = bytes(private_key)
        self._device_key: ecies.DeviceKey | None = None  # the key object, made at the first KME
        self.state = state if state is not None else MeState()
        self.save = save
        self._imeisv_identity: bytes | None = None
        self._fingerprint: tuple[bytes, str] | None = None  # (current KME, its fingerprint)

    @classmethod
    def from_pem(cls, imei: str, pem: bytes, **kwargs: Any) -> Me:
        """An ME whose device key is a PEM private key (``ecies.load_private_key_pem``)."""
        profile, raw = ecies.load_private_key_pem(pem)
        return cls(imei, profile, raw, **kwargs)

    def __repr__(self) -> str:
        return f"Me(imei={self.imei}, profile={self.profile}, {self.state!r})"

    # --- KME state ---------------------------------------------------------------------------

    def kme_for_check(self, imsi: str) -> bytes | None:
        """The KME to compute KME_Check with for the USIM ``imsi`` (step 1), or None: omit the IE."""
        if self.state.current_kme is not None and self.state.kme_imsi == imsi:
            return self.state.current_kme
        return None

    @property
    def imeisv_identity(self) -> bytes:
        """The IMEISV as an EPS mobile identity value (TS 24.301 §9.9.3.12), made once."""
        value = self._imeisv_identity
        if value is None:
            value = self._imeisv_identity = imeisv_identity(self.imeisv)
        return value

    def current_fingerprint(self) -> str | None:
        """``kme.fingerprint`` of the current KME, or None (kept until the KME changes)."""
        current = self.state.current_kme
        if current is None:
            return None
        cached = self._fingerprint
        if cached is None or cached[0] is not current:
            cached = self._fingerprint = (current, kme.fingerprint(current))
        return cached[1]

    def receive_kme(self, encrypted: bytes, profile: str, nonce: bytes, imsi: str) -> bytes:
        """Step 7: decrypt the KME (ECIES ``profile``) and hold it as pending; return ME_Rsp
        (step 8). :class:`KmeDecryptError` when it does not decrypt to a 32-octet KME."""
        if profile != self.profile:
            raise KmeDecryptError(f"KME encrypted for profile {profile}, the device key is profile {self.profile}")
        try:
            key = self._device_key
            if key is None:
                key = self._device_key = ecies.DeviceKey(profile, self._private_key)
            new = key.decrypt(encrypted)
        except (ecies.EciesError, ValueError):
            raise KmeDecryptError("the encrypted KME does not decrypt with this device key") from None
        if len(new) != kme.KME_LEN:
            raise KmeDecryptError(f"the decrypted KME is {len(new)} octets, expected {kme.KME_LEN}")
        rsp = kme.me_rsp(new, nonce)
        self.state.pending_kme = new
        self.state.pending_imsi = imsi
        self._changed()
        return rsp

    def kasme_for(self, binding: int, kasme: bytes) -> bytes:
        """K'ASME for an Authentication Request's KME binding indicator (steps 2 and 10)."""
        if binding == KmeBinding.NOT_BOUND:
            return kasme
        if binding == KmeBinding.BOUND_TO_CURRENT:
            key = self.state.current_kme
        elif binding == KmeBinding.BOUND_TO_NEW:
            key = self.state.pending_kme
        else:
            raise KmeUnavailable(f"unknown KME binding indicator {binding}")
        if key is None:
            raise KmeUnavailable(f"{KmeBinding(binding).name}: the ME holds no such KME")
        return kme.bound_kasme(kasme, key)

    def commit_pending(self) -> bool:
        """Steps 10–11: the pending KME becomes current, the previous is deleted. False if none."""
        if self.state.pending_kme is None:
            return False
        self.state.current_kme = self.state.pending_kme
        self.state.kme_imsi = self.state.pending_imsi
        self.state.pending_kme = None
        self.state.pending_imsi = None
        self._changed()
        return True

    def revert_pending(self) -> bool:
        """Step 7: idle before the commit: drop the pending KME, keep the previous. False if none."""
        if self.state.pending_kme is None:
            return False
        self.state.pending_kme = None
        self.state.pending_imsi = None
        self._changed()
        return True

    def factory_reset(self) -> None:
        """Erase the KME state (current and pending), as a factory reset does; identity and
        device key stay."""
        self.state = MeState()
        self._changed()

    def _changed(self) -> None:
        if self._fingerprint is not None and self._fingerprint[0] is not self.state.current_kme:
            self._fingerprint = None  # a KME no longer current is not kept in memory
        if self.save is not None:
            self.save(self.state)


# --- persistence (me/state.json) -------------------------------------------------------------


def save_me_state(path: Path, imei: str, state: MeState) -> None:
    """Write the ME state atomically, mode 0600 (it holds the KME)."""
    write_atomic(
        path,
        {
            "version": _STATE_VERSION,
            "imei": imei,
            "current_kme": state.current_kme.hex() if state.current_kme is not None else None,
            "kme_imsi": state.kme_imsi,
            "pending_kme": state.pending_kme.hex() if state.pending_kme is not None else None,
            "pending_imsi": state.pending_imsi,
        },
    )


def _imsi_field(path: Path, obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.isdigit() or not 6 <= len(value) <= 15:
        raise StateError(f"{path}: field '{name}' must be an IMSI (6 to 15 digits)")
    return value


def load_me_state(path: Path, imei: str) -> MeState:
    """The ME state in ``path`` (empty when the file does not exist); :class:`StateError` when
    malformed or written by an ME with another IMEI."""
    obj = read_state(path)
    if obj is None:
        return MeState()
    if obj.get("imei") != imei:
        raise StateError(f"{path}: ME state belongs to another IMEI ({obj.get('imei')!r}, configured {imei})")
    return MeState(
        current_kme=hex_field(path, obj, "current_kme", kme.KME_LEN),
        pending_kme=hex_field(path, obj, "pending_kme", kme.KME_LEN),
        kme_imsi=_imsi_field(path, obj, "kme_imsi"),
        pending_imsi=_imsi_field(path, obj, "pending_imsi"),
    )

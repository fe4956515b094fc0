"""A scripted network side for the UE procedure tests, built from kmed.nas and kmed.crypto only.

It plays the CNN and HSS halves of docs/procedure.md one message at a time, so each test
says exactly which message the UE gets and checks exactly what it answers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kmed.crypto import aka, ecies, kdf, kme
from kmed.crypto.milenage import milenage
from kmed.nas import esm
from kmed.nas.codec import NasMessage, decode, encode
from kmed.nas.identity import guti_identity
from kmed.nas.ies import (
    KmeBindingIndicator,
    SecurityHeaderType,
    nas_security_algorithms,
    tai_list,
    ue_network_capability,
)
from kmed.nas.security import DOWNLINK, UPLINK, NasSecurityContext, security_header_type
from kmed.ue.procedure import Action, Done, Release, Send, SetTimer

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
IMSI = "001010000000001"
IMEI = "356938035643809"
MCC, MNC = "001", "01"
PLMN = kdf.plmn_id(MCC, MNC)
AMF = bytes.fromhex("8000")
UE_CAPS = ue_network_capability(eea=(0, 2), eia=(2,))


def sends(actions: list[Action]) -> list[bytes]:
    return [a.pdu for a in actions if isinstance(a, Send)]


def done(actions: list[Action]) -> Done | None:
    return next((a for a in actions if isinstance(a, Done)), None)


def released(actions: list[Action]) -> bool:
    return any(isinstance(a, Release) for a in actions)


def timers(actions: list[Action]) -> list[float | None]:
    return [a.seconds for a in actions if isinstance(a, SetTimer)]


class FakeNetwork:
    """CNN + HSS state for one UE: SQN, the current and next NAS security contexts, the KME."""

    def __init__(self, *, sqn: int = 32, kme_held: bytes | None = None, k: bytes = K) -> None:
        self.k = k
        self.sqn = sqn
        self.kme = kme_held  # what the HSS holds for the subscriber
        self.ctx: NasSecurityContext | None = None
        self.ksi = 0
        self.vector: aka.EutranVector | None = None
        self.kasme: bytes | None = None
        self.new_kme: bytes | None = None
        self.nonce = bytes(range(16))
        self.last: tuple[bytes, NasSecurityContext | None, int] = (b"", None, 0)

    # --- uplink -------------------------------------------------------------------------------
    def read(self, pdu: bytes) -> NasMessage:
        """Decode an uplink PDU, unprotecting it with the current (or new) context."""
        sht = security_header_type(pdu)
        if sht == SecurityHeaderType.PLAIN:
            return decode(pdu)
        assert self.ctx is not None, f"protected uplink (type {sht}) without a context"
        return decode(self.ctx.unprotect(pdu, UPLINK))

    def read_all(self, actions: list[Action]) -> list[NasMessage]:
        return [self.read(p) for p in sends(actions)]

    def one(self, actions: list[Action], name: str) -> NasMessage:
        msgs = self.read_all(actions)
        assert [m.name for m in msgs] == [name], [m.name for m in msgs]
        return msgs[0]

    # --- downlink -----------------------------------------------------------------------------
    def dl(self, msg: NasMessage) -> bytes:
        """Encode, protected (type 2) when a context is established."""
        plain = encode(msg)
        sht = SecurityHeaderType.INTEGRITY_CIPHERED if self.ctx is not None else SecurityHeaderType.PLAIN
        self.last = (plain, self.ctx, sht)
        return self.retransmit()

    def retransmit(self) -> bytes:
        """The last downlink message again, re-protected with the next NAS COUNT (as the CNN's
        T3460 retransmission does)."""
        plain, ctx, sht = self.last
        return ctx.protect(plain, DOWNLINK, sht) if ctx is not None else plain

    def auth_request(self, binding: int = KmeBindingIndicator.NOT_BOUND, bind_to: bytes | None = None,
                     sqn: int | None = None, amf: bytes = AMF) -> bytes:
        """A fresh vector (TS 33.401 §6.1.2), KASME bound to ``bind_to`` when given."""
        self.sqn = self.sqn + 33 if sqn is None else sqn
        self.vector = aka.generate_eutran_vector(self.k, OPC, self.sqn, amf, PLMN)
        if not amf[0] & 0x80:  # generate_eutran_vector sets the separation bit: a UMTS AUTN by hand
            m = milenage(self.k, OPC, self.vector.rand, self.sqn.to_bytes(6, "big"), amf)
            conc = bytes(a ^ b for a, b in zip(self.sqn.to_bytes(6, "big"), m.ak, strict=True))
            self.vector = dataclasses.replace(self.vector, autn=conc + amf + m.mac_a)
        self.kasme = self.vector.kasme if bind_to is None else kme.bound_kasme(self.vector.kasme, bind_to)
        self.ksi = (self.ksi + 1) % 7
        ies: dict[str, Any] = {"nas_key_set_identifier": self.ksi, "rand": self.vector.rand, "autn": self.vector.autn}
        if binding != KmeBindingIndicator.NOT_BOUND or bind_to is not None:
            ies["kme_binding_indicator"] = binding
        return self.dl(NasMessage("authentication_request", ies))

    def smc(self, *, imeisv: bool = True, caps: bytes = UE_CAPS, kasme: bytes | None = None,
            ksi: int | None = None) -> bytes:
        """SECURITY MODE COMMAND protected with the new context (header type 3); the new
        context becomes the network's current one."""
        assert self.kasme is not None
        k_enc, k_int = kdf.nas_keys(kasme or self.kasme, 2, 2)
        ksi = self.ksi if ksi is None else ksi
        new = NasSecurityContext(ksi, k_int, k_enc, 2, 2)
        ies: dict[str, Any] = {
            "selected_nas_security_algorithms": nas_security_algorithms(2, 2),
            "nas_key_set_identifier": ksi,
            "replayed_ue_security_capabilities": caps,
        }
        if imeisv:
            ies["imeisv_request"] = 1
        self.last = (encode(NasMessage("security_mode_command", ies)), new, SecurityHeaderType.INTEGRITY_NEW_CONTEXT)
        self.ctx = new
        return self.retransmit()

    def kme_command(self, public_key: bytes, profile: str = "A") -> bytes:
        """Seed steps 4–6: a new KME, encrypted to the device key."""
        self.new_kme = kme.new_kme()
        return self.dl(NasMessage("kme_provisioning_command", {
            "kme_scheme": profile, "nonce": self.nonce,
            "encrypted_kme": ecies.encrypt(profile, public_key, self.new_kme),
        }))

    def attach_accept(self, m_tmsi: int = 0xC0FFEE01) -> bytes:
        return self.dl(NasMessage("attach_accept", {
            "eps_attach_result": 1, "t3412_value": 0x21, "tai_list": tai_list(MCC, MNC, [1]),
            "esm_message_container": esm.activate_default_bearer_request(),
            "guti": guti_identity(MCC, MNC, 1, 1, m_tmsi),
        }))

    def attach_reject(self, cause: int) -> bytes:
        return self.dl(NasMessage("attach_reject", {"emm_cause": cause}))

"""A scripted UE (kmed.nas + kmed.crypto) and a scripted HSS (dictionary + crypto) that drive
the CNN's sans-I/O state machine step by step, so tests can look at and tamper with each
message. Every S6a message goes through the real Diameter codec, every NAS PDU through the
real NAS codec and security context."""

from __future__ import annotations

import hmac
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

from kmed.cnn.contexts import link_key
from kmed.cnn.procedure import (
    Action,
    Cnn,
    KmeEvent,
    LinkError,
    Log,
    Outcome,
    ReleaseUe,
    SendNas,
    SendS6a,
    Settings,
    StartTimer,
    StopTimer,
)
from kmed.crypto import aka, ecies, kdf
from kmed.crypto import kme as kmefn
from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import Message
from kmed.nas import esm
from kmed.nas.codec import NasMessage, decode, encode
from kmed.nas.identity import imeisv_identity, imsi_identity
from kmed.nas.ies import (
    KmeBindingIndicator,
    SecurityHeaderType,
    parse_nas_security_algorithms,
    ue_network_capability,
)
from kmed.nas.security import DOWNLINK, UPLINK, NasSecurityContext, security_header_type

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
IMSI = "001010000000001"
IMEI = "356938035643809"  # 14 digits + Luhn check digit 9
SVN = "01"
MCC, MNC = "001", "01"
PLMN = kdf.plmn_id(MCC, MNC)
CAP = ue_network_capability(eea=(0, 2), eia=(2,))


def settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {"origin_host": "mme.localdomain", "mcc": MCC, "mnc": MNC, "t3460_s": 1.0}
    base.update(kw)
    return Settings(**base)


def roundtrip(msg: Message) -> Message:
    """As the peer receives it: encoded and decoded by the real codec (identifiers filled)."""
    msg.hop_by_hop = msg.hop_by_hop or 1
    msg.end_to_end = msg.end_to_end or 2
    return codec.decode(codec.encode(msg))


# --- scripted UE --------------------------------------------------------------------------------


@dataclass
class ScriptedUe:
    """USIM (MILENAGE) + ME (IMEI, device key, KME) answering the CNN by hand."""

    imsi: str = IMSI
    imei: str = IMEI
    profile: str = "A"
    kme: bytes | None = None
    private_key: bytes = b""
    public_key: bytes = b""
    cap: bytes = CAP
    ctx: NasSecurityContext | None = None
    kasme: bytes | None = None
    ksi: int | None = None
    pending: bytes | None = None
    guti: bytes | None = None
    identity: bytes = b""

    def __post_init__(self) -> None:
        if not self.private_key:
            self.private_key, self.public_key = ecies.generate_keypair(self.profile)

    # uplink helpers
    def send(self, msg: NasMessage, sht: int = SecurityHeaderType.INTEGRITY_CIPHERED) -> bytes:
        pdu = encode(msg)
        return self.ctx.protect(pdu, UPLINK, sht) if self.ctx is not None else pdu

    def attach_request(self, *, use_guti: bool = False, kme_check: bool = True) -> bytes:
        self.ctx = None
        self.identity = self.guti if use_guti and self.guti is not None else imsi_identity(self.imsi)
        ies: dict[str, Any] = {
            "eps_attach_type": 1, "nas_key_set_identifier": 7, "eps_mobile_identity": self.identity,
            "ue_network_capability": self.cap, "esm_message_container": esm.pdn_connectivity_request(),
        }
        if kme_check and self.kme is not None:
            ies["kme_check"] = kmefn.kme_check(self.kme, self.identity)
        return encode(NasMessage("attach_request", ies))

    def tau_request(self, *, kme_check: bool = True, cap: bool = True) -> bytes:
        assert self.guti is not None
        self.ctx = None
        self.identity = self.guti
        ies: dict[str, Any] = {"eps_update_type": 0, "nas_key_set_identifier": 7, "old_guti": self.guti}
        if cap:
            ies["ue_network_capability"] = self.cap
        if kme_check and self.kme is not None:
            ies["kme_check"] = kmefn.kme_check(self.kme, self.guti)
        return encode(NasMessage("tracking_area_update_request", ies))

    def receive(self, pdu: bytes) -> NasMessage:
        """Decode a downlink PDU (unprotected with the current context when protected)."""
        sht = security_header_type(pdu)
        if sht in (SecurityHeaderType.INTEGRITY, SecurityHeaderType.INTEGRITY_CIPHERED):
            assert self.ctx is not None, "protected downlink without a UE context"
            return decode(self.ctx.unprotect(pdu, DOWNLINK))
        return decode(pdu)

    def auth_response(self, msg: NasMessage, *, wrong: bool = False) -> bytes:
        assert msg.name == "authentication_request", msg.name
        r = aka.check_autn(K, OPC, msg["rand"], msg["autn"])
        kasme = kdf.kasme(r.ck, r.ik, PLMN, msg["autn"][:6])
        binding = msg.get("kme_binding_indicator", KmeBindingIndicator.NOT_BOUND)
        if binding == KmeBindingIndicator.BOUND_TO_CURRENT:
            assert self.kme is not None
            kasme = kmefn.bound_kasme(kasme, self.kme)
        elif binding == KmeBindingIndicator.BOUND_TO_NEW:
            assert self.pending is not None
            kasme = kmefn.bound_kasme(kasme, self.pending)
        self.kasme, self.ksi = kasme, msg["nas_key_set_identifier"] & 7
        res = bytes(b ^ 0xFF for b in r.res) if wrong else r.res
        return self.send(NasMessage("authentication_response", {"res": res}))

    def synch_failure(self, msg: NasMessage, sqn_ms: int) -> bytes:
        auts = aka.make_auts(K, OPC, msg["rand"], sqn_ms)
        return self.send(NasMessage("authentication_failure", {"emm_cause": 21, "auts": auts}))

    def smc_complete(self, pdu: bytes, *, with_imeisv: bool = True) -> bytes:
        """Verify the Security Mode Command (header type 3) with the new context, answer type 4."""
        assert security_header_type(pdu) == SecurityHeaderType.INTEGRITY_NEW_CONTEXT
        msg = decode(pdu)
        assert msg.name == "security_mode_command"
        assert self.kasme is not None and msg["nas_key_set_identifier"] & 7 == self.ksi
        enc, integ = parse_nas_security_algorithms(msg["selected_nas_security_algorithms"])
        assert (enc, integ) == (2, 2)
        assert msg["replayed_ue_security_capabilities"] == self.cap[:2]
        k_enc, k_int = kdf.nas_keys(self.kasme, enc, integ)
        ctx = NasSecurityContext(msg["nas_key_set_identifier"] & 7, k_int, k_enc)
        ctx.unprotect(pdu, DOWNLINK)  # raises if the MAC does not verify
        self.ctx = ctx
        if self.pending is not None:  # step 10-11: commit the pending KME
            self.kme, self.pending = self.pending, None
        ies: dict[str, Any] = {}
        if with_imeisv and msg.get("imeisv_request") == 1:
            ies["imeisv"] = imeisv_identity(self.imei[:14] + SVN)
        return ctx.protect(encode(NasMessage("security_mode_complete", ies)), UPLINK,
                           SecurityHeaderType.INTEGRITY_CIPHERED_NEW_CONTEXT)

    def kme_response(self, msg: NasMessage, *, tamper: bool = False) -> bytes:
        assert msg.name == "kme_provisioning_command"
        new = ecies.decrypt(msg["kme_scheme"], self.private_key, msg["encrypted_kme"])
        self.pending = new
        rsp = kmefn.me_rsp(new, msg["nonce"])
        if tamper:
            rsp = bytes((rsp[0] ^ 1,)) + rsp[1:]
        return self.send(NasMessage("kme_provisioning_response", {"me_rsp": rsp}))

    def attach_complete(self, accept: NasMessage) -> bytes:
        self.guti = accept.get("guti")
        return self.send(NasMessage("attach_complete", {"esm_message_container": esm.activate_default_bearer_accept()}))

    def tau_complete(self, accept: NasMessage) -> bytes:
        self.guti = accept.get("guti")
        return self.send(NasMessage("tracking_area_update_complete", {}))


# --- scripted HSS -------------------------------------------------------------------------------


@dataclass
class ScriptedHss:
    """Just enough of an HSS: one subscriber, devices by IMEI, allowed pairs, one KME, tokens."""

    imsi: str = IMSI
    sqn: int = 32
    kme: bytes | None = None
    kme_imei: str | None = None
    devices: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # IMEI -> (profile, public key)
    allowed: set[tuple[str, str]] = field(default_factory=set)
    tokens: dict[bytes, tuple[str, bytes]] = field(default_factory=dict)  # token -> (IMEI, KME)
    requests: list[Message] = field(default_factory=list)
    #: next answers to force: a result (vendor, code), or "drop" (no answer: the test times it out)
    force: list[Any] = field(default_factory=list)

    def answer(self, req: Message) -> Message | None:
        req = roundtrip(req)
        self.requests.append(req)
        if self.force:
            forced = self.force.pop(0)
            if forced == "drop":
                return None
            vendor, code = forced
            if vendor:
                er = ("Experimental-Result", [("Vendor-Id", vendor), ("Experimental-Result-Code", code)])
                return roundtrip(Message.answer_to(req, [er, ("Origin-Host", "hss"), ("Origin-Realm", "r")]))
            return roundtrip(Message.answer_to(req, [("Result-Code", code), ("Origin-Host", "hss"),
                                                     ("Origin-Realm", "r")], error=3000 <= code < 4000))
        if req.command_code == d.CMD_AIR:
            return roundtrip(self._air(req))
        return roundtrip(self._ulr(req))

    def _exp(self, req: Message, vendor: int, code: int) -> Message:
        er = ("Experimental-Result", [("Vendor-Id", vendor), ("Experimental-Result-Code", code)])
        return Message.answer_to(req, [er, ("Origin-Host", "hss"), ("Origin-Realm", "r")])

    def _air(self, req: Message) -> Message:
        assert req.get("User-Name") == self.imsi
        info = req.group("Requested-EUTRAN-Authentication-Info")
        assert info is not None
        resync = info.get("Re-Synchronization-Info")
        if resync is not None:
            self.sqn = aka.verify_auts(K, OPC, resync[:16], resync[16:]) + 32
        self.sqn += 32
        v = aka.generate_eutran_vector(K, OPC, self.sqn, b"\x80\x00", req.get("Visited-PLMN-Id"))
        extra: list[Any] = []
        if req.get("KME-Request") is not None:
            term = req.group("Terminal-Information")
            assert term is not None
            imei = term.get("IMEI")
            if imei not in self.devices:
                return self._exp(req, d.VENDOR_KMED, d.DIAMETER_ERROR_KME_DEVICE_UNKNOWN)
            if (self.imsi, imei) not in self.allowed:
                return self._exp(req, d.VENDOR_KMED, d.DIAMETER_ERROR_KME_PAIR_NOT_ALLOWED)
            profile, pub = self.devices[imei]
            new = kmefn.new_kme()
            token = secrets.token_bytes(24)
            self.tokens[token] = (imei, new)
            kasme, binding = kmefn.bound_kasme(v.kasme, new), d.KME_BINDING_BOUND_TO_NEW
            extra = [("Encrypted-KME", ecies.encrypt(profile, pub, new)),
                     ("KME-Scheme", 1 if profile == "A" else 2), ("KME", new), ("KME-Token", token)]
        else:
            check, ident = req.get("KME-Check"), req.get("KME-Check-Identity")
            match = (check is not None and self.kme is not None
                     and hmac.compare_digest(kmefn.kme_check(self.kme, ident), check))
            if match:
                assert self.kme is not None
                kasme, binding = kmefn.bound_kasme(v.kasme, self.kme), d.KME_BINDING_BOUND_TO_CURRENT
            else:
                kasme, binding = v.kasme, d.KME_BINDING_NOT_BOUND
            extra = [("KME-Status", d.KME_STATUS_MATCH if match else d.KME_STATUS_PROVISIONING_REQUIRED)]
        vec = ("E-UTRAN-Vector", [("RAND", v.rand), ("XRES", v.xres), ("AUTN", v.autn), ("KASME", kasme),
                                  ("KME-Binding", binding)])
        return Message.answer_to(req, [("Result-Code", 2001), ("Origin-Host", "hss"), ("Origin-Realm", "r"),
                                       ("Authentication-Info", [vec]), *extra])

    def _ulr(self, req: Message) -> Message:
        kme = req.get("KME")
        term = req.group("Terminal-Information")
        imei = term.get("IMEI") if term is not None else None
        if imei is not None and (self.imsi, imei) not in self.allowed:
            return self._exp(req, d.VENDOR_KMED, d.DIAMETER_ERROR_KME_PAIR_NOT_ALLOWED)
        if kme is not None:
            issued = self.tokens.pop(bytes(req.get("KME-Token") or b""), None)
            if issued is None or issued != (imei, kme):
                return self._exp(req, d.VENDOR_KMED, d.DIAMETER_ERROR_KME_TOKEN_INVALID)
            self.kme, self.kme_imei = bytes(kme), imei
        return Message.answer_to(req, [("Result-Code", 2001), ("Origin-Host", "hss"), ("Origin-Realm", "r")])


# --- the network between them ----------------------------------------------------------------------


class Net:
    """Runs the CNN's actions: S6a requests go to the scripted HSS (answered at once unless the
    test holds them), NAS PDUs are collected for the test, timers and logs are recorded."""

    def __init__(self, cnn: Cnn, hss: ScriptedHss, key: int | None = None) -> None:
        self.cnn = cnn
        self.hss = hss
        self.key = key if key is not None else link_key(1, 7)
        self.downlink: list[bytes] = []
        self.logs: list[Log] = []
        self.outcomes: list[Outcome] = []
        self.timers: dict[int, StartTimer] = {}
        self.released: list[ReleaseUe] = []
        self.link_errors: list[LinkError] = []
        self.kme_events: list[str] = []
        self.held: list[SendS6a] = []
        self.hold_s6a = False
        self._count = itertools.count()

    def run(self, actions: list[Action]) -> None:
        queue = list(actions)
        while queue:
            a = queue.pop(0)
            if isinstance(a, SendNas):
                self.downlink.append(a.pdu)
            elif isinstance(a, SendS6a):
                if self.hold_s6a:
                    self.held.append(a)
                    continue
                answer = self.hss.answer(a.request)
                if answer is None:
                    self.held.append(a)
                else:
                    queue += self.cnn.s6a_answer(a.key, a.token, answer)
            elif isinstance(a, StartTimer):
                self.timers[a.key] = a
            elif isinstance(a, StopTimer):
                self.timers.pop(a.key, None)
            elif isinstance(a, Log):
                self.logs.append(a)
            elif isinstance(a, Outcome):
                self.outcomes.append(a)
            elif isinstance(a, ReleaseUe):
                self.released.append(a)
            elif isinstance(a, LinkError):
                self.link_errors.append(a)
            elif isinstance(a, KmeEvent):
                self.kme_events.append(a.event)

    def up(self, pdu: bytes, key: int | None = None) -> bytes | None:
        """Send an uplink PDU; return the last downlink PDU it caused (None if none)."""
        before = len(self.downlink)
        self.run(self.cnn.nas_uplink(self.key if key is None else key, pdu))
        return self.downlink[-1] if len(self.downlink) > before else None

    def fire_timer(self, key: int | None = None) -> bytes | None:
        t = self.timers.pop(self.key if key is None else key)
        before = len(self.downlink)
        self.run(self.cnn.timer_expired(t.key, t.token))
        return self.downlink[-1] if len(self.downlink) > before else None

    def steps(self) -> list[int]:
        return [lg.fields["step"] for lg in self.logs if lg.fields.get("step") is not None]

    def events(self) -> list[str]:
        return [lg.event for lg in self.logs]


def attach_until_accept(net: Net, ue: ScriptedUe, *, use_guti: bool = False) -> NasMessage:
    """Drive an attach through every step (provisioning when the HSS asks) to the Attach Accept."""
    dl = net.up(ue.attach_request(use_guti=use_guti))
    while True:
        assert dl is not None, f"no downlink; events: {net.events()}"
        if security_header_type(dl) == SecurityHeaderType.INTEGRITY_NEW_CONTEXT:
            dl = net.up(ue.smc_complete(dl))
            continue
        msg = ue.receive(dl)
        if msg.name == "identity_request":
            dl = net.up(ue.send(NasMessage("identity_response", {"mobile_identity": imsi_identity(ue.imsi)})))
        elif msg.name == "authentication_request":
            dl = net.up(ue.auth_response(msg))
        elif msg.name == "kme_provisioning_command":
            dl = net.up(ue.kme_response(msg))
        else:
            return msg


def new_pair(hss: ScriptedHss, ue: ScriptedUe, allowed: bool = True) -> None:
    hss.devices[ue.imei] = (ue.profile, ue.public_key)
    if allowed:
        hss.allowed.add((ue.imsi, ue.imei))


def make(**kw: Any) -> tuple[Cnn, ScriptedHss, ScriptedUe, Net]:
    cnn = Cnn(settings(**kw), debug=True)
    hss = ScriptedHss()
    ue = ScriptedUe()
    new_pair(hss, ue)
    return cnn, hss, ue, Net(cnn, hss)

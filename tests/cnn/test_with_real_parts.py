"""The CNN state machine between the real UE state machine (kmed.ue) and the real HSS handlers
over a real SQLite store (kmed.hss), still without sockets: every S6a message goes through the
Diameter codec, every NAS PDU through the NAS codec and security contexts."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kmed.cnn.contexts import link_key
from kmed.cnn.procedure import Cnn, Outcome, ReleaseUe, SendNas, SendS6a, Settings
from kmed.crypto import ecies, kdf
from kmed.crypto import kme as kmefn
from kmed.diameter import codec
from kmed.diameter.message import Message
from kmed.hss.s6a import S6aHandlers
from kmed.hss.sqlite_store import SqliteStore
from kmed.ue.me import Me
from kmed.ue.procedure import ATTACH, TAU, Done, Send, UeProcedure
from kmed.ue.usim import Usim

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
IMSI = "001010000000001"
IMEI_A = "356938035643809"
IMEI_B = "356938035643817"
IMEI_C = "356938035643825"
PLMN = kdf.plmn_id("001", "01")


class Lab:
    def __init__(self, path: Path) -> None:
        self.store = SqliteStore(path)
        self.hss = S6aHandlers(self.store, secrets.token_bytes(32), "hss.localdomain", "localdomain")
        self.cnn = Cnn(Settings(origin_host="mme.localdomain", mcc="001", mnc="01"))
        self.cnn_outcomes: list[Outcome] = []
        self.store.add_subscriber(IMSI, K, OPC, b"\x80\x00", 0)
        self.usim = Usim(IMSI, K, OPC)
        self.keys: dict[str, bytes] = {}
        self.ue_ids = iter(range(1, 1000))

    def device(self, imei: str, allowed: bool = True) -> Me:
        priv, pub = ecies.generate_keypair("A")
        self.store.add_device(imei, "A", pub)
        if allowed:
            self.store.allow_pair(IMSI, imei)
        return Me(imei, "A", priv)

    def hss_answer(self, req: Message) -> Message:
        req = codec.decode(codec.encode(_with_ids(req)))
        out = self.hss.handle(req, "mme.localdomain")
        answer = out.answer
        flags = self.store.apply(out.writes) if out.writes else []
        if out.refused is not None and not all(flags):
            answer = out.refused
        if out.reserved:
            self.hss.ledger.settle(out.reserved)
        return codec.decode(codec.encode(answer))

    def run(self, me: Me, kind: str = ATTACH) -> Any:
        """One procedure between UE, CNN and HSS; the UE's outcome."""
        ue = UeProcedure(self.usim, me, PLMN, kind=kind)
        key = link_key(1, next(self.ue_ids))
        uplink = [a.pdu for a in ue.start() if isinstance(a, Send)]
        for _ in range(100):
            if not uplink:
                break
            pdu = uplink.pop(0)
            queue: list[Any] = list(self.cnn.nas_uplink(key, pdu))
            while queue:
                a = queue.pop(0)
                if isinstance(a, SendS6a):
                    queue += self.cnn.s6a_answer(a.key, a.token, self.hss_answer(a.request))
                elif isinstance(a, SendNas):
                    for ua in ue.receive(a.pdu):
                        if isinstance(ua, Send):
                            uplink.append(ua.pdu)
                        elif isinstance(ua, Done):
                            pass
                elif isinstance(a, ReleaseUe):
                    ue.released("released by the network")
                elif isinstance(a, Outcome):
                    self.cnn_outcomes.append(a)
        self.cnn.link_released(key)  # the UE went idle
        assert ue.outcome is not None
        return ue.outcome


def _with_ids(msg: Message) -> Message:
    msg.hop_by_hop, msg.end_to_end = 1, 2
    for name, value in (("Origin-Host", "mme.localdomain"), ("Origin-Realm", "localdomain"),
                        ("Destination-Realm", "localdomain")):
        if msg.get(name) is None:
            msg.append(name, value)
    return msg


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path / "hss.sqlite")
    yield lab
    lab.store.close()


def test_provision_match_move_and_back(lab: Lab) -> None:
    me_a, me_b = lab.device(IMEI_A), lab.device(IMEI_B)
    first = lab.run(me_a)
    assert (first.result, first.kme_provisioned) == ("accepted", True)
    stored = lab.store.show(IMSI)
    assert stored is not None and stored["kme_fingerprint"] == first.kme_fingerprint and stored["kme_imei"] == IMEI_A
    assert first.kme_fingerprint == me_a.current_fingerprint() == kmefn.fingerprint(me_a.state.current_kme or b"")
    assert lab.cnn_outcomes[-1].procedure == "attach_provision" and lab.cnn_outcomes[-1].outcome == "ok"
    again = lab.run(me_a)
    assert (again.result, again.kme_provisioned) == ("accepted", False)
    assert again.kme_fingerprint == first.kme_fingerprint
    assert lab.cnn_outcomes[-1].procedure == "attach"
    moved = lab.run(me_b)  # the USIM in another allowed ME: a new KME
    assert (moved.result, moved.kme_provisioned) == ("accepted", True)
    assert moved.kme_fingerprint != first.kme_fingerprint
    assert lab.store.show(IMSI)["kme_fingerprint"] == moved.kme_fingerprint  # type: ignore[index]
    back = lab.run(me_a)  # and back: ME-A's KME no longer matches what the HSS holds
    assert (back.result, back.kme_provisioned) == ("accepted", True)
    tau = lab.run(me_a, TAU)  # TAU with the GUTI of the last attach, KME checked over it
    assert (tau.result, tau.kme_provisioned) == ("accepted", False)
    assert lab.cnn_outcomes[-1].procedure == "tau" and lab.cnn_outcomes[-1].outcome == "ok"


def test_pair_not_allowed_is_illegal_me_and_nothing_stored(lab: Lab) -> None:
    me_c = lab.device(IMEI_C, allowed=False)
    out = lab.run(me_c)
    assert (out.result, out.emm_cause, out.kme_provisioned, out.kme_fingerprint) == ("rejected", 6, False, None)
    shown = lab.store.show(IMSI)
    assert shown is not None and shown["kme_fingerprint"] is None
    assert lab.cnn_outcomes[-1].outcome == "rejected" and lab.cnn_outcomes[-1].emm_cause == 6

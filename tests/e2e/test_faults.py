"""Faults in the middle of the seed procedure (issue 5 tests e, f, g), against real HSS and CNN
processes on loopback. The UE runs in this process (kmed.ue over a real UE link) so that the
test can stop it, delay it or tamper with what it sends at a chosen seed step."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kmed import config
from kmed.lab import Lab, running_lab
from kmed.ue.client import ProcedureRunner, load_ue, serving_plmn
from kmed.ue.link import UeLink
from kmed.ue.me import Me
from kmed.ue.procedure import ATTACH, Outcome, UeProcedure
from tests.e2e.test_procedure import IMEI_A, IMEI_B, IMSI, device, hss_kme, provision

Hook = Callable[["TappedRunner", bytes], bool]


class TappedRunner(ProcedureRunner):
    """A ProcedureRunner whose downlink and uplink pass through test hooks.

    ``on_downlink(runner, pdu)`` returns False to swallow the PDU; ``on_uplink`` likewise, and
    may send other PDUs itself with :meth:`raw_send`.
    """

    on_downlink: Hook | None = None
    on_uplink: Hook | None = None

    def nas_received(self, pdu: bytes) -> None:
        hook = type(self).on_downlink
        if hook is None or hook(self, pdu):
            super().nas_received(pdu)

    def _send(self, pdu: bytes) -> bool:
        hook = type(self).on_uplink
        if hook is not None and self.ue_id is not None and not hook(self, pdu):
            return True
        return super()._send(pdu)

    def raw_send(self, pdu: bytes) -> None:
        assert self.ue_id is not None
        self.link.send_nas(self.ue_id, pdu)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with running_lab(tmp_path) as lab:
        provision(lab)
        yield lab


def ue_config(lab: Lab) -> Path:
    key = device(lab, "me-a", IMEI_A)
    return lab.ue_config("me-a", imsi=IMSI, imei=IMEI_A, private_key=key)


def run_tapped(path: Path, runner_cls: type[TappedRunner], deadline_s: float = 30.0,
               setup: Callable[[Me], None] | None = None) -> tuple[Outcome, Me]:
    """One attach of the UE of config ``path`` in this process, through ``runner_cls``."""
    cfg = config.load(path, config.UE_SCHEMA)

    async def main() -> tuple[Outcome, Me]:
        usim, me = load_ue(cfg, path)
        if setup is not None:
            setup(me)
        proc = UeProcedure(usim, me, serving_plmn(cfg), kind=ATTACH, timer_s=5.0, max_attempts=3)
        link = await UeLink.connect(cfg["cnn"]["connect"])
        try:
            outcome = await runner_cls(link, proc).start(deadline_s)
        finally:
            link.close()
            await link.wait_closed()
        return outcome, me

    return asyncio.run(main())


def spy_receive_kme(me: Me, calls: list[bytes], tamper: bool = False) -> None:
    """Record each KME Provisioning Command the ME handles (seed step 7); optionally return a
    wrong ME_Rsp (step 8), as an ME without the device key would. (Me has __slots__, so the
    spy is a subclass swapped in.)"""

    class SpyMe(Me):
        __slots__ = ()

        def receive_kme(self, encrypted: bytes, profile: str, nonce: bytes, imsi: str) -> bytes:
            rsp = super().receive_kme(encrypted, profile, nonce, imsi)
            calls.append(nonce)
            return bytes([rsp[0] ^ 0x01]) + rsp[1:] if tamper else rsp

    me.__class__ = SpyMe


def cnn_events(lab: Lab, name: str) -> list[dict[str, Any]]:
    return [e for e in lab.daemons["cnn"].log_events() if e.get("event") == name]


def test_e_ue_vanishes_between_steps_7_and_10_reverts_then_converges(lab: Lab) -> None:
    path_a = ue_config(lab)
    key_b = device(lab, "me-b", IMEI_B)
    path_b = lab.ue_config("me-b", imsi=IMSI, imei=IMEI_B, private_key=key_b)
    previous = lab.attach(path_a)["kme_fingerprint"]  # ME-A holds KME_A
    in_b = lab.attach(path_b)["kme_fingerprint"]  # the USIM in ME-B: the HSS now holds KME_B
    assert previous and in_b and previous != in_b == hss_kme(lab)
    # Back in ME-A: KME_Check mismatches, provisioning starts; the UE vanishes after step 7.
    calls: list[bytes] = []
    gone = {"after_step_7": False}

    class Vanishing(TappedRunner):
        @staticmethod
        def on_downlink(runner: TappedRunner, pdu: bytes) -> bool:
            if calls and not gone["after_step_7"]:
                gone["after_step_7"] = True
                runner.link.close()  # the bound re-authentication (step 10) never arrives
                return False
            return True

    outcome, me = run_tapped(path_a, Vanishing, deadline_s=20.0, setup=lambda m: spy_receive_kme(m, calls))
    assert calls and gone["after_step_7"], "the KME Provisioning Command never reached the ME"
    assert outcome.result == "failed" and outcome.kme_provisioned is False
    assert me.state.pending_kme is None, "the pending KME was not dropped when the UE went idle"
    assert me.current_fingerprint() == previous, "the ME did not revert to its previous KME"
    assert hss_kme(lab) == in_b, "the HSS stored a KME that no authentication confirmed"
    # The next attach converges: ME-A's KME still mismatches, so it provisions and both agree.
    again = lab.attach(path_a)
    assert again["result"] == "accepted" and again["kme_provisioned"] is True
    assert again["kme_fingerprint"] not in (previous, in_b) and again["kme_fingerprint"] == hss_kme(lab)


def test_f_hss_restarts_between_steps_4_and_12_then_converges(lab: Lab) -> None:
    path = ue_config(lab)
    calls: list[bytes] = []

    class Restarting(TappedRunner):
        @staticmethod
        def on_uplink(runner: TappedRunner, pdu: bytes) -> bool:
            if calls and not getattr(runner, "_restarted", False):
                runner._restarted = True  # type: ignore[attr-defined]
                lab.daemons["hss"].kill()  # a crash after step 4, before the ULR of step 12
                lab.start("hss")
            return True

    outcome, _ = run_tapped(path, Restarting, deadline_s=40.0, setup=lambda me: spy_receive_kme(me, calls))
    assert calls, "the procedure never reached step 7"
    if outcome.result == "accepted":
        assert outcome.kme_provisioned is True and outcome.kme_fingerprint == hss_kme(lab)
    else:  # failed cleanly: a cause or an error, and the HSS stored nothing unconfirmed
        assert outcome.emm_cause is not None or outcome.error
    again = lab.attach(path)
    assert again["result"] == "accepted"
    assert again["kme_fingerprint"] is not None and again["kme_fingerprint"] == hss_kme(lab)


def test_g_tampered_me_rsp_is_refused_and_nothing_is_stored(lab: Lab) -> None:
    path = ue_config(lab)
    calls: list[bytes] = []
    outcome, me = run_tapped(path, TappedRunner, setup=lambda m: spy_receive_kme(m, calls, tamper=True))
    assert calls
    assert outcome.result == "rejected" and outcome.emm_cause == 6
    assert outcome.kme_fingerprint is None and me.state.current_kme is None and me.state.pending_kme is None
    assert hss_kme(lab) is None
    assert not cnn_events(lab, "location_updated")


def test_g_replayed_kme_provisioning_command_and_response_are_refused(lab: Lab) -> None:
    path = ue_config(lab)
    calls: list[bytes] = []
    replayed = {"down": False, "up": False}

    class Replaying(TappedRunner):
        @staticmethod
        def on_downlink(runner: TappedRunner, pdu: bytes) -> bool:
            before = len(calls)
            ProcedureRunner.nas_received(runner, pdu)
            if len(calls) > before and not replayed["down"]:
                replayed["down"] = True
                ProcedureRunner.nas_received(runner, pdu)  # the same protected PDU again
            return False

        @staticmethod
        def on_uplink(runner: TappedRunner, pdu: bytes) -> bool:
            if calls and not replayed["up"]:
                replayed["up"] = True
                runner.raw_send(pdu)  # the KME Provisioning Response ...
                runner.raw_send(pdu)  # ... and its replay
                return False
            return True

    outcome, _ = run_tapped(path, Replaying, setup=lambda me: spy_receive_kme(me, calls))
    assert replayed == {"down": True, "up": True}
    assert len(calls) == 1, "the ME handled a replayed KME Provisioning Command"
    assert outcome.result == "accepted" and outcome.kme_provisioned is True
    assert outcome.kme_fingerprint == hss_kme(lab)
    assert cnn_events(lab, "nas_replay_dropped"), "the CNN did not report the replayed response"


def test_g_nas_message_with_a_bad_mac_is_dropped_and_counted(lab: Lab) -> None:
    path = ue_config(lab)
    calls: list[bytes] = []
    forged = {"sent": False}

    class Forging(TappedRunner):
        @staticmethod
        def on_uplink(runner: TappedRunner, pdu: bytes) -> bool:
            if calls and not forged["sent"]:
                forged["sent"] = True
                bad = bytearray(pdu)
                bad[-1] ^= 0xFF  # a ciphertext bit flipped: the MAC no longer verifies
                runner.raw_send(bytes(bad))
            return True

    outcome, _ = run_tapped(path, Forging, setup=lambda me: spy_receive_kme(me, calls))
    assert forged["sent"]
    assert outcome.result == "accepted" and outcome.kme_fingerprint == hss_kme(lab)
    assert cnn_events(lab, "nas_integrity_failure"), "the CNN did not report the bad MAC"

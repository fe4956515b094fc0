"""The CNN state machine without sockets: a scripted UE and a scripted HSS (tests/cnn/scripted.py)."""

from __future__ import annotations

import pytest

from kmed.cnn.contexts import link_key
from kmed.cnn.procedure import State, gprs_timer, imei_from_imeisv
from kmed.crypto import kme as kmefn
from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import Message
from kmed.nas.causes import EmmCause
from kmed.nas.codec import NasMessage, decode, encode
from kmed.nas.frame import ErrorCause
from kmed.nas.identity import imsi_identity
from kmed.nas.ies import KmeBindingIndicator, SecurityHeaderType, ue_network_capability
from kmed.nas.security import security_header_type
from tests.cnn.scripted import IMEI, IMSI, SVN, Net, ScriptedHss, ScriptedUe, attach_until_accept, make, new_pair


def test_first_attach_provisions_a_kme_with_every_seed_step() -> None:
    cnn, hss, ue, net = make()
    accept = attach_until_accept(net, ue)
    assert accept.name == "attach_accept"
    assert ue.kme is not None and ue.pending is None  # committed at the bound Security Mode Command
    net.up(ue.attach_complete(accept))
    # HSS and UE hold the same KME; the ULR carried it with the token and the IMEI (step 12)
    assert hss.kme == ue.kme and hss.kme_imei == IMEI
    air2, air3, ulr = hss.requests
    assert air2.get("KME-Check") is None and air2.get("KME-Request") is None
    assert air3.get("KME-Request") == 1
    term = air3.group("Terminal-Information")
    assert term is not None and term.get("IMEI") == IMEI and term.get("Software-Version") == SVN
    assert ulr.get("KME") == hss.kme
    assert ulr.get("ULR-Flags") == d.ULR_S6A_S6D_INDICATOR | d.ULR_INITIAL_ATTACH_INDICATOR
    (out,) = net.outcomes
    assert (out.procedure, out.outcome, out.kme_provisioned, out.imsi) == ("attach_provision", "ok", True, IMSI)
    assert net.kme_events == ["issued", "stored"]
    steps = net.steps()
    for step in (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13):
        assert step in steps, f"step {step} not logged: {net.events()}"
    assert steps == sorted(steps), "steps are logged in the seed's order"
    assert cnn.table.procedures == 0 and cnn.table.registrations == 1
    assert accept.get("guti") is not None and cnn.table.by_imsi(IMSI) is not None


def test_logs_carry_no_secret() -> None:
    _, hss, ue, net = make()
    net.up(ue.attach_complete(attach_until_accept(net, ue)))
    assert hss.kme is not None
    secrets_hex = {hss.kme.hex()}
    for log in net.logs:
        text = repr(log.fields) + log.event
        assert not any(s in text for s in secrets_hex)
        assert not set(log.fields) & {"kme", "kasme", "xres", "res", "k_nas_int", "k_nas_enc", "ck", "ik"}


def test_second_attach_matches_and_provisions_nothing() -> None:
    _, hss, ue, net = make()
    net.up(ue.attach_complete(attach_until_accept(net, ue)))
    first_kme = ue.kme
    hss.requests.clear()
    accept = attach_until_accept(net, ue)
    net.up(ue.attach_complete(accept))
    assert ue.kme == first_kme == hss.kme
    air, ulr = hss.requests  # no KME-Request
    assert air.get("KME-Check") is not None and air.get("KME-Check-Identity") == imsi_identity(IMSI)
    assert ulr.get("KME") is None
    assert net.outcomes[-1].procedure == "attach" and net.outcomes[-1].outcome == "ok"


def test_attach_with_unknown_guti_asks_identity_and_checks_kme_over_the_guti() -> None:
    cnn, hss, ue, net = make()
    net.up(ue.attach_complete(attach_until_accept(net, ue)))
    cnn.table.deregister(IMSI)  # the CNN forgot the UE (e.g. restarted)
    hss.requests.clear()
    dl = net.up(ue.attach_request(use_guti=True))
    assert dl is not None
    req = decode(dl)
    assert req.name == "identity_request" and req["identity_type"] == 1
    assert net.timers[net.key].name == "T3470"
    accept = attach_until_accept_from(net, ue, net.up(ue.send(
        NasMessage("identity_response", {"mobile_identity": imsi_identity(IMSI)}))))
    assert accept.name == "attach_accept"
    air = hss.requests[0]
    assert air.get("User-Name") == IMSI
    assert air.get("KME-Check-Identity") == ue.guti != imsi_identity(IMSI)  # the identity as received in step 1
    assert [r.get("KME-Request") for r in hss.requests] == [None, None]  # KME matched over the GUTI: AIR, ULR
    net.up(ue.attach_complete(accept))
    assert (net.outcomes[-1].procedure, net.outcomes[-1].outcome) == ("attach", "ok")


def attach_until_accept_from(net: Net, ue: ScriptedUe, dl: bytes | None) -> NasMessage:
    while True:
        assert dl is not None
        if security_header_type(dl) == SecurityHeaderType.INTEGRITY_NEW_CONTEXT:
            dl = net.up(ue.smc_complete(dl))
            continue
        msg = ue.receive(dl)
        if msg.name == "authentication_request":
            dl = net.up(ue.auth_response(msg))
        elif msg.name == "kme_provisioning_command":
            dl = net.up(ue.kme_response(msg))
        else:
            return msg


def test_tau_with_a_known_guti_matches_the_kme_checked_over_the_guti() -> None:
    cnn, hss, ue, net = make()
    net.up(ue.attach_complete(attach_until_accept(net, ue)))
    old_guti = ue.guti
    hss.requests.clear()
    accept = attach_until_accept_from(net, ue, net.up(ue.tau_request(cap=False)))  # capability from the registration
    assert accept.name == "tracking_area_update_accept"
    assert accept.get("guti") != old_guti
    net.up(ue.tau_complete(accept))
    air, ulr = hss.requests
    assert air.get("KME-Check-Identity") == old_guti and air.get("User-Name") == IMSI
    assert ulr.get("ULR-Flags") == d.ULR_S6A_S6D_INDICATOR  # no initial-attach indicator
    assert net.outcomes[-1].procedure == "tau" and net.outcomes[-1].outcome == "ok"
    assert cnn.table.by_imsi(IMSI).m_tmsi == int.from_bytes(ue.guti[-4:], "big")  # type: ignore[union-attr, index]


def test_synch_failure_resynchronises_once_then_authenticates() -> None:
    _, hss, ue, net = make()
    dl = net.up(ue.attach_request())
    msg = ue.receive(dl)  # type: ignore[arg-type]
    dl = net.up(ue.synch_failure(msg, sqn_ms=5000))
    air2 = hss.requests[-1]
    info = air2.group("Requested-EUTRAN-Authentication-Info")
    assert info is not None and len(info.get("Re-Synchronization-Info")) == 30
    assert info.get("Re-Synchronization-Info")[:16] == msg["rand"]
    accept = attach_until_accept_from(net, ue, dl)
    assert accept.name == "attach_accept"
    # a second synch failure in the same procedure is not resynchronised again
    _, hss, ue, net = make()
    dl = net.up(ue.attach_request())
    dl = net.up(ue.synch_failure(ue.receive(dl), sqn_ms=5000))  # type: ignore[arg-type]
    dl = net.up(ue.synch_failure(ue.receive(dl), sqn_ms=9000))  # type: ignore[arg-type]
    assert decode(dl).name == "authentication_reject"  # type: ignore[arg-type]
    assert net.outcomes[-1].outcome == "rejected" and net.released


def test_mac_failure_and_wrong_res_are_rejected() -> None:
    _, hss, ue, net = make()
    dl = net.up(ue.attach_request())
    dl = net.up(ue.send(NasMessage("authentication_failure", {"emm_cause": 20})))
    assert decode(dl).name == "authentication_reject"  # type: ignore[arg-type]
    _, hss, ue, net = make()
    dl = net.up(ue.attach_request())
    dl = net.up(ue.auth_response(ue.receive(dl), wrong=True))  # type: ignore[arg-type]
    assert decode(dl).name == "authentication_reject"  # type: ignore[arg-type]
    assert net.outcomes[-1].outcome == "rejected" and net.outcomes[-1].emm_cause is None
    assert len(hss.requests) == 1  # no ULR


def test_wrong_me_rsp_is_illegal_me_and_no_ulr() -> None:
    cnn, hss, ue, net = make()
    dl = net.up(ue.attach_request())
    dl = net.up(ue.auth_response(ue.receive(dl)))  # type: ignore[arg-type]
    dl = net.up(ue.smc_complete(dl))  # type: ignore[arg-type]
    cmd = ue.receive(dl)  # type: ignore[arg-type]
    assert cmd.name == "kme_provisioning_command" and len(cmd["nonce"]) == 16
    dl = net.up(ue.kme_response(cmd, tamper=True))
    rej = ue.receive(dl)  # type: ignore[arg-type]
    assert security_header_type(dl) == SecurityHeaderType.INTEGRITY_CIPHERED  # type: ignore[arg-type]
    assert rej.name == "attach_reject" and rej["emm_cause"] == EmmCause.ILLEGAL_ME
    assert [r.command_code for r in hss.requests] == [d.CMD_AIR, d.CMD_AIR]  # no ULR
    assert hss.kme is None and "refused" in net.kme_events
    assert net.outcomes[-1].outcome == "rejected" and net.outcomes[-1].emm_cause == 6
    assert cnn.table.procedures == 0


def test_pair_not_allowed_and_device_unknown_are_illegal_me() -> None:
    for known in (True, False):
        _, hss, ue, net = make()
        hss.allowed.clear()
        if not known:
            hss.devices.clear()
        dl = net.up(ue.attach_request())
        dl = net.up(ue.auth_response(ue.receive(dl)))  # type: ignore[arg-type]
        dl = net.up(ue.smc_complete(dl))  # type: ignore[arg-type]
        rej = ue.receive(dl)  # type: ignore[arg-type]
        assert rej.name == "attach_reject" and rej["emm_cause"] == 6, known
        assert hss.kme is None and len(hss.requests) == 2


def test_hss_failures_map_to_emm_causes() -> None:
    cases = [
        ((d.VENDOR_3GPP, d.DIAMETER_ERROR_USER_UNKNOWN), EmmCause.EPS_AND_NON_EPS_SERVICES_NOT_ALLOWED),
        ((d.VENDOR_3GPP, d.DIAMETER_ERROR_ROAMING_NOT_ALLOWED), EmmCause.PLMN_NOT_ALLOWED),
        ((d.VENDOR_3GPP, d.DIAMETER_AUTHENTICATION_DATA_UNAVAILABLE), EmmCause.NETWORK_FAILURE),
        ((0, d.DIAMETER_TOO_BUSY), EmmCause.CONGESTION),
        ((0, d.DIAMETER_UNABLE_TO_COMPLY), EmmCause.NETWORK_FAILURE),
        ((0, d.DIAMETER_AVP_UNSUPPORTED), EmmCause.NETWORK_FAILURE),  # base 5001 is not "user unknown"
    ]
    for forced, cause in cases:
        _, hss, ue, net = make()
        hss.force.append(forced)
        dl = net.up(ue.attach_request())
        rej = decode(dl)  # type: ignore[arg-type]
        assert rej.name == "attach_reject" and rej["emm_cause"] == cause, forced
        assert net.outcomes[-1].outcome == "rejected"


def test_hss_timeout_is_network_failure() -> None:
    _, hss, ue, net = make()
    hss.force.append("drop")
    assert net.up(ue.attach_request()) is None
    (held,) = net.held
    net.run(net.cnn.s6a_failed(held.key, held.token, "timeout"))
    rej = decode(net.downlink[-1])
    assert rej.name == "attach_reject" and rej["emm_cause"] == EmmCause.NETWORK_FAILURE
    # a late answer for the finished procedure is ignored
    late = Message.answer_to(held.request, [("Result-Code", 2001)])
    assert net.cnn.s6a_answer(held.key, held.token, codec.decode(codec.encode(late))) == []


def test_hss_refuses_the_kme_at_ulr() -> None:
    _, hss, ue, net = make()
    dl = net.up(ue.attach_request())
    dl = net.up(ue.auth_response(ue.receive(dl)))  # type: ignore[arg-type]
    dl = net.up(ue.smc_complete(dl))  # type: ignore[arg-type]
    dl = net.up(ue.kme_response(ue.receive(dl)))  # type: ignore[arg-type]
    dl = net.up(ue.auth_response(ue.receive(dl)))  # type: ignore[arg-type]
    hss.tokens.clear()  # the token is no longer valid at the HSS: 5903
    dl = net.up(ue.smc_complete(dl))  # type: ignore[arg-type]
    rej = ue.receive(dl)  # type: ignore[arg-type]
    assert rej.name == "attach_reject" and rej["emm_cause"] == EmmCause.NETWORK_FAILURE
    assert net.kme_events == ["issued", "refused"]


def test_retransmission_then_give_up_releases_the_ue() -> None:
    cnn, _, ue, net = make(max_retransmissions=2)
    first = net.up(ue.attach_request())
    assert net.timers[net.key].name == "T3460" and net.timers[net.key].seconds == 1.0
    again = net.fire_timer()
    assert again == first  # a plain Authentication Request is resent as it was
    assert net.fire_timer() == first
    assert net.fire_timer() is None  # third expiry with 2 retransmissions allowed: give up
    assert net.outcomes[-1].outcome == "timeout" and net.released and cnn.table.procedures == 0
    assert "procedure_timeout" in net.events()


def test_protected_retransmission_uses_a_new_count() -> None:
    _, _, ue, net = make()
    dl = net.up(ue.attach_request())
    dl = net.up(ue.auth_response(ue.receive(dl)))  # type: ignore[arg-type]
    dl = net.up(ue.smc_complete(dl))  # type: ignore[arg-type]
    cmd = ue.receive(dl)  # type: ignore[arg-type]
    again = net.fire_timer()
    assert net.timers[net.key].name == "T_KME"
    assert again is not None and again != dl
    assert ue.receive(again).name == "kme_provisioning_command" == cmd.name  # the UE accepts it (new COUNT)


def test_bad_mac_and_replay_are_dropped_and_counted() -> None:
    cnn, _, ue, net = make()
    dl = net.up(ue.attach_request())
    dl = net.up(ue.auth_response(ue.receive(dl)))  # type: ignore[arg-type]
    dl = net.up(ue.smc_complete(dl))  # type: ignore[arg-type]
    cmd = ue.receive(dl)  # type: ignore[arg-type]
    rsp = ue.kme_response(cmd)
    bad = rsp[:2] + bytes((rsp[2] ^ 0xFF,)) + rsp[3:]
    assert net.up(bad) is None
    assert cnn.stats.integrity_failures == 1
    dl = net.up(rsp)
    assert ue.receive(dl).name == "authentication_request"  # type: ignore[arg-type]
    assert net.up(rsp) is None  # the same KME Provisioning Response again: replay
    assert cnn.stats.replays == 1
    # a plain (unprotected) message once security is on is dropped too
    assert net.up(encode(NasMessage("kme_provisioning_response", {"me_rsp": bytes(16)}))) is None
    assert cnn.stats.unprotected_dropped == 1
    assert cnn.table.procedure(net.key).state == State.AUTH  # type: ignore[union-attr]


def test_malformed_and_unexpected_pdus() -> None:
    cnn, _, ue, net = make()
    # unknown message type: EMM STATUS #97
    dl = net.up(bytes((0x07, 0x6F)))
    assert decode(dl).name == "emm_status" and decode(dl)["emm_cause"] == 97  # type: ignore[arg-type]
    # truncated mandatory IE: #96
    dl = net.up(ue.attach_request()[:5])
    assert decode(dl)["emm_cause"] == 96  # type: ignore[arg-type]
    # not EMM at all / too short: ignored
    assert net.up(b"\x02\x00\x01") is None and net.up(b"") is None
    # a message for a UE id without a procedure: ERROR frame "unknown UE id"
    other = link_key(1, 99)
    assert net.up(encode(NasMessage("authentication_response", {"res": bytes(8)})), key=other) is None
    assert net.link_errors[-1].cause == ErrorCause.UNKNOWN_UE_ID
    # a valid message in the wrong state: EMM STATUS #98, the procedure carries on
    net.up(ue.attach_request())
    dl = net.up(encode(NasMessage("identity_response", {"mobile_identity": imsi_identity(IMSI)})))
    assert decode(dl)["emm_cause"] == 98  # type: ignore[arg-type]
    assert cnn.table.procedure(net.key).state == State.AUTH  # type: ignore[union-attr]


def test_two_ues_on_one_link_are_independent() -> None:
    cnn, _, ue1, net1 = make()
    ue2 = ScriptedUe(imsi="001010000000002", imei="356938035643817")
    hss2 = ScriptedHss(imsi=ue2.imsi)
    new_pair(hss2, ue2)
    net2 = Net(cnn, hss2, key=link_key(1, 8))
    a1 = net1.up(ue1.attach_request())
    a2 = net2.up(ue2.attach_request())
    assert a1 is not None and a2 is not None and cnn.table.procedures == 2
    net2.up(b"\x07\x41\x00")  # garbage for UE 2 does not disturb UE 1
    accept = attach_until_accept_from(net1, ue1, net1.up(ue1.auth_response(ue1.receive(a1))))
    net1.up(ue1.attach_complete(accept))
    assert net1.outcomes[-1].outcome == "ok"


def test_link_release_drops_the_procedure_and_late_answers() -> None:
    cnn, hss, ue, net = make()
    net.hold_s6a = True
    net.up(ue.attach_request())
    (held,) = net.held
    net.run(cnn.link_released(net.key))
    assert cnn.table.procedures == 0 and net.outcomes[-1].outcome == "failed"
    answer = hss.answer(held.request)
    assert answer is not None and cnn.s6a_answer(held.key, held.token, answer) == []
    assert cnn.stats.stale_events == 1


def test_new_attach_request_restarts_the_procedure() -> None:
    cnn, _, ue, net = make()
    net.up(ue.attach_request())
    dl = net.up(ue.attach_request())
    assert decode(dl).name == "authentication_request"  # type: ignore[arg-type]
    assert net.outcomes[-1].outcome == "failed" and cnn.table.procedures == 1


def test_table_full_is_congestion() -> None:
    cnn, _, ue, net = make(max_ue_contexts=1)
    net.up(ue.attach_request())
    other = ScriptedUe(imsi="001010000000002")
    dl = net.up(other.attach_request(), key=link_key(1, 8))
    rej = decode(dl)  # type: ignore[arg-type]
    assert rej.name == "attach_reject" and rej["emm_cause"] == EmmCause.CONGESTION
    assert cnn.stats.refused_full == 1


def test_ue_without_eia2_is_refused() -> None:
    from kmed.nas.ies import ue_network_capability

    _, _, ue, net = make()
    ue.cap = ue_network_capability(eea=(0,), eia=(1,))
    rej = decode(net.up(ue.attach_request()))  # type: ignore[arg-type]
    assert rej.name == "attach_reject" and rej["emm_cause"] == EmmCause.UE_SECURITY_CAPABILITIES_MISMATCH


def test_binding_indicator_and_ksi() -> None:
    _, hss, ue, net = make()
    dl = net.up(ue.attach_request())
    first = ue.receive(dl)  # type: ignore[arg-type]
    assert first["kme_binding_indicator"] == KmeBindingIndicator.NOT_BOUND
    dl = net.up(ue.auth_response(first))
    dl = net.up(ue.smc_complete(dl))  # type: ignore[arg-type]
    dl = net.up(ue.kme_response(ue.receive(dl)))  # type: ignore[arg-type]
    second = ue.receive(dl)  # type: ignore[arg-type]
    assert second["kme_binding_indicator"] == KmeBindingIndicator.BOUND_TO_NEW
    assert second["nas_key_set_identifier"] != first["nas_key_set_identifier"]
    smc = net.up(ue.auth_response(second))
    assert decode(smc).get("imeisv_request") is None  # type: ignore[arg-type]
    net.up(ue.smc_complete(smc))  # type: ignore[arg-type]
    # matching re-attach: vector bound to the current KME
    net.up(ue.attach_complete(ue.receive(net.downlink[-1])))
    first = ue.receive(net.up(ue.attach_request()))  # type: ignore[arg-type]
    assert first["kme_binding_indicator"] == KmeBindingIndicator.BOUND_TO_CURRENT
    assert kmefn.fingerprint(hss.kme or b"x") == kmefn.fingerprint(ue.kme or b"y")


def test_helpers() -> None:
    assert gprs_timer(3240) == 0x49  # 54 min = 9 x 6 min (TS 24.008 10.5.7.3)
    assert gprs_timer(10) == 0x05 and gprs_timer(120) == 0x22 and gprs_timer(0) == 0xE0
    assert gprs_timer(60 * 31) == 0x3F and gprs_timer(99999) == 0x5F
    assert imei_from_imeisv(IMEI[:14] + "07") == (IMEI, "07")


def test_log_level_drops_the_log_actions_below_it() -> None:
    """``log_level`` (the daemon's ``[log] level``): only events at or above it become Log actions;
    the procedure itself runs the same."""
    cnn, _, ue, net = make()
    cnn.set_log_level("warning")
    assert not cnn.debug
    net.up(ue.attach_complete(attach_until_accept(net, ue)))
    assert net.outcomes[-1].outcome == "ok"
    assert net.logs == []  # a clean provisioning attach logs nothing at warning
    net.up(ue.send(NasMessage("emm_status", {"emm_cause": 98})))  # a warning still comes out
    assert [log.level for log in net.logs] == ["warning"]
    cnn.debug = True
    assert cnn.debug
    with pytest.raises(ValueError, match="log level"):
        cnn.set_log_level("verbose")


def test_security_mode_command_replays_each_ues_own_capabilities() -> None:
    """The plain Security Mode Command is encoded once per (KSI, capabilities, IMEISV request):
    UEs with other capabilities still get theirs replayed (the scripted UE checks it, §5.4.3.2)."""
    cnn, _, ue1, net1 = make()
    net1.up(ue1.attach_complete(attach_until_accept(net1, ue1)))
    for n, cap in enumerate((ue_network_capability(eea=(0, 1, 2), eia=(1, 2)), ScriptedUe.cap)):
        ue = ScriptedUe(imsi=f"00101000000001{n}", imei="356938035643817", cap=cap)
        hss = ScriptedHss(imsi=ue.imsi)
        new_pair(hss, ue)
        net = Net(cnn, hss, key=link_key(1, 20 + n))
        net.up(ue.attach_complete(attach_until_accept(net, ue)))
        assert net.outcomes[-1].outcome == "ok"

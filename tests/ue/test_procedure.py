"""The UE procedure state machine (kmed.ue.procedure) against a scripted network (fakenet):
no sockets, every message checked (docs/procedure.md, TS 24.301)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.crypto import aka, ecies, kme
from kmed.nas.causes import EmmCause
from kmed.nas.codec import NasMessage, encode
from kmed.nas.identity import guti_identity, imeisv_identity, imsi_identity
from kmed.nas.ies import KmeBindingIndicator as B
from kmed.nas.security import DOWNLINK, UPLINK
from kmed.ue.me import Me, MeState
from kmed.ue.procedure import ATTACH, TAU, Done, Release, Send, SetTimer, UeProcedure
from kmed.ue.usim import Usim
from tests.ue.fakenet import IMEI, IMSI, MCC, MNC, OPC, PLMN, FakeNetwork, K, done, released, sends, timers

NONCE = bytes(range(16))


class Ue:
    """USIM + ME + procedure, with the ME's public key for the network."""

    def __init__(self, profile: str = "A", kme_held: bytes | None = None, guti: bytes | None = None,
                 kind: str = ATTACH, **kw: object) -> None:
        priv, self.pub = ecies.generate_keypair(profile)
        self.usim = Usim(IMSI, K, OPC)
        self.usim.state.guti = guti
        self.me = Me(IMEI, profile, priv, state=MeState(current_kme=kme_held, kme_imsi=IMSI if kme_held else None))
        self.proc = UeProcedure(self.usim, self.me, PLMN, kind=kind, timer_s=5.0, **kw)  # type: ignore[arg-type]


def authenticate(ue: Ue, net: FakeNetwork, binding: int = B.NOT_BOUND, bind_to: bytes | None = None) -> None:
    rsp = net.one(ue.proc.receive(net.auth_request(binding, bind_to)), "authentication_response")
    assert net.vector is not None and rsp["res"] == net.vector.xres
    net.one(ue.proc.receive(net.smc()), "security_mode_complete")


def provision(ue: Ue, net: FakeNetwork) -> bytes:
    """Steps 2 to 8: first authentication, KME Provisioning; returns the new KME."""
    authenticate(ue, net)
    rsp = net.one(ue.proc.receive(net.kme_command(ue.pub, ue.me.profile)), "kme_provisioning_response")
    assert net.new_kme is not None and rsp["me_rsp"] == kme.me_rsp(net.new_kme, net.nonce)
    assert ue.me.state.pending_kme == net.new_kme
    return net.new_kme


@pytest.mark.parametrize("profile", ["A", "B"])
def test_full_attach_with_provisioning(profile: str) -> None:
    ue, net = Ue(profile), FakeNetwork()
    actions = ue.proc.start()
    req = net.one(actions, "attach_request")
    assert req["eps_mobile_identity"] == imsi_identity(IMSI)
    assert "kme_check" not in req  # no KME held: the IE is omitted (step 1)
    assert timers(actions) == [5.0]
    # step 2: authentication, NOT_BOUND; Security Mode with the IMEISV
    rsp = net.one(ue.proc.receive(net.auth_request()), "authentication_response")
    assert net.vector is not None and rsp["res"] == net.vector.xres
    complete = net.one(ue.proc.receive(net.smc(imeisv=True)), "security_mode_complete")
    assert complete["imeisv"] == imeisv_identity(ue.me.imeisv)
    # steps 6-8
    rsp = net.one(ue.proc.receive(net.kme_command(ue.pub, profile)), "kme_provisioning_response")
    new = net.new_kme
    assert new is not None and rsp["me_rsp"] == kme.me_rsp(new, net.nonce)
    assert ue.me.state.pending_kme == new and ue.me.state.current_kme is None
    # step 10: bound re-authentication (protected with the current context)
    net.one(ue.proc.receive(net.auth_request(B.BOUND_TO_NEW, bind_to=new)), "authentication_response")
    assert ue.me.state.pending_kme == new  # not yet: the SMC proves the network's K'ASME
    net.one(ue.proc.receive(net.smc()), "security_mode_complete")
    assert ue.me.state.current_kme == new and ue.me.state.pending_kme is None
    # Attach Accept / Complete
    actions = ue.proc.receive(net.attach_accept())
    assert [m.name for m in net.read_all(actions)] == ["attach_complete"]
    d = done(actions)
    assert d is not None and released(actions) and timers(actions) == [None]
    o = d.outcome
    assert (o.result, o.emm_cause, o.kme_provisioned) == ("accepted", None, True)
    assert o.kme_fingerprint == kme.fingerprint(new) and (o.imsi, o.imei) == (IMSI, IMEI)
    assert ue.usim.state.guti == guti_identity(MCC, MNC, 1, 1, 0xC0FFEE01)
    assert ue.usim.state.last_tai == bytes.fromhex("00f110") + b"\x00\x01"
    assert o.messages[0] == "UE -> CNN attach_request" and "ME: new KME committed, previous deleted" in o.messages


@pytest.mark.parametrize("with_guti", [False, True])
def test_attach_with_matching_kme(with_guti: bool) -> None:
    held = kme.new_kme()
    guti = guti_identity(MCC, MNC, 1, 1, 0x1234) if with_guti else None
    ue, net = Ue(kme_held=held, guti=guti), FakeNetwork(kme_held=held)
    req = net.one(ue.proc.start(), "attach_request")
    identity = guti if guti is not None else imsi_identity(IMSI)
    assert req["eps_mobile_identity"] == identity
    assert req["kme_check"] == kme.kme_check(held, identity)  # over the identity value as sent
    authenticate(ue, net, B.BOUND_TO_CURRENT, bind_to=held)
    d = done(ue.proc.receive(net.attach_accept()))
    assert d is not None and d.outcome.result == "accepted"
    assert d.outcome.kme_provisioned is False and d.outcome.kme_fingerprint == kme.fingerprint(held)


def test_idle_before_commit_reverts_to_the_previous_kme() -> None:
    old = kme.new_kme()
    ue, net = Ue(kme_held=old), FakeNetwork(kme_held=b"\x01" * 32)  # mismatch: provisioning
    ue.proc.start()
    new = provision(ue, net)
    actions = ue.proc.released("link lost")  # the UE vanishes between steps 8 and 10
    d = done(actions)
    assert d is not None and d.outcome.result == "failed" and "link lost" in (d.outcome.error or "")
    assert not released(actions)  # the UE id is already gone: nothing to send
    assert ue.me.state.current_kme == old and ue.me.state.pending_kme is None and new != old
    assert d.outcome.kme_provisioned is False and d.outcome.kme_fingerprint == kme.fingerprint(old)


def test_timer_expiry_after_pending_reverts_and_retries_with_the_old_kme_check() -> None:
    old = kme.new_kme()
    ue, net = Ue(kme_held=old, max_attempts=2), FakeNetwork()
    ue.proc.start()
    provision(ue, net)
    actions = ue.proc.timer_expired()  # T3410: attempt abandoned, connection released locally
    assert released(actions) and ue.me.state.pending_kme is None
    net.ctx = None
    req = net.one(actions, "attach_request")
    assert req["kme_check"] == kme.kme_check(old, imsi_identity(IMSI))
    assert timers(actions) == [5.0]
    d = done(ue.proc.timer_expired())
    assert d is not None and d.outcome.result == "failed" and d.outcome.attempts == 2


def test_bad_mac_on_the_bound_security_mode_command_is_rejected_and_nothing_committed() -> None:
    ue, net = Ue(), FakeNetwork()
    ue.proc.start()
    new = provision(ue, net)
    net.one(ue.proc.receive(net.auth_request(B.BOUND_TO_NEW, bind_to=new)), "authentication_response")
    old_ctx = net.ctx
    smc = net.smc(kasme=b"\x07" * 32)  # the network does not hold the bound K'ASME
    net.ctx = old_ctx  # the UE answers with the context still in use
    rej = net.one(ue.proc.receive(smc), "security_mode_reject")
    assert rej["emm_cause"] == EmmCause.SECURITY_MODE_REJECTED_UNSPECIFIED
    assert ue.me.state.current_kme is None and ue.me.state.pending_kme == new
    d = done(ue.proc.abort("deadline"))
    assert d is not None and d.outcome.result == "failed" and d.outcome.kme_provisioned is False
    assert ue.me.state.pending_kme is None  # idle: reverted


@pytest.mark.parametrize("caps", [bytes((0x80, 0x20)), bytes((0xA0, 0x60))])
def test_replayed_capabilities_mismatch_is_23(caps: bytes) -> None:
    """Every UE checks the replayed capabilities: a mismatch is refused each time it is seen,
    the right value then accepted."""
    for _ in range(2):
        ue, net = Ue(), FakeNetwork()
        ue.proc.start()
        net.one(ue.proc.receive(net.auth_request()), "authentication_response")
        smc = net.smc(caps=caps)  # e.g. EEA0 / EIA2 only: not what the UE sent
        net.ctx = None
        assert net.one(ue.proc.receive(smc), "security_mode_reject")["emm_cause"] == 23
        assert not ue.proc.security_established
    ue, net = Ue(), FakeNetwork()
    ue.proc.start()
    net.one(ue.proc.receive(net.auth_request()), "authentication_response")
    net.one(ue.proc.receive(net.smc()), "security_mode_complete")
    assert ue.proc.security_established


def test_smc_with_unknown_ksi_is_rejected() -> None:
    ue, net = Ue(), FakeNetwork()
    ue.proc.start()
    net.one(ue.proc.receive(net.auth_request()), "authentication_response")
    smc = net.smc(ksi=(net.ksi + 1) % 7)
    net.ctx = None
    assert net.one(ue.proc.receive(smc), "security_mode_reject")["emm_cause"] == 24


def test_authentication_failures_20_21_26_and_the_limit_of_three() -> None:
    ue = Ue()
    ue.proc.start()
    wrong_k = FakeNetwork(k=bytes(16))
    f = wrong_k.one(ue.proc.receive(wrong_k.auth_request()), "authentication_failure")
    assert f["emm_cause"] == EmmCause.MAC_FAILURE and "auts" not in f
    net = FakeNetwork()
    net.one(ue.proc.receive(net.auth_request(sqn=1000)), "authentication_response")  # resets the count
    f = net.one(ue.proc.receive(net.auth_request(sqn=1000)), "authentication_failure")  # replayed SQN
    assert f["emm_cause"] == EmmCause.SYNCH_FAILURE and net.vector is not None
    assert aka.verify_auts(K, OPC, net.vector.rand, f["auts"]) == 1000
    f = net.one(ue.proc.receive(net.auth_request(amf=b"\x00\x00")), "authentication_failure")
    assert f["emm_cause"] == EmmCause.NON_EPS_AUTHENTICATION_UNACCEPTABLE
    actions = ue.proc.receive(wrong_k.auth_request())
    d = done(actions)
    assert d is not None and d.outcome.result == "failed" and "3 consecutive" in (d.outcome.error or "")


def test_binding_to_a_kme_the_me_lacks_fails_cleanly_with_111() -> None:
    ue, net = Ue(), FakeNetwork()
    ue.proc.start()
    f = net.one(ue.proc.receive(net.auth_request(B.BOUND_TO_CURRENT, bind_to=b"\x05" * 32)), "authentication_failure")
    assert f["emm_cause"] == EmmCause.PROTOCOL_ERROR_UNSPECIFIED


def test_after_security_plain_tampered_and_replayed_messages_are_discarded() -> None:
    ue, net = Ue(), FakeNetwork()
    ue.proc.start()
    authenticate(ue, net)
    plain_accept = encode(NasMessage("attach_reject", {"emm_cause": 6}))
    assert ue.proc.receive(plain_accept) == []  # §4.4.4.2: not integrity protected
    cmd = net.kme_command(ue.pub)
    bad = bytearray(cmd)
    bad[2] ^= 0x40  # MAC
    assert ue.proc.receive(bytes(bad)) == []
    assert ue.me.state.pending_kme is None
    net.one(ue.proc.receive(cmd), "kme_provisioning_response")
    first = ue.me.state.pending_kme
    assert ue.proc.receive(cmd) == []  # replayed NAS COUNT
    assert ue.me.state.pending_kme == first
    assert ue.proc.outcome is None


def test_kme_for_another_device_gets_emm_status_and_nothing_pending() -> None:
    ue, net = Ue(), FakeNetwork()
    ue.proc.start()
    authenticate(ue, net)
    _, other_pub = ecies.generate_keypair("A")
    st = net.one(ue.proc.receive(net.kme_command(other_pub)), "emm_status")
    assert st["emm_cause"] == EmmCause.PROTOCOL_ERROR_UNSPECIFIED and ue.me.state.pending_kme is None


def test_messages_refused_before_security() -> None:
    ue, net = Ue(), FakeNetwork()
    ue.proc.start()
    accept = NasMessage("attach_accept", {
        "eps_attach_result": 1, "t3412_value": 1, "tai_list": bytes(6), "esm_message_container": b"\x52\x01\xc1"})
    assert ue.proc.receive(encode(accept)) == []
    assert ue.proc.receive(encode(NasMessage("identity_request", {"identity_type": 2}))) == []  # IMEI
    rsp = net.one(ue.proc.receive(encode(NasMessage("identity_request", {"identity_type": 1}))), "identity_response")
    assert rsp["mobile_identity"] == imsi_identity(IMSI)
    st = net.one(ue.proc.receive(b"\x07\x99"), "emm_status")  # unknown message type: #97
    assert st["emm_cause"] == EmmCause.MESSAGE_TYPE_NON_EXISTENT
    assert ue.proc.receive(b"\x02\x41") == []  # not EMM: ignored (§7.2)


@pytest.mark.parametrize("cause", [6, 3])
def test_attach_reject_deletes_the_guti(cause: int) -> None:
    ue, net = Ue(guti=guti_identity(MCC, MNC, 1, 1, 7)), FakeNetwork()
    ue.proc.start()
    authenticate(ue, net)
    d = done(ue.proc.receive(net.attach_reject(cause)))
    assert d is not None and (d.outcome.result, d.outcome.emm_cause) == ("rejected", cause)
    assert ue.usim.state.guti is None


def test_attach_reject_17_keeps_the_guti_and_authentication_reject() -> None:
    guti = guti_identity(MCC, MNC, 1, 1, 7)
    ue, net = Ue(guti=guti), FakeNetwork()
    ue.proc.start()
    d = done(ue.proc.receive(net.attach_reject(17)))
    assert d is not None and d.outcome.emm_cause == 17 and ue.usim.state.guti == guti
    ue2 = Ue(guti=guti)
    ue2.proc.start()
    d = done(ue2.proc.receive(encode(NasMessage("authentication_reject", {}))))
    assert d is not None and d.outcome.result == "rejected" and d.outcome.emm_cause is None
    assert ue2.usim.state.guti is None


def test_tau_with_kme_check_over_the_guti() -> None:
    held = kme.new_kme()
    guti = guti_identity(MCC, MNC, 1, 1, 0xABCDEF)
    ue, net = Ue(kme_held=held, guti=guti, kind=TAU), FakeNetwork(kme_held=held)
    req = net.one(ue.proc.start(), "tracking_area_update_request")
    assert req["old_guti"] == guti and req["kme_check"] == kme.kme_check(held, guti)
    authenticate(ue, net, B.BOUND_TO_CURRENT, bind_to=held)
    new_guti = guti_identity(MCC, MNC, 1, 1, 0x42)
    actions = ue.proc.receive(net.dl(NasMessage("tracking_area_update_accept", {"eps_update_result": 0,
                                                                                "guti": new_guti})))
    assert [m.name for m in net.read_all(actions)] == ["tracking_area_update_complete"]
    d = done(actions)
    assert d is not None and d.outcome.result == "accepted" and ue.usim.state.guti == new_guti


def test_tau_without_guti_fails_and_tau_reject_9_deletes_it() -> None:
    ue = Ue(kind=TAU)
    actions = ue.proc.start()
    d = done(actions)
    assert d is not None and d.outcome.result == "failed" and not sends(actions)
    ue = Ue(kind=TAU, guti=guti_identity(MCC, MNC, 1, 1, 1))
    ue.proc.start()
    d = done(ue.proc.receive(encode(NasMessage("tracking_area_update_reject", {"emm_cause": 9}))))
    assert d is not None and d.outcome.emm_cause == 9 and ue.usim.state.guti is None


def test_events_after_the_end_are_ignored() -> None:
    ue, net = Ue(), FakeNetwork()
    ue.proc.start()
    assert done(ue.proc.receive(net.attach_reject(17))) is not None
    assert ue.proc.receive(net.auth_request()) == [] and ue.proc.timer_expired() == []
    assert ue.proc.released() == [] and ue.proc.abort("x") == []


def test_no_trace_keeps_no_messages() -> None:
    ue, net = Ue(trace=False), FakeNetwork()
    ue.proc.start()
    d = done(ue.proc.receive(net.attach_reject(17)))
    assert d is not None and d.outcome.messages == []


def test_downlink_context_direction_is_checked() -> None:
    """A PDU protected in the uplink direction (reflected back) does not verify."""
    ue, net = Ue(), FakeNetwork()
    ue.proc.start()
    authenticate(ue, net)
    assert net.ctx is not None
    reflected = net.ctx.protect(encode(NasMessage("attach_reject", {"emm_cause": 6})), UPLINK)
    assert ue.proc.receive(reflected) == [] and ue.proc.outcome is None
    st = net.ctx.protect(encode(NasMessage("attach_reject", {"emm_cause": 6})), DOWNLINK)
    assert done(ue.proc.receive(st)) is not None  # the same message in the right direction is taken


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.tuples(st.integers(0, 200), st.integers(0, 255))),
                min_size=1, max_size=6),
       st.integers(0, 2))
def test_garbage_and_mutated_downlink_never_crashes(items: list[object], stage: int) -> None:
    """Random PDUs and single-octet mutations of valid ones, at three stages of the attach:
    the UE answers or discards (TS 24.301 §7), it never raises."""
    ue, net = Ue(), FakeNetwork()
    ue.proc.start()
    valid = [net.auth_request()]
    if stage >= 1:
        net.read_all(ue.proc.receive(valid[0]))
        valid.append(net.smc())
        net.read_all(ue.proc.receive(valid[1]))
    if stage >= 2:
        valid += [net.kme_command(ue.pub), net.attach_accept(), net.attach_reject(6)]
    for item in items:
        if isinstance(item, bytes):
            pdu = item
        else:
            pos, value = item  # type: ignore[misc]
            base = bytearray(valid[pos % len(valid)])
            base[pos % len(base)] = value
            pdu = bytes(base)
        for action in ue.proc.receive(pdu):
            assert isinstance(action, Send | SetTimer | Release | Done)


def test_retransmitted_challenge_gets_the_stored_res_without_the_usim() -> None:
    """TS 24.301 §5.4.2.4: the same RAND again (the CNN's T3460 retransmission) → same RES,
    the USIM is not asked again (its SQN would now be a replay)."""
    ue, net = Ue(), FakeNetwork()
    ue.proc.start()
    r1 = net.one(ue.proc.receive(net.auth_request()), "authentication_response")
    sqn_after = ue.usim.state.sqn_ms
    r2 = net.one(ue.proc.receive(net.retransmit()), "authentication_response")
    assert r1["res"] == r2["res"] and ue.usim.state.sqn_ms == sqn_after
    net.one(ue.proc.receive(net.smc()), "security_mode_complete")
    net.one(ue.proc.receive(net.kme_command(ue.pub)), "kme_provisioning_response")
    net.one(ue.proc.receive(net.retransmit()), "kme_provisioning_response")  # same KME, same ME_Rsp
    new = net.new_kme
    assert new is not None and ue.me.state.pending_kme == new
    b1 = net.one(ue.proc.receive(net.auth_request(B.BOUND_TO_NEW, bind_to=new)), "authentication_response")
    b2 = net.one(ue.proc.receive(net.retransmit()), "authentication_response")  # protected, next COUNT
    assert b1["res"] == b2["res"]
    net.one(ue.proc.receive(net.smc()), "security_mode_complete")
    assert ue.me.state.current_kme == new


def test_retransmitted_security_mode_command_is_answered_replay_discarded() -> None:
    ue, net = Ue(), FakeNetwork()
    ue.proc.start()
    net.one(ue.proc.receive(net.auth_request()), "authentication_response")
    first = net.smc()
    c1 = net.one(ue.proc.receive(first), "security_mode_complete")  # UL COUNT 0
    c2 = net.one(ue.proc.receive(net.retransmit()), "security_mode_complete")  # DL COUNT 1 → UL COUNT 1
    assert c1["imeisv"] == c2["imeisv"]
    assert net.ctx is not None and net.ctx.ul_count == 2
    assert ue.proc.receive(first) == []  # the COUNT 0 command replayed: discarded, context kept
    net.one(ue.proc.receive(net.kme_command(ue.pub)), "kme_provisioning_response")

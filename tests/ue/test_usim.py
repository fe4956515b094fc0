"""The USIM (kmed.ue.usim): MAC-A, AMF separation bit, SQN array and Δ (TS 33.102 §6.3.3, Annex C).

The official MILENAGE sets (TS 35.207 §4 / TS 35.208 §4.3) give RES/CK/IK for a known AUTN;
the other tests build AUTNs with kmed.crypto.aka (the HSS side) and check the USIM's answers
with the HSS's own ``aka.verify_auts``.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.crypto import aka
from kmed.crypto.milenage import milenage
from kmed.nas.causes import EmmCause
from kmed.ue.state import StateError
from kmed.ue.usim import (
    DEFAULT_DELTA,
    AkaFailure,
    AkaSuccess,
    Usim,
    UsimState,
    load_usim_state,
    save_usim_state,
)
from tests.crypto.vectors import MILENAGE_SETS

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
IMSI = "001010000000001"
PLMN = bytes.fromhex("00f110")
AMF = bytes.fromhex("8000")
IND_BITS = 5


def sqn(seq: int, ind: int) -> int:
    return (seq << IND_BITS) | ind


def vector(s: int, amf: bytes = AMF) -> aka.EutranVector:
    return aka.generate_eutran_vector(K, OPC, s, amf, PLMN)


def official_autn(v: dict[str, str]) -> bytes:
    """AUTN = SQN ⊕ AK ‖ AMF ‖ MAC-A (TS 33.102 §6.3.2) from a test set's SQN, f5, AMF and f1."""
    conc = bytes(a ^ b for a, b in zip(bytes.fromhex(v["sqn"]), bytes.fromhex(v["f5"]), strict=True))
    return conc + bytes.fromhex(v["amf"]) + bytes.fromhex(v["f1"])


@pytest.mark.parametrize("n", [1, 2, 4, 5])
def test_official_milenage_sets_give_res_ck_ik(n: int) -> None:
    v = MILENAGE_SETS[n]
    s = int(v["sqn"], 16)
    assert int(v["amf"][:2], 16) & 0x80, "these sets have the separation bit set"
    state = UsimState.fresh(IND_BITS)
    state.sqn_ms = s - (1 << IND_BITS)  # the USIM has seen the previous SEQ: SQN is within Δ
    usim = Usim(IMSI, bytes.fromhex(v["k"]), bytes.fromhex(v["opc"]), state=state)
    r = usim.authenticate(bytes.fromhex(v["rand"]), official_autn(v))
    assert isinstance(r, AkaSuccess)
    assert (r.res, r.ck, r.ik) == (bytes.fromhex(v["f2"]), bytes.fromhex(v["f3"]), bytes.fromhex(v["f4"]))
    assert r.sqn == s and usim.state.sqn_ms == s
    assert usim.state.seq_ms[s & 31] == s >> IND_BITS


@pytest.mark.parametrize("n", [3, 6])
def test_official_sets_without_separation_bit_are_non_eps(n: int) -> None:
    """Sets 3 (AMF 725c) and 6 (AMF 4464) have AMF bit 0 clear: TS 33.401 §6.1.1 → #26."""
    v = MILENAGE_SETS[n]
    assert not int(v["amf"][:2], 16) & 0x80
    state = UsimState.fresh(IND_BITS)
    state.sqn_ms = int(v["sqn"], 16) - 32
    usim = Usim(IMSI, bytes.fromhex(v["k"]), bytes.fromhex(v["opc"]), state=state)
    before = (list(state.seq_ms), state.sqn_ms)
    r = usim.authenticate(bytes.fromhex(v["rand"]), official_autn(v))
    assert r == AkaFailure(EmmCause.NON_EPS_AUTHENTICATION_UNACCEPTABLE)
    assert (usim.state.seq_ms, usim.state.sqn_ms) == before


def test_fresh_usim_accepts_increasing_sqns_and_res_matches_xres() -> None:
    usim = Usim(IMSI, K, OPC)
    for i in range(1, 70):  # wraps the IND cycle twice
        v = vector(sqn(i, i % 32))
        r = usim.authenticate(v.rand, v.autn)
        assert isinstance(r, AkaSuccess)
        assert r.res == v.xres and r.ck == v.ck and r.ik == v.ik
        assert usim.state.sqn_ms == v.sqn


def test_replayed_sqn_is_a_synch_failure_whose_auts_the_hss_accepts() -> None:
    usim = Usim(IMSI, K, OPC)
    first = vector(sqn(3, 1))
    assert isinstance(usim.authenticate(first.rand, first.autn), AkaSuccess)
    later = vector(sqn(5, 2))
    assert isinstance(usim.authenticate(later.rand, later.autn), AkaSuccess)
    state_before = (list(usim.state.seq_ms), usim.state.sqn_ms)
    r = usim.authenticate(first.rand, first.autn)  # the same AUTN again
    assert isinstance(r, AkaFailure) and r.cause == EmmCause.SYNCH_FAILURE
    assert r.auts is not None and len(r.auts) == 14
    assert aka.verify_auts(K, OPC, first.rand, r.auts) == later.sqn  # SQN_MS = highest accepted
    assert (usim.state.seq_ms, usim.state.sqn_ms) == state_before


def test_same_slot_lower_or_equal_seq_rejected_other_slot_accepted() -> None:
    """Annex C.2.2: per-IND array, so a vector delivered late in another slot is still accepted."""
    usim = Usim(IMSI, K, OPC)
    for s in (sqn(10, 4), sqn(8, 7)):  # SEQ 8 after SEQ 10, but IND 7 was never used
        v = vector(s)
        assert isinstance(usim.authenticate(v.rand, v.autn), AkaSuccess)
    assert usim.state.sqn_ms == sqn(10, 4)
    for s in (sqn(9, 4), sqn(10, 4), sqn(8, 7)):
        v = vector(s)
        r = usim.authenticate(v.rand, v.autn)
        assert isinstance(r, AkaFailure) and r.cause == EmmCause.SYNCH_FAILURE


def test_delta_limit_on_the_jump_from_the_highest_seq() -> None:
    """Annex C.2.1: SEQ − SEQ_MS > Δ is refused; exactly Δ is accepted."""
    usim = Usim(IMSI, K, OPC, delta=100)
    v = vector(sqn(50, 0))
    assert isinstance(usim.authenticate(v.rand, v.autn), AkaSuccess)
    too_far = vector(sqn(151, 1))
    r = usim.authenticate(too_far.rand, too_far.autn)
    assert isinstance(r, AkaFailure) and r.cause == EmmCause.SYNCH_FAILURE
    assert r.auts is not None and aka.verify_auts(K, OPC, too_far.rand, r.auts) == sqn(50, 0)
    edge = vector(sqn(150, 1))
    assert isinstance(usim.authenticate(edge.rand, edge.autn), AkaSuccess)


def test_default_delta_is_2_pow_28() -> None:
    assert DEFAULT_DELTA == 1 << 28
    usim = Usim(IMSI, K, OPC)
    v = vector(sqn((1 << 28) + 1, 0))  # from a fresh USIM (SEQ_MS 0)
    r = usim.authenticate(v.rand, v.autn)
    assert isinstance(r, AkaFailure) and r.cause == EmmCause.SYNCH_FAILURE
    assert r.auts is not None and aka.verify_auts(K, OPC, v.rand, r.auts) == 0


def test_mac_failure_leaves_state_alone() -> None:
    usim = Usim(IMSI, K, OPC)
    v = vector(sqn(1, 1))
    bad = v.autn[:-1] + bytes((v.autn[-1] ^ 1,))
    assert usim.authenticate(v.rand, bad) == AkaFailure(EmmCause.MAC_FAILURE)
    other_k = Usim(IMSI, bytes(16), OPC)
    assert other_k.authenticate(v.rand, v.autn) == AkaFailure(EmmCause.MAC_FAILURE)
    assert usim.state.sqn_ms == 0 and not any(usim.state.seq_ms)


def test_amf_separation_bit_from_generated_vector() -> None:
    """A vector made with the separation bit cleared (as a UMTS AuC would) is refused with #26."""
    usim = Usim(IMSI, K, OPC)
    v = vector(sqn(1, 1))
    m = milenage(K, OPC, v.rand, sqn(1, 1).to_bytes(6, "big"), b"\x00\x00")
    umts_autn = bytes(a ^ b for a, b in zip(sqn(1, 1).to_bytes(6, "big"), m.ak, strict=True)) + b"\x00\x00" + m.mac_a
    assert usim.authenticate(v.rand, umts_autn) == AkaFailure(EmmCause.NON_EPS_AUTHENTICATION_UNACCEPTABLE)
    assert usim.state.sqn_ms == 0


def test_state_is_saved_before_res_is_returned() -> None:
    saved: list[int] = []

    def save(state: UsimState) -> None:
        saved.append(state.sqn_ms)
        raise OSError("disk full")

    usim = Usim(IMSI, K, OPC, save=save)
    v = vector(sqn(1, 1))
    with pytest.raises(OSError):
        usim.authenticate(v.rand, v.autn)  # no RES without the state on disk
    assert saved == [sqn(1, 1)]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(0, 31)), min_size=1, max_size=25))
def test_no_sqn_is_ever_accepted_twice(pairs: list[tuple[int, int]]) -> None:
    usim = Usim(IMSI, K, OPC)
    accepted: set[int] = set()
    for seq, ind in pairs:
        v = vector(sqn(seq, ind))
        r = usim.authenticate(v.rand, v.autn)
        if isinstance(r, AkaSuccess):
            assert v.sqn not in accepted
            assert seq > max((a >> IND_BITS for a in accepted if a & 31 == ind), default=0)
            accepted.add(v.sqn)
        else:
            assert r.cause == EmmCause.SYNCH_FAILURE and r.auts is not None
            assert aka.verify_auts(K, OPC, v.rand, r.auts) == max(accepted, default=0)
    assert usim.state.sqn_ms == max(accepted, default=0)


# --- persistence ------------------------------------------------------------------------------


def test_state_round_trip_and_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "usim" / "state.json"
    usim = Usim(IMSI, K, OPC, state=load_usim_state(path, IMSI, IND_BITS),
                save=lambda s: save_usim_state(path, IMSI, s))
    v = vector(sqn(7, 3))
    assert isinstance(usim.authenticate(v.rand, v.autn), AkaSuccess)
    guti = bytes.fromhex("f600f110000101c0ffee01")
    usim.set_location(guti, bytes.fromhex("00f1100001"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = load_usim_state(path, IMSI, IND_BITS)
    assert again.sqn_ms == sqn(7, 3) and again.seq_ms[3] == 7
    assert again.guti == guti and again.last_tai == bytes.fromhex("00f1100001")
    usim2 = Usim(IMSI, K, OPC, state=again)
    r = usim2.authenticate(v.rand, v.autn)  # a replay across a power cycle
    assert isinstance(r, AkaFailure) and r.cause == EmmCause.SYNCH_FAILURE
    assert b"465b5ce8" not in path.read_bytes()  # K is config, never state


def test_state_of_another_imsi_or_ind_length_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_usim_state(path, IMSI, UsimState.fresh(IND_BITS))
    with pytest.raises(StateError, match="another IMSI"):
        load_usim_state(path, "001010000000002", IND_BITS)
    with pytest.raises(StateError, match="ind_bits"):
        load_usim_state(path, IMSI, 4)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"imsi": "001010000000001", "ind_bits": 5, "seq_ms": [1], "sqn_ms": 0}',
     b'{"imsi": "001010000000001", "ind_bits": 5, "seq_ms": ' + str([0] * 32).encode() + b', "sqn_ms": -1}',
     b'{"imsi": "001010000000001", "ind_bits": 5, "seq_ms": ' + str([0] * 32).encode()
     + b', "sqn_ms": 0, "guti": "zz"}'],
)
def test_malformed_state_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateError, match=re.escape(str(path))):
        load_usim_state(path, IMSI, IND_BITS)


def test_forget_location() -> None:
    saves: list[bytes | None] = []
    usim = Usim(IMSI, K, OPC, save=lambda s: saves.append(s.guti))
    usim.set_location(b"\xf6" + bytes(10))
    usim.forget_location()
    usim.forget_location()  # nothing to do: no write
    assert usim.state.guti is None and saves == [b"\xf6" + bytes(10), None]

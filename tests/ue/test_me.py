"""The ME (kmed.ue.me): KME receive / commit / revert (seed steps 7, 10), K'ASME per binding,
persistence (atomic, 0600) and a USIM moved between MEs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from kmed.crypto import ecies, kme
from kmed.nas.identity import imeisv_identity
from kmed.nas.ies import KmeBindingIndicator
from kmed.ue import state as state_mod
from kmed.ue.me import KmeDecryptError, KmeUnavailable, Me, MeState, imeisv_of, load_me_state, save_me_state
from kmed.ue.state import StateError

IMEI = "356938035643809"
IMSI = "001010000000001"
NONCE = bytes(range(16))
KASME = bytes(range(32, 64))


def make_me(profile: str = "A", path: Path | None = None) -> tuple[Me, bytes]:
    priv, pub = ecies.generate_keypair(profile)
    state = load_me_state(path, IMEI) if path is not None else None
    save = (lambda s: save_me_state(path, IMEI, s)) if path is not None else None
    return Me(IMEI, profile, priv, state=state, save=save), pub


def provision(me: Me, pub: bytes, new: bytes | None = None) -> tuple[bytes, bytes]:
    new = new or kme.new_kme()
    rsp = me.receive_kme(ecies.encrypt(me.profile, pub, new), me.profile, NONCE, IMSI)
    return new, rsp


def test_imeisv_is_the_14_digits_and_the_svn() -> None:
    assert imeisv_of(IMEI, "07") == "35693803564380" + "07"
    with pytest.raises(ValueError):
        imeisv_of(IMEI, "7")


@pytest.mark.parametrize("profile", ["A", "B"])
def test_receive_then_commit(profile: str) -> None:
    me, pub = make_me(profile)
    assert me.kme_for_check(IMSI) is None and me.current_fingerprint() is None
    new, rsp = provision(me, pub)
    assert rsp == kme.me_rsp(new, NONCE)  # step 8 computed with the received KME
    assert me.state.pending_kme == new and me.state.current_kme is None
    assert me.kasme_for(KmeBindingIndicator.BOUND_TO_NEW, KASME) == kme.bound_kasme(KASME, new)
    assert me.commit_pending() is True
    assert me.state.current_kme == new and me.state.pending_kme is None
    assert me.current_fingerprint() == kme.fingerprint(new)
    assert me.kme_for_check(IMSI) == new
    assert me.kme_for_check("001010000000002") is None  # another USIM: no KME_Check
    assert me.commit_pending() is False


def test_previous_kept_until_commit_then_deleted_and_revert_keeps_it() -> None:
    me, pub = make_me()
    old, _ = provision(me, pub)
    me.commit_pending()
    new, _ = provision(me, pub)
    # step 7: the previous KME is kept while the new one is pending
    assert me.kasme_for(KmeBindingIndicator.BOUND_TO_CURRENT, KASME) == kme.bound_kasme(KASME, old)
    assert me.kasme_for(KmeBindingIndicator.BOUND_TO_NEW, KASME) == kme.bound_kasme(KASME, new)
    assert me.revert_pending() is True
    assert me.state.current_kme == old and me.state.pending_kme is None
    assert me.revert_pending() is False
    newer, _ = provision(me, pub)
    me.commit_pending()
    assert me.state.current_kme == newer and old not in (me.state.current_kme, me.state.pending_kme)


def test_fingerprint_follows_the_current_kme_and_factory_reset_erases_it(tmp_path: Path) -> None:
    path = tmp_path / "me" / "state.json"
    me, pub = make_me(path=path)
    assert me.current_fingerprint() is None
    first, _ = provision(me, pub)
    me.commit_pending()
    assert me.current_fingerprint() == kme.fingerprint(first)
    second, _ = provision(me, pub)
    me.commit_pending()
    assert me.current_fingerprint() == kme.fingerprint(second) != kme.fingerprint(first)
    me.state = MeState(current_kme=first, kme_imsi=IMSI)  # state replaced from outside (restore)
    assert me.current_fingerprint() == kme.fingerprint(first)
    assert me.imeisv_identity == imeisv_identity(me.imeisv)
    me.factory_reset()
    assert me._fingerprint is None  # the erased KME is not kept in memory either
    assert me.current_fingerprint() is None and me.kme_for_check(IMSI) is None
    assert load_me_state(path, IMEI).current_kme is None  # the reset is saved


def test_kasme_for_each_binding_and_missing_keys() -> None:
    me, _ = make_me()
    assert me.kasme_for(KmeBindingIndicator.NOT_BOUND, KASME) == KASME
    for binding in (KmeBindingIndicator.BOUND_TO_CURRENT, KmeBindingIndicator.BOUND_TO_NEW, 3):
        with pytest.raises(KmeUnavailable):
            me.kasme_for(binding, KASME)


def test_kme_for_another_device_or_tampered_does_not_decrypt() -> None:
    me, pub = make_me("A")
    _, other_pub = ecies.generate_keypair("A")
    with pytest.raises(KmeDecryptError):
        me.receive_kme(ecies.encrypt("A", other_pub, kme.new_kme()), "A", NONCE, IMSI)
    blob = bytearray(ecies.encrypt("A", pub, kme.new_kme()))
    blob[40] ^= 1
    with pytest.raises(KmeDecryptError):
        me.receive_kme(bytes(blob), "A", NONCE, IMSI)
    with pytest.raises(KmeDecryptError, match="profile"):
        me.receive_kme(ecies.encrypt("A", pub, kme.new_kme()), "B", NONCE, IMSI)
    with pytest.raises(KmeDecryptError, match="octets"):
        me.receive_kme(ecies.encrypt("A", pub, b"short"), "A", NONCE, IMSI)
    with pytest.raises(KmeDecryptError):
        me.receive_kme(b"\x00" * 5, "A", NONCE, IMSI)
    assert me.state == MeState()


def test_from_pem() -> None:
    priv, pub = ecies.generate_keypair("B")
    me = Me.from_pem(IMEI, ecies.private_key_to_pem("B", priv), svn="03")
    assert me.profile == "B" and me.imeisv.endswith("03")
    new, _ = provision(me, pub)
    assert me.state.pending_kme == new


# --- persistence ------------------------------------------------------------------------------


def test_state_persists_at_each_step_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "me" / "state.json"
    me, pub = make_me(path=path)
    new, _ = provision(me, pub)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_me_state(path, IMEI).pending_kme == new  # step 7: pending persisted
    me.commit_pending()
    loaded = load_me_state(path, IMEI)
    assert (loaded.current_kme, loaded.pending_kme, loaded.kme_imsi) == (new, None, IMSI)
    provision(me, pub)
    me.revert_pending()
    assert load_me_state(path, IMEI).current_kme == new


def test_crash_before_replace_keeps_previous_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "me" / "state.json"
    me, pub = make_me(path=path)
    old, _ = provision(me, pub)
    me.commit_pending()
    provision(me, pub)

    def crash(src: object, dst: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(state_mod.os, "replace", crash)
    with pytest.raises(OSError):
        me.commit_pending()
    monkeypatch.undo()
    on_disk = load_me_state(path, IMEI)
    assert on_disk.current_kme == old  # the commit never reached the disk: old state intact


def test_state_of_another_imei_or_malformed(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_me_state(path, IMEI, MeState(current_kme=bytes(32), kme_imsi=IMSI))
    with pytest.raises(StateError, match="another IMEI"):
        load_me_state(path, "356938035643817")
    path.write_text(json.dumps({"imei": IMEI, "current_kme": "abcd"}))
    with pytest.raises(StateError, match="current_kme"):
        load_me_state(path, IMEI)
    path.write_text(json.dumps({"imei": IMEI, "kme_imsi": 12}))
    with pytest.raises(StateError, match="kme_imsi"):
        load_me_state(path, IMEI)


def test_usim_moved_to_another_me_keeps_me_states_apart(tmp_path: Path) -> None:
    """Same USIM, two MEs (their own me/ state): each ME holds the KME it was given; ME-A's
    KME is not offered to a USIM it was not provisioned with."""
    me_a, pub_a = make_me("A", tmp_path / "a" / "me" / "state.json")
    priv_b, pub_b = ecies.generate_keypair("B")
    path_b = tmp_path / "b" / "me" / "state.json"
    me_b = Me("356938035643817", "B", priv_b, save=lambda s: save_me_state(path_b, "356938035643817", s))
    ka, _ = provision(me_a, pub_a)
    me_a.commit_pending()
    assert me_b.kme_for_check(IMSI) is None  # ME-B holds nothing: provisioning
    kb = kme.new_kme()
    me_b.receive_kme(ecies.encrypt("B", pub_b, kb), "B", NONCE, IMSI)
    me_b.commit_pending()
    assert load_me_state(path_b, "356938035643817").current_kme == kb
    assert load_me_state(tmp_path / "a" / "me" / "state.json", IMEI).current_kme == ka
    # back in ME-A: ME-A offers its old KME, whose KME_Check the HSS (now holding kb) rejects
    assert me_a.kme_for_check(IMSI) == ka
    assert kme.kme_check(ka, b"\x09") != kme.kme_check(kb, b"\x09")

"""The population: the same identities and device keys as provision-range; state save/restore."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kmed.crypto import devkeys, ecies
from kmed.load.population import Population, PopulationSpec, SimUe, load_states, save_states
from kmed.ue.state import StateError

SEED = bytes.fromhex("00112233445566778899aabbccddeeff")
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")


def _spec(count: int = 100, profile: str = "A") -> PopulationSpec:
    return PopulationSpec(count, "001010000100000", "35693803100000", K, OPC, SEED, profile)


@pytest.mark.parametrize("profile", ["A", "B"])
def test_identities_and_device_keys_as_provision_range(profile: str) -> None:
    pop = Population(_spec(profile=profile), range(0, 100, 7))
    ue = pop.ue(14)
    assert ue.usim.imsi == "001010000100014"
    assert ue.me.imei == devkeys.imei_at("35693803100000", 14)
    assert ue.me.imei[:14] == "35693803100014" and len(ue.me.imei) == 15
    _, public = devkeys.derive_device_key(SEED, ue.me.imei, profile)
    # The ME decrypts what the HSS encrypts to the public key that provision-range registered.
    blob = ecies.encrypt(profile, public, b"k" * 32)
    ue.me.receive_kme(blob, profile, bytes(16), ue.usim.imsi)
    assert ue.me.state.pending_kme == b"k" * 32
    assert pop.ue(14) is ue  # created once
    assert pop.created() == [ue]
    assert len(pop) == 15


def test_secrets_not_in_repr() -> None:
    spec = _spec()
    assert K.hex() not in repr(spec) and SEED.hex() not in repr(spec)
    assert K.hex() not in repr(SimUe(spec, 0))


def test_factory_reset_drops_the_kme_only() -> None:
    ue = SimUe(_spec(), 3)
    ue.me.state.current_kme = b"\x01" * 32
    ue.me.state.kme_imsi = ue.usim.imsi
    ue.usim.set_location(bytes(11), bytes(5))
    assert ue.holds_kme and ue.has_guti
    ue.factory_reset_me()
    assert not ue.holds_kme
    assert ue.has_guti  # the USIM keeps its GUTI
    assert ue.me.imei == devkeys.imei_at("35693803100000", 3)


def test_ranges_checked() -> None:
    with pytest.raises(ValueError):
        Population(_spec(10), range(5, 11))
    with pytest.raises(ValueError):
        PopulationSpec(10, "99999999999999", "35693803100000", K, OPC, SEED).check()  # IMSI + 9 overflows
    spec = PopulationSpec(2, "999999999999999", "35693803100000", K, OPC, SEED)
    with pytest.raises(ValueError):
        spec.check()


def test_state_round_trip(tmp_path: Path) -> None:
    spec = _spec()
    ue = SimUe(spec, 7)
    ue.me.state.current_kme = b"\x02" * 32
    ue.me.state.kme_imsi = ue.usim.imsi
    ue.usim.set_location(bytes(range(11)), bytes(5))
    ue.usim.state.seq_ms[3] = 42
    ue.usim.state.sqn_ms = 42 * 32 + 3
    path = tmp_path / "state.json"
    save_states(path, spec, {7: ue.state_dict()})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # holds KMEs
    states = load_states(path, spec)
    restored = Population(spec, [7], states).ue(7)
    assert restored.holds_kme and restored.me.state.current_kme == b"\x02" * 32
    assert restored.usim.state.guti == bytes(range(11))
    assert restored.usim.state.seq_ms[3] == 42 and restored.usim.state.sqn_ms == 42 * 32 + 3
    assert load_states(tmp_path / "absent.json", spec) == {}
    other = PopulationSpec(100, "001010000200000", "35693803100000", K, OPC, SEED)
    with pytest.raises(StateError):
        load_states(path, other)


def test_malformed_saved_state(tmp_path: Path) -> None:
    spec = _spec()
    with pytest.raises(StateError):
        Population(spec, [1], {1: {"seq_ms": [0]}}).ue(1)

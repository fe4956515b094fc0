"""MILENAGE against TS 35.207 §4 / TS 35.208 §4.3 test sets 1-6, and its input checks."""

from __future__ import annotations

import pytest

from kmed.crypto.milenage import MilenageKey, milenage, opc_from_op
from tests.crypto.vectors import MILENAGE_SETS

h = bytes.fromhex


@pytest.mark.parametrize("n", sorted(MILENAGE_SETS))
def test_opc_from_op(n: int) -> None:
    s = MILENAGE_SETS[n]
    assert opc_from_op(h(s["k"]), h(s["op"])) == h(s["opc"])


@pytest.mark.parametrize("n", sorted(MILENAGE_SETS))
def test_functions(n: int) -> None:
    s = MILENAGE_SETS[n]
    m = milenage(h(s["k"]), h(s["opc"]), h(s["rand"]), h(s["sqn"]), h(s["amf"]))
    assert m.mac_a == h(s["f1"])
    assert m.mac_s == h(s["f1star"])
    assert m.res == h(s["f2"])
    assert m.ck == h(s["f3"])
    assert m.ik == h(s["f4"])
    assert m.ak == h(s["f5"])
    assert m.ak_star == h(s["f5star"])


def test_key_object_matches_function_and_reuses_state() -> None:
    """A MilenageKey gives the same answers call after call (its encryptor is reused)."""
    for n in (1, 2, 1, 3):
        s = MILENAGE_SETS[n]
        key = MilenageKey(h(s["k"]), h(s["opc"]))
        for _ in range(3):
            assert key.compute(h(s["rand"]), h(s["sqn"]), h(s["amf"])).res == h(s["f2"])


def test_repr_hides_keys() -> None:
    s = MILENAGE_SETS[1]
    m = milenage(h(s["k"]), h(s["opc"]), h(s["rand"]), h(s["sqn"]), h(s["amf"]))
    assert s["f3"] not in repr(m) and "b40ba9" not in repr(m)
    assert s["k"] not in repr(MilenageKey(h(s["k"]), h(s["opc"])))


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("k", (bytes(15), bytes(16), bytes(16), bytes(6), bytes(2))),
        ("opc", (bytes(16), bytes(17), bytes(16), bytes(6), bytes(2))),
        ("rand", (bytes(16), bytes(16), bytes(15), bytes(6), bytes(2))),
        ("sqn", (bytes(16), bytes(16), bytes(16), bytes(7), bytes(2))),
        ("amf", (bytes(16), bytes(16), bytes(16), bytes(6), bytes(1))),
        ("k", ("00" * 16, bytes(16), bytes(16), bytes(6), bytes(2))),
    ],
)
def test_bad_input_names_parameter(name: str, args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError, match=rf"^{name} "):
        milenage(*args)  # type: ignore[arg-type]


def test_opc_bad_input() -> None:
    with pytest.raises(ValueError, match=r"^op "):
        opc_from_op(bytes(16), bytes(8))

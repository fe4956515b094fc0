"""kmed.diameter.layouts: a message decoded through a learned layout reads exactly as one
decoded from scratch, and a message whose AVP headers differ from the learned ones (a bad
length, a reserved flag bit, an unknown M-bit AVP) never takes the layout."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmed.diameter import codec, layouts
from kmed.diameter import dictionary as d
from kmed.diameter.message import AvpGroup, DecodeError, Message
from tests.diameter.test_differential import messages


@pytest.fixture(autouse=True)
def _fresh_layouts() -> Iterator[None]:
    layouts.clear()
    yield
    layouts.clear()


def _air(imsi: str = "001010000000001") -> bytes:
    return codec.encode(Message.request("AIR", d.APP_S6A, [
        ("Session-Id", "mme.localdomain;1;2"),
        ("Auth-Session-State", d.AUTH_SESSION_STATE_NO_STATE_MAINTAINED),
        ("Origin-Host", "mme.localdomain"), ("Origin-Realm", "localdomain"),
        ("User-Name", imsi), ("Visited-PLMN-Id", bytes.fromhex("00f110")),
        ("Supported-Features", [("Vendor-Id", d.VENDOR_3GPP), ("Feature-List-ID", 1), ("Feature-List", 7)]),
        ("Requested-EUTRAN-Authentication-Info", [("Number-Of-Requested-Vectors", 2),
                                                  ("Immediate-Response-Preferred", 1)]),
    ], hop_by_hop=1, end_to_end=2))


def _reading(msg: AvpGroup) -> Any:
    """Everything a reader can get out of a group, groups read through ``group``/``groups``."""
    out: list[Any] = []
    for avp in msg.raw_avps():
        df = avp.definition
        if df is None:
            out.append(avp)
        elif df.type is d.AvpType.GROUPED:
            out.append((df.name, [_reading(g) for g in msg.groups(df.name)]))
        else:
            out.append((df.name, msg.get_all(df.name)))
    return out


def _outcome(wire: bytes) -> Any:
    """What decoding ``wire`` gives: the header, every reading and the unknown M-bit AVPs, or
    the error (result code and Failed-AVP)."""
    try:
        msg = codec.decode(wire)
        return ("ok", msg.command_code, msg.flags, msg.application_id, msg.hop_by_hop, msg.end_to_end,
                _reading(msg), msg.avps, msg.unknown_mandatory, codec.encode(msg))
    except DecodeError as err:
        return ("error", err.result_code, err.failed_avp)


def test_second_sighting_learns_third_matches() -> None:
    wire = _air()
    key = layouts.key_of(int.from_bytes(wire[4:8], "big"), len(wire), wire)
    first = _outcome(wire)
    assert layouts.match(key, wire) is None  # seen once: nothing learned yet
    assert _outcome(wire) == first
    assert layouts.match(key, wire) is not None
    assert _outcome(wire) == first


def test_same_shape_other_values_match_and_read_their_own_values() -> None:
    a, b = _air("001010000000001"), _air("001010000000002")
    codec.decode(a)
    codec.decode(a)
    key = layouts.key_of(int.from_bytes(b[4:8], "big"), len(b), b)
    assert layouts.match(key, b) is not None
    msg = codec.decode(b)
    assert msg.get("User-Name") == "001010000000002"
    info = msg.group("Requested-EUTRAN-Authentication-Info")
    assert info is not None and info.get("Number-Of-Requested-Vectors") == 2
    assert msg.group("Supported-Features").get("Feature-List") == 7  # type: ignore[union-attr]


@pytest.mark.parametrize("name, delta, value, code", [
    ("User-Name", 5, 0xFF, d.DIAMETER_INVALID_AVP_LENGTH),  # length high octet: overruns the message
    ("User-Name", 4, 0x41, d.DIAMETER_INVALID_AVP_BITS),  # a reserved flag bit
    ("Number-Of-Requested-Vectors", 7, 4, d.DIAMETER_INVALID_AVP_LENGTH),  # inside a group: length 4 < 12
])
def test_a_bad_header_never_takes_the_layout(name: str, delta: int, value: int, code: int) -> None:
    wire = _air()
    for _ in range(3):
        msg = codec.decode(wire)
    target = d.avp(name).key
    group = msg.group("Requested-EUTRAN-Authentication-Info")
    assert group is not None
    where = msg if target in msg._keys else group
    at = where._offs[where._keys.index(target)] + delta
    bad = bytearray(wire)
    bad[at] = value
    with pytest.raises(DecodeError) as err:
        codec.decode(bytes(bad))
    assert err.value.result_code == code


def test_unknown_mandatory_avps_are_reported_every_time() -> None:
    wire = codec.encode(Message.request("AIR", d.APP_S6A, [
        ("Session-Id", "s"), ("User-Name", "001010000000001"), (60001, 0, d.AVP_FLAG_M, b"zz")]))
    for _ in range(4):
        msg = codec.decode(wire)
        assert [(a.code, a.data) for a in msg.unknown_mandatory] == [(60001, b"zz")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_learned_layouts_read_like_fresh_decodes(msg: Message) -> None:
    wire = codec.encode(msg)
    layouts.clear()
    fresh = _outcome(wire)
    for _ in range(3):  # learn, then match
        assert _outcome(wire) == fresh


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.data())
def test_any_changed_octet_decodes_as_without_layouts(msg: Message, data: st.DataObject) -> None:
    """One octet changed after the layout is learned: the outcome (values or error) is the one a
    decoder that never saw the message gives."""
    wire = codec.encode(msg)
    if len(wire) <= 20:
        return
    at = data.draw(st.integers(20, len(wire) - 1))
    new = data.draw(st.integers(0, 255))
    changed = wire[:at] + bytes((new,)) + wire[at + 1:]
    layouts.clear()
    expected = _outcome(changed)
    layouts.clear()
    for _ in range(2):
        codec.decode(wire)  # the original's layout is learned
    assert _outcome(changed) == expected

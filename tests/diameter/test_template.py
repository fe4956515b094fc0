"""kmed.diameter.template and kmed.diameter.s6a: a template encodes exactly what the generic
encoder encodes from the same items, whatever the values (other sizes fall back to it), and
a value that does not fit its type raises EncodeError naming the AVP."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import Message
from kmed.diameter.s6a import VSAI, answer_head, authentication_info
from kmed.diameter.template import FIELD, AvpTemplate, Field


def _vector_items(item: int, rand: bytes, xres: bytes, autn: bytes, kasme: bytes, binding: int) -> list[Any]:
    return [("Item-Number", item), ("RAND", rand), ("XRES", xres), ("AUTN", autn), ("KASME", kasme),
            ("KME-Binding", binding)]


VECTOR = AvpTemplate([("Authentication-Info", [("E-UTRAN-Vector", [
    ("Item-Number", FIELD), ("RAND", Field(16)), ("XRES", Field(8)), ("AUTN", Field(16)), ("KASME", Field(32)),
    ("KME-Binding", FIELD)])])])

vectors = st.tuples(st.integers(0, 2**32 - 1), st.binary(min_size=16, max_size=16),
                    st.binary(min_size=4, max_size=16), st.binary(min_size=14, max_size=18),
                    st.binary(min_size=32, max_size=32), st.sampled_from([0, 1, 2]))


@settings(max_examples=80, deadline=None)
@given(vectors)
def test_template_equals_generic_encoding(v: tuple[int, bytes, bytes, bytes, bytes, int]) -> None:
    expected = codec.encode_avps([("Authentication-Info", [("E-UTRAN-Vector", _vector_items(*v))])])
    assert VECTOR.encode(*v) == expected


@settings(max_examples=40, deadline=None)
@given(st.lists(vectors, min_size=1, max_size=4))
def test_authentication_info_any_number_of_vectors(vs: list[tuple[int, bytes, bytes, bytes, bytes, int]]) -> None:
    expected = codec.encode_avps([("Authentication-Info", [("E-UTRAN-Vector", _vector_items(*v)) for v in vs])])
    assert authentication_info(vs) == expected


def test_constants_padding_and_top_level_fields() -> None:
    t = AvpTemplate([("RAND", Field(5)), ("Result-Code", 2001), VSAI, ("Item-Number", FIELD),
                     ("Session-Id", "x;1")])
    got = t.encode(b"12345", 7)
    assert got == codec.encode_avps([("RAND", b"12345"), ("Result-Code", 2001), VSAI, ("Item-Number", 7),
                                     ("Session-Id", "x;1")])
    assert len(got) % 4 == 0


@pytest.mark.parametrize("values", [
    (1, bytes(16), bytes(8), bytes(16), bytes(32), "one"),  # Enumerated given a str
    (-1, bytes(16), bytes(8), bytes(16), bytes(32), 1),  # Unsigned32 out of range
    (1, "rand", bytes(8), bytes(16), bytes(32), 1),  # OctetString given a str
])
def test_bad_values_raise_encode_error_naming_the_avp(values: tuple[Any, ...]) -> None:
    with pytest.raises(codec.EncodeError) as err:
        VECTOR.encode(*values)
    assert any(name in str(err.value) for name in ("KME-Binding", "Item-Number", "RAND"))


def test_wrong_number_of_values() -> None:
    with pytest.raises(codec.EncodeError):
        VECTOR.encode(1, bytes(16))


@pytest.mark.parametrize("items", [
    [("Session-Id", FIELD)],  # UTF8String: not a fixed size
    [("RAND", FIELD)],  # OctetString without a size
    [("Result-Code", 1)],  # no field at all
])
def test_templates_that_cannot_be_compiled(items: list[Any]) -> None:
    with pytest.raises(ValueError):
        AvpTemplate(items)


def test_answer_head_and_origin_make_a_valid_aia() -> None:
    from kmed.diameter.node import LocalNode

    node = LocalNode("hss.localdomain", "localdomain")
    req = codec.decode(codec.encode(Message.request("AIR", d.APP_S6A, [
        ("Session-Id", "mme;1"), ("User-Name", "001010000000001")], hop_by_hop=5, end_to_end=6)))
    v = (1, bytes(16), bytes(8), bytes(16), bytes(32), d.KME_BINDING_NOT_BOUND)
    built = Message.answer_to(req, [answer_head(), node.origin_avps, authentication_info([v])])
    aia = codec.decode(codec.encode(built))
    assert [name for name, _ in aia.avps] == ["Session-Id", "Vendor-Specific-Application-Id", "Result-Code",
                                              "Auth-Session-State", "Origin-Host", "Origin-Realm",
                                              "Authentication-Info"]
    assert aia.result_code() == d.DIAMETER_SUCCESS and aia.get("Session-Id") == "mme;1"
    assert aia.group("Authentication-Info").group("E-UTRAN-Vector").get("KASME") == bytes(32)  # type: ignore[union-attr]
    assert answer_head(None) == codec.encode_avps([VSAI, ("Auth-Session-State", 1)])


def test_peer_sends_an_answer_holding_origin_avps_as_encoded_and_fills_others(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from kmed.diameter import peer as peer_module
    from kmed.diameter.node import LocalNode
    from kmed.diameter.peer import Peer, PeerState, Role

    node = LocalNode("hss.localdomain", "localdomain")
    peer = Peer(node, Role.RESPONDER)
    peer.state = PeerState.OKAY
    req = codec.decode(codec.encode(Message.request("AIR", d.APP_S6A, [("Session-Id", "odd;12345")])))
    with_origin = Message.answer_to(req, [answer_head(), node.origin_avps])
    filled = peer_module.fill_missing
    calls: list[bytes] = []

    def watched(data: bytes, fill: object) -> bytes:
        calls.append(data)
        return filled(data, fill)  # type: ignore[arg-type]

    monkeypatch.setattr(peer_module, "fill_missing", watched)
    assert peer.encode_answer(with_origin) == codec.encode(with_origin)
    assert calls == []  # sent as encoded: no search for Origin-Host and Origin-Realm
    without = codec.decode(peer.encode_answer(Message.answer_to(req, [answer_head()])) or b"")
    assert len(calls) == 1  # this one had them filled in
    assert (without.get("Origin-Host"), without.get("Origin-Realm")) == ("hss.localdomain", "localdomain")
    assert without.get("Session-Id") == "odd;12345"  # copied as received, padding included

"""Structure-aware fuzzing of the Diameter decoder (kmed.diameter.codec.decode).

Messages are AVP trees generated from the dictionary (well-typed values, Grouped AVPs nested
up to four deep, unknown and vendor AVPs with and without the M bit). Exactly one field of one
AVP, at any depth, is then broken, and the decoder must answer what RFC 6733 §7 says, naming
that AVP: an AVP length under its header or past its group is 5014 DIAMETER_INVALID_AVP_LENGTH
(§7.1.5), reserved flag bits are 3009 DIAMETER_INVALID_AVP_BITS (§7.1.3), a wrong size for a
fixed-size type is 5014 when read, nesting beyond MAX_DEPTH is 5004. Unbroken, every AVP reads
back as generated and the unknown M-bit AVPs are listed for 5001. (Random bytes and byte flips
of one AIR are tests/diameter/test_codec_bad_input.py's; this adds the structure.)
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import MAX_DEPTH, Avp, AvpGroup, DecodeError, Message
from tests.fuzz.budget import fuzz
from tests.fuzz.diameter_gen import GROUPS, LEAVES, Node, message_bytes, trees, wrong_typed

messages = st.lists(trees(), min_size=1, max_size=6)


def _decode_error(buf: bytes) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        codec.decode(buf)
    return info.value


def _read_all(group: AvpGroup) -> list[Any]:
    """Every AVP of ``group`` as items, reading every value at every depth."""
    return group.avps


def _unknown_mandatory(nodes: list[Node]) -> list[Avp]:
    return [n.item for top in nodes for n in top.walk()
            if isinstance(n.item, Avp) and n.item.mandatory]


@fuzz(250)
@given(messages)
def test_well_formed_trees_read_back_as_generated(nodes: list[Node]) -> None:
    msg = codec.decode(message_bytes(nodes))
    assert _read_all(msg) == [n.item for n in nodes]
    assert sorted(msg.unknown_mandatory, key=repr) == sorted(_unknown_mandatory(nodes), key=repr)
    assert codec.decode(codec.encode(msg)).avps == msg.avps


def _pick(nodes: list[Node], index: int) -> tuple[Node, int]:
    """The ``index``-th AVP of the tree (depth first, modulo their number) and the room its
    enclosing group or message leaves after it (octets to the end of the enclosing body)."""
    flat: list[tuple[Node, list[Node]]] = []

    def visit(siblings: list[Node]) -> None:
        for n in siblings:
            flat.append((n, siblings))
            if n.children:
                visit(n.children)

    visit(nodes)
    node, siblings = flat[index % len(flat)]
    at = next(i for i, s in enumerate(siblings) if s is node)
    after = sum(len(s.encode()) for s in siblings[at:])
    return node, after


def _same_avp(failed: Avp | None, node: Node) -> bool:
    return failed is not None and (failed.code, failed.vendor) == (node.code, node.vendor)


@fuzz(300)
@given(messages, st.integers(0, 10_000), st.sampled_from(["short", "overrun", "reserved"]), st.integers(1, 0x1F))
def test_one_broken_avp_is_named_with_the_rfc_6733_code(nodes: list[Node], index: int, how: str, bits: int) -> None:
    node, room = _pick(nodes, index)
    if how == "short":  # length below the AVP header (8, or 12 with V)
        node.length_delta = -(len(node.body()) + 1 + (bits % node.header_size))
        expected = d.DIAMETER_INVALID_AVP_LENGTH
    elif how == "overrun":  # longer than what its group or message holds after it
        padded = len(node.encode()) - node.header_size - len(node.body())
        node.length_delta = room - (node.header_size + len(node.body())) + 1 + padded + bits
        expected = d.DIAMETER_INVALID_AVP_LENGTH
    else:
        node.extra_flags = bits
        expected = d.DIAMETER_INVALID_AVP_BITS
    err = _decode_error(message_bytes(nodes))
    assert err.result_code == expected, (how, err)
    assert _same_avp(err.failed_avp, node), (how, err.failed_avp, node.code, node.vendor)
    assert err.partial is not None and (err.partial.hop_by_hop, err.partial.end_to_end) == (7, 9)


@fuzz(200)
@given(messages, st.sampled_from([a for a in LEAVES if a.type in d.FIXED_SIZE]).flatmap(wrong_typed),
       st.integers(0, 10_000))
def test_wrong_size_of_a_fixed_type_is_5014_when_read(nodes: list[Node], bad: Node, where: int) -> None:
    groups = [n for top in nodes for n in top.walk() if n.children is not None]
    if groups and where % 2:
        groups[where % len(groups)].children.insert(0, bad)  # type: ignore[union-attr]
    else:
        nodes.insert(where % (len(nodes) + 1), bad)
    msg = codec.decode(message_bytes(nodes))  # sizes of typed data are checked when read
    with pytest.raises(DecodeError) as info:
        _read_all(msg)
    assert info.value.result_code == d.DIAMETER_INVALID_AVP_LENGTH
    assert _same_avp(info.value.failed_avp, bad)


@fuzz(150)
@given(st.sampled_from(LEAVES).flatmap(wrong_typed), messages)
def test_wrong_typed_values_raise_decode_error_only(bad: Node, nodes: list[Node]) -> None:
    nodes.append(bad)
    try:
        msg = codec.decode(message_bytes(nodes))  # garbage in a Grouped AVP is found here
        _read_all(msg)
    except DecodeError as err:
        assert err.result_code in (d.DIAMETER_INVALID_AVP_LENGTH, d.DIAMETER_INVALID_AVP_VALUE)
        assert _same_avp(err.failed_avp, bad)


@fuzz(100)
@given(st.lists(st.sampled_from(GROUPS), min_size=MAX_DEPTH + 1, max_size=MAX_DEPTH + 8), st.integers(0, 3))
def test_nesting_beyond_max_depth_is_5004(chain: list[d.AvpDef], tail: int) -> None:
    inner: list[Node] = [Node(1, 0, d.AVP_FLAG_M, b"001010000000001")] * tail
    for a in chain:
        inner = [Node(a.code, a.vendor, a.flags, children=inner)]
    err = _decode_error(message_bytes(inner))
    assert err.result_code == d.DIAMETER_INVALID_AVP_VALUE


@fuzz(150)
@given(st.lists(st.sampled_from(GROUPS), min_size=1, max_size=MAX_DEPTH), st.binary(min_size=1, max_size=40))
def test_garbage_inside_nested_groups_is_a_decode_error_or_unknown_avps(chain: list[d.AvpDef], junk: bytes) -> None:
    inner: list[Node] = [Node(0, 0, 0, data=b"")]
    inner[0].encode = lambda: junk + b"\0" * (-len(junk) & 3)  # type: ignore[method-assign]
    for a in chain:
        inner = [Node(a.code, a.vendor, a.flags, children=inner)]
    try:
        msg = codec.decode(message_bytes(inner))
    except DecodeError as err:
        assert err.result_code in (d.DIAMETER_INVALID_AVP_LENGTH, d.DIAMETER_INVALID_AVP_BITS,
                                   d.DIAMETER_INVALID_AVP_VALUE)
        return
    try:
        _read_all(msg)
    except DecodeError as err:
        assert err.result_code in (d.DIAMETER_INVALID_AVP_LENGTH, d.DIAMETER_INVALID_AVP_VALUE)


@fuzz(150)
@given(messages, st.integers(1, 200))
def test_truncated_message_with_consistent_header_is_5014_or_5015(nodes: list[Node], cut: int) -> None:
    full = message_bytes(nodes)
    body = full[20:-cut] if cut < len(full) - 20 else b""
    body += b"\0" * (-len(body) & 3)
    buf = struct.pack(">I", (1 << 24) | (20 + len(body))) + full[4:20] + body
    try:
        msg = codec.decode(buf)
    except DecodeError as err:
        assert err.result_code in (d.DIAMETER_INVALID_AVP_LENGTH, d.DIAMETER_INVALID_AVP_BITS,
                                   d.DIAMETER_INVALID_AVP_VALUE)
        return
    try:
        _read_all(msg)
    except DecodeError as err:
        assert err.result_code in (d.DIAMETER_INVALID_AVP_LENGTH, d.DIAMETER_INVALID_AVP_VALUE)


def test_message_api_on_a_decoded_tree() -> None:
    """The generator's bytes and kmed's own encoder agree on a plain AIR."""
    items: list[Any] = [("Session-Id", "mme;1"), ("User-Name", "001010000000001"),
                        ("Requested-EUTRAN-Authentication-Info", [("Number-Of-Requested-Vectors", 2)])]
    ours = Message.request("AIR", d.APP_S6A, items, hop_by_hop=7, end_to_end=9)
    from tests.fuzz.diameter_gen import leaf_node
    nodes = [leaf_node(d.avp("Session-Id"), "mme;1"), leaf_node(d.avp("User-Name"), "001010000000001"),
             Node(1408, d.VENDOR_3GPP, d.AVP_FLAG_M,
                  children=[leaf_node(d.avp("Number-Of-Requested-Vectors"), 2)])]
    assert message_bytes(nodes) == codec.encode(ours)

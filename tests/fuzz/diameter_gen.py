"""Structure-aware Diameter generators: AVP trees built from kmed's dictionary, encoded by hand.

A :class:`Node` is one AVP (RFC 6733 §4.1): a leaf with its data, or a Grouped AVP with
children. Nodes are encoded here, not by kmed's codec, so a test can break exactly one field of
exactly one AVP at any depth (its length, its flag bits) and know which AVP the decoder must
name in Failed-AVP. Well-typed leaf values come from the dictionary's types (the same value
strategies as the differential tests); *wrong-typed* ones keep the code, vendor and flags of a
table AVP but carry data its type cannot hold (a fixed-size type with another size, bad UTF-8,
an Address of an unknown family, garbage inside a Grouped AVP).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from hypothesis import strategies as st

from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import Avp
from tests.diameter.test_differential import SCALARS as _DIFFERENTIAL_SCALARS

T = d.AvpType
_HOST = st.text("abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=24)
#: The differential tests' value strategies, with cheaper ones for names and addresses (a
#: regex strategy costs more to draw than the codec costs to run).
SCALARS: dict[d.AvpType, st.SearchStrategy[Any]] = {
    **_DIFFERENTIAL_SCALARS,
    T.DIAMETER_IDENTITY: _HOST,
    T.DIAMETER_URI: _HOST.map(lambda h: f"aaa://{h}:3868"),
    T.ADDRESS: st.one_of(st.binary(min_size=4, max_size=4).map(lambda b: str(ipaddress.IPv4Address(b))),
                         st.binary(min_size=16, max_size=16).map(lambda b: str(ipaddress.IPv6Address(b)))),
}
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")
HEADER = struct.Struct(">IIIII")

#: Table AVPs by kind (Time has no value strategy: it is kept out, as in the differential tests).
LEAVES = [a for a in d.AVPS if a.type in SCALARS]
GROUPS = [a for a in d.AVPS if a.type is T.GROUPED]
#: Vendors a random AVP may carry: none, 3GPP, kmed's documentation PEN, and strangers.
VENDORS = (0, d.VENDOR_3GPP, d.VENDOR_KMED, 1, 99999, 0xFFFFFFFF)


@dataclass
class Node:
    """One AVP on the wire. ``length_delta`` is added to the length field (a mutation);
    ``extra_flags`` are OR-ed into the flags octet (reserved bits, a mutation)."""

    code: int
    vendor: int
    flags: int  # M and P bits; V follows the vendor
    data: bytes = b""
    children: list[Node] | None = None
    item: Any = None  # what kmed should decode it to: (name, value), or an Avp
    length_delta: int = 0
    extra_flags: int = 0
    path: tuple[int, ...] = field(default=())

    @property
    def header_size(self) -> int:
        return 12 if self.vendor else 8

    def body(self) -> bytes:
        return self.data if self.children is None else b"".join(c.encode() for c in self.children)

    def encode(self) -> bytes:
        body = self.body()
        flags = (self.flags & 0x60) | (0x80 if self.vendor else 0) | self.extra_flags
        length = (self.header_size + len(body) + self.length_delta) & 0xFFFFFF
        head = struct.pack(">II", self.code, (flags << 24) | length)
        if self.vendor:
            head += struct.pack(">I", self.vendor)
        return head + body + _PAD[len(body) & 3]

    def walk(self) -> list[Node]:
        """This node and every descendant, depth first."""
        out = [self]
        for c in self.children or ():
            out += c.walk()
        return out


def message_bytes(nodes: list[Node], *, code: int = d.CMD_AIR, flags: int = d.FLAG_R | d.FLAG_P,
                  app: int = d.APP_S6A, hbh: int = 7, e2e: int = 9) -> bytes:
    """A whole message: the RFC 6733 §3 header (length of what follows) and the AVPs."""
    body = b"".join(n.encode() for n in nodes)
    return HEADER.pack((1 << 24) | (20 + len(body)), (flags << 24) | code, app, hbh, e2e) + body


def leaf_node(a: d.AvpDef, value: Any) -> Node:
    """A table AVP with a well-typed value, its data taken from kmed's own encoder."""
    wire = codec.encode_avps([(a.name, value)])
    hl = 12 if a.vendor else 8
    length = int.from_bytes(wire[5:8], "big")
    decoded = Avp(a.code, a.vendor, a.flags, wire[hl:length]).value()  # the canonical value kmed reads
    return Node(a.code, a.vendor, a.flags, wire[hl:length], item=(a.name, decoded))


def raw_node(avp: Avp) -> Node:
    return Node(avp.code, avp.vendor, avp.flags, avp.data, item=avp)


def _leaf_value(a: d.AvpDef) -> st.SearchStrategy[Any]:
    base = SCALARS[a.type]
    return st.one_of(st.sampled_from(sorted(a.values)), base) if a.values else base


_LEAVES = st.one_of([_leaf_value(a).map(partial(leaf_node, a)) for a in LEAVES])


def leaves() -> st.SearchStrategy[Node]:
    """A table leaf AVP with a value of its type."""
    return _LEAVES


def unknown_avps(mandatory: bool | None = None) -> st.SearchStrategy[Node]:
    """An AVP outside the table: any vendor, with or without the M bit (or as told)."""
    flags = st.sampled_from([0, d.AVP_FLAG_P]) if mandatory is False else (
        st.just(d.AVP_FLAG_M) if mandatory else st.sampled_from([0, d.AVP_FLAG_M, d.AVP_FLAG_P, 0x60]))
    return st.builds(
        lambda code, vendor, fl, data: raw_node(Avp(code, vendor, fl, data)),
        st.integers(60000, 2**32 - 1), st.sampled_from(VENDORS), flags, st.binary(max_size=24),
    ).filter(lambda n: d.avp_by_code(n.code, n.vendor) is None)


def trees(max_leaves: int = 16, max_children: int = 4) -> st.SearchStrategy[Node]:
    """A table AVP, a Grouped one with well-formed children (nested, ``max_leaves`` in all), or an
    unknown one."""
    def extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
        def group(a: d.AvpDef, kids: list[Node]) -> Node:
            return Node(a.code, a.vendor, a.flags, children=kids,
                        item=(a.name, [k.item for k in kids]))
        return st.builds(group, st.sampled_from(GROUPS), st.lists(children, max_size=max_children))

    base = st.one_of(leaves(), leaves(), unknown_avps())
    return st.recursive(base, extend, max_leaves=max_leaves)


# --- wrong types --------------------------------------------------------------------------------


def _wrong_data(a: d.AvpDef) -> st.SearchStrategy[bytes]:
    """Data that the type of ``a`` cannot hold (for OctetString every octet string is valid,
    so its "wrong" data is an odd length: the handler's own size checks apply)."""
    size = d.FIXED_SIZE.get(a.type)
    if size is not None:
        return st.binary(max_size=12).filter(lambda b: len(b) != size)
    if a.type in (T.UTF8STRING, T.DIAMETER_IDENTITY, T.DIAMETER_URI):
        return st.sampled_from([b"\xff", b"\xc3\x28", b"a\xed\xa0\x80z", b"\xf8\x88\x80\x80\x80"])
    if a.type is T.ADDRESS:
        return st.one_of(st.binary(max_size=1),
                         st.tuples(st.integers(3, 0xFFFF), st.binary(max_size=18)).map(
                             lambda t: t[0].to_bytes(2, "big") + t[1]),
                         st.binary(min_size=2, max_size=9).map(lambda b: b"\x00\x01" + b[:3]))  # IPv4, short
    if a.type is T.GROUPED:
        return st.binary(min_size=1, max_size=30)  # not a sequence of AVPs (most of the time)
    return st.binary(max_size=40)


def wrong_typed(a: d.AvpDef) -> st.SearchStrategy[Node]:
    """``a``'s code, vendor and flags with data its type cannot hold."""
    return _wrong_data(a).map(lambda data: raw_node(Avp(a.code, a.vendor, a.flags, data)))

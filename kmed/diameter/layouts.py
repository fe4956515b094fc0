"""Layouts of messages already checked, so that the next message of the same shape is indexed
in one ``struct`` call instead of a walk over its AVPs (sans I/O; used by :mod:`codec`).

A *layout* is every AVP header of a message (code, flags and length, vendor: RFC 6733 §4.1)
at every depth of the table's Grouped AVPs, with its offset. What :func:`codec.decode`
checks and builds from a message (AVP lengths, reserved flag bits, the V bit, unknown M-bit
AVPs, nesting depth; the keys and offsets of the index) depends on those header words and
on nothing else. So once a message has been fully checked, its layout is kept, and a later
message with the same header words at the same offsets (compared as one masked big integer)
takes the kept index: it would pass the same checks and index the same way.

Peers send the same few shapes again and again (a CNN's AIRs differ in their values, not in
their AVP headers), so most messages take this path. A layout is learned the second time a
message key (command header, length, first AVP header) is seen, so that a stream of
one-off shapes costs a set lookup, not a struct compilation. Layouts of messages with
unknown M-bit AVPs are not kept (their answer, 5001, carries the AVPs' data). The tables
are bounded (cleared when full).
"""

from __future__ import annotations

from kmed.diameter.message import _GROUPED_KEYS, Message, Shape, scan

#: Layouts kept (keys), each with up to :data:`PER_KEY` alternatives; cleared when full.
MAX_LAYOUTS = 512
PER_KEY = 4
#: Keys seen once (a layout is learned on the second sighting); cleared when full.
MAX_SEEN = 4096

_Key = tuple[int, int, bytes]


class Layout:
    """One learned layout: a mask over the AVP header octets, their expected value, and the
    index the message had, with the shapes of its groups (shared, read-only, by every message
    that matches)."""

    __slots__ = ("expected", "index", "keys", "mask", "offs", "shapes")

    def __init__(self, mask: int, expected: int, keys: list[int], offs: list[int], index: dict[int, int],
                 shapes: dict[int, Shape] | None) -> None:
        self.mask = mask
        self.expected = expected
        self.keys = keys
        self.offs = offs
        self.index = index
        self.shapes = shapes


_layouts: dict[_Key, list[Layout]] = {}
_seen: set[_Key] = set()


def key_of(flags_code: int, length: int, buf: bytes) -> _Key:
    """The lookup key: command flags and code, message length, first AVP header (8 octets)."""
    return flags_code, length, buf[20:28]


def match(key: _Key, buf: bytes) -> Layout | None:
    """The learned layout ``buf`` has, or None. The comparison is one big-integer AND over the
    message (header octets kept, data octets masked out): C speed, a few objects."""
    found = _layouts.get(key)
    if found is None:
        return None
    value = int.from_bytes(buf, "big")
    for layout in found:
        if value & layout.mask == layout.expected:
            return layout
    return None


def _first_index(keys: list[int]) -> dict[int, int]:
    return dict(zip(reversed(keys), range(len(keys) - 1, -1, -1), strict=True))


def _walk(buf: bytes, keys: list[int], offs: list[int], headers: list[tuple[int, bool]]) -> dict[int, Shape] | None:
    """Append (offset, has vendor) of every AVP header, depth first (i.e. by offset); return the
    shapes of the Grouped AVPs (by index), or None when there is none."""
    shapes: dict[int, Shape] = {}
    for i, (key, off) in enumerate(zip(keys, offs, strict=True)):
        fl = int.from_bytes(buf[off + 4:off + 8], "big")
        vendor = bool(fl & 0x80000000)
        headers.append((off, vendor))
        if key in _GROUPED_KEYS:
            start, end = off + (12 if vendor else 8), off + (fl & 0xFFFFFF)
            inner_keys, inner_offs = scan(buf, start, end)
            inner = _walk(buf, inner_keys, inner_offs, headers)
            shapes[i] = (start, end, inner_keys, inner_offs, _first_index(inner_keys), inner)
    return shapes or None


def learn(key: _Key, msg: Message) -> None:
    """Keep the layout of ``msg``, a message :func:`codec.decode` has just checked fully (with
    ``validate``) and found no unknown M-bit AVP in; on the first sighting of ``key`` only
    remember the key."""
    if key not in _seen:
        if len(_seen) >= MAX_SEEN:
            _seen.clear()
        _seen.add(key)
        return
    buf = msg._buf
    keys, offs = list(msg._keys), list(msg._offs)
    headers: list[tuple[int, bool]] = []
    shapes = _walk(buf, keys, offs, headers)
    mask = bytearray(len(buf))
    for off, vendor in headers:
        n = 12 if vendor else 8
        mask[off:off + n] = b"\xff" * n
    mask_int = int.from_bytes(mask, "big")
    layout = Layout(mask_int, int.from_bytes(buf, "big") & mask_int, keys, offs, _first_index(keys), shapes)
    found = _layouts.get(key)
    if found is None:
        if len(_layouts) >= MAX_LAYOUTS:
            _layouts.clear()
        _layouts[key] = [layout]
    else:
        found.insert(0, layout)
        del found[PER_KEY:]


def clear() -> None:
    """Forget every layout (tests)."""
    _layouts.clear()
    _seen.clear()

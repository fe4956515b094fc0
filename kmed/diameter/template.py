"""AVP templates: AVP items of a fixed shape with some values left open, compiled once into
one ``struct`` so that each use is a single ``pack`` call (sans I/O).

The AVPs a handler answers with again and again have one shape: an E-UTRAN-Vector is
Item-Number, RAND (16 octets), XRES, AUTN (16), KASME (32) inside Authentication-Info. The
generic encoder (:func:`kmed.diameter.codec.encode_avps`) looks every name up and encodes
every AVP header and group length per message; a template does that once::

    VECTOR = AvpTemplate([("Authentication-Info", [("E-UTRAN-Vector", [
        ("Item-Number", FIELD), ("RAND", Field(16)), ("XRES", Field(8)), ("AUTN", Field(16)),
        ("KASME", Field(32))])])])
    data = VECTOR.encode(1, rand, xres, autn, kasme)   # bytes: an AVP item for Message

Open values (:class:`Field`) are of a fixed-size type (Unsigned32, Enumerated, ... whose size
the table gives) or OctetStrings of a declared size. A value of another size is not an error:
that call falls back to the generic encoder (RFC 6733 §4.1 lengths come out right either
way). Values are given in the order the fields appear, depth first.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from kmed.diameter import dictionary as d
from kmed.diameter.codec import _FIXED_FORMAT, EncodeError, encode_avps

__all__ = ["FIELD", "AvpTemplate", "Field"]


class Field:
    """An open value in an :class:`AvpTemplate`; ``size`` (octets) is required for an
    OctetString and ignored for fixed-size types."""

    __slots__ = ("size",)

    def __init__(self, size: int | None = None) -> None:
        self.size = size

    def __repr__(self) -> str:
        return f"Field({self.size})" if self.size is not None else "FIELD"


#: An open value of a fixed-size type (Unsigned32, Integer32, Enumerated, ...).
FIELD = Field()

_HDR = struct.Struct(">II")
_HDR_V = struct.Struct(">III")


class AvpTemplate:
    """AVP items with :class:`Field` values, compiled to one struct (see the module doc)."""

    __slots__ = ("_consts", "_fields", "_items", "_octet_at", "_order", "_pack", "_sizes", "name")

    def __init__(self, items: Sequence[Any]) -> None:
        self._items = list(items)
        fmt: list[str] = []
        consts: list[Any] = []
        order: list[int | None] = []  # per struct argument: a field's position, or None for a constant
        fields: list[tuple[str, Field]] = []
        self._compile(self._items, fmt, consts, order, fields)
        if not fields:
            raise ValueError("a template needs at least one Field")
        self.name = fields[0][0]
        self._fields = len(fields)
        # pool = constants + values: the struct's arguments are picked from it by one itemgetter
        picks = [len(consts) + f if f is not None else c for f, c in zip(order, _const_positions(order), strict=True)]
        self._consts = tuple(consts)
        self._order = _picker(picks)
        self._pack = struct.Struct(">" + "".join(fmt)).pack
        # the OctetString values picked out (as a tuple) and the sizes they must have
        at = [i for i, (_n, f) in enumerate(fields) if f.size is not None]
        self._octet_at = _picker(at) if at else None
        self._sizes = tuple(fields[i][1].size for i in at)

    def _compile(self, items: Sequence[Any], fmt: list[str], consts: list[Any], order: list[int | None],
                 fields: list[tuple[str, Field]]) -> int:
        """Append the struct parts of ``items``; returns their encoded size."""
        size = 0
        for item in items:
            if not (isinstance(item, tuple) and len(item) == 2 and _has_field(item[1])):
                data = encode_avps([item])  # a constant AVP (raises EncodeError if it does not encode)
                fmt.append(f"{len(data)}s")
                consts.append(data)
                order.append(None)
                size += len(data)
                continue
            name, value = item
            a = d.avp(name)
            hlen = 12 if a.vendor else 8
            header_at, header_const = len(fmt), len(consts)
            fmt.append("")  # the header, once the data length is known
            consts.append(b"")
            order.append(None)
            if isinstance(value, Field):
                code = _FIXED_FORMAT.get(a.type)
                if code is not None:
                    n = struct.calcsize(">" + code)
                    fields.append((name, Field(None)))
                elif a.type is d.AvpType.OCTET_STRING and value.size is not None:
                    code, n = f"{value.size}s", value.size
                    fields.append((name, value))
                else:
                    raise ValueError(f"{name}: a Field must be of a fixed-size type or an OctetString with a size")
                fmt.append(code + (f"{-n & 3}x" if n & 3 else ""))  # padding: zero octets, no argument
                order.append(len(fields) - 1)
            elif a.type is d.AvpType.GROUPED and isinstance(value, list | tuple):
                n = self._compile(value, fmt, consts, order, fields)
            else:
                raise ValueError(f"{name}: only Grouped values may hold a Field")
            flags_len = (a.flags << 24) | (hlen + n)
            header = (_HDR_V.pack(a.code, flags_len, a.vendor) if a.vendor else _HDR.pack(a.code, flags_len))
            fmt[header_at] = f"{hlen}s"
            consts[header_const] = header
            size += hlen + n + (-n & 3)
        return size

    def encode(self, *values: Any) -> bytes:
        """The AVPs with ``values`` in the fields (in order): bytes, an AVP item for a Message.

        Raises :class:`~kmed.diameter.codec.EncodeError` for a value that does not fit its type.
        """
        if len(values) != self._fields:
            raise EncodeError(f"{self.name}: template takes {self._fields} values, got {len(values)}")
        if self._octet_at is not None:
            try:
                if tuple(map(len, self._octet_at(values))) != self._sizes:
                    return self._generic(values)
            except TypeError:
                return self._generic(values)
        try:
            return self._pack(*self._order(self._consts + values))
        except struct.error:
            return self._generic(values)  # the generic encoder names the AVP whose value is wrong

    def _generic(self, values: Sequence[Any]) -> bytes:
        it = iter(values)
        return encode_avps(_fill(self._items, it))

    def __repr__(self) -> str:
        return f"<AvpTemplate {self.name} ({self._fields} fields)>"


def _picker(positions: list[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """``seq -> tuple(seq[i] for i in positions)`` at C speed (``itemgetter`` returns a bare item
    for one position: wrapped then)."""
    if len(positions) == 1:
        (i,) = positions
        return lambda seq: (seq[i],)
    return operator.itemgetter(*positions)


def _has_field(value: Any) -> bool:
    if isinstance(value, Field):
        return True
    if isinstance(value, list | tuple):
        return any(isinstance(v, tuple) and len(v) == 2 and _has_field(v[1]) for v in value)
    return False


def _const_positions(order: list[int | None]) -> list[int]:
    """For each struct argument, its index among the constants (meaningful for constants only)."""
    out = []
    c = 0
    for f in order:
        out.append(c)
        if f is None:
            c += 1
    return out


def _fill(items: Sequence[Any], values: Iterator[Any]) -> list[Any]:
    """``items`` with each Field replaced by the next value (for the generic encoder)."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2 and _has_field(item[1]):
            name, value = item
            out.append((name, next(values) if isinstance(value, Field) else _fill(value, values)))
        else:
            out.append(item)
    return out

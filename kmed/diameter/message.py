"""Diameter messages and AVP groups as handlers see them (RFC 6733 §3, §4), sans I/O.

A :class:`Message` is either *built* (from a list of AVP items) or *decoded*
(:func:`kmed.diameter.codec.decode`). A decoded message keeps the received buffer and a flat
index of AVP headers; a value is converted only when it is read (``get``), so reading five AVPs
of a twenty-AVP request converts five values.

AVP items, accepted wherever a list of AVPs is built:

- ``(name, value)`` for an AVP of :mod:`kmed.diameter.dictionary`, with the value typed as
  OctetString -> bytes; UTF8String, DiameterIdentity, DiameterURI -> str; Integer32/64,
  Unsigned32/64, Enumerated -> int; Float32/64 -> float; Time -> datetime (UTC);
  Address -> str (an IPv4 or IPv6 address); Grouped -> a list of items (or an
  :class:`AvpGroup`, copied as it is);
- an :class:`Avp` (code, vendor, flags, raw data) or a ``(code, vendor, flags, data)`` tuple, for
  AVPs outside the table or raw copies (Failed-AVP, relays). Decoded AVPs that are not in the
  table come back as :class:`Avp` and are re-encoded unchanged.
- ``bytes``: AVPs already encoded (:func:`kmed.diameter.codec.encode_avps`), copied as they
  are. Handlers encode the AVPs that never change (Origin-Host, Vendor-Specific-Application-Id,
  ...) once and put the bytes in every answer.

Reading a value that does not convert (bad UTF-8, an Address of an unknown family) raises
:class:`DecodeError` with DIAMETER_INVALID_AVP_VALUE (5004) and the AVP as Failed-AVP.
"""

from __future__ import annotations

import datetime
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kmed.diameter import dictionary as d

_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_AVP_HDR = struct.Struct(">II")
_AVP_HDR_V = struct.Struct(">III")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")

#: Seconds from the NTP epoch (1900-01-01) to the POSIX epoch (RFC 5905 §6).
NTP_TO_POSIX = 2208988800


class DecodeError(Exception):
    """Input that is not a valid Diameter message (RFC 6733 §7.1).

    ``result_code`` is the Result-Code to answer (5015, 5014, 3008, 3009, 5004, 5011, ...);
    ``failed_avp`` the offending AVP to put in Failed-AVP (RFC 6733 §7.5), when there is one;
    ``partial`` the message header and the top-level AVPs read before the error (enough to answer:
    hop-by-hop and end-to-end identifiers, Session-Id), None when the header itself was bad.
    The text never contains AVP values.
    """

    def __init__(self, result_code: int, reason: str, failed_avp: Avp | None = None) -> None:
        super().__init__(f"{d.result_name(result_code)}: {reason}")
        self.result_code = result_code
        self.reason = reason
        self.failed_avp = failed_avp
        self.partial: Message | None = None


class Avp:
    """One AVP as raw data (RFC 6733 §4.1): ``code``, ``vendor`` (0 = no V bit), ``flags``
    (V/M/P; V follows ``vendor``), ``data`` (unpadded). ``repr`` shows no data."""

    __slots__ = ("code", "data", "flags", "vendor")

    def __init__(self, code: int, vendor: int = 0, flags: int | None = None, data: bytes = b"") -> None:
        if not 0 <= code <= 0xFFFFFFFF or not 0 <= vendor <= 0xFFFFFFFF:
            raise ValueError("AVP code and vendor must be 32-bit unsigned")
        if flags is None:
            df = d.avp_by_code(code, vendor)
            flags = df.flags if df is not None else 0
        self.code = code
        self.vendor = vendor
        self.flags = (flags & 0x60) | (d.AVP_FLAG_V if vendor else 0)  # M, P as given; V follows the vendor
        self.data = bytes(data)

    @property
    def definition(self) -> d.AvpDef | None:
        """The table entry for this code and vendor, if any."""
        return d.avp_by_code(self.code, self.vendor)

    @property
    def name(self) -> str:
        """The table name, or ``"AVP-<vendor>-<code>"`` when it is not in the table."""
        df = self.definition
        return df.name if df is not None else f"AVP-{self.vendor}-{self.code}"

    @property
    def mandatory(self) -> bool:
        return bool(self.flags & d.AVP_FLAG_M)

    def value(self) -> Any:
        """The typed value per the table (raises ``KeyError`` for an AVP not in the table,
        :class:`DecodeError` for data that does not convert)."""
        reading = _BY_KEY.get(d.avp_key(self.code, self.vendor))
        if reading is None:
            raise KeyError(f"{self.name} is not in the table")
        if reading[1] is None:
            return AvpGroup._view(self.data, 0, len(self.data), 1).avps
        return _read(self.data, 0, len(self.data), reading, self.flags)

    def encode(self) -> bytes:
        """The AVP on the wire: header, data, padding."""
        n = len(self.data)
        if self.vendor:
            hdr = _AVP_HDR_V.pack(self.code, (self.flags << 24) | (12 + n), self.vendor)
        else:
            hdr = _AVP_HDR.pack(self.code, (self.flags << 24) | (8 + n))
        return hdr + self.data + _PAD[n & 3]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Avp):
            return NotImplemented
        return (self.code, self.vendor, self.flags, self.data) == (other.code, other.vendor, other.flags, other.data)

    def __hash__(self) -> int:
        return hash((self.code, self.vendor, self.flags, self.data))

    def __repr__(self) -> str:
        return (f"Avp({self.name}, code={self.code}, vendor={self.vendor}, flags=0x{self.flags:02x}, "
                f"len={len(self.data)})")


#: An AVP item in a list of AVPs (see the module docstring).
AvpItem = tuple[str, Any] | tuple[int, int, int, bytes] | Avp | bytes

#: Deepest nesting of Grouped AVPs read (S6a's deepest is 5: Subscription-Data /
#: APN-Configuration-Profile / APN-Configuration / EPS-Subscribed-QoS-Profile / ARP).
MAX_DEPTH = 16

# ---------------------------------------------------------------- value conversion (reading)


def _well_formed(group_data: bytes) -> bool:
    """Whether Grouped AVP content scans at every depth. An answer copies the request's
    Proxy-Info (RFC 6733 §6.2) even when the request itself was malformed (an error answer from
    its header and first AVPs): malformed content, copied, would make the answer undecodable."""
    try:
        AvpGroup._view(group_data, 0, len(group_data), 1).validate()
    except DecodeError:
        return False
    return True


def _utf8(buf: bytes, s: int, e: int) -> str:
    return buf[s:e].decode("utf-8")


def _address(buf: bytes, s: int, e: int) -> str:
    # RFC 6733 §4.3.1 Address: 2-octet IANA address family, then the address.
    family = (buf[s] << 8 | buf[s + 1]) if e - s >= 2 else -1
    if family == 1 and e - s == 6:
        return socket.inet_ntop(socket.AF_INET, buf[s + 2:e])
    if family == 2 and e - s == 18:
        return socket.inet_ntop(socket.AF_INET6, buf[s + 2:e])
    raise ValueError("Address: only IPv4 (family 1) and IPv6 (family 2) are supported")


def _time(buf: bytes, s: int, e: int) -> datetime.datetime:
    # RFC 6733 §4.3.1 Time: NTP seconds; values with the top bit clear are after 2036 (RFC 5905 §6).
    ntp = _U32.unpack_from(buf, s)[0]
    if not ntp & 0x80000000:
        ntp += 1 << 32
    return datetime.datetime.fromtimestamp(ntp - NTP_TO_POSIX, tz=datetime.UTC)


def _struct_reader(st: struct.Struct) -> Callable[[bytes, int, int], Any]:
    unpack_from = st.unpack_from

    def read(buf: bytes, s: int, e: int) -> Any:
        return unpack_from(buf, s)[0]

    return read


def _octets(buf: bytes, s: int, e: int) -> bytes:
    return buf[s:e]


_T = d.AvpType
READERS: dict[d.AvpType, Callable[[bytes, int, int], Any]] = {
    _T.OCTET_STRING: _octets,
    _T.UTF8STRING: _utf8,
    _T.DIAMETER_IDENTITY: _utf8,
    _T.DIAMETER_URI: _utf8,
    _T.UNSIGNED32: _struct_reader(_U32),
    _T.INTEGER32: _struct_reader(_I32),
    _T.ENUMERATED: _struct_reader(_I32),
    _T.UNSIGNED64: _struct_reader(_U64),
    _T.INTEGER64: _struct_reader(_I64),
    _T.FLOAT32: _struct_reader(_F32),
    _T.FLOAT64: _struct_reader(_F64),
    _T.ADDRESS: _address,
    _T.TIME: _time,
}

#: How to read one table AVP: (lookup key, reader or None for Grouped, fixed size or 0, entry).
_Reading = tuple[int, Callable[[bytes, int, int], Any] | None, int, d.AvpDef]
_BY_NAME: dict[str, _Reading] = {
    a.name: (a.key, None if a.type is _T.GROUPED else READERS[a.type], d.FIXED_SIZE.get(a.type, 0), a)
    for a in d.AVPS
}
_BY_KEY: dict[int, _Reading] = {r[0]: r for r in _BY_NAME.values()}
_u32_from = _U32.unpack_from
_GROUPED_KEYS = frozenset(a.key for a in d.AVPS if a.type is _T.GROUPED)
_IS_GROUPED: dict[int, bool] = {k: k in _GROUPED_KEYS for k in _BY_KEY}


_SESSION_ID_KEY = _BY_NAME["Session-Id"][0]
_PROXY_INFO_KEY = _BY_NAME["Proxy-Info"][0]


def _lookup(name: str) -> _Reading:
    found = _BY_NAME.get(name)
    if found is None:
        raise KeyError(f"unknown AVP name {name!r}")
    return found


def _read(buf: bytes, start: int, end: int, reading: _Reading, flags: int) -> Any:
    """Value of non-grouped AVP data ``buf[start:end]``: 5014 for a wrong fixed size, 5004 for
    data that does not convert; the DecodeError carries the AVP as Failed-AVP."""
    _key, reader, size, df = reading
    assert reader is not None
    if size and end - start != size:
        raise DecodeError(d.DIAMETER_INVALID_AVP_LENGTH, f"{df.name}: wrong length for {df.type.value}",
                          Avp(df.code, df.vendor, flags, buf[start:end]))
    try:
        return reader(buf, start, end)
    except ValueError:
        raise DecodeError(d.DIAMETER_INVALID_AVP_VALUE, f"{df.name}: invalid {df.type.value}",
                          Avp(df.code, df.vendor, flags, buf[start:end])) from None


# ---------------------------------------------------------------- the AVP index


def _failed_for_length(buf: bytes, pos: int, end: int) -> Avp:
    """Failed-AVP for 5014 (RFC 6733 §7.1.5): the AVP header (zero-padded when truncated) with a
    zero-filled payload of the minimum size of the AVP's type."""
    hdr = bytes(buf[pos:min(pos + 12, end)]).ljust(12, b"\0")
    code, flags_len, vendor = _AVP_HDR_V.unpack(hdr)
    flags = flags_len >> 24
    if not flags & d.AVP_FLAG_V:
        vendor = 0
    reading = _BY_KEY.get(d.avp_key(code, vendor))
    return Avp(code, vendor, flags & 0x60, b"\0" * (reading[2] if reading is not None else 0))


def scan(buf: bytes, pos: int, end: int, keys: list[int] | None = None,
         offs: list[int] | None = None, unknown: list[Avp] | None = None,
         groups: list[int] | None = None) -> tuple[list[int], list[int]]:
    """Index the AVPs of ``buf[pos:end]`` (RFC 6733 §4.1): their keys and header offsets.

    Checks every AVP length (>= 8, >= 12 with V, within ``end``) and the reserved flag bits
    (3009); raises :class:`DecodeError`. ``pos`` is the first AVP's offset, 4-aligned. Given
    ``keys`` and ``offs`` are filled in place (they hold the AVPs before an error). Given
    ``unknown`` and ``groups``, AVPs outside the table with the M bit are appended to
    ``unknown`` and the indexes of the table's Grouped AVPs to ``groups``."""
    if keys is None or offs is None:
        keys, offs = [], []
    add_key = keys.append
    add_off = offs.append
    unpack2 = _AVP_HDR.unpack_from
    unpack3 = _AVP_HDR_V.unpack_from
    info_get = _IS_GROUPED.get
    add_unknown = unknown.append if unknown is not None else None
    add_group = groups.append if groups is not None else None
    while pos < end:
        if end - pos < 8:
            raise DecodeError(d.DIAMETER_INVALID_AVP_LENGTH, "truncated AVP header", _failed_for_length(buf, pos, end))
        flags = buf[pos + 4]
        if flags & 0x80:
            if end - pos < 12:
                raise DecodeError(d.DIAMETER_INVALID_AVP_LENGTH, "truncated AVP header",
                                  _failed_for_length(buf, pos, end))
            code, length, vendor = unpack3(buf, pos)
            length &= 0xFFFFFF
            if length < 12:
                raise DecodeError(d.DIAMETER_INVALID_AVP_LENGTH, "AVP length < 12 with the V bit",
                                  _failed_for_length(buf, pos, end))
            key = (vendor << 32) | code
        else:
            code, length = unpack2(buf, pos)
            length &= 0xFFFFFF
            if length < 8:
                raise DecodeError(d.DIAMETER_INVALID_AVP_LENGTH, "AVP length < 8", _failed_for_length(buf, pos, end))
            key = code
        nxt = pos + length
        if nxt > end:
            raise DecodeError(d.DIAMETER_INVALID_AVP_LENGTH, "AVP overruns its message or group",
                              _failed_for_length(buf, pos, end))
        if flags & 0x1F:
            hl = 12 if flags & 0x80 else 8
            # A Grouped AVP is named by its header alone (RFC 6733 §7.1.5): its content may be
            # malformed too, and copied into Failed-AVP it would make the answer undecodable.
            data = b"" if info_get(key) else buf[pos + hl:nxt]
            raise DecodeError(d.DIAMETER_INVALID_AVP_BITS, "reserved AVP flag bits set",
                              Avp(code, key >> 32, flags & 0x60, data))
        if add_group is not None:  # validating: unknown M-bit AVPs, where the groups are
            info = info_get(key)
            if info is None:
                if flags & 0x40 and add_unknown is not None:
                    add_unknown(Avp(code, key >> 32, flags, buf[(pos + 12 if flags & 0x80 else pos + 8):nxt]))
            elif info:
                add_group(len(keys))
        add_key(key)
        add_off(pos)
        pos = nxt + (-length & 3)
    return keys, offs


def _span(buf: bytes, off: int) -> tuple[int, int, int]:
    """(flags, data start, data end) of the AVP whose header is at ``off`` (already checked)."""
    fl = _U32.unpack_from(buf, off + 4)[0]
    return fl >> 24, off + (12 if fl & 0x80000000 else 8), off + (fl & 0xFFFFFF)


def _raw_at(buf: bytes, key: int, off: int) -> Avp:
    flags, s, e = _span(buf, off)
    return Avp(key & 0xFFFFFFFF, key >> 32, flags, buf[s:e])


def _expand(items: Iterable[Any]) -> Iterator[Any]:
    """Built items with pre-encoded ``bytes`` items split into their AVPs (as :class:`Avp`)."""
    for item in items:
        if type(item) is bytes:
            keys, offs = scan(item, 0, len(item))
            yield from (_raw_at(item, k, o) for k, o in zip(keys, offs, strict=True))
        else:
            yield item


def _item_key(item: Any) -> tuple[int, Any, bool]:
    """(lookup key, value or Avp, is_raw) of a built item."""
    if isinstance(item, Avp):
        return d.avp_key(item.code, item.vendor), item, True
    if len(item) == 2:
        name, value = item
        return _lookup(name)[0], value, False
    raw = Avp(*item)
    return d.avp_key(raw.code, raw.vendor), raw, True


def _item_value(value: Any, is_raw: bool) -> Any:
    if not is_raw:
        return value
    raw: Avp = value
    return raw if raw.definition is None else raw.value()


# ---------------------------------------------------------------- groups and messages

_new = object.__new__

#: Groups up to this size are validated once per distinct content (see ``_validate_scanned``).
SHARED_GROUP_MAX = 512
#: Bound of the shared-group table (cleared when full).
SHARED_GROUPS_MAX = 1024
_SHARED_GROUPS: dict[tuple[int, bytes], tuple[AvpGroup, list[Avp]]] = {}


#: A Grouped AVP's content as a learned layout keeps it (kmed.diameter.layouts): data start
#: and end, keys, offsets, first-occurrence index, and the shapes of the groups inside.
Shape = tuple[int, int, list[int], list[int], dict[int, int], "dict[int, Shape] | None"]


def _validated_view(buf: bytes, s: int, e: int, depth: int, unknown: list[Avp]) -> AvpGroup:
    """A group view over ``buf[s:e]`` at ``depth``, its content validated to every depth."""
    g = _new(AvpGroup)
    g._buf, g._start, g._end, g._depth, g._items, g._groups, g._index = buf, s, e, depth, None, None, None
    g._shapes = None
    inner: list[int] = []
    g._keys, g._offs = scan(buf, s, e, [], [], unknown, inner)
    if inner:
        g._validate_scanned(unknown, inner)
    return g


class AvpGroup:
    """A list of AVPs (a message body or a Grouped AVP's value) read by name.

    ``get(name)`` the first value or ``default``; ``get_all(name)`` every value;
    ``group(name)`` the first Grouped AVP of that name as an :class:`AvpGroup` (or None);
    ``groups(name)`` all of them; ``name in group``; ``avps`` every item, decoded.
    A name that is not in the table raises ``KeyError`` (a typo, not an absent AVP).
    """

    __slots__ = ("_buf", "_depth", "_end", "_groups", "_index", "_items", "_keys", "_offs", "_shapes", "_start")

    def __init__(self, avps: Iterable[AvpItem] | AvpGroup | None = None) -> None:
        self._buf: bytes = b""
        self._keys: list[int] = []
        self._offs: list[int] = []
        self._start = self._end = self._depth = 0
        self._groups: dict[int, AvpGroup] | None = None
        self._index: dict[int, int] | None = None
        #: index -> Shape of the Grouped AVPs there, from a learned layout (kmed.diameter.layouts)
        self._shapes: dict[int, Shape] | None = None
        if isinstance(avps, AvpGroup):
            self._items: list[Any] | None = avps.raw_avps() if avps._items is None else list(avps._items)
        else:
            self._items = list(avps) if avps is not None else []

    @classmethod
    def _view(cls, buf: bytes, start: int, end: int, depth: int) -> AvpGroup:
        """A decoded group over ``buf[start:end]`` (scanned now: raises :class:`DecodeError`)."""
        g = _new(cls)
        g._buf = buf
        g._start = start
        g._end = end
        g._depth = depth
        g._items = g._groups = g._index = g._shapes = None
        g._keys, g._offs = scan(buf, start, end)
        return g

    def _first_index(self) -> dict[int, int]:
        """Key -> index of its first occurrence (built once, on the first lookup by name)."""
        keys = self._keys
        index = self._index = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1), strict=True))
        return index

    def _group_at(self, i: int) -> AvpGroup:
        """The decoded group at index ``i`` (cached)."""
        cache = self._groups
        if cache is None:
            cache = self._groups = {}
        g = cache.get(i)
        if g is None:
            shapes = self._shapes
            if shapes is not None:  # checked already, indexed already: a view, nothing to scan
                g = cache[i] = _new(AvpGroup)
                g._start, g._end, g._keys, g._offs, g._index, g._shapes = shapes[i]
                g._buf, g._depth, g._items, g._groups = self._buf, self._depth + 1, None, None
                return g
            buf = self._buf
            flags, s, e = _span(buf, self._offs[i])
            if self._depth >= MAX_DEPTH:
                key = self._keys[i]
                raise DecodeError(d.DIAMETER_INVALID_AVP_VALUE, "Grouped AVPs nested too deep",
                                  Avp(key & 0xFFFFFFFF, key >> 32, flags, b""))  # header only, as in scan
            g = cache[i] = AvpGroup._view(buf, s, e, self._depth + 1)
        return g

    # -- reading

    def get(self, name: str, default: Any = None) -> Any:
        """Value of the first AVP called ``name``, or ``default`` when there is none."""
        reading = _BY_NAME.get(name) or _lookup(name)
        key = reading[0]
        if self._items is None:  # decoded: the hot path, inlined
            index = self._index or self._first_index()
            i = index.get(key)
            if i is None:
                return default
            return self._value_at(i, reading)
        for item in _expand(self._items):
            k, value, is_raw = _item_key(item)
            if k == key:
                return _item_value(value, is_raw)
        return default

    def pick(self, *names: str) -> tuple[Any, ...]:
        """The first AVP of each name, in one call (a handler's reads): its value as :meth:`get`
        gives it, or for a Grouped AVP the group as :meth:`group` gives it; None when absent.
        Values are read in the order given (a :class:`DecodeError` is the first one's)."""
        if self._items is not None:
            return tuple(self._pick_one(name) for name in names)
        index = self._index or self._first_index()
        out: list[Any] = []
        for name in names:
            reading = _BY_NAME.get(name) or _lookup(name)
            i = index.get(reading[0])
            if i is None:
                out.append(None)
            elif reading[1] is None:
                out.append(self._group_at(i))
            else:
                out.append(self._value_at(i, reading))
        return tuple(out)

    def _value_at(self, i: int, reading: _Reading) -> Any:
        """The value of the decoded AVP at index ``i`` (a Grouped AVP's items); the hot path of
        :meth:`get` and :meth:`pick`. A value that does not convert raises DecodeError 5014 or
        5004 (:func:`_read`)."""
        reader = reading[1]
        if reader is None:
            return self._group_at(i).avps
        buf = self._buf
        off = self._offs[i]
        fl = _u32_from(buf, off + 4)[0]
        s = off + (12 if fl & 0x80000000 else 8)
        e = off + (fl & 0xFFFFFF)
        if reader is _octets:
            return buf[s:e]
        size = reading[2]
        if size and e - s != size:
            return _read(buf, s, e, reading, fl >> 24)  # raises 5014
        try:
            return reader(buf, s, e)
        except ValueError:
            return _read(buf, s, e, reading, fl >> 24)  # raises 5004

    def _pick_one(self, name: str) -> Any:
        return self.group(name) if _lookup(name)[1] is None else self.get(name)

    def get_all(self, name: str) -> list[Any]:
        """Values of every AVP called ``name``, in order (empty list when there is none)."""
        reading = _lookup(name)
        key = reading[0]
        if self._items is None:
            return [self._value_at(i, reading) for i, k in enumerate(self._keys) if k == key]
        out = []
        for item in _expand(self._items):
            k, value, is_raw = _item_key(item)
            if k == key:
                out.append(_item_value(value, is_raw))
        return out

    def group(self, name: str) -> AvpGroup | None:
        """The first Grouped AVP called ``name`` as an :class:`AvpGroup`, or None."""
        if self._items is None:
            key, reader, _size, _df = _BY_NAME.get(name) or _lookup(name)
            if reader is not None:
                raise TypeError(f"{name} is not a Grouped AVP")
            i = (self._index or self._first_index()).get(key)
            return None if i is None else self._group_at(i)
        groups = self._groups_named(name, first=True)
        return groups[0] if groups else None

    def groups(self, name: str) -> list[AvpGroup]:
        """Every Grouped AVP called ``name``, in order."""
        return self._groups_named(name, first=False)

    def _groups_named(self, name: str, first: bool) -> list[AvpGroup]:
        key, reader, _size, _df = _lookup(name)
        if reader is not None:
            raise TypeError(f"{name} is not a Grouped AVP")
        if self._items is None:
            return [self._group_at(i) for i, k in enumerate(self._keys) if k == key]
        out: list[AvpGroup] = []
        for item in _expand(self._items):
            k, value, is_raw = _item_key(item)
            if k != key:
                continue
            if is_raw:
                raw: Avp = value
                out.append(AvpGroup._view(raw.data, 0, len(raw.data), 1))
            else:
                out.append(value if isinstance(value, AvpGroup) else AvpGroup(value))
            if first:
                break
        return out

    def holds(self, item: Any) -> bool:
        """True when ``item`` (pre-encoded bytes, say) is one of the items this group was built
        with, as given (False for a decoded group)."""
        return self._items is not None and item in self._items

    def __contains__(self, name: str) -> bool:
        key = _lookup(name)[0]
        if self._items is None:
            return key in (self._index or self._first_index())
        return any(_item_key(item)[0] == key for item in _expand(self._items))

    def __len__(self) -> int:
        return len(self._keys) if self._items is None else len(list(_expand(self._items)))

    @property
    def avps(self) -> list[Any]:
        """Every AVP as an item: ``(name, value)`` for table AVPs (Grouped values as lists of
        items), :class:`Avp` for the others. Converts every value (use ``get`` on hot paths)."""
        out: list[Any] = []
        if self._items is None:
            buf = self._buf
            for i, key in enumerate(self._keys):
                reading = _BY_KEY.get(key)
                if reading is None:
                    out.append(_raw_at(buf, key, self._offs[i]))
                else:
                    out.append((reading[3].name, self._value_at(i, reading)))
            return out
        for item in _expand(self._items):
            if isinstance(item, Avp) or len(item) == 4:
                raw = item if isinstance(item, Avp) else Avp(*item)
                df = raw.definition
                out.append(raw if df is None else (df.name, raw.value()))
            elif isinstance(item[1], AvpGroup):
                out.append((item[0], item[1].avps))
            else:
                out.append(item)
        return out

    def raw_avps(self) -> list[Avp]:
        """Every AVP as a raw :class:`Avp` (for copies: Failed-AVP, Proxy-Info, relays)."""
        if self._items is None:
            buf = self._buf
            return [_raw_at(buf, k, o) for k, o in zip(self._keys, self._offs, strict=True)]
        from kmed.diameter.codec import encode_avps  # the encoders are compiled there

        data = encode_avps(self._items)
        return AvpGroup._view(data, 0, len(data), self._depth).raw_avps()

    def raw(self, name: str) -> Avp | None:
        """The first AVP called ``name`` as a raw :class:`Avp`, or None."""
        key = _lookup(name)[0]
        if self._items is None:
            i = (self._index or self._first_index()).get(key)
            return None if i is None else _raw_at(self._buf, key, self._offs[i])
        for avp in self.raw_avps():
            if d.avp_key(avp.code, avp.vendor) == key:
                return avp
        return None

    def wire_data(self) -> bytes:
        """The AVPs as they go on the wire (a decoded group: the received octets, padded)."""
        if self._items is None:
            s, e = self._start, self._end
            return self._buf[s:e] + _PAD[(e - s) & 3]
        from kmed.diameter.codec import encode_avps

        return encode_avps(self._items)

    def validate(self) -> list[Avp]:
        """Check the AVP lengths at every depth (and the nesting) and return the AVPs outside
        the table that have the M bit, at any depth (answer 5001 with them, RFC 6733 §7.1.5).

        Raises :class:`DecodeError`. The data size of fixed-size types (Unsigned32, ...) is
        checked when the value is read, which raises 5014 then. ``codec.decode`` runs this
        check while it indexes the message (``validate=True``)."""
        unknown: list[Avp] = []
        group = self
        if self._items is not None:
            data = self.wire_data()
            group = AvpGroup._view(data, 0, len(data), self._depth)
        nested: list[int] = []
        scan(group._buf, group._start, group._end, [], [], unknown, nested)
        if nested:
            group._validate_scanned(unknown, nested)
        return unknown

    def _validate_scanned(self, unknown: list[Avp], groups: list[int]) -> None:
        """Validate the groups at ``groups`` (indexes found by ``scan``), depth first.

        Groups of at most :data:`SHARED_GROUP_MAX` octets are validated once and their views
        shared by every message that carries the same octets at the same depth: peers send the
        same Supported-Features, Requested-EUTRAN-Authentication-Info, Subscription-Data... again
        and again. The views are read-only, so sharing them changes nothing for readers."""
        cache = self._groups
        if cache is None:
            cache = self._groups = {}
        buf = self._buf
        depth = self._depth + 1
        shared = _SHARED_GROUPS
        for i in groups:
            off = self._offs[i]
            fl = _u32_from(buf, off + 4)[0]
            s = off + (12 if fl & 0x80000000 else 8)
            e = off + (fl & 0xFFFFFF)
            if depth > MAX_DEPTH:
                key = self._keys[i]
                raise DecodeError(d.DIAMETER_INVALID_AVP_VALUE, "Grouped AVPs nested too deep",
                                  Avp(key & 0xFFFFFFFF, key >> 32, fl >> 24, b""))  # header only, as in scan
            if e - s > SHARED_GROUP_MAX:
                cache[i] = _validated_view(buf, s, e, depth, unknown)
                continue
            data = buf[s:e]
            hit = shared.get((depth, data))
            if hit is None:
                found: list[Avp] = []
                hit = (_validated_view(data, 0, e - s, depth, found), found)
                if len(shared) >= SHARED_GROUPS_MAX:
                    shared.clear()
                shared[depth, data] = hit
            cache[i] = hit[0]
            if hit[1]:
                unknown.extend(hit[1])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self)} AVPs>"


class Message(AvpGroup):
    """A Diameter message (RFC 6733 §3): header fields plus the AVPs read as an :class:`AvpGroup`.

    Build with :meth:`request` and :meth:`answer_to`; encode and decode with
    :mod:`kmed.diameter.codec`. ``unknown_mandatory`` lists the AVPs of a decoded message (at
    any depth) that are not in the table and have the M bit: answer 5001 with them as Failed-AVP.
    """

    __slots__ = ("application_id", "command_code", "end_to_end", "flags", "hop_by_hop", "unknown_mandatory")

    def __init__(self, command_code: int, flags: int, application_id: int, hop_by_hop: int = 0,
                 end_to_end: int = 0, avps: Iterable[AvpItem] | None = None) -> None:
        super().__init__(avps)
        self.command_code = command_code
        self.flags = flags
        self.application_id = application_id
        self.hop_by_hop = hop_by_hop
        self.end_to_end = end_to_end
        self.unknown_mandatory: list[Avp] = []

    @classmethod
    def _decoded(cls, command_code: int, flags: int, application_id: int, hop_by_hop: int, end_to_end: int,
                 buf: bytes, keys: list[int], offs: list[int]) -> Message:
        m = cls.__new__(cls)
        m.command_code, m.flags, m.application_id = command_code, flags, application_id
        m.hop_by_hop, m.end_to_end = hop_by_hop, end_to_end
        m._buf, m._keys, m._offs, m._items, m._groups, m._index, m._shapes = buf, keys, offs, None, None, None, None
        m._start, m._end, m._depth = 20, len(buf), 0
        m.unknown_mandatory = []
        return m

    @classmethod
    def request(cls, cmd: str | int, app_id: int | None, avps: Iterable[AvpItem], *,
                hop_by_hop: int = 0, end_to_end: int = 0, proxiable: bool | None = None) -> Message:
        """A request (R bit; P bit as the command's table entry unless ``proxiable`` says).

        ``cmd``: "AIR", "Authentication-Information", 318...; ``app_id`` None = the command's
        application. Hop-by-hop and end-to-end identifiers are normally set by the peer layer.
        """
        c = d.COMMANDS_BY_CODE.get(cmd) if isinstance(cmd, int) else d.command(cmd)
        code = c.code if c is not None else int(cmd)
        if proxiable is None:
            proxiable = c.proxiable if c is not None else True
        if app_id is None:
            if c is None:
                raise KeyError(f"command {cmd!r} is not in the table: give app_id")
            app_id = c.application_id
        flags = d.FLAG_R | (d.FLAG_P if proxiable else 0)
        return cls(code, flags, app_id, hop_by_hop, end_to_end, avps)

    @classmethod
    def answer_to(cls, req: Message, avps: Iterable[AvpItem], *, error: bool = False) -> Message:
        """The answer to ``req`` (RFC 6733 §6.2): same command, application and identifiers,
        R cleared, P as in the request, E when ``error`` (protocol errors, 3xxx).

        Session-Id comes first: the one in ``avps`` or else the request's. The request's
        Proxy-Info AVPs are appended, in order, unless ``avps`` has its own (RFC 6733 §6.2).
        """
        items = list(avps)
        session_at = -1
        has_proxy_info = False
        for i, it in enumerate(items):
            if type(it) is tuple and len(it) == 2:
                if it[0] == "Session-Id":
                    if session_at < 0:
                        session_at = i
                elif it[0] == "Proxy-Info":
                    has_proxy_info = True
        if session_at > 0:
            items.insert(0, items.pop(session_at))
        elif session_at < 0:
            sid = req._session_id_item()
            if sid is not None:
                items.insert(0, sid)
        if not has_proxy_info and (_PROXY_INFO_KEY in (req._index or req._first_index()) if req._items is None
                                   else "Proxy-Info" in req):
            items.extend(a for a in req.raw_avps() if a.code == 284 and a.vendor == 0 and _well_formed(a.data))
        m = _new(cls)
        m.command_code, m.application_id = req.command_code, req.application_id
        m.flags = (req.flags & d.FLAG_P) | (d.FLAG_E if error else 0)
        m.hop_by_hop, m.end_to_end = req.hop_by_hop, req.end_to_end
        m._items, m._groups, m._index, m._shapes, m.unknown_mandatory = items, None, None, None, []
        m._buf, m._keys, m._offs, m._start, m._end, m._depth = b"", [], [], 0, 0, 0
        return m

    def _session_id_item(self) -> AvpItem | None:
        """The first Session-Id as an item for an answer, or None. From a decoded message, the
        AVP's octets as received (no conversion either way; a value that is not UTF-8 is echoed
        octet for octet rather than failing the answer)."""
        if self._items is None:
            i = (self._index or self._first_index()).get(_SESSION_ID_KEY)
            if i is None:
                return None
            buf = self._buf
            off = self._offs[i]
            length = _u32_from(buf, off + 4)[0] & 0xFFFFFF
            raw = buf[off:off + length]
            return raw + _PAD[length & 3] if length & 3 else raw
        try:
            value = self.get("Session-Id")
        except DecodeError:
            return self.raw("Session-Id")
        return None if value is None else ("Session-Id", value)

    # -- header

    @property
    def is_request(self) -> bool:
        return bool(self.flags & d.FLAG_R)

    @property
    def is_proxiable(self) -> bool:
        return bool(self.flags & d.FLAG_P)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & d.FLAG_E)

    @property
    def retransmitted(self) -> bool:
        """The T bit (RFC 6733 §3: potentially retransmitted after a failover)."""
        return bool(self.flags & d.FLAG_T)

    @retransmitted.setter
    def retransmitted(self, value: bool) -> None:
        self.flags = (self.flags | d.FLAG_T) if value else (self.flags & ~d.FLAG_T)

    @property
    def name(self) -> str:
        """"AIR", "AIA", ... (``cmd-<code>-R``/``-A`` for a command not in the table)."""
        return d.command_abbrev(self.command_code, self.is_request)

    # -- results

    def result_code(self) -> int | None:
        """The Result-Code, or None."""
        value = self.get("Result-Code")
        return value if value is None else int(value)

    def experimental_result(self) -> tuple[int, int] | None:
        """``(Vendor-Id, Experimental-Result-Code)`` of the Experimental-Result, or None."""
        g = self.group("Experimental-Result")
        if g is None:
            return None
        vendor, code = g.get("Vendor-Id"), g.get("Experimental-Result-Code")
        if vendor is None or code is None:
            return None
        return int(vendor), int(code)

    def result(self) -> tuple[int, int] | None:
        """``(vendor, Experimental-Result-Code)`` when the Experimental-Result has both, else
        ``(0, Result-Code)``, or None: feed it to :func:`kmed.diameter.dictionary.result_name`
        (5001 depends on the vendor). An answer should carry one of the two (RFC 6733 §7.6);
        one that carries both is read by its vendor-specific result, as the CNN maps it to an
        EMM cause (kmed.cnn.s6a)."""
        er = self.experimental_result()
        if er is not None:
            return er
        rc = self.result_code()
        return None if rc is None else (0, rc)

    # -- changing (a decoded message becomes a built one holding raw copies: nothing is lost)

    def _own_items(self) -> list[Any]:
        if self._items is None:
            self._items = list(self.raw_avps())
        elif any(type(it) is bytes for it in self._items):
            self._items = list(_expand(self._items))
            self._buf, self._keys, self._offs, self._groups, self._index, self._shapes = b"", [], [], None, None, None
        return self._items

    def append(self, name: str, value: Any) -> None:
        """Add ``(name, value)`` at the end."""
        _lookup(name)
        self._own_items().append((name, value))

    def insert(self, index: int, name: str, value: Any) -> None:
        """Add ``(name, value)`` before position ``index``."""
        _lookup(name)
        self._own_items().insert(index, (name, value))

    def append_avp(self, item: AvpItem) -> None:
        """Add any AVP item (an :class:`Avp`, a 4-tuple or a pair) at the end."""
        self._own_items().append(item)

    def remove(self, name: str) -> int:
        """Remove every AVP called ``name``; returns how many there were."""
        key = _lookup(name)[0]
        items = self._own_items()
        kept = [it for it in items if _item_key(it)[0] != key]
        removed = len(items) - len(kept)
        items[:] = kept
        return removed

    def set(self, name: str, value: Any) -> None:
        """Replace the first AVP called ``name`` (dropping the others), or append it."""
        key = _lookup(name)[0]
        items = self._own_items()
        for i, it in enumerate(items):
            if _item_key(it)[0] == key:
                items[i] = (name, value)
                items[i + 1:] = [x for x in items[i + 1:] if _item_key(x)[0] != key]
                return
        items.append((name, value))

    def __repr__(self) -> str:
        return (f"<Message {self.name} app={self.application_id} flags=0x{self.flags:02x} "
                f"hbh=0x{self.hop_by_hop:08x} e2e=0x{self.end_to_end:08x} {len(self)} AVPs>")

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

Reading a value that does not convert (bad UTF-8, an Address of an unknown family) raises
:class:`DecodeError` with DIAMETER_INVALID_AVP_VALUE (5004) and the AVP as Failed-AVP.
"""

from __future__ import annotations

import datetime
import socket
import struct
from collections.abc import Callable, Iterable, Sequence
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
        self.flags = (flags & 0x7F) | (d.AVP_FLAG_V if vendor else 0)
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
        """The typed value per the table (raises ``KeyError`` for an AVP not in the table)."""
        df = self.definition
        if df is None:
            raise KeyError(f"{self.name} is not in the table")
        return _convert(df, self.data, 0, len(self.data), None, self)

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
AvpItem = tuple[str, Any] | tuple[int, int, int, bytes] | Avp

# ---------------------------------------------------------------- value conversion (reading)


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

#: name -> (lookup key, reader or None for Grouped): one dict lookup per ``get``.
_BY_NAME: dict[str, tuple[int, Callable[[bytes, int, int], Any] | None, d.AvpDef]] = {
    a.name: (a.key, None if a.type is _T.GROUPED else READERS[a.type], a) for a in d.AVPS
}

#: A decoded AVP: (flags, header start, data start, data end, children) where children is
#: ``(keys, entries)`` for a Grouped AVP of the table and None otherwise.
Entry = tuple[int, int, int, int, Any]


def _lookup(name: str) -> tuple[int, Callable[[bytes, int, int], Any] | None, d.AvpDef]:
    found = _BY_NAME.get(name)
    if found is None:
        raise KeyError(f"unknown AVP name {name!r}")
    return found


def _convert(df: d.AvpDef, buf: bytes, s: int, e: int, children: Any, raw: Avp | None) -> Any:
    """Value of AVP data ``buf[s:e]`` typed per ``df``; 5004 DecodeError when it does not convert."""
    if df.type is _T.GROUPED:
        if children is None:  # an Avp object: scan its data now
            from kmed.diameter.codec import scan_group

            children = scan_group(buf, s, e)
        return _pairs(buf, children[0], children[1])
    size = d.FIXED_SIZE.get(df.type)
    try:
        if size is not None and e - s != size:
            raise ValueError("wrong length")
        return READERS[df.type](buf, s, e)
    except ValueError:
        failed = raw if raw is not None else Avp(df.code, df.vendor, df.flags, buf[s:e])
        raise DecodeError(d.DIAMETER_INVALID_AVP_VALUE, f"{df.name}: invalid {df.type.value}", failed) from None


def _raw(buf: bytes, key: int, ent: Entry) -> Avp:
    flags, _hs, ds, de, _ = ent
    return Avp(key & 0xFFFFFFFF, key >> 32, flags, buf[ds:de])


def _value(buf: bytes, key: int, ent: Entry) -> Any:
    df = d.AVPS_BY_KEY.get(key)
    if df is None:
        return _raw(buf, key, ent)
    try:
        return _convert(df, buf, ent[2], ent[3], ent[4], None)
    except DecodeError as err:
        if err.failed_avp is not None and df.type is not _T.GROUPED:
            err.failed_avp = _raw(buf, key, ent)
        raise


def _pairs(buf: bytes, keys: Sequence[int], ents: Sequence[Entry]) -> list[Any]:
    out: list[Any] = []
    for key, ent in zip(keys, ents, strict=True):
        df = d.AVPS_BY_KEY.get(key)
        out.append(_raw(buf, key, ent) if df is None else (df.name, _value(buf, key, ent)))
    return out


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
    df = raw.definition
    return raw if df is None else raw.value()


# ---------------------------------------------------------------- groups and messages


class AvpGroup:
    """A list of AVPs (a message body or a Grouped AVP's value) read by name.

    ``get(name)`` the first value or ``default``; ``get_all(name)`` every value;
    ``group(name)`` the first Grouped AVP of that name as an :class:`AvpGroup` (or None);
    ``groups(name)`` all of them; ``name in group``; ``avps`` every item, decoded.
    A name that is not in the table raises ``KeyError`` (a typo, not an absent AVP).
    """

    __slots__ = ("_buf", "_ents", "_items", "_keys")

    def __init__(self, avps: Iterable[AvpItem] | AvpGroup | None = None) -> None:
        self._buf: bytes = b""
        self._keys: list[int] = []
        self._ents: list[Entry] = []
        if isinstance(avps, AvpGroup):
            self._items: list[Any] | None = avps.raw_avps() if avps._items is None else list(avps._items)
        else:
            self._items = list(avps) if avps is not None else []

    @classmethod
    def _view(cls, buf: bytes, keys: list[int], ents: list[Entry]) -> AvpGroup:
        g = cls.__new__(cls)
        g._buf, g._keys, g._ents, g._items = buf, keys, ents, None
        return g

    # -- reading

    def get(self, name: str, default: Any = None) -> Any:
        """Value of the first AVP called ``name``, or ``default`` when there is none."""
        key, reader, df = _lookup(name)
        if self._items is None:
            keys = self._keys
            if key not in keys:
                return default
            i = keys.index(key)
            ent = self._ents[i]
            if reader is None:
                return _pairs(self._buf, ent[4][0], ent[4][1])
            try:
                if (size := d.FIXED_SIZE.get(df.type)) is not None and ent[3] - ent[2] != size:
                    raise ValueError("wrong length")
                return reader(self._buf, ent[2], ent[3])
            except ValueError:
                raise DecodeError(d.DIAMETER_INVALID_AVP_VALUE, f"{name}: invalid {df.type.value}",
                                  _raw(self._buf, key, ent)) from None
        for item in self._items:
            k, value, is_raw = _item_key(item)
            if k == key:
                return _item_value(value, is_raw)
        return default

    def get_all(self, name: str) -> list[Any]:
        """Values of every AVP called ``name``, in order (empty list when there is none)."""
        key = _lookup(name)[0]
        if self._items is None:
            buf, ents = self._buf, self._ents
            return [_value(buf, key, ents[i]) for i, k in enumerate(self._keys) if k == key]
        out = []
        for item in self._items:
            k, value, is_raw = _item_key(item)
            if k == key:
                out.append(_item_value(value, is_raw))
        return out

    def group(self, name: str) -> AvpGroup | None:
        """The first Grouped AVP called ``name`` as an :class:`AvpGroup`, or None."""
        groups = self._groups(name, first=True)
        return groups[0] if groups else None

    def groups(self, name: str) -> list[AvpGroup]:
        """Every Grouped AVP called ``name``, in order."""
        return self._groups(name, first=False)

    def _groups(self, name: str, first: bool) -> list[AvpGroup]:
        key, reader, _df = _lookup(name)
        if reader is not None:
            raise TypeError(f"{name} is not a Grouped AVP")
        out: list[AvpGroup] = []
        if self._items is None:
            buf = self._buf
            for i, k in enumerate(self._keys):
                if k == key:
                    children = self._ents[i][4]
                    out.append(AvpGroup._view(buf, children[0], children[1]))
                    if first:
                        break
            return out
        for item in self._items:
            k, value, is_raw = _item_key(item)
            if k != key:
                continue
            if is_raw:
                from kmed.diameter.codec import scan_group

                raw: Avp = value
                keys, ents = scan_group(raw.data, 0, len(raw.data))
                out.append(AvpGroup._view(raw.data, keys, ents))
            else:
                out.append(value if isinstance(value, AvpGroup) else AvpGroup(value))
            if first:
                break
        return out

    def __contains__(self, name: str) -> bool:
        key = _lookup(name)[0]
        if self._items is None:
            return key in self._keys
        return any(_item_key(item)[0] == key for item in self._items)

    def __len__(self) -> int:
        return len(self._keys) if self._items is None else len(self._items)

    @property
    def avps(self) -> list[Any]:
        """Every AVP as an item: ``(name, value)`` for table AVPs (Grouped values as lists of
        items), :class:`Avp` for the others. Converts every value (use ``get`` on hot paths)."""
        if self._items is None:
            return _pairs(self._buf, self._keys, self._ents)
        out: list[Any] = []
        for item in self._items:
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
            return [_raw(buf, k, e) for k, e in zip(self._keys, self._ents, strict=True)]
        from kmed.diameter.codec import encode_avps, scan_group

        data = encode_avps(self._items)
        keys, ents = scan_group(data, 0, len(data))
        return [_raw(data, k, e) for k, e in zip(keys, ents, strict=True)]

    def raw(self, name: str) -> Avp | None:
        """The first AVP called ``name`` as a raw :class:`Avp`, or None."""
        key = _lookup(name)[0]
        if self._items is None:
            keys = self._keys
            return _raw(self._buf, key, self._ents[keys.index(key)]) if key in keys else None
        for avp in self.raw_avps():
            if d.avp_key(avp.code, avp.vendor) == key:
                return avp
        return None

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
                 buf: bytes, keys: list[int], ents: list[Entry], unknown_mandatory: list[Avp]) -> Message:
        m = cls.__new__(cls)
        m.command_code, m.flags, m.application_id = command_code, flags, application_id
        m.hop_by_hop, m.end_to_end = hop_by_hop, end_to_end
        m._buf, m._keys, m._ents, m._items = buf, keys, ents, None
        m.unknown_mandatory = unknown_mandatory
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
        session = [it for it in items if not isinstance(it, Avp) and len(it) == 2 and it[0] == "Session-Id"]
        if session:
            items = session[:1] + [it for it in items if it is not session[0]]
        else:
            sid = req.get("Session-Id")
            if sid is not None:
                items.insert(0, ("Session-Id", sid))
        if "Proxy-Info" in req and not any(not isinstance(it, Avp) and it[0] == "Proxy-Info" for it in items):
            items.extend(a for a in req.raw_avps() if a.code == 284 and a.vendor == 0)
        flags = (req.flags & d.FLAG_P) | (d.FLAG_E if error else 0)
        return cls(req.command_code, flags, req.application_id, req.hop_by_hop, req.end_to_end, items)

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
        """``(0, Result-Code)`` or ``(vendor, Experimental-Result-Code)``, or None: feed it to
        :func:`kmed.diameter.dictionary.result_name` (5001 depends on the vendor)."""
        rc = self.result_code()
        return (0, rc) if rc is not None else self.experimental_result()

    # -- changing (a decoded message becomes a built one holding raw copies: nothing is lost)

    def _own_items(self) -> list[Any]:
        if self._items is None:
            self._items = list(self.raw_avps())
            self._buf, self._keys, self._ents = b"", [], []
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

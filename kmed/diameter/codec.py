"""Diameter wire codec (RFC 6733 §3 header, §4 AVPs), sans I/O.

- :func:`frame_length` tells a stream reader how long the next message is (or that 4 octets
  are not there yet), refusing a bad version or an absurd length before buffering anything;
- :func:`decode` checks the header and every AVP length (at any depth) and indexes the AVP
  headers; values are converted when read (:class:`~kmed.diameter.message.AvpGroup`);
- :func:`encode` writes a message with per-AVP encoders compiled once from the table.

Every problem raises :class:`DecodeError` carrying the Result-Code to answer and, where
RFC 6733 §7.1.5 asks for one, the Failed-AVP; nothing else escapes :func:`decode`.
"""

from __future__ import annotations

import datetime
import socket
import struct
from collections.abc import Callable, Iterable
from typing import Any

from kmed.diameter import dictionary as d
from kmed.diameter.message import NTP_TO_POSIX, Avp, AvpGroup, AvpItem, DecodeError, Entry, Message

__all__ = [
    "DEFAULT_MAX_SIZE",
    "DecodeError",
    "EncodeError",
    "decode",
    "encode",
    "encode_avps",
    "frame_length",
    "scan_group",
]

#: Largest message accepted by default (octets). RFC 6733 allows 2**24 - 1; S6a messages kmed
#: exchanges are a few hundred octets, a ULA with many APNs a few kilobytes.
DEFAULT_MAX_SIZE = 65536
#: Deepest nesting of Grouped AVPs accepted (S6a's deepest is 5: Subscription-Data /
#: APN-Configuration-Profile / APN-Configuration / EPS-Subscribed-QoS-Profile / ARP).
MAX_DEPTH = 16

_HEADER = struct.Struct(">IIIII")
_AVP_HDR = struct.Struct(">II")
_AVP_HDR_V = struct.Struct(">III")
_U32 = struct.Struct(">I")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")
_MAX_LEN = 0xFFFFFF


class EncodeError(ValueError):
    """An AVP value that does not fit its type; names the AVP, never the value."""


# ---------------------------------------------------------------- decoding

#: key -> (fixed data size or 0, is Grouped), for the AVPs of the table.
_SCAN_INFO: dict[int, tuple[int, bool]] = {
    a.key: (d.FIXED_SIZE.get(a.type, 0), a.type is d.AvpType.GROUPED) for a in d.AVPS
}


def _failed_for_length(buf: bytes, pos: int, end: int) -> Avp:
    """Failed-AVP for 5014 (RFC 6733 §7.1.5): the header (zero-padded when truncated) with a
    zero-filled payload of the minimum size of the AVP's type."""
    hdr = bytes(buf[pos:min(pos + 12, end)]).ljust(12, b"\0")
    code, flags_len, vendor = _AVP_HDR_V.unpack(hdr)
    flags = flags_len >> 24
    if not flags & d.AVP_FLAG_V:
        vendor = 0
    info = _SCAN_INFO.get(d.avp_key(code, vendor))
    size = info[0] if info is not None else 0
    return Avp(code, vendor, flags & 0x7F, b"\0" * size)


def _scan(buf: bytes, pos: int, end: int, keys: list[int], ents: list[Entry],
          unknown_m: list[Avp], depth: int) -> None:
    """Index the AVPs of ``buf[pos:end]`` into ``keys``/``ents``, checking every length."""
    unpack_hdr = _AVP_HDR.unpack_from
    info_get = _SCAN_INFO.get
    while pos < end:
        if end - pos < 8:
            raise DecodeError(d.DIAMETER_INVALID_AVP_LENGTH, "truncated AVP header", _failed_for_length(buf, pos, end))
        code, flags_len = unpack_hdr(buf, pos)
        flags = flags_len >> 24
        length = flags_len & _MAX_LEN
        if flags & d.AVP_FLAG_V:
            if length < 12 or end - pos < 12:
                raise DecodeError(d.DIAMETER_INVALID_AVP_LENGTH, "AVP length < 12 with the V bit",
                                  _failed_for_length(buf, pos, end))
            vendor = _U32.unpack_from(buf, pos + 8)[0]
            dstart = pos + 12
        else:
            if length < 8:
                raise DecodeError(d.DIAMETER_INVALID_AVP_LENGTH, "AVP length < 8", _failed_for_length(buf, pos, end))
            vendor = 0
            dstart = pos + 8
        dend = pos + length
        if dend > end:
            raise DecodeError(d.DIAMETER_INVALID_AVP_LENGTH, "AVP overruns its message or group",
                              _failed_for_length(buf, pos, end))
        if flags & d.AVP_FLAGS_RESERVED:
            raise DecodeError(d.DIAMETER_INVALID_AVP_BITS, "reserved AVP flag bits set",
                              Avp(code, vendor, flags & 0x7F, buf[dstart:dend]))
        key = (vendor << 32) | code
        info = info_get(key)
        children = None
        if info is None:
            if flags & d.AVP_FLAG_M:
                unknown_m.append(Avp(code, vendor, flags, buf[dstart:dend]))
        else:
            if info[0] and dend - dstart != info[0]:
                raise DecodeError(d.DIAMETER_INVALID_AVP_LENGTH, "wrong length for a fixed-size AVP",
                                  Avp(code, vendor, flags, buf[dstart:dend]))
            if info[1]:
                if depth >= MAX_DEPTH:
                    raise DecodeError(d.DIAMETER_INVALID_AVP_VALUE, "Grouped AVPs nested too deep",
                                      Avp(code, vendor, flags, buf[dstart:dend]))
                ck: list[int] = []
                ce: list[Entry] = []
                _scan(buf, dstart, dend, ck, ce, unknown_m, depth + 1)
                children = (ck, ce)
        keys.append(key)
        ents.append((flags, pos, dstart, dend, children))
        pos = dend + (-length & 3)


def scan_group(buf: bytes, start: int, end: int) -> tuple[list[int], list[Entry]]:
    """Index the AVPs of a Grouped AVP's data ``buf[start:end]`` (raises :class:`DecodeError`).

    ``start`` must be 4-aligned relative to ``buf`` when the data is not at offset 0."""
    keys: list[int] = []
    ents: list[Entry] = []
    _scan(buf, start, end, keys, ents, [], 1)
    return keys, ents


def frame_length(buf: bytes | bytearray | memoryview, max_size: int = DEFAULT_MAX_SIZE) -> int | None:
    """Length of the message at the start of ``buf`` (RFC 6733 §3), None until 4 octets are there.

    Raises :class:`DecodeError`: 5011 for a version other than 1, 5015 for a length under 20,
    not a multiple of 4 or over ``max_size`` (the stream cannot be resynchronised: close it).
    """
    if len(buf) < 4:
        return None
    if buf[0] != 1:
        raise DecodeError(d.DIAMETER_UNSUPPORTED_VERSION, "Diameter version is not 1")
    length = (buf[1] << 16) | (buf[2] << 8) | buf[3]
    if length < 20 or length & 3:
        raise DecodeError(d.DIAMETER_INVALID_MESSAGE_LENGTH, "message length < 20 or not a multiple of 4")
    if length > max_size:
        raise DecodeError(d.DIAMETER_INVALID_MESSAGE_LENGTH, f"message length over the maximum of {max_size}")
    return length


def decode(buf: bytes | bytearray | memoryview, max_size: int = DEFAULT_MAX_SIZE) -> Message:
    """One whole message (exactly ``len(buf)`` octets) -> :class:`Message`.

    Raises :class:`DecodeError` (and nothing else) with: 5015 for a length < 20, not a multiple
    of 4, over ``max_size`` or different from ``len(buf)``; 5011 for a version other than 1;
    3008 for reserved command flag bits or R with E; 5014 for an AVP length < 8 (< 12 with V),
    overrunning its message or group, or wrong for a fixed-size type; 3009 for reserved AVP
    flag bits; 5004 for Grouped AVPs nested deeper than :data:`MAX_DEPTH`.
    """
    if type(buf) is not bytes:
        buf = bytes(buf)
    n = len(buf)
    if n < 20:
        raise DecodeError(d.DIAMETER_INVALID_MESSAGE_LENGTH, "shorter than a Diameter header")
    vlen, flags_code, app_id, hbh, e2e = _HEADER.unpack_from(buf)
    if vlen >> 24 != 1:
        raise DecodeError(d.DIAMETER_UNSUPPORTED_VERSION, "Diameter version is not 1")
    length = vlen & _MAX_LEN
    if length < 20 or length & 3 or length > max_size or length != n:
        raise DecodeError(d.DIAMETER_INVALID_MESSAGE_LENGTH,
                          "message length < 20, not a multiple of 4, over the maximum or not the buffer's")
    flags = flags_code >> 24
    code = flags_code & _MAX_LEN
    keys: list[int] = []
    ents: list[Entry] = []
    unknown_m: list[Avp] = []
    try:
        if flags & d.FLAGS_RESERVED or (flags & d.FLAG_R and flags & d.FLAG_E):
            raise DecodeError(d.DIAMETER_INVALID_HDR_BITS, "reserved command flag bits set or E on a request")
        _scan(buf, 20, n, keys, ents, unknown_m, 0)
    except DecodeError as err:
        err.partial = Message._decoded(code, flags, app_id, hbh, e2e, buf, keys, ents, unknown_m)
        raise
    return Message._decoded(code, flags, app_id, hbh, e2e, buf, keys, ents, unknown_m)


# ---------------------------------------------------------------- encoding

_Encoder = Callable[[Any], bytes]


def _to_ntp(value: Any) -> int:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        seconds = int(value.timestamp())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = int(value)
    else:
        raise TypeError("Time takes a datetime or POSIX seconds")
    ntp = seconds + NTP_TO_POSIX
    if not 0x80000000 <= ntp < 0x80000000 + (1 << 32):  # RFC 5905 §6 eras 0/1 as RFC 6733 §4.3.1
        raise ValueError("Time out of range (1968-2104)")
    return ntp & 0xFFFFFFFF


def _address_data(value: Any) -> bytes:
    text = str(value)  # str or an ipaddress object
    try:
        return b"\x00\x01" + socket.inet_pton(socket.AF_INET, text)
    except OSError:
        pass
    try:
        return b"\x00\x02" + socket.inet_pton(socket.AF_INET6, text)
    except OSError:
        raise ValueError("Address takes an IPv4 or IPv6 address") from None


def _utf8_data(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError("takes a str")
    return value.encode("utf-8")


def _identity_data(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError("takes a str")
    return value.encode("ascii")  # RFC 6733 §4.3.1 DiameterIdentity: an FQDN or realm, ASCII


def _octets_data(value: Any) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError("takes bytes")
    return bytes(value)


_FIXED_FORMAT = {
    d.AvpType.UNSIGNED32: "I", d.AvpType.INTEGER32: "i", d.AvpType.ENUMERATED: "i",
    d.AvpType.UNSIGNED64: "Q", d.AvpType.INTEGER64: "q", d.AvpType.FLOAT32: "f", d.AvpType.FLOAT64: "d",
}
_VARIABLE_DATA: dict[d.AvpType, Callable[[Any], bytes]] = {
    d.AvpType.OCTET_STRING: _octets_data,
    d.AvpType.UTF8STRING: _utf8_data,
    d.AvpType.DIAMETER_URI: _utf8_data,
    d.AvpType.DIAMETER_IDENTITY: _identity_data,
    d.AvpType.ADDRESS: _address_data,
}


def _compile(a: d.AvpDef) -> _Encoder:
    """An encoder ``value -> AVP bytes`` for one table entry (header prepacked where it is fixed)."""
    code, vendor, flags = a.code, a.vendor, a.flags
    hlen = 12 if vendor else 8
    fmt = _FIXED_FORMAT.get(a.type)
    if fmt is not None:
        size = struct.calcsize(">" + fmt)
        flags_len = (flags << 24) | (hlen + size)
        if vendor:
            pack_v = struct.Struct(">III" + fmt).pack
            return lambda v: pack_v(code, flags_len, vendor, v)
        pack = struct.Struct(">II" + fmt).pack
        return lambda v: pack(code, flags_len, v)
    if a.type is d.AvpType.TIME:
        prefix = (_AVP_HDR_V.pack(code, (flags << 24) | (hlen + 4), vendor) if vendor
                  else _AVP_HDR.pack(code, (flags << 24) | (hlen + 4)))
        return lambda v: prefix + _U32.pack(_to_ntp(v))
    data_of: Callable[[Any], bytes] = _VARIABLE_DATA.get(a.type) or _group_data
    fl = flags << 24
    limit = _MAX_LEN - hlen
    if vendor:
        pack_hdr_v = _AVP_HDR_V.pack

        def enc_v(v: Any) -> bytes:
            data = data_of(v)
            n = len(data)
            if n > limit:
                raise ValueError("too long")
            return pack_hdr_v(code, fl | (hlen + n), vendor) + data + _PAD[n & 3]

        return enc_v
    pack_hdr = _AVP_HDR.pack

    def enc(v: Any) -> bytes:
        data = data_of(v)
        n = len(data)
        if n > limit:
            raise ValueError("too long")
        return pack_hdr(code, fl | (hlen + n)) + data + _PAD[n & 3]

    return enc


def _group_data(value: Any) -> bytes:
    if isinstance(value, AvpGroup):
        return _group_body(value)
    if isinstance(value, list | tuple):
        return encode_avps(value)
    raise TypeError("Grouped takes a list of AVP items")


def _group_body(group: AvpGroup) -> bytes:
    if group._items is None:
        if not group._ents:
            return b""
        ents = group._ents
        first, last = ents[0], ents[-1]
        end = last[3] + (-(last[3] - last[1]) & 3)
        return group._buf[first[1]:min(end, len(group._buf))]
    return encode_avps(group._items)


_ENCODERS: dict[str, _Encoder] = {a.name: _compile(a) for a in d.AVPS}


def encode_avps(items: Iterable[AvpItem]) -> bytes:
    """AVP items (see :mod:`kmed.diameter.message`) -> the concatenated, padded AVPs.

    Raises :class:`EncodeError` naming the AVP whose value does not fit its type."""
    out: list[bytes] = []
    append = out.append
    for item in items:
        if type(item) is tuple and len(item) == 2:
            name, value = item
            enc = _ENCODERS.get(name)
            if enc is None:
                raise EncodeError(f"unknown AVP name {name!r}")
            try:
                append(enc(value))
            except EncodeError:
                raise
            except (struct.error, TypeError, ValueError, OverflowError, AttributeError):
                kind = d.AVPS_BY_NAME[name].type.value
                raise EncodeError(f"{name}: value of type {type(value).__name__} does not encode as {kind}") from None
        elif isinstance(item, Avp):
            append(item.encode())
        elif isinstance(item, tuple) and len(item) == 4:
            try:
                append(Avp(*item).encode())
            except (TypeError, ValueError) as err:
                raise EncodeError(f"raw AVP item: {err}") from None
        else:
            raise EncodeError(f"not an AVP item: {type(item).__name__}")
    return b"".join(out)


def encode(msg: Message) -> bytes:
    """The message on the wire. A decoded, unchanged message re-encodes its AVPs byte for byte."""
    body = msg._buf[20:] if msg._items is None else encode_avps(msg._items)
    length = 20 + len(body)
    if length > _MAX_LEN:
        raise EncodeError("message longer than 2**24 - 1 octets")
    return _HEADER.pack(0x01000000 | length, (msg.flags << 24) | msg.command_code, msg.application_id,
                        msg.hop_by_hop, msg.end_to_end) + body

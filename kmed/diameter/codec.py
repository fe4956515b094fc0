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
from functools import partial
from typing import Any

from kmed.diameter import dictionary as d
from kmed.diameter import layouts
from kmed.diameter.message import NTP_TO_POSIX, Avp, AvpGroup, AvpItem, DecodeError, Message, scan

__all__ = [
    "DEFAULT_MAX_SIZE",
    "DecodeError",
    "EncodeError",
    "decode",
    "encode",
    "encode_avps",
    "frame_length",
]

#: Largest message accepted by default (octets). RFC 6733 allows 2**24 - 1; S6a messages kmed
#: exchanges are a few hundred octets, a ULA with many APNs a few kilobytes.
DEFAULT_MAX_SIZE = 65536

_HEADER = struct.Struct(">IIIII")
_AVP_HDR = struct.Struct(">II")
_AVP_HDR_V = struct.Struct(">III")
_U32 = struct.Struct(">I")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")
_MAX_LEN = 0xFFFFFF


class EncodeError(ValueError):
    """An AVP value that does not fit its type; names the AVP, never the value."""


# ---------------------------------------------------------------- decoding


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


def decode(buf: bytes | bytearray | memoryview, max_size: int = DEFAULT_MAX_SIZE, *,
           validate: bool = True) -> Message:
    """One whole message (exactly ``len(buf)`` octets) -> :class:`Message`.

    Raises :class:`DecodeError` (and nothing else) with: 5015 for a length < 20, not a multiple
    of 4, over ``max_size`` or different from ``len(buf)``; 5011 for a version other than 1;
    3008 for reserved command flag bits or R with E; 5014 for an AVP length < 8 (< 12 with V),
    overrunning its message or group, or wrong for a fixed-size type; 3009 for reserved AVP
    flag bits; 5004 for Grouped AVPs nested deeper than :data:`MAX_DEPTH`.

    With ``validate`` (the default) every AVP at every depth is checked now and
    ``msg.unknown_mandatory`` lists the AVPs outside the table that have the M bit (answer 5001
    with them as Failed-AVP, RFC 6733 §7.1.5). Without it only the top-level AVP headers are
    checked; a Grouped AVP's content is checked when it is read (``group``/``get`` raise
    :class:`DecodeError`) and ``unknown_mandatory`` stays empty until ``msg.validate()``.
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
    key = layouts.key_of(flags_code, length, buf)
    layout = layouts.match(key, buf)
    if layout is not None:  # the shape of a message checked before: same checks, same index
        msg = Message._decoded(code, flags, app_id, hbh, e2e, buf, layout.keys, layout.offs)
        msg._index = layout.index
        msg._shapes = layout.shapes
        return msg
    msg = Message._decoded(code, flags, app_id, hbh, e2e, buf, [], [])
    try:
        if flags & d.FLAGS_RESERVED or (flags & d.FLAG_R and flags & d.FLAG_E):
            raise DecodeError(d.DIAMETER_INVALID_HDR_BITS, "reserved command flag bits set or E on a request")
        if validate:
            groups: list[int] = []
            scan(buf, 20, n, msg._keys, msg._offs, msg.unknown_mandatory, groups)
            if groups:
                msg._validate_scanned(msg.unknown_mandatory, groups)
        else:
            scan(buf, 20, n, msg._keys, msg._offs)
    except DecodeError as err:
        err.partial = msg
        raise
    if validate and not msg.unknown_mandatory:
        layouts.learn(key, msg)
    return msg


# ---------------------------------------------------------------- encoding



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
_DATA: dict[d.AvpType, Callable[[Any], bytes] | None] = {
    d.AvpType.OCTET_STRING: None,  # bytes go as they are (see encode_avps)
    d.AvpType.UTF8STRING: _utf8_data,
    d.AvpType.DIAMETER_URI: _utf8_data,
    d.AvpType.DIAMETER_IDENTITY: _identity_data,
    d.AvpType.ADDRESS: _address_data,
    d.AvpType.TIME: lambda v: _U32.pack(_to_ntp(v)),
}

# Kinds of encoding (literals in the loop below, which runs once per AVP):
#   0: fixed size, one prebound struct call packs header and value;
#   1: variable size: header int (prefix + (flags|header length + data length) * shift) as bytes,
#      data converted from the value (None: bytes as they are), padding;
#   2: Grouped: as 1 with the data encoded from the items.
#: name -> (kind, fixed-size packer, header prefix, flags|header length, shift, header length, converter)
_Encoding = tuple[int, Callable[[Any], bytes] | None, int, int, int, int, Callable[[Any], bytes] | None]


def _compile(a: d.AvpDef) -> _Encoding:
    """How to encode one table AVP, with its code, flags and vendor folded in."""
    hlen = 12 if a.vendor else 8
    fmt = _FIXED_FORMAT.get(a.type)
    if fmt is not None:
        flags_len = (a.flags << 24) | (hlen + struct.calcsize(">" + fmt))
        if a.vendor:
            return 0, partial(struct.Struct(">III" + fmt).pack, a.code, flags_len, a.vendor), 0, 0, 0, 0, None
        return 0, partial(struct.Struct(">II" + fmt).pack, a.code, flags_len), 0, 0, 0, 0, None
    kind = 2 if a.type is d.AvpType.GROUPED else 1
    # header as one int: code | flags, length | vendor (RFC 6733 §4.1)
    prefix, shift = ((a.code << 64) | a.vendor, 1 << 32) if a.vendor else (a.code << 32, 1)
    return kind, None, prefix, (a.flags << 24) | hlen, shift, hlen, _DATA.get(a.type)


_ENCODINGS: dict[str, _Encoding] = {a.name: _compile(a) for a in d.AVPS}


def _encode_into(items: Iterable[AvpItem], out: list[bytes]) -> None:
    append = out.append
    encodings = _ENCODINGS
    name: Any = None
    value: Any = None
    try:
        for item in items:
            if type(item) is not tuple:  # pre-encoded bytes, an Avp, or an error
                if type(item) is bytes and not len(item) & 3:
                    append(item)
                else:
                    name = None
                    _encode_raw(item, append)
                continue
            try:
                name, value = item  # type: ignore[misc]
                kind, pack, prefix, base, shift, hlen, convert = encodings[name]
            except (TypeError, ValueError, KeyError):  # a 4-tuple, or an error
                name = None
                _encode_raw(item, append)
                continue
            if kind == 0:
                append(pack(value))  # type: ignore[misc]
                continue
            if kind == 2:
                data = _group_data(value)
            elif convert is None:
                data = value if type(value) is bytes else _octets_data(value)
            else:
                data = convert(value)
            n = len(data)
            if n > 0xFFFFF0:
                raise ValueError("too long")
            append((prefix + (base + n) * shift).to_bytes(hlen, "big"))
            append(data)
            if n & 3:
                append(_PAD[n & 3])
    except EncodeError:
        raise
    except (struct.error, TypeError, ValueError, OverflowError, AttributeError):
        kind_name = d.AVPS_BY_NAME[name].type.value
        raise EncodeError(f"{name}: value of type {type(value).__name__} does not encode as {kind_name}") from None


def _encode_raw(item: Any, append: Callable[[bytes], None]) -> None:
    if type(item) is bytes:  # already encoded AVPs (encode_avps)
        if len(item) & 3:
            raise EncodeError("pre-encoded AVPs must be whole, padded AVPs")
        append(item)
    elif isinstance(item, Avp):
        append(item.encode())
    elif isinstance(item, tuple) and len(item) == 4:
        try:
            append(Avp(*item).encode())
        except (TypeError, ValueError) as err:
            raise EncodeError(f"raw AVP item: {err}") from None
    elif isinstance(item, tuple) and len(item) == 2:
        raise EncodeError(f"unknown AVP name {item[0]!r}")
    else:
        raise EncodeError(f"not an AVP item: {type(item).__name__}")


def _group_data(value: Any) -> bytes:
    if isinstance(value, AvpGroup):
        return value.wire_data()
    if isinstance(value, list | tuple):
        out: list[bytes] = []
        _encode_into(value, out)
        return b"".join(out)
    raise TypeError("Grouped takes a list of AVP items")


def encode_avps(items: Iterable[AvpItem]) -> bytes:
    """AVP items (see :mod:`kmed.diameter.message`) -> the concatenated, padded AVPs.

    Raises :class:`EncodeError` naming the AVP whose value does not fit its type."""
    out: list[bytes] = []
    _encode_into(items, out)
    return b"".join(out)


def encoded_avps(items: Iterable[tuple[str, Any]]) -> dict[int, bytes]:
    """``{code: encoded AVP}`` for base-protocol AVP items (one AVP each): what
    :func:`kmed.diameter.peer.fill_missing` adds to a message that lacks them."""
    return {d.avp(name).code: encode_avps([(name, value)]) for name, value in items}


def encode(msg: Message) -> bytes:
    """The message on the wire. A decoded, unchanged message re-encodes its AVPs byte for byte."""
    body = msg._buf[20:] if msg._items is None else encode_avps(msg._items)
    length = 20 + len(body)
    if length > _MAX_LEN:
        raise EncodeError("message longer than 2**24 - 1 octets")
    return _HEADER.pack(0x01000000 | length, (msg.flags << 24) | msg.command_code, msg.application_id,
                        msg.hop_by_hop, msg.end_to_end) + body

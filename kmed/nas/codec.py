"""Encode and decode EMM messages from the tables of `kmed.nas.messages` (TS 24.301 §8.2, §9).

Each table is compiled once, at import, into a plan of flat tuples that `encode` and `decode`
walk without further lookups. `decode` never raises anything but `NasDecodeError`, which
carries the EMM cause to answer with (TS 24.301 §7, Annex A) and whether to answer at all
(some errors are to be ignored silently, §7.2).

Decoding rules applied (TS 24.301 §7 and §9.9.1, TS 24.007 §11.2.4):
- too short for the message type, or a protocol discriminator other than EMM: ignored (§7.2);
- unknown message type: #97 (§7.4);
- missing or malformed mandatory IE (truncated, length out of the table's range, bad value): #96 (§7.5);
- unknown IEI in the non-imperative part: skipped (type 1/2 if bit 8 is set, else TLV; TLV-E
  for 0x7x, the only IEIs 24.301 uses with TLV-E), unless it is "comprehension required"
  (bits 8-5 = 0000): #96 (§7.6.1);
- optional IE with a bad length or value: treated as absent (§7.6.2... §7.7); repeated IE: the
  first is kept (§7.6.3);
- a security protected message (header type 1 or 3) is decoded from its inner plain message,
  with `mac` and `sequence_number` filled in (the MAC is *not* checked here: see
  `kmed.nas.security`); a ciphered one (2, 4) cannot be decoded without its context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kmed.nas.causes import EmmCause
from kmed.nas.ies import EMM_PD, Format, Presence, SecurityHeaderType
from kmed.nas.messages import MESSAGES, MessageSpec

__all__ = ["NasDecodeError", "NasEncodeError", "NasMessage", "decode", "encode", "message_spec"]


class NasDecodeError(Exception):
    """A PDU that cannot be decoded. `cause` is the EMM cause for an EMM STATUS (or reject);
    `respond` is False when TS 24.301 says to ignore the message silently."""

    def __init__(self, cause: EmmCause, detail: str, *, respond: bool = True, message_type: int | None = None) -> None:
        super().__init__(f"#{int(cause)} {cause.name}: {detail}")
        self.cause = cause
        self.detail = detail
        self.respond = respond
        self.message_type = message_type


class NasEncodeError(ValueError):
    """A `NasMessage` that cannot be encoded (programming error: unknown name, missing or bad IE)."""


@dataclass(slots=True)
class NasMessage:
    """A plain EMM message: `name` (a `kmed.nas.messages` table name) and IE values keyed by
    spec names. When decoded from a security protected PDU, `security_header_type`, `mac` and
    `sequence_number` describe the outer header (encode always produces the plain message)."""

    name: str
    ies: dict[str, Any] = field(default_factory=dict)
    security_header_type: int = 0
    mac: bytes | None = None
    sequence_number: int | None = None

    def __getitem__(self, name: str) -> Any:
        return self.ies[name]

    def __contains__(self, name: object) -> bool:
        return name in self.ies

    def get(self, name: str, default: Any = None) -> Any:
        """The IE's value, or `default` when absent."""
        return self.ies.get(name, default)

    @property
    def message_type(self) -> int:
        """The message type octet (TS 24.301 table 9.8.1)."""
        return _PLANS[self.name].mtype


# --- compiled plans ----------------------------------------------------------------------------
_HALF, _FIXED, _LV, _LVE = 0, 1, 2, 3  # imperative steps
_TV, _TLV, _TLVE, _T1 = 4, 5, 6, 7  # non-imperative kinds

Enc = Callable[[Any], Any]


@dataclass(slots=True)
class _Plan:
    spec: MessageSpec
    mtype: int
    head: bytes
    imperative: tuple[tuple[Any, ...], ...]
    mandatory: frozenset[str]
    names: frozenset[str]
    enc_opt: dict[str, tuple[int, int, Enc, int, int, int]]  # name -> (kind, iei, enc, min, max, order)
    dec_full: dict[int, tuple[int, str, Enc, int, int]]  # iei -> (kind, name, dec, min, max)
    dec_half: dict[int, tuple[str, Enc]]  # iei & 0xF0 -> (name, dec)


def _compile(spec: MessageSpec) -> _Plan:
    imperative: list[tuple[Any, ...]] = []
    pending_half: Any = None
    enc_opt: dict[str, tuple[int, int, Enc, int, int, int]] = {}
    dec_full: dict[int, tuple[int, str, Enc, int, int]] = {}
    dec_half: dict[int, tuple[str, Enc]] = {}
    mandatory: set[str] = set()
    for order, ie in enumerate(spec.ies):
        vt = ie.vtype
        if ie.iei is None:
            if ie.presence is not Presence.M:
                raise ValueError(f"{spec.name}.{ie.name}: imperative IEs are mandatory")
            name = None if ie.name == "spare_half_octet" else ie.name
            if name is not None:
                mandatory.add(name)
            if vt.half:
                if pending_half is None:
                    pending_half = (name, vt.encode, vt.decode)
                else:
                    imperative.append((_HALF, *pending_half, name, vt.encode, vt.decode))
                    pending_half = None
                continue
            if pending_half is not None:
                raise ValueError(f"{spec.name}: odd number of half-octet IEs before {ie.name}")
            if ie.fmt is Format.V:
                imperative.append((_FIXED, name, vt.encode, vt.decode, ie.min_len))
            elif ie.fmt is Format.LV:
                imperative.append((_LV, name, vt.encode, vt.decode, ie.min_len, ie.max_len))
            elif ie.fmt is Format.LV_E:
                imperative.append((_LVE, name, vt.encode, vt.decode, ie.min_len, ie.max_len))
            else:
                raise ValueError(f"{spec.name}.{ie.name}: format {ie.fmt} in the imperative part")
            continue
        if vt.half:
            kind = _T1
            if ie.iei & 0x0F or not ie.iei & 0x80:
                raise ValueError(f"{spec.name}.{ie.name}: type 1 IEI must be 0xX0 with bit 8 set")
            dec_half[ie.iei] = (ie.name, vt.decode)
        else:
            kind = {Format.TV: _TV, Format.TLV: _TLV, Format.TLV_E: _TLVE}[ie.fmt]
            dec_full[ie.iei] = (kind, ie.name, vt.decode, ie.min_len, ie.max_len)
        enc_opt[ie.name] = (kind, ie.iei, vt.encode, ie.min_len, ie.max_len, order)
    if pending_half is not None:
        raise ValueError(f"{spec.name}: odd number of half-octet IEs")
    names = frozenset(mandatory) | frozenset(enc_opt)
    return _Plan(
        spec,
        spec.message_type,
        bytes((EMM_PD, spec.message_type)),
        tuple(imperative),
        frozenset(mandatory),
        names,
        enc_opt,
        dec_full,
        dec_half,
    )


_PLANS: dict[str, _Plan] = {m.name: _compile(m) for m in MESSAGES}
_PLANS_BY_TYPE: dict[int, _Plan] = {p.mtype: p for p in _PLANS.values()}


def message_spec(name: str) -> MessageSpec:
    """The table of a message, by name (KeyError if unknown)."""
    return _PLANS[name].spec


# --- encode ------------------------------------------------------------------------------------


def encode(msg: NasMessage) -> bytes:
    """The plain NAS message (security header type 0) for `msg`. Raises NasEncodeError."""
    plan = _PLANS.get(msg.name)
    if plan is None:
        raise NasEncodeError(f"unknown message {msg.name!r}")
    values = msg.ies
    out = bytearray(plan.head)
    name: str | None = None
    try:
        for step in plan.imperative:
            kind = step[0]
            if kind == _HALF:
                _, lo_name, lo_enc, _, hi_name, hi_enc, _ = step
                name = lo_name
                lo = lo_enc(values[lo_name]) if lo_name else 0
                name = hi_name
                hi = hi_enc(values[hi_name]) if hi_name else 0
                out.append((hi << 4) | lo)
                continue
            name = step[1]
            data = step[2](values[name])
            length = len(data)
            if kind == _FIXED:
                if length != step[4]:
                    raise _BadLength(name, length)
            elif not step[4] <= length <= step[5]:
                raise _BadLength(name, length)
            elif kind == _LV:
                out.append(length)
            else:
                out += length.to_bytes(2, "big")
            out += data
        if len(values) > len(plan.mandatory):
            _encode_optional(plan, values, out)
    except KeyError:
        raise NasEncodeError(f"{plan.spec.name}: mandatory IE {name} missing") from None
    except _BadLength as exc:
        name, length = exc.args
        raise NasEncodeError(f"{plan.spec.name}.{name}: {length} octets, outside the table's range") from None
    except (ValueError, TypeError) as exc:
        if isinstance(exc, NasEncodeError):
            raise
        raise NasEncodeError(f"{plan.spec.name}.{name}: {exc}") from None
    return bytes(out)


def _encode_optional(plan: _Plan, values: dict[str, Any], out: bytearray) -> None:
    enc_opt = plan.enc_opt
    present = []
    for name, value in values.items():
        if name in plan.mandatory or value is None:
            continue
        entry = enc_opt.get(name)
        if entry is None:
            raise NasEncodeError(f"{plan.spec.name}: no IE named {name!r}")
        present.append((entry[5], name, value, entry))
    present.sort(key=lambda item: item[0])  # table order
    for _, name, value, (kind, iei, enc, lo, hi, _) in present:
        try:
            data = enc(value)
        except (ValueError, TypeError) as exc:
            raise NasEncodeError(f"{plan.spec.name}.{name}: {exc}") from None
        if kind == _T1:
            out.append(iei | data)
            continue
        if not lo <= len(data) <= hi:
            raise _BadLength(name, len(data))
        out.append(iei)
        if kind == _TLV:
            out.append(len(data))
        elif kind == _TLVE:
            out += len(data).to_bytes(2, "big")
        out += data


# --- decode ------------------------------------------------------------------------------------

_M = EmmCause.INVALID_MANDATORY_INFORMATION


def decode(pdu: bytes) -> NasMessage:
    """Decode a NAS EMM PDU (plain, or security protected with header type 1/3). Raises only
    `NasDecodeError`."""
    try:
        data = bytes(pdu)
    except TypeError:
        raise NasDecodeError(EmmCause.PROTOCOL_ERROR_UNSPECIFIED, "PDU is not bytes", respond=False) from None
    if len(data) < 2:
        raise NasDecodeError(_M, "message too short for a message type", respond=False)
    first = data[0]
    if first & 0x0F != EMM_PD:
        raise NasDecodeError(
            EmmCause.MESSAGE_TYPE_NON_EXISTENT, f"protocol discriminator {first & 0x0F} is not EMM", respond=False
        )
    sht = first >> 4
    if sht == SecurityHeaderType.PLAIN:
        return _decode_plain(data)
    if sht in (SecurityHeaderType.INTEGRITY, SecurityHeaderType.INTEGRITY_NEW_CONTEXT):
        if len(data) < 8:
            raise NasDecodeError(_M, "security protected message too short", respond=False)
        if data[6] != EMM_PD:
            raise NasDecodeError(_M, "inner message is not a plain EMM message", respond=False)
        msg = _decode_plain(data[6:])
        msg.security_header_type = sht
        msg.mac = data[1:5]
        msg.sequence_number = data[5]
        return msg
    if sht in (SecurityHeaderType.INTEGRITY_CIPHERED, SecurityHeaderType.INTEGRITY_CIPHERED_NEW_CONTEXT):
        raise NasDecodeError(
            EmmCause.PROTOCOL_ERROR_UNSPECIFIED, "ciphered message: unprotect it with its security context first",
            respond=False,
        )
    raise NasDecodeError(EmmCause.MESSAGE_TYPE_NON_EXISTENT, f"security header type {sht} not supported", respond=False)


def _decode_plain(data: bytes) -> NasMessage:
    mtype = data[1]
    plan = _PLANS_BY_TYPE.get(mtype)
    if plan is None:
        raise NasDecodeError(EmmCause.MESSAGE_TYPE_NON_EXISTENT, f"message type 0x{mtype:02x}", message_type=mtype)
    end = len(data)
    pos = 2
    values: dict[str, Any] = {}
    try:
        for step in plan.imperative:
            kind = step[0]
            if kind == _HALF:
                if pos >= end:
                    raise _Truncated(step[1] or step[4])
                octet = data[pos]
                pos += 1
                if step[1]:
                    values[step[1]] = step[3](octet & 0x0F)
                if step[4]:
                    values[step[4]] = step[6](octet >> 4)
                continue
            name = step[1]
            if kind == _FIXED:
                length = step[4]
            elif kind == _LV:
                if pos >= end:
                    raise _Truncated(name)
                length = data[pos]
                pos += 1
                if not step[4] <= length <= step[5]:
                    raise _BadLength(name, length)
            else:
                if pos + 2 > end:
                    raise _Truncated(name)
                length = (data[pos] << 8) | data[pos + 1]
                pos += 2
                if not step[4] <= length <= step[5]:
                    raise _BadLength(name, length)
            if pos + length > end:
                raise _Truncated(name)
            values[name] = step[3](data[pos : pos + length])
            pos += length
    except _Truncated as exc:
        raise NasDecodeError(
            _M, f"{plan.spec.name}: truncated at mandatory IE {exc.args[0]}", message_type=mtype
        ) from None
    except _BadLength as exc:
        raise NasDecodeError(
            _M, f"{plan.spec.name}: mandatory IE {exc.args[0]} length {exc.args[1]} out of range", message_type=mtype
        ) from None
    except (ValueError, IndexError) as exc:
        raise NasDecodeError(_M, f"{plan.spec.name}: invalid mandatory IE ({exc})", message_type=mtype) from None
    if pos < end:
        _decode_optional(plan, data, pos, end, values)
    return NasMessage(plan.spec.name, values)


class _Truncated(Exception):
    pass


class _BadLength(Exception):
    pass


def _decode_optional(plan: _Plan, data: bytes, pos: int, end: int, values: dict[str, Any]) -> None:
    dec_full = plan.dec_full
    dec_half = plan.dec_half
    while pos < end:
        iei = data[pos]
        if iei & 0x80:  # type 1 or 2: one octet (TS 24.007 §11.2.4)
            entry_h = dec_half.get(iei & 0xF0)
            if entry_h is not None and entry_h[0] not in values:
                try:  # noqa: SIM105 (try/except is cheaper than contextlib.suppress on this path)
                    values[entry_h[0]] = entry_h[1](iei & 0x0F)
                except ValueError:
                    pass  # §7.7: syntactically incorrect optional IE, treated as absent
            pos += 1
            continue
        entry = dec_full.get(iei)
        if entry is None:
            if iei & 0xF0 == 0:
                raise NasDecodeError(
                    _M, f"{plan.spec.name}: unknown comprehension-required IEI 0x{iei:02x}", message_type=plan.mtype
                )
            kind = _TLVE if iei & 0xF0 == 0x70 else _TLV
            name = None
            dec: Enc | None = None
            lo = hi = 0
        else:
            kind, name, dec, lo, hi = entry
        if kind == _TV:
            start, length = pos + 1, lo
        elif kind == _TLV:
            if pos + 2 > end:
                return  # truncated optional IE: ignored
            start, length = pos + 2, data[pos + 1]
        else:
            if pos + 3 > end:
                return
            start, length = pos + 3, (data[pos + 1] << 8) | data[pos + 2]
        if start + length > end:
            return
        pos = start + length
        if name is None or dec is None or name in values or not lo <= length <= hi:
            continue
        try:  # noqa: SIM105 (as above)
            values[name] = dec(data[start : start + length])
        except (ValueError, IndexError):
            pass  # §7.7: treated as absent

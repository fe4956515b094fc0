"""Human-readable dump of a Diameter message, decoded by python-diameter (an independent decoder).

For ``kmed decode`` and for debugging: python-diameter parses the octets (with kmed's vendor
32473 AVPs registered in it), kmed's table adds enumeration names and tells Result-Code from
Experimental-Result-Code meanings (5001 depends on the vendor). With ``redact`` the values of
secret AVPs (KME, KASME, Encrypted-KME, XRES, KME-Token) are replaced by their SHA-256 prefix.
"""

from __future__ import annotations

import hashlib
from typing import Any

from kmed.diameter import dictionary as d

#: AVPs whose values are secrets or key material (never print them in logs).
SECRET_AVPS = frozenset({"KME", "KASME", "Encrypted-KME", "XRES", "KME-Token"})

_registered = False


def _register_kmed_avps() -> None:
    """Teach python-diameter kmed's vendor AVPs (idempotent; python-diameter's registry is global)."""
    global _registered
    if _registered:
        return
    from diameter.message.avp import avp as pd_avp
    from diameter.message.avp.avp import AvpEnumerated, AvpOctetString, AvpUnsigned32

    classes = {d.AvpType.OCTET_STRING: AvpOctetString, d.AvpType.ENUMERATED: AvpEnumerated,
               d.AvpType.UNSIGNED32: AvpUnsigned32}
    for a in d.AVPS:
        if a.vendor == d.VENDOR_KMED:
            pd_avp.register(a.code, a.name, classes[a.type], vendor=a.vendor, mandatory=a.mandatory)
    _registered = True


def _flags(flags: int) -> str:
    return "".join(c if flags & bit else "-" for c, bit in (("V", 0x80), ("M", 0x40), ("P", 0x20)))


def _show(a: d.AvpDef | None, value: Any, redact: bool) -> str:
    if a is not None and redact and a.name in SECRET_AVPS and isinstance(value, bytes):
        return f"<{len(value)} octets, sha256 {hashlib.sha256(value).hexdigest()[:16]}>"
    if isinstance(value, bytes):
        if a is not None and a.type in (d.AvpType.DIAMETER_IDENTITY, d.AvpType.DIAMETER_URI):
            return value.decode("ascii", "replace")
        return value.hex()
    if isinstance(value, tuple) and len(value) == 2:  # python-diameter's Address: (family, text)
        return str(value[1])
    if a is not None and isinstance(value, int) and value in a.values:
        return f"{a.values[value]} ({value})"
    return str(value)


def _lines(avps: list[Any], depth: int, redact: bool, out: list[str]) -> None:
    from diameter.message.avp.avp import AvpGrouped

    # an Experimental-Result-Code means what its sibling Vendor-Id says (RFC 6733 §7.6)
    vendor_id = next((x.value for x in avps if x.code == 266 and x.vendor_id == 0), 0)
    for x in avps:
        a = d.avp_by_code(x.code, x.vendor_id)
        name = a.name if a is not None else f"AVP {x.code}"
        vendor = f", vendor {x.vendor_id}" if x.vendor_id else ""
        head = f"{'  ' * depth}{name} (code {x.code}{vendor}) {_flags(x.flags)}"
        if a is not None and a.type is d.AvpType.GROUPED:
            out.append(head)
            _lines(AvpGrouped(x.code, x.vendor_id, x.payload, x.flags).value, depth + 1, redact, out)
            continue
        try:
            value = x.value
        except Exception:  # python-diameter could not convert it: show the octets
            value = x.payload
        if x.vendor_id == 0 and x.code in (268, 298) and isinstance(value, int):
            text = f"{d.result_name(value, vendor_id if x.code == 298 else 0)} ({value})"
        else:
            text = _show(a, value, redact)
        out.append(f"{head}: {text}")


def dump(buf: bytes, redact: bool = True) -> str:
    """The message in ``buf`` as indented text (one AVP per line).

    Raises :class:`kmed.diameter.message.DecodeError` when ``buf`` is not one well-formed
    message (kmed's codec checks it first, so python-diameter only sees valid framing)."""
    from kmed.diameter.codec import decode

    decode(buf, max_size=max(len(buf), 20))
    _register_kmed_avps()
    from diameter.message import Message as PdMessage

    pd = PdMessage.from_bytes(bytes(buf), plain_msg=True)
    h = pd.header
    request = bool(h.command_flags & d.FLAG_R)
    flags = "".join(c if h.command_flags & bit else "-" for c, bit in
                    (("R", d.FLAG_R), ("P", d.FLAG_P), ("E", d.FLAG_E), ("T", d.FLAG_T)))
    app = d.APPLICATIONS.get(h.application_id, str(h.application_id))
    out = [f"{d.command_abbrev(h.command_code, request)} (command {h.command_code}, {flags}) application {app}"
           f" hop-by-hop 0x{h.hop_by_hop_identifier:08x} end-to-end 0x{h.end_to_end_identifier:08x}"
           f" length {h.length}"]
    _lines(pd.avps, 1, redact, out)
    return "\n".join(out)

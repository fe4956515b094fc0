"""``kmed bench diameter-codec``: CPU cost of the S6a hot path in the codec alone.

One iteration = decode an AIR (as a CNN sends it, with the KME AVPs), read the AVPs an HSS
needs, build and encode an AIA with one E-UTRAN-Vector. Printed for kmed's codec and for
python-diameter's (the comparison of docs/architecture.md); figures are CPU microseconds
(``time.process_time``) and vary with the load of the machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import Message

_RAND, _XRES, _AUTN, _KASME = b"\x01" * 16, b"\x02" * 8, b"\x03" * 16, b"\x04" * 32


def sample_air() -> bytes:
    """An AIR as kmed's CNN sends it at attach (step 2 of docs/procedure.md)."""
    return codec.encode(Message.request("AIR", d.APP_S6A, [
        ("Session-Id", "mme.localdomain;1700000000;42"),
        ("Auth-Session-State", d.AUTH_SESSION_STATE_NO_STATE_MAINTAINED),
        ("Origin-Host", "mme.localdomain"),
        ("Origin-Realm", "localdomain"),
        ("Destination-Host", "hss.localdomain"),
        ("Destination-Realm", "localdomain"),
        ("User-Name", "001010000000001"),
        ("Supported-Features", [("Vendor-Id", d.VENDOR_3GPP), ("Feature-List-ID", 1), ("Feature-List", 0x1C000607)]),
        ("Requested-EUTRAN-Authentication-Info", [("Number-Of-Requested-Vectors", 1),
                                                  ("Immediate-Response-Preferred", 1)]),
        ("Visited-PLMN-Id", bytes.fromhex("00f110")),
        ("KME-Check", b"\x05" * 16),
        ("KME-Check-Identity", bytes.fromhex("0910100000000010")),
    ], hop_by_hop=1, end_to_end=2))


def _read_air(air: bytes) -> Message:
    req = codec.decode(air)
    imsi = req.get("User-Name")
    plmn = req.get("Visited-PLMN-Id")
    info = req.group("Requested-EUTRAN-Authentication-Info")
    wanted = info.get("Number-Of-Requested-Vectors") if info is not None else 1
    check = req.get("KME-Check")
    identity = req.get("KME-Check-Identity")
    assert imsi and plmn and wanted and check and identity
    return req


def _vector() -> list[tuple[str, object]]:
    return [("RAND", _RAND), ("XRES", _XRES), ("AUTN", _AUTN), ("KASME", _KASME),
            ("KME-Binding", d.KME_BINDING_BOUND_TO_CURRENT)]


_CONSTANT = [
    ("Vendor-Specific-Application-Id", [("Vendor-Id", d.VENDOR_3GPP), ("Auth-Application-Id", d.APP_S6A)]),
    ("Auth-Session-State", d.AUTH_SESSION_STATE_NO_STATE_MAINTAINED),
    ("Origin-Host", "hss.localdomain"),
    ("Origin-Realm", "localdomain"),
]
_CONSTANT_ENCODED = codec.encode_avps(_CONSTANT)


def kmed_iteration(air: bytes) -> bytes:
    """kmed, every AVP of the AIA encoded from its value."""
    req = _read_air(air)
    aia = Message.answer_to(req, [
        *_CONSTANT,
        ("Result-Code", d.DIAMETER_SUCCESS),
        ("Authentication-Info", [("E-UTRAN-Vector", _vector())]),
        ("KME-Status", d.KME_STATUS_MATCH),
    ])
    return codec.encode(aia)


def kmed_preencoded_iteration(air: bytes) -> bytes:
    """kmed, the AIA's constant AVPs (Origin-*, Vendor-Specific-Application-Id, ...) encoded once."""
    req = _read_air(air)
    aia = Message.answer_to(req, [
        _CONSTANT_ENCODED,
        ("Result-Code", d.DIAMETER_SUCCESS),
        ("Authentication-Info", [("E-UTRAN-Vector", _vector())]),
        ("KME-Status", d.KME_STATUS_MATCH),
    ])
    return codec.encode(aia)


def python_diameter_iteration_factory() -> Callable[[bytes], bytes]:
    """The same work with python-diameter (plain messages and ``Avp.new``; KME AVPs registered)."""
    from diameter.message import Message as PdMessage
    from diameter.message.avp import Avp as PdAvp
    from diameter.message.avp import avp as pd_avp_module
    from diameter.message.avp.avp import AvpEnumerated, AvpOctetString

    for a in d.AVPS:
        if a.vendor == d.VENDOR_KMED:
            cls = AvpEnumerated if a.type is d.AvpType.ENUMERATED else AvpOctetString
            pd_avp_module.register(a.code, a.name, cls, vendor=a.vendor, mandatory=False)

    def one(a: d.AvpDef, value: object) -> object:
        return PdAvp.new(a.code, a.vendor, value=value, is_mandatory=a.mandatory)

    def new(name: str, value: object) -> object:
        return one(d.avp(name), value)

    def find(msg: object, *names: str) -> object:
        path = [(d.avp(n).code, d.avp(n).vendor) for n in names]
        found = msg.find_avps(*path)  # type: ignore[attr-defined]
        return found[0].value if found else None

    def iteration(air: bytes) -> bytes:
        req = PdMessage.from_bytes(air, plain_msg=True)
        imsi = find(req, "User-Name")
        plmn = find(req, "Visited-PLMN-Id")
        wanted = find(req, "Requested-EUTRAN-Authentication-Info", "Number-Of-Requested-Vectors")
        check = find(req, "KME-Check")
        identity = find(req, "KME-Check-Identity")
        sid = find(req, "Session-Id")
        assert imsi and plmn and wanted and check and identity
        ans = req.to_answer()
        ans.avps = [
            new("Session-Id", sid),
            new("Vendor-Specific-Application-Id", [new("Vendor-Id", d.VENDOR_3GPP),
                                                   new("Auth-Application-Id", d.APP_S6A)]),
            new("Auth-Session-State", 1),
            new("Origin-Host", b"hss.localdomain"),
            new("Origin-Realm", b"localdomain"),
            new("Result-Code", d.DIAMETER_SUCCESS),
            new("Authentication-Info", [new("E-UTRAN-Vector", [
                new("RAND", _RAND), new("XRES", _XRES), new("AUTN", _AUTN), new("KASME", _KASME),
                new("KME-Binding", 1)])]),
            new("KME-Status", 0),
        ]
        out: bytes = ans.as_bytes()
        return out

    return iteration


def _measure(fns: list[Callable[[bytes], bytes]], air: bytes, iterations: int, rounds: int = 10) -> list[float]:
    """CPU µs per call of each function: rounds interleaved, the best round of each kept (the
    machine is shared: the best round is the least disturbed one)."""
    for fn in fns:
        for _ in range(min(200, iterations)):
            fn(air)
    per_round = max(1, iterations // rounds)
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start = time.process_time()
            for _ in range(per_round):
                fn(air)
            best[i] = min(best[i], time.process_time() - start)
    return [b / per_round * 1e6 for b in best]


def main(argv: list[str]) -> int:
    """Print CPU µs per AIR decode + AIA encode for kmed and python-diameter."""
    parser = argparse.ArgumentParser(prog="kmed bench diameter-codec", description=__doc__)
    parser.add_argument("--iterations", type=int, default=20000, help="iterations for kmed (default 20000)")
    parser.add_argument("--skip-python-diameter", action="store_true", help="measure kmed's codec only")
    args = parser.parse_args(argv)
    air = sample_air()
    # Every variant must produce an AIA that kmed decodes to the same AVPs before being timed.
    mine = codec.decode(kmed_iteration(air)).avps
    if codec.decode(kmed_preencoded_iteration(air)).avps != mine:
        print("kmed's two AIAs differ: comparison not valid")
        return 1
    print(f"AIR {len(air)} octets, AIA {len(kmed_iteration(air))} octets; CPU µs per AIR decode + AIA encode")
    kmed_us, pre_us = _measure([kmed_iteration, kmed_preencoded_iteration], air, args.iterations)
    print(f"kmed codec:                             {kmed_us:8.1f} µs ({args.iterations} iterations)")
    print(f"kmed codec, constant AVPs encoded once: {pre_us:8.1f} µs ({args.iterations} iterations)")
    if not args.skip_python_diameter:
        pd = python_diameter_iteration_factory()
        if codec.decode(pd(air)).avps != mine:
            print("python-diameter's AIA differs from kmed's: comparison not valid")
            return 1
        n = max(1, args.iterations // 20)
        (pd_us,) = _measure([pd], air, n, rounds=5)
        print(f"python-diameter codec:                  {pd_us:8.1f} µs ({n} iterations)")
        print(f"python-diameter / kmed: {pd_us / kmed_us:.1f}x")
    return 0

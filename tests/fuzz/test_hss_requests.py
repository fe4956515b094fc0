"""Structure-aware fuzzing of the HSS's request handling: AIR and ULR built from the dictionary.

Each request is assembled AVP by AVP: every AVP the handlers read (docs/hss.md) present or not,
with a plausible value, an implausible one or data its type cannot hold; Grouped AVPs with
their own random content; random table AVPs, vendor AVPs and unknown AVPs with the M bit; then
it goes through the Diameter peer and the S6a handlers over a real SQLite store
(tests/fuzz/hss_pipeline.py). The handler must always answer, with a well-formed answer and the
result code that docs/hss.md and TS 29.272 / RFC 6733 give for that request:

- one answer per request, to that request (identifiers, command, application, R clear, E bit
  exactly for 3xxx), one result (Result-Code or Experimental-Result), Failed-AVP with 5001, 5004,
  5005, 5014, 3009;
- for a request whose AVPs all read cleanly, exactly the code an independent oracle written from
  docs/hss.md expects; AIA 2001 with the vector count asked for (capped), KME-Status for step 2,
  and for step 4 an Encrypted-KME that the device's key decrypts to the KME sent with it;
- the KME held for an IMSI changes only by a ULR carrying a KME this HSS issued for that IMSI
  and IMEI, with its genuine KME-Token, newer than the KME held (seed step 13, the token rules).
"""

from __future__ import annotations

import contextlib
import random
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from kmed.crypto import aka, ecies
from kmed.crypto import kme as kmefn
from kmed.crypto.devkeys import luhn_digit
from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import DecodeError, Message
from kmed.nas.identity import imsi_identity
from tests.fuzz.budget import fuzz
from tests.fuzz.diameter_gen import leaves, unknown_avps, wrong_typed
from tests.fuzz.hss_pipeline import (
    DEVICES,
    IMEI_A,
    IMEI_B,
    IMEI_NO_DEVICE,
    IMSI_A,
    IMSI_B,
    OPC,
    PAIRS,
    PLMN,
    SUBSCRIBERS,
    HssUnderTest,
    Issued,
    K,
    close_hss,
    open_hss,
)

Result = tuple[int, int]
G3, KM = d.VENDOR_3GPP, d.VENDOR_KMED
OK: Result = (0, d.DIAMETER_SUCCESS)
MISSING: Result = (0, d.DIAMETER_MISSING_AVP)
INVALID: Result = (0, d.DIAMETER_INVALID_AVP_VALUE)
INVALID_LENGTH: Result = (0, d.DIAMETER_INVALID_AVP_LENGTH)
USER_UNKNOWN: Result = (G3, d.DIAMETER_ERROR_USER_UNKNOWN)
AUTH_UNAVAILABLE: Result = (G3, d.DIAMETER_AUTHENTICATION_DATA_UNAVAILABLE)
RAT_NOT_ALLOWED: Result = (G3, d.DIAMETER_ERROR_RAT_NOT_ALLOWED)
DEVICE_UNKNOWN: Result = (KM, d.DIAMETER_ERROR_KME_DEVICE_UNKNOWN)
PAIR_NOT_ALLOWED: Result = (KM, d.DIAMETER_ERROR_KME_PAIR_NOT_ALLOWED)
TOKEN_INVALID: Result = (KM, d.DIAMETER_ERROR_KME_TOKEN_INVALID)
CHECK_MISSING: Result = (KM, d.DIAMETER_ERROR_KME_CHECK_MISSING)
#: docs/hss.md "Result codes the HSS sends", plus what the peer layer answers before the handler
#: (RFC 6733 §7.1: 5001 unknown M-bit AVP, 5014/3009/5004 undecodable AVPs).
DOCUMENTED: set[Result] = {
    OK, MISSING, INVALID, INVALID_LENGTH, USER_UNKNOWN, AUTH_UNAVAILABLE, RAT_NOT_ALLOWED, DEVICE_UNKNOWN,
    PAIR_NOT_ALLOWED, TOKEN_INVALID, CHECK_MISSING, (0, d.DIAMETER_AVP_UNSUPPORTED), (0, d.DIAMETER_INVALID_AVP_BITS),
}
NEEDS_FAILED_AVP = {d.DIAMETER_AVP_UNSUPPORTED, d.DIAMETER_INVALID_AVP_VALUE, d.DIAMETER_MISSING_AVP,
                    d.DIAMETER_INVALID_AVP_LENGTH, d.DIAMETER_INVALID_AVP_BITS}


@pytest.fixture(scope="module")
def hss() -> Iterator[HssUnderTest]:
    h = open_hss()
    # two KMEs issued before the fuzzing starts, so that ULRs have genuine tokens to carry
    for imsi, imei in sorted(PAIRS):
        (answer,) = h.serve(codec.encode(_request("AIR", _resolve(h, base_air(imsi, kme_request=imei)))))
        _record_issued(h, imsi, imei, answer)
    yield h
    close_hss(h)


# --- markers resolved against the HSS's state when the request is built ----------------------------


class Marker:
    """A value that depends on the HSS's state: resolved when the request is built."""

    def __init__(self, kind: str, arg: Any = None) -> None:
        self.kind, self.arg = kind, arg

    def __repr__(self) -> str:
        return f"Marker({self.kind!r}, {self.arg!r})"


def _imei_of(value: Any) -> str | None:
    """The 15-digit IMEI the HSS makes of an IMEI AVP value (TS 23.003 §6.2.1), or None."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        return None
    if len(value) == 14:
        return value + luhn_digit(value)
    return value if len(value) == 15 else None


def _resolve(hss: HssUnderTest, items: list[Any]) -> list[Any]:
    """Replace the markers: a KME-Check over the KME held, a genuine AUTS, issued KMEs/tokens."""
    user = next((v for it in items if isinstance(it, tuple) and len(it) == 2 and it[0] == "User-Name"
                 for v in [it[1]]), None)
    ident = next((v for it in items if isinstance(it, tuple) and len(it) == 2 and it[0] == "KME-Check-Identity"
                  for v in [it[1]]), b"")
    out: list[Any] = []
    for it in items:
        if isinstance(it, tuple) and len(it) == 2:
            name, value = it
            if isinstance(value, list):
                value = _resolve(hss, value)
            elif isinstance(value, Marker):
                value = _marker_value(hss, value, user, ident)
                if value is None:
                    continue
            out.append((name, value))
        else:
            out.append(it)
    return out


def _marker_value(hss: HssUnderTest, m: Marker, user: Any, ident: Any) -> Any:
    held = hss.kme_held(user) if isinstance(user, str) and user in SUBSCRIBERS else None
    if m.kind == "kme_check":  # the KME-Check a UE holding the HSS's KME computes (seed step 1)
        key = held.kme if held is not None else bytes(32)
        ident = bytes(ident) if isinstance(ident, bytes) and 1 <= len(ident) <= 255 else b"\x01"
        return kmefn.kme_check(key, ident)
    if m.kind == "auts":  # a USIM's resynchronisation (TS 33.102 §6.3.5) with SQN_MS = arg
        rand = random.Random(m.arg).randbytes(16)
        return rand + aka.make_auts(K, OPC, rand, m.arg)
    issued = [i for i in hss.issued if i.imsi == user] or hss.issued
    pick = issued[m.arg % len(issued)]
    if m.kind == "issued_kme":
        return pick.kme
    if m.kind == "issued_token":
        return pick.token
    if m.kind == "issued_imei":
        return pick.imei
    raise AssertionError(m.kind)


# --- request generators ---------------------------------------------------------------------------


def _mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], bad_in_10: int = 3) -> st.SearchStrategy[Any]:
    """``good`` values, ``bad_in_10`` times in 10 a ``bad`` one."""
    return st.integers(0, 9).flatmap(lambda k: bad if k >= 10 - bad_in_10 else good)


IMSIS = _mostly(st.sampled_from([IMSI_A, IMSI_B]), st.sampled_from(
    ["001010000009999", "00101", "0010100000000011234", "00101000000000a", "", "\u0663" * 15]))
IMEIS = _mostly(st.sampled_from([IMEI_A, IMEI_B, IMEI_A[:14], IMEI_B[:14]]), st.sampled_from(
    [IMEI_NO_DEVICE, "35693803564380x", "1234", "3569380356438090", "\u0663" * 15]))
PLMNS = _mostly(st.just(PLMN), st.binary(max_size=6), 2)
_u32 = _mostly(st.integers(0, 40), st.integers(0, 2**32 - 1))
_i32 = _mostly(st.just(d.RAT_TYPE_EUTRAN), st.integers(-(2**31), 2**31 - 1), 2)
RESYNC = st.one_of(st.integers(0, 2**40).map(lambda s: Marker("auts", s)), st.binary(min_size=30, max_size=30),
                   st.binary(max_size=40))
KME_CHECKS = st.one_of(st.just(Marker("kme_check")), st.just(Marker("kme_check")), st.binary(min_size=16, max_size=16),
                       st.binary(max_size=40))
IDENTITIES = st.one_of(st.sampled_from([imsi_identity(IMSI_A), imsi_identity(IMSI_B)]), st.binary(max_size=20),
                       st.binary(min_size=256, max_size=300))


def _slot(draw: st.DrawFn, name: str, values: st.SearchStrategy[Any], *, dirty: bool, absent: int = 1) -> Any:
    """One AVP slot: absent ``absent`` times in 10, else a value from ``values``; in a dirty
    request, one time in 10 data that the AVP's type cannot hold."""
    k = draw(st.integers(0, 9))  # small values (what hypothesis tries first and shrinks to): present
    if dirty and k == 9:
        return draw(wrong_typed(d.avp(name))).item
    if k >= 10 - absent - dirty:
        return None
    return (name, draw(values))


def _grouped(draw: st.DrawFn, name: str, members: list[Any], *, dirty: bool, absent: int = 1) -> Any:
    """A Grouped AVP slot: absent, its members, or (dirty) garbage data."""
    k = draw(st.integers(0, 9))
    if dirty and k == 9:
        return draw(wrong_typed(d.avp(name))).item
    if k >= 10 - absent - dirty:
        return None
    return (name, [m for m in members if m is not None])


def _common(draw: st.DrawFn, dirty: bool) -> list[Any]:
    return [
        _slot(draw, "Session-Id", st.just("mme.localdomain;1;42"), dirty=dirty),
        ("Auth-Session-State", 1), ("Origin-Host", "mme.localdomain"), ("Origin-Realm", "localdomain"),
        ("Destination-Realm", "localdomain"),
        _slot(draw, "User-Name", IMSIS, dirty=dirty),
        _slot(draw, "Visited-PLMN-Id", PLMNS, dirty=dirty),
    ]


def _extras(draw: st.DrawFn, dirty: bool) -> list[Any]:
    """Random table AVPs (well-typed), unknown and vendor AVPs: with the M bit only when dirty."""
    kinds = [leaves(), unknown_avps(mandatory=False)] + ([unknown_avps()] if dirty else [])
    return [n.item for n in draw(st.lists(st.one_of(kinds), max_size=3))]


@st.composite
def air_items(draw: st.DrawFn) -> list[Any]:
    dirty = draw(st.integers(0, 3)) == 0
    items = _common(draw, dirty)
    items.append(_grouped(draw, "Requested-EUTRAN-Authentication-Info", [
        _slot(draw, "Number-Of-Requested-Vectors", _u32, dirty=dirty),
        _slot(draw, "Immediate-Response-Preferred", _u32, dirty=False, absent=5),
        _slot(draw, "Re-Synchronization-Info", RESYNC, dirty=dirty, absent=8),
    ], dirty=dirty))
    items.append(_slot(draw, "KME-Check", KME_CHECKS, dirty=dirty, absent=4))
    items.append(_slot(draw, "KME-Check-Identity", IDENTITIES, dirty=dirty, absent=4))
    items.append(_slot(draw, "KME-Request", st.one_of(st.just(1), _u32), dirty=dirty, absent=6))
    items.append(_grouped(draw, "Terminal-Information", [
        _slot(draw, "IMEI", IMEIS, dirty=dirty),
        _slot(draw, "Software-Version", st.text(max_size=4), dirty=dirty, absent=5),
    ], dirty=dirty, absent=3))
    return _arrange(draw, items, dirty)


@st.composite
def ulr_items(draw: st.DrawFn) -> list[Any]:
    dirty = draw(st.integers(0, 3)) == 0
    items = _common(draw, dirty)
    items.append(_slot(draw, "RAT-Type", _i32, dirty=dirty))
    items.append(_slot(draw, "ULR-Flags", st.one_of(st.just(0x22), _u32), dirty=dirty))
    pick = draw(st.integers(0, 100))
    genuine = draw(st.integers(0, 3)) > 0
    imei = st.just(Marker("issued_imei", pick)) if genuine else IMEIS
    items.append(_grouped(draw, "Terminal-Information", [
        _slot(draw, "IMEI", imei, dirty=dirty),
        _slot(draw, "Software-Version", st.just("01"), dirty=dirty, absent=5),
    ], dirty=dirty, absent=2))
    kme = st.just(Marker("issued_kme", pick)) if genuine else st.binary(min_size=32, max_size=32)
    items.append(_slot(draw, "KME", st.one_of(kme, kme, st.binary(max_size=40)), dirty=dirty, absent=3))
    token = st.just(Marker("issued_token", pick)) if genuine else st.binary(min_size=24, max_size=24)
    other = st.integers(0, 100).map(lambda p: Marker("issued_token", p))
    items.append(_slot(draw, "KME-Token", st.one_of(token, token, other, st.binary(max_size=30)), dirty=dirty))
    return _arrange(draw, items, dirty)


def _arrange(draw: st.DrawFn, items: list[Any], dirty: bool) -> list[Any]:
    present = [it for it in items if it is not None] + _extras(draw, dirty)
    if draw(st.integers(0, 4)) == 0:  # AVP order is free (RFC 6733 §3, Session-Id aside)
        present.reverse()
    return present


def _request(cmd: str, items: list[Any], hbh: int = 0x1234) -> Message:
    return Message.request(cmd, d.APP_S6A, items, hop_by_hop=hbh, end_to_end=0x5678)


def base_air(imsi: str, *, kme_request: str | None = None) -> list[Any]:
    items: list[Any] = [("Session-Id", "mme;1"), ("Auth-Session-State", 1), ("Origin-Host", "mme.localdomain"),
                        ("Origin-Realm", "localdomain"), ("Destination-Realm", "localdomain"), ("User-Name", imsi),
                        ("Visited-PLMN-Id", PLMN),
                        ("Requested-EUTRAN-Authentication-Info", [("Number-Of-Requested-Vectors", 1)])]
    if kme_request is not None:
        items += [("KME-Request", 1), ("Terminal-Information", [("IMEI", kme_request)])]
    return items


# --- the oracle (docs/hss.md) ---------------------------------------------------------------------


class Unreadable(Exception):
    """An AVP the handler reads does not convert: which error comes first is the handler's
    choice (RFC 6733 does not order them), so only the documented set is checked."""


def _readable(req: Message, top: tuple[str, ...], groups: dict[str, tuple[str, ...]]) -> None:
    """Read every AVP the handler may read (first occurrences); raise :class:`Unreadable`."""
    try:
        for name in top:
            req.get(name)
        for name, members in groups.items():
            grp = req.group(name)
            for member in members if grp is not None else ():
                grp.get(member)
    except DecodeError as err:
        raise Unreadable(err.result_code) from None


_AIR_READS = ("User-Name", "Visited-PLMN-Id", "KME-Request", "KME-Check", "KME-Check-Identity")
_AIR_GROUPS = {"Requested-EUTRAN-Authentication-Info": ("Number-Of-Requested-Vectors", "Re-Synchronization-Info"),
               "Terminal-Information": ("IMEI", "Software-Version")}
_ULR_READS = ("User-Name", "Visited-PLMN-Id", "RAT-Type", "ULR-Flags", "KME", "KME-Token", "Origin-Host",
              "Origin-Realm")
_ULR_GROUPS = {"Terminal-Information": ("IMEI", "Software-Version")}


def _g(group: Any, name: str) -> Any:
    return group.get(name)


def _gr(group: Any, name: str) -> Any:
    return group.group(name)


def expect_air(hss: HssUnderTest, req: Message) -> Result:
    """AIR (docs/hss.md "AIR / AIA", TS 29.272 §5.2.3.1.3): what the answer must carry."""
    _readable(req, _AIR_READS, _AIR_GROUPS)
    imsi = _g(req, "User-Name")
    if imsi is None:
        return MISSING
    plmn = _g(req, "Visited-PLMN-Id")
    if plmn is None:
        return MISSING
    if len(plmn) != 3:
        return INVALID
    info = _gr(req, "Requested-EUTRAN-Authentication-Info")
    if info is not None:
        _g(info, "Number-Of-Requested-Vectors")
    resync = _g(info, "Re-Synchronization-Info") if info is not None else None
    kme_request = _g(req, "KME-Request") is not None
    check = None if kme_request else _g(req, "KME-Check")
    if imsi not in SUBSCRIBERS:
        return USER_UNKNOWN
    if resync is not None:
        if len(resync) != 30:
            return INVALID
        try:
            aka.verify_auts(K, OPC, resync[:16], resync[16:])
        except aka.MacFailure:
            return AUTH_UNAVAILABLE
    if kme_request:
        term = _gr(req, "Terminal-Information")
        value = _g(term, "IMEI") if term is not None else None
        if value is None:
            return MISSING
        imei = _imei_of(value)
        if imei is None:
            return INVALID
        if imei not in DEVICES:
            return DEVICE_UNKNOWN
        return OK if (imsi, imei) in PAIRS else PAIR_NOT_ALLOWED
    ident = _g(req, "KME-Check-Identity")
    if (check is None) != (ident is None):
        return CHECK_MISSING
    if check is not None and hss.kme_held(imsi) is not None and not 1 <= len(ident) <= 255:
        return INVALID
    return OK


def expect_ulr(hss: HssUnderTest, req: Message) -> tuple[Result, bytes | None]:
    """ULR (docs/hss.md "ULR / ULA" and "The KME token"): the code, and the KME to be stored."""
    _readable(req, _ULR_READS, _ULR_GROUPS)
    imsi = _g(req, "User-Name")
    if imsi is None or _g(req, "RAT-Type") is None or _g(req, "ULR-Flags") is None:
        return MISSING, None
    plmn = _g(req, "Visited-PLMN-Id")
    if plmn is None:
        return MISSING, None
    if len(plmn) != 3:
        return INVALID, None
    kme = _g(req, "KME")
    if imsi not in SUBSCRIBERS:
        return USER_UNKNOWN, None
    if _g(req, "RAT-Type") != d.RAT_TYPE_EUTRAN:
        return RAT_NOT_ALLOWED, None
    term = _gr(req, "Terminal-Information")
    value = _g(term, "IMEI") if term is not None else None
    _g(term, "Software-Version") if term is not None else None
    imei = _imei_of(value)
    if value is not None and imei is None:
        return INVALID, None
    if kme is None:
        return (PAIR_NOT_ALLOWED if imei is not None and (imsi, imei) not in PAIRS else OK), None
    if imei is None:
        return MISSING, None
    if len(kme) != 32:
        return INVALID, None
    if (imsi, imei) not in PAIRS:
        return PAIR_NOT_ALLOWED, None
    token = _g(req, "KME-Token")
    genuine = any(i.imsi == imsi and i.imei == imei and i.kme == kme and i.token == token for i in hss.issued)
    if not genuine:
        return TOKEN_INVALID, None
    issued_at = struct.unpack(">Q", token[16:24])[0]
    held = hss.kme_held(imsi)
    if held is not None and issued_at <= held.issued_at:
        same = issued_at == held.issued_at and held.imei == imei and held.kme == kme
        return (OK if same else TOKEN_INVALID), None
    return OK, bytes(kme)


# --- checks on every answer -------------------------------------------------------------------------


def check_answer(req_bytes: bytes, answer: Message) -> Result:
    """A well-formed answer to the request in ``req_bytes``; returns its (vendor, code)."""
    hbh, e2e = struct.unpack(">II", req_bytes[12:20])
    assert not answer.is_request
    assert (answer.hop_by_hop, answer.end_to_end) == (hbh, e2e)
    assert answer.command_code == int.from_bytes(req_bytes[5:8], "big")
    assert answer.application_id == int.from_bytes(req_bytes[8:12], "big")
    rc, er = answer.result_code(), answer.experimental_result()
    assert (rc is None) != (er is None), "exactly one of Result-Code and Experimental-Result"
    result = (0, rc) if rc is not None else er
    assert result is not None
    assert answer.is_error == (result[0] == 0 and d.is_protocol_error(result[1]))
    if result[0] == 0 and result[1] in NEEDS_FAILED_AVP:
        assert answer.group("Failed-AVP") is not None, f"{result} without Failed-AVP"
    assert answer.get("Origin-Host") and answer.get("Origin-Realm")
    return result


def _record_issued(hss: HssUnderTest, imsi: str, imei: str, answer: Message) -> None:
    """Step 4's answer: the Encrypted-KME decrypts, with the device's key, to the KME sent with
    it, and the vectors are bound to it; keep KME and token for ULRs."""
    enc, kme, token = answer.get("Encrypted-KME"), answer.get("KME"), answer.get("KME-Token")
    assert enc and kme and token
    scheme = {d.KME_SCHEME_ECIES_PROFILE_A: "A", d.KME_SCHEME_ECIES_PROFILE_B: "B"}[answer.get("KME-Scheme")]
    assert scheme == DEVICES[imei]
    assert ecies.decrypt(scheme, hss.private_keys[imei], enc) == kme
    for v in answer.group("Authentication-Info").groups("E-UTRAN-Vector"):  # type: ignore[union-attr]
        assert v.get("KME-Binding") == d.KME_BINDING_BOUND_TO_NEW
    hss.issued.append(Issued(imsi, imei, bytes(kme), bytes(token)))
    del hss.issued[:-64]  # bounded


def _serve_one(hss: HssUnderTest, req_bytes: bytes) -> Message:
    answers = hss.serve(req_bytes)
    assert len(answers) == 1, f"{len(answers)} answers to one request"
    return answers[0]


def _decoded_or_peer_error(req_bytes: bytes) -> Message | Result:
    """The request as the handler sees it, or the result the peer layer answers instead."""
    try:
        req = codec.decode(req_bytes)
    except DecodeError as err:
        return (0, err.result_code)
    if req.unknown_mandatory:
        return (0, d.DIAMETER_AVP_UNSUPPORTED)
    return req


@fuzz(500)
@given(air_items())
def test_air_always_answered_with_the_documented_result(hss: HssUnderTest, items: list[Any]) -> None:
    req_bytes = codec.encode(_request("AIR", _resolve(hss, items)))
    seen = _decoded_or_peer_error(req_bytes)
    held_before = {imsi: hss.kme_held(imsi) for imsi in SUBSCRIBERS}
    expected: Result | None = None
    if isinstance(seen, tuple):
        expected = seen
    else:
        with contextlib.suppress(Unreadable):
            expected = expect_air(hss, seen)
    answer = _serve_one(hss, req_bytes)
    result = check_answer(req_bytes, answer)
    event(f"AIA {d.result_name(result[1], result[0])}, oracle {'exact' if expected else 'documented set'}")
    assert result in DOCUMENTED, result
    if expected is not None:
        assert result == expected, (result, expected)
    assert {imsi: hss.kme_held(imsi) for imsi in SUBSCRIBERS} == held_before, "an AIR changed a KME held"
    if result != OK:
        assert answer.group("Authentication-Info") is None
        return
    assert isinstance(seen, Message)
    info = seen.group("Requested-EUTRAN-Authentication-Info")
    wanted = 1 if info is None else int(info.get("Number-Of-Requested-Vectors", 1))
    vectors = answer.group("Authentication-Info").groups("E-UTRAN-Vector")  # type: ignore[union-attr]
    assert len(vectors) == max(1, min(wanted, 5))
    for v in vectors:
        assert len(v.get("RAND")) == 16 and len(v.get("AUTN")) == 16 and len(v.get("KASME")) == 32
    imsi = seen.get("User-Name")
    if seen.get("KME-Request") is not None:
        term = seen.group("Terminal-Information")
        assert term is not None
        _record_issued(hss, imsi, _imei_of(term.get("IMEI")) or "", answer)
    else:
        held, check = hss.kme_held(imsi), seen.get("KME-Check")
        match = held is not None and check is not None and kmefn.kme_check(
            held.kme, seen.get("KME-Check-Identity")) == check
        assert answer.get("KME-Status") == (d.KME_STATUS_MATCH if match else d.KME_STATUS_PROVISIONING_REQUIRED)


@fuzz(500)
@given(ulr_items())
def test_ulr_always_answered_and_only_an_issued_kme_is_stored(hss: HssUnderTest, items: list[Any]) -> None:
    req_bytes = codec.encode(_request("ULR", _resolve(hss, items)))
    seen = _decoded_or_peer_error(req_bytes)
    held_before = {imsi: hss.kme_held(imsi) for imsi in SUBSCRIBERS}
    expected: Result | None = None
    stored: bytes | None = None
    if isinstance(seen, tuple):
        expected = seen
    else:
        with contextlib.suppress(Unreadable):
            expected, stored = expect_ulr(hss, seen)
    answer = _serve_one(hss, req_bytes)
    result = check_answer(req_bytes, answer)
    event(f"ULA {d.result_name(result[1], result[0])}, oracle {'exact' if expected else 'documented set'}"
          + (", KME stored" if stored is not None else ""))
    assert result in DOCUMENTED, result
    if expected is not None:
        assert result == expected, (result, expected)
    held_after = {imsi: hss.kme_held(imsi) for imsi in SUBSCRIBERS}
    for imsi in SUBSCRIBERS:
        before, after = held_before[imsi], held_after[imsi]
        if before == after or (before is not None and after is not None and before.kme == after.kme
                               and before.issued_at == after.issued_at):
            continue
        # changed: only by this ULR, answered 2001, to a KME this HSS issued for this IMSI, newer
        assert result == OK and isinstance(seen, Message) and seen.get("User-Name") == imsi
        assert after is not None and any(i.imsi == imsi and i.kme == after.kme for i in hss.issued)
        assert before is None or after.issued_at > before.issued_at
        assert stored is None or stored == after.kme
    if stored is not None and expected == OK:
        assert held_after[seen.get("User-Name")].kme == stored  # type: ignore[union-attr]


@fuzz(200)
@given(st.sampled_from(["AIR", "ULR"]), st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)),
                                                 min_size=1, max_size=6), st.integers(0, 100))
def test_mutated_octets_of_valid_requests_are_answered_or_refused_cleanly(hss: HssUnderTest, cmd: str,
                                                                          flips: list[tuple[int, int]],
                                                                          pick: int) -> None:
    issued = hss.issued[pick % len(hss.issued)]
    if cmd == "AIR":
        items = base_air(issued.imsi, kme_request=issued.imei if pick % 2 else None)
    else:
        items = [("Session-Id", "mme;2"), ("Auth-Session-State", 1), ("Origin-Host", "mme.localdomain"),
                 ("Origin-Realm", "localdomain"), ("Destination-Realm", "localdomain"), ("User-Name", issued.imsi),
                 ("Terminal-Information", [("IMEI", issued.imei)]), ("RAT-Type", d.RAT_TYPE_EUTRAN),
                 ("ULR-Flags", 0x22), ("Visited-PLMN-Id", PLMN), ("KME", issued.kme), ("KME-Token", issued.token)]
    buf = bytearray(codec.encode(_request(cmd, items)))
    for pos, x in flips:
        buf[20 + pos % (len(buf) - 20)] ^= x  # the AVPs; the header's framing is the peer's (other tests)
    held_before = {imsi: hss.kme_held(imsi) for imsi in SUBSCRIBERS}
    for answer in hss.serve(bytes(buf)):
        assert not answer.is_request and answer.result() is not None
    for imsi in SUBSCRIBERS:
        after = hss.kme_held(imsi)
        if after is not None and after != held_before[imsi]:
            assert any(i.imsi == imsi and i.kme == after.kme for i in hss.issued), "a KME not issued was stored"


def test_the_oracle_is_not_vacuous(hss: HssUnderTest) -> None:
    """A plain AIR and a replayed ULR get what the oracle says (so the fuzz checks above bite)."""
    req = _request("AIR", base_air(IMSI_A))
    assert expect_air(hss, codec.decode(codec.encode(req))) == OK
    assert check_answer(codec.encode(req), _serve_one(hss, codec.encode(req))) == OK
    old = hss.issued[0]
    ulr = _request("ULR", [("Session-Id", "s"), ("User-Name", old.imsi), ("RAT-Type", d.RAT_TYPE_EUTRAN),
                           ("ULR-Flags", 0), ("Visited-PLMN-Id", PLMN), ("Terminal-Information", [("IMEI", old.imei)]),
                           ("KME", old.kme), ("KME-Token", old.token)])
    first = check_answer(codec.encode(ulr), _serve_one(hss, codec.encode(ulr)))
    assert first in (OK, TOKEN_INVALID)
    newer = [i for i in hss.issued if i.imsi == old.imsi][-1]
    if newer is not old:
        assert expect_ulr(hss, codec.decode(codec.encode(ulr)))[0] == TOKEN_INVALID

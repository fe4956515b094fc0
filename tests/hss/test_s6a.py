"""S6a handlers without sockets, over a real SQLite store (sans-I/O: request in, outcome out)."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.crypto import aka, ecies
from kmed.crypto import kme as kmefn
from kmed.crypto.kdf import kasme as derive_kasme
from kmed.crypto.milenage import milenage
from kmed.diameter import dictionary as d
from kmed.diameter.message import AvpGroup, Message
from kmed.hss.s6a import HssPolicy, normalise_imei
from kmed.hss.token import make_token
from kmed.hss.vectors import VectorJob
from tests.hss.conftest import IMEI, IMEI2, IMSI, OPC, PLMN, Hss, K, air, ulr

UNKNOWN_USER = (d.VENDOR_3GPP, d.DIAMETER_ERROR_USER_UNKNOWN)
AUTH_UNAVAILABLE = (d.VENDOR_3GPP, d.DIAMETER_AUTHENTICATION_DATA_UNAVAILABLE)
DEVICE_UNKNOWN = (d.VENDOR_KMED, d.DIAMETER_ERROR_KME_DEVICE_UNKNOWN)
PAIR_NOT_ALLOWED = (d.VENDOR_KMED, d.DIAMETER_ERROR_KME_PAIR_NOT_ALLOWED)
TOKEN_INVALID = (d.VENDOR_KMED, d.DIAMETER_ERROR_KME_TOKEN_INVALID)
SUCCESS = (0, d.DIAMETER_SUCCESS)


def vectors(answer: Message) -> list[AvpGroup]:
    info = answer.group("Authentication-Info")
    assert info is not None
    return info.groups("E-UTRAN-Vector")


def check_vector(v: AvpGroup, plmn: bytes = PLMN, k: bytes = K, opc: bytes = OPC) -> tuple[int, bytes]:
    """Recompute the vector from K/OPc independently; return (SQN, unbound KASME)."""
    rand, autn = v.get("RAND"), v.get("AUTN")
    ak = milenage(k, opc, rand, bytes(6), autn[6:8]).ak
    sqn = bytes(a ^ b for a, b in zip(autn[:6], ak, strict=True))
    amf = autn[6:8]
    assert amf[0] & 0x80, "AMF separation bit (TS 33.401 §6.1.1) must be set"
    m = milenage(k, opc, rand, sqn, amf)
    assert autn[8:] == m.mac_a
    assert v.get("XRES") == m.res
    return int.from_bytes(sqn, "big"), derive_kasme(m.ck, m.ik, plmn, autn[:6])


def test_air_vectors_recomputed_independently(hss: Hss) -> None:
    answer, out = hss.run(air(vectors=3))
    assert answer.result() == SUCCESS
    vs = vectors(answer)
    assert [v.get("Item-Number") for v in vs] == [1, 2, 3]
    sqns = []
    for v in vs:
        sqn, kasme = check_vector(v)
        assert v.get("KASME") == kasme
        assert v.get("KME-Binding") == d.KME_BINDING_NOT_BOUND
        sqns.append(sqn)
    assert sqns == sorted(set(sqns))
    assert answer.get("KME-Status") == d.KME_STATUS_PROVISIONING_REQUIRED
    assert answer.get("Origin-Host") == "hss.localdomain"
    assert answer.get("Auth-Session-State") == 1
    assert out.event["step"] == 2 and out.event["imsi"] == IMSI


def test_sqn_strictly_increasing_with_ind_cycling(hss: Hss) -> None:
    seen: list[int] = []
    for _ in range(40):
        answer, _ = hss.run(air())
        seen.append(check_vector(vectors(answer)[0])[0])
    assert all(a < b for a, b in itertools.pairwise(seen))
    inds = [s & 31 for s in seen]
    assert len(set(inds)) == 32, "IND values are allocated cyclically (TS 33.102 C.3.2)"
    assert hss.store.subscriber(IMSI).sqn == seen[-1]  # type: ignore[union-attr]


def test_uncommitted_reservations_are_not_reused(hss: Hss) -> None:
    """Two AIRs in flight for one IMSI (first not yet committed) get different SQNs."""
    a1, o1 = hss.run(air(), commit=False)
    a2, o2 = hss.run(air(), commit=False)
    s1, s2 = check_vector(vectors(a1)[0])[0], check_vector(vectors(a2)[0])[0]
    assert s2 > s1
    hss.store.apply([w for w in [*o1.writes, *o2.writes] if not isinstance(w, VectorJob)])  # the store's part


def test_vector_cap(tmp_path: Any) -> None:
    h = Hss(tmp_path / "s.sqlite", HssPolicy(max_vectors=2))
    h.store.add_subscriber(IMSI, K, OPC, b"\x80\x00", 0)
    answer, _ = h.run(air(vectors=10))
    assert len(vectors(answer)) == 2


def test_unknown_imsi(hss: Hss) -> None:
    for imsi in ("001019999999999", "not-an-imsi"):
        answer, out = hss.run(air(imsi))
        assert answer.experimental_result() == UNKNOWN_USER
        assert answer.result_code() is None
        assert out.writes == []
        answer, _ = hss.run(ulr(imsi))
        assert answer.experimental_result() == UNKNOWN_USER


def test_missing_and_invalid_avps(hss: Hss) -> None:
    req = Message.request("AIR", None, [("Session-Id", "x;1"), ("Origin-Host", "mme.localdomain"),
                                        ("Origin-Realm", "localdomain"), ("Visited-PLMN-Id", PLMN)])
    answer, _ = hss.run(req)
    assert answer.result_code() == d.DIAMETER_MISSING_AVP
    failed = answer.group("Failed-AVP")
    assert failed is not None and "User-Name" in failed
    answer, _ = hss.run(air(plmn=b"\x00\xf1"))
    assert answer.result_code() == d.DIAMETER_INVALID_AVP_VALUE
    answer, _ = hss.run(ulr(rat=None))
    assert answer.result_code() == d.DIAMETER_MISSING_AVP
    answer, _ = hss.run(air(resync=b"\x00" * 29))
    assert answer.result_code() == d.DIAMETER_INVALID_AVP_VALUE


def test_unsupported_command(hss: Hss) -> None:
    req = Message.request("PUR", None, [("Session-Id", "x;1"), ("User-Name", IMSI)])
    answer, _ = hss.run(req)
    assert answer.result_code() == d.DIAMETER_COMMAND_UNSUPPORTED
    assert answer.is_error


def test_resync_good_mac_s(hss: Hss) -> None:
    for _ in range(3):
        hss.run(air())
    sqn_ms = (1000 << 5) | 7  # the USIM has seen SEQ 1000: far ahead of the HSS
    rand = secrets.token_bytes(16)
    auts = aka.make_auts(K, OPC, rand, sqn_ms)
    answer, out = hss.run(air(resync=rand + auts))
    assert answer.result() == SUCCESS
    sqn = check_vector(vectors(answer)[0])[0]
    assert sqn >> 5 == 1001, "next vector after resync has SEQ_MS + 1"
    assert out.event["outcome"] == "resync"
    answer, _ = hss.run(air())
    assert check_vector(vectors(answer)[0])[0] > sqn


def test_resync_bad_mac_s_changes_nothing(hss: Hss) -> None:
    hss.run(air())
    before = hss.store.subscriber(IMSI).sqn  # type: ignore[union-attr]
    rand = secrets.token_bytes(16)
    auts = bytearray(aka.make_auts(K, OPC, rand, 5000 << 5))
    auts[-1] ^= 1
    answer, out = hss.run(air(resync=rand + bytes(auts)))
    assert answer.experimental_result() == AUTH_UNAVAILABLE
    assert out.writes == [] and out.event["outcome"] == "resync_mac_failure"
    assert hss.store.subscriber(IMSI).sqn == before  # type: ignore[union-attr]
    assert "Authentication-Info" not in answer


def _store_kme(hss: Hss, kme: bytes, imei: str = IMEI, issued_at: int = 1) -> None:
    from kmed.hss.store import StoreKme

    assert hss.store.apply([StoreKme(IMSI, imei, kme, issued_at, issued_at, kmefn.fingerprint(kme), "t")]) == [True]


IDENTITY = bytes.fromhex("0910101000000010")  # an EPS mobile identity value (IMSI) as the UE sent it


def test_kme_check_match_binds_to_current(hss: Hss) -> None:
    kme = kmefn.new_kme()
    _store_kme(hss, kme)
    extra = [("KME-Check", kmefn.kme_check(kme, IDENTITY)), ("KME-Check-Identity", IDENTITY)]
    answer, out = hss.run(air(extra=extra))
    assert answer.get("KME-Status") == d.KME_STATUS_MATCH
    v = vectors(answer)[0]
    _, kasme = check_vector(v)
    assert v.get("KME-Binding") == d.KME_BINDING_BOUND_TO_CURRENT
    assert v.get("KASME") == kmefn.bound_kasme(kasme, kme)
    assert out.event["kme_status"] == "MATCH"


def test_kme_check_match_unbound_when_policy_off(tmp_path: Any) -> None:
    h = Hss(tmp_path / "s.sqlite", HssPolicy(bind_current_kme=False))
    h.store.add_subscriber(IMSI, K, OPC, b"\x80\x00", 0)
    kme = kmefn.new_kme()
    _store_kme(h, kme)
    answer, _ = h.run(air(extra=[("KME-Check", kmefn.kme_check(kme, IDENTITY)), ("KME-Check-Identity", IDENTITY)]))
    assert answer.get("KME-Status") == d.KME_STATUS_MATCH
    v = vectors(answer)[0]
    assert v.get("KME-Binding") == d.KME_BINDING_NOT_BOUND
    assert v.get("KASME") == check_vector(v)[1]


def test_kme_check_mismatch_and_absent(hss: Hss) -> None:
    kme = kmefn.new_kme()
    _store_kme(hss, kme)
    wrong = [("KME-Check", kmefn.kme_check(kmefn.new_kme(), IDENTITY)), ("KME-Check-Identity", IDENTITY)]
    other_identity = [("KME-Check", kmefn.kme_check(kme, IDENTITY)), ("KME-Check-Identity", IDENTITY[:-1] + b"\x20")]
    for extra in (wrong, other_identity, []):
        answer, _ = hss.run(air(extra=extra))
        assert answer.get("KME-Status") == d.KME_STATUS_PROVISIONING_REQUIRED
        v = vectors(answer)[0]
        assert v.get("KME-Binding") == d.KME_BINDING_NOT_BOUND
        assert v.get("KASME") == check_vector(v)[1]


def test_kme_check_without_kme_held(hss: Hss) -> None:
    answer, _ = hss.run(air(extra=[("KME-Check", bytes(16)), ("KME-Check-Identity", IDENTITY)]))
    assert answer.get("KME-Status") == d.KME_STATUS_PROVISIONING_REQUIRED


def test_kme_check_without_identity(hss: Hss) -> None:
    answer, _ = hss.run(air(extra=[("KME-Check", bytes(16))]))
    assert answer.experimental_result() == (d.VENDOR_KMED, d.DIAMETER_ERROR_KME_CHECK_MISSING)


def kme_request(imei: str = IMEI) -> list[Any]:
    return [("KME-Request", 1), ("Terminal-Information", [("IMEI", imei), ("Software-Version", "01")])]


def test_kme_request_unknown_device(hss: Hss) -> None:
    answer, out = hss.run(air(extra=kme_request()))
    assert answer.experimental_result() == DEVICE_UNKNOWN
    assert "KME" not in answer and "Authentication-Info" not in answer
    assert out.event["step"] == 4
    audit = hss.store.show(IMSI)["kme_audit"]  # type: ignore[index]
    assert audit[0]["event"] == "refused" and audit[0]["reason"] == "device unknown"


def test_kme_request_pair_not_allowed(hss: Hss) -> None:
    _, public = ecies.generate_keypair("B")
    hss.store.add_device(IMEI2, "B", public)
    answer, _ = hss.run(air(extra=kme_request(IMEI2)))
    assert answer.experimental_result() == PAIR_NOT_ALLOWED
    assert "KME" not in answer


def test_kme_request_missing_terminal_information(hss: Hss) -> None:
    answer, _ = hss.run(air(extra=[("KME-Request", 1)]))
    assert answer.result_code() == d.DIAMETER_MISSING_AVP


def provision(hss: Hss, private: bytes, profile: str = "A", imei: str = IMEI) -> tuple[bytes, bytes]:
    """Steps 3-4: returns (KME, token) after checking the answer."""
    answer, out = hss.run(air(extra=kme_request(imei)))
    assert answer.result() == SUCCESS
    kme, token = answer.get("KME"), answer.get("KME-Token")
    assert len(kme) == 32
    scheme = {"A": d.KME_SCHEME_ECIES_PROFILE_A, "B": d.KME_SCHEME_ECIES_PROFILE_B}[profile]
    assert answer.get("KME-Scheme") == scheme
    assert ecies.decrypt(profile, private, answer.get("Encrypted-KME")) == kme
    v = vectors(answer)[0]
    _, kasme = check_vector(v)
    assert v.get("KME-Binding") == d.KME_BINDING_BOUND_TO_NEW
    assert v.get("KASME") == kmefn.bound_kasme(kasme, kme)
    assert out.event["outcome"] == "kme_issued"
    return kme, token


def test_kme_request_issues_bound_vector_and_keeps_no_state(hss: Hss, device: tuple[bytes, bytes]) -> None:
    kme, _ = provision(hss, device[0])
    shown = hss.store.show(IMSI)
    assert shown is not None and shown["kme_fingerprint"] is None  # nothing stored before ULR
    assert shown["kme_audit"][0]["event"] == "issued"
    assert shown["kme_audit"][0]["kme_fingerprint"] == kmefn.fingerprint(kme)


def test_kme_request_profile_b(hss: Hss) -> None:
    private, public = ecies.generate_keypair("B")
    hss.store.add_device(IMEI2, "B", public)
    hss.store.allow_pair(IMSI, IMEI2)
    provision(hss, private, "B", IMEI2)


def test_ulr_stores_issued_kme(hss: Hss, device: tuple[bytes, bytes]) -> None:
    kme, token = provision(hss, device[0])
    answer, out = hss.run(ulr(extra=[("KME", kme), ("KME-Token", token)]))
    assert answer.result() == SUCCESS
    assert answer.get("ULA-Flags") == d.ULA_SEPARATION_INDICATION
    sub = answer.group("Subscription-Data")
    assert sub is not None and sub.get("Subscriber-Status") == 0
    apn = sub.group("APN-Configuration-Profile").group("APN-Configuration")  # type: ignore[union-attr]
    assert apn is not None and apn.get("Service-Selection") == "internet"
    assert out.event["step"] == 13 and out.event["outcome"] == "kme_stored"
    shown = hss.store.show(IMSI)
    assert shown is not None
    assert shown["kme_fingerprint"] == kmefn.fingerprint(kme) and shown["kme_imei"] == IMEI
    assert shown["location"]["origin_host"] == "mme.localdomain"
    assert shown["kme_audit"][0]["event"] == "stored"
    # A retransmission of the same ULR (failover) is answered the same, nothing changes.
    answer, out = hss.run(ulr(extra=[("KME", kme), ("KME-Token", token)]))
    assert answer.result() == SUCCESS and out.event["outcome"] == "kme_already_stored"


def _refused(hss: Hss, extra: list[Any], imei: str = IMEI, code: tuple[int, int] = TOKEN_INVALID) -> None:
    before = hss.store.show(IMSI)
    answer, _ = hss.run(ulr(imei=imei, extra=extra))
    assert answer.experimental_result() == code
    after = hss.store.show(IMSI)
    assert before is not None and after is not None
    assert after["kme_fingerprint"] == before["kme_fingerprint"]
    assert after["location"] == before["location"]
    assert after["kme_audit"][0]["event"] == "refused"


def test_ulr_forged_kme_or_token_refused(hss: Hss, device: tuple[bytes, bytes]) -> None:
    kme, token = provision(hss, device[0])
    _refused(hss, [("KME", kmefn.new_kme()), ("KME-Token", token)])  # a KME this HSS did not issue
    forged = bytearray(token)
    forged[0] ^= 0x80
    _refused(hss, [("KME", kme), ("KME-Token", bytes(forged))])
    attacker_key = secrets.token_bytes(32)
    _refused(hss, [("KME", kme), ("KME-Token", make_token(attacker_key, IMSI, IMEI, kme, 10**15))])
    _refused(hss, [("KME", kme)])  # no token
    _refused(hss, [("KME", kme), ("KME-Token", token[:-1])])


def test_ulr_token_for_another_imei_refused(hss: Hss, device: tuple[bytes, bytes]) -> None:
    kme, token = provision(hss, device[0])
    _, public = ecies.generate_keypair("A")
    hss.store.add_device(IMEI2, "A", public)
    hss.store.allow_pair(IMSI, IMEI2)
    _refused(hss, [("KME", kme), ("KME-Token", token)], imei=IMEI2)


def test_ulr_pair_not_allowed(hss: Hss, device: tuple[bytes, bytes]) -> None:
    kme, token = provision(hss, device[0])
    hss.store.deny_pair(IMSI, IMEI)
    _refused(hss, [("KME", kme), ("KME-Token", token)], code=PAIR_NOT_ALLOWED)


def test_ulr_replayed_older_token_refused(hss: Hss, device: tuple[bytes, bytes]) -> None:
    kme1, token1 = provision(hss, device[0])
    kme2, token2 = provision(hss, device[0])
    answer, _ = hss.run(ulr(extra=[("KME", kme2), ("KME-Token", token2)]))
    assert answer.result() == SUCCESS
    _refused(hss, [("KME", kme1), ("KME-Token", token1)])  # an older KME cannot roll back
    assert hss.store.show(IMSI)["kme_fingerprint"] == kmefn.fingerprint(kme2)  # type: ignore[index]


def test_ulr_expired_token_refused(tmp_path: Any) -> None:
    now = [1_000_000_000_000_000]
    h = Hss(tmp_path / "s.sqlite", HssPolicy(kme_token_lifetime_s=300), clock=lambda: now[0])
    h.store.add_subscriber(IMSI, K, OPC, b"\x80\x00", 0)
    private, public = ecies.generate_keypair("A")
    h.store.add_device(IMEI, "A", public)
    h.store.allow_pair(IMSI, IMEI)
    kme, token = provision(h, private)
    now[0] += 301 * 1_000_000
    _refused(h, [("KME", kme), ("KME-Token", token)])
    assert h.store.show(IMSI)["kme_audit"][0]["reason"] == "token expired"  # type: ignore[index]


def test_ulr_newer_kme_wins_a_race(hss: Hss, device: tuple[bytes, bytes]) -> None:
    """Two ULRs read the store before either commits; the newer KME must end up stored."""
    kme1, token1 = provision(hss, device[0])
    kme2, token2 = provision(hss, device[0])
    _, newer = hss.run(ulr(extra=[("KME", kme2), ("KME-Token", token2)]), commit=False)
    _, older = hss.run(ulr(extra=[("KME", kme1), ("KME-Token", token1)]), commit=False)
    assert hss.store.apply(newer.writes) == [True, True]
    flags = hss.store.apply(older.writes)
    assert flags[0] is False  # the StoreKme lost: the daemon sends `refused` (5903)
    assert older.refused is not None and older.refused.experimental_result() == TOKEN_INVALID
    shown = hss.store.show(IMSI)
    assert shown is not None and shown["kme_fingerprint"] == kmefn.fingerprint(kme2)


def test_ulr_plain_location_update(hss: Hss, device: tuple[bytes, bytes]) -> None:
    answer, out = hss.run(ulr(flags=0x26))  # Skip-Subscriber-Data set
    assert answer.result() == SUCCESS
    assert "Subscription-Data" not in answer
    assert "step" not in out.event
    loc = hss.store.show(IMSI)["location"]  # type: ignore[index]
    assert loc["imei"] == IMEI and loc["software_version"] == "01" and loc["rat_type"] == 1004


def test_ulr_rat_not_allowed(hss: Hss) -> None:
    answer, _ = hss.run(ulr(rat=1000))
    assert answer.experimental_result() == (d.VENDOR_3GPP, d.DIAMETER_ERROR_RAT_NOT_ALLOWED)


def test_ulr_imei_of_pair_not_allowed(hss: Hss, device: tuple[bytes, bytes]) -> None:
    answer, _ = hss.run(ulr(imei=IMEI2))
    assert answer.experimental_result() == PAIR_NOT_ALLOWED
    answer, _ = hss.run(ulr(imei=None))  # no Terminal-Information: nothing to check
    assert answer.result() == SUCCESS


def test_ulr_imei_14_digits_completed(hss: Hss, device: tuple[bytes, bytes]) -> None:
    answer, _ = hss.run(ulr(imei=IMEI[:14]))
    assert answer.result() == SUCCESS
    assert hss.store.show(IMSI)["location"]["imei"] == IMEI  # type: ignore[index]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=20))
def test_normalise_imei_never_crashes(value: str) -> None:
    out = normalise_imei(value)
    assert out is None or (len(out) == 15 and out.isdigit())

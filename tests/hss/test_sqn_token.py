"""SQN = SEQ ‖ IND allocation, the in-flight ledger, and the KME token (pure functions)."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.hss.sqn import SQN_MAX, SqnExhausted, SqnLedger, SqnScheme
from kmed.hss.token import TOKEN_LEN, TokenInvalid, make_token, verify_token


@settings(max_examples=80)
@given(st.integers(0, 10), st.integers(0, SQN_MAX >> 12), st.integers(1, 40))
def test_allocate_strictly_increasing(ind_bits: int, start: int, count: int) -> None:
    scheme = SqnScheme(ind_bits)
    sqns = scheme.allocate(start, count)
    assert all(a < b for a, b in zip([start, *sqns], sqns, strict=False))
    seqs = [scheme.split(s)[0] for s in sqns]
    assert seqs == list(range(scheme.split(start)[0] + 1, scheme.split(start)[0] + 1 + count))


def test_ind_cycles() -> None:
    scheme = SqnScheme(5)
    sqns = scheme.allocate(0, 64)
    assert [scheme.split(s)[1] for s in sqns] == [(i + 1) % 32 for i in range(64)]


@settings(max_examples=80)
@given(st.integers(0, SQN_MAX >> 8), st.integers(0, SQN_MAX >> 8))
def test_resync_next_is_seq_ms_plus_one(sqn_he: int, sqn_ms: int) -> None:
    scheme = SqnScheme(5)
    he = scheme.resync(sqn_he, sqn_ms)
    assert scheme.split(scheme.next(he))[0] == scheme.split(sqn_ms)[0] + 1
    assert scheme.split(he)[1] == scheme.split(sqn_he)[1]


def test_exhausted() -> None:
    scheme = SqnScheme(5)
    with pytest.raises(SqnExhausted):
        scheme.next(SQN_MAX)
    with pytest.raises(ValueError):
        SqnScheme(11)


def test_ledger_bounded_by_in_flight() -> None:
    ledger = SqnLedger()
    assert ledger.current("1", 7) == 7
    ledger.reserve("1", 40)
    ledger.reserve("1", 80)
    assert ledger.current("1", 7) == 80
    ledger.settle("1")
    assert ledger.current("1", 7) == 80  # one reservation still in flight
    ledger.settle("1")
    assert len(ledger) == 0 and ledger.current("1", 80) == 80
    ledger.settle("unknown")  # harmless


KEY = secrets.token_bytes(32)
KME = secrets.token_bytes(32)
NOW = 1_700_000_000_000_000


def test_token_roundtrip() -> None:
    token = make_token(KEY, "001010000000001", "356938035643809", KME, NOW)
    assert len(token) == TOKEN_LEN
    assert verify_token(KEY, "001010000000001", "356938035643809", KME, token, NOW + 10, 300_000_000) == NOW


@pytest.mark.parametrize(
    ("key", "imsi", "imei", "kme", "now", "reason"),
    [
        (secrets.token_bytes(32), "001010000000001", "356938035643809", KME, NOW, "MAC does not verify"),
        (KEY, "001010000000002", "356938035643809", KME, NOW, "MAC does not verify"),
        (KEY, "001010000000001", "356938035643817", KME, NOW, "MAC does not verify"),
        (KEY, "001010000000001", "356938035643809", secrets.token_bytes(32), NOW, "MAC does not verify"),
        (KEY, "001010000000001", "356938035643809", KME, NOW + 300_000_001, "expired"),
        (KEY, "001010000000001", "356938035643809", KME, NOW - 60_000_000, "issued in the future"),
    ],
)
def test_token_refused(key: bytes, imsi: str, imei: str, kme: bytes, now: int, reason: str) -> None:
    token = make_token(KEY, "001010000000001", "356938035643809", KME, NOW)
    with pytest.raises(TokenInvalid) as exc:
        verify_token(key, imsi, imei, kme, token, now, 300_000_000)
    assert exc.value.reason == reason


@settings(max_examples=60)
@given(st.binary(max_size=40))
def test_token_garbage_refused(token: bytes) -> None:
    with pytest.raises(TokenInvalid):
        verify_token(KEY, "001010000000001", "356938035643809", KME, token, NOW, 300_000_000)


def test_token_ambiguity() -> None:
    """Length prefixes: moving a digit from IMSI to IMEI changes the MAC."""
    a = make_token(KEY, "0010100000000011", "35693803564380", KME, NOW)
    b = make_token(KEY, "001010000000001", "135693803564380", KME, NOW)
    assert a != b

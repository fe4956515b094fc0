"""Fixtures for the HSS tests: a real SQLite store in a temporary directory, handlers over it,
and builders for S6a requests (encoded and decoded through the real codec)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kmed.crypto import ecies
from kmed.diameter import codec
from kmed.diameter.message import Message
from kmed.hss.groupcommit import commit_batch
from kmed.hss.s6a import HssPolicy, Outcome, S6aHandlers
from kmed.hss.sqlite_store import SqliteStore
from kmed.hss.vectors import VectorJob

# TS 35.207 test set 1 K and OPc (any values would do; these are recognisable).
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
IMSI = "001010000000001"
IMEI = "356938035643809"
IMEI2 = "356938035643817"
PLMN = bytes.fromhex("00f110")  # MCC 001, MNC 01 (TS 24.008 §10.5.1.13)


def roundtrip(msg: Message) -> Message:
    """The message as a peer receives it: encoded and decoded by the real codec."""
    return codec.decode(codec.encode(msg))


def air(imsi: str = IMSI, *, vectors: int | None = 1, resync: bytes | None = None, extra: list[Any] | None = None,
        plmn: bytes = PLMN) -> Message:
    info: list[Any] = []
    if vectors is not None:
        info.append(("Number-Of-Requested-Vectors", vectors))
    info.append(("Immediate-Response-Preferred", 0))
    if resync is not None:
        info.append(("Re-Synchronization-Info", resync))
    avps: list[Any] = [
        ("Session-Id", f"mme.localdomain;{secrets.randbits(32)}"), ("Auth-Session-State", 1),
        ("Origin-Host", "mme.localdomain"), ("Origin-Realm", "localdomain"), ("Destination-Realm", "localdomain"),
        ("User-Name", imsi), ("Visited-PLMN-Id", plmn), ("Requested-EUTRAN-Authentication-Info", info),
        *(extra or []),
    ]
    return roundtrip(Message.request("AIR", None, avps, hop_by_hop=1, end_to_end=2))


def ulr(imsi: str = IMSI, *, imei: str | None = IMEI, rat: int | None = 1004, flags: int = 0x22,
        extra: list[Any] | None = None) -> Message:
    avps: list[Any] = [
        ("Session-Id", f"mme.localdomain;{secrets.randbits(32)}"), ("Auth-Session-State", 1),
        ("Origin-Host", "mme.localdomain"), ("Origin-Realm", "localdomain"), ("Destination-Realm", "localdomain"),
        ("User-Name", imsi), ("ULR-Flags", flags), ("Visited-PLMN-Id", PLMN),
    ]
    if rat is not None:
        avps.append(("RAT-Type", rat))
    if imei is not None:
        avps.append(("Terminal-Information", [("IMEI", imei), ("Software-Version", "01")]))
    avps += extra or []
    return roundtrip(Message.request("ULR", None, avps, hop_by_hop=3, end_to_end=4))


def result(msg: Message) -> tuple[int, int] | None:
    return msg.result()


class Hss:
    """Handlers over a real store, committing each outcome as the daemon's group commit would
    (``defer_vectors``: AIR vectors made by the commit, as with the writer child)."""

    def __init__(self, path: Path, policy: HssPolicy | None = None, clock: Any = None,
                 defer_vectors: bool = False) -> None:
        self.store = SqliteStore(path)
        self.token_key = secrets.token_bytes(32)
        kwargs = {"clock_us": clock} if clock is not None else {}
        self.h = S6aHandlers(self.store, self.token_key, "hss.localdomain", "localdomain", policy,
                             defer_vectors=defer_vectors, **kwargs)

    def run(self, req: Message, commit: bool = True) -> tuple[Message, Outcome]:
        """Handle ``req``; commit its writes; the answer the daemon would send, decoded."""
        out = self.h.handle(req, "mme.localdomain")
        if self.h.defer_vectors and out.reserved is not None:  # a successful AIR
            assert out.answer is None and isinstance(out.writes[-1], VectorJob), "vectors left to the commit"
        results: list[Any] = []
        if commit and out.writes:
            outcome = commit_batch(self.store, [(out.writes, None)])[0]
            if isinstance(outcome, BaseException):
                raise outcome
            results = outcome
        elif out.answer is None:  # the vectors alone, nothing committed
            job = out.writes[-1]
            assert isinstance(job, VectorJob)
            results = [job.run()]
        answer = out.answer
        if answer is None:
            assert out.kme_avps is not None and isinstance(out.writes[-1], VectorJob)
            answer = self.h.aia(req, out.kme_avps, results[-1])
        if commit:
            if out.refused is not None and not all(results):
                answer = out.refused
            if out.reserved:
                self.h.ledger.settle(out.reserved)
        return roundtrip(answer), out


@pytest.fixture(params=[False, True], ids=["vectors-in-handler", "vectors-in-commit"])
def hss(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Hss]:
    """The handlers, making AIR vectors themselves or leaving them to the commit (the writer
    child's way, kmed.hss.vectors)."""
    h = Hss(tmp_path / "hss.sqlite", defer_vectors=request.param)
    h.store.add_subscriber(IMSI, K, OPC, b"\x80\x00", 0)
    yield h
    h.store.close()


@pytest.fixture
def device(hss: Hss) -> tuple[bytes, bytes]:
    """A profile A device for IMEI, allowed with IMSI: (private, public)."""
    private, public = ecies.generate_keypair("A")
    hss.store.add_device(IMEI, "A", public)
    hss.store.allow_pair(IMSI, IMEI)
    return private, public


def add_subscribers(store: SqliteStore, count: int) -> list[str]:
    """``count`` subscribers with the test K and OPc, SQN 0; their IMSIs."""
    imsis = [f"0010100000{i:05d}" for i in range(count)]
    store.provision([(i, K, OPC, b"\x80\x00", 0) for i in imsis], [], [])
    return imsis


def stored_sqn(path: Path, imsi: str) -> int:
    """The SQN the store at ``path`` holds for ``imsi`` (read on a connection of its own)."""
    store = SqliteStore(path, migrate=False)
    try:
        sub = store.subscriber(imsi)
        assert sub is not None
        return sub.sqn
    finally:
        store.close()

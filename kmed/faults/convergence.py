"""Convergence checks after faults: does every UE hold the KME the HSS holds, and was nothing
acknowledged lost? (issue 8, "Network faults").

Three views, read after the fact:

- the HSS store (SQLite, read only): per IMSI the highest SQN handed out, the KME held (as its
  fingerprint) and the audit trail of KMEs stored;
- the UEs (``kmed load --state`` file): per IMSI the ME's KME and the USIM's highest accepted SQN;
- the CNN's log: the KME stores the HSS *acknowledged* (``location_updated`` with
  ``kme_stored``, after the ``kme_received`` of the same procedure, docs/cnn.md "Logging").

Invariants (:func:`check`):

- **converged**: the UE's KME equals the HSS's (after a clean attach pass, for every UE);
- **SQN never reused**: the HSS's SEQ is at least the highest SEQ the USIM accepted (TS 33.102
  C.1.1: SQN = SEQ ‖ IND; after a resynchronisation the HSS's SEQ equals SEQ_MS, §6.3.5). An HSS
  that lost a committed SQN would hand out an SQN the USIM already accepted;
- **no acknowledged KME lost**: every KME whose storage the HSS acknowledged (ULA) is in the
  store's audit trail as stored, and the KME the HSS holds is that one or one stored after it;
- the store is consistent: the KME held is the last one the audit trail says was stored.

Fingerprints only (SHA-256, :func:`kmed.crypto.kme.fingerprint`): no KME leaves this module.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmed.crypto import kme as kmefn
from kmed.load.population import PopulationSpec, load_states

__all__ = ["Convergence", "StoreView", "UeView", "acknowledged_stores", "check", "read_store", "read_ues"]


@dataclass
class StoreView:
    """What the HSS store holds, per IMSI."""

    sqn: dict[str, int] = field(default_factory=dict)
    kme: dict[str, str | None] = field(default_factory=dict)  # fingerprint of the KME held
    stored: dict[str, list[str]] = field(default_factory=dict)  # audit: fingerprints stored, oldest first


@dataclass(frozen=True)
class UeView:
    """What one simulated UE holds."""

    kme: str | None  # fingerprint of the ME's KME for this USIM
    sqn_ms: int  # the highest SQN its USIM accepted


def read_store(path: Path) -> StoreView:
    """The HSS store at ``path``, opened read only (the HSS may be running: WAL readers are fine)."""
    view = StoreView()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    try:
        for imsi, sqn in db.execute("SELECT imsi, sqn FROM subscribers"):
            view.sqn[imsi] = int(sqn)
            view.kme[imsi] = None
        for imsi, key in db.execute("SELECT imsi, kme FROM kmes"):
            view.kme[imsi] = kmefn.fingerprint(bytes(key))
        for imsi, fp in db.execute(
                "SELECT imsi, kme_fingerprint FROM kme_audit WHERE event = 'stored' ORDER BY id"):
            view.stored.setdefault(imsi, []).append(fp)
    finally:
        db.close()
    return view


def read_ues(state_path: Path, spec: PopulationSpec) -> dict[str, UeView]:
    """The UEs saved by ``kmed load --state`` (IMSI -> view)."""
    out: dict[str, UeView] = {}
    for index, state in load_states(state_path, spec).items():
        key = state.get("kme")
        imsi = spec.imsi(index)
        fp = None
        if isinstance(key, str) and state.get("kme_imsi") in (None, imsi):
            fp = kmefn.fingerprint(bytes.fromhex(key))
        out[imsi] = UeView(fp, int(state["sqn_ms"]))
    return out


def acknowledged_stores(cnn_events: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """IMSI -> fingerprint of the last KME whose storage the HSS acknowledged to the CNN.

    ``kme_received`` (step 4) names the KME of a procedure (by link, UE id and IMSI);
    ``location_updated`` with ``kme_stored`` (step 13) says the ULA accepted it. Events are in
    log order; a CNN restart appends to the same log, so numbering restarts are harmless.
    """
    issued: dict[tuple[Any, Any, Any], str] = {}
    acked: dict[str, str] = {}
    for e in cnn_events:
        event = e.get("event")
        key = (e.get("link"), e.get("ue_id"), e.get("imsi"))
        if event == "kme_received" and e.get("kme_fingerprint"):
            issued[key] = str(e["kme_fingerprint"])
        elif event == "location_updated" and e.get("kme_stored"):
            fp = issued.pop(key, None)
            if fp is not None and e.get("imsi"):
                acked[str(e["imsi"])] = fp
    return acked


@dataclass
class Convergence:
    """The outcome of :func:`check` (lists name IMSIs; empty lists mean the invariant holds)."""

    ues: int
    converged: int
    mismatched: list[str]  # UE KME != HSS KME
    unknown_to_hss: list[str]  # a UE of the population that the store does not have
    sqn_behind: list[tuple[str, int, int]]  # (IMSI, HSS SEQ, highest SEQ the USIM accepted)
    lost_acknowledged: list[tuple[str, str]]  # (IMSI, reason)
    inconsistent_store: list[str]  # KME held is not the last one stored in the audit trail
    acknowledged: int = 0  # IMSIs with at least one acknowledged KME store

    @property
    def all_converged(self) -> bool:
        return self.converged == self.ues and not self.unknown_to_hss

    @property
    def nothing_lost(self) -> bool:
        return not (self.sqn_behind or self.lost_acknowledged or self.inconsistent_store)

    def summary(self) -> dict[str, Any]:
        return {
            "ues": self.ues, "converged": self.converged, "mismatched": len(self.mismatched),
            "unknown_to_hss": len(self.unknown_to_hss), "sqn_behind": len(self.sqn_behind),
            "acknowledged_kme_stores": self.acknowledged, "lost_acknowledged": len(self.lost_acknowledged),
            "inconsistent_store": len(self.inconsistent_store),
        }


def check(store: StoreView, ues: Mapping[str, UeView], acked: Mapping[str, str], ind_bits: int) -> Convergence:
    """Check the invariants of the module doc for the UEs in ``ues``."""
    mismatched: list[str] = []
    unknown: list[str] = []
    behind: list[tuple[str, int, int]] = []
    converged = 0
    for imsi, ue in sorted(ues.items()):
        if imsi not in store.sqn:
            unknown.append(imsi)
            continue
        hss_kme = store.kme.get(imsi)
        if ue.kme is not None and ue.kme == hss_kme:
            converged += 1
        else:
            mismatched.append(imsi)
        hss_seq, ue_seq = store.sqn[imsi] >> ind_bits, ue.sqn_ms >> ind_bits
        if hss_seq < ue_seq:
            behind.append((imsi, hss_seq, ue_seq))
    lost: list[tuple[str, str]] = []
    for imsi, fp in sorted(acked.items()):
        history = store.stored.get(imsi, [])
        if fp not in history:
            lost.append((imsi, "an acknowledged KME is not in the store's audit trail"))
            continue
        since = history[len(history) - 1 - history[::-1].index(fp):]
        if store.kme.get(imsi) not in since:
            lost.append((imsi, "the HSS holds a KME older than the one it acknowledged"))
    inconsistent = [imsi for imsi, history in sorted(store.stored.items()) if store.kme.get(imsi) != history[-1]]
    return Convergence(len(ues), converged, mismatched, unknown, behind, lost, inconsistent, len(acked))

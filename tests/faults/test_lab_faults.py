"""Convergence under network faults and daemon kills (issue 8, "Network faults"), end to end:
real ``kmed hss``, ``kmed cnn``, two ``kmed faults`` proxies and ``kmed load`` processes on
loopback (kmed.faults.scenario). Bounded: about a minute each."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmed.faults.policy import Rates
from kmed.faults.scenario import FaultRunResult, FaultRunSettings, run_faults, symmetric

pytestmark = pytest.mark.timeout(400)


def assert_converged(result: FaultRunResult) -> None:
    report = "\n".join(result.lines())
    assert not result.errors, report
    after, final = result.after_faults, result.final
    assert after is not None and final is not None, report
    # Nothing acknowledged was lost by the faults: SQNs and acknowledged KME stores.
    assert not after.sqn_behind and not after.lost_acknowledged and not after.inconsistent_store, report
    assert after.acknowledged > 0, report
    # No context stuck: at most one registration per UE once the faults stopped.
    assert result.contexts_after_faults is not None and result.contexts_after_faults <= result.settings.ues, report
    # The clean pass: every UE attached, every UE holds the HSS's KME, no SQN had to be resynchronised.
    assert result.final_pass["held"] == result.settings.ues, report
    assert final.all_converged and final.nothing_lost, report
    assert result.resyncs_final == 0, report
    assert result.contexts_final == result.settings.ues, report
    assert result.ok, report


def test_lossy_links_every_ue_converges(tmp_path: Path) -> None:
    rates = Rates(drop=0.05, duplicate=0.025, reorder=0.025, delay_ms=2.0, jitter_ms=5.0, reset=0.002)
    settings = FaultRunSettings(ues=40, duration_s=12.0, concurrency=20, diameter=symmetric(rates, 1),
                                uelink=symmetric(rates, 2), seed=5)
    result = run_faults(tmp_path, settings)
    assert_converged(result)
    # The faults did happen, on both links and in both directions.
    for link in ("diameter", "uelink"):
        for direction in ("up", "down"):
            c = result.proxies[link][direction]
            assert c["dropped"] > 0 and c["duplicated"] > 0 and c["reordered"] + c["reorder_timeouts"] > 0, link
    assert result.faults["ok"] > 0 and result.faults["failed"] > 0


def test_hss_and_cnn_killed_during_load_every_ue_converges(tmp_path: Path) -> None:
    rates = Rates(drop=0.02, duplicate=0.01, reorder=0.01, delay_ms=1.0, jitter_ms=3.0)
    settings = FaultRunSettings(ues=40, duration_s=16.0, concurrency=20, diameter=symmetric(rates, 3),
                                uelink=symmetric(rates, 4), hss_kills=2, cnn_kills=2, seed=6)
    result = run_faults(tmp_path, settings)
    assert len(result.kills) == 4 and all(k.restarted for k in result.kills), "\n".join(result.lines())
    assert {k.daemon for k in result.kills} == {"hss", "cnn"}
    assert_converged(result)

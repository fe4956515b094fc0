"""NAS messages that fail integrity are dropped and *counted*, as an operator sees it: the CNN's
``kmed_nas_integrity_failures_total`` on its Prometheus endpoint (``[metrics] listen``) goes up
by exactly the number of forged and replayed uplink PDUs, and the procedure carries on
(TS 24.301 §4.4.4.3: a message that fails the integrity check is discarded). The same faults
with the log events only: tests/e2e/test_faults.py::test_g_*."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmed.lab import Lab, free_port, running_lab
from tests.e2e.test_faults import TappedRunner, run_tapped, spy_receive_kme, ue_config
from tests.e2e.test_procedure import hss_kme, provision

pytestmark = pytest.mark.timeout(180)
METRIC = "kmed_nas_integrity_failures_total"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    port = free_port()
    with running_lab(tmp_path, extra_cnn=f'[metrics]\nlisten = "127.0.0.1:{port}"\n') as lab:
        lab.metrics_port = port  # type: ignore[attr-defined]
        provision(lab)
        yield lab


def integrity_failures(lab: Lab) -> float:
    port = lab.metrics_port  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as rsp:
        text = rsp.read().decode()
    found = re.search(rf"^{METRIC}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.MULTILINE)
    assert found, f"{METRIC} not exposed"
    return float(found.group(1))


def test_bad_macs_and_replays_are_dropped_and_counted_on_the_metrics_endpoint(lab: Lab) -> None:
    path = ue_config(lab)
    calls: list[bytes] = []
    sent = {"forged": 0, "replayed": 0}

    class Forging(TappedRunner):
        @staticmethod
        def on_uplink(runner: TappedRunner, pdu: bytes) -> bool:
            if calls and not sent["forged"]:  # the KME Provisioning Response (seed step 8)
                for i in (1, 5, len(pdu) - 1):  # MAC, sequence number, body: each breaks the MAC
                    bad = bytearray(pdu)
                    bad[i] ^= 0x40
                    runner.raw_send(bytes(bad))
                    sent["forged"] += 1
                runner.raw_send(pdu)  # the genuine one ...
                runner.raw_send(pdu)  # ... and its replay (its NAS COUNT is used up)
                sent["replayed"] += 1
                return False
            return True

    before = integrity_failures(lab)
    outcome, _ = run_tapped(path, Forging, setup=lambda me: spy_receive_kme(me, calls))
    assert sent == {"forged": 3, "replayed": 1}
    assert outcome.result == "accepted" and outcome.kme_fingerprint == hss_kme(lab)  # the procedure carried on
    assert integrity_failures(lab) - before == 4

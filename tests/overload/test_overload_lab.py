"""Overload against the real daemons, CI-sized (the long measurement: ``kmed bench overload``,
docs/overload.md). Admission limits are set low so that a short ``kmed load`` burst is an
overload on any machine:

- the CNN with ``cnn.max_procedures = 2``: a Poisson burst of attaches (hundreds per second,
  each procedure several round trips) is refused in part with EMM #22 and T3346, at once, by
  admission control — the failures are #22 rejects, not timeouts, and the CNN's memory stays
  bounded; when the load drops (one UE at a time) every attach succeeds again;
- the HSS with ``hss.max_pending = 1`` under a pipelined AIR burst answers some with 3004
  DIAMETER_TOO_BUSY (E bit), counted on its metrics endpoint, and serves the next requests.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kmed.bench.overload import OpenLoopS6a, _scrape, answers_by_code
from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import Avp, Message
from kmed.lab import DEFAULT_K, DEFAULT_OPC, Lab, free_port, kmed_argv, running_lab
from kmed.load.labfile import load_toml, provision_range_args
from kmed.load.procinfo import rss_kib
from tests.security.test_hss_refusals import _cer, _read

pytestmark = pytest.mark.timeout(300)
COUNT = 300
IMSI_FIRST = "001010000800000"
IMEI_FIRST = "35693803800000"
SEED = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("overload")
    mport = free_port()
    with running_lab(root, log_level="warning", extra_cnn="[cnn]\nmax_procedures = 2\n",
                     extra_hss=f'[hss]\nmax_pending = 1\n[metrics]\nlisten = "127.0.0.1:{mport}"\n') as lab:
        lab.hss_metrics_port = mport  # type: ignore[attr-defined]
        lab.admin(*provision_range_args(COUNT, IMSI_FIRST, IMEI_FIRST, DEFAULT_K, DEFAULT_OPC, SEED))
        yield lab


def _load(lab: Lab, tmp: Path, name: str, *args: str) -> dict[str, Any]:
    cfg = tmp / "load.toml"
    cfg.write_text(load_toml([f"tcp://127.0.0.1:{lab.cnn_port}"], count=COUNT, imsi_first=IMSI_FIRST,
                             imei_first=IMEI_FIRST, k=DEFAULT_K, opc=DEFAULT_OPC, seed=SEED))
    report = tmp / f"{name}.json"
    subprocess.run(kmed_argv("load", "--config", str(cfg), "--report", str(report), "--ues", str(COUNT),
                             "--scenario", "provision", "--no-plot", "--seed", "3", *args),
                   capture_output=True, text=True, timeout=200, stdin=subprocess.DEVNULL, check=False)
    obj = json.loads(report.read_text())
    assert isinstance(obj, dict)
    return obj


def test_cnn_admission_control_refuses_with_22_then_recovers(lab: Lab, tmp_path: Path) -> None:
    cnn = lab.daemons["cnn"]
    peak = {"kib": rss_kib(cnn.proc.pid) or 0}
    baseline = peak["kib"]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            peak["kib"] = max(peak["kib"], rss_kib(cnn.proc.pid) or 0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        burst = _load(lab, tmp_path, "burst", "--rate", "300", "--duration", "3")
    finally:
        stop.set()
        sampler.join(5)
    errors = burst["errors"]
    congestion = sum(n for cause, n in errors.items() if cause.startswith("emm_cause_22"))
    failed = sum(p["failed"] for p in burst["procedures"].values())
    assert congestion >= 1, f"no EMM #22 under a burst with max_procedures = 2: {errors}"
    assert errors.get("timeout", 0) == 0, f"overload showed as timeouts, not as #22: {errors}"
    assert burst["procedures"]["attach_provision"]["ok"] >= 1, "nothing admitted"
    assert failed == congestion and all(c.startswith("emm_cause_22") for c in errors), errors  # fast rejects only
    rejects = [e for e in cnn.log_events() if e.get("event") == "attach_rejected" and e.get("emm_cause") == 22]
    assert any(str(e.get("reason", "")).startswith("overload") for e in rejects), "no admission-control reject"
    assert peak["kib"] - baseline < 100 * 1024, f"CNN RSS grew by {(peak['kib'] - baseline) / 1024:.0f} MiB"
    # the load drops to one UE at a time: every attach succeeds again
    calm = _load(lab, tmp_path, "calm", "--closed-loop", "1", "--duration", "2")
    assert calm["errors"] == {} and calm["procedures"]["attach_provision"]["ok"] >= 1, calm["errors"]


def test_hss_answers_3004_beyond_max_pending_and_keeps_serving(lab: Lab) -> None:
    port = lab.hss_metrics_port  # type: ignore[attr-defined]
    before = answers_by_code(_scrape(port))
    imsis = [str(int(IMSI_FIRST) + i).zfill(15) for i in range(COUNT)]

    async def burst() -> tuple[dict[int, int], dict[int, int]]:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(lambda: OpenLoopS6a(imsis), "127.0.0.1", lab.hss_port)
        assert (await asyncio.wait_for(client.cea, 10)).result_code() == d.DIAMETER_SUCCESS
        heavy = await client.run(4000, 1)  # far beyond one request awaiting commit
        light = await client.run(5, 2)
        client.transport.close()
        return heavy[0].answers, {k: v for s in light for k, v in s.answers.items()}

    heavy, light = asyncio.run(burst())
    assert heavy.get(d.DIAMETER_TOO_BUSY, 0) >= 1 and heavy.get(d.DIAMETER_SUCCESS, 0) >= 1, heavy
    assert set(light) == {d.DIAMETER_SUCCESS}, light
    after = answers_by_code(_scrape(port))
    assert after.get("3004", 0) - before.get("3004", 0) == heavy[d.DIAMETER_TOO_BUSY]


def test_a_busy_hss_answers_3004_even_to_a_request_it_cannot_read(lab: Lab) -> None:
    """A request with a User-Name that is not UTF-8, arriving while the HSS is busy, gets 3004
    like any other (it used to raise in the busy path and get 5012 with a logged traceback)."""
    good = Message.request("AIR", d.APP_S6A, [
        ("Session-Id", "mme;busy"), ("User-Name", IMSI_FIRST), ("Visited-PLMN-Id", bytes.fromhex("00f110"))],
        hop_by_hop=1, end_to_end=1)
    bad = [Message.request("AIR", d.APP_S6A, [
        ("Session-Id", f"mme;bad{i}"), Avp(1, 0, d.AVP_FLAG_M, b"\xff" * 15),
        ("Visited-PLMN-Id", bytes.fromhex("00f110"))], hop_by_hop=2 + i, end_to_end=2 + i) for i in range(20)]
    with socket.create_connection(("127.0.0.1", lab.hss_port), timeout=10) as s:
        buf = bytearray()
        s.sendall(_cer("mme.localdomain"))
        cea = _read(s, buf)
        assert cea is not None and cea.result_code() == d.DIAMETER_SUCCESS
        s.sendall(codec.encode(good) + b"".join(codec.encode(m) for m in bad))  # one write: one loop turn
        answers = [_read(s, buf) for _ in range(1 + len(bad))]
    codes = {a.hop_by_hop: a.result_code() for a in answers if a is not None}
    assert codes[1] == d.DIAMETER_SUCCESS
    assert set(codes.values()) <= {d.DIAMETER_SUCCESS, d.DIAMETER_TOO_BUSY, d.DIAMETER_INVALID_AVP_VALUE}, codes
    assert d.DIAMETER_TOO_BUSY in codes.values(), codes  # the AIR awaiting its commit made the HSS busy

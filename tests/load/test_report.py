"""The JSON report (CONTRACT keys) and the PNG plot, from a synthetic recorder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kmed.load.plot import plot_path_for, write_plot
from kmed.load.report import PROCEDURE_KEYS, PROCEDURE_NAMES, REPORT_KEYS, build_report, write_report
from kmed.load.stats import Recorder
from tests.load.pngcheck import read_png_header


def _recorder() -> Recorder:
    rec = Recorder(1.0)
    for i in range(100):
        rec.success("attach", i * 0.05, 0.001 * (i + 1))  # 1..100 ms over 5 s
    for i in range(10):
        rec.success("attach_provision", 0.3 + i * 0.4, 0.050)
    rec.failure("attach_provision", 4.5, "emm_cause_17_network_failure", "attach rejected with EMM cause #17")
    rec.failure("tau", 4.9, "timeout", "timeout: no outcome within 10 s")
    return rec


def _report() -> dict:
    return build_report(ues=300, duration_s=5.0, recorder=_recorder(), config={"scenario": "mix"}, status="failed")


def test_contract_keys() -> None:
    report = _report()
    assert set(REPORT_KEYS) <= set(report)
    for key in ("ues", "duration_s", "procedures", "errors"):  # CONTRACT
        assert key in report
    for name in PROCEDURE_NAMES:
        assert set(PROCEDURE_KEYS) <= set(report["procedures"][name])
    assert report["ues"] == 300 and report["duration_s"] == 5.0


def test_counts_rates_and_percentiles() -> None:
    procs = _report()["procedures"]
    attach = procs["attach"]
    assert (attach["count"], attach["ok"], attach["failed"]) == (100, 100, 0)
    assert attach["rate_per_s"] == 20.0  # ok per second of the window
    assert attach["p50_ms"] == pytest.approx(50.0, rel=0.01)
    assert attach["p99_ms"] == pytest.approx(99.0, rel=0.01)
    assert attach["max_ms"] == 100.0
    prov = procs["attach_provision"]
    assert (prov["count"], prov["ok"], prov["failed"]) == (11, 10, 1)
    tau = procs["tau"]
    assert (tau["count"], tau["ok"], tau["failed"]) == (1, 0, 1)
    assert tau["p50_ms"] is None and tau["max_ms"] is None and tau["rate_per_s"] == 0.0


def test_errors_and_examples() -> None:
    report = _report()
    assert report["errors"] == {"emm_cause_17_network_failure": 1, "timeout": 1}
    assert report["error_examples"]["timeout"].startswith("timeout")
    assert sum(report["errors"].values()) == sum(p["failed"] for p in report["procedures"].values())


def test_timeseries_adds_up() -> None:
    report = _report()
    ts = report["timeseries"]
    assert ts["interval_s"] == 1.0
    assert ts["t_s"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    for name, col in ts["procedures"].items():
        assert all(len(v) == len(ts["t_s"]) for v in col.values())
        assert sum(col["ok"]) == report["procedures"][name]["ok"]
        assert sum(col["failed"]) == report["procedures"][name]["failed"]
    assert ts["procedures"]["attach"]["ok"][:5] == [20, 20, 20, 20, 20]
    assert ts["procedures"]["tau"]["p50_ms"][4] is None


def test_write_report_is_json(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "r.json"
    write_report(path, _report())
    back = json.loads(path.read_text())
    assert back["procedures"]["attach"]["count"] == 100
    assert not list(path.parent.glob(".*.tmp"))


def test_plot_is_a_png(tmp_path: Path) -> None:
    path = plot_path_for(tmp_path / "run.json")
    assert path.name == "run.png"
    write_plot(_report(), path)
    width, height, _, _ = read_png_header(path)
    assert (width, height) == (1000, 700)


def test_plot_of_an_empty_run(tmp_path: Path) -> None:
    report = build_report(ues=1, duration_s=0.0, recorder=Recorder(), config={}, status="aborted", error="x")
    path = write_plot(report, tmp_path / "empty.png")
    read_png_header(path)

"""Bounded ``kmed load`` runs against real HSS and CNN processes on loopback (kmed.lab), through
the CONTRACT command line: a few hundred UEs for a few seconds."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kmed.crypto import kme
from kmed.lab import DEFAULT_K, DEFAULT_OPC, Lab, free_port, kmed_argv, running_lab
from kmed.load.labfile import load_toml, provision_range_args
from kmed.load.report import PROCEDURE_KEYS, PROCEDURE_NAMES
from tests.load.pngcheck import read_png_header

COUNT = 300
IMSI_FIRST = "001010000200000"
IMEI_FIRST = "35693803200000"
SEED = "00112233445566778899aabbccddeeff"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("loadlab")
    with running_lab(root, log_level="warning") as lab:
        lab.admin(*provision_range_args(COUNT, IMSI_FIRST, IMEI_FIRST, DEFAULT_K, DEFAULT_OPC, SEED))
        yield lab


def write_config(path: Path, port: int, count: int = COUNT, extra: str = "") -> Path:
    path.write_text(load_toml([f"tcp://127.0.0.1:{port}"], count=count, imsi_first=IMSI_FIRST,
                              imei_first=IMEI_FIRST, k=DEFAULT_K, opc=DEFAULT_OPC, seed=SEED, extra=extra))
    return path


def run_load(config: Path, report: Path, *args: str, timeout: float = 90.0) -> tuple[subprocess.CompletedProcess[str],
                                                                                      dict[str, Any]]:
    done = subprocess.run(kmed_argv("load", "--config", str(config), "--report", str(report), *args),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    data = json.loads(report.read_text()) if report.exists() else {}
    return done, data


def check_consistent(report: dict[str, Any]) -> None:
    """Keys of CONTRACT, and every count adds up: procedures, errors, time series."""
    for key in ("ues", "duration_s", "procedures", "errors", "timeseries", "config"):
        assert key in report
    procs = report["procedures"]
    for name in PROCEDURE_NAMES:
        assert set(PROCEDURE_KEYS) <= set(procs[name])
    for name, p in procs.items():
        assert p["count"] == p["ok"] + p["failed"]
        if p["ok"]:
            assert 0 < p["p50_ms"] <= p["p95_ms"] <= p["p99_ms"] <= p["max_ms"]
        col = report["timeseries"]["procedures"].get(name)
        if p["count"]:
            assert sum(col["ok"]) == p["ok"] and sum(col["failed"]) == p["failed"]
    failures = sum(p["failed"] for p in procs.values())
    per_cause = sum(n for cause, n in report["errors"].items() if cause not in ("link_lost", "no_idle_ue"))
    assert per_cause >= failures


def all_ok(report: dict[str, Any]) -> None:
    assert report["status"] == "ok", report["errors"]
    assert report["errors"] == {}
    assert all(p["failed"] == 0 for p in report["procedures"].values())


def test_mix_run(lab: Lab, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "load.toml", lab.cnn_port)
    state = tmp_path / "ues.state"
    done, report = run_load(cfg, tmp_path / "mix.json", "--ues", str(COUNT), "--rate", "120", "--duration", "3",
                            "--scenario", "mix", "--seed", "1", "--state", str(state))
    assert done.returncode == 0, done.stderr
    check_consistent(report)
    all_ok(report)
    assert report["ues"] == COUNT
    assert report["duration_s"] >= 3.0
    assert report["warmup"]["ok"] == COUNT and report["warmup"]["failed"] == 0
    procs = report["procedures"]
    assert procs["attach"]["ok"] > 0 and procs["tau"]["ok"] > 0 and procs["attach_provision"]["ok"] > 0
    assert report["config"]["scenario"] == "mix" and report["config"]["seed"] == 1
    assert DEFAULT_K not in json.dumps(report) and SEED not in json.dumps(report)
    read_png_header(tmp_path / "mix.png")
    assert "attach" in done.stdout and "status ok" in done.stdout
    # The MEs hold the KME the HSS holds (the state file has the harness's view).
    saved = json.loads(state.read_text())["ues"]
    for index in ("0", "150", str(COUNT - 1)):
        imsi = str(int(IMSI_FIRST) + int(index)).zfill(15)
        shown = lab.show(imsi)
        assert shown["kme_fingerprint"] == kme.fingerprint(bytes.fromhex(saved[index]["kme"]))
        assert shown["kme_imei"][:14] == str(int(IMEI_FIRST) + int(index))


def test_state_file_makes_warmup_unnecessary(lab: Lab, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "load.toml", lab.cnn_port)
    state = tmp_path / "ues.state"
    done, first = run_load(cfg, tmp_path / "hold.json", "--ues", "40", "--hold", "--duration", "2",
                           "--state", str(state), "--no-plot")
    assert done.returncode == 0, done.stderr
    assert first["procedures"]["attach_provision"]["ok"] == 40  # fresh MEs: every one provisioned
    done, second = run_load(cfg, tmp_path / "attach.json", "--ues", "40", "--closed-loop", "10", "--duration", "2",
                            "--scenario", "attach", "--state", str(state), "--no-plot")
    assert done.returncode == 0, done.stderr
    check_consistent(second)
    all_ok(second)
    assert second["warmup"] is None  # every ME already held its KME and every USIM a GUTI
    assert second["procedures"]["attach"]["ok"] > 0
    assert second["procedures"]["attach_provision"]["count"] == 0
    assert not (tmp_path / "attach.png").exists()


@pytest.mark.parametrize(("scenario", "name"), [("provision", "attach_provision"), ("tau", "tau")])
def test_single_scenarios_closed_loop(lab: Lab, tmp_path: Path, scenario: str, name: str) -> None:
    cfg = write_config(tmp_path / "load.toml", lab.cnn_port)
    done, report = run_load(cfg, tmp_path / "r.json", "--ues", "100", "--closed-loop", "20", "--duration", "2",
                            "--scenario", scenario)
    assert done.returncode == 0, done.stderr
    check_consistent(report)
    all_ok(report)
    assert report["procedures"][name]["ok"] > 0
    others = [n for n in PROCEDURE_NAMES if n != name]
    assert all(report["procedures"][n]["count"] == 0 for n in others)
    assert report["config"]["closed_loop"] == 20
    read_png_header(tmp_path / "r.png")


def test_hold_reports_cnn_memory(lab: Lab, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "load.toml", lab.cnn_port)
    cnn_pid = lab.daemons["cnn"].proc.pid
    done, report = run_load(cfg, tmp_path / "hold.json", "--ues", str(COUNT), "--hold", "--duration", "3",
                            "--cnn-pid", str(cnn_pid))
    assert done.returncode == 0, done.stderr
    check_consistent(report)
    hold = report["hold"]
    assert hold["ues_attached"] == COUNT and hold["cnn_pid"] == cnn_pid
    assert all(isinstance(hold[k], int) and hold[k] > 0
               for k in ("cnn_rss_before_kib", "cnn_rss_held_kib", "cnn_rss_end_kib"))
    assert hold["cnn_bytes_per_held_ue"] is not None
    assert report["config"]["scenario"] == "hold"
    # Without --cnn-pid the CNN is found as the process listening on the UE link port.
    done, report = run_load(cfg, tmp_path / "hold2.json", "--ues", "20", "--hold", "--duration", "1", "--no-plot")
    assert done.returncode == 0, done.stderr
    assert report["hold"]["cnn_pid"] == cnn_pid


def test_two_worker_processes(lab: Lab, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "load.toml", lab.cnn_port)
    done, report = run_load(cfg, tmp_path / "w.json", "--ues", "200", "--rate", "100", "--duration", "2",
                            "--workers", "2", "--connections", "4", "--scenario", "mix")
    assert done.returncode == 0, done.stderr
    check_consistent(report)
    all_ok(report)
    gen = report["generator"]
    assert gen["workers"] == 2 and len(gen["cpu_s"]) == 2 and gen["links"] == 4
    assert report["warmup"]["ok"] == 200
    assert sum(p["ok"] for p in report["procedures"].values()) > 0


def test_two_workers_hand_back_results_larger_than_the_pipe_buffer(lab: Lab, tmp_path: Path) -> None:
    """Each worker returns the state of its 1,500 UEs (~0.5 MB, more than a socket buffer) over
    its pipe, whose fd the event loop's reader had made non-blocking (uvloop): it must arrive.
    UEs beyond the 300 provisioned are refused by the network, which is beside the point here."""
    cfg = write_config(tmp_path / "load.toml", lab.cnn_port, count=3000)
    state = tmp_path / "ues.state"
    done, report = run_load(cfg, tmp_path / "big.json", "--ues", "3000", "--rate", "40", "--duration", "1",
                            "--workers", "2", "--connections", "2", "--scenario", "provision", "--no-plot",
                            "--state", str(state))
    assert report, done.stderr
    assert "worker_failed" not in report["errors"], report["error_examples"]
    assert len(report["generator"]["cpu_s"]) == 2
    assert len(json.loads(state.read_text())["ues"]) == 3000


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigint_ends_the_run_early_with_a_report(lab: Lab, tmp_path: Path, workers: str) -> None:
    cfg = write_config(tmp_path / "load.toml", lab.cnn_port)
    report_path = tmp_path / "r.json"
    proc = subprocess.Popen(
        kmed_argv("load", "--config", str(cfg), "--report", str(report_path), "--ues", "100", "--rate", "20",
                  "--duration", "60", "--scenario", "provision", "--workers", workers, "--no-plot"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        time.sleep(4.0)
        proc.send_signal(signal.SIGINT)  # to the parent only: with workers, it forwards the stop
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err
    report = json.loads(report_path.read_text())
    check_consistent(report)
    assert report["generator"]["interrupted"] is True
    assert report["duration_s"] < 30
    assert "stopped early" in out


@pytest.mark.parametrize("workers", ["1", "2"])
def test_cnn_not_running(tmp_path: Path, workers: str) -> None:
    port = free_port()
    cfg = write_config(tmp_path / "load.toml", port)
    done, report = run_load(cfg, tmp_path / "r.json", "--ues", "10", "--rate", "10", "--duration", "1",
                            "--workers", workers)
    assert done.returncode == 1
    assert f"cannot reach the CNN: tcp://127.0.0.1:{port}" in done.stderr
    assert report["status"] == "aborted"
    assert f"127.0.0.1:{port}" in report["error"]
    assert report["errors"].get("transport", 0) >= 1
    assert all(p["count"] == 0 for p in report["procedures"].values())
    read_png_header(tmp_path / "r.png")


def test_cnn_stopped_mid_run(tmp_path: Path) -> None:
    with running_lab(tmp_path / "lab", log_level="warning") as lab:
        lab.admin(*provision_range_args(100, IMSI_FIRST, IMEI_FIRST, DEFAULT_K, DEFAULT_OPC, SEED))
        cfg = write_config(tmp_path / "load.toml", lab.cnn_port, count=100, extra="[load]\ntimeout_s = 2.0\n")
        report_path = tmp_path / "r.json"
        proc = subprocess.Popen(
            kmed_argv("load", "--config", str(cfg), "--report", str(report_path), "--ues", "100", "--rate", "50",
                      "--duration", "6", "--no-plot"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            time.sleep(3.5)
            lab.stop("cnn")
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == 1, err
    report = json.loads(report_path.read_text())
    check_consistent(report)
    assert report["status"] == "failed"
    warm_errors = (report["warmup"] or {}).get("errors", {})
    causes = set(report["errors"]) | set(warm_errors)
    assert causes & {"transport", "link_lost", "released", "timeout"}, causes
    failed = sum(p["failed"] for p in report["procedures"].values()) + (report["warmup"] or {}).get("failed", 0)
    assert failed > 0
    assert report["error_examples"] or (report["warmup"] or {}).get("error_examples")
    assert "error" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--ues", "301"], "--ues must be from 1 to"),
    (["--ues", "10", "--closed-loop", "11"], "--closed-loop must be from 1 to"),
    (["--ues", "10", "--workers", "3", "--connections", "2"], "--connections must be at least --workers"),
])
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    cfg = write_config(tmp_path / "load.toml", free_port())
    done, report = run_load(cfg, tmp_path / "r.json", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert report == {}


def test_config_error_names_file_and_key(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "load.toml", free_port(), extra="[load]\nworkers = 0\n")
    done, _ = run_load(cfg, tmp_path / "r.json", "--ues", "1")
    assert done.returncode == 2
    assert str(cfg) in done.stderr and "load.workers" in done.stderr
    assert DEFAULT_K not in done.stderr

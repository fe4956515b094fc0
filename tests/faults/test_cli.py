"""``kmed faults`` as a process: usage errors, stats file, pause/resume signals, clean stop."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from kmed.faults.cli import parse_overrides
from kmed.faults.lab import ProxyProcess, proxy_argv
from kmed.faults.policy import FaultSpec, Rates
from kmed.lab import free_port, kmed_argv, wait_listening
from kmed.nas.frame import FrameType, encode_frame


@pytest.mark.parametrize(("args", "message"), [
    (["--drop", "1.5"], "drop must be a probability"),
    (["--up", "lose=0.1"], "NAME=VALUE"),
    (["--down", "delay_ms=abc"], "not a number"),
    (["--reorder-hold-ms", "0"], "reorder-hold-ms"),
])
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    done = subprocess.run(kmed_argv("faults", "--link", "uelink", "--listen", "tcp://127.0.0.1:1",
                                    "--target", "tcp://127.0.0.1:2", *args), capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr


def test_non_tcp_addresses_are_refused() -> None:
    done = subprocess.run(kmed_argv("faults", "--link", "diameter", "--listen", "sctp://127.0.0.1:3868",
                                    "--target", "tcp://127.0.0.1:2"), capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "tcp:// only" in done.stderr


def test_parse_overrides() -> None:
    assert parse_overrides("drop=0.1, delay-ms=5") == {"drop": 0.1, "delay_ms": 5.0}
    assert parse_overrides("") == {}
    with pytest.raises(ValueError):
        parse_overrides("drop")


def test_process_pauses_resumes_counts_and_stops(tmp_path: Path) -> None:
    target = socket.create_server(("127.0.0.1", 0))
    target_port = target.getsockname()[1]
    listen = free_port()
    stats = tmp_path / "stats.json"
    spec = FaultSpec(up=Rates(drop=1.0), down=Rates(duplicate=0.5), seed=4)
    log = (tmp_path / "faults.log").open("w")
    proc = subprocess.Popen(proxy_argv("uelink", f"tcp://127.0.0.1:{listen}", f"tcp://127.0.0.1:{target_port}", spec,
                                       name="t", stats=stats), stdout=log, stderr=subprocess.STDOUT)
    proxy = ProxyProcess("t", proc, stats, tmp_path / "faults.log", log)
    try:
        wait_listening("127.0.0.1", listen, 20.0, proc)
        first = target.accept()[0]  # the probe connection of wait_listening
        first.close()
        deadline = time.monotonic() + 10
        while not proxy.stats() and time.monotonic() < deadline:
            time.sleep(0.05)
        s = proxy.stats()
        assert s["faults"]["up"]["drop"] == 1.0 and s["faults"]["down"]["duplicate"] == 0.5 and s["paused"] is False
        with socket.create_connection(("127.0.0.1", listen)) as client:
            server_side = target.accept()[0]
            server_side.settimeout(10)
            client.sendall(encode_frame(FrameType.NAS_UPLINK, 1, b"lost"))
            deadline = time.monotonic() + 10
            while proxy.stats()["up"]["dropped"] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            proxy.pause()
            frame = encode_frame(FrameType.NAS_UPLINK, 1, b"passes")
            client.sendall(frame)
            assert server_side.recv(100) == frame  # the first one was dropped, this one passed
            proxy.resume()
            server_side.close()
        counters = proxy.stop()
        assert proc.returncode == 0
        assert counters["up"]["dropped"] == 1 and counters["up"]["forwarded"] == 1
        assert counters["connections"]["accepted"] == 2
        events = [json.loads(line)["event"] for line in (tmp_path / "faults.log").read_text().splitlines()
                  if line.startswith("{")]
        assert {"faults_ready", "faults_paused", "faults_resumed", "faults_stopped"} <= set(events)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        target.close()


def test_proxy_argv_round_trips_through_the_parser() -> None:
    from kmed.cli import build_parser
    from kmed.faults.cli import spec_from_args

    spec = FaultSpec(up=Rates(drop=0.1, jitter_ms=3.5), down=Rates(duplicate=0.25, reset=0.001), scope="all",
                     seed=9, reorder_hold_s=0.05)
    argv = proxy_argv("diameter", "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", spec, name="x", paused=True)
    args = build_parser().parse_args(argv[argv.index("faults"):])
    assert spec_from_args(args) == spec and args.paused

"""systemd ``Type=notify`` as the service manager sees it: ``kmed hss`` and ``kmed cnn`` started
with ``$NOTIFY_SOCKET`` (an AF_UNIX datagram socket made here) send READY=1 once they listen,
RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 on SIGTERM (then exit 0), and WATCHDOG=1
periodically when ``$WATCHDOG_USEC`` is set -- and never when it is not."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from kmed.lab import Lab
from tests.ops.procs import WAIT_S, notify_socket, recv_until, start, stop

pytestmark = pytest.mark.timeout(120)

DAEMONS = ["hss", "cnn"]


def _port(lab: Lab, name: str) -> int:
    return lab.hss_port if name == "hss" else lab.cnn_port


@pytest.mark.parametrize("name", DAEMONS)
def test_ready_reload_stopping(tmp_path: Path, name: str) -> None:
    lab = Lab(tmp_path)  # the CNN runs without an HSS (its UEs would get #17)
    with notify_socket() as (sock, path):
        proc = start(lab, name, {"NOTIFY_SOCKET": path})
        try:
            got = seen = recv_until(sock, lambda g: any(m.startswith("READY=1") for m in g), proc=proc)
            # READY=1 comes once the port accepts: a connection now must succeed at once.
            with socket.create_connection((lab.host, _port(lab, name)), timeout=5):
                pass
            ready = next(m for m in got if m.startswith("READY=1"))
            assert f"STATUS=listening on tcp://{lab.host}:{_port(lab, name)}" in ready.split("\n")
            proc.send_signal(signal.SIGHUP)
            got = recv_until(sock, lambda g: "READY=1" in g, proc=proc)
            assert got[0] == "RELOADING=1"
            proc.send_signal(signal.SIGTERM)
            seen += got + recv_until(sock, lambda g: "STOPPING=1" in g, proc=proc)
            assert proc.wait(WAIT_S) == 0
        finally:
            stop(proc)
        # Without $WATCHDOG_USEC, nothing was a watchdog ping.
        sock.settimeout(0.2)
        rest = []
        try:
            while True:
                rest.append(sock.recv(4096).decode())
        except (TimeoutError, BlockingIOError):
            pass
        assert not any("WATCHDOG=1" in m for m in seen + rest)


@pytest.mark.parametrize("name", DAEMONS)
def test_watchdog_pings(tmp_path: Path, name: str) -> None:
    """WatchdogSec=0.4s: systemd exports WATCHDOG_USEC=400000 and WATCHDOG_PID; the daemon pings
    every half of it from its event loop once ready, until SIGTERM."""
    lab = Lab(tmp_path)
    with notify_socket() as (sock, path):
        # WATCHDOG_PID is the daemon's own PID under systemd; a Popen cannot know it beforehand,
        # and sd_watchdog_enabled(3) treats an absent WATCHDOG_PID as "this process".
        proc = start(lab, name, {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        try:
            got = recv_until(sock, lambda g: "READY=1" in "".join(g) and g.count("WATCHDOG=1") >= 4, proc=proc)
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            recv_until(sock, lambda g: "STOPPING=1" in g, proc=proc)
            assert proc.wait(WAIT_S) == 0
        finally:
            stop(proc)
        assert got.count("WATCHDOG=1") >= 4


@pytest.mark.parametrize("name", DAEMONS)
def test_watchdog_for_another_pid_is_not_ours(tmp_path: Path, name: str) -> None:
    """WATCHDOG_PID names another process (e.g. a wrapper shell): no pings from this one."""
    lab = Lab(tmp_path)
    with notify_socket() as (sock, path):
        env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": str(os.getpid())}
        proc = start(lab, name, env)
        try:
            recv_until(sock, lambda g: any(m.startswith("READY=1") for m in g), proc=proc)
            proc.send_signal(signal.SIGTERM)
            got = recv_until(sock, lambda g: "STOPPING=1" in g, proc=proc)
            assert proc.wait(WAIT_S) == 0
        finally:
            stop(proc)
        assert "WATCHDOG=1" not in got

"""kmed.systemd: sd_notify datagrams to real AF_UNIX sockets, watchdog interval and loop."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmed import systemd

RECV_TIMEOUT_S = 5.0


@pytest.fixture
def path_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound to a short filesystem path (sun_path has 108 octets)."""
    directory = tempfile.mkdtemp(prefix="kmed-sd-")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(RECV_TIMEOUT_S)
    try:
        yield sock, path
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(directory)


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket in the abstract namespace; yields it and its ``@name`` form."""
    name = "kmed-test-" + secrets.token_hex(8)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(RECV_TIMEOUT_S)
    try:
        yield sock, "@" + name
    finally:
        sock.close()


def test_notify_path_socket(path_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch) -> None:
    sock, path = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert systemd.ready() is True
    assert sock.recv(4096) == b"READY=1"


def test_notify_abstract_socket(abstract_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch) -> None:
    sock, name = abstract_socket
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    assert systemd.ready() is True
    assert sock.recv(4096) == b"READY=1"


def test_status_stopping_reloading(path_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch) -> None:
    sock, path = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert systemd.ready("listening on\ntcp://127.0.0.1:3868")
    assert sock.recv(4096) == b"READY=1\nSTATUS=listening on tcp://127.0.0.1:3868"
    assert systemd.status("3 peers open")
    assert sock.recv(4096) == b"STATUS=3 peers open"
    assert systemd.reloading()
    assert sock.recv(4096) == b"RELOADING=1"
    assert systemd.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    assert systemd.extend_timeout(10.0, "warming the read cache")
    assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=10000000\nSTATUS=warming the read cache"


def test_notify_env_mapping_overrides_environ(path_socket: tuple[socket.socket, str]) -> None:
    sock, path = path_socket
    assert systemd.notify("WATCHDOG=1", env={"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"WATCHDOG=1"


@pytest.mark.parametrize("value", ["", "relative/path", "vsock:2:1234"])
def test_notify_without_usable_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    assert systemd.notify("READY=1") is False


def test_notify_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.ready() is False


def test_notify_to_missing_socket_returns_false(tmp_path: Path) -> None:
    assert systemd.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")}) is False


def test_child_process_notifies(path_socket: tuple[socket.socket, str]) -> None:
    """The way systemd sees it: another process, NOTIFY_SOCKET in its environment."""
    sock, path = path_socket
    env = {**os.environ, "NOTIFY_SOCKET": path}
    code = "from kmed import systemd; raise SystemExit(0 if systemd.ready() else 1)"
    done = subprocess.run([sys.executable, "-c", code], env=env, timeout=60, check=False)
    assert done.returncode == 0
    assert sock.recv(4096) == b"READY=1"


# --- watchdog ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "500000"}, 0.25),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": ""}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert systemd.watchdog_interval(env) == expected


def test_watchdog_interval_reads_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() == 1.5


def test_watchdog_loop_pings_until_stopped(
    abstract_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, name = abstract_socket
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    monkeypatch.setenv("WATCHDOG_USEC", "20000")  # 10 ms between pings
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    sock.setblocking(False)

    async def scenario() -> list[bytes]:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        task = systemd.start_watchdog(stop)
        assert task is not None
        got = [await asyncio.wait_for(loop.sock_recv(sock, 64), RECV_TIMEOUT_S) for _ in range(3)]
        stop.set()
        await asyncio.wait_for(task, RECV_TIMEOUT_S)
        return got

    assert asyncio.run(scenario()) == [b"WATCHDOG=1"] * 3


def test_watchdog_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)

    async def scenario() -> object:
        stop = asyncio.Event()
        task = systemd.start_watchdog(stop)
        # watchdog_loop returns at once when disabled, even with stop never set.
        await asyncio.wait_for(systemd.watchdog_loop(stop), RECV_TIMEOUT_S)
        return task

    assert asyncio.run(scenario()) is None

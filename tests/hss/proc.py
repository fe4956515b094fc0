"""Run the real HSS (``python -m kmed hss``) and ``kmed`` commands as subprocesses for the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

K_HEX = "465b5ce8b199b49faa5f0a2ee238a6bc"
OPC_HEX = "cd63cb71954a9f4e48a5994e37a02baf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kmed(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kmed", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class HssProcess:
    """One HSS daemon on loopback with its config and store under ``root``."""

    def __init__(self, root: Path, extra: str = "", store_extra: str = "") -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.store = root / "hss.sqlite"
        self.config = root / "hss.toml"
        self.log = root / "hss.log"
        self.config.write_text(
            f"""[diameter]
origin_host = "hss.localdomain"
origin_realm = "localdomain"
listen = ["tcp://127.0.0.1:{self.port}"]
allowed_peers = ["mme.localdomain"]
[store]
url = "sqlite:///{self.store}"
{store_extra}
[log]
level = "info"
format = "json"
{extra}""",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        return kmed("admin", "--config", str(self.config), *args)

    def start(self, timeout: float = 30.0) -> None:
        """Start the daemon; return once it sent READY=1 on a private NOTIFY_SOCKET."""
        sock_path = self.root / "notify.sock"
        sock_path.unlink(missing_ok=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ns:
            ns.bind(str(sock_path))
            ns.settimeout(0.5)
            with self.log.open("ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "kmed", "hss", "--config", str(self.config)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env={**os.environ, "NOTIFY_SOCKET": str(sock_path)},
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"the HSS exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
                try:
                    if b"READY=1" in ns.recv(4096):
                        return
                except TimeoutError:
                    continue
        self.kill()
        raise AssertionError(f"the HSS did not send READY=1:\n{self.log.read_text()[-3000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM; the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(timeout)
        self.proc = None
        return status

    def kill(self) -> None:
        """SIGKILL (no clean-up at all)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.proc = None

    def provision_subscriber(self, imsi: str, sqn: int = 0) -> None:
        done = self.admin("subscriber", "add", "--imsi", imsi, "--k", K_HEX, "--opc", OPC_HEX, "--sqn", str(sqn))
        assert done.returncode == 0, done.stderr

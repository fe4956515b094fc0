"""A lab on loopback: an HSS and a CNN as real processes, driven through the CONTRACT CLI.

Used by ``kmed demo``, the end-to-end tests and the load benchmarks. Everything goes through
the documented command line and configuration files (CONTRACT), never through internals, so
what the lab does is what a user's lab script does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

#: Test subscriber of TS 35.208 set 1 (K and OPc), as in CONTRACT's examples.
DEFAULT_K = "465b5ce8b199b49faa5f0a2ee238a6bc"
DEFAULT_OPC = "cd63cb71954a9f4e48a5994e37a02baf"


class LabError(RuntimeError):
    """A lab process failed to start, answer or stop."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_listening(host: str, port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    """Wait until ``host:port`` accepts TCP connections; raise if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LabError(f"process exited with status {proc.returncode} before listening on {host}:{port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise LabError(f"nothing listening on {host}:{port} after {timeout:.0f} s")


def kmed_argv(*args: str) -> list[str]:
    """argv running this kmed's CLI with the current interpreter."""
    return [sys.executable, "-m", "kmed", *args]


@dataclass
class Daemon:
    """One running daemon and where its log goes."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    _log: TextIO

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait (then SIGKILL); return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._log.close()
        return int(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        events = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict):
                    events.append(obj)
        return events


@dataclass
class Lab:
    """Configuration files, store and processes of one HSS + CNN lab under ``root``."""

    root: Path
    host: str = "127.0.0.1"
    mcc: str = "001"
    mnc: str = "01"
    log_level: str = "info"
    cnn_ciphering: str = "EEA2"
    #: When set, each UE logs at this level to ``logs/ue-NAME.log`` (default: warnings to stderr).
    ue_log_level: str | None = None
    hss_port: int = field(default_factory=free_port)
    cnn_port: int = field(default_factory=free_port)
    #: ``[store] writer`` of the lab's HSS: the thread, the least CPU in all when the HSS shares
    #: the cores with the CNN, the harness and the UEs (docs/performance.md, "Session 3"); the
    #: daemon's own default, "process", gives an HSS alone the most throughput.
    hss_writer: str = "thread"
    extra_hss: str = ""
    extra_cnn: str = ""
    daemons: dict[str, Daemon] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        self.hss_config.write_text(self.hss_toml(), encoding="utf-8")
        self.cnn_config.write_text(self.cnn_toml(), encoding="utf-8")

    # --- configuration files (CONTRACT: Configuration) -------------------------------------
    @property
    def hss_config(self) -> Path:
        return self.root / "hss.toml"

    @property
    def cnn_config(self) -> Path:
        return self.root / "cnn.toml"

    @property
    def store_path(self) -> Path:
        return self.root / "hss.sqlite"

    def hss_toml(self) -> str:
        return f"""[diameter]
origin_host = "hss.localdomain"
origin_realm = "localdomain"
listen = ["tcp://{self.host}:{self.hss_port}"]
allowed_peers = ["mme.localdomain"]
[store]
url = "sqlite:///{self.store_path}"
writer = "{self.hss_writer}"
[log]
level = "{self.log_level}"
format = "json"
{self.extra_hss}"""

    def cnn_toml(self) -> str:
        return f"""[diameter]
origin_host = "mme.localdomain"
origin_realm = "localdomain"
connect = ["tcp://{self.host}:{self.hss_port}"]
destination_realm = "localdomain"
destination_host = "hss.localdomain"
[nas]
listen = ["tcp://{self.host}:{self.cnn_port}"]
ciphering = "{self.cnn_ciphering}"
[plmn]
mcc = "{self.mcc}"
mnc = "{self.mnc}"
[log]
level = "{self.log_level}"
format = "json"
{self.extra_cnn}"""

    def ue_config(
        self, name: str, *, imsi: str, imei: str, private_key: Path, k: str = DEFAULT_K, opc: str = DEFAULT_OPC,
        usim_name: str | None = None,
    ) -> Path:
        """Write a UE config: ``name`` names the ME (its state dir); the USIM state follows the IMSI.

        CONTRACT keeps USIM state in ``state_dir/usim`` and ME state in ``state_dir/me``; to move a
        USIM between MEs the lab links the USIM's directory into each ME's state dir.
        """
        state = self.root / "ue" / name
        state.mkdir(parents=True, exist_ok=True)
        usim_dir = self.root / "usim" / (usim_name or imsi)
        usim_dir.mkdir(parents=True, exist_ok=True)
        link = state / "usim"
        if link.is_symlink() or link.exists():
            if link.is_symlink() and link.resolve() == usim_dir.resolve():
                pass
            elif link.is_symlink():
                link.unlink()
            else:
                raise LabError(f"{link} exists and is not the lab's USIM link")
        if not link.exists():
            link.symlink_to(usim_dir, target_is_directory=True)
        path = self.root / f"ue-{name}-{imsi}.toml"
        ue_log = f'level = "{self.ue_log_level or "warning"}"\n'
        if self.ue_log_level is not None:
            ue_log += f'file = "{self.root / "logs" / f"ue-{name}.log"}"\n'
        path.write_text(
            f"""state_dir = "{state}"
[cnn]
connect = "tcp://{self.host}:{self.cnn_port}"
[usim]
imsi = "{imsi}"
k = "{k}"
opc = "{opc}"
[me]
imei = "{imei}"
private_key = "{private_key}"
[log]
{ue_log}format = "json"
""",
            encoding="utf-8",
        )
        return path

    # --- processes -------------------------------------------------------------------------
    def start(self, name: str, timeout: float = 20.0) -> Daemon:
        """Start ``hss`` or ``cnn`` and wait until it listens."""
        config = self.hss_config if name == "hss" else self.cnn_config
        port = self.hss_port if name == "hss" else self.cnn_port
        log_path = self.root / "logs" / f"{name}.log"
        log = log_path.open("a", encoding="utf-8")
        proc = subprocess.Popen(
            kmed_argv(name, "--config", str(config)), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        daemon = Daemon(name, proc, log_path, log)
        try:
            wait_listening(self.host, port, timeout, proc)
        except LabError as exc:
            daemon.kill()
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise LabError(f"{name}: {exc}\n--- {log_path} (tail) ---\n{tail}") from None
        self.daemons[name] = daemon
        return daemon

    def stop(self, name: str) -> int:
        daemon = self.daemons.pop(name)
        return daemon.stop()

    def stop_all(self) -> dict[str, int]:
        return {name: self.stop(name) for name in list(self.daemons)[::-1]}

    # --- the CLI ---------------------------------------------------------------------------
    def kmed(self, *args: str, timeout: float = 60.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a kmed command; with ``check`` raise :class:`LabError` on a non-zero status."""
        done = subprocess.run(
            kmed_argv(*args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        if check and done.returncode != 0:
            raise LabError(f"kmed {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-1500:]}")
        return done

    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kmed("admin", "--config", str(self.hss_config), *args, check=check)

    def gen_device_key(self, name: str, profile: str = "A") -> tuple[Path, Path]:
        """A device key pair (``kmed keys gen``): (private PEM, public PEM)."""
        keys = self.root / "keys"
        keys.mkdir(exist_ok=True)
        priv, pub = keys / f"{name}.key.pem", keys / f"{name}.pub.pem"
        self.kmed("keys", "gen", "--profile", profile, "--private-key", str(priv), "--public-key", str(pub))
        return priv, pub

    def show(self, imsi: str) -> dict[str, Any]:
        out = self.admin("show", "--imsi", imsi).stdout
        obj = json.loads(out)
        if not isinstance(obj, dict):
            raise LabError(f"kmed admin show printed {out!r}")
        return obj

    def attach(self, ue_config: Path, command: str = "attach", timeout: float = 60.0) -> dict[str, Any]:
        """``kmed ue --config FILE attach``: the JSON line it prints, plus ``exit_status``."""
        done = self.kmed("ue", "--config", str(ue_config), command, timeout=timeout, check=False)
        lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
        if done.returncode == 2 or not lines:
            raise LabError(f"kmed ue {command} exited {done.returncode}: {done.stderr.strip()[-1500:]}")
        result = json.loads(lines[-1])
        if not isinstance(result, dict):
            raise LabError(f"kmed ue {command} printed {lines[-1]!r}")
        result["exit_status"] = done.returncode
        return result


@contextlib.contextmanager
def running_lab(root: Path, services: Sequence[str] = ("hss", "cnn"), **kwargs: Any) -> Iterator[Lab]:
    """A :class:`Lab` with its daemons started; everything is stopped on exit."""
    lab = Lab(root, **kwargs)
    try:
        for name in services:
            lab.start(name)
        yield lab
    finally:
        for daemon in list(lab.daemons.values()):
            daemon.kill() if daemon.proc.poll() is not None else daemon.stop()
        lab.daemons.clear()

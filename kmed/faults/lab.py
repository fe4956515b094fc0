"""A :class:`kmed.lab.Lab` behind fault proxies: the CNN reaches the HSS through a Diameter proxy
and the UEs reach the CNN through a UE link proxy, each a ``kmed faults`` process.

```
kmed load ──► uelink proxy ──► kmed cnn ──► diameter proxy ──► kmed hss
             (uelink_port)    (cnn_port)    (s6a_port)        (hss_port)
```

The CNN's configuration gets its Diameter peer replaced by the proxy, short NAS timers (so that
its retransmissions recover a lost frame within a UE's deadline) and a metrics endpoint
(``kmed_ue_contexts``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kmed.faults.policy import DIRECTIONS, FaultSpec
from kmed.lab import Lab, LabError, free_port, kmed_argv, wait_listening

__all__ = ["FaultLab", "ProxyProcess", "proxy_argv"]


def proxy_argv(link: str, listen: str, target: str, spec: FaultSpec, *, name: str, stats: Path | None = None,
               stats_interval: float = 0.2, log_level: str = "info", paused: bool = False) -> list[str]:
    """The ``kmed faults`` command line for ``spec`` (every rate given per direction)."""
    argv = ["faults", "--link", link, "--listen", listen, "--target", target, "--name", name,
            "--scope", spec.scope, "--seed", str(spec.seed), "--reorder-hold-ms", str(spec.reorder_hold_s * 1000.0),
            "--log-level", log_level, "--stats-interval", str(stats_interval)]
    for direction in DIRECTIONS:
        rates = spec.rates(direction).as_dict()
        argv += [f"--{direction}", ",".join(f"{k}={v!r}" for k, v in rates.items())]
    if stats is not None:
        argv += ["--stats", str(stats)]
    if paused:
        argv.append("--paused")
    return kmed_argv(*argv)


@dataclass
class ProxyProcess:
    """A running ``kmed faults`` process: pause/resume its faults, read its counters, stop it."""

    name: str
    proc: subprocess.Popen[bytes]
    stats_path: Path
    log_path: Path
    _log: TextIO

    def stats(self) -> dict[str, Any]:
        """The counters last written (empty before the first write)."""
        with contextlib.suppress(FileNotFoundError, ValueError):
            data = json.loads(self.stats_path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data
        return {}

    def _signal(self, sig: int, paused: bool, timeout: float = 5.0) -> None:
        if self.proc.poll() is not None:
            raise LabError(f"fault proxy {self.name} exited with status {self.proc.returncode}")
        self.proc.send_signal(sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats().get("paused") is paused:
                return
            time.sleep(0.05)
        raise LabError(f"fault proxy {self.name} did not {'pause' if paused else 'resume'} within {timeout} s")

    def pause(self) -> None:
        """Faults off (SIGUSR1); returns once the proxy says so."""
        self._signal(signal.SIGUSR1, True)

    def resume(self) -> None:
        """Faults on again (SIGUSR2)."""
        self._signal(signal.SIGUSR2, False)

    def stop(self, timeout: float = 10.0) -> dict[str, Any]:
        """SIGTERM, wait; the final counters."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._log.close()
        return self.stats()


@dataclass
class FaultLab(Lab):
    """HSS and CNN as in :class:`Lab`, with a fault proxy on each link (module doc)."""

    s6a_port: int = field(default_factory=free_port)
    uelink_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    nas_timer_s: float = 1.0
    max_retransmissions: int = 4
    request_timeout_s: float = 2.0
    proxies: dict[str, ProxyProcess] = field(default_factory=dict)

    def cnn_toml(self) -> str:
        text = super().cnn_toml()
        hss = f'connect = ["tcp://{self.host}:{self.hss_port}"]'
        nas = f'listen = ["tcp://{self.host}:{self.cnn_port}"]'
        if hss not in text or nas not in text:
            raise LabError("the lab's CNN configuration does not have the expected connect/listen lines")
        t = self.nas_timer_s
        text = text.replace(hss, f'connect = ["tcp://{self.host}:{self.s6a_port}"]\n'
                                 f"request_timeout_s = {self.request_timeout_s}")
        text = text.replace(nas, f"{nas}\nt3460_s = {t}\nt3450_s = {t}\nt3470_s = {t}\nkme_timer_s = {t}\n"
                                 f"max_retransmissions = {self.max_retransmissions}")
        return text + f'\n[metrics]\nlisten = "{self.host}:{self.metrics_port}"\n'

    @property
    def uelink_endpoint(self) -> str:
        """Where UEs connect: the UE link proxy."""
        return f"tcp://{self.host}:{self.uelink_port}"

    def start_proxy(self, link: str, spec: FaultSpec, paused: bool = False, timeout: float = 20.0) -> ProxyProcess:
        """Start the proxy of ``link`` (``diameter`` in front of the HSS, ``uelink`` in front of
        the CNN) and wait until it listens."""
        if link == "diameter":
            listen, target = self.s6a_port, self.hss_port
        elif link == "uelink":
            listen, target = self.uelink_port, self.cnn_port
        else:
            raise ValueError(f"link must be diameter or uelink, not {link!r}")
        stats = self.root / f"faults-{link}.json"
        log_path = self.root / "logs" / f"faults-{link}.log"
        log = log_path.open("a", encoding="utf-8")
        argv = proxy_argv(link, f"tcp://{self.host}:{listen}", f"tcp://{self.host}:{target}", spec, name=link,
                          stats=stats, paused=paused)
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        proxy = ProxyProcess(link, proc, stats, log_path, log)
        try:
            wait_listening(self.host, listen, timeout, proc)
        except LabError as exc:
            proxy.stop()
            raise LabError(f"fault proxy {link}: {exc}\n{log_path.read_text(errors='replace')[-2000:]}") from None
        # Accepting a probe connection made the proxy dial its target once: not a fault, but
        # counted; the stats say so (connections.accepted).
        self.proxies[link] = proxy
        return proxy

    def stop_proxies(self) -> dict[str, dict[str, Any]]:
        return {name: self.proxies.pop(name).stop() for name in list(self.proxies)}

    def metrics_text(self, timeout: float = 5.0) -> str:
        """The CNN's metrics exposition (docs/metrics.md)."""
        url = f"http://{self.host}:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return str(resp.read().decode("utf-8"))

    def metric(self, name: str, timeout: float = 5.0) -> float | None:
        """A label-less metric of the CNN (None when absent)."""
        for line in self.metrics_text(timeout).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def hss_peer_open(self) -> bool:
        """The CNN has its Diameter peer open (``kmed_diameter_peer_state{state="open"} 1``)."""
        with contextlib.suppress(OSError):
            for line in self.metrics_text().splitlines():
                if (line.startswith("kmed_diameter_peer_state{") and 'state="open"' in line
                        and float(line.rsplit(" ", 1)[1]) == 1.0):
                    return True
        return False

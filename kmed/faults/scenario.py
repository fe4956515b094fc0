"""A fault run end to end: faulty links and daemon kills under load, then a clean pass, then the
convergence checks (used by tests/faults and ``kmed bench faults``; docs/faults.md).

Phases, on a :class:`~kmed.faults.lab.FaultLab` (real ``kmed hss``, ``kmed cnn``, two
``kmed faults`` proxies and ``kmed load``, all processes on loopback):

1. **provision**: ``kmed admin provision-range``; a clean ``kmed load --hold`` gives every UE a
   KME (proxies paused); the UEs' state goes to a state file.
2. **faults**: proxies resumed; ``kmed load`` (closed loop, ``mix`` of attach, provisioning
   attach and TAU) runs from the state file while the HSS and the CNN are SIGKILLed at random
   moments and restarted after a random down time. Procedures fail meanwhile: that is allowed.
3. **settle**: proxies paused; the CNN's ``kmed_ue_contexts`` must come back to at most one
   registration per UE and its Diameter peer must be open again, within a bound (no procedure
   stuck); checks of what must never be lost (SQN, acknowledged KMEs) on the state the faults
   left.
4. **clean pass**: ``kmed load --hold`` attaches every UE once (a UE whose KME mismatches is
   provisioned again); then every UE must hold the HSS's KME, no resynchronisation may have been
   needed, and the CNN must hold exactly one context per UE.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmed.faults.convergence import Convergence, acknowledged_stores, check, read_store, read_ues
from kmed.faults.lab import FaultLab
from kmed.faults.policy import FaultSpec, Rates
from kmed.lab import DEFAULT_K, DEFAULT_OPC, LabError, kmed_argv
from kmed.load.labfile import load_toml, provision_range_args
from kmed.load.population import PopulationSpec

__all__ = ["FaultRunResult", "FaultRunSettings", "Kill", "run_faults", "symmetric"]

IMSI_FIRST = "001010000500000"
IMEI_FIRST = "35693803500000"
DEVICE_KEY_SEED = "00112233445566778899aabbccddeeff"
IND_BITS = 5  # the HSS's and the harness's default (TS 33.102 C.3.2)


def symmetric(rates: Rates, seed: int, scope: str = "application") -> FaultSpec:
    """The same rates both ways."""
    return FaultSpec(up=rates, down=rates, scope=scope, seed=seed)


@dataclass(frozen=True)
class FaultRunSettings:
    """What one run does (defaults: a CI-sized run)."""

    ues: int = 40
    duration_s: float = 15.0
    concurrency: int = 20  # closed-loop UEs in the fault phase
    diameter: FaultSpec = field(default_factory=FaultSpec)
    uelink: FaultSpec = field(default_factory=FaultSpec)
    hss_kills: int = 0
    cnn_kills: int = 0
    down_s: tuple[float, float] = (0.2, 1.5)  # a killed daemon stays down this long (uniform)
    seed: int = 1
    timeout_s: float = 8.0  # the harness's procedure deadline (T3410 for its single attempt)
    nas_timer_s: float = 1.0  # the CNN's T3460/T3450/T3470/T_KME
    request_timeout_s: float = 2.0  # the CNN's Diameter request timeout
    settle_s: float = 30.0  # bound for the CNN's contexts to come back after the faults
    workers: int = 1

    def describe(self) -> dict[str, Any]:
        return {
            "ues": self.ues, "duration_s": self.duration_s, "concurrency": self.concurrency,
            "diameter": self.diameter.as_dict(), "uelink": self.uelink.as_dict(), "hss_kills": self.hss_kills,
            "cnn_kills": self.cnn_kills, "down_s": list(self.down_s), "seed": self.seed, "timeout_s": self.timeout_s,
            "nas_timer_s": self.nas_timer_s, "request_timeout_s": self.request_timeout_s,
        }


@dataclass
class Kill:
    """One SIGKILL and restart."""

    daemon: str
    at_s: float  # after the start of the fault phase
    down_s: float
    restarted: bool = False
    error: str | None = None


@dataclass
class FaultRunResult:
    settings: FaultRunSettings
    provision: dict[str, Any] = field(default_factory=dict)  # summary of the first clean pass
    faults: dict[str, Any] = field(default_factory=dict)  # summary of the fault phase's load report
    kills: list[Kill] = field(default_factory=list)
    proxies: dict[str, dict[str, Any]] = field(default_factory=dict)  # proxy counters
    contexts_after_faults: float | None = None
    settle_s: float | None = None
    after_faults: Convergence | None = None
    final_pass: dict[str, Any] = field(default_factory=dict)
    final: Convergence | None = None
    contexts_final: float | None = None
    resyncs_faults: int = 0  # HSS AIRs with a verified resynchronisation during the fault phase
    resyncs_final: int = 0  # ... during the clean pass (must be 0)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every invariant held (docs/faults.md)."""
        return (not self.errors and self.final is not None and self.final.all_converged and self.final.nothing_lost
                and self.after_faults is not None and self.after_faults.nothing_lost
                and self.resyncs_final == 0 and self.contexts_final == self.settings.ues
                and all(k.restarted for k in self.kills))

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "settings": self.settings.describe(), "provision": self.provision, "faults": self.faults,
            "kills": [vars(k) for k in self.kills], "proxies": self.proxies,
            "contexts_after_faults": self.contexts_after_faults, "settle_s": self.settle_s,
            "after_faults": self.after_faults.summary() if self.after_faults else None,
            "final_pass": self.final_pass, "final": self.final.summary() if self.final else None,
            "contexts_final": self.contexts_final, "resyncs_faults": self.resyncs_faults,
            "resyncs_final": self.resyncs_final, "errors": self.errors,
        }

    def lines(self) -> list[str]:
        """A human-readable summary."""
        s = self.settings
        out = [f"fault run: {s.ues} UEs, {s.duration_s:g} s of faults, {s.concurrency} UEs in closed loop, "
               f"seed {s.seed}: {'OK' if self.ok else 'FAILED'}"]
        for name, spec in (("diameter", s.diameter), ("uelink", s.uelink)):
            out.append(f"  {name} faults up {_rates(spec.up)}; down {_rates(spec.down)}")
            st = self.proxies.get(name)
            if st:
                out.append(f"  {name} proxy: " + "; ".join(
                    f"{d} {st[d]['messages']} msgs, {st[d]['dropped']} dropped, {st[d]['duplicated']} duplicated, "
                    f"{st[d]['reordered'] + st[d]['reorder_timeouts']} reordered, {st[d]['delayed']} delayed, "
                    f"{st[d]['resets']} resets" for d in ("up", "down")))
        for k in self.kills:
            state = "restarted" if k.restarted else f"NOT restarted ({k.error})"
            out.append(f"  kill -9 {k.daemon} at {k.at_s:.1f} s, down {k.down_s:.2f} s: {state}")
        f = self.faults
        if f:
            out.append(f"  under faults: {f.get('ok')} procedures ok, {f.get('failed')} failed "
                       f"({f.get('success_ratio')}), errors {f.get('errors')}")
        out.append(f"  after faults: CNN contexts {self.contexts_after_faults} (settled in {self.settle_s} s), "
                   f"{_conv(self.after_faults)}, resyncs {self.resyncs_faults}")
        out.append(f"  clean pass: {self.final_pass.get('held')} of {s.ues} attached "
                   f"({self.final_pass.get('provisioned')} re-provisioned); {_conv(self.final)}; "
                   f"resyncs {self.resyncs_final}; CNN contexts {self.contexts_final}")
        out.extend(f"  error: {e}" for e in self.errors)
        return out


def _rates(r: Rates) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in r.as_dict().items() if v) or "none"


def _conv(c: Convergence | None) -> str:
    if c is None:
        return "not checked"
    s = c.summary()
    return (f"{s['converged']}/{s['ues']} UEs converged, SQN behind {s['sqn_behind']}, acknowledged KME stores "
            f"{s['acknowledged_kme_stores']} (lost {s['lost_acknowledged']}), inconsistent {s['inconsistent_store']}")


class _Killer(threading.Thread):
    """Kills and restarts daemons at planned moments while the fault phase runs."""

    def __init__(self, lab: FaultLab, plan: list[Kill], t0: float) -> None:
        super().__init__(name="kmed-faults-killer", daemon=True)
        self.lab, self.plan, self.t0 = lab, plan, t0
        self.stop = threading.Event()

    def run(self) -> None:
        for k in self.plan:
            if self.stop.wait(max(0.0, self.t0 + k.at_s - time.monotonic())):
                k.error = "not done: the load run ended first"
                continue
            self.lab.daemons[k.daemon].kill()
            time.sleep(k.down_s)
            try:
                self.lab.start(k.daemon)
                k.restarted = True
            except LabError as exc:
                k.error = str(exc)[-300:]
                return


def _plan(settings: FaultRunSettings, rng: random.Random) -> list[Kill]:
    names = ["hss"] * settings.hss_kills + ["cnn"] * settings.cnn_kills
    rng.shuffle(names)
    if not names:
        return []
    # Spread over the middle of the window, one slot each, at a random moment in the slot.
    lo, hi = 0.1 * settings.duration_s, 0.85 * settings.duration_s
    slot = (hi - lo) / len(names)
    return [Kill(name, round(lo + i * slot + rng.uniform(0.0, slot * 0.6), 3),
                 round(rng.uniform(*settings.down_s), 3)) for i, name in enumerate(names)]


def _hss_resyncs(lab: FaultLab, since_line: int) -> tuple[int, int]:
    """(resynchronisations in the HSS log after line ``since_line``, lines now)."""
    lines = lab.root.joinpath("logs", "hss.log").read_text(encoding="utf-8", errors="replace").splitlines()
    n = 0
    for line in lines[since_line:]:
        if '"resync"' in line:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            n += e.get("event") == "air" and e.get("outcome") == "resync"
    return n, len(lines)


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    procs = report.get("procedures", {})
    ok = sum(p["ok"] for p in procs.values())
    failed = sum(p["failed"] for p in procs.values())
    return {
        "status": report.get("status"), "ok": ok, "failed": failed,
        "success_ratio": round(ok / (ok + failed), 3) if ok + failed else None,
        "procedures": {n: {"ok": p["ok"], "failed": p["failed"]} for n, p in procs.items() if p["count"]},
        "errors": report.get("errors", {}),
        "held": (report.get("hold") or {}).get("ues_attached"),
        "provisioned": procs.get("attach_provision", {}).get("ok", 0),
    }


def run_faults(root: Path, settings: FaultRunSettings, progress: Callable[[str], None] | None = None) -> FaultRunResult:
    """Run the phases of the module doc under ``root``; the lab is stopped at the end."""
    say = progress or (lambda _msg: None)
    result = FaultRunResult(settings)
    rng = random.Random(settings.seed)
    n = settings.ues
    spec = PopulationSpec(count=n, imsi_first=IMSI_FIRST, imei_first=IMEI_FIRST, k=bytes.fromhex(DEFAULT_K),
                          opc=bytes.fromhex(DEFAULT_OPC), device_key_seed=bytes.fromhex(DEVICE_KEY_SEED))
    lab = FaultLab(root, log_level="info", nas_timer_s=settings.nas_timer_s,
                   request_timeout_s=settings.request_timeout_s)
    state = root / "ues.state"
    load_cfg = root / "load.toml"
    load_cfg.write_text(load_toml([lab.uelink_endpoint], count=n, imsi_first=IMSI_FIRST, imei_first=IMEI_FIRST,
                                  k=DEFAULT_K, opc=DEFAULT_OPC, seed=DEVICE_KEY_SEED,
                                  extra=f"[load]\ntimeout_s = {settings.timeout_s}\n"), encoding="utf-8")
    hold_s = 5.0 + n / 20.0  # time for the clean passes to attach every UE (2 shared cores)

    def load_argv(name: str, *args: str) -> list[str]:
        return kmed_argv("load", "--config", str(load_cfg), "--report", str(root / f"{name}.json"), "--no-plot",
                         "--state", str(state), "--ues", str(n), "--workers", str(settings.workers), *args)

    def run_load(name: str, *args: str, timeout: float) -> dict[str, Any]:
        done = subprocess.run(load_argv(name, *args), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        report_path = root / f"{name}.json"
        if not report_path.exists():
            raise LabError(f"kmed load ({name}) wrote no report, status {done.returncode}: {done.stderr[-1500:]}")
        report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
        return report

    try:
        say("provisioning")
        lab.start("hss")
        lab.admin(*provision_range_args(n, IMSI_FIRST, IMEI_FIRST, DEFAULT_K, DEFAULT_OPC, DEVICE_KEY_SEED))
        lab.start_proxy("diameter", settings.diameter, paused=True)
        lab.start("cnn")
        lab.start_proxy("uelink", settings.uelink, paused=True)
        result.provision = _summary(run_load("provision", "--hold", "--duration", f"{hold_s:g}",
                                             timeout=hold_s + 120))
        if result.provision["held"] != n:
            result.errors.append(f"the first clean pass attached {result.provision['held']} of {n} UEs")
            return result
        _, hss_lines = _hss_resyncs(lab, 0)

        say("faults")
        for proxy in lab.proxies.values():
            proxy.resume()
        plan = _plan(settings, rng)
        result.kills = plan
        load_log = (root / "logs" / "load-faults.log").open("w", encoding="utf-8")
        proc = subprocess.Popen(
            load_argv("faults", "--closed-loop", str(settings.concurrency), "--duration", f"{settings.duration_s:g}",
                      "--scenario", "mix", "--seed", str(settings.seed)),
            stdout=load_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        # The kill clock starts once the harness's UE links are up through the proxy: a CNN
        # killed while the harness starts would abort the run ("cannot reach the CNN").
        deadline = time.monotonic() + 30.0
        while (proc.poll() is None and time.monotonic() < deadline
               and not lab.proxies["uelink"].stats().get("connections", {}).get("active")):
            time.sleep(0.05)
        killer = _Killer(lab, plan, time.monotonic())
        killer.start()
        try:
            proc.wait(timeout=settings.duration_s + 3 * settings.timeout_s + 120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            result.errors.append("kmed load did not end in time during the fault phase")
        finally:
            load_log.close()
        killer.stop.set()
        killer.join(60)
        report_path = root / "faults.json"
        if report_path.exists():
            report = json.loads(report_path.read_text(encoding="utf-8"))
            result.faults = _summary(report)
            if report.get("status") == "aborted":
                result.errors.append(f"the fault phase's load run was aborted: {report.get('error')}")
        else:
            tail = (root / "logs" / "load-faults.log").read_text(encoding="utf-8", errors="replace")[-1500:]
            result.errors.append(f"the fault phase wrote no report: {tail}")
        for name in ("hss", "cnn"):
            if lab.daemons[name].proc.poll() is not None:  # killed, and its restart failed
                lab.start(name)

        say("settle")
        for proxy in lab.proxies.values():
            proxy.pause()
        result.proxies = {name: p.stats() for name, p in lab.proxies.items()}
        t0 = time.monotonic()
        contexts = lab.metric("kmed_ue_contexts")
        while (contexts is None or contexts > n) and time.monotonic() - t0 < settings.settle_s:
            time.sleep(0.25)
            contexts = lab.metric("kmed_ue_contexts")
        result.contexts_after_faults = contexts
        if contexts is None or contexts > n:
            result.errors.append(f"the CNN still holds {contexts} UE contexts for {n} UEs {settings.settle_s} s "
                                 "after the faults stopped (a context is stuck)")
        # The CNN's Diameter connection may still be recovering (reconnect back-off, a lost
        # CER/CEA with --scope all): the clean pass starts once it is open again.
        while not lab.hss_peer_open() and time.monotonic() - t0 < settings.settle_s:
            time.sleep(0.25)
        if not lab.hss_peer_open():
            result.errors.append(f"the CNN's Diameter peer was not open {settings.settle_s} s after the faults")
        result.settle_s = round(time.monotonic() - t0, 2)
        result.resyncs_faults, hss_lines = _hss_resyncs(lab, hss_lines)
        cnn_events = lab.daemons["cnn"].log_events()
        result.after_faults = check(read_store(lab.store_path), read_ues(state, spec),
                                    acknowledged_stores(cnn_events), IND_BITS)

        say("clean pass")
        final = run_load("final", "--hold", "--duration", f"{hold_s:g}", timeout=hold_s + 120)
        result.final_pass = _summary(final)
        result.resyncs_final, _ = _hss_resyncs(lab, hss_lines)
        result.final = check(read_store(lab.store_path), read_ues(state, spec),
                             acknowledged_stores(lab.daemons["cnn"].log_events()), IND_BITS)
        t0 = time.monotonic()
        result.contexts_final = lab.metric("kmed_ue_contexts")
        while result.contexts_final != n and time.monotonic() - t0 < settings.settle_s:
            time.sleep(0.25)
            result.contexts_final = lab.metric("kmed_ue_contexts")
        return result
    finally:
        stats = lab.stop_proxies()
        result.proxies = {**result.proxies, **{k: v for k, v in stats.items() if k not in result.proxies}}
        for daemon in list(lab.daemons.values()):
            daemon.kill() if daemon.proc.poll() is not None else daemon.stop()
        lab.daemons.clear()

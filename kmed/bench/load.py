"""``kmed bench load``: HSS + CNN + load harness on this machine, the issue 6 targets.

Starts an HSS and a CNN on loopback (:func:`kmed.lab.running_lab`: real processes through the
CONTRACT command line, SQLite store with its default durable ``synchronous = full``), creates
the population with ``kmed admin provision-range``, then runs ``kmed load`` (a subprocess, as a
user would) in phases:

1. ``provision``: the provisioning call model at ``--provision-rate`` for ``--duration`` s;
2. ``attach``: KME-match attaches at ``--attach-rate`` for ``--duration`` s (the UE state the
   first phase left is handed over with ``--state``, so no warm-up is needed);
3. ``hold``: the CNN restarted empty, ``--hold-ues`` UEs attached (KME matches when the
   phases before provisioned them) and held; the CNN's memory per held UE context from its RSS.

For each phase it prints the report's figures, whether the target was met (rate, p99 < 250 ms,
no failure), and the CPU seconds each process used (HSS and CNN from /proc/PID/stat, the
harness and its workers from getrusage), i.e. the CPU cost per procedure of each. With
``--profile DIR`` every phase also runs ``py-spy record`` on the HSS, the CNN and the harness
(``--nonblocking``) and prints where their CPU went (self and total sample shares per function).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmed.bench.machine import code_origin
from kmed.lab import DEFAULT_K, DEFAULT_OPC, Lab, free_port, kmed_argv, running_lab
from kmed.load.labfile import load_toml, provision_range_args
from kmed.load.procinfo import tree_cpu_s

IMSI_FIRST = "001010000500000"
IMEI_FIRST = "35693803500000"
SEED = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
P99_TARGET_MS = 250.0
PHASES = ("provision", "attach", "hold")


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


_DURATION = "kmed_procedure_duration_seconds"


def scrape_durations(port: int) -> dict[str, tuple[float, float]]:
    """``kmed_procedure_duration_seconds`` of a daemon's /metrics (docs/metrics.md): procedure →
    (sum of seconds, count). Empty when the endpoint does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:  # loopback only
            text = resp.read().decode("utf-8", "replace")
    except OSError:
        return {}
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        for suffix, slot in (("_sum{", 0), ("_count{", 1)):
            if line.startswith(_DURATION + suffix):
                labels, _, value = line.rpartition(" ")
                name = labels.split('procedure="', 1)[-1].split('"', 1)[0]
                out.setdefault(name, [0.0, 0.0])[slot] = float(value)
    return {name: (v[0], v[1]) for name, v in out.items()}


@dataclass
class Phase:
    name: str
    args: list[str]
    target_rate: float | None
    procedure: str
    report: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    exit_status: int = 0
    profiles: dict[str, Path] = field(default_factory=dict)
    durations: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)


@contextlib.contextmanager
def _py_spy(pids: dict[str, int], out_dir: Path, duration: float, harness: bool) -> Iterator[dict[str, Path]]:
    """py-spy record (collapsed stacks) of each PID for ``duration`` seconds."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    procs: list[subprocess.Popen[bytes]] = []
    files: dict[str, Path] = {}
    for name, pid in pids.items():
        path = out_dir / f"{name}.txt"
        argv = [exe, "record", "--pid", str(pid), "--duration", str(int(duration)), "--rate", "100",
                "--nonblocking", "--format", "raw", "--output", str(path)]
        if harness and name == "harness":
            argv.append("--subprocesses")
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        files[name] = path
    try:
        yield files
    finally:
        for p in procs:
            try:
                p.wait(duration + 30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def summarize_profile(path: Path, top: int = 12) -> list[str]:
    """Lines of the functions with the most samples: self share (leaf) and total share."""
    if not path.exists():
        return [f"    (no profile: {path.name} not written; is py-spy installed and ptrace allowed?)"]
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_short(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if frames:
            self_counts[frames[-1]] += n
        for f in set(frames):
            total_counts[f] += n
    if not samples:
        return ["    (no samples)"]
    out = [f"    {samples} samples; self% = in the function itself, total% = with its callees"]
    out.append("    self%  function")
    out += [f"    {100.0 * n / samples:5.1f}  {f}" for f, n in self_counts.most_common(top)]
    out.append("    total% function (frames on more than 80 % of the stacks, the entry points, left out)")
    inner = [(f, n) for f, n in total_counts.most_common() if n <= 0.8 * samples]
    out += [f"    {100.0 * n / samples:5.1f}  {f}" for f, n in inner[:top]]
    return out


def _short(frame: str) -> str:
    """``func (path/to/module.py:123)`` → ``func (module.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0]
    parts = file.split("/")
    short = "/".join(parts[-2:]) if parts[-1] in ("__init__.py",) else parts[-1]
    return f"{name} ({short})"


def _run_phase(lab: Lab, phase: Phase, config: Path, out: Path, profile: Path | None, duration: float,
               metrics: dict[str, int]) -> None:
    pids = {name: d.proc.pid for name, d in lab.daemons.items()}
    durations_before = {name: scrape_durations(port) for name, port in metrics.items()}
    before = {name: tree_cpu_s(pid) for name, pid in pids.items()}  # the HSS's writer child too
    harness_before = _children_cpu_s()
    report_path = out / f"{phase.name}.json"
    argv = kmed_argv("load", "--config", str(config), "--report", str(report_path), *phase.args)
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if profile is not None:
        pdir = profile / phase.name
        pdir.mkdir(parents=True, exist_ok=True)
        with _py_spy({**pids, "harness": proc.pid}, pdir, duration + 5, harness=True) as files:
            stdout, stderr = proc.communicate()
        phase.profiles = files
    else:
        stdout, stderr = proc.communicate()
    phase.wall_s = time.monotonic() - start
    phase.exit_status = proc.returncode
    phase.cpu = {name: tree_cpu_s(pid) - before[name] for name, pid in pids.items() if lab.daemons.get(name)}
    # All children of this process that ended meanwhile: the harness, its workers (and py-spy when profiling).
    phase.cpu["harness"] = _children_cpu_s() - harness_before
    phase.report = json.loads(report_path.read_text()) if report_path.exists() else {}
    for name, port in metrics.items():
        after, before_d = scrape_durations(port), durations_before[name]
        if not after or not before_d:  # an endpoint that did not answer (busy): no figure, not a wrong one
            continue
        phase.durations[name] = {p: (s - before_d.get(p, (0.0, 0.0))[0], c - before_d.get(p, (0.0, 0.0))[1])
                                 for p, (s, c) in after.items()}
    if proc.returncode not in (0, 1) or not phase.report:
        print(f"  kmed load exited {proc.returncode}: {stderr.strip()[-1500:]}")
    if stdout.strip():
        print("\n".join("  | " + line for line in stdout.strip().splitlines()))


def _print_phase(phase: Phase) -> bool:
    r = phase.report
    if not r:
        return False
    met = True
    if phase.name == "hold":
        hold = r.get("hold") or {}
        held = hold.get("ues_attached", 0)
        print(f"  held {held} of {r['ues']} UEs; CNN RSS {hold.get('cnn_rss_before_kib')} KiB -> "
              f"{hold.get('cnn_rss_held_kib')} KiB; {hold.get('cnn_bytes_per_held_ue')} bytes per held UE context")
        met = held == r["ues"] and r["status"] == "ok"
    else:
        p = r["procedures"][phase.procedure]
        failed = sum(x["failed"] for x in r["procedures"].values()) + sum(r["errors"].values())
        # Open loop: with no failure and no dropped arrival the offered rate was served; the count
        # is checked against the arrivals expected (rate over the window less half the 1 s ramp).
        cfg = r.get("config") or {}
        expected = (phase.target_rate or 0.0) * (float(cfg.get("duration_s") or 0) - float(cfg.get("ramp_s") or 0) / 2)
        rate_ok = phase.target_rate is None or p["count"] >= 0.9 * expected
        p99_ok = p["p99_ms"] is not None and p["p99_ms"] < P99_TARGET_MS
        met = rate_ok and p99_ok and failed == 0
        print(f"  {phase.procedure}: {p['ok']} ok / {p['count']} in {r['duration_s']} s = {p['rate_per_s']}/s "
              f"(target {phase.target_rate}/s); p50 {p['p50_ms']} ms, p95 {p['p95_ms']} ms, p99 {p['p99_ms']} ms "
              f"(target < {P99_TARGET_MS:g}), max {p['max_ms']} ms; failures and errors {failed}")
        n = max(1, sum(x["count"] for x in r["procedures"].values()))
        window = dict(phase.cpu)
        window["harness"] = sum((r.get("generator") or {}).get("cpu_s") or [0.0])  # the measured window only
        costs = ", ".join(f"{name} {1e6 * s / n:.0f} µs" for name, s in window.items())
        print(f"  CPU per procedure run: {costs}")
    for daemon, procs in phase.durations.items():
        means = ", ".join(f"{p} {1000.0 * s / c:.1f} ms (n={c:.0f})" for p, (s, c) in sorted(procs.items()) if c > 0)
        if means:
            print(f"  {daemon} mean procedure duration (its metrics): {means}")
    gen = r.get("generator") or {}
    cpu = ", ".join(f"{name} {s:.1f} s" for name, s in phase.cpu.items())
    print(f"  CPU used in {phase.wall_s:.1f} s wall: {cpu}; harness utilization {gen.get('utilization')}, "
          f"arrival lag p99 {gen.get('arrival_lag_p99_ms')} ms")
    if phase.name != "hold" and phase.target_rate is None:
        print(f"  closed loop: p99 < {P99_TARGET_MS:g} ms and no failure: {'yes' if met else 'no'}")
    else:
        print(f"  target {'MET' if met else 'NOT MET'}")
    for name, path in phase.profiles.items():
        print(f"  profile of {name} ({path}):")
        print("\n".join(summarize_profile(path)))
    return met


#: Rates tried by ``--capacity`` below the target (procedures per second).
CAPACITY_STEPS = (25, 50, 100, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1200, 1500, 2000)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="kmed bench load", description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per phase (default 60)")
    ap.add_argument("--ues", type=int, default=10000, help="population for provision and attach (default 10000)")
    ap.add_argument("--provision-rate", type=float, default=400.0, help="provisioning procedures per s (400)")
    ap.add_argument("--attach-rate", type=float, default=1000.0, help="KME-match attaches per s (1000)")
    ap.add_argument("--hold-ues", type=int, default=10000, help="UEs attached and held (10000)")
    ap.add_argument("--workers", type=int, default=1, help="harness worker processes (default 1)")
    ap.add_argument("--connections", type=int, default=4, help="UE link connections (default 4)")
    ap.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset of provision,attach,hold")
    ap.add_argument("--capacity", action="store_true",
                    help="provision and attach: step the rate up to the target (--step-duration s each) and stop "
                         "at the first step that fails (rate, p99 < 250 ms, no failure): the highest passing rate")
    ap.add_argument("--step-duration", type=float, default=20.0, help="seconds per --capacity step (default 20)")
    ap.add_argument("--closed-loop", type=int, metavar="N",
                    help="provision and attach phases in closed loop with N UEs instead of at a rate: the "
                         "throughput is then the capacity, and the CPU per procedure its cost at saturation")
    ap.add_argument("--hss-writer", choices=["thread", "process"], default=Lab.hss_writer,
                    help="the HSS's [store] writer (default thread: the least CPU in all when the HSS shares "
                         "the cores with the CNN and the harness; docs/hss.md)")
    ap.add_argument("--workdir", help="keep configs, store, reports and logs here (default: temporary)")
    ap.add_argument("--profile", metavar="DIR", help="py-spy record HSS, CNN and harness into DIR and summarize")
    args = ap.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not phases or any(p not in PHASES for p in phases):
        ap.error(f"--phases: a comma-separated subset of {','.join(PHASES)}")
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="kmed-bench-load-"))
    profile = Path(args.profile) if args.profile else None
    count = max(args.ues, args.hold_ues)
    print(f"kmed bench load: {os.cpu_count()} CPUs, {os.uname().sysname} {os.uname().release}, "
          f"Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f} before; HSS writer "
          f"{args.hss_writer}; work dir {root}; code {code_origin()}")
    state = root / "ues.state"

    def common(duration: float) -> list[str]:
        return ["--workers", str(args.workers), "--connections", str(args.connections), "--duration", str(duration),
                "--state", str(state)]

    def rate_phase(name: str, rate: float, duration: float) -> Phase:
        provision = name.startswith("provision")
        scenario, procedure = ("provision", "attach_provision") if provision else ("attach", "attach")
        load = ["--closed-loop", str(args.closed_loop)] if args.closed_loop else ["--rate", f"{rate:g}"]
        return Phase(name, ["--scenario", scenario, "--ues", str(args.ues), *load, *common(duration)],
                     None if args.closed_loop else rate, procedure)

    all_met = True
    metrics = {"hss": free_port(), "cnn": free_port()}
    extra = {f"extra_{name}": f'[metrics]\nlisten = "127.0.0.1:{port}"\n' for name, port in metrics.items()}
    with running_lab(root, log_level="warning", hss_writer=args.hss_writer, **extra) as lab:
        start = time.monotonic()
        lab.admin(*provision_range_args(count, IMSI_FIRST, IMEI_FIRST, DEFAULT_K, DEFAULT_OPC, SEED))
        print(f"provision-range {count}: {time.monotonic() - start:.1f} s")
        config = root / "load.toml"
        config.write_text(load_toml([f"tcp://{lab.host}:{lab.cnn_port}"], count=count, imsi_first=IMSI_FIRST,
                                    imei_first=IMEI_FIRST, k=DEFAULT_K, opc=DEFAULT_OPC, seed=SEED,
                                    extra="[load]\nwarmup_concurrency = 100\n"))
        for name in phases:
            if name == "hold":
                lab.stop("cnn")
                lab.start("cnn")  # an empty CNN: its memory growth is the held contexts'
                # With the state of the phases before, the held UEs' attaches match (their MEs hold KMEs).
                phase = Phase("hold", ["--hold", "--ues", str(args.hold_ues), "--no-plot", *common(args.duration),
                                       "--cnn-pid", str(lab.daemons["cnn"].proc.pid)], None, "attach")
                print(f"\n== hold: kmed load {' '.join(phase.args)}")
                _run_phase(lab, phase, config, root, profile, args.duration, metrics)
                all_met = _print_phase(phase) and all_met
                continue
            if name == "attach":  # warm up apart, so that the phase's CPU figures are attaches only
                prep = ["--scenario", "attach", "--ues", str(args.ues), "--rate", "1", "--duration", "0.5",
                        "--state", str(state), "--no-plot", "--report", str(root / "prepare.json")]
                print(f"\n== prepare: kmed load {' '.join(prep)}")
                lab.kmed("load", "--config", str(config), *prep, timeout=args.duration * 20 + 600, check=False)
            target = args.provision_rate if name == "provision" else args.attach_rate
            if not args.capacity or args.closed_loop:
                phase = rate_phase(name, target, args.duration)
                print(f"\n== {name}: kmed load {' '.join(phase.args)}")
                _run_phase(lab, phase, config, root, profile, args.duration, metrics)
                all_met = _print_phase(phase) and all_met
                continue
            best = None
            for rate in [r for r in CAPACITY_STEPS if r < target] + [target]:
                phase = rate_phase(f"{name}-{rate:g}", rate, args.step_duration)
                print(f"\n== {name} step {rate:g}/s: kmed load {' '.join(phase.args)}")
                _run_phase(lab, phase, config, root, None, args.step_duration, metrics)
                if not _print_phase(phase):
                    break
                best = rate
            print(f"\n== {name}: highest rate meeting p99 < {P99_TARGET_MS:g} ms with no failure: "
                  f"{'none tried' if best is None else f'{best:g}/s'} (target {target:g}/s)")
            all_met = all_met and best == target
    print(f"\nreports and logs in {root}")
    return 0 if all_met else 1

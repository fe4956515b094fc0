"""``kmed load``: the load harness command (CONTRACT: Commands; docs/load.md).

``kmed load --config LOAD_FILE --ues N [--rate PER_S] [--duration S] [--scenario NAME]
--report FILE.json`` plus ``--closed-loop N``, ``--hold``, ``--workers``, ``--connections``,
``--cnn-pid``, ``--seed``, ``--no-warmup``, ``--state FILE``, ``--plot FILE.png`` / ``--no-plot``.
Command-line values override the ``[load]`` section.

Exit status: 0 every procedure succeeded; 1 a procedure or the warm-up failed, or the run
could not start (e.g. the CNN is not reachable: the report says what failed); 2 usage or
configuration error (file and key named). The report is written in every case but 2.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

from kmed import config, log
from kmed.crypto import kdf
from kmed.load.scenarios import SCENARIOS

__all__ = ["register"]


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _usage(message: str) -> int:
    print(f"kmed load: {message}", file=sys.stderr)
    return 2


def _summary(report: dict[str, Any], out: Any) -> None:
    """The human-readable end of a run (stdout)."""
    cfg = report["config"]
    out.write(f"kmed load: scenario {cfg['scenario']}, {report['ues']} UEs, {report['duration_s']} s, "
              f"status {report['status']}\n")
    warm = report.get("warmup")
    if warm:
        out.write(f"  warm-up: {warm['ok']} ok, {warm['failed']} failed, {warm['not_run']} not run "
                  f"in {warm['duration_s']} s\n")
    for name, p in report["procedures"].items():
        if p["count"]:
            out.write(f"  {name:17} count {p['count']:>8}  ok {p['ok']:>8}  failed {p['failed']:>6}  "
                      f"{p['rate_per_s']:9.1f}/s  p50 {p['p50_ms']} ms  p95 {p['p95_ms']} ms  "
                      f"p99 {p['p99_ms']} ms  max {p['max_ms']} ms\n")
    for cause, n in report["errors"].items():
        example = report["error_examples"].get(cause)
        out.write(f"  error {cause}: {n}" + (f" (e.g. {example})" if example else "") + "\n")
    hold = report.get("hold")
    if hold:
        out.write(f"  held: {hold['ues_attached']} UEs; CNN RSS {hold['cnn_rss_before_kib']} -> "
                  f"{hold['cnn_rss_held_kib']} KiB; {hold['cnn_bytes_per_held_ue']} bytes per held UE\n")
    gen = report.get("generator") or {}
    if gen.get("interrupted"):
        out.write("  stopped early by SIGINT/SIGTERM: the figures cover the run until then\n")
    if gen.get("saturated"):
        from kmed.load.runner import SATURATED_UTILIZATION

        util = [u for u in gen.get("utilization") or [] if u is not None]
        if any(u > SATURATED_UTILIZATION for u in util):
            out.write(f"  warning: a generator worker used {max(util):.0%} of a core: the figures may measure the "
                      "harness; give more --workers (on a machine with cores to spare)\n")
        else:
            out.write(f"  warning: arrivals were sent late (p99 {gen.get('arrival_lag_p99_ms')} ms) while the "
                      f"harness used at most {max(util, default=0.0):.0%} of a core: the machine is busy (other "
                      "processes compete for the CPU); latencies include that wait\n")
    out.flush()


def _run(args: argparse.Namespace) -> int:
    from kmed.load.generator import RunSettings
    from kmed.load.plot import PlotUnavailable, plot_path_for, write_plot
    from kmed.load.population import PopulationSpec, load_states, save_states
    from kmed.load.procinfo import find_listener_pid
    from kmed.load.progress import Progress
    from kmed.load.report import write_report
    from kmed.load.runner import run_load
    from kmed.ue.state import StateError

    try:
        cfg = config.load(args.config, config.LOAD_SCHEMA)
    except config.ConfigError as exc:
        return _usage(str(exc))
    stream = sys.stderr
    if cfg["log"]["file"]:
        try:
            stream = open(cfg["log"]["file"], "a", encoding="utf-8")  # noqa: SIM115 (lives as long as the process)
        except OSError as exc:
            return _usage(f"{args.config}: key 'log.file': cannot open {cfg['log']['file']}: {exc.strerror or exc}")
    log.setup(cfg["log"]["level"], cfg["log"]["format"], stream=stream)
    logger = log.get("load")
    load = cfg["load"]
    spec = PopulationSpec.from_config(cfg)
    try:
        spec.check()
    except ValueError as exc:
        return _usage(f"{args.config}: [subscribers]: {exc}")
    plmn = cfg["plmn"]
    try:
        plmn_id = kdf.plmn_id(plmn["mcc"] or spec.imsi_first[:3], plmn["mnc"] or spec.imsi_first[3:5])
    except ValueError as exc:
        return _usage(f"{args.config}: [plmn]: {exc}")
    rate = args.rate if args.rate is not None else load["rate_per_s"]
    seed = args.seed if args.seed is not None else load["seed"]
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 62)
    try:
        settings = RunSettings(
            endpoints=tuple(cfg["cnn"]["connect"]), spec=spec, plmn_id=plmn_id, ues=args.ues,
            scenario=args.scenario, weights=dict(cfg["mix"]),
            rate=None if (args.closed_loop or args.hold) else rate, closed_loop=None if args.hold else args.closed_loop,
            duration_s=args.duration if args.duration is not None else load["duration_s"],
            ramp_s=load["ramp_s"], timeout_s=load["timeout_s"],
            connections=args.connections or load["connections"], workers=args.workers or load["workers"],
            warmup=load["warmup"] and not args.no_warmup, warmup_concurrency=load["warmup_concurrency"],
            warmup_timeout_s=load["warmup_timeout_s"], hold=args.hold, seed=seed,
            save_state=args.state is not None,
        )
    except ValueError as exc:
        return _usage(str(exc))
    states = None
    if args.state is not None:
        try:
            states = load_states(Path(args.state), spec)
        except StateError as exc:
            return _usage(str(exc))
    cnn_pid = args.cnn_pid
    if settings.hold and cnn_pid is None:
        cnn_pid = find_listener_pid(settings.endpoints[0].port)
        if cnn_pid is None:
            print("kmed load: hold mode: the CNN's PID was not found (give --cnn-pid); memory not reported",
                  file=sys.stderr)
    logger.info("load_start", **{k: v for k, v in settings.describe().items() if k != "subscribers"})
    outcome = run_load(settings, states=states, cnn_pid=cnn_pid, progress=Progress())
    report = outcome.report
    report_path = Path(args.report)
    try:
        write_report(report_path, report)
    except OSError as exc:
        print(f"kmed load: cannot write the report {report_path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if args.state is not None and outcome.states is not None:
        try:
            save_states(Path(args.state), spec, outcome.states)
        except OSError as exc:
            print(f"kmed load: cannot write the state file {args.state}: {exc.strerror or exc}", file=sys.stderr)
    if not args.no_plot:
        plot_path = Path(args.plot) if args.plot else plot_path_for(report_path)
        try:
            write_plot(report, plot_path)
        except PlotUnavailable as exc:
            print(f"kmed load: {exc}", file=sys.stderr)
        except OSError as exc:
            print(f"kmed load: cannot write the plot {plot_path}: {exc.strerror or exc}", file=sys.stderr)
    _summary(report, sys.stdout)
    if report["error"]:
        print(f"kmed load: run failed: {report['error']}", file=sys.stderr)
    logger.info("load_end", status=report["status"], errors=report["errors"])
    return outcome.exit_status


def register(sub: Any) -> None:
    """Add ``kmed load`` to the command line."""
    p = sub.add_parser("load", help="load harness: many UEs over multiplexed UE links, JSON report and plot",
                       description="Drive simulated UEs (the provision-range population) against a CNN.")
    p.add_argument("--config", required=True, metavar="LOAD_FILE", help="load configuration (TOML)")
    p.add_argument("--ues", required=True, type=_positive_int, metavar="N",
                   help="UEs to simulate: the first N of [subscribers]")
    p.add_argument("--rate", type=_positive_float, metavar="PER_S", help="open loop: Poisson arrivals per second")
    p.add_argument("--closed-loop", type=_positive_int, metavar="N",
                   help="closed loop: N UEs each start a new procedure when the last one ends")
    p.add_argument("--duration", type=_positive_float, metavar="S", help="measured window in seconds")
    p.add_argument("--scenario", choices=SCENARIOS, default="attach", help="call model (default: attach)")
    p.add_argument("--report", required=True, metavar="FILE.json", help="write the JSON report here")
    p.add_argument("--hold", action="store_true",
                   help="attach the N UEs once, keep them registered, report the CNN's memory per held UE")
    p.add_argument("--cnn-pid", type=_positive_int, metavar="PID",
                   help="the CNN's PID for --hold (default: the process listening on the first [cnn] connect port)")
    p.add_argument("--workers", type=_positive_int, metavar="N", help="generator processes")
    p.add_argument("--connections", type=_positive_int, metavar="N", help="UE link connections in all")
    p.add_argument("--seed", type=int, metavar="INT", help="random seed of arrivals and mix")
    p.add_argument("--no-warmup", action="store_true",
                   help="no warm-up: UEs without a KME provision on their first attach (counted as attach_provision)")
    p.add_argument("--state", metavar="FILE",
                   help="load the UEs' USIM/ME state from FILE if it exists and save it there at the end (0600)")
    p.add_argument("--plot", metavar="FILE.png", help="PNG plot path (default: the report's path with .png)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the PNG plot")
    p.set_defaults(func=_run)

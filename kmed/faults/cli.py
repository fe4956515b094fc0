"""``kmed faults``: run one fault-injection proxy on loopback (docs/faults.md).

``kmed faults --link diameter|uelink --listen tcp://H:P --target tcp://H:P [--drop P]
[--duplicate P] [--reorder P] [--delay-ms MS] [--jitter-ms MS] [--reset P] [--up K=V,...]
[--down K=V,...] [--scope application|all] [--seed N] [--stats FILE]``

The fault options apply to both directions; ``--up``/``--down`` override some of them for one
direction (``up``: client → target). Signals: SIGTERM/SIGINT stop (exit 0), SIGUSR1 pauses the
faults (everything passes), SIGUSR2 resumes them (``--paused``: start paused). ``--stats FILE`` is rewritten every
``--stats-interval`` seconds and at exit with the counters (JSON). Exit status 1 when the
proxy cannot listen, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from kmed import config, log
from kmed.faults.framing import LINKS, SCOPES
from kmed.faults.policy import FaultSpec, Rates

__all__ = ["parse_overrides", "register", "spec_from_args", "write_stats"]

_RATE_OPTIONS = ("drop", "duplicate", "reorder", "reset", "delay_ms", "jitter_ms")


def _endpoint(text: str) -> config.Endpoint:
    try:
        ep = config.parse_endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {exc}") from None
    if ep.transport != "tcp":
        raise argparse.ArgumentTypeError(f"{text!r}: the fault proxy speaks tcp:// only")
    return ep


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def parse_overrides(text: str) -> dict[str, float]:
    """``drop=0.1,delay_ms=5`` -> {"drop": 0.1, "delay_ms": 5.0} (ValueError naming what is wrong)."""
    out: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in _RATE_OPTIONS:
            raise ValueError(f"{item!r}: expected NAME=VALUE with NAME one of {', '.join(_RATE_OPTIONS)}")
        try:
            out[name] = _number(value.strip())
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"{item!r}: {exc}") from None
    return out


def spec_from_args(args: argparse.Namespace) -> FaultSpec:
    """The :class:`FaultSpec` of the command line (ValueError for a bad rate)."""
    both = Rates(**{name: getattr(args, name) for name in _RATE_OPTIONS})
    up = both.with_values(**parse_overrides(args.up or ""))
    down = both.with_values(**parse_overrides(args.down or ""))
    if args.reorder_hold_ms <= 0:
        raise ValueError("--reorder-hold-ms must be positive")
    return FaultSpec(up=up, down=down, scope=args.scope, seed=args.seed, reorder_hold_s=args.reorder_hold_ms / 1000.0)


def write_stats(path: Path, stats: dict[str, Any]) -> None:
    """Replace ``path`` with ``stats`` as JSON (written aside, then renamed)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


async def _serve(args: argparse.Namespace, spec: FaultSpec) -> int:
    from kmed.faults.proxy import FaultProxy

    proxy = FaultProxy(args.link, args.listen, args.target, spec, name=args.name,
                       connect_timeout=args.connect_timeout)
    logger = log.get("faults", proxy=proxy.name)
    proxy.paused = args.paused
    try:
        await proxy.start()
    except OSError as exc:
        logger.error("faults_listen_failed", listen=str(args.listen), error=str(exc))
        return 1
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, proxy.set_paused, True)
    loop.add_signal_handler(signal.SIGUSR2, proxy.set_paused, False)
    stats_path = Path(args.stats) if args.stats else None
    try:
        while not stop.is_set():
            if stats_path is not None:
                write_stats(stats_path, proxy.stats())
            with_timeout = asyncio.wait_for(stop.wait(), args.stats_interval)
            with contextlib.suppress(TimeoutError):
                await with_timeout
    finally:
        await proxy.close()
        if stats_path is not None:
            write_stats(stats_path, proxy.stats())
        logger.info("faults_stopped", **{d: proxy.counters[d].as_dict() for d in ("up", "down")})
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        spec = spec_from_args(args)
    except ValueError as exc:
        print(f"kmed faults: {exc}", file=sys.stderr)
        return 2
    log.setup(args.log_level, args.log_format)
    from kmed.diameter.transport import install_uvloop

    install_uvloop()
    return asyncio.run(_serve(args, spec))


def register(sub: Any) -> None:
    """Add ``kmed faults`` to the command line."""
    p = sub.add_parser("faults", help="fault-injection proxy: drop, delay, duplicate, reorder whole messages",
                       description="Proxy one Diameter or UE link on loopback, faulting whole messages at "
                                   "configured rates (docs/faults.md).")
    p.add_argument("--link", required=True, choices=LINKS, help="how messages are framed")
    p.add_argument("--listen", required=True, type=_endpoint, metavar="tcp://HOST:PORT")
    p.add_argument("--target", required=True, type=_endpoint, metavar="tcp://HOST:PORT")
    g = p.add_argument_group("faults (both directions; probabilities per message)")
    g.add_argument("--drop", type=_number, default=0.0, metavar="P", help="drop a message")
    g.add_argument("--duplicate", type=_number, default=0.0, metavar="P", help="forward a message twice")
    g.add_argument("--reorder", type=_number, default=0.0, metavar="P",
                   help="hold a message and release it after the next one")
    g.add_argument("--reset", type=_number, default=0.0, metavar="P", help="abort the connection (RST) on a message")
    g.add_argument("--delay-ms", dest="delay_ms", type=_number, default=0.0, metavar="MS", help="fixed delay")
    g.add_argument("--jitter-ms", dest="jitter_ms", type=_number, default=0.0, metavar="MS",
                   help="extra delay, uniform in [0, MS] (order kept)")
    g.add_argument("--up", metavar="K=V,...", help="overrides for client -> target, e.g. drop=0.1,delay_ms=5")
    g.add_argument("--down", metavar="K=V,...", help="overrides for target -> client")
    g.add_argument("--scope", choices=SCOPES, default="application",
                   help="application: S6a messages and NAS frames only (default); all: every message")
    g.add_argument("--seed", type=int, default=0, help="RNG seed (default 0)")
    g.add_argument("--reorder-hold-ms", dest="reorder_hold_ms", type=_number, default=200.0, metavar="MS",
                   help="release a held message after this long if no other comes (default 200)")
    p.add_argument("--paused", action="store_true", help="start with the faults off (SIGUSR2 turns them on)")
    p.add_argument("--name", help="name in logs and stats (default: the link)")
    p.add_argument("--connect-timeout", type=_number, default=5.0, metavar="S", help="to the target (default 5)")
    p.add_argument("--stats", metavar="FILE.json", help="write the counters here (periodically and at exit)")
    p.add_argument("--stats-interval", type=_number, default=1.0, metavar="S", help="default 1")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    p.add_argument("--log-format", choices=("json", "console"), default="json")
    p.set_defaults(func=_run)

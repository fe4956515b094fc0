"""``kmed bench NAME``: the project's benchmarks, each printing its figures.

A benchmark is a module ``kmed.bench.<name>`` with ``main(argv) -> int``; ``tools/bench/``
holds thin wrappers so they also run as scripts.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

#: Benchmark name -> module; ``all`` runs them in this order.
BENCHMARKS: dict[str, str] = {
    "diameter-codec": "kmed.bench.diameter_codec",
    "diameter": "kmed.bench.diameter",
    "crypto": "kmed.bench.crypto",
    "hss": "kmed.bench.hss",
    "load": "kmed.bench.load",
    "faults": "kmed.bench.faults",
    "overload": "kmed.bench.overload",
}


def _run(args: argparse.Namespace) -> int:
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    status = 0
    for name in names:
        module: Any = importlib.import_module(BENCHMARKS[name])
        status = max(status, int(module.main(list(args.args))))
    return status


def register(sub: Any) -> None:
    """Add ``kmed bench`` to the command line."""
    p = sub.add_parser("bench", help="run a benchmark and print its figures")
    p.add_argument("name", choices=[*BENCHMARKS, "all"], help="which benchmark")
    p.add_argument("args", nargs=argparse.REMAINDER, help="options passed to the benchmark")
    p.set_defaults(func=_run)

"""The ``kmed`` command line (CONTRACT: Commands).

Each command lives in the module that owns it; that module exposes
``register(subparsers)`` which adds its sub-parser and sets ``func`` (returning the exit
status: 0 success, 1 refused or failed, 2 usage or configuration error).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kmed import __version__

#: Modules that register sub-commands, in the order ``kmed --help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "kmed.hss.cli",
    "kmed.cnn.cli",
    "kmed.ue.cli",
    "kmed.load.cli",
    "kmed.demo",
    "kmed.bench",
    "kmed.faults.cli",
    "kmed.configcheck",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="kmed",
        description="USIM-to-device binding with a device key KME: HSS, CNN, UE and load tools.",
    )
    parser.add_argument("--version", action="version", version=f"kmed {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""Command-line registration of ``kmed cnn --config FILE`` (CONTRACT: Commands)."""

from __future__ import annotations

import argparse
from typing import Any


def _run_cnn(args: argparse.Namespace) -> int:
    from kmed.cnn.daemon import main  # asyncio and the Diameter stack only for the daemon

    return main(args.config)


def register(sub: Any) -> None:
    """Add ``cnn`` to the ``kmed`` command line."""
    p = sub.add_parser("cnn", help="run the CNN (MME-like node: UE link + S6a client) in the foreground")
    p.add_argument("--config", required=True, metavar="FILE", help="CNN configuration (TOML)")
    p.set_defaults(func=_run_cnn)

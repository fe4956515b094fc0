"""Command-line registration of the HSS commands: ``kmed hss``, ``kmed admin``, ``kmed keys``."""

from __future__ import annotations

import argparse
from typing import Any

from kmed.hss.admin import register_admin, register_keys


def _run_hss(args: argparse.Namespace) -> int:
    from kmed.hss.daemon import main  # asyncio and the Diameter stack only for the daemon

    return main(args.config)


def register(sub: Any) -> None:
    """Add ``hss``, ``admin`` and ``keys`` to the ``kmed`` command line."""
    p = sub.add_parser("hss", help="run the HSS (S6a over Diameter) in the foreground")
    p.add_argument("--config", required=True, metavar="FILE", help="HSS configuration (TOML)")
    p.set_defaults(func=_run_hss)
    register_admin(sub)
    register_keys(sub)

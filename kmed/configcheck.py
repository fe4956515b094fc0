"""``kmed config check FILE [--kind hss|cnn|ue|load]``: validate a configuration file.

Runs exactly the validation a daemon runs at start (:func:`kmed.config.load` with the
kind's schema), so a file that passes here is accepted by ``kmed hss``/``kmed cnn``.
Exit status 0 when valid, 2 with the :class:`~kmed.config.ConfigError` (file, key, what was
expected, what was found) otherwise (CONTRACT: Commands).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kmed import config


def check(path: str, kind: str | None = None) -> str:
    """Validate ``path`` as ``kind`` (detected from its sections when None); return the kind.

    Raises :class:`kmed.config.ConfigError`.
    """
    if kind is None:
        kind = config.detect_kind(config.read(path))
    config.load(path, config.SCHEMAS[kind])
    return kind


def _run(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        try:
            kind = check(path, args.kind)
        except config.ConfigError as exc:
            print(exc, file=sys.stderr)
            if args.kind is None and exc.key not in ("(file)", "(syntax)"):
                guessed = config.detect_kind(config.read(path))
                print(
                    f"{path}: checked as kind {guessed!r}, guessed from its sections (choose with --kind)",
                    file=sys.stderr,
                )
            status = 2
            continue
        print(f"{path}: ok ({kind})")
    return status


def _usage(parser: argparse.ArgumentParser) -> Any:
    def run(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return run


def register(sub: Any) -> None:
    """Add ``kmed config check`` to the command line (see :mod:`kmed.cli`)."""
    parser = sub.add_parser("config", help="configuration files: check them")
    parser.set_defaults(func=_usage(parser))
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION")
    chk = actions.add_parser(
        "check",
        help="validate files as the daemons do at start (exit 0 if all are valid, 2 otherwise)",
        description="Validate configuration files with the same schema and checks the daemons use.",
    )
    chk.add_argument("files", nargs="+", metavar="FILE", help="TOML configuration file")
    chk.add_argument(
        "--kind",
        choices=sorted(config.SCHEMAS),
        help="the schema to check against (default: guessed from the file's sections)",
    )
    chk.set_defaults(func=_run)

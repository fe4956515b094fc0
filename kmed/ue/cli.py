"""``kmed ue --config FILE attach|tau|show`` (CONTRACT: Commands).

``attach`` and ``tau`` print exactly one JSON line on stdout:

- ``result``: ``accepted``; ``rejected`` (the network refused: Attach/TAU Reject with
  ``emm_cause``, or Authentication Reject with ``emm_cause`` null); ``failed`` (no outcome from
  the network: connection refused, link lost, timeout, protocol failure; ``error`` says which);
- ``emm_cause`` (int or null), ``kme_provisioned`` (bool), ``kme_fingerprint`` (hex SHA-256 of
  the KME the ME holds now, or null), ``imsi``, ``imei``;
- also ``procedure``, ``error``, ``attempts``, ``guti`` (hex EPS mobile identity value or null),
  ``duration_ms`` and ``messages`` (the NAS flow as the UE saw it).

Exit status: 0 accepted, 1 rejected or failed, 2 configuration error (file and key named on
stderr) or unusable state file. Logs (JSON lines, seed ``step`` on each) go to stderr.

``show`` prints the USIM and ME state as one JSON object: fingerprints, never K, OPc or a KME.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any, TextIO

import orjson

from kmed import config, log
from kmed.crypto import kme
from kmed.ue.client import load_ue, run_once
from kmed.ue.procedure import ATTACH, TAU
from kmed.ue.state import StateError

__all__ = ["register"]


def _print(obj: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()


def _setup_log(cfg: dict[str, dict[str, Any]], path: str) -> None:
    """Logs to stderr, or appended to ``[log] file`` (stdout carries only the result line)."""
    stream: TextIO = sys.stderr
    if cfg["log"]["file"]:
        try:
            stream = open(cfg["log"]["file"], "a", encoding="utf-8")  # noqa: SIM115 (lives as long as the process)
        except OSError as exc:
            raise config.ConfigError(path, "log.file", "a writable file", exc.strerror or str(exc)) from None
    log.setup(cfg["log"]["level"], cfg["log"]["format"], stream=stream)


def _show(cfg: dict[str, dict[str, Any]], path: str) -> int:
    usim, me = load_ue(cfg, path, persist=False, revert_pending=False)
    s, m = usim.state, me.state
    _print({
        "imsi": usim.imsi,
        "imei": me.imei,
        "imeisv": me.imeisv,
        "profile": me.profile,
        "state_dir": cfg[""]["state_dir"],
        "usim": {
            "ind_bits": usim.ind_bits,
            "sqn_ms": s.sqn_ms,
            "guti": s.guti.hex() if s.guti is not None else None,
            "last_tai": s.last_tai.hex() if s.last_tai is not None else None,
        },
        "me": {
            "kme_fingerprint": me.current_fingerprint(),
            "kme_imsi": m.kme_imsi,
            "pending_kme_fingerprint": kme.fingerprint(m.pending_kme) if m.pending_kme is not None else None,
        },
    })
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        cfg = config.load(args.config, config.UE_SCHEMA)
        _setup_log(cfg, args.config)
        if args.action == "show":
            return _show(cfg, args.config)
        usim, me = load_ue(cfg, args.config)
    except config.ConfigError as exc:
        print(f"kmed ue: {exc}", file=sys.stderr)
        return 2
    except StateError as exc:
        print(f"kmed ue: {exc}", file=sys.stderr)
        return 2
    logger = log.get("ue", imsi=usim.imsi, imei=me.imei)
    start = time.monotonic()
    try:
        outcome = asyncio.run(run_once(cfg, usim, me, args.action, logger))
    except OSError as exc:  # a state file could not be written mid-procedure
        print(f"kmed ue: cannot write UE state: {exc.strerror or exc}", file=sys.stderr)
        return 1
    result = outcome.as_dict()
    result["duration_ms"] = round((time.monotonic() - start) * 1000, 1)
    _print(result)
    return 0 if outcome.result == "accepted" else 1


def register(sub: Any) -> None:
    """Add ``kmed ue`` to the command line."""
    p = sub.add_parser("ue", help="a UE (USIM + ME): attach, TAU, show state")
    p.add_argument("--config", required=True, metavar="FILE", help="UE configuration (TOML)")
    p.add_argument(
        "action", choices=[ATTACH, TAU, "show"],
        help="attach: attach once, then go idle; tau: tracking area update; show: the state (fingerprints only)",
    )
    p.set_defaults(func=_run)

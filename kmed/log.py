"""Structured logging (structlog): JSON lines for journald, or console lines for a person.

Bind once per procedure (``imsi``, ``ue_id``) and log one event per seed step. Secrets never
reach the output: :func:`redact_secrets` drops any field whose name is a secret's (K, OPc,
KME, CK/IK, KASME, private keys) whatever a caller passes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
import structlog

#: Field names that must never be logged; values under these keys are removed.
SECRET_FIELDS: frozenset[str] = frozenset(
    {
        "k", "opc", "op", "kme", "new_kme", "kasme", "k_asme", "kasme_prime", "ck", "ik",
        "k_nas_int", "k_nas_enc", "private_key", "priv", "secret", "token_key", "xres", "res",
    }
)


def redact_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: drop secret fields (names in :data:`SECRET_FIELDS`)."""
    for name in [n for n in event if n.lower() in SECRET_FIELDS]:
        del event[name]
    return event


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def setup(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Configure structlog for the process; call once at daemon start (and on SIGHUP)."""
    lvl = getattr(logging, level.upper(), logging.INFO)
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get(name: str, **bound: Any) -> Any:
    """A bound logger for a component (``hss``, ``cnn``, ...)."""
    return structlog.get_logger(component=name, **bound)

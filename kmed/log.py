"""Structured logging (structlog): JSON lines for journald, or console lines for a person.

Bind once per procedure (``imsi``, ``ue_id``) and log one event per seed step. Secrets never
reach the output: :func:`redact_secrets` drops any field whose name is a secret's (K, OPc,
KME, CK/IK, KASME, private keys) whatever a caller passes.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO, cast

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


class LogFile(io.TextIOBase):
    """``[log] file``, appended to, that :meth:`reopen` points at the same (or a new) path.

    Log rotation (logrotate's default ``create`` mode) renames the file, then reloads the
    daemon (SIGHUP); the daemon reopens the path and new lines go to the new file. Loggers
    bound before the reopen hold this object, not the file, so their lines follow too.
    """

    def __init__(self, path: str | Path, buffering: int = 1) -> None:
        super().__init__()
        self.path = Path(path)
        self._buffering = buffering
        self._lock = threading.Lock()
        self._file: TextIO = self._open(self.path)

    def _open(self, path: Path) -> TextIO:
        return open(path, "a", encoding="utf-8", buffering=self._buffering)

    def reopen(self, path: str | Path | None = None) -> None:
        """Open ``path`` (default: the same path) and switch to it; the previous file is closed.

        Raises OSError (and keeps writing to the previous file) when the new one cannot be opened.
        """
        target = self.path if path is None else Path(path)
        new = self._open(target)
        with self._lock:
            old, self._file, self.path = self._file, new, target
        old.close()

    def write(self, s: str) -> int:
        with self._lock:
            return self._file.write(s)

    def flush(self) -> None:
        with self._lock:
            self._file.flush()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        if self.closed:
            return
        super().close()  # flushes first
        with self._lock:
            self._file.close()


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def setup(level: str = "info", fmt: str = "json", stream: TextIO | io.TextIOBase | None = None) -> None:
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
        # PrintLogger only calls write() and flush(): a TextIOBase stream (LogFile) is enough.
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, stream or sys.stderr)),
        cache_logger_on_first_use=False,
    )


def get(name: str, **bound: Any) -> Any:
    """A bound logger for a component (``hss``, ``cnn``, ...)."""
    return structlog.get_logger(component=name, **bound)

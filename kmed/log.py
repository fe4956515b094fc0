"""Structured logging (structlog): JSON lines for journald, or console lines for a person.

Bind once per procedure (``imsi``, ``ue_id``) and log one event per seed step. Secrets never
reach the output: :func:`redact_secrets` drops any field whose name is a secret's (K, OPc,
KME, CK/IK, KASME, private keys) whatever a caller passes.
"""

from __future__ import annotations

import datetime
import io
import logging
import sys
import threading
import time
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


#: Event-dict keys known not to be secrets (grows as keys are seen; bounded).
_SAFE_KEYS: set[str] = set()
_SAFE_KEYS_MAX = 4096
#: ``add_log_level``'s names for the methods that are not levels themselves.
_LEVEL_OF = {"warn": "warning", "exception": "error", "failure": "error", "err": "error", "fatal": "critical"}


def _drop_secrets(event: MutableMapping[str, Any]) -> None:
    """Delete secret fields (:data:`SECRET_FIELDS`, any case); keys seen safe before cost one
    set operation for the whole event."""
    if _SAFE_KEYS.issuperset(event):
        return
    for name in [n for n in event if n not in _SAFE_KEYS]:
        if name.lower() in SECRET_FIELDS:
            del event[name]
        elif len(_SAFE_KEYS) < _SAFE_KEYS_MAX:
            _SAFE_KEYS.add(name)


class _Clock:
    """ISO 8601 UTC timestamps (``2026-01-02T03:04:05.678Z``) to the millisecond, each
    formatted once: the lines of one millisecond share it."""

    __slots__ = ("_ms", "_second", "_seconds_text", "_text")

    def __init__(self) -> None:
        self._ms = self._second = -1
        self._seconds_text = self._text = ""

    def now(self) -> str:
        ms = int(time.time() * 1000)
        if ms != self._ms:
            second, frac = divmod(ms, 1000)
            if second != self._second:
                when = datetime.datetime.fromtimestamp(second, datetime.UTC)
                self._seconds_text, self._second = when.strftime("%Y-%m-%dT%H:%M:%S"), second
            self._text, self._ms = f"{self._seconds_text}.{frac:03d}Z", ms
        return self._text


_clock = _Clock()


def render_json(_logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
    """structlog processor doing, in one call, what ``add_log_level``, ``TimeStamper(fmt="iso",
    utc=True)`` (to the millisecond), :func:`redact_secrets` and ``JSONRenderer`` (orjson) do in
    four: one JSON line."""
    event["level"] = _LEVEL_OF.get(method, method)
    event["timestamp"] = _clock.now()
    _drop_secrets(event)
    return orjson.dumps(event, default=str).decode()


class LineLogger:
    """structlog's logger for :func:`setup`: writes each rendered line with one ``write`` and
    asks the stream to ``flush`` (a :class:`kmed.hss.logstream.LoopFlushedStream` defers it to
    the end of the event-loop iteration). Lines from several threads do not interleave."""

    def __init__(self, file: TextIO | io.TextIOBase) -> None:
        self._file = file
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            self._file.write(message + "\n")
            self._file.flush()

    debug = info = warning = warn = error = err = critical = fatal = exception = failure = log = msg


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
           "critical": logging.CRITICAL}
_ALIASES = {"warn": "warning", "fatal": "critical", "msg": "info"}


def _line_method(name: str) -> Any:
    """A log method going straight to the processors and the logger (structlog's passes the
    keywords on three times and checks the renderer's result type per call)."""

    def meth(self: Any, event: str, *args: Any, **kw: Any) -> Any:
        ev = self._context.copy()
        ev.update(kw)
        if args:  # %-interpolation as structlog does it
            event = event % (args[0] if len(args) == 1 and isinstance(args[0], dict) else args)
        ev["event"] = event
        try:
            for proc in self._processors:
                ev = proc(self._logger, name, ev)
        except structlog.DropEvent:
            return None
        return self._logger.msg(ev)

    meth.__name__ = name
    return meth


def _wrapper_class(level: int) -> type[Any]:
    """structlog's filtering bound logger for ``level`` with the enabled methods replaced by
    :func:`_line_method` (for a processor chain ending in a renderer, as :func:`setup` makes)."""
    base = structlog.make_filtering_bound_logger(level)
    methods = {name: _line_method(name) for name, lvl in _LEVELS.items() if lvl >= level}
    methods.update({alias: methods[name] for alias, name in _ALIASES.items() if name in methods})
    return type(f"{base.__name__}Lines", (base,), methods)


def setup(level: str = "info", fmt: str = "json", stream: TextIO | io.TextIOBase | None = None) -> None:
    """Configure structlog for the process; call once at daemon start (and on SIGHUP).

    ``json``: one processor (:func:`render_json`), a :class:`LineLogger` and lean log methods:
    about half the cost of structlog's usual chain per line (daemons log per request).
    ``console``: structlog's chain and console renderer."""
    lvl = getattr(logging, level.upper(), logging.INFO)
    out = cast(TextIO, stream or sys.stderr)
    if fmt == "console":
        processors: list[Any] = [
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.dev.ConsoleRenderer(colors=False),
        ]
        factory: Any = structlog.PrintLoggerFactory(file=out)
        wrapper: type[Any] = structlog.make_filtering_bound_logger(lvl)
    else:
        processors = [render_json]
        logger = LineLogger(out)
        factory = lambda *_args: logger  # noqa: E731 (one logger per stream)
        wrapper = _wrapper_class(lvl)
    structlog.configure(
        processors=processors,
        wrapper_class=wrapper,
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )


def get(name: str, **bound: Any) -> Any:
    """A bound logger for a component (``hss``, ``cnn``, ...)."""
    return structlog.get_logger(component=name, **bound)

"""Atomic, private persistence of the UE's state files (USIM state, ME state).

A state file is one JSON object. :func:`write_atomic` writes it so that a crash at any point
leaves either the old file or the new one, never a torn one: write to a temporary file in the
same directory, ``fsync`` it, ``os.replace`` it over the target, then ``fsync`` the directory
so that the rename itself is durable (POSIX rename atomicity; the directory fsync is what
makes it survive power loss on ext4/xfs). Files are mode 0600 and directories 0700: the ME
state holds the KME.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["DIR_MODE", "FILE_MODE", "StateError", "ensure_dir", "hex_field", "read_state", "write_atomic"]

FILE_MODE = 0o600
DIR_MODE = 0o700


class StateError(Exception):
    """A state file exists but cannot be read or is not what kmed wrote (names the file, never its content)."""


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) if needed; a directory kmed creates is mode 0700."""
    if not directory.is_dir():
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


def write_atomic(path: Path, obj: dict[str, Any]) -> None:
    """Replace ``path`` with the JSON encoding of ``obj``, atomically and durably, mode 0600."""
    ensure_dir(path.parent)
    data = json.dumps(obj, sort_keys=True, indent=1).encode() + b"\n"
    # mkstemp creates the file O_EXCL with mode 0600 (whatever the umask).
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def read_state(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file does not exist; :class:`StateError`
    when it exists but is unreadable or not a JSON object."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: cannot read state file: {exc.strerror or exc}") from None
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise StateError(f"{path}: state file is not valid JSON") from None
    if not isinstance(obj, dict):
        raise StateError(f"{path}: state file must hold a JSON object")
    return obj


def hex_field(path: Path, obj: dict[str, Any], name: str, length: int | None) -> bytes | None:
    """``obj[name]`` as bytes from hex (None when absent or null); :class:`StateError` naming the
    file and field (not the value) when it is malformed."""
    value = obj.get(name)
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        data = bytes.fromhex(value)
    except ValueError:
        raise StateError(f"{path}: field '{name}' must be hexadecimal") from None
    if length is not None and len(data) != length:
        raise StateError(f"{path}: field '{name}' must be {length} octets, found {len(data)}")
    return data

"""Files that hold secrets: created mode 0600 (owner only), never wider.

The store (K, OPc, KME), the ULR token key and device private keys live in such files.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

SECRET_MODE = 0o600


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Within the block, files and directories are created for the owner only (umask 077).

    SQLite creates ``-wal`` and ``-shm`` beside the database lazily; it gives them the
    database file's mode, and this umask covers the first creation.
    """
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def tighten(path: Path) -> None:
    """Make an existing ``path`` owner-only if group or others have any access.

    By path (chmod), never by opening the file: closing any descriptor of a file drops every
    POSIX lock this process holds on it, which would break SQLite's locking of a database
    another connection of this process has open.
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(path, mode & 0o700)


def write_private(path: Path, data: bytes, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600 (replacing an existing file unless
    ``exclusive``, in which case FileExistsError)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
    with private_umask():
        fd = os.open(path, flags, SECRET_MODE)
    try:
        os.fchmod(fd, SECRET_MODE)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_or_create_key(path: Path, length: int = 32) -> bytes:
    """The ``length``-octet random key in ``path``, created (0600) at first use.

    Raises ValueError when the file exists with another size (it is not ours, or damaged).
    """
    with private_umask():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        # Written aside then hard-linked into place: a crash never leaves a short key file,
        # and of two processes racing to create it, one wins and both read the same key.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        write_private(tmp, secrets.token_bytes(length))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    tighten(path)
    data = path.read_bytes()
    if len(data) != length:
        raise ValueError(f"{path}: expected a {length}-octet key, found {len(data)} octets")
    return data

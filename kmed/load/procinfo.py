"""What the hold mode reads about the CNN process: its resident memory and its PID (Linux /proc).

``VmRSS`` of /proc/PID/status (proc(5)) is the process's resident set in KiB. The PID is given
(``--cnn-pid``) or found as the process holding the listening TCP socket of the CNN's UE link:
the socket's inode in /proc/net/tcp{,6} (state 0A = LISTEN), then the process whose /proc/PID/fd
links to ``socket:[inode]``. Both need the CNN on this machine, which a loopback lab is.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["find_listener_pid", "rss_kib"]

_PROC = Path("/proc")
_LISTEN = "0A"


def rss_kib(pid: int) -> int | None:
    """Resident set size of ``pid`` in KiB, or None when the process is gone or unreadable."""
    try:
        text = (_PROC / str(pid) / "status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1])
    return None


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text(encoding="ascii", errors="replace").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            local_port = fields[1].rsplit(":", 1)[-1]
            with contextlib.suppress(ValueError):
                if int(local_port, 16) == port:
                    inodes.add(fields[9])
    return inodes


def find_listener_pid(port: int) -> int | None:
    """The PID of the process listening on TCP ``port`` on this machine, or None."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{i}]" for i in inodes}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in targets:
                    return int(entry.name)
            except OSError:
                continue
    return None

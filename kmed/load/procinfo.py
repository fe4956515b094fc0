"""What the load harness and the benchmarks read about processes (Linux /proc): the CNN's
resident memory and PID for the hold mode, and the CPU time of a daemon with its child
processes (the HSS's store writer) for the CPU-per-procedure figures.

``VmRSS`` of /proc/PID/status (proc(5)) is the process's resident set in KiB. The PID is given
(``--cnn-pid``) or found as the process holding the listening TCP socket of the CNN's UE link:
the socket's inode in /proc/net/tcp{,6} (state 0A = LISTEN), then the process whose /proc/PID/fd
links to ``socket:[inode]``. Both need the CNN on this machine, which a loopback lab is.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["children", "find_listener_pid", "rss_kib", "tree_cpu_s"]

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


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (field 3 onwards, proc(5))."""
    return (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    out = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    out.append(int(entry.name))
    return sorted(out)


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int, kids: list[int] | None = None) -> float:
    """utime + stime of ``pid`` and of its live children (``kids``, read from /proc when not
    given), seconds (fields 14 and 15 of /proc/PID/stat); a process that is gone counts 0."""
    total = 0.0
    for p in [pid, *(children(pid) if kids is None else kids)]:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(p)
            total += (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return total

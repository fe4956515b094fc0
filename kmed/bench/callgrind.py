"""Instruction counts of a benchmark's server process with valgrind's callgrind.

Throughput and CPU time on a shared machine move with the other jobs; the number of
instructions a process executes per request does not (to within a percent or so). The
benchmarks start their server under ``valgrind --tool=callgrind`` (about 50 times slower),
zero the counters after the warm-up (``callgrind_control -z``) and dump them after the
measured requests (``callgrind_control -d``): the dump's total over the request count is the
figure. Only user-space instructions of the process (all threads) are counted; system calls
are not.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


class CallgrindError(RuntimeError):
    """valgrind or callgrind_control is missing, or a dump could not be read."""


class Callgrind:
    """Counters of one process started with :meth:`prefix` (see the module doc)."""

    def __init__(self) -> None:
        if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
            raise CallgrindError("--callgrind needs valgrind and callgrind_control on PATH")
        self.dir = Path(tempfile.mkdtemp(prefix="kmed-callgrind-"))
        self.pid: int | None = None

    def prefix(self) -> list[str]:
        """The command prefix that runs a program under callgrind (no per-instruction data)."""
        return ["valgrind", "-q", "--tool=callgrind", "--dump-instr=no", "--compress-strings=no",
                f"--callgrind-out-file={self.dir}/cg.%p"]

    def _control(self, option: str) -> None:
        if self.pid is None:
            raise CallgrindError("the process id is not known yet")
        done = subprocess.run(["callgrind_control", option, str(self.pid)], capture_output=True, text=True,
                              timeout=120, check=False)
        if done.returncode != 0:
            raise CallgrindError(f"callgrind_control {option} failed: {done.stderr.strip() or done.stdout.strip()}")

    def zero(self) -> None:
        """Start counting from now."""
        self._control("-z")

    def dump(self) -> int:
        """Instructions executed since the last :meth:`zero` (or dump)."""
        before = set(self.dir.glob(f"cg.{self.pid}.*"))
        self._control("-d")
        new = sorted(set(self.dir.glob(f"cg.{self.pid}.*")) - before, key=lambda p: p.stat().st_mtime)
        if not new:
            raise CallgrindError("callgrind wrote no dump")
        for line in new[-1].read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
        raise CallgrindError(f"no totals in {new[-1]}")

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

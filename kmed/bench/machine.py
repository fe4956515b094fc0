"""What a benchmark prints about the machine and the code it measures."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def code_origin() -> str:
    """Which kmed the benchmark runs, and so its servers (same interpreter, working directory
    and PYTHONPATH): the package's directory and, in a git checkout, its commit. ``python -m``
    puts the working directory first on the path, so an A/B run with PYTHONPATH pointing at
    another checkout, started from this one, would measure this one twice."""
    import kmed

    where = Path(kmed.__file__).resolve().parent
    try:
        done = subprocess.run(["git", "-C", str(where), "describe", "--always", "--dirty", "--exclude=*"],
                              capture_output=True, text=True, timeout=10, check=False)
        commit = done.stdout.strip() if done.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{where}" + (f" (git {commit})" if commit else "")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, or "?" where the system has none."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"

"""The CNN's memory and PID from /proc, and the progress line."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys

from kmed.load.procinfo import find_listener_pid, rss_kib
from kmed.load.progress import Progress

_LISTENER = """
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


def test_rss_of_this_process_and_of_none() -> None:
    rss = rss_kib(os.getpid())
    assert rss is not None and rss > 1000  # a Python interpreter is more than 1 MiB
    ballast = bytearray(64 * 1024 * 1024)
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])  # touch every page
    grown = rss_kib(os.getpid())
    assert grown is not None and grown - rss >= 60 * 1024
    del ballast
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert rss_kib(dead.pid) is None


def test_find_listener_pid() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _LISTENER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        assert find_listener_pid(port) == proc.pid
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
    with socket.socket() as s:  # a port nobody listens on (bound, not listening)
        s.bind(("127.0.0.1", 0))
        assert find_listener_pid(s.getsockname()[1]) is None


def test_progress_line_and_terminal_only() -> None:
    line = Progress.line({"phase": "run", "elapsed_s": 3.2, "duration_s": 10, "ok": 1234, "failed": 5,
                          "in_flight": 17, "rate_per_s": 402.5, "p99_ms": 87.25})
    for part in ("run", "3.2/10 s", "1234", "5", "17", "402.5/s", "87.2 ms"):
        assert part in line
    assert "-" in Progress.line({"phase": "warmup", "elapsed_s": 1.0})
    out = io.StringIO()  # not a terminal: nothing written
    p = Progress(out)
    p.update({"phase": "run", "elapsed_s": 1.0})
    p.close()
    assert out.getvalue() == ""
    forced = io.StringIO()
    p = Progress(forced, enabled=True)
    p.update({"phase": "run", "elapsed_s": 1.0, "ok": 7})
    p.close()
    assert "7" in forced.getvalue()

"""``kmed bench hss`` end to end, CI-sized: the real HSS, every answer checked, the figures and
the code measured printed (no timing is asserted)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import kmed
from kmed.bench.machine import code_origin
from tests.hss.proc import kmed as run_kmed

pytestmark = pytest.mark.timeout(300)


def test_bench_hss_small_run_prints_its_figures() -> None:
    done = run_kmed("bench", "hss", "--subscribers", "50", "--requests", "400", "--warmup", "50",
                    "--inflight", "16", timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert re.search(r"400 answers in [\d.]+ s = [\d,]+ per s; failed 0", out), out
    assert re.search(r"latency p50 [\d.]+ ms, p99 [\d.]+ ms", out), out
    assert "HSS exit status 0" in out and "thread child" in out, out
    assert f"code {Path(kmed.__file__).resolve().parent}" in out, out


def test_code_origin_names_the_package_and_its_commit() -> None:
    origin = code_origin()
    here = Path(kmed.__file__).resolve().parent
    assert origin.startswith(str(here))
    if shutil.which("git") and (here.parent / ".git").exists():
        assert re.search(r"\(git [0-9a-f]{7,}(-dirty)?\)$", origin), origin

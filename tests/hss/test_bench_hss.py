"""``kmed bench hss`` end to end, CI-sized: the real HSS, every answer checked, the figures and
the code measured printed (no timing is asserted)."""

from __future__ import annotations

import re
import shutil
import subprocess
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


def test_bench_hss_compare_alternates_two_hss_and_prints_the_ratio() -> None:
    done = run_kmed("bench", "hss", "--subscribers", "60", "--compare", "30", "--requests", "400", "--rounds", "4",
                    "--warmup", "0", "--inflight", "8", "--settle", "0.1", timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "4 rounds of 100 requests per HSS" in out, out
    for n in ("60", "30"):
        assert re.search(rf"  {n} subscribers: [\d,]+ answers per s; latency p50 [\d.]+ ms, p99 [\d.]+ ms; failed 0; "
                         r"HSS CPU [\d.]+ µs per request, its event loop [\d.]+ µs", out), out
    assert len(re.findall(r"    rounds: [\d,]+ / [\d,]+ / [\d,]+ / [\d,]+\n", out)) == 2, out
    assert re.search(r"60 subscribers at [\d.]+ % of the rate with 30 \(round by round: median [\d.]+ %", out), out


@pytest.mark.parametrize("args", [
    ["--compare", "10", "--rounds", "0"],
    ["--compare", "10", "--rounds", "5", "--requests", "4"],
    ["--compare", "0"],
    ["--compare", "10", "--callgrind"],
    ["--inflight", "0"],
])
def test_bench_hss_refuses_what_it_cannot_measure(args: list[str]) -> None:
    done = run_kmed("bench", "hss", "--subscribers", "20", *args, timeout=60)
    assert done.returncode == 2 and "error:" in done.stderr, (done.stdout, done.stderr)


def test_code_origin_names_the_package_and_its_commit() -> None:
    origin = code_origin()
    here = Path(kmed.__file__).resolve().parent
    assert origin.startswith(str(here))
    git = shutil.which("git")
    head = subprocess.run([git, "-C", str(here), "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True,
                          check=False) if git else None
    if head is not None and head.returncode == 0:
        assert re.search(rf"\(git {head.stdout.strip()}[0-9a-f]*(-dirty)?\)$", origin), origin
    else:  # not a checkout, no git, or a checkout git refuses to read (another owner)
        assert "(git" not in origin

"""The crypto benchmark runs and prints one line per case (no timing is asserted)."""

from __future__ import annotations

import pytest

from kmed.bench import BENCHMARKS
from kmed.bench import crypto as bench


def test_bench_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert BENCHMARKS["crypto"] == "kmed.bench.crypto"
    assert bench.main(["--iterations", "2", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for name in ("EPS vector", "KME_Check", "EIA2", "ECIES profile A encrypt", "ECIES profile B decrypt", "KDF"):
        assert name in out
    assert sum(line.rstrip().endswith(" /s") for line in out.splitlines()) == len(bench._cases())


def test_bench_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(["--iterations", "0"])
    assert exc.value.code == 2

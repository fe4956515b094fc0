"""Histogram percentiles against a sorted reference, merging, the recorder's series."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.load.stats import SUB_BITS, Histogram, ProcedureStats, Recorder, _highest, _index, percentile_rank

REL = 2.0 ** -(SUB_BITS - 1)  # the histogram's relative precision


def reference(values: list[int], p: float) -> int:
    """Nearest-rank percentile of a sorted copy: the k-th smallest, k = ceil(p/100 · n)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100.0 * len(ordered))) - 1]


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.integers(0, 10**9), min_size=1, max_size=300),
       p=st.sampled_from([0.0, 1.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0]))
def test_percentile_within_precision_of_sorted_reference(values: list[int], p: float) -> None:
    h = Histogram.of(values)
    ref = reference(values, p)
    got = h.value_at(p)
    assert got is not None
    assert ref <= got <= max(ref, int(ref * (1 + REL)))
    assert got <= max(values)


def test_percentiles_of_latency_like_sample() -> None:
    rng = random.Random(11)
    values = [int(rng.lognormvariate(9.5, 0.8)) for _ in range(50000)]  # µs, around 13 ms
    h = Histogram.of(values)
    for p in (50.0, 95.0, 99.0, 99.99):
        ref = reference(values, p)
        assert ref <= h.value_at(p) <= ref * (1 + REL)  # type: ignore[operator]
    assert h.max == max(values)
    assert h.min == min(values)
    assert h.total == len(values)
    assert h.mean() == pytest.approx(sum(values) / len(values))


@settings(max_examples=300, deadline=None)
@given(v=st.integers(0, 2**62))
def test_bucket_bounds(v: int) -> None:
    i = _index(v)
    top = _highest(i)
    assert v <= top
    assert top - v <= v * REL
    assert _index(top) == i
    assert _index(top + 1) == i + 1  # buckets are contiguous


def test_small_values_exact() -> None:
    h = Histogram.of(range(1, 101))
    assert h.value_at(50.0) == 50
    assert h.value_at(99.0) == 99
    assert h.value_at(100.0) == 100


def test_empty_and_negative() -> None:
    h = Histogram()
    assert h.value_at(50.0) is None
    assert h.mean() is None
    h.record(-5)
    assert h.value_at(50.0) == 0
    with pytest.raises(ValueError):
        percentile_rank(10, 101.0)


@settings(max_examples=50, deadline=None)
@given(a=st.lists(st.integers(0, 10**7), max_size=100), b=st.lists(st.integers(0, 10**7), max_size=100))
def test_merge_equals_histogram_of_both(a: list[int], b: list[int]) -> None:
    h = Histogram.of(a)
    h.merge(Histogram.of(b))
    both = Histogram.of(a + b)
    assert h.counts == both.counts
    assert (h.total, h.sum, h.min, h.max) == (both.total, both.sum, both.min, both.max)


def test_histogram_dict_round_trip_and_check() -> None:
    h = Histogram.of([1, 5, 1000, 123456])
    back = Histogram.from_dict(h.to_dict())
    assert back.counts == h.counts and back.max == h.max and back.total == 4
    bad = h.to_dict()
    bad["total"] = 5
    with pytest.raises(ValueError):
        Histogram.from_dict(bad)


def test_recorder_series_and_merge() -> None:
    a = Recorder(1.0)
    a.success("attach", 0.2, 0.010)
    a.success("attach", 1.5, 0.030)
    a.failure("attach", 1.7, "timeout", "timeout: no outcome within 10 s")
    b = Recorder(1.0)
    b.success("tau", 0.9, 0.005)
    b.failure("attach", 2.1, "timeout", "another text")
    b.error("link_lost")
    a.merge(b)
    assert a.procedures["attach"].ok == 2 and a.procedures["attach"].failed == 2
    assert a.procedures["tau"].count == 1
    assert a.errors == {"timeout": 2, "link_lost": 1}
    assert a.examples == {"timeout": "timeout: no outcome within 10 s"}
    assert sorted(a.series) == [0, 1, 2]
    assert a.series[1]["attach"].ok == 1 and a.series[1]["attach"].failed == 1
    assert a.series[0]["attach"].latency_us.max == 10000
    assert a.completed == 5 and a.failed == 2
    back = Recorder.from_dict(a.to_dict())
    assert back.to_dict() == a.to_dict()
    with pytest.raises(ValueError):
        a.merge(Recorder(0.5))
    with pytest.raises(ValueError):
        Recorder(0.0)


def test_procedure_stats_count() -> None:
    s = ProcedureStats(3, 2)
    assert s.count == 5

"""Arrival processes: Poisson rate and ramp for a seeded RNG, closed loop, weighted choice."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.load.arrivals import ClosedLoop, WeightedChoice, _inverse, cumulative_rate, poisson_arrivals


def _within(count: int, expected: float, sigmas: float = 4.0) -> bool:
    """A Poisson count is within ``sigmas`` standard deviations (√expected) of its mean."""
    return abs(count - expected) <= sigmas * math.sqrt(expected)


def test_poisson_rate_without_ramp() -> None:
    times = list(poisson_arrivals(200.0, 100.0, 0.0, random.Random(1)))
    assert _within(len(times), 200.0 * 100.0)
    assert all(0.0 <= a < b < 100.0 for a, b in itertools.pairwise(times))
    # Exponential gaps: P(gap > mean) = 1/e.
    gaps = [b - a for a, b in itertools.pairwise(times)]
    above = sum(1 for g in gaps if g > 1 / 200.0) / len(gaps)
    assert abs(above - math.exp(-1)) < 0.02


def test_poisson_ramp_is_linear() -> None:
    rate, ramp, duration = 400.0, 10.0, 20.0
    times = list(poisson_arrivals(rate, duration, ramp, random.Random(7)))
    # Expected arrivals in [0, t] is Λ(t): a quarter of the ramp's in its first half.
    for lo, hi in ((0.0, 5.0), (5.0, 10.0), (10.0, 20.0)):
        n = sum(1 for t in times if lo <= t < hi)
        assert _within(n, cumulative_rate(hi, rate, ramp) - cumulative_rate(lo, rate, ramp)), (lo, hi, n)
    assert _within(sum(1 for t in times if t < 5.0), rate * 5.0 * 5.0 / 20.0)


def test_poisson_same_seed_same_arrivals() -> None:
    a = list(poisson_arrivals(50.0, 10.0, 2.0, random.Random(3)))
    b = list(poisson_arrivals(50.0, 10.0, 2.0, random.Random(3)))
    c = list(poisson_arrivals(50.0, 10.0, 2.0, random.Random(4)))
    assert a == b
    assert a != c


@pytest.mark.parametrize(("rate", "duration", "ramp"), [(0.0, 1.0, 0.0), (-1.0, 1.0, 0.0), (1.0, 0.0, 0.0),
                                                       (1.0, 1.0, -1.0), (math.inf, 1.0, 0.0), (1.0, math.nan, 0.0)])
def test_poisson_bad_arguments(rate: float, duration: float, ramp: float) -> None:
    with pytest.raises(ValueError):
        next(poisson_arrivals(rate, duration, ramp, random.Random(0)))


@settings(max_examples=200, deadline=None)
@given(t=st.floats(0.0, 1e4), rate=st.floats(0.01, 1e5), ramp=st.floats(0.0, 1e3))
def test_inverse_of_cumulative_rate(t: float, rate: float, ramp: float) -> None:
    x = cumulative_rate(t, rate, ramp)
    assert math.isclose(_inverse(x, rate, ramp), t, rel_tol=1e-9, abs_tol=1e-9)


def test_closed_loop_spreads_starts_over_the_ramp() -> None:
    assert ClosedLoop(4, 2.0).start_times() == [0.0, 0.5, 1.0, 1.5]
    assert ClosedLoop(3).start_times() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        ClosedLoop(0)
    with pytest.raises(ValueError):
        ClosedLoop(1, -1.0)


def test_weighted_choice_frequencies() -> None:
    choice = WeightedChoice({"attach": 70.0, "provision": 10.0, "tau": 20.0, "never": 0.0}, random.Random(5))
    n = 20000
    picks = [choice.pick() for _ in range(n)]
    for item, p in (("attach", 0.7), ("provision", 0.1), ("tau", 0.2)):
        assert choice.probability(item) == pytest.approx(p)
        # Binomial: within 4 standard deviations.
        assert abs(picks.count(item) - n * p) <= 4 * math.sqrt(n * p * (1 - p))
    assert "never" not in picks
    assert choice.probability("never") == 0.0


@pytest.mark.parametrize("weights", [{}, {"a": 0.0}, {"a": -1.0, "b": 2.0}, {"a": math.nan}])
def test_weighted_choice_refuses_bad_weights(weights: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        WeightedChoice(weights)

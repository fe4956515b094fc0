"""Arrival processes of the load harness (pure: times in seconds from the start, no clock).

Open loop (:func:`poisson_arrivals`): a Poisson process whose rate ramps linearly from 0 to
``rate`` over ``ramp_s`` seconds and then stays at ``rate``; arrivals do not wait for earlier
procedures to end, as real UEs do not (so a slow network shows as growing latency and
concurrency, not as a lower offered load). Generated exactly by time change: the arrival
times of a unit-rate Poisson process E1 < E2 < … mapped through the inverse of the cumulative
rate Λ(t) = ∫₀ᵗ λ(u) du are a Poisson process of rate λ(t) (Çinlar's theorem).

Closed loop (:class:`ClosedLoop`): N UEs each start a new procedure as soon as their previous
one ends; the N start times are spread evenly over the ramp.

Scenario choice for ``mix``: :class:`WeightedChoice`.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["ClosedLoop", "WeightedChoice", "cumulative_rate", "poisson_arrivals"]

T = TypeVar("T")


def cumulative_rate(t: float, rate: float, ramp_s: float) -> float:
    """Λ(t): expected arrivals in [0, t] with a linear ramp to ``rate`` over ``ramp_s``."""
    if t <= 0:
        return 0.0
    if ramp_s <= 0:
        return rate * t
    if t <= ramp_s:
        return rate * t * t / (2.0 * ramp_s)
    return rate * ramp_s / 2.0 + rate * (t - ramp_s)


def _inverse(x: float, rate: float, ramp_s: float) -> float:
    """Λ⁻¹(x) for :func:`cumulative_rate`."""
    if ramp_s <= 0:
        return x / rate
    at_ramp_end = rate * ramp_s / 2.0
    if x <= at_ramp_end:
        return math.sqrt(2.0 * ramp_s * x / rate)
    return ramp_s + (x - at_ramp_end) / rate


def poisson_arrivals(
    rate: float, duration_s: float, ramp_s: float = 0.0, rng: random.Random | None = None
) -> Iterator[float]:
    """Arrival times in [0, ``duration_s``) of a Poisson process at ``rate`` per second after a
    linear ramp of ``ramp_s`` seconds; increasing; finite (bounded by ``duration_s``)."""
    if rate <= 0 or not math.isfinite(rate):
        raise ValueError("rate must be a positive number")
    if duration_s <= 0 or not math.isfinite(duration_s):
        raise ValueError("duration_s must be a positive number")
    if ramp_s < 0:
        raise ValueError("ramp_s must not be negative")
    rng = rng if rng is not None else random.Random()
    x = 0.0
    while True:
        x += rng.expovariate(1.0)
        t = _inverse(x, rate, ramp_s)
        if t >= duration_s:
            return
        yield t


@dataclass(frozen=True)
class ClosedLoop:
    """``concurrency`` UEs in a loop; the first starts are spread over ``ramp_s`` seconds."""

    concurrency: int
    ramp_s: float = 0.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.ramp_s < 0:
            raise ValueError("ramp_s must not be negative")

    def start_times(self) -> list[float]:
        """When each of the ``concurrency`` loops starts (seconds from the start)."""
        n = self.concurrency
        return [self.ramp_s * i / n for i in range(n)]


class WeightedChoice(Generic[T]):
    """Pick items with probability proportional to their weight (weights ≥ 0, not all 0)."""

    def __init__(
        self, weights: Mapping[T, float] | Sequence[tuple[T, float]], rng: random.Random | None = None
    ) -> None:
        pairs = list(weights.items()) if isinstance(weights, Mapping) else list(weights)
        items: list[T] = []
        cumulative: list[float] = []
        total = 0.0
        for item, w in pairs:
            if w < 0 or not math.isfinite(w):
                raise ValueError(f"weight of {item!r} must be a non-negative number")
            if w == 0:
                continue
            total += w
            items.append(item)
            cumulative.append(total)
        if not items:
            raise ValueError("at least one weight must be positive")
        self._items = items
        self._cumulative = cumulative
        self.total = total
        self._rng = rng if rng is not None else random.Random()

    @property
    def items(self) -> list[T]:
        return list(self._items)

    def probability(self, item: T) -> float:
        """The probability of ``item`` (0 when absent or weighted 0)."""
        if item not in self._items:
            return 0.0
        i = self._items.index(item)
        prev = self._cumulative[i - 1] if i else 0.0
        return (self._cumulative[i] - prev) / self.total

    def pick(self) -> T:
        x = self._rng.random() * self.total
        return self._items[min(bisect.bisect_right(self._cumulative, x), len(self._items) - 1)]

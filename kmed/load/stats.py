"""Load statistics: HDR-style latency histograms, per-second time series, errors by cause.

:class:`Histogram` is a log-linear histogram in the manner of HdrHistogram (G. Tene): values
below ``2**SUB_BITS`` are counted exactly; above, each power of two is split into
``2**(SUB_BITS-1)`` equal sub-buckets, so a percentile is reported with a relative error
below ``2**-(SUB_BITS-1)`` (0.8 % with 8 bits), whatever the range. Counts are sparse (a dict),
so histograms are cheap to keep per second and per procedure, and merge by adding counts
(workers send theirs to the parent as :meth:`Histogram.to_dict`).

:class:`Recorder` is what one generator (one worker) fills during a run; :meth:`Recorder.merge`
adds another's. Pure: no clock, no I/O (the runner passes times in).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PERCENTILES", "SUB_BITS", "Histogram", "ProcedureStats", "Recorder", "percentile_rank"]

#: Sub-bucket bits: 2**(SUB_BITS-1) sub-buckets per power of two above 2**SUB_BITS.
SUB_BITS = 8
_HALF = 1 << (SUB_BITS - 1)
_EXACT = 1 << SUB_BITS

#: Percentiles in the report, as (key suffix, percentile).
PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0))


def _index(value: int) -> int:
    """Bucket index of a non-negative integer value."""
    if value < _EXACT:
        return value
    shift = value.bit_length() - SUB_BITS
    return shift * _HALF + (value >> shift)


def _highest(index: int) -> int:
    """The highest value that falls in bucket ``index`` (HdrHistogram's highestEquivalentValue)."""
    if index < _EXACT:
        return index
    shift, mantissa = divmod(index - _HALF, _HALF)
    mantissa += _HALF
    return ((mantissa + 1) << shift) - 1


def percentile_rank(total: int, percentile: float) -> int:
    """Nearest-rank (1-based) of ``percentile`` among ``total`` values: ceil(p/100 · n), at least 1."""
    if not 0.0 <= percentile <= 100.0:
        raise ValueError("percentile must be from 0 to 100")
    return max(1, min(total, math.ceil(percentile / 100.0 * total)))


class Histogram:
    """A histogram of non-negative integers (the harness records microseconds)."""

    __slots__ = ("counts", "max", "min", "sum", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.sum = 0
        self.min: int | None = None
        self.max: int | None = None

    def record(self, value: int) -> None:
        """Count one value (negative values are counted as 0)."""
        v = value if value > 0 else 0
        i = _index(v)
        self.counts[i] = self.counts.get(i, 0) + 1
        self.total += 1
        self.sum += v
        if self.max is None or v > self.max:
            self.max = v
        if self.min is None or v < self.min:
            self.min = v

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s counts to this histogram."""
        for i, n in other.counts.items():
            self.counts[i] = self.counts.get(i, 0) + n
        self.total += other.total
        self.sum += other.sum
        if other.max is not None and (self.max is None or other.max > self.max):
            self.max = other.max
        if other.min is not None and (self.min is None or other.min < self.min):
            self.min = other.min

    def value_at(self, percentile: float) -> int | None:
        """The value at ``percentile`` (nearest rank), as the highest value of its bucket but never
        above the largest value recorded; None when empty."""
        if self.total == 0:
            return None
        rank = percentile_rank(self.total, percentile)
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                value = _highest(i)
                assert self.max is not None
                return min(value, self.max)
        return self.max  # pragma: no cover - counts always add up to total

    def mean(self) -> float | None:
        return self.sum / self.total if self.total else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (for worker → parent transfer), read back by :meth:`from_dict`."""
        return {"counts": sorted(self.counts.items()), "total": self.total, "sum": self.sum,
                "min": self.min, "max": self.max}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        h = cls()
        h.counts = {int(i): int(n) for i, n in data["counts"]}
        h.total = int(data["total"])
        h.sum = int(data["sum"])
        h.min = None if data["min"] is None else int(data["min"])
        h.max = None if data["max"] is None else int(data["max"])
        if sum(h.counts.values()) != h.total:
            raise ValueError("histogram counts do not add up to its total")
        return h

    @classmethod
    def of(cls, values: Iterable[int]) -> Histogram:
        h = cls()
        for v in values:
            h.record(v)
        return h


@dataclass
class ProcedureStats:
    """Counts and latency of one procedure name (``attach``, ``attach_provision``, ``tau``)."""

    ok: int = 0
    failed: int = 0
    latency_us: Histogram = field(default_factory=Histogram)
    """Latency of the procedures that succeeded (a failure's duration is often a timeout)."""

    @property
    def count(self) -> int:
        return self.ok + self.failed

    def merge(self, other: ProcedureStats) -> None:
        self.ok += other.ok
        self.failed += other.failed
        self.latency_us.merge(other.latency_us)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "failed": self.failed, "latency_us": self.latency_us.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcedureStats:
        return cls(int(data["ok"]), int(data["failed"]), Histogram.from_dict(data["latency_us"]))


class Recorder:
    """What a generator observed: per procedure totals, per-second buckets, errors by cause.

    Times are seconds relative to the start of the measured window (``t`` may be negative for
    nothing: callers record only inside the run). ``examples`` keeps the first error text seen
    for each cause, so a report says what failed, not only how often.
    """

    __slots__ = ("errors", "examples", "interval_s", "procedures", "series")

    def __init__(self, interval_s: float = 1.0) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self.procedures: dict[str, ProcedureStats] = {}
        self.series: dict[int, dict[str, ProcedureStats]] = {}
        self.errors: dict[str, int] = {}
        self.examples: dict[str, str] = {}

    def _slot(self, t: float) -> int:
        return max(0, int(t // self.interval_s))

    def success(self, name: str, t_end: float, latency_s: float) -> None:
        """A procedure ``name`` succeeded at ``t_end`` after ``latency_s`` seconds."""
        us = int(latency_s * 1e6)
        for stats in (self._proc(name), self._bucket(t_end, name)):
            stats.ok += 1
            stats.latency_us.record(us)

    def failure(self, name: str, t_end: float, cause: str, detail: str | None = None) -> None:
        """A procedure ``name`` failed at ``t_end`` with ``cause`` (an error key)."""
        self._proc(name).failed += 1
        self._bucket(t_end, name).failed += 1
        self.error(cause, detail)

    def error(self, cause: str, detail: str | None = None, count: int = 1) -> None:
        """Count an error not tied to one procedure (e.g. a link that could not be set up)."""
        self.errors[cause] = self.errors.get(cause, 0) + count
        if detail and cause not in self.examples:
            self.examples[cause] = detail

    def _proc(self, name: str) -> ProcedureStats:
        stats = self.procedures.get(name)
        if stats is None:
            stats = self.procedures[name] = ProcedureStats()
        return stats

    def _bucket(self, t: float, name: str) -> ProcedureStats:
        slot = self.series.setdefault(self._slot(t), {})
        stats = slot.get(name)
        if stats is None:
            stats = slot[name] = ProcedureStats()
        return stats

    @property
    def completed(self) -> int:
        return sum(p.count for p in self.procedures.values())

    @property
    def failed(self) -> int:
        return sum(p.failed for p in self.procedures.values())

    def merge(self, other: Recorder) -> None:
        """Add ``other``'s observations (same interval)."""
        if other.interval_s != self.interval_s:
            raise ValueError("cannot merge recorders with different intervals")
        for name, stats in other.procedures.items():
            self._proc(name).merge(stats)
        for slot, procs in other.series.items():
            mine = self.series.setdefault(slot, {})
            for name, stats in procs.items():
                mine.setdefault(name, ProcedureStats()).merge(stats)
        for cause, n in other.errors.items():
            self.errors[cause] = self.errors.get(cause, 0) + n
        for cause, text in other.examples.items():
            self.examples.setdefault(cause, text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval_s,
            "procedures": {n: s.to_dict() for n, s in self.procedures.items()},
            "series": [[slot, {n: s.to_dict() for n, s in procs.items()}]
                       for slot, procs in sorted(self.series.items())],
            "errors": dict(self.errors),
            "examples": dict(self.examples),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recorder:
        r = cls(float(data["interval_s"]))
        r.procedures = {n: ProcedureStats.from_dict(s) for n, s in data["procedures"].items()}
        r.series = {int(slot): {n: ProcedureStats.from_dict(s) for n, s in procs.items()}
                    for slot, procs in data["series"]}
        r.errors = {str(c): int(n) for c, n in data["errors"].items()}
        r.examples = {str(c): str(t) for c, t in data["examples"].items()}
        return r

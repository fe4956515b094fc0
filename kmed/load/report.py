"""The JSON report of ``kmed load`` (CONTRACT: ``kmed load`` report keys; docs/load.md).

Top-level keys: ``ues``, ``duration_s``, ``procedures`` (``attach``, ``attach_provision``,
``tau``, always present: each ``count``, ``ok``, ``failed``, ``rate_per_s``, ``p50_ms``,
``p95_ms``, ``p99_ms``, ``max_ms``, ``mean_ms``), ``errors`` (cause → count), plus ``status``,
``error``, ``error_examples``, ``timeseries``, ``warmup``, ``hold``, ``generator`` and
``config`` (the settings of the run, never K, OPc or the seed).

``rate_per_s`` is successful procedures per second of the measured window; latencies are of the
successful procedures, in milliseconds (HDR histogram, ≤ 0.8 % relative error; ``max_ms``
exact); null when there were none.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from kmed.load.stats import PERCENTILES, Histogram, ProcedureStats, Recorder

__all__ = ["PROCEDURE_KEYS", "PROCEDURE_NAMES", "REPORT_KEYS", "build_report", "procedure_summary", "write_report"]

#: Procedure names always present in ``procedures`` (CONTRACT).
PROCEDURE_NAMES: tuple[str, ...] = ("attach", "attach_provision", "tau")
#: Keys of each ``procedures`` entry.
PROCEDURE_KEYS: tuple[str, ...] = (
    "count", "ok", "failed", "rate_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms",
)
#: Top-level keys of every report.
REPORT_KEYS: tuple[str, ...] = (
    "ues", "duration_s", "procedures", "errors", "status", "error", "error_examples", "timeseries",
    "warmup", "hold", "generator", "config",
)


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000.0, 3)


def latency_summary(h: Histogram) -> dict[str, float | None]:
    out: dict[str, float | None] = {f"{key}_ms": _ms(h.value_at(p)) for key, p in PERCENTILES}
    out["max_ms"] = _ms(h.max)
    out["mean_ms"] = _ms(h.mean())
    return out


def procedure_summary(stats: ProcedureStats, duration_s: float) -> dict[str, Any]:
    """One ``procedures`` entry."""
    rate = stats.ok / duration_s if duration_s > 0 else 0.0
    return {"count": stats.count, "ok": stats.ok, "failed": stats.failed, "rate_per_s": round(rate, 3),
            **latency_summary(stats.latency_us)}


def procedures_of(recorder: Recorder, duration_s: float) -> dict[str, dict[str, Any]]:
    names = list(PROCEDURE_NAMES) + sorted(set(recorder.procedures) - set(PROCEDURE_NAMES))
    return {n: procedure_summary(recorder.procedures.get(n, ProcedureStats()), duration_s) for n in names}


def timeseries_of(recorder: Recorder, slots: int | None = None) -> dict[str, Any]:
    """Per-interval columns: ``t_s`` (interval start) and per procedure ``ok``, ``failed``,
    ``p50_ms``, ``p99_ms`` (null when nothing succeeded in that interval)."""
    last = max(recorder.series, default=-1)
    n = max(last + 1, slots or 0)
    names = [p for p in PROCEDURE_NAMES if p in recorder.procedures]
    names += sorted(set(recorder.procedures) - set(PROCEDURE_NAMES))
    columns: dict[str, dict[str, list[Any]]] = {
        name: {"ok": [], "failed": [], "p50_ms": [], "p99_ms": []} for name in names
    }
    empty = ProcedureStats()
    for slot in range(n):
        procs = recorder.series.get(slot, {})
        for name in names:
            s = procs.get(name, empty)
            col = columns[name]
            col["ok"].append(s.ok)
            col["failed"].append(s.failed)
            col["p50_ms"].append(_ms(s.latency_us.value_at(50.0)))
            col["p99_ms"].append(_ms(s.latency_us.value_at(99.0)))
    return {"interval_s": recorder.interval_s, "t_s": [round(i * recorder.interval_s, 3) for i in range(n)],
            "procedures": columns}


def build_report(
    *,
    ues: int,
    duration_s: float,
    recorder: Recorder,
    config: Mapping[str, Any],
    status: str = "ok",
    error: str | None = None,
    warmup: Mapping[str, Any] | None = None,
    hold: Mapping[str, Any] | None = None,
    generator: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report of a run (keys: module docstring)."""
    slots = int(duration_s // recorder.interval_s) + 1 if duration_s > 0 else None
    return {
        "ues": ues,
        "duration_s": round(duration_s, 3),
        "procedures": procedures_of(recorder, duration_s),
        "errors": dict(sorted(recorder.errors.items())),
        "status": status,
        "error": error,
        "error_examples": dict(sorted(recorder.examples.items())),
        "timeseries": timeseries_of(recorder, slots),
        "warmup": dict(warmup) if warmup is not None else None,
        "hold": dict(hold) if hold is not None else None,
        "generator": dict(generator) if generator is not None else None,
        "config": dict(config),
    }


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    """Write the report as indented JSON (replacing the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n")
    tmp.replace(path)

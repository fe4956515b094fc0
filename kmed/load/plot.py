"""The PNG beside the report: throughput and latency percentiles over time (matplotlib, Agg).

matplotlib is the optional extra ``load`` (docs/dependencies.md); it is imported only here and
only when a plot is drawn, so the daemons never load it. Without it :class:`PlotUnavailable`
says how to install it and the report is still written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["PlotUnavailable", "plot_path_for", "write_plot"]


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


def plot_path_for(report_path: Path) -> Path:
    """The PNG beside a report: ``run.json`` → ``run.png``."""
    return report_path.with_suffix(".png")


def write_plot(report: Mapping[str, Any], path: Path) -> Path:
    """Draw the report's time series to ``path`` (PNG); returns ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable("plot not drawn: matplotlib is not installed (pip install 'kmed[load]')") from None

    ts = report.get("timeseries") or {}
    t = list(ts.get("t_s") or [])
    interval = float(ts.get("interval_s") or 1.0)
    duration = float(report.get("duration_s") or 0.0)
    if len(t) > 1 and t[-1] + interval > duration + 1e-9:
        t = t[:-1]  # the last interval is partial (the drain): its rate would read as a drop
    t = [x + interval / 2 for x in t]  # plot each interval at its middle
    procs: Mapping[str, Mapping[str, list[Any]]] = ts.get("procedures") or {}
    fig, (ax_rate, ax_lat) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    try:
        for name, col in procs.items():
            ok = [n / interval for n in col.get("ok", [])][: len(t)]
            failed = [n / interval for n in col.get("failed", [])][: len(t)]
            (line,) = ax_rate.plot(t[: len(ok)], ok, label=f"{name} ok/s")
            if any(failed):
                ax_rate.plot(t[: len(failed)], failed, linestyle=":", color=line.get_color(), label=f"{name} failed/s")
            for key, style in (("p50_ms", "--"), ("p99_ms", "-")):
                points = [(x, v) for x, v in zip(t, col.get(key, []), strict=False) if v is not None]
                xs = [x for x, _ in points]
                ys = [v for _, v in points]
                if ys:
                    ax_lat.plot(xs, ys, linestyle=style, color=line.get_color(), label=f"{name} {key[:3]}")
        cfg = report.get("config") or {}
        title = (f"kmed load: scenario {cfg.get('scenario', '?')}, {report.get('ues')} UEs, "
                 f"{report.get('duration_s')} s")
        ax_rate.set_title(title)
        ax_rate.set_ylabel("procedures per second")
        ax_rate.grid(True, alpha=0.3)
        ax_lat.set_ylabel("latency (ms)")
        ax_lat.set_xlabel("time since start (s)")
        ax_lat.grid(True, which="both", alpha=0.3)
        if ax_lat.lines:
            from matplotlib.ticker import ScalarFormatter

            ax_lat.set_yscale("log")
            ax_lat.yaxis.set_major_formatter(ScalarFormatter())
        for ax in (ax_rate, ax_lat):
            if ax.lines:
                ax.legend(loc="upper left", fontsize="small", ncol=2)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)
    return path

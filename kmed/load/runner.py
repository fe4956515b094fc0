"""A whole load run: one or more generator workers, coordinated, merged into one report.

With one worker the generator runs on this process's event loop. With more, each worker is a
separate process (``multiprocessing`` spawn: no inherited event loop or sockets) that owns a
slice of the UEs and of the UE links; the parent only coordinates over a pipe: the workers
connect and warm up, report ``ready``, start the measured window together at the monotonic
time the parent sends (CLOCK_MONOTONIC is system-wide on Linux), stream progress snapshots,
and send their statistics at the end, which the parent merges (histograms add up exactly).

Every wait is bounded: warm-up by ``warmup_timeout_s``, the measured window by ``duration_s``
plus one procedure deadline to drain; a worker that dies is reported, never waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from kmed.load.generator import Generator, RunSettings
from kmed.load.procinfo import rss_kib
from kmed.load.progress import Progress
from kmed.load.report import build_report, procedures_of
from kmed.load.stats import Histogram, Recorder

__all__ = ["RunOutcome", "run_load"]

#: A worker using more than this share of a core is too busy to be trusted as a generator.
SATURATED_UTILIZATION = 0.9
#: ... or when arrivals leave this late (p99, ms).
SATURATED_LAG_MS = 50.0
_SPAWN_MARGIN_S = 60.0


@dataclass
class RunOutcome:
    report: dict[str, Any]
    exit_status: int
    states: dict[int, dict[str, Any]] | None


class Coordinator:
    """Gathers progress, samples the CNN's memory in hold mode, and builds the report."""

    def __init__(self, settings: RunSettings, progress: Progress | None, cnn_pid: int | None) -> None:
        self.s = settings
        self.progress = progress
        self.cnn_pid = cnn_pid
        self.snaps: dict[int, dict[str, Any]] = {}
        self.rss_before: int | None = None
        self.rss_held: int | None = None
        self.rss_end: int | None = None
        self.dead: dict[int, str] = {}

    def before_go(self) -> None:
        if self.s.hold and self.cnn_pid is not None:
            self.rss_before = rss_kib(self.cnn_pid)

    def on_progress(self, snap: dict[str, Any]) -> None:
        self.snaps[int(snap["worker"])] = snap
        alive = self.s.workers - len(self.dead)
        if (self.s.hold and self.cnn_pid is not None and self.rss_held is None
                and sum(1 for s in self.snaps.values() if s["phase"] in ("held", "drain", "done")) >= alive):
            self.rss_held = rss_kib(self.cnn_pid)
        if self.progress is not None:
            snaps = list(self.snaps.values())
            p99s = [s["p99_ms"] for s in snaps if s.get("p99_ms") is not None]
            self.progress.update({
                "phase": min((s["phase"] for s in snaps), key=_PHASES.index),
                "elapsed_s": max(s["elapsed_s"] for s in snaps),
                "duration_s": self.s.duration_s if all(s["phase"] not in ("setup", "warmup") for s in snaps) else None,
                "ok": sum(s["ok"] for s in snaps), "failed": sum(s["failed"] for s in snaps),
                "in_flight": sum(s["in_flight"] for s in snaps),
                "rate_per_s": sum(s["rate_per_s"] for s in snaps), "p99_ms": max(p99s) if p99s else None,
            })

    def finish(self, results: list[dict[str, Any]], fatal: str | None) -> RunOutcome:
        if self.s.hold and self.cnn_pid is not None:
            self.rss_end = rss_kib(self.cnn_pid)
        rec = Recorder(self.s.interval_s)
        warm = Recorder(self.s.interval_s)
        lag = Histogram()
        for r in results:
            rec.merge(Recorder.from_dict(r["recorder"]))
            warm.merge(Recorder.from_dict(r["warmup"]))
            lag.merge(Histogram.from_dict(r["lag_us"]))
        for worker, why in sorted(self.dead.items()):
            rec.error("worker_failed", f"worker {worker}: {why}")
        if fatal is not None and not rec.errors:
            rec.error("transport", fatal)
        duration = max((float(r["elapsed_s"]) for r in results), default=0.0)
        warm_s = max((float(r["warmup_s"]) for r in results), default=0.0)
        excluded = sum(int(r["warmup_excluded"]) for r in results)
        warmup = None
        if warm.completed or excluded:
            warmup = {"ues": warm.completed + excluded - warm.failed, "ok": warm.completed - warm.failed,
                      "failed": warm.failed,
                      "not_run": excluded - warm.failed, "excluded_ues": excluded, "duration_s": round(warm_s, 3),
                      "procedures": {n: p for n, p in procedures_of(warm, warm_s).items() if p["count"]},
                      "errors": dict(sorted(warm.errors.items())),
                      "error_examples": dict(sorted(warm.examples.items()))}
        hold: dict[str, Any] | None = None
        held_all = True
        if self.s.hold:
            held = sum(int(r["held"]) for r in results)
            per_ue = None
            if self.rss_before is not None and self.rss_held is not None and held:
                per_ue = round((self.rss_held - self.rss_before) * 1024 / held, 1)
            hold = {"ues_attached": held, "cnn_pid": self.cnn_pid, "cnn_rss_before_kib": self.rss_before,
                    "cnn_rss_held_kib": self.rss_held, "cnn_rss_end_kib": self.rss_end,
                    "cnn_bytes_per_held_ue": per_ue}
            held_all = held >= self.s.ues
        generator = self._generator(results, lag)
        if fatal is not None:
            status = "aborted"
        elif rec.failed or rec.errors or warm.failed or excluded or not held_all:
            status = "failed"
        else:
            status = "ok"
        report = build_report(
            ues=self.s.ues, duration_s=duration, recorder=rec, config=self.s.describe(), status=status, error=fatal,
            warmup=warmup, hold=hold, generator=generator,
        )
        states: dict[int, dict[str, Any]] | None = None
        if self.s.save_state:
            states = {}
            for r in results:
                states.update({int(i): s for i, s in (r.get("states") or {}).items()})
        return RunOutcome(report, 0 if status == "ok" else 1, states)

    def _generator(self, results: list[dict[str, Any]], lag: Histogram) -> dict[str, Any]:
        util = [round(float(r["cpu_s"]) / float(r["elapsed_s"]), 3) if r["elapsed_s"] else None for r in results]
        lag_p99 = lag.value_at(99.0)
        lag_p99_ms = round(lag_p99 / 1000.0, 3) if lag_p99 is not None else None
        saturated = any(u is not None and u > SATURATED_UTILIZATION for u in util) or (
            lag_p99_ms is not None and lag_p99_ms > SATURATED_LAG_MS)
        return {"workers": self.s.workers, "interrupted": any(r.get("interrupted") for r in results),
                "cpu_s": [round(float(r["cpu_s"]), 3) for r in results],
                "utilization": util, "arrival_lag_p99_ms": lag_p99_ms,
                "arrival_lag_max_ms": round(lag.max / 1000.0, 3) if lag.max is not None else None,
                "links": sum(int(r["links"]) for r in results), "saturated": saturated}


_PHASES = ("setup", "warmup", "run", "attach", "held", "drain", "done")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: Any) -> Any:
    """SIGINT/SIGTERM end the run early (report still written) instead of killing it."""
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop)
    try:
        yield
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def _install_uvloop() -> None:
    """uvloop's event loop when installed (as the daemons; kmed.ue.link works on both loops)."""
    from kmed.diameter.transport import install_uvloop

    install_uvloop()


# --- one worker in this process ----------------------------------------------------------------


async def _in_process(settings: RunSettings, coord: Coordinator,
                      states: Mapping[int, Mapping[str, Any]] | None) -> tuple[list[dict[str, Any]], str | None]:
    gen = Generator(settings, 0, states, coord.on_progress)
    with _stop_on_signals(asyncio.get_running_loop(), gen.request_stop):
        return await _run_one(gen, coord)


async def _run_one(gen: Generator, coord: Coordinator) -> tuple[list[dict[str, Any]], str | None]:
    fatal = None
    try:
        if await gen.setup():
            await gen.warm()
            coord.before_go()
            await gen.measure(time.monotonic() + 0.05)
        else:
            fatal = gen.link_error or "no UE link to the CNN could be set up"
    finally:
        await gen.close()
    return [gen.result()], fatal


# --- worker processes ----------------------------------------------------------------------------


def _worker_main(settings: RunSettings, worker: int, states: dict[int, dict[str, Any]] | None,
                 conn: Connection) -> None:
    """Entry point of a worker process."""
    _install_uvloop()
    try:
        asyncio.run(_worker_async(settings, worker, states, conn))
    except BaseException as exc:  # the parent reports it; never a traceback with state in it
        conn.send(("fatal", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def watch_pipe(loop: asyncio.AbstractEventLoop, conn: Connection, callback: Callable[[], None]) -> None:
    """Call ``callback`` when ``conn`` is readable, keeping its fd in blocking mode.

    The pipe is duplex (one fd for both directions) and uvloop's ``add_reader`` makes the fd
    non-blocking: a message larger than the socket buffer (a worker's result with its UEs'
    states) then fails with EAGAIN half-written. ``Connection.send`` needs a blocking fd; polling
    for readability does not care, and ``recv`` is called only when a message is there.
    """
    loop.add_reader(conn.fileno(), callback)
    os.set_blocking(conn.fileno(), True)


async def _worker_async(settings: RunSettings, worker: int, states: dict[int, dict[str, Any]] | None,
                        conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    gen = Generator(settings, worker, states, lambda snap: conn.send(("progress", snap)))

    def readable() -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            msg = ("stop",)
        if msg[0] == "stop":
            gen.request_stop()
        inbox.put_nowait(msg)

    watch_pipe(loop, conn, readable)
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, gen.request_stop)
    try:
        links = await gen.setup()
        if links:
            await gen.warm()
        conn.send(("ready", {"links": links, "error": gen.link_error}))
        try:
            msg = await asyncio.wait_for(inbox.get(), settings.warmup_timeout_s + _SPAWN_MARGIN_S)
        except TimeoutError:
            msg = ("stop",)
        if msg[0] == "go" and links:
            await gen.measure(float(msg[1]))
    finally:
        loop.remove_reader(conn.fileno())
        await gen.close()
    conn.send(("result", gen.result()))


def _multi_process(settings: RunSettings, coord: Coordinator,
                   states: Mapping[int, Mapping[str, Any]] | None) -> tuple[list[dict[str, Any]], str | None]:
    ctx = multiprocessing.get_context("spawn")
    conns: dict[int, Connection] = {}
    procs: dict[int, Any] = {}
    for w in range(settings.workers):
        mine = {i: dict(states[i]) for i in settings.indices(w) if i in states} if states else None
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_worker_main, args=(settings, w, mine, child), name=f"kmed-load-{w}", daemon=True)
        p.start()
        child.close()
        conns[w], procs[w] = parent, p
    ready: dict[int, dict[str, Any]] = {}
    results: dict[int, dict[str, Any]] = {}
    went = False
    fatal: str | None = None
    stop_requested = False
    stop_sent = False

    def on_signal(_sig: int, _frame: Any) -> None:
        nonlocal stop_requested
        stop_requested = True

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    deadline = time.monotonic() + settings.warmup_timeout_s + settings.timeout_s + _SPAWN_MARGIN_S
    try:
        while len(results) + len(coord.dead) < settings.workers and time.monotonic() < deadline:
            live = [c for w, c in conns.items() if w not in results and w not in coord.dead]
            for ready_conn in wait(live, timeout=0.25):
                w = next(k for k, c in conns.items() if c is ready_conn)
                conn = conns[w]
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    coord.dead[w] = "exited without a result"
                    continue
                kind = msg[0]
                if kind == "progress":
                    coord.on_progress(msg[1])
                elif kind == "ready":
                    ready[w] = msg[1]
                elif kind == "result":
                    results[w] = msg[1]
                elif kind == "fatal":
                    coord.dead[w] = str(msg[1])
            if stop_requested and not stop_sent:  # workers in our process group got the signal too
                stop_sent = True
                for w, conn in conns.items():
                    if w not in results and w not in coord.dead:
                        with contextlib.suppress(OSError):
                            conn.send(("stop",))
            if not went and len(ready) + len(coord.dead) >= settings.workers:
                went = True
                if not any(r["links"] for r in ready.values()):
                    errors = [r["error"] for r in ready.values() if r.get("error")]
                    fatal = errors[0] if errors else "no UE link to the CNN could be set up"
                    order: tuple[Any, ...] = ("stop",)
                else:
                    coord.before_go()
                    t0 = time.monotonic() + 0.2
                    order = ("go", t0)
                    deadline = t0 + settings.duration_s + 2 * settings.timeout_s + _SPAWN_MARGIN_S
                for w, conn in conns.items():
                    if w in ready:
                        conn.send(order)
        for w in procs:
            if w not in results and w not in coord.dead:
                coord.dead[w] = "no result before the run's deadline"
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for p in procs.values():
            p.join(timeout=5.0)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5.0)
        for conn in conns.values():
            conn.close()
    if fatal is None and not results:
        fatal = "no worker finished: " + "; ".join(f"worker {w}: {why}" for w, why in sorted(coord.dead.items()))
    return [results[w] for w in sorted(results)], fatal


def run_load(
    settings: RunSettings,
    *,
    states: Mapping[int, Mapping[str, Any]] | None = None,
    cnn_pid: int | None = None,
    progress: Progress | None = None,
) -> RunOutcome:
    """Run the load described by ``settings``; the outcome holds the report and the exit status."""
    coord = Coordinator(settings, progress, cnn_pid)
    try:
        if settings.workers == 1:
            _install_uvloop()
            results, fatal = asyncio.run(_in_process(settings, coord, states))
        else:
            results, fatal = _multi_process(settings, coord, states)
    finally:
        if progress is not None:
            progress.close()
    return coord.finish(results, fatal)

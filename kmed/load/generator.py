"""One load generator (one worker process): its UEs, UE links, arrivals and statistics (asyncio).

The UEs are :mod:`kmed.ue`'s: each procedure is a :class:`~kmed.ue.procedure.UeProcedure`
(sans-I/O) driven by a :class:`~kmed.ue.client.ProcedureRunner` on a
:class:`~kmed.ue.link.UeLink` that multiplexes this worker's UEs over a few TCP connections, as
an eNodeB does. Per running procedure: one future, one timer handle (T3410/T3430), no task.

A worker owns the UEs ``i ≡ worker (mod workers)`` of the run, so two workers never drive the
same UE. Phases: :meth:`Generator.setup` (links), :meth:`Generator.warm` (make the UEs the
scenario needs hold a KME and a GUTI), :meth:`Generator.measure` (the measured window:
open loop, closed loop or hold), :meth:`Generator.close`. Every phase is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kmed.config import Endpoint
from kmed.load.arrivals import ClosedLoop, poisson_arrivals
from kmed.load.population import Population, PopulationSpec
from kmed.load.scenarios import CALL_MODELS, CallModel, Counted, classify, model_picker, models_of
from kmed.load.stats import Histogram, Recorder
from kmed.ue.client import ProcedureRunner
from kmed.ue.link import LinkError, UeLink
from kmed.ue.procedure import ATTACH, Outcome, UeProcedure

__all__ = ["Generator", "RunSettings"]

#: The warm-up attach: provisions a KME when the ME holds none, else a plain (matching) attach.
WARMUP_MODEL = CallModel("warmup", ATTACH, "attach_provision")
#: The hold-mode attach: one per UE, whatever its KME state.
HOLD_MODEL = CallModel("hold", ATTACH, "attach")
_RECONNECT_S = 0.5
_NO_LINK_RETRY_S = 0.05


@dataclass(frozen=True)
class RunSettings:
    """Everything a run needs (picklable: workers get a copy)."""

    endpoints: tuple[Endpoint, ...]
    spec: PopulationSpec
    plmn_id: bytes
    ues: int
    scenario: str = "attach"
    weights: Mapping[str, float] = field(default_factory=dict)
    """Call model weights for ``mix`` (the ``[mix]`` section)."""
    rate: float | None = 100.0
    """Open loop: Poisson arrivals per second (after the ramp). None with ``closed_loop``."""
    closed_loop: int | None = None
    """Closed loop: this many UEs each start a new procedure when their last one ends."""
    duration_s: float = 10.0
    ramp_s: float = 1.0
    timeout_s: float = 10.0
    connections: int = 4
    workers: int = 1
    warmup: bool = True
    warmup_concurrency: int = 200
    warmup_timeout_s: float = 300.0
    hold: bool = False
    seed: int = 0
    interval_s: float = 1.0
    save_state: bool = False

    def __post_init__(self) -> None:
        if self.ues < 1 or self.ues > self.spec.count:
            raise ValueError(f"--ues must be from 1 to [subscribers] count ({self.spec.count})")
        if self.workers < 1 or self.workers > self.ues:
            raise ValueError("--workers must be from 1 to the number of UEs")
        if self.connections < self.workers:
            raise ValueError("--connections must be at least --workers (each worker needs a UE link)")
        if not self.hold and (self.rate is None) == (self.closed_loop is None):
            raise ValueError("give either a rate (open loop) or a closed-loop concurrency")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("--rate must be positive")
        if self.closed_loop is not None and not 1 <= self.closed_loop <= self.ues:
            raise ValueError("--closed-loop must be from 1 to the number of UEs")
        if self.duration_s <= 0:
            raise ValueError("--duration must be positive")
        models_of(self.scenario, self.weights)

    def indices(self, worker: int) -> range:
        return range(worker, self.ues, self.workers)

    def links_of(self, worker: int) -> int:
        base, extra = divmod(self.connections, self.workers)
        return base + (1 if worker < extra else 0)

    def share(self, worker: int, total: float) -> float:
        """This worker's share of a rate, by the number of UEs it owns."""
        return total * len(self.indices(worker)) / self.ues

    def concurrency_of(self, worker: int) -> int:
        assert self.closed_loop is not None
        base, extra = divmod(self.closed_loop, self.workers)
        return base + (1 if worker < extra else 0)

    def describe(self) -> dict[str, Any]:
        """The settings for the report (no K, OPc or seed)."""
        return {
            "scenario": "hold" if self.hold else self.scenario,
            "mix": dict(self.weights) if self.scenario == "mix" else None,
            "ues": self.ues, "rate_per_s": self.rate, "closed_loop": self.closed_loop,
            "duration_s": self.duration_s, "ramp_s": self.ramp_s, "timeout_s": self.timeout_s,
            "connections": self.connections, "workers": self.workers, "warmup": self.warmup,
            "warmup_concurrency": self.warmup_concurrency, "seed": self.seed,
            "cnn": [str(e) for e in self.endpoints],
            "subscribers": {"count": self.spec.count, "imsi_first": self.spec.imsi_first,
                            "imei_first": self.spec.imei_first, "profile": self.spec.profile,
                            "ind_bits": self.spec.ind_bits},
        }


#: Called when a procedure ended: UE index, how it counted, and the link it ran over (a
#: procedure started from here then prefers it), None when no link was up.
OnDone = Callable[[int, Counted, "UeLink | None"], None]

class Generator:
    """The UEs of one worker and what they do (see the module docstring)."""

    def __init__(
        self,
        settings: RunSettings,
        worker: int = 0,
        states: Mapping[int, Mapping[str, Any]] | None = None,
        report_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.s = settings
        self.worker = worker
        self.pop = Population(settings.spec, settings.indices(worker), states)
        self.links: list[UeLink | None] = []
        self.link_error: str | None = None
        self.recorder = Recorder(settings.interval_s)
        self.warm_recorder = Recorder(settings.interval_s)
        self.lag_us = Histogram()
        self.phase = "setup"
        self.in_flight = 0
        self.held = 0
        self.excluded: set[int] = set()
        self.idle: deque[int] = deque()
        self.base = time.monotonic()
        self.warmup_s = 0.0
        self.elapsed_s = 0.0
        self.cpu_s = 0.0
        self._stopping = False
        self.interrupted = False
        self._stop_event = asyncio.Event()
        self._drained: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._report = report_progress
        self._rng = random.Random(settings.seed * 1_000_003 + worker)
        self._last_snapshot: tuple[int, int, float] = (0, 0, time.monotonic())

    # --- early stop (SIGINT/SIGTERM) -----------------------------------------------------------

    def request_stop(self) -> None:
        """Stop starting procedures now (warm-up or measured window); those running end as usual."""
        self.interrupted = True
        self._stop_event.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when a stop is requested."""
        if seconds <= 0 or self.interrupted:
            return
        if seconds < 0.05:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)

    # --- links ---------------------------------------------------------------------------------

    async def setup(self) -> int:
        """Connect this worker's UE links (LINK_SETUP); returns how many are up."""
        n = self.s.links_of(self.worker)
        eps = self.s.endpoints
        targets = [eps[(self.worker + k * self.s.workers) % len(eps)] for k in range(n)]
        results = await asyncio.gather(*(self._connect(ep, k) for k, ep in enumerate(targets)))
        self.links = list(results)
        for k, ep in enumerate(targets):
            self._tasks.append(asyncio.create_task(self._watch(k, ep)))
        return sum(1 for link in self.links if link is not None)

    async def _connect(self, ep: Endpoint, k: int) -> UeLink | None:
        try:
            return await UeLink.connect(ep, name=f"kmed-load-{self.worker}-{k}", timeout=min(5.0, self.s.timeout_s))
        except LinkError as exc:
            self.link_error = f"cannot reach the CNN: {exc}"
            return None

    async def _watch(self, k: int, ep: Endpoint) -> None:
        """Keep link ``k`` up: when it is lost, count it and reconnect until the run stops."""
        while not self._stopping:
            link = self.links[k]
            if link is not None:
                await link.wait_closed()
                if self._stopping:
                    return
                self.link_error = f"UE link to {ep} lost: {link.close_reason}"
                self.recorder.error("link_lost", self.link_error)
                self.links[k] = None
            await asyncio.sleep(_RECONNECT_S)
            if not self._stopping:
                self.links[k] = await self._connect(ep, k)

    def _link_for(self, index: int, prefer: UeLink | None = None) -> UeLink | None:
        """``prefer``, the link of the procedure that just ended when this start follows from
        its end (its answer and this request then leave in one write), if it is up; else UE
        ``index``'s own link, or another one that is up."""
        if prefer is not None and prefer.is_open:
            return prefer
        n = len(self.links)
        if not n:
            return None
        first = (index // self.s.workers) % n
        for j in range(n):
            link = self.links[(first + j) % n]
            if link is not None and link.is_open:
                return link
        return None

    # --- one procedure -------------------------------------------------------------------------

    def _start(
        self, index: int, model: CallModel, t_intended: float, rec: Recorder,
        on_done: OnDone | None = None, prefer: UeLink | None = None,
    ) -> None:
        """Run ``model`` for UE ``index`` (over ``prefer`` if it is up); latency counts from
        ``t_intended``."""
        ue = self.pop.ue(index)
        link = self._link_for(index, prefer)
        if link is None:
            counted = Counted(model.report_name, False, "transport", self.link_error or "no UE link to the CNN is up")
            rec.failure(counted.name, time.monotonic() - self.base, "transport", counted.detail)
            loop = asyncio.get_running_loop()
            loop.call_later(_NO_LINK_RETRY_S, self._after, index, counted, on_done, None)
            self.in_flight += 1
            return
        if model.factory_reset_me:
            ue.factory_reset_me()
        proc = UeProcedure(ue.usim, ue.me, self.s.plmn_id, kind=model.kind, timer_s=self.s.timeout_s,
                           max_attempts=1, trace=False)
        self.in_flight += 1
        # One attempt whose T3410/T3430 is the deadline: the procedure's own timer bounds it
        # ("no answer: T3410 expired"), so no second timer handle per procedure is needed.
        # The outcome is handled in the callback that ends the procedure (no future callback
        # scheduled through the loop); a next procedure started there shares the link's write.
        runner = ProcedureRunner(link, proc, lambda o: self._finished(index, model, t_intended, rec, o, on_done, link))
        runner.start(None)

    def _finished(
        self, index: int, model: CallModel, t_intended: float, rec: Recorder,
        outcome: Outcome, on_done: OnDone | None, link: UeLink,
    ) -> None:
        now = time.monotonic()
        counted = classify(model, outcome)
        if counted.ok:
            rec.success(counted.name, now - self.base, now - t_intended)
        else:
            rec.failure(counted.name, now - self.base, counted.cause or "protocol", counted.detail)
        self._after(index, counted, on_done, link)  # a procedure started from on_done: same link

    def _after(self, index: int, counted: Counted, on_done: OnDone | None, link: UeLink | None) -> None:
        self.in_flight -= 1
        if on_done is not None:
            on_done(index, counted, link)
        else:
            self.idle.append(index)
        if self.in_flight == 0 and self._drained is not None:
            self._drained.set()

    def _take_idle(self) -> int | None:
        while self.idle:
            index = self.idle.popleft()
            if index not in self.excluded:
                return index
        return None

    async def _drain(self, bound_s: float) -> None:
        """Wait until no procedure runs (each has its own deadline, so ``bound_s`` is a backstop)."""
        if self.in_flight == 0:
            return
        self._drained = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), bound_s)
        self._drained = None

    # --- closed loops over a list of UEs (warm-up, hold) ---------------------------------------

    async def _each_once(self, todo: deque[int], model: CallModel, rec: Recorder, deadline: float,
                         concurrency: int) -> dict[int, Counted]:
        """Run ``model`` once for each UE in ``todo``, ``concurrency`` at a time, until ``deadline``."""
        results: dict[int, Counted] = {}
        finished = asyncio.Event()
        running = 0

        def launch(prefer: UeLink | None = None) -> None:
            nonlocal running
            if todo and not self.interrupted and time.monotonic() < deadline:
                running += 1
                self._start(todo.popleft(), model, time.monotonic(), rec, on_done, prefer)
            elif running == 0:
                finished.set()

        def on_done(index: int, counted: Counted, link: UeLink | None) -> None:
            nonlocal running
            running -= 1
            results[index] = counted
            launch(link)

        for _ in range(min(concurrency, len(todo)) or 1):
            launch()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), max(0.0, deadline - time.monotonic()) + self.s.timeout_s + 2.0)
        return results

    async def warm(self) -> None:
        """Warm-up: every UE that the scenario needs with a KME (and a GUTI, for TAU) attaches
        once first; the HSS provisions those whose ME holds no KME. A UE whose warm-up attach
        fails is left out of the measured run (and counted in the report's ``warmup``)."""
        models = [CALL_MODELS[n] for n, w in models_of(self.s.scenario, self.s.weights).items() if w > 0]
        warm = self.s.warmup and not self.s.hold  # hold mode attaches every UE once anyway
        need_kme = warm and any(m.needs_kme for m in models)
        need_guti = warm and any(m.needs_guti for m in models)
        self.idle = deque(self.pop.indices)
        for n, i in enumerate(self.pop.indices):  # derive the device keys now, not in the measured window
            self.pop.ue(i)
            if n % 500 == 499:
                await asyncio.sleep(0)
        if not need_kme and not need_guti:
            return
        self.phase = "warmup"
        self.base = start = time.monotonic()
        todo = deque(i for i in self.pop.indices
                     if not (self.pop.ue(i).holds_kme and (self.pop.ue(i).has_guti or not need_guti)))
        self._progress()
        results = await self._each_once(todo, WARMUP_MODEL, self.warm_recorder, start + self.s.warmup_timeout_s,
                                        self.s.warmup_concurrency)
        self.excluded = {i for i, c in results.items() if not c.ok} | set(todo)
        self.warmup_s = time.monotonic() - start

    # --- the measured window -------------------------------------------------------------------

    async def measure(self, t0: float) -> None:
        """The measured window from monotonic time ``t0`` for ``duration_s`` (then drain)."""
        await self._pause(t0 - time.monotonic())
        self.base = t0
        self._last_snapshot = (0, 0, t0)
        cpu0 = time.process_time()
        ticker = asyncio.create_task(self._tick())
        try:
            if self.s.hold:
                await self._hold(t0)
            elif self.s.closed_loop is not None:
                await self._closed(t0)
            else:
                await self._open(t0)
            self.phase = "drain"
            await self._drain(self.s.timeout_s + 2.0)
        finally:
            ticker.cancel()
            self.elapsed_s = time.monotonic() - t0
            self.cpu_s = time.process_time() - cpu0
        self.phase = "done"
        self._progress()

    async def _open(self, t0: float) -> None:
        self.phase = "run"
        pick = model_picker(self.s.scenario, self.s.weights, self._rng)
        assert self.s.rate is not None
        rate = self.s.share(self.worker, self.s.rate)
        for at in poisson_arrivals(rate, self.s.duration_s, self.s.ramp_s, self._rng):
            target = t0 + at
            delay = target - time.monotonic()
            if delay > 0.0005:
                await self._pause(delay)
            if self.interrupted:
                break
            self.lag_us.record(int((time.monotonic() - target) * 1e6))
            index = self._take_idle()
            if index is None:
                self.recorder.error("no_idle_ue", "an arrival found every UE busy: give more --ues")
                continue
            self._start(index, pick(), target, self.recorder)

    async def _closed(self, t0: float) -> None:
        self.phase = "run"
        pick = model_picker(self.s.scenario, self.s.weights, self._rng)
        end = t0 + self.s.duration_s
        loop = asyncio.get_running_loop()

        def next_one(_index: int | None = None, _counted: Counted | None = None, link: UeLink | None = None) -> None:
            if _index is not None:
                self.idle.append(_index)
            now = time.monotonic()
            if now >= end or self.interrupted:
                return
            index = self._take_idle()
            if index is None:
                self.recorder.error("no_idle_ue", "a closed loop found every UE busy")
                loop.call_later(_NO_LINK_RETRY_S, next_one)
                return
            self._start(index, pick(), now, self.recorder, next_one, link)

        for at in ClosedLoop(self.s.concurrency_of(self.worker), self.s.ramp_s).start_times():
            loop.call_at(loop.time() + at, next_one)
        await self._pause(end - time.monotonic())

    async def _hold(self, t0: float) -> None:
        """Attach every UE of this worker once, then keep them registered until the end."""
        self.phase = "attach"
        end = t0 + self.s.duration_s
        results = await self._each_once(deque(self.pop.indices), HOLD_MODEL, self.recorder, end,
                                        self.s.warmup_concurrency)
        self.held = sum(1 for c in results.values() if c.ok)
        self.phase = "held"
        self._progress()
        await self._pause(end - time.monotonic())

    # --- progress and result -------------------------------------------------------------------

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.s.interval_s)
            self._progress()

    def snapshot(self) -> dict[str, Any]:
        rec = self.warm_recorder if self.phase == "warmup" else self.recorder
        ok = sum(p.ok for p in rec.procedures.values())
        failed = rec.failed
        now = time.monotonic()
        last_ok, _, last_t = self._last_snapshot
        rate = (ok - last_ok) / (now - last_t) if now > last_t and ok >= last_ok else 0.0
        self._last_snapshot = (ok, failed, now)
        slot = rec.series.get(max(0, int((now - self.base) // rec.interval_s) - 1), {})
        p99 = max((s.latency_us.value_at(99.0) or 0 for s in slot.values()), default=0)
        return {"worker": self.worker, "phase": self.phase, "ok": ok, "failed": failed, "in_flight": self.in_flight,
                "rate_per_s": rate, "p99_ms": p99 / 1000.0 if p99 else None, "held": self.held,
                "elapsed_s": now - self.base}

    def _progress(self) -> None:
        if self._report is not None:
            self._report(self.snapshot())

    async def close(self) -> None:
        """Stop reconnecting, close the links (every UE on them is released)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for link in self.links:
            if link is not None:
                link.close()
        for link in self.links:
            if link is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(link.wait_closed(), 2.0)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def result(self) -> dict[str, Any]:
        """What the worker hands to the parent (JSON-able)."""
        return {
            "worker": self.worker,
            "ues": len(self.pop),
            "links": sum(1 for link in self.links if link is not None),
            "link_error": self.link_error,
            "recorder": self.recorder.to_dict(),
            "warmup": self.warm_recorder.to_dict(),
            "warmup_s": self.warmup_s,
            "warmup_excluded": len(self.excluded),
            "elapsed_s": self.elapsed_s,
            "cpu_s": self.cpu_s,
            "lag_us": self.lag_us.to_dict(),
            "held": self.held,
            "interrupted": self.interrupted,
            "states": {ue.index: ue.state_dict() for ue in self.pop.created()} if self.s.save_state else None,
        }

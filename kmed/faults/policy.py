"""What the fault proxy does to each message, decided from configured rates and a seeded RNG (sans-I/O).

One :class:`Pipe` per direction of each proxied connection: messages go in with the time they
were received, ``(deliver_at, octets)`` pairs come out, in the order they must be written.

Faults, per faultable message (docs/faults.md):

- ``drop``: the message is not forwarded (a relay losing it, or radio loss on the UE link);
- ``duplicate``: it is forwarded twice, back to back;
- ``reorder``: it is held and released right after the next message of the same direction
  (or after ``reorder_hold_s`` when no other message comes);
- ``delay_ms`` + ``jitter_ms``: it is delivered that much later (jitter uniform in
  [0, jitter_ms]); delays keep the order (a message never overtakes an earlier one through
  jitter alone: reordering is the ``reorder`` fault's job);
- ``reset``: the whole connection is aborted (TCP RST) instead of forwarding the message.

Every decision draws the same five numbers from the pipe's RNG whatever the outcome, so the
same sequence of messages on a connection gets the same faults for the same seed.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

__all__ = ["DIRECTIONS", "Counters", "FaultSpec", "Pipe", "PipeOutput", "Rates", "Verdict", "decide", "pipe_rng"]

#: ``up``: from the proxy's client to its target (CNN → HSS, UE → CNN); ``down``: the answers.
DIRECTIONS = ("up", "down")

_PROBABILITIES = ("drop", "duplicate", "reorder", "reset")


@dataclass(frozen=True, slots=True)
class Rates:
    """Fault rates of one direction: probabilities per message, delays in milliseconds."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reset: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0

    def __post_init__(self) -> None:
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability from 0 to 1, not {value}")
        for name in ("delay_ms", "jitter_ms"):
            value = getattr(self, name)
            if not 0.0 <= value <= 600_000.0:
                raise ValueError(f"{name} must be from 0 to 600000 ms, not {value}")

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def with_values(self, **values: float) -> Rates:
        """A copy with some rates changed (ValueError for an unknown name or a bad value)."""
        known = {f.name for f in fields(self)}
        for name in values:
            if name not in known:
                raise ValueError(f"unknown fault {name!r}: one of {', '.join(sorted(known))}")
        return replace(self, **values)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """The faults of one proxy: rates per direction, which messages they hit, the seed."""

    up: Rates = field(default_factory=Rates)
    down: Rates = field(default_factory=Rates)
    scope: str = "application"
    seed: int = 0
    reorder_hold_s: float = 0.2

    def rates(self, direction: str) -> Rates:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be up or down, not {direction!r}")
        return self.up if direction == "up" else self.down

    def as_dict(self) -> dict[str, Any]:
        return {"up": self.up.as_dict(), "down": self.down.as_dict(), "scope": self.scope, "seed": self.seed,
                "reorder_hold_s": self.reorder_hold_s}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision for one message."""

    reset: bool = False
    drop: bool = False
    copies: int = 1
    hold: bool = False
    delay_s: float = 0.0



def decide(rates: Rates, rng: random.Random) -> Verdict:
    """The verdict for one faultable message (always five draws; reset wins over drop, drop
    over the rest)."""
    r_reset, r_drop, r_dup, r_hold, r_jitter = (rng.random() for _ in range(5))
    if r_reset < rates.reset:
        return Verdict(reset=True)
    if r_drop < rates.drop:
        return Verdict(drop=True)
    return Verdict(
        copies=2 if r_dup < rates.duplicate else 1,
        hold=r_hold < rates.reorder,
        delay_s=(rates.delay_ms + r_jitter * rates.jitter_ms) / 1000.0,
    )


def pipe_rng(seed: int, connection: int, direction: str) -> random.Random:
    """The RNG of one direction of the ``connection``-th connection (numbered from 1): the
    faults of a connection do not depend on what other connections carry."""
    return random.Random(f"kmed-faults/{seed}/{connection}/{direction}")


@dataclass(slots=True)
class Counters:
    """What one direction of a proxy did (summed over its connections)."""

    messages: int = 0  # whole messages received
    octets: int = 0
    exempt: int = 0  # not faultable (scope), forwarded untouched
    forwarded: int = 0  # messages forwarded at least once
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0  # held and released after a later message
    reorder_timeouts: int = 0  # held and released because no later message came in time
    delayed: int = 0
    resets: int = 0
    unframed_octets: int = 0  # forwarded untouched after a framing error

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def add(self, other: Counters) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True, slots=True)
class PipeOutput:
    """What to write (``(deliver_at, octets)`` in order) and whether to abort the connection."""

    emit: list[tuple[float, bytes]]
    reset: bool = False


_NOTHING = PipeOutput([])


class Pipe:
    """One direction of one connection: applies :func:`decide` to each message (see module doc).

    ``paused`` (shared by the proxy: faults off) forwards every message at once, keeping the
    order of what is still scheduled.
    """

    __slots__ = ("_held", "_last_at", "counters", "hold_deadline", "hold_s", "rates", "rng")

    def __init__(self, rates: Rates, rng: random.Random, counters: Counters, hold_s: float = 0.2) -> None:
        self.rates = rates
        self.rng = rng
        self.counters = counters
        self.hold_s = hold_s
        self.hold_deadline: float | None = None
        self._held: tuple[bytes, int, float] | None = None  # octets, copies, delay
        self._last_at = 0.0

    def push(self, data: bytes, faultable: bool, now: float, paused: bool = False) -> PipeOutput:
        """A whole message received at ``now``."""
        c = self.counters
        c.messages += 1
        c.octets += len(data)
        if paused or not faultable:
            if not faultable:
                c.exempt += 1
            c.forwarded += 1
            passed = [(self._at(now, 0.0), data)]
            self._release(now, passed, reordered=True)
            return PipeOutput(passed)
        v = decide(self.rates, self.rng)
        if v.reset:
            c.resets += 1
            self._held = None
            self.hold_deadline = None
            return PipeOutput([], reset=True)
        emit: list[tuple[float, bytes]] = []
        if v.drop:
            c.dropped += 1
        elif v.hold and self._held is None:
            self._held = (data, v.copies, v.delay_s)
            self.hold_deadline = now + self.hold_s
            return _NOTHING
        else:
            self._forward(now, data, v.copies, v.delay_s, emit)
        self._release(now, emit, reordered=True)
        return PipeOutput(emit)

    def expire(self, now: float) -> list[tuple[float, bytes]]:
        """Release the held message if its hold has run out (call at :attr:`hold_deadline`)."""
        emit: list[tuple[float, bytes]] = []
        if self.hold_deadline is not None and now >= self.hold_deadline:
            self._release(now, emit, reordered=False)
        return emit

    def flush(self, now: float) -> list[tuple[float, bytes]]:
        """Release the held message now (faults paused, or the connection is closing)."""
        emit: list[tuple[float, bytes]] = []
        self._release(now, emit, reordered=False)
        return emit

    def _forward(self, now: float, data: bytes, copies: int, delay_s: float, emit: list[tuple[float, bytes]]) -> None:
        c = self.counters
        c.forwarded += 1
        if delay_s > 0:
            c.delayed += 1
        if copies > 1:
            c.duplicated += 1
        at = self._at(now, delay_s)
        emit.extend((at, data) for _ in range(copies))

    def _release(self, now: float, emit: list[tuple[float, bytes]], reordered: bool) -> None:
        held = self._held
        if held is None:
            return
        self._held = None
        self.hold_deadline = None
        if reordered:
            self.counters.reordered += 1
        else:
            self.counters.reorder_timeouts += 1
        self._forward(now, held[0], held[1], held[2], emit)

    def _at(self, now: float, delay_s: float) -> float:
        """Delivery time: ``now + delay``, never before what is already scheduled (order kept)."""
        at = max(now + delay_s, self._last_at)
        self._last_at = at
        return at

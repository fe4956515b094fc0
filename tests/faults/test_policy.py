"""The fault policy, sans-I/O: rates, determinism, and what a Pipe emits."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.faults.policy import Counters, FaultSpec, Pipe, Rates, decide, pipe_rng

probability = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def run_pipe(rates: Rates, messages: list[bytes], seed: int = 7, gap: float = 0.01,
             faultable: bool = True) -> tuple[list[tuple[float, bytes]], Counters, bool]:
    """Push ``messages`` one every ``gap`` seconds, then flush; (emitted, counters, reset seen)."""
    counters = Counters()
    pipe = Pipe(rates, pipe_rng(seed, 1, "up"), counters, hold_s=10.0)
    out: list[tuple[float, bytes]] = []
    reset = False
    now = 0.0
    for m in messages:
        res = pipe.push(m, faultable, now)
        out += res.emit
        reset = reset or res.reset
        now += gap
    out += pipe.flush(now)
    return out, counters, reset


@pytest.mark.parametrize(("field", "value"), [("drop", 1.5), ("duplicate", -0.1), ("reorder", 2.0),
                                              ("reset", -1.0), ("delay_ms", -1.0), ("jitter_ms", 1e9)])
def test_rates_refuse_out_of_range_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        Rates(**{field: value})


def test_with_values_refuses_unknown_names() -> None:
    assert Rates().with_values(drop=0.5).drop == 0.5
    with pytest.raises(ValueError, match="unknown fault 'lose'"):
        Rates().with_values(lose=0.5)


def test_spec_rates_by_direction() -> None:
    spec = FaultSpec(up=Rates(drop=0.1), down=Rates(drop=0.2))
    assert spec.rates("up").drop == 0.1 and spec.rates("down").drop == 0.2
    with pytest.raises(ValueError):
        spec.rates("sideways")


def test_same_seed_same_decisions_other_connection_other_decisions() -> None:
    rates = Rates(drop=0.3, duplicate=0.3, reorder=0.3, reset=0.01, jitter_ms=10)
    first = [decide(rates, r) for r in [pipe_rng(5, 1, "up")] for _ in range(200)]
    again = [decide(rates, r) for r in [pipe_rng(5, 1, "up")] for _ in range(200)]
    other = [decide(rates, r) for r in [pipe_rng(5, 2, "up")] for _ in range(200)]
    down = [decide(rates, r) for r in [pipe_rng(5, 1, "down")] for _ in range(200)]
    assert first == again
    assert first != other and first != down


def test_each_decision_draws_five_numbers_whatever_the_outcome() -> None:
    """So the faults of message n do not depend on the outcomes of messages before it."""
    rng = pipe_rng(1, 1, "up")
    decide(Rates(drop=1.0), rng)
    decide(Rates(), rng)
    reference = pipe_rng(1, 1, "up")
    for _ in range(10):
        reference.random()
    assert rng.random() == reference.random()


@pytest.mark.parametrize("name", ["drop", "duplicate", "reorder"])
def test_rates_are_honoured_within_binomial_bounds(name: str) -> None:
    p, n = 0.1, 5000
    rates = Rates(**{name: p})
    _, c, _ = run_pipe(rates, [bytes([i % 256]) for i in range(n)])
    counted = {"drop": c.dropped, "duplicate": c.duplicated, "reorder": c.reordered + c.reorder_timeouts}[name]
    # A held message is not itself a candidate for the next hold: reordering is a little rarer.
    expected = n * p if name != "reorder" else n * p / (1 + p)
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(counted - expected) < 5 * sigma, (counted, expected)


def test_drop_all_emits_nothing_and_counts() -> None:
    out, c, _ = run_pipe(Rates(drop=1.0), [b"a", b"b", b"c"])
    assert out == []
    assert (c.messages, c.dropped, c.forwarded) == (3, 3, 0)


def test_duplicate_all_emits_each_twice_back_to_back() -> None:
    out, c, _ = run_pipe(Rates(duplicate=1.0), [b"a", b"b"])
    assert [m for _, m in out] == [b"a", b"a", b"b", b"b"]
    assert c.duplicated == 2 and c.forwarded == 2


def test_reorder_releases_the_held_message_after_the_next_one() -> None:
    out, c, _ = run_pipe(Rates(reorder=1.0), [b"1", b"2", b"3", b"4", b"5"])
    # 1 is held; 2 (which would be held too) goes first, then 1; 3 held, 4, 3; 5 held, flushed.
    assert [m for _, m in out] == [b"2", b"1", b"4", b"3", b"5"]
    assert c.reordered == 2 and c.reorder_timeouts == 1


def test_a_held_message_is_released_when_its_hold_expires() -> None:
    c = Counters()
    pipe = Pipe(Rates(reorder=1.0), random.Random(1), c, hold_s=0.2)
    assert pipe.push(b"x", True, 1.0).emit == []
    assert pipe.hold_deadline == pytest.approx(1.2)
    assert pipe.expire(1.1) == []
    assert [m for _, m in pipe.expire(1.2)] == [b"x"]
    assert pipe.hold_deadline is None and c.reorder_timeouts == 1


def test_reset_discards_and_signals() -> None:
    c = Counters()
    pipe = Pipe(Rates(reset=1.0), random.Random(1), c)
    out = pipe.push(b"x", True, 0.0)
    assert out.reset and out.emit == []
    assert c.resets == 1 and c.forwarded == 0


def test_exempt_and_paused_messages_pass_untouched() -> None:
    out, c, _ = run_pipe(Rates(drop=1.0, delay_ms=50), [b"a", b"b"], faultable=False)
    assert [m for _, m in out] == [b"a", b"b"] and c.exempt == 2 and c.dropped == 0
    c2 = Counters()
    pipe = Pipe(Rates(drop=1.0), random.Random(1), c2)
    assert [m for _, m in pipe.push(b"a", True, 0.0, paused=True).emit] == [b"a"]
    assert c2.dropped == 0 and c2.forwarded == 1


def test_delays_are_added_and_never_reorder() -> None:
    out, c, _ = run_pipe(Rates(delay_ms=100, jitter_ms=500), [bytes([i]) for i in range(50)], gap=0.001)
    assert [m for _, m in out] == [bytes([i]) for i in range(50)]
    times = [t for t, _ in out]
    assert times == sorted(times)
    assert all(t >= i * 0.001 + 0.1 for i, t in enumerate(times))
    assert c.delayed == 50


@settings(max_examples=60, deadline=None)
@given(drop=probability, duplicate=probability, reorder=probability, jitter=st.floats(0, 100),
       count=st.integers(0, 60), seed=st.integers(0, 2**32))
def test_conservation(drop: float, duplicate: float, reorder: float, jitter: float, count: int, seed: int) -> None:
    """Whatever the rates: each message comes out 0, 1 or 2 times, as the counters say, and
    delivery times never go backwards."""
    msgs = [i.to_bytes(2, "big") for i in range(count)]
    out, c, _ = run_pipe(Rates(drop=drop, duplicate=duplicate, reorder=reorder, jitter_ms=jitter), msgs, seed=seed)
    seen = Counter(m for _, m in out)
    assert set(seen) <= set(msgs)
    assert all(n in (1, 2) for n in seen.values())
    assert len(seen) == c.forwarded == count - c.dropped
    assert sum(1 for n in seen.values() if n == 2) == c.duplicated
    assert c.messages == count
    times = [t for t, _ in out]
    assert times == sorted(times)

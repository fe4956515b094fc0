"""The hypothesis settings of every fuzz test: bounded, reproducible, scalable.

- CI (default): ``derandomize=True``, so every run tries the same examples and a failure
  reproduces with the same command; no example database (nothing carried between runs).
- Long runs (``tools/fuzz/long.sh``): ``KMED_FUZZ_SCALE=N`` multiplies every ``max_examples``;
  ``KMED_FUZZ_RANDOM=1`` draws fresh random examples (hypothesis prints the seed to reproduce a
  failure with ``--hypothesis-seed``).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = max(0.01, float(os.environ.get("KMED_FUZZ_SCALE", "1")))
RANDOM = os.environ.get("KMED_FUZZ_RANDOM") == "1"


def fuzz(max_examples: int, *, stateful_step_count: int | None = None) -> settings:
    """Settings for one fuzz test: ``max_examples`` (scaled), no deadline (a busy CI machine
    must not turn slowness into failures), derandomized unless a long run asks otherwise."""
    extra = {} if stateful_step_count is None else {"stateful_step_count": stateful_step_count}
    return settings(
        max_examples=max(1, int(max_examples * SCALE)),
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        print_blob=True,
        **extra,
    )

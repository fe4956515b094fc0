"""Shared set-up of the atheris harnesses: the repository on ``sys.path`` and a seed corpus.

Usage of every harness (libFuzzer flags after the corpus directory):

    .venv/bin/python tools/fuzz/fuzz_<target>.py CORPUS_DIR -max_total_time=300 -artifact_prefix=CRASH_DIR/

An empty (or missing) CORPUS_DIR is filled with the harness's seeds first: valid inputs that
libFuzzer then mutates. libFuzzer prints ``Done N runs in S second(s)`` at the end; a crash is
written to CRASH_DIR as ``crash-<sha1>`` (replay it with ``fuzz_<target>.py CRASH_FILE``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def seed_corpus(argv: list[str], seeds: Callable[[], Iterable[bytes]]) -> None:
    """Write ``seeds()`` into the corpus directory (the first non-flag argument) if it is empty."""
    dirs = [a for a in argv[1:] if not a.startswith("-")]
    if not dirs:
        return
    corpus = Path(dirs[0])
    if corpus.is_file():
        return  # replaying one input
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    for i, seed in enumerate(seeds()):
        (corpus / f"seed-{i:03d}").write_bytes(seed)


def fuzz(test_one_input: Callable[[bytes], None], seeds: Callable[[], Iterable[bytes]]) -> None:
    """Seed the corpus, then hand over to libFuzzer (never returns)."""
    import atheris

    seed_corpus(sys.argv, seeds)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()

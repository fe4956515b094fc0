"""kmed.crypto.rand: per-thread blocks, never the same octets twice, fresh after fork."""

from __future__ import annotations

import os
import threading

import pytest

from kmed.crypto import rand


def test_draws_do_not_repeat_across_blocks() -> None:
    draws = [rand.random_octets(16) for _ in range(3 * rand.BLOCK // 16 + 5)]
    assert all(len(x) == 16 for x in draws)
    assert len(set(draws)) == len(draws)


def test_sizes_are_checked() -> None:
    for bad in (0, -1, rand.BLOCK + 1):
        with pytest.raises(ValueError):
            rand.random_octets(bad)
    assert len(rand.random_octets(rand.BLOCK)) == rand.BLOCK


def test_threads_never_share_octets() -> None:
    got: list[list[bytes]] = [[] for _ in range(4)]

    def draw(out: list[bytes]) -> None:
        out.extend(rand.random_octets(16) for _ in range(2000))

    threads = [threading.Thread(target=draw, args=(g,)) for g in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [x for g in got for x in g]
    assert len(set(every)) == len(every) == 8000


def test_a_forked_child_does_not_reuse_the_parents_block() -> None:
    rand.random_octets(16)  # the parent now holds a block with unused octets
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(w, rand.random_octets(16))
        os._exit(0)
    os.close(w)
    child = os.read(r, 16)
    os.close(r)
    os.waitpid(pid, 0)
    assert len(child) == 16 and child != rand.random_octets(16)

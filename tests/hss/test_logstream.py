"""The loop-flushed log stream: lines of one loop iteration leave in one write."""

from __future__ import annotations

import asyncio
import io

from kmed.hss.logstream import LoopFlushedStream


class Counting(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_flush_deferred_to_end_of_iteration() -> None:
    raw = Counting()
    stream = LoopFlushedStream(raw)
    stream.write("before\n")
    stream.flush()
    assert raw.flushes == 1  # no loop attached: at once

    async def run() -> int:
        stream.attach(asyncio.get_running_loop())
        for i in range(50):
            stream.write(f"line {i}\n")
            stream.flush()
        during = raw.flushes
        await asyncio.sleep(0)
        assert raw.flushes == during + 1
        return during

    assert asyncio.run(run()) == 1
    stream.write("after\n")
    stream.flush()  # the loop is closed: at once
    assert raw.flushes == 3
    assert raw.getvalue().count("\n") == 52
    stream.attach(None)

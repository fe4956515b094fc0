"""The fault proxy over real loopback sockets: whole messages only, faults as configured,
connection life cycle mirrored, deterministic with a seed."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from kmed.config import Endpoint
from kmed.faults.framing import FramingError, Splitter, splitter_for
from kmed.faults.policy import FaultSpec, Rates
from kmed.faults.proxy import FaultProxy
from kmed.nas.frame import FrameType, encode_frame

LOOPBACK = "127.0.0.1"


class Sink:
    """A target server that records what it receives (split into whole frames) and can answer."""

    def __init__(self, link: str = "uelink") -> None:
        self.link = link
        self.received: list[bytes] = []
        self.raw = bytearray()
        self.connections = 0
        self.closed = asyncio.Event()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.got = asyncio.Condition()
        self.unframeable = False

    async def start(self) -> Endpoint:
        self.server = await asyncio.start_server(self._conn, LOOPBACK, 0)
        return Endpoint("tcp", LOOPBACK, self.server.sockets[0].getsockname()[1])

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        splitter: Splitter | None = splitter_for(self.link, "all")
        try:
            while data := await reader.read(65536):
                self.raw += data
                if splitter is None:
                    continue
                try:
                    msgs = splitter.feed(data)  # refuses half a frame followed by another
                except FramingError:
                    splitter = None
                    self.unframeable = True
                    continue
                async with self.got:
                    self.received += [m.data for m in msgs]
                    self.got.notify_all()
        except ConnectionError:
            pass
        finally:
            self.closed.set()
            writer.close()

    async def wait_for(self, n: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout), self.got:
            await self.got.wait_for(lambda: len(self.received) >= n)

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.close()


def frames(n: int, ue_id: int = 1) -> list[bytes]:
    return [encode_frame(FrameType.NAS_UPLINK, ue_id, i.to_bytes(4, "big") * (1 + i % 7)) for i in range(n)]


@contextlib.asynccontextmanager
async def proxied(spec: FaultSpec, link: str = "uelink") -> AsyncIterator[tuple[FaultProxy, Sink]]:
    sink = Sink(link)
    target = await sink.start()
    proxy = FaultProxy(link, Endpoint("tcp", LOOPBACK, 0), target, spec)
    await proxy.start()
    try:
        yield proxy, sink
    finally:
        await proxy.close()
        await sink.close()


async def connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert proxy.bound is not None
    return await asyncio.open_connection(proxy.bound.host, proxy.bound.port)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 30.0))


def test_without_faults_the_stream_is_forwarded_unchanged_both_ways() -> None:
    async def main() -> None:
        async with proxied(FaultSpec()) as (proxy, sink):
            reader, writer = await connect(proxy)
            sent = frames(200)
            data = b"".join(sent)
            for i in range(0, len(data), 61):  # write boundaries inside frames
                writer.write(data[i:i + 61])
            await sink.wait_for(200)
            assert sink.received == sent
            answer = encode_frame(FrameType.NAS_DOWNLINK, 1, b"answer")
            sink.writers[0].write(answer[:3])
            await asyncio.sleep(0.05)
            sink.writers[0].write(answer[3:])
            assert await reader.readexactly(len(answer)) == answer
            writer.close()
            stats = proxy.stats()
            assert stats["up"]["messages"] == 200 and stats["up"]["forwarded"] == 200
            assert stats["down"]["messages"] == 1

    run(main)


def test_faults_hit_whole_frames_only_and_match_the_counters() -> None:
    async def main() -> None:
        spec = FaultSpec(up=Rates(drop=0.2, duplicate=0.2, reorder=0.2, jitter_ms=3), seed=3)
        async with proxied(spec) as (proxy, sink):
            _, writer = await connect(proxy)
            sent = frames(300)
            data = b"".join(sent)
            for i in range(0, len(data), 97):  # write boundaries across frames
                writer.write(data[i:i + 97])
            writer.write(encode_frame(FrameType.UE_RELEASE, 1, b"\x00"))  # exempt: always last
            await writer.drain()
            await sink.wait_for(1, timeout=10.0)
            async with asyncio.timeout(10.0):
                while not sink.received or sink.received[-1][4] != FrameType.UE_RELEASE:
                    await asyncio.sleep(0.02)
            c = proxy.stats()["up"]
            got = Counter(sink.received[:-1])
            assert not sink.unframeable and set(got) <= set(sent)  # whole frames that were sent, only
            assert len(got) == c["forwarded"] - 1 == 300 - c["dropped"]
            assert sum(1 for n in got.values() if n == 2) == c["duplicated"]
            assert c["dropped"] > 0 and c["duplicated"] > 0 and c["reordered"] > 0
            order = [sent.index(f) for f in sink.received[:-1]]
            assert order != sorted(order)  # something was reordered
            writer.close()

    run(main)


def test_base_protocol_and_link_frames_are_exempt_in_application_scope() -> None:
    async def main() -> None:
        async with proxied(FaultSpec(up=Rates(drop=1.0))) as (proxy, sink):
            _, writer = await connect(proxy)
            setup = encode_frame(FrameType.LINK_SETUP, 0, b"enb")
            writer.write(setup + b"".join(frames(5)) + encode_frame(FrameType.UE_RELEASE, 1))
            await sink.wait_for(2)
            assert [f[4] for f in sink.received] == [FrameType.LINK_SETUP, FrameType.UE_RELEASE]
            assert proxy.stats()["up"]["dropped"] == 5
            assert proxy.stats()["up"]["exempt"] == 2
            writer.close()

    run(main)


def test_pausing_turns_faults_off_and_on() -> None:
    async def main() -> None:
        async with proxied(FaultSpec(up=Rates(drop=1.0))) as (proxy, sink):
            _, writer = await connect(proxy)
            proxy.set_paused(True)
            writer.write(b"".join(frames(3)))
            await sink.wait_for(3)
            proxy.set_paused(False)
            writer.write(b"".join(frames(3)) + encode_frame(FrameType.UE_RELEASE, 1))
            await sink.wait_for(4)
            assert len(sink.received) == 4 and sink.received[-1][4] == FrameType.UE_RELEASE
            writer.close()

    run(main)


def test_same_seed_same_faults() -> None:
    async def once() -> list[bytes]:
        spec = FaultSpec(up=Rates(drop=0.3, duplicate=0.2, reorder=0.2), seed=11)
        async with proxied(spec) as (proxy, sink):
            _, writer = await connect(proxy)
            writer.write(b"".join(frames(100)) + encode_frame(FrameType.UE_RELEASE, 1))
            async with asyncio.timeout(10.0):
                while not sink.received or sink.received[-1][4] != FrameType.UE_RELEASE:
                    await asyncio.sleep(0.02)
            writer.close()
            return list(sink.received)

    results: list[list[bytes]] = []

    async def main() -> None:
        results.append(await once())
        results.append(await once())

    run(main)
    assert results[0] == results[1]
    assert len(results[0]) != 101 or results[0][:-1] != frames(100)


def test_reset_aborts_both_sides() -> None:
    async def main() -> None:
        async with proxied(FaultSpec(up=Rates(reset=1.0))) as (proxy, sink):
            reader, writer = await connect(proxy)
            writer.write(encode_frame(FrameType.LINK_SETUP, 0, b"enb"))  # exempt: opens the target side
            await sink.wait_for(1)
            writer.write(frames(1)[0])
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                async with asyncio.timeout(5.0):
                    await reader.readexactly(1)
            async with asyncio.timeout(5.0):
                await sink.closed.wait()
            assert proxy.stats()["connections"]["resets"] == 1
            assert sink.received == [encode_frame(FrameType.LINK_SETUP, 0, b"enb")]

    run(main)


def test_either_side_closing_closes_the_other() -> None:
    async def main() -> None:
        async with proxied(FaultSpec()) as (proxy, sink):
            reader, writer = await connect(proxy)
            writer.write(frames(1)[0])
            await sink.wait_for(1)
            sink.writers[0].close()  # the target goes away
            async with asyncio.timeout(5.0):
                assert await reader.read() == b""
            writer.close()
            _, writer2 = await connect(proxy)
            writer2.write(frames(1)[0])
            await sink.wait_for(2)
            sink.closed.clear()
            writer2.close()  # the client goes away
            async with asyncio.timeout(5.0):
                await sink.closed.wait()

    run(main)


def test_unreachable_target_closes_the_client_connection() -> None:
    async def main() -> None:
        sink = Sink()
        target = await sink.start()
        await sink.close()  # nothing listens there any more
        proxy = FaultProxy("diameter", Endpoint("tcp", LOOPBACK, 0), target, FaultSpec())
        await proxy.start()
        try:
            reader, writer = await connect(proxy)
            async with asyncio.timeout(5.0):
                assert await reader.read() == b""
            writer.close()
            assert proxy.stats()["connections"]["target_unreachable"] == 1
        finally:
            await proxy.close()

    run(main)


def test_garbage_is_forwarded_untouched() -> None:
    async def main() -> None:
        async with proxied(FaultSpec(up=Rates(drop=1.0))) as (proxy, sink):
            _, writer = await connect(proxy)
            garbage = b"\x09not a frame at all" * 10
            writer.write(garbage)
            async with asyncio.timeout(5.0):
                while len(sink.raw) < len(garbage):
                    await asyncio.sleep(0.02)
            assert bytes(sink.raw) == garbage
            assert proxy.stats()["up"]["unframed_octets"] == len(garbage)
            assert proxy.stats()["up"]["dropped"] == 0
            writer.close()

    run(main)


def test_proxy_refuses_non_tcp_endpoints() -> None:
    with pytest.raises(ValueError, match="tcp"):
        FaultProxy("diameter", Endpoint("sctp", LOOPBACK, 1), Endpoint("tcp", LOOPBACK, 2), FaultSpec())

"""The fault-injection proxy (asyncio edge around :mod:`kmed.faults.policy` and :mod:`kmed.faults.framing`).

:class:`FaultProxy` listens on one TCP address; for each connection it accepts it opens one to
the target and forwards whole messages both ways, each direction through its own
:class:`~kmed.faults.policy.Pipe`. When either side closes, what is scheduled is delivered and
the other side is closed; when the target cannot be reached, the accepted connection is closed
(the client sees its peer go away, as it would without the proxy). A ``reset`` fault aborts
both sides with a TCP RST. Each direction's queue is bounded: a slow receiver slows the
sender through TCP, one direction never waits for the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from typing import Any

from kmed import log as klog
from kmed.config import Endpoint
from kmed.faults.framing import FramingError, Splitter, splitter_for
from kmed.faults.policy import DIRECTIONS, Counters, FaultSpec, Pipe, pipe_rng

__all__ = ["FaultProxy"]

_READ_SIZE = 65536
_QUEUE_MESSAGES = 4096  # per direction and connection, before the reader waits
_WRITE_HIGH = 256 * 1024


class _Channel:
    """A bounded FIFO of ``(deliver_at, octets)`` between a direction's reader and its writer."""

    __slots__ = ("_items", "_readable", "_writable", "closed")

    def __init__(self) -> None:
        self._items: deque[tuple[float, bytes]] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.closed = False

    def extend(self, items: list[tuple[float, bytes]]) -> None:
        if self.closed or not items:
            return
        self._items.extend(items)
        self._readable.set()
        if len(self._items) >= _QUEUE_MESSAGES:
            self._writable.clear()

    def close(self, discard: bool = False) -> None:
        self.closed = True
        if discard:
            self._items.clear()
        self._readable.set()
        self._writable.set()

    async def space(self) -> None:
        await self._writable.wait()

    async def get(self) -> tuple[float, bytes] | None:
        """The next item; None once closed and empty."""
        while not self._items:
            if self.closed:
                return None
            self._readable.clear()
            await self._readable.wait()
        item = self._items.popleft()
        if len(self._items) < _QUEUE_MESSAGES // 2:
            self._writable.set()
        return item


class _Connection:
    """One proxied connection: the client's and the target's streams, a pipe per direction."""

    def __init__(self, proxy: FaultProxy, number: int, client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 target: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.proxy = proxy
        self.number = number
        self.loop = asyncio.get_running_loop()
        spec = proxy.spec
        # up: read from the client, write to the target; down: the other way.
        self.readers = {"up": client[0], "down": target[0]}
        self.writers = {"up": target[1], "down": client[1]}
        self.pipes = {d: Pipe(spec.rates(d), pipe_rng(spec.seed, number, d), proxy.counters[d], spec.reorder_hold_s)
                      for d in DIRECTIONS}
        self.splitters: dict[str, Splitter | None] = {
            d: splitter_for(proxy.link, spec.scope, proxy.max_message_size) for d in DIRECTIONS}
        self.channels = {d: _Channel() for d in DIRECTIONS}
        self.timers: dict[str, asyncio.TimerHandle | None] = dict.fromkeys(DIRECTIONS)
        self.aborted = False

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._read(d)) for d in DIRECTIONS]
        tasks += [asyncio.create_task(self._write(d)) for d in DIRECTIONS]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            for handle in self.timers.values():
                if handle is not None:
                    handle.cancel()
            for w in self.writers.values():
                w.close()

    # --- reading: octets -> messages -> pipe -> channel ---------------------------------------
    async def _read(self, direction: str) -> None:
        reader, pipe, channel = self.readers[direction], self.pipes[direction], self.channels[direction]
        try:
            while not self.aborted:
                try:
                    data = await reader.read(_READ_SIZE)
                except (ConnectionError, OSError):
                    data = b""
                if not data:
                    break
                if self._received(direction, data):
                    return
                await channel.space()
        finally:
            if not self.aborted:
                channel.extend(pipe.flush(self.loop.time()))
            channel.close()

    def _received(self, direction: str, data: bytes) -> bool:
        """Handle received octets; True when the connection was reset."""
        now = self.loop.time()
        pipe, channel = self.pipes[direction], self.channels[direction]
        splitter = self.splitters[direction]
        paused = self.proxy.paused
        if splitter is None:  # unframeable stream: forwarded untouched
            pipe.counters.unframed_octets += len(data)
            channel.extend([*pipe.flush(now), (now, data)])
            return False
        try:
            messages = splitter.feed(data)
        except FramingError as exc:
            self.splitters[direction] = None
            self.proxy.log.warning("faults_unframed", connection=self.number, direction=direction, error=str(exc))
            pipe.counters.unframed_octets += len(exc.pending)
            channel.extend([*pipe.flush(now), (now, exc.pending)])
            return False
        for m in messages:
            out = pipe.push(m.data, m.faultable, now, paused)
            if out.reset:
                self.proxy.log.info("faults_reset", connection=self.number, direction=direction, message=m.label)
                self.proxy.resets += 1
                self.abort()
                return True
            channel.extend(out.emit)
        self._arm(direction)
        return False

    def _arm(self, direction: str) -> None:
        deadline = self.pipes[direction].hold_deadline
        handle = self.timers[direction]
        if handle is not None and (deadline is None or handle.when() != deadline):
            handle.cancel()
            handle = self.timers[direction] = None
        if deadline is not None and handle is None:
            self.timers[direction] = self.loop.call_at(deadline, self._expire, direction)

    def _expire(self, direction: str) -> None:
        self.timers[direction] = None
        self.channels[direction].extend(self.pipes[direction].expire(self.loop.time()))
        self._arm(direction)

    # --- writing: channel -> socket, at each item's time ---------------------------------------
    async def _write(self, direction: str) -> None:
        writer, channel = self.writers[direction], self.channels[direction]
        try:
            while True:
                item = await channel.get()
                if item is None or self.aborted:
                    break
                at, data = item
                wait = at - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if writer.is_closing():
                    break
                writer.write(data)
                if writer.transport.get_write_buffer_size() > _WRITE_HIGH:
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # This direction is over: close the side it wrote to, which ends the other direction.
            if not self.aborted:
                with contextlib.suppress(ConnectionError, OSError):
                    writer.close()
            channel.close(discard=True)

    def abort(self) -> None:
        """RST both sides now, drop what is scheduled (a ``reset`` fault, or the proxy closing)."""
        self.aborted = True
        for w in self.writers.values():
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()
        for ch in self.channels.values():
            ch.close(discard=True)


class FaultProxy:
    """A message-aware fault-injection proxy for one link (``diameter`` or ``uelink``).

    ``await start()`` listens (port 0: a free one; the bound address is returned); ``await
    close()`` stops listening and aborts the connections. :attr:`paused` turns every fault off
    (and back on) while running. :meth:`stats` gives the counters as JSON values.
    """

    def __init__(self, link: str, listen: Endpoint, target: Endpoint, spec: FaultSpec, *,
                 name: str | None = None, connect_timeout: float = 5.0, max_message_size: int | None = None) -> None:
        for ep in (listen, target):
            if ep.transport != "tcp":
                raise ValueError(f"{ep}: the fault proxy speaks tcp:// only")
        splitter_for(link, spec.scope)  # ValueError for a bad link or scope
        self.link = link
        self.listen_at = listen
        self.target = target
        self.spec = spec
        self.name = name or link
        self.connect_timeout = connect_timeout
        self.max_message_size = max_message_size
        self.paused = False
        self.counters = {d: Counters() for d in DIRECTIONS}
        self.accepted = 0
        self.target_unreachable = 0
        self.resets = 0
        self.log = klog.get("faults", proxy=self.name)
        self._server: asyncio.Server | None = None
        self._conns: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.bound: Endpoint | None = None

    async def start(self) -> Endpoint:
        self._server = await asyncio.start_server(self._accepted, self.listen_at.host, self.listen_at.port)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.bound = Endpoint("tcp", host, port)
        self.log.info("faults_ready", link=self.link, listen=str(self.bound), target=str(self.target),
                      faults=self.spec.as_dict())
        return self.bound

    def set_paused(self, paused: bool) -> None:
        """Faults off (True) or on (False); held messages are released by the next message or
        their hold timer."""
        if paused != self.paused:
            self.paused = paused
            self.log.info("faults_paused" if paused else "faults_resumed")

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        number = self.accepted
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(number, reader, writer)
        except asyncio.CancelledError:
            # close() cancels what is still connecting or flushing; asyncio's stream server
            # reports a handler task's exception, so the cancellation ends here.
            writer.transport.abort()
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _serve(self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            target = await asyncio.wait_for(
                asyncio.open_connection(self.target.host, self.target.port), self.connect_timeout)
        except (OSError, TimeoutError) as exc:
            self.target_unreachable += 1
            self.log.info("faults_target_unreachable", connection=number, error=f"{type(exc).__name__}: {exc}")
            writer.close()
            return
        conn = _Connection(self, number, (reader, writer), target)
        self._conns.add(conn)
        self.log.info("faults_connection", connection=number, peer=writer.get_extra_info("peername"))
        try:
            await conn.run()
        finally:
            self._conns.discard(conn)
            self.log.info("faults_connection_closed", connection=number, reset=conn.aborted)

    async def close(self) -> None:
        """Stop listening, abort every connection (RST), wait for their handlers (bounded)."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            conn.abort()
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=2.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def stats(self) -> dict[str, Any]:
        """Counters and settings as JSON values (``kmed faults --stats``)."""
        return {
            "name": self.name, "link": self.link, "listen": str(self.bound or self.listen_at),
            "target": str(self.target), "paused": self.paused, "faults": self.spec.as_dict(),
            "connections": {"accepted": self.accepted, "active": len(self._conns),
                            "target_unreachable": self.target_unreachable, "resets": self.resets},
            **{d: self.counters[d].as_dict() for d in DIRECTIONS},
        }

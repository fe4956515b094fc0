"""The /metrics endpoint over real loopback sockets: answers, refusals, bounded requests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from kmed import metrics
from tests.test_metrics import parse, value

TIMEOUT_S = 10.0


async def exchange(port: int, request: bytes, host: str = "127.0.0.1") -> bytes:
    """Send ``request``, half-close, and read the whole response (bounded in time)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), TIMEOUT_S)
    finally:
        writer.close()


def split(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, sep, body = response.partition(b"\r\n\r\n")
    assert sep, response[:200]
    lines = head.decode("ascii").split("\r\n")
    version, code, _reason = lines[0].split(" ", 2)
    assert version == "HTTP/1.1"
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(code), headers, body


def serve(scenario: Callable[[int, metrics.CnnMetrics], Awaitable[None]], host: str = "127.0.0.1") -> None:
    """Run ``scenario(port, metric_set)`` against a fresh endpoint on an ephemeral port."""

    async def main() -> None:
        reg = metrics.Registry()
        m = metrics.cnn_metrics(reg)
        server = await metrics.start_metrics_server(host, 0, reg)
        try:
            port = server.sockets[0].getsockname()[1]
            await asyncio.wait_for(scenario(port, m), 60)
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), TIMEOUT_S)

    asyncio.run(main())


def test_get_metrics() -> None:
    async def scenario(port: int, m: metrics.CnnMetrics) -> None:
        m.diameter_requests.labels("AIR", "hss.localdomain").inc(5)
        m.ue_contexts.set(12)
        code, headers, body = split(await exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
        assert code == 200
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        assert int(headers["content-length"]) == len(body)
        assert headers["connection"] == "close"
        fams = parse(body)
        assert value(fams["kmed_diameter_requests_total"], command="AIR", peer="hss.localdomain") == 5
        assert value(fams["kmed_ue_contexts"]) == 12
        # The query string is ignored; HTTP/1.0 clients are served too.
        code, _, body2 = split(await exchange(port, b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n"))
        assert code == 200 and body2 == body

    serve(scenario)


def test_head_has_no_body() -> None:
    async def scenario(port: int, _m: metrics.CnnMetrics) -> None:
        code, headers, body = split(await exchange(port, b"HEAD /metrics HTTP/1.1\r\n\r\n"))
        assert code == 200 and body == b"" and int(headers["content-length"]) > 0

    serve(scenario)


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 404),
        (b"GET /metricsx HTTP/1.1\r\n\r\n", 404),
        (b"GET /metrics/ HTTP/1.1\r\n\r\n", 404),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"HELLO\r\n\r\n", 400),
        (b"GET /metrics SPDY/3\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n", 400),  # EOF before the end of the head
        (b"", 400),
    ],
)
def test_refusals(request_bytes: bytes, expected: int) -> None:
    async def scenario(port: int, _m: metrics.CnnMetrics) -> None:
        code, headers, _ = split(await exchange(port, request_bytes))
        assert code == expected
        assert headers["content-type"].startswith("text/plain")

    serve(scenario)


def test_huge_request_head_refused() -> None:
    async def scenario(port: int, _m: metrics.CnnMetrics) -> None:
        big = b"GET /metrics HTTP/1.1\r\nX-Filler: " + b"a" * 32768 + b"\r\n\r\n"
        code, _, _ = split(await exchange(port, big))
        assert code == 431

    serve(scenario)


def test_endless_request_does_not_hurt_the_server() -> None:
    """Megabytes without a header end: refused or cut off, and the next scrape still works."""

    async def scenario(port: int, _m: metrics.CnnMetrics) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        got = b""
        try:
            for _ in range(64):  # 4 MiB in total, unless the server cuts us off first
                writer.write(b"x" * 65536)
                await asyncio.wait_for(writer.drain(), TIMEOUT_S)
            got = await asyncio.wait_for(reader.read(), TIMEOUT_S)
        except (ConnectionResetError, BrokenPipeError):
            pass  # reset after the response: acceptable
        finally:
            writer.close()
        assert got == b"" or got.startswith(b"HTTP/1.1 431 ")
        code, _, _ = split(await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n"))
        assert code == 200

    serve(scenario)


def test_silent_client_times_out_without_blocking_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "REQUEST_TIMEOUT_S", 0.3)

    async def scenario(port: int, _m: metrics.CnnMetrics) -> None:
        slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", port)
        slow_writer.write(b"GET /metr")  # and then nothing
        await slow_writer.drain()
        # Meanwhile another scrape is answered.
        code, _, _ = split(await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n"))
        assert code == 200
        code, _, _ = split(await asyncio.wait_for(slow_reader.read(), TIMEOUT_S))
        assert code == 408
        slow_writer.close()

    serve(scenario)


def test_connection_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_CONNECTIONS", 1)

    async def scenario(port: int, _m: metrics.CnnMetrics) -> None:
        _, holder = await asyncio.open_connection("127.0.0.1", port)
        try:
            # The holder was accepted first, and its handler holds the one slot while it
            # waits for a request head.
            code, _, _ = split(await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n"))
            assert code == 503
        finally:
            holder.close()

    serve(scenario)


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_loopback() -> None:
    async def scenario(port: int, _m: metrics.CnnMetrics) -> None:
        code, _, body = split(await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n", host="::1"))
        assert code == 200 and "kmed_build_info" in parse(body)

    serve(scenario, host="::1")


def test_handle_request_sans_io() -> None:
    reg = metrics.Registry()
    metrics.hss_metrics(reg)
    code, headers, body = split(metrics.handle_request(b"GET /metrics HTTP/1.1\r\n\r\n", reg))
    assert code == 200 and body == reg.expose() and headers["content-type"] == metrics.CONTENT_TYPE

"""``kmed bench hss``: AIR/AIA throughput and latency of the real HSS daemon.

The HSS runs as its own process (``python -m kmed hss``) on a durable SQLite store
(WAL, synchronous=FULL, group commit) provisioned with ``provision-range``; this process is
the client: one Diameter connection (CER/CEA first), a fixed number of AIRs in flight, one
vector each, for random subscribers of the range. Every answer is decoded and must be
DIAMETER_SUCCESS. Prints answers per second, latency percentiles, the HSS's CPU time per
request and its commit batching.

The machine is shared: figures are indicative; run it a few times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kmed.diameter import codec
from kmed.diameter.message import Message

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"
IMSI_FIRST = "001010000000001"
IMEI_FIRST = "35693803000000"
SEED = "00112233445566778899aabbccddeeff"
PLMN = bytes.fromhex("00f110")
_HBH = struct.Struct(">I")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(root: Path, port: int, log_level: str) -> Path:
    path = root / "hss.toml"
    path.write_text(
        f"""[diameter]
origin_host = "hss.localdomain"
origin_realm = "localdomain"
listen = ["tcp://127.0.0.1:{port}"]
allowed_peers = ["bench.localdomain"]
[store]
url = "sqlite:///{root / 'hss.sqlite'}"
[hss]
max_pending = 100000
[log]
level = "{log_level}"
format = "json"
""",
        encoding="utf-8",
    )
    return path


def provision(config: Path, count: int) -> float:
    """provision-range in-process (the same code as ``kmed admin provision-range``)."""
    from kmed.hss.admin import open_store, provision_range

    store = open_store(str(config))
    try:
        return provision_range(store, count, IMSI_FIRST, IMEI_FIRST, bytes.fromhex(K), bytes.fromhex(OPC),
                               bytes.fromhex(SEED), "A")
    finally:
        store.close()


def start_hss(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start the HSS and wait for systemd's READY=1 on a private NOTIFY_SOCKET."""
    notify_path = config.parent / "notify.sock"
    notify_path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ns:
        ns.bind(str(notify_path))
        ns.settimeout(60)
        env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
        with log_path.open("ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "kmed", "hss", "--config", str(config)],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                msg = ns.recv(4096)
            except TimeoutError:
                break
            if b"READY=1" in msg:
                return proc
        proc.kill()
        raise RuntimeError(f"the HSS did not become ready; see {log_path}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client(asyncio.Protocol):
    """A minimal pipelined S6a client: AIR templates with the IMSI and identifiers patched in."""

    def __init__(self, imsis: list[str], inflight: int, total: int, warmup: int) -> None:
        self.imsis = imsis
        self.inflight = inflight
        self.total = total
        self.warmup = warmup
        self.buf = bytearray()
        self.sent = 0
        self.done = 0
        self.failed = 0
        self.start: dict[int, float] = {}
        self.lat: list[float] = []
        self.t_begin = 0.0
        self.t_end = 0.0
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.cea: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.transport: Any = None
        self.template, self.imsi_at, self.sid_at = self._template()

    @staticmethod
    def _template() -> tuple[bytearray, int, int]:
        imsi = "9" * len(IMSI_FIRST)
        req = Message.request("AIR", None, [
            ("Session-Id", "bench.localdomain;00000000"), ("Auth-Session-State", 1),
            ("Origin-Host", "bench.localdomain"), ("Origin-Realm", "localdomain"),
            ("Destination-Realm", "localdomain"), ("User-Name", imsi), ("Visited-PLMN-Id", PLMN),
            ("Requested-EUTRAN-Authentication-Info",
             [("Number-Of-Requested-Vectors", 1), ("Immediate-Response-Preferred", 0)]),
        ])
        data = bytearray(codec.encode(req))
        return data, data.index(imsi.encode()), data.index(b"00000000")

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        cer = Message.request("CER", None, [
            ("Origin-Host", "bench.localdomain"), ("Origin-Realm", "localdomain"),
            ("Host-IP-Address", "127.0.0.1"), ("Vendor-Id", 32473), ("Product-Name", "kmed-bench"),
            ("Auth-Application-Id", 16777251),
        ], hop_by_hop=0xFFFFFFFF, end_to_end=1)
        transport.write(codec.encode(cer))

    def begin(self) -> None:
        self.t_begin = time.perf_counter()
        self._fill()

    def _fill(self) -> None:
        out = bytearray()
        now = time.perf_counter()
        while self.sent < self.total and self.sent - self.done < self.inflight:
            i = self.sent
            self.sent += 1
            t = self.template
            t[self.imsi_at:self.imsi_at + 15] = random.choice(self.imsis).encode()
            t[self.sid_at:self.sid_at + 8] = b"%08x" % i
            t[12:16] = _HBH.pack(i)
            t[16:20] = _HBH.pack(i)
            self.start[i] = now
            out += t
        if out:
            self.transport.write(bytes(out))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            n = codec.frame_length(self.buf)
            if n is None or len(self.buf) < n:
                break
            frame = bytes(self.buf[:n])
            del self.buf[:n]
            msg = codec.decode(frame)
            if not self.cea.done():
                self.cea.set_result(msg)
                continue
            t0 = self.start.pop(msg.hop_by_hop, None)
            if t0 is None:
                continue
            if msg.result_code() != 2001:
                self.failed += 1
            self.done += 1
            if self.done > self.warmup:
                self.lat.append(time.perf_counter() - t0)
            elif self.done == self.warmup:
                self.t_begin = time.perf_counter()
        if self.done >= self.total:
            self.t_end = time.perf_counter()
            if not self.finished.done():
                self.finished.set_result(None)
        else:
            self._fill()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_exception(ConnectionError("the HSS closed the connection"))


async def run_client(port: int, imsis: list[str], inflight: int, total: int, warmup: int) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: Client(imsis, inflight, total, warmup), "127.0.0.1", port)
    cea = await asyncio.wait_for(client.cea, 10)
    if cea.result_code() != 2001:
        raise RuntimeError(f"CEA result {cea.result_code()}")
    client.begin()
    await asyncio.wait_for(client.finished, 600)
    client.transport.close()
    return client


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="kmed bench hss", description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=1000, help="provisioned with provision-range")
    ap.add_argument("--requests", type=int, default=40000, help="AIRs measured (after a warm-up)")
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                    help="the HSS's log level (info logs one line per request)")
    ap.add_argument("--keep", metavar="DIR", help="use DIR (store reused if present) and keep it")
    args = ap.parse_args(argv)
    from kmed.diameter.transport import install_uvloop

    install_uvloop()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="kmed-bench-hss-"))
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = write_config(root, port, args.log_level)
    fresh = not (root / "hss.sqlite").exists()
    if fresh:
        took = provision(config, args.subscribers)
        print(f"provision-range: {args.subscribers} subscribers, devices and pairs in {took:.1f} s "
              f"({args.subscribers / took:,.0f} per s)")
    log_path = root / "hss.log"
    proc = start_hss(config, log_path)
    try:
        from kmed.crypto.devkeys import imsi_at

        imsis = [imsi_at(IMSI_FIRST, i) for i in range(args.subscribers)]
        warmup = min(2000, args.requests // 10)
        cpu0 = cpu_seconds(proc.pid)
        client = asyncio.run(run_client(port, imsis, args.inflight, args.requests + warmup, warmup))
        cpu1 = cpu_seconds(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            status = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = -9
    elapsed = client.t_end - client.t_begin
    measured = len(client.lat)
    rate = measured / elapsed
    batches = ""
    for line in log_path.read_text(errors="replace").splitlines()[::-1]:
        if '"hss_stopped"' in line:
            import json

            ev = json.loads(line)
            batches = f"{ev['committed'] / max(1, ev['batches']):.1f} requests per commit"
            break
    print(f"AIR/AIA, 1 vector, {args.inflight} in flight, {args.subscribers} subscribers, "
          f"HSS log level {args.log_level}:")
    print(f"  {measured} answers in {elapsed:.2f} s = {rate:,.0f} per s; failed {client.failed}")
    print(f"  latency p50 {pct(client.lat, 50):.2f} ms, p99 {pct(client.lat, 99):.2f} ms, "
          f"max {max(client.lat) * 1000:.2f} ms")
    print(f"  HSS CPU {1e6 * (cpu1 - cpu0) / (args.requests + warmup):.0f} µs per request (all threads); "
          f"{batches}; HSS exit status {status}")
    if not args.keep:
        with contextlib.suppress(OSError):
            shutil.rmtree(root)
    return 0 if client.failed == 0 and status == 0 else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))

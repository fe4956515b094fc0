"""``kmed bench hss``: AIR/AIA throughput and latency of the real HSS daemon.

The HSS runs as its own process (``python -m kmed hss``) on a durable SQLite store
(WAL, synchronous=FULL, group commit) provisioned with ``provision-range``; this process is
the client: one Diameter connection (CER/CEA first), a fixed number of AIRs in flight, one
vector each, for random subscribers of the range. Every answer is decoded and must be
DIAMETER_SUCCESS. Prints answers per second, latency percentiles, the HSS's CPU time per
request and its commit batching.

The machine is shared: figures are indicative; run it a few times. ``--compare N`` measures a
ratio instead, drift cancelled: a second HSS with N subscribers runs beside the first, and the
measured requests go to one HSS then the other in short alternating rounds (issue 4: the rate
with a million subscribers against the rate with 1,000; this machine's speed drifts by ±15 %
within minutes, so separate runs cannot tell a 15 % difference).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from kmed.bench.callgrind import Callgrind
from kmed.diameter import codec
from kmed.diameter.message import Message
from kmed.load.procinfo import children, tree_cpu_s

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


def write_config(root: Path, port: int, log_level: str, cache: int | None = None, writer: str | None = None) -> Path:
    path = root / "hss.toml"
    path.write_text(
        f"""[diameter]
origin_host = "hss.localdomain"
origin_realm = "localdomain"
listen = ["tcp://127.0.0.1:{port}"]
allowed_peers = ["bench.localdomain"]
[store]
url = "sqlite:///{root / 'hss.sqlite'}"
{"" if writer is None else f'writer = "{writer}"'}
[hss]
max_pending = 100000
{"" if cache is None else f"cache_subscribers = {cache}"}
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


def start_hss(config: Path, log_path: Path, prefix: list[str] | None = None) -> subprocess.Popen[bytes]:
    """Start the HSS (under ``prefix``, e.g. valgrind, if given) and wait for systemd's READY=1
    on a private NOTIFY_SOCKET."""
    notify_path = config.parent / "notify.sock"
    notify_path.unlink(missing_ok=True)
    wait = 600 if prefix else 60
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ns:
        ns.bind(str(notify_path))
        ns.settimeout(wait)
        env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
        with log_path.open("ab") as log:
            proc = subprocess.Popen([*(prefix or []), sys.executable, "-m", "kmed", "hss", "--config", str(config)],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                msg = ns.recv(4096)
            except TimeoutError:
                break
            if b"READY=1" in msg:
                return proc
        proc.kill()
        raise RuntimeError(f"the HSS did not become ready; see {log_path}")


def thread_times(pid: int, kids: list[int]) -> dict[str, tuple[float, float]]:
    """Per thread of a process and of its children ("main" or "NAME TID", prefixed with
    "child PID " for a child's): seconds on a CPU and seconds runnable but waiting for one, from
    /proc/PID/task/*/schedstat. What is neither is time the thread slept: waiting for the GIL,
    for a lock, for I/O, or idle."""
    out: dict[str, tuple[float, float]] = {}
    for p in [pid, *kids]:
        prefix = "" if p == pid else f"child {p} "
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                name = "main" if task.name == str(p) else f"{(task / 'comm').read_text().strip()} {task.name}"
                run_ns, wait_ns = (int(v) for v in (task / "schedstat").read_text().split()[:2])
            except (OSError, ValueError):
                continue  # the thread ended, or no schedstat (kernel without CONFIG_SCHEDSTATS)
            out[prefix + name] = (run_ns / 1e9, wait_ns / 1e9)
    return out


class Client(asyncio.Protocol):
    """A minimal pipelined S6a client: AIR templates with the IMSI and identifiers patched in.

    Runs in phases (:meth:`run`): the warm-up, then the measured requests, with every answer
    of a phase in before the next starts (so counters can be read in between)."""

    def __init__(self, imsi_first: str, count: int, inflight: int) -> None:
        # IMSIs drawn as numbers, not from a list: with a million of them, a list of strings
        # would cost the client a cache miss per request, CPU taken from the HSS on this
        # 2-core machine (~3 µs per request, measured) and not from the 1,000 run it is compared with.
        self.imsi_first = int(imsi_first)
        self.imsi_format = b"%0" + str(len(imsi_first)).encode() + b"d"
        self.count = count
        self.inflight = inflight
        self.buf = bytearray()
        self.sent = 0
        self.done = 0
        self.target = 0
        self.failed = 0
        self.start: dict[int, float] = {}
        self.lat: list[float] = []
        self.t_begin = 0.0
        self.t_end = 0.0
        self.finished: asyncio.Future[None] | None = None
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

    def run(self, count: int, measure: bool) -> asyncio.Future[None]:
        """Send ``count`` AIRs (``inflight`` at a time); latencies are kept when ``measure``."""
        self.finished = asyncio.get_running_loop().create_future()
        self.target = self.sent + count
        self.measure = measure
        self.t_begin = self.t_end = time.perf_counter()
        if count <= 0:  # nothing to send: no answer would ever end the phase
            self.finished.set_result(None)
            return self.finished
        self._fill()
        return self.finished

    def _fill(self) -> None:
        out = bytearray()
        now = time.perf_counter()
        t = self.template
        ia, sa = self.imsi_at, self.sid_at
        first, count, fmt, draw = self.imsi_first, self.count, self.imsi_format, random.randrange
        while self.sent < self.target and self.sent - self.done < self.inflight:
            i = self.sent
            self.sent += 1
            t[ia:ia + 15] = fmt % (first + draw(count))
            t[sa:sa + 8] = b"%08x" % i
            t[12:16] = t[16:20] = _HBH.pack(i)
            self.start[i] = now
            out += t
        if out:
            self.transport.write(bytes(out))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        now = time.perf_counter()
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
            if self.measure:
                self.lat.append(now - t0)
        if self.finished is None or self.finished.done():
            return
        if self.done >= self.target:
            self.t_end = time.perf_counter()
            self.finished.set_result(None)
        else:
            self._fill()

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.cea, self.finished):
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionError("the HSS closed the connection"))


@dataclass
class Measured:
    """One measured phase: the client (with its latencies), elapsed seconds, CPU seconds of the
    HSS process (all threads) and of this client, the HSS's instructions (callgrind) or None."""

    client: Client
    requests: int
    elapsed: float
    hss_cpu_s: float
    client_cpu_s: float
    instructions: int | None
    threads: dict[str, tuple[float, float]]


async def connect(port: int, active: int, inflight: int, warmup: int, cea_timeout: float = 10) -> Client:
    """A client for random subscribers among the first ``active`` of the range: connected,
    CER/CEA done, ``warmup`` AIRs answered."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(partial(Client, IMSI_FIRST, active, inflight), "127.0.0.1", port)
    cea = await asyncio.wait_for(client.cea, cea_timeout)
    if cea.result_code() != 2001:
        raise RuntimeError(f"CEA result {cea.result_code()}")
    await asyncio.wait_for(client.run(warmup, measure=False), 3600)
    return client


async def run_client(port: int, active: int, inflight: int, requests: int, warmup: int, pid: int,
                     callgrind: Callgrind | None = None) -> Measured:
    """AIRs for random subscribers among the first ``active`` of the range."""
    loop = asyncio.get_running_loop()
    client = await connect(port, active, inflight, warmup, 600 if callgrind else 10)
    if callgrind is not None:
        await loop.run_in_executor(None, callgrind.zero)
    kids = children(pid)  # the writer child, read once per sample
    cpu0, own0, threads0 = tree_cpu_s(pid, kids), time.process_time(), thread_times(pid, kids)
    await asyncio.wait_for(client.run(requests, measure=True), 3600)
    kids = children(pid)
    cpu1, own1, threads1 = tree_cpu_s(pid, kids), time.process_time(), thread_times(pid, kids)
    threads = {name: (run - threads0.get(name, (0.0, 0.0))[0], wait - threads0.get(name, (0.0, 0.0))[1])
               for name, (run, wait) in threads1.items()}
    instructions = await loop.run_in_executor(None, callgrind.dump) if callgrind is not None else None
    client.transport.close()
    return Measured(client, requests, client.t_end - client.t_begin, cpu1 - cpu0, own1 - own0, instructions,
                    threads)


def drawn(args: argparse.Namespace, subscribers: int) -> int:
    """How many subscribers of a range of ``subscribers`` the AIRs are drawn from (--active)."""
    return min(args.active or subscribers, subscribers)


def print_header(args: argparse.Namespace, what: str) -> None:
    """The first two lines of a report: what ran (``what``, ending in its separator), with which
    HSS settings, on what machine; and the code measured."""
    from kmed.bench.machine import code_origin, load_average

    print(f"kmed bench hss{what} HSS log level {args.log_level}, "
          f"read cache {'default' if args.cache is None else args.cache}, writer {args.writer or 'default'}; "
          f"{os.cpu_count()} CPUs, load average {load_average()}")
    print(f"  code {code_origin()}")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="kmed bench hss", description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=1000, help="provisioned with provision-range")
    ap.add_argument("--requests", type=int, default=40000, help="AIRs measured (after a warm-up)")
    ap.add_argument("--warmup", type=int, default=2000, help="AIRs before measuring")
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--active", type=int, default=None, metavar="N",
                    help="AIRs for random subscribers among the first N of the range only (default: all of "
                         "it): the store's size apart from the spread of the traffic")
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                    help="the HSS's log level (docs/hss.md: per-request events are debug)")
    ap.add_argument("--cache", type=int, default=None, metavar="N",
                    help="the HSS's hss.cache_subscribers (default: the HSS's default; 0 = every read from the "
                         "store). Random subscribers of a large range miss the cache: compare store scaling with 0")
    ap.add_argument("--writer", choices=["process", "thread"], default=None,
                    help="the HSS's [store] writer (default: the HSS's default, process)")
    ap.add_argument("--keep", metavar="DIR", help="use DIR (store reused if present) and keep it")
    ap.add_argument("--compare", type=int, default=None, metavar="N",
                    help="also start an HSS with N subscribers (a fresh store) and alternate the measured requests "
                         "between the two in --rounds rounds; prints both rates and their ratio")
    ap.add_argument("--rounds", type=int, default=6,
                    help="rounds of --compare (each HSS gets --requests / rounds per round)")
    ap.add_argument("--settle", type=float, default=1.5, metavar="S",
                    help="--compare: pause before each round (longer than the HSS's WAL checkpoint interval, 1 s)")
    ap.add_argument("--callgrind", action="store_true",
                    help="run the HSS under valgrind's callgrind and print its instructions per request "
                         "(repeatable on a loaded machine; about 50x slower: use fewer requests)")
    args = ap.parse_args(argv)
    from kmed.diameter.transport import install_uvloop

    install_uvloop()
    if args.inflight < 1 or args.warmup < 0 or args.requests < 1:
        ap.error("--inflight and --requests take at least 1, --warmup at least 0")
    if args.compare is not None:
        if args.callgrind:
            ap.error("--compare and --callgrind do not go together")
        if args.compare < 1 or args.subscribers < 1:
            ap.error("--compare and --subscribers take at least 1")
        if args.rounds < 1 or args.requests < args.rounds:
            ap.error("--rounds takes at least 1, and --requests at least as many as --rounds")
        return compare(args)
    callgrind = Callgrind() if args.callgrind else None
    hss = Hss.prepare(Path(args.keep) if args.keep else None, args.subscribers, args)
    hss.start(callgrind.prefix() if callgrind else None)
    if callgrind is not None:
        callgrind.pid = hss.pid  # valgrind runs the program in its own process
    try:
        active = drawn(args, args.subscribers)
        run = asyncio.run(run_client(hss.port, active, args.inflight, args.requests, args.warmup, hss.pid, callgrind))
    finally:
        status = hss.stop(120 if callgrind else 30)
        if callgrind is not None:
            callgrind.close()
    client = run.client
    rate = run.requests / run.elapsed
    warmed, batches = hss.logged()
    only = "" if args.active is None else f" (AIRs for the first {active} only)"
    print_header(args, f": AIR/AIA, 1 vector, {args.inflight} in flight, {args.subscribers} subscribers{only},")
    print(f"  HSS ready in {hss.ready_s:.1f} s{warmed}")
    print(f"  {run.requests} answers in {run.elapsed:.2f} s = {rate:,.0f} per s; failed {client.failed}")
    print(f"  latency p50 {pct(client.lat, 50):.2f} ms, p99 {pct(client.lat, 99):.2f} ms, "
          f"max {max(client.lat) * 1000:.2f} ms")
    print(f"  HSS CPU {1e6 * run.hss_cpu_s / run.requests:.1f} µs per request (all threads, writer process included), "
          f"client CPU {1e6 * run.client_cpu_s / run.requests:.1f} µs{batches}; HSS exit status {status}")
    for name, (on_cpu, runnable) in sorted(run.threads.items(), key=lambda kv: -kv[1][0]):
        if on_cpu * 1e6 / run.requests < 0.5:
            continue
        slept = max(0.0, run.elapsed - on_cpu - runnable)
        print(f"  thread {name}: {1e6 * on_cpu / run.requests:.1f} µs on a CPU per request; of the wall "
              f"{100 * on_cpu / run.elapsed:.0f}% on a CPU, {100 * runnable / run.elapsed:.0f}% waiting for one, "
              f"{100 * slept / run.elapsed:.0f}% asleep (GIL, locks, I/O, idle)")
    if run.instructions is not None:
        print(f"  HSS instructions per request (callgrind, all threads): {run.instructions / run.requests:,.0f} "
              "(rates and times above are those of the instrumented HSS)")
    hss.remove()
    return 0 if client.failed == 0 and status == 0 else 1


class Hss:
    """One HSS of the benchmark: its directory (``keep``: a store kept between runs), config,
    process and log."""

    def __init__(self, root: Path, keep: bool, port: int, config: Path) -> None:
        self.root = root
        self.keep = keep
        self.port = port
        self.config = config
        self.log_path = root / "hss.log"
        self.log_from = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s = 0.0

    @classmethod
    def prepare(cls, keep: Path | None, subscribers: int, args: argparse.Namespace) -> Hss:
        """Write the config, and provision the store unless ``keep`` holds one already."""
        root = keep or Path(tempfile.mkdtemp(prefix="kmed-bench-hss-"))
        root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        hss = cls(root, keep is not None, port, write_config(root, port, args.log_level, args.cache, args.writer))
        if not (root / "hss.sqlite").exists():
            try:
                took = provision(hss.config, subscribers)
            except BaseException:
                hss.remove()
                raise
            print(f"provision-range: {subscribers} subscribers, devices and pairs in {took:.1f} s "
                  f"({subscribers / took:,.0f} per s)")
        return hss

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, prefix: list[str] | None = None) -> None:
        """Start it and wait until it is ready (READY=1)."""
        self.log_from = self.log_path.stat().st_size if self.log_path.exists() else 0  # this run's lines only
        started = time.monotonic()
        self.proc = start_hss(self.config, self.log_path, prefix)
        self.ready_s = time.monotonic() - started

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then its exit status (-9: killed after ``timeout``; 0 if never started)."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9

    def logged(self) -> tuple[str, str]:
        """From this run's log lines: the warm-up, and the commit batching and cache hits."""
        warmed = batches = ""
        with self.log_path.open("rb") as f:
            f.seek(self.log_from)
            lines = f.read().decode(errors="replace").splitlines()
        for line in lines:
            if '"hss_cache_warmed"' in line:
                ev = json.loads(line)
                warmed = f", read cache warmed with {ev['cached']:,} subscribers in {ev['seconds']:.1f} s"
            if '"hss_stopped"' in line:
                ev = json.loads(line)
                batches = f"; {ev['committed'] / max(1, ev['batches']):.1f} requests per commit (whole run)"
                if "cache_hits" in ev:
                    looked = max(1, ev["cache_hits"] + ev["cache_misses"])
                    batches += f"; read cache hits {100 * ev['cache_hits'] / looked:.0f}%"
        return warmed, batches

    def remove(self) -> None:
        """Delete its directory unless it was given to keep."""
        if not self.keep:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.root)


@dataclass
class Side:
    """What --compare measured of one HSS: each round's rate, its client (latencies of all
    rounds), and the CPU seconds its process tree and its event-loop thread spent in them."""

    rates: list[float]
    client: Client
    cpu_s: float = 0.0
    loop_s: float = 0.0


async def alternate(hsss: list[Hss], actives: list[int], args: argparse.Namespace) -> list[Side]:
    """--compare: a client per HSS (CER, warm-up), then ``args.rounds`` rounds in which each HSS
    in turn gets its share of the measured requests (the order flips every round)."""
    clients = [await connect(hss.port, active, args.inflight, args.warmup)
               for hss, active in zip(hsss, actives, strict=True)]
    per_round = args.requests // args.rounds
    sides = [Side([], client) for client in clients]
    kids = [children(hss.pid) for hss in hsss]  # the writer child
    # CPU is counted from the end of an HSS's previous round: the pause's deferred work is its
    # own. The warm-ups' deferred work is let go first.
    await asyncio.sleep(args.settle)
    marks = [thread_times(hss.pid, k) for hss, k in zip(hsss, kids, strict=True)]
    for r in range(args.rounds):
        order = list(range(len(hsss)))
        for i in order if r % 2 == 0 else order[::-1]:
            # The HSS measured last finishes its deferred work first (its WAL checkpoint comes
            # up to a second after its commits), so that it does not run in the next round.
            await asyncio.sleep(args.settle)
            side = sides[i]
            await asyncio.wait_for(side.client.run(per_round, measure=True), 3600)
            before, after = marks[i], thread_times(hsss[i].pid, kids[i])
            marks[i] = after
            side.rates.append(per_round / (side.client.t_end - side.client.t_begin))
            side.cpu_s += sum(run for run, _ in after.values()) - sum(run for run, _ in before.values())
            side.loop_s += after.get("main", (0.0, 0.0))[0] - before.get("main", (0.0, 0.0))[0]
    for client in clients:
        client.transport.close()
    return sides


def compare(args: argparse.Namespace) -> int:
    """``--compare N``: the HSS of ``--subscribers`` against one of N subscribers (module doc)."""
    sizes = [args.subscribers, args.compare]
    hsss: list[Hss] = []
    try:
        hsss.append(Hss.prepare(Path(args.keep) if args.keep else None, args.subscribers, args))
        hsss.append(Hss.prepare(None, args.compare, args))
        try:
            for hss in hsss:
                hss.start()
            actives = [drawn(args, n) for n in sizes]
            results = asyncio.run(alternate(hsss, actives, args))
        finally:
            statuses = [hss.stop() for hss in hsss]
        return _report(args, sizes, hsss, results, statuses)
    finally:
        for hss in hsss:
            hss.remove()


def _report(args: argparse.Namespace, sizes: list[int], hsss: list[Hss], results: list[Side],
            statuses: list[int]) -> int:
    """Print what --compare measured; the exit status."""
    rounds = len(results[0].rates)
    print_header(args, f" --compare: AIR/AIA, 1 vector, {args.inflight} in flight, {rounds} rounds of "
                       f"{args.requests // rounds} requests per HSS, alternating;")
    overall: list[float] = []
    failed = 0
    for n, hss, side in zip(sizes, hsss, results, strict=True):
        warmed, _ = hss.logged()
        rates, client = side.rates, side.client
        overall.append(len(rates) / sum(1 / r for r in rates))  # equal requests per round: harmonic mean
        failed += client.failed
        measured = len(rates) * (args.requests // rounds)
        print(f"  {n:,} subscribers: {overall[-1]:,.0f} answers per s; latency p50 {pct(client.lat, 50):.2f} ms, "
              f"p99 {pct(client.lat, 99):.2f} ms; failed {client.failed}; HSS CPU {1e6 * side.cpu_s / measured:.1f} µs "
              f"per request, its event loop {1e6 * side.loop_s / measured:.1f} µs; HSS ready in {hss.ready_s:.1f} s"
              f"{warmed}")
        print(f"    rounds: {' / '.join(f'{r:,.0f}' for r in rates)}")
    pairs = sorted(100 * a / b for a, b in zip(results[0].rates, results[1].rates, strict=True))
    print(f"  {sizes[0]:,} subscribers at {100 * overall[0] / overall[1]:.1f} % of the rate with {sizes[1]:,} "
          f"(round by round: median {statistics.median(pairs):.1f} %, {pairs[0]:.0f}–{pairs[-1]:.0f} %)")
    return 0 if failed == 0 and statuses == [0, 0] else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))

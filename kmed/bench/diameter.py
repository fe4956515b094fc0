"""``kmed bench diameter``: S6a AIR/AIA round trips per second on loopback.

The server runs in its own process and answers every AIR with an AIA built per request
(one E-UTRAN vector and the KME AVPs; no HSS logic). Three servers are measured:

- ``kmed``: the real :class:`~kmed.diameter.server.DiameterServer` (peer layer, kmed codec),
  answering as the HSS does: constant AVPs encoded once, the vector through a template
  (:mod:`kmed.diameter.s6a`);
- ``kmed-generic``: the same server with every AVP of the answer encoded from its value;
- ``python-diameter``: python-diameter's codec decoding the AIR and encoding the AIA, on the
  same kind of asyncio framing (no peer layer: this favours it slightly).

The load client (this process) is deliberately minimal so that it is not the bottleneck: AIRs
are encoded once, each send only patches the hop-by-hop id, answers are matched by hop-by-hop
id without decoding, and ``--inflight`` requests (default 64) are kept pipelined on one
connection. Printed: requests per second, server CPU microseconds per request (from
``resource.getrusage`` in the server process, user and system time; less noisy than
throughput on a shared machine), p50/p99 latency; with ``--callgrind`` the server's
instructions per request (repeatable whatever the machine's load: :mod:`kmed.bench.callgrind`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kmed.bench.callgrind import Callgrind
from kmed.bench.machine import code_origin, load_average
from kmed.diameter import dictionary as d
from kmed.diameter.codec import encode, encode_avps
from kmed.diameter.message import Message
from kmed.diameter.node import LocalNode
from kmed.diameter.s6a import answer_head, authentication_info

DESCRIPTION = "S6a AIR/AIA round trips per second on loopback (kmed vs python-diameter server codec)"
MME = "mme.bench.localdomain"
HSS = "hss.bench.localdomain"
REALM = "bench.localdomain"
MODES = ("kmed", "kmed-generic", "python-diameter")


# ------------------------------------------------------------------------------- messages


def air_templates(count: int) -> list[bytes]:
    """``count`` distinct encoded AIRs (hop-by-hop id 0, patched per send)."""

    out = []
    for i in range(count):
        imsi = f"00101{i:010d}"
        msg = Message.request("AIR", None, [
            ("Session-Id", f"{MME};bench;{i}"),
            ("Vendor-Specific-Application-Id", [("Vendor-Id", d.VENDOR_3GPP), ("Auth-Application-Id", d.APP_S6A)]),
            ("Auth-Session-State", 1), ("Origin-Host", MME), ("Origin-Realm", REALM),
            ("Destination-Host", HSS), ("Destination-Realm", REALM), ("User-Name", imsi),
            ("Visited-PLMN-Id", b"\x00\xf1\x10"),
            ("Requested-EUTRAN-Authentication-Info", [("Number-Of-Requested-Vectors", 1),
                                                      ("Immediate-Response-Preferred", 1)]),
            ("KME-Check", bytes(16)), ("KME-Check-Identity", imsi.encode()),
        ], end_to_end=i + 1)
        out.append(encode(msg))
    return out


def kmed_aia(req: Any, _peer: Any) -> Any:
    """The kmed server's handler: read what an HSS reads, answer with an AIA built as the HSS
    builds its own (constant AVPs encoded once, the vector through a template: kmed.diameter.s6a)."""
    user = req.get("User-Name")
    req.get("Visited-PLMN-Id")
    info = req.group("Requested-EUTRAN-Authentication-Info")
    n = info.get("Number-Of-Requested-Vectors", 1) if info is not None else 1
    vectors = [(i + 1, _RAND, _XRES, _AUTN, _KASME, d.KME_BINDING_BOUND_TO_CURRENT) for i in range(n)]
    return Message.answer_to(req, [
        answer_head(), _ORIGIN, authentication_info(vectors),
        _STATUS[d.KME_STATUS_MATCH if user else d.KME_STATUS_PROVISIONING_REQUIRED],
    ])


def kmed_generic_aia(req: Any, _peer: Any) -> Any:
    """The same answer with every AVP encoded from its value (the codec's generic path)."""
    user = req.get("User-Name")
    req.get("Visited-PLMN-Id")
    info = req.group("Requested-EUTRAN-Authentication-Info")
    n = info.get("Number-Of-Requested-Vectors", 1) if info is not None else 1
    vectors = [("E-UTRAN-Vector", [("Item-Number", i + 1), ("RAND", _RAND), ("XRES", _XRES), ("AUTN", _AUTN),
                                   ("KASME", _KASME), ("KME-Binding", d.KME_BINDING_BOUND_TO_CURRENT)])
               for i in range(n)]
    return Message.answer_to(req, [
        ("Vendor-Specific-Application-Id", [("Vendor-Id", d.VENDOR_3GPP), ("Auth-Application-Id", d.APP_S6A)]),
        ("Result-Code", d.DIAMETER_SUCCESS), ("Auth-Session-State", 1),
        ("Origin-Host", HSS), ("Origin-Realm", REALM),
        ("Authentication-Info", vectors),
        ("KME-Status", d.KME_STATUS_MATCH if user else d.KME_STATUS_PROVISIONING_REQUIRED),
    ])


def _constants() -> tuple[bytes, dict[int, bytes]]:
    status = {v: encode_avps([("KME-Status", v)])
              for v in (d.KME_STATUS_MATCH, d.KME_STATUS_PROVISIONING_REQUIRED)}
    return LocalNode(HSS, REALM).origin_avps, status


_ORIGIN, _STATUS = _constants()
_RAND, _XRES, _AUTN, _KASME = os.urandom(16), os.urandom(8), os.urandom(16), os.urandom(32)


# ------------------------------------------------------------------------------- servers


def _frames(buf: bytearray, on_frame: Callable[[bytes], None]) -> None:
    """Split complete Diameter messages off ``buf`` (RFC 6733 §3 length) and hand them on."""
    pos = 0
    n = len(buf)
    while n - pos >= 4:
        length = int.from_bytes(buf[pos + 1:pos + 4], "big")
        if length < 20 or n - pos < length:
            break
        on_frame(bytes(buf[pos:pos + length]))
        pos += length
    del buf[:pos]


class _PythonDiameterServer(asyncio.Protocol):
    """python-diameter's codec on asyncio framing: CER -> CEA, AIR -> AIA."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: Any = None
        self.out: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        _frames(self.buf, self.frame)
        if self.out:
            self.transport.write(b"".join(self.out))
            self.out.clear()

    def frame(self, data: bytes) -> None:
        from diameter.message import Message as PdMessage
        from diameter.message.avp.grouped import AuthenticationInfo, EUtranVector, VendorSpecificApplicationId
        from diameter.message.constants import E_RESULT_CODE_DIAMETER_SUCCESS

        msg = PdMessage.from_bytes(data)
        ans = msg.to_answer()
        ans.origin_host = HSS.encode()
        ans.origin_realm = REALM.encode()
        ans.result_code = E_RESULT_CODE_DIAMETER_SUCCESS
        if msg.header.command_code == 257:  # CER
            ans.host_ip_address = ["127.0.0.1"]
            ans.vendor_id = 32473
            ans.product_name = "python-diameter bench"
            ans.auth_application_id = [16777251]
        else:  # AIR
            _ = msg.user_name, msg.visited_plmn_id
            info = msg.requested_eutran_authentication_info
            n = (info.number_of_requested_vectors or 1) if info is not None else 1
            ans.session_id = msg.session_id
            ans.auth_session_state = 1
            ans.vendor_specific_application_id = VendorSpecificApplicationId(vendor_id=10415,
                                                                             auth_application_id=16777251)
            ans.authentication_info = AuthenticationInfo(e_utran_vector=[
                EUtranVector(item_number=i + 1, rand=_RAND, xres=_XRES, autn=_AUTN, kasme=_KASME)
                for i in range(n)])
        self.out.append(ans.as_bytes())


def _server_main(mode: str, profile: str | None = None) -> None:
    """Server process (``python -m kmed.bench.diameter --serve MODE``): serve on 127.0.0.1:0,
    print ``ready PORT UVLOOP``, then answer ``cpu`` lines on stdin with the process CPU time
    and stop on ``stop`` (or end of input)."""
    if profile:
        import cProfile

        cProfile.runctx("_server_main(mode)", globals(), {"mode": mode}, profile)
        return
    from kmed import log
    from kmed.diameter.transport import install_uvloop

    log.setup("warning")
    uvloop = install_uvloop()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        if mode.startswith("kmed"):
            from kmed.config import Endpoint
            from kmed.diameter.node import LocalNode
            from kmed.diameter.server import DiameterServer

            handler = kmed_aia if mode == "kmed" else kmed_generic_aia
            server = DiameterServer(LocalNode(HSS, REALM), [Endpoint("tcp", "127.0.0.1", 0)], [MME], handler)
            await server.start()
            port = server.ports[0]
        else:
            srv = await loop.create_server(_PythonDiameterServer, "127.0.0.1", 0)
            port = srv.sockets[0].getsockname()[1]
        print(f"ready {port} {int(uvloop)} {os.getpid()}", flush=True)

        def control() -> None:  # a thread: blocking reads of the control pipe
            for line in sys.stdin:
                if line.strip() == "cpu":
                    ru = resource.getrusage(resource.RUSAGE_SELF)
                    print(f"{ru.ru_utime:.6f} {ru.ru_stime:.6f}", flush=True)
                else:
                    break
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=control, daemon=True).start()
        await stop.wait()
        if mode.startswith("kmed"):
            await server.stop(1.0)

    asyncio.run(serve())


class _ServerProcess:
    """The server subprocess and its line-based control channel (under callgrind if given)."""

    def __init__(self, mode: str, profile: str | None, callgrind: Callgrind | None = None) -> None:
        cmd = [sys.executable, "-m", "kmed.bench.diameter", "--serve", mode]
        if profile:
            cmd += ["--profile", profile]
        if callgrind is not None:
            cmd = callgrind.prefix() + cmd
        self.callgrind = callgrind
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self._readline(600 if callgrind else 60)
        tag, port, uv, pid = line.split()
        if tag != "ready":
            raise RuntimeError(f"{mode} server: unexpected {line!r}")
        self.port, self.uvloop = int(port), bool(int(uv))
        if callgrind is not None:
            callgrind.pid = int(pid)

    def _readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        ready, _w, _x = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"bench server exited or did not answer (status {self.proc.poll()})")
        return line

    def cpu(self) -> tuple[float, float]:
        """The server's (user, system) CPU seconds so far."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("cpu\n")
        self.proc.stdin.flush()
        user, system = self._readline(30).split()
        return float(user), float(system)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("stop\n")
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


# ------------------------------------------------------------------------------- load client


class _LoadClient(asyncio.Protocol):
    """Minimal pipelining client: CER once, then AIRs with patched hop-by-hop ids."""

    def __init__(self, cer: bytes, templates: list[bytes], inflight: int) -> None:
        self.cer = cer
        self.templates = templates
        self.inflight = inflight
        self.buf = bytearray()
        self.transport: Any = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[None] | None = None
        self.seq = 0
        self.target = 0
        self.answered = 0
        self.errors = 0
        self.sent_at: dict[int, float] = {}
        self.latencies: list[float] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.cer)

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.opened, self.done):
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionError(f"server closed the connection: {exc}"))

    def run(self, count: int) -> asyncio.Future[None]:
        """Send ``count`` requests, ``inflight`` at a time; the future completes with the last answer."""
        self.done = asyncio.get_running_loop().create_future()
        self.answered = 0
        self.target = count
        self.latencies = []
        self._send(min(self.inflight, count))
        return self.done

    def _send(self, n: int) -> None:
        if n <= 0:
            return
        now = time.perf_counter()
        templates = self.templates
        out = []
        for _ in range(n):
            seq = self.seq = (self.seq + 1) & 0xFFFFFFFF
            t = templates[seq % len(templates)]
            out.append(t[:12] + seq.to_bytes(4, "big") + t[16:])
            self.sent_at[seq] = now
        self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        buf = self.buf
        pos, n = 0, len(buf)
        got = 0
        now = time.perf_counter()
        while n - pos >= 20:
            length = int.from_bytes(buf[pos + 1:pos + 4], "big")
            if n - pos < length:
                break
            if not self.opened.done():
                self.opened.set_result(None)  # the CEA
            else:
                hbh = int.from_bytes(buf[pos + 12:pos + 16], "big")
                t0 = self.sent_at.pop(hbh, None)
                if t0 is not None:
                    self.latencies.append(now - t0)
                    if buf[pos + 4] & 0x20:
                        self.errors += 1
                    got += 1
            pos += length
        del buf[:pos]
        if got and self.done is not None:
            self.answered += got
            remaining = self.target - self.answered - len(self.sent_at)
            self._send(min(got, remaining))
            if self.answered >= self.target and not self.done.done():
                self.done.set_result(None)


@dataclass
class Result:
    mode: str
    requests: int
    seconds: float
    server_cpu_s: float
    server_sys_s: float
    client_cpu_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_instructions: int | None = None

    @property
    def instructions(self) -> float | None:
        """Server instructions per request (callgrind), or None."""
        return None if self.server_instructions is None else self.server_instructions / self.requests

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.server_cpu_s / self.requests * 1e6

    @property
    def sys_us(self) -> float:
        return self.server_sys_s / self.requests * 1e6

    @property
    def client_cpu_us(self) -> float:
        return self.client_cpu_s / self.requests * 1e6


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


async def _load(port: int, server: _ServerProcess, requests: int, warmup: int, inflight: int) -> Result:
    from kmed.diameter.node import LocalNode
    from kmed.diameter.peer import Peer, Role, Send

    cer_action = Peer(LocalNode(MME, REALM), Role.INITIATOR, local_addresses=["127.0.0.1"]).start(0.0)[0]
    assert isinstance(cer_action, Send)
    loop = asyncio.get_running_loop()
    templates = air_templates(1024)
    transport, client = await loop.create_connection(
        lambda: _LoadClient(cer_action.data, templates, inflight), "127.0.0.1", port)
    try:
        await asyncio.wait_for(client.opened, 10)
        await asyncio.wait_for(client.run(warmup), 600)
        if server.callgrind is not None:
            server.callgrind.zero()
        cpu0 = server.cpu()
        t0, own0 = time.perf_counter(), time.process_time()
        await asyncio.wait_for(client.run(requests), 3600)
        elapsed, own1 = time.perf_counter() - t0, time.process_time()
        cpu1 = server.cpu()
        instructions = server.callgrind.dump() if server.callgrind is not None else None
    finally:
        transport.close()
    lat = client.latencies
    return Result("", requests, elapsed, (cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1]), cpu1[1] - cpu0[1],
                  own1 - own0, _percentile(lat, 0.5) * 1e3,
                  _percentile(lat, 0.99) * 1e3, client.errors, instructions)


def run_mode(mode: str, requests: int, warmup: int, inflight: int,
             profile: str | None = None, callgrind: Callgrind | None = None) -> tuple[Result, bool]:
    """One measured run against a fresh server process (profiled into ``profile`` if given,
    run under ``callgrind`` if given: then the result has the server's instruction count)."""
    from kmed.diameter.transport import install_uvloop

    server = _ServerProcess(mode, profile, callgrind)
    try:
        install_uvloop()
        result = asyncio.run(_load(server.port, server, requests, warmup, inflight))
        result.mode = mode
        return result, server.uvloop
    finally:
        server.close()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="kmed bench diameter", description=DESCRIPTION)
    p.add_argument("--requests", type=int, default=60000, help="measured AIRs for the kmed server")
    p.add_argument("--pd-requests", type=int, default=3000, help="measured AIRs for the python-diameter server")
    p.add_argument("--warmup", type=int, default=3000, help="AIRs before measuring (kmed; 1/10 for python-diameter)")
    p.add_argument("--inflight", type=int, default=64, help="requests kept in flight")
    p.add_argument("--mode", choices=[*MODES, "all", "both"], default="all",
                   help="which server to measure (both: kmed and python-diameter)")
    p.add_argument("--profile", metavar="FILE", help="cProfile the server into FILE.<mode> (slows it down)")
    p.add_argument("--callgrind", action="store_true",
                   help="run the server under valgrind's callgrind and print its instructions per request "
                        "(repeatable on a loaded machine; about 50x slower, so fewer requests are enough)")
    p.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)  # the server subprocess
    args = p.parse_args(argv)
    if args.serve:
        _server_main(args.serve, args.profile)
        return 0
    modes = {"all": MODES, "both": ("kmed", "python-diameter")}.get(args.mode, (args.mode,))
    print(f"kmed bench diameter: AIR/AIA round trips on loopback, {args.inflight} in flight on one connection; "
          f"server and load client in separate processes; {os.cpu_count()} CPUs, load average "
          f"{load_average()} (shared: figures are noisy); code {code_origin()}")
    print(f"{'server':<16} {'requests':>9} {'req/s':>9} {'server CPU µs/req':>18} {'(of which sys)':>15} "
          f"{'client CPU µs/req':>18} {'p50 ms':>8} {'p99 ms':>8}  errors"
          + ("  server instructions/req" if args.callgrind else ""))
    for mode in modes:
        n = args.requests if mode.startswith("kmed") else args.pd_requests
        warm = args.warmup if mode.startswith("kmed") else max(100, args.warmup // 10)
        callgrind = Callgrind() if args.callgrind else None
        try:
            res, uv = run_mode(mode, n, warm, args.inflight, f"{args.profile}.{mode}" if args.profile else None,
                               callgrind)
        finally:
            if callgrind is not None:
                callgrind.close()
        instr = f"  {res.instructions:>24,.0f}" if res.instructions is not None else ""
        print(f"{mode:<16} {res.requests:>9} {res.rate:>9,.0f} {res.cpu_us:>18.1f} {res.sys_us:>15.1f} "
              f"{res.client_cpu_us:>18.1f} "
              f"{res.p50_ms:>8.2f} "
              f"{res.p99_ms:>8.2f}  {res.errors:>6}{instr}{'' if uv else '  (no uvloop)'}", flush=True)
    if args.callgrind:
        print("(under callgrind: rates and CPU times are those of the instrumented server; "
              "the instruction counts are the figure)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

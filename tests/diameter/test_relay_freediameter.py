"""Interop through a real relay: kmed client -> Debian's freeDiameterd (relay) -> kmed server.

freeDiameterd runs on loopback with plain TCP (``SecPort = 0``, ``No_TLS`` on its ConnectPeer),
inbound peers whitelisted with ``acl_wl.fdx`` (``ALLOW_IPSEC``), and forwards S6a AIR/ULR by
Destination-Host. Known behaviour handled here: its first outgoing connection starts after a
random 0-4 s (we wait, bounded), it binds 0.0.0.0 whatever ListenOn says (free ports are picked
on all interfaces), and it wants a TLS certificate even when no TLS is used (made here).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kmed.diameter import dictionary as d
from kmed.diameter.client import DiameterClient
from kmed.diameter.message import Message
from kmed.diameter.node import PeerInfo
from kmed.diameter.peer import PeerState
from tests.conftest import require_tool
from tests.diameter.test_transport import (
    HSS,
    MME,
    REALM,
    ep,
    make_air,
    make_pki,
    make_ulr,
    mme_node,
    run,
    s6a_handler,
    serve,
    wait_for,
)

RELAY = "relay.localdomain"
EXTENSIONS = Path("/usr/lib/freeDiameter")

pytestmark = pytest.mark.system


def free_port() -> int:
    """A TCP port free on every interface (freeDiameterd binds 0.0.0.0)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def extension(name: str) -> Path:
    for base in (EXTENSIONS, Path("/usr/lib/x86_64-linux-gnu/freeDiameter"), Path("/usr/local/lib/freeDiameter")):
        if (base / name).exists():
            return base / name
    pytest.fail(f"freeDiameter extension {name} not found (package freediameter-extensions)")


@dataclass
class Relay:
    port: int
    log: Path
    proc: subprocess.Popen[bytes]


def write_relay_conf(tmp: Path, relay_port: int, hss_port: int) -> Path:
    pki = make_pki(tmp, names={"relay": [RELAY, "127.0.0.1"]})
    (tmp / "acl_wl.conf").write_text(f"ALLOW_IPSEC {MME}\nALLOW_IPSEC {HSS}\n")
    # rt_default: requests for the HSS (by Destination-Host, else by realm) go to the HSS peer
    (tmp / "rt_default.conf").write_text(f'dh="{HSS}" : "{HSS}" += 100 ;\ndr="{REALM}" : "{HSS}" += 10 ;\n')
    conf = tmp / "relay.conf"
    conf.write_text(f"""
Identity = "{RELAY}";
Realm = "{REALM}";
Port = {relay_port};
SecPort = 0;
No_SCTP;
No_IPv6;
ListenOn = "127.0.0.1";
TLS_Cred = "{pki['relay.crt']}", "{pki['relay.key']}";
TLS_CA = "{pki['ca']}";
TcTimer = 1;
TwTimer = 6;
LoadExtension = "{extension('acl_wl.fdx')}" : "{tmp / 'acl_wl.conf'}";
LoadExtension = "{extension('rt_default.fdx')}" : "{tmp / 'rt_default.conf'}";
ConnectPeer = "{HSS}" {{ ConnectTo = "127.0.0.1"; Port = {hss_port}; No_TLS; }};
""")
    return conf


@contextlib.contextmanager
def freediameter_relay(tmp: Path, hss_port: int, port: int | None = None) -> Iterator[Relay]:
    """freeDiameterd relaying to the kmed HSS on ``hss_port``, listening on ``port`` (free if None)."""
    binary = require_tool("freeDiameterd")
    port = port or free_port()
    conf = write_relay_conf(tmp, port, hss_port)
    log = tmp / "freeDiameterd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    relay = Relay(port, log, proc)
    try:
        yield relay
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def relay_log_tail(relay: Relay, lines: int = 40) -> str:
    text = relay.log.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


async def exchange_through_relay(tmp: Path, rounds: int = 20, pipelined: int = 50, *, hss_port: int = 0,
                                 relay_port: int | None = None) -> list[Message]:
    """Start a kmed HSS, freeDiameterd relaying to it and a kmed MME client; run AIR/AIA and
    ULR/ULA ``rounds`` times, then ``pipelined`` AIRs at once. Returns the requests the HSS saw."""
    seen: list[Message] = []

    def handler(req: Message, peer: PeerInfo) -> Message:
        seen.append(req)
        assert peer.origin_host == RELAY  # the HSS's peer is the relay, not the MME
        return s6a_handler(req, peer)

    server = await serve(handler, allowed=(RELAY,), port=hss_port)
    with freediameter_relay(tmp, server.ports[0], relay_port) as relay:
        try:
            # the relay connects to the HSS after a random 0-4 s (freeDiameter's first Tc)
            await wait_for(lambda: server.peers.get(RELAY) is PeerState.OKAY or relay.proc.poll() is not None,
                           timeout=20.0)
            assert relay.proc.poll() is None, "freeDiameterd exited:\n" + relay_log_tail(relay)
            client = DiameterClient(mme_node(), [ep(relay.port)], REALM, HSS, request_timeout=5.0,
                                    backoff_initial=0.1, backoff_max=0.5)
            await client.start(timeout=15.0)
            (info,) = client.open_peers
            assert info.origin_host == RELAY
            for i in range(rounds):
                aia = await client.request(make_air(i))
                assert aia.result_code() == d.DIAMETER_SUCCESS, aia
                assert aia.get("Origin-Host") == HSS and aia.get("Session-Id") == f"{MME};1;{i}"
                vec = aia.group("Authentication-Info").group("E-UTRAN-Vector")  # type: ignore[union-attr]
                assert vec.get("KASME") == b"\x44" * 32  # vendor-32473 AVPs survive the relay
                assert vec.get("KME-Binding") == d.KME_BINDING_BOUND_TO_NEW
                assert aia.get("Encrypted-KME") == b"\x55" * 80
                ula = await client.request(make_ulr(i))
                assert ula.result_code() == d.DIAMETER_SUCCESS and ula.command_code == d.CMD_ULA
            # pipelined too
            answers = await asyncio.gather(*(client.request(make_air(1000 + i)) for i in range(pipelined)))
            assert all(a.result_code() == d.DIAMETER_SUCCESS for a in answers)
            await client.close()
        except BaseException:
            print("freeDiameterd log:\n" + relay_log_tail(relay))
            raise
        finally:
            await server.stop(2.0)
    return seen


def test_air_and_ulr_through_freediameter_relay(tmp_path: Path) -> None:
    seen = run(exchange_through_relay(tmp_path), timeout=90)
    airs = [m for m in seen if m.command_code == d.CMD_AIR]
    ulrs = [m for m in seen if m.command_code == d.CMD_ULR]
    assert len(airs) == 70 and len(ulrs) == 20
    req = airs[0]
    # what the relay added and kept: RFC 6733 §6.1.9, a relay appends a Route-Record with the
    # identity of the peer it received the request from; vendor-32473 AVPs pass unchanged
    assert req.get("Origin-Host") == MME and req.get("Destination-Host") == HSS
    assert req.get_all("Route-Record") == [MME]
    assert req.get("KME-Check") == bytes(range(16)) and req.get("KME-Check-Identity") == b"001010000000001"
    ulr = ulrs[0]
    ti = ulr.group("Terminal-Information")
    assert ti is not None and ti.get("IMEI") == "35693803564380"
    assert ulr.get("KME-Token") == b"\x66" * 32


def test_hss_refuses_a_relay_it_does_not_know(tmp_path: Path) -> None:
    """freeDiameterd's CER is answered 3010 when the relay is not an allowed peer."""

    async def main() -> None:
        server = await serve(allowed=("someone.else",))
        with freediameter_relay(tmp_path, server.ports[0]) as relay:
            for _ in range(100):  # up to 10 s for the relay's first connection attempt
                if "DIAMETER_UNKNOWN_PEER" in relay.log.read_text(errors="replace") or relay.proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            assert server.connections == []
            assert "3010" in relay.log.read_text(errors="replace") or \
                "DIAMETER_UNKNOWN_PEER" in relay.log.read_text(errors="replace"), relay_log_tail(relay)
        await server.stop()

    run(main(), timeout=60)


if os.environ.get("KMED_RELAY_DEBUG"):  # pragma: no cover - manual runs: keep the relay's output
    print("KMED_RELAY_DEBUG set")

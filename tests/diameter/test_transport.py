"""The Diameter peer layer over real loopback sockets: kmed client <-> kmed server.

AIR/AIA and ULR/ULA-shaped exchanges, failover with T-flag retransmission (RFC 6733 §5.5.4),
reconnect, the watchdog over a socket (RFC 3539), DPR on stop, TLS with a CA made here, bad
input on raw sockets (RFC 6733 §7: answered or closed, the server keeps serving), SCTP where
the kernel has it. The helpers at the top are shared with the relay and tshark tests.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import struct
import tracemalloc
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kmed.config import Endpoint
from kmed.diameter import dictionary as d
from kmed.diameter.client import DiameterClient, NoPeerAvailable
from kmed.diameter.codec import decode, encode
from kmed.diameter.message import Avp, Message
from kmed.diameter.node import BaseMessageEvent, LocalNode, PeerInfo
from kmed.diameter.peer import Peer, PeerState, Role
from kmed.diameter.server import DiameterServer
from kmed.diameter.transport import RequestTimeout, make_ssl_context, sctp_available

T = TypeVar("T")
MME = "mme.localdomain"
HSS = "hss.localdomain"
REALM = "localdomain"
IMSI = "001010000000001"
IMEI = "356938035643809"


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0, uvloop: bool = False) -> T:
    """Run ``coro`` on a fresh event loop (uvloop when asked), bounded by ``timeout``."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    if uvloop:
        import uvloop as uv

        return uv.run(bounded())
    return asyncio.run(bounded())


def ep(port: int = 0, transport: str = "tcp", host: str = "127.0.0.1") -> Endpoint:
    return Endpoint(transport, host, port)


# ------------------------------------------------------------------------- S6a-shaped messages


def make_air(i: int, *, kme: bool = True) -> Message:
    """An AIR as an MME sends it (TS 29.272 §7.2.5), with the KME AVPs of docs/s6a.md."""
    avps: list[Any] = [
        ("Session-Id", f"{MME};1;{i}"),
        ("Vendor-Specific-Application-Id", [("Vendor-Id", d.VENDOR_3GPP), ("Auth-Application-Id", d.APP_S6A)]),
        ("Auth-Session-State", 1),
        ("User-Name", IMSI),
        ("Visited-PLMN-Id", b"\x00\xf1\x10"),
        ("Requested-EUTRAN-Authentication-Info", [("Number-Of-Requested-Vectors", 1),
                                                  ("Immediate-Response-Preferred", 1)]),
    ]
    if kme:
        avps += [("KME-Check", bytes(range(16))), ("KME-Check-Identity", IMSI.encode())]
    return Message.request("AIR", None, avps)


def make_aia(req: Message) -> Message:
    """An AIA with one E-UTRAN vector (TS 29.272 §7.2.6) and the KME AVPs."""
    return Message.answer_to(req, [
        ("Vendor-Specific-Application-Id", [("Vendor-Id", d.VENDOR_3GPP), ("Auth-Application-Id", d.APP_S6A)]),
        ("Result-Code", d.DIAMETER_SUCCESS), ("Auth-Session-State", 1),
        ("Origin-Host", HSS), ("Origin-Realm", REALM),
        ("Authentication-Info", [("E-UTRAN-Vector", [
            ("Item-Number", 1), ("RAND", b"\x11" * 16), ("XRES", b"\x22" * 8), ("AUTN", b"\x33" * 16),
            ("KASME", b"\x44" * 32), ("KME-Binding", d.KME_BINDING_BOUND_TO_NEW)])]),
        ("KME-Status", d.KME_STATUS_PROVISIONING_REQUIRED),
        ("Encrypted-KME", b"\x55" * 80), ("KME-Scheme", d.KME_SCHEME_ECIES_PROFILE_A),
    ])


def make_ulr(i: int) -> Message:
    """A ULR (TS 29.272 §7.2.3) with Terminal-Information and a KME-Token."""
    return Message.request("ULR", None, [
        ("Session-Id", f"{MME};2;{i}"),
        ("Vendor-Specific-Application-Id", [("Vendor-Id", d.VENDOR_3GPP), ("Auth-Application-Id", d.APP_S6A)]),
        ("Auth-Session-State", 1), ("User-Name", IMSI), ("RAT-Type", d.RAT_TYPE_EUTRAN),
        ("ULR-Flags", d.ULR_S6A_S6D_INDICATOR | d.ULR_INITIAL_ATTACH_INDICATOR),
        ("Visited-PLMN-Id", b"\x00\xf1\x10"),
        ("Terminal-Information", [("IMEI", IMEI[:14]), ("Software-Version", "01")]),
        ("KME-Token", b"\x66" * 32),
    ])


def make_ula(req: Message) -> Message:
    return Message.answer_to(req, [
        ("Result-Code", d.DIAMETER_SUCCESS), ("Auth-Session-State", 1),
        ("Origin-Host", HSS), ("Origin-Realm", REALM), ("ULA-Flags", d.ULA_SEPARATION_INDICATION),
        ("Subscription-Data", [("Subscriber-Status", 0), ("Network-Access-Mode", 2)]),
    ])


def s6a_handler(req: Message, peer: PeerInfo) -> Message:
    """A canned HSS: AIA for AIR, ULA for ULR."""
    return make_aia(req) if req.command_code == d.CMD_AIR else make_ula(req)


def hss_node(host: str = HSS) -> LocalNode:
    return LocalNode(host, REALM)


def mme_node(host: str = MME) -> LocalNode:
    return LocalNode(host, REALM)


# ------------------------------------------------------------------------- raw sockets


async def read_message(reader: asyncio.StreamReader) -> Message:
    head = await reader.readexactly(4)
    length = int.from_bytes(head[1:4], "big")
    return decode(head + await reader.readexactly(length - 4))


async def raw_open(port: int, origin: str = MME) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection that has done the capabilities exchange (CER made by the sans-I/O peer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    cer = Peer(mme_node(origin), Role.INITIATOR, local_addresses=["127.0.0.1"]).start(0.0)[0].data  # type: ignore[union-attr]
    writer.write(cer)
    cea = await read_message(reader)
    assert cea.result_code() == d.DIAMETER_SUCCESS
    return reader, writer


async def read_until_eof(reader: asyncio.StreamReader) -> list[Message]:
    out = []
    while True:
        try:
            out.append(await read_message(reader))
        except asyncio.IncompleteReadError as exc:
            assert exc.partial == b""
            return out


# ------------------------------------------------------------------------- certificates


def make_pki(tmp: Path, *, names: dict[str, list[str]], ca_name: str = "kmed test CA") -> dict[str, Path]:
    """A CA and one certificate per entry of ``names`` (file stem -> subjectAltNames: IP
    addresses or DNS names); returns paths ``ca``, ``<stem>.crt``, ``<stem>.key``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_subject).issuer_name(ca_subject)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    out = {"ca": tmp / "ca.crt"}
    out["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for stem, sans in names.items():
        key = ec.generate_private_key(ec.SECP256R1())
        alt: list[x509.GeneralName] = []
        for n in sans:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sans[0])]))
                .issuer_name(ca_subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        out[f"{stem}.crt"] = tmp / f"{stem}.crt"
        out[f"{stem}.key"] = tmp / f"{stem}.key"
        out[f"{stem}.crt"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{stem}.key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return out


# ------------------------------------------------------------------------- fixtures in code


async def serve(handler: Callable[[Message, PeerInfo], Message | Awaitable[Message]] = s6a_handler, *,
                allowed: tuple[str, ...] = (MME,), port: int = 0, **kw: Any) -> DiameterServer:
    server = DiameterServer(hss_node(kw.pop("host", HSS)), [ep(port, kw.pop("transport", "tcp"))], allowed,
                            handler, **kw)
    await server.start()
    return server


async def wait_for(cond: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> None:
    """Poll ``cond`` until true; fail after ``timeout`` seconds (bounded loop)."""
    for _ in range(int(timeout / step)):
        if cond():
            return
        await asyncio.sleep(step)
    raise AssertionError("condition not reached in time")


# ------------------------------------------------------------------------- tests


@pytest.mark.parametrize("use_uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_air_and_ulr_round_trips(use_uvloop: bool) -> None:
    async def main() -> None:
        server = await serve()
        client = DiameterClient(mme_node(), server.bound_endpoints, REALM, HSS, request_timeout=5.0)
        await client.start(timeout=5.0)
        assert client.state == "okay"
        assert server.peers == {MME: PeerState.OKAY}
        aia = await client.request(make_air(0))
        assert aia.command_code == d.CMD_AIA and not aia.is_request and aia.result_code() == d.DIAMETER_SUCCESS
        vec = aia.group("Authentication-Info").group("E-UTRAN-Vector")  # type: ignore[union-attr]
        assert vec.get("KASME") == b"\x44" * 32 and vec.get("KME-Binding") == d.KME_BINDING_BOUND_TO_NEW
        assert aia.get("Session-Id") == f"{MME};1;0"
        ula = await client.request(make_ulr(0))
        assert ula.command_code == d.CMD_ULA and ula.get("ULA-Flags") == d.ULA_SEPARATION_INDICATION
        # many requests in flight at once, answers matched to their requests
        answers = await asyncio.gather(*(client.request(make_air(i)) for i in range(1, 301)))
        assert [a.get("Session-Id") for a in answers] == [f"{MME};1;{i}" for i in range(1, 301)]
        await client.close()
        await server.stop(2.0)

    run(main(), uvloop=use_uvloop)


def test_client_fills_origin_and_destination() -> None:
    seen: list[Message] = []

    def handler(req: Message, peer: PeerInfo) -> Message:
        seen.append(req)
        assert peer.origin_host == MME and peer.remote_address is not None
        return make_aia(req)

    async def main() -> None:
        server = await serve(handler)
        client = DiameterClient(mme_node(), server.bound_endpoints, REALM, HSS)
        await client.start()
        await client.request(make_air(1))
        await client.close()
        await server.stop()

    run(main())
    (req,) = seen
    assert req.get("Origin-Host") == MME and req.get("Origin-Realm") == REALM
    assert req.get("Destination-Realm") == REALM and req.get("Destination-Host") == HSS
    assert req.is_proxiable and not req.retransmitted


def test_async_and_future_handlers_and_handler_errors_give_5012_without_dropping_the_connection() -> None:
    async def handler(req: Message, peer: PeerInfo) -> Message:
        await asyncio.sleep(0.01)
        if req.get("User-Name") == "boom":
            raise RuntimeError("handler bug")
        if req.get("User-Name") == "none":
            return None  # type: ignore[return-value]
        return make_aia(req)

    def sync_bad(req: Message, peer: PeerInfo) -> Message:
        if req.get("User-Name") == "boom":
            raise ValueError("sync handler bug")
        if req.get("User-Name") == "none":
            return None  # type: ignore[return-value]
        return make_aia(req)

    def future(req: Message, peer: PeerInfo) -> asyncio.Future[Message]:
        """Answers through a future resolved later from a callback: no task (the HSS's way)."""
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        user = req.get("User-Name")

        def resolve() -> None:
            if user == "boom":
                fut.set_exception(RuntimeError("future handler bug"))
            else:
                fut.set_result(None if user == "none" else make_aia(req))  # type: ignore[arg-type]

        asyncio.get_running_loop().call_later(0.01, resolve)
        return fut

    async def main() -> None:
        for h in (handler, sync_bad, future):
            server = await serve(h)
            client = DiameterClient(mme_node(), server.bound_endpoints, REALM)
            await client.start()
            for user in ("boom", "none"):
                bad = make_air(1)
                bad.set("User-Name", user)
                ans = await client.request(bad)
                assert ans.result_code() == d.DIAMETER_UNABLE_TO_COMPLY
            ok = await client.request(make_air(2))
            assert ok.result_code() == d.DIAMETER_SUCCESS
            assert client.state == "okay" and len(server.connections) == 1
            await client.close()
            await server.stop()

    run(main())


def test_unknown_peer_is_refused() -> None:
    async def main() -> None:
        server = await serve(allowed=("someone.else",))
        client = DiameterClient(mme_node(), server.bound_endpoints, REALM)
        with pytest.raises(NoPeerAvailable):
            await client.start(timeout=1.0)
        assert client.state != "okay" and server.connections == []
        await client.close()
        await server.stop()

    run(main())


def test_request_timeout() -> None:
    async def never(req: Message, peer: PeerInfo) -> Message:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def main() -> None:
        server = await serve(never)
        client = DiameterClient(mme_node(), server.bound_endpoints, REALM)
        await client.start()
        with pytest.raises(RequestTimeout):
            await client.request(make_air(1), timeout=0.3)
        assert client.state == "okay"
        await client.close()
        await server.stop(0.5)

    run(main())


def test_failover_to_the_second_server_with_t_flag_and_failback() -> None:
    seen: dict[str, list[Message]] = {"hss1": [], "hss2": []}
    hold = asyncio.Event()

    def recorder(name: str, hang: bool) -> Callable[[Message, PeerInfo], Any]:
        async def handler(req: Message, peer: PeerInfo) -> Message:
            seen[name].append(req)
            if hang and not hold.is_set():
                await asyncio.sleep(3600)  # hss1 "hangs" then dies with the request unanswered
            return make_aia(req)

        return handler

    async def main() -> None:
        s1 = await serve(recorder("hss1", hang=True), host="hss1.localdomain")
        s2 = await serve(recorder("hss2", hang=False), host="hss2.localdomain")
        port1 = s1.ports[0]
        client = DiameterClient(mme_node(), s1.bound_endpoints + s2.bound_endpoints, REALM,
                                request_timeout=10.0, backoff_initial=0.05, backoff_max=0.2)
        await client.start()
        await wait_for(lambda: list(client.peer_states.values()) == ["okay", "okay"])
        task = asyncio.create_task(client.request(make_air(7)))
        await wait_for(lambda: len(seen["hss1"]) == 1)  # the first OKAY peer in order is used
        assert seen["hss2"] == []
        await s1.stop(0.0)  # hss1 dies with the AIR unanswered: it goes to hss2 with T set
        ans = await task
        assert ans.result_code() == d.DIAMETER_SUCCESS and ans.get("Origin-Host") == HSS
        (retx,) = seen["hss2"]
        first = seen["hss1"][0]
        assert retx.retransmitted and not first.retransmitted
        assert retx.end_to_end == first.end_to_end and retx.get("Session-Id") == first.get("Session-Id")
        # new requests go to hss2 while hss1 is down
        await client.request(make_air(8))
        assert len(seen["hss2"]) == 2
        # hss1 comes back on the same port: the client reconnects and fails back to it
        hold.set()
        s1b = DiameterServer(hss_node("hss1.localdomain"), [ep(port1)], [MME], recorder("hss1", hang=False))
        await s1b.start()
        await wait_for(lambda: client.peer_states[str(ep(port1))] == "okay")
        await client.request(make_air(9))
        assert len(seen["hss1"]) == 2 and len(seen["hss2"]) == 2
        await client.close()
        await s1b.stop()
        await s2.stop()

    run(main())


def test_destination_host_connected_directly_is_preferred() -> None:
    seen: list[str] = []

    def handler(name: str) -> Callable[[Message, PeerInfo], Message]:
        def h(req: Message, peer: PeerInfo) -> Message:
            seen.append(name)
            return make_aia(req)

        return h

    async def main() -> None:
        s1 = await serve(handler("hss1"), host="hss1.localdomain")
        s2 = await serve(handler("hss2"), host="hss2.localdomain")
        client = DiameterClient(mme_node(), s1.bound_endpoints + s2.bound_endpoints, REALM, "hss2.localdomain",
                                backoff_initial=5.0)
        await client.start()
        await wait_for(lambda: list(client.peer_states.values()) == ["okay", "okay"])
        await client.request(make_air(1))  # hss2 is the Destination-Host: sent to it, not to hss1
        await s2.stop(1.0)
        await wait_for(lambda: list(client.peer_states.values())[1] != "okay")
        await client.request(make_air(2))  # hss2 gone: the first OKAY peer in order
        assert seen == ["hss2", "hss1"]
        await client.close()
        await s1.stop()

    run(main())


def test_request_waits_for_a_peer_then_gives_up() -> None:
    async def main() -> None:
        with socket.socket() as s:  # a port with nothing listening
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        client = DiameterClient(mme_node(), [ep(port)], REALM, backoff_initial=0.05, backoff_max=0.1)
        await client.start(wait_connected=False)
        with pytest.raises(NoPeerAvailable):
            await client.request(make_air(1), timeout=0.3)
        # the server appears: the client connects on its own and the request goes through
        server = await serve(port=port)
        await wait_for(lambda: client.state == "okay")
        assert (await client.request(make_air(2))).result_code() == d.DIAMETER_SUCCESS
        await client.close()
        await server.stop()

    run(main())


def test_watchdog_over_a_socket_suspect_down_and_reconnect() -> None:
    """A peer that completes CER/CEA then never answers DWR: SUSPECT after Tw, DOWN after
    another Tw, then a new connection that must pass REOPEN (three DWAs) before use."""

    async def main() -> None:
        connections: list[str] = []

        async def mute_hss(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            responder = Peer(hss_node(), Role.RESPONDER, allowed_peers={MME}, watchdog=3600)
            responder.start(0.0)
            mute = not connections
            connections.append("mute" if mute else "live")
            try:
                while True:
                    msg = await read_message(reader)
                    if mute and msg.command_code == d.CMD_DWR:
                        continue  # never answer the watchdog on the first connection
                    for a in responder.data_received(encode(msg), 0.0):
                        data = getattr(a, "data", None)
                        if data is not None:
                            writer.write(data)
                        if hasattr(a, "message"):  # an application request: answer it
                            writer.write(encode(make_aia(a.message)))
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        srv = await asyncio.start_server(mute_hss, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        states: list[str] = []
        client = DiameterClient(mme_node(), [ep(port)], REALM, watchdog=0.3, backoff_initial=0.05)
        await client.start()
        for _ in range(400):  # record the state sequence for up to 8 s
            s = client.peer_states[str(ep(port))]
            if not states or states[-1] != s:
                states.append(s)
            if connections == ["mute", "live"] and s == "okay":
                break
            await asyncio.sleep(0.02)
        assert states[0] == "okay"
        assert "suspect" in states and "reopen" in states and states[-1] == "okay"
        assert states.index("suspect") < states.index("reopen")
        assert (await client.request(make_air(1))).result_code() == d.DIAMETER_SUCCESS
        await client.close()
        srv.close()

    run(main())


@pytest.mark.parametrize("kind", ["coroutine", "future"])
def test_stop_answers_in_flight_then_sends_dpr(kind: str) -> None:
    async def slow(req: Message, peer: PeerInfo) -> Message:
        await asyncio.sleep(0.2)
        return make_aia(req)

    def slow_future(req: Message, peer: PeerInfo) -> asyncio.Future[Message]:
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.2, lambda: fut.set_result(make_aia(req)))
        return fut

    async def main() -> None:
        server = await serve(slow if kind == "coroutine" else slow_future)
        client = DiameterClient(mme_node(), server.bound_endpoints, REALM, backoff_initial=5.0)
        await client.start()
        inflight = [asyncio.create_task(client.request(make_air(i))) for i in range(5)]
        await asyncio.sleep(0.05)
        await server.stop(3.0)
        answers = await asyncio.gather(*inflight)
        assert all(a.result_code() == d.DIAMETER_SUCCESS for a in answers)
        assert client.state != "okay"  # the DPR closed the connection
        await client.close()

    run(main())


def test_reload_allowed_peers_disconnects_removed_peers() -> None:
    async def main() -> None:
        server = await serve(allowed=(MME, "other.localdomain"))
        client = DiameterClient(mme_node(), server.bound_endpoints, REALM, backoff_initial=0.05, backoff_max=0.1)
        await client.start()
        server.reload_allowed_peers(["other.localdomain"])
        await wait_for(lambda: client.state != "okay")
        await asyncio.sleep(0.3)  # reconnect attempts are refused with 3010 now
        assert client.state != "okay" and server.connections == []
        server.reload_allowed_peers([MME])
        await wait_for(lambda: client.state == "okay", timeout=40.0)
        await client.close()
        await server.stop()

    run(main(), timeout=60)


# ------------------------------------------------------------------------- TLS


def tls_pair(tmp_path: Path, server_san: str = "127.0.0.1", *, rogue: bool = False) -> tuple[ssl.SSLContext,
                                                                                               ssl.SSLContext]:
    pki = make_pki(tmp_path, names={"hss": [server_san, HSS], "mme": [MME]})
    server_ctx = make_ssl_context(server_side=True, cert=str(pki["hss.crt"]), key=str(pki["hss.key"]),
                                  ca=str(pki["ca"]))
    ca = pki["ca"]
    if rogue:  # the client trusts another CA than the one that signed the server's certificate
        ca = make_pki(tmp_path / "rogue", names={}, ca_name="another CA")["ca"]
    client_ctx = make_ssl_context(server_side=False, cert=str(pki["mme.crt"]), key=str(pki["mme.key"]), ca=str(ca))
    return server_ctx, client_ctx


def test_tls_good_certificate_is_accepted(tmp_path: Path) -> None:
    server_ctx, client_ctx = tls_pair(tmp_path)

    async def main() -> None:
        server = await serve(transport="tls", ssl_context=server_ctx)
        (bound,) = server.bound_endpoints
        assert bound.transport == "tls"
        client = DiameterClient(mme_node(), [bound], REALM, ssl_context=client_ctx)
        await client.start(timeout=5.0)
        assert (await client.request(make_air(1))).result_code() == d.DIAMETER_SUCCESS
        await client.close()
        await server.stop()

    run(main())


def test_base_message_events_name_the_tls_transport(tmp_path: Path) -> None:
    """Both sides' base-message hooks see the connection's transport (the metrics label an
    unnamed peer ``tls://host:port``, kmed.metrics.base_message_counter)."""
    server_ctx, client_ctx = tls_pair(tmp_path)
    seen: list[BaseMessageEvent] = []

    async def main() -> None:
        server = DiameterServer(LocalNode(HSS, REALM, base_message_hook=seen.append), [ep(0, "tls")], (MME,),
                                s6a_handler, ssl_context=server_ctx)
        await server.start()
        (bound,) = server.bound_endpoints
        client = DiameterClient(LocalNode(MME, REALM, base_message_hook=seen.append), [bound], REALM,
                                ssl_context=client_ctx)
        await client.start(timeout=5.0)
        await client.close()
        await server.stop()

    run(main())
    cers = [ev for ev in seen if ev.message in ("CER", "CEA")]
    assert len(cers) == 4 and {ev.transport for ev in cers} == {"tls"}
    sent_cer = next(ev for ev in cers if ev.message == "CER" and ev.sent)
    assert sent_cer.peer is None and sent_cer.address is not None and sent_cer.address[0] == "127.0.0.1"


@pytest.mark.parametrize("case", ["untrusted-ca", "name-mismatch"])
def test_tls_wrong_certificate_is_refused(tmp_path: Path, case: str) -> None:
    (tmp_path / "rogue").mkdir()
    server_ctx, client_ctx = tls_pair(tmp_path, server_san="127.0.0.2" if case == "name-mismatch" else "127.0.0.1",
                                      rogue=case == "untrusted-ca")

    async def main() -> None:
        server = await serve(transport="tls", ssl_context=server_ctx)
        client = DiameterClient(mme_node(), server.bound_endpoints, REALM, ssl_context=client_ctx,
                                backoff_initial=0.05)
        with pytest.raises(NoPeerAvailable):
            await client.start(timeout=1.0)
        assert server.connections == []
        await client.close()
        await server.stop()

    run(main())


@pytest.mark.parametrize("side", ["client", "server"])
def test_tls_certificate_must_name_the_origin_host(tmp_path: Path, side: str) -> None:
    """A valid certificate for another name than the peer's Origin-Host is refused: by the
    server at CER (3010), by the client at CEA."""
    pki = make_pki(tmp_path, names={"hss": ["127.0.0.1", HSS if side == "client" else "other-hss.localdomain"],
                                    "mme": [MME if side == "server" else "other-mme.localdomain"]})
    server_ctx = make_ssl_context(server_side=True, cert=str(pki["hss.crt"]), key=str(pki["hss.key"]),
                                  ca=str(pki["ca"]))
    client_ctx = make_ssl_context(server_side=False, cert=str(pki["mme.crt"]), key=str(pki["mme.key"]),
                                  ca=str(pki["ca"]))

    async def main() -> None:
        server = await serve(transport="tls", ssl_context=server_ctx)
        client = DiameterClient(mme_node(), server.bound_endpoints, REALM, ssl_context=client_ctx,
                                backoff_initial=0.05)
        with pytest.raises(NoPeerAvailable):
            await client.start(timeout=1.0)
        assert server.connections == [] and client.open_peers == []
        await client.close()
        await server.stop()

    run(main())


def test_tls_server_refuses_a_client_without_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, names={"hss": ["127.0.0.1"]})
    server_ctx = make_ssl_context(server_side=True, cert=str(pki["hss.crt"]), key=str(pki["hss.key"]),
                                  ca=str(pki["ca"]))
    client_ctx = make_ssl_context(server_side=False, ca=str(pki["ca"]))  # no client certificate

    async def main() -> None:
        server = await serve(transport="tls", ssl_context=server_ctx)
        client = DiameterClient(mme_node(), server.bound_endpoints, REALM, ssl_context=client_ctx,
                                backoff_initial=0.05)
        with pytest.raises(NoPeerAvailable):
            await client.start(timeout=1.0)
        assert server.connections == []
        await client.close()
        await server.stop()

    run(main())


# ------------------------------------------------------------------------- bad input


def test_bad_input_on_raw_sockets_is_answered_or_closed_and_others_keep_working() -> None:
    async def main() -> None:
        server = await serve()
        port = server.ports[0]
        client = DiameterClient(mme_node(), server.bound_endpoints, REALM)
        await client.start()

        async def check_others() -> None:
            assert (await client.request(make_air(99))).result_code() == d.DIAMETER_SUCCESS

        good = encode(make_air(1))

        # 1. nothing but CER is accepted before the capabilities exchange: closed, no answer
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(good)
        assert await read_until_eof(reader) == []
        writer.close()
        await check_others()

        # 2. wrong version: 5011 then closed (RFC 6733 §7.1.5)
        reader, writer = await raw_open(port)
        writer.write(b"\x02" + good[1:])
        (ans,) = await read_until_eof(reader)
        assert ans.result_code() == d.DIAMETER_UNSUPPORTED_VERSION and ans.hop_by_hop == 0
        writer.close()
        await check_others()

        # 3. AVP length < 8 in a request: 5014 with Failed-AVP, the connection stays open
        reader, writer = await raw_open(port)
        bad = good + struct.pack(">II", 1234, 0x40000004)
        writer.write(b"\x01" + len(bad).to_bytes(3, "big") + bad[4:])
        ans = await read_message(reader)
        assert ans.result_code() == d.DIAMETER_INVALID_AVP_LENGTH and ans.group("Failed-AVP") is not None
        writer.write(good)
        assert (await read_message(reader)).result_code() == d.DIAMETER_SUCCESS

        # 4. unknown command and unknown application: 3001 / 3007 with the E bit, still open
        unknown_cmd = Message(8_388_000, d.FLAG_R | d.FLAG_P, d.APP_S6A, 5, 6, [("Session-Id", "x")])
        writer.write(encode(unknown_cmd))
        ans = await read_message(reader)
        assert ans.result_code() == d.DIAMETER_COMMAND_UNSUPPORTED and ans.is_error and ans.hop_by_hop == 5
        unknown_app = Message(318, d.FLAG_R | d.FLAG_P, 16777216, 7, 8, [("Session-Id", "y")])
        writer.write(encode(unknown_app))
        ans = await read_message(reader)
        assert ans.result_code() == d.DIAMETER_APPLICATION_UNSUPPORTED and ans.is_error

        # 5. an unknown AVP with the M bit: 5001 with Failed-AVP
        odd = Avp(4242, d.VENDOR_3GPP, d.AVP_FLAG_M, b"\x00" * 4)
        msg = make_air(2)
        msg.append_avp(odd)
        writer.write(encode(msg))
        ans = await read_message(reader)
        assert ans.result_code() == d.DIAMETER_AVP_UNSUPPORTED
        assert ans.group("Failed-AVP").raw_avps() == [odd]  # type: ignore[union-attr]

        # 6. length that overruns: a truncated frame, then the peer goes away
        writer.write(good[:-8])
        await writer.drain()
        writer.close()
        await check_others()

        # 7. length under 20: closed
        reader, writer = await raw_open(port)
        writer.write(b"\x01\x00\x00\x10" + b"\x80" + b"\x00" * 11)
        assert await read_until_eof(reader) == []
        writer.close()
        await check_others()
        await wait_for(lambda: len(server.connections) == 1)
        await client.close()
        await server.stop()

    run(main())


def test_absurd_length_does_not_allocate() -> None:
    """A 16 MiB length header is refused (5015, closed) without reserving 16 MiB."""

    async def main() -> None:
        server = await serve()
        port = server.ports[0]
        reader, writer = await raw_open(port)
        header = b"\x01\xff\xff\xfc" + encode(make_air(1))[4:20]
        tracemalloc.start()
        try:
            writer.write(header + b"\x00" * 4096)
            (ans,) = await read_until_eof(reader)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert ans.result_code() == d.DIAMETER_INVALID_MESSAGE_LENGTH
        assert peak < 2 * 1024 * 1024, f"peak {peak} bytes while refusing a 16 MiB header"
        writer.close()
        await server.stop()

    run(main())


def test_message_over_the_configured_maximum_is_refused() -> None:
    async def main() -> None:
        server = await serve(max_message_size=1024)
        reader, writer = await raw_open(server.ports[0])
        big = make_air(1)
        big.append("Encrypted-KME", b"\x00" * 2000)  # ~2 KiB
        writer.write(encode(big))
        (ans,) = await read_until_eof(reader)
        assert ans.result_code() == d.DIAMETER_INVALID_MESSAGE_LENGTH
        writer.close()
        await server.stop()

    run(main())


# ------------------------------------------------------------------------- other transports


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")

    async def main() -> None:
        server = DiameterServer(hss_node(), [ep(0, host="::1")], [MME], s6a_handler)
        await server.start()
        (bound,) = server.bound_endpoints
        assert bound.host == "::1" and str(bound).startswith("tcp://[::1]:")
        client = DiameterClient(LocalNode(MME, REALM), [bound], REALM)
        await client.start()
        (info,) = client.open_peers
        assert info.host_ip_addresses == ("::1",)
        assert (await client.request(make_air(1))).result_code() == d.DIAMETER_SUCCESS
        await client.close()
        await server.stop()

    run(main())


def test_sctp() -> None:
    if not sctp_available():
        pytest.skip("this kernel has no SCTP (socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP) fails): "
                    "modprobe sctp to run this test")

    async def main() -> None:
        server = await serve(transport="sctp")
        (bound,) = server.bound_endpoints
        assert bound.transport == "sctp"
        client = DiameterClient(mme_node(), [bound], REALM)
        await client.start()
        answers = await asyncio.gather(*(client.request(make_air(i)) for i in range(50)))
        assert all(a.result_code() == d.DIAMETER_SUCCESS for a in answers)
        await client.close()
        await server.stop()

    run(main())


def test_sctp_endpoint_without_kernel_support_fails_clearly() -> None:
    if sctp_available():
        pytest.skip("this kernel has SCTP")

    async def main() -> None:
        server = DiameterServer(hss_node(), [ep(0, "sctp")], [MME], s6a_handler)
        with pytest.raises(OSError, match="SCTP"):
            await server.start()

    run(main())

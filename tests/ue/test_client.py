"""The UE link client and the procedure runner over real loopback sockets, against the scripted
CNN of fakecnn.py; and ``kmed ue`` as a real subprocess (JSON line, exit status, state files)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from kmed.config import Endpoint
from kmed.crypto import ecies, kme
from kmed.nas.frame import LINK_UE_ID, FrameDecoder, FrameType, encode_frame
from kmed.ue.link import LinkError, UeLink
from kmed.ue.me import Me
from kmed.ue.procedure import UeProcedure
from kmed.ue.usim import Usim
from tests.ue.fakecnn import Subscriber, serve
from tests.ue.fakenet import IMSI, OPC, PLMN, K

IMEI = "356938035643809"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_many_ues_multiplexed_on_one_link(loop: str) -> None:
    """50 UEs provision concurrently over one connection; each gets its own outcome (on the
    default event loop and on uvloop, which the load harness uses)."""
    n = 50

    async def main() -> tuple[list[Any], list[str], int]:
        sub, log = Subscriber(), []
        mes = []
        for i in range(n):
            priv, pub = ecies.generate_keypair("A" if i % 2 else "B")
            imei = f"{35693803564380 + i:014d}0"
            sub.public_keys[imei[:14]] = ("A" if i % 2 else "B", pub)
            mes.append(Me(imei, "A" if i % 2 else "B", priv))
        async with serve(sub, log) as port:
            link = await UeLink.connect(Endpoint("tcp", "127.0.0.1", port))
            procs = [UeProcedure(Usim(IMSI, K, OPC), me, PLMN, timer_s=10.0) for me in mes]
            from kmed.ue.client import run_procedure

            outcomes = await asyncio.gather(*(run_procedure(link, p, 20.0) for p in procs))
            left = link.ue_count
            link.close()
            await link.wait_closed()
            return outcomes, log, left

    factory = None
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        outcomes, log, left = runner.run(main())
    assert left == 0
    assert all(o.result == "accepted" and o.kme_provisioned for o in outcomes), [o.error for o in outcomes]
    assert len({o.kme_fingerprint for o in outcomes}) == n  # each ME its own KME
    assert sum(1 for line in log if line.startswith("release")) == n
    assert sum(1 for line in log if line.endswith("kme_provisioning_response")) == n


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_uplink_frames_coalesced_in_order_and_flushed_by_close(loop: str) -> None:
    """Frames sent in one event-loop turn go out in one write, in order; close() right after
    sending still delivers them (they are queued until the loop turns), then EOF."""

    async def main() -> tuple[list[tuple[int, int, bytes]], int]:
        got: list[tuple[int, int, bytes]] = []
        reads = 0
        done = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal reads
            decoder = FrameDecoder()
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                frames = decoder.feed(data)
                if any(f.type == FrameType.LINK_SETUP for f in frames):
                    writer.write(encode_frame(FrameType.LINK_SETUP_ACK, LINK_UE_ID, b"cnn"))
                else:
                    reads += 1
                got.extend((f.type, f.ue_id, f.payload) for f in frames)
            writer.close()
            done.set_result(None)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        link = await UeLink.connect(Endpoint("tcp", "127.0.0.1", port))
        ids = [link.add_ue(_Silent()) for _ in range(20)]
        for n, ue_id in enumerate(ids):
            link.send_nas(ue_id, bytes((7, 0x41, n)))
        link.release_ue(ids[0])
        link.close()  # before the loop turns: the queued frames must still go out
        await link.wait_closed()
        await asyncio.wait_for(done, 5.0)
        server.close()
        return got, reads

    factory = None
    if loop == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        got, reads = runner.run(main())
    assert got[0][0] == FrameType.LINK_SETUP
    nas = [g for g in got[1:] if g[0] == FrameType.NAS_UPLINK]
    assert [(ue_id, payload[2]) for _, ue_id, payload in nas] == [(i + 1, i) for i in range(20)]
    assert got[-1][:2] == (FrameType.UE_RELEASE, 1)
    assert reads == 1  # 21 frames, one write (loopback delivers it in one read)


class _Silent:
    def nas_received(self, pdu: bytes) -> None:
        raise AssertionError("no downlink expected")

    def released(self, cause: int, reason: str) -> None:
        pass


def test_connect_refused_and_no_setup_ack() -> None:
    async def main() -> None:
        with pytest.raises(LinkError, match=r"127\.0\.0\.1"):
            await UeLink.connect(Endpoint("tcp", "127.0.0.1", free_port()), timeout=2.0)
        # a server that accepts but never answers LINK_SETUP
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(LinkError, match="LINK_SETUP_ACK"):
            await UeLink.connect(Endpoint("tcp", "127.0.0.1", port), timeout=0.3)
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def test_link_lost_mid_procedure_fails_and_reverts() -> None:
    async def main() -> tuple[Any, Me]:
        sub, log = Subscriber(), []
        priv, pub = ecies.generate_keypair("A")
        sub.public_keys[IMEI[:14]] = ("A", pub)
        me = Me(IMEI, "A", priv)
        async with serve(sub, log, mute_after="kme_provisioning_command") as port:
            link = await UeLink.connect(Endpoint("tcp", "127.0.0.1", port))
            from kmed.ue.client import ProcedureRunner

            runner = ProcedureRunner(link, UeProcedure(Usim(IMSI, K, OPC), me, PLMN, timer_s=30.0))
            fut = runner.start(30.0)
            for _ in range(1000):  # bounded: until the ME holds the new KME as pending (step 8)
                if any(x.endswith("kme_provisioning_response") for x in log):
                    break
                await asyncio.sleep(0.01)
            link.close()
            return await asyncio.wait_for(fut, 10.0), me

    outcome, me = asyncio.run(main())
    assert outcome.result == "failed" and "before the attach completed" in outcome.error
    assert me.state.pending_kme is None and me.state.current_kme is None  # reverted (step 7)
    assert outcome.kme_fingerprint is None and "ME: pending KME dropped" in " ".join(outcome.messages)


def test_on_done_callback_in_the_ending_callback_deferred_when_ending_in_start() -> None:
    """``on_done`` gets the outcome once; a procedure that ends inside start() (a TAU without a
    GUTI) reports on the next loop turn, not within start(); an on_done that raises goes to the
    loop's exception handler and the link stays up."""

    async def main() -> tuple[list[Any], list[Any], bool, list[str], bool]:
        sub, log = Subscriber(), []
        priv, pub = ecies.generate_keypair("A")
        sub.public_keys[IMEI[:14]] = ("A", pub)
        loop = asyncio.get_running_loop()
        handled: list[str] = []
        loop.set_exception_handler(lambda _loop, ctx: handled.append(ctx["message"]))
        async with serve(sub, log) as port:
            link = await UeLink.connect(Endpoint("tcp", "127.0.0.1", port))
            from kmed.ue.client import ProcedureRunner

            early: list[Any] = []
            tau = UeProcedure(Usim(IMSI, K, OPC), Me(IMEI, "A", priv), PLMN, kind="tau", timer_s=5.0)
            ProcedureRunner(link, tau, early.append).start(5.0)
            reported_in_start = bool(early)
            await asyncio.sleep(0)
            await asyncio.sleep(0)

            def boom(outcome: Any) -> None:
                seen.append(outcome)
                raise RuntimeError("callback bug")

            seen: list[Any] = []
            proc = UeProcedure(Usim(IMSI, K, OPC), Me(IMEI, "A", priv), PLMN, timer_s=10.0)
            fut = ProcedureRunner(link, proc, boom).start(10.0)
            outcome = await asyncio.wait_for(fut, 10.0)
            still_open = link.is_open
            link.close()
            await link.wait_closed()
            return early, [*seen, outcome], reported_in_start, handled, still_open

    early, seen, reported_in_start, handled, still_open = asyncio.run(main())
    assert not reported_in_start
    assert len(early) == 1 and early[0].result == "failed" and "GUTI" in early[0].error
    assert len(seen) == 2 and seen[0] is seen[1] and seen[0].result == "accepted"
    assert handled == ["ProcedureRunner on_done callback failed"] and still_open


# --- kmed ue as a subprocess -------------------------------------------------------------------


def write_config(tmp: Path, port: int, imei: str, key_pem: bytes, name: str = "me-a", **ue: Any) -> Path:
    key = tmp / f"{name}.key.pem"
    key.write_bytes(key_pem)
    ue_section = "".join(f"{k} = {v}\n" for k, v in ue.items())
    path = tmp / f"{name}.toml"
    path.write_text(f"""state_dir = "{tmp / name}"
[cnn]
connect = "tcp://127.0.0.1:{port}"
[usim]
imsi = "{IMSI}"
k = "{K.hex()}"
opc = "{OPC.hex()}"
[me]
imei = "{imei}"
private_key = "{key}"
[ue]
{ue_section}
[log]
level = "info"
""")
    return path


async def kmed_ue(config: Path, action: str = "attach") -> tuple[int, dict[str, Any] | None, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kmed", "ue", "--config", str(config), action,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = out.decode().splitlines()
    assert len(lines) <= 1, lines
    return proc.returncode or 0, json.loads(lines[0]) if lines else None, err.decode()


def test_cli_attach_provisions_then_matches_and_state_is_private(tmp_path: Path) -> None:
    priv, pub = ecies.generate_keypair("A")
    pem = ecies.private_key_to_pem("A", priv)

    async def main() -> list[tuple[int, dict[str, Any] | None, str]]:
        sub, log = Subscriber(public_keys={IMEI[:14]: ("A", pub)}), []
        async with serve(sub, log) as port:
            cfg = write_config(tmp_path, port, IMEI, pem)
            first = await kmed_ue(cfg)
            assert sub.kme is not None and first[1] is not None
            assert first[1]["kme_fingerprint"] == kme.fingerprint(sub.kme)
            second = await kmed_ue(cfg)
            show = await kmed_ue(cfg, "show")
            return [first, second, show]

    (rc1, r1, err1), (rc2, r2, _), (rc3, shown, _) = asyncio.run(main())
    assert rc1 == 0 and r1 is not None and r1["result"] == "accepted" and r1["kme_provisioned"] is True
    assert (r1["imsi"], r1["imei"], r1["emm_cause"]) == (IMSI, IMEI, None)
    assert rc2 == 0 and r2 is not None and r2["kme_provisioned"] is False
    assert r2["kme_fingerprint"] == r1["kme_fingerprint"]
    assert r2["guti"] is not None and "attach_request" in r2["messages"][0]
    assert rc3 == 0 and shown is not None and shown["me"]["kme_fingerprint"] == r1["kme_fingerprint"]
    assert K.hex() not in json.dumps(shown) and OPC.hex() not in err1
    steps = {json.loads(line).get("step") for line in err1.splitlines() if line.startswith("{")}
    assert {1, 2, 7, 8, 10} <= steps
    for sub_dir in ("usim", "me"):
        f = tmp_path / "me-a" / sub_dir / "state.json"
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600


def test_cli_ue_vanishes_after_step_6_then_converges(tmp_path: Path) -> None:
    priv, pub = ecies.generate_keypair("B")
    pem = ecies.private_key_to_pem("B", priv)

    async def main() -> tuple[Any, Any, Subscriber]:
        sub, log = Subscriber(public_keys={IMEI[:14]: ("B", pub)}), []
        async with serve(sub, log, release_after="kme_provisioning_command") as port:
            cfg = write_config(tmp_path, port, IMEI, pem)
            broken = await kmed_ue(cfg)
        async with serve(sub, log) as port:
            cfg = write_config(tmp_path, port, IMEI, pem)
            again = await kmed_ue(cfg)
        return broken, again, sub

    (rc1, r1, _), (rc2, r2, _), sub = asyncio.run(main())
    assert rc1 == 1 and r1 is not None and r1["result"] == "failed" and r1["kme_fingerprint"] is None
    assert rc2 == 0 and r2 is not None and r2["kme_provisioned"] is True
    assert sub.kme is not None and r2["kme_fingerprint"] == kme.fingerprint(sub.kme)


def test_cli_no_answer_retries_then_fails(tmp_path: Path) -> None:
    priv, _ = ecies.generate_keypair("A")

    async def main() -> tuple[Any, list[str]]:
        sub, log = Subscriber(), []
        async with serve(sub, log, mute_after="*") as port:
            cfg = write_config(tmp_path, port, IMEI, ecies.private_key_to_pem("A", priv),
                               t3410_s=0.2, max_attempts=2, timeout_s=30.0)
            return await kmed_ue(cfg), log

    (rc, r, _), log = asyncio.run(main())
    assert rc == 1 and r is not None and r["result"] == "failed" and r["attempts"] == 2
    assert "T3410 expired 2 times" in r["error"]
    assert [x.split()[1] for x in log if not x.startswith("release")] == ["attach_request"] * 2
    assert sum(1 for x in log if x.startswith("release")) == 2


def test_cli_connection_refused_is_failed(tmp_path: Path) -> None:
    priv, _ = ecies.generate_keypair("A")
    cfg = write_config(tmp_path, free_port(), IMEI, ecies.private_key_to_pem("A", priv))
    rc, r, _ = asyncio.run(kmed_ue(cfg))
    assert rc == 1 and r is not None and r["result"] == "failed" and "cannot reach the CNN" in r["error"]
    assert r["emm_cause"] is None and r["kme_provisioned"] is False


def test_cli_config_errors_exit_2_naming_file_and_key(tmp_path: Path) -> None:
    priv, _ = ecies.generate_keypair("A")
    cfg = write_config(tmp_path, 1, IMEI, ecies.private_key_to_pem("A", priv))
    text = cfg.read_text()
    cfg.write_text(text.replace(f'imei = "{IMEI}"', 'imei = "12"'))
    rc, r, err = asyncio.run(kmed_ue(cfg))
    assert rc == 2 and r is None and str(cfg) in err and "me.imei" in err
    cfg.write_text(text)
    (tmp_path / "me-a.key.pem").write_bytes(b"not a key")
    rc, r, err = asyncio.run(kmed_ue(cfg))
    assert rc == 2 and "me.private_key" in err
    assert K.hex() not in err
    missing = tmp_path / "absent.toml"
    rc, _, err = asyncio.run(kmed_ue(missing))
    assert rc == 2 and str(missing) in err


def test_cli_corrupt_state_file_is_exit_2(tmp_path: Path) -> None:
    priv, _ = ecies.generate_keypair("A")
    cfg = write_config(tmp_path, 1, IMEI, ecies.private_key_to_pem("A", priv))
    (tmp_path / "me-a" / "me").mkdir(parents=True)
    (tmp_path / "me-a" / "me" / "state.json").write_text("{broken")
    rc, _, err = asyncio.run(kmed_ue(cfg, "show"))
    assert rc == 2 and "state.json" in err


def test_frames_before_a_bad_header_are_served_then_the_link_errs() -> None:
    """A LINK_SETUP_ACK followed, in the same segment, by a header of the wrong version: the
    ACK still completes the set-up (FrameError.frames), then the UE answers ERROR and closes."""

    async def main() -> tuple[str, bytes, str | None]:
        got: list[bytes] = []
        done = asyncio.Event()

        async def cnn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            decoder = FrameDecoder()
            while not decoder.feed(await reader.read(4096)):
                pass
            writer.write(encode_frame(FrameType.LINK_SETUP_ACK, LINK_UE_ID, b"odd-cnn") + b"\x7f" * 10)
            got.append(await reader.read(4096))  # the UE's ERROR frame, then EOF
            done.set()
            writer.close()

        server = await asyncio.start_server(cnn, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            link = await UeLink.connect(Endpoint("tcp", "127.0.0.1", port))
            await asyncio.wait_for(done.wait(), 10.0)
            return link.peer_name or "", got[0], link.close_reason

    peer_name, answer, reason = asyncio.run(main())
    assert peer_name == "odd-cnn"
    (frame,) = FrameDecoder().feed(answer)
    assert (frame.type, frame.ue_id) == (FrameType.ERROR, LINK_UE_ID)
    assert reason is not None and "framing error" in reason

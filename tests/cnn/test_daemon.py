"""``kmed cnn`` as a real process on loopback, with a real ``kmed hss`` and SQLite store: attach
through the CONTRACT command line, a raw UE link client sending malformed frames and PDUs while
other UEs are served, HSS unavailable (#17), clean SIGTERM, configuration errors."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmed.lab import DEFAULT_K, DEFAULT_OPC, Lab, free_port, kmed_argv, running_lab, wait_listening
from kmed.nas import esm
from kmed.nas.codec import NasMessage, decode, encode
from kmed.nas.frame import HEADER_SIZE, ErrorCause, Frame, FrameDecoder, FrameType, encode_frame
from kmed.nas.identity import imsi_identity
from kmed.nas.ies import ue_network_capability
from tests.hss.conftest import stored_sqn

IMSI = "001010000000001"
IMEI = "356938035643809"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with running_lab(tmp_path) as lab:
        yield lab


def provision(lab: Lab) -> Path:
    lab.admin("subscriber", "add", "--imsi", IMSI, "--k", DEFAULT_K, "--opc", DEFAULT_OPC)
    priv, pub = lab.gen_device_key("me-a")
    lab.admin("device", "add", "--imei", IMEI, "--public-key", str(pub))
    lab.admin("pair", "allow", "--imsi", IMSI, "--imei", IMEI)
    return lab.ue_config("me-a", imsi=IMSI, imei=IMEI, private_key=priv)


class RawLink:
    """A bare UE link client: frames in and out, nothing else."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.decoder = FrameDecoder()
        self.pending: list[Frame] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def setup(self) -> None:
        self.send(encode_frame(FrameType.LINK_SETUP, 0, b"raw-test"))
        assert self.recv().type == FrameType.LINK_SETUP_ACK

    def recv(self, timeout: float = 10.0) -> Frame:
        deadline = time.monotonic() + timeout
        while not self.pending:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the CNN")
            self.pending += self.decoder.feed(data)
        return self.pending.pop(0)

    def closed_by_peer(self, timeout: float = 10.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.pending += self.decoder.feed(data)
        except (ConnectionResetError, TimeoutError):
            return False

    def close(self) -> None:
        self.sock.close()


def attach_request() -> bytes:
    return encode(NasMessage("attach_request", {
        "eps_attach_type": 1, "nas_key_set_identifier": 7, "eps_mobile_identity": imsi_identity(IMSI),
        "ue_network_capability": ue_network_capability(eea=(0, 2), eia=(2,)),
        "esm_message_container": esm.pdn_connectivity_request(),
    }))


def test_attach_provision_then_match_with_every_step_logged(lab: Lab) -> None:
    ue = provision(lab)
    first = lab.attach(ue)
    assert (first["result"], first["kme_provisioned"]) == ("accepted", True)
    second = lab.attach(ue)
    assert (second["result"], second["kme_provisioned"]) == ("accepted", False)
    assert second["kme_fingerprint"] == first["kme_fingerprint"]
    events = [e for e in lab.daemons["cnn"].log_events() if e.get("imsi") == IMSI]
    steps = {e["step"] for e in events if e.get("step") is not None}
    assert {1, 2, 3, 4, 6, 9, 10, 11, 13} <= steps
    assert all(e.get("ue_id") is not None and e.get("procedure") for e in events)
    text = (lab.root / "logs" / "cnn.log").read_text()
    assert "kasme" not in text.lower() and '"kme"' not in text and '"xres"' not in text


def test_malformed_frames_and_pdus_keep_the_cnn_serving(lab: Lab) -> None:
    ue = provision(lab)
    link = RawLink(lab.cnn_port)
    # before LINK_SETUP: ERROR "link not set up" for that UE id, the connection stays
    link.send(encode_frame(FrameType.NAS_UPLINK, 3, attach_request()))
    f = link.recv()
    assert (f.type, f.ue_id, f.payload[0]) == (FrameType.ERROR, 3, ErrorCause.LINK_NOT_SET_UP)
    link.setup()
    # an unknown message type: EMM STATUS #97 for that UE
    link.send(encode_frame(FrameType.NAS_UPLINK, 5, bytes((0x07, 0x6F))))
    f = link.recv()
    assert f.type == FrameType.NAS_DOWNLINK and f.ue_id == 5
    status = decode(f.payload)
    assert status.name == "emm_status" and status["emm_cause"] == 97
    # a truncated Attach Request: EMM STATUS #96
    link.send(encode_frame(FrameType.NAS_UPLINK, 6, attach_request()[:6]))
    f = link.recv()
    assert decode(f.payload)["emm_cause"] == 96
    # NAS on UE id 0, an unknown frame type, a message for a UE without context: ERROR frames
    link.send(encode_frame(FrameType.NAS_UPLINK, 0, attach_request()))
    assert (link.recv().payload[0]) == ErrorCause.MALFORMED
    link.send(encode_frame(0x7E, 9, b"?"))
    f = link.recv()
    assert (f.type, f.ue_id, f.payload[0]) == (FrameType.ERROR, 9, ErrorCause.UNKNOWN_FRAME_TYPE)
    link.send(encode_frame(FrameType.NAS_UPLINK, 10, encode(NasMessage("authentication_response",
                                                                        {"res": bytes(8)}))))
    f = link.recv()
    assert (f.type, f.ue_id, f.payload[0]) == (FrameType.ERROR, 10, ErrorCause.UNKNOWN_UE_ID)
    # a valid Attach Request on this raw link gets its challenge
    link.send(encode_frame(FrameType.NAS_UPLINK, 11, attach_request()))
    f = link.recv()
    assert f.ue_id == 11 and decode(f.payload).name == "authentication_request"
    # meanwhile a real UE on another connection attaches
    r = lab.attach(ue)
    assert r["result"] == "accepted"
    # a frame the stream cannot carry (bad version): ERROR on UE id 0, then the CNN closes; a good
    # frame in the same segment before it is served first (its EMM STATUS comes before the ERROR)
    link.send(encode_frame(FrameType.NAS_UPLINK, 12, bytes((0x07, 0x6F))) + b"\x02" + bytes(HEADER_SIZE - 1))
    assert link.closed_by_peer()
    assert [(f.type, f.ue_id) for f in link.pending[-2:]] == [(FrameType.NAS_DOWNLINK, 12), (FrameType.ERROR, 0)]
    assert decode(link.pending[-2].payload)["emm_cause"] == 97
    f = link.pending[-1]
    assert f.payload[0] == ErrorCause.UNSUPPORTED_VERSION
    link.close()
    # an oversize frame: refused from its header
    big = RawLink(lab.cnn_port)
    big.setup()
    big.send(bytes((1,)) + (70000).to_bytes(3, "big") + bytes((FrameType.NAS_UPLINK, 0)) + (1).to_bytes(4, "big"))
    assert big.closed_by_peer()
    assert big.pending and big.pending[-1].payload[0] == ErrorCause.FRAME_TOO_LARGE
    big.close()
    # and the CNN still serves
    assert lab.attach(ue)["result"] == "accepted"


def test_hss_unavailable_is_network_failure_and_sigterm_exits_0(tmp_path: Path) -> None:
    with running_lab(tmp_path, services=("cnn",)) as lab:  # no HSS listening
        priv, _ = lab.gen_device_key("me-a")
        ue = lab.ue_config("me-a", imsi=IMSI, imei=IMEI, private_key=priv)
        r = lab.attach(ue)
        assert (r["result"], r["emm_cause"]) == ("rejected", 17)
        daemon = lab.daemons["cnn"]
        assert lab.stop("cnn") == 0
        events = [e["event"] for e in daemon.log_events()]
        assert "cnn_stopped" in events and "attach_rejected" in events


def test_failover_to_the_second_hss(tmp_path: Path) -> None:
    """Two HSS processes on one SQLite store; the first is stopped: the CNN fails over."""
    lab = Lab(tmp_path)
    second_port = free_port()
    lab.extra_cnn = ""
    text = lab.cnn_toml().replace(f'connect = ["tcp://127.0.0.1:{lab.hss_port}"]',
                                  f'connect = ["tcp://127.0.0.1:{lab.hss_port}", "tcp://127.0.0.1:{second_port}"]')
    lab.cnn_config.write_text(text + "\n", encoding="utf-8")
    second_cfg = tmp_path / "hss2.toml"
    second_cfg.write_text(lab.hss_toml().replace(str(lab.hss_port), str(second_port)), encoding="utf-8")
    ue = provision(lab)
    lab.start("hss")
    second = subprocess.Popen(kmed_argv("hss", "--config", str(second_cfg)), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        wait_listening("127.0.0.1", second_port, 60, second)  # it listens once its cache is warm (READY=1)
        lab.start("cnn")
        assert lab.attach(ue)["result"] == "accepted"
        sqn_first = stored_sqn(lab.store_path, IMSI)
        assert lab.stop("hss") == 0  # DPR, the CNN moves to the second peer
        r = lab.attach(ue)
        assert r["result"] == "accepted" and r["kme_provisioned"] is False
        # The second HSS went on from the first's SQNs (its cache was warmed before the first
        # wrote them: it saw the other's commits), so the USIM needed no resynchronisation.
        assert not any("authentication_failure" in m for m in r["messages"]), r["messages"]
        assert stored_sqn(lab.store_path, IMSI) > sqn_first > 0
    finally:
        for daemon in list(lab.daemons.values()):
            daemon.stop()
        second.terminate()
        second.wait(10)


def test_bad_configuration_exits_2_naming_the_key(tmp_path: Path) -> None:
    conf = tmp_path / "cnn.toml"
    conf.write_text('[diameter]\norigin_host = "mme.localdomain"\norigin_realm = "localdomain"\n'
                    'connect = ["tcp://127.0.0.1:3868"]\ndestination_realm = "localdomain"\n'
                    '[nas]\nlisten = ["tcp://127.0.0.1:36412"]\nt3460_s = -1\n[plmn]\nmcc = "001"\nmnc = "01"\n')
    done = subprocess.run(kmed_argv("cnn", "--config", str(conf)), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "nas.t3460_s" in done.stderr
    conf.write_text(conf.read_text().replace("t3460_s = -1\n", "").replace("tcp://127.0.0.1:36412", "tls://127.0.0.1:36412"))
    done = subprocess.run(kmed_argv("cnn", "--config", str(conf)), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "nas.listen" in done.stderr


def test_example_configuration_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(kmed_argv("config", "check", str(root / "config" / "cnn.toml")), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_timers_retransmit_then_release_and_a_stopped_timer_stays_quiet(tmp_path: Path) -> None:
    """The daemon's timers (a loop timer per UE and timer): T3460 retransmits the
    same Authentication Request max_retransmissions times, then the UE is released; a timer
    stopped by the UE's answer never fires."""
    lab = Lab(tmp_path)
    conf = lab.cnn_config.read_text().replace("[nas]\n", "[nas]\nt3460_s = 0.3\nmax_retransmissions = 2\n", 1)
    lab.cnn_config.write_text(conf)
    try:
        lab.start("hss")
        lab.start("cnn")
        provision(lab)
        link = RawLink(lab.cnn_port)
        link.setup()
        link.send(encode_frame(FrameType.NAS_UPLINK, 21, attach_request()))
        first = link.recv()
        assert first.ue_id == 21 and decode(first.payload).name == "authentication_request"
        again = [link.recv(), link.recv()]
        assert [(f.type, f.ue_id, f.payload) for f in again] == [(FrameType.NAS_DOWNLINK, 21, first.payload)] * 2
        release = link.recv()
        assert (release.type, release.ue_id, release.payload) == (FrameType.UE_RELEASE, 21, b"\x02")
        # a second UE answers (wrongly) after one retransmission: rejected, and nothing follows
        link.send(encode_frame(FrameType.NAS_UPLINK, 22, attach_request()))
        challenge = link.recv()
        assert link.recv().payload == challenge.payload
        link.send(encode_frame(FrameType.NAS_UPLINK, 22, encode(NasMessage("authentication_response",
                                                                            {"res": bytes(8)}))))
        assert decode(link.recv().payload).name == "authentication_reject"
        assert link.recv().type == FrameType.UE_RELEASE
        with pytest.raises(TimeoutError):
            link.recv(timeout=1.0)
        link.close()
    finally:
        lab.stop_all()

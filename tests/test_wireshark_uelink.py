"""tshark decodes captures of kmed's UE link and S6a with the project's Lua dissector and Diameter
dictionary: every frame and message by name, the KME IEs, messages and AVPs by name, TCP
reassembly both ways, and zero packets matching ``_ws.malformed || _ws.expert.severity >= error``.

The captures are built from real kmed encodings (kmed.nas.frame, kmed.nas.codec,
kmed.nas.security, kmed.crypto, the S6a AIR/AIA of kmed.bench.diameter_codec) with tests/pcap.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kmed import capture
from kmed.bench.diameter_codec import kmed_iteration, sample_air
from kmed.crypto import ecies, kme
from kmed.nas import esm
from kmed.nas.codec import NasMessage, encode
from kmed.nas.frame import ErrorCause, FrameType, ReleaseCause, encode_frame, error_frame
from kmed.nas.identity import guti_identity, imeisv_identity, imsi_identity
from kmed.nas.ies import (
    KmeBindingIndicator,
    nas_security_algorithms,
    tai_list,
    ue_network_capability,
    ue_security_capability,
)
from kmed.nas.messages import MESSAGES
from kmed.nas.security import DOWNLINK, UPLINK, NasSecurityContext
from tests.conftest import require_tool
from tests.pcap import PcapWriter, TcpConversation

pytestmark = pytest.mark.system
ROOT = Path(__file__).resolve().parents[1]
UL, DL = FrameType.NAS_UPLINK, FrameType.NAS_DOWNLINK
IMSI = "001010000000001"
GUTI = guti_identity("001", "01", 0x0102, 0x03, 0x0BADCAFE)
KME = bytes(range(32))
KME_CHECK = kme.kme_check(KME, GUTI)
ME_RSP = bytes.fromhex("5a" * 16)
NONCE = bytes.fromhex("a5" * 16)
LINK_NAME = "eNB Zürich 1"  # UTF-8 on the wire


@dataclass
class Built:
    """A capture and what each of its packets must show."""

    path: Path
    # packet number -> list of (frame type name, message name or None) per UE link frame in it
    frames: dict[int, list[tuple[str, str | None]]] = field(default_factory=dict)
    ciphered: set[int] = field(default_factory=set)


def _nas(name: str, **ies: object) -> bytes:
    return encode(NasMessage(name, dict(ies)))


def build_uelink_capture(path: Path) -> Built:
    """An attach with KME provisioning as kmed sends it, plus the framing corner cases."""
    w = PcapWriter()
    built = Built(path)
    conv = TcpConversation(w).handshake()
    ue_ctx = NasSecurityContext(1, bytes(16), bytes(range(16)))
    net_ctx = NasSecurityContext(1, bytes(16), bytes(range(16)))
    _, device_public = ecies.generate_keypair("A")
    encrypted = ecies.encrypt("A", device_public, KME)

    def up(ue_id: int, pdu: bytes, message: str | None, *, ciphered: bool = False) -> None:
        conv.client_to_server(encode_frame(UL, ue_id, pdu))
        _note(w.count, [("NAS_UPLINK", message)], ciphered)

    def down(ue_id: int, pdu: bytes, message: str | None, *, ciphered: bool = False) -> None:
        conv.server_to_client(encode_frame(DL, ue_id, pdu))
        _note(w.count, [("NAS_DOWNLINK", message)], ciphered)

    def _note(n: int, frames: list[tuple[str, str | None]], ciphered: bool = False) -> None:
        built.frames[n] = frames
        if ciphered:
            built.ciphered.add(n)

    conv.client_to_server(encode_frame(FrameType.LINK_SETUP, 0, LINK_NAME.encode()))
    _note(w.count, [("LINK_SETUP", None)])
    conv.server_to_client(encode_frame(FrameType.LINK_SETUP_ACK, 0, b"cnn-1"))
    _note(w.count, [("LINK_SETUP_ACK", None)])
    up(7, _nas("attach_request", eps_attach_type=1, nas_key_set_identifier=7, eps_mobile_identity=GUTI,
               ue_network_capability=ue_network_capability(), esm_message_container=esm.pdn_connectivity_request(),
               kme_check=KME_CHECK), "Attach request")
    down(7, _nas("identity_request", identity_type=1), "Identity request")
    up(7, _nas("identity_response", mobile_identity=imsi_identity(IMSI)), "Identity response")
    down(7, _nas("authentication_request", nas_key_set_identifier=1, rand=bytes(16), autn=bytes(range(16)),
                 kme_binding_indicator=KmeBindingIndicator.NOT_BOUND), "Authentication request")
    up(7, _nas("authentication_response", res=bytes(8)), "Authentication response")
    smc = _nas("security_mode_command", selected_nas_security_algorithms=nas_security_algorithms(2, 2),
               nas_key_set_identifier=1, replayed_ue_security_capabilities=ue_security_capability(), imeisv_request=1)
    down(7, net_ctx.protect(smc, DOWNLINK, 3), "Security mode command")
    smcc = _nas("security_mode_complete", imeisv=imeisv_identity("3569380356438091"))
    up(7, ue_ctx.protect(smcc, UPLINK, 4), None, ciphered=True)
    kpc = _nas("kme_provisioning_command", kme_scheme="A", nonce=NONCE, encrypted_kme=encrypted)
    down(7, kpc, "KME Provisioning Command")
    down(7, net_ctx.protect(kpc, DOWNLINK, 1), "KME Provisioning Command")
    down(7, net_ctx.protect(kpc, DOWNLINK, 2), None, ciphered=True)  # as the CNN sends it (EEA2)
    kpr = _nas("kme_provisioning_response", me_rsp=ME_RSP)
    up(7, kpr, "KME Provisioning Response")
    up(7, ue_ctx.protect(kpr, UPLINK, 1), "KME Provisioning Response")
    down(7, _nas("authentication_request", nas_key_set_identifier=2, rand=bytes(16), autn=bytes(range(16)),
                 kme_binding_indicator=KmeBindingIndicator.BOUND_TO_NEW), "Authentication request")
    accept = _nas("attach_accept", eps_attach_result=1, t3412_value=0x21, tai_list=tai_list("001", "01", [1]),
                  esm_message_container=esm.activate_default_bearer_request(), guti=GUTI)
    # two frames in one TCP segment
    conv.server_to_client(encode_frame(DL, 7, accept) + encode_frame(DL, 8, _nas("identity_request", identity_type=1)))
    _note(w.count, [("NAS_DOWNLINK", "Attach accept"), ("NAS_DOWNLINK", "Identity request")])
    # one frame split over two TCP segments (in the header), then the rest with a second frame
    complete = encode_frame(UL, 7, _nas("attach_complete", esm_message_container=esm.activate_default_bearer_accept()))
    conv.client_to_server(complete[:3])
    conv.client_to_server(complete[3:] + encode_frame(UL, 8, _nas("identity_response",
                                                                    mobile_identity=imsi_identity(IMSI))))
    _note(w.count, [("NAS_UPLINK", "Attach complete"), ("NAS_UPLINK", "Identity response")])
    tau = _nas("tracking_area_update_request", eps_update_type=0, nas_key_set_identifier=1, old_guti=GUTI,
               kme_check=KME_CHECK)
    up(9, ue_ctx.protect(tau, UPLINK, 1), "Tracking area update request")
    up(9, ue_ctx.protect(tau, UPLINK, 2), None, ciphered=True)
    conv.client_to_server(error_frame(ErrorCause.UNKNOWN_UE_ID, 42, "no such UE"))
    _note(w.count, [("ERROR", None)])
    conv.server_to_client(encode_frame(FrameType.UE_RELEASE, 7, bytes((ReleaseCause.NORMAL,))))
    _note(w.count, [("UE_RELEASE", None)])
    conv.close()
    # S6a on its own connection: AIR/AIA carrying KME AVPs
    dia = TcpConversation(w, client=("127.0.0.1", 40001), server=("127.0.0.1", 3868), time=conv.time).handshake()
    air = sample_air()
    dia.client_to_server(air)
    dia.server_to_client(kmed_iteration(air))
    dia.close()
    w.save(path)
    return built


def _fields(dirs: capture.WiresharkDirs, pcap: Path, *fields: str, extra: tuple[str, ...] = (),
            ports: capture.Ports = capture.DEFAULT_PORTS) -> list[list[str]]:
    args = [*extra, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in fields:
        args += ["-e", f]
    done = capture.run_tshark(dirs, pcap, args, ports)
    assert done.returncode == 0, done.stderr
    assert "Lua" not in done.stderr, done.stderr  # the dissector loaded without error
    return [line.split("\t") for line in done.stdout.splitlines()]


def _problems(dirs: capture.WiresharkDirs, pcap: Path, *extra: str) -> list[str]:
    done = capture.run_tshark(dirs, pcap, [*extra, "-Y", capture.PROBLEM_FILTER])
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.fixture(scope="module")
def dirs() -> Iterator[capture.WiresharkDirs]:
    require_tool("tshark")
    with capture.private_dirs() as d:
        yield d


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_uelink_capture(tmp_path_factory.mktemp("ws") / "uelink.pcap")


def test_every_frame_and_message_decodes_by_name(dirs: capture.WiresharkDirs, built: Built) -> None:
    rows = _fields(dirs, built.path, "frame.number", "kmed_uelink.type", "_ws.col.Info", "nas_eps.nas_msg_emm_type",
                   "kmed_nas.msg_type", "kmed_nas.security_header_type")
    by_number = {int(r[0]): r for r in rows}
    for number, frames in built.frames.items():
        _, types, info, *_ = by_number[number]
        names = [t for t, _ in frames]
        assert types.split("|") == [f"0x{int(FrameType[t]):02x}" for t in names], (number, info)
        for frame_type, message in frames:
            if message is not None:
                assert message in info, (number, info)
            elif frame_type.startswith("NAS"):
                assert info == "Ciphered message", (number, info)
            else:
                assert frame_type in info, (number, info)
        assert (number in built.ciphered) == (info == "Ciphered message"), (number, info)
    # nas-eps named the standard messages itself, kmed the two new ones
    emm = {t for r in rows for t in r[3].split("|") if t}
    assert {"0x41", "0x42", "0x43", "0x48", "0x52", "0x53", "0x55", "0x56", "0x5d"} <= emm
    assert {t for r in rows for t in r[4].split("|") if t} == {"0x7a", "0x7b"}
    assert not emm & {"0x7a", "0x7b"}  # never handed to nas-eps


def test_zero_malformed_or_error_packets(dirs: capture.WiresharkDirs, built: Built) -> None:
    assert _problems(dirs, built.path) == []


def test_kme_ies_messages_and_avps_by_name_with_their_values(dirs: capture.WiresharkDirs, built: Built) -> None:
    rows = _fields(dirs, built.path, "kmed_nas.kme_check", "kmed_nas.kme_binding_indicator", "kmed_nas.kme_scheme",
                   "kmed_nas.nonce", "kmed_nas.encrypted_kme.length", "kmed_nas.encrypted_kme.mac_tag",
                   "kmed_nas.me_rsp", "kmed_nas.mac", "diameter.KME-Check", "diameter.KME-Status")
    col = list(zip(*rows, strict=True))
    values = [sorted({v for cell in c for v in cell.split("|") if v}) for c in col]
    check, binding, scheme, nonce, enc_len, tag, me_rsp, mac, avp_check, avp_status = values
    assert check == [KME_CHECK.hex()]  # in the Attach Request and the integrity protected TAU Request
    assert sum(r[0] != "" for r in rows) == 2
    assert binding == [str(int(KmeBindingIndicator.NOT_BOUND)), str(int(KmeBindingIndicator.BOUND_TO_NEW))]
    assert scheme == ["1"] and nonce == [NONCE.hex()] and me_rsp == [ME_RSP.hex()]
    assert enc_len == [str(32 + 32 + 8)] and len(tag) == 1 and len(tag[0]) == 16
    assert len(mac) >= 2  # the integrity protected KME messages show their security header
    assert avp_check == ["05" * 16] and avp_status == ["0"]


def test_link_release_and_error_frames(dirs: capture.WiresharkDirs, built: Built) -> None:
    rows = _fields(dirs, built.path, "kmed_uelink.link_name", "kmed_uelink.release_cause", "kmed_uelink.error_cause",
                   "kmed_uelink.error_detail", "kmed_uelink.ue_id", "kmed_uelink.type")
    assert [r[0] for r in rows if r[0]] == [LINK_NAME, "cnn-1"]
    assert [r[1] for r in rows if r[1]] == [str(int(ReleaseCause.NORMAL))]
    assert [(r[2], r[3], r[4]) for r in rows if r[2]] == [(str(int(ErrorCause.UNKNOWN_UE_ID)), "no such UE", "42")]


def test_summary_counts_by_name(dirs: capture.WiresharkDirs, built: Built) -> None:
    s = capture.summarize(built.path, dirs)
    assert s.ok and s.packets == len(built.frames) + 2  # the UE link packets and AIR, AIA
    assert s.nas_messages["KME Provisioning Command"] == 2 and s.nas_messages["KME Provisioning Response"] == 2
    assert s.nas_messages["Attach request"] == 1 and s.nas_messages["Authentication request"] == 2
    assert s.kmed_ies == {"KME_Check": 2, "KME binding indicator": 2}
    assert s.ciphered == len(built.ciphered)
    assert s.uelink_frames["LINK_SETUP"] == 1 and s.uelink_frames["ERROR"] == 1
    assert s.diameter == {"3GPP-Authentication-Information Request": 1, "3GPP-Authentication-Information Answer": 1}
    assert set(s.kme_avps) == {"KME-Check", "KME-Check-Identity", "KME-Binding", "KME-Status"}


def test_kmed_ies_not_reported_as_extraneous_data(dirs: capture.WiresharkDirs, built: Built) -> None:
    """nas-eps gets the message without kmed's trailing IEs, so it has nothing to complain about."""
    rows = _fields(dirs, built.path, "frame.number", "_ws.expert.message")
    assert not [r for r in rows if "Extraneous" in r[1]]


def test_ciphered_eea2_pdus_never_reach_nas_eps(dirs: capture.WiresharkDirs, tmp_path: Path) -> None:
    """nas-eps's EEA0 guess reads random 128-EEA2 ciphertext as messages, some malformed: the
    dissector shows ciphered PDUs itself, so many real ciphertexts decode clean."""
    w = PcapWriter()
    conv = TcpConversation(w).handshake()
    ctx = NasSecurityContext(1, os.urandom(16), os.urandom(16))
    kpc = _nas("kme_provisioning_command", kme_scheme="B", nonce=NONCE, encrypted_kme=os.urandom(73))
    for _ in range(100):
        frames = b"".join(encode_frame(DL, 7, ctx.protect(kpc, DOWNLINK, 2)) for _ in range(20))
        conv.server_to_client(frames)
    w.save(tmp_path / "ciphered.pcap")
    assert _problems(dirs, tmp_path / "ciphered.pcap") == []
    rows = _fields(dirs, tmp_path / "ciphered.pcap", "nas_eps.nas_msg_emm_type", "kmed_nas.security_header_type")
    assert all(r[0] == "" for r in rows)
    assert sum(r[1].count("2") for r in rows) == 2000


def test_eea0_preference_decodes_null_ciphered_pdus(dirs: capture.WiresharkDirs, tmp_path: Path) -> None:
    w = PcapWriter()
    conv = TcpConversation(w).handshake()
    ctx = NasSecurityContext(1, bytes(16), bytes(16), enc_alg=0)
    kpc = _nas("kme_provisioning_command", kme_scheme="B", nonce=NONCE, encrypted_kme=bytes(33 + 32 + 8))
    tau = _nas("tracking_area_update_request", eps_update_type=0, nas_key_set_identifier=1, old_guti=GUTI,
               kme_check=KME_CHECK)
    conv.server_to_client(encode_frame(DL, 7, ctx.protect(kpc, DOWNLINK, 2)))
    conv.client_to_server(encode_frame(UL, 7, ctx.protect(tau, UPLINK, 2)))
    w.save(tmp_path / "eea0.pcap")
    off = _fields(dirs, tmp_path / "eea0.pcap", "_ws.col.Info", extra=())
    assert [r[0] for r in off[3:]] == ["Ciphered message", "Ciphered message"]
    on = _fields(dirs, tmp_path / "eea0.pcap", "_ws.col.Info", "kmed_nas.kme_scheme", "kmed_nas.kme_check",
                 extra=("-o", "kmed_uelink.eea0:TRUE"))
    assert on[3] == ["KME Provisioning Command", "2", ""]
    assert on[4] == ["Tracking area update request", "", KME_CHECK.hex()]
    assert _problems(dirs, tmp_path / "eea0.pcap", "-o", "kmed_uelink.eea0:TRUE") == []


def test_other_ports_by_decode_as_and_heuristic(dirs: capture.WiresharkDirs, tmp_path: Path) -> None:
    w = PcapWriter()
    conv = TcpConversation(w, server=("127.0.0.1", 41234)).handshake()
    conv.client_to_server(encode_frame(FrameType.LINK_SETUP, 0, b"ue-sim-2"))
    conv.client_to_server(encode_frame(UL, 1, _nas("identity_response", mobile_identity=imsi_identity(IMSI))))
    w.save(tmp_path / "port.pcap")
    pcap = tmp_path / "port.pcap"
    assert all(r[0] == "" for r in _fields(dirs, pcap, "kmed_uelink.type"))  # not on the default port
    mapped = _fields(dirs, pcap, "kmed_uelink.type", "nas_eps.nas_msg_emm_type", ports=capture.Ports((41234,)))
    assert [r for r in mapped if r[0]] == [["0x01", ""], ["0x10", "0x56"]]
    heur = _fields(dirs, pcap, "kmed_uelink.type", extra=("-o", "kmed_uelink.heuristic:TRUE"))
    assert [r[0] for r in heur if r[0]] == ["0x01", "0x10"]


def _bad_stream(tmp_path: Path, name: str, *payloads: bytes) -> Path:
    w = PcapWriter()
    conv = TcpConversation(w).handshake()
    for p in payloads:
        conv.client_to_server(p)
    return w.save(tmp_path / name)


def test_bad_input_is_reported_not_hidden(dirs: capture.WiresharkDirs, tmp_path: Path) -> None:
    """The zero-error checks above can fail: bad streams and PDUs are flagged at error level."""
    good = encode_frame(UL, 1, _nas("identity_response", mobile_identity=imsi_identity(IMSI)))
    bad_version = _bad_stream(tmp_path, "version.pcap", b"\x02" + good[1:])
    short_length = _bad_stream(tmp_path, "length.pcap", b"\x01\x00\x00\x04" + good[4:])
    truncated_kme = _bad_stream(tmp_path, "kme.pcap", encode_frame(DL, 1, bytes((0x07, 0x7B)) + bytes(5)))
    # a malformed NAS PDU (LV overrunning the message) followed by a good frame in the same segment
    broken_nas = _bad_stream(tmp_path, "nas.pcap", encode_frame(UL, 1, bytes((0x07, 0x56, 0x30, 0x09))) + good)
    for pcap in (bad_version, short_length, truncated_kme, broken_nas):
        assert _problems(dirs, pcap) != [], pcap.name
    rows = _fields(dirs, broken_nas, "kmed_uelink.ue_id", "nas_eps.nas_msg_emm_type")
    assert rows[3] == ["1|1", "0x56|0x56"]  # the frame after the malformed one is still dissected
    experts = _fields(dirs, bad_version, "_ws.expert.message")
    assert any("cannot be framed" in r[0] for r in experts)


def test_kme_ie_with_a_bad_length_is_a_warning(dirs: capture.WiresharkDirs, tmp_path: Path) -> None:
    """kmed's decoder treats an optional IE with a bad length as absent (TS 24.301 §7.7): a
    protocol warning, not a malformed packet; nas-eps still decodes the message before it."""
    attach = _nas("attach_request", eps_attach_type=1, nas_key_set_identifier=7, eps_mobile_identity=GUTI,
                  ue_network_capability=ue_network_capability(), esm_message_container=esm.pdn_connectivity_request())
    pcap = _bad_stream(tmp_path, "ie.pcap", encode_frame(UL, 1, attach + bytes((0x3C, 10)) + bytes(10)))
    assert _problems(dirs, pcap) == []
    rows = _fields(dirs, pcap, "nas_eps.nas_msg_emm_type", "kmed_nas.kme_check", "_ws.expert.message")
    assert rows[3][0] == "0x41" and rows[3][1] == ""
    assert "length outside its table" in rows[3][2]


def test_tools_capture_check_and_decode(built: Built, tmp_path: Path) -> None:
    require_tool("tshark")
    tool = ROOT / "tools" / "capture"
    done = subprocess.run([sys.executable, str(tool), "--check", str(built.path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "KME Provisioning Command x2" in done.stdout and "KME_Check x2" in done.stdout
    assert "KME-Check x1" in done.stdout
    bad = _bad_stream(tmp_path, "bad.pcap", b"\x02" + bytes(20))
    done = subprocess.run([sys.executable, str(tool), "--check", str(bad)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 1 and "frame 4" in done.stdout, done.stdout + done.stderr
    done = subprocess.run([sys.executable, str(tool), "--decode", str(built.path), "-Y", "kmed_nas.msg_type",
                           "--", "-T", "fields", "-e", "_ws.col.Info"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["KME Provisioning Command", "KME Provisioning Command"]


def _every_message() -> dict[str, dict[str, object]]:
    """One instance of every message in kmed's tables, with the IEs kmed's UE and CNN send."""
    return {
        "attach_request": {"eps_attach_type": 1, "nas_key_set_identifier": 7,
                           "eps_mobile_identity": imsi_identity(IMSI), "ue_network_capability": ue_network_capability(),
                           "esm_message_container": esm.pdn_connectivity_request(),
                           "last_visited_registered_tai": bytes.fromhex("00f1100001"), "kme_check": KME_CHECK},
        "attach_accept": {"eps_attach_result": 1, "t3412_value": 0x21, "tai_list": tai_list("001", "01", [1, 2]),
                          "esm_message_container": esm.activate_default_bearer_request(), "guti": GUTI},
        "attach_complete": {"esm_message_container": esm.activate_default_bearer_accept()},
        "attach_reject": {"emm_cause": 6},
        "detach_request": {"detach_type": 1, "nas_key_set_identifier": 1, "eps_mobile_identity": GUTI},
        "detach_accept": {},
        "tracking_area_update_request": {"eps_update_type": 0, "nas_key_set_identifier": 1, "old_guti": GUTI,
                                         "ue_network_capability": ue_network_capability(), "kme_check": KME_CHECK},
        "tracking_area_update_accept": {"eps_update_result": 0, "t3412_value": 0x21, "guti": GUTI,
                                        "tai_list": tai_list("001", "01", [1])},
        "tracking_area_update_complete": {},
        "tracking_area_update_reject": {"emm_cause": 9},
        "authentication_request": {"nas_key_set_identifier": 1, "rand": bytes(16), "autn": bytes(range(16)),
                                   "kme_binding_indicator": KmeBindingIndicator.BOUND_TO_CURRENT},
        "authentication_response": {"res": bytes(8)},
        "authentication_reject": {},
        "authentication_failure": {"emm_cause": 21, "auts": bytes(range(14))},
        "identity_request": {"identity_type": 1},
        "identity_response": {"mobile_identity": imeisv_identity("3569380356438091")},
        "security_mode_command": {"selected_nas_security_algorithms": nas_security_algorithms(2, 2),
                                  "nas_key_set_identifier": 1,
                                  "replayed_ue_security_capabilities": ue_security_capability(), "imeisv_request": 1},
        "security_mode_complete": {"imeisv": imeisv_identity("3569380356438091")},
        "security_mode_reject": {"emm_cause": 23},
        "emm_status": {"emm_cause": 96},
        "kme_provisioning_command": {"kme_scheme": "B", "nonce": NONCE, "encrypted_kme": bytes(33 + 32 + 8)},
        "kme_provisioning_response": {"me_rsp": ME_RSP},
    }


def test_every_kmed_message_decodes_by_name_without_problems(dirs: capture.WiresharkDirs, tmp_path: Path) -> None:
    """Each message of kmed/nas/messages.py, plain and integrity protected, one per frame: named
    by nas-eps (standard types) or by the dissector (0x7A/0x7B), nothing malformed."""
    samples = _every_message()
    assert set(samples) == {m.name for m in MESSAGES}  # a new message needs a sample here
    ctx = NasSecurityContext(1, bytes(16), bytes(16))
    w = PcapWriter()
    conv = TcpConversation(w).handshake()
    expected: list[int] = []
    for spec in MESSAGES:
        plain = _nas(spec.name, **samples[spec.name])
        for pdu in (plain, ctx.protect(plain, DOWNLINK, 1)):
            conv.server_to_client(encode_frame(DL, 3, pdu))
            expected.append(spec.message_type)
    w.save(tmp_path / "all.pcap")
    assert _problems(dirs, tmp_path / "all.pcap") == []
    rows = _fields(dirs, tmp_path / "all.pcap", "nas_eps.nas_msg_emm_type", "kmed_nas.msg_type", "_ws.col.Info",
                   "_ws.expert.severity")
    got = [int(r[0] or r[1], 16) for r in rows[3:]]
    assert got == expected
    assert all("unknown" not in r[2].lower() for r in rows[3:]), [r[2] for r in rows]
    # nothing above "note" from nas-eps for what kmed sends (warnings would be tolerated by the
    # filter, but the decode should be clean)
    severities = {int(v) for r in rows for v in r[3].split("|") if v}
    assert all(v <= 0x00400000 for v in severities), severities

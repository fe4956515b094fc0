"""The Wireshark support that needs no tshark: the Lua dissector's generated tables agree with
kmed's Python tables, the pcap writer's checksums, and the commands tools/capture builds."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from kmed import capture
from kmed.nas.codec import NasMessage, encode
from kmed.nas.frame import ErrorCause, FrameType, ReleaseCause
from kmed.nas.identity import guti_identity, imsi_identity
from kmed.nas.ies import IEI_KME_BINDING_INDICATOR, IEI_KME_CHECK, KmeBindingIndicator, ue_network_capability
from kmed.nas.messages import MESSAGES_BY_NAME
from tests.pcap import PcapWriter, TcpConversation, checksum, ethernet_ipv4_tcp

LUA = capture.dissector_path()


def test_generated_section_of_the_lua_dissector_is_current() -> None:
    text = LUA.read_text(encoding="utf-8")
    assert text.count(capture.LUA_BEGIN) == 1 and text.count(capture.LUA_END) == 1
    assert capture.lua_generated_section(text) == capture.lua_tables(), (
        "tools/wireshark/kmed-uelink.lua is stale: paste the output of tools/capture --print-lua-tables"
    )


def test_lua_tables_name_every_frame_type_and_cause() -> None:
    tables = capture.lua_tables()
    for enum in (FrameType, ErrorCause, ReleaseCause):
        for member in enum:
            assert f'[{int(member)}] = "{member.name}",' in tables
    assert f"local IEI_KME_CHECK = 0x{IEI_KME_CHECK:02X}" in tables
    assert f"local IEI_KME_BINDING_INDICATOR = 0x{IEI_KME_BINDING_INDICATOR:02X}" in tables


def _walk(layout: list[str], pdu: bytes) -> int:
    """Python twin of the Lua skip_mandatory: offset after the imperative part."""
    pos = 2
    for item in layout:
        if item == "LV":
            pos += 1 + pdu[pos]
        elif item == "LVE":
            pos += 2 + int.from_bytes(pdu[pos : pos + 2], "big")
        else:
            pos += int(item[1:])
    return pos


@pytest.mark.parametrize(
    ("name", "ies", "kme_iei"),
    [
        ("attach_request", {"eps_attach_type": 1, "nas_key_set_identifier": 7,
                            "eps_mobile_identity": imsi_identity("001010123456789"),
                            "ue_network_capability": ue_network_capability(),
                            "esm_message_container": bytes.fromhex("0201d011"),
                            "drx_parameter": b"\x00\x0a", "kme_check": bytes(range(16))}, IEI_KME_CHECK),
        ("tracking_area_update_request", {"eps_update_type": 0, "nas_key_set_identifier": 1,
                                          "old_guti": guti_identity("001", "01", 1, 2, 3),
                                          "last_visited_registered_tai": bytes.fromhex("00f1100001"),
                                          "kme_check": bytes(16)}, IEI_KME_CHECK),
        ("authentication_request", {"nas_key_set_identifier": 1, "rand": bytes(16), "autn": bytes(16),
                                    "kme_binding_indicator": KmeBindingIndicator.BOUND_TO_CURRENT},
         IEI_KME_BINDING_INDICATOR),
    ],
)
def test_generated_layout_finds_the_kme_ie_in_real_encodings(name: str, ies: dict[str, object], kme_iei: int) -> None:
    """The imperative-part layout and TV lengths given to Lua lead to the kmed IE in what
    kmed.nas.codec encodes (walking the optional part with the same rules as the Lua)."""
    spec = MESSAGES_BY_NAME[name]
    pdu = encode(NasMessage(name, ies))
    layout = capture._imperative_layout(spec)
    tv = {ie.iei: int(ie.length) for ie in spec.ies if ie.iei is not None and ie.fmt.value == "TV" and ie.iei < 0x80}
    pos = _walk(layout, pdu)
    seen = []
    while pos < len(pdu):
        iei = pdu[pos]
        step = 1 if iei >= 0x80 else tv.get(iei) or (3 + int.from_bytes(pdu[pos + 1 : pos + 3], "big")
                                                      if iei & 0xF0 == 0x70 else 2 + pdu[pos + 1])
        seen.append(iei)
        pos += step
    assert pos == len(pdu)
    assert seen[-1] == kme_iei  # kmed sends its IE last (table order): the Lua relies on it to stay clean


def test_checksum_rfc1071_example() -> None:
    # RFC 1071 §3 example: the one's complement sum of 0001 f203 f4f5 f6f7 is ddf2.
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2


def test_frames_carry_valid_ip_and_tcp_checksums() -> None:
    frame = ethernet_ipv4_tcp(("127.0.0.1", 40000), ("127.0.0.2", 36412), 7, 9, 0x18, b"odd length!")
    ip = frame[14:34]
    assert checksum(ip) == 0
    tcp = frame[34:]
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(tcp))
    assert checksum(pseudo + tcp) == 0


def test_conversation_sequence_numbers(tmp_path: Path) -> None:
    w = PcapWriter()
    c = TcpConversation(w).handshake()
    c.client_to_server(b"abc")
    c.server_to_client(b"xy")
    c.client_to_server(b"d")
    data = w.save(tmp_path / "x.pcap").read_bytes()
    assert struct.unpack_from("<IHH", data) == (0xA1B2C3D4, 2, 4)
    seqs = []
    off = 24
    while off < len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        pkt = data[off + 16 : off + 16 + incl]
        seqs.append(struct.unpack_from("!II", pkt, 14 + 20 + 4))
        off += 16 + incl
    # SYN(c=1000), SYN/ACK(s=5000, ack 1001), ACK, "abc" at 1001, "xy" at 5001 ack 1004, "d" at 1004 ack 5003
    assert seqs == [(1000, 0), (5000, 1001), (1001, 5001), (1001, 5001), (5001, 1004), (1004, 5003)]


def test_capture_command_and_filter() -> None:
    argv = capture.capture_command("/tmp/x.pcapng", capture.Ports((36412,), (3868, 3868)), interface="lo",
                                   duration=2.5, packets=10, tool="dumpcap")
    assert argv == ["dumpcap", "-q", "-i", "lo", "-f", "tcp port 3868 or tcp port 36412", "-w", "/tmp/x.pcapng",
                    "-a", "duration:3", "-c", "10"]
    assert capture.Ports(any_port=True).capture_filter() == "tcp"
    assert capture.Ports(any_port=True).decode_args()[-4:] == ["-o", "kmed_uelink.heuristic:TRUE",
                                                               "--enable-heuristic", "diameter_tcp"]


def test_tshark_command_loads_the_dissector_and_maps_the_ports(tmp_path: Path) -> None:
    dirs = capture.WiresharkDirs(tmp_path, tmp_path / "data", tmp_path / "config", tmp_path / "k.lua", 65534)
    argv, env = capture.tshark_command(dirs, ["-r", "-"], capture.Ports((5000, 36412), (3868, 3900)),
                                       tshark="/usr/bin/tshark")
    assert argv[:4] == [argv[0], "--reuid=65534", "--regid=65534", "--clear-groups"]
    assert argv[4:] == ["/usr/bin/tshark", "-X", f"lua_script:{tmp_path / 'k.lua'}",
                        "-d", "tcp.port==5000,kmed_uelink", "-d", "tcp.port==36412,kmed_uelink",
                        "-d", "tcp.port==3900,diameter", "-r", "-"]
    assert env["WIRESHARK_DATA_DIR"] == str(tmp_path / "data")
    assert env["WIRESHARK_CONFIG_DIR"] == str(tmp_path / "config")
    assert env["HOME"] == str(tmp_path / "home")


def test_prepare_dirs_makes_a_readable_private_setup(tmp_path: Path) -> None:
    system = tmp_path / "system"
    (system / "diameter").mkdir(parents=True)
    (system / "diameter" / "dictionary.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE dictionary SYSTEM "dictionary.dtd" [\n]>\n<dictionary>\n</dictionary>\n')
    (system / "manuf").write_text("00:00:00\tXerox\n")
    dirs = capture.prepare_dirs(tmp_path / "ws", system_data_dir=system)
    assert dirs.data_dir is not None
    assert (dirs.data_dir / "manuf").is_symlink() and (dirs.data_dir / "manuf").read_text().startswith("00:00:00")
    assert "kmed.xml" in (dirs.data_dir / "diameter" / "dictionary.xml").read_text()
    assert dirs.lua_script.read_bytes() == LUA.read_bytes()
    assert not any(dirs.config_dir.iterdir())  # no personal preferences
    for path in dirs.root.rglob("*"):
        if not path.is_symlink():
            assert path.stat().st_mode & 0o005 == (0o005 if path.is_dir() else 0o004), path
    # without Wireshark's data files: no data dir, the dissector still works
    bare = capture.prepare_dirs(tmp_path / "bare", system_data_dir=tmp_path / "nothing")
    assert bare.data_dir is None and bare.lua_script.is_file()


def test_summary_render_lists_problems_and_names() -> None:
    s = capture.CaptureSummary(packets=3, problems=["frame 2: Attach request [malformed]"])
    s.nas_messages["Attach request"] += 2
    s.kme_avps["KME-Check"] += 1
    text = s.render()
    assert not s.ok
    assert "frame 2: Attach request [malformed]" in text
    assert "NAS messages: Attach request x2" in text and "KME AVPs (vendor 32473): KME-Check x1" in text

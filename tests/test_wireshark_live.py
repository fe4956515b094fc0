"""A capture of a real kmed run on loopback (HSS and CNN processes, `kmed ue` attaches, as in
`kmed demo`) decodes with zero packets matching ``_ws.malformed || _ws.expert.severity >= error``,
every S6a and NAS message by name, and the KME AVPs and IEs by name.

With the default 128-EEA2 the KME Provisioning Command/Response are ciphered and cannot be named
(docs/captures.md, "Limits"); the first run checks that they are counted as ciphered PDUs, the
second runs the CNN with ``nas.ciphering = "EEA0"`` (integrity still 128-EIA2) and names them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kmed import capture
from kmed.demo import IMEI, IMSI
from kmed.lab import DEFAULT_K, DEFAULT_OPC, running_lab
from tests.conftest import require_tool

pytestmark = [pytest.mark.system, pytest.mark.slow]


@pytest.mark.parametrize("ciphering", ["EEA2", "EEA0"])
def test_capture_of_a_real_run_decodes_by_name(tmp_path: Path, ciphering: str) -> None:
    require_tool("tshark")
    require_tool("dumpcap")
    root = tmp_path
    pcap = root / "run.pcapng"
    with running_lab(root / "lab", services=("hss",), cnn_ciphering=ciphering) as lab:
        lab.admin("subscriber", "add", "--imsi", IMSI, "--k", DEFAULT_K, "--opc", DEFAULT_OPC)
        priv, pub = lab.gen_device_key("ME-A", "A")
        lab.admin("device", "add", "--imei", IMEI["ME-A"], "--public-key", str(pub))
        lab.admin("pair", "allow", "--imsi", IMSI, "--imei", IMEI["ME-A"])
        cfg = lab.ue_config("ME-A", imsi=IMSI, imei=IMEI["ME-A"], private_key=priv, usim_name="usim-1")
        ports = capture.Ports((lab.cnn_port,), (lab.hss_port,), eea0=ciphering == "EEA0")
        cap = capture.Capture(pcap, ports, duration=120)  # bounded even if stop fails
        try:
            cap.start()
        except RuntimeError as exc:  # e.g. no capture permission for a normal user
            pytest.skip(f"cannot capture on lo: {exc}")
        try:
            lab.start("cnn")  # CER/CEA inside the capture
            results = [lab.attach(cfg), lab.attach(cfg), lab.attach(cfg, "tau")]
            lab.stop("cnn")  # DPR/DPA
        finally:
            cap.stop()
    assert [r.get("result") for r in results] == ["accepted"] * 3, results
    assert results[0].get("kme_provisioned") is True, results[0]

    with capture.private_dirs() as dirs:
        s = capture.summarize(pcap, dirs, ports)
    report = s.render()
    assert s.ok, report
    for command in ("Capabilities-Exchange", "3GPP-Authentication-Information", "3GPP-Update-Location",
                    "Disconnect-Peer"):
        assert s.diameter[f"{command} Request"] >= 1 and s.diameter[f"{command} Answer"] >= 1, report
    assert s.diameter["3GPP-Authentication-Information Request"] >= 4, report  # step 10's re-authentication
    for message in ("Attach request", "Authentication request", "Authentication response", "Security mode command",
                    "Tracking area update request", "PDN connectivity request"):
        assert s.nas_messages[message] >= 1, report
    assert s.kmed_ies["KME_Check"] >= 2 and s.kmed_ies["KME binding indicator"] >= 1, report
    assert {"KME-Check", "KME-Check-Identity", "KME-Status", "KME-Request", "KME-Scheme", "Encrypted-KME", "KME",
            "KME-Binding", "KME-Token"} <= set(s.kme_avps), report
    assert s.uelink_frames["LINK_SETUP"] == 3 and s.uelink_frames["UE_RELEASE"] >= 3, report
    if ciphering == "EEA2":
        assert s.ciphered >= 6, report  # SMC complete, KME messages, accepts... under 128-EEA2
    else:  # security header type 2/4 still counted as "ciphered", but EEA0 decodes them by name
        for message in ("KME Provisioning Command", "KME Provisioning Response", "Security mode complete",
                        "Attach accept", "Attach complete"):
            assert s.nas_messages[message] >= 1, report

"""SIGHUP (``systemctl reload``): the daemons reopen ``[log] file`` -- rename the file, send
SIGHUP, new lines go to a new file at the configured path, loggers bound before included, and
the renamed file is closed -- and the HSS reloads ``allowed_peers``: a connected peer that was
removed gets DPR (DO_NOT_WANT_TO_TALK_TO_YOU) and is refused (3010) at its next CER. Also: the
console log format for a person."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from kmed.diameter import dictionary as d
from kmed.diameter.peer import DO_NOT_WANT_TO_TALK_TO_YOU
from kmed.lab import Lab, running_lab
from tests.ops.procs import IMSI, RawPeer, events, named, open_files, provision_one, wait_event

pytestmark = pytest.mark.timeout(180)


def _with_log_files(root: Path) -> Lab:
    lab = Lab(root)
    lab.extra_hss = f'file = "{root / "hss-file.log"}"\n'  # appended to the [log] section
    lab.extra_cnn = f'file = "{root / "cnn-file.log"}"\n'
    lab.hss_config.write_text(lab.hss_toml(), encoding="utf-8")
    lab.cnn_config.write_text(lab.cnn_toml(), encoding="utf-8")
    return lab


def test_sighup_reopens_the_log_files(tmp_path: Path) -> None:
    lab = _with_log_files(tmp_path)
    hss_log, cnn_log = tmp_path / "hss-file.log", tmp_path / "cnn-file.log"
    ue = provision_one(lab)
    try:
        hss, cnn = lab.start("hss"), lab.start("cnn")
        assert lab.attach(ue)["result"] == "accepted"
        wait_event(cnn_log, lambda e: e.get("event") == "attach_complete")
        hss_log.rename(tmp_path / "hss-file.log.1")
        cnn_log.rename(tmp_path / "cnn-file.log.1")
        for daemon in (hss, cnn):
            daemon.proc.send_signal(signal.SIGHUP)
        wait_event(hss_log, lambda e: e.get("event") == "hss_reloaded")
        wait_event(cnn_log, lambda e: e.get("event") == "cnn_reloaded")
        # the renamed files are closed (no descriptor left per SIGHUP)
        for daemon in (hss, cnn):
            assert not [p for p in open_files(daemon.proc.pid) if p.endswith(".log.1")]
        assert lab.attach(ue)["result"] == "accepted"
        wait_event(cnn_log, lambda e: e.get("event") == "attach_complete" and e.get("imsi") == IMSI)
        wait_event(hss_log, lambda e: e.get("event") == "ulr" and e.get("imsi") == IMSI)
        # The CNN's Diameter client bound its logger when it connected, before the reload:
        # its lines follow the reopen too (stopping the HSS makes it log).
        assert lab.stop("hss") == 0
        wait_event(cnn_log, lambda e: e.get("event") == "diameter_connection_closed")
        wait_event(hss_log, lambda e: e.get("event") == "hss_stopped")
        assert lab.stop("cnn") == 0
    finally:
        for daemon in list(lab.daemons.values()):
            daemon.kill()
    old_hss, old_cnn = events(tmp_path / "hss-file.log.1"), events(tmp_path / "cnn-file.log.1")
    new_hss, new_cnn = events(hss_log), events(cnn_log)
    # first attach: only in the renamed files; second attach and the stops: only in the new ones
    assert [e["event"] for e in old_cnn].count("attach_complete") == 1
    assert [e["event"] for e in new_cnn].count("attach_complete") == 1
    assert {"cnn_reloaded", "diameter_connection_closed", "cnn_stopped"} <= {e["event"] for e in new_cnn}
    assert not {"cnn_reloaded", "diameter_connection_closed", "cnn_stopped"} & {e["event"] for e in old_cnn}
    assert [e["event"] for e in old_hss].count("ulr") == 1 and [e["event"] for e in new_hss].count("ulr") == 1
    assert {"hss_reloaded", "hss_stopped", "diameter_stopped"} <= {e["event"] for e in new_hss}


def test_sighup_reloads_allowed_peers(tmp_path: Path) -> None:
    with running_lab(tmp_path) as lab:
        ue = provision_one(lab)
        assert lab.attach(ue)["result"] == "accepted"
        hss, cnn = lab.daemons["hss"], lab.daemons["cnn"]
        text = lab.hss_config.read_text()
        lab.hss_config.write_text(text.replace('["mme.localdomain"]', '["other.localdomain"]'))
        hss.proc.send_signal(signal.SIGHUP)
        wait_event(hss.log_path, lambda e: e.get("event") == "hss_reloaded"
                   and e.get("allowed_peers") == ["other.localdomain"])
        # the connected CNN is told to go away (RFC 6733 §5.4.3) ...
        wait_event(hss.log_path, lambda e: e.get("event") == "diameter_peer_removed"
                   and e.get("peer") == "mme.localdomain")
        wait_event(cnn.log_path, lambda e: e.get("event") == "diameter_peer_disconnecting"
                   and e.get("cause") == DO_NOT_WANT_TO_TALK_TO_YOU)
        # ... its UEs get EMM #17 meanwhile, and its next CER is refused
        r = lab.attach(ue)
        assert (r["result"], r["emm_cause"]) == ("rejected", 17)
        peer = RawPeer(lab.hss_port, "mme.localdomain")
        try:
            assert peer.cer().result_code() == d.DIAMETER_UNKNOWN_PEER
        finally:
            peer.close()
        # allowed again after the next reload
        lab.hss_config.write_text(text)
        hss.proc.send_signal(signal.SIGHUP)
        wait_event(hss.log_path, lambda e: e.get("event") == "hss_reloaded"
                   and e.get("allowed_peers") == ["mme.localdomain"])
        peer = RawPeer(lab.hss_port, "mme.localdomain")
        try:
            assert peer.cer().result_code() == d.DIAMETER_SUCCESS
        finally:
            peer.close()
        assert lab.stop("hss") == 0 and lab.stop("cnn") == 0


def test_bad_reload_keeps_the_running_configuration(tmp_path: Path) -> None:
    """A configuration broken meanwhile: SIGHUP logs why, and the daemon goes on unchanged."""
    with running_lab(tmp_path) as lab:
        ue = provision_one(lab)
        for name, config in (("hss", lab.hss_config), ("cnn", lab.cnn_config)):
            good = config.read_text()
            config.write_text(good.replace('format = "json"', 'format = "xml"'))
            lab.daemons[name].proc.send_signal(signal.SIGHUP)
            ev = wait_event(lab.daemons[name].log_path, named(f"{name}_reload_failed"))
            assert "log.format" in ev["error"] and str(config) in ev["error"]
            config.write_text(good)
        assert lab.attach(ue)["result"] == "accepted"
        assert lab.stop("cnn") == 0 and lab.stop("hss") == 0


def test_console_format(tmp_path: Path) -> None:
    """``[log] format = "console"``: one readable line per event (key=value), not JSON."""
    lab = Lab(tmp_path)
    for config in (lab.hss_config, lab.cnn_config):
        config.write_text(config.read_text().replace('format = "json"', 'format = "console"'))
    ue = provision_one(lab)
    try:
        lab.start("hss")
        lab.start("cnn")
        assert lab.attach(ue)["result"] == "accepted"
        deadline = time.monotonic() + 30
        while "attach_complete" not in (tmp_path / "logs" / "cnn.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lab.stop("cnn") == 0 and lab.stop("hss") == 0
    finally:
        for daemon in list(lab.daemons.values()):
            daemon.kill()
    for name in ("hss", "cnn"):
        lines = (tmp_path / "logs" / f"{name}.log").read_text().splitlines()
        assert lines and not any(line.lstrip().startswith("{") for line in lines)
    cnn_lines = (tmp_path / "logs" / "cnn.log").read_text().splitlines()
    complete = [ln for ln in cnn_lines if "attach_complete" in ln]
    assert len(complete) == 1
    assert re.search(rf"\bimsi={IMSI}\b", complete[0]) and re.search(r"\bstep=13\b", complete[0])
    assert re.search(r"\bue_id=\d+\b", complete[0]) and "[info" in complete[0]
    hss_text = (tmp_path / "logs" / "hss.log").read_text()
    assert re.search(rf"\bair\b.*\bimsi={IMSI}\b.*\bstep=2\b|\bair\b.*\bstep=2\b.*\bimsi={IMSI}\b", hss_text)

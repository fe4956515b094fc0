"""The seed procedure end to end (issue 5 tests a-d, h, i): real HSS and CNN processes on
loopback with a real SQLite store, driven only through the CONTRACT command line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kmed.lab import DEFAULT_K, DEFAULT_OPC, Lab, running_lab

IMSI = "001010000000001"
IMEI_A = "356938035643809"
IMEI_B = "356938035643817"
IMEI_C = "356938035643825"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with running_lab(tmp_path) as lab:
        yield lab


def provision(lab: Lab, imsi: str = IMSI, sqn: int | None = None) -> None:
    args = ["subscriber", "add", "--imsi", imsi, "--k", DEFAULT_K, "--opc", DEFAULT_OPC]
    lab.admin(*args, *(["--sqn", str(sqn)] if sqn is not None else []))


def device(lab: Lab, name: str, imei: str, allowed: bool = True, profile: str = "A") -> Path:
    priv, pub = lab.gen_device_key(name, profile)
    lab.admin("device", "add", "--imei", imei, "--public-key", str(pub))
    if allowed:
        lab.admin("pair", "allow", "--imsi", IMSI, "--imei", imei)
    return priv


def hss_kme(lab: Lab, imsi: str = IMSI) -> str | None:
    fp = lab.show(imsi).get("kme_fingerprint")
    return str(fp) if fp else None


def test_a_first_attach_provisions_and_both_hold_the_same_kme(lab: Lab) -> None:
    provision(lab)
    key = device(lab, "me-a", IMEI_A)
    ue = lab.ue_config("me-a", imsi=IMSI, imei=IMEI_A, private_key=key)
    r = lab.attach(ue)
    assert r["result"] == "accepted" and r["exit_status"] == 0
    assert r["kme_provisioned"] is True
    assert r["imsi"] == IMSI and r["imei"] == IMEI_A
    assert r["kme_fingerprint"] is not None and r["kme_fingerprint"] == hss_kme(lab)


def test_b_reattach_matches_and_provisions_nothing(lab: Lab) -> None:
    provision(lab)
    key = device(lab, "me-a", IMEI_A)
    ue = lab.ue_config("me-a", imsi=IMSI, imei=IMEI_A, private_key=key)
    first = lab.attach(ue)
    again = lab.attach(ue)
    assert again["result"] == "accepted"
    assert again["kme_provisioned"] is False
    assert again["kme_fingerprint"] == first["kme_fingerprint"] == hss_kme(lab)


def test_c_usim_moved_to_another_me_and_back_provisions_each_time(lab: Lab) -> None:
    provision(lab)
    key_a = device(lab, "me-a", IMEI_A)
    key_b = device(lab, "me-b", IMEI_B, profile="B")
    ue_a = lab.ue_config("me-a", imsi=IMSI, imei=IMEI_A, private_key=key_a, usim_name="usim")
    ue_b = lab.ue_config("me-b", imsi=IMSI, imei=IMEI_B, private_key=key_b, usim_name="usim")
    fa = lab.attach(ue_a)["kme_fingerprint"]
    rb = lab.attach(ue_b)
    assert rb["result"] == "accepted" and rb["kme_provisioned"] is True
    assert rb["kme_fingerprint"] not in (None, fa) and rb["kme_fingerprint"] == hss_kme(lab)
    ra = lab.attach(ue_a)
    assert ra["result"] == "accepted" and ra["kme_provisioned"] is True
    assert ra["kme_fingerprint"] not in (None, fa, rb["kme_fingerprint"]) and ra["kme_fingerprint"] == hss_kme(lab)


def test_d_pair_not_allowed_is_rejected_and_nothing_is_stored(lab: Lab) -> None:
    provision(lab)
    key_a = device(lab, "me-a", IMEI_A)
    key_c = device(lab, "me-c", IMEI_C, allowed=False)
    held = lab.attach(lab.ue_config("me-a", imsi=IMSI, imei=IMEI_A, private_key=key_a, usim_name="u"))
    r = lab.attach(lab.ue_config("me-c", imsi=IMSI, imei=IMEI_C, private_key=key_c, usim_name="u"))
    assert r["result"] == "rejected" and r["exit_status"] == 1
    assert r["emm_cause"] == 6  # Illegal ME: docs/procedure.md, used only for a refused device
    assert r["kme_provisioned"] is False and r["kme_fingerprint"] is None
    assert hss_kme(lab) == held["kme_fingerprint"]


def test_d_unknown_imsi_is_rejected(lab: Lab) -> None:
    key = device(lab, "me-a", IMEI_A, allowed=False)
    r = lab.attach(lab.ue_config("me-a", imsi="001010000009999", imei=IMEI_A, private_key=key))
    assert r["result"] == "rejected" and r["emm_cause"] is not None and r["emm_cause"] != 6


def test_h_sqn_resynchronisation_after_the_hss_store_is_rebuilt(lab: Lab) -> None:
    provision(lab)
    key = device(lab, "me-a", IMEI_A)
    ue = lab.ue_config("me-a", imsi=IMSI, imei=IMEI_A, private_key=key)
    for _ in range(3):
        assert lab.attach(ue)["result"] == "accepted"
    # A new store: the HSS's SQN starts again below what the USIM has accepted.
    lab.stop("hss")
    for f in lab.root.glob("hss.sqlite*"):
        f.unlink()
    lab.start("hss")
    provision(lab, sqn=0)
    lab.admin("device", "add", "--imei", IMEI_A, "--public-key", str(lab.root / "keys" / "me-a.pub.pem"))
    lab.admin("pair", "allow", "--imsi", IMSI, "--imei", IMEI_A)
    r = lab.attach(ue)
    assert r["result"] == "accepted"
    # The new HSS held no KME: the resynchronised attach provisioned one.
    assert r["kme_provisioned"] is True and r["kme_fingerprint"] == hss_kme(lab)
    events = [e for e in lab.daemons["hss"].log_events() if e.get("outcome") == "resync"]
    assert events, "the HSS logged no resynchronisation"


def test_i_tau_with_kme_check_over_the_guti(lab: Lab) -> None:
    provision(lab)
    key = device(lab, "me-a", IMEI_A)
    ue = lab.ue_config("me-a", imsi=IMSI, imei=IMEI_A, private_key=key)
    first = lab.attach(ue)
    r = lab.attach(ue, command="tau")
    assert r["result"] == "accepted"
    assert r["kme_provisioned"] is False and r["kme_fingerprint"] == first["kme_fingerprint"]

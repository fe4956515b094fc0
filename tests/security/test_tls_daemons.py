"""Diameter over TLS between the real daemons (RFC 6733 §13.1: mutual certificate
authentication): ``kmed hss`` listening on ``tls://`` and ``kmed cnn`` connecting over it, each
with ``tls_cert``/``tls_key``/``tls_ca``. A UE attaches through them; a CNN whose certificate
does not chain to the HSS's CA, whose certificate names another host than its Origin-Host, or
that does not trust the HSS's CA is refused, and its UEs get EMM #17 with nothing reaching the
store. (The transport-level cases are tests/diameter/test_transport.py::test_tls_*.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kmed.lab import Lab
from tests.diameter.test_transport import make_pki
from tests.e2e.test_procedure import IMEI_A, IMSI, device, provision

pytestmark = pytest.mark.timeout(240)
HSS, MME = "hss.localdomain", "mme.localdomain"


def _tls_configs(lab: Lab, hss: tuple[Path, Path, Path], mme: tuple[Path, Path, Path]) -> None:
    """Rewrite the lab's configurations: the HSS listens on tls://, the CNN connects over it."""
    hss_text = lab.hss_toml().replace(f'listen = ["tcp://{lab.host}:{lab.hss_port}"]',
                                      f'listen = ["tls://{lab.host}:{lab.hss_port}"]\n'
                                      f'tls_cert = "{hss[0]}"\ntls_key = "{hss[1]}"\ntls_ca = "{hss[2]}"')
    cnn_text = lab.cnn_toml().replace(f'connect = ["tcp://{lab.host}:{lab.hss_port}"]',
                                      f'connect = ["tls://{lab.host}:{lab.hss_port}"]\n'
                                      f'tls_cert = "{mme[0]}"\ntls_key = "{mme[1]}"\ntls_ca = "{mme[2]}"\n'
                                      "request_timeout_s = 2.0")
    assert "tls://" in hss_text and "tls://" in cnn_text
    lab.hss_config.write_text(hss_text)
    lab.cnn_config.write_text(cnn_text)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    good = make_pki(tmp_path, names={"hss": ["127.0.0.1", HSS], "mme": [MME], "other-mme": ["other-mme.localdomain"]})
    (tmp_path / "rogue").mkdir()
    rogue = make_pki(tmp_path / "rogue", names={"mme": [MME], "hss": ["127.0.0.1", HSS]}, ca_name="rogue CA")
    return {**good, **{f"rogue-{k}": v for k, v in rogue.items()}}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path / "lab")
    try:
        yield lab
    finally:
        for daemon in list(lab.daemons.values()):
            daemon.stop()


def _attach(lab: Lab) -> dict[str, object]:
    key = device(lab, "me-a", IMEI_A)
    return lab.attach(lab.ue_config("me-a", imsi=IMSI, imei=IMEI_A, private_key=key))


def test_attach_over_diameter_tls_between_the_daemons(lab: Lab, pki: dict[str, Path]) -> None:
    _tls_configs(lab, (pki["hss.crt"], pki["hss.key"], pki["ca"]), (pki["mme.crt"], pki["mme.key"], pki["ca"]))
    provision(lab)
    lab.start("hss")
    lab.start("cnn")
    result = _attach(lab)
    assert result["result"] == "accepted" and result["kme_provisioned"] is True
    assert lab.show(IMSI)["kme_fingerprint"] == result["kme_fingerprint"]
    assert lab.show(IMSI)["location"]["origin_host"] == MME
    opened = [e for e in lab.daemons["hss"].log_events() if e.get("event") == "diameter_peer_open"]
    assert opened and opened[0].get("peer") == MME


@pytest.mark.parametrize("case", ["cnn-cert-from-another-ca", "cnn-cert-names-another-host", "cnn-distrusts-hss-ca"])
def test_a_peer_with_a_wrong_certificate_is_refused(lab: Lab, pki: dict[str, Path], case: str) -> None:
    hss = (pki["hss.crt"], pki["hss.key"], pki["ca"])
    mme = {
        "cnn-cert-from-another-ca": (pki["rogue-mme.crt"], pki["rogue-mme.key"], pki["ca"]),
        "cnn-cert-names-another-host": (pki["other-mme.crt"], pki["other-mme.key"], pki["ca"]),
        "cnn-distrusts-hss-ca": (pki["mme.crt"], pki["mme.key"], pki["rogue-ca"]),
    }[case]
    _tls_configs(lab, hss, mme)
    provision(lab)
    lab.start("hss")
    lab.start("cnn")
    result = _attach(lab)
    assert result["result"] == "rejected" and result["emm_cause"] == 17  # no S6a peer: network failure
    shown = lab.show(IMSI)
    assert shown["kme_fingerprint"] is None and shown["sqn"] == 0 and shown["location"] is None
    hss_events = lab.daemons["hss"].log_events()
    names = {e.get("event") for e in hss_events}
    assert "diameter_peer_open" not in names and "air" not in names and "ulr" not in names
    if case == "cnn-cert-names-another-host":  # TLS was fine; the CER was refused (3010)
        refused = [e for e in hss_events if e.get("event") == "diameter_connection_refused"]
        assert refused and any("certificate" in str(e.get("reason")) for e in refused)

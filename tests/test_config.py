"""Configuration validation: errors name the file, the key, the expectation and the finding."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kmed import config

HSS = """
[diameter]
origin_host = "hss.localdomain"
origin_realm = "localdomain"
listen = ["tcp://127.0.0.1:3868"]
allowed_peers = ["mme.localdomain"]
[store]
url = "sqlite:///tmp/hss.sqlite"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "hss.toml"
    p.write_text(text)
    return p


def test_valid_hss_config_gets_defaults(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, HSS), config.HSS_SCHEMA)
    assert cfg["diameter"]["listen"] == [config.Endpoint("tcp", "127.0.0.1", 3868)]
    assert cfg["log"]["level"] == "info"
    assert cfg["metrics"]["listen"] is None


def test_missing_key(tmp_path: Path) -> None:
    p = write(tmp_path, HSS.replace('origin_realm = "localdomain"\n', ""))
    with pytest.raises(config.ConfigError) as e:
        config.load(p, config.HSS_SCHEMA)
    assert str(p) in str(e.value) and "diameter.origin_realm" in str(e.value)
    assert "missing" in str(e.value)


def test_wrong_type(tmp_path: Path) -> None:
    p = write(tmp_path, HSS.replace('allowed_peers = ["mme.localdomain"]', "allowed_peers = 3"))
    with pytest.raises(config.ConfigError) as e:
        config.load(p, config.HSS_SCHEMA)
    assert e.value.key == "diameter.allowed_peers" and e.value.found == "3"


def test_bad_address(tmp_path: Path) -> None:
    p = write(tmp_path, HSS.replace("tcp://127.0.0.1:3868", "tcp://127.0.0.1:99999"))
    with pytest.raises(config.ConfigError) as e:
        config.load(p, config.HSS_SCHEMA)
    assert e.value.key == "diameter.listen" and "99999" in e.value.found


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    p = write(tmp_path, HSS + "[log]\nlevle = \"debug\"\n")
    with pytest.raises(config.ConfigError) as e:
        config.load(p, config.HSS_SCHEMA)
    assert e.value.key == "log.levle"


def test_endpoints_ipv6() -> None:
    assert config.parse_endpoint("sctp://[::1]:3868") == config.Endpoint("sctp", "::1", 3868)
    assert str(config.parse_endpoint("tcp://[::1]:1")) == "tcp://[::1]:1"


UE = """
state_dir = "/var/lib/kmed/ue-1"
[cnn]
connect = "tcp://127.0.0.1:36412"
[usim]
imsi = "001010000000001"
k = "465b5ce8b199b49faa5f0a2ee238a6bc"
opc = "cd63cb71954a9f4e48a5994e37a02baf"
[me]
imei = "356938035643809"
private_key = "/etc/kmed/me-1.key.pem"
"""


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('k = "465b5ce8b199b49faa5f0a2ee238a6bc"', 'k = "465b5ce8b199b49faa5f0a2ee238a6"'),  # too short
        ('k = "465b5ce8b199b49faa5f0a2ee238a6bc"', 'k = "465b5ce8b199b49faa5f0a2ee238a6zz"'),  # not hex
        ('opc = "cd63cb71954a9f4e48a5994e37a02baf"', 'opc = ["cd63cb71954a9f4e48a5994e37a02baf"]'),
    ],
)
def test_secret_values_never_in_errors(tmp_path: Path, old: str, new: str) -> None:
    p = tmp_path / "ue.toml"
    p.write_text(UE.replace(old, new))
    with pytest.raises(config.ConfigError) as e:
        config.load(p, config.UE_SCHEMA)
    secret = new.split("=", 1)[1].strip(' "[]')
    assert secret[:8] not in str(e.value) and secret[-8:] not in str(e.value)
    assert "secret" in e.value.found and e.value.key in ("usim.k", "usim.opc")


def test_bad_item_of_an_address_list_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, HSS.replace('["tcp://127.0.0.1:3868"]', '["tcp://127.0.0.1:3868", "tcp://256.1.1.1:3868"]'))
    with pytest.raises(config.ConfigError) as e:
        config.load(p, config.HSS_SCHEMA)
    assert e.value.key == "diameter.listen"
    assert e.value.found == "'tcp://256.1.1.1:3868' (item 2 of the list)"
    assert "256.1.1.1 is not an IP address or host name" in e.value.expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("tcp://[127.0.0.1]:3868", "not an IPv6 address"),
        ("tcp://127.0.0.1:0", "port from 1 to 65535"),
        ("udp://127.0.0.1:3868", "sctp://"),
        ("tcp://host_name:3868", "not an IP address or host name"),
    ],
)
def test_parse_endpoint_says_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        config.parse_endpoint(text)


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    p = write(tmp_path, "log = 3\n" + HSS)
    with pytest.raises(config.ConfigError) as e:
        config.load(p, config.HSS_SCHEMA)
    assert (e.value.key, e.value.expected, e.value.found) == ("log", "a table [log]", "3")


def test_not_utf8_and_not_toml(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_bytes(b"[diameter]\norigin_host = \"\xff\"\n")
    with pytest.raises(config.ConfigError) as e:
        config.load(p, config.HSS_SCHEMA)
    assert e.value.key == "(file)" and "UTF-8" in e.value.expected
    p.write_text("[diameter\n")
    with pytest.raises(config.ConfigError) as e:
        config.load(p, config.HSS_SCHEMA)
    assert e.value.key == "(syntax)" and "line 1" in e.value.found


def test_long_found_values_are_shortened(tmp_path: Path) -> None:
    p = write(tmp_path, HSS.replace('"hss.localdomain"', '"' + "h" * 500 + '!"'))
    with pytest.raises(config.ConfigError) as e:
        config.load(p, config.HSS_SCHEMA)
    assert e.value.key == "diameter.origin_host" and len(e.value.found) <= 80


def test_numeric_diameter_identity_refused(tmp_path: Path) -> None:
    p = write(tmp_path, HSS.replace('origin_host = "hss.localdomain"', 'origin_host = "10.0.0.1"'))
    with pytest.raises(config.ConfigError) as e:
        config.load(p, config.HSS_SCHEMA)
    assert e.value.key == "diameter.origin_host"


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"diameter": {"listen": []}, "store": {}}, "hss"),
        ({"diameter": {"connect": []}}, "cnn"),
        ({"nas": {}}, "cnn"),
        ({"state_dir": "x"}, "ue"),
        ({"usim": {}}, "ue"),
        ({"subscribers": {}}, "load"),
        ({"mix": {}}, "load"),
    ],
)
def test_detect_kind(data: dict[str, object], kind: str) -> None:
    assert config.detect_kind(data) == kind

"""Configuration validation: errors name the file, the key, the expectation and the finding."""

from __future__ import annotations

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

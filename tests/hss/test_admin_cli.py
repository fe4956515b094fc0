"""``kmed admin`` and ``kmed keys`` as subprocesses: exit statuses, messages, what lands in
the store, file modes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from kmed.crypto import devkeys, ecies
from kmed.hss.sqlite_store import SqliteStore
from tests.hss.proc import K_HEX, OPC_HEX, HssProcess, kmed

IMSI = "001010000000001"
IMEI = "356938035643809"


@pytest.fixture
def h(tmp_path: Path) -> HssProcess:
    return HssProcess(tmp_path / "hss")


def test_config_errors_exit_2(tmp_path: Path) -> None:
    done = kmed("admin", "--config", str(tmp_path / "none.toml"), "show", "--imsi", IMSI)
    assert done.returncode == 2 and "none.toml" in done.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[diameter]\norigin_host = "h.x"\norigin_realm = "x"\nlisten = ["tcp://127.0.0.1:3868"]\n'
                   'allowed_peers = ["m.x"]\n')
    done = kmed("admin", "--config", str(bad), "show", "--imsi", IMSI)
    assert done.returncode == 2 and "bad.toml" in done.stderr and "store" in done.stderr
    bad.write_text(bad.read_text() + '[store]\nurl = "postgresql://db/hss"\n')
    done = kmed("admin", "--config", str(bad), "show", "--imsi", IMSI)
    assert done.returncode == 2 and "store.url" in done.stderr
    done = kmed("hss", "--config", str(tmp_path / "none.toml"))
    assert done.returncode == 2 and "none.toml" in done.stderr


def test_subscriber_add_and_show(h: HssProcess) -> None:
    assert h.admin("subscriber", "add", "--imsi", IMSI, "--k", K_HEX, "--opc", OPC_HEX, "--sqn", "1000").returncode == 0
    dup = h.admin("subscriber", "add", "--imsi", IMSI, "--k", K_HEX, "--opc", OPC_HEX)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    bad = h.admin("subscriber", "add", "--imsi", "00101", "--k", K_HEX, "--opc", OPC_HEX)
    assert bad.returncode == 2
    bad = h.admin("subscriber", "add", "--imsi", "001010000000002", "--k", K_HEX[:-2] + "zz", "--opc", OPC_HEX)
    assert bad.returncode == 2 and K_HEX[:-2] not in bad.stderr  # a key is never echoed
    bad = h.admin("subscriber", "add", "--imsi", "001010000000002", "--k", K_HEX, "--opc", OPC_HEX, "--amf", "8")
    assert bad.returncode == 2
    done = h.admin("show", "--imsi", IMSI)
    assert done.returncode == 0
    shown = json.loads(done.stdout)
    assert shown["imsi"] == IMSI and shown["sqn"] == 1000 and shown["amf"] == "8000"
    assert K_HEX not in done.stdout and OPC_HEX not in done.stdout
    assert shown["kme_fingerprint"] is None and shown["allowed_imeis"] == []
    assert h.admin("show", "--imsi", "001019999999999").returncode == 1
    assert stat.S_IMODE(os.stat(h.store).st_mode) == 0o600


def test_keys_device_pair(h: HssProcess, tmp_path: Path) -> None:
    h.provision_subscriber(IMSI)
    priv, pub = tmp_path / "b.key", tmp_path / "b.pub"
    done = kmed("keys", "gen", "--profile", "B", "--private-key", str(priv), "--public-key", str(pub))
    assert done.returncode == 0
    assert stat.S_IMODE(os.stat(priv).st_mode) == 0o600
    assert ecies.load_private_key_pem(priv.read_bytes())[0] == "B"
    again = kmed("keys", "gen", "--profile", "B", "--private-key", str(priv), "--public-key", str(pub))
    assert again.returncode == 1 and "exists" in again.stderr
    assert h.admin("pair", "allow", "--imsi", IMSI, "--imei", IMEI).returncode == 1  # device unknown
    bad_luhn = h.admin("device", "add", "--imei", IMEI[:-1] + "0", "--public-key", str(pub))
    assert bad_luhn.returncode == 2 and "check digit" in bad_luhn.stderr
    assert h.admin("device", "add", "--imei", IMEI, "--public-key", str(priv)).returncode == 2  # not a public key
    done = h.admin("device", "add", "--imei", IMEI, "--public-key", str(pub))
    assert done.returncode == 0 and "profile B" in done.stdout
    assert h.admin("device", "add", "--imei", IMEI, "--public-key", str(pub)).returncode == 1
    assert h.admin("pair", "allow", "--imsi", "001019999999999", "--imei", IMEI).returncode == 1
    assert h.admin("pair", "allow", "--imsi", IMSI, "--imei", IMEI).returncode == 0
    assert json.loads(h.admin("show", "--imsi", IMSI).stdout)["allowed_imeis"] == [IMEI]
    assert h.admin("pair", "deny", "--imsi", IMSI, "--imei", IMEI).returncode == 0
    assert json.loads(h.admin("show", "--imsi", IMSI).stdout)["allowed_imeis"] == []
    store = SqliteStore(h.store)
    device = store.device(IMEI)
    assert device is not None and device.profile == "B"
    assert device.public_key == ecies.load_public_key_pem(pub.read_bytes())[1]
    store.close()


def test_provision_range(h: HssProcess) -> None:
    seed = "00112233445566778899aabbccddeeff"
    args = ["provision-range", "--count", "25", "--imsi-first", "001010000000100", "--imei-first", "35693803000000",
            "--k", K_HEX, "--opc", OPC_HEX, "--device-key-seed", seed, "--profile", "B"]
    done = h.admin(*args)
    assert done.returncode == 0, done.stderr
    last_imei = devkeys.imei_at("35693803000000", 24)
    shown = json.loads(h.admin("show", "--imsi", "001010000000124").stdout)
    assert shown["allowed_imeis"] == [last_imei]
    store = SqliteStore(h.store)
    device = store.device(last_imei)
    assert device is not None
    assert device.public_key == devkeys.derive_device_key(bytes.fromhex(seed), last_imei, "B")[1]
    store.close()
    again = h.admin(*args[:4], "001010000000120", *args[5:])  # overlaps: refused, nothing added
    assert again.returncode == 1
    assert h.admin("show", "--imsi", "001010000000144").returncode == 1
    short = h.admin(*args[:-4], "--device-key-seed", "0011", "--profile", "A")
    assert short.returncode == 2

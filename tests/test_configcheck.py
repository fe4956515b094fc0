"""`kmed config check FILE` as a real subprocess: ok and exit 0, or the error and exit 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

HSS = """
[diameter]
origin_host = "hss.localdomain"
origin_realm = "localdomain"
listen = ["tcp://127.0.0.1:3868"]
allowed_peers = ["mme.localdomain"]
[store]
url = "sqlite:///var/lib/kmed/hss.sqlite"
[log]
level = "info"
format = "json"
[metrics]
listen = "127.0.0.1:9101"
"""

CNN = """
[diameter]
origin_host = "mme.localdomain"
origin_realm = "localdomain"
connect = ["tcp://127.0.0.1:3868"]
destination_realm = "localdomain"
destination_host = "hss.localdomain"
[nas]
listen = ["tcp://127.0.0.1:36412"]
[plmn]
mcc = "001"
mnc = "01"
"""

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

LOAD = """
[cnn]
connect = ["tcp://127.0.0.1:36412"]
[subscribers]
count = 10000
imsi_first = "001010000000001"
imei_first = "35693803000000"
k = "465b5ce8b199b49faa5f0a2ee238a6bc"
opc = "cd63cb71954a9f4e48a5994e37a02baf"
device_key_seed = "00112233445566778899aabbccddeeff"
profile = "A"
"""

EXAMPLES = {"hss": HSS, "cnn": CNN, "ue": UE, "load": LOAD}
ERROR_RE = re.compile(r"^(?P<file>.+): key '(?P<key>[^']+)': expected (?P<expected>.+), found (?P<found>.+)$")


def kmed(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kmed", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(done: subprocess.CompletedProcess[str]) -> re.Match[str]:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    m = ERROR_RE.match(done.stderr.splitlines()[0])
    assert m, done.stderr
    return m


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_valid_files_detected_and_ok(tmp_path: Path, kind: str) -> None:
    p = write(tmp_path, f"{kind}.toml", EXAMPLES[kind])
    done = kmed("config", "check", p)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{p}: ok ({kind})\n", "")
    done = kmed("config", "check", "--kind", kind, p)
    assert (done.returncode, done.stdout) == (0, f"{p}: ok ({kind})\n")


def test_missing_key(tmp_path: Path) -> None:
    p = write(tmp_path, "hss.toml", HSS.replace('origin_realm = "localdomain"\n', ""))
    m = error_of(kmed("config", "check", p))
    assert m["file"] == str(p) and m["key"] == "diameter.origin_realm"
    assert m["expected"].startswith("a DiameterIdentity")
    assert m["found"] == "nothing (the key is missing)"


def test_wrong_type(tmp_path: Path) -> None:
    p = write(tmp_path, "cnn.toml", CNN.replace('mcc = "001"', "mcc = 1"))
    m = error_of(kmed("config", "check", p))
    assert (m["file"], m["key"], m["found"]) == (str(p), "plmn.mcc", "1")
    assert m["expected"] == "a string of 3 decimal digits"


@pytest.mark.parametrize(
    ("old", "new", "key", "expected_part"),
    [
        ("tcp://127.0.0.1:3868", "tcp://127.0.0.1:99999", "diameter.listen", "port from 1 to 65535"),
        ("tcp://127.0.0.1:3868", "tcp://300.1.1.1:3868", "diameter.listen", "300.1.1.1 is not an IP address"),
        ("tcp://127.0.0.1:3868", "http://127.0.0.1:3868", "diameter.listen", "tcp://127.0.0.1:3868"),
        ('"127.0.0.1:9101"', '"127.0.0.1"', "metrics.listen", "host:port"),
    ],
)
def test_bad_address(tmp_path: Path, old: str, new: str, key: str, expected_part: str) -> None:
    p = write(tmp_path, "hss.toml", HSS.replace(old, new))
    m = error_of(kmed("config", "check", p))
    assert (m["file"], m["key"]) == (str(p), key)
    assert expected_part in m["expected"]
    assert new.strip('"') in m["found"]


def test_secret_not_echoed(tmp_path: Path) -> None:
    bad_key = "465b5ce8b199b49faa5f0a2ee238a6bc00"  # one octet too long
    p = write(tmp_path, "ue.toml", UE.replace("465b5ce8b199b49faa5f0a2ee238a6bc", bad_key))
    done = kmed("config", "check", p)
    m = error_of(done)
    assert m["key"] == "usim.k" and "secret" in m["found"]
    assert "465b5ce8" not in done.stderr and "a6bc00" not in done.stderr


def test_unknown_key_and_kind_hint(tmp_path: Path) -> None:
    p = write(tmp_path, "hss.toml", HSS.replace("[log]", "[log]\nlevle = 1"))
    done = kmed("config", "check", p)
    m = error_of(done)
    assert m["key"] == "log.levle" and m["found"] == "an unknown key"
    assert "checked as kind 'hss'" in done.stderr


def test_kind_option_overrides_detection(tmp_path: Path) -> None:
    p = write(tmp_path, "cnn.toml", CNN)
    m = error_of(kmed("config", "check", "--kind", "hss", p))
    assert m["key"] in ("diameter.connect", "nas", "plmn")


def test_missing_file_and_bad_syntax(tmp_path: Path) -> None:
    m = error_of(kmed("config", "check", tmp_path / "absent.toml"))
    assert (m["key"], m["found"]) == ("(file)", "no such file")
    p = write(tmp_path, "broken.toml", "[diameter\norigin_host = 1\n")
    m = error_of(kmed("config", "check", p))
    assert m["key"] == "(syntax)" and m["expected"] == "valid TOML"


def test_several_files_status_2_if_any_is_bad(tmp_path: Path) -> None:
    good = write(tmp_path, "hss.toml", HSS)
    bad = write(tmp_path, "cnn.toml", CNN.replace('mnc = "01"', 'mnc = "1"'))
    done = kmed("config", "check", good, bad)
    assert done.returncode == 2
    assert done.stdout == f"{good}: ok (hss)\n"
    assert done.stderr.startswith(f"{bad}: key 'plmn.mnc': expected a string of 2 to 3 decimal digits")


def test_usage_errors_exit_2() -> None:
    assert kmed("config").returncode == 2
    assert kmed("config", "check").returncode == 2
    assert kmed("config", "check", "--kind", "mme", "x.toml").returncode == 2


SHIPPED = sorted((ROOT / "config").glob("*.toml")) if (ROOT / "config").is_dir() else []


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_examples_are_valid(path: Path) -> None:
    done = kmed("config", "check", path)
    assert done.returncode == 0, done.stderr

"""kmed's Wireshark dictionary: committed file = generated file, well-formed, and (when tshark is
installed) loaded by tshark, which then names the KME AVPs and reports nothing malformed."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmed.bench.diameter_codec import kmed_iteration, sample_air
from kmed.diameter import dictionary as d
from kmed.diameter import wireshark
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]


def test_committed_file_is_generated_from_the_table() -> None:
    committed = (ROOT / wireshark.COMMITTED).read_text(encoding="utf-8")
    assert committed == wireshark.vendor_xml(), "run: python -m kmed.diameter.wireshark --write"


def test_vendor_file_lists_every_kme_avp() -> None:
    root = ET.fromstring(wireshark.vendor_xml().split("?>", 1)[1])
    assert root.tag == "vendor" and root.get("code") == str(d.VENDOR_KMED)
    got = {a.get("name"): (int(a.get("code", "")), a.find("type").get("type-name"), a.get("mandatory"))  # type: ignore[union-attr]
           for a in root.findall("avp")}
    assert got == {a.name: (a.code, a.type.value, "mustnot") for a in d.AVPS if a.vendor == d.VENDOR_KMED}
    binding = next(a for a in root.findall("avp") if a.get("name") == "KME-Binding")
    assert [(e.get("code"), e.get("name")) for e in binding.findall("enum")] == [
        ("0", "NOT_BOUND"), ("1", "BOUND_TO_CURRENT"), ("2", "BOUND_TO_NEW")]


def test_install_dictionary_includes_the_vendor_file(tmp_path: Path) -> None:
    source = tmp_path / "system"
    source.mkdir()
    (source / "dictionary.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE dictionary SYSTEM "dictionary.dtd" [\n'
        '\t<!ENTITY Custom SYSTEM "Custom.xml">\n]>\n<dictionary>\n\t&Custom;\n</dictionary>\n')
    (source / "Custom.xml").write_text("")
    dest = wireshark.install_dictionary(tmp_path / "data", source)
    text = (dest / "dictionary.xml").read_text()
    assert '<!ENTITY kmedVendor\t\tSYSTEM "kmed.xml">' in text and text.index("&kmedVendor;") > text.index("&Custom;")
    assert (dest / "kmed.xml").read_text() == wireshark.vendor_xml()
    assert wireshark.install_dictionary(tmp_path / "data", source) == dest  # again: still one include
    assert (dest / "dictionary.xml").read_text().count("kmed.xml") == 1
    with pytest.raises(FileNotFoundError):
        wireshark.install_dictionary(tmp_path / "x", tmp_path / "nothing")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user (tshark runs as nobody) can read."""
    path = Path(tempfile.mkdtemp(prefix="kmed-ws-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _tshark(data_dir: Path, pcap: Path, *args: str) -> subprocess.CompletedProcess[str]:
    tshark = require_tool("tshark")
    cmd = [tshark, "-r", str(pcap), "-d", "tcp.port==3868,diameter", *args]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(data_dir), "WIRESHARK_DATA_DIR": str(data_dir)}
    if os.geteuid() == 0:  # tshark ignores WIRESHARK_DATA_DIR for root
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot run tshark as another user")
        cmd = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.system
def test_tshark_names_the_kme_avps(shared_dir: Path) -> None:
    require_tool("tshark")
    if not (wireshark.SYSTEM_DIAMETER_DIR / "dictionary.xml").is_file():
        pytest.skip("Wireshark's Diameter dictionary is not installed")
    wireshark.install_dictionary(shared_dir)
    air = sample_air()
    pcap = shared_dir / "air.pcap"
    pcap.write_bytes(wireshark.pcap_bytes([(True, air), (False, kmed_iteration(air))]))
    for p in shared_dir.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    bad = _tshark(shared_dir, pcap, "-Y", "_ws.malformed || _ws.expert.severity >= error")
    assert bad.returncode == 0 and bad.stdout.strip() == "", bad.stdout + bad.stderr
    fields = _tshark(shared_dir, pcap, "-T", "fields", "-e", "diameter.cmd.code", "-e", "diameter.KME-Check",
                     "-e", "diameter.KME-Status", "-e", "diameter.KME-Binding")
    assert fields.returncode == 0, fields.stderr
    assert "dictionary" not in fields.stderr.lower(), fields.stderr  # the XML loaded without complaint
    rows = [line.split("\t") for line in fields.stdout.strip().splitlines()]
    assert rows == [["318", "05" * 16, "", ""], ["318", "", "0", "1"]]

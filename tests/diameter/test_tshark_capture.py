"""A live capture of kmed S6a traffic through freeDiameterd, read back by tshark.

dumpcap captures on ``lo`` (capture filter on the two test ports) while a kmed MME client talks
to a kmed HSS through the freeDiameterd relay (tests/diameter/test_relay_freediameter.py). tshark
must then decode every message as Diameter, the S6a ones as "3GPP S6a/S6d" (application
16777251), report nothing malformed and no expert error, and, with the project's dictionary
(:func:`kmed.diameter.wireshark.install_dictionary`), show the KME AVPs by name.

tshark reads ``WIRESHARK_DATA_DIR`` only when not root, so as root it runs as ``nobody``
(``setpriv``) on a copy of the capture in a directory that user can read.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmed.diameter import dictionary as d
from kmed.diameter import wireshark
from tests.conftest import REQUIRE_SYSTEM_TOOLS, require_tool
from tests.diameter.test_relay_freediameter import exchange_through_relay, free_port
from tests.diameter.test_transport import run

pytestmark = pytest.mark.system

ROUNDS = 3
PIPELINED = 10


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the unprivileged tshark user can read."""
    path = Path(tempfile.mkdtemp(prefix="kmed-capture-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_capture(out: Path, ports: list[int]) -> subprocess.Popen[str]:
    """dumpcap on lo for ``ports``; returns once it says it is capturing (bounded wait)."""
    dumpcap = require_tool("dumpcap")
    flt = " or ".join(f"tcp port {p}" for p in ports)
    proc = subprocess.Popen([dumpcap, "-i", "lo", "-f", flt, "-w", str(out), "-a", "duration:120"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _w, _x = select.select([proc.stderr], [], [], 0.2)
        if ready:
            line = proc.stderr.readline()
            seen += line
            if line.startswith("Capturing on"):
                return proc
    proc.kill()
    proc.wait(5)
    reason = f"dumpcap could not capture on lo: {seen.strip() or 'no output'}"
    if REQUIRE_SYSTEM_TOOLS:
        pytest.fail(reason)
    pytest.skip(reason)


def stop_capture(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # dumpcap writes what it has and exits
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def tshark(data_dir: Path, pcap: Path, ports: list[int], *args: str) -> str:
    """tshark on ``pcap`` with ``data_dir`` as its data directory and the test ports as Diameter."""
    cmd = [require_tool("tshark"), "-r", str(pcap)]
    for p in ports:
        cmd += ["-d", f"tcp.port=={p},diameter"]
    cmd += list(args)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(data_dir), "WIRESHARK_DATA_DIR": str(data_dir)}
    if os.geteuid() == 0:  # tshark ignores WIRESHARK_DATA_DIR for root: run it as nobody
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot run tshark as another user")
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_capture_through_relay_decodes_as_s6a_with_kme_avps_by_name(tmp_path: Path, shared_dir: Path) -> None:
    require_tool("tshark")
    require_tool("freeDiameterd")
    if not (wireshark.SYSTEM_DIAMETER_DIR / "dictionary.xml").is_file():
        pytest.fail("Wireshark's Diameter dictionary is missing (package wireshark-common)")
    hss_port, relay_port = free_port(), free_port()
    ports = [hss_port, relay_port]
    pcap = shared_dir / "s6a.pcapng"
    capture = start_capture(tmp_path / "s6a.pcapng", ports)
    try:
        seen = run(exchange_through_relay(tmp_path, ROUNDS, PIPELINED, hss_port=hss_port, relay_port=relay_port),
                   timeout=90)
        time.sleep(0.5)  # let the last segments reach the capture buffer
    finally:
        stop_capture(capture)
    assert len(seen) == 2 * ROUNDS + PIPELINED
    shutil.copy(tmp_path / "s6a.pcapng", pcap)
    wireshark.install_dictionary(shared_dir)
    for p in shared_dir.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)

    # nothing malformed, no expert error, anywhere in the capture
    bad = tshark(shared_dir, pcap, ports, "-Y", "_ws.malformed || _ws.expert.severity >= error")
    assert bad.strip() == "", bad

    # every S6a message on both legs (MME -> relay -> HSS and back), decoded as 3GPP S6a; a TCP
    # segment may carry several Diameter messages, so fields come as lists (occurrence=a)
    fields = ["tcp.dstport", "diameter.cmd.code", "diameter.flags.request", "diameter.applicationId",
              "diameter.KME-Check", "diameter.KME-Binding", "diameter.KME-Token", "diameter.Encrypted-KME"]
    out = tshark(shared_dir, pcap, ports, "-Y", f"diameter.applicationId == {d.APP_S6A}", "-T", "fields",
                 "-E", "occurrence=a", *[x for f in fields for x in ("-e", f)])
    counts: dict[tuple[str, int, bool], int] = {}
    values: dict[str, list[str]] = {f: [] for f in fields[4:]}
    for line in out.splitlines():
        cols = dict(zip(fields, line.split("\t"), strict=True))
        codes, flags, apps = (cols[f].split(",") for f in fields[1:4])
        assert len(codes) == len(flags) == len(apps) and set(apps) == {str(d.APP_S6A)}, line
        for code, flag in zip(codes, flags, strict=True):
            key = (cols["tcp.dstport"], int(code), flag in ("1", "True"))
            counts[key] = counts.get(key, 0) + 1
        for f in fields[4:]:
            values[f] += [v for v in cols[f].split(",") if v]
    n_air, n_ulr = ROUNDS + PIPELINED, ROUNDS
    for port in map(str, ports):  # each request crossed both legs: to the relay, then to the HSS
        assert counts.get((port, d.CMD_AIR, True)) == n_air, counts
        assert counts.get((port, d.CMD_ULR, True)) == n_ulr, counts
    assert sum(v for (_p, _c, req), v in counts.items() if not req) == 2 * (n_air + n_ulr), counts
    # the KME AVPs by name (these fields exist only when tshark loaded kmed's dictionary)
    assert values["diameter.KME-Check"] == [bytes(range(16)).hex()] * 2 * n_air
    assert values["diameter.KME-Binding"] == [str(d.KME_BINDING_BOUND_TO_NEW)] * 2 * n_air
    assert values["diameter.Encrypted-KME"] == ["55" * 80] * 2 * n_air
    assert values["diameter.KME-Token"] == ["66" * 32] * 2 * n_ulr

    # the application by name, and the KME AVPs by name in the verbose tree
    text = tshark(shared_dir, pcap, ports, "-Y", f"diameter.cmd.code == {d.CMD_AIR}", "-V", "-c", "200")
    assert "3GPP S6a/S6d" in text
    for name in ("KME-Check", "KME-Check-Identity"):
        assert f"AVP: {name}(" in text, name
    # base protocol too: CER/CEA and DWR/DWA (or at least CER/CEA) decode without errors
    base = tshark(shared_dir, pcap, ports, "-Y", "diameter.cmd.code == 257", "-T", "fields",
                  "-e", "diameter.Origin-Host", "-e", "diameter.Product-Name").splitlines()
    assert any("kmed" in line for line in base), base

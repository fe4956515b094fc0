"""systemd/kmed-*.service: `systemd-analyze verify` is clean, the hardening is all there,
and the software runs under MemoryDenyWriteExecute (the kernel's equivalent prctl)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
UNITS = ["kmed-hss.service", "kmed-cnn.service"]
NOT_EXECUTABLE = re.compile(r"^\S+: Command /usr/bin/kmed is not executable: No such file or directory$")


def kmed_executable(tmp_path: Path) -> Path:
    """The venv's console script, or (not installed) a wrapper running this interpreter."""
    script = Path(sys.executable).with_name("kmed")
    if script.is_file() and os.access(script, os.X_OK):
        return script
    wrapper = tmp_path / "kmed"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m kmed \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values (a key may repeat) of a unit file; comments skipped."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"assignment outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("systemd-analyze")
    return subprocess.run(
        [tool, "verify", "--man=no", str(path)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.system
@pytest.mark.parametrize("unit", UNITS)
def test_verify_with_installed_executable(unit: str, tmp_path: Path) -> None:
    """A copy whose ExecStart names an existing kmed must verify with no message at all."""
    text = (ROOT / "systemd" / unit).read_text()
    assert "ExecStart=/usr/bin/kmed " in text
    copy = tmp_path / unit
    copy.write_text(text.replace("/usr/bin/kmed", str(kmed_executable(tmp_path))))
    done = verify(copy)
    assert done.returncode == 0, done.stderr
    # verify exits 0 on unknown keys and bad values too: any message is a failure here.
    assert done.stdout.strip() == "" and done.stderr.strip() == "", done.stdout + done.stderr


@pytest.mark.system
@pytest.mark.parametrize("unit", UNITS)
def test_verify_as_shipped(unit: str) -> None:
    """The shipped unit: the only acceptable complaint is that /usr/bin/kmed is not installed."""
    done = verify(ROOT / "systemd" / unit)
    lines = [x for x in (done.stdout + done.stderr).splitlines() if x.strip()]
    unexpected = [x for x in lines if not NOT_EXECUTABLE.match(x)]
    assert unexpected == []
    if os.path.exists("/usr/bin/kmed"):
        assert done.returncode == 0


REQUIRED: dict[str, str] = {
    "Type": "notify",
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "Restart": "on-failure",
    "User": "kmed",
    "StateDirectory": "kmed",
    "ConfigurationDirectory": "kmed",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "SystemCallArchitectures": "native",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "UMask": "0077",
    "LimitNOFILE": "65536",
}


@pytest.mark.parametrize("unit", UNITS)
def test_hardening_directives(unit: str) -> None:
    service = parse_unit((ROOT / "systemd" / unit).read_text())["Service"]
    for key, value in REQUIRED.items():
        assert service.get(key) == [value], key
    assert "@system-service" in service["SystemCallFilter"]
    for key in ("RestartSec", "TimeoutStopSec"):
        assert re.fullmatch(r"\d+s", service[key][0]), key
    daemon = unit.removeprefix("kmed-").removesuffix(".service")
    assert service["ExecStart"] == [f"/usr/bin/kmed {daemon} --config /etc/kmed/{daemon}.toml"]
    assert service["SyslogIdentifier"] == [f"kmed-{daemon}"]


@pytest.mark.system
@pytest.mark.parametrize("unit", UNITS)
def test_security_exposure_is_low(unit: str, tmp_path: Path) -> None:
    """`systemd-analyze security` rates the unit; 'OK' is below 4.0 on its 0-10 scale."""
    tool = require_tool("systemd-analyze")
    copy = tmp_path / unit
    copy.write_text((ROOT / "systemd" / unit).read_text().replace("/usr/bin/kmed", str(kmed_executable(tmp_path))))
    done = subprocess.run(
        [tool, "security", "--offline=yes", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert m, done.stdout + done.stderr
    print(f"{unit}: exposure {m.group(1)}")
    assert float(m.group(1)) < 2.5


# The daemons' libraries exercised under Memory-Deny-Write-Execute.
WORKLOAD = r"""
import asyncio, ctypes, sqlite3, sys, tempfile, os
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(66, 0, 0, 0, 0) == 1, "MDWE not inherited"  # PR_GET_MDWE
import orjson, structlog, uvloop
from cryptography.hazmat.primitives import cmac, hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from kmed import metrics, systemd

a, b = x25519.X25519PrivateKey.generate(), x25519.X25519PrivateKey.generate()
assert a.exchange(b.public_key()) == b.exchange(a.public_key())
p = ec.generate_private_key(ec.SECP256R1())
p.exchange(ec.ECDH(), ec.generate_private_key(ec.SECP256R1()).public_key())
c = cmac.CMAC(algorithms.AES(bytes(16))); c.update(b"x"); c.finalize()
h = hmac.HMAC(bytes(32), hashes.SHA256()); h.update(b"x"); h.finalize()
Cipher(algorithms.AES(bytes(16)), modes.CTR(bytes(16))).encryptor().update(b"x" * 64)
orjson.dumps({"a": 1})
d = tempfile.mkdtemp()
db = sqlite3.connect(os.path.join(d, "s.sqlite")); db.execute("pragma journal_mode=wal")
db.execute("create table t(x)"); db.execute("insert into t values (1)"); db.commit()

async def main():
    reg = metrics.Registry(); metrics.hss_metrics(reg)
    server = await metrics.start_metrics_server("127.0.0.1", 0, reg)
    port = server.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /metrics HTTP/1.0\r\n\r\n")
    data = await asyncio.wait_for(r.read(), 10)
    w.close(); server.close(); await server.wait_closed()
    assert data.startswith(b"HTTP/1.1 200"), data[:40]

uvloop.run(main()) if hasattr(uvloop, "run") else uvloop.install() or asyncio.run(main())
print("mdwe-ok")
"""

LAUNCHER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux >= 6.3)
    sys.exit(77)
os.execv(sys.executable, [sys.executable, "-c", sys.argv[1]])
"""


def test_runs_under_memory_deny_write_execute() -> None:
    """MemoryDenyWriteExecute=yes must not break CPython, cryptography, uvloop or sqlite."""
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, WORKLOAD],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    if done.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "mdwe-ok"

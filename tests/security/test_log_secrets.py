"""No secret reaches a log or the console: a whole ``kmed demo --workdir DIR --log-level debug``
(HSS, CNN, every UE and the load harness logging at debug, to DIR/logs/) and its stdout/stderr
are searched for every secret the run used that can be read from outside the processes:

- K and OPc (the subscribers' keys), the load population's device-key seed;
- every KME still held: the HSS store's ``kmes`` table and each ME's ``me/state.json``;
- the device private keys: the demo's PEM files (raw key and PEM body) and the 200 keys of the
  load population (``devkeys.derive_device_key``, as ``provision-range`` derives them);
- the HSS's KME-Token key.

Each as lower- and upper-case hex and as base64. (KASME, CK/IK, RES cannot be read from outside
and are not searched.) As a control, the KME fingerprints *are* found in the logs, so the search
looks at the logs that talk about KMEs.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from kmed.crypto import devkeys, ecies
from kmed.crypto import kme as kmefn
from kmed.demo import LOAD_COUNT
from kmed.lab import DEFAULT_K, DEFAULT_OPC, kmed_argv

pytestmark = pytest.mark.timeout(420)
LOAD_SEED = "00112233445566778899aabbccddeeff"  # kmed/demo.py's load population
LOAD_IMEI_FIRST = "35693803100000"


def _forms(secret: bytes) -> set[str]:
    return {secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode(),
            base64.b64encode(secret).decode().rstrip("=")}


def _secrets(workdir: Path) -> dict[str, bytes | str]:
    found: dict[str, bytes | str] = {"K": bytes.fromhex(DEFAULT_K), "OPc": bytes.fromhex(DEFAULT_OPC),
                                     "device key seed": bytes.fromhex(LOAD_SEED)}
    db = sqlite3.connect(f"file:{workdir / 'hss.sqlite'}?mode=ro", uri=True)
    try:
        for imsi, kme in db.execute("SELECT imsi, kme FROM kmes"):
            found[f"HSS KME of {imsi}"] = bytes(kme)
    finally:
        db.close()
    for state in sorted(workdir.glob("ue/*/me/state.json")):
        obj = json.loads(state.read_text())
        for field in ("current_kme", "pending_kme"):
            if obj.get(field):
                found[f"{state.parent.parent.name} {field}"] = bytes.fromhex(obj[field])
    for pem in sorted(workdir.glob("keys/*.key.pem")):
        text = pem.read_text()
        found[f"{pem.name} raw"] = ecies.load_private_key_pem(text.encode())[1]
        body = "".join(line for line in text.splitlines() if line and not line.startswith("-----"))
        found[f"{pem.name} PEM body"] = body
        for line in text.splitlines()[1:-1]:
            if len(line) >= 24:
                found[f"{pem.name} PEM line"] = line
    for i in range(LOAD_COUNT):
        imei = devkeys.imei_at(LOAD_IMEI_FIRST, i)
        found[f"load device key {imei}"] = devkeys.derive_device_key(bytes.fromhex(LOAD_SEED), imei, "A")[0]
    found["token key"] = (workdir / "hss.sqlite.token-key").read_bytes()
    return found


def test_no_secret_in_any_log_or_the_console_of_a_whole_demo(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    done = subprocess.run(kmed_argv("demo", "--workdir", str(workdir), "--log-level", "debug"), capture_output=True,
                          text=True, timeout=400, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    texts = {"stdout": done.stdout, "stderr": done.stderr}
    logs = sorted(p for p in (workdir / "logs").rglob("*") if p.is_file())
    assert {p.name for p in logs} >= {"hss.log", "cnn.log", "load.log"}
    for p in logs:
        texts[str(p.relative_to(workdir))] = p.read_text(encoding="utf-8", errors="replace")
    secrets = _secrets(workdir)
    assert sum(1 for name in secrets if "KME" in name or "kme" in name) >= 3  # HSS + ME-A + ME-B at least
    leaks = []
    for name, secret in secrets.items():
        forms = {secret} if isinstance(secret, str) else _forms(secret)
        for where, text in texts.items():
            if any(form in text for form in forms):
                leaks.append(f"{name} in {where}")
    assert not leaks, "secrets in logs or on the console: " + "; ".join(leaks)
    # control: the logs do talk about the KMEs (by fingerprint), so the search above means something
    everything = "\n".join(texts.values())
    kmes = [s for n, s in secrets.items() if n.startswith("HSS KME") and isinstance(s, bytes)]
    assert kmes and all(kmefn.fingerprint(k) in everything for k in kmes)
    assert re.search(r'"event": ?"kme_received"', texts["logs/cnn.log"])

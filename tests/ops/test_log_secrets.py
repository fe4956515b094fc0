"""The logs of a whole ``kmed demo`` hold no secret (issue 7, "Logs").

The demo runs in this process (``kmed.demo.run``, the same code as ``kmed demo --workdir DIR
--log-level debug``): HSS, CNN, every ``kmed ue`` and the load harness are real processes
logging at debug level into ``DIR/logs``. Then every log, the demo's output, the load report and
whatever reached this process's stdout/stderr are searched for every secret the lab holds:

- K and OPc (hex, upper-case hex, base64), the load population's device-key seed, the HSS's
  KME-Token key;
- every KME: each ME's state (current and pending) and the HSS store's ``kmes`` table after
  every attach of the showcase, and the ``kmes`` table polled during the whole run (a KME of
  the load run replaced before a poll saw it escapes; the coverage is printed);
- the device private keys: the showcase's PEM files (raw hex and every base64 line of the PEM
  body) and the load population's derived keys.

NAS keys, KASME, CK/IK exist only inside the processes and are not searched (field-name
redaction, :func:`kmed.log.redact_secrets`, is the net for them).

tests/security/test_log_secrets.py (issue 8) runs the same search over ``kmed demo`` as a
subprocess with the secrets left at its end; this module adds the KMEs replaced during the run
(every one the HSS issued is checked to have been searched) and the per-step log events.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kmed import demo
from kmed.crypto import devkeys, ecies
from kmed.crypto import kme as kmefn
from kmed.lab import DEFAULT_K, DEFAULT_OPC, kmed_argv
from tests.ops.procs import events

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

POLL_S = 0.05


def _ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)


def hss_kmes(db: Path) -> dict[str, bytes]:
    """IMSI -> KME stored by the HSS (empty before the store exists)."""
    if not db.exists():
        return {}
    try:
        with _ro(db) as conn:
            return {imsi: bytes(k) for imsi, k in conn.execute("SELECT imsi, kme FROM kmes")}
    except sqlite3.OperationalError:  # not migrated yet, or locked for longer than the timeout
        return {}


def me_kmes(root: Path) -> set[bytes]:
    """Current and pending KMEs of every ME state file of the lab."""
    out: set[bytes] = set()
    for path in root.glob("ue/*/me/state.json"):
        state = json.loads(path.read_text())
        for name in ("current_kme", "pending_kme"):
            if state.get(name):
                out.add(bytes.fromhex(state[name]))
    return out


@contextlib.contextmanager
def redirected_fds(target: int) -> Iterator[None]:
    """File descriptors 1 and 2 of this process go to ``target`` meanwhile (anything a child
    process or a library writes there, not only Python's sys.stdout)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


@dataclass
class DemoRun:
    root: Path
    status: int
    output: list[str]
    captured: str
    kmes: set[bytes] = field(default_factory=set)
    showcase_kmes: set[bytes] = field(default_factory=set)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    root = tmp_path_factory.mktemp("demo")
    db = root / "hss.sqlite"
    kmes: set[bytes] = set()
    showcase: set[bytes] = set()
    output: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(POLL_S):
            kmes.update(hss_kmes(db).values())

    def out(line: str) -> None:
        output.append(line)
        if line.startswith("  UE: result="):  # after each `kmed ue attach` of the showcase
            found = me_kmes(root) | set(hss_kmes(db).values())
            showcase.update(found)
            kmes.update(found)

    poller = threading.Thread(target=poll, name="kme-poller", daemon=True)
    poller.start()
    stray = root / "stdout-stderr.txt"
    try:
        with stray.open("w+b") as sink, redirected_fds(sink.fileno()):
            status = demo.run(root, out, log_level="debug")
    finally:
        stop.set()
        poller.join(10)
    kmes.update(hss_kmes(db).values())
    kmes.update(me_kmes(root))
    yield DemoRun(root, status, output, stray.read_text(errors="replace"), kmes, showcase)


def forms(secret: bytes) -> list[str]:
    """How a secret could appear in text: hex, upper-case hex, base64."""
    return [secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode()]


def pem_body_lines(pem: bytes) -> list[str]:
    return [ln for ln in pem.decode().splitlines() if ln and not ln.startswith("-----")]


def find(secrets: dict[str, list[str]], texts: dict[str, str]) -> list[str]:
    """``secret name in text name`` for every secret form found in a text."""
    return [f"{name} in {where}" for name, needles in secrets.items() for where, text in texts.items()
            if any(n in text for n in needles)]


def all_secrets(run: DemoRun) -> dict[str, list[str]]:
    root = run.root
    secrets: dict[str, list[str]] = {"K": forms(bytes.fromhex(DEFAULT_K)), "OPc": forms(bytes.fromhex(DEFAULT_OPC))}
    token_key = root / "hss.sqlite.token-key"
    assert token_key.is_file()
    secrets["HSS KME-Token key"] = forms(token_key.read_bytes())
    for kme in run.kmes:
        secrets[f"KME {kmefn.fingerprint(kme)[:12]}"] = forms(kme)
    for pem_path in sorted(root.glob("keys/*.key.pem")):
        pem = pem_path.read_bytes()
        _profile, raw = ecies.load_private_key_pem(pem)
        secrets[f"private key {pem_path.name}"] = forms(raw) + pem_body_lines(pem)
    sub = tomllib.loads((root / "load.toml").read_text())["subscribers"]
    seed = bytes.fromhex(sub["device_key_seed"])
    secrets["device_key_seed"] = forms(seed)
    for i in range(sub["count"]):
        imei = devkeys.imei_at(sub["imei_first"], i)
        private, _public = devkeys.derive_device_key(seed, imei, sub["profile"])
        secrets[f"device key of {imei}"] = forms(private) + pem_body_lines(ecies.private_key_to_pem(sub["profile"],
                                                                                                      private))
    return secrets


def all_texts(run: DemoRun, captured: str) -> dict[str, str]:
    texts = {str(p.relative_to(run.root)): p.read_text(encoding="utf-8", errors="replace")
             for p in sorted((run.root / "logs").iterdir())}
    texts["demo output"] = "\n".join(run.output)
    texts["load report"] = (run.root / "load-report.json").read_text()
    texts["this process's stdout/stderr"] = captured
    return texts


def test_demo_passed_and_every_process_logged_at_debug(demo_run: DemoRun) -> None:
    assert demo_run.status == 0, "\n".join(demo_run.output[-30:])
    logs = {p.name for p in (demo_run.root / "logs").iterdir()}
    assert {"hss.log", "cnn.log", "load.log", "ue-ME-A.log", "ue-ME-B.log", "ue-ME-C.log"} <= logs
    assert any(e.get("level") == "debug" for e in events(demo_run.root / "logs" / "cnn.log"))


def test_no_secret_in_any_log_or_output(demo_run: DemoRun) -> None:
    secrets = all_secrets(demo_run)
    texts = all_texts(demo_run, demo_run.captured)
    assert sum(len(t) for t in texts.values()) > 100_000, "the logs are too small to mean anything"
    assert find(secrets, texts) == []
    # The search finds what is there: K/OPc in a UE config, each ME's KME in its state file,
    # each PEM in its file.
    controls = {str(p.relative_to(demo_run.root)): p.read_text()
                for p in [*demo_run.root.glob("ue/*/me/state.json"), *demo_run.root.glob("keys/*.key.pem"),
                          *demo_run.root.glob("ue-ME-A-*.toml")]}
    hits = find(secrets, controls)
    assert len([h for h in hits if h.startswith("KME ")]) >= 2
    assert len([h for h in hits if h.startswith("private key ")]) == 3
    assert {h.split(" in ")[0] for h in hits} >= {"K", "OPc"}


def test_every_kme_of_the_showcase_and_the_store_was_searched(demo_run: DemoRun) -> None:
    """Every KME the HSS issued for the showcase IMSI (its audit keeps fingerprints) and every
    KME it holds at the end were among the secrets searched."""
    searched = {kmefn.fingerprint(k) for k in demo_run.kmes}
    with _ro(demo_run.root / "hss.sqlite") as conn:
        audit = conn.execute("SELECT imsi, kme_fingerprint FROM kme_audit WHERE event = 'issued'").fetchall()
    showcase = {fp for imsi, fp in audit if imsi == demo.IMSI}
    assert len(showcase) == 3  # ME-A, ME-B, ME-A again (ME-C's pair is not allowed)
    assert showcase <= {kmefn.fingerprint(k) for k in demo_run.showcase_kmes}
    final = {kmefn.fingerprint(k) for k in hss_kmes(demo_run.root / "hss.sqlite").values()}
    assert len(final) >= demo.LOAD_COUNT  # every load UE holds one after the warm-up
    assert final <= searched
    issued = {fp for _imsi, fp in audit}
    print(f"KMEs searched: {len(searched & issued)} of the {len(issued)} the HSS issued")


STEP_FIELDS = re.compile(r"^\d{6,15}$")


def test_cnn_logs_one_event_per_step_with_imsi_and_ue_id(demo_run: DemoRun) -> None:
    cnn = events(demo_run.root / "logs" / "cnn.log")
    steps = [e for e in cnn if e.get("step") is not None]
    assert len(steps) > 1000
    for e in steps:
        assert isinstance(e.get("imsi"), str) and STEP_FIELDS.match(e["imsi"]), e
        assert isinstance(e.get("ue_id"), int) and isinstance(e.get("link"), int), e
        assert e.get("procedure") in ("attach", "tau"), e
        assert e["component"] == "cnn" and e["level"] in ("debug", "info", "warning"), e
    first = [e for e in steps if e["imsi"] == demo.IMSI]
    # the showcase's first attach: every seed step the CNN takes part in, in order
    until = next(i for i, e in enumerate(first) if e["event"] == "attach_complete")
    order = [e["step"] for e in first[: until + 1]]
    assert sorted(set(order)) == [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13]
    assert order == sorted(order)


def test_hss_logs_each_request_with_imsi_and_step(demo_run: DemoRun) -> None:
    hss = [e for e in events(demo_run.root / "logs" / "hss.log") if e.get("event") in ("air", "ulr")]
    assert hss
    for e in hss:
        assert STEP_FIELDS.match(e.get("imsi") or ""), e
        assert e.get("outcome") and e.get("result"), e
    assert {e.get("step") for e in hss if e["event"] == "air"} == {2, 4}
    assert {e["outcome"] for e in hss if e.get("step") == 4} >= {"kme_issued", "pair_not_allowed"}
    assert {e["outcome"] for e in hss if e.get("step") == 13} == {"kme_stored"}
    showcase = [(e["event"], e.get("step"), e["outcome"]) for e in hss if e["imsi"] == demo.IMSI]
    assert showcase[:3] == [("air", 2, "ok"), ("air", 4, "kme_issued"), ("ulr", 13, "kme_stored")]


def test_ue_logs_its_steps_with_imsi(demo_run: DemoRun) -> None:
    ue = events(demo_run.root / "logs" / "ue-ME-A.log")
    steps = {e["step"] for e in ue if e.get("step") is not None}
    assert {1, 2, 7, 8, 10, 11, 13} <= steps
    assert all(e.get("imsi") == demo.IMSI for e in ue)
    assert {e["event"] for e in ue} >= {"kme_pending", "kme_committed", "attach_accepted"}


def test_every_line_is_json(demo_run: DemoRun) -> None:
    for path in (demo_run.root / "logs").iterdir():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            obj: Any = json.loads(line)
            assert isinstance(obj, dict) and {"event", "level", "timestamp"} <= obj.keys(), f"{path.name}:{n}"


def test_demo_log_level_option() -> None:
    done = subprocess.run(kmed_argv("demo", "--log-level", "verbose"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--log-level" in done.stderr
    done = subprocess.run(kmed_argv("demo", "--help"), capture_output=True, text=True, timeout=60)
    assert "--log-level {debug,info,warning,error}" in done.stdout

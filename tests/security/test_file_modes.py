"""Files that hold secrets are readable by their owner only (docs/security.md), whatever the
umask of whoever started the daemons: the HSS store (K, OPc, KMEs) with its ``-wal`` and
``-shm``, the ULR token key, the HSS log file, device private keys from ``kmed keys gen``, the
UE's USIM and ME state (SQN, KME) and the directories kmed creates for them; a store or key file found group- or
world-readable is tightened when the HSS opens it. (The HSS daemon test checks the store,
``-wal`` and token key alone: tests/hss/test_daemon.py::test_store_and_key_files_are_private.)"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmed.lab import Lab, running_lab
from tests.e2e.test_procedure import IMEI_A, IMSI, device, provision

pytestmark = pytest.mark.timeout(180)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    old = os.umask(0o022)  # an ordinary umask: files would be 0644 unless kmed makes them private
    try:
        with running_lab(tmp_path, extra_hss=f'file = "{tmp_path / "hss-file.log"}"\n') as lab:
            yield lab
    finally:
        os.umask(old)


def test_every_file_with_a_secret_is_0600_and_its_directories_0700(lab: Lab) -> None:
    provision(lab)
    key = device(lab, "me-a", IMEI_A)
    ue = lab.ue_config("me-a", imsi=IMSI, imei=IMEI_A, private_key=key)
    assert lab.attach(ue)["kme_provisioned"] is True
    store = lab.store_path
    private = {
        "store": store, "store -wal": store.with_name(store.name + "-wal"),
        "store -shm": store.with_name(store.name + "-shm"), "token key": store.with_name(store.name + ".token-key"),
        "HSS log file": lab.root / "hss-file.log", "device private key": key,
        "USIM state": lab.root / "ue" / "me-a" / "usim" / "state.json",
        "ME state (KME)": lab.root / "ue" / "me-a" / "me" / "state.json",
    }
    wrong = {name: oct(mode(p)) for name, p in private.items() if mode(p) != 0o600}
    assert not wrong, f"not 0600: {wrong}"
    # the directory kmed ue creates (the lab makes the USIM's itself, to share it between MEs)
    assert mode(lab.root / "ue" / "me-a" / "me") == 0o700


def test_a_store_and_token_key_left_world_readable_are_tightened_at_start(lab: Lab) -> None:
    provision(lab)
    lab.stop("hss")
    store = lab.store_path
    loose = [store, store.with_name(store.name + ".token-key")]
    for p in loose:
        os.chmod(p, 0o644)
    lab.start("hss")
    assert {p.name: oct(mode(p)) for p in loose} == {p.name: oct(0o600) for p in loose}

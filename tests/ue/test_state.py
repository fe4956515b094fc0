"""Atomic, private state files (kmed.ue.state)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from kmed.ue import state as state_mod
from kmed.ue.state import StateError, read_state, write_atomic


def test_write_then_read(tmp_path: Path) -> None:
    path = tmp_path / "me" / "state.json"
    write_atomic(path, {"a": 1})
    assert read_state(path) == {"a": 1}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    write_atomic(path, {"a": 2})
    assert read_state(path) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary left


def test_mode_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "state.json"
        write_atomic(path, {"x": "y"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_crash_between_temp_write_and_replace_keeps_the_old_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    write_atomic(path, {"generation": 1})

    def crash(src: object, dst: object) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(state_mod.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        write_atomic(path, {"generation": 2})
    monkeypatch.undo()
    assert json.loads(path.read_bytes()) == {"generation": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_crash_during_the_temp_write_keeps_the_old_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    write_atomic(path, {"generation": 1})

    def failing_fsync(fd: int) -> None:
        raise OSError("simulated I/O error")

    monkeypatch.setattr(state_mod.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        write_atomic(path, {"generation": 2})
    monkeypatch.undo()
    assert read_state(path) == {"generation": 1}


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    assert read_state(tmp_path / "nope.json") is None
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(StateError, match=r"bad\.json"):
        read_state(bad)
    bad.write_text("42")
    with pytest.raises(StateError, match="JSON object"):
        read_state(bad)

"""kmed.log without processes: secret fields are dropped whatever their case, JSON and console
rendering, and LogFile's reopen (log rotation) including loggers bound before it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from kmed import log as klog


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_secret_fields_are_dropped() -> None:
    stream = io.StringIO()
    klog.setup("debug", "json", stream)
    lg = klog.get("test", imsi="001010000000001")
    secrets = {name: "5ec7e7" + name for name in klog.SECRET_FIELDS}
    lg.info("step", step=4, kme_fingerprint="ab" * 32, **secrets, KME="5ec7e7upper", OPc="5ec7e7mixed")
    line = json.loads(stream.getvalue())
    assert "5ec7e7" not in stream.getvalue()
    assert line["imsi"] == "001010000000001" and line["step"] == 4 and line["kme_fingerprint"] == "ab" * 32
    assert {"event", "level", "timestamp", "component"} <= line.keys()


def test_secret_fields_bound_in_context_are_dropped_too() -> None:
    stream = io.StringIO()
    klog.setup("info", "json", stream)
    klog.get("test").bind(k="5ec7e7", ck="5ec7e7").info("bound")
    assert "5ec7e7" not in stream.getvalue() and json.loads(stream.getvalue())["event"] == "bound"


def test_console_format_and_level_filter() -> None:
    stream = io.StringIO()
    klog.setup("info", "console", stream)
    lg = klog.get("cnn").bind(imsi="001010000000001", ue_id=3)
    lg.debug("hidden")
    lg.info("attach_complete", step=13, kme="5ec7e7")
    text = stream.getvalue()
    assert "hidden" not in text and "5ec7e7" not in text
    assert "attach_complete" in text and "imsi=001010000000001" in text and "step=13" in text
    assert not text.lstrip().startswith("{")


def test_logfile_reopen_after_rename(tmp_path: Path) -> None:
    path = tmp_path / "cnn.log"
    f = klog.LogFile(path)
    klog.setup("info", "json", f)
    early = klog.get("cnn").bind(ue_id=1)  # bound before the rotation
    early.info("before")
    path.rename(tmp_path / "cnn.log.1")
    f.reopen()
    early.info("after")
    klog.get("cnn").info("new")
    f.close()
    assert [json.loads(x)["event"] for x in (tmp_path / "cnn.log.1").read_text().splitlines()] == ["before"]
    assert [json.loads(x)["event"] for x in path.read_text().splitlines()] == ["after", "new"]


def test_logfile_reopen_elsewhere_and_failure_keeps_the_old_file(tmp_path: Path) -> None:
    f = klog.LogFile(tmp_path / "a.log")
    f.write("one\n")
    with pytest.raises(OSError):
        f.reopen(tmp_path / "missing-dir" / "b.log")
    f.write("two\n")
    f.reopen(tmp_path / "b.log")
    f.write("three\n")
    f.close()
    assert (tmp_path / "a.log").read_text() == "one\ntwo\n"
    assert (tmp_path / "b.log").read_text() == "three\n"
    assert f.path == tmp_path / "b.log"

"""A bad configuration stops every command that reads one -- ``kmed hss``, ``kmed cnn``,
``kmed ue``, ``kmed load`` and ``kmed admin`` -- with exit status 2 and one message naming the
file, the key, what was expected and what was found (CONTRACT: Commands; issue 7). Each
command is run as a real process on a mutated copy of its shipped example (config/*.toml):
a missing key, a value of the wrong type, a bad address."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from kmed.lab import kmed_argv

ROOT = Path(__file__).resolve().parents[2]
ERROR = re.compile(r"^kmed(?: [a-z]+)?: (?P<file>.+?): key '(?P<key>[^']+)': expected (?P<expected>.+), "
                   r"found (?P<found>.+)$")

#: command -> (example, argv after --config FILE)
COMMANDS: dict[str, tuple[str, list[str]]] = {
    "hss": ("hss", []),
    "cnn": ("cnn", []),
    "ue": ("ue", ["attach"]),
    "load": ("load", ["--ues", "1", "--report", "{tmp}/report.json"]),
    "admin": ("hss", ["show", "--imsi", "001010000000001"]),
}

#: (command, case) -> (text replaced, replacement, key named, part of "expected", part of "found")
CASES: dict[tuple[str, str], tuple[str, str, str, str, str]] = {
    ("hss", "missing"): ('origin_realm = "localdomain"', "", "diameter.origin_realm", "a DiameterIdentity",
                         "nothing (the key is missing)"),
    ("hss", "type"): ("max_vectors = 5 ", 'max_vectors = "5" ', "hss.max_vectors", "an integer from 1 to 32", "'5'"),
    ("hss", "address"): ('listen = ["tcp://127.0.0.1:3868"]', 'listen = ["tcp://127.0.0.1:70000"]', "diameter.listen",
                         "a port from 1 to 65535", "'tcp://127.0.0.1:70000' (item 1 of the list)"),
    ("cnn", "missing"): ('destination_realm = "localdomain"', "", "diameter.destination_realm",
                         "a DiameterIdentity", "nothing (the key is missing)"),
    ("cnn", "type"): ('mcc = "001"', "mcc = 1", "plmn.mcc", "a string of 3 decimal digits", "1"),
    ("cnn", "address"): ('listen = ["tcp://127.0.0.1:36412"]', 'listen = ["tcp://[127.0.0.1]:36412"]', "nas.listen",
                         "127.0.0.1 is not an IPv6 address", "'tcp://[127.0.0.1]:36412'"),
    ("ue", "missing"): ('imei = "356938035643809"', "", "me.imei", "a string of 15 decimal digits",
                        "nothing (the key is missing)"),
    ("ue", "type"): ("timeout_s = 10.0", 'timeout_s = "10 s"', "ue.timeout_s", "a number from 0.1 to 120.0",
                     "'10 s'"),
    ("ue", "address"): ('connect = "tcp://127.0.0.1:36412"', 'connect = "127.0.0.1:36412"', "cnn.connect",
                        "an address like tcp://127.0.0.1:3868", "'127.0.0.1:36412'"),
    ("load", "missing"): ('imsi_first = "001010000000001"', "", "subscribers.imsi_first",
                          "a string of 6 to 15 decimal digits", "nothing (the key is missing)"),
    ("load", "type"): ("workers = 1 ", "workers = true ", "load.workers", "an integer from 1 to 64", "True"),
    ("load", "address"): ('connect = ["tcp://127.0.0.1:36412"]', 'connect = ["tcp://999.0.0.1:36412"]', "cnn.connect",
                          "999.0.0.1 is not an IP address or host name", "'tcp://999.0.0.1:36412' (item 1"),
    ("admin", "missing"): ('url = "sqlite:///var/lib/kmed/hss.sqlite"', "", "store.url", "sqlite:///PATH",
                           "nothing (the key is missing)"),
    ("admin", "type"): ('allowed_peers = ["mme.localdomain"]', 'allowed_peers = "mme.localdomain"',
                        "diameter.allowed_peers", "a list of non-empty strings", "'mme.localdomain'"),
    ("admin", "address"): ('# listen = "127.0.0.1:9101"', 'listen = "127.0.0.1"', "metrics.listen",
                           "host:port such as 127.0.0.1:9101", "'127.0.0.1'"),
}


@pytest.mark.parametrize(("command", "case"), sorted(CASES), ids=[f"{c}-{k}" for c, k in sorted(CASES)])
def test_config_error_names_file_key_expected_found_and_exits_2(tmp_path: Path, command: str, case: str) -> None:
    example, args = COMMANDS[command]
    old, new, key, expected, found = CASES[(command, case)]
    text = (ROOT / "config" / f"{example}.toml").read_text(encoding="utf-8")
    assert text.count(old) == 1, f"config/{example}.toml changed: {old!r} is not in it once"
    path = tmp_path / f"{example}.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    argv = kmed_argv(command, "--config", str(path), *(a.format(tmp=tmp_path) for a in args))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines, "no message"
    m = ERROR.match(lines[0])
    assert m, lines[0]
    assert m["file"] == str(path)
    assert m["key"] == key
    assert expected in m["expected"], m["expected"]
    assert m["found"].startswith(found), m["found"]
    assert "Traceback" not in done.stderr
    # nothing ran: no report, no store, no state written next to the configuration
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]

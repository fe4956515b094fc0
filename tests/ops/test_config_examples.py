"""config/*.toml: every key of the schema in kmed/config.py appears in its section of the
example (set, or commented out as ``# key = value``), each with a comment saying what it is;
every example passes ``kmed config check`` as its kind, and so does the example with every
commented-out key uncommented (the commented values are valid too)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from kmed import config
from kmed.lab import kmed_argv

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {kind: ROOT / "config" / f"{kind}.toml" for kind in config.SCHEMAS}

_SECTION = re.compile(r"^\s*\[([A-Za-z0-9_.-]+)\]\s*(?:#.*)?$")
_KEY = re.compile(r"^\s*(?P<hash>#\s*)?(?P<key>[a-z_][a-z0-9_]*)\s*=\s*(?P<rest>.*)$")
_COMMENT = re.compile(r"^\s*#")


def _trailing_comment(rest: str) -> bool:
    """``rest`` (what follows ``key =``) has a comment after the value: a ``#`` outside quotes."""
    quote: str | None = None
    for ch in rest:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return True
    return False


def keys_in_example(text: str) -> dict[tuple[str, str], bool]:
    """(section, key) -> documented, for every key line, set or commented out.

    A key is documented when its line has a trailing comment, or when it is in a run of key
    lines right below a comment block (lines of comment that are not commented-out keys).
    """
    found: dict[tuple[str, str], bool] = {}
    section = ""
    above_is_comment = False
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            section, above_is_comment = m.group(1), False
            continue
        k = _KEY.match(line)
        if k:
            documented = _trailing_comment(k.group("rest")) or above_is_comment
            found[(section, k.group("key"))] = documented
            continue
        # a comment line that is not a key opens a documentation block; a blank line ends it
        above_is_comment = bool(_COMMENT.match(line)) or (above_is_comment and line.strip() == "")
        if not line.strip():
            above_is_comment = False
    return found


def schema_keys(schema: config.Schema) -> list[tuple[str, str]]:
    return [(section, name) for section, keys in schema.items() for name in keys]


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_every_schema_key_is_in_the_example_with_a_comment(kind: str) -> None:
    found = keys_in_example(EXAMPLES[kind].read_text(encoding="utf-8"))
    expected = schema_keys(config.SCHEMAS[kind])
    missing = [f"[{s}] {k}" if s else k for s, k in expected if (s, k) not in found]
    assert missing == [], f"config/{kind}.toml lacks {missing}"
    undocumented = [f"[{s}] {k}" if s else k for s, k in expected if not found[(s, k)]]
    assert undocumented == [], f"config/{kind}.toml: no comment for {undocumented}"
    unknown = [f"[{s}] {k}" for s, k in found if (s, k) not in expected]
    assert unknown == [], f"config/{kind}.toml shows keys that are not in the schema: {unknown}"


def check(path: Path, kind: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(kmed_argv("config", "check", "--kind", kind, str(path)), capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_example_passes_config_check(kind: str) -> None:
    path = EXAMPLES[kind]
    done = check(path, kind)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{path}: ok ({kind})\n", "")
    # without --kind, the kind is recognised from the sections
    done = subprocess.run(kmed_argv("config", "check", str(path)), capture_output=True, text=True, timeout=60)
    assert done.stdout == f"{path}: ok ({kind})\n"


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_example_with_commented_keys_uncommented_passes(kind: str, tmp_path: Path) -> None:
    text = EXAMPLES[kind].read_text(encoding="utf-8")
    lines = []
    uncommented = 0
    for line in text.splitlines():
        k = _KEY.match(line)
        if k and k.group("hash"):
            line = line.replace(k.group("hash"), "", 1)
            uncommented += 1
        lines.append(line)
    path = tmp_path / f"{kind}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = check(path, kind)
    assert done.returncode == 0, done.stderr
    loaded = config.load(path, config.SCHEMAS[kind])
    assert all(loaded[s][k] is not None for s, k in schema_keys(config.SCHEMAS[kind])
               if (s, k) in keys_in_example(text)), "a commented key, once uncommented, should give a value"
    print(f"{kind}: {uncommented} commented-out keys")


def test_the_parser_of_this_test_sees_what_is_missing() -> None:
    """The checks above can fail: a key without a comment, a missing key, a commented key."""
    found = keys_in_example('[a]\nx = 1\n# what y and w are\ny = "#"\nz = 2  # z\n# w = 3\n\n# v\n\nu = 1\n'
                            '# t = 1\n[b]\nx = "a # b"\n')
    assert found == {("a", "x"): False, ("a", "y"): True, ("a", "z"): True, ("a", "w"): True, ("a", "u"): False,
                     ("a", "t"): False, ("b", "x"): False}

"""config/hss.toml: valid, and it shows every key of the HSS schema (set or commented)."""

from __future__ import annotations

import re
from pathlib import Path

from kmed import config as cfg

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "hss.toml"


def test_example_is_valid_and_complete() -> None:
    cfg.load(EXAMPLE, cfg.HSS_SCHEMA)
    text = EXAMPLE.read_text(encoding="utf-8")
    sections = {m.group(1): m.start() for m in re.finditer(r"^\[(\w+)\]", text, re.M)}
    for section, keys in cfg.HSS_SCHEMA.items():
        assert section in sections, section
        start = sections[section]
        end = min([p for p in sections.values() if p > start], default=len(text))
        body = text[start:end]
        for key in keys:
            assert re.search(rf"^#? ?{key} = ", body, re.M), f"[{section}] {key} missing from {EXAMPLE}"

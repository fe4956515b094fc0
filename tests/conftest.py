"""Shared test fixtures."""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_SYSTEM_TOOLS = os.environ.get("KMED_REQUIRE_SYSTEM_TOOLS") == "1"


def require_tool(name: str) -> str:
    """Path of a system tool; skip the test when it is missing (fail in CI, which installs it)."""
    path = shutil.which(name)
    if path is None:
        if REQUIRE_SYSTEM_TOOLS:
            pytest.fail(f"{name} is required (KMED_REQUIRE_SYSTEM_TOOLS=1) but not installed")
        pytest.skip(f"{name} is not installed (run tools/install-system-deps as root)")
    return path

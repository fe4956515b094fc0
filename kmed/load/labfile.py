"""A load configuration for a population created with ``kmed admin provision-range`` (used by the
load benchmark and the tests; CONTRACT: Configuration, Load)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["load_toml", "provision_range_args"]


def provision_range_args(count: int, imsi_first: str, imei_first: str, k: str, opc: str, seed: str,
                         profile: str = "A") -> list[str]:
    """The ``kmed admin ... provision-range`` arguments for the same population."""
    return ["provision-range", "--count", str(count), "--imsi-first", imsi_first, "--imei-first", imei_first,
            "--k", k, "--opc", opc, "--device-key-seed", seed, "--profile", profile]


def load_toml(connect: Sequence[str], *, count: int, imsi_first: str, imei_first: str, k: str, opc: str, seed: str,
              profile: str = "A", extra: str = "", log_level: str = "warning") -> str:
    """The text of a load configuration; ``extra`` is appended (e.g. a ``[load]`` section)."""
    endpoints = ", ".join(f'"{c}"' for c in connect)
    return f"""[cnn]
connect = [{endpoints}]
[subscribers]
count = {count}
imsi_first = "{imsi_first}"
imei_first = "{imei_first}"
k = "{k}"
opc = "{opc}"
device_key_seed = "{seed}"
profile = "{profile}"
[log]
level = "{log_level}"
format = "json"
{extra}"""

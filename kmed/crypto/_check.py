"""Argument checks shared by the crypto modules: exact types and lengths, errors naming the parameter."""

from __future__ import annotations


def octets(name: str, value: object, length: int | None = None) -> bytes:
    """Return ``value`` as bytes if it is bytes-like of exactly ``length`` octets, else raise ValueError."""
    if type(value) is bytes and (length is None or len(value) == length):
        return value  # fast path: the common case costs one type check
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ValueError(f"{name} must be bytes, not {type(value).__name__}")
    data = bytes(value)
    if length is not None and len(data) != length:
        raise ValueError(f"{name} must be {length} octets, got {len(data)}")
    return data


def uint(name: str, value: object, bits: int) -> int:
    """Return ``value`` if it is an int in [0, 2**bits), else raise ValueError."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must be in [0, 2**{bits}), got {value}")
    return value

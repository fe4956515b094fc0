"""``@value_record``: the slotted dataclass kmed uses for value records built per message.

``unsafe_hash=True`` keeps them hashable and compared by value as frozen dataclasses are, at
half the construction cost (a frozen dataclass sets every field through
``object.__setattr__``). Nothing mutates them once built: treat them as frozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(eq_default=True)
def value_record(cls: type[_T]) -> type[_T]:
    """``@dataclass(slots=True, unsafe_hash=True)`` (module doc)."""
    return dataclass(slots=True, unsafe_hash=True)(cls)

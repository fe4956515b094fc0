"""A :data:`kmed.diameter.node.BaseMessageHook` for the tests: base-protocol messages counted
by name and direction (the daemons count them in their metrics: kmed.metrics.base_message_counter)."""

from __future__ import annotations

from collections import Counter

from kmed.diameter.node import BaseMessageEvent


class BaseMessageCounters:
    """``counts[("DWR", "sent")]``; :meth:`get` reads one."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def __call__(self, event: BaseMessageEvent) -> None:
        self.counts[(event.message, "sent" if event.sent else "received")] += 1

    def get(self, message: str, direction: str) -> int:
        """How many ``message`` ("CER" ... "DPA") were ``direction`` ("sent" or "received")."""
        return self.counts[(message, direction)]

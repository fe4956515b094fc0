"""The live progress line of ``kmed load``, shown only when stdout is a terminal.

With ``rich`` installed (extra ``load``) it is a rich live line; without it, a plain line
rewritten with a carriage return. Either way nothing is printed when stdout is not a terminal,
so a report run from a script stays clean.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ["Progress"]


class Progress:
    """Show ``update`` snapshots on one line; :meth:`close` ends the line."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._live: Any = None
        self._plain_width = 0
        if self.enabled:
            try:
                from rich.console import Console
                from rich.live import Live
            except ImportError:
                return
            self._live = Live("", console=Console(file=self.stream), refresh_per_second=4, transient=False)
            self._live.start()

    @staticmethod
    def line(snapshot: dict[str, Any]) -> str:
        """The text of one progress snapshot."""
        phase = snapshot.get("phase", "run")
        elapsed = snapshot.get("elapsed_s", 0.0)
        total = snapshot.get("duration_s")
        when = f"{elapsed:.1f}/{total:g} s" if total else f"{elapsed:.1f} s"
        return (f"{phase} {when} ok {snapshot.get('ok', 0)} failed {snapshot.get('failed', 0)} "
                f"in flight {snapshot.get('in_flight', 0)} {snapshot.get('rate_per_s', 0.0):.1f}/s "
                f"p99 {_ms(snapshot.get('p99_ms'))}")

    def update(self, snapshot: dict[str, Any]) -> None:
        if not self.enabled:
            return
        text = self.line(snapshot)
        if self._live is not None:
            self._live.update(text)
            return
        pad = max(0, self._plain_width - len(text))
        self._plain_width = len(text)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._live is not None:
            self._live.stop()
            self._live = None
        elif self._plain_width:
            self.stream.write("\n")
            self.stream.flush()
        self.enabled = False


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"

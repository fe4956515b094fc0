"""systemd service notification (sd_notify(3) protocol), without python-systemd.

A ``Type=notify`` unit passes ``$NOTIFY_SOCKET``: an AF_UNIX datagram socket, given as a
path or, when it starts with ``@``, a name in the Linux abstract namespace. Each datagram
is newline-separated ``VARIABLE=value`` assignments (sd_notify(3)): ``READY=1`` once the
daemon listens, ``STOPPING=1`` when it begins to shut down, ``STATUS=...`` free text,
``WATCHDOG=1`` keep-alive pings when the unit sets ``WatchdogSec=`` (systemd then exports
``WATCHDOG_USEC`` and ``WATCHDOG_PID``, sd_watchdog_enabled(3)).

Outside systemd every call is a cheap no-op returning ``False``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

__all__ = [
    "notify",
    "ready",
    "reloading",
    "start_watchdog",
    "status",
    "stopping",
    "watchdog_interval",
    "watchdog_loop",
]


def _address(value: str) -> str | bytes | None:
    """The socket address for a ``$NOTIFY_SOCKET`` value, or None if unusable."""
    if value.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of "@" (unix(7)).
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # sd_notify(3) also accepts vsock:... which kmed does not use.


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to the service manager.

    Returns True when the datagram was sent, False when ``$NOTIFY_SOCKET`` is unset or
    unusable or the send failed (notification is best effort: it never raises).
    """
    value = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not value:
        return False
    address = _address(value)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)  # a full receive queue must not stall the event loop
            sock.sendto(state.encode("utf-8", "replace"), address)
    except OSError:
        return False
    return True


def ready(status_text: str | None = None) -> bool:
    """Tell systemd the daemon is listening (``READY=1``), optionally with a STATUS line."""
    return notify(_with_status("READY=1", status_text))


def stopping() -> bool:
    """Tell systemd the daemon has begun its shutdown (``STOPPING=1``)."""
    return notify("STOPPING=1")


def reloading() -> bool:
    """Tell systemd a reload has begun (``RELOADING=1``); follow with :func:`ready`."""
    return notify("RELOADING=1")


def status(text: str) -> bool:
    """Set the free-form status shown by ``systemctl status`` (``STATUS=...``)."""
    return notify("STATUS=" + _one_line(text))


def extend_timeout(seconds: float, status_text: str | None = None) -> bool:
    """Ask for ``seconds`` more before the start-up (or stop) counts as failed
    (``EXTEND_TIMEOUT_USEC``, systemd 236+), optionally with a STATUS line."""
    return notify(_with_status(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}", status_text))


def _with_status(state: str, status_text: str | None) -> str:
    return state + "\nSTATUS=" + _one_line(status_text) if status_text else state


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """The period in seconds at which WATCHDOG=1 should be sent, or None when disabled.

    systemd exports ``WATCHDOG_USEC`` (the unit's ``WatchdogSec=``) and ``WATCHDOG_PID``
    (the process it is meant for; absent or our PID means us) -- sd_watchdog_enabled(3).
    The ping period is half the timeout, as that page recommends.
    """
    e = os.environ if env is None else env
    usec_text = e.get("WATCHDOG_USEC", "")
    if not usec_text:
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid_text = e.get("WATCHDOG_PID", "")
    if pid_text:
        try:
            pid = int(pid_text)
        except ValueError:
            return None
        if pid != os.getpid():
            return None
    return usec / 2_000_000


async def watchdog_loop(stop_event: asyncio.Event, interval: float | None = None) -> None:
    """Send ``WATCHDOG=1`` every ``interval`` seconds (default: :func:`watchdog_interval`)
    until ``stop_event`` is set. Returns at once when the watchdog is disabled.

    Running on the daemon's own event loop is the point: if the loop stalls, the pings
    stop and systemd restarts the service.
    """
    period = watchdog_interval() if interval is None else interval
    if period is None or period <= 0:
        return
    while not stop_event.is_set():
        notify("WATCHDOG=1")
        try:
            await asyncio.wait_for(stop_event.wait(), timeout=period)
        except TimeoutError:
            continue


def start_watchdog(stop_event: asyncio.Event, interval: float | None = None) -> asyncio.Task[None] | None:
    """Schedule :func:`watchdog_loop` on the running loop; None when the watchdog is off.

    Keep the returned task referenced; set ``stop_event`` (or cancel the task) at shutdown.
    """
    period = watchdog_interval() if interval is None else interval
    if period is None or period <= 0:
        return None
    return asyncio.get_running_loop().create_task(watchdog_loop(stop_event, period), name="kmed-systemd-watchdog")

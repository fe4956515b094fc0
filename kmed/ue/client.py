"""Driving UE procedures over a :class:`~kmed.ue.link.UeLink` (the asyncio edge of kmed.ue).

:class:`ProcedureRunner` connects one :class:`~kmed.ue.procedure.UeProcedure` to a link: it is
the UE's :class:`~kmed.ue.link.UeEndpoint`, carries out the procedure's actions (send, timer,
release) and enforces an overall deadline. Per UE: one future and at most two timer handles
(no task), so the load harness can run thousands at once on one event loop.

:func:`load_ue` builds the USIM and ME of a ``kmed ue`` configuration with their state files
(``state_dir/usim/state.json``, ``state_dir/me/state.json``); :func:`run_once` is one
``kmed ue attach`` / ``tau``: connect, run, release, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmed.config import ConfigError
from kmed.crypto import ecies, kdf
from kmed.ue.link import LinkError, UeLink
from kmed.ue.me import Me, load_me_state, save_me_state
from kmed.ue.procedure import ATTACH, Action, Done, Outcome, Release, Send, SetTimer, UeProcedure
from kmed.ue.usim import Usim, load_usim_state, save_usim_state

__all__ = [
    "ProcedureRunner",
    "UeFiles",
    "failed_outcome",
    "load_ue",
    "run_once",
    "run_procedure",
    "serving_plmn",
]


class ProcedureRunner:
    """One UE procedure on a link: the UE's link endpoint and the procedure's action executor."""

    __slots__ = ("_deadline", "_loop", "_on_done", "_starting", "_timer", "future", "link", "proc", "started_at",
                 "ue_id")

    def __init__(self, link: UeLink, proc: UeProcedure, on_done: Callable[[Outcome], None] | None = None) -> None:
        """``on_done`` (optional) is called with the outcome as soon as the procedure ends, in
        the same callback (the load harness: no done-callback round through the event loop);
        it must not raise (an exception is passed to the loop's exception handler). A procedure
        that ends within :meth:`start` (e.g. a TAU without a GUTI) reports from the next loop
        turn instead, so that a caller starting the next procedure from ``on_done`` never recurses."""
        self.link = link
        self.proc = proc
        self.ue_id: int | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._on_done = on_done
        self._starting = False
        self.future: asyncio.Future[Outcome] = self._loop.create_future()
        self.started_at = 0.0

    def start(self, deadline_s: float | None = None) -> asyncio.Future[Outcome]:
        """Start the procedure; the future resolves with its :class:`Outcome` (never raises)."""
        self.started_at = time.monotonic()
        if deadline_s is not None:
            self._deadline = self._loop.call_later(deadline_s, self._on_deadline, deadline_s)
        self._starting = True
        try:
            self._apply(self.proc.start())
        finally:
            self._starting = False
        return self.future

    # --- UeEndpoint ---------------------------------------------------------------------------
    def nas_received(self, pdu: bytes) -> None:
        self._apply(self.proc.receive(pdu))

    def released(self, cause: int, reason: str) -> None:
        self.ue_id = None
        self._apply(self.proc.released(reason))

    # --- internals ----------------------------------------------------------------------------
    def _on_timer(self) -> None:
        self._timer = None
        self._apply(self.proc.timer_expired())

    def _on_deadline(self, seconds: float) -> None:
        self._deadline = None
        self._apply(self.proc.abort(f"timeout: no outcome within {seconds:g} s"))

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                if not self._send(action.pdu):
                    self._apply(self.proc.released(f"UE link down ({self.link.close_reason or 'not connected'})"))
                    return
            elif isinstance(action, SetTimer):
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                if action.seconds is not None:
                    self._timer = self._loop.call_later(action.seconds, self._on_timer)
            elif isinstance(action, Release):
                if self.ue_id is not None:
                    self.link.release_ue(self.ue_id)
                    self.ue_id = None
            elif isinstance(action, Done):
                self._close()
                if not self.future.done():
                    self.future.set_result(action.outcome)
                    if self._on_done is not None:
                        if self._starting:
                            self._loop.call_soon(self._call_on_done, action.outcome)
                        else:
                            self._call_on_done(action.outcome)

    def _call_on_done(self, outcome: Outcome) -> None:
        assert self._on_done is not None
        try:
            self._on_done(outcome)
        except Exception as exc:  # called from the link's data_received: never let it fail the link
            self._loop.call_exception_handler({"message": "ProcedureRunner on_done callback failed",
                                               "exception": exc})

    def _send(self, pdu: bytes) -> bool:
        if self.ue_id is None:
            try:
                self.ue_id = self.link.add_ue(self)
            except LinkError:
                return False
        self.link.send_nas(self.ue_id, pdu)
        return True

    def _close(self) -> None:
        for handle in (self._timer, self._deadline):
            if handle is not None:
                handle.cancel()
        self._timer = self._deadline = None
        if self.ue_id is not None:  # Done without Release: still tell the network the UE is idle
            self.link.release_ue(self.ue_id)
            self.ue_id = None


async def run_procedure(link: UeLink, proc: UeProcedure, deadline_s: float | None = None) -> Outcome:
    """Run ``proc`` on ``link`` until it ends (or ``deadline_s`` passes: result ``failed``)."""
    return await ProcedureRunner(link, proc).start(deadline_s)


# --- one UE from a configuration -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UeFiles:
    """Where a UE's state lives (CONTRACT: ``state_dir/usim`` and ``state_dir/me`` kept apart)."""

    state_dir: Path

    @property
    def usim_state(self) -> Path:
        return self.state_dir / "usim" / "state.json"

    @property
    def me_state(self) -> Path:
        return self.state_dir / "me" / "state.json"


def serving_plmn(cfg: dict[str, dict[str, Any]]) -> bytes:
    """The serving network identity (TS 33.401 A.2) from ``[plmn]``, or the IMSI's MCC and a
    2-digit MNC when not configured."""
    imsi: str = cfg["usim"]["imsi"]
    mcc = cfg.get("plmn", {}).get("mcc") or imsi[:3]
    mnc = cfg.get("plmn", {}).get("mnc") or imsi[3:5]
    return kdf.plmn_id(mcc, mnc)


def load_ue(
    cfg: dict[str, dict[str, Any]], file: str | Path, *, persist: bool = True, revert_pending: bool = True
) -> tuple[Usim, Me]:
    """The USIM and ME of a validated ``kmed ue`` configuration, with their persisted state.

    Raises :class:`ConfigError` (file and key named) when the private key cannot be used, and
    :class:`kmed.ue.state.StateError` when a state file is malformed. A pending KME left by a
    process that stopped mid-procedure is reverted (``revert_pending``): that UE went idle
    before the commit. ``persist=False``: state read but never written (``kmed ue show``).
    """
    files = UeFiles(Path(cfg[""]["state_dir"]))
    usim_cfg, me_cfg = cfg["usim"], cfg["me"]
    imsi, imei = usim_cfg["imsi"], me_cfg["imei"]
    key_path = Path(me_cfg["private_key"])
    try:
        pem = key_path.read_bytes()
    except OSError as exc:
        raise ConfigError(file, "me.private_key", "a readable PEM private key file", exc.strerror or str(exc)) from None
    try:
        profile, raw = ecies.load_private_key_pem(pem)
    except ecies.EciesError as exc:
        raise ConfigError(file, "me.private_key", "an X25519 or P-256 PEM private key", str(exc)) from None
    ind_bits = usim_cfg["ind_bits"]
    usim = Usim(
        imsi, usim_cfg["k"], usim_cfg["opc"],
        state=load_usim_state(files.usim_state, imsi, ind_bits),
        ind_bits=ind_bits,
        save=(lambda s: save_usim_state(files.usim_state, imsi, s)) if persist else None,
    )
    me = Me(
        imei, profile, raw, svn=me_cfg["software_version"],
        state=load_me_state(files.me_state, imei),
        save=(lambda s: save_me_state(files.me_state, imei, s)) if persist else None,
    )
    if revert_pending:
        me.revert_pending()
    return usim, me


def failed_outcome(kind: str, usim: Usim, me: Me, error: str) -> Outcome:
    """An outcome for a procedure that could not even start (e.g. connection refused)."""
    return Outcome(
        procedure=kind, result="failed", emm_cause=None, kme_provisioned=False,
        kme_fingerprint=me.current_fingerprint(), imsi=usim.imsi, imei=me.imei, error=error, attempts=0,
        guti=usim.state.guti.hex() if usim.state.guti is not None else None,
    )


async def run_once(
    cfg: dict[str, dict[str, Any]], usim: Usim, me: Me, kind: str = ATTACH, log: Any = None
) -> Outcome:
    """Connect to the CNN, run one attach or TAU, release the UE and close the link."""
    ue_cfg = cfg["ue"]
    deadline = float(ue_cfg["timeout_s"])
    start = time.monotonic()
    try:
        link = await UeLink.connect(cfg["cnn"]["connect"], name=f"kmed-ue-{usim.imsi}", timeout=deadline)
    except LinkError as exc:
        return failed_outcome(kind, usim, me, f"cannot reach the CNN: {exc}")
    try:
        proc = UeProcedure(
            usim, me, serving_plmn(cfg), kind=kind, timer_s=float(ue_cfg["t3410_s"]),
            max_attempts=int(ue_cfg["max_attempts"]), log=log,
        )
        remaining = max(0.05, deadline - (time.monotonic() - start))
        return await run_procedure(link, proc, remaining)
    finally:
        link.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(link.wait_closed(), 2.0)

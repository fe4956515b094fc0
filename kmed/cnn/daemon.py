"""``kmed cnn --config FILE``: the CNN daemon (asyncio edge around :mod:`kmed.cnn.procedure`).

Wiring, nothing else: UE link servers (:mod:`kmed.cnn.link`, tcp:// and sctp:// where the kernel
has SCTP), the Diameter client to the HSS (:class:`kmed.diameter.client.DiameterClient`, which
does peer failover in the ``connect`` order), one timer handle per UE (``loop.call_later``; no
task per UE), one short task per S6a request in flight, structlog (one bound logger per
procedure) and the optional metrics endpoint.

Life cycle: listen, then systemd ``READY=1``. SIGTERM/SIGINT: stop accepting connections, refuse
new Attach/TAU Requests (EMM #22), let running procedures finish for up to
``cnn.drain_timeout_s``, release what is left, DPR to the Diameter peers, exit 0. SIGHUP:
re-read the ``[log]`` settings and reopen ``log.file`` (log rotation: new lines go to the new file).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from typing import Any

from kmed import config as cfg
from kmed import log as klog
from kmed import systemd
from kmed.cnn.contexts import link_key, split_link_key
from kmed.cnn.link import UeLinkConnection
from kmed.cnn.procedure import (
    Action,
    Cnn,
    KmeEvent,
    LinkError,
    Log,
    Outcome,
    ReleaseUe,
    SendNas,
    SendS6a,
    Settings,
    StartTimer,
    StopTimer,
)
from kmed.diameter.client import ClientClosed, NoPeerAvailable, RequestTimeout
from kmed.diameter.message import DecodeError, Message
from kmed.metrics import result_label
from kmed.nas.frame import ErrorCause, FrameType, ReleaseCause, encode_frame, error_frame, nas_downlink_frame

__all__ = ["CnnDaemon", "main", "serve"]

_PEER_STATE = {"okay": "open", "suspect": "suspect", "closing": "closing", "down": "closed"}


def _answer_labels(answer: Message) -> tuple[str, str]:
    """The (peer, result) labels of an answer for the metrics: Origin-Host, and the
    Experimental-Result as ``vendor:code`` or the Result-Code. Never raises: an AVP that does not
    read (the state machine answers the UE #17 for it) is labelled ``?`` / ``malformed``."""
    try:
        peer = answer.get("Origin-Host")
    except DecodeError:
        return "?", "malformed"
    try:
        result = answer.result()
    except DecodeError:
        return peer or "?", "malformed"
    return peer or "?", result_label(result)


class CnnDaemon:
    """The running CNN: owns the state machine, the UE links, the timers and the Diameter client."""

    def __init__(self, conf: dict[str, dict[str, Any]], client: Any, metrics: Any = None) -> None:
        self.conf = conf
        self.settings = Settings.from_config(conf)
        self.core = Cnn(self.settings, log_level=conf["log"]["level"])  # no Log actions the logger would drop
        self.client = client
        self.metrics = metrics
        self.request_timeout = float(conf["diameter"]["request_timeout_s"])
        self.max_frame_size = int(conf["nas"]["max_frame_size"])
        self.name = conf["diameter"]["origin_host"]
        self.log = klog.get("cnn").bind()
        self.links: dict[int, UeLinkConnection] = {}
        self.servers: list[asyncio.Server] = []
        self.timers: dict[int, asyncio.TimerHandle] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._numbers = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.Event | None = None
        if metrics is not None:
            metrics.ue_contexts.set_function(lambda: len(self.core.table))

    # --- listening -------------------------------------------------------------------------------

    async def listen(self) -> list[str]:
        """Open every ``nas.listen`` endpoint; returns their addresses (port 0 resolved)."""
        from kmed.diameter.transport import listen

        self._loop = asyncio.get_running_loop()
        bound: list[str] = []
        for ep in self.conf["nas"]["listen"]:
            server = await listen(ep, self._new_connection)
            self.servers.append(server)
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                bound.append(str(cfg.Endpoint(ep.transport, host, port)))
        return bound

    def _new_connection(self) -> UeLinkConnection:
        return UeLinkConnection(self, next(self._numbers), self.name, self.max_frame_size)

    # --- LinkOwner --------------------------------------------------------------------------------

    def link_up(self, conn: UeLinkConnection) -> None:
        self.links[conn.number] = conn
        self.log.info("link_up", link=conn.number, peer=conn.peer, link_name=conn.peer_name)

    def nas_uplink(self, conn: UeLinkConnection, ue_id: int, pdu: bytes) -> None:
        stats = self.core.stats
        before = stats.integrity_failures + stats.replays
        self.execute(self.core.nas_uplink(link_key(conn.number, ue_id), pdu))
        if self.metrics is not None:
            dropped = stats.integrity_failures + stats.replays - before
            if dropped:
                self.metrics.nas_integrity_failures.inc(dropped)

    def ue_released(self, conn: UeLinkConnection, ue_id: int, reason: str) -> None:
        self.execute(self.core.link_released(link_key(conn.number, ue_id), reason))

    def link_down(self, conn: UeLinkConnection, reason: str) -> None:
        self.links.pop(conn.number, None)
        self.log.info("link_down", link=conn.number, peer=conn.peer, reason=reason, frames_in=conn.frames_in,
                      frames_out=conn.frames_out, bad_frames=conn.bad_frames)
        self.execute(self.core.close_link(conn.number, reason))

    def link_event(self, conn: UeLinkConnection, event: str, **fields: object) -> None:
        self.log.warning(event, link=conn.number, peer=conn.peer, **fields)

    # --- actions ----------------------------------------------------------------------------------

    def execute(self, actions: list[Action]) -> None:
        """Carry out the state machine's actions, in order."""
        for a in actions:
            # the actions are final classes: an identity test per branch (cheaper than isinstance)
            if type(a) is SendNas:
                conn = self.links.get(a.key >> 32)
                if conn is not None:
                    conn.send(nas_downlink_frame(a.key & 0xFFFFFFFF, a.pdu))
            elif type(a) is StartTimer:
                timers = self.timers
                old = timers.pop(a.key, None)
                if old is not None:
                    old.cancel()
                assert self._loop is not None
                timers[a.key] = self._loop.call_later(a.seconds, self._timer_fired, a.key, a.token)
            elif type(a) is StopTimer:
                handle = self.timers.pop(a.key, None)
                if handle is not None:
                    handle.cancel()
            elif type(a) is Log:
                self._log(a)
            elif type(a) is SendS6a:
                task = (self._loop or asyncio.get_running_loop()).create_task(self._s6a(a))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif isinstance(a, Outcome):
                self._outcome(a)
            elif isinstance(a, ReleaseUe):
                conn = self.links.get(a.key >> 32)
                if conn is not None:
                    conn.send(encode_frame(FrameType.UE_RELEASE, a.key & 0xFFFFFFFF, bytes((a.cause,))))
            elif isinstance(a, LinkError):
                conn = self.links.get(a.key >> 32)
                if conn is not None:
                    conn.send(error_frame(ErrorCause(a.cause), a.key & 0xFFFFFFFF, a.detail))
            elif isinstance(a, KmeEvent) and self.metrics is not None:
                self.metrics.kme_events.labels(a.event).inc()

    def _log(self, a: Log) -> None:
        proc = a.proc
        if proc is None:
            link, ue_id = split_link_key(a.key)
            getattr(self.log, a.level)(a.event, link=link, ue_id=ue_id, **a.fields)
            return
        lg = proc.log_handle
        if lg is None:
            lg = proc.log_handle = self.log.bind(**proc.log_context())
        getattr(lg, a.level)(a.event, **a.fields)

    def _outcome(self, a: Outcome) -> None:
        handle = self.timers.pop(a.key, None)
        if handle is not None:
            handle.cancel()
        if self.metrics is not None:
            self.metrics.procedures.labels(a.procedure, a.outcome).inc()
            self.metrics.procedure_duration.labels(a.procedure).observe(a.duration_s)
        if self._idle is not None and self.core.table.procedures == 0:
            self._idle.set()

    def _timer_fired(self, key: int, token: int) -> None:
        self.timers.pop(key, None)
        self.execute(self.core.timer_expired(key, token))

    async def _s6a(self, a: SendS6a) -> None:
        """One S6a exchange; the answer (or why there is none) goes back to the state machine."""
        m = self.metrics
        try:
            answer = await self.client.request(a.request, self.request_timeout)
        except RequestTimeout:
            reason = "timeout"
        except (NoPeerAvailable, ClientClosed):
            reason = "unavailable"
        except Exception as exc:  # a transport fault must not kill the daemon: the UE gets #17
            self.log.error("s6a_request_failed", command=a.command, error=f"{type(exc).__name__}: {exc}")
            reason = "unavailable"
        else:
            if m is not None:
                peer, result = _answer_labels(answer)
                m.diameter_requests.labels(a.command, peer).inc()
                m.diameter_answers.labels(a.command, result).inc()
            self.execute(self.core.s6a_answer(a.key, a.token, answer))
            return
        if m is not None:
            m.diameter_requests.labels(a.command, "none").inc()
            m.diameter_answers.labels(a.command, reason).inc()
        self.execute(self.core.s6a_failed(a.key, a.token, reason))

    def update_peer_metrics(self) -> None:
        if self.metrics is None:
            return
        for endpoint, state in self.client.peer_states.items():
            self.metrics.set_peer_state(endpoint, _PEER_STATE.get(state, "connecting"))

    # --- shutdown ---------------------------------------------------------------------------------

    async def drain(self, timeout: float) -> int:
        """Stop accepting, let running procedures finish (up to ``timeout`` s); returns how many
        were still running and got released."""
        for server in self.servers:
            server.close()
        self.core.accepting = False
        if self.core.table.procedures:
            self._idle = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._idle.wait()
        left = self.core.table.procedures
        for key in self.core.table.procedure_keys():
            conn = self.links.get(key >> 32)
            if conn is not None:
                conn.send(encode_frame(FrameType.UE_RELEASE, key & 0xFFFFFFFF, bytes((ReleaseCause.LINK_SHUTDOWN,))))
            self.execute(self.core.link_released(key, "CNN shutting down"))
        for conn in list(self.links.values()):
            conn.close("CNN shutting down")
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        return left


# --- process ----------------------------------------------------------------------------------


#: ``[log] file`` once opened: SIGHUP reopens it in place (log rotation), so loggers bound
#: earlier (running procedures, the Diameter client) write to the new file too.
_log_file: list[klog.LogFile] = []


def _setup_logging(conf: dict[str, Any]) -> klog.LogFile | None:
    """Configure structlog to stderr or ``[log] file``; on a second call (SIGHUP) the file
    is reopened (raises OSError, and the previous file stays in use, when it cannot be)."""
    path = conf["log"]["file"]
    stream: klog.LogFile | None = None
    if path:
        if _log_file:
            stream = _log_file[0]
            stream.reopen(path)
        else:
            stream = klog.LogFile(path)
            _log_file.append(stream)
    # Without a file: stderr. A file opened before stays open for loggers still bound to it.
    klog.setup(conf["log"]["level"], conf["log"]["format"], stream)
    return stream


def _check_listen(config_path: str, conf: dict[str, Any]) -> None:
    from kmed.diameter.transport import sctp_available

    for ep in conf["nas"]["listen"]:
        if ep.transport == "tls":
            raise cfg.ConfigError(config_path, "nas.listen", "tcp:// or sctp:// addresses (no TLS on the UE link)",
                                  str(ep))
        if ep.transport == "sctp" and not sctp_available():
            raise cfg.ConfigError(config_path, "nas.listen", "tcp:// (this kernel has no SCTP)", str(ep))


async def serve(config_path: str, conf: dict[str, Any]) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status."""
    from kmed.diameter.client import DiameterClient
    from kmed.diameter.node import LocalNode
    from kmed.diameter.transport import make_ssl_context

    log = klog.get("cnn")
    dia = conf["diameter"]
    ssl_context = None
    if any(ep.transport == "tls" for ep in dia["connect"]):
        ssl_context = make_ssl_context(server_side=False, cert=dia["tls_cert"], key=dia["tls_key"], ca=dia["tls_ca"])
    node = LocalNode(dia["origin_host"], dia["origin_realm"], product_name="kmed-cnn")
    client = DiameterClient(node, dia["connect"], dia["destination_realm"], dia["destination_host"],
                            request_timeout=dia["request_timeout_s"], watchdog=dia["watchdog_s"],
                            ssl_context=ssl_context, max_message_size=dia["max_message_size"])
    metrics = None
    metrics_server = None
    if conf["metrics"]["listen"] is not None:
        from kmed import metrics as km

        registry = km.Registry()
        metrics = km.cnn_metrics(registry)
        node.base_message_hook = km.base_message_counter(metrics, server=False)  # CER, DWR, DPR sent
        host, port = conf["metrics"]["listen"]
        metrics_server = await km.start_metrics_server(host, port, registry)
    daemon = CnnDaemon(conf, client, metrics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(config_path, daemon))
    await client.start(wait_connected=False)  # the UE link opens even while the HSS is away: #17 meanwhile
    try:
        endpoints = await daemon.listen()
    except OSError as exc:
        log.error("cnn_listen_failed", error=str(exc))
        await client.close()
        return 1
    log.info("cnn_ready", listen=endpoints, hss=[str(ep) for ep in dia["connect"]], pid=os.getpid())
    systemd.ready(f"listening on {', '.join(endpoints)}")
    watchdog = systemd.start_watchdog(stop)
    peer_metrics = None
    if metrics is not None:
        def tick() -> None:
            nonlocal peer_metrics
            daemon.update_peer_metrics()
            peer_metrics = loop.call_later(1.0, tick)

        tick()
    await stop.wait()
    systemd.stopping()
    t0 = time.monotonic()
    log.info("cnn_stopping", procedures=daemon.core.table.procedures)
    left = await daemon.drain(conf["cnn"]["drain_timeout_s"])
    await client.close()
    if peer_metrics is not None:
        peer_metrics.cancel()
    if metrics_server is not None:
        metrics_server.close()
    if watchdog is not None:
        watchdog.cancel()
    stats = daemon.core.stats
    log.info("cnn_stopped", drained_s=round(time.monotonic() - t0, 3), released=left, nas_in=stats.nas_in,
             nas_out=stats.nas_out, integrity_failures=stats.integrity_failures, replays=stats.replays,
             undecodable=stats.undecodable)
    return 0


def _reload(config_path: str, daemon: CnnDaemon) -> None:
    """SIGHUP: re-read the configuration's ``[log]`` section (and reopen ``log.file``)."""
    systemd.reloading()
    try:
        conf = cfg.load(config_path, cfg.CNN_SCHEMA)
    except cfg.ConfigError as exc:
        daemon.log.error("cnn_reload_failed", error=str(exc))
    else:
        try:
            _setup_logging(conf)
        except OSError as exc:  # the previous log file and settings stay in use
            daemon.log.error("cnn_reload_failed", error=f"log.file: {exc.strerror or exc}")
        else:
            daemon.log = klog.get("cnn").bind()
            daemon.core.set_log_level(conf["log"]["level"])
            daemon.log.info("cnn_reloaded", level=conf["log"]["level"], log_file=conf["log"]["file"])
    systemd.ready()


def main(config_path: str) -> int:
    """Entry point of ``kmed cnn`` (exit statuses: kmed.entry)."""
    from kmed.entry import run_daemon

    return run_daemon("cnn", config_path, cfg.CNN_SCHEMA, _setup_logging, serve, check=_check_listen)

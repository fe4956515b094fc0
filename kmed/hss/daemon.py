"""``kmed hss --config FILE``: the HSS daemon (asyncio edge around the sans-I/O handlers).

Start: configuration validated (exit 2 naming the file and key), store opened and migrated,
token key loaded or created (mode 0600), group-commit writer started, read cache warmed
with the subscribers (kmed.hss.warm), Diameter server listening, then systemd ``READY=1``.
Each S6a request: handlers compute the answer and the writes; the answer is sent once the
writes are committed (docs/hss.md, "Durability"). SIGTERM/SIGINT: stop accepting, let
in-flight requests finish, DPR every peer, commit what is queued, exit 0. SIGHUP: reload
``allowed_peers`` and the log settings, empty the read cache and warm it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from kmed import config as cfg
from kmed import log as klog
from kmed import metrics as km
from kmed import systemd
from kmed.diameter import dictionary as d
from kmed.diameter.message import DecodeError, Message
from kmed.diameter.node import LocalNode, PeerInfo
from kmed.hss.cache import ReadCache
from kmed.hss.files import load_or_create_key
from kmed.hss.groupcommit import CommitFailed, Committer, GroupCommitter
from kmed.hss.logstream import LoopFlushedStream
from kmed.hss.prefetch import Prefetch
from kmed.hss.s6a import SUCCESS_NAME, HssPolicy, Outcome, S6aHandlers, is_imsi
from kmed.hss.sqlite_store import SqliteStore, sqlite_path
from kmed.hss.store import StoreError
from kmed.hss.token import KEY_LEN
from kmed.hss.warm import warm
from kmed.hss.writer import ProcessCommitter

_SUCCESS_LABEL = str(d.DIAMETER_SUCCESS)
_OK = frozenset({"ok", "resync", "kme_issued", "kme_stored", "kme_already_stored"})
#: How long SIGTERM waits for in-flight requests and DPA before closing hard.
STOP_DEADLINE_S = 5.0


class HssService:
    """The Diameter handler: runs :class:`S6aHandlers`, commits their writes, logs one event
    per request, answers 3004 DIAMETER_TOO_BUSY beyond ``max_pending`` requests awaiting commit."""

    def __init__(self, handlers: S6aHandlers, committer: Committer, max_pending: int,
                 metrics: Any = None, cache: ReadCache | None = None, prefetch: Prefetch | None = None) -> None:
        self.handlers = handlers
        self.cache = cache
        self.prefetch = prefetch
        self.committer = committer
        self.max_pending = max_pending
        self.in_flight = 0
        self.log = klog.get("hss").bind()  # bound once: the lazy proxy re-binds on every call
        self.metrics = metrics
        self.loop = asyncio.get_running_loop()

    def __call__(self, req: Message, peer: PeerInfo) -> Message | Awaitable[Message]:
        started = time.monotonic() if self.metrics is not None else 0.0
        if self.metrics is not None:
            self.metrics.diameter_requests.labels(req.name, peer.origin_host).inc()
        if self.in_flight >= self.max_pending:
            # RFC 6733 §7.1.3: a protocol error; the peer may retry elsewhere or later.
            busy = self.handlers.result_answer(req, d.DIAMETER_TOO_BUSY)
            try:
                imsi = req.get("User-Name")
            except DecodeError:  # not UTF-8: the log line names it by its octets
                raw = req.raw("User-Name")
                imsi = raw.data.hex() if raw is not None else None
            event = {"event": req.name.lower(), "outcome": "too_busy", "imsi": imsi}
            self._log(event, busy, True, started)
            return busy
        prefetch = self.prefetch
        if prefetch is not None:
            try:
                user = req.get("User-Name")
            except DecodeError:
                user = None  # the handler answers it
            if type(user) is str and is_imsi(user) and prefetch.needs(user):
                # self.loop, not asyncio.get_running_loop(): that makes a getpid() call each time.
                waiting: asyncio.Future[Message] = self.loop.create_future()
                self.in_flight += 1
                prefetch.wait(user, partial(self._resume, req, peer, waiting, started))
                return waiting
        return self._handle(req, peer, started, None)

    def _resume(self, req: Message, peer: PeerInfo, answer: asyncio.Future[Message], started: float) -> None:
        """The subscriber of ``req`` was read ahead (kmed.hss.prefetch): handle it now."""
        self.in_flight -= 1
        if answer.done():  # cancelled: the server is stopping
            return
        try:
            result = self._handle(req, peer, started, answer)
        except Exception as exc:  # answered 5012 and logged by the Diameter layer
            answer.set_exception(exc)
            return
        if result is not answer:
            answer.set_result(result)  # type: ignore[arg-type]  # a Message: nothing to commit

    def _handle(self, req: Message, peer: PeerInfo, started: float,
                answer: asyncio.Future[Message] | None) -> Message | asyncio.Future[Message]:
        """Run the handler; an answer with writes is a future (``answer``, or a new one)
        resolved once they are committed."""
        out = self.handlers.handle(req, peer.origin_host)
        if not out.writes:
            assert out.answer is not None  # only an AIA with vectors to make waits for them
            self._log(out.event, out.answer, False, started)
            return out.answer
        self.in_flight += 1
        if self.cache is not None:
            self.cache.writing(out.writes)
        # The answer is a future resolved from the commit's callback: no task per request
        # (kmed.diameter.transport.dispatch_request answers futures from their done callback).
        if answer is None:
            answer = self.loop.create_future()
        self.committer.submit_with(out.writes, partial(self._committed, req, out, answer, started))
        return answer

    def _committed(self, req: Message, out: Outcome, answer_fut: asyncio.Future[Message], started: float,
                   result: list[Any] | CommitFailed) -> None:
        """The writes of ``out`` are committed (or failed): settle, log, resolve the answer
        (made here when the writer made its vectors, the last of ``result``)."""
        self.in_flight -= 1
        if self.cache is not None:
            self.cache.written(out.writes, None if isinstance(result, CommitFailed) else result)
        if out.reserved is not None:
            self.handlers.ledger.settle(out.reserved)
        own = out.answer
        if own is None and not isinstance(result, CommitFailed):  # kmed.hss.vectors: the writer made them
            assert out.kme_avps is not None
            try:
                own = self.handlers.aia(req, out.kme_avps, result[-1])
            except Exception as exc:  # vectors that do not encode: answered as a store failure
                result = CommitFailed(f"vectors: {type(exc).__name__}: {exc}")
        answer = own
        if isinstance(result, CommitFailed):
            out.event["outcome"] = "store_error"
            out.event["error"] = str(result)
            if req.command_code == d.CMD_AIR:  # TS 29.272 §5.2.3.1.3: e.g. a database error
                answer = self.handlers.experimental_answer(
                    req, d.VENDOR_3GPP, d.DIAMETER_AUTHENTICATION_DATA_UNAVAILABLE)
            else:
                answer = self.handlers.result_answer(req, d.DIAMETER_UNABLE_TO_COMPLY)
        elif out.refused is not None and not all(result):
            answer = out.refused
            out.event["outcome"] = "kme_refused_newer_held"
        assert answer is not None
        try:
            self._log(out.event, answer, answer is not own, started)
        finally:
            if not answer_fut.done():
                answer_fut.set_result(answer)

    def _log(self, event: dict[str, Any], answer: Message, replaced: bool, started: float) -> None:
        """One log line per request (``replaced``: the answer is not the handler's own)."""
        name = event.pop("event", "s6a")
        if replaced:
            res = answer.result()
            if res is not None:
                event["result"] = d.result_name(res[1], res[0])
        ok = event.get("outcome") in _OK
        (self.log.info if ok else self.log.warning)(name, **event)
        if self.metrics is not None:
            self._count(name, event, answer, ok, started)

    def _count(self, name: str, event: dict[str, Any], answer: Message, ok: bool, started: float) -> None:
        """docs/metrics.md: answers by command and code, procedures, KME events."""
        m = self.metrics
        # _log names a replaced answer's result: SUCCESS_NAME there is DIAMETER_SUCCESS.
        code = _SUCCESS_LABEL if event.get("result") == SUCCESS_NAME else km.result_label(answer.result())
        m.diameter_answers.labels(name.upper(), code).inc()
        outcome = event.get("outcome")
        failed = outcome in ("store_error", "invalid_avp", "missing_avp", "command_unsupported")
        m.procedures.labels(name, "ok" if ok else ("failed" if failed else "rejected")).inc()
        m.procedure_duration.labels(name).observe(time.monotonic() - started)
        if outcome == "kme_issued":
            m.kme_events.labels("issued").inc()
        elif outcome == "kme_stored":
            m.kme_events.labels("stored").inc()
        elif event.get("step") in (4, 13) and not ok:
            m.kme_events.labels("refused").inc()


#: kmed.diameter.peer.PeerState values -> docs/metrics.md ``state`` label values.
_PEER_STATE = {"okay": "open", "suspect": "suspect", "closing": "closing", "down": "closed"}


def update_peer_metrics(metrics: Any, peers: dict[str, Any], seen: set[str]) -> None:
    """Set ``kmed_diameter_peer_state`` from the server's open peers (Origin-Host -> PeerState);
    a peer seen before and gone now is ``closed``. ``seen`` accumulates the peers ever open."""
    for host, state in peers.items():
        metrics.set_peer_state(host, _PEER_STATE.get(state.value, "connecting"))
    for host in seen - peers.keys():
        metrics.set_peer_state(host, "closed")
    seen.update(peers)


def _policy(hss: dict[str, Any]) -> HssPolicy:
    return HssPolicy(
        max_vectors=hss["max_vectors"],
        ind_bits=hss["ind_bits"],
        bind_current_kme=hss["bind_current_kme"],
        kme_token_lifetime_s=hss["kme_token_lifetime_s"],
        allowed_rat_types=frozenset(hss["allowed_rat_types"]),
        enforce_pair_on_ulr=hss["enforce_pair_on_ulr"],
    )


#: The log stream in use (stderr or ``[log] file``), replaced on SIGHUP (log rotation).
_log_stream: list[LoopFlushedStream] = []
_LOG_BUFFER = 1 << 16


def _setup_logging(conf: dict[str, Any]) -> None:
    """Configure structlog on a stream written once per loop iteration (kmed.hss.logstream):
    stderr, or ``[log] file`` opened for appending.

    On SIGHUP the file is reopened inside the same stream object, so loggers bound before
    (e.g. the Diameter layer's) write to the new file too (log rotation). Raises OSError,
    the previous file staying in use, when the new one cannot be opened.
    """
    path = conf["log"]["file"]
    raw: TextIO
    if path:
        raw = open(path, "a", encoding="utf-8", buffering=_LOG_BUFFER)  # noqa: SIM115 (kept open)
    else:
        raw = open(os.dup(2), "w", encoding="utf-8", buffering=_LOG_BUFFER, closefd=True)  # noqa: SIM115
    if _log_stream:
        stream = _log_stream[0]
        previous, stream.raw = stream.raw, raw
        with contextlib.suppress(OSError, ValueError):
            previous.close()  # flushes what it still buffers
    else:
        stream = LoopFlushedStream(raw)
        _log_stream.append(stream)
    klog.setup(conf["log"]["level"], conf["log"]["format"], stream)


async def serve(config_path: str, conf: dict[str, Any]) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status."""
    from kmed.diameter.server import DiameterServer

    log = klog.get("hss")
    base = Path(config_path).resolve().parent
    dia, store_conf, hss = conf["diameter"], conf["store"], conf["hss"]
    try:
        db_path = sqlite_path(store_conf["url"], base)
    except ValueError as exc:
        raise cfg.ConfigError(config_path, "store.url", str(exc), repr(store_conf["url"])) from None
    key_path = Path(hss["token_key_file"]) if hss["token_key_file"] else db_path.with_name(db_path.name + ".token-key")
    if not key_path.is_absolute():
        key_path = base / key_path
    try:
        token_key = load_or_create_key(key_path, KEY_LEN)
    except (OSError, ValueError) as exc:
        expected = f"a readable {KEY_LEN}-octet key file"
        raise cfg.ConfigError(config_path, "hss.token_key_file", expected, str(exc)) from None

    # This process's name in the store's hss_writer mark (kmed.hss.cache: another HSS's commits
    # empty the read cache).
    instance = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def open_store() -> SqliteStore:
        return SqliteStore(db_path, synchronous=store_conf["synchronous"], busy_timeout_s=store_conf["busy_timeout_s"])

    def open_writer() -> SqliteStore:
        store = open_store()
        store.instance = instance
        return store

    reader = open_store()  # migrates the schema before anything else runs
    stop = asyncio.Event()
    status = 0

    def writer_died(why: str) -> None:
        nonlocal status
        log.error("hss_writer_failed", error=why)
        status = 1
        stop.set()

    committer: Committer
    if store_conf["writer"] == "process":
        committer = ProcessCommitter(
            (str(db_path), store_conf["synchronous"], store_conf["busy_timeout_s"], {"instance": instance}),
            max_batch=hss["commit_batch"], on_dead=writer_died)
    else:
        committer = GroupCommitter(open_writer, max_batch=hss["commit_batch"])
    try:
        await committer.open()
    except BaseException:
        reader.close()
        raise
    cache = ReadCache(reader, hss["cache_subscribers"], schedule=asyncio.get_running_loop().call_soon)
    prefetch = None
    if isinstance(committer, ProcessCommitter) and cache.capacity:
        prefetch = Prefetch(cache, committer.read_subscribers, asyncio.get_running_loop())
    # With the writer child, AIR vectors are made there (kmed.hss.vectors): the loop is the
    # HSS's bottleneck and the child has a core of its own.
    handlers = S6aHandlers(cache, token_key, dia["origin_host"], dia["origin_realm"], _policy(hss),
                           defer_vectors=store_conf["writer"] == "process")
    metrics = None
    metrics_server = None
    if conf["metrics"]["listen"] is not None:
        registry = km.Registry()
        metrics = km.hss_metrics(registry)
        host, port = conf["metrics"]["listen"]
        metrics_server = await km.start_metrics_server(host, port, registry)
    service = HssService(handlers, committer, hss["max_pending"], metrics, cache, prefetch)
    node = LocalNode(dia["origin_host"], dia["origin_realm"], product_name="kmed-hss")
    if metrics is not None:  # CER, DWR, DPR received and their answers (docs/metrics.md)
        node.base_message_hook = km.base_message_counter(metrics, server=True)
    ssl_context = None
    if any(ep.transport == "tls" for ep in dia["listen"]):
        from kmed.diameter.transport import make_ssl_context

        ssl_context = make_ssl_context(server_side=True, cert=dia["tls_cert"], key=dia["tls_key"], ca=dia["tls_ca"])
    server = DiameterServer(node, dia["listen"], dia["allowed_peers"], service, watchdog=dia["watchdog_s"],
                            max_message_size=dia["max_message_size"], ssl_context=ssl_context)
    loop = asyncio.get_running_loop()
    if _log_stream:
        _log_stream[0].attach(loop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    warming: list[asyncio.Task[None]] = []
    serving = False  # READY=1 sent

    def rewarm() -> None:
        """After a clear (SIGHUP, another HSS's commits): warm the cache again while serving
        (the last warm-up stops); not once stopping."""
        for task in warming:
            task.cancel()
        if hss["cache_warm"] and not stop.is_set():
            warming[:] = [asyncio.ensure_future(warm_cache(cache, reader, cache.generation, freeze=True))]

    loop.add_signal_handler(signal.SIGHUP,
                            lambda: _reload(config_path, server, service, rewarm, serving))

    def another_writer() -> None:
        log.warning("hss_cache_cleared", reason="another HSS process committed to the store")
        rewarm()

    cache.follow_writers(instance, another_writer)
    committer.on_taken_over = cache.taken_over
    if hss["cache_warm"]:  # before READY=1; SIGTERM meanwhile stops it, SIGHUP starts it over
        starting = asyncio.ensure_future(warm_cache(cache, reader, cache.generation, starting=True))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait((starting, stopping), return_when=asyncio.FIRST_COMPLETED)
        starting.cancel()
        stopping.cancel()

    async def close_store() -> None:
        await committer.close()
        reader.close()
        if metrics_server is not None:
            metrics_server.close()

    if stop.is_set():  # SIGTERM before READY=1: nothing was served
        log.info("hss_stopping")
        await close_store()
        return status
    try:
        await server.start()
    except OSError as exc:
        log.error("hss_listen_failed", error=str(exc))
        await close_store()
        return 1
    # What start-up made (modules, tables, the schema's objects) lives as long as the process:
    # out of the collector's sight, so that its full collections, which the read cache's
    # churn triggers under load, walk only what came later (docs/hss.md, "Performance").
    gc.freeze()
    endpoints = [str(ep) for ep in server.bound_endpoints]
    log.info("hss_ready", listen=endpoints, store=str(db_path), pid=os.getpid())
    systemd.ready(f"listening on {', '.join(endpoints)}")
    serving = True
    watchdog = systemd.start_watchdog(stop)
    peer_timer: asyncio.TimerHandle | None = None
    if metrics is not None:
        seen: set[str] = set()

        def tick() -> None:
            nonlocal peer_timer
            update_peer_metrics(metrics, server.peers, seen)
            peer_timer = loop.call_later(1.0, tick)

        tick()
    await stop.wait()
    systemd.stopping()
    if peer_timer is not None:
        peer_timer.cancel()
    log.info("hss_stopping")
    t0 = time.monotonic()
    loop.remove_signal_handler(signal.SIGHUP)  # stop is set: rewarm() starts nothing now
    for task in warming:
        task.cancel()
    await server.stop(STOP_DEADLINE_S)
    await close_store()
    if watchdog is not None:
        watchdog.cancel()
    log.info("hss_stopped", drained_s=round(time.monotonic() - t0, 3), batches=committer.batches,
             committed=committer.requests, cache_hits=cache.hits, cache_misses=cache.misses,
             read_ahead=0 if prefetch is None else prefetch.reads)
    if _log_stream:
        _log_stream[0].attach(None)
    return status


async def warm_cache(cache: ReadCache, reader: SqliteStore, generation: int, freeze: bool = False,
                     starting: bool = False) -> None:
    """Fill ``cache`` from the store for its ``generation`` (kmed.hss.warm) and log how it
    went; an error leaves the cache to fill on demand. ``starting``: before READY=1, each page
    asks systemd for more time (a million subscribers take seconds; TimeoutStartSec).
    ``freeze``: then move what is loaded out of the collector's sight, as start-up does (the
    start-up's own freeze comes later, in :func:`serve`); cyclic garbage of that moment is
    frozen with it, a small loss once per reload."""
    log = klog.get("hss")
    t0 = time.monotonic()
    last = [t0]

    def on_page() -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0:
            last[0] = now
            systemd.extend_timeout(10.0, f"warming the read cache: {len(cache):,} subscribers")

    try:
        read, kept, finished = await warm(cache, reader.subscribers_after, generation=generation,
                                          on_page=on_page if starting else None)
    except Exception as exc:  # the store, or anything else: requests read the store on demand
        log.error("hss_cache_warm_failed", error=f"{type(exc).__name__}: {exc}", cached=len(cache))
        return
    if freeze and finished:
        gc.freeze()
    log.info("hss_cache_warmed", loaded=kept, read=read, cached=len(cache), capacity=cache.capacity,
             seconds=round(time.monotonic() - t0, 3), overtaken=not finished)


def _reload(config_path: str, server: Any, service: HssService, rewarm: Callable[[], None],
            ready: bool = True) -> None:
    """SIGHUP: re-read the configuration; apply allowed_peers and the log settings, empty the
    read cache and warm it again. ``ready``: READY=1 was sent (not while still starting)."""
    if ready:
        systemd.reloading()
    try:
        conf = cfg.load(config_path, cfg.HSS_SCHEMA)
    except cfg.ConfigError as exc:
        service.log.error("hss_reload_failed", error=str(exc))
    else:
        try:
            _setup_logging(conf)
        except OSError as exc:
            service.log.error("hss_reload_failed", error=f"log.file: {exc.strerror}")
        service.log = klog.get("hss").bind()
        server.reload_allowed_peers(conf["diameter"]["allowed_peers"])
        if service.cache is not None:
            service.cache.clear()  # store edits made by other means than kmed admin (docs/hss.md)
            rewarm()
        service.log.info("hss_reloaded", allowed_peers=conf["diameter"]["allowed_peers"])
    if ready:
        systemd.ready()


def main(config_path: str) -> int:
    """Entry point of ``kmed hss`` (exit statuses: kmed.entry)."""
    from kmed.entry import run_daemon

    try:
        # umask: the store, its -wal/-shm, the token key and the log file are the owner's only
        return run_daemon("hss", config_path, cfg.HSS_SCHEMA, _setup_logging, serve, umask=0o077,
                          fatal=(StoreError, OSError))
    finally:
        if _log_stream:
            _log_stream[0].attach(None)

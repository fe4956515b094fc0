"""Prometheus metrics: a small registry, the text exposition format 0.0.4, an asyncio endpoint.

Hand-written to keep the hot path cheap and add no dependency: resolve a label set once
(``child = counter.labels("AIR", "mme.localdomain")``), then ``child.inc()`` is a plain
attribute increment. Exposition follows the Prometheus text format 0.0.4 (``# HELP``,
``# TYPE``, label values escaped; histograms as cumulative ``_bucket{le=...}``, ``_sum``,
``_count``). The metric set the daemons expose is defined in docs/metrics.md and created by
:func:`hss_metrics` and :func:`cnn_metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kmed import __version__
from kmed.config import Endpoint

__all__ = [
    "CONTENT_TYPE",
    "LATENCY_BUCKETS",
    "CnnMetrics",
    "Counter",
    "Gauge",
    "Histogram",
    "HssMetrics",
    "Registry",
    "cnn_metrics",
    "hss_metrics",
    "start_metrics_server",
]

#: Content type of the text exposition format 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Histogram buckets in seconds for procedure latencies of a lab core (0.5 ms to 10 s).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(v: float) -> str:
    """A sample value as the text format writes it (``+Inf``, ``-Inf``, ``NaN``)."""
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _label_text(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


# --- children: the objects the hot path touches --------------------------------------------


class CounterChild:
    """One labelled series of a counter."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0

    def inc(self, amount: float = 1) -> None:
        """Add ``amount`` (which must not be negative)."""
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


class GaugeChild:
    """One labelled series of a gauge; optionally read from a callback at scrape time."""

    __slots__ = ("function", "value")

    def __init__(self) -> None:
        self.value: float = 0
        self.function: Callable[[], float] | None = None

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    def set_function(self, function: Callable[[], float]) -> None:
        """Read the value from ``function()`` at each scrape (e.g. ``lambda: len(contexts)``)."""
        self.function = function

    def get(self) -> float:
        return self.function() if self.function is not None else self.value


class HistogramChild:
    """One labelled series of a histogram: per-bucket counts, sum and count."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # last slot: above the largest bound (+Inf)
        self.sum: float = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Record one observation (``le`` buckets are inclusive upper bounds)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1


C = TypeVar("C", CounterChild, GaugeChild, HistogramChild)


class _Metric(Generic[C]):
    """A metric family: a name, a help text, label names, and one child per label set."""

    type_name = ""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        if not _NAME_RE.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labelnames:
            if not _LABEL_RE.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} for {name}")
        if len(set(labelnames)) != len(labelnames):
            raise ValueError(f"duplicate label names for {name}")
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], C] = {}
        self._unlabelled: C | None = None if labelnames else self._new_child()
        if self._unlabelled is not None:
            self._children[()] = self._unlabelled

    def _new_child(self) -> C:
        raise NotImplementedError

    def labels(self, *values: object, **by_name: object) -> C:
        """The child for these label values (positional, or by name); created on first use.

        Resolve once and keep the child on hot paths. Values are converted with ``str``.
        """
        if not by_name:
            # Fast path: string values of a label set seen before (keys are tuples of str,
            # so values of other types never match here and take the path below).
            found = self._children.get(values)  # type: ignore[arg-type]
            if found is not None:
                return found
        else:
            if values:
                raise ValueError("give label values by position or by name, not both")
            if set(by_name) != set(self.labelnames):
                raise ValueError(f"{self.name} takes labels {', '.join(self.labelnames)}")
            values = tuple(by_name[n] for n in self.labelnames)
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {', '.join(self.labelnames) or '(none)'}")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._new_child()
        return child

    def _only(self) -> C:
        if self._unlabelled is None:
            raise ValueError(f"{self.name} has labels: use .labels(...) first")
        return self._unlabelled

    def children(self) -> Iterator[tuple[tuple[str, ...], C]]:
        return iter(list(self._children.items()))

    def samples(self) -> Iterator[str]:
        raise NotImplementedError

    def expose(self) -> str:
        head = f"# HELP {self.name} {_escape_help(self.documentation)}\n# TYPE {self.name} {self.type_name}\n"
        return head + "".join(line + "\n" for line in self.samples())


class Counter(_Metric[CounterChild]):
    """A monotonically increasing count (name it ``..._total``)."""

    type_name = "counter"

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def inc(self, amount: float = 1) -> None:
        self._only().inc(amount)

    def samples(self) -> Iterator[str]:
        for key, child in self.children():
            yield f"{self.name}{_label_text(self.labelnames, key)} {format_value(child.value)}"


class Gauge(_Metric[GaugeChild]):
    """A value that goes up and down."""

    type_name = "gauge"

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def set(self, value: float) -> None:
        self._only().set(value)

    def inc(self, amount: float = 1) -> None:
        self._only().inc(amount)

    def dec(self, amount: float = 1) -> None:
        self._only().dec(amount)

    def set_function(self, function: Callable[[], float]) -> None:
        self._only().set_function(function)

    def set_state(self, state: str, states: Iterable[str], **labels: object) -> None:
        """State-set idiom: the series with label ``state=state`` is 1, the other ``states`` 0.

        The gauge must have a ``state`` label; ``labels`` give the others (e.g. ``peer=``).
        """
        if "state" not in self.labelnames:
            raise ValueError(f"{self.name} has no 'state' label")
        for s in states:
            self.labels(**labels, state=s).set(1 if s == state else 0)
        self.labels(**labels, state=state).set(1)

    def samples(self) -> Iterator[str]:
        for key, child in self.children():
            yield f"{self.name}{_label_text(self.labelnames, key)} {format_value(child.get())}"


class Histogram(_Metric[HistogramChild]):
    """Observations counted in fixed buckets (cumulative in the exposition)."""

    type_name = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        if "le" in labelnames:
            raise ValueError("'le' is reserved for histogram buckets")
        bounds = tuple(float(b) for b in buckets if not math.isinf(b))
        if not bounds or any(a >= b for a, b in itertools.pairwise(bounds)):
            raise ValueError("histogram buckets must be increasing and not empty")
        self.bounds = bounds
        super().__init__(name, documentation, labelnames)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def observe(self, value: float) -> None:
        self._only().observe(value)

    def samples(self) -> Iterator[str]:
        les = [format_value(b) for b in self.bounds] + ["+Inf"]
        for key, child in self.children():
            counts = list(child.counts)
            cumulative = 0
            for le, n in zip(les, counts, strict=True):
                cumulative += n
                labels = _label_text(self.labelnames, key, f'le="{le}"')
                yield f"{self.name}_bucket{labels} {cumulative}"
            plain = _label_text(self.labelnames, key)
            yield f"{self.name}_sum{plain} {format_value(child.sum)}"
            yield f"{self.name}_count{plain} {cumulative}"


AnyMetric = Counter | Gauge | Histogram


class Registry:
    """The metric families one daemon exposes, in registration order.

    Every name must start with ``prefix`` (``kmed_``) and be unique.
    """

    def __init__(self, prefix: str = "kmed_") -> None:
        self.prefix = prefix
        self._metrics: dict[str, AnyMetric] = {}

    def register(self, metric: AnyMetric) -> AnyMetric:
        if not metric.name.startswith(self.prefix):
            raise ValueError(f"metric name {metric.name!r} must start with {self.prefix!r}")
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name!r} is already registered")
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
        metric = Counter(name, documentation, labelnames)
        self.register(metric)
        return metric

    def gauge(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Gauge:
        metric = Gauge(name, documentation, labelnames)
        self.register(metric)
        return metric

    def histogram(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        metric = Histogram(name, documentation, labelnames, buckets)
        self.register(metric)
        return metric

    def get(self, name: str) -> AnyMetric:
        return self._metrics[name]

    def __iter__(self) -> Iterator[AnyMetric]:
        return iter(list(self._metrics.values()))

    def expose(self) -> bytes:
        """The whole registry in the text exposition format 0.0.4."""
        return "".join(m.expose() for m in self).encode("utf-8")


# --- the daemons' metric sets (docs/metrics.md) --------------------------------------------

#: Diameter peer states for ``kmed_diameter_peer_state`` (RFC 6733 §5.6 collapsed, with the
#: RFC 3539 watchdog's suspect state).
PEER_STATES: tuple[str, ...] = ("closed", "connecting", "open", "suspect", "closing")


@dataclass
class _DaemonMetrics:
    registry: Registry
    build_info: Gauge
    diameter_requests: Counter
    diameter_answers: Counter
    diameter_peer_state: Gauge
    procedures: Counter
    procedure_duration: Histogram
    kme_events: Counter

    def set_peer_state(self, peer: str, state: str) -> None:
        """Mark ``peer`` as being in ``state`` (one of :data:`PEER_STATES`)."""
        self.diameter_peer_state.set_state(state, PEER_STATES, peer=peer)


@dataclass
class HssMetrics(_DaemonMetrics):
    """The HSS's metrics (docs/metrics.md)."""


@dataclass
class CnnMetrics(_DaemonMetrics):
    """The CNN's metrics (docs/metrics.md)."""

    ue_contexts: Gauge
    nas_integrity_failures: Counter


D = TypeVar("D", HssMetrics, CnnMetrics)


def _create(cls: type[D], registry: Registry, daemon: str, extra: Callable[[], dict[str, Any]] | None = None) -> D:
    """The common metric set, then the daemon's own ones (so exposition lists them last)."""
    build_info = registry.gauge("kmed_build_info", "kmed version and daemon; always 1", ["version", "daemon"])
    build_info.labels(__version__, daemon).set(1)
    return cls(
        registry=registry,
        build_info=build_info,
        diameter_requests=registry.counter(
            "kmed_diameter_requests_total",
            "Diameter requests received or sent, by command (AIR, ULR, CER, DWR, DPR) and peer",
            ["command", "peer"],
        ),
        diameter_answers=registry.counter(
            "kmed_diameter_answers_total",
            "Diameter answers by command and result code (Result-Code or Experimental-Result-Code)",
            ["command", "result_code"],
        ),
        diameter_peer_state=registry.gauge(
            "kmed_diameter_peer_state",
            "1 for the current state of each Diameter peer, 0 for the others",
            ["peer", "state"],
        ),
        procedures=registry.counter(
            "kmed_procedures_total", "Procedures by name and outcome", ["procedure", "outcome"]
        ),
        procedure_duration=registry.histogram(
            "kmed_procedure_duration_seconds",
            "Duration of procedures, from the first message to the outcome",
            ["procedure"],
        ),
        kme_events=registry.counter(
            "kmed_kme_events_total", "KME life-cycle events: issued, stored, refused", ["event"]
        ),
        **(extra() if extra is not None else {}),
    )


def result_label(result: tuple[int, int] | None) -> str:
    """The ``result_code`` label of ``kmed_diameter_answers_total`` for ``Message.result()``:
    the Result-Code (``2001``), ``vendor:code`` for an Experimental-Result (``10415:5001``: the
    code alone is ambiguous across vendors), or ``none``."""
    if result is None:
        return "none"
    vendor, code = result
    return str(code) if vendor == 0 else f"{vendor}:{code}"


#: Base-protocol answers (RFC 6733 §5) and the requests they are counted under.
_BASE_REQUEST_OF = {"CEA": "CER", "DWA": "DWR", "DPA": "DPR"}


def base_message_counter(metrics: Any, *, server: bool) -> Callable[[Any], None]:
    """A ``kmed.diameter.node.LocalNode`` base-message hook that counts CER/DWR/DPR and their
    answers in ``kmed_diameter_requests_total`` / ``kmed_diameter_answers_total`` (answers under
    the request's name). As for S6a, the HSS (``server``) counts the requests it receives and
    the answers it sends, the CNN the requests it sends and the answers it receives."""

    def hook(ev: Any) -> None:
        request = _BASE_REQUEST_OF.get(ev.message)
        if request is None:
            if ev.sent != server:
                peer = ev.peer or (str(Endpoint(ev.transport, *ev.address)) if ev.address else "none")
                metrics.diameter_requests.labels(ev.message, peer).inc()
        elif ev.sent == server:
            code = result_label(None if ev.result_code is None else (0, ev.result_code))
            metrics.diameter_answers.labels(request, code).inc()

    return hook


def hss_metrics(registry: Registry) -> HssMetrics:
    """Create the HSS's metric set in ``registry``."""
    return _create(HssMetrics, registry, "hss")


def cnn_metrics(registry: Registry) -> CnnMetrics:
    """Create the CNN's metric set in ``registry``."""
    return _create(
        CnnMetrics,
        registry,
        "cnn",
        lambda: {
            "ue_contexts": registry.gauge("kmed_ue_contexts", "UE contexts held by the CNN"),
            "nas_integrity_failures": registry.counter(
                "kmed_nas_integrity_failures_total",
                "NAS messages discarded because their MAC or COUNT check failed (TS 24.301 4.4.4)",
            ),
        },
    )


# --- the HTTP endpoint ---------------------------------------------------------------------

MAX_REQUEST_HEAD = 8192
REQUEST_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 32
_TEXT = "text/plain; charset=utf-8"

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def _response(code: int, body: bytes, content_type: str, head_only: bool = False) -> bytes:
    headers = (
        f"HTTP/1.1 {code} {_REASONS[code]}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    return headers if head_only else headers + body


def handle_request(head: bytes, registry: Registry) -> bytes:
    """The whole HTTP response to one request head (sans-I/O: bytes in, bytes out)."""
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return _response(400, b"bad request\n", _TEXT)
    method, target = parts[0], parts[1]
    path = target.split(b"?", 1)[0]
    if path != b"/metrics":
        return _response(404, b"not found; try /metrics\n", _TEXT)
    if method not in (b"GET", b"HEAD"):
        return _response(405, b"method not allowed\n", _TEXT)
    return _response(200, registry.expose(), CONTENT_TYPE, head_only=method == b"HEAD")


DISCARD_MAX = 64 * 1024
DISCARD_TIMEOUT_S = 1.0


class _MetricsHandler:
    """One connection: read a bounded request head, answer, close."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.active = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.active += 1
        try:
            if self.active > MAX_CONNECTIONS:
                response, unread = _response(503, b"busy\n", _TEXT), True
            else:
                response, unread = await self._answer(reader)
            writer.write(response)
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT_S)
            if unread:
                await self._discard(reader, writer)
        except (OSError, TimeoutError):
            pass
        finally:
            self.active -= 1
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), REQUEST_TIMEOUT_S)

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[bytes, bool]:
        """The response, and whether the client may still be sending a request we refused."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
        except asyncio.LimitOverrunError:
            return _response(431, b"request too large\n", _TEXT), True
        except asyncio.IncompleteReadError:
            return _response(400, b"bad request\n", _TEXT), False
        except TimeoutError:
            return _response(408, b"request timeout\n", _TEXT), True
        return handle_request(head, self.registry), False

    @staticmethod
    async def _discard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Half-close, then swallow what the client still sends (bounded in size and time).

        Closing a socket with unread input makes the kernel send a reset, which can destroy
        the error response before the client reads it (RFC 7230 6.6 lingering close).
        """
        if writer.can_write_eof():
            writer.write_eof()
        received = 0
        async with asyncio.timeout(DISCARD_TIMEOUT_S):
            while received < DISCARD_MAX:
                chunk = await reader.read(MAX_REQUEST_HEAD)
                if not chunk:
                    break
                received += len(chunk)


async def start_metrics_server(host: str, port: int, registry: Registry) -> asyncio.Server:
    """Serve ``GET /metrics`` on ``host:port`` (config key ``[metrics] listen``).

    One request per connection; request heads over 8 KiB get 431, other paths 404, other
    methods 405, slow clients 408 after 5 s; at most 32 connections at once (then 503).
    The exposition is built on the loop in one synchronous pass (microseconds per series;
    no I/O). Close with ``server.close()``.
    """
    return await asyncio.start_server(_MetricsHandler(registry), host, port, limit=MAX_REQUEST_HEAD, reuse_address=True)

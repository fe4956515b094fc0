"""kmed.metrics: the registry, the text exposition format 0.0.4 parsed back, the metric sets."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed import __version__, metrics

ROOT = Path(__file__).resolve().parent.parent

# --- a small, strict parser of the text format 0.0.4 ---------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
HELP_RE = re.compile(rf"^# HELP (?P<name>{NAME}) (?P<doc>(?:[^\\]|\\[\\n])*)$")
TYPE_RE = re.compile(rf"^# TYPE (?P<name>{NAME}) (?P<type>counter|gauge|histogram|summary|untyped)$")
SAMPLE_RE = re.compile(rf"^(?P<name>{NAME})(?:\{{(?P<labels>.*)\}})? (?P<value>\S+)$")
LABEL_RE = re.compile(r'(?P<k>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<v>(?:[^"\\\n]|\\[\\"n])*)"(?P<sep>,|$)')
UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def unescape(text: str) -> str:
    return re.sub(r'\\[\\"n]', lambda m: UNESCAPE[m.group(0)], text)


def parse_labels(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        assert m, f"bad label set at {text[pos:]!r}"
        assert m.group("k") not in out, "duplicate label"
        out[m.group("k")] = unescape(m.group("v"))
        pos = m.end()
    return out


@dataclass
class Family:
    name: str
    doc: str = ""
    type: str = ""
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


def parse(body: bytes) -> dict[str, Family]:
    """Parse an exposition; assert the rules a Prometheus server relies on."""
    text = body.decode("utf-8")
    assert text == "" or text.endswith("\n")
    families: dict[str, Family] = {}
    current: Family | None = None
    for line in text.split("\n")[:-1]:  # the format's only line break is \n
        if m := HELP_RE.match(line):
            assert m.group("name") not in families, "HELP twice"
            current = families[m.group("name")] = Family(m.group("name"), unescape(m.group("doc")))
        elif m := TYPE_RE.match(line):
            assert current is not None and current.name == m.group("name") and not current.type
            current.type = m.group("type")
        elif m := SAMPLE_RE.match(line):
            assert current is not None and current.type, "sample before its TYPE"
            name = m.group("name")
            suffixes = ("_bucket", "_sum", "_count") if current.type == "histogram" else ("",)
            assert any(name == current.name + s for s in suffixes), f"{name} outside its family"
            current.samples.append((name, parse_labels(m.group("labels") or ""), float(m.group("value"))))
        else:
            raise AssertionError(f"unparseable line {line!r}")
    return families


def value(fam: Family, name: str | None = None, **labels: str) -> float:
    hits = [v for n, ls, v in fam.samples if n == (name or fam.name) and ls == labels]
    assert len(hits) == 1, (name, labels, fam.samples)
    return hits[0]


# --- registry and exposition ---------------------------------------------------------------


def test_counter_gauge_round_trip() -> None:
    reg = metrics.Registry()
    c = reg.counter("kmed_things_total", "Things", ["kind"])
    g = reg.gauge("kmed_level", "A level")
    a, b = c.labels("a"), c.labels(kind="b")
    for _ in range(7):
        a.inc()
    b.inc(2.5)
    assert c.labels("a") is a
    g.set(10)
    g.dec(3)
    g.inc(0.5)
    fams = parse(reg.expose())
    assert list(fams) == ["kmed_things_total", "kmed_level"]
    assert fams["kmed_things_total"].type == "counter" and fams["kmed_things_total"].doc == "Things"
    assert value(fams["kmed_things_total"], kind="a") == 7
    assert value(fams["kmed_things_total"], kind="b") == 2.5
    assert value(fams["kmed_level"]) == 7.5


def test_gauge_function_read_at_scrape() -> None:
    reg = metrics.Registry()
    g = reg.gauge("kmed_ue_contexts", "UE contexts")
    held = {1, 2}
    g.set_function(lambda: len(held))
    assert value(parse(reg.expose())["kmed_ue_contexts"]) == 2
    held.add(3)
    assert value(parse(reg.expose())["kmed_ue_contexts"]) == 3


def test_unlabelled_counter_exposed_at_zero() -> None:
    reg = metrics.Registry()
    reg.counter("kmed_x_total", "x")
    assert value(parse(reg.expose())["kmed_x_total"]) == 0


@settings(max_examples=60, deadline=None)
@given(label=st.text(max_size=40), doc=st.text(max_size=40))
def test_escaping_round_trips(label: str, doc: str) -> None:
    reg = metrics.Registry()
    c = reg.counter("kmed_escaped_total", doc, ["peer"])
    c.labels(label).inc(3)
    fam = parse(reg.expose())["kmed_escaped_total"]
    assert fam.doc == doc
    assert value(fam, peer=label) == 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=20.0), max_size=50))
def test_histogram_cumulative_buckets(observations: list[float]) -> None:
    reg = metrics.Registry()
    h = reg.histogram("kmed_procedure_duration_seconds", "d", ["procedure"])
    child = h.labels("attach")
    for x in observations:
        child.observe(x)
    fam = parse(reg.expose())["kmed_procedure_duration_seconds"]
    assert fam.type == "histogram"
    buckets = [(ls["le"], v) for n, ls, v in fam.samples if n.endswith("_bucket")]
    assert [le for le, _ in buckets][-1] == "+Inf"
    for le, count in buckets:
        assert count == sum(1 for x in observations if x <= float(le)), le
    assert value(fam, "kmed_procedure_duration_seconds_count", procedure="attach") == len(observations)
    total = value(fam, "kmed_procedure_duration_seconds_sum", procedure="attach")
    assert math.isclose(total, sum(observations), rel_tol=1e-9, abs_tol=1e-9)


def test_histogram_bound_is_inclusive() -> None:
    reg = metrics.Registry()
    h = reg.histogram("kmed_h_seconds", "h", buckets=[0.001, 0.01])
    h.observe(0.001)
    fam = parse(reg.expose())["kmed_h_seconds"]
    assert value(fam, "kmed_h_seconds_bucket", le="0.001") == 1
    assert value(fam, "kmed_h_seconds_bucket", le="0.01") == 1


def test_latency_buckets_increase_and_cover_ms_to_seconds() -> None:
    b = metrics.LATENCY_BUCKETS
    assert list(b) == sorted(set(b))
    assert b[0] <= 0.001 and b[-1] >= 5.0


@pytest.mark.parametrize(
    ("v", "text"),
    [(0, "0"), (3, "3"), (2.0, "2"), (0.25, "0.25"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN")],
)
def test_format_value(v: float, text: str) -> None:
    assert metrics.format_value(v) == text


def test_state_set() -> None:
    reg = metrics.Registry()
    m = metrics.hss_metrics(reg)
    m.set_peer_state("mme.localdomain", "connecting")
    m.set_peer_state("mme.localdomain", "open")
    fam = parse(reg.expose())["kmed_diameter_peer_state"]
    states = {ls["state"]: v for _, ls, v in fam.samples if ls["peer"] == "mme.localdomain"}
    assert set(states) == set(metrics.PEER_STATES)
    assert [s for s, v in states.items() if v == 1] == ["open"]
    assert sum(states.values()) == 1


def test_misuse_is_refused() -> None:
    reg = metrics.Registry()
    c = reg.counter("kmed_c_total", "c", ["a"])
    with pytest.raises(ValueError):
        reg.counter("kmed_c_total", "again")
    with pytest.raises(ValueError):
        reg.counter("other_total", "no prefix")
    with pytest.raises(ValueError):
        reg.counter("kmed_bad-name", "bad")
    with pytest.raises(ValueError):
        reg.counter("kmed_l_total", "bad label", ["__reserved"])
    with pytest.raises(ValueError):
        reg.counter("kmed_d_total", "dup", ["a", "a"])
    with pytest.raises(ValueError):
        reg.histogram("kmed_h", "le", ["le"])
    with pytest.raises(ValueError):
        reg.histogram("kmed_h2", "order", buckets=[1.0, 0.5])
    with pytest.raises(ValueError):
        c.labels("x", "y")
    with pytest.raises(ValueError):
        c.labels(b="x")
    with pytest.raises(ValueError):
        c.inc()  # labelled: must resolve labels first
    with pytest.raises(ValueError):
        c.labels("x").inc(-1)


def test_label_values_converted_to_str() -> None:
    reg = metrics.Registry()
    c = reg.counter("kmed_answers_total", "a", ["result_code"])
    c.labels(2001).inc()
    c.labels("2001").inc()
    assert value(parse(reg.expose())["kmed_answers_total"], result_code="2001") == 2


# --- the daemons' metric sets match docs/metrics.md ----------------------------------------

DOC_ROW = re.compile(r"^\| `(?P<name>kmed_\w+)` \| (?P<type>\w+) \|(?P<labels>[^|]*)\|(?P<daemons>[^|]*)\|")


def documented() -> dict[str, tuple[str, list[str], set[str]]]:
    rows = {}
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        if m := DOC_ROW.match(line):
            labels = re.findall(r"`(\w+)`", m.group("labels"))
            daemons = {d.strip().lower() for d in m.group("daemons").split(",")}
            rows[m.group("name")] = (m.group("type"), labels, daemons)
    return rows


@pytest.mark.parametrize("daemon", ["hss", "cnn"])
def test_metric_sets_match_the_documentation(daemon: str) -> None:
    doc = documented()
    assert doc, "no metric table found in docs/metrics.md"
    reg = metrics.Registry()
    (metrics.hss_metrics if daemon == "hss" else metrics.cnn_metrics)(reg)
    exposed = {m.name: (m.type_name, list(m.labelnames)) for m in reg}
    expected = {name: (t, labels) for name, (t, labels, daemons) in doc.items() if daemon in daemons}
    assert exposed == expected
    fams = parse(reg.expose())
    assert value(fams["kmed_build_info"], version=__version__, daemon=daemon) == 1


def test_required_metric_names_are_documented() -> None:
    """Issue 7's list: these names are what dashboards will query."""
    doc = documented()
    for name in (
        "kmed_diameter_requests_total",
        "kmed_diameter_answers_total",
        "kmed_diameter_peer_state",
        "kmed_procedures_total",
        "kmed_procedure_duration_seconds",
        "kmed_ue_contexts",
        "kmed_kme_events_total",
        "kmed_nas_integrity_failures_total",
    ):
        assert name in doc


def test_result_label_names_the_code_and_the_vendor_of_an_experimental_result() -> None:
    from kmed.metrics import result_label

    assert result_label((0, 2001)) == "2001"
    assert result_label((10415, 5001)) == "10415:5001"  # 5001 means another thing without a vendor
    assert result_label(None) == "none"


@pytest.mark.parametrize(("transport", "address", "label"), [
    ("tcp", ("127.0.0.1", 3868), "tcp://127.0.0.1:3868"),
    ("tcp", ("::1", 3868), "tcp://[::1]:3868"),
    ("sctp", ("10.0.0.1", 3868), "sctp://10.0.0.1:3868"),
    ("tls", ("fe80::1", 5658), "tls://[fe80::1]:5658"),
])
def test_base_message_counter_names_an_unnamed_peer_by_its_endpoint(transport: str, address: tuple[str, int],
                                                                     label: str) -> None:
    """A CER sent before the peer's name is known is counted under the connection's endpoint,
    written as in the configuration (its transport; IPv6 in brackets)."""
    from kmed.diameter.node import BaseMessageEvent

    reg = metrics.Registry()
    m = metrics.cnn_metrics(reg)
    hook = metrics.base_message_counter(m, server=False)
    hook(BaseMessageEvent("CER", True, None, address, None, transport))
    hook(BaseMessageEvent("CER", True, "hss.localdomain", address, None, transport))
    text = reg.expose().decode()
    assert f'kmed_diameter_requests_total{{command="CER",peer="{label}"}} 1' in text
    assert 'kmed_diameter_requests_total{command="CER",peer="hss.localdomain"} 1' in text

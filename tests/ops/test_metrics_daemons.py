"""Each daemon's Prometheus endpoint (``[metrics] listen``) with real HSS and CNN processes:
after a provisioning attach, two KME-match attaches and two refusals (an unknown IMSI, a pair
not allowed), the counters say exactly that -- Diameter requests and answers by command and
result code, procedure outcomes, latency histograms, peer states, UE contexts, KME events --
and every name starts with ``kmed_`` (docs/metrics.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from kmed.lab import Lab, free_port, running_lab
from tests.ops.procs import WAIT_S, provision_one, scrape

pytestmark = pytest.mark.timeout(180)

HOST = "127.0.0.1"
BAD_IMEI = "356938035643825"  # a device whose pair with the IMSI is not allowed
#: id(lab) -> (HSS metrics port, CNN metrics port)
PORTS: dict[int, tuple[int, int]] = {}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("metrics")
    hss_port, cnn_port = free_port(), free_port()
    with running_lab(root, extra_hss=f'[metrics]\nlisten = "{HOST}:{hss_port}"\n',
                     extra_cnn=f'[metrics]\nlisten = "{HOST}:{cnn_port}"\n') as lab:
        PORTS[id(lab)] = (hss_port, cnn_port)
        ue = provision_one(lab)
        results = [lab.attach(ue) for _ in range(3)]
        assert [(r["result"], r["kme_provisioned"]) for r in results] == [
            ("accepted", True), ("accepted", False), ("accepted", False)]
        # a pair not allowed: the HSS refuses the KME request (step 4)
        priv, pub = lab.gen_device_key("me-c")
        lab.admin("device", "add", "--imei", BAD_IMEI, "--public-key", str(pub))
        other = lab.ue_config("me-c", imsi="001010000000001", imei=BAD_IMEI, private_key=priv)
        assert (lab.attach(other)["emm_cause"]) == 6
        # an unknown IMSI (no KME held by that ME: fresh state dir)
        stranger = lab.ue_config("me-d", imsi="001010000009999", imei="356938035643809", private_key=priv)
        assert lab.attach(stranger)["result"] == "rejected"
        yield lab


def hss(lab: Lab) -> dict[str, float]:
    return scrape(HOST, PORTS[id(lab)][0])


def cnn(lab: Lab) -> dict[str, float]:
    return scrape(HOST, PORTS[id(lab)][1])


def eventually(read: Callable[[], dict[str, float]], series: str, value: float) -> dict[str, float]:
    """Scrape until ``series`` has ``value`` (peer states are sampled once a second)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        got = read()
        if got.get(series) == value or time.monotonic() > deadline:
            assert got.get(series) == value, (series, got.get(series))
            return got
        time.sleep(0.1)


def test_every_name_starts_with_kmed(lab: Lab) -> None:
    for read in (hss, cnn):
        names = {s.split("{")[0] for s in read(lab)}
        assert names and all(n.startswith("kmed_") for n in names), names


def test_hss_counts_requests_answers_procedures_kme_events(lab: Lab) -> None:
    m = hss(lab)
    # AIRs: provisioning attach 2 (step 2, step 4), matches 1 each, pair not allowed 2 (the
    # second is refused at step 4), unknown IMSI 1 -> 7. ULRs: the three accepted attaches.
    assert m['kmed_diameter_requests_total{command="AIR",peer="mme.localdomain"}'] == 7
    assert m['kmed_diameter_requests_total{command="ULR",peer="mme.localdomain"}'] == 3
    assert m['kmed_diameter_answers_total{command="AIR",result_code="2001"}'] == 5
    assert m['kmed_diameter_answers_total{command="AIR",result_code="32473:5902"}'] == 1
    assert m['kmed_diameter_answers_total{command="AIR",result_code="10415:5001"}'] == 1
    assert m['kmed_diameter_answers_total{command="ULR",result_code="2001"}'] == 3
    assert m['kmed_procedures_total{procedure="air",outcome="ok"}'] == 5
    assert m['kmed_procedures_total{procedure="air",outcome="rejected"}'] == 2
    assert m['kmed_procedures_total{procedure="ulr",outcome="ok"}'] == 3
    assert m['kmed_procedure_duration_seconds_count{procedure="air"}'] == 7
    assert m['kmed_procedure_duration_seconds_bucket{procedure="air",le="+Inf"}'] == 7
    assert m['kmed_procedure_duration_seconds_sum{procedure="air"}'] > 0
    assert m['kmed_kme_events_total{event="issued"}'] == 1
    assert m['kmed_kme_events_total{event="stored"}'] == 1
    assert m['kmed_kme_events_total{event="refused"}'] == 1
    assert m['kmed_build_info{version="' + _version() + '",daemon="hss"}'] == 1


def test_cnn_counts_procedures_contexts_kme_events(lab: Lab) -> None:
    m = cnn(lab)
    assert m['kmed_procedures_total{procedure="attach_provision",outcome="ok"}'] == 1
    assert m['kmed_procedures_total{procedure="attach",outcome="ok"}'] == 2
    # the CNN names a procedure by what it attempted: the pair not allowed was refused while
    # provisioning (step 4), the unknown IMSI at its first AIR
    assert m['kmed_procedures_total{procedure="attach_provision",outcome="rejected"}'] == 1
    assert m['kmed_procedures_total{procedure="attach",outcome="rejected"}'] == 1
    # every outcome is observed: 2 ok and 1 rejected attach; 1 ok and 1 rejected provisioning
    assert m['kmed_procedure_duration_seconds_count{procedure="attach"}'] == 3
    assert m['kmed_procedure_duration_seconds_count{procedure="attach_provision"}'] == 2
    assert m['kmed_diameter_requests_total{command="AIR",peer="hss.localdomain"}'] == 7
    assert m['kmed_diameter_requests_total{command="ULR",peer="hss.localdomain"}'] == 3
    assert m['kmed_diameter_answers_total{command="AIR",result_code="32473:5902"}'] == 1
    assert m['kmed_diameter_answers_total{command="AIR",result_code="10415:5001"}'] == 1
    assert m['kmed_kme_events_total{event="issued"}'] == 1
    assert m['kmed_kme_events_total{event="stored"}'] == 1
    assert m["kmed_ue_contexts"] == 1  # the registered UE
    assert m["kmed_nas_integrity_failures_total"] == 0
    buckets = [v for k, v in m.items() if k.startswith('kmed_procedure_duration_seconds_bucket{procedure="attach",')]
    assert len(buckets) > 5 and buckets == sorted(buckets) and buckets[-1] == 3  # cumulative, in exposition order


def test_capabilities_exchange_is_counted_on_both_sides(lab: Lab) -> None:
    """CER/CEA through the Diameter node's base-message hook (kmed.metrics.base_message_counter):
    the HSS counts the CER it received and the CEA it sent, the CNN the CER it sent (to the
    transport address: the HSS's name is known only from the CEA) and the CEA it received."""
    h, c = hss(lab), cnn(lab)
    # The lab is shared by the module and a daemon restarted by another test starts its
    # counters again: each side is checked against itself.
    received = h['kmed_diameter_requests_total{command="CER",peer="mme.localdomain"}']
    assert received >= 1
    assert h['kmed_diameter_answers_total{command="CER",result_code="2001"}'] == received
    sent = c[f'kmed_diameter_requests_total{{command="CER",peer="tcp://{HOST}:{lab.hss_port}"}}']
    assert sent >= 1
    assert c['kmed_diameter_answers_total{command="CER",result_code="2001"}'] == sent


def test_peer_states_follow_the_connection(lab: Lab) -> None:
    endpoint = f"tcp://{HOST}:{lab.hss_port}"
    eventually(lambda: hss(lab), 'kmed_diameter_peer_state{peer="mme.localdomain",state="open"}', 1)
    eventually(lambda: cnn(lab), f'kmed_diameter_peer_state{{peer="{endpoint}",state="open"}}', 1)
    # the CNN goes away (DPR): the HSS shows the peer closed; the HSS goes away: the CNN too
    assert lab.stop("cnn") == 0
    m = eventually(lambda: hss(lab), 'kmed_diameter_peer_state{peer="mme.localdomain",state="closed"}', 1)
    assert m['kmed_diameter_peer_state{peer="mme.localdomain",state="open"}'] == 0
    lab.start("cnn")
    eventually(lambda: hss(lab), 'kmed_diameter_peer_state{peer="mme.localdomain",state="open"}', 1)
    assert lab.stop("hss") == 0
    m = eventually(lambda: cnn(lab), f'kmed_diameter_peer_state{{peer="{endpoint}",state="open"}}', 0)
    assert m[f'kmed_diameter_peer_state{{peer="{endpoint}",state="closed"}}'] + \
        m[f'kmed_diameter_peer_state{{peer="{endpoint}",state="connecting"}}'] == 1


def _version() -> str:
    from kmed import __version__

    return __version__

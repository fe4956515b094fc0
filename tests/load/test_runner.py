"""Run settings and how the coordinator merges worker results into a report (no sockets)."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from typing import Any

import pytest

from kmed.config import parse_endpoint
from kmed.crypto import kdf
from kmed.load.generator import Generator, RunSettings
from kmed.load.population import PopulationSpec
from kmed.load.runner import Coordinator, watch_pipe
from kmed.load.stats import Histogram, Recorder

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
SEED = bytes.fromhex("00112233445566778899aabbccddeeff")
SPEC = PopulationSpec(100, "001010000100000", "35693803100000", K, K, SEED)


def settings(**kw: Any) -> RunSettings:
    base: dict[str, Any] = {"endpoints": (parse_endpoint("tcp://127.0.0.1:36412"),), "spec": SPEC,
                            "plmn_id": kdf.plmn_id("001", "01"), "ues": 100}
    return RunSettings(**{**base, **kw})


@pytest.mark.parametrize(("kw", "message"), [
    ({"ues": 101}, "--ues"), ({"ues": 0}, "--ues"), ({"workers": 3, "connections": 2}, "--connections"),
    ({"rate": None}, "either a rate"), ({"rate": 5.0, "closed_loop": 3}, "either a rate"),
    ({"rate": None, "closed_loop": 101}, "--closed-loop"), ({"rate": -1.0}, "--rate"),
    ({"duration_s": 0.0}, "--duration"),
    ({"scenario": "mix"}, "[mix]"), ({"scenario": "detach"}, "unknown scenario"),
])
def test_settings_refused(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        settings(**kw)


def test_settings_split_over_workers() -> None:
    s = settings(workers=3, connections=7, rate=90.0)
    assert [list(s.indices(w))[:3] for w in range(3)] == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    assert sum(len(s.indices(w)) for w in range(3)) == 100
    assert [s.links_of(w) for w in range(3)] == [3, 2, 2]
    assert sum(s.share(w, 90.0) for w in range(3)) == pytest.approx(90.0)
    c = settings(workers=3, rate=None, closed_loop=10)
    assert [c.concurrency_of(w) for w in range(3)] == [4, 3, 3]
    described = str(s.describe())
    assert K.hex() not in described and SEED.hex() not in described
    assert s.describe()["subscribers"]["imsi_first"] == "001010000100000"


def result(rec: Recorder, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"worker": 0, "ues": 50, "links": 2, "link_error": None, "recorder": rec.to_dict(),
                           "warmup": Recorder().to_dict(), "warmup_s": 0.0, "warmup_excluded": 0, "elapsed_s": 10.0,
                           "cpu_s": 1.0, "lag_us": Histogram.of([1000, 2000]).to_dict(), "held": 0,
                           "interrupted": False, "states": None}
    out.update(kw)
    return out


def test_merge_two_workers_ok() -> None:
    a, b = Recorder(), Recorder()
    a.success("attach", 0.5, 0.010)
    b.success("attach", 1.5, 0.020)
    b.success("tau", 2.5, 0.005)
    outcome = Coordinator(settings(workers=2), None, None).finish([result(a), result(b, worker=1, cpu_s=9.5)], None)
    r = outcome.report
    assert outcome.exit_status == 0 and r["status"] == "ok" and r["error"] is None
    assert r["procedures"]["attach"]["count"] == 2 and r["procedures"]["tau"]["ok"] == 1
    assert r["generator"]["utilization"] == [0.1, 0.95] and r["generator"]["saturated"] is True
    assert r["generator"]["links"] == 4 and r["warmup"] is None and r["hold"] is None


def test_failures_and_abort() -> None:
    rec = Recorder()
    rec.failure("attach", 1.0, "timeout", "timeout: no outcome")
    failed = Coordinator(settings(), None, None).finish([result(rec)], None)
    assert failed.exit_status == 1 and failed.report["status"] == "failed"
    aborted = Coordinator(settings(), None, None).finish([result(Recorder(), links=0)], "cannot reach the CNN: x")
    assert aborted.exit_status == 1 and aborted.report["status"] == "aborted"
    assert aborted.report["errors"] == {"transport": 1}
    assert aborted.report["error"] == "cannot reach the CNN: x"
    coord = Coordinator(settings(workers=2), None, None)
    coord.dead[1] = "exited without a result"
    died = coord.finish([result(Recorder())], None)
    assert died.report["errors"] == {"worker_failed": 1} and died.exit_status == 1


def test_warmup_exclusions_fail_the_run() -> None:
    warm = Recorder()
    warm.success("attach_provision", 0.1, 0.05)
    warm.failure("attach_provision", 0.2, "emm_cause_6_illegal_me", "rejected")
    outcome = Coordinator(settings(), None, None).finish(
        [result(Recorder(), warmup=warm.to_dict(), warmup_s=1.5, warmup_excluded=3)], None)
    w = outcome.report["warmup"]
    assert (w["ues"], w["ok"], w["failed"], w["not_run"], w["excluded_ues"]) == (4, 1, 1, 2, 3)
    assert w["errors"] == {"emm_cause_6_illegal_me": 1}
    assert outcome.report["status"] == "failed"


def test_hold_bytes_per_ue() -> None:
    coord = Coordinator(settings(hold=True, rate=None), None, 1)
    coord.rss_before, coord.rss_held = 1000, 1100
    rec = Recorder()
    for i in range(100):
        rec.success("attach", i * 0.01, 0.01)
    outcome = coord.finish([result(rec, held=100)], None)
    hold = outcome.report["hold"]
    assert hold["ues_attached"] == 100 and hold["cnn_bytes_per_held_ue"] == 1024.0
    assert outcome.report["status"] == "ok"
    short = Coordinator(settings(hold=True, rate=None), None, None).finish([result(rec, held=99)], None)
    assert short.report["status"] == "failed" and short.report["hold"]["cnn_bytes_per_held_ue"] is None


@pytest.mark.parametrize("loop_name", ["uvloop"])  # asyncio's add_reader leaves the fd blocking anyway
def test_watched_pipe_stays_blocking_for_large_sends(loop_name: str) -> None:
    """A worker's pipe is watched by the event loop and still sends a message far larger than
    the socket buffer (uvloop's add_reader makes the fd non-blocking: EAGAIN half-way)."""
    parent, child = multiprocessing.Pipe()
    big = b"s" * 4_000_000
    got: list[bytes] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        watch_pipe(loop, child, lambda: None)
        reader = threading.Thread(target=lambda: got.append(parent.recv_bytes()))
        reader.start()
        child.send_bytes(big)  # would raise BlockingIOError with a non-blocking fd
        loop.remove_reader(child.fileno())
        await asyncio.to_thread(reader.join, 30.0)

    factory = pytest.importorskip("uvloop").new_event_loop if loop_name == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
    assert got == [big]
    parent.close()
    child.close()


class _StubLink:
    def __init__(self) -> None:
        self.is_open = True


def test_a_start_following_an_end_takes_the_ending_link() -> None:
    """UE i's own link is (i // workers) mod links; a procedure started from another's end goes
    over that one's link (one write for the answer and the new request), unless it is down."""
    gen = Generator(settings(connections=4), 0)
    links = [_StubLink() for _ in range(4)]
    gen.links = links  # type: ignore[assignment]
    assert gen._link_for(5) is links[1]
    assert gen._link_for(5, links[3]) is links[3]  # type: ignore[arg-type]
    links[3].is_open = False
    assert gen._link_for(5, links[3]) is links[1]  # type: ignore[arg-type]
    links[1].is_open = False
    assert gen._link_for(5) is links[2]

"""``kmed bench overload``: each daemon's capacity, then three times it (docs/overload.md).

Two parts, each against real processes on loopback (:mod:`kmed.lab`, the CONTRACT command line):

- ``hss``: the HSS alone, driven by an open-loop S6a client in this process (AIRs at a fixed
  rate, whatever the answers do). A ramp of short steps finds the capacity (the highest rate
  answered 2001 at ≥ 99 % with p99 under ``--p99-ms``); then ``--factor`` × capacity for
  ``--overload-s``: the share of 3004 DIAMETER_TOO_BUSY, of other answers, of requests left
  unanswered (timeouts), the HSS's resident memory (sampled every 0.2 s from /proc); then
  half the capacity for ``--recovery-s``: the seconds until every second is ≥ 99 % 2001 again.
- ``lab``: HSS + CNN driven by ``kmed load`` (KME-match attaches). The ramp finds the lab's
  capacity; the CNN is restarted with its admission control sized for it (``cnn.max_procedures``
  = capacity × ``--admit-latency-s``); then two load runs at once on disjoint UE populations: a
  base run at half the capacity for overload + recovery, and a surge run at factor − ½ times the
  capacity for the overload window, so the offered load is factor × capacity and then drops to
  half. Reported: % of attaches rejected with EMM #22 (by the CNN's admission control, or
  because the HSS answered 3004), timeouts, RSS peaks of both daemons, and the base run's
  recovery (first second after the surge from which every second is ≥ 99 % successful).

Every figure depends on this machine (2 cores shared with other work when measured): read them
as what this lab did then, and rerun to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import re
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import Message
from kmed.lab import DEFAULT_K, DEFAULT_OPC, Lab, free_port, kmed_argv, running_lab
from kmed.load.labfile import load_toml, provision_range_args
from kmed.load.procinfo import rss_kib

IMSI_FIRST = "001010000700000"
IMEI_FIRST = "35693803700000"
SEED = "2f1e2d3c4b5a69788796a5b4c3d2e1f0"
PLMN = bytes.fromhex("00f110")
OK_SHARE = 0.99


# --- memory --------------------------------------------------------------------------------------


class RssSampler:
    """VmRSS of some processes every ``period`` s, in a thread, while the ``with`` block runs."""

    def __init__(self, pids: dict[str, int], period: float = 0.2) -> None:
        self.pids, self.period = pids, period
        self.samples: dict[str, list[tuple[float, int]]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                kib = rss_kib(pid)
                if kib is not None:
                    self.samples[name].append((time.monotonic() - t0, kib))
            self._stop.wait(self.period)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def summary(self, name: str, windows: dict[str, tuple[float, float]]) -> dict[str, Any]:
        """Peak and last RSS (MiB) within each named window (seconds since the start)."""
        out: dict[str, Any] = {}
        for label, (a, b) in windows.items():
            values = [kib for t, kib in self.samples[name] if a <= t < b]
            out[label] = {"peak_mib": round(max(values) / 1024, 1), "last_mib": round(values[-1] / 1024, 1)} \
                if values else None
        return out


# --- the open-loop S6a client (part "hss") --------------------------------------------------------


@dataclass
class Second:
    """What one second of a step did: requests sent, answers by result, latencies of 2001s."""

    sent: int = 0
    not_sent: int = 0  # refused by the client itself: ``max_outstanding`` requests unanswered
    answers: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)


class OpenLoopS6a(asyncio.Protocol):
    """AIRs at a fixed rate on one S6a connection, answered or not (open loop: the arrival
    rate never waits for the answers, so an overloaded HSS shows as errors and latency).

    Like a sane Diameter client (the CNN's ``cnn.max_s6a_pending``), it keeps at most
    ``max_outstanding`` requests unanswered; an arrival beyond that is not sent (counted in
    ``not_sent``), so the client's own write buffer does not become the queue being measured."""

    def __init__(self, imsis: list[str], max_outstanding: int = 10_000) -> None:
        self.max_outstanding = max_outstanding
        from kmed.bench.hss import Client  # the same AIR template as ``kmed bench hss``

        self.imsis = imsis
        self.template, self.imsi_at, self.sid_at = Client._template()
        self.buf = bytearray()
        self.sent: dict[int, tuple[float, int]] = {}  # hop-by-hop -> (send time, second index)
        self.seconds: list[Second] = []
        self.next_id = 0
        self.t0 = 0.0
        self.max_write_buffer = 0
        self.cea: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.transport: Any = None
        self.lost = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        cer = Message.request("CER", d.APP_COMMON, [
            ("Origin-Host", "mme.localdomain"), ("Origin-Realm", "localdomain"), ("Host-IP-Address", "127.0.0.1"),
            ("Vendor-Id", d.VENDOR_KMED), ("Product-Name", "kmed-bench-overload"),
            ("Vendor-Specific-Application-Id", [("Vendor-Id", d.VENDOR_3GPP), ("Auth-Application-Id", d.APP_S6A)]),
        ], hop_by_hop=0xFFFFFFFF, end_to_end=1)
        transport.write(codec.encode(cer))

    def send(self, n: int, second: int) -> None:
        room = max(0, self.max_outstanding - len(self.sent))
        self.seconds[second].not_sent += n - min(n, room)
        n = min(n, room)
        if not n:
            return
        out = bytearray()
        now = time.monotonic()
        t, ia, sa = self.template, self.imsi_at, self.sid_at
        for _ in range(n):
            i = self.next_id = (self.next_id + 1) & 0x7FFFFFFF
            t[ia:ia + 15] = random.choice(self.imsis).encode()
            t[sa:sa + 8] = b"%08x" % i
            t[12:16] = t[16:20] = i.to_bytes(4, "big")
            self.sent[i] = (now, second)
            out += t
        self.seconds[second].sent += n
        self.transport.write(bytes(out))
        self.max_write_buffer = max(self.max_write_buffer, self.transport.get_write_buffer_size())

    def data_received(self, data: bytes) -> None:
        self.buf += data
        now = time.monotonic()
        while (n := codec.frame_length(self.buf)) is not None and len(self.buf) >= n:
            msg = codec.decode(bytes(self.buf[:n]))
            del self.buf[:n]
            if not self.cea.done():
                self.cea.set_result(msg)
                continue
            sent = self.sent.pop(msg.hop_by_hop, None)
            if sent is None:
                continue
            res = msg.result()
            code = res[1] if res is not None else 0
            sec = self.seconds[sent[1]]
            sec.answers[code] = sec.answers.get(code, 0) + 1
            if code == d.DIAMETER_SUCCESS:
                sec.latencies.append(now - sent[0])

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    async def run(self, rate: float, seconds: int, tick: float = 0.005) -> list[Second]:
        """Send at ``rate`` per second for ``seconds``; then wait up to 5 s for late answers.
        Returns the seconds of this run (requests still unanswered count as timeouts)."""
        first = len(self.seconds)
        self.seconds += [Second() for _ in range(seconds)]
        start = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - start) < seconds and not self.lost:
            due = int(rate * elapsed) - sent
            if due > 0:
                self.send(due, first + min(seconds - 1, int(elapsed)))
                sent += due
            await asyncio.sleep(tick)
        end = time.monotonic() + 5.0
        while any(s >= first for _, s in self.sent.values()) and time.monotonic() < end:
            await asyncio.sleep(0.05)
        for i, (_, s) in list(self.sent.items()):
            if s >= first:
                del self.sent[i]  # timed out: counted from sent - answered
        return self.seconds[first:]


def _share(secs: list[Second], code: int) -> float:
    """Share of the arrivals (sent or not) answered with ``code``."""
    arrivals = sum(s.sent + s.not_sent for s in secs)
    return sum(s.answers.get(code, 0) for s in secs) / arrivals if arrivals else 0.0


def _not_sent(secs: list[Second]) -> int:
    return sum(s.not_sent for s in secs)


def _p99_ms(secs: list[Second]) -> float | None:
    lat = sorted(x for s in secs for x in s.latencies)
    return round(1000 * lat[min(len(lat) - 1, math.ceil(0.99 * len(lat)) - 1)], 1) if lat else None


def _timeouts(secs: list[Second]) -> int:
    return sum(s.sent - sum(s.answers.values()) for s in secs)


def _recovered_after(ok_per_second: list[tuple[int, int]]) -> int | None:
    """Seconds until every following second is ≥ 99 % ok; (ok, total) per second; None if never."""
    for i in range(len(ok_per_second)):
        if all(total == 0 or ok >= OK_SHARE * total for ok, total in ok_per_second[i:]):
            return i
    return None


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as rsp:
            return str(rsp.read().decode())
    except OSError:
        return ""


def answers_by_code(text: str) -> dict[str, float]:
    """``kmed_diameter_answers_total`` summed by result_code (docs/metrics.md)."""
    out: dict[str, float] = {}
    for m in re.finditer(r'^kmed_diameter_answers_total\{([^}]*)\} ([0-9.e+]+)$', text, re.MULTILINE):
        code = re.search(r'result_code="([^"]*)"', m.group(1))
        if code:
            out[code.group(1)] = out.get(code.group(1), 0.0) + float(m.group(2))
    return out


def part_hss(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    mport = free_port()
    extra = f"[hss]\nmax_pending = {args.hss_max_pending}\n[metrics]\nlisten = \"127.0.0.1:{mport}\"\n"
    with running_lab(root / "hss-part", services=("hss",), log_level="warning", extra_hss=extra) as lab:
        lab.admin(*provision_range_args(args.subscribers, IMSI_FIRST, IMEI_FIRST, DEFAULT_K, DEFAULT_OPC, SEED))
        imsis = [str(int(IMSI_FIRST) + i).zfill(15) for i in range(args.subscribers)]
        pid = lab.daemons["hss"].proc.pid
        return asyncio.run(_hss_phases(args, lab, imsis, pid, mport))


async def _hss_phases(args: argparse.Namespace, lab: Lab, imsis: list[str], pid: int, mport: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: OpenLoopS6a(imsis, args.max_outstanding), lab.host,
                                             lab.hss_port)
    cea = await asyncio.wait_for(client.cea, 10)
    if cea.result_code() != d.DIAMETER_SUCCESS:
        raise RuntimeError(f"CEA {cea.result_code()}")
    ramp: list[dict[str, Any]] = []
    capacity = 0.0
    print("HSS alone: open-loop AIRs (one vector each), ramp")
    for rate in args.hss_rates:
        secs = await client.run(rate, args.step_s)
        row = {"rate": rate, "ok_share": round(_share(secs, d.DIAMETER_SUCCESS), 4), "p99_ms": _p99_ms(secs),
               "too_busy_share": round(_share(secs, d.DIAMETER_TOO_BUSY), 4), "timeouts": _timeouts(secs),
               "not_sent": _not_sent(secs)}
        ramp.append(row)
        print(f"  {rate:7.0f}/s  2001 {100 * row['ok_share']:6.2f} %  3004 {100 * row['too_busy_share']:5.2f} %  "
              f"timeouts {row['timeouts']:5d}  not sent {row['not_sent']:5d}  p99 {row['p99_ms']} ms")
        if row["ok_share"] >= OK_SHARE and row["p99_ms"] is not None and row["p99_ms"] <= args.p99_ms \
                and not row["not_sent"]:
            capacity = rate
        else:
            break
    if not capacity:
        return {"ramp": ramp, "capacity_per_s": None}
    before = answers_by_code(_scrape(mport))
    over_rate, low_rate = args.factor * capacity, capacity / 2
    print(f"  capacity {capacity:.0f}/s; overload at {over_rate:.0f}/s for {args.overload_s} s, "
          f"then {low_rate:.0f}/s for {args.recovery_s} s")
    with RssSampler({"hss": pid}) as rss:
        t_over = time.monotonic()
        over = await client.run(over_rate, args.overload_s)
        t_low = time.monotonic()
        low = await client.run(low_rate, args.recovery_s)
        t_end = time.monotonic()
    after = answers_by_code(_scrape(mport))
    client.transport.close()
    windows = {"before": (0.0, 0.5), "overload": (0.0, t_low - t_over),
               "recovery": (t_low - t_over, t_end - t_over)}
    recovered = _recovered_after([(s.answers.get(d.DIAMETER_SUCCESS, 0), s.sent + s.not_sent) for s in low])
    sent = sum(s.sent + s.not_sent for s in over)
    result = {
        "capacity_per_s": capacity, "ramp": ramp, "overload_rate_per_s": over_rate, "overload_sent": sent,
        "overload_ok_share": round(_share(over, d.DIAMETER_SUCCESS), 4),
        "overload_too_busy_share": round(_share(over, d.DIAMETER_TOO_BUSY), 4),
        "overload_timeouts": _timeouts(over), "overload_not_sent_share": round(_not_sent(over) / max(1, sent), 4),
        "overload_p99_ms": _p99_ms(over), "hss_max_pending": args.hss_max_pending,
        "client_max_outstanding": args.max_outstanding,
        "hss_metrics_3004": after.get("3004", 0.0) - before.get("3004", 0.0),
        "client_write_buffer_max": client.max_write_buffer,
        "rss": rss.summary("hss", windows), "recovery_rate_per_s": low_rate,
        "recovery_ok_share": round(_share(low, d.DIAMETER_SUCCESS), 4), "recovered_after_s": recovered,
    }
    print(f"  overload: {sent} AIRs, 2001 {100 * result['overload_ok_share']:.1f} %, "
          f"3004 {100 * result['overload_too_busy_share']:.1f} %, timeouts {result['overload_timeouts']}, "
          f"not sent (client at {args.max_outstanding} unanswered) {100 * result['overload_not_sent_share']:.1f} %, "
          f"p99 {result['overload_p99_ms']} ms; HSS RSS {result['rss']}")
    print(f"  recovery at {low_rate:.0f}/s: 2001 {100 * result['recovery_ok_share']:.1f} %, "
          f"every second >= 99 % after {recovered} s")
    return result


# --- the whole lab under kmed load (part "lab") -----------------------------------------------------


def _load_config(lab: Lab, path: Path, offset: int, count: int, extra: str = "") -> Path:
    path.write_text(load_toml([f"tcp://{lab.host}:{lab.cnn_port}"], count=count,
                              imsi_first=str(int(IMSI_FIRST) + offset).zfill(15),
                              imei_first=str(int(IMEI_FIRST) + offset), k=DEFAULT_K, opc=DEFAULT_OPC, seed=SEED,
                              extra=extra))
    return path


def _load_argv(config: Path, report: Path, ues: int, rate: float, duration: float, state: Path,
               *extra: str) -> list[str]:
    return kmed_argv("load", "--config", str(config), "--report", str(report), "--ues", str(ues), "--rate",
                     f"{rate:.1f}", "--duration", f"{duration:g}", "--scenario", "attach", "--state", str(state),
                     "--no-plot", "--seed", "7", *extra)


def _run_load(argv: list[str], timeout: float) -> dict[str, Any]:
    report = Path(argv[argv.index("--report") + 1])
    subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    obj = json.loads(report.read_text()) if report.exists() else {}
    return obj if isinstance(obj, dict) else {}


def _attach_figures(report: dict[str, Any]) -> dict[str, Any]:
    procs = report.get("procedures") or {}
    count = sum(p.get("count", 0) for p in procs.values())
    ok = sum(p.get("ok", 0) for p in procs.values())
    errors = report.get("errors") or {}
    congestion = sum(n for cause, n in errors.items() if cause.startswith("emm_cause_22"))
    p99 = max((p["p99_ms"] for p in procs.values() if p.get("p99_ms") is not None), default=None)
    return {"count": count, "ok": ok, "ok_share": round(ok / count, 4) if count else None,
            "congestion_22": congestion, "timeouts": errors.get("timeout", 0), "errors": errors, "p99_ms": p99,
            "saturated_generator": (report.get("generator") or {}).get("saturated")}


def _cnn_reject_reasons(lab: Lab, since: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in lab.daemons["cnn"].log_events()[since:]:
        if e.get("event") in ("attach_rejected", "tau_rejected") and e.get("emm_cause") == 22:
            reason = str(e.get("reason"))
            key = "cnn admission control" if reason.startswith("overload") else reason
            counts[key] = counts.get(key, 0) + 1
    return counts


@contextmanager
def _lab(root: Path, cnn_extra: str, hss_extra: str) -> Iterator[Lab]:
    with running_lab(root, log_level="warning", extra_cnn=cnn_extra, extra_hss=hss_extra) as lab:
        yield lab


def part_lab(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    n = args.ues
    mport = free_port()
    hss_extra = f"[hss]\nmax_pending = {args.hss_max_pending}\n[metrics]\nlisten = \"127.0.0.1:{mport}\"\n"
    with _lab(root / "lab-part", "", hss_extra) as lab:
        lab.admin(*provision_range_args(2 * n, IMSI_FIRST, IMEI_FIRST, DEFAULT_K, DEFAULT_OPC, SEED))
        work = lab.root
        base_cfg, surge_cfg = _load_config(lab, work / "base.toml", 0, n), _load_config(lab, work / "surge.toml", n, n)
        base_state, surge_state = work / "base.state", work / "surge.state"
        print(f"HSS + CNN under kmed load (KME-match attaches), {n} + {n} UEs: warm-up (each UE provisioned once)")
        for cfg, state, name in ((base_cfg, base_state, "base"), (surge_cfg, surge_state, "surge")):
            _run_load(_load_argv(cfg, work / f"warmup-{name}.json", n, 5, 1, state), 1200)
        ramp: list[dict[str, Any]] = []
        capacity = float(args.lab_capacity or 0)
        print("  ramp" if not capacity else f"  capacity given: {capacity:.0f}/s (no ramp)")
        for i, rate in enumerate([] if capacity else args.lab_rates):
            fig = _attach_figures(_run_load(_load_argv(base_cfg, work / f"ramp-{i}.json", n, rate, args.step_s,
                                                       base_state), 600))
            ramp.append({"rate": rate, **fig})
            print(f"  {rate:7.0f}/s  ok {fig['ok_share']}  #22 {fig['congestion_22']}  timeouts {fig['timeouts']}  "
                  f"p99 {fig['p99_ms']} ms  generator saturated: {fig['saturated_generator']}")
            if fig["ok_share"] is not None and fig["ok_share"] >= OK_SHARE and fig["p99_ms"] is not None \
                    and fig["p99_ms"] <= args.p99_ms:
                capacity = rate
            else:
                break
        if not capacity:
            return {"ramp": ramp, "capacity_per_s": None}
        admit = args.max_procedures or max(8, math.ceil(capacity * args.admit_latency_s))
        lab.stop("cnn")  # restarted with admission control sized for the capacity
        lab.extra_cnn = f"[cnn]\nmax_procedures = {admit}\n"
        lab.cnn_config.write_text(lab.cnn_toml())
        lab.start("cnn")
        since = len(lab.daemons["cnn"].log_events())
        over, low = args.factor * capacity, capacity / 2
        print(f"  capacity {capacity:.0f} attaches/s; CNN max_procedures = {admit}; offered {over:.0f}/s for "
              f"{args.overload_s} s (base {low:.0f}/s + surge {over - low:.0f}/s), then {low:.0f}/s "
              f"for {args.recovery_s} s")
        before = answers_by_code(_scrape(mport))
        pids = {name: dm.proc.pid for name, dm in lab.daemons.items()}
        with RssSampler(pids) as rss:
            base = subprocess.Popen(_load_argv(base_cfg, work / "base.json", n, low, args.overload_s + args.recovery_s,
                                               base_state, "--no-warmup"),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            surge = _run_load(_load_argv(surge_cfg, work / "surge.json", n, over - low, args.overload_s, surge_state,
                                         "--no-warmup"), 600)
            base.wait(600)
        after = answers_by_code(_scrape(mport))
        base_report = json.loads((work / "base.json").read_text()) if (work / "base.json").exists() else {}
        b, s = _attach_figures(base_report), _attach_figures(surge)
        ts = (base_report.get("timeseries") or {}).get("procedures", {})
        per_second: list[tuple[int, int]] = []
        for col in ts.values():
            for j, (ok, failed) in enumerate(zip(col.get("ok", []), col.get("failed", []), strict=False)):
                while len(per_second) <= j:
                    per_second.append((0, 0))
                per_second[j] = (per_second[j][0] + ok, per_second[j][1] + ok + failed)
        after_surge = per_second[args.overload_s:]
        recovered = _recovered_after(after_surge)
        total = b["count"] + s["count"] if b["count"] is not None else None
        congestion = b["congestion_22"] + s["congestion_22"]
        answers = sum(after.values()) - sum(before.values())
        result = {
            "capacity_per_s": capacity, "ramp": ramp, "max_procedures": admit, "overload_rate_per_s": over,
            "base": b, "surge": s, "attaches": total,
            "congestion_22_share": round(congestion / total, 4) if total else None,
            "reject_reasons": _cnn_reject_reasons(lab, since),
            "hss_3004": after.get("3004", 0.0) - before.get("3004", 0.0), "hss_answers": answers,
            "rss": {name: rss.summary(name, {"all": (0.0, 1e9)}) for name in pids},
            "rss_samples_mib": {name: [round(kib / 1024, 1) for _, kib in rss.samples[name][::10]] for name in pids},
            "recovered_after_s": recovered, "per_second_after_surge": after_surge,
        }
        print(f"  attaches {total}: #22 {100 * (result['congestion_22_share'] or 0):.1f} % "
              f"({result['reject_reasons']}), timeouts {b['timeouts'] + s['timeouts']}, HSS 3004 answers "
              f"{result['hss_3004']:.0f} of {answers:.0f}")
        print("  RSS peak MiB: " + ", ".join(f"{k} {v['all']['peak_mib'] if v['all'] else None}"
                                             for k, v in result["rss"].items()))
        print(f"  base run after the surge: every second >= 99 % ok after {recovered} s (per second ok/total: "
              f"{after_surge[:12]})")
        return result


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="kmed bench overload", description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=["hss", "lab", "both"], default="both")
    p.add_argument("--factor", type=float, default=3.0, help="overload = factor x capacity (default 3)")
    p.add_argument("--step-s", type=int, default=5, help="seconds per ramp step")
    p.add_argument("--overload-s", type=int, default=20)
    p.add_argument("--recovery-s", type=int, default=20)
    p.add_argument("--p99-ms", type=float, default=500.0, help="capacity: p99 under this, >= 99 %% ok")
    p.add_argument("--subscribers", type=int, default=2000, help="part hss: subscribers AIRs are spread over")
    p.add_argument("--hss-rates", type=lambda s: [float(x) for x in s.split(",")],
                   default=[250, 500, 1000, 1500, 2000, 3000, 4000, 6000])
    p.add_argument("--hss-max-pending", type=int, default=20000, help="[hss] max_pending (the daemon's default)")
    p.add_argument("--max-outstanding", type=int, default=10000,
                   help="part hss: most AIRs the client leaves unanswered (a CNN's cnn.max_s6a_pending)")
    p.add_argument("--ues", type=int, default=1500, help="part lab: UEs per population (two populations)")
    p.add_argument("--lab-rates", type=lambda s: [float(x) for x in s.split(",")],
                   default=[25, 50, 100, 150, 200, 300, 400, 600])
    p.add_argument("--admit-latency-s", type=float, default=0.25,
                   help="part lab: cnn.max_procedures = capacity x this")
    p.add_argument("--max-procedures", type=int, default=0,
                   help="part lab: cnn.max_procedures for the overload (default: capacity x --admit-latency-s)")
    p.add_argument("--lab-capacity", type=float, default=0, help="part lab: skip the ramp, use this capacity")
    p.add_argument("--keep", help="work directory to keep (default: a temporary one, removed)")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="kmed-overload-")
    root = Path(args.keep) if args.keep else Path(tmp.name)  # type: ignore[union-attr]
    root.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {}
    try:
        if args.part in ("hss", "both"):
            figures["hss"] = part_hss(args, root)
        if args.part in ("lab", "both"):
            figures["lab"] = part_lab(args, root)
    finally:
        if tmp is not None:
            tmp.cleanup()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0

"""Instructions the CNN daemon executes per procedure (not a test: prints figures).

Run: .venv/bin/python -m tests.cnn.bench_callgrind [--ues 400] [--closed-loop 16] [--duration 25]

A real ``kmed hss`` and a real ``kmed cnn`` on loopback (kmed.lab), the CNN started under
``valgrind --tool=callgrind`` (:mod:`kmed.bench.callgrind`), driven by ``kmed load`` in closed loop.
After warm-up runs (provisioning, then matching attaches) the counters are zeroed, one closed-loop
run of each scenario is made, the counters are dumped, and the instructions are divided by the
procedures the CNN counted in its ``/metrics`` over the same window. User-space instructions of
the CNN process only (no system calls), so the figure does not move with the machine's load
(≈ 1 %; it does move a little with how many UEs share an event-loop turn). About 2.5 minutes.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from kmed.bench.callgrind import Callgrind
from kmed.bench.load import IMEI_FIRST, IMSI_FIRST, SEED
from kmed.lab import DEFAULT_K, DEFAULT_OPC, free_port, kmed_argv, running_lab, wait_listening
from kmed.load.labfile import load_toml, provision_range_args


def procedures(port: int) -> dict[tuple[str, str], float]:
    """``kmed_procedures_total`` by (procedure, outcome) from the CNN's metrics endpoint."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60).read().decode()
    pattern = r'^kmed_procedures_total\{procedure="(\w+)",outcome="(\w+)"\} (\S+)'
    return {(m[1], m[2]): float(m[3]) for m in re.finditer(pattern, text, re.M)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.cnn.bench_callgrind")
    ap.add_argument("--ues", type=int, default=400)
    ap.add_argument("--closed-loop", type=int, default=16)
    ap.add_argument("--duration", type=float, default=25.0)
    args = ap.parse_args(argv)
    cg = Callgrind()
    root = Path(tempfile.mkdtemp(prefix="kmed-cnn-callgrind-"))
    mport = free_port()
    with running_lab(root, services=("hss",), log_level="warning",
                     extra_cnn=f'[metrics]\nlisten = "127.0.0.1:{mport}"\n') as lab:
        log = (root / "logs" / "cnn.log").open("a", encoding="utf-8")
        cnn = subprocess.Popen(cg.prefix() + kmed_argv("cnn", "--config", str(lab.cnn_config)), stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_listening(lab.host, lab.cnn_port, 300, cnn)
            cg.pid = cnn.pid
            lab.admin(*provision_range_args(args.ues, IMSI_FIRST, IMEI_FIRST, DEFAULT_K, DEFAULT_OPC, SEED))
            config = root / "load.toml"
            config.write_text(load_toml([f"tcp://{lab.host}:{lab.cnn_port}"], count=args.ues, imsi_first=IMSI_FIRST,
                                        imei_first=IMEI_FIRST, k=DEFAULT_K, opc=DEFAULT_OPC, seed=SEED,
                                        extra="[load]\nwarmup_concurrency = 16\n"))

            def run(scenario: str, duration: float, closed: int) -> None:
                lab.kmed("load", "--config", str(config), "--scenario", scenario, "--ues", str(args.ues),
                         "--closed-loop", str(closed), "--duration", str(duration), "--state",
                         str(root / "ues.state"), "--no-plot", "--report", str(root / f"{scenario}.json"),
                         timeout=1200, check=False)

            run("provision", 5, 4)  # warm-up: every code path seen once, UE states holding KMEs
            run("attach", 5, 4)
            for scenario, name in (("attach", "attach"), ("provision", "attach_provision")):
                before = procedures(mport)
                cg.zero()
                run(scenario, args.duration, args.closed_loop)
                instructions = cg.dump()
                after = procedures(mport)
                done = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
                total = sum(done.values())
                print(f"CNN, {name:17s}: {instructions / max(total, 1):12,.0f} instructions per procedure "
                      f"({total:g} procedures: {done})", flush=True)
        finally:
            cnn.terminate()
            try:
                cnn.wait(60)
            except subprocess.TimeoutExpired:
                cnn.kill()
            log.close()
            cg.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

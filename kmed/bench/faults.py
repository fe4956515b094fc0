"""``kmed bench faults``: the long fault soak (docs/faults.md), about 10 minutes by default.

Rounds of :func:`kmed.faults.scenario.run_faults`, one per drop rate in ``--rates`` (duplicate
and reorder at half that rate each, delay 2 ms + up to 5 ms jitter, connection resets at
``--reset``), on both links, each with ``--hss-kills`` and ``--cnn-kills`` SIGKILLs of the
daemons at random moments; every round ends with a clean pass and the convergence checks.
Prints, per round and in total: the faults the proxies injected, the kills survived, the
procedures that succeeded under faults, and the UEs converged. Exit status 1 when a round
did not converge (or lost acknowledged state).

Time budget (2 shared cores): per round about ``--duration`` + 45 s of set-up, clean passes and
drain; the defaults (3 rounds of 140 s, 200 UEs) take about 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kmed.faults.policy import Rates
from kmed.faults.scenario import FaultRunSettings, run_faults, symmetric


def _rates(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a comma-separated list of probabilities, not {text!r}") from None
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"probabilities from 0 to 1, not {text!r}")
    return values


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="kmed bench faults", description=__doc__.split("\n\n")[0])
    ap.add_argument("--ues", type=int, default=200, help="UEs of the population (default 200)")
    ap.add_argument("--concurrency", type=int, help="UEs in closed loop during the faults (default: half)")
    ap.add_argument("--duration", type=float, default=140.0, help="seconds of faults per round (default 140)")
    ap.add_argument("--rates", type=_rates, default=[0.05, 0.10, 0.20],
                    help="drop rate of each round (default 0.05,0.10,0.20)")
    ap.add_argument("--reset", type=float, default=0.002, help="connection resets per message (default 0.002)")
    ap.add_argument("--scope", choices=("application", "all"), default="application",
                    help="which messages the faults hit (docs/faults.md)")
    ap.add_argument("--hss-kills", type=int, default=3, help="SIGKILLs of the HSS per round (default 3)")
    ap.add_argument("--cnn-kills", type=int, default=3, help="SIGKILLs of the CNN per round (default 3)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the first round (default 1)")
    ap.add_argument("--workers", type=int, default=1, help="load harness worker processes (default 1)")
    ap.add_argument("--workdir", help="keep each round's lab (configs, store, logs, reports) here")
    ap.add_argument("--json", metavar="FILE", help="also write every round's figures as JSON")
    args = ap.parse_args(argv)
    if args.ues < 2:
        ap.error("--ues: at least 2")
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="kmed-bench-faults-"))
    print(f"kmed bench faults: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} before; "
          f"{len(args.rates)} rounds of {args.duration:g} s, {args.ues} UEs; work dir {root}", flush=True)
    t_start = time.monotonic()
    rounds: list[dict[str, Any]] = []
    failed = 0
    for i, drop in enumerate(args.rates):
        seed = args.seed + i
        rates = Rates(drop=drop, duplicate=drop / 2, reorder=drop / 2, delay_ms=2.0, jitter_ms=5.0, reset=args.reset)
        settings = FaultRunSettings(
            ues=args.ues, duration_s=args.duration, concurrency=args.concurrency or max(1, args.ues // 2),
            diameter=symmetric(rates, seed * 2, args.scope), uelink=symmetric(rates, seed * 2 + 1, args.scope),
            hss_kills=args.hss_kills, cnn_kills=args.cnn_kills, seed=seed, workers=args.workers,
        )
        t0 = time.monotonic()
        label = f"  round {i + 1}: "

        def progress(msg: str, label: str = label) -> None:
            print(label + msg, flush=True)

        result = run_faults(root / f"round-{i + 1}", settings, progress=progress)
        elapsed = time.monotonic() - t0
        for line in result.lines():
            print(line)
        print(f"  round {i + 1} took {elapsed:.0f} s", flush=True)
        failed += not result.ok
        rounds.append({**result.as_dict(), "elapsed_s": round(elapsed, 1)})
    kills = sum(1 for r in rounds for k in r["kills"] if k["restarted"])
    converged = sum((r["final"] or {}).get("converged", 0) for r in rounds)
    total = sum(r["settings"]["ues"] for r in rounds)
    print(f"total: {len(rounds)} rounds at drop rates {', '.join(f'{r:g}' for r in args.rates)}; "
          f"{kills} kills survived; {converged} of {total} UEs converged; "
          f"{len(rounds) - failed} of {len(rounds)} rounds OK; {time.monotonic() - t_start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": rounds}, indent=1, default=str) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))

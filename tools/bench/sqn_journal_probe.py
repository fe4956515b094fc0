#!/usr/bin/env python3
"""What an SQN update costs the store writer, against an append-only SQN journal (docs/hss.md,
"Performance", Session 4): ``tools/bench/sqn_journal_probe.py COPY.sqlite [--commits N]``.

Run it on a *copy* of a provisioned store (``kmed bench hss --subscribers 1000000 --keep DIR``
makes one; copy ``DIR/hss.sqlite`` while no HSS runs): it adds a table ``sqn_journal`` and
rewrites SQNs. Each round commits ``--commits`` transactions of ``--batch`` SQNs for random
subscribers (of the first 1,000, or of all) with ``synchronous = full``, either as row updates
(what the HSS does) or as journal appends; at the end the journal is folded back into the
subscribers' rows in one transaction. Prints the CPU and wall time per SQN.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import time


def _round(db: sqlite3.Connection, kind: str, pool: list[str], commits: int, batch: int, rng: random.Random) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(commits):
        rows = [(rng.choice(pool), rng.randrange(1, 1 << 40)) for _ in range(batch)]
        db.execute("BEGIN IMMEDIATE")
        if kind == "update":
            db.executemany("UPDATE subscribers SET sqn = ? WHERE imsi = ?", [(sqn, imsi) for imsi, sqn in rows])
        else:
            db.executemany("INSERT INTO sqn_journal (imsi, sqn) VALUES (?, ?)", rows)
        db.execute("COMMIT")
    n = commits * batch
    print(f"{kind:8} over {len(pool):>9,} subscribers: CPU {(time.process_time() - cpu) / n * 1e6:5.1f} µs, "
          f"wall {(time.perf_counter() - wall) / n * 1e6:5.1f} µs per SQN", flush=True)


def _fold(db: sqlite3.Connection) -> None:
    n = db.execute("SELECT count(*) FROM sqn_journal").fetchone()[0]
    cpu, wall = time.process_time(), time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE subscribers SET sqn = j.sqn FROM (SELECT imsi, sqn FROM sqn_journal WHERE id IN"
               " (SELECT max(id) FROM sqn_journal GROUP BY imsi)) AS j WHERE subscribers.imsi = j.imsi")
    db.execute("DELETE FROM sqn_journal")
    db.execute("COMMIT")
    print(f"fold of {n:,} journal rows: CPU {(time.process_time() - cpu) / max(1, n) * 1e6:.1f} µs, "
          f"wall {(time.perf_counter() - wall) / max(1, n) * 1e6:.1f} µs per row")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store", help="a COPY of a provisioned store (it is modified)")
    ap.add_argument("--commits", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=13, help="SQNs per commit (the HSS's ~13 with a million)")
    args = ap.parse_args(argv)
    db = sqlite3.connect(args.store, isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = FULL", "temp_store = MEMORY", "mmap_size = 1073741824"):
        db.execute(f"PRAGMA {pragma}")
    db.execute("CREATE TABLE IF NOT EXISTS sqn_journal"
               " (id INTEGER PRIMARY KEY, imsi TEXT NOT NULL, sqn INTEGER NOT NULL)")
    imsis = [r[0] for r in db.execute("SELECT imsi FROM subscribers")]
    if not imsis:
        ap.error("the store has no subscribers")
    rng = random.Random(1)
    for kind, active in (("update", 1000), ("update", len(imsis)), ("journal", len(imsis)),
                         ("update", len(imsis)), ("journal", len(imsis))):
        _round(db, kind, imsis[:active], args.commits, args.batch, rng)
    _fold(db)
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The SQLite store (default): WAL journal, ``synchronous=FULL``, file mode 0600.

Every connection is in autocommit mode and opens its own transactions: reads see what other
connections (the HSS writer thread, ``kmed admin``) have committed, immediately. The HSS uses
one connection for reads on its event loop and one in its group-commit thread for writes
(:mod:`kmed.hss.groupcommit`); ``kmed admin`` opens its own while the HSS runs.

Durability (docs/hss.md): with WAL and ``synchronous=FULL`` a COMMIT returns after the WAL
is fsynced, so a committed transaction survives a process kill and a power cut.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from kmed.crypto.kme import fingerprint
from kmed.hss import migrations
from kmed.hss.files import private_umask, tighten
from kmed.hss.store import (
    AuditKme,
    Device,
    Duplicate,
    NotFound,
    SetLocation,
    SetSqn,
    StoredKme,
    StoreError,
    StoreKme,
    Subscriber,
    Write,
    WriteRejected,
)

SYNCHRONOUS = ("full", "normal")


def now_us() -> int:
    return time.time_ns() // 1000


class SqliteStore:
    """One connection to the SQLite store (see module doc). Not thread-safe: one per thread."""

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "full",
        busy_timeout_s: float = 10.0,
        migrate: bool = True,
        mmap_mb: int = 1024,
        wal_autocheckpoint: int | None = None,
    ) -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}")
        self.path = Path(path)
        #: the HSS process whose commits these are (:meth:`apply` marks them in ``hss_writer``)
        self.instance: str | None = None
        #: set by :meth:`apply` when its commit took the store over from another HSS process:
        #: the ``hss_writer`` mark it found (that process's name and count), else None
        self.taken_over: tuple[str, int] | None = None
        with private_umask():
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tighten(self.path)
        # umask 077 while SQLite creates the database (mode 0600); it gives -wal and -shm the
        # database file's mode. The files are never opened outside SQLite (see files.tighten).
        with private_umask():
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, cached_statements=64
            )
            db = self._db
            db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch the store to WAL (journal_mode is {mode})")
            db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            db.execute("PRAGMA foreign_keys = ON")
            db.execute(f"PRAGMA mmap_size = {mmap_mb * 1024 * 1024}")
            db.execute("PRAGMA temp_store = MEMORY")  # UPDATE ... FROM's work tables: no temp files
            if wal_autocheckpoint is not None:  # another connection checkpoints (kmed.hss.checkpoint)
                db.execute(f"PRAGMA wal_autocheckpoint = {int(wal_autocheckpoint)}")
            if migrate:
                migrations.migrate(db)
        for suffix in ("-wal", "-shm"):
            tighten(self.path.with_name(self.path.name + suffix))

    def close(self) -> None:
        self._db.close()

    # --- reads (the S6a hot path) ---------------------------------------------------------

    def subscriber(self, imsi: str, with_kme: bool = True) -> Subscriber | None:
        if not with_kme:
            row = self._db.execute("SELECT k, opc, amf, sqn FROM subscribers WHERE imsi = ?", (imsi,)).fetchone()
            return None if row is None else Subscriber(imsi, row[0], row[1], row[2], row[3])
        row = self._db.execute(
            "SELECT s.k, s.opc, s.amf, s.sqn, m.kme, m.imei, m.issued_at, m.stored_at"
            " FROM subscribers s LEFT JOIN kmes m ON m.imsi = s.imsi WHERE s.imsi = ?",
            (imsi,),
        ).fetchone()
        if row is None:
            return None
        return Subscriber(imsi, row[0], row[1], row[2], row[3], _held(row, 4))

    def subscribers_after(self, imsi: str, limit: int) -> list[Subscriber]:
        rows = self._db.execute(
            "SELECT s.imsi, s.k, s.opc, s.amf, s.sqn, m.kme, m.imei, m.issued_at, m.stored_at"
            " FROM subscribers s LEFT JOIN kmes m ON m.imsi = s.imsi WHERE s.imsi > ? ORDER BY s.imsi LIMIT ?",
            (imsi, limit),
        ).fetchall()
        return [Subscriber(r[0], r[1], r[2], r[3], r[4], _held(r, 5)) for r in rows]

    def device(self, imei: str) -> Device | None:
        row = self._db.execute("SELECT profile, public_key FROM devices WHERE imei = ?", (imei,)).fetchone()
        return None if row is None else Device(imei, row[0], row[1])

    def pair_allowed(self, imsi: str, imei: str) -> bool:
        row = self._db.execute("SELECT 1 FROM pairs WHERE imsi = ? AND imei = ?", (imsi, imei)).fetchone()
        return row is not None

    def pairs_version(self) -> int:
        return int(self._db.execute("SELECT n FROM pairs_version").fetchone()[0])

    def writer_mark(self) -> tuple[str, int]:
        row = self._db.execute("SELECT instance, n FROM hss_writer").fetchone()
        return str(row[0]), int(row[1])

    def checkpoint(self) -> tuple[int, int, int]:
        """``PRAGMA wal_checkpoint(PASSIVE)``: (1 if it could not run, frames in the WAL, frames
        copied into the database file), as SQLite reports them (-1, -1 outside WAL mode)."""
        busy, frames, copied = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(busy), int(frames), int(copied)

    # --- group-committed writes ---------------------------------------------------------

    def apply(self, writes: Sequence[Write]) -> list[bool]:
        """Apply ``writes`` in one transaction, commit (fsync), return one flag per write."""
        db = self._db
        self.taken_over = None
        results = [True] * len(writes)
        sqns: dict[str, int] = {}
        locations: dict[str, tuple[Any, ...]] = {}  # the last ULR of an IMSI in the batch wins
        audits: list[tuple[Any, ...]] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for i, w in enumerate(writes):
                if isinstance(w, SetSqn):
                    sqns[w.imsi] = w.sqn  # later reservations of one IMSI supersede earlier ones
                elif isinstance(w, AuditKme):
                    audits.append((w.at, w.event, w.imsi, w.imei, w.fingerprint, w.issued_at, w.reason, w.peer))
                elif isinstance(w, StoreKme):
                    results[i] = self._store_kme(w, audits)
                elif isinstance(w, SetLocation):
                    locations[w.imsi] = (w.imsi, w.origin_host, w.origin_realm, w.visited_plmn, w.rat_type,
                                         w.imei, w.software_version, w.at)
                else:  # pragma: no cover - the Write union is closed
                    raise TypeError(f"unknown write {type(w).__name__}")
            if sqns:
                _padded_rows(db, _SQN_UPDATE, list(sqns.items()))
            if locations:
                _padded_rows(db, _LOCATION_UPSERT, list(locations.values()))
            found = None
            if self.instance is not None:  # read in the write transaction: no commit can slip between
                mark = self.writer_mark()
                if mark[0] != self.instance:
                    db.execute("UPDATE hss_writer SET instance = ?, n = n + 1 WHERE id = 0", (self.instance,))
                    found = mark
            if audits:
                db.executemany(
                    "INSERT INTO kme_audit (at, event, imsi, imei, kme_fingerprint, issued_at, reason, peer)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    audits,
                )
            db.execute("COMMIT")
            self.taken_over = found
        except sqlite3.IntegrityError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise WriteRejected(f"rejected by the store: {exc}") from None
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return results

    def _store_kme(self, w: StoreKme, audits: list[tuple[Any, ...]]) -> bool:
        # Conditional on issued_at: of two racing ULRs, the newer KME wins whatever the order.
        cur = self._db.execute(
            "INSERT INTO kmes (imsi, kme, imei, issued_at, stored_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (imsi) DO UPDATE SET kme = excluded.kme, imei = excluded.imei,"
            " issued_at = excluded.issued_at, stored_at = excluded.stored_at"
            " WHERE excluded.issued_at > kmes.issued_at",
            (w.imsi, w.kme, w.imei, w.issued_at, w.stored_at),
        )
        stored = cur.rowcount > 0
        event, reason = ("stored", None) if stored else ("refused", "a newer KME is held")
        audits.append((w.stored_at, event, w.imsi, w.imei, w.fingerprint, w.issued_at, reason, w.peer))
        return stored

    # --- admin ------------------------------------------------------------------------

    def _insert(self, sql: str, params: tuple[Any, ...], what: str) -> None:
        try:
            self._db.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise _integrity(exc, what) from None

    def add_subscriber(self, imsi: str, k: bytes, opc: bytes, amf: bytes, sqn: int) -> None:
        self._insert(
            "INSERT INTO subscribers (imsi, k, opc, amf, sqn) VALUES (?, ?, ?, ?, ?)",
            (imsi, k, opc, amf, sqn),
            f"subscriber {imsi}",
        )

    def add_device(self, imei: str, profile: str, public_key: bytes) -> None:
        self._insert(
            "INSERT INTO devices (imei, profile, public_key) VALUES (?, ?, ?)",
            (imei, profile, public_key),
            f"device {imei}",
        )

    def allow_pair(self, imsi: str, imei: str) -> bool:
        if self._db.execute("SELECT 1 FROM subscribers WHERE imsi = ?", (imsi,)).fetchone() is None:
            raise NotFound(f"unknown IMSI {imsi}")
        if self.device(imei) is None:
            raise NotFound(f"unknown IMEI {imei} (add the device first)")
        cur = self._db.execute("INSERT OR IGNORE INTO pairs (imsi, imei) VALUES (?, ?)", (imsi, imei))
        return cur.rowcount > 0

    def deny_pair(self, imsi: str, imei: str) -> bool:
        cur = self._db.execute("DELETE FROM pairs WHERE imsi = ? AND imei = ?", (imsi, imei))
        return cur.rowcount > 0

    def provision(
        self,
        subscribers: Iterable[tuple[str, bytes, bytes, bytes, int]],
        devices: Iterable[tuple[str, str, bytes]],
        pairs: Iterable[tuple[str, str]],
    ) -> None:
        self.begin_bulk()
        try:
            self.bulk_chunk(list(subscribers), list(devices), list(pairs))
        except BaseException:
            self.end_bulk(commit=False)
            raise
        self.end_bulk(commit=True)

    def begin_bulk(self) -> None:
        """Start a bulk transaction (``provision-range`` streams chunks into it)."""
        self._db.execute("BEGIN IMMEDIATE")

    def bulk_chunk(
        self,
        subscribers: Sequence[tuple[str, bytes, bytes, bytes, int]],
        devices: Sequence[tuple[str, str, bytes]],
        pairs: Sequence[tuple[str, str]],
    ) -> None:
        try:
            self._db.executemany("INSERT INTO subscribers (imsi, k, opc, amf, sqn) VALUES (?, ?, ?, ?, ?)", subscribers)
            self._db.executemany("INSERT INTO devices (imei, profile, public_key) VALUES (?, ?, ?)", devices)
            self._db.executemany("INSERT INTO pairs (imsi, imei) VALUES (?, ?)", pairs)
        except sqlite3.IntegrityError as exc:
            self.end_bulk(commit=False)
            raise _integrity(exc, "a subscriber, device or pair of the range") from None

    def end_bulk(self, commit: bool) -> None:
        if self._db.in_transaction:
            self._db.execute("COMMIT" if commit else "ROLLBACK")

    def show(self, imsi: str) -> dict[str, Any] | None:
        sub = self.subscriber(imsi)
        if sub is None:
            return None
        db = self._db
        pairs = [r[0] for r in db.execute("SELECT imei FROM pairs WHERE imsi = ? ORDER BY imei", (imsi,))]
        loc = db.execute(
            "SELECT origin_host, origin_realm, visited_plmn, rat_type, imei, software_version, updated_at"
            " FROM locations WHERE imsi = ?",
            (imsi,),
        ).fetchone()
        audit = [
            {"at_us": r[0], "event": r[1], "imei": r[2], "kme_fingerprint": r[3], "issued_at_us": r[4],
             "reason": r[5], "peer": r[6]}
            for r in db.execute(
                "SELECT at, event, imei, kme_fingerprint, issued_at, reason, peer FROM kme_audit"
                " WHERE imsi = ? ORDER BY id DESC LIMIT 20",
                (imsi,),
            )
        ]
        kme = sub.kme
        return {
            "imsi": imsi,
            "k_fingerprint": fingerprint(sub.k),
            "opc_fingerprint": fingerprint(sub.opc),
            "amf": sub.amf.hex(),
            "sqn": sub.sqn,
            "kme_fingerprint": None if kme is None else fingerprint(kme.kme),
            "kme_imei": None if kme is None else kme.imei,
            "kme_issued_at_us": None if kme is None else kme.issued_at,
            "kme_stored_at_us": None if kme is None else kme.stored_at,
            "allowed_imeis": pairs,
            "location": None
            if loc is None
            else {
                "origin_host": loc[0],
                "origin_realm": loc[1],
                "visited_plmn": bytes(loc[2]).hex(),
                "rat_type": loc[3],
                "imei": loc[4],
                "software_version": loc[5],
                "updated_at_us": loc[6],
            },
            "kme_audit": audit,
        }


#: A batch's rows are padded up to one of these counts (the statement cache then holds a
#: handful of texts, not one per batch size); 64 rows of 8 values = 512 parameters.
_ROWS = (1, 2, 4, 8, 16, 32, 64)

_SQN_UPDATE = ("WITH v(imsi, sqn) AS (VALUES {rows}) "
               "UPDATE subscribers SET sqn = v.sqn FROM v WHERE subscribers.imsi = v.imsi")
_LOCATION_UPSERT = (
    "INSERT INTO locations (imsi, origin_host, origin_realm, visited_plmn, rat_type, imei, software_version,"
    " updated_at) VALUES {rows} ON CONFLICT (imsi) DO UPDATE SET origin_host = excluded.origin_host,"
    " origin_realm = excluded.origin_realm, visited_plmn = excluded.visited_plmn, rat_type = excluded.rat_type,"
    " imei = excluded.imei, software_version = excluded.software_version, updated_at = excluded.updated_at"
)


def _held(row: tuple[Any, ...], at: int) -> StoredKme | None:
    """The KME held, from ``kmes``'s kme, imei, issued_at, stored_at at ``row[at:at + 4]``
    (None after a LEFT JOIN that found none)."""
    return None if row[at] is None else StoredKme(row[at], row[at + 1], row[at + 2], row[at + 3])


def _padded_rows(db: sqlite3.Connection, template: str, rows: list[tuple[Any, ...]]) -> None:
    """One multi-row statement per up to 64 rows (each key once: the caller keeps the last
    row of a key). ``executemany`` would step one statement per row, and the Python module
    takes the GIL back after each step, so the writer thread would contend with the event
    loop once per request instead of once per 64. Padding repeats the last row: the same
    values written again."""
    for start in range(0, len(rows), _ROWS[-1]):
        chunk = rows[start : start + _ROWS[-1]]
        count = next(n for n in _ROWS if n >= len(chunk))
        chunk += [chunk[-1]] * (count - len(chunk))
        db.execute(_statement(template, len(chunk[0]), count), [x for row in chunk for x in row])


@functools.lru_cache(maxsize=32)
def _statement(template: str, width: int, count: int) -> str:
    """``template`` with ``count`` rows of ``width`` parameters (built once per shape)."""
    one = "(" + ", ".join(["?"] * width) + ")"
    return template.format(rows=", ".join([one] * count))


def _integrity(exc: sqlite3.IntegrityError, what: str) -> StoreError:
    text = str(exc)
    if "UNIQUE" in text or "PRIMARY KEY" in text:
        return Duplicate(f"{what} already exists")
    if "FOREIGN KEY" in text:
        return NotFound(f"{what}: refers to a subscriber or device that does not exist")
    return StoreError(f"{what}: rejected by the store ({text})")


def open_url(url: str, base: Path | None = None, **kwargs: Any) -> SqliteStore:
    """Open the store a ``[store] url`` names: ``sqlite:///abs/path`` (extra leading slashes
    collapse) or ``sqlite://rel/path`` (relative to ``base``, the configuration file's
    directory). PostgreSQL is not built yet."""
    return SqliteStore(sqlite_path(url, base), **kwargs)


def sqlite_path(url: str, base: Path | None = None) -> Path:
    """The file path of a ``sqlite://`` URL; ValueError for anything else."""
    if not url.startswith("sqlite://"):
        raise ValueError("only sqlite:// stores are implemented (postgresql:// is planned)")
    rest = url[len("sqlite://"):]
    if rest.startswith("/"):
        rest = "/" + rest.lstrip("/")  # sqlite:///var/lib/x and sqlite:////var/lib/x: both /var/lib/x
    if not rest.strip("/"):
        raise ValueError("sqlite:///PATH with a file path")
    path = Path(rest)
    if not path.is_absolute() and base is not None:
        path = base / path
    return path

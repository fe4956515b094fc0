"""SQLite schema, versioned: each migration moves ``schema_version`` up by one, in a
transaction, at HSS and admin start (docs/hss.md, "Store schema").

Never edit a released migration: add the next one.
"""

from __future__ import annotations

import sqlite3

from kmed.hss.store import StoreError

#: version -> statements. Times are microseconds since the Unix epoch.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        # K, OPc: 16 octets; AMF: 2 octets; sqn: highest SQN handed out, SEQ ‖ IND (48 bits).
        """CREATE TABLE subscribers (
            imsi TEXT PRIMARY KEY,
            k BLOB NOT NULL CHECK (length(k) = 16),
            opc BLOB NOT NULL CHECK (length(opc) = 16),
            amf BLOB NOT NULL CHECK (length(amf) = 2),
            sqn INTEGER NOT NULL DEFAULT 0 CHECK (sqn >= 0 AND sqn < 281474976710656)
        ) WITHOUT ROWID""",
        # public_key: raw X25519 (32 octets, profile A) or compressed P-256 (33, profile B).
        """CREATE TABLE devices (
            imei TEXT PRIMARY KEY,
            profile TEXT NOT NULL CHECK (profile IN ('A', 'B')),
            public_key BLOB NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE pairs (
            imsi TEXT NOT NULL REFERENCES subscribers (imsi) ON DELETE CASCADE,
            imei TEXT NOT NULL REFERENCES devices (imei) ON DELETE CASCADE,
            PRIMARY KEY (imsi, imei)
        ) WITHOUT ROWID""",
        # The KME held per IMSI, the IMEI it was issued for, when issued (token) and stored.
        """CREATE TABLE kmes (
            imsi TEXT PRIMARY KEY REFERENCES subscribers (imsi) ON DELETE CASCADE,
            kme BLOB NOT NULL CHECK (length(kme) = 32),
            imei TEXT NOT NULL,
            issued_at INTEGER NOT NULL,
            stored_at INTEGER NOT NULL
        ) WITHOUT ROWID""",
        # Every KME issued, stored or refused; fingerprints only, never a KME.
        """CREATE TABLE kme_audit (
            id INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            event TEXT NOT NULL CHECK (event IN ('issued', 'stored', 'refused')),
            imsi TEXT NOT NULL,
            imei TEXT,
            kme_fingerprint TEXT,
            issued_at INTEGER,
            reason TEXT,
            peer TEXT NOT NULL
        )""",
        "CREATE INDEX kme_audit_imsi ON kme_audit (imsi, id)",
        # Where the subscriber was last registered (ULR).
        """CREATE TABLE locations (
            imsi TEXT PRIMARY KEY REFERENCES subscribers (imsi) ON DELETE CASCADE,
            origin_host TEXT NOT NULL,
            origin_realm TEXT NOT NULL,
            visited_plmn BLOB NOT NULL,
            rat_type INTEGER NOT NULL,
            imei TEXT,
            software_version TEXT,
            updated_at INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    2: (
        # A counter that every change to pairs moves (triggers, whoever writes): the HSS caches
        # pair lookups and reads this one row once per event-loop turn instead of a pair per
        # ULR (kmed.hss.cache, docs/hss.md "Read cache").
        "CREATE TABLE pairs_version (id INTEGER PRIMARY KEY CHECK (id = 0), n INTEGER NOT NULL)",
        "INSERT INTO pairs_version (id, n) VALUES (0, 0)",
        "CREATE TRIGGER pairs_inserted AFTER INSERT ON pairs BEGIN UPDATE pairs_version SET n = n + 1; END",
        "CREATE TRIGGER pairs_deleted AFTER DELETE ON pairs BEGIN UPDATE pairs_version SET n = n + 1; END",
        "CREATE TRIGGER pairs_updated AFTER UPDATE ON pairs BEGIN UPDATE pairs_version SET n = n + 1; END",
    ),
    3: (
        # Which HSS process committed last, and a count of HSS commits: an HSS whose read cache
        # holds every subscriber (a standby on the same store) sees when another one has written
        # SQNs or KMEs, and empties its cache (kmed.hss.cache, docs/hss.md "Read cache").
        "CREATE TABLE hss_writer (id INTEGER PRIMARY KEY CHECK (id = 0), instance TEXT NOT NULL, n INTEGER NOT NULL)",
        "INSERT INTO hss_writer (id, instance, n) VALUES (0, '', 0)",
    ),
}

LATEST = max(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version of an open database (0 when empty)."""
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if row is None:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to :data:`LATEST`; returns the version found before.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Each migration runs in
    its own ``BEGIN IMMEDIATE`` transaction, so concurrent starters serialise and a crash
    leaves the previous version intact.
    """
    found = current_version(conn)
    if found > LATEST:
        raise StoreError(f"store schema version {found} is newer than this kmed knows ({LATEST})")
    version = found
    while version < LATEST:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TEXT)")
            version = current_version(conn)  # another process may have migrated meanwhile
            if version >= LATEST:
                conn.execute("COMMIT")
                break
            for statement in MIGRATIONS[version + 1]:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, datetime('now'))", (version + 1,)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version += 1
    return found

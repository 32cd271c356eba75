"""SQLite store: calls, flags, runs and supervisors' verdicts (schema and indexes in docs/BATCH.md).

One writer at a time (the batch runner's single writer process); readers (the review
app, ``callqa stats``) run concurrently thanks to WAL. Records are stored whole in
``calls.record_json`` so timelines can be re-analysed without re-running ASR; the
columns beside it are the ones the review app and stats filter and sort on.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

STORE_SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS runs (
    run_id           TEXT PRIMARY KEY,
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    source           TEXT,
    config_hash      TEXT,
    pipeline_version TEXT,
    summary_json     TEXT
);

CREATE TABLE IF NOT EXISTS calls (
    call_id          TEXT PRIMARY KEY,
    status           TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    error_kind       TEXT,
    error_message    TEXT,
    audio_path       TEXT,
    sha256           TEXT,
    duration_s       REAL,
    channels         INTEGER,
    agent_id         TEXT,
    campaign         TEXT,
    call_type        TEXT,
    recorded_at      TEXT,   -- ISO 8601 from the manifest, else NULL
    processed_at     TEXT NOT NULL,
    run_id           TEXT REFERENCES runs(run_id),
    config_hash      TEXT,
    pipeline_version TEXT,
    work_key         TEXT,   -- content hash + config hash + pipeline version
    n_flags          INTEGER NOT NULL DEFAULT 0,
    metadata_json    TEXT NOT NULL DEFAULT '{}',
    record_json      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_agent     ON calls(agent_id);
CREATE INDEX IF NOT EXISTS calls_campaign  ON calls(campaign);
CREATE INDEX IF NOT EXISTS calls_recorded  ON calls(recorded_at);
CREATE INDEX IF NOT EXISTS calls_status    ON calls(status);

CREATE TABLE IF NOT EXISTS flags (
    flag_id      TEXT PRIMARY KEY,  -- call_id:type:start_ms, stable across re-analysis
    call_id      TEXT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
    type         TEXT NOT NULL,
    severity     TEXT NOT NULL,
    start_s      REAL NOT NULL,
    end_s        REAL NOT NULL,
    role         TEXT,
    evidence     TEXT NOT NULL,
    detail_json  TEXT NOT NULL DEFAULT '{}',
    -- copied from the call so the flag list filters without a join
    agent_id     TEXT,
    campaign     TEXT,
    call_date    TEXT    -- YYYY-MM-DD: recorded_at's date, else processed_at's
);
CREATE INDEX IF NOT EXISTS flags_type      ON flags(type, severity);
CREATE INDEX IF NOT EXISTS flags_call      ON flags(call_id);
CREATE INDEX IF NOT EXISTS flags_agent     ON flags(agent_id);
CREATE INDEX IF NOT EXISTS flags_campaign  ON flags(campaign);
CREATE INDEX IF NOT EXISTS flags_date      ON flags(call_date);

-- Verdicts outlive re-analysis: keyed by flag_id, not deleted with the flag row.
CREATE TABLE IF NOT EXISTS reviews (
    flag_id      TEXT PRIMARY KEY,
    verdict      TEXT NOT NULL CHECK (verdict IN ('confirmed', 'dismissed')),
    note         TEXT,
    reviewer     TEXT NOT NULL,
    reviewed_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_verdict ON reviews(verdict);
"""


# Added by the batch runner (additive only: the tables above are read by the review app as-is).
BATCH_DDL = """
-- One row per processing attempt: the provenance of every call (which run did it, how often).
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT NOT NULL,
    call_id      TEXT NOT NULL,
    work_key     TEXT,
    attempt      INTEGER NOT NULL,   -- 1 for the first try in this run
    outcome      TEXT NOT NULL,      -- ok | error | timeout | worker_lost | exception | reanalyzed
    error_kind   TEXT,
    message      TEXT,
    elapsed_s    REAL,
    worker       TEXT,
    finished_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_call ON attempts(call_id);
CREATE INDEX IF NOT EXISTS attempts_run  ON attempts(run_id);

-- sha256 of a file by (path, size, mtime): a rerun over an unchanged archive does not re-read it.
CREATE TABLE IF NOT EXISTS file_hashes (
    path      TEXT PRIMARY KEY,
    size      INTEGER NOT NULL,
    mtime_ns  INTEGER NOT NULL,
    sha256    TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS calls_work_key   ON calls(work_key);
CREATE INDEX IF NOT EXISTS calls_processed  ON calls(processed_at);
CREATE INDEX IF NOT EXISTS flags_severity   ON flags(severity);
CREATE INDEX IF NOT EXISTS flags_type_date  ON flags(type, call_date);
"""


def _ensure_batch_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(BATCH_DDL)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(calls)")}
    if "analysis_hash" not in cols:  # thresholds the stored metrics/flags were computed with
        conn.execute("ALTER TABLE calls ADD COLUMN analysis_hash TEXT")
    conn.commit()


def flag_id(call_id: str, flag: dict) -> str:
    return f"{call_id}:{flag['type']}:{int(round(float(flag['start']) * 1000))}"


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open (and create, unless ``readonly``) the store with WAL and foreign keys on."""
    path = Path(path)
    if readonly:
        if not path.is_file():
            raise FileNotFoundError(f"no callqa database at {path}")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(DDL)
        _ensure_batch_schema(conn)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('store_schema_version', ?)", (str(STORE_SCHEMA_VERSION),))
        conn.commit()
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    else:
        conn.commit()


def save_record(conn: sqlite3.Connection, record: dict, *, run_id: str | None = None,
                work_key: str | None = None) -> None:
    """Insert or replace one call and its flags (in the caller's transaction, if any)."""
    meta = record.get("metadata") or {}
    src = record.get("source") or {}
    prov = record.get("provenance") or {}
    err = record.get("error") or {}
    call_id = record["call_id"]
    processed_at = prov.get("processed_at") or ""
    call_date = (meta.get("recorded_at") or processed_at or "")[:10] or None
    conn.execute("DELETE FROM flags WHERE call_id = ?", (call_id,))
    conn.execute(
        """INSERT OR REPLACE INTO calls (call_id, status, error_kind, error_message, audio_path, sha256, duration_s,
               channels, agent_id, campaign, call_type, recorded_at, processed_at, run_id, config_hash,
               pipeline_version, work_key, n_flags, metadata_json, record_json)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
        (
            call_id, record["status"], err.get("kind"), err.get("message"), src.get("path"), src.get("sha256"),
            src.get("duration_s"), src.get("channels"), _s(meta.get("agent_id")), _s(meta.get("campaign")),
            _s(meta.get("call_type")), _s(meta.get("recorded_at")), processed_at, run_id,
            prov.get("config_hash"), prov.get("pipeline_version"), work_key, len(record.get("flags") or []),
            json.dumps(meta, ensure_ascii=False), json.dumps(record, ensure_ascii=False),
        ),
    )
    conn.executemany(
        """INSERT OR REPLACE INTO flags (flag_id, call_id, type, severity, start_s, end_s, role, evidence,
               detail_json, agent_id, campaign, call_date) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)""",
        [
            (flag_id(call_id, f), call_id, f["type"], f["severity"], f["start"], f["end"], f.get("role"),
             f["evidence"], json.dumps(f.get("detail") or {}, ensure_ascii=False), _s(meta.get("agent_id")),
             _s(meta.get("campaign")), call_date)
            for f in record.get("flags") or []
        ],
    )


def load_record(conn: sqlite3.Connection, call_id: str) -> dict | None:
    row = conn.execute("SELECT record_json FROM calls WHERE call_id = ?", (call_id,)).fetchone()
    return json.loads(row[0]) if row else None


def _s(v: object) -> str | None:
    return None if v is None or v == "" else str(v)

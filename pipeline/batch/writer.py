"""The single writer: the only code that touches the output folder and the database.

Commit order for one call (each step idempotent, so a crash anywhere is repaired by a rerun):

1. ``calls/<call_id>/record.json`` (+ ``transcript.vtt``, ``speakers.rttm``), each
   written to a temp file, fsynced and renamed into place (:mod:`pipeline.outputs`);
2. one SQLite transaction: the call, its flags, and the attempt in ``attempts``
   — **this is the commit point**: a call is done when its row is there with its work key;
3. the record appended to ``records.jsonl`` with a single ``write(2)`` on an
   ``O_APPEND`` descriptor, so a ``kill -9`` cannot leave half a line.

A crash between 2 and 3 leaves ``records.jsonl`` one line short; a record that
replaces an older one of the same call is not appended (that would duplicate the
call) but marks the file for rebuilding. Either way :meth:`Writer.reconcile`, run at
the start and end of every batch, rebuilds the file from the database, so after a
rerun it holds every call exactly once.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from .. import store
from ..outputs import atomic_write

log = logging.getLogger("pipeline")

DB_NAME = "callqa.db"
JSONL_NAME = "records.jsonl"
CALLS_DIR = "calls"
RUNS_DIR = "runs"


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def record_line(record: dict) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class Writer:
    def __init__(self, out_dir: str | Path, *, per_call_files: bool = True, vtt: bool = True,
                 rttm: bool = True) -> None:
        self.out = Path(out_dir)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / CALLS_DIR).mkdir(exist_ok=True)
            (self.out / RUNS_DIR).mkdir(exist_ok=True)
        except OSError as e:
            raise OSError(f"cannot create output folder {self.out}: {e.strerror}") from None
        self.per_call_files = per_call_files
        self.vtt, self.rttm = vtt, rttm
        self.conn = store.connect(self.out / DB_NAME)
        self.jsonl = self.out / JSONL_NAME
        self._fd: int | None = None

    # -- records.jsonl -------------------------------------------------------------
    def _dirty(self) -> bool:
        row = self.conn.execute("SELECT value FROM meta WHERE key='jsonl_dirty'").fetchone()
        return bool(row and row[0] == "1")

    def _set_dirty(self, dirty: bool) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('jsonl_dirty', ?)", ("1" if dirty else "0",))

    def reconcile(self, *, force: bool = False) -> bool:
        """Make ``records.jsonl`` hold exactly the stored calls; True when it was rebuilt."""
        n_db = self.conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
        if not force and not self._dirty() and _count_lines_ok(self.jsonl) == n_db:
            return False
        self.rebuild_jsonl()
        return True

    def rebuild_jsonl(self) -> None:
        self._close_fd()
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{JSONL_NAME}.", suffix=".tmp", dir=self.out)
        try:
            with os.fdopen(fd, "wb") as f:
                for (text,) in self.conn.execute("SELECT record_json FROM calls ORDER BY rowid"):
                    f.write(text.encode("utf-8") + b"\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.jsonl)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        with store.transaction(self.conn):
            self._set_dirty(False)
        log.info("rebuilt %s from the database", self.jsonl)

    def _append(self, line: bytes) -> None:
        if self._fd is None:
            self._fd = os.open(self.jsonl, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        # One write(2) of the whole line: a signal cannot cut it in half.
        n = os.write(self._fd, line)
        if n != len(line):  # disk full: mark for rebuild rather than leave a torn line
            with store.transaction(self.conn):
                self._set_dirty(True)
            raise OSError(f"short write to {self.jsonl} ({n} of {len(line)} bytes); is the disk full?")

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- per-call files --------------------------------------------------------------
    def call_dir(self, call_id: str) -> Path:
        return self.out / CALLS_DIR / call_id

    def _write_call_files(self, record: dict) -> None:
        # Same layout as `callqa analyze` (calls/<call_id>/record.json, transcript.vtt, speakers.rttm),
        # each file written to a temp file and renamed into place.
        from ..outputs import write_call_outputs

        write_call_outputs(record, self.out, vtt=self.vtt, rttm=self.rttm)

    # -- commits ---------------------------------------------------------------------
    def commit(self, record: dict, *, run_id: str, work_key: str | None, analysis_hash: str | None,
               attempt: int, outcome: str, elapsed_s: float | None = None, worker: str | None = None) -> None:
        """Store one finished call (see the module docstring for the order)."""
        if self.per_call_files:
            self._write_call_files(record)
        call_id = record["call_id"]
        existed = self.conn.execute("SELECT 1 FROM calls WHERE call_id=?", (call_id,)).fetchone() is not None
        err = record.get("error") or {}
        with store.transaction(self.conn):
            store.save_record(self.conn, record, run_id=run_id, work_key=work_key)
            self.conn.execute("UPDATE calls SET analysis_hash=? WHERE call_id=?", (analysis_hash, call_id))
            self._attempt(run_id, call_id, work_key, attempt, outcome, err.get("kind"), err.get("message"),
                          elapsed_s, worker)
            if existed:
                self._set_dirty(True)
        if not existed:
            self._append(record_line(record))

    def log_attempt(self, *, run_id: str, call_id: str, work_key: str | None, attempt: int, outcome: str,
                    message: str, elapsed_s: float | None, worker: str | None) -> None:
        """A failed try that will be retried: kept for provenance, no record yet."""
        with store.transaction(self.conn):
            self._attempt(run_id, call_id, work_key, attempt, outcome, outcome, message, elapsed_s, worker)

    def _attempt(self, run_id, call_id, work_key, attempt, outcome, kind, message, elapsed_s, worker) -> None:
        self.conn.execute(
            "INSERT INTO attempts (run_id, call_id, work_key, attempt, outcome, error_kind, message, elapsed_s, worker,"
            " finished_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (run_id, call_id, work_key, attempt, outcome, kind, message, elapsed_s, worker, utcnow()))

    def update_metadata(self, call_id: str, metadata: dict) -> None:
        """The manifest changed a call's metadata but not its audio: refresh it without reprocessing."""
        rec = store.load_record(self.conn, call_id)
        if rec is None:
            return
        rec["metadata"] = metadata
        row = self.conn.execute("SELECT run_id, work_key, analysis_hash FROM calls WHERE call_id=?",
                                (call_id,)).fetchone()
        if self.per_call_files:
            self._write_call_files(rec)
        with store.transaction(self.conn):
            store.save_record(self.conn, rec, run_id=row["run_id"], work_key=row["work_key"])
            self.conn.execute("UPDATE calls SET analysis_hash=? WHERE call_id=?", (row["analysis_hash"], call_id))
            self._set_dirty(True)

    # -- runs ------------------------------------------------------------------------
    def start_run(self, run_id: str, *, source: str, config_hash: str, version: str) -> None:
        with store.transaction(self.conn):
            self.conn.execute("INSERT INTO runs (run_id, started_at, source, config_hash, pipeline_version)"
                              " VALUES (?,?,?,?,?)", (run_id, utcnow(), source, config_hash, version))

    def finish_run(self, run_id: str, summary: dict) -> None:
        self.reconcile()
        with store.transaction(self.conn):
            self.conn.execute("UPDATE runs SET finished_at=?, summary_json=? WHERE run_id=?",
                              (summary.get("finished_at") or utcnow(), json.dumps(summary), run_id))
        text = json.dumps(summary, indent=1, ensure_ascii=False)
        atomic_write(self.out / RUNS_DIR / f"{run_id}.json", text)
        atomic_write(self.out / "summary.json", text)

    # -- file hash cache ------------------------------------------------------------------
    def cached_hashes(self) -> dict[str, tuple[int, int, str]]:
        return {r[0]: (r[1], r[2], r[3]) for r in self.conn.execute("SELECT path, size, mtime_ns, sha256 FROM file_hashes")}

    def save_hashes(self, rows: Iterable[tuple[str, int, int, str]]) -> None:
        with store.transaction(self.conn):
            self.conn.executemany("INSERT OR REPLACE INTO file_hashes VALUES (?,?,?,?)", list(rows))

    def close(self) -> None:
        self._close_fd()
        try:
            self.conn.close()
        except sqlite3.Error:
            pass


def _count_lines_ok(path: Path) -> int:
    """Number of lines, or -1 when the file is missing or ends in a partial line."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return -1
    if size == 0:
        return 0
    n = 0
    with open(path, "rb") as f:
        last = b""
        while block := f.read(1 << 22):
            n += block.count(b"\n")
            last = block
    return n if last.endswith(b"\n") else -1

"""SQL behind the review app, ``callqa export-reviews`` and the verdict precision in stats.

Reads the store's ``flags``/``calls``/``reviews`` tables (owned by pipeline.store) and
adds one table of its own, ``review_log``: every verdict ever given, so a changed mind
stays auditable while ``reviews`` keeps the current verdict per flag.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REVIEW_DDL = """
CREATE TABLE IF NOT EXISTS review_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    flag_id      TEXT NOT NULL,
    verdict      TEXT NOT NULL CHECK (verdict IN ('confirmed', 'dismissed', 'cleared')),
    note         TEXT,
    reviewer     TEXT NOT NULL,
    reviewed_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS review_log_flag ON review_log(flag_id);
"""

SEVERITY_RANK = {"high": 3, "medium": 2, "low": 1}
STATES = ("open", "reviewed", "confirmed", "dismissed", "all")
SORTS = {
    # name -> ORDER BY; every order ends on flag_id so pages are stable
    "newest": "f.call_date DESC, f.call_id, f.start_s, f.flag_id",
    "oldest": "f.call_date ASC, f.call_id, f.start_s, f.flag_id",
    "severity": "CASE f.severity WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END DESC, f.call_date DESC, f.flag_id",
    "type": "f.type, f.call_date DESC, f.flag_id",
    "agent": "f.agent_id, f.call_date DESC, f.flag_id",
    "call": "f.call_id, f.start_s, f.flag_id",
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NOTE_MAX = 2000  # characters kept of a reviewer's note


def ensure_review_tables(conn: sqlite3.Connection) -> None:
    conn.executescript(REVIEW_DDL)
    conn.commit()


@dataclass(frozen=True)
class FlagFilter:
    type: str = ""
    severity: str = ""
    agent: str = ""
    campaign: str = ""
    date_from: str = ""
    date_to: str = ""
    state: str = "open"
    sort: str = "newest"

    def __post_init__(self) -> None:
        for name in ("date_from", "date_to"):
            v = getattr(self, name)
            if v and not _DATE.match(v):
                raise ValueError(f"{name} must be YYYY-MM-DD, got {v!r}")
        if self.state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}")

    def where(self, *, with_type: bool = True) -> tuple[str, list]:
        clauses: list[str] = []
        args: list = []
        for col, val in (("f.type", self.type if with_type else ""), ("f.severity", self.severity),
                         ("f.agent_id", self.agent), ("f.campaign", self.campaign)):
            if val:
                clauses.append(f"{col} = ?")
                args.append(val)
        if self.date_from:
            clauses.append("f.call_date >= ?")
            args.append(self.date_from)
        if self.date_to:
            clauses.append("f.call_date <= ?")
            args.append(self.date_to)
        if self.state == "open":
            clauses.append("r.flag_id IS NULL")
        elif self.state == "reviewed":
            clauses.append("r.flag_id IS NOT NULL")
        elif self.state in ("confirmed", "dismissed"):
            clauses.append("r.verdict = ?")
            args.append(self.state)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


@dataclass
class FlagPage:
    rows: list[dict]
    total: int
    page: int
    pages: int
    counts: list[dict] = field(default_factory=list)  # per type under the other filters


_FROM = " FROM flags f LEFT JOIN reviews r ON r.flag_id = f.flag_id"


def list_flags(conn: sqlite3.Connection, flt: FlagFilter, *, page: int = 1, page_size: int = 50) -> FlagPage:
    counts = type_counts(conn, flt)
    total = sum(c["n"] for c in counts if not flt.type or c["type"] == flt.type)
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    where, args = flt.where()
    rows = conn.execute(
        "SELECT f.flag_id, f.call_id, f.type, f.severity, f.start_s, f.end_s, f.role, f.evidence, f.agent_id,"
        " f.campaign, f.call_date, r.verdict, r.note, r.reviewer, r.reviewed_at" + _FROM + where
        + " ORDER BY " + SORTS[flt.sort] + " LIMIT ? OFFSET ?",
        [*args, page_size, (page - 1) * page_size],
    ).fetchall()
    return FlagPage(rows=[dict(r) for r in rows], total=total, page=page, pages=pages,
                    counts=[c for c in counts if c["n"]])


def type_counts(conn: sqlite3.Connection, flt: FlagFilter) -> list[dict]:
    """Per flag type under every filter but the type: flags in the chosen state, confirmed, dismissed.

    Two cheap aggregates instead of one join over every flag: totals per type from the flags
    indexes, verdicts per type from the (much smaller) reviews table; open = total - reviewed.
    """
    base = dataclasses.replace(flt, type="", state="all")
    where, args = base.where()
    totals = dict(conn.execute("SELECT f.type, COUNT(*) FROM flags f" + where + " GROUP BY f.type", args).fetchall())
    verdicts: dict[str, dict[str, int]] = {}
    for ftype, verdict, n in conn.execute(
            "SELECT f.type, r.verdict, COUNT(*) FROM reviews r JOIN flags f ON f.flag_id = r.flag_id"
            + where + " GROUP BY f.type, r.verdict", args):
        verdicts.setdefault(ftype, {})[verdict] = n
    out = []
    for ftype, total in totals.items():
        confirmed = verdicts.get(ftype, {}).get("confirmed", 0)
        dismissed = verdicts.get(ftype, {}).get("dismissed", 0)
        n = {"all": total, "open": total - confirmed - dismissed, "reviewed": confirmed + dismissed,
             "confirmed": confirmed, "dismissed": dismissed}[flt.state]
        out.append({"type": ftype, "n": n, "total": total, "confirmed": confirmed, "dismissed": dismissed})
    return sorted(out, key=lambda c: (-c["n"], c["type"]))


def filter_choices(conn: sqlite3.Connection, *, limit: int = 500) -> dict:
    """Values offered in the filter form (read from the indexes, so cheap)."""
    def distinct(col: str) -> list[str]:
        return [r[0] for r in conn.execute(
            f"SELECT DISTINCT {col} FROM flags WHERE {col} IS NOT NULL ORDER BY {col} LIMIT ?", (limit,))]
    return {"types": distinct("type"), "agents": distinct("agent_id"), "campaigns": distinct("campaign")}


def get_call(conn: sqlite3.Connection, call_id: str) -> dict | None:
    row = conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()
    if row is None:
        return None
    out = dict(row)
    out["record"] = json.loads(out.pop("record_json"))
    return out


def call_flags(conn: sqlite3.Connection, call_id: str) -> list[dict]:
    rows = conn.execute(
        "SELECT f.*, r.verdict, r.note, r.reviewer, r.reviewed_at" + _FROM
        + " WHERE f.call_id = ? ORDER BY f.start_s, f.type", (call_id,)).fetchall()
    out = []
    for r in rows:
        d = dict(r)
        d["detail"] = json.loads(d.pop("detail_json") or "{}")
        out.append(d)
    return out


def get_flag(conn: sqlite3.Connection, fid: str) -> dict | None:
    row = conn.execute("SELECT flag_id, call_id, type FROM flags WHERE flag_id = ?", (fid,)).fetchone()
    return dict(row) if row else None


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def save_verdict(conn: sqlite3.Connection, fid: str, verdict: str, *, reviewer: str, note: str = "",
                 at: str | None = None) -> None:
    """Record a verdict (``confirmed`` | ``dismissed``) or take it back (``cleared``), with who and when."""
    if verdict not in ("confirmed", "dismissed", "cleared"):
        raise ValueError("verdict must be confirmed, dismissed or cleared")
    note = (note or "").strip()[:NOTE_MAX] or None
    at = at or now_utc()
    conn.execute("BEGIN IMMEDIATE")
    try:
        if verdict == "cleared":
            conn.execute("DELETE FROM reviews WHERE flag_id = ?", (fid,))
        else:
            conn.execute("INSERT OR REPLACE INTO reviews (flag_id, verdict, note, reviewer, reviewed_at)"
                         " VALUES (?,?,?,?,?)", (fid, verdict, note, reviewer, at))
        conn.execute("INSERT INTO review_log (flag_id, verdict, note, reviewer, reviewed_at) VALUES (?,?,?,?,?)",
                     (fid, verdict, note, reviewer, at))
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def review_history(conn: sqlite3.Connection, fid: str) -> list[dict]:
    try:
        rows = conn.execute("SELECT verdict, note, reviewer, reviewed_at FROM review_log WHERE flag_id = ?"
                            " ORDER BY id DESC", (fid,)).fetchall()
    except sqlite3.OperationalError:  # store never opened by the app: no log yet
        return []
    return [dict(r) for r in rows]


def _split_flag_id(fid: str) -> tuple[str, str]:
    """``call_id:type:start_ms`` -> (call_id, type); call ids may themselves contain ':'."""
    parts = fid.rsplit(":", 2)
    return (parts[0], parts[1]) if len(parts) == 3 else (fid, "")


EXPORT_COLUMNS = ("flag_id", "call_id", "type", "severity", "start_s", "end_s", "role", "agent_id", "campaign",
                  "call_date", "verdict", "note", "reviewer", "reviewed_at", "flag_present")


def reviews_for_export(conn: sqlite3.Connection) -> list[dict]:
    """Every current verdict with its flag's fields; a flag gone after re-analysis keeps its verdict."""
    rows = conn.execute(
        "SELECT r.flag_id, f.call_id, f.type, f.severity, f.start_s, f.end_s, f.role, f.agent_id, f.campaign,"
        " f.call_date, r.verdict, r.note, r.reviewer, r.reviewed_at, f.flag_id IS NOT NULL AS flag_present"
        " FROM reviews r LEFT JOIN flags f ON f.flag_id = r.flag_id ORDER BY r.reviewed_at, r.flag_id").fetchall()
    out = []
    for r in rows:
        d = dict(r)
        if d["call_id"] is None:
            d["call_id"], d["type"] = _split_flag_id(d["flag_id"])
        d["flag_present"] = bool(d["flag_present"])
        out.append(d)
    return out


def export_reviews(conn: sqlite3.Connection, out: str | Path) -> int:
    """Write verdicts to ``out``: CSV if it ends in .csv, else JSON lines. Returns the count."""
    out = Path(out)
    rows = reviews_for_export(conn)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        if out.suffix.lower() == ".csv":
            w = csv.DictWriter(fh, fieldnames=EXPORT_COLUMNS)
            w.writeheader()
            w.writerows(rows)
        else:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(out)
    return len(rows)


def verdict_precision(conn: sqlite3.Connection) -> dict[str, dict]:
    """Per flag type: confirmed, dismissed, precision = confirmed / (confirmed + dismissed).

    For ``callqa stats`` and threshold calibration; types with no verdicts are absent.
    """
    out: dict[str, dict] = {}
    for r in reviews_for_export(conn):
        s = out.setdefault(r["type"], {"confirmed": 0, "dismissed": 0})
        s[r["verdict"]] += 1
    for s in out.values():
        s["reviewed"] = s["confirmed"] + s["dismissed"]
        s["precision"] = s["confirmed"] / s["reviewed"] if s["reviewed"] else None
    return dict(sorted(out.items()))

"""Tables researchers can query: one row per call and one row per flag (Parquet or CSV).

Call rows: identity, source, status, flattened metrics (``talk_ratio_agent``,
``silence_longest_s`` …; nested keys joined with ``_``; lists stored as JSON text),
per-type flag counts (``flags_<type>``) and every metadata column (agent_id, campaign, …).
Flag rows: the flag, the call's metadata, and the supervisor's verdict when there is one.

Source: an output folder / ``callqa.db`` (fast: SQLite extracts the parts it needs)
or a ``records.jsonl``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger("pipeline")

CALL_BASE_COLUMNS = ("call_id", "status", "error_kind", "error_message", "audio_path", "sha256", "format", "codec",
                     "duration_s", "sample_rate", "channels", "n_speakers", "n_turns", "n_flags", "processed_at",
                     "pipeline_version", "config_hash", "run_id")
FLAG_COLUMNS = ("flag_id", "call_id", "type", "severity", "start_s", "end_s", "role", "evidence", "detail_json",
                "verdict", "reviewer", "reviewed_at", "review_note")


def flatten(obj: Any, prefix: str = "", out: dict | None = None) -> dict:
    """``{"talk_ratio": {"agent": .6}}`` -> ``{"talk_ratio_agent": .6}``; lists become JSON text."""
    out = {} if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}_{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        out[prefix] = json.dumps(obj, ensure_ascii=False)
    else:
        out[prefix] = obj
    return out


def resolve_db(source: str | Path) -> Path | None:
    p = Path(source)
    if p.is_dir() and (p / "callqa.db").is_file():
        return p / "callqa.db"
    if p.is_file() and p.suffix in (".db", ".sqlite", ".sqlite3"):
        return p
    return None


def _call_row(call_id, status, err_kind, err_msg, source, metrics, metadata, prov, flag_types, n_speakers,
              n_turns) -> dict:
    source = source or {}
    prov = prov or {}
    row = {
        "call_id": call_id, "status": status, "error_kind": err_kind, "error_message": err_msg,
        "audio_path": source.get("path"), "sha256": source.get("sha256"), "format": source.get("format"),
        "codec": source.get("codec"), "duration_s": source.get("duration_s"), "sample_rate": source.get("sample_rate"),
        "channels": source.get("channels"), "n_speakers": n_speakers, "n_turns": n_turns, "n_flags": len(flag_types),
        "processed_at": prov.get("processed_at"), "pipeline_version": prov.get("pipeline_version"),
        "config_hash": prov.get("config_hash"), "run_id": (prov.get("batch") or {}).get("run_id"),
    }
    for t in flag_types:
        row[f"flags_{t}"] = row.get(f"flags_{t}", 0) + 1
    for k, v in flatten(metrics or {}).items():
        row[k if k not in row else f"metric_{k}"] = v
    for k, v in (metadata or {}).items():
        v = json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
        row[k if k not in row else f"meta_{k}"] = v
    return row


def iter_call_rows(source: str | Path) -> Iterator[dict]:
    db = resolve_db(source)
    if db is not None:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            q = """SELECT c.call_id, c.status, c.error_kind, c.error_message,
                          json_extract(c.record_json, '$.source'), json_extract(c.record_json, '$.metrics'),
                          c.metadata_json, json_extract(c.record_json, '$.provenance'),
                          json_array_length(c.record_json, '$.speakers'), json_array_length(c.record_json, '$.segments'),
                          (SELECT json_group_array(f.type) FROM flags f WHERE f.call_id = c.call_id)
                   FROM calls c ORDER BY c.call_id"""
            for (cid, status, ek, em, src, met, meta, prov, nsp, ntu, ftypes) in conn.execute(q):
                yield _call_row(cid, status, ek, em, json.loads(src or "{}"), json.loads(met or "{}"),
                                json.loads(meta or "{}"), json.loads(prov or "{}"), json.loads(ftypes or "[]"),
                                nsp, ntu)
        finally:
            conn.close()
        return
    for rec in _iter_jsonl(source):
        err = rec.get("error") or {}
        yield _call_row(rec["call_id"], rec["status"], err.get("kind"), err.get("message"), rec.get("source"),
                        rec.get("metrics"), rec.get("metadata"), rec.get("provenance"),
                        [f["type"] for f in rec.get("flags") or []], len(rec.get("speakers") or []),
                        len(rec.get("segments") or []))


def iter_flag_rows(source: str | Path) -> Iterator[dict]:
    db = resolve_db(source)
    if db is not None:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            q = """SELECT f.flag_id, f.call_id, f.type, f.severity, f.start_s, f.end_s, f.role, f.evidence,
                          f.detail_json, r.verdict, r.reviewer, r.reviewed_at, r.note, c.metadata_json
                   FROM flags f JOIN calls c ON c.call_id = f.call_id
                   LEFT JOIN reviews r ON r.flag_id = f.flag_id ORDER BY f.call_id, f.start_s"""
            for row in conn.execute(q):
                d = dict(zip(FLAG_COLUMNS, row[:13]))
                _add_meta(d, json.loads(row[13] or "{}"))
                yield d
        finally:
            conn.close()
        return
    from .store import flag_id

    for rec in _iter_jsonl(source):
        for f in rec.get("flags") or []:
            d = {"flag_id": flag_id(rec["call_id"], f), "call_id": rec["call_id"], "type": f["type"],
                 "severity": f["severity"], "start_s": f["start"], "end_s": f["end"], "role": f.get("role"),
                 "evidence": f.get("evidence"), "detail_json": json.dumps(f.get("detail") or {}),
                 "verdict": None, "reviewer": None, "reviewed_at": None, "review_note": None}
            _add_meta(d, rec.get("metadata") or {})
            yield d


def _add_meta(d: dict, meta: dict) -> None:
    for k, v in meta.items():
        v = json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
        d[k if k not in d else f"meta_{k}"] = v


def _iter_jsonl(source: str | Path) -> Iterator[dict]:
    p = Path(source)
    if p.is_dir():
        p = p / "records.jsonl"
    if not p.is_file():
        raise FileNotFoundError(f"nothing to export at {source}: give an output folder (callqa.db or records.jsonl), "
                                "a .db file or a records.jsonl")
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    log.warning("%s:%d: skipped a line that is not JSON (truncated by a crash?)", p, n)


_INT_COLUMNS = {"sample_rate", "channels", "n_speakers", "n_turns"}


def _frame(rows: list[dict], first: tuple[str, ...]):
    import pandas as pd

    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(first))
    cols = [c for c in first if c in df.columns]
    df = df[cols + sorted(c for c in df.columns if c not in cols)]
    for c in df.columns:
        if c.startswith("flags_") or c == "n_flags":
            df[c] = df[c].fillna(0).astype("int64")
        elif c in _INT_COLUMNS:
            df[c] = df[c].astype("Int64")  # nullable: error records have no sample rate
        elif df[c].dtype == object:
            kinds = {type(v) for v in df[c] if v is not None and v == v}
            if len(kinds) > 1 and not kinds <= {int, float}:
                # mixed types (e.g. a metadata column that is a number on some rows): text keeps them all
                df[c] = df[c].map(lambda v: None if v is None or v != v else str(v))
    return df


def calls_frame(source: str | Path):
    """One row per call as a pandas DataFrame."""
    return _frame(list(iter_call_rows(source)), CALL_BASE_COLUMNS)


def flags_frame(source: str | Path):
    """One row per flag (with the call's metadata and any verdict) as a pandas DataFrame."""
    return _frame(list(iter_flag_rows(source)), FLAG_COLUMNS)


def export(source: str | Path, out_dir: str | Path, *, fmt: str = "parquet") -> dict[str, Path]:
    """Write ``calls.<fmt>`` and ``flags.<fmt>`` into ``out_dir``; return their paths."""
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"export format must be 'parquet' or 'csv', got {fmt!r}")
    from .outputs import atomic_write

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, df in (("calls", calls_frame(source)), ("flags", flags_frame(source))):
        path = out_dir / f"{name}.{fmt}"
        if fmt == "parquet":
            import io

            buf = io.BytesIO()
            df.to_parquet(buf, index=False, engine="pyarrow")
            atomic_write(path, buf.getvalue())
        else:
            atomic_write(path, df.to_csv(index=False))
        paths[name] = path
    return paths

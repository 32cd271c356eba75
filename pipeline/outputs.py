"""Per-call output files: record.json, transcript.vtt, speakers.rttm (all written atomically)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .record import CallRecord, round_times


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write via a temp file in the same folder + rename: a reader never sees half a file."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _ts(t: float) -> str:
    ms = int(round(max(0.0, t) * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def to_vtt(record: dict) -> str:
    lines = ["WEBVTT", ""]
    for i, seg in enumerate(record.get("segments") or [], 1):
        role = seg.get("role") or "unknown"
        lines += [str(i), f"{_ts(seg['start'])} --> {_ts(seg['end'])}",
                  f"<v {role.capitalize()}>{seg.get('text', '').replace('-->', '->')}", ""]
    return "\n".join(lines)


def to_rttm(record: dict) -> str:
    uri = record["call_id"].replace(" ", "_")
    return "".join(
        f"SPEAKER {uri} 1 {seg['start']:.3f} {seg['end'] - seg['start']:.3f} <NA> <NA> "
        f"{seg['speaker']} <NA> <NA>\n"
        for seg in record.get("segments") or []
    )


def write_call_outputs(record: CallRecord | dict, out_dir: Path, *, vtt: bool = True, rttm: bool = True,
                       with_words: bool = True) -> Path:
    """Write ``out_dir/calls/<call_id>/`` and return that folder."""
    d = record if isinstance(record, dict) else round_times(record.to_dict(with_words=with_words))
    folder = Path(out_dir) / "calls" / d["call_id"]
    atomic_write(folder / "record.json", json.dumps(d, indent=2, ensure_ascii=False))
    if d["status"] == "ok":
        if vtt:
            atomic_write(folder / "transcript.vtt", to_vtt(d))
        if rttm:
            atomic_write(folder / "speakers.rttm", to_rttm(d))
    return folder

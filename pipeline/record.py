"""The per-call record: the contract other tools rely on (see docs/RECORD.md).

One JSON object per call. ``schema_version`` changes in its major part when a field
is removed or changes meaning; new optional fields bump the minor part.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .timeline import Speaker, Timeline, Turn

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "record.schema.json"

SEVERITIES = ("low", "medium", "high")


@dataclass(frozen=True)
class Flag:
    """Something a supervisor should look at, with the moment and the evidence."""

    type: str
    severity: str
    start: float
    end: float
    role: str
    evidence: str
    detail: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"flag severity must be one of {SEVERITIES}, got {self.severity!r}")
        if self.end < self.start:
            raise ValueError(f"flag {self.type}: end {self.end} before start {self.start}")

    def to_dict(self) -> dict:
        return {
            "type": self.type,
            "severity": self.severity,
            "start": self.start,
            "end": self.end,
            "role": self.role,
            "evidence": self.evidence,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Flag":
        return cls(
            type=d["type"],
            severity=d["severity"],
            start=float(d["start"]),
            end=float(d["end"]),
            role=d["role"],
            evidence=d["evidence"],
            detail=dict(d.get("detail") or {}),
        )


@dataclass(frozen=True)
class AnalysisResult:
    """What every analysis returns: metrics for ``metrics.<name>`` and flags."""

    metrics: dict
    flags: tuple[Flag, ...] = ()


@dataclass(frozen=True)
class SourceInfo:
    path: str
    sha256: str
    format: str
    codec: str
    duration_s: float
    sample_rate: int
    channels: int
    size_bytes: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "SourceInfo":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class CallError:
    kind: str  # empty | decode_error | unsupported_format | too_short | too_long | silent | timeout | internal
    message: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message}


@dataclass
class CallRecord:
    call_id: str
    status: str  # ok | error
    source: dict
    error: CallError | None = None
    timeline: Timeline | None = None
    role_assignment: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION

    def to_dict(self, *, with_words: bool = True) -> dict:
        tl = self.timeline
        return {
            "schema_version": self.schema_version,
            "call_id": self.call_id,
            "status": self.status,
            "error": self.error.to_dict() if self.error else None,
            "source": self.source,
            "metadata": self.metadata,
            "duration_s": tl.duration if tl else self.source.get("duration_s"),
            "speakers": [s.to_dict() for s in tl.speakers] if tl else [],
            "role_assignment": self.role_assignment,
            "segments": [t.to_dict(with_words=with_words) for t in tl.turns] if tl else [],
            "metrics": self.metrics,
            "flags": [f.to_dict() for f in sorted(self.flags, key=lambda f: (f.start, f.type))],
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "CallRecord":
        timeline = None
        if d.get("status") == "ok":
            timeline = Timeline(
                duration=float(d.get("duration_s") or d["source"].get("duration_s") or 0.0),
                speakers=tuple(Speaker.from_dict(s) for s in d.get("speakers", [])),
                turns=tuple(Turn.from_dict(t) for t in d.get("segments", [])),
            )
        err = d.get("error")
        return cls(
            call_id=d["call_id"],
            status=d["status"],
            source=d.get("source") or {},
            error=CallError(err["kind"], err["message"]) if err else None,
            timeline=timeline,
            role_assignment=d.get("role_assignment") or {},
            metrics=d.get("metrics") or {},
            flags=[Flag.from_dict(f) for f in d.get("flags", [])],
            provenance=d.get("provenance") or {},
            metadata=d.get("metadata") or {},
            schema_version=d.get("schema_version", SCHEMA_VERSION),
        )

    def to_json(self, *, indent: int | None = None, with_words: bool = True) -> str:
        return json.dumps(round_times(self.to_dict(with_words=with_words)), indent=indent, ensure_ascii=False)


def error_record(call_id: str, source: dict, kind: str, message: str, *, provenance: dict | None = None,
                 metadata: dict | None = None) -> CallRecord:
    return CallRecord(call_id=call_id, status="error", source=source, error=CallError(kind, message),
                      provenance=provenance or {}, metadata=metadata or {})


def round_times(obj: Any, ndigits: int = 3) -> Any:
    """Round every float to milliseconds (only at serialization time)."""
    if isinstance(obj, float):
        return round(obj, ndigits)
    if isinstance(obj, dict):
        return {k: round_times(v, ndigits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [round_times(v, ndigits) for v in obj]
    return obj


@lru_cache(maxsize=1)
def record_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def validate_record(record: dict) -> None:
    """Raise ``jsonschema.ValidationError`` if ``record`` breaks the contract."""
    import jsonschema

    jsonschema.validate(record, record_schema())

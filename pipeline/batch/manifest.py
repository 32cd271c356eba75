"""What a batch processes: a folder of recordings or a manifest (CSV or JSONL).

A manifest row names a recording (``path``, relative to the manifest's folder unless
absolute), optionally its ``call_id`` and channel map, and carries every other column
into the record's ``metadata`` (agent_id, campaign, call_type, direction, recorded_at, …).

Channel map (which stereo channel is the agent), any of:
  * ``channel_map`` = ``agent=left`` / ``agent=1`` / ``agent=right,customer=left`` (CSV)
    or ``{"agent": 0, "customer": 1}`` (JSONL); 0 = left, 1 = right; a mono speaker id
    such as ``agent=S1`` is passed through
  * ``agent_channel`` / ``customer_channel`` columns (0/1 or left/right)
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..audio import is_audio_path

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson")
_RESERVED = {"path", "call_id", "channel_map", "agent_channel", "customer_channel", "metadata"}


class ManifestError(ValueError):
    """The source cannot be read as a batch: names the file and the line."""


@dataclass(frozen=True)
class WorkItem:
    """One call to process."""

    call_id: str
    path: str  # absolute
    channel_map: str | None = None  # "agent=left" (see pipeline.roles.parse_channel_map)
    metadata: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"call_id": self.call_id, "path": self.path, "channel_map": self.channel_map,
                "metadata": self.metadata}


def read_source(source: str | Path) -> list[WorkItem]:
    """Work items of a folder (recursively, every audio file) or a manifest file."""
    source = Path(source)
    if source.is_dir():
        return _from_folder(source)
    if not source.is_file():
        raise ManifestError(f"batch source not found: {source} (give a folder of recordings or a .csv/.jsonl manifest)")
    suffix = source.suffix.lower()
    if suffix == ".csv":
        items = _from_csv(source)
    elif suffix in (".jsonl", ".ndjson"):
        items = _from_jsonl(source)
    else:
        raise ManifestError(f"{source}: unknown manifest type {suffix!r}; use .csv or .jsonl (or give a folder)")
    _check_unique(items, source)
    return items


def _from_folder(folder: Path) -> list[WorkItem]:
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and is_audio_path(p) and not p.name.startswith("."))
    stems: dict[str, int] = {}
    for p in paths:
        stems[p.stem] = stems.get(p.stem, 0) + 1
    items = []
    for p in paths:
        # call_id is the file stem; where two files share a stem, their relative paths tell them apart.
        if stems[p.stem] == 1:
            cid = p.stem
        else:
            cid = "__".join(p.relative_to(folder).with_suffix("").parts)
        items.append(WorkItem(call_id=cid, path=str(p.resolve())))
    return items


def _from_csv(path: Path) -> list[WorkItem]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "path" not in [c.strip() for c in reader.fieldnames]:
            raise ManifestError(f"{path}: a manifest CSV needs a header row with a 'path' column "
                                f"(found: {reader.fieldnames})")
        items = []
        for n, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}
            items.append(_item(row, path, n))
    return items


def _from_jsonl(path: Path) -> list[WorkItem]:
    items = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{path}:{n}: not valid JSON ({e.msg}); one JSON object per line") from None
            if not isinstance(row, dict):
                raise ManifestError(f"{path}:{n}: each line must be a JSON object")
            items.append(_item(row, path, n))
    return items


def _item(row: dict, manifest: Path, line: int) -> WorkItem:
    where = f"{manifest}:{line}"
    raw = row.get("path")
    if not raw:
        raise ManifestError(f"{where}: empty 'path'")
    p = Path(str(raw)).expanduser()
    if not p.is_absolute():
        p = manifest.parent / p
    p = p.resolve()
    cid = str(row.get("call_id") or "").strip() or p.stem
    metadata = {}
    if isinstance(row.get("metadata"), dict):
        metadata.update(row["metadata"])
    for k, v in row.items():
        if k in _RESERVED or v is None or v == "":
            continue
        metadata[k] = v
    return WorkItem(call_id=cid, path=str(p), channel_map=_channel_map(row, where), metadata=metadata)


def _channel_map(row: dict, where: str) -> str | None:
    """The channel map in :func:`pipeline.roles.parse_channel_map`'s form (``agent=left``), or None."""
    raw = row.get("channel_map")
    agent = customer = None
    if isinstance(raw, dict):
        agent, customer = raw.get("agent"), raw.get("customer")
    elif isinstance(raw, str) and raw.strip():
        text = raw.strip()
        if text.startswith("{"):
            try:
                d = json.loads(text)
                agent, customer = d.get("agent"), d.get("customer")
            except (json.JSONDecodeError, AttributeError):
                raise ManifestError(f"{where}: channel_map {raw!r} is not a JSON object") from None
        else:
            for part in text.replace(";", ",").split(","):
                if not part.strip():
                    continue
                k, sep, v = (x.strip() for x in re.split(r"([=:])", part, maxsplit=1)) if re.search(r"[=:]", part) \
                    else (part.strip(), "", "")
                if not sep:
                    raise ManifestError(f"{where}: channel_map entry {part!r}; write it as agent=left (or agent=0)")
                if k.lower() == "agent":
                    agent = v
                elif k.lower() == "customer":
                    customer = v
                else:
                    raise ManifestError(f"{where}: channel_map role {k!r} must be 'agent' or 'customer'")
    if row.get("agent_channel") not in (None, ""):
        agent = row["agent_channel"]
    if row.get("customer_channel") not in (None, ""):
        customer = row["customer_channel"]
    agent = _channel_name(agent, where) if agent not in (None, "") else None
    customer = _channel_name(customer, where) if customer not in (None, "") else None
    if agent is None and customer is not None:
        if customer not in _OTHER:
            raise ManifestError(f"{where}: give the agent's channel (customer={customer!r} alone is ambiguous)")
        agent = _OTHER[customer]
    if agent is not None and customer is not None and agent == customer:
        raise ManifestError(f"{where}: agent and customer cannot share channel {agent!r}")
    return f"agent={agent}" if agent is not None else None


_OTHER = {"left": "right", "right": "left"}


def _channel_name(v: object, where: str) -> str:
    """0/1/left/right -> left/right; anything else is a mono speaker id (e.g. S1)."""
    text = str(v).strip()
    low = text.lower()
    if low in ("0", "left", "l", "ch0"):
        return "left"
    if low in ("1", "right", "r", "ch1"):
        return "right"
    if low.isdigit():
        raise ManifestError(f"{where}: channel {text} does not exist: stereo calls have channels 0 (left) and 1 (right)")
    return text


def _check_unique(items: list[WorkItem], source: Path) -> None:
    seen: dict[str, int] = {}
    dups = []
    for it in items:
        if it.call_id in seen:
            dups.append(it.call_id)
        seen[it.call_id] = 1
    if dups:
        raise ManifestError(f"{source}: call_id must be unique; repeated: {', '.join(sorted(set(dups))[:10])} "
                            f"(add a call_id column or rename the files)")

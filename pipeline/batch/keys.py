"""Work keys: what makes a call "already done".

A call is done when the store holds a record for it whose work key matches:
``sha256(content sha256 | front-end config hash | pipeline version | channel map)``.
The front-end hash covers every setting that changes the timeline (decode, VAD,
diarization, roles, ASR, output); analysis thresholds are hashed apart
(``analysis_hash``) so a threshold change re-runs only the cheap analyses from the
stored timeline instead of ASR (see ``callqa reanalyze``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Sections whose settings only change metrics and flags computed from the timeline
# (plus stored noise measurements); everything else changes the timeline itself.
ANALYSIS_SECTIONS = ("talk", "noise", "conduct", "pii")
# Sections that change neither timelines nor flags (the review app's users and folders).
IGNORED_SECTIONS = ("review",)
# Settings that change speed, not results: excluded so changing them redoes nothing.
RUNTIME_ONLY = {("asr", "cpu_threads"), ("asr", "num_workers"), ("asr", "threads")}


def pipeline_version() -> str:
    try:
        from .. import __version__

        return str(__version__)
    except Exception:  # package metadata absent in a bare checkout
        return "0"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_hashes(config: Any) -> tuple[str, str]:
    """(front-end hash, analysis hash) of a :class:`pipeline.config.Config`."""
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    front = {}
    analysis = {}
    for section, values in d.items():
        if section in IGNORED_SECTIONS:
            continue
        if isinstance(values, dict):
            values = {k: v for k, v in values.items() if (section, k) not in RUNTIME_ONLY}
        (analysis if section in ANALYSIS_SECTIONS else front)[section] = values
    return _digest(front), _digest(analysis)


def work_key(content_sha256: str, frontend_hash: str, version: str, channel_map: dict | None) -> str:
    blob = f"{content_sha256}|{frontend_hash}|{version}|{json.dumps(channel_map or {}, sort_keys=True)}"
    return hashlib.sha256(blob.encode()).hexdigest()[:32]

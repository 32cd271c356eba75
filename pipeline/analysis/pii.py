"""PII detection and redaction on the word timeline. PLACEHOLDER until the redaction issue is built."""

from __future__ import annotations

from dataclasses import dataclass

from ..record import AnalysisResult
from ..timeline import Timeline


@dataclass(frozen=True)
class PiiOptions:
    enabled: bool = True


def redact_timeline(timeline: Timeline, options: PiiOptions) -> tuple[Timeline, AnalysisResult]:
    """Return the timeline with PII words replaced by ``[TYPE]`` and ``metrics.pii``
    (counts by type, and the redacted spans as ``spans: [{type, role, speaker, start, end}]``)."""
    return timeline, AnalysisResult(metrics={})

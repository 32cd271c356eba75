"""Sales conduct: refusals, pitches, permission, checkbacks. PLACEHOLDER until the conduct issue is built."""

from __future__ import annotations

from dataclasses import dataclass

from ..record import AnalysisResult
from ..timeline import Timeline


@dataclass(frozen=True)
class ConductOptions:
    enabled: bool = True


def analyze_conduct(timeline: Timeline, options: ConductOptions) -> AnalysisResult:
    """Timeline in, ``metrics.conduct`` and conduct flags out."""
    return AnalysisResult(metrics={})

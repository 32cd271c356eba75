"""Background noise and line quality per channel / role. PLACEHOLDER until the noise issue is built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..record import AnalysisResult
from ..timeline import Timeline

if TYPE_CHECKING:
    from ..audio import Audio
    from ..vad import ChannelActivity


@dataclass(frozen=True)
class NoiseOptions:
    enabled: bool = True


def analyze_noise(audio: "Audio", timeline: Timeline, activity: "list[ChannelActivity]",
                  options: NoiseOptions) -> AnalysisResult:
    """Audio + speech activity per channel + timeline (speakers with channel and role)
    in; ``metrics.noise`` and ``noisy_background`` / ``poor_line_quality`` flags out."""
    return AnalysisResult(metrics={})

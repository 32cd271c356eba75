"""Signal measures for the noise stage: pure numpy functions over one channel's samples.

Everything here works on 16 kHz float32 samples plus boolean frame masks and
returns plain numbers, so it can be tested on synthetic signals and reused by the
bench. The orchestration (which frames are whose speech, flags, roles) lives in
``noise.py``.

SNR method (calibrated on NOIZEUS, see docs/BENCHMARKS.md "Background noise"):

* the spectrogram (32 ms Hann frames, 16 ms hop) is cut into blocks of
  ``block_s``; in each block the noise power spectrum is a low per-frequency
  quantile of the frames, divided by the quantile of an exponential distribution
  (minimum statistics: speech is sparse in time-frequency, so most bins of most
  frames hold noise only, even inside speech). This uses the whole call rather
  than only the pauses, which matters on short or busy channels;
* the speech level is the mean power of the channel's speech frames minus the
  noise of their block (power subtraction);
* SNR = speech level / mean noise power. It estimates the *active-speech* SNR
  (speech power while speaking over the noise power), the figure telephony uses.
"""

from __future__ import annotations

import numpy as np

SR = 16000
NFFT = 512
HOP = 256
FRAME_S = HOP / SR  # 16 ms
_WINDOW = np.hanning(NFFT).astype(np.float32)
_WIN_NORM = float((_WINDOW.astype(np.float64) ** 2).sum()) * NFFT / 2.0
LOW_BIN = 1  # from 31 Hz: mains hum (50/60 Hz) counts as noise; DC is removed per frame
DB_FLOOR = -120.0


def db(power: float | np.ndarray) -> float | np.ndarray:
    return 10.0 * np.log10(np.maximum(power, 1e-12))


def frame_count(n_samples: int) -> int:
    return max(0, 1 + (n_samples - NFFT) // HOP) if n_samples >= NFFT else 0


def frame_times(n_frames: int) -> np.ndarray:
    """Centre time (s) of each spectrogram frame."""
    return (np.arange(n_frames) * HOP + NFFT / 2) / SR


def _spectrogram(x: np.ndarray) -> np.ndarray:
    """Power spectrum per frame, scaled so that the sum over bins is the frame's mean square."""
    n = frame_count(len(x))
    if n == 0:
        return np.zeros((0, NFFT // 2 + 1), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, NFFT)[::HOP][:n].astype(np.float32)
    frames = (frames - frames.mean(axis=1, keepdims=True)) * _WINDOW
    spec = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return (spec / _WIN_NORM).astype(np.float32)


def block_noise(x: np.ndarray, *, block_s: float, quantile: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame power, per-frame noise power (of its block) and the mean noise spectrum.

    Returns ``(frame_power, frame_noise, noise_psd)``: the first two per 16 ms frame
    (mean square, linear), the last per frequency bin (time-average over blocks).
    Blocks are processed one at a time so a two-hour call never holds its whole
    spectrogram in memory.
    """
    n = frame_count(len(x))
    power = np.zeros(n, dtype=np.float64)
    noise = np.zeros(n, dtype=np.float64)
    psd_sum = np.zeros(NFFT // 2 + 1, dtype=np.float64)
    if n == 0:
        return power, noise, psd_sum
    per_block = max(8, int(round(block_s / FRAME_S)))
    bounds = list(range(0, n, per_block))
    if len(bounds) > 1 and n - bounds[-1] < per_block // 2:
        bounds.pop()  # a short tail joins the previous block: a quantile needs frames
    bounds.append(n)
    bias = -np.log(1.0 - quantile)  # quantile of Exp(1): a noise-only periodogram bin is ~exponential
    for b0, b1 in zip(bounds[:-1], bounds[1:]):
        seg = x[b0 * HOP : (b1 - 1) * HOP + NFFT]
        spec = _spectrogram(seg)[: b1 - b0, LOW_BIN:]
        k = min(len(spec) - 1, int(quantile * (len(spec) - 1)))
        # partition on a contiguous (bins, frames) copy: 4x faster than np.quantile along axis 0
        npsd = np.partition(np.ascontiguousarray(spec.T), k, axis=1)[:, k].astype(np.float64) / bias
        power[b0:b1] = spec.sum(axis=1)
        noise[b0:b1] = float(npsd.sum())
        psd_sum[LOW_BIN:] += npsd * (b1 - b0)
    return power, noise, psd_sum / n


def in_speech_noise(x: np.ndarray, speech: np.ndarray, *, block_s: float, quantile: float,
                    min_s: float = 1.0) -> np.ndarray:
    """Noise heard *while the side talks*: the same per-bin quantile, over its speech frames only.

    Catches noise that is gated with the speech (a headset noise gate or suppressor
    that opens only while the agent talks, so the pauses are clean). Per frame; NaN
    in blocks with less than ``min_s`` of speech. On clean speech this reads the
    speech's own quiet bins, i.e. far too high, so the caller uses it only when it
    implies a poor SNR (noise.py).
    """
    n = min(len(speech), frame_count(len(x)))
    out = np.full(len(speech), np.nan)
    per_block = max(8, int(round(block_s / FRAME_S)))
    bias = -np.log(1.0 - quantile)
    for b0 in range(0, n, per_block):
        b1 = min(n, b0 + per_block)
        idx = np.flatnonzero(speech[b0:b1]) + b0
        if len(idx) * FRAME_S < min_s:
            continue
        frames = np.lib.stride_tricks.sliding_window_view(x, NFFT)[::HOP][idx].astype(np.float32)
        frames = (frames - frames.mean(axis=1, keepdims=True)) * _WINDOW
        spec = (np.abs(np.fft.rfft(frames, axis=1)) ** 2 / _WIN_NORM)[:, LOW_BIN:]
        k = min(len(spec) - 1, int(quantile * (len(spec) - 1)))
        npsd = np.partition(np.ascontiguousarray(spec.T), k, axis=1)[:, k].astype(np.float64) / bias
        out[b0:b1] = float(npsd.sum())
    return out


def intervals_to_mask(intervals, n_frames: int, frame_s: float = FRAME_S) -> np.ndarray:
    """Boolean mask of the frames whose centre lies inside any of ``intervals`` (objects with start/end)."""
    mask = np.zeros(n_frames, dtype=bool)
    if n_frames == 0:
        return mask
    t = (np.arange(n_frames) + 0.5) * frame_s if frame_s != FRAME_S else frame_times(n_frames)
    for iv in intervals:
        i0 = int(np.searchsorted(t, iv.start, side="left"))
        i1 = int(np.searchsorted(t, iv.end, side="left"))
        mask[i0:i1] = True
    return mask


def resample_mask(mask: np.ndarray, src_frame_s: float, n_frames: int) -> np.ndarray:
    """A frame mask at another frame rate (e.g. the VAD's 30 ms frames onto 16 ms frames)."""
    if len(mask) == 0 or n_frames == 0:
        return np.zeros(n_frames, dtype=bool)
    idx = np.minimum((frame_times(n_frames) / src_frame_s).astype(int), len(mask) - 1)
    return mask[idx]


def dilate(mask: np.ndarray, frames: int) -> np.ndarray:
    if frames <= 0 or not mask.any():
        return mask.copy()
    kernel = np.ones(2 * frames + 1)
    return np.convolve(mask.astype(float), kernel, mode="same") > 0.5


def speech_snr(power: np.ndarray, noise: np.ndarray, speech: np.ndarray) -> tuple[float | None, float | None]:
    """(SNR dB, speech level dBFS) of the speech frames; None where there is no speech."""
    if not speech.any():
        return None, None
    s = float(np.mean(power[speech] - noise[speech]))
    n = float(np.mean(noise))
    s = max(s, 1e-3 * n, 1e-12)  # speech never reads more than 30 dB under its noise
    return float(db(s / max(n, 1e-12))), float(db(s))  # dBFS: 10·log10(mean square), as the VAD reports


# --- hum ---------------------------------------------------------------------------------------

def hum_measure(x: np.ndarray, region_mask: np.ndarray | None, *, max_s: float = 60.0, nfft: int = 8192) -> dict:
    """Mains hum: tonal power at the harmonics of 50 or 60 Hz in the non-speech audio.

    ``region_mask`` (per 16 ms frame) marks the audio to look at (the noise-only
    stretches); at most ``max_s`` of it, taken evenly, is used. Returns the mains
    frequency found, the hum's level in dBFS and its share of the noise power.
    """
    segs = _masked_segments(x, region_mask, min_len=nfft, max_total=int(max_s * SR))
    if not segs:
        return {"present": False, "freq_hz": None, "level_dbfs": None, "share_of_noise": 0.0}
    win = np.hanning(nfft)
    norm = float((win**2).sum()) * nfft / 2.0
    acc = np.zeros(nfft // 2 + 1)
    count = 0
    for seg in segs:
        frames = np.lib.stride_tricks.sliding_window_view(seg, nfft)[:: nfft // 2]
        frames = frames - frames.mean(axis=1, keepdims=True)
        acc += (np.abs(np.fft.rfft(frames * win, axis=1)) ** 2).sum(axis=0) / norm
        count += len(frames)
    psd = acc / max(count, 1)
    df = SR / nfft
    total = float(psd[int(20 / df):].sum())
    best = (0.0, None)
    for f0 in (50.0, 60.0):
        tonal = 0.0
        for k in range(1, int(4000 // f0) + 1):
            c = int(round(k * f0 / df))
            lo, hi = max(0, c - 8), min(len(psd), c + 9)
            ring = np.r_[psd[lo : c - 2], psd[c + 3 : hi]]
            floor = float(np.median(ring)) if len(ring) else 0.0
            tonal += max(0.0, float(psd[c - 2 : c + 3].sum()) - 5 * floor)
        if tonal > best[0]:
            best = (tonal, f0)
    share = best[0] / total if total > 0 else 0.0
    return {
        "present": bool(share >= 0.2),
        "freq_hz": best[1] if share >= 0.2 else None,
        "level_dbfs": round(float(db(best[0])), 1) if best[0] > 0 else None,
        "share_of_noise": round(float(share), 3),
    }


def _masked_segments(x: np.ndarray, mask: np.ndarray | None, *, min_len: int, max_total: int) -> list[np.ndarray]:
    """Contiguous pieces of ``x`` where ``mask`` (16 ms frames) is true, each ≥ min_len samples,
    at most ``max_total`` samples in all, spread evenly over the call."""
    if mask is None:
        runs = [(0, len(x))]
    else:
        padded = np.concatenate(([False], mask, [False]))
        edges = np.flatnonzero(padded[1:] != padded[:-1])
        runs = [(s * HOP, min(len(x), e * HOP + NFFT - HOP)) for s, e in zip(edges[::2], edges[1::2])]
    runs = [(a, b) for a, b in runs if b - a >= min_len]
    total = sum(b - a for a, b in runs)
    if total > max_total and runs:
        # keep evenly spaced runs (and trim the long ones) so a long call costs a bounded amount
        keep = max(1, int(len(runs) * max_total / total))
        idx = np.linspace(0, len(runs) - 1, keep).round().astype(int)
        per = max(min_len, max_total // keep)
        runs = [(runs[i][0], min(runs[i][1], runs[i][0] + per)) for i in sorted(set(idx))]
    return [x[a:b] for a, b in runs]


# --- background speech (other voices) ------------------------------------------------------------

def background_speech(x: np.ndarray, region_mask: np.ndarray, *, threshold: float, max_s: float,
                      min_region_s: float = 0.5, power: np.ndarray | None = None,
                      audible_dbfs: float = -120.0) -> tuple[float | None, float, np.ndarray]:
    """Share of the noise-only time in which other people can be heard talking.

    Silero VAD (the ONNX model inside faster-whisper, loaded once per process) is
    run over the channel's noise-only stretches; a 32 ms chunk counts as
    background speech when its probability is ≥ ``threshold``. Silero is level
    independent (it still finds babble at −60 dBFS) and scores broadband noise,
    hum, traffic and machinery near 0, which is what separates *babble* from
    *stationary* noise. Pause stretches whose mean level (``power`` per frame) is
    under ``audible_dbfs`` hold nothing anyone could hear: they count as analysed
    without voices and are not run through the model (most pauses of a clean call).
    Returns (share or None if too little noise-only time, seconds analysed,
    per-16 ms-frame boolean of detected background speech).
    """
    n_frames = len(region_mask)
    found = np.zeros(n_frames, dtype=bool)
    min_len = int(min_region_s * SR)
    padded = np.concatenate(([False], region_mask, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    runs = [(s, e) for s, e in zip(edges[::2], edges[1::2]) if (e - s) * HOP >= min_len]
    total = sum(e - s for s, e in runs) * HOP
    budget = int(max_s * SR)
    if total > budget and runs:
        keep = max(1, int(len(runs) * budget / total))
        idx = sorted(set(np.linspace(0, len(runs) - 1, keep).round().astype(int)))
        per = max(min_len // HOP, budget // HOP // keep)
        runs = [(runs[i][0], min(runs[i][1], runs[i][0] + per)) for i in idx]
    if not runs:
        return None, 0.0, found
    silent_frames = 0
    if power is not None:
        floor = 10 ** (audible_dbfs / 10)
        loud = [(a, b) for a, b in runs if float(np.mean(power[a:b])) >= floor]
        silent_frames = sum(b - a for a, b in runs) - sum(b - a for a, b in loud)
        runs = loud
        if not runs:
            return 0.0, silent_frames * FRAME_S, found
    from faster_whisper.vad import get_vad_model  # lazy: ONNX session created once per process

    model = get_vad_model()
    chunk = 512
    pieces, spans = [], []
    for s, e in runs:
        a, b = s * HOP, min(len(x), e * HOP)
        b = a + (b - a) // chunk * chunk
        if b <= a:
            continue
        pieces.append(x[a:b])
        spans.append((a, b))
    if not pieces:
        return None, 0.0, found
    probs = np.asarray(model(np.concatenate(pieces).astype(np.float32))).reshape(-1)
    pos, voiced, counted = 0, 0, 0
    for a, b in spans:
        k = (b - a) // chunk
        p = probs[pos : pos + k]
        pos += k
        on = p >= threshold
        # the LSTM restarts at each joined piece: ignore its first 4 chunks (128 ms) of warm-up
        on_eval = on[4:] if k > 8 else on
        voiced += int(on_eval.sum())
        counted += len(on_eval)
        for j in np.flatnonzero(on):
            t0 = (a + j * chunk) // HOP
            found[t0 : t0 + 2] = True
    # silent pause frames count as analysed chunks without voices
    silent_chunks = int(silent_frames * HOP / chunk)
    total = counted + silent_chunks
    analysed = total * chunk / SR
    return (voiced / total if total else None), analysed, found


# --- line quality ----------------------------------------------------------------------------

def clipping(x: np.ndarray, speech_mask: np.ndarray, *, chunk_s: float = 60.0) -> dict:
    """Share of speech samples stuck at the channel's peak (a flat top: the recorder saturated).

    A sample counts as clipped when it is within 3 % of the channel's peak and its
    neighbour is too (a plateau, not one loud peak). Unclipped speech has almost no
    such samples (≈1e-5); a saturated recording has percents. Works after
    resampling, where the plateau keeps its level but gains a little ripple.
    Processed in chunks so a long call needs no full-length temporaries.
    """
    if len(x) == 0:
        return {"share": 0.0, "peak_dbfs": None}
    peak = max(float(x.max()), -float(x.min()))  # no |x| copy of a long call
    if peak <= 0:
        return {"share": 0.0, "peak_dbfs": None}
    use_all = not speech_mask.any()
    step = int(chunk_s * SR) // HOP * HOP
    clipped = counted = 0
    for i0 in range(0, len(x), step):
        seg = x[i0 : i0 + step + 1]  # one sample of overlap for the neighbour test
        near = np.abs(seg) >= 0.97 * peak
        plateau = (near[:-1] & near[1:]) if len(seg) > 1 else near
        plateau = plateau | np.r_[False, plateau[:-1]]  # both samples of each flat pair
        k = min(step, len(x) - i0)
        plateau = np.pad(plateau, (0, max(0, k - len(plateau))))[:k]
        if use_all:
            m = np.ones(k, dtype=bool)
        else:
            m = np.repeat(speech_mask[i0 // HOP : (i0 + k) // HOP + 1], HOP)[:k]
            m = np.pad(m, (0, k - len(m)))
        clipped += int((plateau & m).sum())
        counted += int(m.sum())
    share = clipped / counted if counted else 0.0
    return {"share": round(float(share), 5), "peak_dbfs": round(float(db(peak * peak)), 1)}


def dropouts(x: np.ndarray, speech_intervals, *, min_s: float, max_s: float, silence_dbfs: float = -70.0,
             edge_dbfs: float = -35.0) -> list[tuple[float, float]]:
    """Stretches of digital silence inside speech: the line went dead mid-sentence.

    10 ms frames whose peak is below ``silence_dbfs`` form a run; runs of
    ``min_s``..``max_s`` that lie strictly inside a speech region (speech on both
    sides) are dropouts. Longer runs are mutes or holds, not dropouts.
    """
    hop = SR // 100
    n = len(x) // hop
    if n == 0:
        return []
    peaks = np.maximum(x[: n * hop].reshape(n, hop).max(axis=1), -x[: n * hop].reshape(n, hop).min(axis=1))
    dead = peaks < 10 ** (silence_dbfs / 20)
    edge = 10 ** (edge_dbfs / 20)
    if not dead.any():
        return []
    padded = np.concatenate(([False], dead, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    out = []
    for s, e in zip(edges[::2], edges[1::2]):
        t0, t1 = s * 0.01, e * 0.01
        if not (min_s <= t1 - t0 <= max_s):
            continue
        # A lost packet cuts the line mid-sound: loud right before and right after. A VoIP noise
        # gate closing in a pause between words fades out first, so it is not a dropout.
        abrupt = s > 0 and e < n and min(peaks[s - 1], peaks[e]) >= edge
        if abrupt and any(iv.start < t0 - 0.03 and iv.end > t1 + 0.03 for iv in speech_intervals):
            out.append((round(t0, 3), round(t1, 3)))
    return out


def crosstalk(mine: np.ndarray, other: np.ndarray, mine_power: np.ndarray, mine_noise: np.ndarray,
              other_power: np.ndarray, other_solo: np.ndarray, *, max_s: float = 30.0,
              min_correlation: float = 0.3) -> dict:
    """How much of the other leg is heard in this one (bleed, hybrid echo).

    Over the stretches where only the other side talks (up to ``max_s``), the
    normalised cross-correlation of the two legs (lags 0–300 ms) says whether this
    leg carries the other voice, and with which delay: near zero is crosstalk
    (bleed), longer is echo. The coupling is the correlated part of this leg's
    power relative to the other leg's (``r² · P_mine / P_other``, dB), so
    uncorrelated background noise (babble, hiss) is not mistaken for a leak.
    Coupling is reported only when the correlation reaches ``min_correlation``.
    """
    out = {"coupling_db": None, "correlation": None, "delay_ms": None,
           "solo_s": round(float(other_solo.sum()) * FRAME_S, 2)}
    if other_solo.sum() * FRAME_S < 1.0:
        return out
    segs_m = _masked_segments(mine, other_solo, min_len=SR // 4, max_total=int(max_s * SR))
    segs_o = _masked_segments(other, other_solo, min_len=SR // 4, max_total=int(max_s * SR))
    if not segs_m or not segs_o:
        return out
    a = np.concatenate(segs_m).astype(np.float64)
    b = np.concatenate(segs_o).astype(np.float64)
    m = min(len(a), len(b))
    a, b = a[:m] - a[:m].mean(), b[:m] - b[:m].mean()
    max_lag = int(0.3 * SR)
    nfft = 1 << int(np.ceil(np.log2(m + max_lag)))
    cc = np.fft.irfft(np.fft.rfft(a, nfft) * np.conj(np.fft.rfft(b, nfft)), nfft)[: max_lag + 1]
    ea, eb = float(np.dot(a, a)), float(np.dot(b, b))
    if ea <= 0 or eb <= 0:
        return out
    k = int(np.argmax(np.abs(cc)))
    r = float(abs(cc[k]) / np.sqrt(ea * eb))
    out["correlation"] = round(r, 3)
    out["delay_ms"] = round(k / SR * 1000, 1)
    if r >= min_correlation:
        out["coupling_db"] = round(float(db(r * r * ea / eb)), 1)
    return out


def refine_noise(power: np.ndarray, noise: np.ndarray, noise_only: np.ndarray, *, block_s: float,
                 min_s: float = 2.0, trim: float = 0.9) -> np.ndarray:
    """Per block, replace the minimum-statistics noise by the mean power of the noise-only frames
    when the block has at least ``min_s`` of them.

    The quantile estimate reads low on fluctuating noise (babble is a few dB louder on
    average than its quiet moments); the pauses measure it directly. The loudest
    ``1 - trim`` of the pause frames are dropped so a missed breath or backchannel
    does not count as noise.
    """
    out = noise.copy()
    n = len(power)
    per_block = max(8, int(round(block_s / FRAME_S)))
    bounds = list(range(0, n, per_block))
    if len(bounds) > 1 and n - bounds[-1] < per_block // 2:
        bounds.pop()
    bounds.append(n)
    need = int(min_s / FRAME_S)
    for b0, b1 in zip(bounds[:-1], bounds[1:]):
        sel = power[b0:b1][noise_only[b0:b1]]
        if len(sel) >= need:
            cut = np.quantile(sel, trim)
            out[b0:b1] = float(sel[sel <= cut].mean())
    return out

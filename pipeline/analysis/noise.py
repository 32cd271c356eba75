"""Background noise and line quality, per side of the call.

Stereo: each leg is one side (``timeline.speakers[].channel`` gives its role), so
every measure is taken on that leg alone: the agent's call-centre floor shows on
the agent leg only. Mono: one signal; each role's speech is its turns in the
timeline, the noise is shared, and a flag names a side only when the noise
during that side's turns is clearly worse.

Measures (``metrics.noise``; one block per side in ``by_role``, per leg in
``channels``, and ``overall`` for the call as a listener of a mono mix hears it):

* ``snr_db``: active-speech SNR (speech power while talking / noise power),
  minimum-statistics noise estimate per ``block_s`` block (noise_features.py);
* ``noise_floor_dbfs``, ``speech_level_dbfs`` (10·log10 mean square);
* ``background_speech_share``: share of the noise-only time in which other voices
  are heard (Silero VAD on the pauses), the "noisy call centre" measure;
* ``bak_mos``: DNSMOS P.835 background score on a sample of 9 s windows;
* ``hum``, ``clipping_share``, ``low_level``, ``dropouts``; ``crosstalk`` for
  stereo legs (the other side heard in this leg: coupling dB, delay, correlation).

Flags: ``noisy_background`` (side, worst stretch, kind stationary|babble|hum) and
``poor_line_quality`` (problem clipping|low_level|dropouts|crosstalk|echo, where).
Thresholds: ``[noise]`` in config/default.toml, measured in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..record import AnalysisResult, Flag
from ..timeline import AGENT, CUSTOMER, UNKNOWN, Interval, Timeline, merge_intervals
from . import noise_dnsmos as dnsmos
from . import noise_features as nf

if TYPE_CHECKING:
    from ..audio import Audio
    from ..vad import ChannelActivity

log = logging.getLogger("pipeline")

KINDS = ("stationary", "babble", "hum")


@dataclass(frozen=True)
class NoiseOptions:
    enabled: bool = True
    block_s: float = 10.0
    noise_quantile: float = 0.2
    snr_low_expand: float = 0.15
    snr_low_knee_db: float = 15.0
    snr_flag_db: float = 9.0
    snr_high_db: float = 3.0
    bak_flag_mos: float = 2.0
    min_speech_s: float = 0.5
    background_speech_threshold: float = 0.5
    babble_share: float = 0.2
    hum_share: float = 0.5
    max_background_s: float = 300.0
    background_audible_dbfs: float = -60.0
    clipping_flag_share: float = 0.002
    low_level_dbfs: float = -40.0
    dropout_min_s: float = 0.02
    dropout_max_s: float = 2.0
    dropout_flag_count: int = 3
    crosstalk_flag_db: float = -30.0
    echo_delay_ms: float = 20.0
    dnsmos: bool = True
    dnsmos_every_s: float = 120.0
    dnsmos_max_windows: int = 3
    dnsmos_shared_snr_db: float = 25.0
    gated_snr_db: float = 12.0

    def __post_init__(self) -> None:
        positive = ("block_s", "min_speech_s", "max_background_s", "dropout_min_s", "dropout_max_s",
                    "dnsmos_every_s")
        for key in positive:
            if not getattr(self, key) > 0:
                raise ValueError(f"noise.{key} must be > 0, got {getattr(self, key)!r}")
        if not 0.0 < self.noise_quantile < 0.5:
            raise ValueError(f"noise.noise_quantile must be between 0 and 0.5, got {self.noise_quantile!r}")
        for key in ("background_speech_threshold", "babble_share", "hum_share", "clipping_flag_share"):
            if not 0.0 < getattr(self, key) <= 1.0:
                raise ValueError(f"noise.{key} must be in (0, 1], got {getattr(self, key)!r}")
        if not 1.0 <= self.bak_flag_mos <= 5.0:
            raise ValueError(f"noise.bak_flag_mos must be on the 1-5 MOS scale, got {self.bak_flag_mos!r}")
        if not 0.0 <= self.snr_low_expand <= 1.0:
            raise ValueError(f"noise.snr_low_expand must be in [0, 1], got {self.snr_low_expand!r}")
        if self.snr_high_db > self.snr_flag_db:
            raise ValueError("noise.snr_high_db must not exceed noise.snr_flag_db")
        if self.dropout_min_s >= self.dropout_max_s:
            raise ValueError("noise.dropout_min_s must be below noise.dropout_max_s")
        if self.dropout_flag_count < 1 or self.dnsmos_max_windows < 1:
            raise ValueError("noise.dropout_flag_count and noise.dnsmos_max_windows must be at least 1")


@dataclass
class _Channel:
    """One signal's frame-level measures (16 ms frames)."""

    index: int
    x: np.ndarray
    power: np.ndarray
    noise: np.ndarray
    noise_psd: np.ndarray
    speech: np.ndarray  # frames of this channel's own speech
    noise_only: np.ndarray  # frames usable as noise-only (no own speech, no leak, margins)
    speech_ivs: list
    bak: list = field(default_factory=list)  # (window start, bak) pairs
    background: tuple = (None, 0.0, None)
    hum: dict = field(default_factory=dict)
    crosstalk: dict | None = None
    other_speech: np.ndarray | None = None
    speech_suspect: bool = False
    side_noise: dict = field(default_factory=dict)  # id(speech mask) -> noise per frame used for that side


def analyze_noise(audio: "Audio", timeline: Timeline, activity: "list[ChannelActivity]",
                  options: NoiseOptions) -> AnalysisResult:
    """Audio + speech activity per channel + timeline (speakers with channel and role)
    in; ``metrics.noise`` and ``noisy_background`` / ``poor_line_quality`` flags out."""
    if not options.enabled:
        return AnalysisResult(metrics={})
    duration = audio.duration
    narrowband = int(audio.source.sample_rate) <= 11025
    stereo = audio.channels == 2 and len(activity) == 2
    channels = []
    for c in range(audio.channels if stereo else 1):
        x = audio.samples[c] if stereo else audio.samples[0]
        channels.append(_measure_channel(c, x, activity[c] if c < len(activity) else None, options,
                                         mono=not stereo))
    if stereo:
        _stereo_extras(channels, activity, options)
    for ch in channels:
        _refine(ch, options)
        _background_and_hum(ch, options)
    _score_bak(channels, duration, options)

    roles_by_channel = {s.channel: s.role for s in timeline.speakers if s.channel is not None}
    sides: dict[str, dict] = {}
    chan_metrics = []
    flags: list[Flag] = []
    if stereo:
        for ch in channels:
            role = roles_by_channel.get(ch.index, UNKNOWN)
            m = _side_metrics(ch, ch.speech, ch.speech_ivs, options, duration)
            m["crosstalk"] = ch.crosstalk
            chan_metrics.append({"channel": ch.index, "role": role, **m})
            if role in (AGENT, CUSTOMER) and role not in sides:
                sides[role] = m
            flags += _flags_for_side(ch, m, role, ch.speech, options, duration, timeline)
        overall = _combine(chan_metrics, options)
    else:
        ch = channels[0]
        overall = _side_metrics(ch, ch.speech, ch.speech_ivs, options, duration)
        chan_metrics.append({"channel": 0, "role": UNKNOWN, **overall, "crosstalk": None})
        role_masks = {}
        for role in (AGENT, CUSTOMER):
            ivs = merge_intervals([Interval(t.start, t.end) for t in timeline.turns_of(role)])
            if not ivs:
                continue
            mask = nf.intervals_to_mask(ivs, len(ch.power))
            role_masks[role] = mask
            sides[role] = _side_metrics(ch, mask, ivs, options, duration, local_noise=True)
            sides[role]["background_speech_share"] = overall["background_speech_share"]  # one shared background
        flags += _mono_flags(ch, overall, sides, role_masks, options, duration, timeline)

    metrics = {
        "overall": overall,
        "by_role": {role: sides.get(role, _empty_side()) for role in (AGENT, CUSTOMER)},
        "channels": chan_metrics,
        "narrowband": narrowband,
        "method": {
            "snr": "active-speech SNR, minimum-statistics noise per block",
            "block_s": options.block_s,
            "bak_windows": sum(len(ch.bak) for ch in channels),
            "bak_window_s": round(dnsmos.WINDOW_S, 2),
            "background_speech_analysed_s": round(sum(ch.background[1] for ch in channels), 1),
        },
    }
    return AnalysisResult(metrics=metrics, flags=tuple(flags))


# --- measurement -----------------------------------------------------------------------------

def _measure_channel(index: int, x: np.ndarray, act: "ChannelActivity | None", options: NoiseOptions,
                     *, mono: bool) -> _Channel:
    power, noise, psd = nf.block_noise(x, block_s=options.block_s, quantile=options.noise_quantile)
    n = len(power)
    speech_ivs = list(act.speech) if act is not None else []
    speech = nf.intervals_to_mask(speech_ivs, n)
    if act is not None and len(act.speech_frames):
        # frames the VAD accepted but whose region was too short to keep still hold speech power
        speech |= nf.dilate(nf.resample_mask(act.speech_frames, act.frame_s, n), 6)
    if speech.sum() * nf.FRAME_S < options.min_speech_s and act is not None and (act.speech_frames.any() or mono):
        # Very noisy channel: the VAD (which wants 8 dB over the floor) kept almost nothing though it
        # heard speech (or, on a mono call, found none). Take the frames ≥ 4 dB over the estimated noise.
        speech = nf.dilate(power > 2.5 * noise, 6)
    excluded = speech.copy()
    if act is not None and act.leak:
        excluded |= nf.intervals_to_mask(act.leak, n)
    noise_only = ~nf.dilate(excluded, 10)  # 160 ms margin: word tails and breaths are not background
    return _Channel(index=index, x=x, power=power, noise=noise, noise_psd=psd, speech=speech,
                    noise_only=noise_only, speech_ivs=speech_ivs)


def _stereo_extras(channels: list[_Channel], activity, options: NoiseOptions) -> None:
    """Crosstalk/echo each way, then each leg's noise-only time.

    Where the other side is audible in a leg, the other's speech time leaves that
    leg's noise-only time (the leak is reported as crosstalk, not as background
    voices). Where a leg's VAD "speech" runs on through most of the other side's
    turns, it is background (babble, loud noise) mistaken for speech: the other's
    turns are then this leg's noise-only time, and no longer its speech.
    """
    for me, other in ((channels[0], channels[1]), (channels[1], channels[0])):
        n = min(len(me.power), len(other.power))
        other_speech = np.zeros(len(me.power), dtype=bool)
        other_speech[:n] = other.speech[:n]
        other_power = np.pad(other.power[:n], (0, len(me.power) - n))
        # the other talking and this leg ≥ 10 dB quieter: this leg's own talker is silent (a VAD may
        # have taken a delayed echo for speech, so its decision is not used here)
        other_solo = other_speech & (me.power < 0.1 * other_power)
        ct = nf.crosstalk(me.x, other.x, me.power, me.noise, other_power, other_solo)
        leak_s = sum(iv.duration for iv in activity[me.index].leak)
        ct["leak_rejected_s"] = round(float(leak_s), 2)
        kind = None
        if ct["coupling_db"] is not None:
            delayed = ct["delay_ms"] is not None and ct["delay_ms"] >= options.echo_delay_ms
            kind = "echo" if delayed and (ct["correlation"] or 0) >= 0.2 else "crosstalk"
        ct["kind"] = kind
        me.crosstalk = ct
        me.other_speech = other_speech
        overlap = float((me.speech & other_speech).sum()) / max(1, int(other_speech.sum()))
        me.speech_suspect = overlap > 0.5 and ct["coupling_db"] is None
    for me in channels:
        other_s = float(me.other_speech.sum()) * nf.FRAME_S
        if me.crosstalk["coupling_db"] is not None or me.crosstalk["leak_rejected_s"] > 0.2 * other_s:
            me.noise_only &= ~nf.dilate(me.other_speech, 10)
        elif me.speech_suspect:
            listen = me.other_speech & ~nf.dilate(~me.other_speech, 6)  # the other's turns, edges trimmed
            me.noise_only |= listen
            me.speech &= ~me.other_speech


def _refine(ch: _Channel, options: NoiseOptions) -> None:
    """Pause-based noise where there are pauses; speech frames must stand above that noise."""
    ch.noise = nf.refine_noise(ch.power, ch.noise, ch.noise_only, block_s=options.block_s)
    kept = ch.speech & (ch.power > ch.noise)
    if kept.sum() * nf.FRAME_S >= options.min_speech_s:
        ch.speech = kept


def _background_and_hum(ch: _Channel, options: NoiseOptions) -> None:
    try:
        ch.background = nf.background_speech(ch.x, ch.noise_only, threshold=options.background_speech_threshold,
                                             max_s=options.max_background_s, power=ch.power,
                                             audible_dbfs=options.background_audible_dbfs)
    except Exception as e:  # noqa: BLE001 - a missing/broken Silero model must not fail the call
        log.warning("noise: background-speech detection unavailable (%s); background_speech_share is null", e)
        ch.background = (None, 0.0, None)
    ch.hum = nf.hum_measure(ch.x, ch.noise_only if ch.noise_only.sum() * nf.FRAME_S >= 1.0 else None)


def _score_bak(channels: list[_Channel], duration: float, options: NoiseOptions) -> None:
    """DNSMOS BAK on a bounded sample, all windows in one batch.

    ceil(duration / dnsmos_every_s) windows (at most dnsmos_max_windows), each on the
    most speech of its part of the call. A noisy leg gets its own windows; legs at
    or above ``dnsmos_shared_snr_db`` (clean: BAK ≈ 4 either way) share windows
    scored on their mix, which halves the cost of the common clean stereo call.
    """
    if not options.dnsmos:
        return
    count = max(1, min(options.dnsmos_max_windows, math.ceil(duration / options.dnsmos_every_s)))
    groups: list[list[_Channel]] = []
    shared: list[_Channel] = []
    for ch in channels:
        if ch.speech.sum() * nf.FRAME_S < options.min_speech_s:
            continue
        snr = _calibrate(nf.speech_snr(ch.power, ch.noise, ch.speech)[0], options)
        if len(channels) > 1 and snr is not None and snr >= options.dnsmos_shared_snr_db:
            shared.append(ch)
        else:
            groups.append([ch])
    if shared:
        groups.append(shared)
    windows, owners = [], []
    for group in groups:
        m = min(len(c.speech) for c in group)
        speech = np.any([c.speech[:m] for c in group], axis=0)
        for start in dnsmos.pick_windows(speech, nf.FRAME_S, duration, count):
            # mix only the window, never whole legs: a long call is not copied
            mix = np.sum([dnsmos.window_audio(c.x, start) for c in group], axis=0)
            windows.append(np.clip(mix, -1.0, 1.0).astype(np.float32))
            owners.append((group, start))
    if not windows:
        return
    try:
        scores = dnsmos.score(windows)
    except Exception as e:  # noqa: BLE001
        log.warning("noise: DNSMOS scoring failed (%s); bak_mos is null", e)
        return
    if scores is None:
        return
    for (group, start), sc in zip(owners, scores):
        for ch in group:
            ch.bak.append((start, float(sc[1])))


def _empty_side() -> dict:
    return {"snr_db": None, "noise_floor_dbfs": None, "speech_level_dbfs": None, "speech_s": 0.0,
            "background_speech_share": None, "bak_mos": None, "hum": None, "clipping_share": None,
            "low_level": None, "dropouts": {"count": 0, "total_s": 0.0, "times": []}, "kind": None,
            "noise_with_speech_only": None}


def _side_metrics(ch: _Channel, speech: np.ndarray, speech_ivs: list, options: NoiseOptions, duration: float,
                  *, local_noise: bool = False) -> dict:
    """The measures of one side: a stereo leg, or (mono) one role's turns over the shared signal."""
    noise_frames, snr, level, gated = _side_noise(ch, speech, options, local=local_noise)
    noise_level = float(np.mean(noise_frames[speech])) if (local_noise or gated) and speech.any() else (
        float(np.mean(noise_frames)) if len(noise_frames) else 0.0)
    ch.side_noise[id(speech)] = noise_frames
    snr = _calibrate(snr, options)
    speech_s = float(speech.sum()) * nf.FRAME_S
    share = ch.background[0]
    bak = _bak_for(ch, speech)
    clip = nf.clipping(ch.x, speech)
    drops = nf.dropouts(ch.x, speech_ivs, min_s=options.dropout_min_s, max_s=options.dropout_max_s)
    enough = speech_s >= options.min_speech_s
    m = {
        "snr_db": _r(snr) if enough else None,
        "noise_floor_dbfs": _r(float(nf.db(noise_level))) if len(ch.noise) else None,
        "speech_level_dbfs": _r(level) if enough else None,
        "speech_s": round(speech_s, 2),
        "background_speech_share": None if share is None else round(float(share), 3),
        "bak_mos": None if bak is None else round(bak, 2),
        "hum": dict(ch.hum) if ch.hum else None,
        "clipping_share": clip["share"] if enough else None,
        "low_level": bool(level is not None and enough and level < options.low_level_dbfs) if enough else None,
        "dropouts": {"count": len(drops), "total_s": round(sum(b - a for a, b in drops), 3),
                     "times": [[a, b] for a, b in drops[:20]]},
    }
    m["noise_with_speech_only"] = gated
    m["kind"] = _kind(m, options)
    return m


def _side_noise(ch: _Channel, speech: np.ndarray, options: NoiseOptions, *, local: bool):
    """(noise per frame, raw SNR dB, speech level dBFS, gated) for one side.

    The noise is the channel's (pauses / minimum statistics), taken where the side
    talks when ``local`` (a mono role). If the noise measured *inside* the side's
    speech is ≥ 6 dB louder and implies an SNR under ``gated_snr_db``, the noise
    only comes with the speech (gate or suppressor opening with the talker) and
    that in-speech noise is used instead.
    """
    noise = ch.noise
    if not speech.any():
        return noise, None, None, False
    if local:
        n_lvl = float(np.mean(noise[speech]))
        s = max(float(np.mean(ch.power[speech] - noise[speech])), 1e-3 * n_lvl, 1e-12)
        snr, level = float(nf.db(s / n_lvl)), float(nf.db(s))
    else:
        n_lvl = float(np.mean(noise))
        snr, level = nf.speech_snr(ch.power, noise, speech)
    if speech.sum() * nf.FRAME_S < options.min_speech_s:
        return noise, snr, level, False
    isn = nf.in_speech_noise(ch.x, speech, block_s=options.block_s, quantile=options.noise_quantile)
    valid = speech & ~np.isnan(isn)
    if valid.sum() * nf.FRAME_S < options.min_speech_s:
        return noise, snr, level, False
    g_lvl = float(np.mean(isn[valid]))
    g_s = max(float(np.mean(ch.power[valid] - isn[valid])), 1e-3 * g_lvl, 1e-12)
    g_snr = float(nf.db(g_s / g_lvl))
    if g_lvl > 4.0 * float(np.mean(noise[valid])) and g_snr < options.gated_snr_db:
        merged = np.where(np.isnan(isn), noise, np.maximum(isn, noise))
        return merged, g_snr, float(nf.db(g_s)), True
    return noise, snr, level, False


def _bak_for(ch: _Channel, speech: np.ndarray) -> float | None:
    """Mean BAK of the windows; for a mono role, weighted by that role's speech in each window."""
    if not ch.bak:
        return None
    weights = []
    for start, _ in ch.bak:
        i0 = int(start / nf.FRAME_S)
        i1 = int((start + dnsmos.WINDOW_S) / nf.FRAME_S)
        weights.append(float(speech[i0:i1].sum()))
    w = np.asarray(weights)
    if w.sum() <= 0:
        return None
    return float(np.dot(w, [b for _, b in ch.bak]) / w.sum())


def _kind(m: dict, options: NoiseOptions) -> str | None:
    """What the background mostly is: mains hum, other voices, or other (steady) noise."""
    if m["snr_db"] is None and m["noise_floor_dbfs"] is None:
        return None
    hum = m.get("hum") or {}
    if hum.get("share_of_noise", 0.0) >= options.hum_share:
        return "hum"
    if (m.get("background_speech_share") or 0.0) >= options.babble_share:
        return "babble"
    return "stationary"


def _combine(chan_metrics: list[dict], options: NoiseOptions) -> dict:
    """The call as a mono mix would carry it: the legs' noises add, speech is each leg's in turn."""
    with_speech = [m for m in chan_metrics if m["snr_db"] is not None]
    noise_p = sum(10 ** (m["noise_floor_dbfs"] / 10) for m in chan_metrics if m["noise_floor_dbfs"] is not None)
    out = _empty_side()
    if noise_p > 0:
        out["noise_floor_dbfs"] = _r(float(nf.db(noise_p)))
    total_s = sum(m["speech_s"] for m in with_speech)
    out["speech_s"] = round(sum(m["speech_s"] for m in chan_metrics), 2)
    if with_speech and total_s > 0 and noise_p > 0:
        sp = sum(10 ** (m["speech_level_dbfs"] / 10) * m["speech_s"] for m in with_speech) / total_s
        out["speech_level_dbfs"] = _r(float(nf.db(sp)))
        out["snr_db"] = _r(_calibrate(float(nf.db(sp / noise_p)), options))
    shares = [m["background_speech_share"] for m in chan_metrics if m["background_speech_share"] is not None]
    out["background_speech_share"] = round(max(shares), 3) if shares else None
    baks = [m["bak_mos"] for m in chan_metrics if m["bak_mos"] is not None]
    out["bak_mos"] = min(baks) if baks else None  # the worse side is what the call sounds like
    hums = [m["hum"] for m in chan_metrics if m["hum"]]
    out["hum"] = max(hums, key=lambda h: h.get("share_of_noise", 0.0)) if hums else None
    clips = [(m["clipping_share"], m["speech_s"]) for m in chan_metrics if m["clipping_share"] is not None]
    if clips and sum(s for _, s in clips) > 0:
        out["clipping_share"] = round(sum(c * s for c, s in clips) / sum(s for _, s in clips), 5)
    lows = [m["low_level"] for m in chan_metrics if m["low_level"] is not None]
    out["low_level"] = any(lows) if lows else None
    times = sorted(t for m in chan_metrics for t in m["dropouts"]["times"])
    out["dropouts"] = {"count": sum(m["dropouts"]["count"] for m in chan_metrics),
                       "total_s": round(sum(m["dropouts"]["total_s"] for m in chan_metrics), 3), "times": times[:20]}
    kinds = [m["kind"] for m in sorted(with_speech, key=lambda m: m["snr_db"])]
    out["kind"] = kinds[0] if kinds else None
    return out


# --- flags --------------------------------------------------------------------------------------

def _is_noisy(m: dict, options: NoiseOptions) -> bool:
    if m["snr_db"] is None:
        return False
    return m["snr_db"] < options.snr_flag_db or (m["bak_mos"] is not None and m["bak_mos"] < options.bak_flag_mos)


def _worst_stretch(ch: _Channel, level_db: float, options: NoiseOptions, duration: float,
                   mask: np.ndarray | None = None, noise: np.ndarray | None = None) -> tuple[float, float, float]:
    """(start, end, local SNR) of the worst run of blocks: local SNR = the side's speech level
    over each block's noise; the run grows over neighbours still below the flag threshold."""
    per_block = max(8, int(round(options.block_s / nf.FRAME_S)))
    noise = ch.noise if noise is None else noise
    n = len(noise)
    starts = list(range(0, n, per_block))
    local = []
    for b0 in starts:
        seg = noise[b0 : b0 + per_block]
        if mask is not None and not mask[b0 : b0 + per_block].any():
            local.append(np.inf)  # mono role: only blocks where this side talks
            continue
        local.append(_calibrate(level_db - float(nf.db(float(seg.mean()))), options))
    local = np.asarray(local)
    k = int(np.argmin(local))
    limit = max(options.snr_flag_db, local[k] + 3.0)
    i0 = i1 = k
    while i0 > 0 and local[i0 - 1] < limit:
        i0 -= 1
    while i1 + 1 < len(local) and local[i1 + 1] < limit:
        i1 += 1
    start = starts[i0] * nf.FRAME_S
    end = min(duration, (starts[i1] + per_block) * nf.FRAME_S + nf.NFFT / nf.SR)
    return round(start, 3), round(end, 3), float(local[k])


def _noisy_flag(ch: _Channel, m: dict, role: str, options: NoiseOptions, duration: float,
                mask: np.ndarray | None = None, note: str = "") -> Flag:
    side_noise = ch.side_noise.get(id(mask if mask is not None else ch.speech))
    start, end, local = _worst_stretch(ch, m["speech_level_dbfs"], options, duration, mask, side_noise)
    kind = m["kind"] or "stationary"
    snr = m["snr_db"]
    severity = "high" if snr < options.snr_high_db else ("medium" if snr < options.snr_flag_db else "low")
    what = {"babble": "other voices in the background", "hum": f"mains hum ({(m['hum'] or {}).get('freq_hz') or 0:.0f} Hz)",
            "stationary": "steady background noise"}[kind]
    side = role if role != UNKNOWN else "the call"
    bak = f", background MOS {m['bak_mos']:.1f}/5" if m["bak_mos"] is not None else ""
    evidence = (f"{what[0].upper()}{what[1:]} on the {side} side: speech only {snr:.1f} dB above the noise{bak}; "
                f"worst {start:.0f}-{end:.0f} s ({local:.1f} dB).{note}")
    detail = {"side": role, "kind": kind, "snr_db": snr, "worst_start": start, "worst_end": end,
              "worst_snr_db": _r(local), "noise_floor_dbfs": m["noise_floor_dbfs"], "bak_mos": m["bak_mos"],
              "background_speech_share": m["background_speech_share"]}
    return Flag(type="noisy_background", severity=severity, start=start, end=end, role=role,
                evidence=evidence, detail=detail)


def _line_flags(ch: _Channel, m: dict, role: str, speech: np.ndarray, options: NoiseOptions,
                duration: float) -> list[Flag]:
    out = []
    side = role if role != UNKNOWN else "the call"
    if m["clipping_share"] is not None and m["clipping_share"] >= options.clipping_flag_share:
        start, end = _clipped_stretch(ch, speech, duration)
        out.append(Flag(type="poor_line_quality", severity="high" if m["clipping_share"] >= 0.02 else "medium",
                        start=start, end=end, role=role,
                        evidence=f"Clipping on the {side} side: {100 * m['clipping_share']:.1f} % of speech samples "
                                 f"are flattened at full level (distorted audio), worst {start:.0f}-{end:.0f} s.",
                        detail={"problem": "clipping", "side": role, "clipping_share": m["clipping_share"]}))
    if m["low_level"]:
        span = _speech_span(speech, duration)
        out.append(Flag(type="poor_line_quality", severity="medium", start=span[0], end=span[1], role=role,
                        evidence=f"Very low level on the {side} side: speech at {m['speech_level_dbfs']:.0f} dBFS "
                                 f"(below {options.low_level_dbfs:.0f} dBFS); hard to hear.",
                        detail={"problem": "low_level", "side": role, "speech_level_dbfs": m["speech_level_dbfs"]}))
    d = m["dropouts"]
    if d["count"] >= options.dropout_flag_count:
        t = d["times"]
        out.append(Flag(type="poor_line_quality", severity="high" if d["count"] >= 3 * options.dropout_flag_count
                        else "medium", start=t[0][0], end=t[-1][1], role=role,
                        evidence=f"Dropouts on the {side} side: the audio went silent {d['count']} times mid-speech "
                                 f"({d['total_s']:.2f} s in all), first at {t[0][0]:.1f} s.",
                        detail={"problem": "dropouts", "side": role, "count": d["count"], "total_s": d["total_s"],
                                "times": t[:10]}))
    ct = ch.crosstalk
    if ct and ct.get("coupling_db") is not None and ct["coupling_db"] >= options.crosstalk_flag_db:
        other = {AGENT: CUSTOMER, CUSTOMER: AGENT}.get(role, "other")
        kind = ct["kind"] or "crosstalk"
        delay = f", {ct['delay_ms']:.0f} ms late" if kind == "echo" else ""
        out.append(Flag(type="poor_line_quality", severity="medium" if ct["coupling_db"] >= -20 else "low",
                        start=0.0, end=round(duration, 3), role=role,
                        evidence=f"{kind.capitalize()}: the {other} side is heard in the {side} leg at "
                                 f"{ct['coupling_db']:.0f} dB{delay}.",
                        detail={"problem": kind, "side": role, **ct}))
    return out


def _flags_for_side(ch: _Channel, m: dict, role: str, speech: np.ndarray, options: NoiseOptions, duration: float,
                    timeline: Timeline) -> list[Flag]:
    flags = []
    if _is_noisy(m, options):
        flags.append(_noisy_flag(ch, m, role, options, duration))
    return flags + _line_flags(ch, m, role, speech, options, duration)


def _mono_flags(ch: _Channel, overall: dict, sides: dict, role_masks: dict, options: NoiseOptions,
                duration: float, timeline: Timeline) -> list[Flag]:
    """One signal: a noisy call is flagged once; it names a side only when the noise heard during
    that side's turns is ≥ 3 dB above the noise during the other side's (else role 'unknown')."""
    flags = []
    if _is_noisy(overall, options) or any(_is_noisy(m, options) for m in sides.values()):
        role, mask, note = UNKNOWN, None, " Mono recording: the noise cannot be tied to one side."
        floors = {r: s["noise_floor_dbfs"] for r, s in sides.items() if s.get("noise_floor_dbfs") is not None}
        if len(floors) == 2 and abs(floors[AGENT] - floors[CUSTOMER]) >= 3.0:
            role = max(floors, key=floors.get)
            mask, note = role_masks[role], ""
        flags.append(_noisy_flag(ch, sides[role] if role in sides else overall, role, options, duration, mask, note))
    for role, m in sides.items():
        flags += _line_flags(ch, m, role, role_masks[role], options, duration)
    if not sides:
        flags += _line_flags(ch, overall, UNKNOWN, ch.speech, options, duration)
    return flags


def _clipped_stretch(ch: _Channel, speech: np.ndarray, duration: float) -> tuple[float, float]:
    """Start/end of the 10 s block with the most clipped samples."""
    peak = max(float(ch.x.max()), -float(ch.x.min())) if len(ch.x) else 0.0  # no |x| copy of a long call
    block = 10 * nf.SR
    counts = [int((np.abs(ch.x[i : i + block]) >= 0.97 * peak).sum()) for i in range(0, len(ch.x), block)]
    k = int(np.argmax(counts)) if counts else 0
    return round(k * 10.0, 3), round(min(duration, (k + 1) * 10.0), 3)


def _speech_span(speech: np.ndarray, duration: float) -> tuple[float, float]:
    idx = np.flatnonzero(speech)
    if len(idx) == 0:
        return 0.0, round(duration, 3)
    return round(float(idx[0] * nf.FRAME_S), 3), round(min(duration, float((idx[-1] + 1) * nf.FRAME_S)), 3)


def _calibrate(snr: float | None, options: NoiseOptions) -> float | None:
    """Undo the estimator's compression at low SNR (measured on NOIZEUS, docs/BENCHMARKS.md).

    In heavy noise only the louder syllables stand out, so the speech level reads
    high and the SNR too: below ``snr_low_knee_db`` the raw value is pushed down by
    ``snr_low_expand`` dB per dB under the knee. Above the knee it is left alone.
    """
    if snr is None:
        return None
    if snr < options.snr_low_knee_db:
        return snr - options.snr_low_expand * (options.snr_low_knee_db - snr)
    return snr


def _r(v: float | None, nd: int = 1) -> float | None:
    if v is None or not np.isfinite(v):
        return None
    return round(float(v), nd)

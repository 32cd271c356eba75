"""A copy of a recording with each redacted PII span replaced by a 1 kHz tone or silence.

For supervisors who need to listen to a call without hearing the card number. The copy
keeps the source's container, codec, channel count and sample rate where FFmpeg (PyAV)
can encode that codec; otherwise (e.g. GSM 6.10) it is written as 16-bit PCM WAV and the
result says so. On a stereo recording a span is masked on its speaker's channel only
(the other party stays audible); on mono, or when the channel is unknown, on every channel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

log = logging.getLogger("pipeline")

TONE_HZ = 1000.0
TONE_DBFS = -12.0  # loud enough to be obvious, far from clipping
FADE_S = 0.005  # 5 ms ramps: no clicks at the edges


class RedactAudioError(Exception):
    """The source could not be read or the copy could not be written."""


@dataclass(frozen=True)
class RedactedAudio:
    path: Path
    container: str
    codec: str
    sample_rate: int
    channels: int
    spans_masked: int
    note: str | None = None  # set when the source's codec could not be kept

    def to_dict(self) -> dict:
        return {"path": str(self.path), "container": self.container, "codec": self.codec,
                "sample_rate": self.sample_rate, "channels": self.channels, "spans_masked": self.spans_masked,
                "note": self.note}


def _decode(src: Path) -> tuple[np.ndarray, int, str, str, str, int | None]:
    """(samples float32 (channels, n), rate, layout name, container format, codec name, bit rate)."""
    import av

    try:
        with av.open(str(src)) as c:
            if not c.streams.audio:
                raise RedactAudioError(f"{src}: no audio stream to redact")
            st = c.streams.audio[0]
            rate = st.codec_context.sample_rate
            channels = st.codec_context.channels
            layout = st.codec_context.layout.name
            codec = st.codec_context.name
            bit_rate = st.codec_context.bit_rate or st.bit_rate
            fmt = c.format.name
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            chunks = []
            for frame in c.decode(st):
                for f in resampler.resample(frame):
                    chunks.append(f.to_ndarray())
            for f in resampler.resample(None):
                chunks.append(f.to_ndarray())
    except av.error.FFmpegError as e:
        raise RedactAudioError(f"{src}: cannot decode ({e})") from None
    samples = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
    return samples.astype(np.float32, copy=False), rate, layout, fmt, codec, bit_rate


def _mask(samples: np.ndarray, rate: int, spans: Iterable[Mapping], *, mode: str, pad_s: float,
          channel_of: Mapping[str, int | None]) -> int:
    """Mask every span; spans that touch or overlap on a channel are merged first, so one continuous
    tone (not two ramps meeting mid-word, which clicks) covers them."""
    n_ch, n = samples.shape
    per_row: dict[int, list[tuple[int, int]]] = {r: [] for r in range(n_ch)}
    count = 0
    for span in spans:
        a = max(0, int((float(span["start"]) - pad_s) * rate))
        b = min(n, int(np.ceil((float(span["end"]) + pad_s) * rate)))
        if b <= a:
            continue
        ch = span.get("channel")
        if ch is None:
            ch = channel_of.get(span.get("speaker", ""))
        rows = [ch] if (ch is not None and n_ch > 1 and 0 <= ch < n_ch) else list(range(n_ch))
        for r in rows:
            per_row[r].append((a, b))
        count += 1
    fade = max(1, int(FADE_S * rate))
    amp = 10 ** (TONE_DBFS / 20)
    for r, ivs in per_row.items():
        merged: list[list[int]] = []
        for a, b in sorted(ivs):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        for a, b in merged:
            if mode == "silence":
                samples[r, a:b] = 0.0
                continue
            t = np.arange(a, b) / rate
            fill = (amp * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
            ramp = np.minimum(1.0, np.minimum(np.arange(b - a) + 1, np.arange(b - a, 0, -1)) / fade)
            samples[r, a:b] = fill * ramp.astype(np.float32)
    return count


def _encode(dst: Path, samples: np.ndarray, rate: int, layout: str, codec: str, bit_rate: int | None,
            container: str | None) -> None:
    import av

    codec = _ENCODER.get(codec, codec)
    with av.open(str(dst), "w", format=container) as out:
        # "strict=-2" lets FFmpeg use its native Vorbis encoder (marked experimental).
        st = out.add_stream(codec, rate=rate, layout=layout, options={"strict": "-2"})
        if bit_rate and codec not in ("flac",) and not codec.startswith("pcm_"):
            st.bit_rate = bit_rate
        block = 4096
        for i in range(0, samples.shape[1], block):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, i:i + block]), format="fltp",
                                               layout=layout)
            frame.sample_rate = rate
            frame.pts = i
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)


# Decoder name -> encoder name where they differ.
_ENCODER = {"mp3float": "libmp3lame", "mp3": "libmp3lame", "opus": "libopus"}
_WRITE_FORMAT = {"wav": "wav", "mp3": "mp3", "flac": "flac", "ogg": "ogg", "mov,mp4,m4a,3gp,3g2,mj2": "ipod",
                 "au": "au", "aiff": "aiff", "matroska,webm": "matroska", "caf": "caf"}


def write_redacted_audio(src_path: str | Path, dst_path: str | Path, spans: Iterable[Mapping], *,
                         mode: str = "tone", pad_s: float = 0.25,
                         channels: Mapping[str, int | None] | None = None) -> RedactedAudio:
    """Write ``dst_path``: ``src_path`` with every span (``{start, end, channel?, speaker?}``, seconds)
    replaced by a 1 kHz tone (``mode="tone"``) or silence, ``pad_s`` seconds wider on each side
    (word timestamps are approximate). ``channels`` maps speaker id to channel for spans without one.
    Returns where it was written and in which format; when the source codec cannot be encoded the
    copy is a WAV next to ``dst_path`` (suffix ``.wav``) and ``note`` says why.
    """
    if mode not in ("tone", "silence"):
        raise ValueError(f"redact audio: mode must be 'tone' or 'silence', got {mode!r}")
    src, dst = Path(src_path), Path(dst_path)
    samples, rate, layout, fmt, codec, bit_rate = _decode(src)
    masked = _mask(samples, rate, list(spans), mode=mode, pad_s=pad_s, channel_of=channels or {})
    dst.parent.mkdir(parents=True, exist_ok=True)
    container = _WRITE_FORMAT.get(fmt)
    note = None
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        _encode(tmp, samples, rate, layout, codec, bit_rate, container or fmt.split(",")[0])
        tmp.replace(dst)
        out_codec, out_container = _ENCODER.get(codec, codec), container or fmt
    except Exception as e:  # the codec cannot be encoded here (GSM, G.729, ...): fall back to PCM WAV
        tmp.unlink(missing_ok=True)
        note = (f"source codec {codec!r} in {fmt!r} cannot be encoded ({type(e).__name__}: {e}); "
                "wrote 16-bit PCM WAV instead")
        log.warning("redact audio: %s", note)
        dst = dst.with_suffix(".wav")
        _encode(tmp, samples, rate, layout, "pcm_s16le", None, "wav")
        tmp.replace(dst)
        out_codec, out_container = "pcm_s16le", "wav"
    return RedactedAudio(path=dst, container=out_container, codec=out_codec, sample_rate=rate,
                         channels=samples.shape[0], spans_masked=masked, note=note)

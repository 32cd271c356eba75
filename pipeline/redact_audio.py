"""A copy of a recording with each redacted PII span replaced by a 1 kHz tone or silence.

For supervisors who need to listen to a call without hearing the card number. The copy
keeps the source's container, codec, channel count and sample rate where FFmpeg (PyAV)
can encode that codec; otherwise (e.g. GSM 6.10) it is written as 16-bit PCM WAV and the
result says so. On a stereo recording a span is masked on its speaker's channel only
(the other party stays audible); on mono, or when the channel is unknown, on every channel.
The file is streamed frame by frame (decode, mask, encode), so a long call never sits in memory.
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


def _intervals(spans: Iterable[Mapping], rate: int, n_ch: int, *, pad_s: float,
               channel_of: Mapping[str, int | None]) -> tuple[dict[int, list[tuple[int, int]]], int]:
    """Sample intervals to mask per channel; spans that touch or overlap on a channel are merged, so one
    continuous tone (not two ramps meeting mid-word, which clicks) covers them."""
    per_row: dict[int, list[tuple[int, int]]] = {r: [] for r in range(n_ch)}
    count = 0
    for span in spans:
        a = max(0, int((float(span["start"]) - pad_s) * rate))
        b = int(np.ceil((float(span["end"]) + pad_s) * rate))
        if b <= a:
            continue
        ch = span.get("channel")
        if ch is None:
            ch = channel_of.get(span.get("speaker", ""))
        rows = [ch] if (ch is not None and n_ch > 1 and 0 <= ch < n_ch) else list(range(n_ch))
        for r in rows:
            per_row[r].append((a, b))
        count += 1
    merged: dict[int, list[tuple[int, int]]] = {}
    for r, ivs in per_row.items():
        out: list[list[int]] = []
        for a, b in sorted(ivs):
            if out and a <= out[-1][1]:
                out[-1][1] = max(out[-1][1], b)
            else:
                out.append([a, b])
        merged[r] = [(a, b) for a, b in out]
    return merged, count


def _apply(chunk: np.ndarray, offset: int, rate: int, intervals: dict[int, list[tuple[int, int]]], mode: str) -> None:
    """Mask ``chunk`` (channels, n) that starts at sample ``offset`` of the file, in place. The tone's phase
    and its 5 ms ramps follow the absolute sample index, so chunk borders are seamless."""
    n = chunk.shape[1]
    fade = max(1, int(FADE_S * rate))
    amp = 10 ** (TONE_DBFS / 20)
    for r, ivs in intervals.items():
        for a, b in ivs:
            lo, hi = max(a, offset), min(b, offset + n)
            if hi <= lo:
                continue
            if mode == "silence":
                chunk[r, lo - offset:hi - offset] = 0.0
                continue
            idx = np.arange(lo, hi)
            ramp = np.minimum(1.0, np.minimum(idx - a + 1, b - idx) / fade)
            tone = amp * ramp * np.sin(2 * np.pi * TONE_HZ * idx / rate)
            chunk[r, lo - offset:hi - offset] = tone.astype(np.float32)


# Decoder name -> encoder name where they differ.
_ENCODER = {"mp3float": "libmp3lame", "mp3": "libmp3lame", "opus": "libopus"}
_WRITE_FORMAT = {"wav": "wav", "mp3": "mp3", "flac": "flac", "ogg": "ogg", "mov,mp4,m4a,3gp,3g2,mj2": "ipod",
                 "au": "au", "aiff": "aiff", "matroska,webm": "matroska", "caf": "caf"}


def _open_output(dst: Path, container: str, codec: str, rate: int, layout: str, bit_rate: int | None):
    """Open the writer and its encoder now, so a codec FFmpeg cannot encode fails before any decoding."""
    import av

    out = av.open(str(dst), "w", format=container)
    try:
        # "strict=-2" lets FFmpeg use its native Vorbis encoder (marked experimental).
        st = out.add_stream(codec, rate=rate, layout=layout, options={"strict": "-2"})
        if bit_rate and codec != "flac" and not codec.startswith("pcm_"):
            st.bit_rate = bit_rate
        st.codec_context.open()
    except BaseException:
        out.close()
        raise
    return out, st


def _stream(src: Path, out, st, rate: int, layout: str, intervals, mode: str) -> int:
    import av

    written = 0
    with av.open(str(src)) as c:
        ist = c.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)

        def emit(frames) -> None:
            nonlocal written
            for f in frames:
                x = f.to_ndarray().astype(np.float32, copy=True)
                _apply(x, written, rate, intervals, mode)
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="fltp", layout=layout)
                frame.sample_rate = rate
                frame.pts = written
                written += x.shape[1]
                for pkt in st.encode(frame):
                    out.mux(pkt)

        for frame in c.decode(ist):
            emit(resampler.resample(frame))
        emit(resampler.resample(None))
    for pkt in st.encode(None):
        out.mux(pkt)
    return written


def write_redacted_audio(src_path: str | Path, dst_path: str | Path, spans: Iterable[Mapping], *,
                         mode: str = "tone", pad_s: float = 0.25,
                         channels: Mapping[str, int | None] | None = None) -> RedactedAudio:
    """Write ``dst_path``: ``src_path`` with every span (``{start, end, channel?, speaker?}``, seconds)
    replaced by a 1 kHz tone (``mode="tone"``) or silence, ``pad_s`` seconds wider on each side
    (word timestamps are approximate). ``channels`` maps speaker id to channel for spans without one.
    Returns where it was written and in which format; when the source codec cannot be encoded the
    copy is a WAV next to ``dst_path`` (suffix ``.wav``) and ``note`` says why.
    """
    import av

    if mode not in ("tone", "silence"):
        raise ValueError(f"redact audio: mode must be 'tone' or 'silence', got {mode!r}")
    src, dst = Path(src_path), Path(dst_path)
    try:
        with av.open(str(src)) as c:
            if not c.streams.audio:
                raise RedactAudioError(f"{src}: no audio stream to redact")
            cc = c.streams.audio[0].codec_context
            rate, n_ch, layout, codec = cc.sample_rate, cc.channels, cc.layout.name, cc.name
            bit_rate = cc.bit_rate or c.streams.audio[0].bit_rate
            fmt = c.format.name
    except av.error.FFmpegError as e:
        raise RedactAudioError(f"{src}: cannot decode ({e}); nothing was written") from None
    intervals, masked = _intervals(list(spans), rate, n_ch, pad_s=pad_s, channel_of=channels or {})
    dst.parent.mkdir(parents=True, exist_ok=True)
    container = _WRITE_FORMAT.get(fmt, fmt.split(",")[0])
    enc = _ENCODER.get(codec, codec)
    note = None
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        out, st = _open_output(tmp, container, enc, rate, layout, bit_rate)
    except Exception as e:  # the codec cannot be encoded here (GSM, G.729, ...): fall back to PCM WAV
        tmp.unlink(missing_ok=True)
        note = (f"source codec {codec!r} in {fmt!r} cannot be encoded ({type(e).__name__}: {e}); "
                "wrote 16-bit PCM WAV instead")
        log.warning("redact audio: %s", note)
        dst = dst.with_suffix(".wav")
        tmp = dst.with_name(f".{dst.name}.tmp")
        container, enc = "wav", "pcm_s16le"
        out, st = _open_output(tmp, container, enc, rate, layout, None)
    try:
        with out:
            _stream(src, out, st, rate, layout, intervals, mode)
        tmp.replace(dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return RedactedAudio(path=dst, container=container, codec=enc, sample_rate=rate, channels=n_ch,
                         spans_masked=masked, note=note)

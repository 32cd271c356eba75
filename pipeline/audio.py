"""Decode a recording once, keep its channels, resample to 16 kHz float32.

PyAV (FFmpeg) decodes whatever contact-centre recorders write: WAV with PCM,
µ-law, A-law, GSM 6.10 or ADPCM, MP3, FLAC, Ogg Vorbis/Opus, M4A/AAC, G.722. The
decoded signal is written straight into one preallocated ``(channels, samples)``
buffer, so a long call costs its 16 kHz float32 size once (about 0.9 GB for two
hours of stereo), not several copies of it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .record import SourceInfo

log = logging.getLogger("pipeline")

SAMPLE_RATE = 16000
AUDIO_EXTENSIONS = (
    ".wav", ".wave", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".g722", ".gsm",
    ".au", ".aif", ".aiff", ".caf", ".wma", ".webm", ".amr", ".sln", ".vox", ".mka",
)


@dataclass(frozen=True)
class AudioOptions:
    min_duration_s: float = 1.0
    max_duration_s: float = 14400.0
    silence_peak_dbfs: float = -60.0

    def __post_init__(self) -> None:
        if not 0 < self.min_duration_s < self.max_duration_s:
            raise ValueError("audio: need 0 < min_duration_s < max_duration_s")


class AudioError(Exception):
    """A recording that cannot be analysed; ``kind`` goes into the error record."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32, shape (channels, n), 16 kHz
    source: SourceInfo
    warnings: tuple[str, ...] = ()

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    @property
    def duration(self) -> float:
        return self.samples.shape[1] / SAMPLE_RATE

    def channel(self, index: int) -> np.ndarray:
        return self.samples[index]

    def mono(self) -> np.ndarray:
        """Both legs summed (what a mono recorder would capture)."""
        if self.channels == 1:
            return self.samples[0]
        return self.samples.mean(axis=0, dtype=np.float32)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def is_audio_path(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


def probe_source(path: str | Path) -> dict:
    """What is known about a file before decoding (for error records)."""
    p = Path(path)
    info: dict = {"path": str(p)}
    try:
        info["size_bytes"] = p.stat().st_size
    except OSError:
        pass
    return info


def load_audio(path: str | Path, options: AudioOptions = AudioOptions()) -> Audio:
    """Decode ``path`` to 16 kHz float32 channels; raise :class:`AudioError` if unusable."""
    import av

    path = Path(path)
    if not path.is_file():
        raise AudioError("not_found", f"No such file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise AudioError("empty", "The file is empty (0 bytes): the recorder wrote nothing. Check the recording system.")

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except Exception as e:  # av raises many subclasses; all mean "not readable audio"
        raise AudioError(
            "decode_error",
            f"Could not read this file as audio ({_short(e)}): it is corrupt, truncated or not a recording.",
        ) from None

    warnings: list[str] = []
    with container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            raise AudioError("unsupported_format", "The file has no audio stream; is it really a recording?")
        stream = streams[0]
        ctx = stream.codec_context
        channels = int(ctx.channels or 0)
        native_rate = int(ctx.sample_rate or 0)
        codec = ctx.name or "unknown"
        if channels not in (1, 2):
            raise AudioError(
                "unsupported_format",
                f"The recording has {channels} channels; callqa analyses mono or stereo (one leg per channel) calls. "
                "Split or downmix it first (e.g. `sox in.wav out.wav remix 1 2`).",
            )
        if native_rate <= 0:
            raise AudioError("decode_error", "The file does not say its sample rate; it is probably corrupt.")

        expected = _expected_duration(container, stream)
        if expected is not None and expected > options.max_duration_s * 1.01:
            raise AudioError("too_long", f"The recording is {_hms(expected)} long; the limit is "
                             f"{_hms(options.max_duration_s)} (audio.max_duration_s).")

        buf = _Buffer(channels, int((expected or 60.0) * SAMPLE_RATE) + SAMPLE_RATE)
        layout = "mono" if channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=SAMPLE_RATE)
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler count samples; broken pts in damaged files
                for out in resampler.resample(frame):
                    buf.append(out.to_ndarray())
                if buf.n > options.max_duration_s * SAMPLE_RATE * 1.01:
                    raise AudioError("too_long", f"The recording is longer than the limit of "
                                     f"{_hms(options.max_duration_s)} (audio.max_duration_s).")
            for out in resampler.resample(None):
                buf.append(out.to_ndarray())
        except AudioError:
            raise
        except Exception as e:
            if buf.n == 0:
                raise AudioError("decode_error", f"Could not decode any audio ({_short(e)}): the file is corrupt "
                                 "or truncated.") from None
            msg = f"decoding stopped early at {buf.n / SAMPLE_RATE:.1f} s ({_short(e)}); the file may be truncated"
            log.warning("%s: %s", path.name, msg)
            warnings.append(msg)
        fmt = container.format.name if container.format else path.suffix.lstrip(".")

    samples = buf.result()
    duration = samples.shape[1] / SAMPLE_RATE
    if samples.shape[1] == 0:
        raise AudioError("decode_error", "The file decodes to no audio samples: it is truncated or corrupt.")
    source = SourceInfo(
        path=str(path), sha256=file_sha256(path), format=fmt, codec=codec, duration_s=duration,
        sample_rate=native_rate, channels=channels, size_bytes=size,
    )
    if duration < options.min_duration_s:
        raise AudioError("too_short", f"The recording is only {duration:.2f} s long; at least "
                         f"{options.min_duration_s:g} s is needed to analyse a call (audio.min_duration_s).")
    peak = max(float(samples.max()), -float(samples.min())) if samples.size else 0.0  # no |x| copy of a long call
    peak_db = 20 * np.log10(peak) if peak > 0 else float("-inf")
    if peak_db < options.silence_peak_dbfs:
        level = "digital silence" if peak == 0 else f"peak {peak_db:.0f} dBFS"
        raise AudioError("silent", f"The recording is silent ({level} over {duration:.1f} s): no one can be heard. "
                         "Check the recorder's input or the channel wiring.")
    return Audio(samples=samples, source=source, warnings=tuple(warnings))


class _Buffer:
    """A growable (channels, n) float32 buffer; grows by 1.5x so long files rarely copy."""

    def __init__(self, channels: int, capacity: int) -> None:
        self.data = np.zeros((channels, max(capacity, SAMPLE_RATE)), dtype=np.float32)
        self.n = 0

    def append(self, block: np.ndarray) -> None:
        block = block.reshape(self.data.shape[0], -1)
        k = block.shape[1]
        if self.n + k > self.data.shape[1]:
            grown = np.zeros((self.data.shape[0], int((self.n + k) * 1.5)), dtype=np.float32)
            grown[:, : self.n] = self.data[:, : self.n]
            self.data = grown
        self.data[:, self.n : self.n + k] = block
        self.n += k

    def result(self) -> np.ndarray:
        if self.n == self.data.shape[1]:
            return self.data
        if self.n > 0.9 * self.data.shape[1]:
            return self.data[:, : self.n]  # a view: no second copy of a long call
        return self.data[:, : self.n].copy()


def _expected_duration(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _short(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    text = text.replace(os.getcwd() + os.sep, "")
    return text[:160]

"""Decoding what contact-centre recorders write: codecs, rates, channels, and the audio checks."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.audio import SAMPLE_RATE, AudioError, AudioOptions, load_audio

FIXTURES = Path(__file__).resolve().parent.parent / "audio_fixtures"


def chirp(rate: int, channels: int, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    left = 0.4 * np.sin(2 * np.pi * (300 + 400 * t) * t)
    right = 0.3 * np.sin(2 * np.pi * 800 * t) * (t > seconds / 2)  # right leg silent in the first half
    return np.stack([left, right][:channels]).astype(np.float32)


def encode(path: Path, codec: str, rate: int, channels: int, fmt: str | None = None) -> np.ndarray:
    """Write ``chirp`` with PyAV's encoder for ``codec``; returns the signal written."""
    sig = chirp(rate, channels)
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "-2"}  # FFmpeg's own Vorbis encoder is "experimental"
        frame = av.AudioFrame.from_ndarray((sig.T.reshape(1, -1) * 32767).astype(np.int16), format="s16",
                                           layout=layout)
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=rate)
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return sig


CASES = [  # (file name, codec, native rate, channels, container)
    ("pcm16.wav", "pcm_s16le", 8000, 2, "wav"),
    ("pcm16_48k.wav", "pcm_s16le", 48000, 2, "wav"),
    ("ulaw.wav", "pcm_mulaw", 8000, 2, "wav"),
    ("alaw.wav", "pcm_alaw", 8000, 1, "wav"),
    ("adpcm.wav", "adpcm_ms", 8000, 1, "wav"),
    ("call.mp3", "libmp3lame", 22050, 2, "mp3"),
    ("call.flac", "flac", 44100, 2, "flac"),
    ("call.ogg", "vorbis", 16000, 2, "ogg"),
    ("call.opus", "libopus", 48000, 2, "opus"),
    ("call.m4a", "aac", 32000, 2, "ipod"),
    ("call.g722", "g722", 16000, 1, "g722"),
]


@pytest.mark.parametrize("name,codec,rate,channels,fmt", CASES, ids=[c[0] for c in CASES])
def test_decodes_codec_keeps_channels_and_resamples(tmp_path, name, codec, rate, channels, fmt):
    path = tmp_path / name
    sig = encode(path, codec, rate, channels, fmt)
    audio = load_audio(path)
    assert audio.channels == channels and audio.sample_rate == SAMPLE_RATE
    assert audio.samples.dtype == np.float32
    assert abs(audio.duration - 2.0) < 0.1  # codec priming may add a few ms
    assert audio.source.sample_rate == rate and audio.source.channels == channels
    assert len(audio.source.sha256) == 64
    # the content survives: per-channel level in each half matches what was written
    half = audio.samples.shape[1] // 2
    for c in range(channels):
        for part, src in ((audio.samples[c, : half - 1600], sig[c, : sig.shape[1] // 2]),
                          (audio.samples[c, half + 1600 :], sig[c, sig.shape[1] // 2 :])):
            want = float(np.sqrt(np.mean(src**2)))
            got = float(np.sqrt(np.mean(part**2)))
            assert abs(got - want) < 0.1 * max(want, 0.05), (c, got, want)


def test_gsm610_wav_from_the_fixture_script():
    audio = load_audio(FIXTURES / "formats" / "tone_gsm610.wav")
    assert audio.source.codec == "gsm_ms" and audio.source.sample_rate == 8000
    assert abs(audio.duration - 1.5) < 0.05 and np.abs(audio.samples).max() > 0.2


def test_mono_downmix_and_channel_access(tmp_path):
    path = tmp_path / "s.wav"
    encode(path, "pcm_s16le", 16000, 2, "wav")
    audio = load_audio(path)
    assert np.allclose(audio.mono(), audio.samples.mean(axis=0), atol=1e-6)
    assert audio.channel(1).shape == (audio.samples.shape[1],)


@pytest.mark.parametrize("content,kind", [
    (b"", "empty"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "decode_error"),
    (bytes(np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8)), "decode_error"),
])
def test_unreadable_files_raise_audio_error_with_kind(tmp_path, content, kind):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(AudioError) as e:
        load_audio(p)
    assert e.value.kind == kind and len(e.value.message) > 20


def test_too_short_too_long_and_silent(tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "short.wav", np.full(4000, 0.3, dtype=np.float32), 8000)  # 0.5 s
    with pytest.raises(AudioError, match="only 0.50 s") as e:
        load_audio(tmp_path / "short.wav")
    assert e.value.kind == "too_short"
    sf.write(tmp_path / "silent.wav", np.zeros((8000 * 60, 2), dtype=np.float32), 8000)
    with pytest.raises(AudioError, match="silent") as e:
        load_audio(tmp_path / "silent.wav")
    assert e.value.kind == "silent"
    sf.write(tmp_path / "long.wav", np.full(8000 * 5, 0.1, dtype=np.float32), 8000)
    with pytest.raises(AudioError) as e:
        load_audio(tmp_path / "long.wav", AudioOptions(min_duration_s=1, max_duration_s=3))
    assert e.value.kind == "too_long"


def test_three_channels_are_refused_with_advice(tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "three.wav", np.full((16000, 3), 0.1, dtype=np.float32), 8000)
    with pytest.raises(AudioError, match="3 channels") as e:
        load_audio(tmp_path / "three.wav")
    assert e.value.kind == "unsupported_format"


def test_truncated_data_keeps_what_decodes_and_warns(tmp_path):
    import soundfile as sf

    full = tmp_path / "full.wav"
    sf.write(full, chirp(8000, 2, seconds=4).T, 8000, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[: 44 + 8000 * 4 * 2])  # header + 2 s of the 4 s
    audio = load_audio(cut)
    assert 1.9 < audio.duration < 2.1

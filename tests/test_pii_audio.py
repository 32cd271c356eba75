"""Redacted audio copies: tone or silence over spans, per channel on stereo, same format where encodable."""

from __future__ import annotations

import subprocess

import av
import numpy as np
import pytest
import soundfile as sf

from pipeline.redact_audio import TONE_HZ, write_redacted_audio

SR = 8000


def _speechlike(n: int, seed: int) -> np.ndarray:
    """Band-limited noise bursts: broadband energy like speech, not a pure tone."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.1, n).astype(np.float32)
    env = (np.sin(np.arange(n) / SR * 2 * np.pi * 3) > -0.5).astype(np.float32)
    return x * env


@pytest.fixture
def stereo_wav(tmp_path):
    x = np.stack([_speechlike(4 * SR, 1), _speechlike(4 * SR, 2)], axis=1)
    p = tmp_path / "call.wav"
    sf.write(p, x, SR, subtype="PCM_16")
    return p, x


def _band_share(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(spec[(f >= lo) & (f <= hi)].sum() / spec.sum())


def test_tone_on_the_speakers_channel_only(stereo_wav, tmp_path):
    src, x = stereo_wav
    res = write_redacted_audio(src, tmp_path / "out" / "redacted.wav", [{"start": 1.0, "end": 2.0, "channel": 0,
                                                                        "speaker": "left", "type": "card"}],
                               mode="tone", pad_s=0.0)
    assert res.path.name == "redacted.wav" and res.note is None and res.spans_masked == 1
    y, sr = sf.read(res.path, dtype="float32")
    assert sr == SR and y.shape == x.shape
    seg = y[int(1.05 * SR):int(1.95 * SR), 0]
    assert _band_share(seg, TONE_HZ - 50, TONE_HZ + 50) > 0.99  # only the tone is left there
    assert _band_share(x[int(1.05 * SR):int(1.95 * SR), 0], TONE_HZ - 50, TONE_HZ + 50) < 0.2
    np.testing.assert_allclose(y[:, 1], x[:, 1], atol=1e-4)  # the other party is untouched
    np.testing.assert_allclose(y[: int(0.99 * SR), 0], x[: int(0.99 * SR), 0], atol=1e-4)


def test_silence_with_padding_and_speaker_channel_lookup(stereo_wav, tmp_path):
    src, x = stereo_wav
    res = write_redacted_audio(src, tmp_path / "r.wav", [{"start": 1.0, "end": 2.0, "speaker": "right"}],
                               mode="silence", pad_s=0.25, channels={"right": 1})
    y, _ = sf.read(res.path, dtype="float32")
    assert np.abs(y[int(0.76 * SR):int(2.24 * SR), 1]).max() < 1e-4
    assert np.abs(y[int(0.5 * SR):int(0.7 * SR), 1]).max() > 0.01  # outside the padded span: audio stays
    np.testing.assert_allclose(y[:, 0], x[:, 0], atol=1e-4)


def test_mono_masks_the_whole_track(tmp_path):
    p = tmp_path / "mono.wav"
    sf.write(p, _speechlike(3 * SR, 3), SR, subtype="PCM_16")
    res = write_redacted_audio(p, tmp_path / "r.wav", [{"start": 0.5, "end": 1.5, "channel": 1}], mode="silence",
                               pad_s=0.0)
    y, _ = sf.read(res.path, dtype="float32")
    assert y.ndim == 1 and np.abs(y[int(0.51 * SR):int(1.49 * SR)]).max() < 1e-4


def _probe(path):
    with av.open(str(path)) as c:
        st = c.streams.audio[0].codec_context
        return c.format.name, st.name, st.sample_rate, st.channels


def _encode_with_pyav(x: np.ndarray, path, codec: str) -> None:
    """Write (n, channels) float32 audio with PyAV (no ffmpeg binary needed)."""
    layout = "stereo" if x.shape[1] == 2 else "mono"
    with av.open(str(path), "w") as out:
        st = out.add_stream(codec, rate=SR, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x.T.astype(np.float32)), format="fltp", layout=layout)
        frame.sample_rate = SR
        for pkt in st.encode(frame):
            out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)


@pytest.mark.parametrize("encoder,suffix,codec", [
    ("pcm_mulaw", ".wav", "pcm_mulaw"),
    ("pcm_alaw", ".wav", "pcm_alaw"),
    ("flac", ".flac", "flac"),
    ("libmp3lame", ".mp3", "mp3"),
])
def test_same_container_codec_channels_and_rate(stereo_wav, tmp_path, encoder, suffix, codec):
    _, x = stereo_wav
    coded = tmp_path / f"coded{suffix}"
    _encode_with_pyav(x, coded, encoder)
    res = write_redacted_audio(coded, tmp_path / f"redacted{suffix}", [{"start": 1.0, "end": 2.0, "channel": 0}])
    assert res.path.suffix == suffix and res.note is None
    fmt, name, rate, ch = _probe(res.path)
    src_fmt, src_name, src_rate, src_ch = _probe(coded)
    assert (fmt, rate, ch) == (src_fmt, src_rate, src_ch)
    assert name.startswith(codec) and src_name.startswith(codec)


def test_codec_that_cannot_be_encoded_falls_back_to_wav_and_says_so(tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, _speechlike(2 * SR, 4), SR, subtype="PCM_16")
    gsm = tmp_path / "gsm.wav"  # GSM 6.10 in WAV, as call recorders write it (sox can encode it, FFmpeg cannot)
    subprocess.run(["sox", str(src), "-e", "gsm-full-rate", str(gsm)], check=True)
    res = write_redacted_audio(gsm, tmp_path / "redacted.gsm", [{"start": 0.5, "end": 1.0}], mode="silence")
    assert res.path.suffix == ".wav" and res.codec == "pcm_s16le" and "gsm" in res.note
    y, sr = sf.read(res.path, dtype="float32")
    assert sr == SR and np.abs(y[int(0.3 * SR):int(1.2 * SR)]).max() < 1e-4


def test_bad_mode_is_named(stereo_wav, tmp_path):
    with pytest.raises(ValueError, match="mode"):
        write_redacted_audio(stereo_wav[0], tmp_path / "x.wav", [], mode="beep")


def test_overlapping_spans_make_one_clean_tone(stereo_wav, tmp_path):
    src, _ = stereo_wav
    spans = [{"start": 1.0, "end": 1.62, "channel": 0}, {"start": 1.6, "end": 2.2, "channel": 0}]
    res = write_redacted_audio(src, tmp_path / "r.wav", spans, mode="tone", pad_s=0.0)
    y, _ = sf.read(res.path, dtype="float32")
    seg = y[int(1.05 * SR):int(2.15 * SR), 0]
    assert _band_share(seg, TONE_HZ - 50, TONE_HZ + 50) > 0.999  # no click where the spans meet
    assert res.spans_masked == 2

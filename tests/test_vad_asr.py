"""Speech activity (incl. crosstalk rejection) and the packing of speech regions for ASR."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.asr import pack_regions
from pipeline.audio import load_audio
from pipeline.config import load_config
from pipeline.timeline import Interval
from pipeline.vad import detect_speech

from conftest import FIXTURES

OPTS = load_config().vad


@pytest.fixture(scope="module")
def stereo_call():
    return load_audio(FIXTURES / "upsell_monologue.wav").samples


def covered(regions, start, end) -> float:
    return sum(max(0.0, min(r.end, end) - max(r.start, start)) for r in regions) / (end - start)


def test_speech_found_on_each_leg_where_the_script_has_it(stereo_call):
    import json

    truth = json.loads((FIXTURES / "upsell_monologue.truth.json").read_text())
    act = detect_speech(stereo_call, 16000, OPTS)
    for utt in truth["utterances"]:
        ch = 0 if utt["role"] == "agent" else 1
        assert covered(act[ch].speech, utt["start"], utt["end"]) > 0.8, utt["text"]
        assert covered(act[1 - ch].speech, utt["start"], utt["end"]) < 0.1, utt["text"]


@pytest.mark.parametrize("leak_db,delay_ms", [(-20, 0), (-12, 0), (-20, 40), (-20, 120), (-26, 120)])
def test_leak_of_the_other_leg_is_not_speech(stereo_call, leak_db, delay_ms):
    """The customer's leg also carries the agent (hybrid echo, bleed), maybe delayed: not customer speech."""
    leaky = stereo_call.copy()
    d = int(delay_ms * 16)
    leaky[1, d:] += leaky[0, : leaky.shape[1] - d] * 10 ** (leak_db / 20)
    clean_act = detect_speech(stereo_call, 16000, OPTS)
    act = detect_speech(leaky, 16000, OPTS)
    agent_only = [iv for iv in clean_act[0].speech if covered(clean_act[1].speech, iv.start, iv.end) == 0]
    assert sum(iv.duration for iv in agent_only) > 30
    for iv in agent_only:
        assert covered(act[1].speech, iv.start, iv.end) < 0.05, iv
    assert sum(iv.duration for iv in act[1].leak) > 20  # ...and it is reported as crosstalk
    # the customer's own speech is still found
    assert abs(act[1].speech_s - clean_act[1].speech_s) < 1.5


def test_loud_double_talk_is_kept_on_both_legs():
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 4) / 16000
    voice = lambda f: (0.3 * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * 4 * t)) / 2).astype(np.float32)
    sig = np.stack([voice(220), voice(330)]) + rng.normal(0, 1e-3, (2, t.size)).astype(np.float32)
    sig[:, :16000] *= 0.0005  # both quiet for the first second
    act = detect_speech(sig, 16000, OPTS)
    assert act[0].speech_s > 2.5 and act[1].speech_s > 2.5


def test_pack_regions_keeps_chunks_short_and_maps_time_back():
    regions = [Interval(1.0, 4.0), Interval(10.0, 12.5), Interval(20.0, 85.0)]
    chunks = pack_regions(regions, max_chunk_s=28.0, gap_s=0.4)
    assert all(c.duration <= 28.0 + 1e-9 for c in chunks)
    pieces = [p for c in chunks for p in c.pieces]
    assert sum(p.duration for p in pieces) == pytest.approx(3 + 2.5 + 65)
    first = chunks[0]
    assert first.to_recording(0.5) == pytest.approx(1.5)
    assert first.to_recording(3.0 + 0.4 + 1.0) == pytest.approx(11.0)  # second piece, 1 s in
    assert first.to_recording(3.1) == pytest.approx(4.0)  # inside the gap: snaps to the nearer edge
    signal = np.arange(16000 * 90, dtype=np.float32)
    audio = first.gather(signal)
    assert audio[0] == 16000 * 1.0 and len(audio) == int(first.duration * 16000)


def test_a_word_stretched_over_a_gap_stays_inside_one_piece():
    # Alignment can end a word inside the next piece; edge by edge it would cover the 6 s between regions.
    chunk = pack_regions([Interval(1.0, 4.0), Interval(10.0, 12.0)], max_chunk_s=28.0, gap_s=0.4)[0]
    start, end = chunk.span_to_recording(2.6, 3.6)  # middle (3.1) in the gap's first half: first piece
    assert (start, end) == (pytest.approx(3.6), pytest.approx(4.0))
    start, end = chunk.span_to_recording(2.9, 4.5)  # middle in the second piece
    assert (start, end) == (pytest.approx(10.0), pytest.approx(11.1))


@pytest.mark.parametrize("budget, streams, threads_each", [(1, 1, 1), (2, 2, 1), (4, 2, 2)])
def test_thread_budget_splits_into_two_streams_only_when_there_are_two_threads(budget, streams, threads_each):
    # One decode on two threads is ~10 % faster than on one; two decodes side by side are ~1.8x.
    from pipeline.asr import AsrOptions, Transcriber

    t = Transcriber(AsrOptions(), cpu_threads=budget)  # the model itself loads lazily: nothing loads here
    assert t.streams == streams and max(1, t.thread_budget // t.streams) == threads_each


def test_batch_size_is_checked():
    from pipeline.asr import AsrOptions

    with pytest.raises(ValueError, match="batch_size"):
        AsrOptions(batch_size=0)

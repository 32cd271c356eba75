"""Mono diarization (embedded backend), word assignment and mono roles on generated fixtures.

Fixtures: audio_fixtures/mono/ (espeak-ng voices, made by make_mono_fixtures.py;
truth.json holds where each utterance was placed).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.audio import load_audio
from pipeline.config import load_config
from pipeline.diarize import DiarizationOptions, SpeakerSegment, diarize_mono
from pipeline.diarize.assign import words_to_turns
from pipeline.roles import assign_roles
from pipeline.timeline import AGENT, CUSTOMER, Interval, Speaker, Timeline, Word
from pipeline.vad import detect_speech

ROOT = Path(__file__).resolve().parent.parent
MONO = ROOT / "audio_fixtures" / "mono"
TRUTH = json.loads((MONO / "truth.json").read_text())
CONFIG = load_config()


def _load(name: str):
    audio = load_audio(MONO / f"{name}.flac")
    speech = detect_speech(audio.samples[:1], 16000, CONFIG.vad)[0].speech
    return audio.samples[0], speech


def _diarize(name: str, **overrides):
    signal, speech = _load(name)
    return diarize_mono(signal, 16000, speech, replace(CONFIG.diarization, **overrides))


def _majority(segments: list[SpeakerSegment], start: float, end: float) -> tuple[str | None, float]:
    """The speaker covering most of [start, end), and the share of the span they cover."""
    cover: dict[str, float] = {}
    for s in segments:
        ov = min(s.end, end) - max(s.start, start)
        if ov > 0:
            cover[s.speaker] = cover.get(s.speaker, 0.0) + ov
    if not cover:
        return None, 0.0
    best = max(cover, key=cover.get)
    return best, cover[best] / (end - start)


def _mapping(name: str, segments: list[SpeakerSegment]) -> dict[str, str]:
    """True speaker → diarized speaker, asserting every utterance is mostly one consistent label."""
    mapping: dict[str, str] = {}
    for t in TRUTH[name]["turns"]:
        spk, share = _majority(segments, t["start"], t["end"])
        assert spk is not None and share >= 0.8, f"{name}: utterance {t['text']!r} poorly covered ({spk}, {share:.2f})"
        assert mapping.setdefault(t["speaker"], spk) == spk, f"{name}: {t['speaker']} split across speakers"
    assert len(set(mapping.values())) == len(mapping), f"{name}: two true speakers merged: {mapping}"
    return mapping


def _truth_words(name: str) -> list[Word]:
    """ASR-like words: each utterance's words spread evenly over its time."""
    words = []
    for t in TRUTH[name]["turns"]:
        toks = t["text"].split()
        step = (t["end"] - t["start"]) / len(toks)
        words += [Word(t["start"] + i * step, t["start"] + (i + 0.9) * step, tok) for i, tok in enumerate(toks)]
    return words


def _timeline(name: str, segments: list[SpeakerSegment]) -> Timeline:
    turns = words_to_turns(_truth_words(name), segments)
    ids = sorted({s.speaker for s in segments} | {t.speaker for t in turns})
    return Timeline(duration=TRUTH[name]["duration_s"], speakers=tuple(Speaker(i) for i in ids), turns=tuple(turns))


# --- speaker count and purity -----------------------------------------------------------------------

def test_two_voices_give_two_speakers_with_the_agent_found():
    segments = _diarize("two_voices")
    assert {s.speaker for s in segments} == {"S0", "S1"}
    mapping = _mapping("two_voices", segments)
    assert mapping["agent"] == "S0"  # the agent answers first: speakers are numbered by first speech
    timeline = _timeline("two_voices", segments)
    decision = assign_roles(timeline, CONFIG.roles)
    assert decision.roles == {mapping["agent"]: AGENT, mapping["customer"]: CUSTOMER}
    assert decision.rule == "content" and decision.confidence >= CONFIG.roles.min_confidence


def test_one_voice_gives_one_speaker():
    segments = _diarize("one_voice")
    assert segments, "speech was found, so there must be a segment"
    assert {s.speaker for s in segments} == {"S0"}
    spoken = sum(t["end"] - t["start"] for t in TRUTH["one_voice"]["turns"])
    assert sum(s.duration for s in segments) >= 0.8 * spoken


def test_three_voices_give_three_speakers():
    segments = _diarize("three_voices")
    assert {s.speaker for s in segments} == {"S0", "S1", "S2"}
    mapping = _mapping("three_voices", segments)
    assert set(mapping) == {"agent", "customer", "supervisor"}
    decision = assign_roles(_timeline("three_voices", segments), CONFIG.roles)
    assert decision.roles[mapping["agent"]] == AGENT
    assert sum(r == AGENT for r in decision.roles.values()) == 1


def test_one_second_file_is_one_speaker_not_a_crash():
    signal, speech = _load("one_second")
    assert len(signal) == 16000
    segments = diarize_mono(signal, 16000, speech, CONFIG.diarization)
    assert {s.speaker for s in segments} <= {"S0"}
    assert all(0 <= s.start < s.end <= 1.0 for s in segments)


def test_silence_gives_no_segments():
    signal, speech = _load("silence")
    assert speech == []
    assert diarize_mono(signal, 16000, speech, CONFIG.diarization) == []
    # Even if a caller claims speech in digital silence, the result is empty, not an error.
    assert diarize_mono(np.zeros(16000 * 3, np.float32), 16000, [Interval(0.5, 2.5)], CONFIG.diarization) == []


def test_speaker_count_overrides():
    assert {s.speaker for s in _diarize("two_voices", num_speakers=3)} == {"S0", "S1", "S2"}
    assert {s.speaker for s in _diarize("two_voices", max_speakers=1)} == {"S0"}
    assert {s.speaker for s in _diarize("one_voice", min_speakers=2)} == {"S0", "S1"}
    assert {s.speaker for s in _diarize("three_voices", max_speakers=2)} == {"S0", "S1"}


def test_segments_lie_on_speech_and_are_ordered():
    signal, speech = _load("two_voices")
    segments = diarize_mono(signal, 16000, speech, CONFIG.diarization)
    assert segments == sorted(segments, key=lambda s: (s.start, s.end, s.speaker))
    for s in segments:
        assert any(iv.start - 1e-6 <= s.start and s.end <= iv.end + 1e-6 for iv in speech), s
    # Resegmentation puts changes between the utterances, not on 0.5 s window edges.
    for a, b in zip(TRUTH["two_voices"]["turns"], TRUTH["two_voices"]["turns"][1:]):
        change = [s.start for s in segments if a["end"] - 0.5 <= s.start <= b["start"] + 0.5]
        assert change, f"no speaker change found between {a['end']} and {b['start']}"


def test_overlapped_speech_is_given_to_both_speakers():
    """Customer starts 1.5 s before the agent finishes: part of that stretch goes to both."""
    signal, _ = _load("two_voices")
    turns = TRUTH["two_voices"]["turns"]
    cut = [signal[int(t["start"] * 16000): int(t["end"] * 16000)] for t in turns[:4]]
    starts = [0.5]
    starts.append(starts[0] + len(cut[0]) / 16000 - 1.5)  # overlap
    starts.append(starts[1] + len(cut[1]) / 16000 + 0.7)
    starts.append(starts[2] + len(cut[2]) / 16000 + 0.7)
    mix = np.zeros(int((starts[3] + len(cut[3]) / 16000 + 0.5) * 16000), np.float32)
    for s, x in zip(starts, cut):
        mix[int(s * 16000): int(s * 16000) + len(x)] += x
    speech = detect_speech(mix[None], 16000, CONFIG.vad)[0].speech
    segments = diarize_mono(mix, 16000, speech, CONFIG.diarization)
    assert {s.speaker for s in segments} == {"S0", "S1"}
    ov_lo, ov_hi = starts[1], starts[0] + len(cut[0]) / 16000
    both = [Interval(max(a.start, b.start), min(a.end, b.end)) for a in segments for b in segments
            if a.speaker < b.speaker and min(a.end, b.end) > max(a.start, b.start)]
    assert sum(iv.overlap(Interval(ov_lo, ov_hi)) for iv in both) >= 0.1
    assert all(ov_lo - 0.5 <= iv.start and iv.end <= ov_hi + 0.5 for iv in both), both
    # Outside the overlap each utterance keeps one speaker.
    assert _majority(segments, starts[2], starts[2] + len(cut[2]) / 16000)[0] == "S0"
    assert _majority(segments, starts[3], starts[3] + len(cut[3]) / 16000)[0] == "S1"


# --- words → turns ---------------------------------------------------------------------------------

SEGS = [SpeakerSegment("S0", 0.0, 2.0), SpeakerSegment("S1", 2.0, 4.0), SpeakerSegment("S0", 4.5, 6.0)]


def test_words_go_to_the_speaker_overlapping_most():
    words = [Word(0.2, 0.6, "hello"), Word(1.7, 2.4, "straddles"), Word(2.5, 3.0, "there"), Word(5.0, 5.4, "bye")]
    turns = words_to_turns(words, SEGS)
    assert [(t.speaker, t.transcript) for t in turns] == [("S0", "hello"), ("S1", "straddles there"), ("S0", "bye")]
    # A word's 0.3 s inside S0 vs 0.4 s inside S1 → S1; whole, never split.
    assert turns[1].words[0].text == "straddles"


def test_word_outside_every_segment_goes_to_the_nearest():
    turns = words_to_turns([Word(6.3, 6.6, "late")], SEGS)
    assert turns[0].speaker == "S0"
    # In the pause between S1 (ends 4.0) and S0 (starts 4.5): the nearer edge wins.
    assert words_to_turns([Word(4.05, 4.2, "gap")], SEGS)[0].speaker == "S1"
    assert words_to_turns([Word(4.3, 4.45, "gap")], SEGS)[0].speaker == "S0"
    turns = words_to_turns([Word(2.05, 2.15, "x")], [SpeakerSegment("S1", 2.2, 3.0), SpeakerSegment("S0", 0, 1)])
    assert turns[0].speaker == "S1"


def test_boundary_disagreement_is_rebuilt_from_words():
    """A word the diarizer gives to S1 mostly outside S1's speech, inside S0's sentence, stays S0."""
    segs = [SpeakerSegment("S0", 0.0, 2.9), SpeakerSegment("S1", 2.9, 3.2), SpeakerSegment("S0", 3.5, 6.0),
            SpeakerSegment("S1", 7.0, 9.0)]
    words = [Word(0.2, 0.8, "a"), Word(1.0, 1.6, "b"), Word(1.8, 2.6, "c"), Word(2.95, 3.5, "d"),
             Word(3.6, 4.2, "e"), Word(4.4, 5.0, "f"), Word(7.2, 7.8, "reply")]
    turns = words_to_turns(words, segs)
    assert [t.speaker for t in turns] == ["S0", "S1"]
    assert turns[0].transcript == "a b c d e f"
    # The turn spans its measured speech but never reaches into the next speaker's words.
    assert turns[0].start == 0.0 and turns[0].end == 6.0 and turns[1].end == 9.0
    # Without the flip rule the diarizer's blip would cut the sentence in three.
    assert [t.speaker for t in words_to_turns(words, segs, max_flip_words=0)] == ["S0", "S1", "S0", "S1"]


def test_turns_split_at_pauses_between_segments():
    segs = [SpeakerSegment("S0", 0.0, 1.0), SpeakerSegment("S0", 2.0, 3.0)]
    turns = words_to_turns([Word(0.1, 0.5, "one"), Word(2.1, 2.5, "two")], segs)
    assert [t.transcript for t in turns] == ["one", "two"]
    assert words_to_turns([], segs) == []
    assert words_to_turns([Word(0.1, 0.5, "solo")], [])[0].speaker == "S0"


def test_overlapping_segments_give_each_word_one_speaker():
    segs = [SpeakerSegment("S0", 0.0, 3.0), SpeakerSegment("S1", 2.5, 5.0)]
    turns = words_to_turns([Word(2.6, 2.9, "both"), Word(3.2, 3.6, "after")], segs)
    assert sum(len(t.words) for t in turns) == 2
    assert turns[-1].speaker == "S1"


# --- roles on mono ----------------------------------------------------------------------------------

def _plain_timeline(first: str, second: str, texts=("okay so", "right then")) -> Timeline:
    turns = words_to_turns([Word(0.5, 0.9, texts[0].split()[0]), Word(1.0, 1.4, texts[0].split()[1]),
                            Word(3.0, 3.4, texts[1].split()[0]), Word(3.5, 3.9, texts[1].split()[1])],
                           [SpeakerSegment(first, 0.4, 1.5), SpeakerSegment(second, 2.9, 4.0)])
    return Timeline(duration=5.0, speakers=(Speaker("S0"), Speaker("S1")), turns=tuple(turns))


def test_first_speaker_rule_for_inbound_and_outbound_calls():
    timeline = _plain_timeline("S1", "S0")  # no agent phrases: the content cannot decide
    inbound = assign_roles(timeline, CONFIG.roles)
    assert inbound.rule == "first_speaker" and inbound.roles == {"S1": AGENT, "S0": CUSTOMER}
    assert inbound.evidence[-1]["call_direction"] == "inbound" and 0.5 < inbound.confidence < 0.6 + 1e-9
    outbound = assign_roles(timeline, replace(CONFIG.roles, call_direction="outbound"))
    assert outbound.roles == {"S0": AGENT, "S1": CUSTOMER}
    # A per-call override beats both rules.
    assert assign_roles(timeline, CONFIG.roles, explicit_agent="S0").roles["S0"] == AGENT
    assert assign_roles(timeline, CONFIG.roles, explicit_agent="S0").rule == "explicit"


def test_content_beats_who_speaks_first():
    timeline = _plain_timeline("S0", "S1", texts=("hello there", "thanks for"))
    words = list(timeline.turns[1].words) + [Word(4.0, 4.3, "calling"), Word(4.4, 4.7, "acme")]
    turns = (timeline.turns[0], replace(timeline.turns[1], words=tuple(words), end=4.7))
    decision = assign_roles(replace(timeline, turns=turns), CONFIG.roles)
    assert decision.rule == "content" and decision.roles["S1"] == AGENT


# --- options and model loading ----------------------------------------------------------------------

@pytest.mark.parametrize("key,value", [("num_speakers", -1), ("window_s", 0.1), ("step_s", 5.0),
                                       ("split_similarity", 1.5), ("min_speakers", 0), ("mono_backend", "magic")])
def test_bad_options_name_the_key(key, value):
    with pytest.raises(ValueError, match=key if key != "min_speakers" else "min_speakers"):
        DiarizationOptions(**{key: value})


def test_encoder_loads_once_and_mel_matches_resemblyzer():
    import librosa

    from pipeline.diarize.cluster import load_encoder, mel_frames

    assert load_encoder() is load_encoder()
    x = np.random.default_rng(0).normal(0, 0.1, 16000 * 3).astype(np.float32)
    ref = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=400, hop_length=160, n_mels=40).T
    ours = mel_frames(x)
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) <= 1e-4 * np.max(ref)


def test_wrong_sample_rate_is_refused():
    with pytest.raises(ValueError, match="16 kHz"):
        diarize_mono(np.zeros(8000, np.float32), 8000, [], CONFIG.diarization)


# --- end to end with the real ASR -------------------------------------------------------------------

@pytest.mark.slow
def test_mono_calls_end_to_end():
    """analyze_file on the mono fixtures: speakers, roles from what is said, clear results on edge files."""
    from pipeline.process import analyze_file
    from pipeline.record import validate_record

    rec = analyze_file(MONO / "two_voices.flac", config=CONFIG)
    assert rec.status == "ok", rec.error
    validate_record(rec.to_dict())
    assert len(rec.timeline.speakers) == 2
    agent = [s.id for s in rec.timeline.speakers if s.role == AGENT]
    assert len(agent) == 1
    agent_text = " ".join(t.transcript.lower() for t in rec.timeline.turns if t.speaker == agent[0])
    customer_text = " ".join(t.transcript.lower() for t in rec.timeline.turns if t.speaker != agent[0])
    assert "calling" in agent_text and "help" in agent_text
    assert "last month" in customer_text
    assert rec.role_assignment["rule"] == "content"
    # Turns alternate as the utterances do: six utterances, six turns, roles alternating.
    roles = [t.role for t in rec.timeline.turns]
    assert roles[:2] == [AGENT, CUSTOMER] and all(a != b for a, b in zip(roles, roles[1:]))

    three = analyze_file(MONO / "three_voices.flac", config=CONFIG)
    assert three.status == "ok" and len(three.timeline.speakers) == 3

    one = analyze_file(MONO / "one_voice.flac", config=CONFIG)
    assert one.status == "ok" and len(one.timeline.speakers) == 1
    assert one.role_assignment["rule"] == "single_speaker"

    for name in ("one_second", "silence"):
        r = analyze_file(MONO / f"{name}.flac", config=CONFIG)
        validate_record(r.to_dict())
        if r.status == "error":
            assert r.error.kind and len(r.error.message) > 20  # says what happened and what to do
        else:
            assert len(r.timeline.speakers) <= 1
    assert analyze_file(MONO / "silence.flac", config=CONFIG).error.kind == "no_speech"


def test_diarizer_beside_the_asr_gives_the_same_record_as_one_after_the_other():
    """With two threads the diarizer runs beside the ASR; with one, after it. Same speakers, turns, words."""
    from pipeline.process import Models, analyze_file

    def turns(threads):
        rec = analyze_file(MONO / "two_voices.flac", config=CONFIG, models=Models.create(CONFIG, cpu_threads=threads))
        assert rec.status == "ok", rec.error
        return [(t.speaker, t.role, round(t.start, 2), round(t.end, 2), t.transcript) for t in rec.timeline.turns]

    sequential, concurrent = turns(1), turns(2)
    assert concurrent == sequential and len(sequential) >= 6

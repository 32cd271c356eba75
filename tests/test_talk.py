"""Talk analyses on hand-built timelines (no audio, no models)."""

from __future__ import annotations

import pytest

from pipeline.analysis.talk import analyze_talk, count_questions, is_backchannel
from pipeline.config import load_config
from pipeline.timeline import Speaker, Timeline, Turn, Word

OPTS = load_config().talk


def turn(role, start, end, text):
    words = text.split()
    step = (end - start) / max(1, len(words))
    ws = tuple(Word(start + i * step, start + (i + 1) * step, w) for i, w in enumerate(words))
    return Turn(speaker={"agent": "A", "customer": "C"}[role], role=role, start=start, end=end, words=ws)


def timeline(*turns, duration=None):
    end = max(t.end for t in turns)
    return Timeline(duration=duration or end + 1, speakers=(Speaker("A", "agent", 0), Speaker("C", "customer", 1)),
                    turns=turns)


def flags(result, kind):
    return [f for f in result.flags if f.type == kind]


def test_talk_ratio_counts_overlap_for_both():
    r = analyze_talk(timeline(turn("agent", 0, 10, "a " * 20), turn("customer", 8, 13, "b " * 10)), OPTS)
    assert r.metrics["talk_time_s"] == {"agent": 10, "customer": 5}
    assert r.metrics["talk_ratio"]["agent"] == pytest.approx(10 / 15)
    assert r.metrics["overtalk"]["total_s"] == pytest.approx(2)


def test_backchannel_does_not_break_a_monologue_but_a_real_turn_does():
    bc = timeline(turn("agent", 0, 30, "pitch " * 70), turn("customer", 30.5, 31.2, "uh-huh"),
                  turn("agent", 31.5, 60, "more " * 70))
    r = analyze_talk(bc, OPTS)
    [f] = flags(r, "agent_monologue")
    assert (f.start, f.end) == (0, 60) and f.role == "agent"
    assert "uh-huh" in f.evidence
    real = timeline(turn("agent", 0, 30, "pitch " * 70), turn("customer", 30.5, 33, "what does it cost per month"),
                    turn("agent", 33.5, 60, "more " * 70))
    assert flags(analyze_talk(real, OPTS), "agent_monologue") == []
    assert analyze_talk(real, OPTS).metrics["monologues"]["longest_s"]["agent"] == pytest.approx(30)


def test_long_pause_ends_a_monologue():
    tl = timeline(turn("agent", 0, 30, "a " * 60), turn("agent", 30 + OPTS.monologue_max_pause_s + 1, 60, "b " * 60))
    assert flags(analyze_talk(tl, OPTS), "agent_monologue") == []


def test_dead_air_at_threshold_and_not_below():
    tl = timeline(turn("agent", 0, 5, "let me check"), turn("agent", 15.2, 18, "thanks for waiting"),
                  turn("customer", 18.5, 20, "ok thanks"), turn("agent", 29, 31, "anything else"))
    r = analyze_talk(tl, OPTS)
    [f] = flags(r, "dead_air")
    assert (f.start, f.end) == (5, 15.2)
    assert "let me check" in f.evidence
    assert r.metrics["silence"]["longest_s"] == pytest.approx(10.2)
    assert r.metrics["silence"]["count_over_threshold"] == 2  # 10.2 s and 9 s


def test_leading_and_trailing_silence_is_not_dead_air():
    tl = timeline(turn("agent", 20, 25, "hello"), turn("customer", 25.5, 27, "hi there"), duration=60)
    assert flags(analyze_talk(tl, OPTS), "dead_air") == []


def test_interruptions_exclude_backchannels():
    tl = timeline(turn("agent", 0, 10, "a " * 25), turn("customer", 3, 3.6, "okay"),
                  turn("customer", 6, 12, "sorry but that is not what I asked for"))
    ints = analyze_talk(tl, OPTS).metrics["overtalk"]["interruptions"]
    assert ints == {"agent": 0, "customer": 1}


def test_backchannel_rules():
    assert is_backchannel(turn("customer", 0, 0.8, "Mm-hmm."), OPTS)
    assert is_backchannel(turn("customer", 0, 1.0, "Okay, right."), OPTS)
    assert not is_backchannel(turn("customer", 0, 1.0, "No."), OPTS)
    assert not is_backchannel(turn("customer", 0, 3.0, "okay"), OPTS)  # too long to be a backchannel


def test_questions_punctuated_and_raw_asr():
    assert count_questions("Hi. Can you hear me? What is your account?") == 2
    assert count_questions("what is the account number") == 1
    assert count_questions("i need to activate my card") == 0


def test_words_per_minute():
    r = analyze_talk(timeline(turn("agent", 0, 30, "w " * 75), turn("customer", 31, 61, "w " * 60)), OPTS)
    assert r.metrics["words_per_minute"] == {"agent": pytest.approx(150), "customer": pytest.approx(120)}

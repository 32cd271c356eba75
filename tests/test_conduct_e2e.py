"""Sales conduct end to end: the four generated calls of audio_fixtures/conduct/ through
``analyze_file`` with the real tiny.en model (stereo 8 kHz FLAC, agent LEFT)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.process import analyze_file
from pipeline.record import validate_record

HERE = Path(__file__).resolve().parent.parent / "audio_fixtures" / "conduct"
CALLS = ("refusal_then_pitch", "refusal_respected", "customer_asks", "pitch_before_fix")
CONDUCT_FLAGS = {"refusal_then_continue", "pitch_before_resolution"}

pytestmark = pytest.mark.slow  # ~30 s: four calls through ASR


@pytest.fixture(scope="module")
def runs():
    config = load_config()
    out = {}
    for name in CALLS:
        rec = analyze_file(HERE / f"{name}.flac", config=config)
        truth = json.loads((HERE / f"{name}.truth.json").read_text())
        out[name] = (rec.to_dict(), truth)
    return out


def _conduct_flags(rec):
    return [f for f in rec["flags"] if f["type"] in CONDUCT_FLAGS]


def _within(t, line, slack=1.0):
    return line["start"] - slack <= t <= line["end"] + slack


@pytest.mark.parametrize("name", CALLS)
def test_flags_are_the_scripted_ones(runs, name):
    rec, truth = runs[name]
    assert rec["status"] == "ok", rec["error"]
    validate_record(rec)  # metrics.conduct included
    got = sorted(f["type"] for f in _conduct_flags(rec))
    assert got == sorted(f["type"] for f in truth["expected_flags"]), [f["evidence"] for f in _conduct_flags(rec)]


def test_refusal_then_pitch_quotes_both_lines_at_their_times(runs):
    rec, truth = runs["refusal_then_pitch"]
    (flag,) = _conduct_flags(rec)
    (want,) = truth["expected_flags"]
    d = flag["detail"]
    assert _within(d["refusal"]["match_start"], want["refusal"]) and _within(d["pitch"]["match_start"], want["pitch"])
    assert "interested" in d["refusal"]["text"].lower() and "month" in d["pitch"]["text"].lower()
    assert d["refusal"]["text"] in flag["evidence"] and "customer" in flag["evidence"] and "agent" in flag["evidence"]
    assert flag["role"] == "agent" and flag["start"] < flag["end"]


def test_respected_refusal_is_visible_in_the_metrics(runs):
    rec, _ = runs["refusal_respected"]
    c = rec["metrics"]["conduct"]
    assert c["counts"]["refusals"] >= 1 and c["counts"]["refusals_respected"] == c["counts"]["refusals"]
    assert c["counts"]["permission_requests"] == 1 and c["counts"]["pitches"] == 0


def test_customer_asking_makes_it_a_sales_call(runs):
    rec, _ = runs["customer_asks"]
    c = rec["metrics"]["conduct"]
    assert c["reason_for_calling"]["kind"] == "inquiry" and c["counts"]["customer_interest"] >= 1


def test_pitch_before_fix_points_at_problem_and_pitch(runs):
    rec, truth = runs["pitch_before_fix"]
    (flag,) = _conduct_flags(rec)
    (want,) = truth["expected_flags"]
    d = flag["detail"]
    assert _within(d["reason"]["start"], want["reason"]) and _within(d["pitch"]["match_start"], want["pitch"])
    assert "internet" in d["reason"]["text"].lower() and "premium" in d["pitch"]["text"].lower()
    # The fix came later and is reported.
    assert d["resolved_at"] is not None and d["resolved_at"]["start"] > d["pitch"]["match_start"]


def test_conduct_is_a_small_share_of_the_pipeline(runs):
    from pipeline.analysis.conduct import analyze_conduct
    from pipeline.record import CallRecord
    import time

    config = load_config()
    total = conduct = 0.0
    for name in CALLS:
        rec, _ = runs[name]
        timeline = CallRecord.from_dict(rec).timeline
        t0 = time.perf_counter()
        analyze_conduct(timeline, config.conduct)  # spaCy already loaded by the runs
        conduct += time.perf_counter() - t0
        total += rec["provenance"]["elapsed_s"]["total"]
    assert conduct / total < 0.05, (conduct, total)

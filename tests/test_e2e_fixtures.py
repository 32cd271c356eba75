"""End to end on the committed calls with the real tiny.en model: roles, talk ratio, flags, outputs."""

from __future__ import annotations

import pytest

from pipeline.record import validate_record

CALLS = ("upsell_monologue", "hold_dead_air", "mono_support")


def test_run_succeeds_with_one_record_per_input(core_run):
    assert core_run["proc"].returncode == 0, core_run["proc"].stderr
    assert sorted(core_run["records"]) == sorted(CALLS)
    assert "3 ok, 0 failed" in core_run["proc"].stdout


@pytest.mark.parametrize("call", CALLS)
def test_record_is_valid_against_schema(core_run, call):
    rec = core_run["records"][call]
    assert rec["status"] == "ok", rec["error"]
    validate_record(rec)


@pytest.mark.parametrize("call", CALLS)
def test_roles_match_the_script(core_run, call):
    rec, truth = core_run["records"][call], core_run["truth"][call]
    if truth["agent_channel"] is not None:
        channel = {"left": 0, "right": 1}[truth["agent_channel"]]
        agent = [s for s in rec["speakers"] if s["role"] == "agent"]
        assert len(agent) == 1 and agent[0]["channel"] == channel
        assert rec["role_assignment"]["rule"] == "content"  # decided from "thank you for calling ..."
    # Every scripted utterance is mostly covered by segments of its own role.
    for utt in truth["utterances"]:
        cover: dict[str, float] = {}
        for s in rec["segments"]:
            ov = min(s["end"], utt["end"]) - max(s["start"], utt["start"])
            if ov > 0:
                cover[s["role"]] = cover.get(s["role"], 0.0) + ov
        assert cover and max(cover, key=cover.get) == utt["role"], (utt, cover)


@pytest.mark.parametrize("call", CALLS)
def test_talk_ratio_within_005_of_truth(core_run, call):
    rec, truth = core_run["records"][call], core_run["truth"][call]
    for role in ("agent", "customer"):
        assert abs(rec["metrics"]["talk_ratio"][role] - truth["talk_ratio"][role]) <= 0.05


def _flags(rec, kind):
    return [f for f in rec["flags"] if f["type"] == kind]


def test_agent_monologue_flagged_at_the_pitch_and_nowhere_else(core_run):
    for call in CALLS:
        rec, truth = core_run["records"][call], core_run["truth"][call]
        expected = [f for f in truth["expected_flags"] if f["type"] == "agent_monologue"]
        got = _flags(rec, "agent_monologue")
        assert len(got) == len(expected), (call, got)
        for f, e in zip(got, expected):
            assert abs(f["start"] - e["start"]) < 1.5 and abs(f["end"] - e["end"]) < 1.5
            assert f["role"] == "agent" and f["evidence"]
    # the customer's "uh huh" did not split the pitch: one monologue spans both halves
    mono = core_run["records"]["upsell_monologue"]["metrics"]["monologues"]
    assert mono["longest_s"]["agent"] >= 45


def test_dead_air_flagged_at_the_15s_gap_only(core_run):
    for call in CALLS:
        rec, truth = core_run["records"][call], core_run["truth"][call]
        expected = [f for f in truth["expected_flags"] if f["type"] == "dead_air"]
        got = _flags(rec, "dead_air")
        assert len(got) == len(expected), (call, got)
        for f, e in zip(got, expected):
            assert abs(f["start"] - e["start"]) < 1.0 and abs(f["end"] - e["end"]) < 1.0
            assert 13.5 <= f["end"] - f["start"] <= 16.5
    assert core_run["records"]["hold_dead_air"]["metrics"]["silence"]["longest_s"] >= 14


def test_per_call_outputs_written(core_run):
    out = core_run["out"]
    for call in CALLS:
        folder = out / "calls" / call
        vtt = (folder / "transcript.vtt").read_text()
        assert vtt.startswith("WEBVTT") and "-->" in vtt and "<v Agent>" in vtt
        rttm = (folder / "speakers.rttm").read_text().splitlines()
        assert rttm and all(line.startswith(f"SPEAKER {call} 1 ") for line in rttm)
        assert len(rttm) == len(core_run["records"][call]["segments"])
    assert (out / "summary.json").is_file()


def test_words_have_times_inside_their_segment(core_run):
    rec = core_run["records"]["upsell_monologue"]
    words = [w for s in rec["segments"] for w in s["words"]]
    assert len(words) > 100
    for s in rec["segments"]:
        for w in s["words"]:
            assert s["start"] - 0.01 <= w["start"] <= w["end"] <= s["end"] + 0.01
    text = " ".join(s["text"] for s in rec["segments"]).lower()
    assert "customer service" in text and "cash" in text


def test_two_worker_processes_give_the_same_records(core_run, tmp_path):
    from conftest import FIXTURES, read_records, run_cli

    out = tmp_path / "w2"
    proc = run_cli("analyze", str(FIXTURES / "upsell_monologue.wav"), str(FIXTURES / "hold_dead_air.flac"),
                   "--out", str(out), "--workers", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    for rec in read_records(out):
        ref = core_run["records"][rec["call_id"]]
        assert [(s["role"], s["start"], s["end"], s["text"]) for s in rec["segments"]] == \
               [(s["role"], s["start"], s["end"], s["text"]) for s in ref["segments"]]
        assert [(f["type"], f["start"]) for f in rec["flags"]] == [(f["type"], f["start"]) for f in ref["flags"]]

"""callqa stats: intervals, cohort differences and flag precision from verdicts."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from pipeline.stats import compute_stats, holm, newcombe, plot_stats, stats_text, wilson


def test_wilson_and_newcombe_match_published_values():
    # Newcombe (1998), Statistics in Medicine 17:857, tables I and II
    p, lo, hi = wilson(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    p, lo, hi = wilson(0, 10)
    assert p == 0 and lo == 0 and round(hi, 4) == 0.2775
    d, lo, hi = newcombe(56, 70, 48, 80)
    assert round(d, 4) == 0.2 and (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
    assert holm([0.01, 0.04, None, 0.03]) == [0.03, 0.06, None, 0.06]


def _cohorts(n: int = 400, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arm = np.where(np.arange(n) % 2 == 0, "xsell", "control")
    # the cross-selling arm: more pitch flags, agents talk more; dead air the same
    pitch = rng.random(n) < np.where(arm == "xsell", 0.40, 0.15)
    dead = rng.random(n) < 0.10
    ratio = np.clip(rng.normal(np.where(arm == "xsell", 0.62, 0.55), 0.08), 0, 1)
    return pd.DataFrame({"call_id": [f"c{i}" for i in range(n)], "status": "ok", "campaign": arm,
                         "duration_s": 60.0, "flags_pitch_before_resolution": pitch.astype(int),
                         "flags_dead_air": dead.astype(int), "talk_ratio_agent": ratio,
                         "noise_agent_snr_db": rng.normal(25, 5, n)})


def test_cohort_difference_finds_the_real_effect_and_not_the_null_one(tmp_path):
    calls = _cohorts()
    res = compute_stats(calls, pd.DataFrame(), by="campaign", compare=("xsell", "control"))
    rows = {r["metric"]: r for r in res["comparison"]["rows"]}
    pitch = rows["rate of pitch_before_resolution"]
    assert pitch["ci_low"] > 0.1 and pitch["p_holm"] < 0.001  # true difference 0.25
    assert pitch["ci_low"] < 0.25 < pitch["ci_high"]
    ratio = rows["mean talk_ratio_agent"]
    assert ratio["ci_low"] < 0.07 < ratio["ci_high"] and ratio["p"] < 0.001
    assert rows["rate of dead_air"]["ci_low"] < 0 < rows["rate of dead_air"]["ci_high"]  # no effect
    groups = {g["group"]: g for g in res["groups"]}
    assert groups["xsell"]["calls"] == 200
    r = groups["xsell"]["flag_rates"]["pitch_before_resolution"]
    assert r["ci_low"] < r["rate"] < r["ci_high"]
    text = stats_text(res)
    assert "cohorts: A = xsell" in text and "pitch_before_resolution" in text
    charts = plot_stats(res, calls, tmp_path)
    assert {p.name for p in charts} >= {"flag_rates.png", "dist_talk_ratio_agent.png", "dist_noise_agent_snr_db.png"}
    assert all(p.stat().st_size > 5000 for p in charts)


def test_precision_per_flag_type_from_reviews_table(tmp_path):
    from pipeline import store
    from pipeline.export import flags_frame

    conn = store.connect(tmp_path / "callqa.db")
    for i in range(10):
        rec = {"call_id": f"c{i}", "status": "ok", "source": {"path": f"/a/c{i}.wav", "duration_s": 30.0},
               "metadata": {"campaign": "a" if i < 5 else "b"},
               "provenance": {"processed_at": "2026-11-20T10:00:00Z"},
               "flags": [{"type": "agent_monologue", "severity": "medium", "start": 1.0, "end": 50.0, "role": "agent",
                          "evidence": "x", "detail": {}},
                         {"type": "dead_air", "severity": "high", "start": 60.0, "end": 75.0, "role": "unknown",
                          "evidence": "y", "detail": {}}]}
        store.save_record(conn, rec)
    # supervisors: 6 monologues reviewed, 4 confirmed; 3 dead-air reviewed, all dismissed
    verdicts = [("c0", "agent_monologue", 1.0, "confirmed"), ("c1", "agent_monologue", 1.0, "confirmed"),
                ("c2", "agent_monologue", 1.0, "confirmed"), ("c5", "agent_monologue", 1.0, "confirmed"),
                ("c6", "agent_monologue", 1.0, "dismissed"), ("c7", "agent_monologue", 1.0, "dismissed"),
                ("c0", "dead_air", 60.0, "dismissed"), ("c1", "dead_air", 60.0, "dismissed"),
                ("c2", "dead_air", 60.0, "dismissed")]
    with conn:
        for cid, t, start, v in verdicts:
            conn.execute("INSERT INTO reviews VALUES (?,?,?,?,?)",
                         (store.flag_id(cid, {"type": t, "start": start}), v, None, "sup", "2026-11-21T00:00:00Z"))
    conn.close()
    flags = flags_frame(tmp_path)
    calls = pd.DataFrame({"call_id": [f"c{i}" for i in range(10)], "status": "ok",
                          "campaign": ["a"] * 5 + ["b"] * 5})
    res = compute_stats(calls, flags)
    prec = {r["type"]: r for r in res["precision"]}
    assert prec["agent_monologue"]["reviewed"] == 6 and prec["agent_monologue"]["confirmed"] == 4
    assert prec["agent_monologue"]["precision"] == pytest.approx(4 / 6)
    assert prec["agent_monologue"]["raised"] == 10
    assert prec["dead_air"]["precision"] == 0 and prec["dead_air"]["ci_high"] > 0.3  # 0/3 says little
    by = compute_stats(calls, flags, by="campaign")["precision"]
    mono = {r["group"]: r for r in by if r["type"] == "agent_monologue"}
    assert (mono["a"]["confirmed"], mono["a"]["reviewed"]) == (3, 3)
    assert (mono["b"]["confirmed"], mono["b"]["reviewed"]) == (1, 3)
    assert "flag precision from supervisors' verdicts" in stats_text(res)
    sqlite3.connect(tmp_path / "callqa.db").close()

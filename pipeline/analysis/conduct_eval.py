"""Labelled conduct corpus: load it, turn its transcripts into timelines, score the analysis.

The corpus (tests/conduct_corpus/*.jsonl) holds one call per line::

    {"id": "t01", "split": "tune" | "dev" | "heldout", "domain": "telecom",
     "labels": {"refusal_then_continue": true, "pitch_before_resolution": false},
     "note": "...", "turns": [["agent", "thanks for calling ..."], ["customer", "..."]]}

Turns may also be objects ``{"role": ..., "text": ...}``. Times are synthesized
(``WORD_S`` per word, ``GAP_S`` between turns) so evidence times are exercised too.
Used by tests/test_conduct_corpus.py and bench/conduct_corpus.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..timeline import AGENT, CUSTOMER, Speaker, Timeline, Turn, Word
from .conduct import ConductOptions, analyze_conduct

FLAG_TYPES = ("refusal_then_continue", "pitch_before_resolution")
WORD_S = 0.32
GAP_S = 0.6
CORPUS_DIR = Path(__file__).resolve().parents[2] / "tests" / "conduct_corpus"


@dataclass(frozen=True)
class LabelledCall:
    id: str
    split: str
    domain: str
    labels: dict
    turns: tuple[tuple[str, str], ...]
    note: str = ""


def load_corpus(directory: str | Path = CORPUS_DIR) -> list[LabelledCall]:
    calls = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON: {e}") from None
            turns = tuple((t["role"], t["text"]) if isinstance(t, dict) else (t[0], t[1]) for t in d["turns"])
            for role, _ in turns:
                if role not in (AGENT, CUSTOMER):
                    raise ValueError(f"{path}:{n}: role must be agent or customer, got {role!r}")
            missing = [f for f in FLAG_TYPES if f not in d["labels"]]
            if missing:
                raise ValueError(f"{path}:{n}: labels missing {missing}")
            calls.append(LabelledCall(id=d["id"], split=d["split"], domain=d.get("domain", ""),
                                      labels=d["labels"], turns=turns, note=d.get("note", "")))
    return calls


def timeline_from_turns(turns: Iterable[tuple[str, str]]) -> Timeline:
    """A stereo-like timeline (agent S0 left, customer S1 right) with synthetic word times."""
    speakers = (Speaker("S0", AGENT, 0), Speaker("S1", CUSTOMER, 1))
    ids = {AGENT: "S0", CUSTOMER: "S1"}
    t = 0.5
    out = []
    for role, text in turns:
        words = []
        for w in text.split():
            words.append(Word(start=round(t, 3), end=round(t + WORD_S - 0.04, 3), text=w))
            t += WORD_S
        end = words[-1].end if words else t
        out.append(Turn(speaker=ids[role], start=words[0].start if words else t, end=end, role=role,
                        words=tuple(words)))
        t = end + GAP_S
    return Timeline(duration=t, speakers=speakers, turns=tuple(out))


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def to_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn,
                "precision": round(self.precision, 3), "recall": round(self.recall, 3)}


def evaluate(calls: Iterable[LabelledCall], options: ConductOptions, *, nlp=None) -> tuple[dict[str, Score], list[dict]]:
    """Per-flag scores (call level: did the call get the flag) and the list of mistakes."""
    scores = {f: Score() for f in FLAG_TYPES}
    mistakes = []
    for call in calls:
        result = analyze_conduct(timeline_from_turns(call.turns), options, nlp=nlp)
        got = {f.type for f in result.flags}
        for flag in FLAG_TYPES:
            want, have = bool(call.labels[flag]), flag in got
            s = scores[flag]
            if want and have:
                s.tp += 1
            elif have:
                s.fp += 1
                mistakes.append({"id": call.id, "flag": flag, "error": "false positive", "note": call.note})
            elif want:
                s.fn += 1
                mistakes.append({"id": call.id, "flag": flag, "error": "missed", "note": call.note})
            else:
                s.tn += 1
    return scores, mistakes

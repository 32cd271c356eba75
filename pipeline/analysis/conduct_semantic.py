"""Semantic layer of the conduct analysis: "is this agent turn an offer", "is this customer turn a
decline", from sentence embeddings.

Phrase rules miss new wordings of an offer, a decline or a re-pitch ("we can knock twenty
percent off if you go annual", "nah we're sorted"). Here each turn (in half-overlapping windows
of at most ``semantic_window_words`` words) is embedded with a small sentence model (MiniLM,
bundled in a pip package, run by the numpy encoder of ``pipeline/sentence_encoder.py``, loaded once
per process, never downloaded) and scored by two
logistic-regression heads (``conduct_semantic_weights.json``): *offer* for agent turns,
*decline* for customer turns; a turn is in the class when its best window's probability reaches
``semantic_pitch_threshold`` (``semantic_repitch_threshold`` right after a refusal) /
``semantic_decline_threshold``.

The heads are trained offline by ``python -m pipeline.analysis.conduct_semantic`` on the
corpus's ``tune`` and ``dev`` turns only (never a held-out set), labelled by people
(``tests/conduct_corpus/turn_labels/``; a call without such labels falls back to the phrase
rules' weak labels), plus the prototype sentences of ``[conduct.semantic_agent_prototypes]`` /
``[conduct.semantic_customer_prototypes]`` (offer/decline = positive, every other class =
negative; edit them and retrain).

conduct.py uses the classes only where the rules found nothing (rules for precision,
embeddings for paraphrases): an agent "offer" window after a refusal is a re-pitch, before
the problem is handled it is a pitch; a customer "decline" right after an offer is a refusal.

Pure: texts in, probabilities out; the model and the weights are cached per process.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

log = logging.getLogger("pipeline")

_warned = False


# ---------------------------------------------------------------------------
# Logistic-regression heads (weights trained by ``train`` on tune/dev turns only)
# ---------------------------------------------------------------------------

WEIGHTS_PATH = __import__("pathlib").Path(__file__).with_name("conduct_semantic_weights.json")
_heads_cache: dict[str, dict] = {}


def prototypes_hash(agent: dict, customer: dict) -> str:
    import hashlib
    import json

    blob = json.dumps([sorted((k, list(v)) for k, v in agent.items()),
                       sorted((k, list(v)) for k, v in customer.items())])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_heads(path: str = "") -> dict:
    """{"offer": (coef, intercept), "decline": (coef, intercept), "prototypes": hash} from the JSON file."""
    import json

    import numpy as np

    p = str(path or WEIGHTS_PATH)
    hit = _heads_cache.get(p)
    if hit is None:
        try:
            d = json.loads(open(p).read())
        except OSError as e:
            raise FileNotFoundError(f"conduct semantic weights {p} not found; retrain with "
                                    f"python -m pipeline.analysis.conduct_semantic or set [conduct] semantic = false") from e
        hit = {k: (np.asarray(d[k]["coef"], dtype=np.float32), float(d[k]["intercept"])) for k in ("offer", "decline")}
        hit["prototypes"] = d.get("prototypes", "")
        _heads_cache[p] = hit
    return hit


def head_scores(model: Any, texts: Sequence[str], head: tuple, *, window_words: int) -> list[float]:
    """Per text, the highest head probability over its windows (one batch)."""
    import numpy as np

    if not texts:
        return []
    owners, windows = [], []
    for n, t in enumerate(texts):
        for w in _windows(t.lower(), window_words):
            owners.append(n)
            windows.append(w)
    emb = model.encode(windows, batch_size=64)
    coef, b = head
    p = 1.0 / (1.0 + np.exp(-(emb @ coef + b)))
    out = [0.0] * len(texts)
    for row, n in enumerate(owners):
        out[n] = max(out[n], float(p[row]))
    return out


_said: set[str] = set()


def warn_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.warning(message)


def load_model(package: str) -> Any:
    """The sentence model, or None (logged once) when it is not installed."""
    global _warned
    from ..nlp import NlpUnavailable, load_sentence_model

    try:
        return load_sentence_model(package)
    except NlpUnavailable as e:
        if not _warned:
            log.warning("conduct: %s; semantic layer off (phrase rules only)", e)
            _warned = True
        return None


def _windows(text: str, size: int) -> list[str]:
    words = text.split()
    if len(words) <= size:
        return [" ".join(words)]
    step = max(1, size // 2)  # half-overlapping windows: an offer straddling a cut is still whole in one
    return [" ".join(words[a:a + size]) for a in range(0, max(1, len(words) - size + step), step)]


# ---------------------------------------------------------------------------
# Training (offline, on the corpus's tune/dev splits only; never at analysis time)
# ---------------------------------------------------------------------------

def weak_labels(calls: Sequence[Any], options: Any) -> tuple[list[str], list[int], list[str], list[int]]:
    """Turn texts and labels from the phrase rules (semantic layer off) on labelled calls:
    agent turn = offer if a rule saw a pitch, permission request, selling talk or re-pitch in it;
    customer turn = decline if a rule saw a refusal in it."""
    import dataclasses

    from . import conduct as C
    from .conduct_eval import timeline_from_turns
    from .conduct_text import normalize_texts

    opts = dataclasses.replace(options, semantic=False)
    nlp = C._load_nlp(opts)
    rules = C._compile_rules(opts, nlp)
    a_txt, a_y, c_txt, c_y = [], [], [], []
    for call in calls:
        tl = timeline_from_turns(call.turns)
        turns, breaks = C.floor_turns(list(tl.turns))
        utts = normalize_texts([t.transcript for t in turns], nlp, breaks=breaks)
        cc = C._detect(turns, utts, rules, opts, nlp, breaks)
        offer_turns = {c.turn for c in cc.pitches + cc.permissions + cc.soft_offers}
        for f in C._refusal_flags(cc, opts):
            offer_turns |= {i for i, t in enumerate(turns) if t.start == f.detail["pitch"]["start"]}
        decline_turns = {c.turn for c in cc.refusals}
        for i, t in enumerate(turns):
            if t.role == "agent":
                a_txt.append(t.transcript)
                a_y.append(int(i in offer_turns))
            else:
                c_txt.append(t.transcript)
                c_y.append(int(i in decline_turns))
    return a_txt, a_y, c_txt, c_y


TURN_LABELS_DIR = __import__("pathlib").Path(__file__).resolve().parents[2] / "tests" / "conduct_corpus" / "turn_labels"


def read_turn_labels(directory: Any = TURN_LABELS_DIR) -> dict[str, list[str]]:
    """{call id: one label per turn} from ``*.labels.jsonl`` (agent offer|other, customer decline|accept|other)."""
    import json
    from pathlib import Path

    out: dict[str, list[str]] = {}
    for path in sorted(Path(directory).glob("*.labels.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                out[d["id"]] = list(d["turn_labels"])
    return out


def human_labels(calls: Sequence[Any], labels: dict[str, list[str]]) -> tuple[list[str], list[int], list[str], list[int]]:
    """Turn texts and labels written by people, for the calls that have them (turns as written)."""
    a_txt, a_y, c_txt, c_y = [], [], [], []
    for call in calls:
        tags = labels[call.id]
        if len(tags) != len(call.turns):
            raise ValueError(f"turn labels for {call.id}: {len(tags)} labels for {len(call.turns)} turns")
        for (role, text), tag in zip(call.turns, tags):
            if role == "agent":
                a_txt.append(text)
                a_y.append(int(tag == "offer"))
            else:
                c_txt.append(text)
                c_y.append(int(tag == "decline"))
    return a_txt, a_y, c_txt, c_y


def train(calls: Sequence[Any], options: Any, *, out_path: str | None = None, c_reg: float = 1.0,
          turn_labels: dict[str, list[str]] | None = None) -> dict:
    """Fit the offer and decline heads on the calls' turns plus the config prototypes (offer/decline = 1,
    every other class = 0); write the weights JSON. Turns of calls in ``turn_labels`` (labelled by
    people) use those labels; the other calls' turns get weak labels from the phrase rules."""
    import json

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    model = load_model(options.semantic_package)
    turn_labels = turn_labels or {}
    a_txt, a_y, c_txt, c_y = weak_labels([c for c in calls if c.id not in turn_labels], options)
    for acc, add in zip((a_txt, a_y, c_txt, c_y), human_labels([c for c in calls if c.id in turn_labels],
                                                                turn_labels)):
        acc.extend(add)
    out: dict[str, Any] = {"prototypes": prototypes_hash(options.semantic_agent_prototypes,
                                                         options.semantic_customer_prototypes),
                           "turns": {"agent": len(a_txt), "customer": len(c_txt)},
                           "human_labelled_calls": sum(c.id in turn_labels for c in calls)}
    for head, txt, y, protos in (("offer", a_txt, a_y, options.semantic_agent_prototypes),
                                 ("decline", c_txt, c_y, options.semantic_customer_prototypes)):
        ptxt = [t for k, v in protos.items() for t in v]
        py = [int(k == head) for k, v in protos.items() for _ in v]
        texts = [t.lower() for t in txt] + ptxt
        ys = np.array(y + py)
        emb = model.encode(texts, batch_size=64)
        weights = np.array([1.0] * len(txt) + [3.0] * len(ptxt))  # a hand-written prototype counts 3 turns
        lr = LogisticRegression(C=c_reg, max_iter=2000, class_weight="balanced")
        lr.fit(emb, ys, sample_weight=weights)
        out[head] = {"coef": [round(float(x), 6) for x in lr.coef_[0]], "intercept": float(lr.intercept_[0]),
                     "positives": int(ys.sum()), "examples": len(ys)}
    if out_path:
        with open(out_path, "w") as f:
            json.dump(out, f)
        _heads_cache.pop(str(out_path), None)
    return out


if __name__ == "__main__":  # python -m pipeline.analysis.conduct_semantic  (retrain after editing prototypes)
    import sys

    from ..config import load_config
    from .conduct_eval import load_corpus

    splits = set(sys.argv[1].split(",")) if len(sys.argv) > 1 else {"tune", "dev"}
    data = [c for c in load_corpus() if c.split in splits]
    res = train(data, load_config().conduct, out_path=str(WEIGHTS_PATH), turn_labels=read_turn_labels())
    print(f"trained on {len(data)} calls ({', '.join(sorted(splits))}; {res['human_labelled_calls']} with turn "
          f"labels by people): {res['turns']}, "
          f"offer positives {res['offer']['positives']}, decline positives {res['decline']['positives']} "
          f"-> {WEIGHTS_PATH}")

"""Score (and time) whichever conduct rules are importable on a corpus split of this checkout.

Used to tell a round's tuning apart from its writers: run an older frozen commit's rules on the
newest held-out set after that set has been scored once (nothing is tuned on the result).

    git worktree add /tmp/rules-r14 3a811b1
    PYTHONPATH=/tmp/rules-r14 .venv/bin/python bench/conduct_rules_at.py --split heldout12 --time
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pipeline.analysis.conduct import analyze_conduct
from pipeline.analysis.conduct_eval import evaluate, load_corpus, timeline_from_turns
from pipeline.config import load_config

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "conduct_corpus"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="heldout12", help="corpus split to score (default: heldout12)")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="corpus folder (default: this checkout's)")
    ap.add_argument("--time", action="store_true", help="also time the analysis on the split's first 400 calls")
    args = ap.parse_args()

    import pipeline

    options = load_config().conduct
    calls = [c for c in load_corpus(args.corpus) if c.split == args.split]
    if not calls:
        raise SystemExit(f"no calls in split {args.split!r} under {args.corpus}")
    scores, _ = evaluate(calls, options)
    print(f"rules from {Path(pipeline.__file__).parent}, {len(calls)} calls in {args.split}")
    for flag, s in scores.items():
        print(f"  {flag:24} TP {s.tp:4} FP {s.fp:4} FN {s.fn:4}  P {s.precision:.3f}  R {s.recall:.3f}")
    if args.time:
        sample = calls[:400]
        timelines = [timeline_from_turns(c.turns) for c in sample]
        words = sum(len(text.split()) for c in sample for _, text in c.turns)
        analyze_conduct(timelines[0], options)  # model and rule compilation out of the timing
        best = min(_timed(timelines, options) for _ in range(3))
        print(f"  cost: {words} words, best of 3 {best * 1000:.0f} ms = {best * 1000 * 1500 / words:.0f} ms per 1,500 words")


def _timed(timelines, options) -> float:
    t0 = time.perf_counter()
    for tl in timelines:
        analyze_conduct(tl, options)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()

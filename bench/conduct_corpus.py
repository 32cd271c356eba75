#!/usr/bin/env python3
"""Sales conduct: precision/recall per flag on the labelled corpus, and what the analysis costs.

    .venv/bin/python bench/conduct_corpus.py [--mistakes] [--pipeline]

1. Corpus (tests/conduct_corpus/, see its README): precision and recall of
   ``refusal_then_continue`` and ``pitch_before_resolution`` at call level, separately for
   ``tune`` (rules written against it), ``dev`` (the first held-out set: scored once, then
   used for tuning) and ``heldout2``/``heldout5``/``heldout7``/``heldout12`` (never used for tuning), with spaCy normalization
   (default) and with the plain regex tokenizer (``use_spacy = false``).
2. Cost: the analysis on the whole corpus joined into one long call (~25 min of talk),
   and spaCy's load time.
3. Real calls (../shared/eval-data/calls_spokenwoz, reference transcripts; skipped if
   absent): human customer-service calls with no selling -- any conduct flag is a false
   positive -- and the analysis time per call.
4. ``--pipeline``: the share of ``analyze_file`` wall time the conduct analysis takes, on
   the four audio_fixtures/conduct calls and the SpokenWOZ audio (agent on the right).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.analysis.conduct import analyze_conduct  # noqa: E402
from pipeline.analysis.conduct_eval import FLAG_TYPES, evaluate, load_corpus, timeline_from_turns  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.timeline import AGENT, CUSTOMER, Speaker, Timeline, Turn, Word  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval-data" / "calls_spokenwoz"
TARGETS = {"refusal_then_continue": (0.9, 0.85), "pitch_before_resolution": (0.85, 0.8)}


def corpus_table(options, label: str, show_mistakes: bool) -> None:
    calls = load_corpus()
    splits = {name: [c for c in calls if c.split == name] for name in ("tune", "dev", "heldout2", "heldout5", "heldout7", "heldout12")}
    splits["all"] = calls
    print(f"\n{label}")
    print(f"{'split':8} {'calls':>5}  {'flag':26} {'pos':>4} {'TP':>3} {'FP':>3} {'FN':>3} {'precision':>9} {'recall':>7}  target")
    for split, subset in splits.items():
        scores, mistakes = evaluate(subset, options)
        for flag in FLAG_TYPES:
            s = scores[flag]
            p_t, r_t = TARGETS[flag]
            ok = "ok" if s.precision >= p_t and s.recall >= r_t else "MISS"
            print(f"{split:8} {len(subset):>5}  {flag:26} {s.tp + s.fn:>4} {s.tp:>3} {s.fp:>3} {s.fn:>3} "
                  f"{s.precision:>9.3f} {s.recall:>7.3f}  P>={p_t} R>={r_t} {ok}")
        if show_mistakes and split != "all":
            for m in mistakes:
                print(f"         {m['id']}: {m['flag']} {m['error']} ({m['note']})")


def spokenwoz_timelines() -> dict[str, Timeline]:
    out = {}
    for stm in sorted((EVAL / "reference").glob("*.stm")):
        turns = []
        for line in stm.read_text().splitlines():
            parts = line.split()
            if len(parts) < 6:
                continue
            _, _, spk, start, end, *words = parts
            start, end = float(start), float(end)
            role = CUSTOMER if spk == "A" else AGENT  # PROVENANCE: A = left = customer, B = right = agent
            step = (end - start) / len(words)
            ws = tuple(Word(start + i * step, start + (i + 1) * step, w) for i, w in enumerate(words))
            turns.append(Turn("S1" if spk == "A" else "S0", start, end, role, words=ws))
        if turns:
            out[stm.stem] = Timeline(duration=max(t.end for t in turns),
                                     speakers=(Speaker("S0", AGENT, 1), Speaker("S1", CUSTOMER, 0)),
                                     turns=tuple(turns))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mistakes", action="store_true", help="list the misclassified corpus calls")
    ap.add_argument("--pipeline", action="store_true", help="also run analyze_file to measure the share of wall time")
    ap.add_argument("--semantic", action="store_true",
                    help="also score with the semantic layer on ([conduct] semantic = true; needs the semantic extra)")
    args = ap.parse_args()

    options = load_config().conduct
    t0 = time.perf_counter()
    from pipeline.nlp import load_spacy

    load_spacy(options.spacy_model)
    print(f"spaCy {options.spacy_model} load: {time.perf_counter() - t0:.2f} s (once per process)")

    calls = load_corpus()
    held = sum(c.split.startswith("heldout") for c in calls)
    print(f"corpus: {len(calls)} calls, {held} held out ({held / len(calls):.0%}), "
          + ", ".join(f"{f} positives {sum(bool(c.labels[f]) for c in calls)}" for f in FLAG_TYPES))
    corpus_table(options, "spaCy normalization (default)", args.mistakes)
    corpus_table(dataclasses.replace(options, use_spacy=False), "plain regex tokenizer (use_spacy = false)",
                 args.mistakes)
    if args.semantic:
        corpus_table(dataclasses.replace(options, semantic=True), "rules + semantic layer (semantic = true)",
                     args.mistakes)

    # Cost on one long call.
    turns = [t for c in calls for t in c.turns]
    tl = timeline_from_turns(turns)
    analyze_conduct(timeline_from_turns(turns[:4]), options)  # compile phrases once
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        analyze_conduct(tl, options)
        runs.append(time.perf_counter() - t0)
    words = sum(len(t.words) for t in tl.turns)
    print(f"\ncost: {len(tl.turns)} turns, {words} words ({tl.duration / 60:.0f} min of synthetic talk): "
          f"best {min(runs) * 1000:.0f} ms, median {sorted(runs)[1] * 1000:.0f} ms "
          f"({min(runs) / words * 1500 * 1000:.0f} ms per 1500 words, about a 10-minute call)")

    if not EVAL.is_dir():
        print(f"\nreal calls: skipped ({EVAL} not found)")
        return
    print("\nreal calls (SpokenWOZ reference transcripts; customer service, no selling):")
    flagged = 0
    for cid, timeline in spokenwoz_timelines().items():
        t0 = time.perf_counter()
        r = analyze_conduct(timeline, options)
        ms = (time.perf_counter() - t0) * 1000
        flagged += bool(r.flags)
        c = r.metrics["counts"]
        print(f"  {cid}: {len(timeline.turns)} turns, {ms:.0f} ms, flags {[f.type for f in r.flags]}, "
              f"pitches {c['pitches']}, refusals {c['refusals']}, checkbacks {c['checkbacks']}, "
              f"needs questions {c['needs_questions']}")
    print(f"  calls with a conduct flag: {flagged}")

    if args.pipeline:
        from pipeline.process import analyze_file
        from pipeline.record import CallRecord

        config = load_config()
        files = [(p, None) for p in sorted((ROOT / "audio_fixtures" / "conduct").glob("*.flac"))]
        files += [(p, "agent=right") for p in sorted((EVAL / "audio").glob("*.wav"))]
        total = conduct = 0.0
        print("\npipeline share (analyze_file, tiny.en, this machine):")
        for path, cmap in files:
            rec = analyze_file(path, config=config, channel_map=cmap)
            if rec.status != "ok":
                print(f"  {path.name}: {rec.status} {rec.error}")
                continue
            t0 = time.perf_counter()
            analyze_conduct(CallRecord.from_dict(rec.to_dict()).timeline, config.conduct)
            c = time.perf_counter() - t0
            t = rec.provenance["elapsed_s"]["total"]
            total += t
            conduct += c
            print(f"  {path.name}: pipeline {t:.1f} s, conduct {c * 1000:.0f} ms ({c / t:.2%}), "
                  f"flags {[f.type for f in rec.flags if f.type in FLAG_TYPES]}")
        print(f"  all: conduct {conduct:.2f} s of {total:.1f} s = {conduct / total:.2%} of wall time")


if __name__ == "__main__":
    main()

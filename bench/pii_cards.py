#!/usr/bin/env python3
"""Card-number redaction: precision/recall on the labelled cases, on spoken cards through ASR,
and false positives on real calls.

    .venv/bin/python bench/pii_cards.py [--no-asr] [--repeat 3] [--verbose] [--eval-dir ../shared/eval-data]

1. Written cases (tests/pii_cases/cards.jsonl, >= 40, labelled card / number / none): precision and
   recall of ``[CARD]`` with the default config, recall on complete cards, cases where any card digit
   is left in the text, and the same for a naive baseline (a 13-19 digit regex over the text with a
   Luhn check: what a log scrubber does).
2. Spoken through ASR: espeak-ng callers read Luhn-valid test cards in several styles (digit by digit,
   "oh" for zero, pairs, fillers, split over two turns) on a stereo 8 kHz call; the real pipeline
   (tiny.en) transcribes them. Counted: the card span redacted (as [CARD] or [NUMBER]) and no digit of
   the card left in the record text.
3. Real calls (SpokenWOZ references in ../shared/eval-data; skipped when absent): with the default
   types there should be nothing to redact (no payment data in those calls); with every type on, the
   detections per type are listed for inspection.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.analysis.pii import PII_TYPES, PiiOptions, luhn_ok, redact_timeline  # noqa: E402
from pipeline.timeline import Speaker, Timeline, Turn, Word  # noqa: E402

CASES = ROOT / "tests" / "pii_cases" / "cards.jsonl"
# Written after the detector was tuned on cards.jsonl and scored once, unchanged: a check on overfitting.
HELDOUT = ROOT / "tests" / "pii_cases" / "cards_heldout.jsonl"
VERBOSE = False
NO_ASR = False
NUM_WORDS = re.compile(r"\b(zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
                       r"fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|"
                       r"seventy|eighty|ninety|double|triple)\b", re.I)


def case_timeline(turns: list, word_s: float = 0.35) -> Timeline:
    t, out = 0.0, []
    for tr in turns:
        role, text = tr[0], tr[1]
        t += tr[2] if len(tr) > 2 else 0.6
        start, words = t, []
        for i, w in enumerate(text.split()):
            words.append(Word(t, t + word_s - 0.05, (" " if i else "") + w))
            t += word_s
        out.append(Turn("A" if role == "agent" else "C", start, t, role, tuple(words)))
    return Timeline(t + 1.0, (Speaker("A", "agent", 1), Speaker("C", "customer", 0)), tuple(out))


def baseline_cards(text: str) -> bool:
    """A log scrubber: 13-19 digits with optional space/dash separators, Luhn-checked."""
    for m in re.finditer(r"\d(?:[ -]?\d){12,18}", text):
        if luhn_ok(re.sub(r"\D", "", m.group())):
            return True
    return False


def prf(tp: int, fp: int, fn: int) -> tuple[float, float]:
    return tp / max(1, tp + fp), tp / max(1, tp + fn)


def written_cases(path: Path = CASES) -> None:
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    opts = PiiOptions()
    ours = {"tp": 0, "fp": 0, "fn": 0}
    base = {"tp": 0, "fp": 0, "fn": 0}
    leaks, misses, number_ok, t0 = [], [], 0, time.perf_counter()
    for c in cases:
        tl = case_timeline(c["turns"])
        red, res = redact_timeline(tl, opts)
        found = any(s["type"] == "card" for s in res.metrics["spans"])
        text = " ".join(t.transcript for t in tl.turns)
        bfound = baseline_cards(text)
        for stats, f in ((ours, found), (base, bfound)):
            if c["label"] == "card":
                stats["tp" if f else "fn"] += 1
            elif f:
                stats["fp"] += 1
        if (c["label"] == "card") != found:
            misses.append(c["id"])
        if c["label"] == "number":
            number_ok += any(s["type"] == "number" for s in res.metrics["spans"])
        if c["label"] in ("card", "number"):
            for before, after in zip(tl.turns, red.turns):
                if before.transcript != after.transcript:
                    left = re.sub(r"\[[A-Z]+\]", "", after.transcript)
                    if re.search(r"\d", left) or NUM_WORDS.search(left):
                        leaks.append(c["id"])
    dt = (time.perf_counter() - t0) / len(cases) * 1000
    n_card = sum(c["label"] == "card" for c in cases)
    n_num = sum(c["label"] == "number" for c in cases)
    print(f"## written cases, {path.name}: {len(cases)} ({n_card} complete cards, {n_num} incomplete in card context, "
          f"{len(cases) - n_card - n_num} not cards)")
    p, r = prf(**ours)
    print(f"callqa   [CARD] precision {p:.3f}  recall {r:.3f}  (tp {ours['tp']}, fp {ours['fp']}, fn {ours['fn']})"
          f"  incomplete cards redacted as [NUMBER]: {number_ok}/{n_num}  turns with a digit left: {len(leaks)}"
          f"  {dt:.1f} ms/case")
    p, r = prf(**base)
    print(f"baseline regex+Luhn  precision {p:.3f}  recall {r:.3f}  (tp {base['tp']}, fp {base['fp']}, "
          f"fn {base['fn']})")
    if misses or leaks:
        print("  misses:", misses, "leaks:", leaks)


STYLES = {
    "digits": lambda d: ", ".join(" ".join(_W[int(c)] for c in d[i:i + 4]) for i in range(0, len(d), 4)),
    "oh_for_zero": lambda d: ", ".join(" ".join("oh" if c == "0" else _W[int(c)] for c in d[i:i + 4])
                                       for i in range(0, len(d), 4)),
    "written": lambda d: " ".join(d[i:i + 4] for i in range(0, len(d), 4)),
    "fillers": lambda d: ", uh, ".join(" ".join(_W[int(c)] for c in d[i:i + 4]) for i in range(0, len(d), 4)),
}
_W = "zero one two three four five six seven eight nine".split()
SPOKEN_CARDS = [("4556737586899855", "digits", "en-us+f3"), ("4111111111111111", "written", "en-us+m3"),
                ("5105105105105100", "oh_for_zero", "en-us+f2"), ("6011000990139424", "fillers", "en-gb+m2"),
                ("4242424242424242", "digits", "en-gb+f3"), ("5555555555554444", "written", "en-us+f3"),
                ("3530111333300000", "oh_for_zero", "en-us+m3"), ("4012888888881881", "digits", "en-us+m1"),
                ("2223003122003222", "fillers", "en-us+f3"), ("6200000000000005", "digits", "en-gb+m2")]


def spoken_through_asr(tmp: Path, repeat: int = 1) -> None:
    spec = importlib.util.spec_from_file_location("make_pii_call", ROOT / "audio_fixtures" / "pii" / "make_pii_call.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    from pipeline.config import load_config
    from pipeline.process import analyze_file

    config = load_config()
    sr = gen.SR
    from pipeline.redact_audio import write_redacted_audio

    redacted = leaked = asr_complete = audio_clean = 0
    t0 = time.perf_counter()
    print(f"## spoken through ASR ({config.asr.model} model): {len(SPOKEN_CARDS)} calls x {repeat} run(s)")
    # faster-whisper falls back to temperature sampling on repetitive digit strings, so the transcript of
    # the same audio differs between runs: --repeat measures over several runs.
    for k, (card, style, voice) in [(k, c) for _ in range(repeat) for k, c in enumerate(SPOKEN_CARDS)]:
        split = k % 3 == 2  # every third caller reads the card over two turns, the agent saying "okay" between
        said = STYLES[style](card)
        parts = [said] if not split else [STYLES[style](card[:8]), STYLES[style](card[8:])]
        lines = [("agent", "Thank you for calling. Can I have the card number, please?", 0.4, "en-us+m3")]
        for i, part in enumerate(parts):
            if i:
                lines.append(("agent", "Okay.", 0.4, "en-us+m3"))
            lines.append(("customer", part, 0.5, voice))
        lines.append(("agent", "Thank you, that is done.", 0.6, "en-us+m3"))
        t, placed, card_span = 0.3, [], [None, None]
        for role, text, pause, v in lines:
            x = gen.speak(text, v, speed=140)
            start = t + pause
            placed.append((role, start, x))
            if role == "customer":
                card_span[0] = start if card_span[0] is None else card_span[0]
                card_span[1] = start + len(x) / sr
            t = start + len(x) / sr
        audio = np.zeros((2, int((t + 0.6) * sr)), np.float32)
        for role, start, x in placed:
            i = int(start * sr)
            audio[0 if role == "customer" else 1, i:i + len(x)] += x
        audio += np.random.default_rng(k).normal(0, 1e-4, audio.shape).astype(np.float32)
        path = tmp / f"card_{k}.wav"
        sf.write(path, audio.T, sr, subtype="PCM_16")
        rec = analyze_file(path, config=config).to_dict()
        raw = analyze_file(path, config=config.replace(pii=PiiOptions(keep_raw_text=True))).to_dict()
        raw_digits = "".join(re.sub(r"\D", "", s["text"]) for s in raw["segments"] if s["role"] == "customer")
        asr_complete += raw_digits == card
        spans = [s for s in rec["metrics"]["pii"]["spans"] if s["type"] in ("card", "number")]
        cover = sum(max(0.0, min(s["end"], card_span[1]) - max(s["start"], card_span[0])) for s in spans)
        ok = cover >= 0.8 * (card_span[1] - card_span[0])
        # Leak: a digit or number word left in a segment that overlaps the card (the script has no other
        # numbers there; ASR may invent "have a good one" elsewhere).
        text = " ".join(s["text"] for s in rec["segments"] if s["end"] > card_span[0] and s["start"] < card_span[1])
        left = re.sub(r"\[[A-Z]+\]", "", text)
        leak = bool(re.search(r"\d", left) or NUM_WORDS.search(left))
        # Audio: silence the spans as --redact-audio would; any 30 ms frame of the card left above -50 dBFS
        # on the customer's channel is audible card speech.
        red = write_redacted_audio(path, tmp / f"red_{k}.wav", rec["metrics"]["pii"]["spans"], mode="silence",
                                   pad_s=config.pii.audio_pad_s)
        y, _ = sf.read(red.path, dtype="float32")
        seg = y[int(card_span[0] * sr):int(card_span[1] * sr), 0]
        hop = int(0.03 * sr)
        lv = 10 * np.log10(np.mean(seg[: len(seg) // hop * hop].reshape(-1, hop) ** 2, axis=1) + 1e-12)
        audible = float(np.sum(lv > -50) * 0.03)
        audio_clean += audible == 0
        redacted += ok
        leaked += leak
        types = sorted({s["type"] for s in spans})
        print(f"  {card} {style:12s} {'split' if split else 'one turn':8s} {voice:9s} asr digits "
              f"{'exact' if raw_digits == card else f'{len(raw_digits)} (differ)':12s} -> {types} "
              f"{'covered' if ok else 'NOT COVERED'}{' LEAK' if leak else ''}  audible card audio {audible:.2f} s")
        if VERBOSE:
            for seg in raw["segments"]:
                print(f"      raw {seg['role']:8s} {seg['start']:6.2f}-{seg['end']:6.2f} {seg['text']}")
                if seg["role"] == "customer":
                    print("          words:", [(w["text"], round(w["start"], 2), round(w["end"], 2))
                                              for w in seg.get("words") or []])
            print(f"      card span {card_span[0]:.2f}-{card_span[1]:.2f}; redacted spans",
                  [(s['type'], s['start'], s['end']) for s in rec['metrics']['pii']['spans']])
    n = len(SPOKEN_CARDS) * repeat
    print(f"spoken cards redacted over their span: {redacted}/{n}  with a digit left in the text: {leaked}/{n}  "
          f"(ASR got every digit right in {asr_complete}/{n}; the rest are [NUMBER]) "
          f"{(time.perf_counter() - t0) / n:.1f} s/call incl. 2 analyses")
    print(f"redacted audio with no card speech left (every 30 ms frame of the card span < -50 dBFS): "
          f"{audio_clean}/{n}")


def real_calls(eval_dir: Path) -> None:
    ref = eval_dir / "calls_spokenwoz" / "reference"
    if not ref.is_dir():
        print(f"## real calls: skipped ({ref} not found; the eval data lives beside the checkout)")
        return
    stms = sorted(ref.glob("*.stm"))
    print(f"## real calls (SpokenWOZ references, {len(stms)} calls; word times interpolated within turns)")
    totals_default: dict[str, int] = {}
    totals_all: dict[str, int] = {}
    for stm in stms:
        turns = []
        for line in stm.read_text().splitlines():
            f = line.split()
            if len(f) < 6:
                continue
            start, end, words = float(f[3]), float(f[4]), f[5:]
            step = (end - start) / len(words)
            ws = tuple(Word(start + i * step, start + (i + 1) * step, (" " if i else "") + w)
                       for i, w in enumerate(words))
            spk = "left" if f[2] == "A" else "right"
            turns.append(Turn(spk, start, end, "customer" if f[2] == "A" else "agent", ws))
        tl = Timeline(max(t.end for t in turns), (Speaker("left", "customer", 0), Speaker("right", "agent", 1)),
                      tuple(turns))
        _, res = redact_timeline(tl, PiiOptions())
        red, res_all = redact_timeline(tl, PiiOptions(types=PII_TYPES))
        for k, v in res.metrics["counts"].items():
            totals_default[k] = totals_default.get(k, 0) + v
        for k, v in res_all.metrics["counts"].items():
            totals_all[k] = totals_all.get(k, 0) + v
        shown = [t.transcript for t in red.turns if "[" in t.transcript]
        print(f"  {stm.stem}: default {res.metrics['total']} redactions; all types: "
              f"{ {k: v for k, v in res_all.metrics['counts'].items() if v} }")
        for s in shown:
            print(f"      {s}")
    print(f"default types on real calls (no payment data in them): {sum(totals_default.values())} redactions "
          f"({ {k: v for k, v in totals_default.items() if v} })")
    audio = eval_dir / "calls_spokenwoz" / "audio"
    if audio.is_dir() and not NO_ASR:
        from pipeline.config import load_config
        from pipeline.process import analyze_file

        config = load_config()
        total: dict[str, int] = {}
        for wav in sorted(audio.glob("*.wav")):
            rec = analyze_file(wav, config=config.replace(pii=PiiOptions(types=PII_TYPES)),
                               channel_map="agent=right").to_dict()
            counts = {k: v for k, v in rec["metrics"]["pii"]["counts"].items() if v}
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
            print(f"  ASR transcript of {wav.stem} (every type on): {counts}")
            for seg in rec["segments"]:
                if "[" in seg["text"]:
                    print(f"      {seg['role']}: {seg['text']}")
        print(f"ASR transcripts of the real calls, every type on: {total}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-asr", action="store_true", help="skip the spoken-through-ASR part")
    ap.add_argument("--repeat", type=int, default=1, help="runs of the spoken part (ASR output varies per run)")
    ap.add_argument("--verbose", action="store_true", help="print the raw ASR text of the spoken calls")
    ap.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval-data")
    args = ap.parse_args()
    global VERBOSE, NO_ASR
    VERBOSE = args.verbose
    NO_ASR = args.no_asr
    written_cases()
    written_cases(HELDOUT)
    if not args.no_asr:
        with tempfile.TemporaryDirectory() as tmp:
            spoken_through_asr(Path(tmp), repeat=args.repeat)
    real_calls(args.eval_dir)


if __name__ == "__main__":
    main()

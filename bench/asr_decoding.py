#!/usr/bin/env python3
"""How callqa decodes speech, measured: sequential vs batched, one vs two threads, encoder passes.

    .venv/bin/python bench/asr_decoding.py [--eval-dir ../shared/eval-data] [--threads 1 2]

On the three real SpokenWOZ calls, mixed down to mono (speech covers most of the
track) and as stereo legs (speech covers about half of each), after VAD:
  * faster-whisper on the whole track (its own 30 s windowing; no VAD);
  * callqa's packed chunks, sequential decoder (``asr.batch_size = 1``);
  * callqa's packed chunks, batched decoder (``asr.batch_size`` 4 and 8);
with the seconds, the 30 s windows the Whisper encoder ran on and the words out. The model is loaded
once per thread setting, before timing. WER of each mode is what
``bench/spokenwoz_eval.py --batch-size N`` reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.asr import SAMPLE_RATE, Transcriber  # noqa: E402
from pipeline.audio import load_audio  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.vad import detect_speech  # noqa: E402


def load_inputs(eval_dir: Path, config) -> dict[str, list]:
    """{"mono": [(signal, speech)], "stereo legs": [...]} for the SpokenWOZ calls."""
    import numpy as np

    out: dict[str, list] = {"mono": [], "stereo legs": []}
    for wav in sorted((eval_dir / "calls_spokenwoz" / "audio").glob("*.wav")):
        audio = load_audio(wav, config.audio)
        for act in detect_speech(audio.samples, SAMPLE_RATE, config.vad):
            out["stereo legs"].append((audio.channel(act.channel), act.speech))
        mono = np.ascontiguousarray(audio.samples.mean(axis=0, keepdims=True), dtype=np.float32)
        out["mono"].append((mono[0], detect_speech(mono, SAMPLE_RATE, config.vad)[0].speech))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval-data")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    if not (args.eval_dir / "calls_spokenwoz").is_dir():
        print(f"SKIP: {args.eval_dir / 'calls_spokenwoz'} not found")
        return 0
    config = load_config()
    inputs = load_inputs(args.eval_dir, config)
    for name, items in inputs.items():
        audio_s = sum(len(sig) for sig, _ in items) / SAMPLE_RATE
        speech_s = sum(iv.duration for _, sp in items for iv in sp)
        print(f"{name}: {len(items)} tracks, {audio_s:.0f} s of audio, {speech_s:.0f} s of it speech (VAD)")
    print()
    print(f"{'input':12s} {'threads':>7s}  {'mode':34s} {'seconds':>8s} {'windows encoded':>15s} {'words':>6s}")
    for threads in args.threads:
        from faster_whisper import WhisperModel

        # One decode at ``threads`` threads (callqa itself splits two threads into two 1-thread streams).
        model = WhisperModel(Transcriber(config.asr).model_path, device="cpu", compute_type=config.asr.compute_type,
                             cpu_threads=threads)
        passes = [0]
        encode = model.encode

        def counting_encode(features, _encode=encode):
            passes[0] += features.shape[0] if getattr(features, "ndim", 2) == 3 else 1  # 30 s windows encoded
            return _encode(features)

        model.encode = counting_encode

        def whole_track(sig, speech):
            segments, _ = model.transcribe(sig, language="en", beam_size=config.asr.beam_size, word_timestamps=True,
                                           condition_on_previous_text=False, vad_filter=False)
            return sum(len(s.words or ()) for s in segments)

        def packed(batch_size):
            t = Transcriber(dataclasses.replace(config.asr, batch_size=batch_size), cpu_threads=1)

            def run(sig, speech):
                return len(t.transcribe_regions(sig, speech, model=model))
            return run

        modes = [("faster-whisper, whole track", whole_track),
                 ("callqa packed, sequential (batch 1)", packed(1)),
                 ("callqa packed, batched 4 (default)", packed(4)),
                 ("callqa packed, batched 8", packed(8))]
        for name, items in inputs.items():
            for label, fn in modes:
                passes[0] = 0
                t0 = time.perf_counter()
                words = sum(fn(sig, speech) for sig, speech in items)
                wall = time.perf_counter() - t0
                print(f"{name:12s} {threads:7d}  {label:34s} {wall:8.2f} {passes[0]:15d} {words:6d}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

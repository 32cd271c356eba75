#!/usr/bin/env python3
"""webrtcvad vs Silero (the copy inside faster-whisper) per stereo leg, on the real SpokenWOZ calls.

    .venv/bin/python bench/vad_compare.py [--eval-dir ../shared/eval-data]

Frame-level (10 ms) miss and false-alarm rates of each backend's speech regions (after
callqa's smoothing and crosstalk rejection) against the reference turns of that leg's
speaker, and the cost in seconds per minute of audio per channel.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.audio import load_audio  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.vad import detect_speech  # noqa: E402


def frames(intervals, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    for s, e in intervals:
        out[int(s * 100) : int(e * 100)] = True
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval-data")
    args = ap.parse_args()
    calls = args.eval_dir / "calls_spokenwoz"
    if not calls.is_dir():
        print(f"SKIP: {calls} not found")
        return 0
    base = load_config()
    print("| backend | call | leg | miss | false alarm | s per audio-min per channel |")
    print("|---|---|---|---|---|---|")
    totals: dict[str, list] = {}
    for backend in ("webrtc", "silero"):
        vad = load_config(overrides={"vad": {"backend": backend}}).vad
        for wav in sorted((calls / "audio").glob("*.wav")):
            audio = load_audio(wav, base.audio)
            ref = {"A": [], "B": []}
            for line in (calls / "reference" / f"{wav.stem}.rttm").read_text().splitlines():
                f = line.split()
                ref[f[7]].append((float(f[3]), float(f[3]) + float(f[4])))
            t0 = time.perf_counter()
            act = detect_speech(audio.samples, 16000, vad)
            cost = (time.perf_counter() - t0) / (audio.duration / 60) / 2
            n = int(audio.duration * 100) + 1
            for ch, spk in ((0, "A"), (1, "B")):
                r = frames(ref[spk], n)
                h = frames([(iv.start, iv.end) for iv in act[ch].speech], n)
                miss = float((r & ~h).sum() / max(1, r.sum()))
                fa = float((h & ~r).sum() / max(1, (~r).sum()))
                totals.setdefault(backend, []).append((miss, fa, cost))
                print(f"| {backend} | {wav.stem} | {'left' if ch == 0 else 'right'} | {miss:.3f} | {fa:.3f} | {cost:.3f} |")
    for backend, rows in totals.items():
        m = np.mean(rows, axis=0)
        print(f"{backend}: mean miss {m[0]:.3f}, false alarm {m[1]:.3f}, {m[2]:.3f} s per audio-minute per channel")
    return 0


if __name__ == "__main__":
    sys.exit(main())

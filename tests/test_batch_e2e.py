"""The batch runner with the real pipeline (tiny.en) on calls built from the committed fixtures.

Calls are 6 s stereo slices of ``audio_fixtures/upsell_monologue.wav`` at different
offsets, each with a little seeded noise so every file's content hash differs.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf

from pipeline.batch.runner import EXIT_CALL_ERRORS, EXIT_OK, BatchOptions, run_batch
from pipeline.config import load_config
from pipeline.record import validate_record

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "audio_fixtures" / "upsell_monologue.wav"

pytestmark = pytest.mark.slow

# Fields that legitimately differ between two runs of the same call.
TIMING = ("processed_at", "elapsed_s", "batch")


def make_calls(folder: Path, n: int, *, seconds: float = 6.0, corrupt: bool = False) -> Path:
    x, sr = sf.read(FIXTURE, always_2d=True)
    folder.mkdir(parents=True, exist_ok=True)
    span = len(x) / sr - seconds
    for i in range(n):
        off = int((i * 3.3) % span * sr)
        seg = x[off:off + int(seconds * sr)] + np.random.default_rng(i).normal(0, 2e-4, (int(seconds * sr), 2))
        sf.write(folder / f"call_{i:02d}.wav", seg, sr, subtype="PCM_16")
    if corrupt:
        # a WAV header over garbage: the decoder must reject it, the batch must go on
        (folder / "call_00.wav").write_bytes(b"RIFF\x24\x10\x00\x00WAVEfmt " + os.urandom(3000))
    return folder


def read_jsonl(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def comparable(rec: dict) -> dict:
    rec = json.loads(json.dumps(rec))
    for k in TIMING:
        rec["provenance"].pop(k, None)
    rec["source"].pop("path", None)
    return rec


def differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {str(a)[:80]} != {str(b)[:80]}"]


def close_differences(a, b, tol: float = 0.0021) -> list[str]:
    """Like :func:`differences`, numbers equal within ``tol`` (ms-rounded inputs)."""
    return [d for d in differences(a, b) if not _close_line(d, tol)]


def _close_line(line: str, tol: float) -> bool:
    try:
        x, y = line.split(": ", 1)[1].split(" != ")
        return abs(float(x) - float(y)) <= tol
    except ValueError:
        return False


def _batch_cmd(src: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "batch", str(src), "--out", str(out), "--workers", "2", "-q", *extra]


def _stored_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            return c.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("corrupt", [False, True], ids=["all_good", "one_corrupt"])
def test_sigkill_then_rerun_gives_every_call_exactly_once(tmp_path, corrupt):
    src = make_calls(tmp_path / "src", 20, corrupt=corrupt)
    out = tmp_path / "out"
    db = out / "callqa.db"
    proc = subprocess.Popen(_batch_cmd(src, out), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _stored_count(db) < 5:
        assert proc.poll() is None, f"batch ended before it could be killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "no call finished in 300 s"
        time.sleep(0.1)
    workers = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # workers notice their parent is gone and stop instead of finishing unwanted work
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, f"orphaned workers still running: {alive}"

    # nothing torn: every line that made it to records.jsonl is whole
    lines = (out / "records.jsonl").read_text().splitlines() if (out / "records.jsonl").exists() else []
    assert all(json.loads(line)["call_id"] for line in lines)
    with sqlite3.connect(db) as c:
        (run1,) = c.execute("SELECT run_id FROM runs WHERE finished_at IS NULL").fetchone()
        before = {cid: json.loads(rj)["provenance"]["processed_at"]
                  for cid, rj in c.execute("SELECT call_id, record_json FROM calls")}
    assert 5 <= len(before) < 20

    rerun = subprocess.run(_batch_cmd(src, out, "--json"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    summary = json.loads(rerun.stdout)
    records = read_jsonl(out)
    ids = [r["call_id"] for r in records]
    assert len(records) == 20 and len(set(ids)) == 20
    assert set(ids) == {f"call_{i:02d}" for i in range(20)}
    by_id = {r["call_id"]: r for r in records}
    for r in records:
        validate_record(r)
    if corrupt:
        assert rerun.returncode == EXIT_CALL_ERRORS, rerun.stderr
        assert [r["call_id"] for r in records if r["status"] == "error"] == ["call_00"]
        assert by_id["call_00"]["error"]["kind"] in ("decode_error", "unsupported_format")
        assert summary["counts"]["ok"] == 19 and summary["counts"]["error"] == 1
        assert [f["call_id"] for f in summary["failures"]] == ["call_00"]
    else:
        assert rerun.returncode == EXIT_OK, rerun.stderr
        assert all(r["status"] == "ok" for r in records)
    # provenance: calls finished before the kill were not processed again
    for cid, processed_at in before.items():
        assert by_id[cid]["provenance"]["batch"]["run_id"] == run1
        assert by_id[cid]["provenance"]["processed_at"] == processed_at
    assert summary["counts"]["skipped"] == len(before)
    assert summary["counts"]["processed"] == 20 - len(before)
    with sqlite3.connect(db) as c:
        finals = dict(c.execute("SELECT call_id, COUNT(*) FROM attempts WHERE outcome IN ('ok', 'error')"
                                " GROUP BY call_id").fetchall())
    assert finals == {cid: 1 for cid in ids}  # each call completed exactly once across both runs
    assert len(list((out / "calls").glob("*/record.json"))) == 20


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("local_run")
    src = make_calls(base / "src", 8)
    out = base / "out"
    summary = run_batch(src, out, config=load_config(), options=BatchOptions(workers=2))
    return {"src": src, "out": out, "summary": summary, "records": {r["call_id"]: r for r in read_jsonl(out)}}


def test_dask_cluster_same_records_and_a_killed_worker_loses_nothing(local_run, tmp_path):
    assert local_run["summary"]["exit_code"] == EXIT_OK
    out = tmp_path / "dask_out"
    me = psutil.Process()
    killed = []

    def kill_a_worker(info: dict) -> None:
        # after the second finished call, SIGKILL one Dask worker process while it runs a call
        if info["done"] == 2 and not killed:
            procs = []
            for p in me.children(recursive=True):
                try:
                    if "resource_tracker" not in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE:
                        procs.append(p)
                except psutil.Error:
                    pass
            victim = procs[0]
            killed.append(victim.pid)
            victim.kill()

    env_before = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    summary = run_batch(local_run["src"], out, config=load_config(),
                        options=BatchOptions(engine="dask", workers=2), progress=kill_a_worker)
    # Dask's nannies pin these to 1 in the parent while spawning workers; what runs next must not inherit it.
    assert {k: os.environ.get(k) for k in env_before} == env_before
    assert killed, "no worker was killed"
    assert summary["exit_code"] == EXIT_OK
    dask_recs = {r["call_id"]: r for r in read_jsonl(out)}
    assert set(dask_recs) == set(local_run["records"])
    for cid, rec in local_run["records"].items():
        assert not differences(comparable(dask_recs[cid]), comparable(rec)), cid
        assert dask_recs[cid]["provenance"]["batch"]["engine"] == "dask"


def test_parquet_export_reads_back_with_pandas_and_duckdb(local_run, tmp_path):
    import duckdb
    import pandas as pd

    from pipeline.export import export

    paths = export(local_run["out"], tmp_path / "exp", fmt="parquet")
    calls = pd.read_parquet(paths["calls"])
    flags = pd.read_parquet(paths["flags"])
    assert len(calls) == 8 and calls["call_id"].is_unique
    for col in ("call_id", "status", "duration_s", "sha256", "talk_ratio_agent", "talk_ratio_customer",
                "n_flags", "processed_at", "pipeline_version"):
        assert col in calls.columns, col
    recs = local_run["records"]
    for row in calls.itertuples():
        assert row.talk_ratio_agent == pytest.approx(recs[row.call_id]["metrics"]["talk_ratio"]["agent"])
        assert row.n_flags == len(recs[row.call_id]["flags"])
    assert len(flags) == sum(len(r["flags"]) for r in recs.values())
    assert {"flag_id", "call_id", "type", "severity", "start_s", "end_s", "verdict"} <= set(flags.columns)
    con = duckdb.connect()
    n, mean_ratio = con.execute(f"SELECT count(*), avg(talk_ratio_agent) FROM '{paths['calls']}'").fetchone()
    assert n == 8 and mean_ratio == pytest.approx(calls["talk_ratio_agent"].mean())
    cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM '{paths['flags']}'").fetchall()}
    assert {"type", "severity", "call_id"} <= cols


def test_reanalyze_matches_full_processing_and_keeps_verdicts(local_run, tmp_path):
    import shutil

    from pipeline.batch.reanalyze import reanalyze_store

    out = tmp_path / "out"
    shutil.copytree(local_run["out"], out)
    cfg_file = tmp_path / "strict.toml"
    # thresholds a 6 s slice can trip: short silences become dead air, short agent stretches monologues
    cfg_file.write_text("[talk]\ndead_air_s = 0.3\nsilence_report_s = 0.2\nmonologue_flag_s = 3.0\n"
                        "monologue_high_s = 4.0\nmonologue_report_s = 2.0\n")
    strict = load_config(cfg_file)
    # a verdict on a flag that survives the change must survive reanalyze
    with sqlite3.connect(out / "callqa.db") as c:
        row = c.execute("SELECT flag_id FROM flags LIMIT 1").fetchone()
        if row:
            c.execute("INSERT INTO reviews VALUES (?, 'confirmed', 'ok', 'sup', '2026-11-22T00:00:00Z')", row)
    t0 = time.perf_counter()
    res = reanalyze_store(out, config=strict)
    assert res["calls"] == 8 and time.perf_counter() - t0 < 20
    assert res["flags_after"] > res["flags_before"] and res["changed"] > 0
    # the same thresholds through the whole pipeline give the same metrics and flags
    full = tmp_path / "full"
    run_batch(local_run["src"], full, config=strict, options=BatchOptions(workers=2))
    fresh = {r["call_id"]: r for r in read_jsonl(full)}
    again = {r["call_id"]: r for r in read_jsonl(out)}
    # Stored times are rounded to the millisecond, so a re-analysed number may differ from a fresh
    # one in the last digit (and a time printed in evidence text by 0.1 s); nothing else may differ.
    for cid in fresh:
        assert not close_differences(again[cid]["metrics"], fresh[cid]["metrics"]), cid
        strip = [{k: v for k, v in f.items() if k != "evidence"} for f in fresh[cid]["flags"]]
        assert not close_differences([{k: v for k, v in f.items() if k != "evidence"} for f in again[cid]["flags"]],
                                     strip), cid
    with sqlite3.connect(out / "callqa.db") as c:
        assert c.execute("SELECT COUNT(*) FROM reviews").fetchone()[0] == (1 if row else 0)
    # a batch rerun with the new thresholds re-runs only the analyses
    s = run_batch(local_run["src"], out, config=strict, options=BatchOptions(workers=2))
    assert s["counts"]["processed"] == 0 and s["counts"]["reanalyzed"] == 0  # already at these thresholds
    s = run_batch(local_run["src"], out, config=load_config(), options=BatchOptions(workers=2))
    assert s["counts"]["processed"] == 0 and s["counts"]["reanalyzed"] == 8

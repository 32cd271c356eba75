"""Batch runner mechanics with a fake per-call work function (fast; no models).

The real pipeline runs in tests/test_batch_e2e.py; here the work function is
``batch_fakes.fake_work`` so timeouts, crashes, retries, manifests and the
records.jsonl repair can be forced deterministically.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from pipeline.batch.manifest import ManifestError, read_source
from pipeline.batch.runner import EXIT_CALL_ERRORS, EXIT_OK, BatchOptions, run_batch, summary_text
from pipeline.batch.writer import Writer
from pipeline.config import load_config

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _importable_fakes(monkeypatch):
    # spawned workers inherit sys.path; make sure the fakes' folder is on it
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("CALLQA_FAKE_SLEEP", "0.02")


def _opts(**kw) -> BatchOptions:
    base = dict(workers=2, work="batch_fakes:fake_work", warm=False, timeout_s=20)
    base.update(kw)
    return BatchOptions(**base)


def _make(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        data = b"CORRUPT" if name.startswith("bad") else os.urandom(64) + bytes([i])
        (folder / name).write_bytes(data)
    return folder


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_rerun_skips_done_calls_and_redoes_changed_ones(tmp_path):
    src = _make(tmp_path / "src", [f"c{i}.wav" for i in range(6)])
    out = tmp_path / "out"
    cfg = load_config()
    s1 = run_batch(src, out, config=cfg, options=_opts())
    assert s1["exit_code"] == EXIT_OK and s1["counts"]["processed"] == 6
    (src / "c3.wav").write_bytes(os.urandom(80))  # new content, same call id
    s2 = run_batch(src, out, config=cfg, options=_opts())
    assert s2["counts"]["processed"] == 1 and s2["counts"]["skipped"] == 5
    recs = _lines(out)
    assert sorted(r["call_id"] for r in recs) == [f"c{i}" for i in range(6)]  # replaced, not duplicated
    c3 = next(r for r in recs if r["call_id"] == "c3")
    assert c3["provenance"]["batch"]["run_id"] == s2["run_id"]
    assert all(r["provenance"]["batch"]["run_id"] == s1["run_id"] for r in recs if r["call_id"] != "c3")
    assert "callqa batch" in summary_text(s2)


def test_failures_are_isolated_retried_and_reported(tmp_path):
    src = _make(tmp_path / "src", ["ok1.wav", "ok2.wav", "bad.wav", "crash1.wav", "boom1.wav"])
    out = tmp_path / "out"
    s = run_batch(src, out, config=load_config(), options=_opts(retries=1))
    assert s["exit_code"] == EXIT_CALL_ERRORS
    recs = {r["call_id"]: r for r in _lines(out)}
    assert set(recs) == {"ok1", "ok2", "bad", "crash1", "boom1"}
    assert recs["crash1"]["status"] == "ok"  # worker died on attempt 1, the retry succeeded
    assert recs["crash1"]["provenance"]["batch"]["attempt"] == 2
    assert recs["bad"]["error"]["kind"] == "decode_error"
    assert recs["boom1"]["error"]["kind"] == "internal" and "boom" in recs["boom1"]["error"]["message"]
    kinds = {f["call_id"]: f["kind"] for f in s["failures"]}
    assert kinds == {"bad": "decode_error", "boom1": "internal"}
    assert s["counts"]["retried"] == 2  # crash1 once, boom1 once (retries=1)
    # a rerun retries the transient failure (internal) but not the corrupt file
    s2 = run_batch(src, out, config=load_config(), options=_opts(retries=0))
    assert s2["counts"]["processed"] == 1 and s2["counts"]["skipped"] == 4


def test_timeout_stops_the_call_not_the_batch(tmp_path):
    src = _make(tmp_path / "src", ["a.wav", "slow_b.wav", "c.wav"])
    out = tmp_path / "out"
    s = run_batch(src, out, config=load_config(), options=_opts(timeout_s=1.5))
    recs = {r["call_id"]: r for r in _lines(out)}
    assert recs["slow_b"]["error"]["kind"] == "timeout"
    assert recs["a"]["status"] == recs["c"]["status"] == "ok"
    assert s["counts"]["timeouts"] == 1 and s["wall_s"] < 8  # not the 4 s sleep of the slow call x retries


def test_manifest_metadata_channel_map_and_metadata_refresh(tmp_path):
    src = _make(tmp_path / "audio", ["x1.wav", "x2.wav"])
    man = tmp_path / "m.csv"
    man.write_text("path,call_id,agent_id,campaign,channel_map,recorded_at\n"
                   "audio/x1.wav,call-1,a7,welcome,agent=1,2026-11-01T10:00:00\n"
                   "audio/x2.wav,call-2,a8,winback,,\n")
    items = read_source(man)
    assert items[0].call_id == "call-1" and items[0].channel_map == "agent=right"
    assert items[0].metadata == {"agent_id": "a7", "campaign": "welcome", "recorded_at": "2026-11-01T10:00:00"}
    assert items[1].channel_map is None and items[1].metadata == {"agent_id": "a8", "campaign": "winback"}
    out = tmp_path / "out"
    run_batch(man, out, config=load_config(), options=_opts())
    conn = sqlite3.connect(out / "callqa.db")
    assert conn.execute("SELECT agent_id, campaign FROM calls WHERE call_id='call-1'").fetchone() == ("a7", "welcome")
    # metadata corrected in the manifest: refreshed without reprocessing
    man.write_text(man.read_text().replace("winback", "retention"))
    s = run_batch(man, out, config=load_config(), options=_opts())
    assert s["counts"]["processed"] == 0 and s["counts"]["metadata_refreshed"] == 1
    assert conn.execute("SELECT campaign FROM calls WHERE call_id='call-2'").fetchone() == ("retention",)
    assert {r["call_id"]: r["metadata"].get("campaign") for r in _lines(out)}["call-2"] == "retention"

    jl = tmp_path / "m.jsonl"
    jl.write_text(json.dumps({"path": str(src / "x1.wav"), "channel_map": {"agent": 0}, "metadata": {"k": 1},
                              "direction": "inbound"}) + "\n")
    (it,) = read_source(jl)
    assert it.call_id == "x1" and it.channel_map == "agent=left" and it.metadata == {"k": 1, "direction": "inbound"}


@pytest.mark.parametrize("text, msg", [
    ("file,call_id\na.wav,1\n", "'path' column"),
    ("path,call_id\na.wav,1\nb.wav,1\n", "unique"),
    ("path,channel_map\na.wav,agent=7\n", "does not exist"),
    ("path,channel_map\na.wav,boss=0\n", "must be 'agent' or 'customer'"),
])
def test_bad_manifests_say_what_is_wrong(tmp_path, text, msg):
    man = tmp_path / "m.csv"
    man.write_text(text)
    with pytest.raises(ManifestError, match=msg):
        read_source(man)


def test_records_jsonl_repaired_after_crash(tmp_path):
    src = _make(tmp_path / "src", [f"c{i}.wav" for i in range(4)])
    out = tmp_path / "out"
    run_batch(src, out, config=load_config(), options=_opts())
    jl = out / "records.jsonl"
    good = jl.read_bytes()
    # crash shapes: a torn last line, and a commit whose line never made it
    jl.write_bytes(good + good.splitlines(keepends=True)[0][:40])
    w = Writer(out)
    assert w.reconcile() is True
    w.close()
    assert jl.read_bytes().count(b"\n") == 4 and len({r["call_id"] for r in _lines(out)}) == 4
    jl.write_bytes(b"".join(good.splitlines(keepends=True)[:3]))
    s = run_batch(src, out, config=load_config(), options=_opts())
    assert s["counts"]["processed"] == 0 and len(_lines(out)) == 4


def test_cli_batch_export_stats_on_fakes(tmp_path):
    import subprocess

    src = _make(tmp_path / "src", ["a.wav", "b.wav", "bad.wav"])
    out = tmp_path / "out"
    # the CLI has no switch for a fake work function; drive the library, then the read-side commands
    run_batch(src, out, config=load_config(), options=_opts())
    root = HERE.parent
    p = subprocess.run([sys.executable, "-m", "pipeline.cli", "export", str(out), "--format", "csv"],
                       capture_output=True, text=True, cwd=root)
    assert p.returncode == 0, p.stderr
    assert (out / "export" / "calls.csv").read_text().count("\n") == 4
    p = subprocess.run([sys.executable, "-m", "pipeline.cli", "stats", str(out), "--plot", str(tmp_path / "plots")],
                       capture_output=True, text=True, cwd=root)
    assert p.returncode == 0, p.stderr
    assert "2 ok calls (of 3)" in p.stdout and (tmp_path / "plots" / "flag_rates.png").is_file()
    p = subprocess.run([sys.executable, "-m", "pipeline.cli", "batch", str(tmp_path / "nothing"), "--out", str(out)],
                       capture_output=True, text=True, cwd=root)
    assert p.returncode == 2 and "not found" in p.stderr


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_or_duplicates_a_call(tmp_path):
    """kill -9 the batch (parent only) at random moments, five times; the sixth run completes."""
    import random
    import signal
    import subprocess
    import time

    src = _make(tmp_path / "src", [f"c{i:02d}.wav" for i in range(30)] + ["bad.wav"])
    out = tmp_path / "out"
    script = ("import sys; from pipeline.batch.runner import run_batch, BatchOptions; "
              "from pipeline.config import load_config; "
              "s = run_batch(sys.argv[1], sys.argv[2], config=load_config(), options=BatchOptions("
              "workers=2, work='batch_fakes:fake_work', warm=False)); sys.exit(s['exit_code'])")
    env = {**os.environ, "CALLQA_FAKE_SLEEP": "0.3"}
    rng = random.Random(3)
    for _ in range(5):
        p = subprocess.Popen([sys.executable, "-c", script, str(src), str(out)], cwd=HERE.parent, env=env)
        time.sleep(rng.uniform(1.0, 4.0))
        p.send_signal(signal.SIGKILL)
        p.wait()
        jl = out / "records.jsonl"
        if jl.exists():  # whatever made it to the file is whole lines
            assert all(json.loads(line) for line in jl.read_text().splitlines())
    p = subprocess.run([sys.executable, "-c", script, str(src), str(out)], cwd=HERE.parent, env=env, timeout=120)
    assert p.returncode == EXIT_CALL_ERRORS  # bad.wav
    recs = _lines(out)
    ids = [r["call_id"] for r in recs]
    assert len(ids) == 31 and len(set(ids)) == 31
    assert sum(r["status"] == "ok" for r in recs) == 30
    conn = sqlite3.connect(out / "callqa.db")
    done = dict(conn.execute("SELECT call_id, COUNT(*) FROM attempts WHERE outcome IN ('ok','error') GROUP BY call_id"))
    assert done == {cid: 1 for cid in ids}  # every call completed exactly once over six runs
    # killed runs that had stored calls (a kill during start-up may leave no run row at all)
    cut = conn.execute("SELECT COUNT(DISTINCT a.run_id) FROM attempts a JOIN runs r USING (run_id)"
                       " WHERE r.finished_at IS NULL").fetchone()[0]
    assert cut >= 2


def test_sigterm_stops_cleanly_with_exit_130_and_a_rerun_finishes(tmp_path):
    import signal
    import subprocess
    import time

    src = _make(tmp_path / "src", [f"c{i:02d}.wav" for i in range(12)])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pipeline.cli", "batch", str(src), "--out", str(out), "-w", "2", "-q",
           "--work", "batch_fakes:fake_work", "--json"]
    env = {**os.environ, "CALLQA_FAKE_SLEEP": "0.5"}
    p = subprocess.Popen(cmd, cwd=HERE.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "records.jsonl").exists() or not (out / "records.jsonl").read_text().strip():
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["exit_code"] == 130
    assert 1 <= summary["counts"]["ok"] < 12
    p = subprocess.run(cmd, cwd=HERE.parent, env={**env, "CALLQA_FAKE_SLEEP": "0.02"}, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == EXIT_OK, p.stderr
    assert json.loads(p.stdout)["counts"]["skipped"] == summary["counts"]["ok"]
    assert sorted(r["call_id"] for r in _lines(out)) == [f"c{i:02d}" for i in range(12)]

"""Bad recordings get error records a QA lead understands; good ones still complete; the exit code tells."""

from __future__ import annotations

import json
import shutil

import numpy as np
import soundfile as sf

from conftest import FIXTURES, read_records, run_cli
from pipeline.record import validate_record

BAD = {  # file name -> (error kind, words the message must contain)
    "empty.wav": ("empty", "0 bytes"),
    "truncated_header.wav": ("decode_error", "corrupt"),
    "random_bytes.wav": ("decode_error", "not a recording"),
    "notes.mp3": ("decode_error", "could not read"),
    "half_second.wav": ("too_short", "0.50 s"),
    "digital_silence.wav": ("silent", "silent"),
    "three_channels.wav": ("unsupported_format", "3 channels"),
}


def make_bad_files(folder):
    (folder / "empty.wav").write_bytes(b"")
    (folder / "truncated_header.wav").write_bytes(b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00")
    (folder / "random_bytes.wav").write_bytes(bytes(np.random.default_rng(3).integers(0, 256, 50000, dtype=np.uint8)))
    (folder / "notes.mp3").write_text("These are my notes about the call, not audio.\n" * 50)
    sf.write(folder / "half_second.wav", 0.2 * np.sin(np.arange(4000) / 5.0).astype(np.float32), 8000)
    sf.write(folder / "digital_silence.wav", np.zeros((8000 * 60, 2), dtype=np.int16), 8000)
    sf.write(folder / "three_channels.wav", 0.1 * np.ones((16000, 3), dtype=np.float32), 8000)


def test_folder_mixing_good_and_bad_files(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "nested").mkdir(parents=True)
    make_bad_files(inbox)
    shutil.copy(FIXTURES / "hold_dead_air.flac", inbox / "nested" / "good_call.flac")
    (inbox / "README.txt").write_text("not a recording, and not an audio extension: skipped when searching a folder")
    out = tmp_path / "out"

    proc = run_cli("analyze", str(inbox), "--out", str(out), "--quiet")

    assert proc.returncode == 1, proc.stdout + proc.stderr  # documented: 1 = some calls failed
    records = {r["call_id"]: r for r in read_records(out)}
    assert len(records) == len(BAD) + 1  # exactly one line per recording, none lost, none doubled
    assert records["good_call"]["status"] == "ok"
    for name, (kind, words) in BAD.items():
        rec = records[name.rsplit(".", 1)[0]]
        validate_record(rec)
        assert rec["status"] == "error" and rec["error"]["kind"] == kind, rec["error"]
        assert words.lower() in rec["error"]["message"].lower(), rec["error"]["message"]
        assert (out / "calls" / rec["call_id"] / "record.json").is_file()
    assert f"1 ok, {len(BAD)} failed" in proc.stdout
    assert "FAILED empty [empty]" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == len(BAD) and {f["kind"] for f in summary["failures"]} >= {"empty", "silent"}


def test_missing_file_is_an_error_record_not_a_crash(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("analyze", str(tmp_path / "nope.wav"), "--out", str(out), "--quiet")
    assert proc.returncode == 1
    [rec] = read_records(out)
    assert rec["error"]["kind"] == "not_found"


def test_bad_usage_exits_2_and_no_input_exits_3(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[talk]\ndead_air = 3\n")
    proc = run_cli("analyze", str(FIXTURES), "--out", str(tmp_path / "o"), "--config", str(cfg))
    assert proc.returncode == 2 and "dead_air" in proc.stderr
    proc = run_cli("analyze", str(FIXTURES), "--out", str(tmp_path / "o"), "--channels", "agent=middle")
    assert proc.returncode == 2
    (tmp_path / "empty_dir").mkdir()
    proc = run_cli("analyze", str(tmp_path / "empty_dir"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 3 and "no recordings" in proc.stderr


def test_duplicate_stems_do_not_overwrite_each_other(tmp_path):
    for d in ("monday", "tuesday"):
        (tmp_path / d).mkdir()
        shutil.copy(FIXTURES / "formats" / "tone_gsm610.wav", tmp_path / d / "call.wav")
    out = tmp_path / "out"
    run_cli("analyze", str(tmp_path / "monday"), str(tmp_path / "tuesday"), "--out", str(out), "--quiet")
    ids = [r["call_id"] for r in read_records(out)]
    assert sorted(ids) == ["call__monday", "call__tuesday"]

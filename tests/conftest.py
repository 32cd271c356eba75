"""Shared fixtures: the committed calls, analysed once per test session with the real models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "audio_fixtures"
CORE_CALLS = ("upsell_monologue.wav", "hold_dead_air.flac", "mono_support.flac")


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real ``callqa`` entry point in a subprocess (as a user would)."""
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def read_records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


@pytest.fixture(scope="session")
def core_run(tmp_path_factory) -> dict:
    """``callqa analyze`` over the three core fixtures, once: {records, truth, out, proc}."""
    out = tmp_path_factory.mktemp("core_run")
    proc = run_cli("analyze", *(str(FIXTURES / c) for c in CORE_CALLS), "--out", str(out), "--quiet")
    records = {r["call_id"]: r for r in read_records(out)}
    truth = {Path(c).stem: json.loads((FIXTURES / f"{Path(c).stem}.truth.json").read_text()) for c in CORE_CALLS}
    return {"records": records, "truth": truth, "out": out, "proc": proc}

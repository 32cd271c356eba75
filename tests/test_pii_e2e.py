"""End to end: a generated call where the customer reads a card number, through the real pipeline.

No digit of the card may reach records.jsonl, record.json or transcript.vtt (written or as words),
and the ``--redact-audio`` copy must hold no speech over the card (only the 1 kHz tone, or silence).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

from conftest import FIXTURES, read_records, run_cli
from pipeline.config import load_config
from pipeline.process import analyze_file
from pipeline.record import validate_record
from pipeline.redact_audio import TONE_HZ, write_redacted_audio

CALL = FIXTURES / "pii" / "card_payment.flac"
TRUTH = json.loads((FIXTURES / "pii" / "card_payment.truth.json").read_text())
# The script holds no number but the card: any of these in the outputs' text is a leak.
NUMBER_WORDS = re.compile(
    r"\b(zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|double)\b", re.I)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pii_run")
    proc = run_cli("analyze", str(CALL), "--out", str(out), "--redact-audio", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return out


def _texts(rec: dict) -> list[str]:
    """The transcript text of a record: segment text and words. (Flag evidence also holds measured
    numbers such as "15 times"; it is covered by the card-digit scan over whole files below.)"""
    out = []
    for seg in rec.get("segments") or []:
        out.append(seg.get("text") or "")
        out += [w["text"] for w in seg.get("words") or []]
    return out


def _assert_no_card(texts: list[str], where: str) -> None:
    for t in texts:
        clean = re.sub(r"\[[A-Z]+\]", "", t)
        assert not re.search(r"\d", clean), f"{where}: digit left in {t!r}"
        assert not NUMBER_WORDS.search(clean), f"{where}: number word left in {t!r}"


def _card_groups(blob: str) -> None:
    card = TRUTH["card"]
    for i in range(0, len(card) - 3):
        assert card[i:i + 4] not in blob.replace(" ", "").replace("-", "").replace(",", ""), card[i:i + 4]


def test_no_digit_of_the_card_in_any_output(cli_run):
    out = cli_run
    recs = read_records(out)
    assert len(recs) == 1 and recs[0]["status"] == "ok"
    rec = recs[0]
    validate_record(rec)
    pii = rec["metrics"]["pii"]
    assert pii["counts"]["card"] + pii["counts"]["number"] >= 1  # the card was found (as [CARD] or [NUMBER])
    _assert_no_card(_texts(rec), "records.jsonl")

    call_dir = out / "calls" / rec["call_id"]
    record_json = json.loads((call_dir / "record.json").read_text())
    _assert_no_card(_texts(record_json), "record.json")
    vtt = (call_dir / "transcript.vtt").read_text()
    cues = [ln for ln in vtt.splitlines() if ln.startswith("<v ")]
    assert cues, vtt
    _assert_no_card(cues, "transcript.vtt")
    assert any("[CARD]" in c or "[NUMBER]" in c for c in cues)
    # Nowhere in the files, in any field, as a 4-digit stretch of the card.
    for f in (out / "records.jsonl", call_dir / "record.json", call_dir / "transcript.vtt"):
        text_only = re.sub(r'"(sha256|config_hash|path|hash)":\s*"[^"]*"', "", f.read_text())
        text_only = re.sub(r"\d+\.\d+", "", text_only)  # times
        _card_groups(text_only)


def test_a_redacted_span_covers_the_spoken_card(cli_run):
    rec = read_records(cli_run)[0]
    truth = TRUTH["card_span"]
    spans = [s for s in rec["metrics"]["pii"]["spans"] if s["type"] in ("card", "number")]
    covered = sum(max(0.0, min(s["end"], truth["end"]) - max(s["start"], truth["start"])) for s in spans)
    assert covered >= 0.8 * (truth["end"] - truth["start"])
    assert all(s["role"] == "customer" and s["channel"] == TRUTH["customer_channel"] for s in spans)


def _non_tone_db(x: np.ndarray, sr: int) -> np.ndarray:
    """Per 30 ms frame: level (dBFS) of everything but the 1 kHz tone band."""
    hop = int(0.03 * sr)
    fr = x[: len(x) // hop * hop].reshape(-1, hop)
    spec = np.abs(np.fft.rfft(fr * np.hanning(hop), axis=1)) ** 2
    f = np.fft.rfftfreq(hop, 1 / sr)
    tone = spec[:, (f > TONE_HZ - 150) & (f < TONE_HZ + 150)].sum(axis=1)
    share = (spec.sum(axis=1) - tone) / (spec.sum(axis=1) + 1e-20)
    level = 10 * np.log10(np.mean(fr ** 2, axis=1) + 1e-12)
    return level + 10 * np.log10(np.clip(share, 1e-12, None))


def test_redacted_audio_has_no_speech_over_the_card(cli_run):
    rec = read_records(cli_run)[0]
    red = cli_run / "calls" / rec["call_id"] / "redacted.flac"
    assert red.is_file()
    y, sr = sf.read(red, dtype="float32")
    x, sr0 = sf.read(CALL, dtype="float32")
    assert sr == sr0 == TRUTH["sample_rate"] and y.shape == x.shape
    a, b = int(TRUTH["card_span"]["start"] * sr), int(TRUTH["card_span"]["end"] * sr)
    ch = TRUTH["customer_channel"]
    assert _non_tone_db(x[a:b, ch], sr).max() > -30  # the original has speech there
    assert _non_tone_db(y[a:b, ch], sr).max() < -50  # the copy has only the tone
    np.testing.assert_allclose(y[:, TRUTH["agent_channel"]], x[:, TRUTH["agent_channel"]], atol=1e-4)


def test_analyze_file_with_silence_mode_and_raw_text_off(tmp_path):
    config = load_config()
    rec = analyze_file(CALL, config=config)
    assert rec.status == "ok"
    d = rec.to_dict()
    _assert_no_card(_texts(d), "analyze_file record")
    res = write_redacted_audio(CALL, tmp_path / "redacted.flac", d["metrics"]["pii"]["spans"], mode="silence",
                               pad_s=config.pii.audio_pad_s)
    y, sr = sf.read(res.path, dtype="float32")
    a, b = int(TRUTH["card_span"]["start"] * sr), int(TRUTH["card_span"]["end"] * sr)
    level = 20 * np.log10(np.abs(y[a:b, TRUTH["customer_channel"]]).max() + 1e-12)
    assert level < -60


def test_sqlite_store_holds_no_card_digit(cli_run, tmp_path):
    """The review store gets the same redacted record: no stretch of the card in the database file."""
    from pipeline.store import connect, load_record, save_record, transaction

    rec = read_records(cli_run)[0]
    db = tmp_path / "callqa.sqlite"
    conn = connect(db)
    with transaction(conn):
        save_record(conn, rec)
    back = load_record(conn, rec["call_id"])
    conn.close()
    _assert_no_card(_texts(back), "sqlite")
    raw = db.read_bytes().decode("latin-1")
    raw = re.sub(r"[0-9a-f]{16,}", "", raw)  # hashes (sha256, config hash) are not text
    card = TRUTH["card"]
    for i in range(0, len(card) - 3):
        assert card[i:i + 4] not in re.sub(r"\d+\.\d+", "", raw).replace(" ", "").replace(",", ""), card[i:i + 4]

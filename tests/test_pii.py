"""PII redaction on word timelines: card numbers written/spoken/split, Luhn, context, other types, metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline.analysis.pii import PII_TYPES, PiiOptions, luhn_ok, redact_text, redact_timeline
from pipeline.config import load_config
from pipeline.record import CallRecord, validate_record
from pipeline.timeline import Speaker, Timeline, Turn, Word

CASES = Path(__file__).resolve().parent / "pii_cases" / "cards.jsonl"
HELDOUT = CASES.with_name("cards_heldout.jsonl")  # written after tuning, scored once unchanged (see BENCHMARKS)
ALL = PiiOptions(types=PII_TYPES)
NUMBER_WORDS = re.compile(
    r"\b(zero|oh|nought|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|double|triple)\b",
    re.I)


def call(*turns: tuple, word_s: float = 0.35) -> Timeline:
    """A two-party timeline from ``(role, text[, pause_before_s])``; agent on channel 1, customer on 0."""
    t, out = 0.0, []
    for tr in turns:
        role, text = tr[0], tr[1]
        t += tr[2] if len(tr) > 2 else 0.6
        start, words = t, []
        for i, w in enumerate(text.split()):
            words.append(Word(t, t + word_s - 0.05, (" " if i else "") + w, 0.9))
            t += word_s
        out.append(Turn("A" if role == "agent" else "C", start, t, role, tuple(words)))
    return Timeline(t + 1.0, (Speaker("A", "agent", 1), Speaker("C", "customer", 0)), tuple(out))


def text_of(tl: Timeline) -> str:
    return " / ".join(t.transcript for t in tl.turns)


def spans(result, type_=None):
    return [s for s in result.metrics["spans"] if type_ is None or s["type"] == type_]


def load_cases(path: Path = CASES) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- the labelled card cases


@pytest.mark.parametrize("path", [CASES, HELDOUT], ids=["cases", "heldout"])
def test_case_file_is_labelled_consistently(path):
    cases = load_cases(path)
    assert len(cases) >= (40 if path == CASES else 20)
    assert len({c["id"] for c in cases}) == len(cases)
    for c in cases:
        assert c["label"] in ("card", "number", "none"), c["id"]
        if c["label"] == "card":
            assert c["complete"] and luhn_ok(c["card"]), c["id"]  # a complete card passes Luhn by definition
        if c["label"] == "number":
            assert not luhn_ok(c["card"]), c["id"]


@pytest.mark.parametrize("path", [CASES, HELDOUT], ids=["cases", "heldout"])
def test_card_detection_recall_and_precision_on_written_cases(path):
    tp = fp = fn = 0
    misses = []
    for c in load_cases(path):
        red, res = redact_timeline(call(*c["turns"]), PiiOptions())
        found = bool(spans(res, "card"))
        if c["label"] == "card":
            tp += found
            fn += not found
            if not found:
                misses.append(c["id"])
        elif found:
            fp += 1
            misses.append(c["id"])
    recall, precision = tp / (tp + fn), tp / max(1, tp + fp)
    assert recall == 1.0, misses
    assert precision >= 0.95, misses


@pytest.mark.parametrize("case", [c for p in (CASES, HELDOUT) for c in load_cases(p)
                                  if c["label"] in ("card", "number")],
                         ids=lambda c: c["id"])
def test_no_digit_of_a_card_survives(case):
    """Every digit of the card leaves the text, written or as words (the cases hold no other numbers
    on the turns that read the card except the expiry and code, which are redacted too)."""
    tl = call(*case["turns"])
    red, _ = redact_timeline(tl, PiiOptions())
    for before, after in zip(tl.turns, red.turns):
        if before.role == "customer" or any(ch.isdigit() for ch in before.transcript):
            leftover = re.sub(r"\[[A-Z]+\]", "", after.transcript)
            if before.transcript != after.transcript:
                assert not re.search(r"\d", leftover), (case["id"], after.transcript)
                assert not NUMBER_WORDS.search(leftover), (case["id"], after.transcript)


# ---------------------------------------------------------------- the forms named in the issue


def test_written_grouped_digits_collapse_into_one_placeholder_spanning_their_times():
    tl = call(("agent", "Can I have the card number?"), ("customer", "Sure, it's 4111 1111 1111 1111."))
    red, res = redact_timeline(tl, PiiOptions())
    cust = red.turns[1]
    assert cust.transcript == "Sure, it's [CARD]."
    ph = [w for w in cust.words if "[CARD]" in w.text]
    assert len(ph) == 1
    orig = tl.turns[1].words
    assert ph[0].start == orig[2].start and ph[0].end == orig[5].end
    assert res.metrics["counts"]["card"] == 1
    s = spans(res, "card")[0]
    assert s["role"] == "customer" and s["speaker"] == "C" and s["channel"] == 0
    assert s["start"] <= orig[2].start and s["end"] >= orig[5].end


def test_spoken_digits_with_oh_double_and_fillers():
    tl = call(("agent", "What's the card number?"),
              ("customer", "uh four oh one two, double eight double eight, um, double eight double eight, "
                           "one eight eight one"))
    red, res = redact_timeline(tl, PiiOptions())
    assert red.turns[1].transcript == "uh [CARD]"
    assert res.metrics["counts"]["card"] == 1


def test_spoken_pairs_forty_one_eleven():
    said = "my visa is forty one eleven eleven eleven eleven eleven eleven eleven"
    red, res = redact_timeline(call(("customer", said)), PiiOptions())
    assert red.turns[0].transcript == "my visa is [CARD]"


def test_number_split_across_two_turns_of_the_same_speaker():
    tl = call(("agent", "Card number please."), ("customer", "4556 7375"), ("agent", "Mm-hmm."),
              ("customer", "8689 9855"))
    red, res = redact_timeline(tl, PiiOptions())
    assert [t.transcript for t in red.turns] == ["Card number please.", "[CARD]", "Mm-hmm.", "[CARD]"]
    assert res.metrics["counts"]["card"] == 1  # one card, two placeholder spans
    assert len(spans(res, "card")) == 2


def test_pieces_after_a_long_pause_are_rejoined_only_when_luhn_valid():
    tl = call(("agent", "Card number please."), ("customer", "3566 0020"), ("agent", "And the rest?", 3.0),
              ("customer", "2036 0505", 3.0))
    red, res = redact_timeline(tl, PiiOptions())
    assert res.metrics["counts"]["card"] == 1
    assert "2036" not in text_of(red) and "3566" not in text_of(red)


def test_sixteen_digits_failing_luhn_is_not_a_card_but_a_number_unless_labelled():
    assert not luhn_ok("4111111111111112")
    red, res = redact_timeline(call(("agent", "Which card?"), ("customer", "4111 1111 1111 1112")), PiiOptions())
    assert red.turns[1].transcript == "[NUMBER]" and res.metrics["counts"]["card"] == 0
    assert res.metrics["counts"]["number"] == 1
    # Unlabelled, it is still redacted (ASR may have garbled the word "card" too) ...
    red, res = redact_timeline(call(("customer", "the number on the letter is 1234 5678 9012 3456")), PiiOptions())
    assert red.turns[0].transcript == "the number on the letter is [NUMBER]" and res.metrics["counts"]["card"] == 0
    # ... but labelled as something else it stays: order/reference numbers are what a reviewer needs to see.
    red, res = redact_timeline(call(("customer", "the reference number is 1234 5678 9012 3456")), PiiOptions())
    assert "1234 5678 9012 3456" in red.turns[0].transcript and res.metrics["total"] == 0


def test_order_number_is_not_a_card_even_when_luhn_valid():
    assert luhn_ok("4539148803436467")
    red, res = redact_timeline(call(("agent", "What's the order number?"), ("customer", "It's 4539 1488 0343 6467.")),
                               PiiOptions())
    assert "4539 1488 0343 6467" in red.turns[1].transcript
    assert res.metrics["total"] == 0


def test_security_code_and_expiry_near_card_talk():
    tl = call(("agent", "Card number?"), ("customer", "4242 4242 4242 4242"), ("agent", "And the expiry date?"),
              ("customer", "oh four twenty eight"), ("agent", "And the three digit code on the back?"),
              ("customer", "seven three one"))
    red, res = redact_timeline(tl, PiiOptions())
    assert [t.transcript for t in red.turns[1::2]] == ["[CARD]", "[EXPIRY]", "[CVV]"]
    assert res.metrics["counts"] == {"card": 1, "number": 0, "cvv": 1, "expiry": 1, "ssn": 0}


def test_short_numbers_without_card_talk_stay():
    red, res = redact_timeline(call(("customer", "I called 3 times and waited 45 minutes, since 2019.")), PiiOptions())
    assert res.metrics["total"] == 0 and "45" in red.turns[0].transcript


def test_oh_as_an_exclamation_is_not_a_zero():
    red, res = redact_timeline(call(("agent", "your card number?"), ("customer", "oh one moment please")),
                               PiiOptions())
    assert red.turns[1].transcript == "oh one moment please"


# ---------------------------------------------------------------- the other types


def test_ssn_redacted_by_default():
    red, res = redact_timeline(call(("agent", "And your social security number?"), ("customer", "123-45-6789")),
                               PiiOptions())
    assert red.turns[1].transcript == "[SSN]" and res.metrics["counts"]["ssn"] == 1
    red, _ = redact_timeline(call(("agent", "the last four of your social?"), ("customer", "six seven eight nine")),
                             PiiOptions())
    assert red.turns[1].transcript == "[SSN]"


def test_names_and_emails_only_when_enabled():
    tl = call(("customer", "Hi, my name is John Smith and my email is john dot smith at gmail dot com."),
              ("customer", "Or jsmith@example.org for work."))
    red, res = redact_timeline(tl, PiiOptions())
    assert red.turns[0].transcript == tl.turns[0].transcript and res.metrics["total"] == 0
    red, res = redact_timeline(tl, PiiOptions(types=("card", "name", "email")))
    assert red.turns[0].transcript == "Hi, my name is [NAME] and my email is [EMAIL]."
    assert red.turns[1].transcript == "Or [EMAIL] for work."
    assert res.metrics["counts"] == {"card": 0, "name": 1, "email": 2}


def test_spacy_finds_names_the_rule_does_not():
    red, res = redact_timeline(call(("agent", "Thank you, Mr. Patel, I will pass this to Maria Gonzalez.")),
                               PiiOptions(types=("name",)))
    assert "Patel" not in red.turns[0].transcript and "Gonzalez" not in red.turns[0].transcript
    assert res.metrics["counts"]["name"] == 2


@pytest.mark.parametrize("text,expected", [
    ("my phone number is 555-867-5309", "my phone number is [PHONE]"),
    ("you can call me back on five five five, eight six seven, five three oh nine",
     "you can call me back on [PHONE]"),
    ("my date of birth is January 5th, 1980.", "my date of birth is [DOB]."),
    ("I was born oh one oh five nineteen eighty", "I was born [DOB]"),
    ("I live at 1234 Elm Street, apartment 5, Springfield 62704.", "I live at [ADDRESS]."),
    ("the card expires December 2027", "the card expires [EXPIRY]"),
])
def test_other_types_when_enabled(text, expected):
    assert redact_text(text, ALL) == expected


@pytest.mark.parametrize("text", [
    "I have been waiting 2 hours on the main road",
    "my appointment is on January 5th",
    "at the end of the day it is fine",
    "the order number is 555 867 5309",
])
def test_other_types_do_not_fire_on_ordinary_talk(text):
    assert redact_text(text, ALL) == text


# ---------------------------------------------------------------- metrics, options, record


def test_metrics_hold_counts_and_spans_but_no_raw_text():
    tl = call(("agent", "Card number and name?"), ("customer", "4111 1111 1111 1111, Jane Doe"))
    red, res = redact_timeline(tl, PiiOptions(types=("card", "name")))
    m = res.metrics
    assert m["enabled"] and m["types"] == ["card", "name"] and m["total"] == 2 and not m["raw_text_kept"]
    assert {s["type"] for s in m["spans"]} == {"card", "name"}
    for s in m["spans"]:
        assert set(s) <= {"type", "role", "speaker", "channel", "start", "end"}
    blob = json.dumps(m)
    assert "4111" not in blob and "Jane" not in blob


def test_keep_raw_text_reports_spans_but_leaves_text():
    tl = call(("agent", "Card number?"), ("customer", "4111 1111 1111 1111"))
    red, res = redact_timeline(tl, PiiOptions(keep_raw_text=True))
    assert red.turns[1].transcript == "4111 1111 1111 1111"
    assert res.metrics["raw_text_kept"] and res.metrics["counts"]["card"] == 1 and res.metrics["spans"]


def test_disabled_changes_nothing():
    tl = call(("customer", "card 4111 1111 1111 1111"))
    red, res = redact_timeline(tl, PiiOptions(enabled=False))
    assert red == tl and res.metrics["enabled"] is False


def test_text_only_turns_are_redacted_too():
    tl = Timeline(5.0, (Speaker("C", "customer", 0),),
                  (Turn("C", 0.0, 4.0, "customer", (), "my card is 4111 1111 1111 1111"),))
    red, res = redact_timeline(tl, PiiOptions())
    assert red.turns[0].transcript == "my card is [CARD]" and red.turns[0].words == ()


def test_unknown_type_and_bad_values_are_named():
    with pytest.raises(ValueError, match="pii.types"):
        PiiOptions(types=("card", "passport"))
    with pytest.raises(ValueError, match="pii.audio_mode"):
        PiiOptions(audio_mode="beep")
    with pytest.raises(ValueError, match="pii.digit_gap_s"):
        PiiOptions(digit_gap_s=-1)


def test_default_config_redacts_payment_data_and_ssn_only():
    cfg = load_config()
    assert set(cfg.pii.types) == {"card", "number", "cvv", "expiry", "ssn"}
    assert cfg.pii.enabled and not cfg.pii.keep_raw_text


def test_redacted_record_validates_and_round_trips():
    from pipeline.process import run_analyses

    tl = call(("agent", "Card number please?"), ("customer", "4111 1111 1111 1111"))
    red, res = redact_timeline(tl, PiiOptions())
    metrics, flags = run_analyses(red, load_config(), pii=res)
    rec = CallRecord(call_id="c1", status="ok", source={"path": "x.wav", "sha256": "0" * 64, "format": "wav",
                                                          "codec": "pcm_s16le", "duration_s": tl.duration,
                                                          "sample_rate": 8000, "channels": 2, "size_bytes": 1},
                     timeline=red, metrics=metrics, flags=flags)
    d = rec.to_dict()
    validate_record(d)
    assert d["metrics"]["pii"]["counts"]["card"] == 1
    back = CallRecord.from_dict(json.loads(json.dumps(d)))
    assert back.timeline.turns[1].transcript == "[CARD]"
    assert "4111" not in json.dumps(d)
    bad = json.loads(json.dumps(d))
    bad["metrics"]["pii"]["spans"][0]["text"] = "4111"  # raw text in a span breaks the contract
    with pytest.raises(Exception):
        validate_record(bad)


# ---------------------------------------------------------------- what tiny.en really writes for read-out cards


@pytest.mark.parametrize("asr_text", [
    "5 -1 -O -5, 1 -O -5, 1 -O -5, 1 -O -5, 1 -O -O.",  # hyphen-glued digits, "O" for zero
    "41 ,111 ,111 ,111 ,111 ,111 ,111 ,111",  # comma-glued groups, regrouped by the ASR
    "Four niera 1 ,2 ,8 ,8 ,8 ,8 ,8 ,8 ,8 ,8 ,8 ,8 ,8 ,1 ,8 ,8 ,1",  # a misheard word splits off the first digit
    "five one all five one all five one. okay. five one all five one all five one all",  # "oh" heard as "all"
    "Question to, zero, zero, zero, zero 0. No. Zero, zero, zero, zero, zero, zero, zero, zero, five.",
    "five one, all the five. one all, five one. okay. five one all the five one and all, five one all",
])
def test_asr_renderings_of_a_read_card_leave_no_digit(asr_text):
    red, res = redact_timeline(call(("agent", "Can I have the card number please?"), ("customer", asr_text)),
                               PiiOptions())
    left = re.sub(r"\[[A-Z]+\]", "", red.turns[1].transcript)
    assert not re.search(r"\d", left) and not NUMBER_WORDS.search(left), red.turns[1].transcript
    assert res.metrics["counts"]["card"] + res.metrics["counts"]["number"] >= 1


def test_a_stray_number_after_a_card_keeps_the_card_a_card():
    red, res = redact_timeline(call(("customer", "my card is 4111 1111 1111 1111 and I have 2 kids")), PiiOptions())
    assert red.turns[0].transcript == "my card is [CARD] and I have 2 kids"


def test_span_reaches_the_turn_edge_and_silent_gaps():
    tl = call(("agent", "Card number?"), ("customer", "it is 4111 1111 1111 1111"))
    last = tl.turns[1]
    from dataclasses import replace

    longer = replace(last, end=last.end + 1.2)  # speech measured past the last word's ASR end time
    tl = Timeline(tl.duration + 2, tl.speakers, (tl.turns[0], longer))
    _, res = redact_timeline(tl, PiiOptions())
    s = spans(res, "card")[0]
    assert s["end"] == pytest.approx(longer.end, abs=1e-3)
    words = longer.words
    assert words[1].end - 1e-3 <= s["start"] <= words[2].start  # into the gap before "4111", not over "is"


def test_spelled_out_names_are_redacted_whole():
    opts = PiiOptions(types=("name",))
    assert redact_text("sure, the first name is c h e r y l", opts) == "sure, the first name is [NAME]"
    assert redact_text("my name is a customer of yours", opts) == "my name is a customer of yours"

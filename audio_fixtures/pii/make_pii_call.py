#!/usr/bin/env python3
"""Generate the PII test call: the customer reads a card number aloud.

    python audio_fixtures/pii/make_pii_call.py      # rewrites card_payment.flac + card_payment.truth.json

Stereo 8 kHz FLAC, customer LEFT, agent RIGHT (espeak-ng voices, sox). The card number
is spoken as its own clip so ``card_payment.truth.json`` knows exactly where it is
(``card_span``): the end-to-end test checks that no digit of it reaches any output and
that the redacted audio has no speech over that span. The card (a Luhn-valid test
number) is the only number in the script, so any digit in the outputs' text is a leak.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
SR = 8000
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import make_fixtures  # noqa: E402  (audio_fixtures/make_fixtures.py)
VOICES = {"agent": "en-us+m3", "customer": "en-us+f3"}
CARD = "4556737586899855"  # a test number (Luhn-valid, Visa range); never a real card
WORDS = "zero one two three four five six seven eight nine".split()
CARD_SPOKEN = ", ".join(" ".join(WORDS[int(c)] for c in CARD[i:i + 4]) for i in range(0, 16, 4))

# (role, text, pause before); "CARD" marks the clip with the card number, right after the previous clip.
SCRIPT = [
    ("agent", "Thank you for calling Acme customer service. How can I help you?", 0.5),
    ("customer", "Hi, I want to pay my bill by credit card.", 0.6),
    ("agent", "Sure. Can I have the card number, please?", 0.6),
    ("customer", "Yes, it is", 0.7),
    ("customer", "CARD", 0.3),
    ("agent", "Thank you, the payment went through.", 0.8),
    ("customer", "Great, goodbye.", 0.6),
]


def speak(text: str, voice: str, speed: int = 150) -> np.ndarray:
    return make_fixtures.speak(text, voice, speed, rate=SR)  # the core fixtures' espeak-ng + trim, at 8 kHz


def main() -> None:
    t = 0.3
    placed, utterances, card_span = [], [], None
    for role, text, pause in SCRIPT:
        x = speak(CARD_SPOKEN if text == "CARD" else text, VOICES[role], speed=130 if text == "CARD" else 150)
        start = t + pause
        placed.append((role, start, x))
        end = start + len(x) / SR
        utterances.append({"role": role, "start": round(start, 3), "end": round(end, 3),
                           "text": "<card number>" if text == "CARD" else text})
        if text == "CARD":
            card_span = {"start": round(start, 3), "end": round(end, 3)}
        t = end
    n = int((t + 0.8) * SR)
    audio = np.zeros((2, n), np.float32)
    for role, start, x in placed:
        ch = 0 if role == "customer" else 1
        i = int(start * SR)
        audio[ch, i:i + len(x)] += x
    audio += np.random.default_rng(11).normal(0, 10 ** (-80 / 20), audio.shape).astype(np.float32)
    dst = HERE / "card_payment.flac"
    sf.write(dst, audio.T, SR, subtype="PCM_16", format="FLAC")
    truth = {"card": CARD, "card_spoken": CARD_SPOKEN, "card_span": card_span, "customer_channel": 0,
             "agent_channel": 1, "sample_rate": SR, "duration_s": round(n / SR, 3), "utterances": utterances}
    (HERE / "card_payment.truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(f"wrote {dst.name} ({dst.stat().st_size // 1024} KB, {n / SR:.1f} s), card at {card_span}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generate the four sales-conduct calls in audio_fixtures/conduct/ (espeak-ng voices, sox).

    python audio_fixtures/conduct/make_conduct_fixtures.py

Stereo 8 kHz FLAC, agent on the LEFT channel (the pipeline default), customer on the
RIGHT, 20-40 s each, simple common words so tiny.en transcribes espeak speech well:

(a) refusal_then_pitch     the customer refuses an upgrade, the agent offers a concession -> refusal_then_continue
(b) refusal_respected      the customer refuses, the agent moves on                      -> no conduct flag
(c) customer_asks          the customer calls to buy the product                         -> no conduct flag
(d) pitch_before_fix       the agent pitches before fixing a double charge               -> pitch_before_resolution

Beside each call, ``<name>.truth.json`` (same layout as the core fixtures) lists the
utterances with their times and the conduct flags the script was written to produce,
with the refusal / pitch / reason lines they must quote. Uses the rendering helpers of
audio_fixtures/make_fixtures.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
from make_fixtures import SR, Line, speak, truth  # noqa: E402

NOISE_DBFS = -80.0  # faint line noise; quieter than the core fixtures' so the FLACs stay small (< 1 MB in all)


def render(lines: list[Line], *, tail: float = 0.8, speed: int | None = None) -> tuple[np.ndarray, list[dict]]:
    """Stereo at 16 kHz, agent LEFT, customer RIGHT; utterances with their true times."""
    t, placed, utterances = 0.5, [], []
    for ln in lines:
        x = speak(ln.text, VOICES[ln.role], speed or SPEED)
        start = max(0.0, t + ln.pause)
        placed.append((ln.role, start, x))
        utterances.append({"role": ln.role, "voice": VOICES[ln.role], "start": round(start, 3),
                           "end": round(start + len(x) / SR, 3), "text": ln.text})
        t = max(t, start + len(x) / SR)
    out = np.zeros((2, int((t + tail) * SR)), dtype=np.float32)
    for role, start, x in placed:
        i = int(start * SR)
        out[0 if role == "agent" else 1, i : i + len(x)] += x
    out += np.random.default_rng(11).normal(0, 10 ** (NOISE_DBFS / 20), out.shape).astype(np.float32)
    return out, utterances

# Wording and voices picked so tiny.en transcribes espeak speech well enough at 8 kHz (other voices
# turned "bill" into "wheel" and "I have" into "I can"); the rules were not changed to fit them.
VOICES = {"agent": "en-gb", "customer": "en-us+f3"}
SPEED = 130  # words per minute; espeak's default 175 is too fast for tiny.en

GREETING = "Thank you for calling. How can I help you?"
PROBLEM = "Hi, my internet is not working."
FIXED = [
    Line("customer", PROBLEM),
    Line("agent", "Okay, I have fixed it. It is working now."),
    Line("customer", "Yes, it works now. Thank you."),
]

CALLS = {
    "refusal_then_pitch": {
        "lines": [
            Line("agent", GREETING), *FIXED,
            Line("agent", "Would you like our premium plan? It is only ten dollars more a month."),
            Line("customer", "No thanks, I am not interested."),
            Line("agent", "Are you sure? It is only ten dollars more a month, and you get free movies."),
            Line("customer", "No. Goodbye."),
        ],
        "flags": [{"type": "refusal_then_continue", "refusal": 5, "pitch": 6}],
    },
    "refusal_respected": {
        "lines": [
            Line("agent", GREETING), *FIXED,
            Line("agent", "Can I tell you about our premium plan?"),
            Line("customer", "No thanks, not right now."),
            Line("agent", "No problem. Is there anything else I can help with?"),
            Line("customer", "No, that is all. Bye."),
        ],
        "flags": [],
    },
    "customer_asks": {
        "lines": [
            Line("agent", GREETING),
            Line("customer", "Hi, I want to buy the premium plan. How much is it?"),
            Line("agent", "It is forty dollars a month. Do you want it?"),
            Line("customer", "Yes please."),
            Line("agent", "Done. You are all set now."),
            Line("customer", "Okay, thank you."),
        ],
        "flags": [],
    },
    "pitch_before_fix": {
        "lines": [
            Line("agent", GREETING),
            Line("customer", PROBLEM),
            Line("agent", "Okay. You should get our premium plan. It is only ten dollars more a month."),
            Line("customer", "Can you just fix my internet please?"),
            Line("agent", "Okay, I have fixed it. It is working now."),
            Line("customer", "Okay, thank you."),
        ],
        "flags": [{"type": "pitch_before_resolution", "reason": 1, "pitch": 2}],
    },
}


def main() -> None:
    for name, spec in CALLS.items():
        audio, utt = render(spec["lines"])
        flags = []
        for f in spec["flags"]:
            item = {"type": f["type"]}
            for key in ("refusal", "pitch", "reason"):
                if key in f:
                    u = utt[f[key]]
                    item[key] = {"start": u["start"], "end": u["end"], "text": u["text"]}
            item["start"] = min(v["start"] for k, v in item.items() if isinstance(v, dict))
            item["end"] = max(v["end"] for k, v in item.items() if isinstance(v, dict))
            flags.append(item)
        meta = truth(utt, agent_channel=0, expected_flags=flags, duration=audio.shape[1] / SR)
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "mix.wav"
            sf.write(src, audio.T, SR, subtype="PCM_16")
            dst = HERE / f"{name}.flac"
            # 8-bit FLAC (dithered by sox): phone-grade, and a quarter of the 16-bit size.
            subprocess.run(["sox", str(src), "-b", "8", "-r", "8000", str(dst)], check=True)
        (HERE / f"{name}.truth.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(f"wrote {dst.name} ({dst.stat().st_size // 1024} KB, {audio.shape[1] / SR:.1f} s)")


if __name__ == "__main__":
    main()

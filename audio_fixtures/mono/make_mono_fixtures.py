"""Generate the mono diarization fixtures (espeak-ng voices, mixed to one 8 kHz channel).

    .venv/bin/python audio_fixtures/mono/make_mono_fixtures.py

Needs espeak-ng and sox on PATH. Writes beside this script:

- two_voices.flac    agent + customer (inbound support call), 2 speakers
- one_voice.flac     one speaker reading
- three_voices.flac  agent, customer, then a supervisor joins
- one_second.flac    1 s: a single short word
- silence.flac       5 s of near-silence (dither-level noise)
- truth.json         per file: speakers, roles, and the spoken turns with times

FLAC at 8 kHz (telephone band, as mono call recorders write) keeps them small.
The turn times in truth.json are where each utterance was placed in the mix.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RATE = 8000

VOICES = {
    "agent": "en-us+m3",
    "customer": "en-us+f4",
    "supervisor": "en-gb-x-rp+m7",
    "reader": "en-us+m1",
}

CALLS = {
    "two_voices": [
        ("agent", "Thank you for calling Acme support, this is Daniel. How can I help you today?"),
        ("customer", "Hi, I'm calling about my internet bill. It is much higher than last month."),
        ("agent", "I'm sorry to hear that. Can you give me the account number, please?"),
        ("customer", "Sure, it is four five six, seven eight nine."),
        ("agent", "Thank you. I see a late fee was added on the third. I can remove it for you."),
        ("customer", "That would be great, thank you so much."),
    ],
    "three_voices": [
        ("agent", "Thank you for calling Acme support, how can I help you?"),
        ("customer", "My order never arrived and I want a refund today."),
        ("agent", "I understand. Let me bring in my supervisor to help with that refund."),
        ("supervisor", "Hello, this is Margaret, the team supervisor. I have approved the full refund."),
        ("customer", "Thank you, I appreciate that very much."),
        ("supervisor", "You will see the money back on your card within five business days."),
    ],
    "one_voice": [
        ("reader", "The quarterly report shows steady growth in every region. "
                   "Sales in the north rose by ten percent, and the south kept pace with last year."),
    ],
    "one_second": [("reader", "Hello.")],
}


def say(voice: str, text: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)], check=True)
        with wave.open(str(out)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    # espeak pads each utterance with silence; trim it so the truth times are the speech.
    on = np.flatnonzero(np.abs(pcm) > 0.01)
    return pcm[on[0] : on[-1] + 1] if len(on) else pcm


def write_flac(path: Path, signal: np.ndarray) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        w16 = Path(tmp) / "x.wav"
        with wave.open(str(w16), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())
        subprocess.run(["sox", str(w16), "-C", "8", str(path)], check=True)


def build(turns: list[tuple[str, str]], rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    out = [np.zeros(int(0.5 * RATE), dtype=np.float32)]
    t = 0.5
    truth = []
    for i, (role, text) in enumerate(turns):
        pcm = say(VOICES[role], text) * 0.5
        truth.append({"speaker": role, "role": role if role != "reader" else "agent", "start": round(t, 3),
                      "end": round(t + len(pcm) / RATE, 3), "text": text})
        out.append(pcm)
        t += len(pcm) / RATE
        gap = 0.6 + 0.4 * rng.random() if i < len(turns) - 1 else 0.5
        out.append(np.zeros(int(gap * RATE), dtype=np.float32))
        t += int(gap * RATE) / RATE
    sig = np.concatenate(out)
    sig += rng.normal(0, 10 ** (-60 / 20), len(sig)).astype(np.float32)  # a line's noise floor, -60 dBFS
    return sig, truth


def main() -> None:
    rng = np.random.default_rng(7)
    truth: dict[str, dict] = {}
    for name, turns in CALLS.items():
        sig, spoken = build(turns, rng)
        if name == "one_second":
            sig = np.pad(sig, (0, max(0, RATE - len(sig))))[:RATE]
            spoken = [dict(t, end=min(t["end"], 1.0)) for t in spoken]
        write_flac(HERE / f"{name}.flac", sig)
        truth[name] = {"speakers": len({t["speaker"] for t in spoken}), "turns": spoken,
                       "duration_s": round(len(sig) / RATE, 3)}
    silence = rng.normal(0, 10 ** (-70 / 20), 5 * RATE).astype(np.float32)
    write_flac(HERE / "silence.flac", silence)
    truth["silence"] = {"speakers": 0, "turns": [], "duration_s": 5.0}
    (HERE / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")


if __name__ == "__main__":
    main()

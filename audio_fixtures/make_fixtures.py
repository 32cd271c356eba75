#!/usr/bin/env python3
"""Generate the core test calls in audio_fixtures/ with espeak-ng voices and sox.

    python audio_fixtures/make_fixtures.py            # rewrite the core fixtures + truth files

Each call is a script of utterances (role, text, pause before it). Every utterance
is spoken by espeak-ng (agent and customer have different voices), trimmed of
silence, placed on the call's clock and mixed onto the agent's or customer's leg
(stereo) or onto one track (mono). Beside each call, ``<name>.truth.json`` records
where every utterance really is, the true talk time per role and the flags the
script was written to produce. Needs: espeak-ng, sox, numpy, soundfile.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
SR = 16000
VOICES = {"agent": "en-us+m3", "customer": "en-us+f3", "customer2": "en-gb+m2"}
TRIM_DB = -45.0  # speech edge: first/last 10 ms frame above this level


@dataclass
class Line:
    role: str
    text: str
    pause: float = 0.6  # silence before this line starts (s); negative overlaps the previous line


def speak(text: str, voice: str, speed: int = 165, rate: int = SR) -> np.ndarray:
    """``text`` spoken by espeak-ng at ``rate`` Hz, trimmed of leading/trailing silence, at half scale."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, wav = Path(tmp) / "raw.wav", Path(tmp) / "resampled.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", str(rate), "-b", "16", "-c", "1", str(wav)], check=True)
        x, _ = sf.read(wav, dtype="float32")
    hop = rate // 100
    levels = 20 * np.log10(np.sqrt(np.mean(x[: len(x) // hop * hop].reshape(-1, hop) ** 2, axis=1)) + 1e-9)
    on = np.flatnonzero(levels > TRIM_DB)
    return x[on[0] * hop : (on[-1] + 1) * hop] * 0.5


def render(lines: list[Line], *, stereo: bool, agent_channel: int, tail: float = 1.0,
           speed: int = 165) -> tuple[np.ndarray, list[dict]]:
    t = 0.5
    placed, utterances = [], []
    for ln in lines:
        voice = VOICES[ln.role]
        x = speak(ln.text, voice, speed)
        start = max(0.0, t + ln.pause)
        placed.append((ln.role, start, x))
        role = "customer" if ln.role.startswith("customer") else ln.role
        utterances.append({"role": role, "voice": voice, "start": round(start, 3),
                           "end": round(start + len(x) / SR, 3), "text": ln.text})
        t = max(t, start + len(x) / SR)
    n = int((t + tail) * SR)
    out = np.zeros((2 if stereo else 1, n), dtype=np.float32)
    for role, start, x in placed:
        ch = 0 if not stereo else (agent_channel if role == "agent" else 1 - agent_channel)
        i = int(start * SR)
        out[ch, i : i + len(x)] += x
    rng = np.random.default_rng(7)
    out += rng.normal(0, 10 ** (-65 / 20), out.shape).astype(np.float32)  # a faint line-noise floor, as on real calls
    return out, utterances


def truth(utterances: list[dict], *, agent_channel: int | None, expected_flags: list[dict], duration: float,
          speakers: int = 2) -> dict:
    def union(role: str) -> float:
        ivs = sorted((u["start"], u["end"]) for u in utterances if u["role"] == role)
        total, cur = 0.0, None
        for s, e in ivs:
            if cur and s <= cur[1]:
                cur = (cur[0], max(cur[1], e))
            else:
                if cur:
                    total += cur[1] - cur[0]
                cur = (s, e)
        return total + (cur[1] - cur[0] if cur else 0.0)

    times = {r: round(union(r), 3) for r in ("agent", "customer")}
    total = sum(times.values())
    return {
        "agent_channel": {0: "left", 1: "right", None: None}[agent_channel],
        "speakers": speakers,
        "duration_s": round(duration, 3),
        "talk_time_s": times,
        "talk_ratio": {r: round(v / total, 4) for r, v in times.items()},
        "expected_flags": expected_flags,
        "utterances": utterances,
    }


def write(name: str, audio: np.ndarray, *, rate: int, encoding: list[str], suffix: str, meta: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "mix.wav"
        sf.write(src, audio.T, SR, subtype="PCM_16")
        dst = HERE / f"{name}{suffix}"
        subprocess.run(["sox", str(src), *encoding, "-r", str(rate), str(dst)], check=True)
    (HERE / f"{name}.truth.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {dst.name} ({dst.stat().st_size // 1024} KB, {audio.shape[1] / SR:.1f} s)")


PITCH_1 = ("While I have you, I would like to tell you about our platinum rewards card. It gives you three percent "
           "cash back on groceries and two percent on gas, with no annual fee for the first year. You also get "
           "travel insurance, purchase protection, and access to airport lounges around the world. "
           "The card is made of metal, it comes with a dedicated concierge line, and you can add family members "
           "at no extra cost.")
PITCH_2 = ("On top of that, if you move your balance from another bank, we offer zero percent interest for eighteen "
           "months, and a one time bonus of two hundred dollars after your first three purchases. Most of our "
           "customers save hundreds of dollars every year, and signing up only takes two minutes on the phone. "
           "I can also send you the full terms by email today, so you can compare it with the card you have now "
           "and see how much you would earn in the first year.")


def upsell_monologue() -> None:
    """Stereo 8 kHz µ-law, agent LEFT: card activation, then a ~50 s pitch broken only by a backchannel."""
    lines = [
        Line("agent", "Thank you for calling First City Bank customer service, my name is Sam, how can I help you today?"),
        Line("customer", "Hi, I need to activate my new card please."),
        Line("agent", "Sure, I can help with that. I have activated your card, it is ready to use now."),
        Line("customer", "Great, thank you."),
        Line("agent", PITCH_1, pause=0.7),
        Line("customer", "Uh huh.", pause=0.5),
        Line("agent", PITCH_2, pause=0.5),
        Line("customer", "No thanks, I am not interested.", pause=0.8),
        Line("agent", "No problem at all. Is there anything else I can help you with today?"),
        Line("customer", "No, that is all. Goodbye."),
        Line("agent", "Thank you for calling, have a nice day."),
    ]
    audio, utt = render(lines, stereo=True, agent_channel=0)
    pitch = [u for u in utt if u["text"] in (PITCH_1, PITCH_2)]
    flags = [{"type": "agent_monologue", "start": pitch[0]["start"], "end": pitch[1]["end"]}]
    write("upsell_monologue", audio, rate=8000, encoding=["-e", "u-law", "-b", "8"], suffix=".wav",
          meta=truth(utt, agent_channel=0, expected_flags=flags, duration=audio.shape[1] / SR))


def hold_dead_air() -> None:
    """Stereo 8 kHz FLAC, agent RIGHT: a billing question with a 15 s silence while the agent checks."""
    lines = [
        Line("agent", "Good morning, thank you for calling Northwind Energy, this is Alex, how can I help you?"),
        Line("customer", "Hello, I am calling about my last bill. It looks much higher than usual."),
        Line("agent", "I am sorry to hear that. Let me check your account, one moment please."),
        Line("agent", "Thank you for waiting. I can see a meter reading error on your bill.", pause=15.0),
        Line("customer", "Oh, okay. Can you fix it?"),
        Line("agent", "Yes, I have corrected it, and your new bill will arrive next week."),
        Line("customer", "That is great, thank you so much."),
        Line("agent", "You are welcome. Have a good day."),
    ]
    audio, utt = render(lines, stereo=True, agent_channel=1)
    gap_start = utt[2]["end"]
    gap_end = utt[3]["start"]
    flags = [{"type": "dead_air", "start": gap_start, "end": gap_end}]
    write("hold_dead_air", audio, rate=8000, encoding=["-b", "16"], suffix=".flac",
          meta=truth(utt, agent_channel=1, expected_flags=flags, duration=audio.shape[1] / SR))


def mono_support() -> None:
    """Mono 16 kHz FLAC: both voices on one track; the agent answers first."""
    lines = [
        Line("agent", "Hello, you have reached Bright Mobile support, my name is Sam, how can I help?"),
        Line("customer", "Hi, my phone stopped getting mobile data this morning."),
        Line("agent", "I am sorry about that. Could you restart the phone for me and tell me if the data comes back?"),
        Line("customer", "Okay, I have restarted it. Yes, it works now."),
        Line("agent", "Great. Is there anything else I can do for you today?"),
        Line("customer", "No, that is everything. Thank you."),
    ]
    audio, utt = render(lines, stereo=False, agent_channel=0)
    write("mono_support", audio, rate=16000, encoding=["-b", "16"], suffix=".flac",
          meta=truth(utt, agent_channel=None, expected_flags=[], duration=audio.shape[1] / SR))


def gsm_sample() -> None:
    """WAV with GSM 6.10 (what many older call recorders write); FFmpeg builds in PyAV decode but can't encode it."""
    dst = HERE / "formats" / "tone_gsm610.wav"
    dst.parent.mkdir(exist_ok=True)
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "gsm-full-rate", str(dst), "synth", "1.5", "sine",
                    "300-1200", "vol", "0.5"], check=True)
    print(f"wrote formats/{dst.name} ({dst.stat().st_size} bytes)")


if __name__ == "__main__":
    gsm_sample()
    upsell_monologue()
    hold_dead_air()
    mono_support()

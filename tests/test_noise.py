"""Background noise and line quality on calls built here (espeak-ng voices + numpy noise).

Every call is made at telephone bandwidth (8 kHz content in the 16 kHz pipeline
signal), with noise mixed at a known active-speech SNR, then run through the real
VAD (``pipeline.vad.detect_speech``) and ``analyze_noise`` with the default config.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from pipeline.analysis.noise import NoiseOptions, analyze_noise
from pipeline.audio import Audio, load_audio
from pipeline.config import load_config
from pipeline.record import SourceInfo, record_schema
from pipeline.timeline import Speaker, Timeline
from pipeline.vad import detect_speech

SR = 16000
AGENT_CH, CUSTOMER_CH = 0, 1
AGENT_LINES = [
    "Thank you for calling, my name is Sam, how can I help you today?",
    "I can see the order here. It was dispatched yesterday and should arrive tomorrow morning.",
    "Of course. I will send you the tracking number by email right after this call.",
    "Is there anything else I can help you with today?",
]
CUSTOMER_LINES = [
    "Hi, I am calling about my order, it has not arrived yet.",
    "Tomorrow morning is fine. Can you send me the tracking number please?",
    "Great, that is all, thank you very much.",
]
BABBLE_LINES = [
    ("en-gb+m1", "Good afternoon, you are through to the billing team. Could I take your account number first please?"),
    ("en-us+f2", "I have reset the password for you, so you should be able to log in again in about five minutes."),
    ("en-029+m2", "The engineer can come out on Wednesday between eight and twelve, would that suit you?"),
    ("en-gb-scotland+f4", "Let me just put you on hold for a moment while I check that with my supervisor."),
    ("en-us+m5", "Your refund has been processed and it will show on your statement within three working days."),
    ("en-gb+f1", "Can you confirm the first line of your address and the postcode for me please?"),
]


@lru_cache(maxsize=None)
def speak(text: str, voice: str, tmp: str) -> np.ndarray:
    """espeak-ng speech at 16 kHz, telephone band (through 8 kHz and back), peak 0.5."""
    wav = Path(tmp) / f"{abs(hash((text, voice)))}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(wav), text], check=True, capture_output=True)
    x = load_audio(wav).samples[0]
    x = telephone(x)
    on = np.flatnonzero(np.abs(x) > 0.01)
    x = x[on[0] : on[-1] + 1]
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def telephone(x: np.ndarray) -> np.ndarray:
    """Band-limit to 8 kHz sampling (what a phone line carries) and return at 16 kHz."""
    return resample_poly(resample_poly(x, 1, 2), 2, 1).astype(np.float32)[: len(x)]


def active_power(x: np.ndarray) -> float:
    """Mean square over the 30 ms frames within 30 dB of the loudest (the clean speech's active level)."""
    hop = 480
    p = (x[: len(x) // hop * hop].reshape(-1, hop).astype(np.float64) ** 2).mean(axis=1)
    return float(p[p > p.max() * 1e-3].mean())


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is needed to build the test calls")
    tmp = str(tmp_path_factory.mktemp("espeak"))
    return {
        "agent": [speak(t, "en-us+m3", tmp) for t in AGENT_LINES],
        "customer": [speak(t, "en-us+f3", tmp) for t in CUSTOMER_LINES],
        "babble": [speak(t, v, tmp) for v, t in BABBLE_LINES],
    }


def dialogue(voices) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A stereo call (agent left, customer right) with turns alternating and pauses; returns the
    clean legs and the customer's turn times."""
    order = []
    for i, a in enumerate(voices["agent"]):
        order.append(("agent", a))
        if i < len(voices["customer"]):
            order.append(("customer", voices["customer"][i]))
    t, placed, cust = 0.8, [], []
    for k, (role, x) in enumerate(order):
        placed.append((role, t, x))
        if role == "customer":
            cust.append((t, t + len(x) / SR))
        t += len(x) / SR + (1.6 if k % 3 == 2 else 0.7)  # every third pause is long: both sides silent
    n = int((t + 1.0) * SR)
    legs = np.zeros((2, n), dtype=np.float32)
    for role, start, x in placed:
        ch = AGENT_CH if role == "agent" else CUSTOMER_CH
        i = int(start * SR)
        legs[ch, i : i + len(x)] += x
    return legs, cust


def babble(voices, n: int, seed: int = 0) -> np.ndarray:
    """Other agents talking in the room: six voices, each looping its sentence from a random point."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n, dtype=np.float64)
    for x in voices["babble"]:
        loop = np.concatenate([x, np.zeros(int(0.4 * SR), np.float32)])
        reps = np.tile(loop, n // len(loop) + 2)
        start = rng.integers(len(loop))
        out += reps[start : start + n] / np.sqrt(np.mean(x**2))
    return telephone(out.astype(np.float32))


def pink(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec))
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    return telephone(np.fft.irfft(spec, n).astype(np.float32))


def hum(n: int, f0: float = 50.0) -> np.ndarray:
    """Mains hum: 50 Hz with the odd harmonics a transformer adds."""
    t = np.arange(n) / SR
    return sum(a * np.sin(2 * np.pi * k * f0 * t + k) for k, a in ((1, 1.0), (3, 0.5), (5, 0.3), (7, 0.2))).astype(np.float32)


def at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    gain = np.sqrt(active_power(speech) / (np.mean(noise.astype(np.float64) ** 2) * 10 ** (snr_db / 10)))
    return (noise * gain).astype(np.float32)


def line_floor(shape) -> np.ndarray:
    return np.random.default_rng(9).normal(0, 10 ** (-70 / 20), shape).astype(np.float32)  # faint line noise


def analyse(legs: np.ndarray, options: NoiseOptions | None = None, *, native_rate: int = 8000, floor: bool = True):
    config = load_config()
    samples = np.clip(legs + line_floor(legs.shape) if floor else legs, -1.0, 1.0).astype(np.float32)
    source = SourceInfo(path="built.wav", sha256="0" * 64, format="wav", codec="pcm_s16le",
                        duration_s=samples.shape[1] / SR, sample_rate=native_rate, channels=samples.shape[0],
                        size_bytes=samples.size * 2)
    audio = Audio(samples=samples, source=source)
    activity = detect_speech(samples, SR, config.vad)
    if samples.shape[0] == 2:
        speakers = (Speaker("A", "agent", AGENT_CH), Speaker("B", "customer", CUSTOMER_CH))
    else:
        speakers = (Speaker("S0"),)
    timeline = Timeline(duration=audio.duration, speakers=speakers)
    return analyze_noise(audio, timeline, activity, options or config.noise), activity


def noisy_flags(result, role=None):
    return [f for f in result.flags if f.type == "noisy_background" and (role is None or f.role == role)]


def line_flags(result, problem):
    return [f for f in result.flags if f.type == "poor_line_quality" and f.detail.get("problem") == problem]


# --- the cases -----------------------------------------------------------------------

def test_babble_on_agent_leg_flags_agent_only_as_babble(voices):
    legs, _ = dialogue(voices)
    legs[AGENT_CH] += at_snr(legs[AGENT_CH], babble(voices, legs.shape[1]), 5.0)
    result, _ = analyse(legs)
    m = result.metrics
    agent, customer = m["by_role"]["agent"], m["by_role"]["customer"]
    assert noisy_flags(result, "agent"), f"no noisy_background on the agent side: {agent}"
    assert not noisy_flags(result, "customer"), "the clean customer leg was flagged"
    flag = noisy_flags(result, "agent")[0]
    assert flag.detail["kind"] == "babble", flag.detail
    assert flag.detail["side"] == "agent"
    assert 0.0 <= flag.start < flag.end <= legs.shape[1] / SR + 0.01
    assert abs(agent["snr_db"] - 5.0) <= 4.0, agent["snr_db"]  # measured near the mixed SNR
    assert customer["snr_db"] > 30.0
    assert agent["background_speech_share"] > 0.5 > (customer["background_speech_share"] or 0.0)
    assert agent["kind"] == "babble"
    assert agent["noise_floor_dbfs"] > customer["noise_floor_dbfs"] + 20


def test_worst_stretch_is_where_the_noise_is(voices):
    legs, _ = dialogue(voices)
    n = legs.shape[1]
    half = n // 2
    noise = at_snr(legs[AGENT_CH], babble(voices, n), 0.0)
    noise[: half + SR * 3] = 0.0  # the room gets loud only after the middle of the call (and 3 s)
    legs[AGENT_CH] += noise
    result, _ = analyse(legs)
    flags = noisy_flags(result, "agent")
    assert flags, result.metrics["by_role"]["agent"]
    assert flags[0].start >= 10.0 and flags[0].end >= n / SR - 1.0, (flags[0].start, flags[0].end)


def test_pink_noise_at_30_db_is_not_flagged(voices):
    legs, _ = dialogue(voices)
    for ch in (AGENT_CH, CUSTOMER_CH):
        legs[ch] += at_snr(legs[ch], pink(legs.shape[1], seed=ch + 1), 30.0)
    result, _ = analyse(legs)
    assert not noisy_flags(result), [f.evidence for f in result.flags]
    for role in ("agent", "customer"):
        side = result.metrics["by_role"][role]
        assert 25.0 <= side["snr_db"] <= 35.0, (role, side["snr_db"])
        assert side["kind"] == "stationary"
        assert side["bak_mos"] is not None and side["bak_mos"] > 3.0


def test_pink_noise_at_5_db_is_flagged_stationary(voices):
    legs, _ = dialogue(voices)
    legs[CUSTOMER_CH] += at_snr(legs[CUSTOMER_CH], pink(legs.shape[1]), 5.0)
    result, _ = analyse(legs)
    flags = noisy_flags(result)
    assert [f.role for f in flags] == ["customer"]
    assert flags[0].detail["kind"] == "stationary"
    assert abs(result.metrics["by_role"]["customer"]["snr_db"] - 5.0) <= 3.0
    assert result.metrics["by_role"]["customer"]["bak_mos"] < 2.5


def test_mains_hum_is_kind_hum(voices):
    legs, _ = dialogue(voices)
    legs[AGENT_CH] += at_snr(legs[AGENT_CH], hum(legs.shape[1]), 5.0)
    result, _ = analyse(legs)
    flags = noisy_flags(result, "agent")
    assert flags, result.metrics["by_role"]["agent"]
    assert flags[0].detail["kind"] == "hum"
    h = result.metrics["by_role"]["agent"]["hum"]
    assert h["present"] and h["freq_hz"] == 50.0 and h["share_of_noise"] > 0.5
    assert not noisy_flags(result, "customer")


def test_60_hz_hum_is_told_from_50(voices):
    legs, _ = dialogue(voices)
    legs[CUSTOMER_CH] += at_snr(legs[CUSTOMER_CH], hum(legs.shape[1], 60.0), 10.0)
    result, _ = analyse(legs)
    assert result.metrics["by_role"]["customer"]["hum"]["freq_hz"] == 60.0


def test_clipped_agent_is_poor_line_quality_clipping(voices):
    legs, _ = dialogue(voices)
    legs[AGENT_CH] = np.clip(legs[AGENT_CH] * 6.0, -1.0, 1.0)  # the agent's gain set far too high
    result, _ = analyse(legs)
    flags = line_flags(result, "clipping")
    assert [f.role for f in flags] == ["agent"], [f.evidence for f in result.flags]
    assert result.metrics["by_role"]["agent"]["clipping_share"] > 0.01
    assert result.metrics["by_role"]["customer"]["clipping_share"] < 0.001
    assert not noisy_flags(result)  # distortion is not background noise


def test_customer_leaking_into_agent_leg_is_crosstalk_not_agent_speech(voices):
    legs, cust_turns = dialogue(voices)
    clean_agent = legs[AGENT_CH].copy()
    legs[AGENT_CH] += 0.1 * legs[CUSTOMER_CH]  # customer heard in the agent's leg at -20 dB
    result, activity = analyse(legs)

    agent_ch = next(c for c in result.metrics["channels"] if c["role"] == "agent")
    ct = agent_ch["crosstalk"]
    assert ct["coupling_db"] is not None and abs(ct["coupling_db"] - (-20.0)) <= 3.0, ct
    assert ct["correlation"] > 0.8 and ct["delay_ms"] < 5.0 and ct["kind"] == "crosstalk", ct
    flags = line_flags(result, "crosstalk")
    assert [f.role for f in flags] == ["agent"], [f.evidence for f in result.flags]
    other = next(c for c in result.metrics["channels"] if c["role"] == "customer")
    assert other["crosstalk"]["coupling_db"] is None  # nothing flows the other way

    # The leak must not become agent speech (pipeline/vad.py's leak rejection).
    agent_speech = activity[AGENT_CH].speech
    leaked = sum(max(0.0, min(e, iv.end) - max(s, iv.start)) for s, e in cust_turns for iv in agent_speech)
    cust_total = sum(e - s for s, e in cust_turns)
    assert leaked <= 0.1 * cust_total, f"{leaked:.2f} s of the customer's {cust_total:.2f} s became agent speech"
    # ...and it is not counted as background voices on the agent leg
    assert (result.metrics["by_role"]["agent"]["background_speech_share"] or 0.0) < 0.2
    assert not noisy_flags(result)
    assert np.max(np.abs(clean_agent)) > 0  # the agent did talk


def test_echo_with_delay_is_reported_as_echo(voices):
    legs, _ = dialogue(voices)
    d = int(0.12 * SR)  # hybrid echo: the agent comes back on the customer leg 120 ms late at -18 dB
    legs[CUSTOMER_CH, d:] += 0.125 * legs[AGENT_CH, :-d]
    result, _ = analyse(legs)
    ct = next(c for c in result.metrics["channels"] if c["role"] == "customer")["crosstalk"]
    assert ct["kind"] == "echo" and abs(ct["delay_ms"] - 120.0) <= 5.0, ct
    assert [f.role for f in line_flags(result, "echo")] == ["customer"]


def test_dropouts_inside_speech(voices):
    legs, _ = dialogue(voices)
    legs += line_floor(legs.shape)
    x = legs[AGENT_CH]
    act = np.flatnonzero(np.abs(x) > 0.05)
    # five 60 ms holes of digital silence in the middle of the agent's speech
    holes = [act[int(len(act) * f)] for f in (0.1, 0.3, 0.5, 0.7, 0.9)]
    for h in holes:
        x[h : h + int(0.06 * SR)] = 0.0  # packet loss: the line (noise floor included) goes dead
    result, _ = analyse(legs, floor=False)
    d = result.metrics["by_role"]["agent"]["dropouts"]
    assert d["count"] == 5, d
    flags = line_flags(result, "dropouts")
    assert [f.role for f in flags] == ["agent"]
    assert result.metrics["by_role"]["customer"]["dropouts"]["count"] == 0


def test_very_low_level_leg(voices):
    legs, _ = dialogue(voices)
    legs[CUSTOMER_CH] *= 10 ** (-30 / 20)  # customer 30 dB too quiet (about -50 dBFS)
    result, _ = analyse(legs)
    assert result.metrics["by_role"]["customer"]["low_level"] is True
    assert result.metrics["by_role"]["agent"]["low_level"] is False
    assert [f.role for f in line_flags(result, "low_level")] == ["customer"]


def test_mono_call_noisy_and_schema(voices):
    legs, _ = dialogue(voices)
    mono = legs.sum(axis=0, keepdims=True)
    mono[0] += at_snr(mono[0], pink(mono.shape[1]), 3.0)
    result, _ = analyse(mono)
    flags = noisy_flags(result)
    assert len(flags) == 1 and flags[0].role == "unknown"
    assert abs(result.metrics["overall"]["snr_db"] - 3.0) <= 3.0
    schema = record_schema()
    import jsonschema

    noise_schema = {**schema["properties"]["metrics"]["properties"]["noise"], "$defs": schema["$defs"]}
    jsonschema.validate(result.metrics, noise_schema)
    for f in result.flags:
        jsonschema.validate(f.to_dict(), {**schema["$defs"]["flag"], "$defs": schema["$defs"]})


def test_mono_call_with_turns_names_the_noisy_side(voices):
    from pipeline.timeline import Turn

    legs, _ = dialogue(voices)
    config = load_config()
    per_leg = detect_speech(legs + line_floor(legs.shape), SR, config.vad)  # where each side really talks
    agent_ivs, cust_ivs = per_leg[AGENT_CH].speech, per_leg[CUSTOMER_CH].speech
    mono = legs.sum(axis=0, keepdims=True) + line_floor((1, legs.shape[1]))
    noise = at_snr(legs[AGENT_CH], babble(voices, legs.shape[1]), 3.0)
    gate = np.zeros(legs.shape[1], dtype=np.float32)
    for iv in agent_ivs:  # the agent's headset only passes the room while the agent talks (noise gate)
        gate[int(iv.start * SR) : int(iv.end * SR)] = 1.0
    mono[0] += noise * gate
    turns = [Turn("A", iv.start, iv.end, role="agent") for iv in agent_ivs]
    turns += [Turn("B", iv.start, iv.end, role="customer") for iv in cust_ivs]
    source = SourceInfo("m.wav", "0" * 64, "wav", "pcm_s16le", mono.shape[1] / SR, 8000, 1, mono.size * 2)
    audio = Audio(samples=mono.astype(np.float32), source=source)
    timeline = Timeline(audio.duration, (Speaker("A", "agent"), Speaker("B", "customer")), tuple(turns))
    result = analyze_noise(audio, timeline, detect_speech(audio.samples, SR, config.vad), config.noise)
    by_role = result.metrics["by_role"]
    assert by_role["agent"]["snr_db"] < 9.0 < by_role["customer"]["snr_db"], by_role
    assert by_role["agent"]["noise_floor_dbfs"] > by_role["customer"]["noise_floor_dbfs"] + 10
    flags = noisy_flags(result)
    assert [f.role for f in flags] == ["agent"], [f.evidence for f in flags]


def test_stereo_metrics_match_schema(voices):
    import jsonschema

    legs, _ = dialogue(voices)
    legs[AGENT_CH] += at_snr(legs[AGENT_CH], babble(voices, legs.shape[1]), 5.0)
    result, _ = analyse(legs)
    schema = record_schema()
    jsonschema.validate(result.metrics, {**schema["properties"]["metrics"]["properties"]["noise"], "$defs": schema["$defs"]})
    assert set(result.metrics["by_role"]) == {"agent", "customer"}
    assert [c["channel"] for c in result.metrics["channels"]] == [0, 1]
    assert result.metrics["overall"]["snr_db"] <= result.metrics["by_role"]["agent"]["snr_db"] + 0.5


def test_disabled_stage_returns_nothing():
    audio = Audio(samples=np.zeros((1, SR * 2), np.float32),
                  source=SourceInfo("x", "0", "wav", "pcm", 2.0, 8000, 1, 0))
    out = analyze_noise(audio, Timeline(2.0, ()), [], NoiseOptions(enabled=False))
    assert out.metrics == {} and out.flags == ()


@pytest.mark.parametrize("bad", [{"noise_quantile": 0.7}, {"bak_flag_mos": 7.0}, {"block_s": 0.0},
                                 {"snr_high_db": 12.0, "snr_flag_db": 9.0}])
def test_options_are_validated(bad):
    with pytest.raises(ValueError, match="noise"):
        NoiseOptions(**bad)

"""Synthetic calls for the review app's tests, screenshots and benchmark (no models, no real audio).

Records follow the record schema; their text is invented and PII-free. ``write_wav``
makes a matching recording (a tone burst per turn, one channel per speaker when stereo)
so the audio player, range requests and seeking can be exercised for real.
"""

from __future__ import annotations

import hashlib
import random
from contextlib import contextmanager
from pathlib import Path

AGENT_LINES = [
    "Thanks for calling, this is the support line, how can I help today?",
    "I can see the order on your account, let me check the delivery status.",
    "While I have you, we have a premium plan with faster delivery for a small monthly fee.",
    "I understand. We could also offer the first three months at half price.",
    "Your replacement ships tomorrow and you will get a confirmation email.",
    "Is there anything else I can help you with?",
]
CUSTOMER_LINES = [
    "Hi, my parcel never arrived and I need it this week.",
    "It says delivered but nothing was at the door.",
    "No thanks, I'm not interested in any upgrades.",
    "I already said no, I just want my parcel.",
    "Okay, that works.",
    "No, that's all, thanks.",
]
FLAG_TYPES = [
    ("refusal_then_continue", "high"), ("pitch_before_resolution", "medium"), ("agent_monologue", "medium"),
    ("dead_air", "low"), ("excessive_overtalk", "low"), ("noisy_background", "low"),
]


def make_record(call_id: str, *, audio_path: str, duration: float = 12.0, channels: int = 2,
                agent_id: str = "A001", campaign: str = "retention", recorded_at: str = "2026-11-21T09:00:00Z",
                n_turns: int = 6, flags: list[dict] | None = None, seed: int = 0) -> dict:
    """One schema-valid record with alternating agent/customer turns over ``duration`` seconds."""
    rng = random.Random(seed)
    slot = duration / max(1, n_turns)
    segments = []
    for i in range(n_turns):
        role = "agent" if i % 2 == 0 else "customer"
        start = i * slot + (0.15 if i else 0.2)
        end = min(duration, (i + 1) * slot + (0.4 if i % 3 == 1 else -0.3))  # some overlap, some gaps
        lines = AGENT_LINES if role == "agent" else CUSTOMER_LINES
        segments.append({"speaker": "S0" if role == "agent" else "S1", "role": role, "start": round(start, 3),
                         "end": round(end, 3), "text": lines[(i // 2) % len(lines)]})
    agent_t = sum(s["end"] - s["start"] for s in segments if s["role"] == "agent")
    cust_t = sum(s["end"] - s["start"] for s in segments if s["role"] == "customer")
    if flags is None:
        refusal = next((s for s in segments if s["role"] == "customer" and "No" in s["text"]), segments[-1])
        flags = [{"type": "refusal_then_continue", "severity": "high", "start": refusal["start"],
                  "end": min(duration, refusal["end"] + slot), "role": "agent",
                  "evidence": f'Customer: "{refusal["text"]}" then agent pitched again.',
                  "detail": {"refusal": {"start": refusal["start"], "end": refusal["end"], "text": refusal["text"]},
                             "pitch": {"start": round(refusal["end"] + 0.1, 3),
                                       "end": round(min(duration, refusal["end"] + slot), 3),
                                       "text": AGENT_LINES[3]}}}]
    return {
        "schema_version": "1.0", "call_id": call_id, "status": "ok", "error": None,
        "source": {"path": audio_path, "sha256": hashlib.sha256(call_id.encode()).hexdigest(), "format": "wav",
                   "codec": "pcm_s16le", "duration_s": duration, "sample_rate": 8000, "channels": channels,
                   "size_bytes": int(duration * 8000 * 2 * channels) + 44},
        "metadata": {"agent_id": agent_id, "campaign": campaign, "recorded_at": recorded_at},
        "duration_s": duration,
        "speakers": [{"id": "S0", "role": "agent", "channel": 0 if channels == 2 else None},
                     {"id": "S1", "role": "customer", "channel": 1 if channels == 2 else None}],
        "role_assignment": {"rule": "explicit", "confidence": 1.0, "evidence": []},
        "segments": segments,
        "metrics": {
            "talk_ratio": {"agent": agent_t / (agent_t + cust_t), "customer": cust_t / (agent_t + cust_t)},
            "talk_time_s": {"agent": agent_t, "customer": cust_t},
            "silence": {"total_s": round(rng.uniform(0.5, 3), 2), "longest_s": 0.6, "count_over_threshold": 0,
                        "threshold_s": 10.0},
            "overtalk": {"total_s": 0.7, "interruptions": {"agent": 1, "customer": 0}},
            "monologues": {"longest_s": {"agent": slot, "customer": slot * 0.8}, "items": []},
            "words_per_minute": {"agent": 150.0 + rng.uniform(-20, 20), "customer": 130.0},
            "questions": {"agent": 2, "customer": 0},
            "noise": {"by_role": {  # the layout of pipeline/analysis/noise.py
                "agent": {"snr_db": 28.0, "noise_floor_dbfs": -62.0, "background_speech_share": 0.02},
                "customer": {"snr_db": 14.5, "noise_floor_dbfs": -48.0, "background_speech_share": 0.31,
                             "dropouts": {"count": 0, "total_s": 0.0, "times": []}}}},
        },
        "flags": flags,
        "provenance": {"pipeline_version": "synthetic", "config_hash": "0" * 16,
                       "processed_at": recorded_at, "models": {}, "elapsed_s": {}},
    }


def write_wav(path: str | Path, record: dict, *, sample_rate: int = 8000, subtype: str = "PCM_16") -> Path:
    """A recording matching ``record``: a tone burst per turn (agent 440 Hz, customer 660 Hz)."""
    import numpy as np
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = int(record["source"]["channels"])
    n = int(float(record["duration_s"]) * sample_rate)
    out = np.zeros((n, channels), dtype=np.float32)
    t = np.arange(n) / sample_rate
    for s in record["segments"]:
        a, b = int(s["start"] * sample_rate), min(n, int(s["end"] * sample_rate))
        freq = 440.0 if s["role"] == "agent" else 660.0
        ch = (0 if s["role"] == "agent" else 1) if channels == 2 else 0
        out[a:b, ch] += 0.3 * np.sin(2 * np.pi * freq * t[a:b])
    sf.write(str(path), out, sample_rate, subtype=subtype)
    return path


def bulk_records(n_calls: int, *, flags_per_call: int = 3, seed: int = 1, audio_path: str = "demo.wav"):
    """``n_calls`` records with ``flags_per_call`` flags each, spread over agents, campaigns and 30 days."""
    rng = random.Random(seed)
    agents = [f"A{i:03d}" for i in range(1, 61)]
    campaigns = ["retention", "upsell", "support", "winback", "billing"]
    for i in range(n_calls):
        duration = rng.uniform(120, 600)
        flags = []
        for k in range(flags_per_call):
            ftype, sev = FLAG_TYPES[rng.randrange(len(FLAG_TYPES))]
            start = round(rng.uniform(0, duration - 20) + k * 0.001, 3)
            flags.append({"type": ftype, "severity": sev if rng.random() < 0.7 else rng.choice(["low", "medium", "high"]),
                          "start": start, "end": round(start + rng.uniform(2, 20), 3), "role": "agent",
                          "evidence": f"{ftype.replace('_', ' ')} around {int(start)} s", "detail": {}})
        day = 1 + i % 30
        yield make_record(f"call-{i:06d}", audio_path=audio_path, duration=duration, agent_id=rng.choice(agents),
                          campaign=rng.choice(campaigns), recorded_at=f"2026-10-{day:02d}T{8 + i % 10:02d}:00:00Z",
                          n_turns=20, flags=flags, seed=i)


DEMO_PASSWORD = "review-pass"


def build_demo(folder: str | Path, *, users: dict[str, str] | None = None) -> dict:
    """A small store + recordings for tests and screenshots.

    Four calls: a stereo PCM call with a ``refusal_then_continue`` and a ``dead_air`` flag, a mono
    call, a stereo µ-law call (decoded for the browser) and one whose recording lies outside the
    recording root (its audio must not be served). Returns paths and a ``[review]`` options dict.
    """
    from .. import store
    from .auth import hash_password

    folder = Path(folder)
    root = folder / "recordings"
    outside = folder / "outside"
    calls = [
        ("call-stereo-01", root / "2026-11-21" / "call-stereo-01.wav", 2, "PCM_16", "A001", "retention",
         "2026-11-21T09:12:00Z"),
        ("call-mono-02", root / "2026-11-20" / "call-mono-02.wav", 1, "PCM_16", "A002", "upsell",
         "2026-11-20T14:03:00Z"),
        ("call-ulaw-03", root / "2026-11-19" / "call-ulaw-03.wav", 2, "ULAW", "A001", "support",
         "2026-11-19T10:40:00Z"),
        ("call-outside-04", outside / "call-outside-04.wav", 2, "PCM_16", "A003", "retention",
         "2026-11-18T16:20:00Z"),
    ]
    records = {}
    db = folder / "callqa.db"
    conn = store.connect(db)
    for i, (cid, path, channels, subtype, agent, campaign, at) in enumerate(calls):
        rec = make_record(cid, audio_path=str(path), duration=20.0 if cid == "call-stereo-01" else 14.0, channels=channels, agent_id=agent,
                          campaign=campaign, recorded_at=at, n_turns=7, seed=i)
        if cid == "call-stereo-01":
            _stereo_story(rec)
        elif cid == "call-mono-02":
            rec["flags"] = [{"type": "pitch_before_resolution", "severity": "medium", "start": 4.2, "end": 6.0,
                             "role": "agent", "evidence": "Agent offered the premium plan before the delivery "
                                                          "problem was solved.", "detail": {}}]
        elif cid == "call-ulaw-03":
            rec["flags"] = [{"type": "noisy_background", "severity": "low", "start": 2.0, "end": 8.0,
                             "role": "customer", "evidence": "Customer channel SNR 9 dB (street noise).",
                             "detail": {"snr_db": 9.0}}]
        write_wav(path, rec, subtype=subtype)
        store.save_record(conn, rec)
        records[cid] = rec
    conn.commit()
    conn.close()
    options = {"users": users or {"supervisor": hash_password(DEMO_PASSWORD, iterations=2000)},
               "recording_roots": [str(root)], "page_size": 50}
    return {"db": db, "root": root, "outside": outside, "records": records, "options": options,
            "user": "supervisor", "password": DEMO_PASSWORD}


@contextmanager
def background_server(app, *, host: str = "127.0.0.1", port: int = 0):
    """Run ``app`` under a real uvicorn server in a thread; yields its base URL (tests, screenshots)."""
    import socket
    import threading
    import time

    import uvicorn

    if port == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"review server did not start on {host}:{port}")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _stereo_story(rec: dict) -> None:
    """The showcase call: greeting, a hold (dead air), a pitch, a refusal, a re-pitch over the customer."""
    a, c = "agent", "customer"
    turns = [
        (a, 0.2, 2.0, AGENT_LINES[0]), (c, 2.3, 4.6, "My number is [PHONE] and my parcel never arrived."),
        (a, 4.4, 6.2, AGENT_LINES[1]), (a, 9.0, 11.0, AGENT_LINES[2]), (c, 11.2, 12.6, CUSTOMER_LINES[2]),
        (a, 12.5, 15.0, AGENT_LINES[3]), (c, 15.2, 16.4, CUSTOMER_LINES[3]), (a, 16.6, 19.0, AGENT_LINES[4]),
    ]
    rec["segments"] = [{"speaker": "S0" if r == a else "S1", "role": r, "start": s0, "end": s1, "text": t}
                       for r, s0, s1, t in turns]
    talk = {r: round(sum(s1 - s0 for rr, s0, s1, _ in turns if rr == r), 3) for r in (a, c)}
    rec["metrics"]["talk_time_s"] = talk
    rec["metrics"]["talk_ratio"] = {r: talk[r] / (talk[a] + talk[c]) for r in (a, c)}
    rec["metrics"]["silence"] = {"total_s": 3.9, "longest_s": 2.8, "count_over_threshold": 0, "threshold_s": 10.0}
    rec["metrics"]["noise"]["by_role"]["customer"]["dropouts"] = {"count": 1, "total_s": 2.3, "times": [[2.3, 4.6]]}
    rec["flags"] = [
        {"type": "dead_air", "severity": "low", "start": 6.2, "end": 9.0, "role": "agent",
         "evidence": "No one spoke for 2.8 s: the customer was left waiting without a word.",
         "detail": {"silence_s": 2.8}},
        {"type": "refusal_then_continue", "severity": "high", "start": 11.2, "end": 15.0, "role": "agent",
         "evidence": 'Customer: "No thanks, I\'m not interested in any upgrades." Agent pitched again: '
                     '"We could also offer the first three months at half price."',
         "detail": {"refusal": {"start": 11.2, "end": 12.6, "text": CUSTOMER_LINES[2]},
                    "pitch": {"start": 12.5, "end": 15.0, "text": AGENT_LINES[3]}}},
    ]

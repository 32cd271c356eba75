"""DNSMOS P.835 (Reddy et al. 2022) from the ONNX model that the ``speechmos`` package ships.

Only the ONNX file is used (``speechmos/dnsmos_models/sig_bak_ovr.onnx``); the
package's own Python module is not imported, because it pulls librosa and
requests at import time. What this needs: ``onnxruntime`` and ``numpy``, plus
``speechmos`` installed for its data files.

The model takes 9.01 s of 16 kHz audio and returns raw SIG/BAK/OVRL scores, mapped
to the 1–5 P.835 scale with the polynomials published with the model. Cost:
about 0.2 s of one CPU core per window, so a call is scored on a *sample* of
windows (see :func:`pick_windows`), never on all of it.

8 kHz calls: the audio arrives here upsampled to 16 kHz with nothing above 4 kHz.
The model then penalises SIG and OVRL for the missing band, but BAK, the only
score used, barely moves: on the same speech and noise it reads 0.1–0.3 *higher*
for the narrowband copy, because the noise above 4 kHz is gone too
(docs/BENCHMARKS.md "Background noise" has the table). The BAK thresholds in
``[noise]`` were set on 8 kHz material (NOIZEUS), i.e. for the common case.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger("pipeline")

SR = 16000
WINDOW_SAMPLES = int(9.01 * SR)  # the model's fixed input length
WINDOW_S = WINDOW_SAMPLES / SR

# Published mapping of the raw model outputs onto the P.835 scale (non-personalised model).
_P_SIG = np.poly1d([-0.08397278, 1.22083953, 0.0052439])
_P_BAK = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
_P_OVR = np.poly1d([-0.06766283, 1.11546468, 0.04602535])

_session = None
_session_error: str | None = None
_lock = threading.Lock()


def model_path() -> Path | None:
    try:
        import importlib.util

        spec = importlib.util.find_spec("speechmos")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "dnsmos_models" / "sig_bak_ovr.onnx"
    return path if path.is_file() else None


def _get_session():
    """The ONNX session, created once per process (thread-safe); None if unavailable."""
    global _session, _session_error
    if _session is not None or _session_error is not None:
        return _session
    with _lock:
        if _session is None and _session_error is None:
            path = model_path()
            if path is None:
                _session_error = "the speechmos package (DNSMOS model files) is not installed"
                log.warning("noise: DNSMOS disabled: %s; bak_mos will be null (pip install speechmos)", _session_error)
                return None
            try:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 1  # a batch worker already runs one call per core
                opts.inter_op_num_threads = 1
                opts.log_severity_level = 3
                _session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001 - any load failure just disables the score
                _session_error = f"could not load {path.name}: {e}"
                log.warning("noise: DNSMOS disabled: %s", _session_error)
    return _session


def available() -> bool:
    return _get_session() is not None


def pick_windows(speech: np.ndarray, frame_s: float, duration: float, count: int) -> list[float]:
    """Start times of ``count`` windows spread over the call, each placed on the most speech.

    The call is cut into ``count`` equal parts; in each, the 9 s window (on a 1 s
    grid) holding the most speech of this channel is chosen, because DNSMOS rates
    the background *behind speech* and is unreliable on silence alone.
    """
    if duration <= WINDOW_S or count <= 0:
        return [0.0]
    starts = np.arange(0.0, duration - WINDOW_S + 1e-9, 1.0)
    cum = np.concatenate(([0], np.cumsum(speech.astype(np.int32))))

    def speech_in(t0: float) -> int:
        i0 = min(len(speech), int(t0 / frame_s))
        i1 = min(len(speech), int((t0 + WINDOW_S) / frame_s))
        return int(cum[i1] - cum[i0])

    out = []
    edges = np.linspace(0.0, duration, count + 1)
    for a, b in zip(edges[:-1], edges[1:]):
        cand = starts[(starts >= a - 1e-9) & (starts < max(b - WINDOW_S, a) + 1e-9)]
        if len(cand) == 0:
            cand = starts[np.argmin(np.abs(starts - a)) : np.argmin(np.abs(starts - a)) + 1]
        best = max(cand, key=speech_in)
        if best not in out:
            out.append(float(best))
    return out


def window_audio(x: np.ndarray, start_s: float) -> np.ndarray:
    """The model's 9.01 s input from ``start_s``; a shorter call is repeated to fill it (as DNSMOS does)."""
    seg = x[int(start_s * SR) : int(start_s * SR) + WINDOW_SAMPLES]
    if len(seg) == 0:
        seg = x
    if len(seg) < WINDOW_SAMPLES:
        seg = np.tile(seg, int(np.ceil(WINDOW_SAMPLES / max(1, len(seg)))))[:WINDOW_SAMPLES]
    return np.clip(seg, -1.0, 1.0).astype(np.float32)


def score(windows: list[np.ndarray]) -> np.ndarray | None:
    """P.835 (SIG, BAK, OVRL) per window, shape (k, 3); None when DNSMOS is unavailable."""
    if not windows:
        return np.zeros((0, 3))
    session = _get_session()
    if session is None:
        return None
    batch = np.stack(windows).astype(np.float32)
    raw = session.run(None, {"input_1": batch})[0]
    return np.clip(np.stack([_P_SIG(raw[:, 0]), _P_BAK(raw[:, 1]), _P_OVR(raw[:, 2])], axis=1), 1.0, 5.0)

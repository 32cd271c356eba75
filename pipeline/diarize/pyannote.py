"""Optional mono backend: a pyannote.audio pipeline that a team has on disk.

``[diarization] mono_backend = "pyannote"`` and ``pyannote_pipeline = <folder or
config.yaml>``. Only ever loads from disk:

- the config's model references must be ``$model/<subfolder>`` (inside the
  pipeline folder) or paths that exist; a hub name is refused with a message
  saying what to do, and ``HF_HUB_OFFLINE=1`` is set as a second guard;
- pyannote's usage telemetry is switched off (``PYANNOTE_METRICS_ENABLED=0``)
  before pyannote.audio is imported.

pyannote.audio 4 needs a newer torch than the embedded default, so it lives in
its own environment: ``scripts/setup_pyannote_env.sh`` (``.venv-pyannote``).
The pipeline is loaded once per process and folder.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from ..timeline import Interval

log = logging.getLogger("pipeline")

_MODEL_KEYS = ("segmentation", "embedding", "plda")
_pipelines: dict[str, object] = {}
_lock = threading.Lock()


class PyannoteUnavailable(RuntimeError):
    pass


def _quiet_offline_env() -> None:
    # Telemetry off and no hub, whatever the user's environment says.
    os.environ["PYANNOTE_METRICS_ENABLED"] = "0"
    os.environ["HF_HUB_OFFLINE"] = "1"


def _config_path(location: str | Path) -> Path:
    p = Path(location).expanduser()
    if p.is_dir():
        p = p / "config.yaml"
    if not p.is_file():
        raise ValueError(f"diarization.pyannote_pipeline: no pipeline config at {p}. Point it at a local folder "
                         "holding config.yaml (and the model subfolders it names) or at the config.yaml itself; "
                         "callqa never downloads pipelines from a model hub.")
    return p.resolve()


def local_config(location: str | Path) -> dict:
    """The pipeline's config with every model reference made an absolute local path (or refused)."""
    import yaml

    path = _config_path(location)
    folder = path.parent
    config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict) or "pipeline" not in config:
        raise ValueError(f"diarization.pyannote_pipeline: {path} is not a pyannote pipeline config "
                         "(no 'pipeline:' section)")
    params = config["pipeline"].setdefault("params", {}) or {}
    config["pipeline"]["params"] = params
    for key in _MODEL_KEYS:
        ref = params.get(key)
        if ref is None:  # pyannote.audio's default for a missing model is a hub download (plda included)
            raise ValueError(f"diarization.pyannote_pipeline: {path} does not name its {key} "
                             f"(pipeline.params.{key}); name a local folder, e.g. '$model/{key}'")
        if isinstance(ref, dict):
            ref = ref.get("checkpoint", "")
            sub = params[key].get("subfolder")
            ref = str(Path(ref) / sub) if sub else ref
        ref = str(ref)
        if ref.startswith("$model/"):
            local = folder / ref[len("$model/"):].split("@")[0]
        else:
            local = Path(ref).expanduser()
            if not local.is_absolute():
                local = folder / local
        if not local.exists():
            raise ValueError(f"diarization.pyannote_pipeline: {key} = {ref!r} in {path} is not a local path "
                             f"({local} does not exist). Download the pipeline once on a machine with network "
                             "access, copy its folder here and refer to models as '$model/<subfolder>'.")
        if key == "plda":
            params[key] = str(local)
        else:
            if local.is_dir():
                local = local / "pytorch_model.bin"
            # A dict, not a string: pyannote picks an embedding loader from words in a string
            # ("speechbrain", "wespeaker", ...), which a local path could contain by accident.
            params[key] = {"checkpoint": str(local)}
    return config


def load_pipeline(location: str | Path):
    """The pyannote.audio Pipeline at ``location`` (cached per process)."""
    key = str(_config_path(location))
    with _lock:
        if key in _pipelines:
            return _pipelines[key]
        _quiet_offline_env()
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from pyannote.audio import Pipeline
        except ImportError as e:
            raise PyannoteUnavailable(
                "diarization.mono_backend = 'pyannote' needs pyannote.audio, which is not installed in this "
                "environment. Create its environment with scripts/setup_pyannote_env.sh and run callqa from "
                f".venv-pyannote, or set mono_backend = 'embedded'. ({e})") from None
        config = local_config(key)
        pipeline = Pipeline.from_pretrained(config)
        if pipeline is None:
            raise ValueError(f"diarization.pyannote_pipeline: pyannote.audio could not load {key}")
        _pipelines[key] = pipeline
        log.info("diarize: loaded pyannote pipeline from %s", key)
        return pipeline


def diarize_pyannote(signal: np.ndarray, speech: list[Interval], options) -> list:
    """Speaker segments from the local pyannote pipeline (its own VAD and overlap handling)."""
    from . import SpeakerSegment

    if not speech or len(signal) == 0:
        return []
    import torch

    pipeline = load_pipeline(options.pyannote_pipeline)
    kwargs = {}
    if options.num_speakers > 0:
        kwargs["num_speakers"] = options.num_speakers
    else:
        kwargs["min_speakers"] = options.min_speakers
        kwargs["max_speakers"] = options.max_speakers
    waveform = torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32))[None, :]
    out = pipeline({"waveform": waveform, "sample_rate": 16000}, **kwargs)
    annotation = getattr(out, "speaker_diarization", out)  # 4.x DiarizeOutput; 3.x Annotation
    names: dict[str, str] = {}
    segments = []
    for seg, _, label in annotation.itertracks(yield_label=True):
        if seg.end <= seg.start:
            continue
        name = names.setdefault(label, f"S{len(names)}")
        segments.append(SpeakerSegment(name, round(float(seg.start), 3), round(float(seg.end), 3)))
    segments.sort(key=lambda s: (s.start, s.end, s.speaker))
    return segments

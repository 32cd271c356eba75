"""The optional pyannote.audio backend, run against a pipeline folder this test builds on disk.

The folder holds pyannote.audio's own model classes (PyanNet segmentation, WeSpeaker
ResNet34 embedding) with random weights, a random PLDA and a config.yaml that names
them as ``$model/<subfolder>``, the layout of a pipeline downloaded once and copied.
This proves the loading and running code (local-only, telemetry off, no network),
not accuracy.

Needs pyannote.audio (its own environment): ``scripts/setup_pyannote_env.sh``, then
``.venv-pyannote/bin/python -m pytest tests/test_diarize_pyannote.py``. Skipped otherwise.
"""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "audio_fixtures" / "mono"

os.environ["PYANNOTE_METRICS_ENABLED"] = "0"  # before any pyannote.audio import

try:
    import pyannote.audio  # noqa: F401
    import torch

    HAVE_PYANNOTE = True
except Exception as e:  # ImportError, or a torch that does not fit
    HAVE_PYANNOTE = False
    WHY = f"pyannote.audio is not importable here ({type(e).__name__}: {e}); it is an optional extra in its own " \
          "environment: run scripts/setup_pyannote_env.sh, then .venv-pyannote/bin/python -m pytest " \
          "tests/test_diarize_pyannote.py"

needs_pyannote = pytest.mark.skipif(not HAVE_PYANNOTE, reason=WHY if not HAVE_PYANNOTE else "")


def _save_model(model, path: Path) -> None:
    """A checkpoint in the layout pyannote's Model.from_pretrained reads (what Lightning would write)."""
    import lightning

    ckpt = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": lightning.__version__}
    model.on_save_checkpoint(ckpt)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)


def build_pipeline_folder(folder: Path) -> Path:
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34
    from pyannote.audio.models.segmentation import PyanNet

    torch.manual_seed(0)
    seg = PyanNet(sincnet={"stride": 10})
    seg.specifications = Specifications(problem=Problem.MONO_LABEL_CLASSIFICATION, resolution=Resolution.FRAME,
                                        duration=5.0, classes=["spk1", "spk2", "spk3"], powerset_max_classes=2,
                                        permutation_invariant=True)
    seg.build()
    _save_model(seg, folder / "segmentation" / "pytorch_model.bin")

    emb = WeSpeakerResNet34()
    emb.specifications = Specifications(problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=3.0)
    _save_model(emb, folder / "embedding" / "pytorch_model.bin")

    rng = np.random.default_rng(0)
    (folder / "plda").mkdir(parents=True, exist_ok=True)
    np.savez(folder / "plda" / "xvec_transform.npz", mean1=rng.normal(size=256), mean2=rng.normal(size=128),
             lda=rng.normal(size=(256, 128)))
    np.savez(folder / "plda" / "plda.npz", mu=rng.normal(size=128), tr=np.eye(128) + 0.01 * rng.normal(size=(128, 128)),
             psi=np.abs(rng.normal(size=128)) + 0.1)

    (folder / "config.yaml").write_text(textwrap.dedent("""\
        pipeline:
          name: pyannote.audio.pipelines.SpeakerDiarization
          params:
            clustering: AgglomerativeClustering
            segmentation: $model/segmentation
            embedding: $model/embedding
            plda: $model/plda
            segmentation_batch_size: 8
            embedding_batch_size: 8
        params:
          clustering:
            method: centroid
            min_cluster_size: 2
            threshold: 0.7
          segmentation:
            min_duration_off: 0.0
        """))
    return folder


@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory) -> Path:
    return build_pipeline_folder(tmp_path_factory.mktemp("pyannote_pipeline"))


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(self, address, *a, **k):
        if isinstance(address, tuple):
            raise AssertionError(f"network connection attempted to {address}")
        return real_connect(self, address, *a, **k)

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)


@needs_pyannote
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # random weights: pyannote warns about speaker counts and empty means
def test_pyannote_backend_runs_a_local_pipeline_offline(pipeline_folder, no_network):
    from pipeline.audio import load_audio
    from pipeline.diarize import DiarizationOptions, SpeakerSegment, diarize_mono
    from pipeline.vad import VadOptions, detect_speech

    audio = load_audio(FIXTURES / "two_voices.flac")
    signal = audio.samples[0][: 12 * 16000]  # two turns: enough to exercise every stage, cheap on CPU
    duration = len(signal) / 16000
    speech = detect_speech(signal[None, :], 16000, VadOptions())[0].speech
    options = DiarizationOptions(mono_backend="pyannote", pyannote_pipeline=str(pipeline_folder), num_speakers=2)
    segments = diarize_mono(signal, 16000, speech, options)

    assert os.environ["PYANNOTE_METRICS_ENABLED"] == "0"
    assert all(isinstance(s, SpeakerSegment) for s in segments)
    assert all(0.0 <= s.start < s.end <= duration + 0.05 for s in segments)
    assert {s.speaker for s in segments} <= {"S0", "S1"}
    assert segments == sorted(segments, key=lambda s: (s.start, s.end, s.speaker))

    # The config.yaml path works as well as its folder, and the loaded pipeline is reused.
    from pipeline.diarize.pyannote import load_pipeline

    assert load_pipeline(pipeline_folder / "config.yaml") is load_pipeline(pipeline_folder)


@needs_pyannote
def test_pyannote_backend_refuses_hub_names(tmp_path):
    from pipeline.diarize import DiarizationOptions, diarize_mono
    from pipeline.timeline import Interval

    signal = np.zeros(16000, dtype=np.float32)
    with pytest.raises(ValueError, match="never downloads"):
        diarize_mono(signal, 16000, [Interval(0, 1)],
                     DiarizationOptions(mono_backend="pyannote", pyannote_pipeline="pyannote/speaker-diarization-3.1"))
    # A local config that still names a hub model is refused before pyannote sees it.
    (tmp_path / "config.yaml").write_text(
        "pipeline:\n  name: pyannote.audio.pipelines.SpeakerDiarization\n  params:\n"
        "    segmentation: pyannote/segmentation-3.0\n    embedding: $model/embedding\n    plda: $model/plda\n")
    with pytest.raises(ValueError, match="not a local path"):
        diarize_mono(signal, 16000, [Interval(0, 1)],
                     DiarizationOptions(mono_backend="pyannote", pyannote_pipeline=str(tmp_path)))


def test_pyannote_missing_gives_clear_error(monkeypatch, tmp_path):
    """Without pyannote.audio the backend says how to install it (runs in the main env)."""
    if HAVE_PYANNOTE:
        pytest.skip("pyannote.audio is installed here; this checks the message when it is not")
    from pipeline.diarize import DiarizationOptions, diarize_mono
    from pipeline.diarize.pyannote import PyannoteUnavailable
    from pipeline.timeline import Interval

    (tmp_path / "config.yaml").write_text("pipeline:\n  name: x\n")
    with pytest.raises(PyannoteUnavailable, match="setup_pyannote_env.sh"):
        diarize_mono(np.zeros(16000, dtype=np.float32), 16000, [Interval(0, 1)],
                     DiarizationOptions(mono_backend="pyannote", pyannote_pipeline=str(tmp_path)))

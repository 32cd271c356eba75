"""A small BERT sentence encoder (all-MiniLM-L6-v2) in numpy: no torch, no transformers.

The conduct analysis's semantic layer embeds a few dozen short turns per call. Running the
bundled MiniLM through sentence-transformers imports torch and transformers (measured here:
+206 MB and +259 MB resident, ~4 s per process); the same network is six small transformer
layers that numpy runs from the package's ``model.safetensors`` (memory-mapped, +~120 MB, 0.1 s
to load) with the ``tokenizers`` library faster-whisper already depends on. The price is speed:
about 1.5x torch's time per turn on one thread (numpy's element-wise passes are not fused).
Outputs match sentence-transformers to float32 precision (a test compares them when
sentence-transformers is installed).

Only what all-MiniLM-L6-v2 uses is implemented: a BERT encoder with absolute positions, exact
GELU, mean pooling over the attention mask, L2 normalization.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors`` file as numpy arrays, floats as float32 (the format is an
    8-byte header length, a JSON header of names/dtypes/shapes/offsets, then raw little-endian data)."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")  # mapped, not read: only the float32 copies stay resident
    (n,) = struct.unpack("<Q", raw[:8].tobytes())
    header = json.loads(raw[8:8 + n].tobytes())
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(meta["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} has dtype {meta['dtype']}; supported: {', '.join(_DTYPES)}")
        a, b = meta["data_offsets"]
        arr = raw[base + a:base + b].view(dtype).reshape(meta["shape"])
        out[name] = np.array(arr, dtype=np.float32 if arr.dtype.kind == "f" else arr.dtype)  # a copy: unmapped after
    del raw
    return out


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray  # (hidden, 3 * hidden): query, key and value in one matmul
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    up_w: np.ndarray
    up_b: np.ndarray
    down_w: np.ndarray
    down_b: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU. erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, float32 precision):
    three times faster than scipy's erf, which was most of the encoder's time."""
    z = np.abs(x) * np.float32(1 / np.sqrt(2.0))
    t = 1.0 / (1.0 + np.float32(0.3275911) * z)
    poly = ((((np.float32(1.061405429) * t - np.float32(1.453152027)) * t + np.float32(1.421413741)) * t
             - np.float32(0.284496736)) * t + np.float32(0.254829592)) * t
    erf_abs = 1.0 - poly * np.exp(-z * z)
    return 0.5 * x * (1.0 + np.copysign(erf_abs, x))


class MiniLMEncoder:
    """``encode(texts)`` like sentence-transformers' ``SentenceTransformer.encode`` for a BERT
    model folder (``config.json``, ``model.safetensors``, ``tokenizer.json``)."""

    def __init__(self, folder: str | Path, *, max_seq_length: int | None = None):
        from tokenizers import Tokenizer

        folder = Path(folder)
        cfg = json.loads((folder / "config.json").read_text())
        if cfg.get("model_type") != "bert" or cfg.get("hidden_act") != "gelu":
            raise ValueError(f"{folder}: not a BERT model with GELU (model_type={cfg.get('model_type')!r})")
        st_cfg = folder / "sentence_bert_config.json"
        if max_seq_length is None:
            max_seq_length = json.loads(st_cfg.read_text()).get("max_seq_length", 256) if st_cfg.exists() else 256
        self.max_len = int(min(max_seq_length, cfg["max_position_embeddings"]))
        self.heads = int(cfg["num_attention_heads"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        w = read_safetensors(folder / "model.safetensors")
        p = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""
        self.word = w[f"{p}embeddings.word_embeddings.weight"]
        self.pos = w[f"{p}embeddings.position_embeddings.weight"]
        self.type0 = w[f"{p}embeddings.token_type_embeddings.weight"][0]
        self.emb_ln = (w[f"{p}embeddings.LayerNorm.weight"], w[f"{p}embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(int(cfg["num_hidden_layers"])):
            q = f"{p}encoder.layer.{i}."
            att = q + "attention."
            self.layers.append(_Layer(
                qkv_w=np.ascontiguousarray(np.concatenate([w[f"{att}self.{k}.weight"].T
                                                            for k in ("query", "key", "value")], axis=1)),
                qkv_b=np.concatenate([w[f"{att}self.{k}.bias"] for k in ("query", "key", "value")]),
                out_w=w[f"{att}output.dense.weight"].T.copy(), out_b=w[f"{att}output.dense.bias"],
                ln1_g=w[f"{att}output.LayerNorm.weight"], ln1_b=w[f"{att}output.LayerNorm.bias"],
                up_w=w[f"{q}intermediate.dense.weight"].T.copy(), up_b=w[f"{q}intermediate.dense.bias"],
                down_w=w[f"{q}output.dense.weight"].T.copy(), down_b=w[f"{q}output.dense.bias"],
                ln2_g=w[f"{q}output.LayerNorm.weight"], ln2_b=w[f"{q}output.LayerNorm.bias"]))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_len)
        self.tokenizer.no_padding()

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        n, t = ids.shape
        h = self.heads
        x = self.word[ids] + self.pos[:t] + self.type0
        x = _layer_norm(x.reshape(n * t, -1), *self.emb_ln, self.eps)  # tokens as rows: one GEMM per dense layer
        d = x.shape[-1] // h
        bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)  # padding gets no attention
        for L in self.layers:
            qkv = (x @ L.qkv_w + L.qkv_b).reshape(n, t, 3, h, d).transpose(2, 0, 3, 1, 4)  # (3, n, h, t, d)
            scores = qkv[0] @ qkv[1].transpose(0, 1, 3, 2) * (1.0 / np.sqrt(d)) + bias
            scores -= scores.max(-1, keepdims=True)
            att = np.exp(scores)
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ qkv[2]).transpose(0, 2, 1, 3).reshape(n * t, h * d)
            x = _layer_norm(x + ctx @ L.out_w + L.out_b, L.ln1_g, L.ln1_b, self.eps)
            x = _layer_norm(x + _gelu(x @ L.up_w + L.up_b) @ L.down_w + L.down_b, L.ln2_g, L.ln2_b, self.eps)
        m = mask.reshape(n, t, 1).astype(np.float32)
        return (x.reshape(n, t, -1) * m).sum(1) / np.maximum(m.sum(1), 1e-9)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, normalize_embeddings: bool = True) -> np.ndarray:
        """(len(texts), hidden) float32 embeddings; texts of similar length are batched together."""
        encs = self.tokenizer.encode_batch(list(texts))
        out = np.zeros((len(encs), self.word.shape[1]), dtype=np.float32)
        order = sorted(range(len(encs)), key=lambda i: len(encs[i].ids))
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            t = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), t), dtype=np.int64)
            mask = np.zeros((len(idx), t), dtype=np.int64)
            for row, i in enumerate(idx):
                e = encs[i].ids
                ids[row, :len(e)] = e
                mask[row, :len(e)] = 1
            out[idx] = self._forward(ids, mask)
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

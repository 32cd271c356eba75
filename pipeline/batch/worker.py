"""Code that runs inside batch workers (local processes or Dask workers).

Importable on purpose: a function defined in ``__main__`` is pickled by value and
its module globals start empty in every task, so a model cache there would reload
the model every call. Here, and in :func:`pipeline.process.get_models`, the cache
lives in a module that each worker process imports once.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import time
from typing import Any, Callable

from .manifest import WorkItem

DEFAULT_WORK = "pipeline.batch.worker:analyze_item"

_resolved: dict[str, Callable] = {}


def resolve(ref: str) -> Callable:
    """``"package.module:function"`` -> the function (cached per process)."""
    fn = _resolved.get(ref)
    if fn is None:
        mod, _, name = ref.partition(":")
        if not name:
            raise ValueError(f"work function {ref!r} must look like 'package.module:function'")
        fn = getattr(importlib.import_module(mod), name)
        _resolved[ref] = fn
    return fn


def analyze_item(item: WorkItem, config: Any, *, threads: int | None = None) -> dict:
    """The real work: one call through the whole pipeline, as a serialized record dict."""
    from ..process import analyze_file, get_models

    record = analyze_file(item.path, config=config, call_id=item.call_id, channel_map=item.channel_map,
                          metadata=dict(item.metadata), models=get_models(config, cpu_threads=threads))
    words = getattr(getattr(config, "output", None), "words", True)
    # Round-trip through JSON so the writer stores exactly what records.jsonl holds.
    return json.loads(record.to_json(with_words=words))


def warm_up(config: Any, threads: int | None = None) -> bool:
    """Load the models into this process's cache (run once per worker, before the first call)."""
    from ..process import get_models

    _ = get_models(config, cpu_threads=threads).transcriber.model  # the property loads the model
    return True


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_task(work_ref: str, item: WorkItem, config: Any, threads: int | None = None) -> dict:
    """Run one call; the envelope tells the writer how long it took and where."""
    t0 = time.perf_counter()
    record = resolve(work_ref)(item, config, threads=threads)
    return {"record": record, "elapsed_s": time.perf_counter() - t0, "worker": worker_name()}

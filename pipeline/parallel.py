"""Run many calls on a local process pool; each worker loads the models once.

One worker process per core with one CPU thread each beats one process with many
threads for faster-whisper on CPU (measured; see docs/BENCHMARKS.md). A worker that
dies (out of memory, a native crash) takes only its call with it: the pool is
rebuilt and the call retried once, then recorded as an error.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from .asr import default_threads
from .audio import probe_source
from .config import Config
from .record import error_record

log = logging.getLogger("pipeline")


@dataclass(frozen=True)
class Job:
    path: Path
    call_id: str
    channel_map: str | None = None
    metadata: dict = field(default_factory=dict)


OnRecord = Callable[[Job, dict], None]

_worker_config: Config | None = None
_worker_threads: int | None = None


def _init_worker(config: Config, threads: int, log_level: int) -> None:
    global _worker_config, _worker_threads
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _worker_config, _worker_threads = config, threads


def _work(job: Job) -> dict:
    from .process import analyze_file, get_models
    from .record import round_times

    assert _worker_config is not None
    models = get_models(_worker_config, cpu_threads=_worker_threads)
    rec = analyze_file(job.path, config=_worker_config, call_id=job.call_id, channel_map=job.channel_map,
                       metadata=job.metadata, models=models)
    return round_times(rec.to_dict(with_words=_worker_config.output.words))


def run_jobs(jobs: Iterable[Job], *, config: Config, workers: int, on_record: OnRecord,
             max_attempts: int = 2) -> None:
    """Analyse every job, calling ``on_record(job, record_dict)`` in the caller's process as each finishes."""
    jobs = list(jobs)
    threads = config.asr.cpu_threads or default_threads(workers)
    if workers <= 1 or len(jobs) <= 1:
        _init_worker(config, threads, logging.getLogger().level)
        for job in jobs:
            on_record(job, _work(job))
        return

    attempts = {j.call_id: 0 for j in jobs}
    pending = list(jobs)
    while pending:
        ctx = mp.get_context("spawn")  # fork + CTranslate2/OpenMP threads is unsafe
        with ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=ctx, initializer=_init_worker,
                                 initargs=(config, threads, logging.getLogger().level)) as pool:
            futures = {pool.submit(_work, j): j for j in pending}
            pending = []
            not_done = set(futures)
            while not_done:
                done, not_done = wait(not_done, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = futures[fut]
                    try:
                        on_record(job, fut.result())
                    except BrokenProcessPool:
                        attempts[job.call_id] += 1
                        if attempts[job.call_id] < max_attempts:
                            pending.append(job)
                        else:
                            on_record(job, _crash_record(job))
                    except Exception as e:  # an exception escaping analyze_file is a bug; keep the batch going
                        log.error("call %s: worker error %s", job.call_id, e)
                        on_record(job, _crash_record(job, str(e)))
        if pending:
            log.warning("a worker process died; retrying %d call(s) in a fresh pool", len(pending))


def _crash_record(job: Job, why: str = "") -> dict:
    from .record import round_times

    msg = ("The worker process analysing this call died (out of memory or a crash in a native library) twice; "
           "the call was not analysed." + (f" ({why})" if why else ""))
    return round_times(error_record(job.call_id, probe_source(job.path), "worker_crashed", msg,
                                    metadata=job.metadata).to_dict())

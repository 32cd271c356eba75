"""Dask engine: the same calls on a Dask cluster (local or ``tcp://scheduler:8786``).

* Tasks call :func:`pipeline.batch.worker.run_task` — an importable module, so each
  worker process keeps its models in :func:`pipeline.process.get_models`'s cache
  across calls (warmed once per worker when the engine starts).
* Results come back to this process, the single writer; workers never touch the
  output folder or the database.
* A worker lost mid-call: the scheduler reschedules the task on another worker
  (``distributed.scheduler.allowed-failures`` times), and past that the runner's own
  bounded retry submits it again; either way the call is not lost.
* Per-call timeout: measured from when the scheduler reports the task processing;
  on expiry the call is reported as a timeout and its worker restarted (the only way
  to stop a running task).
* Only ``2 x threads`` tasks are in flight at once, so a 100,000-call archive does not
  flood the scheduler and retries keep their place in the queue.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import deque
from typing import Any, Iterator

from .pool import THREAD_ENV_VARS, Outcome, Task, restore_env, worker_threads
from .worker import run_task, warm_up

log = logging.getLogger("pipeline")


class DaskPool:
    name = "dask"

    def __init__(self, *, work_ref: str, config: Any, workers: int, timeout_s: float | None,
                 scheduler: str | None = None, warm: bool = True, threads_per_worker: int = 1) -> None:
        from distributed import Client, LocalCluster

        self.work_ref = work_ref
        self.config = config
        self.timeout_s = timeout_s if timeout_s and timeout_s > 0 else None
        self.cluster = None
        self._nthreads, self._nthreads_at = max(1, workers), -1e9
        for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core"):
            if logging.getLogger(name).getEffectiveLevel() < logging.WARNING:  # keep the summary readable
                logging.getLogger(name).setLevel(logging.WARNING)
        # Dask's in-process nannies write OMP/MKL/OPENBLAS_NUM_THREADS=1 into *this* process's
        # environment when they spawn workers; put it back so what the caller runs next (a
        # `callqa analyze` subprocess, numpy here) keeps its own thread settings.
        self._saved_env = {k: os.environ.get(k) for k in THREAD_ENV_VARS}
        if scheduler:
            self.client = Client(scheduler, timeout="60s")
        else:
            self.cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=threads_per_worker,
                                        processes=True, dashboard_address=None, silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
            restore_env(self._saved_env)
        # one CPU thread per running call unless the config says otherwise
        self.threads = worker_threads(config, max(2, self.workers))
        if warm:
            try:
                self.client.run(warm_up, config, self.threads)
            except Exception as e:  # the first call on each worker reports the real problem
                log.warning("dask warm-up failed: %s", e)
        self.pending: deque[Task] = deque()
        self.inflight: dict[Any, Task] = {}  # future -> task
        self.started: dict[str, float] = {}  # future key -> first seen processing

    @property
    def workers(self) -> int:
        # asked of the scheduler at most every 10 s: the cluster may grow or shrink while the batch runs
        now = time.monotonic()
        if now - self._nthreads_at > 10.0:
            try:
                self._nthreads = max(1, sum(self.client.nthreads().values()))
            except Exception:
                pass
            self._nthreads_at = now
        return self._nthreads

    def submit(self, task: Task) -> None:
        self.pending.append(task)

    def _fill(self) -> None:
        cap = 2 * self.workers
        while self.pending and len(self.inflight) < cap:
            task = self.pending.popleft()
            key = f"callqa-{task.item.call_id}-{task.attempt}-{uuid.uuid4().hex[:8]}"
            fut = self.client.submit(run_task, self.work_ref, task.item, self.config, self.threads, key=key,
                                     pure=False, retries=0)
            self.inflight[fut] = task

    def _check_timeouts(self) -> list[tuple[Any, str]]:
        if not self.timeout_s:
            return []
        now = time.monotonic()
        try:
            processing = self.client.processing()
        except Exception:
            return []
        where = {k: w for w, keys in processing.items() for k in keys}
        expired = []
        for fut in list(self.inflight):
            if fut.key in where:
                t0 = self.started.setdefault(fut.key, now)
                if now - t0 >= self.timeout_s:
                    expired.append((fut, where[fut.key]))
        return expired

    def events(self) -> Iterator[Outcome]:
        from distributed import wait
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        last_check = 0.0
        while self.pending or self.inflight:
            self._fill()
            try:
                done, _ = wait(list(self.inflight), timeout=2.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            except Exception:  # distributed raises its own TimeoutError subclass on some versions
                done = set()
            for fut in done:
                task = self.inflight.pop(fut)
                t0 = self.started.pop(fut.key, None)
                elapsed = time.monotonic() - t0 if t0 else 0.0
                if fut.status == "finished":
                    env = fut.result()
                    yield Outcome(task, "ok", result=env, worker=env.get("worker", ""), elapsed_s=elapsed)
                    continue
                try:
                    exc = fut.exception()
                except FutureCancelledError:
                    exc = None
                except Exception as e:
                    exc = e
                if exc is None or isinstance(exc, KilledWorker):
                    yield Outcome(task, "worker_lost", message=f"dask worker lost during the call ({exc or 'cancelled'})",
                                  elapsed_s=elapsed)
                else:
                    yield Outcome(task, "exception", message=f"{type(exc).__name__}: {exc}"[:2000], elapsed_s=elapsed)
            if time.monotonic() - last_check > 2.0:
                last_check = time.monotonic()
                for fut, addr in self._check_timeouts():
                    task = self.inflight.pop(fut, None)
                    if task is None:
                        continue
                    self.started.pop(fut.key, None)
                    fut.cancel()
                    log.warning("call %s exceeded %.0f s on %s; restarting that worker", task.item.call_id,
                                self.timeout_s, addr)
                    try:
                        self.client.restart_workers([addr], timeout=120, raise_for_error=False)
                    except Exception as e:
                        log.warning("could not restart worker %s: %s", addr, e)
                    yield Outcome(task, "timeout", message=f"call took longer than the {self.timeout_s:g} s timeout",
                                  worker=addr, elapsed_s=self.timeout_s)

    def close(self) -> None:
        for fut in self.inflight:
            fut.cancel()
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
            restore_env(self._saved_env)

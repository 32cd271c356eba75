"""Engines: run tasks on workers, report each outcome to the single writer.

Both engines have the same small interface — ``submit(task)``, ``events()`` yielding
:class:`Outcome`, ``close()`` — so the runner's bookkeeping (retries, records,
summary) does not care where a call ran.

Local engine: N spawned processes, one call at a time each. The parent enforces the
per-call timeout by killing the worker (a stuck decoder or model cannot be
interrupted from inside) and starts a fresh one; a worker that dies (OOM killer,
segfault) turns into a ``worker_lost`` outcome for its call, which the runner retries.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait as mp_wait
from typing import Any, Iterator

from .manifest import WorkItem

log = logging.getLogger("pipeline")


@dataclass
class Task:
    item: WorkItem
    work_key: str | None
    attempt: int = 1


@dataclass
class Outcome:
    task: Task
    kind: str  # ok | exception | timeout | worker_lost
    result: dict | None = None  # run_task envelope when ok
    message: str = ""
    worker: str = ""
    elapsed_s: float = 0.0


def worker_threads(config: Any, workers: int) -> int | None:
    """CPU threads per worker: the config's, else one per worker when several run (faster than threads)."""
    asr = getattr(config, "asr", None)
    if asr is None:
        return None
    if getattr(asr, "cpu_threads", 0):
        return asr.cpu_threads
    from ..asr import default_threads

    return default_threads(workers)


def _worker_main(conn, work_ref: str, config: Any, warm: bool, threads: int | None) -> None:
    from . import worker

    # Ctrl-C goes to the parent, which stops the pool; workers must not die mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def _orphan_watch() -> None:  # parent SIGKILLed: stop instead of burning CPU on unwanted work
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=_orphan_watch, daemon=True).start()
    if warm:
        try:
            worker.warm_up(config, threads)
        except Exception as e:  # the first call reports the real error
            log.warning("worker warm-up failed: %s", e)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        tid, item = msg
        try:
            env = worker.run_task(work_ref, item, config, threads)
            conn.send(("ok", tid, env, ""))
        except BaseException as e:  # noqa: BLE001 - report everything, the parent decides
            tb = traceback.format_exception_only(type(e), e)[-1].strip()
            conn.send(("exception", tid, None, tb[:2000]))


THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def restore_env(saved: dict[str, str | None]) -> None:
    """Put environment variables back as ``{name: value or None (unset)}`` recorded them."""
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class _Proc:
    def __init__(self, ctx, work_ref: str, config: Any, warm: bool, threads: int | None) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child, work_ref, config, warm, threads), daemon=True)
        # The child reads its environment at start: pin the math libraries' thread pools to the
        # worker's share, as Dask does for its workers (results then match across engines, and
        # N workers do not each start one OpenMP thread per core).
        saved = {k: os.environ.get(k) for k in THREAD_ENV_VARS}
        if threads and os.environ.get("CALLQA_PIN_THREADS", "1") != "0":  # 0: leave the libraries' defaults
            os.environ.update({k: str(threads) for k in THREAD_ENV_VARS})
        try:
            self.process.start()
        finally:
            restore_env(saved)
        child.close()
        self.task: Task | None = None
        self.tid = 0
        self.started = 0.0

    @property
    def name(self) -> str:
        return f"local:{self.process.pid}"

    def kill(self) -> None:
        try:
            self.process.kill()
        except Exception:
            pass
        self.process.join(5)
        self.conn.close()


class LocalPool:
    name = "local"

    def __init__(self, *, work_ref: str, config: Any, workers: int, timeout_s: float | None,
                 warm: bool = True, start_method: str = "spawn") -> None:
        self.work_ref = work_ref
        self.config = config
        self.n = max(1, workers)
        self.timeout_s = timeout_s if timeout_s and timeout_s > 0 else None
        self.warm = warm
        self.threads = worker_threads(config, self.n)
        # spawn, not fork: CTranslate2/OpenMP threads in a forked parent deadlock children
        self.ctx = mp.get_context(start_method)
        self.pending: deque[Task] = deque()
        self.procs: list[_Proc] = []
        self._tid = 0

    @property
    def workers(self) -> int:
        return self.n

    def submit(self, task: Task) -> None:
        self.pending.append(task)

    def _spawn(self) -> _Proc:
        return _Proc(self.ctx, self.work_ref, self.config, self.warm, self.threads)

    def events(self) -> Iterator[Outcome]:
        while self.pending or any(p.task for p in self.procs):
            # Start workers lazily: a batch of 3 calls does not start 16 processes.
            busy = sum(1 for p in self.procs if p.task)
            while len(self.procs) < self.n and len(self.procs) - busy < len(self.pending):
                self.procs.append(self._spawn())
            for p in self.procs:
                if p.task is None and self.pending:
                    task = self.pending.popleft()
                    self._tid += 1
                    p.task, p.tid, p.started = task, self._tid, time.monotonic()
                    try:
                        p.conn.send((p.tid, task.item))
                    except (OSError, BrokenPipeError):
                        pass  # the sentinel below reports the dead worker
            busy_procs = [p for p in self.procs if p.task]
            if not busy_procs:
                continue
            now = time.monotonic()
            wait_s = 5.0
            if self.timeout_s:
                wait_s = min(wait_s, max(0.0, min(p.started + self.timeout_s for p in busy_procs) - now))
            handles = {}
            for p in busy_procs:
                handles[p.conn] = p
                handles[p.process.sentinel] = p
            ready = mp_wait(list(handles), timeout=wait_s)
            done: set[int] = set()
            for h in ready:
                p = handles[h]
                if id(p) in done or p.task is None:
                    continue
                task = p.task
                elapsed = time.monotonic() - p.started
                msg = None
                if h is p.conn or p.conn.poll():
                    try:
                        msg = p.conn.recv()
                    except (EOFError, OSError):
                        msg = None
                done.add(id(p))
                if msg is None:
                    code = p.process.exitcode
                    self._replace(p)
                    yield Outcome(task, "worker_lost", message=f"worker process died (exit code {code}) during the call",
                                  worker=p.name, elapsed_s=elapsed)
                    continue
                kind, tid, env, text = msg
                p.task = None
                if kind == "ok":
                    yield Outcome(task, "ok", result=env, worker=env.get("worker", p.name), elapsed_s=elapsed)
                else:
                    yield Outcome(task, "exception", message=text, worker=p.name, elapsed_s=elapsed)
            if self.timeout_s:
                now = time.monotonic()
                for p in list(self.procs):
                    if p.task is not None and id(p) not in done and now - p.started >= self.timeout_s:
                        task = p.task
                        log.warning("call %s exceeded %.0f s; stopping its worker", task.item.call_id, self.timeout_s)
                        self._replace(p)
                        yield Outcome(task, "timeout", message=f"call took longer than the {self.timeout_s:g} s "
                                      f"timeout (raise --timeout for very long recordings)", worker=p.name,
                                      elapsed_s=now - p.started)

    def _replace(self, p: _Proc) -> None:
        p.task = None
        p.kill()
        self.procs.remove(p)  # a fresh one is started when there is work

    def close(self) -> None:
        for p in self.procs:
            try:
                p.conn.send(None)
            except Exception:
                pass
        for p in self.procs:
            p.process.join(2)
            if p.process.is_alive():
                p.kill()
        self.procs.clear()

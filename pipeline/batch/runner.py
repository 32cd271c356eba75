"""``callqa batch``: every call of a source processed exactly once, whatever happens.

The runner reads the source, works out each call's work key (content sha256 +
front-end config hash + pipeline version + channel map), skips calls already stored
with that key, re-runs only the analyses where just thresholds changed, and sends
the rest to an engine (local processes or Dask). Outcomes come back to this process,
the single writer. Transient failures (a lost worker, an exception) are retried up
to ``retries`` times; a call that still fails, times out, or cannot be decoded gets
an error record and the batch goes on.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..audio import file_sha256, probe_source
from ..record import error_record, round_times
from .keys import config_hashes, pipeline_version, work_key
from .manifest import WorkItem, read_source
from .pool import LocalPool, Outcome, Task
from .worker import DEFAULT_WORK
from .writer import Writer, utcnow

log = logging.getLogger("pipeline")

# Exit codes of `callqa batch` (docs/BATCH.md).
EXIT_OK = 0  # every call of the source has an ok record
EXIT_CALL_ERRORS = 1  # the batch finished; some calls have error records (see the summary)
EXIT_USAGE = 2  # bad arguments, config or manifest: nothing was processed
EXIT_NO_INPUT = 3  # the source holds no recordings
EXIT_FATAL = 4  # the batch could not run or stopped (output folder, database, cluster); rerun resumes
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C / SIGTERM; rerun resumes

# Error kinds that a rerun would only repeat: the audio itself is the problem.
PERMANENT_ERRORS = {"empty", "decode_error", "unsupported_format", "too_short", "too_long", "silent", "not_found",
                    "unreadable", "no_speech", "bad_settings"}
RETRYABLE = {"worker_lost", "exception"}


class BatchError(RuntimeError):
    """The batch as a whole cannot run (not one call's problem)."""


@dataclass(frozen=True)
class BatchOptions:
    engine: str = "local"  # local | dask
    workers: int = 0  # 0: one per CPU core (local) / LocalCluster default size
    scheduler: str | None = None  # tcp://host:8786 for an existing Dask cluster
    timeout_s: float = 1800.0  # per call; 0 = none. Default: 30 min covers a 3 h call on one slow core
    retries: int = 2  # extra tries after a lost worker or an exception
    retry_timeouts: bool = False  # timeouts are usually the recording, not bad luck
    retry_errors: bool = False  # also redo calls stored with permanent errors
    force: bool = False  # redo every call
    per_call_files: bool = True
    work: str = DEFAULT_WORK  # "module:function" run per call (tests plug in fakes)
    warm: bool = True  # load models in each worker before its first call

    def __post_init__(self) -> None:
        if self.engine not in ("local", "dask"):
            raise ValueError(f"batch engine must be 'local' or 'dask', got {self.engine!r}")
        if self.workers < 0:
            raise ValueError("batch workers must be >= 0 (0 = one per CPU core)")
        if self.retries < 0:
            raise ValueError("batch retries must be >= 0")
        if self.timeout_s < 0:
            raise ValueError("batch timeout must be >= 0 seconds (0 = no timeout)")


@dataclass
class Plan:
    process: list[Task] = field(default_factory=list)
    reanalyze: list[tuple[WorkItem, str]] = field(default_factory=list)
    skipped: list[WorkItem] = field(default_factory=list)
    metadata_refresh: list[WorkItem] = field(default_factory=list)
    unreadable: list[tuple[WorkItem, str, str]] = field(default_factory=list)


def _hash_items(items: list[WorkItem], writer: Writer) -> tuple[dict[str, str], list[tuple[WorkItem, str, str]]]:
    """call_id -> content sha256; files unchanged since last time are not re-read."""
    cache = writer.cached_hashes()
    shas: dict[str, str] = {}
    bad = []
    todo = []
    for it in items:
        try:
            st = os.stat(it.path)
        except FileNotFoundError:
            bad.append((it, "not_found", f"No such file: {it.path} (check the manifest path)"))
            continue
        except OSError as e:
            bad.append((it, "unreadable", f"cannot read {it.path}: {e.strerror}"))
            continue
        hit = cache.get(it.path)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            shas[it.call_id] = hit[2]
        else:
            todo.append((it, st))

    def _one(pair):
        it, st = pair
        try:
            return it, st, file_sha256(it.path), None
        except OSError as e:
            return it, st, None, e

    new_rows = []
    with ThreadPoolExecutor(max_workers=4) as ex:  # hashlib releases the GIL; I/O overlaps
        for it, st, sha, err in ex.map(_one, todo):
            if sha is None:
                bad.append((it, "unreadable", f"cannot read {it.path}: {err}"))
            else:
                shas[it.call_id] = sha
                new_rows.append((it.path, st.st_size, st.st_mtime_ns, sha))
    if new_rows:
        writer.save_hashes(new_rows)
    return shas, bad


def plan_batch(items: list[WorkItem], writer: Writer, *, frontend_hash: str, analysis_hash: str, version: str,
               options: BatchOptions) -> Plan:
    shas, bad = _hash_items(items, writer)
    plan = Plan(unreadable=bad)
    rows = {r["call_id"]: r for r in writer.conn.execute(
        "SELECT call_id, work_key, status, error_kind, analysis_hash, metadata_json FROM calls")}
    for it in items:
        sha = shas.get(it.call_id)
        if sha is None:
            continue
        key = work_key(sha, frontend_hash, version, it.channel_map)
        row = rows.get(it.call_id)
        done = row is not None and row["work_key"] == key and not options.force and (
            row["status"] == "ok" or (row["error_kind"] in PERMANENT_ERRORS and not options.retry_errors))
        if not done:
            plan.process.append(Task(item=it, work_key=key))
        elif row["status"] == "ok" and row["analysis_hash"] != analysis_hash:
            plan.reanalyze.append((it, key))
        else:
            plan.skipped.append(it)
            if json.loads(row["metadata_json"] or "{}") != it.metadata:
                plan.metadata_refresh.append(it)
    return plan


def _default_workers(engine: str) -> int:
    return max(1, os.cpu_count() or 1)


def make_pool(options: BatchOptions, config: Any):
    workers = options.workers or _default_workers(options.engine)
    if options.engine == "dask":
        from .dask_engine import DaskPool

        try:
            return DaskPool(work_ref=options.work, config=config, workers=workers, timeout_s=options.timeout_s,
                            scheduler=options.scheduler, warm=options.warm)
        except OSError as e:
            raise BatchError(f"cannot reach the Dask scheduler {options.scheduler or '(local cluster)'}: {e}") from None
    return LocalPool(work_ref=options.work, config=config, workers=workers, timeout_s=options.timeout_s,
                     warm=options.warm)


def _batch_provenance(record: dict, **fields: Any) -> dict:
    prov = dict(record.get("provenance") or {})
    prov["batch"] = {k: v for k, v in fields.items() if v is not None}
    record["provenance"] = prov
    return record


def _failure_record(item: WorkItem, kind: str, message: str, *, config_hash: str, version: str) -> dict:
    rec = error_record(item.call_id, probe_source(item.path), kind, message or kind,
                       provenance={"pipeline_version": version, "config_hash": config_hash, "processed_at": utcnow()},
                       metadata=dict(item.metadata))
    return round_times(rec.to_dict())


def run_batch(source: str | Path, out_dir: str | Path, *, config: Any, options: BatchOptions = BatchOptions(),
              progress: Callable[[dict], None] | None = None) -> dict:
    """Process ``source`` into ``out_dir``; return the run summary (also written to ``out_dir``)."""
    t0 = time.perf_counter()
    started_at = utcnow()
    items = read_source(source)  # ManifestError (a ValueError) -> exit code 2
    try:
        out_opts = getattr(config, "output", None)
        writer = Writer(out_dir, per_call_files=options.per_call_files, vtt=getattr(out_opts, "vtt", True),
                        rttm=getattr(out_opts, "rttm", True))
    except Exception as e:  # noqa: BLE001
        raise BatchError(f"cannot open the output folder {out_dir}: {e}") from None
    version = pipeline_version()
    frontend_hash, analysis_hash = config_hashes(config)
    config_hash = getattr(config, "hash", frontend_hash)
    run_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    try:
        writer.reconcile()  # repair records.jsonl after a crash of the previous run
        writer.start_run(run_id, source=str(source), config_hash=config_hash, version=version)
        t_plan = time.perf_counter()
        plan = plan_batch(items, writer, frontend_hash=frontend_hash, analysis_hash=analysis_hash, version=version,
                          options=options)
        machinery = {"plan_s": time.perf_counter() - t_plan, "commit_s": 0.0}
        counts = {"calls": len(items), "skipped": len(plan.skipped), "processed": 0, "reanalyzed": 0,
                  "retried": 0, "timeouts": 0, "metadata_refreshed": len(plan.metadata_refresh)}
        audio_s = 0.0
        busy_s = 0.0
        interrupted = False
        total_todo = len(plan.process) + len(plan.reanalyze) + len(plan.unreadable)
        finished = 0

        def _note(call_id: str, status: str) -> None:
            nonlocal finished
            finished += 1
            if progress:
                progress({"done": finished, "total": total_todo, "call_id": call_id, "status": status})

        common = {"run_id": run_id, "analysis_hash": analysis_hash, "engine": options.engine}
        for it in plan.metadata_refresh:
            writer.update_metadata(it.call_id, it.metadata)
        for it, kind, msg in plan.unreadable:
            rec = _batch_provenance(_failure_record(it, kind, msg, config_hash=config_hash, version=version),
                                    work_key=None, attempt=1, **common)
            writer.commit(rec, run_id=run_id, work_key=None, analysis_hash=analysis_hash, attempt=1, outcome="error")
            _note(it.call_id, "error")
        if plan.reanalyze:
            from .reanalyze import reanalyze_record
            from .. import store

            for it, key in plan.reanalyze:
                old = store.load_record(writer.conn, it.call_id)
                rec = reanalyze_record(old, config, config_hash=config_hash)
                rec["metadata"] = dict(it.metadata)
                rec = _batch_provenance(rec, **{**(old.get("provenance", {}).get("batch") or {}),
                                                "reanalyzed_by": run_id, "analysis_hash": analysis_hash})
                writer.commit(rec, run_id=run_id, work_key=key, analysis_hash=analysis_hash, attempt=1,
                              outcome="reanalyzed")
                counts["reanalyzed"] += 1
                _note(it.call_id, rec["status"])

        if plan.process:
            pool = make_pool(options, config)
            counts["workers"] = pool.workers
            try:
                for task in plan.process:
                    pool.submit(task)
                for out in pool.events():
                    t_c = time.perf_counter()
                    rec = _handle(out, pool, writer, options, common, counts, config_hash, version)
                    machinery["commit_s"] += time.perf_counter() - t_c
                    if rec is not None:
                        busy_s += out.elapsed_s
                        if rec["status"] == "ok":
                            audio_s += float(rec.get("duration_s") or 0.0)
                        _note(rec["call_id"], rec["status"])
            except KeyboardInterrupt:
                interrupted = True
            finally:
                pool.close()

        wall = time.perf_counter() - t0
        summary = _summary(writer, items, run_id=run_id, source=str(source), out_dir=str(out_dir),
                           started_at=started_at, wall_s=wall, audio_s=audio_s, busy_s=busy_s, counts=counts,
                           options=options, config_hash=config_hash, version=version, interrupted=interrupted)
        # the single writer's own time (hashing + planning, storing each call): what the batch adds per call
        summary["machinery_s"] = {k: round(v, 3) for k, v in machinery.items()}
        writer.finish_run(run_id, summary)
        return summary
    finally:
        writer.close()


def _handle(out: Outcome, pool, writer: Writer, options: BatchOptions, common: dict, counts: dict,
            config_hash: str, version: str) -> dict | None:
    task = out.task
    it = task.item
    if out.kind == "ok":
        rec = out.result["record"]
        rec = _batch_provenance(rec, work_key=task.work_key, attempt=task.attempt, worker=out.worker,
                                elapsed_s=round(out.elapsed_s, 3), **common)
        writer.commit(rec, run_id=common["run_id"], work_key=task.work_key, analysis_hash=common["analysis_hash"],
                      attempt=task.attempt, outcome=rec["status"], elapsed_s=out.elapsed_s, worker=out.worker)
        counts["processed"] += 1
        return rec
    if out.kind == "timeout":
        counts["timeouts"] += 1
    retry = out.kind in RETRYABLE or (out.kind == "timeout" and options.retry_timeouts)
    if retry and task.attempt <= options.retries:
        log.warning("%s: %s (%s); retrying (attempt %d of %d)", it.call_id, out.kind, out.message,
                    task.attempt + 1, options.retries + 1)
        writer.log_attempt(run_id=common["run_id"], call_id=it.call_id, work_key=task.work_key,
                           attempt=task.attempt, outcome=out.kind, message=out.message, elapsed_s=out.elapsed_s,
                           worker=out.worker)
        counts["retried"] += 1
        pool.submit(Task(item=it, work_key=task.work_key, attempt=task.attempt + 1))
        return None
    kind = {"exception": "internal"}.get(out.kind, out.kind)
    msg = out.message or out.kind
    if task.attempt > 1:
        msg = f"{msg} (after {task.attempt} attempts)"
    rec = _failure_record(it, kind, msg, config_hash=config_hash, version=version)
    rec = _batch_provenance(rec, work_key=task.work_key, attempt=task.attempt, worker=out.worker, **common)
    writer.commit(rec, run_id=common["run_id"], work_key=task.work_key, analysis_hash=common["analysis_hash"],
                  attempt=task.attempt, outcome=out.kind, elapsed_s=out.elapsed_s, worker=out.worker)
    counts["processed"] += 1
    return rec


def _summary(writer: Writer, items: list[WorkItem], *, run_id: str, source: str, out_dir: str, started_at: str,
             wall_s: float, audio_s: float, busy_s: float, counts: dict, options: BatchOptions, config_hash: str,
             version: str, interrupted: bool) -> dict:
    ids = {it.call_id: it for it in items}
    ok = err = 0
    total_audio = 0.0
    failures = []
    missing = set(ids)
    for row in writer.conn.execute("SELECT call_id, status, error_kind, error_message, audio_path, duration_s FROM calls"):
        if row["call_id"] not in ids:
            continue
        missing.discard(row["call_id"])
        if row["status"] == "ok":
            ok += 1
            total_audio += row["duration_s"] or 0.0
        else:
            err += 1
            failures.append({"call_id": row["call_id"], "path": row["audio_path"] or ids[row["call_id"]].path,
                             "kind": row["error_kind"], "message": row["error_message"]})
    if interrupted:
        code = EXIT_INTERRUPTED
    elif err:
        code = EXIT_CALL_ERRORS
    elif missing:
        code = EXIT_FATAL
    else:
        code = EXIT_OK
    return {
        "run_id": run_id,
        "source": source,
        "out": out_dir,
        "engine": options.engine,
        "started_at": started_at,
        "finished_at": utcnow(),
        "pipeline_version": version,
        "config_hash": config_hash,
        "interrupted": interrupted,
        "counts": {**counts, "ok": ok, "error": err, "missing": len(missing)},
        "audio_hours_processed": round(audio_s / 3600.0, 4),
        "audio_hours_total": round(total_audio / 3600.0, 4),
        "wall_s": round(wall_s, 3),
        "worker_busy_s": round(busy_s, 3),
        "speed_x_realtime": round(audio_s / wall_s, 2) if wall_s > 0 and audio_s else None,
        "failures": sorted(failures, key=lambda f: f["call_id"]),
        "exit_code": code,
    }


def summary_text(summary: dict, *, max_failures: int = 12) -> str:
    """One screen: what happened, how fast, and which calls failed and why."""
    c = summary["counts"]
    lines = [
        f"callqa batch {summary['run_id']}  ({summary['engine']}, {c.get('workers', 0)} workers)"
        + ("  INTERRUPTED - rerun to resume" if summary["interrupted"] else ""),
        f"  source  {summary['source']}",
        f"  output  {summary['out']}",
        f"  calls   {c['calls']}: {c['ok']} ok, {c['error']} error"
        + (f", {c['missing']} not done" if c.get("missing") else ""),
        f"  this run: {c['processed']} processed, {c['skipped']} already done, {c['reanalyzed']} re-analysed,"
        f" {c['retried']} retries, {c['timeouts']} timeouts",
        f"  audio   {summary['audio_hours_processed']:.3f} h processed in {summary['wall_s']:.1f} s"
        + (f"  ({summary['speed_x_realtime']:.1f}x real time)" if summary.get("speed_x_realtime") else ""),
    ]
    fails = summary["failures"]
    if fails:
        lines.append(f"  failures ({len(fails)}):")
        for f in fails[:max_failures]:
            lines.append(f"    {f['call_id']}: {f['kind']}: {(f['message'] or '')[:90]}")
        if len(fails) > max_failures:
            lines.append(f"    ... {len(fails) - max_failures} more in {summary['out']}/summary.json")
    lines.append(f"  exit code {summary['exit_code']}")
    return "\n".join(lines)

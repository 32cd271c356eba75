"""CLI commands of the batch capability: ``batch``, ``export``, ``reanalyze``, ``stats`` (registered by pipeline.cli).

Exit codes of ``callqa batch`` (docs/BATCH.md):
  0  every call of the source has an ok record
  1  the batch finished, some calls have error records (listed in the summary)
  2  bad usage, configuration or manifest: nothing was processed
  3  the source holds no recordings
  4  the batch could not run or stopped (output folder, database, Dask cluster); a rerun resumes
  130  interrupted (Ctrl-C / SIGTERM); a rerun resumes
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Optional

import typer


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _config(config_file: Optional[Path], model: Optional[str] = None):
    from ..config import load_config
    from .runner import EXIT_USAGE

    try:
        return load_config(config_file, overrides={"asr": {"model": model}} if model else None)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_USAGE)


def _sigterm_as_interrupt() -> None:
    # A scheduler (cron, SLURM, Kubernetes) stops jobs with SIGTERM: finish like Ctrl-C, summary written.
    def _raise(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, _raise)
    except ValueError:  # not the main thread (tests calling the function directly)
        pass


def batch(
    source: Path = typer.Argument(..., help="A folder of recordings or a manifest (.csv or .jsonl) with a 'path' column."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: callqa.db, records.jsonl, calls/<id>/, runs/, summary.json."),
    engine: str = typer.Option("local", "--engine", help="local (processes on this machine) or dask."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://host:8786); default: a local cluster."),
    workers: int = typer.Option(0, "--workers", "-w", min=0, help="Worker processes (0 = one per CPU core); for a local Dask cluster too."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file overriding config/default.toml."),
    model: Optional[str] = typer.Option(None, "--model", help="Whisper model: a CTranslate2 folder or a name."),
    timeout: float = typer.Option(1800.0, "--timeout", min=0, help="Seconds one call may take before it is stopped (0 = none)."),
    retries: int = typer.Option(2, "--retries", min=0, help="Extra tries after a lost worker or an unexpected exception."),
    retry_errors: bool = typer.Option(False, "--retry-errors", help="Also redo calls stored with errors such as decode_error."),
    force: bool = typer.Option(False, "--force", help="Redo every call, even those already done."),
    json_out: bool = typer.Option(False, "--json", help="Print the run summary as JSON instead of text."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each stage."),
    work: str = typer.Option("pipeline.batch.worker:analyze_item", "--work", hidden=True,
                             help="module:function run per call (tests and plug-ins)."),
) -> None:
    """Process every call of SOURCE into OUT exactly once; reruns skip what is done and resume after a crash."""
    from .manifest import ManifestError
    from .runner import (EXIT_FATAL, EXIT_INTERRUPTED, EXIT_NO_INPUT, EXIT_USAGE, BatchError, BatchOptions,
                         run_batch, summary_text)

    _setup_logging(verbose)
    config = _config(config_file, model)
    try:
        options = BatchOptions(engine=engine, workers=workers, scheduler=scheduler, timeout_s=timeout, retries=retries,
                               retry_errors=retry_errors, force=force, work=work)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_USAGE)
    if scheduler and engine != "dask":
        typer.echo("error: --scheduler needs --engine dask", err=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        from .manifest import read_source

        if not read_source(source):
            typer.echo(f"error: no recordings found in {source}", err=True)
            raise typer.Exit(EXIT_NO_INPUT)
    except ManifestError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_USAGE)

    tty = sys.stderr.isatty()

    def progress(info: dict) -> None:
        if quiet:
            return
        line = f"[{info['done']}/{info['total']}] {info['call_id']}: {info['status']}"
        if tty:
            typer.echo(f"\r\033[K{line}", err=True, nl=False)
        else:
            typer.echo(line, err=True)

    _sigterm_as_interrupt()
    try:
        summary = run_batch(source, out, config=config, options=options, progress=progress)
    except BatchError as e:
        typer.echo(f"\nerror: {e}", err=True)
        raise typer.Exit(EXIT_FATAL)
    except KeyboardInterrupt:
        typer.echo("\ninterrupted: finished calls are stored; rerun the same command to resume", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    except Exception as e:  # noqa: BLE001 - a database/disk failure stops the batch, with a reason
        logging.getLogger("pipeline").debug("batch failed", exc_info=True)
        typer.echo(f"\nerror: the batch stopped: {type(e).__name__}: {e}. Finished calls are stored; fix the "
                   "cause and rerun to resume.", err=True)
        raise typer.Exit(EXIT_FATAL)
    if tty and not quiet:
        typer.echo("", err=True)
    typer.echo(json.dumps(summary, indent=1) if json_out else summary_text(summary))
    raise typer.Exit(summary["exit_code"])


def export(
    source: Path = typer.Argument(..., help="Batch output folder (callqa.db), a .db file, or a records.jsonl."),
    fmt: str = typer.Option("parquet", "--format", "-f", help="parquet or csv."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for calls.<fmt> and flags.<fmt> (default: SOURCE/export)."),
) -> None:
    """Write one row per call (flattened metrics + metadata) and one row per flag (with verdicts)."""
    from ..export import export as do_export

    if fmt not in ("parquet", "csv"):
        typer.echo(f"error: --format must be parquet or csv, got {fmt!r}", err=True)
        raise typer.Exit(2)
    if out is None:
        out = (source if source.is_dir() else source.parent) / "export"
    try:
        paths = do_export(source, out, fmt=fmt)
    except FileNotFoundError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    for name, p in paths.items():
        typer.echo(f"{name}: {p}")


def reanalyze(
    out: Path = typer.Argument(..., help="Batch output folder (holding callqa.db)."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file with the new thresholds."),
    call_id: Optional[list[str]] = typer.Option(None, "--call-id", help="Only these calls (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Recompute metrics and flags from stored timelines (no ASR, no audio): seconds for thousands of calls."""
    from .reanalyze import reanalyze_store

    _setup_logging(verbose)
    config = _config(config_file)
    try:
        res = reanalyze_store(out, config=config, call_ids=call_id or None)
    except FileNotFoundError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    if json_out:
        typer.echo(json.dumps(res, indent=1))
        return
    typer.echo(f"reanalyzed {res['calls']} calls in {res['wall_s']:.2f} s: {res['changed']} changed; "
               f"flags {res['flags_before']} -> {res['flags_after']}")
    for t in sorted(set(res["flags_by_type_before"]) | set(res["flags_by_type_after"])):
        typer.echo(f"  {t:<28} {res['flags_by_type_before'].get(t, 0):6d} -> {res['flags_by_type_after'].get(t, 0):6d}")


def stats(
    source: Path = typer.Argument(..., help="Batch output folder / callqa.db, or the Parquet export (folder or calls.parquet)."),
    by: Optional[str] = typer.Option(None, "--by", help="Metadata column to group by (campaign, agent_id, call_type, ...)."),
    compare: Optional[str] = typer.Option(None, "--compare", help="Two groups of --by to compare: A,B (default: when there are exactly two)."),
    metric: Optional[list[str]] = typer.Option(None, "--metric", help="Also report this numeric column (repeatable), e.g. words_per_minute_agent."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write PNG charts into this folder."),
    json_out: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Flag rates, talk-ratio and noise distributions by cohort with 95% intervals; flag precision from verdicts."""
    from ..stats import compute_stats, load_tables, plot_stats, stats_text

    pair = None
    if compare:
        parts = [p.strip() for p in compare.split(",")]
        if len(parts) != 2 or not by:
            typer.echo("error: --compare needs --by and two group names: --compare A,B", err=True)
            raise typer.Exit(2)
        pair = (parts[0], parts[1])
    try:
        calls, flags = load_tables(source)
        result = compute_stats(calls, flags, by=by, compare=pair, metrics=tuple(metric or ()))
    except (FileNotFoundError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    typer.echo(json.dumps(result, indent=1, default=str) if json_out else stats_text(result))
    if plot:
        for p in plot_stats(result, calls, plot):
            typer.echo(f"chart: {p}", err=json_out)


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the ``callqa`` app."""
    app.command("batch")(batch)
    app.command("export")(export)
    app.command("reanalyze")(reanalyze)
    app.command("stats")(stats)

"""``callqa`` command line. Thin: parse, call the library, print, exit with a documented code.

Exit codes (all commands):
  0  every call analysed
  1  finished, but at least one call has an error record
  2  bad usage or configuration (nothing was analysed)
  3  no recordings found in the inputs
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Optional

import typer

from .audio import is_audio_path
from .config import Config, load_config
from .outputs import write_call_outputs
from .parallel import Job, run_jobs

EXIT_OK, EXIT_CALLS_FAILED, EXIT_USAGE, EXIT_NO_INPUT = 0, 1, 2, 3

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="callqa: turn recorded customer-service and sales calls into per-call quality records.")


@app.callback()
def _main() -> None:
    """callqa: turn recorded customer-service and sales calls into per-call quality records."""


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def load_cli_config(config_file: Optional[Path], *, model: Optional[str] = None,
                    diarization: Optional[dict] = None) -> Config:
    """Config from defaults + file + flags; a bad config exits with code 2 and says why."""
    overrides: dict = {}
    if model:
        overrides["asr"] = {"model": model}
    if diarization:
        overrides["diarization"] = diarization
    try:
        return load_config(config_file, overrides=overrides or None)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_USAGE)


def collect_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given (any extension: a bad one becomes an error record), folders searched recursively."""
    found: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.is_file() and is_audio_path(f)))
        else:
            found.append(p)
    seen: set[Path] = set()
    unique = []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def call_ids_for(paths: list[Path]) -> list[str]:
    """The file stem; files sharing a stem get their parent folder appended so no record is overwritten."""
    stems = Counter(p.stem for p in paths)
    ids, used = [], set()
    for p in paths:
        cid = p.stem if stems[p.stem] == 1 else f"{p.stem}__{p.parent.name or 'root'}"
        base, n = cid, 2
        while cid in used:
            cid, n = f"{base}-{n}", n + 1
        used.add(cid)
        ids.append(cid)
    return ids


class _Progress:
    """A progress bar on a terminal; nothing otherwise (logs carry the story)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("analysing calls", total=total)

    def advance(self, text: str) -> None:
        if self.bar:
            self.bar.update(self.task, advance=1, description=text[:40])

    def close(self) -> None:
        if self.bar:
            self.bar.stop()


def summarize(records: list[dict], wall_s: float) -> dict:
    ok = [r for r in records if r["status"] == "ok"]
    failed = [r for r in records if r["status"] != "ok"]
    audio_s = sum((r.get("source") or {}).get("duration_s") or 0.0 for r in ok)
    return {
        "calls": len(records), "ok": len(ok), "failed": len(failed),
        "audio_hours": round(audio_s / 3600, 4), "wall_s": round(wall_s, 2),
        "speed_x_realtime": round(audio_s / wall_s, 1) if wall_s > 0 else None,
        "flags": dict(Counter(f["type"] for r in ok for f in r.get("flags") or [])),
        "failures": [{"call_id": r["call_id"], "path": (r.get("source") or {}).get("path"),
                      "kind": r["error"]["kind"], "message": r["error"]["message"]} for r in failed],
    }


def print_summary(summary: dict, out: Path) -> None:
    s = summary
    typer.echo(f"\ncallqa: {s['calls']} call(s): {s['ok']} ok, {s['failed']} failed; "
               f"{s['audio_hours'] * 60:.1f} min of audio in {s['wall_s']:.1f} s "
               f"({s['speed_x_realtime'] or 0:.1f}x real time)")
    if s["flags"]:
        typer.echo("flags: " + ", ".join(f"{k} {v}" for k, v in sorted(s["flags"].items())))
    for f in s["failures"][:10]:
        typer.echo(f"  FAILED {f['call_id']} [{f['kind']}]: {f['message']}")
    if len(s["failures"]) > 10:
        typer.echo(f"  ... and {len(s['failures']) - 10} more (see summary.json)")
    typer.echo(f"records: {out / 'records.jsonl'}  (per call: {out / 'calls'}/<call_id>/)")


@app.command()
def analyze(
    inputs: list[Path] = typer.Argument(..., help="Recordings or folders (searched recursively by audio extension)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: records.jsonl, summary.json, calls/<id>/."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file overriding config/default.toml."),
    channels: Optional[str] = typer.Option(None, "--channels", help="Which channel is the agent: agent=left|right."),
    model: Optional[str] = typer.Option(None, "--model", help="Whisper model: a CTranslate2 folder or a name."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker processes (one model each); one per core is fastest."),
    num_speakers: Optional[int] = typer.Option(None, "--num-speakers", min=1, help="Mono calls: exactly this many speakers."),
    min_speakers: Optional[int] = typer.Option(None, "--min-speakers", min=1, help="Mono calls: at least this many speakers."),
    max_speakers: Optional[int] = typer.Option(None, "--max-speakers", min=1, help="Mono calls: at most this many speakers."),
    redact_audio: bool = typer.Option(False, "--redact-audio", help="Also write calls/<id>/redacted.<ext> with PII spans masked."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each stage."),
) -> None:
    """Analyse recordings: one record per input in OUT/records.jsonl (failures included as error records)."""
    _setup_logging(verbose)
    speakers = {k: v for k, v in (("num_speakers", num_speakers), ("min_speakers", min_speakers),
                                  ("max_speakers", max_speakers)) if v is not None}
    config = load_cli_config(config_file, model=model, diarization=speakers)
    if channels is not None:
        from .roles import parse_channel_map

        try:
            parse_channel_map(channels)
        except ValueError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(EXIT_USAGE)
    paths = collect_inputs(inputs)
    if not paths:
        typer.echo(f"error: no recordings found in {', '.join(map(str, inputs))}", err=True)
        raise typer.Exit(EXIT_NO_INPUT)
    jobs = [Job(path=p, call_id=cid, channel_map=channels) for p, cid in zip(paths, call_ids_for(paths))]

    out.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    progress = _Progress(len(jobs), enabled=not quiet)
    t0 = time.perf_counter()
    with open(out / "records.jsonl", "w", encoding="utf-8") as jsonl:
        def on_record(job: Job, rec: dict) -> None:
            write_call_outputs(rec, out, vtt=config.output.vtt, rttm=config.output.rttm)
            if redact_audio and rec["status"] == "ok":
                _write_redacted_audio(rec, out, config)
            jsonl.write(json.dumps(rec, ensure_ascii=False) + "\n")
            jsonl.flush()
            records.append(rec)
            progress.advance(f"{rec['call_id']}: {rec['status']}")

        try:
            run_jobs(jobs, config=config, workers=workers, on_record=on_record)
        finally:
            progress.close()
    summary = summarize(records, time.perf_counter() - t0)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print_summary(summary, out)
    raise typer.Exit(EXIT_CALLS_FAILED if summary["failed"] else EXIT_OK)


def _write_redacted_audio(rec: dict, out: Path, config: Config) -> None:
    from .redact_audio import write_redacted_audio

    spans = (rec.get("metrics") or {}).get("pii", {}).get("spans", [])
    src = Path(rec["source"]["path"])
    result = write_redacted_audio(src, out / "calls" / rec["call_id"] / f"redacted{src.suffix.lower() or '.wav'}",
                                  spans, channels={s["id"]: s.get("channel") for s in rec.get("speakers") or []},
                                  mode=config.pii.audio_mode, pad_s=config.pii.audio_pad_s)
    if getattr(result, "note", None):
        typer.echo(f"note: {rec['call_id']}: {result.note}", err=True)


def _register_capabilities() -> None:
    from .batch.commands import register as register_batch
    from .review.commands import register as register_review

    register_batch(app)
    register_review(app)


_register_capabilities()


def main() -> None:
    app()


if __name__ == "__main__":
    main()

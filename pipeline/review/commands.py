"""CLI commands of the review capability (serve, plot, export-reviews, hash-password); registered by pipeline.cli."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

import typer

log = logging.getLogger("pipeline")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the ``callqa`` app."""

    @app.command("serve")
    def serve(
        db: Path = typer.Argument(..., help="SQLite store written by `callqa batch`."),
        host: str = typer.Option("127.0.0.1", help="Address to bind; localhost unless you mean to expose it."),
        port: int = typer.Option(8000, help="TCP port."),
        config: Optional[Path] = typer.Option(None, "--config", help="TOML file with a review section (users, recording roots)."),
        recording_root: List[Path] = typer.Option(
            [], "--recording-root", help="Folder audio may be served from (repeatable; adds to config)."),
    ) -> None:
        """Serve the supervisor review app (flag list, call pages with audio, verdicts)."""
        import uvicorn

        from .app import create_app
        from .options import load_review_options

        try:
            opts = load_review_options(config)
            if recording_root:
                opts = load_review_options(config, overrides={
                    "recording_roots": [*opts.recording_roots, *(str(p) for p in recording_root)]})
            application = create_app(db, opts)
        except (ValueError, FileNotFoundError) as e:
            _fail(str(e))
        if host not in LOCAL_HOSTS:
            typer.echo(f"warning: binding to {host}: reachable from other machines; serve it behind HTTPS "
                       "and set [review] cookie_secure = true", err=True)
        if not opts.recording_roots:
            typer.echo("note: no [review] recording_roots configured; call pages will show no audio", err=True)
        typer.echo(f"callqa review on http://{host}:{port}/  (Ctrl-C to stop)", err=True)
        uvicorn.run(application, host=host, port=port, log_level="warning", proxy_headers=False)

    @app.command("plot")
    def plot(
        call_id: str = typer.Argument(..., help="Call to draw."),
        db: Path = typer.Option(..., "--db", help="SQLite store."),
        out: Path = typer.Option(..., "--out", help="PNG file to write."),
        config: Optional[Path] = typer.Option(None, "--config", help="TOML file with a review section (users, recording roots)."),
    ) -> None:
        """Write a call's timeline (speaker lanes, silences, overtalk, noise, flags) as a PNG."""
        from .. import store
        from . import queries
        from .options import load_review_options
        from .timeline_view import build_view, render_png

        try:
            opts = load_review_options(config)
            conn = store.connect(db, readonly=True)
        except (ValueError, FileNotFoundError) as e:
            _fail(str(e))
        call = queries.get_call(conn, call_id)
        if call is None:
            _fail(f"no call {call_id!r} in {db}", 1)
        view = build_view(call["record"], flags=queries.call_flags(conn, call_id), silence_min_s=opts.silence_min_s)
        out.parent.mkdir(parents=True, exist_ok=True)
        render_png(view, out, title=f"call {call_id}")
        typer.echo(str(out))

    @app.command("export-reviews")
    def export_reviews(
        db: Path = typer.Option(..., "--db", help="SQLite store."),
        out: Path = typer.Option(..., "--out", help="Output file: .csv for CSV, anything else JSON lines."),
    ) -> None:
        """Write supervisors' verdicts (flag, verdict, note, who, when) for threshold calibration."""
        from .. import store
        from . import queries

        try:
            conn = store.connect(db, readonly=True)
        except FileNotFoundError as e:
            _fail(str(e))
        n = queries.export_reviews(conn, out)
        typer.echo(f"{n} verdict(s) -> {out}", err=True)

    @app.command("hash-password")
    def hash_password_cmd(
        token: bool = typer.Option(False, "--token", help="Make a random access token and print its sha256 instead."),
    ) -> None:
        """Print a password hash for the review.users table (or a new access token and its token_sha256)."""
        import hashlib
        import secrets

        from .auth import hash_password

        if token:
            t = secrets.token_urlsafe(24)
            typer.echo(f"token (give to reviewers): {t}")
            typer.echo(f'token_sha256 = "{hashlib.sha256(t.encode()).hexdigest()}"')
            return
        pw = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)  # hash alone on stdout
        typer.echo(hash_password(pw))

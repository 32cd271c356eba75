"""The supervisor review web app: flag list, call page (audio, timeline, transcript, evidence), verdicts.

Server-rendered (FastAPI + Jinja2, one small static JS file, no build step). Every page and
the audio need a signed-in session; every state change needs the session's CSRF token and
a same-origin request. The store is opened once per worker thread (SQLite WAL: the batch
runner may be writing at the same time).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from .. import store
from . import queries
from .audio import audio_url, open_source, parse_range, resolve_audio
from .auth import SESSION_COOKIE, Session, SessionManager, hash_password, verify_password, verify_token
from .options import ReviewOptions
from .present import detail_rows, metric_glance
from .timeline_view import build_view, fmt_time, render_svg

log = logging.getLogger("pipeline")
HERE = Path(__file__).resolve().parent


class NotSignedIn(Exception):
    pass


class Forbidden(Exception):
    pass


class _Store:
    """One SQLite connection per worker thread (connections are not shared across threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        conn = store.connect(path)  # creates the store tables if this is a fresh file
        queries.ensure_review_tables(conn)
        conn.close()

    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, check_same_thread=False)
            c.row_factory = sqlite3.Row
            c.execute("PRAGMA busy_timeout=10000")
            c.execute("PRAGMA foreign_keys=ON")
            self._local.conn = c
        return c


class _SecurityHeaders:
    """Pure ASGI middleware: strict headers on every response (no inline script, no framing)."""

    HEADERS = [
        (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
                                     b" media-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';"
                                     b" frame-ancestors 'none'"),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(self.HEADERS)
                if not scope["path"].startswith(("/static/", "/audio/")):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(db_path: str | Path, options: ReviewOptions) -> FastAPI:
    """The ASGI app over one store. Refuses to start without a way to sign in."""
    db_path = Path(db_path)
    if not options.users and not options.token_sha256:
        raise ValueError("review: no way to sign in; add a user to [review.users] (hash made by "
                         "`callqa hash-password`) or set review.token_sha256 in your config file")
    if not db_path.is_file():
        raise FileNotFoundError(f"no callqa database at {db_path}; run `callqa batch` first")
    roots = options.roots
    for r in roots:
        if not r.is_dir():
            log.warning("review: recording root %s is not a folder; its audio will not be served", r)
    db = _Store(db_path)
    # unknown names are checked against a dummy hash of the same cost, so timing does not reveal users
    iterations = next((int(h.split("$")[1]) for h in options.users.values() if h.count("$") == 3
                       and h.split("$")[1].isdigit()), 260_000)
    dummy_hash = hash_password(secrets.token_urlsafe(12), iterations=iterations)
    sessions = SessionManager(secret_key=options.secret_key, lifetime_s=options.session_lifetime_min * 60)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["t"] = fmt_time
    templates.env.filters["domid"] = lambda s: "f-" + hashlib.sha1(str(s).encode()).hexdigest()[:12]
    templates.env.filters["q"] = lambda s: quote(str(s), safe="")
    templates.env.globals["detail_rows"] = detail_rows

    app = FastAPI(title="callqa review", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_SecurityHeaders)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.state.options = options
    app.state.sessions = sessions

    # --- helpers -------------------------------------------------------------------------------------
    def session_of(request: Request) -> Session | None:
        s = sessions.read(request.cookies.get(SESSION_COOKIE))
        # the user must still be configured (removing a user or the token ends their sessions)
        if s is None or not (s.user in options.users or (s.user == "token" and options.token_sha256)):
            return None
        return s

    def require(request: Request) -> Session:
        s = session_of(request)
        if s is None:
            raise NotSignedIn()
        return s

    def same_origin(request: Request) -> None:
        """Reject cross-site form posts even before the CSRF token is looked at."""
        origin = request.headers.get("origin") or request.headers.get("referer")
        if origin and origin != "null":
            host = urlsplit(origin).netloc
            if host != request.headers.get("host"):
                raise Forbidden("cross-origin request refused")

    def render(request: Request, name: str, ctx: dict, status: int = 200) -> HTMLResponse:
        s = session_of(request)
        base = {"user": s.user if s else None, "csrf": sessions.csrf_token(s) if s else ""}
        return templates.TemplateResponse(request, name, {**base, **ctx}, status_code=status)

    def safe_next(target: str | None, default: str = "/flags") -> str:
        if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
            return default
        return target

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, exc: NotSignedIn):
        if request.method == "GET" and not request.url.path.startswith("/audio/"):
            nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/login?" + urlencode({"next": nxt}), status_code=303)
        return PlainTextResponse("sign in required", status_code=401)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden):
        return PlainTextResponse(f"forbidden: {exc}", status_code=403)

    # --- sign-in -------------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/flags"):
        return render(request, "login.html", {"next": safe_next(next), "error": None,
                                              "token_enabled": bool(options.token_sha256),
                                              "users_enabled": bool(options.users)})

    failures: dict[str, deque] = defaultdict(deque)  # client address -> times of failed sign-ins
    window_s = options.login_window_min * 60

    def locked_out(client: str) -> bool:
        q = failures[client]
        while q and time.monotonic() - q[0] > window_s:
            q.popleft()
        return len(q) >= options.login_max_failures

    @app.post("/login")
    async def login(request: Request):
        same_origin(request)
        client = request.client.host if request.client else "?"
        if locked_out(client):
            return PlainTextResponse("too many failed sign-ins; wait a few minutes", status_code=429)
        form = await request.form()
        username = str(form.get("username") or "").strip()
        password = str(form.get("password") or "")
        token = str(form.get("token") or "")
        nxt = safe_next(str(form.get("next") or ""))
        user = None
        if token and verify_token(token, options.token_sha256):
            user = "token"
        elif username or password:
            encoded = options.users.get(username)
            ok = verify_password(password, encoded or dummy_hash)
            user = username if (ok and encoded) else None
        if user is None:
            failures[client].append(time.monotonic())
            log.warning("review: failed sign-in for %r from %s", username[:64], client)
            return render(request, "login.html", {"next": nxt, "error": "Wrong name, password or token.",
                                                  "token_enabled": bool(options.token_sha256),
                                                  "users_enabled": bool(options.users)}, status=401)
        cookie, _ = sessions.issue(user)
        resp = RedirectResponse(nxt, status_code=303)
        resp.set_cookie(SESSION_COOKIE, cookie, max_age=int(sessions.lifetime_s), httponly=True, samesite="lax",
                        secure=options.cookie_secure, path="/")
        log.info("review: %s signed in", user)
        return resp

    @app.post("/logout")
    async def logout(request: Request):
        s = require(request)
        same_origin(request)
        form = await request.form()
        if not sessions.check_csrf(s, str(form.get("csrf_token") or "")):
            raise Forbidden("missing or wrong CSRF token")
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    # --- pages ---------------------------------------------------------------------------------------
    @app.get("/")
    def home(request: Request):
        require(request)
        return RedirectResponse("/flags", status_code=303)

    @app.get("/flags", response_class=HTMLResponse)
    def flag_list(request: Request):
        require(request)
        qp = request.query_params
        raw = {k: (qp.get(k) or "").strip() for k in ("type", "severity", "agent", "campaign", "date_from",
                                                     "date_to", "state", "sort")}
        raw["state"] = raw["state"] or "open"
        raw["sort"] = raw["sort"] or "newest"
        try:
            flt = queries.FlagFilter(**raw)
            page = int(qp.get("page") or 1)
        except ValueError as e:
            return render(request, "error.html", {"message": f"Bad filter: {e}"}, status=400)
        conn = db.conn()
        result = queries.list_flags(conn, flt, page=page, page_size=options.page_size)
        choices = queries.filter_choices(conn)
        params = {k: v for k, v in raw.items() if v}
        here = "/flags?" + urlencode({**params, "page": result.page})

        def page_url(n: int) -> str:
            return "/flags?" + urlencode({**params, "page": n})

        def type_url(t: str) -> str:
            return "/flags?" + urlencode({**{k: v for k, v in params.items() if k != "type"}, "type": t})

        return render(request, "flags.html", {
            "f": flt, "result": result, "choices": choices, "page_url": page_url, "type_url": type_url,
            "here": here, "states": queries.STATES, "sorts": list(queries.SORTS),
            "severities": ("high", "medium", "low"),
        })

    @app.get("/calls/{call_id:path}", response_class=HTMLResponse)
    def call_page(request: Request, call_id: str, flag: str = "", back: str = "/flags"):
        require(request)
        conn = db.conn()
        call = queries.get_call(conn, call_id)
        if call is None:
            return render(request, "error.html", {"message": "No such call."}, status=404)
        record = call["record"]
        flags = queries.call_flags(conn, call_id)
        for f in flags:
            f["history"] = queries.review_history(conn, f["flag_id"])
        view = build_view(record, flags=flags, silence_min_s=options.silence_min_s)
        src = record.get("source") or {}
        selected = next((f for f in flags if f["flag_id"] == flag), None)
        return render(request, "call.html", {
            "call": call, "record": record, "metrics": record.get("metrics") or {}, "flags": flags,
            "segments": record.get("segments") or [], "timeline_svg": render_svg(view),
            "audio_url": audio_url(src.get("path"), roots), "selected": selected, "back": safe_next(back),
            "here": f"/calls/{quote(call_id, safe='')}", "channels": src.get("channels") or call.get("channels"),
            "glance": metric_glance(record.get("metrics") or {}),
        })

    @app.post("/verdict")
    async def verdict(request: Request):
        s = require(request)
        same_origin(request)
        form = await request.form()
        if not sessions.check_csrf(s, str(form.get("csrf_token") or "")):
            raise Forbidden("missing or wrong CSRF token")
        fid = str(form.get("flag_id") or "")
        v = str(form.get("verdict") or "")
        if v not in ("confirmed", "dismissed", "cleared"):
            return PlainTextResponse("verdict must be confirmed, dismissed or cleared", status_code=400)
        conn = db.conn()
        flag = queries.get_flag(conn, fid)
        if flag is None:
            return PlainTextResponse("no such flag", status_code=404)
        queries.save_verdict(conn, fid, v, reviewer=s.user, note=str(form.get("note") or ""))
        log.info("review: %s marked %s as %s", s.user, fid, v)
        default = f"/calls/{quote(flag['call_id'], safe='')}?" + urlencode({"flag": fid})
        target = safe_next(str(form.get("next") or ""), default)
        anchor = "#f-" + hashlib.sha1(fid.encode()).hexdigest()[:12]
        return RedirectResponse(target + anchor, status_code=303)

    # --- audio ---------------------------------------------------------------------------------------
    @app.api_route("/audio/{root_index}/{rel:path}", methods=["GET", "HEAD"])
    def audio(request: Request, root_index: str, rel: str):
        require(request)
        if not root_index.isdigit():
            return PlainTextResponse("not found", status_code=404)
        path = resolve_audio(roots, int(root_index), rel)
        if path is None:
            return PlainTextResponse("not found", status_code=404)
        src = open_source(path)
        rng = parse_range(request.headers.get("range"), src.size)
        headers = {"accept-ranges": "bytes", "cache-control": "private, max-age=3600"}
        if rng is False:
            return Response(status_code=416, headers={**headers, "content-range": f"bytes */{src.size}"})
        if rng is None:
            start, end, status = 0, src.size - 1, 200
        else:
            (start, end), status = rng, 206
            headers["content-range"] = f"bytes {start}-{end}/{src.size}"
        headers["content-length"] = str(max(0, end - start + 1))
        if request.method == "HEAD" or src.size == 0:
            return Response(status_code=status, headers=headers, media_type=src.media_type)
        return StreamingResponse(src.iter_range(start, end), status_code=status, headers=headers,
                                 media_type=src.media_type)

    return app

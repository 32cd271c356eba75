"""Security of the review app over a real uvicorn server, with raw (unnormalised) request paths.

No session -> redirect/401 everywhere (audio included); traversal in every spelling, absolute
paths and symlinks out of the recording root -> 404; state changes without the CSRF token or
from another origin -> rejected; localhost is the default bind address.
"""

from __future__ import annotations

import http.client
import os
import re
from urllib.parse import quote, urlsplit

import pytest
from typer.testing import CliRunner

from pipeline import store
from pipeline.review.app import create_app
from pipeline.review.options import options_from_dict
from pipeline.review.synthetic import background_server, build_demo

GOOD = "/audio/0/2026-11-21/call-stereo-01.wav"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("review_sec")
    demo = build_demo(folder)
    root = demo["root"]
    secret = demo["outside"] / "call-outside-04.wav"  # a real WAV just outside the root
    (root / "notes.txt").write_text("not audio")
    os.symlink(secret, root / "escape.wav")  # file link pointing out of the root
    os.symlink(demo["outside"], root / "elsewhere")  # folder link pointing out of the root
    os.symlink(root / "2026-11-21" / "call-stereo-01.wav", root / "inside-link.wav")  # link staying inside
    app = create_app(demo["db"], options_from_dict(demo["options"]))
    with background_server(app) as url:
        yield {"url": url, "demo": demo, "secret": secret}


def request(server, method: str, path: str, *, body: str | None = None, headers: dict | None = None):
    """Send ``path`` byte-for-byte (http.client does not normalise ``..`` or percent-escapes)."""
    u = urlsplit(server["url"])
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    hdrs = dict(headers or {})
    if body is not None:
        hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
    conn.request(method, path, body=body, headers=hdrs)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), data


def sign_in(server) -> dict:
    d = server["demo"]
    status, headers, _ = request(server, "POST", "/login",
                                 body=f"username={d['user']}&password={d['password']}")
    assert status == 303
    cookie = headers["set-cookie"].split(";")[0]
    assert "HttpOnly" in headers["set-cookie"] and "samesite=lax" in headers["set-cookie"].lower()
    return {"Cookie": cookie}


@pytest.mark.parametrize("method,path", [
    ("GET", "/"), ("GET", "/flags"), ("GET", "/flags?type=refusal_then_continue"), ("GET", "/calls/call-stereo-01"),
    ("GET", GOOD), ("GET", "/audio/0/../outside/call-outside-04.wav"),
    ("POST", "/verdict"), ("POST", "/logout"),
])
def test_no_session_is_redirected_or_401(server, method, path):
    status, headers, body = request(server, method, path, body="" if method == "POST" else None)
    assert status in (303, 401), (path, status)
    if status == 303:
        assert headers["location"].startswith("/login?next=")
    assert b"RIFF" not in body


TRAVERSALS = [
    "/audio/0/../outside/call-outside-04.wav",
    "/audio/0/2026-11-21/../../outside/call-outside-04.wav",
    "/audio/0/..%2foutside%2fcall-outside-04.wav",
    "/audio/0/..%2Foutside/call-outside-04.wav",
    "/audio/0/%2e%2e/outside/call-outside-04.wav",
    "/audio/0/%2E%2E%2Foutside%2Fcall-outside-04.wav",
    "/audio/0/%252e%252e%252foutside%252fcall-outside-04.wav",  # double-encoded
    "/audio/0/..%5coutside%5ccall-outside-04.wav",  # backslash
    "/audio/0/.%2e/outside/call-outside-04.wav",
    "/audio/0/./2026-11-21/call-stereo-01.wav",
    "/audio/0/2026-11-21/call-stereo-01.wav%00.txt",
    "/audio/1/2026-11-21/call-stereo-01.wav",  # no such root
    "/audio/-1/2026-11-21/call-stereo-01.wav",
    "/audio/x/2026-11-21/call-stereo-01.wav",
    "/audio/0/notes.txt",  # inside, but not audio
    "/audio/0/escape.wav",  # symlink out of the root
    "/audio/0/elsewhere/call-outside-04.wav",  # through a symlinked folder
    "/audio/0/missing.wav",
]


def test_traversal_and_symlink_escapes_are_404(server):
    auth = sign_in(server)
    status, _, body = request(server, "GET", GOOD, headers=auth)
    assert status == 200 and body[:4] == b"RIFF"  # control: the session does work
    secret = server["secret"].read_bytes()
    for path in TRAVERSALS:
        status, _, body = request(server, "GET", path, headers=auth)
        assert status == 404, (path, status)
        assert body != secret and b"RIFF" not in body


def test_absolute_paths_are_404(server):
    auth = sign_in(server)
    secret = str(server["secret"])
    for path in (f"/audio/0/{secret}", f"/audio/0/{secret.replace('/', '%2f')}", "/audio/0//etc/passwd",
                 "/audio/0/%2fetc%2fpasswd", "/audio/0/C:%5cWindows%5cwin.ini"):
        status, _, _ = request(server, "GET", path, headers=auth)
        assert status == 404, (path, status)


def test_symlink_that_stays_inside_the_root_is_served(server):
    auth = sign_in(server)
    status, _, body = request(server, "GET", "/audio/0/inside-link.wav", headers=auth)
    assert status == 200 and body[:4] == b"RIFF"


def test_state_change_without_csrf_token_is_rejected(server):
    auth = sign_in(server)
    flag = server["demo"]["records"]["call-mono-02"]["flags"][0]
    fid = quote(store.flag_id("call-mono-02", flag), safe="")
    status, _, page = request(server, "GET", "/calls/call-mono-02", headers=auth)
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
    for body in (f"flag_id={fid}&verdict=dismissed", f"flag_id={fid}&verdict=dismissed&csrf_token=",
                 f"flag_id={fid}&verdict=dismissed&csrf_token={'0' * 64}"):
        status, _, _ = request(server, "POST", "/verdict", body=body, headers=auth)
        assert status == 403
    other = sign_in(server)  # a token from another session is not valid for this one
    status, _, _ = request(server, "POST", "/verdict", body=f"flag_id={fid}&verdict=dismissed&csrf_token={token}",
                           headers=other)
    assert status == 403
    # right token, but posted from another site
    status, _, _ = request(server, "POST", "/verdict", body=f"flag_id={fid}&verdict=dismissed&csrf_token={token}",
                           headers={**auth, "Origin": "http://evil.example"})
    assert status == 403
    _, _, page = request(server, "GET", "/calls/call-mono-02", headers=auth)
    assert b'class="verdict open"' in page and b'class="verdict dismissed"' not in page
    status, _, _ = request(server, "POST", "/verdict", body=f"flag_id={fid}&verdict=dismissed&csrf_token={token}",
                           headers=auth)
    assert status == 303
    _, _, page = request(server, "GET", "/calls/call-mono-02", headers=auth)
    assert b'class="verdict dismissed"' in page


def test_logout_needs_csrf_and_ends_the_session(server):
    auth = sign_in(server)
    status, _, _ = request(server, "POST", "/logout", body="", headers=auth)
    assert status == 403
    _, _, page = request(server, "GET", "/flags", headers=auth)
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
    status, headers, _ = request(server, "POST", "/logout", body=f"csrf_token={token}", headers=auth)
    assert status == 303 and 'callqa_session=""' in headers["set-cookie"]


def test_serve_binds_to_localhost_by_default():
    import typer

    from pipeline.review.commands import register

    app = typer.Typer()
    register(app)
    serve = typer.main.get_command(app).commands["serve"]
    host = next(p for p in serve.params if p.name == "host")
    assert host.default == "127.0.0.1"
    out = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    assert "127.0.0.1" in out

"""`callqa plot`, `callqa export-reviews`, `callqa hash-password` and `callqa serve` through the real entry point."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from pipeline import store
from pipeline.review import queries
from pipeline.review.auth import verify_password
from pipeline.review.synthetic import build_demo
from pipeline.review.timeline_view import COLORS

ROOT = Path(__file__).resolve().parent.parent


def callqa(*args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          input=input, timeout=timeout, cwd=ROOT)


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)])


def _has_color(img: np.ndarray, hex_color: str, tol: float = 0.03) -> int:
    return int((np.abs(img[..., :3] - _rgb(hex_color)).max(axis=-1) < tol).sum())


def test_plot_writes_the_timeline_png(tmp_path):
    demo = build_demo(tmp_path)
    out = tmp_path / "plots" / "call.png"
    proc = callqa("plot", "call-stereo-01", "--db", str(demo["db"]), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg

    img = mpimg.imread(str(out))
    assert img.shape[1] >= 1000  # 12 in at 100 dpi
    # every kind of lane drawn: both speakers, silence, overtalk, noise and the high flag
    for key in ("agent", "customer", "silence", "overtalk", "noise", "high", "low"):
        assert _has_color(img, COLORS[key]) > 20, key
    # the mono call has no customer channel but still both roles
    mono = tmp_path / "mono.png"
    assert callqa("plot", "call-mono-02", "--db", str(demo["db"]), "--out", str(mono)).returncode == 0
    assert _has_color(mpimg.imread(str(mono)), COLORS["medium"]) > 20
    missing = callqa("plot", "no-such-call", "--db", str(demo["db"]), "--out", str(tmp_path / "x.png"))
    assert missing.returncode == 1 and "no call" in missing.stderr


def test_export_reviews_csv_and_jsonl(tmp_path):
    demo = build_demo(tmp_path)
    conn = store.connect(demo["db"])
    queries.ensure_review_tables(conn)
    flags = [(cid, f) for cid, r in demo["records"].items() for f in r["flags"]]
    for i, (cid, f) in enumerate(flags):
        queries.save_verdict(conn, store.flag_id(cid, f), "confirmed" if i % 2 else "dismissed",
                             reviewer=f"rev{i}", note=f"note {i}")
    conn.close()
    proc = callqa("export-reviews", "--db", str(demo["db"]), "--out", str(tmp_path / "reviews.csv"))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((tmp_path / "reviews.csv").open()))
    assert len(rows) == len(flags)
    by_id = {r["flag_id"]: r for r in rows}
    for i, (cid, f) in enumerate(flags):
        r = by_id[store.flag_id(cid, f)]
        assert (r["call_id"], r["type"], r["reviewer"], r["note"]) == (cid, f["type"], f"rev{i}", f"note {i}")
        assert r["verdict"] == ("confirmed" if i % 2 else "dismissed") and r["reviewed_at"].endswith("Z")
    assert callqa("export-reviews", "--db", str(demo["db"]), "--out", str(tmp_path / "r.jsonl")).returncode == 0
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(lines) == len(flags) and {x["flag_present"] for x in lines} == {True}
    assert callqa("export-reviews", "--db", str(tmp_path / "none.db"), "--out", "x.csv").returncode == 2


def test_hash_password_and_token():
    proc = callqa("hash-password", input="correct horse\ncorrect horse\n")
    assert proc.returncode == 0, proc.stderr
    encoded = proc.stdout.strip().splitlines()[-1]
    assert verify_password("correct horse", encoded) and not verify_password("wrong", encoded)
    tok = callqa("hash-password", "--token").stdout
    token = tok.split("token (give to reviewers): ")[1].split()[0]
    digest = tok.split('token_sha256 = "')[1].split('"')[0]
    assert hashlib.sha256(token.encode()).hexdigest() == digest


@pytest.mark.slow
def test_serve_runs_the_app_on_localhost(tmp_path):
    demo = build_demo(tmp_path)
    cfg = tmp_path / "review.toml"
    users = "\n".join(f'{k} = "{v}"' for k, v in demo["options"]["users"].items())
    cfg.write_text(f'[review]\nrecording_roots = ["{demo["root"]}"]\n\n[review.users]\n{users}\n')
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", str(demo["db"]), "--port", str(port),
                             "--config", str(cfg)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/flags", timeout=2)
            except urllib.error.HTTPError as e:  # redirects to /login are followed; 200 expected there
                pytest.fail(f"unexpected HTTP {e.code}")
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"serve did not come up: {proc.stderr.read().decode() if proc.poll() is not None else ''}")
                time.sleep(0.2)
                continue
            break
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/flags", timeout=5)
        assert "/login" in page.url and b"Sign in" in page.read()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = callqa("serve", str(demo["db"]), "--port", str(port))  # default config has no users
    assert bad.returncode == 2 and "hash-password" in bad.stderr


def test_verdicts_given_in_the_app_reach_callqa_stats(tmp_path):
    """Verdicts posted through the web app -> per-type precision in `callqa stats` (the batch capability)."""
    import re

    from fastapi.testclient import TestClient

    from pipeline.review.app import create_app
    from pipeline.review.options import options_from_dict

    demo = build_demo(tmp_path)
    client = TestClient(create_app(demo["db"], options_from_dict(demo["options"])))
    client.post("/login", data={"username": demo["user"], "password": demo["password"]})
    verdicts = {"call-stereo-01": "confirmed", "call-outside-04": "dismissed"}
    for cid, verdict in verdicts.items():
        flag = next(f for f in demo["records"][cid]["flags"] if f["type"] == "refusal_then_continue")
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"/calls/{cid}").text).group(1)
        r = client.post("/verdict", data={"csrf_token": token, "flag_id": store.flag_id(cid, flag),
                                          "verdict": verdict}, follow_redirects=False)
        assert r.status_code == 303
    proc = callqa("stats", str(demo["db"]), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["type"]: r for r in json.loads(proc.stdout)["precision"]}
    ours = queries.verdict_precision(store.connect(demo["db"], readonly=True))
    assert rows["refusal_then_continue"]["reviewed"] == ours["refusal_then_continue"]["reviewed"] == 2
    assert rows["refusal_then_continue"]["precision"] == ours["refusal_then_continue"]["precision"] == 0.5

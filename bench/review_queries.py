"""Review app latency on a generated store: 10,000 calls, 30,000 flags, ~10% of flags reviewed.

Starts the real server (`python -m pipeline.cli serve`) on localhost, signs in, and times
full HTTP round trips (server-side SQL + template rendering + transfer) for the flag list,
filtered lists and a call page. Target from the issue: <= 300 ms.

    .venv/bin/python bench/review_queries.py [--calls 10000] [--flags-per-call 3] [--n 40]

Needs no eval data (the store is synthetic: pipeline.review.synthetic.bulk_records).
"""

from __future__ import annotations

import argparse
import http.client
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import store  # noqa: E402
from pipeline.review import queries  # noqa: E402
from pipeline.review.auth import hash_password  # noqa: E402
from pipeline.review.synthetic import bulk_records  # noqa: E402

TARGET_MS = 300.0


def build_store(db: Path, n_calls: int, flags_per_call: int) -> tuple[int, int, float]:
    t0 = time.perf_counter()
    conn = store.connect(db)
    queries.ensure_review_tables(conn)
    conn.execute("BEGIN")
    for rec in bulk_records(n_calls, flags_per_call=flags_per_call):
        store.save_record(conn, rec)
    conn.commit()
    rng = random.Random(7)
    ids = [r[0] for r in conn.execute("SELECT flag_id FROM flags")]
    for fid in rng.sample(ids, len(ids) // 10):
        queries.save_verdict(conn, fid, rng.choice(["confirmed", "dismissed"]), reviewer="bench")
    calls = conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    flags = conn.execute("SELECT COUNT(*) FROM flags").fetchone()[0]
    conn.execute("ANALYZE")
    conn.close()
    return calls, flags, time.perf_counter() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--flags-per-call", type=int, default=3)
    ap.add_argument("--n", type=int, default=40, help="timed requests per URL (after 3 warm-up requests)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="callqa-review-bench-"))
    db = work / "bench.db"
    calls, flags, build_s = build_store(db, args.calls, args.flags_per_call)
    print(f"store: {calls} calls, {flags} flags, {flags // 10} verdicts, {db.stat().st_size / 1e6:.0f} MB "
          f"(built in {build_s:.1f} s)")

    password = "bench-pass"
    cfg = work / "review.toml"
    cfg.write_text(f'[review]\nrecording_roots = ["{work}"]\n\n[review.users]\nbench = "{hash_password(password)}"\n')
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", str(db), "--port", str(port),
                               "--config", str(cfg)], cwd=ROOT, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    print("server did not start:", server.stderr.read().decode() if server.poll() else "")
                    return 1
                time.sleep(0.2)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/login", body=f"username=bench&password={password}",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        resp.read()
        cookie = resp.getheader("set-cookie").split(";")[0]
        urls = {
            "flag list (default: open, newest)": "/flags",
            "filtered: type+severity+agent+dates": "/flags?type=refusal_then_continue&severity=high&agent=A017"
                                                   "&date_from=2026-10-05&date_to=2026-10-20&state=all",
            "filtered: campaign, by severity, page 20": "/flags?campaign=upsell&sort=severity&state=all&page=20",
            "filtered: dismissed verdicts": "/flags?state=dismissed&sort=type",
            "call page": f"/calls/call-{args.calls // 2:06d}",
        }
        print(f"\nHTTP round trips on 127.0.0.1, {args.n} requests each (target <= {TARGET_MS:.0f} ms)")
        print(f"{'request':44s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s} {'KB':>6s}  ok")
        worst = 0.0
        for name, url in urls.items():
            times = []
            size = 0
            for i in range(args.n + 3):
                t0 = time.perf_counter()
                conn.request("GET", url, headers={"Cookie": cookie})
                resp = conn.getresponse()
                body = resp.read()
                dt = (time.perf_counter() - t0) * 1000
                if resp.status != 200:
                    print(f"{name}: HTTP {resp.status}")
                    return 1
                size = len(body)
                if i >= 3:
                    times.append(dt)
            times.sort()
            p50 = statistics.median(times)
            p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
            worst = max(worst, p95)
            print(f"{name:44s} {p50:8.1f} {p95:8.1f} {times[-1]:8.1f} {size / 1024:6.0f}  "
                  f"{'yes' if p95 <= TARGET_MS else 'NO'}")
        print(f"\nworst p95 {worst:.1f} ms -> {'PASS' if worst <= TARGET_MS else 'FAIL'} (target {TARGET_MS:.0f} ms)")
        return 0 if worst <= TARGET_MS else 1
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

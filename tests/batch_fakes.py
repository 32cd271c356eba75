"""Fake per-call work for the batch runner's tests (importable by spawned workers).

The fake reads the file (so content matters), sleeps a little like a real call, and
obeys markers in the file name: ``slow`` sleeps long (timeouts), ``crash`` kills its
worker process on the first attempt (a marker file next to it remembers), ``boom``
raises every time.
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import datetime, timezone
from pathlib import Path


def fake_work(item, config, *, threads=None) -> dict:
    p = Path(item.path)
    data = p.read_bytes()
    name = p.name
    if "crash" in name:
        marker = p.with_suffix(".crashed")
        if not marker.exists():
            marker.write_text("1")
            os._exit(9)
    if "boom" in name:
        raise RuntimeError("boom: a bug in the pipeline")
    time.sleep(float(os.environ.get("CALLQA_FAKE_SLEEP", "0.05")) * (200 if "slow" in name else 1))
    sha = hashlib.sha256(data).hexdigest()
    source = {"path": str(p), "sha256": sha, "format": "wav", "codec": "pcm", "duration_s": 10.0,
              "sample_rate": 8000, "channels": 2, "size_bytes": len(data)}
    prov = {"pipeline_version": "0.1.0", "config_hash": config.hash,
            "processed_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if data.startswith(b"CORRUPT"):
        return {"schema_version": "1.0", "call_id": item.call_id, "status": "error",
                "error": {"kind": "decode_error", "message": "corrupt"}, "source": source,
                "metadata": dict(item.metadata), "duration_s": 10.0, "speakers": [], "role_assignment": {},
                "segments": [], "metrics": {}, "flags": [], "provenance": prov}
    n = data[-1] % 3
    flags = [{"type": "dead_air", "severity": "medium", "start": float(i), "end": float(i) + 10.0,
              "role": "unknown", "evidence": "silence", "detail": {}} for i in range(n)]
    return {"schema_version": "1.0", "call_id": item.call_id, "status": "ok", "error": None, "source": source,
            "metadata": dict(item.metadata), "duration_s": 10.0,
            "speakers": [{"id": "left", "role": "agent", "channel": 0}, {"id": "right", "role": "customer", "channel": 1}],
            "role_assignment": {}, "segments": [
                {"speaker": "left", "role": "agent", "start": 0.0, "end": 2.0, "text": "hello there", "words": []}],
            "metrics": {"talk_ratio": {"agent": 0.6, "customer": 0.4}}, "flags": flags, "provenance": prov}

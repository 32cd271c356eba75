#!/usr/bin/env bash
# Optional pyannote.audio backend for mono diarization, in its own venv.
#
# Why a separate venv: pyannote.audio 4 needs a newer torch (2.14.1 here, a CUDA
# build of several GB that pip takes from this machine's disk) than the embedded
# default, which runs on torch 2.13 CPU in .venv. The two cannot share one env.
#
# Usage: scripts/setup_pyannote_env.sh [VENV_DIR]   (default .venv-pyannote)
# Then:  .venv-pyannote/bin/pytest tests/test_diarize_pyannote.py
#        .venv-pyannote/bin/callqa analyze mono_calls/ --out out --config pyannote.toml
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-${PYANNOTE_VENV:-.venv-pyannote}}"
PYTHON="${PYTHON:-python3}"
start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
# torch first and pinned, so pyannote.audio's "torch>=..." takes the wheel on disk
# instead of resolving to the newest release.
"$VENV/bin/pip" install -q --no-cache-dir --disable-pip-version-check "torch==2.14.1"
"$VENV/bin/pip" install -q --no-cache-dir --disable-pip-version-check "torch==2.14.1" "pyannote.audio==4.0.7" \
    "pytest==9.2.0" "av==18.1.0" "webrtcvad==2.0.10" "setuptools<81" "PyYAML==6.0.3"
# callqa and all its other dependencies, but not its torch pin (2.13.0): the venv keeps 2.14.1 for pyannote.
if [ -f pyproject.toml ]; then
    "$VENV/bin/python" - <<'PY' > "$VENV/callqa-deps.txt"
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print("\n".join(d for d in deps if not d.replace(" ", "").startswith("torch=")))
PY
    "$VENV/bin/pip" install -q --no-cache-dir --disable-pip-version-check "torch==2.14.1" -r "$VENV/callqa-deps.txt"
    "$VENV/bin/pip" install -q --no-cache-dir --disable-pip-version-check --no-deps -e .
fi
"$VENV/bin/python" - <<'PY'
import pyannote.audio, torch
print(f"pyannote.audio {pyannote.audio.__version__} with torch {torch.__version__} ready")
PY
echo "setup_pyannote_env: $VENV ready in $(( $(date +%s) - start )) s"

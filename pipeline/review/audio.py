"""Serving recordings to the browser: only from the configured roots, with HTTP range requests.

A URL names a root by index and a path inside it (``/audio/0/2024/call.wav``). The path is
refused (-> 404, never 403, so nothing leaks about what exists) when it is absolute, has a
``..`` part, a backslash or NUL, resolves (symlinks followed) outside its root, or is not
an audio file. Telephone codecs a browser cannot play (µ-law, A-law, GSM WAV) are decoded
to 16-bit PCM WAV on the fly; channels are kept, so stereo plays as stereo.
"""

from __future__ import annotations

import io
import logging
import re
import threading
from collections import OrderedDict
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger("pipeline")

MEDIA_TYPES = {
    ".wav": "audio/wav", ".mp3": "audio/mpeg", ".flac": "audio/flac", ".ogg": "audio/ogg",
    ".opus": "audio/ogg", ".m4a": "audio/mp4", ".aac": "audio/aac", ".webm": "audio/webm",
    ".au": "audio/basic", ".gsm": "audio/x-gsm", ".aif": "audio/aiff", ".aiff": "audio/aiff",
}
BROWSER_PCM = {"PCM_16", "PCM_24", "PCM_32", "PCM_U8", "FLOAT"}  # WAV subtypes browsers decode
TRANSCODE_CACHE = 8  # recordings kept decoded in memory (a few MB each)
CHUNK = 64 * 1024


def audio_url(source_path: str | None, roots: tuple[Path, ...]) -> str | None:
    """The app URL for a record's ``source.path``, or None when it is not under a root."""
    if not source_path or not roots:
        return None
    p = Path(source_path).expanduser()
    candidates = [p] if p.is_absolute() else [r / p for r in roots] + [Path.cwd() / p]
    for cand in candidates:
        try:
            real = cand.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        for i, root in enumerate(roots):
            if real.is_file() and real.is_relative_to(root):
                return f"/audio/{i}/" + quote(real.relative_to(root).as_posix())
    return None


def resolve_audio(roots: tuple[Path, ...], root_index: int, rel: str) -> Path | None:
    """The real file for a request, or None for anything outside the roots or not audio."""
    if not 0 <= root_index < len(roots) or not rel:
        return None
    if "\x00" in rel or "\\" in rel or rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        return None
    if any(part in ("", ".", "..") for part in rel.split("/")):  # raw parts: "a//b", "./a", "../a" all refused
        return None
    root = roots[root_index]
    try:
        real = (root / rel).resolve(strict=True)  # follows symlinks: an escaping link lands outside
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(root) or not real.is_file() or real.suffix.lower() not in MEDIA_TYPES:
        return None
    return real


class AudioSource:
    """What to send for a file: the file itself, or its PCM decode held in memory."""

    def __init__(self, path: Path, data: bytes | None, media_type: str) -> None:
        self.path, self.data, self.media_type = path, data, media_type
        self.size = len(data) if data is not None else path.stat().st_size

    def iter_range(self, start: int, end: int):
        """Bytes ``start..end`` inclusive, in chunks."""
        if self.data is not None:
            for pos in range(start, end + 1, CHUNK):
                yield self.data[pos: min(pos + CHUNK, end + 1)]
            return
        with self.path.open("rb") as fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0:
                buf = fh.read(min(CHUNK, left))
                if not buf:
                    break
                left -= len(buf)
                yield buf


_cache: OrderedDict[tuple, bytes] = OrderedDict()
_cache_lock = threading.Lock()


def open_source(path: Path) -> AudioSource:
    media = MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
    if path.suffix.lower() not in (".wav", ".au", ".gsm", ".aif", ".aiff"):
        return AudioSource(path, None, media)
    try:
        import soundfile as sf

        info = sf.info(str(path))
    except Exception:  # not readable by libsndfile: send as is, the browser may still cope
        return AudioSource(path, None, media)
    if info.format == "WAV" and info.subtype in BROWSER_PCM:
        return AudioSource(path, None, media)
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _cache_lock:
        data = _cache.get(key)
        if data is not None:
            _cache.move_to_end(key)
    if data is None:
        samples, sr = sf.read(str(path), dtype="int16", always_2d=True)
        buf = io.BytesIO()
        sf.write(buf, samples, sr, format="WAV", subtype="PCM_16")
        data = buf.getvalue()
        log.debug("review: decoded %s (%s) to PCM for the browser", path.name, info.subtype)
        with _cache_lock:
            _cache[key] = data
            while len(_cache) > TRANSCODE_CACHE:
                _cache.popitem(last=False)
    return AudioSource(path, data, "audio/wav")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """``(start, end)`` inclusive for a single ``bytes=`` range; None = send it all; False = unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None  # no range, another unit, or several ranges: a full 200 is a valid answer
    spec = header[len("bytes="):].strip()
    first, sep, last = spec.partition("-")
    if not sep:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                return False
            return (max(0, size - n), size - 1) if size else False
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start < 0 or start >= size or end < start:
        return False
    return start, min(end, size - 1)

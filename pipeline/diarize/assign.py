"""Words → speaker turns for mono calls.

Each ASR word goes to the speaker whose diarization segments overlap it most (as
WhisperX assigns words); a word that touches no segment takes the nearest one's
speaker. Turns are then rebuilt from the words, so where ASR and diarization
disagree at a boundary (a word straddling a speaker change, a segment edge inside
a word) the word decides and stays whole. A turn covers its words and the speech
of its own segment around them, up to the neighbouring turns' words: talk time
comes from measured speech, as for stereo, not only from word timestamps.

Segments without any word (a cough, an unrecognised "mm") make no turn, as for
stereo regions without words.
"""

from __future__ import annotations

from dataclasses import replace

from ..timeline import Turn, Word


def _speaker_overlaps(word: Word, segments) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in segments:
        ov = min(word.end, s.end) - max(word.start, s.start)
        if ov > 0:
            out[s.speaker] = out.get(s.speaker, 0.0) + ov
    return out


def _nearest(word: Word, segments):
    mid = (word.start + word.end) / 2
    return min(segments, key=lambda s: 0.0 if s.start <= mid <= s.end else min(abs(mid - s.start), abs(mid - s.end)))


def _segment_of(word: Word, speaker: str, segments) -> int:
    """Index of this speaker's segment that holds (or is nearest to) the word."""
    best, best_d = -1, float("inf")
    mid = (word.start + word.end) / 2
    for i, s in enumerate(segments):
        if s.speaker != speaker:
            continue
        ov = min(word.end, s.end) - max(word.start, s.start)
        d = -ov if ov > 0 else min(abs(mid - s.start), abs(mid - s.end))
        if d < best_d:
            best, best_d = i, d
    return best


def words_to_turns(words: list[Word], segments: list, *, max_flip_words: int = 2, pause_s: float = 0.2,
                   default_speaker: str = "S0") -> list[Turn]:
    """Speaker turns (time-ordered) from ASR words and diarization segments.

    ``segments``: objects with ``speaker``, ``start``, ``end`` (SpeakerSegment), possibly
    overlapping (overlapped speech). ``max_flip_words``: a run of at most this many words
    that the diarizer gives to another speaker, mostly outside that speaker's segments
    and with the same speaker on both sides, is a boundary disagreement and stays
    with the surrounding speaker. ``pause_s``: a stretch at least this long between two
    words with no segment of anyone (a VAD pause) ends the turn.
    """
    words = sorted((w for w in words if w.text.strip()), key=lambda w: (w.start, w.end))
    if not words:
        return []
    segments = sorted(segments, key=lambda s: (s.start, s.end))
    if not segments:
        return [Turn(speaker=default_speaker, start=words[0].start, end=words[-1].end, words=tuple(words))]

    # 1. Each word to the speaker overlapping it most (nearest segment when none does).
    speakers: list[str] = []
    share: list[float] = []  # fraction of the word inside its speaker's segments
    for w in words:
        ov = _speaker_overlaps(w, segments)
        if ov:
            spk = max(ov, key=lambda k: (ov[k], k == speakers[-1] if speakers else False))
            share.append(ov[spk] / max(1e-6, w.end - w.start))
        else:
            spk = _nearest(w, segments).speaker
            share.append(0.0)
        speakers.append(spk)

    # 2. Boundary disagreements: short runs weakly inside another speaker's segments.
    runs = _runs(speakers)
    for r, (a, b) in enumerate(runs):
        if 0 < r < len(runs) - 1 and b - a <= max_flip_words:
            left, right = speakers[runs[r - 1][0]], speakers[runs[r + 1][0]]
            if left == right and all(share[i] < 0.5 for i in range(a, b)):
                for i in range(a, b):
                    speakers[i] = left

    # 3. Turns: consecutive words of one speaker, split where a pause (no segment of anyone)
    #    lies between two words, as a stereo turn ends at the end of its speech region.
    speech = _union((s.start, s.end) for s in segments)
    groups: list[tuple[str, list[Word]]] = []
    for spk, w in zip(speakers, words):
        if groups and groups[-1][0] == spk and _longest_gap(speech, groups[-1][1][-1].end, w.start) < pause_s:
            groups[-1][1].append(w)
        else:
            groups.append((spk, [w]))

    turns: list[Turn] = []
    for g, (spk, ws) in enumerate(groups):
        start, end = ws[0].start, ws[-1].end
        lo = groups[g - 1][1][-1].end if g > 0 else float("-inf")
        hi = groups[g + 1][1][0].start if g + 1 < len(groups) else float("inf")
        first, last = _segment_of(ws[0], spk, segments), _segment_of(ws[-1], spk, segments)
        # Extend to the speaker's measured speech around the words, never over a neighbour's words.
        if first >= 0 and segments[first].start <= ws[0].end:
            start = min(start, max(segments[first].start, lo))
        if last >= 0 and segments[last].end >= ws[-1].start:
            end = max(end, min(segments[last].end, hi))
        turns.append(Turn(speaker=spk, start=round(start, 3), end=round(end, 3), words=tuple(ws)))
    return _no_backwards(turns)


def _union(spans) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _longest_gap(speech: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Longest stretch of (lo, hi) that no speech span covers."""
    longest, cursor = 0.0, lo
    for a, b in speech:
        if b <= cursor:
            continue
        if a >= hi:
            break
        longest = max(longest, min(a, hi) - cursor)
        cursor = max(cursor, b)
    return max(longest, hi - cursor)


def _runs(labels: list[str]) -> list[tuple[int, int]]:
    out, a = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[a]:
            out.append((a, i))
            a = i
    return out


def _no_backwards(turns: list[Turn]) -> list[Turn]:
    """Guard: a turn's span always covers its words and has end >= start."""
    out = []
    for t in turns:
        s = min(t.start, t.words[0].start)
        e = max(t.end, t.words[-1].end, s)
        out.append(replace(t, start=s, end=e))
    return out

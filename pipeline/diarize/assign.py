"""Words → speaker turns for mono calls. PLACEHOLDER (nearest segment) until the mono issue is built."""

from __future__ import annotations

from ..timeline import Turn, Word


def words_to_turns(words: list[Word], segments: list) -> list[Turn]:
    """Give each word to the speaker segment overlapping it most; consecutive words of a speaker form a turn."""
    turns: list[Turn] = []
    for w in words:
        best = max(segments, key=lambda s: min(w.end, s.end) - max(w.start, s.start), default=None)
        spk = best.speaker if best else "S0"
        if turns and turns[-1].speaker == spk and w.start - turns[-1].end < 1.0:
            t = turns[-1]
            turns[-1] = Turn(speaker=spk, start=t.start, end=max(t.end, w.end), words=t.words + (w,))
        else:
            turns.append(Turn(speaker=spk, start=w.start, end=w.end, words=(w,)))
    return turns

"""The timeline: time-ordered turns with words — the one model every analysis reads.

Times are seconds from the start of the recording (floats). ``end`` is stored, not
derived from a duration, because turns come from speech regions whose ends are
measured. Everything round-trips through ``to_dict``/``from_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

AGENT = "agent"
CUSTOMER = "customer"
UNKNOWN = "unknown"
ROLES = (AGENT, CUSTOMER, UNKNOWN)


@dataclass(frozen=True)
class Interval:
    """A half-open stretch of time [start, end) in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    def overlap(self, other: "Interval") -> float:
        return max(0.0, min(self.end, other.end) - max(self.start, other.start))


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    probability: float = 1.0

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "text": self.text, "probability": self.probability}

    @classmethod
    def from_dict(cls, d: dict) -> "Word":
        return cls(start=float(d["start"]), end=float(d["end"]), text=d["text"], probability=float(d.get("probability", 1.0)))


@dataclass(frozen=True)
class Turn:
    """One speaker's stretch of speech: a speech region plus the words ASR found in it."""

    speaker: str
    start: float
    end: float
    role: str = UNKNOWN
    words: tuple[Word, ...] = ()
    text: str | None = None  # None: derived from words

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def transcript(self) -> str:
        if self.text is not None:
            return self.text
        return " ".join(w.text.strip() for w in self.words).strip()

    def to_dict(self, *, with_words: bool = True) -> dict:
        d = {"speaker": self.speaker, "role": self.role, "start": self.start, "end": self.end, "text": self.transcript}
        if with_words:
            d["words"] = [w.to_dict() for w in self.words]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Turn":
        words = tuple(Word.from_dict(w) for w in d.get("words") or ())
        text = d.get("text")
        # Keep an explicit text only where it differs from the words (e.g. redacted).
        derived = " ".join(w.text.strip() for w in words).strip()
        return cls(
            speaker=d["speaker"],
            role=d.get("role", UNKNOWN),
            start=float(d["start"]),
            end=float(d["end"]),
            words=words,
            text=None if (words and text == derived) else text,
        )


@dataclass(frozen=True)
class Speaker:
    id: str
    role: str = UNKNOWN
    channel: int | None = None  # 0 = left, 1 = right; None for mono clusters

    def to_dict(self) -> dict:
        return {"id": self.id, "role": self.role, "channel": self.channel}

    @classmethod
    def from_dict(cls, d: dict) -> "Speaker":
        return cls(id=d["id"], role=d.get("role", UNKNOWN), channel=d.get("channel"))


@dataclass(frozen=True)
class Timeline:
    duration: float
    speakers: tuple[Speaker, ...]
    turns: tuple[Turn, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.turns, key=lambda t: (t.start, t.end, t.speaker)))
        object.__setattr__(self, "turns", ordered)

    def role_of(self, speaker_id: str) -> str:
        for s in self.speakers:
            if s.id == speaker_id:
                return s.role
        return UNKNOWN

    def with_roles(self, roles: dict[str, str]) -> "Timeline":
        """A copy with speaker roles set from ``{speaker_id: role}`` (turns follow)."""
        speakers = tuple(replace(s, role=roles.get(s.id, s.role)) for s in self.speakers)
        by_id = {s.id: s.role for s in speakers}
        turns = tuple(replace(t, role=by_id.get(t.speaker, t.role)) for t in self.turns)
        return Timeline(duration=self.duration, speakers=speakers, turns=turns)

    def turns_of(self, role: str) -> list[Turn]:
        return [t for t in self.turns if t.role == role]

    def words(self) -> list[tuple[Turn, Word]]:
        """Every word with its turn, in time order."""
        pairs = [(t, w) for t in self.turns for w in t.words]
        pairs.sort(key=lambda p: p[1].start)
        return pairs

    def to_dict(self) -> dict:
        return {
            "duration": self.duration,
            "speakers": [s.to_dict() for s in self.speakers],
            "turns": [t.to_dict() for t in self.turns],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Timeline":
        return cls(
            duration=float(d["duration"]),
            speakers=tuple(Speaker.from_dict(s) for s in d["speakers"]),
            turns=tuple(Turn.from_dict(t) for t in d["turns"]),
        )


def merge_intervals(intervals: Iterable[Interval], *, max_gap: float = 0.0) -> list[Interval]:
    """Union of intervals; neighbours closer than ``max_gap`` seconds are joined."""
    out: list[Interval] = []
    for iv in sorted(intervals, key=lambda i: i.start):
        if iv.end <= iv.start:
            continue
        if out and iv.start - out[-1].end <= max_gap:
            if iv.end > out[-1].end:
                out[-1] = Interval(out[-1].start, iv.end)
        else:
            out.append(iv)
    return out


def total_duration(intervals: Sequence[Interval]) -> float:
    return sum(iv.duration for iv in merge_intervals(intervals))


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Intersection of two interval sets (each merged first)."""
    a, b = merge_intervals(a), merge_intervals(b)
    i = j = 0
    out: list[Interval] = []
    while i < len(a) and j < len(b):
        lo, hi = max(a[i].start, b[j].start), min(a[i].end, b[j].end)
        if hi > lo:
            out.append(Interval(lo, hi))
        if a[i].end < b[j].end:
            i += 1
        else:
            j += 1
    return out


def complement(intervals: Sequence[Interval], *, start: float, end: float) -> list[Interval]:
    """The gaps inside [start, end) not covered by ``intervals``."""
    gaps: list[Interval] = []
    cursor = start
    for iv in merge_intervals(intervals):
        if iv.end <= start or iv.start >= end:
            continue
        if iv.start > cursor:
            gaps.append(Interval(cursor, min(iv.start, end)))
        cursor = max(cursor, iv.end)
    if cursor < end:
        gaps.append(Interval(cursor, end))
    return gaps

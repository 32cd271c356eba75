"""Talk analyses: talk ratio, silence/dead air, overtalk/interruptions, monologues, pace, questions.

Pure functions over the timeline (definitions in DESIGN.md): nothing here reads
files or models, so stored timelines can be re-analysed when a threshold changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..record import AnalysisResult, Flag
from ..roles import normalize
from ..timeline import AGENT, CUSTOMER, Interval, Timeline, Turn, complement, intersect, merge_intervals

QUESTION_START = re.compile(
    r"^(who|what|when|where|why|how|which|whose|is|are|was|were|do|does|did|can|could|would|will|shall|should|"
    r"may|might|have|has|had|am|isn't|aren't|don't|doesn't|didn't|can't|won't|wouldn't|couldn't)\b"
)


@dataclass(frozen=True)
class TalkOptions:
    dead_air_s: float = 10.0
    silence_report_s: float = 3.0
    monologue_flag_s: float = 45.0
    monologue_high_s: float = 90.0
    monologue_report_s: float = 20.0
    monologue_max_pause_s: float = 5.0
    backchannel_max_s: float = 2.0
    backchannel_max_words: int = 3
    backchannel_words: tuple[str, ...] = ()
    interruption_min_remaining_s: float = 0.3
    overtalk_flag_share: float = 0.15
    overtalk_min_interruptions: int = 4

    def __post_init__(self) -> None:
        for name in ("dead_air_s", "silence_report_s", "monologue_flag_s", "monologue_report_s",
                     "backchannel_max_s", "monologue_max_pause_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"talk.{name} must be > 0")
        if self.monologue_high_s < self.monologue_flag_s:
            raise ValueError("talk.monologue_high_s must be >= talk.monologue_flag_s")


def is_backchannel(turn: Turn, options: TalkOptions) -> bool:
    """A short listener response ("uh-huh", "okay", "right") that does not take the floor."""
    if turn.duration > options.backchannel_max_s:
        return False
    tokens = normalize(turn.transcript.replace("-", " ")).split()
    if len(tokens) > options.backchannel_max_words:
        return False
    vocab = {w for phrase in options.backchannel_words for w in normalize(phrase.replace("-", " ")).split()}
    return all(t in vocab for t in tokens)


def _mmss(t: float) -> str:
    t = max(0.0, t)
    return f"{int(t // 60)}:{t % 60:04.1f}"


def _quote(text: str, limit: int = 90) -> str:
    text = text.strip()
    return f"“{text if len(text) <= limit else text[: limit - 1].rstrip() + '…'}”"


def talk_time(timeline: Timeline) -> dict[str, float]:
    roles = [AGENT, CUSTOMER] + (["unknown"] if any(t.role == "unknown" for t in timeline.turns) else [])
    return {r: sum(iv.duration for iv in merge_intervals(Interval(t.start, t.end) for t in timeline.turns_of(r)))
            for r in roles}


def talk_ratio(times: dict[str, float]) -> dict[str, float]:
    total = sum(times.values())
    return {r: (v / total if total > 0 else 0.0) for r, v in times.items()}


def silences(timeline: Timeline) -> list[Interval]:
    """Gaps in which no one speaks, between the first and the last speech of the call."""
    speech = [Interval(t.start, t.end) for t in timeline.turns]
    if not speech:
        return []
    return complement(speech, start=min(s.start for s in speech), end=max(s.end for s in speech))


def _last_turn_before(timeline: Timeline, t: float) -> Turn | None:
    before = [x for x in timeline.turns if x.end <= t + 1e-6]
    return max(before, key=lambda x: x.end) if before else None


def silence_analysis(timeline: Timeline, options: TalkOptions) -> tuple[dict, list[Flag]]:
    gaps = silences(timeline)
    flags = []
    for g in gaps:
        if g.duration >= options.dead_air_s:
            prev = _last_turn_before(timeline, g.start)
            said = f"; last words before it: {prev.role} {_quote(prev.transcript)}" if prev else ""
            flags.append(Flag(
                type="dead_air", severity="high" if g.duration >= 2 * options.dead_air_s else "medium",
                start=g.start, end=g.end, role=AGENT,
                evidence=f"No one spoke for {g.duration:.1f} s ({_mmss(g.start)}–{_mmss(g.end)}){said}.",
                detail={"duration_s": g.duration, "threshold_s": options.dead_air_s,
                        "after_role": prev.role if prev else None},
            ))
    metrics = {
        "total_s": sum(g.duration for g in gaps),
        "longest_s": max((g.duration for g in gaps), default=0.0),
        "count_over_threshold": sum(1 for g in gaps if g.duration >= options.silence_report_s),
        "threshold_s": options.silence_report_s,
        "dead_air_count": len(flags),
    }
    return metrics, flags


def overtalk_analysis(timeline: Timeline, options: TalkOptions) -> tuple[dict, list[Flag]]:
    agent = [Interval(t.start, t.end) for t in timeline.turns_of(AGENT)]
    customer = [Interval(t.start, t.end) for t in timeline.turns_of(CUSTOMER)]
    overlap = intersect(agent, customer)
    interruptions = {AGENT: 0, CUSTOMER: 0}
    events = []
    for turn in timeline.turns:
        if turn.role not in interruptions or is_backchannel(turn, options):
            continue
        for other in timeline.turns:
            if other.role in (turn.role, "unknown") or other is turn:
                continue
            if other.start < turn.start and other.end - turn.start >= options.interruption_min_remaining_s:
                interruptions[turn.role] += 1
                events.append({"role": turn.role, "start": turn.start, "interrupted_at": turn.start,
                               "text": turn.transcript[:120]})
                break
    total = sum(iv.duration for iv in overlap)
    speech = sum(iv.duration for iv in merge_intervals(agent + customer))
    share = total / speech if speech > 0 else 0.0
    flags = []
    n_int = sum(interruptions.values())
    if share >= options.overtalk_flag_share and n_int >= options.overtalk_min_interruptions:
        worst = max(overlap, key=lambda iv: iv.duration)
        flags.append(Flag(
            type="excessive_overtalk", severity="medium", start=worst.start, end=worst.end,
            role=max(interruptions, key=interruptions.get),
            evidence=f"Both parties talked at once for {total:.1f} s ({share:.0%} of speech); "
                     f"interruptions: agent {interruptions[AGENT]}, customer {interruptions[CUSTOMER]}.",
            detail={"overtalk_s": total, "share": share, "interruptions": interruptions},
        ))
    return {"total_s": total, "share_of_speech": share, "interruptions": interruptions, "events": events[:50]}, flags


def monologue_analysis(timeline: Timeline, options: TalkOptions) -> tuple[dict, list[Flag]]:
    items = []
    for role in (AGENT, CUSTOMER):
        groups: list[list[Turn]] = []
        backchannels: list[list[Turn]] = []
        cur: list[Turn] = []
        cur_bc: list[Turn] = []
        for turn in timeline.turns:
            if turn.role == role:
                if cur and turn.start - max(t.end for t in cur) <= options.monologue_max_pause_s:
                    cur.append(turn)
                else:
                    if cur:
                        groups.append(cur)
                        backchannels.append(cur_bc)
                    cur, cur_bc = [turn], []
            elif cur:
                if is_backchannel(turn, options):
                    cur_bc.append(turn)
                else:  # the other party took the floor
                    groups.append(cur)
                    backchannels.append(cur_bc)
                    cur, cur_bc = [], []
        if cur:
            groups.append(cur)
            backchannels.append(cur_bc)
        for g, bc in zip(groups, backchannels):
            start, end = g[0].start, max(t.end for t in g)
            items.append({"role": role, "start": start, "end": end, "duration_s": end - start, "turns": len(g),
                          "backchannels": len([b for b in bc if b.start < end]),
                          "_text": " ".join(t.transcript for t in g),
                          "_bc": [b.transcript for b in bc if b.start < end]})
    flags = []
    for it in items:
        if it["role"] == AGENT and it["duration_s"] >= options.monologue_flag_s:
            bc = f"; customer only said {', '.join(_quote(b, 20) for b in it['_bc'][:3])}" if it["_bc"] else ""
            flags.append(Flag(
                type="agent_monologue",
                severity="high" if it["duration_s"] >= options.monologue_high_s else "medium",
                start=it["start"], end=it["end"], role=AGENT,
                evidence=f"Agent spoke for {it['duration_s']:.0f} s without the customer taking the floor "
                         f"({_mmss(it['start'])}–{_mmss(it['end'])}){bc}. It began: {_quote(it['_text'], 120)}",
                detail={"duration_s": it["duration_s"], "threshold_s": options.monologue_flag_s,
                        "backchannels": it["backchannels"]},
            ))
    longest = {r: max((it["duration_s"] for it in items if it["role"] == r), default=0.0) for r in (AGENT, CUSTOMER)}
    listed = [{k: v for k, v in it.items() if not k.startswith("_")} for it in items
              if it["duration_s"] >= options.monologue_report_s]
    return {"longest_s": longest, "items": listed, "threshold_s": options.monologue_report_s}, flags


def count_questions(text: str) -> int:
    text = text.strip()
    if not text:
        return 0
    if re.search(r"[.?!]", text):
        return len(re.findall(r"\?", text))
    return 1 if QUESTION_START.match(normalize(text)) else 0  # unpunctuated ASR text


def analyze_talk(timeline: Timeline, options: TalkOptions) -> AnalysisResult:
    """Top-level talk metrics of the record (talk_ratio, silence, overtalk, monologues, pace, questions)."""
    times = talk_time(timeline)
    silence, silence_flags = silence_analysis(timeline, options)
    overtalk, overtalk_flags = overtalk_analysis(timeline, options)
    monologues, monologue_flags = monologue_analysis(timeline, options)
    words = {r: sum(len(t.words) or len(t.transcript.split()) for t in timeline.turns_of(r)) for r in times}
    metrics = {
        "talk_time_s": times,
        "talk_ratio": talk_ratio(times),
        "silence": silence,
        "overtalk": overtalk,
        "monologues": monologues,
        "words_per_minute": {r: (words[r] / (times[r] / 60) if times[r] > 0 else 0.0) for r in times},
        "questions": {r: sum(count_questions(t.transcript) for t in timeline.turns_of(r)) for r in times},
        "turns": {r: len(timeline.turns_of(r)) for r in times},
    }
    return AnalysisResult(metrics=metrics, flags=tuple(silence_flags + overtalk_flags + monologue_flags))

"""Which speaker is the agent.

Precedence: an explicit map (``--channels agent=right`` or a manifest column), then a
confident decision from what is said in the opening of the call (greetings such as
"thank you for calling", "customer service", "how can I help"), then the default
channel. The record's ``role_assignment`` says which rule decided and how sure it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .timeline import AGENT, CUSTOMER, Timeline

CHANNEL_NAMES = {"left": 0, "right": 1}


@dataclass(frozen=True)
class RoleOptions:
    default_agent_channel: str = "left"
    min_confidence: float = 0.6
    opening_s: float = 120.0
    agent_phrases: tuple[str, ...] = ()
    customer_phrases: tuple[str, ...] = ()
    call_direction: str = "inbound"  # mono first-speaker rule: inbound = the agent answers first (diarize issue)

    def __post_init__(self) -> None:
        if self.call_direction not in ("inbound", "outbound"):
            raise ValueError("roles.call_direction must be 'inbound' or 'outbound'")
        if self.default_agent_channel not in CHANNEL_NAMES:
            raise ValueError("roles.default_agent_channel must be 'left' or 'right'")
        if not 0.5 <= self.min_confidence <= 1.0:
            raise ValueError("roles.min_confidence must be between 0.5 and 1")
        for p in self.agent_phrases + self.customer_phrases:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"roles: bad phrase pattern {p!r}: {e}") from None


def parse_channel_map(spec: str | None) -> str | None:
    """``agent=right`` → ``right``; ``agent=S1`` (a mono speaker id) → ``S1``; None → None."""
    if spec is None or spec == "":
        return None
    key, sep, value = spec.partition("=")
    value = value.strip()
    if value.lower() in CHANNEL_NAMES:
        value = value.lower()
    elif not re.fullmatch(r"S\d+", value):
        value = ""
    if sep != "=" or key.strip().lower() != "agent" or not value:
        raise ValueError(f"channel map must look like 'agent=left', 'agent=right' or, for a mono call, a speaker id "
                         f"such as 'agent=S1'; got {spec!r}")
    return value


def normalize(text: str) -> str:
    """Lowercase, apostrophes kept, other punctuation dropped: rules must hold on raw ASR text."""
    text = text.lower().replace("’", "'")
    return re.sub(r"[^a-z0-9' ]+", " ", text).strip()


@dataclass(frozen=True)
class RoleDecision:
    roles: dict[str, str]
    rule: str
    confidence: float
    evidence: tuple[dict, ...] = ()

    def to_dict(self) -> dict:
        return {"rule": self.rule, "confidence": round(self.confidence, 3), "evidence": list(self.evidence)}


def content_scores(timeline: Timeline, options: RoleOptions) -> tuple[dict[str, float], list[dict]]:
    """Agent-likeness of each speaker from the opening of the call: agent phrases minus customer phrases."""
    agent_res = [re.compile(p) for p in options.agent_phrases]
    customer_res = [re.compile(p) for p in options.customer_phrases]
    scores = {s.id: 0.0 for s in timeline.speakers}
    evidence: list[dict] = []
    for turn in timeline.turns:
        if turn.start > options.opening_s or turn.speaker not in scores:
            continue
        text = normalize(turn.transcript)
        for pats, sign, kind in ((agent_res, 1.0, AGENT), (customer_res, -1.0, CUSTOMER)):
            for rx in pats:
                m = rx.search(text)
                if m:
                    scores[turn.speaker] += sign
                    evidence.append({"speaker": turn.speaker, "suggests": kind, "phrase": m.group(0),
                                     "start": turn.start})
    return scores, evidence


def assign_roles(timeline: Timeline, options: RoleOptions, *, explicit_agent: str | None = None) -> RoleDecision:
    """Decide every speaker's role; ``explicit_agent`` is 'left', 'right' or a speaker id."""
    speakers = list(timeline.speakers)
    ids = [s.id for s in speakers]
    if not speakers:
        return RoleDecision({}, "default", 0.0)

    def agent_is(agent_id: str) -> dict[str, str]:
        return {sid: (AGENT if sid == agent_id else CUSTOMER) for sid in ids}

    if explicit_agent is not None:
        agent_id = _speaker_for(explicit_agent, speakers)
        if agent_id is None:
            raise ValueError(f"channel map names agent={explicit_agent}, but this call's speakers are "
                             f"{', '.join(ids)} (channels: {', '.join(str(s.channel) for s in speakers)})")
        return RoleDecision(agent_is(agent_id), "explicit", 1.0)

    if len(speakers) == 1:
        scores, evidence = content_scores(timeline, options)
        role = CUSTOMER if scores[ids[0]] < 0 else AGENT
        return RoleDecision({ids[0]: role}, "single_speaker", 0.5, tuple(evidence[:6]))

    scores, evidence = content_scores(timeline, options)
    ranked = sorted(ids, key=lambda sid: scores[sid], reverse=True)
    margin = scores[ranked[0]] - scores[ranked[1]]
    confidence = min(1.0, 0.5 + 0.25 * margin)
    if margin > 0 and confidence >= options.min_confidence:
        return RoleDecision(agent_is(ranked[0]), "content", confidence,
                            tuple(e for e in evidence if e["speaker"] in ranked[:2])[:8])

    default_id = _speaker_for(options.default_agent_channel, speakers)
    if default_id is None:  # mono: no channels to default to
        return _first_speaker_rule(timeline, ids, options, scores, evidence)
    return RoleDecision(agent_is(default_id), "default", 0.5, tuple(evidence[:8]))


def _first_speaker_rule(timeline: Timeline, ids: list[str], options: RoleOptions, scores: dict[str, float],
                        evidence: list[dict]) -> RoleDecision:
    """Mono calls the content did not settle: who speaks first.

    On an inbound call the agent answers ("thank you for calling ..."), so the first
    speaker is the agent; on an outbound call the customer picks up ("hello?") and the
    agent is the first *other* voice. A first turn of a single word may be a line
    click or an ASR fragment, so the first turn with two or more words counts.
    Confidence 0.6 when the (inconclusive) content leans the same way, else 0.55; the
    evidence names the direction used (``[roles] call_direction``).
    """
    turns = sorted((t for t in timeline.turns if t.speaker in ids), key=lambda t: t.start)
    if options.call_direction == "inbound":
        # The agent's greeting: skip one-word first turns (a click or an ASR fragment).
        firm = [t for t in turns if len(t.words) >= 2 or len(t.transcript.split()) >= 2] or turns
        agent_id = firm[0].speaker if firm else ids[0]
    else:
        # The customer picks up ("hello?", often one word); the agent is the next voice.
        first = turns[0].speaker if turns else ids[0]
        agent_id = next((t.speaker for t in turns if t.speaker != first),
                        next((i for i in ids if i != first), first))
    others = [scores.get(i, 0.0) for i in ids if i != agent_id]
    leans = scores.get(agent_id, 0.0) > max(others, default=0.0)
    roles = {sid: (AGENT if sid == agent_id else CUSTOMER) for sid in ids}
    first_turn = next((t.start for t in turns if t.speaker == agent_id), 0.0)
    return RoleDecision(roles, "first_speaker", 0.6 if leans else 0.55,
                        tuple(evidence[:7]) + ({"speaker": agent_id, "suggests": AGENT,
                                                "call_direction": options.call_direction, "start": first_turn},))


def _speaker_for(name: str, speakers) -> str | None:
    if name in CHANNEL_NAMES:
        for s in speakers:
            if s.channel == CHANNEL_NAMES[name]:
                return s.id
        return None
    for s in speakers:
        if s.id == name:
            return s.id
    return None

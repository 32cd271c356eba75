"""Text side of the conduct analysis: normalize ASR text, compile phrase lists, find matches.

ASR text is lowercase-ish, often unpunctuated ("im not interested", "thats ok"), and
sometimes punctuated Whisper output ("I'm not interested."). Both are reduced to one
canonical token stream: spaCy's tokenizer splits contractions with or without the
apostrophe ("dont" -> do + nt), its norms expand them ("nt" -> "not", "'ll" -> "will"),
and a small table below finishes the job ("im" -> "i am", "its" -> "it is"). Phrase
lists from config go through the same normalizer, so a phrase written "I'll pass"
matches "ill pass", "i will pass" and "I'll pass."

Phrase syntax (documented again in config/default.toml):

* plain words, case and contractions do not matter: ``i'll pass``
* ``(a|b c)`` alternatives, ``[a|b]`` optional alternatives
* ``...`` up to ``gap_words`` arbitrary words
* ``word*`` any word starting with ``word`` (``upgrad*`` = upgrade, upgrading...)
* ``{product}`` the product vocabulary, ``{price}`` an amount of money or a
  percentage, ``{number}`` a number
* ``^`` at the start: the phrase must open the turn or a sentence (fillers like
  "um", "well", "yeah" before it are skipped)

Matching is regular expressions over the canonical stream, so it is cheap; spaCy's
tagger is used where words are ambiguous (a turn-opening "no" that is a determiner,
as in "no problem", is not a refusal).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

# Expansions spaCy's norms leave undone (ASR drops apostrophes).
_SIMPLE = {
    "m": "am", "'m": "am", "ve": "have", "'ve": "have", "re": "are", "'re": "are", "ll": "will", "'ll": "will",
    "d": "would", "'d": "would", "nt": "not", "n't": "not",
    "im": "i am", "ive": "i have", "its": "it is", "lets": "let us", "thats": "that is", "theres": "there is",
    "whats": "what is", "youre": "you are", "youll": "you will", "youve": "you have", "youd": "you would",
    "theyre": "they are", "wanna": "want to", "gotta": "got to", "ok": "okay", "alright": "all right",
    "%": "percent", "nope": "nope", "yep": "yep", "cannot": "can not", "preapproved": "pre approved",
    "didnt": "did not", "dont": "do not", "doesnt": "does not", "isnt": "is not", "wasnt": "was not",
    "hasnt": "has not", "havent": "have not", "cant": "can not", "wont": "will not", "couldnt": "could not",
    "wouldnt": "would not", "shouldnt": "should not", "arent": "are not", "werent": "were not",
}
# "s" after these is "is" ("thats", "what's"); elsewhere it is a possessive.
_IS_BEFORE = {"that", "there", "what", "it", "he", "she", "who", "here", "where", "how", "everything", "nothing",
              "something", "this", "which", "one", "today"}
# "ill"/"id" (ASR for "I'll"/"I'd") only when a verb follows.
_ILL_NEXT = {"pass", "think", "take", "call", "be", "do", "have", "get", "try", "check", "go", "put", "add", "let",
             "need", "just", "send", "remove", "book", "sign", "look", "stick", "keep", "see", "wait", "pay", "leave",
             "probably", "definitely", "consider", "talk", "give", "make", "transfer", "update", "process", "cancel",
             "email", "confirm", "refund", "arrange", "sort", "log", "raise", "text", "reset", "fix", "note",
             "mention", "ring", "pop", "post", "reissue", "resend", "escalate", "credit", "waive", "switch", "move",
             "change", "set", "order", "flag", "reschedule", "speak", "write", "bring", "pull", "drop", "knock",
             "throw", "match", "also", "only", "never", "always", "come", "stop", "start", "show", "explain", "ask",
             "tell"}
_ID_NEXT = {"like", "rather", "love", "prefer", "be", "have", "need", "want", "just", "really", "also", "go", "grab",
            "add", "get", "take", "pick", "choose", "recommend", "say", "suggest", "stick", "definitely", "probably"}
_SENT_END = {".", "?", "!"}
# A sentence-opening "were" (after these lead-ins too) is ASR's "we're" unless a subject follows ("were you ...").
_WERE_AFTER = {"um", "uh", "so", "well", "oh", "yeah", "and", "but", "okay", "ok", "no", "yes", "right", "look", "hmm", "erm"}
_WERE_QUESTION_NEXT = {"you", "they", "there", "we", "i", "he", "she", "it", "the", "these", "those", "any", "all", "your",
                       "my", "his", "her", "their", "our", "both", "either"}
_NUM_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
              "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand "
              "half").split()
_NUM_RE = r"(?:\d[\d.,]*|" + "|".join(_NUM_WORDS) + r")"
_CURRENCY = r"(?:dollars?|bucks|pounds?|quid|euros?|cents?|pence|p|percent|grand|points)"
_PERIOD = (r"(?:a|per|each|every) (?:month|year|day|week|night|seat|user|visit|line|person|session|class|lesson|hour"
           r"|parcel|order|item|delivery|transaction|litre|liter|unit|gig|licen[cs]e|device|van|vehicle|terminal)")
_SLOTS_BUILTIN = {
    "number": rf"(?: {_NUM_RE})+",
    # $20 | 20 dollars | twenty nine ninety nine | 45 a month | half price
    "price": (rf"(?:(?: \$)(?: {_NUM_RE})+|(?: {_NUM_RE})+ {_CURRENCY}|(?: {_NUM_RE})+ {_PERIOD}"
              rf"|(?: {_NUM_RE})+ (?:more|extra|less|off)|(?: {_NUM_RE}){{2,}} (?:ninety nine|ninety five)"
              rf"|(?: {_NUM_RE}) (?:ninety nine|ninety five|forty nine)"
              r"| half (?:price|off))"),
}


@dataclass
class Utterance:
    """One turn's text as a canonical token stream with a way back to the original characters."""

    text: str
    forms: list[str] = field(default_factory=list)  # canonical forms, one word each
    spans: list[tuple[int, int]] = field(default_factory=list)  # char span in ``text`` per form
    pos: list[str] = field(default_factory=list)  # coarse POS per form ("" when unknown)
    sentence_starts: set[int] = field(default_factory=set)  # form indexes that open a sentence
    stream: str = ""  # " " + " ".join(forms)
    offsets: list[int] = field(default_factory=list)  # index in ``stream`` of the space before each form

    def finish(self) -> "Utterance":
        parts, offs, cursor = [], [], 0
        for f in self.forms:
            offs.append(cursor)
            parts.append(" " + f)
            cursor += len(f) + 1
        self.stream = "".join(parts)
        self.offsets = offs
        if self.forms:
            self.sentence_starts.add(0)
        return self

    def form_range(self, a: int, b: int) -> tuple[int, int]:
        """Stream span [a, b) -> first and last form index."""
        i = max(0, bisect.bisect_right(self.offsets, a) - 1)
        j = max(i, bisect.bisect_left(self.offsets, b) - 1)
        return i, j

    def char_span(self, i: int, j: int) -> tuple[int, int]:
        return self.spans[i][0], self.spans[j][1]


# Pieces spaCy splits off contractions ("can't" -> ca + n't); only these take spaCy's norm,
# other words keep their own spelling (spaCy normalizes "did" to "do", which loses the tense).
_CONTRACTION_PIECES = {"ca", "wo", "sha", "gon", "na", "ta", "y'", "'cause", "cos", "cuz", "lemme", "gimme"}


def _expand(low: str, norm: str, prev: str, nxt: str, pos: str) -> list[str]:
    if "'" not in low and low not in _CONTRACTION_PIECES and low not in _SIMPLE:
        norm = low
    if low in ("s", "'s"):
        if norm == "us":  # let's
            return ["us"]
        return ["is"] if (pos == "AUX" or prev in _IS_BEFORE) else ["s"]
    if low == "ill" and nxt in _ILL_NEXT:
        return ["i", "will"]
    if low == "id" and nxt in _ID_NEXT:
        return ["i", "would"]
    if low in _SIMPLE:
        return _SIMPLE[low].split()
    if norm in _SIMPLE:
        return _SIMPLE[norm].split()
    if norm.startswith("'"):
        norm = norm[1:]
    return [norm] if norm else []


def _clean(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


def utterance_from_tokens(text: str, toks: Sequence[tuple[str, str, int, str, bool]],
                          breaks: frozenset[int] = frozenset()) -> Utterance:
    """Build an utterance from (token_text, norm, char_idx, pos, is_punct) tuples.

    ``breaks``: character offsets where a sentence starts even without punctuation
    (the start of each speech segment joined into one floor turn).
    """
    u = Utterance(text=text)
    lows = [t[0].lower() for t in toks]
    sent_start = True
    for k, (tok, norm, idx, pos, punct) in enumerate(toks):
        low = lows[k]
        if idx in breaks:
            sent_start = True
        if low == "$":
            forms = ["$"]
        elif low == "%":
            forms = ["percent"]
        elif punct or not low.strip():
            if low in _SENT_END:
                sent_start = True
            continue
        else:
            prev = u.forms[-1] if u.forms else ""
            nxt = lows[k + 1] if k + 1 < len(lows) else ""
            if low == "were" and (sent_start or prev in _WERE_AFTER) and nxt and nxt not in _WERE_QUESTION_NEXT:
                forms = ["we", "are"]  # ASR's "were doing free surveys" is "we're"; "were you" stays a question
            else:
                forms = _expand(low, norm.lower(), prev, nxt, pos)
        if forms and sent_start:
            u.sentence_starts.add(len(u.forms))
            sent_start = False
        for f in forms:
            u.forms.append(f)
            u.spans.append((idx, idx + len(tok)))
            u.pos.append(pos)
    return u.finish()


_FALLBACK_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[.,][0-9]+)*|'[a-z]+|[$%.?!]", re.I)


def _fallback_tokens(text: str) -> list[tuple[str, str, int, str, bool]]:
    """Regex tokenizer used when spaCy is unavailable (no POS)."""
    out = []
    for m in _FALLBACK_TOKEN.finditer(text):
        tok = m.group(0)
        out.append((tok, tok.lower(), m.start(), "", tok in ".?!"))
    # glue "don" + "'t" style splits: "don't" -> "do" + "not"
    fixed = []
    for tok, low, idx, pos, punct in out:
        if low == "'t" and fixed and fixed[-1][1].endswith("n"):
            ptok, plow, pidx, _, _ = fixed.pop()
            base = {"won": "will", "can": "can", "don": "do", "shan": "shall"}.get(plow, plow[:-1])
            fixed.append((ptok[:-1], base, pidx, "", False))
            fixed.append(("n't", "not", pidx + len(ptok) - 1, "", False))
            continue
        fixed.append((tok, low, idx, pos, punct))
    return fixed


def normalize_texts(texts: Sequence[str], nlp: Any | None, *, tag: bool = False, batch_size: int = 256,
                    breaks: Sequence[frozenset[int]] | None = None) -> list[Utterance]:
    """Canonical utterances for ``texts`` in one batched spaCy pass.

    ``tag=False`` runs only the tokenizer (~50x cheaper than the tagger); the analysis
    tags the few turns where a word's part of speech decides the reading.
    """
    cleaned = [_clean(t or "") for t in texts]
    brk = list(breaks) if breaks is not None else [frozenset()] * len(cleaned)
    if nlp is None:
        return [utterance_from_tokens(t, _fallback_tokens(t), b) for t, b in zip(cleaned, brk)]
    docs = nlp.pipe(cleaned, batch_size=batch_size) if tag else nlp.tokenizer.pipe(cleaned, batch_size=batch_size)
    out = []
    for text, doc, b in zip(cleaned, docs, brk):
        toks = [(t.text, t.norm_, t.idx, t.pos_, t.is_punct or t.is_space) for t in doc]
        out.append(utterance_from_tokens(text, toks, b))
    return out


# ---------------------------------------------------------------------------
# Phrase compilation
# ---------------------------------------------------------------------------

_SYNTAX = re.compile(r"\.\.\.|\{[a-z_]+\}|[()\[\]|^]|[^\s()\[\]|{}^]+")


class PhraseError(ValueError):
    pass


# Function words keep their exact form; content words also match their inflections
# ("move" = moves, moved, moving), so a phrase need not list every tense.
_NO_INFLECT = set("""a an the i you we he she it they me us him her them my your our their its this that these those
is are was were be been am do does did have has had will would can could shall should may might must not no
and or but if so for to of in on at by with from up off out as than then there here what when where who why how
all any some each just only also very too get got let""".split())


def _inflected(form: str) -> str:
    if len(form) < 3 or not form.isalpha() or form in _NO_INFLECT:
        return re.escape(form)
    stem = form[:-1] if form.endswith("e") else form
    alts = {form, form + "s", form + "es", form + "d" if form.endswith("e") else form + "ed", stem + "ing"}
    if form.endswith("y") and len(form) > 3:
        alts |= {form[:-1] + "ies", form[:-1] + "ied"}
    return "(?:" + "|".join(sorted(map(re.escape, alts), key=len, reverse=True)) + ")"


@dataclass(frozen=True)
class Phrase:
    source: str  # as written in config
    regex: re.Pattern
    anchored: bool


@dataclass(frozen=True)
class Match:
    phrase: str
    first: int  # form index
    last: int  # form index (inclusive)
    char_start: int
    char_end: int


class PhraseCompiler:
    """Turns config phrases into regexes over the canonical stream."""

    def __init__(self, nlp: Any | None, *, gap_words: int, slots: dict[str, str] | None = None,
                 fillers: Iterable[str] = (), inflect: bool = False):
        self.nlp = nlp
        self.inflect = inflect
        self.gap = max(0, int(gap_words))
        self.slots = dict(_SLOTS_BUILTIN)
        self.slots.update(slots or {})
        self._fillers = [f for f in fillers if f]

    def words(self, chunk: str) -> list[str]:
        """Canonical forms of a literal chunk of a phrase (tokenizer only: no tagger needed)."""
        chunk = _clean(chunk)
        if self.nlp is not None:
            toks = [(t.text, t.norm_, t.idx, "", t.is_punct) for t in self.nlp.tokenizer(chunk)]
        else:
            toks = _fallback_tokens(chunk)
        return utterance_from_tokens(chunk, toks).forms

    def literal(self, word: str) -> str:
        star = word.endswith("*") and len(word) > 1
        base = word[:-1] if star else word
        forms = self.words(base)
        if not forms:
            return ""
        parts = [" " + (_inflected(f) if self.inflect else re.escape(f)) for f in forms]
        if star:
            parts[-1] += r"\S*"
        return "".join(parts)

    def fillers_regex(self) -> str:
        if not self._fillers:
            return ""
        alts = "|".join(sorted({self.literal(f) for f in self._fillers if self.literal(f)}, key=len, reverse=True))
        return f"(?:{alts})*"

    def compile_body(self, phrase: str) -> tuple[str, bool]:
        tokens = _SYNTAX.findall(phrase.strip().lower())
        anchored = bool(tokens) and tokens[0] == "^"
        if anchored:
            tokens = tokens[1:]
        pos = 0

        def seq(stop: set[str]) -> str:
            nonlocal pos
            out = []
            while pos < len(tokens) and tokens[pos] not in stop:
                t = tokens[pos]
                if t in ("(", "["):
                    pos += 1
                    alts = [seq({"|", ")", "]"})]
                    while pos < len(tokens) and tokens[pos] == "|":
                        pos += 1
                        alts.append(seq({"|", ")", "]"}))
                    close = ")" if t == "(" else "]"
                    if pos >= len(tokens) or tokens[pos] != close:
                        raise PhraseError(f"unbalanced {t!r} in phrase {phrase!r}")
                    pos += 1
                    group = "(?:" + "|".join(a for a in alts) + ")"
                    out.append(group + ("?" if t == "[" or "" in alts else ""))
                elif t == "...":
                    pos += 1
                    out.append(rf"(?: \S+){{0,{self.gap}}}")
                elif t.startswith("{"):
                    name = t[1:-1]
                    if name not in self.slots:
                        raise PhraseError(f"unknown slot {t} in phrase {phrase!r}; known: "
                                          + ", ".join("{" + s + "}" for s in sorted(self.slots)))
                    out.append(f"(?:{self.slots[name]})")
                    pos += 1
                elif t in (")", "]", "|"):
                    raise PhraseError(f"unexpected {t!r} in phrase {phrase!r}")
                elif t == "^":
                    raise PhraseError(f"'^' must open the phrase {phrase!r}")
                elif t == "?":
                    # A regex habit that would otherwise be dropped silently and make the group required.
                    raise PhraseError(f"'?' is not phrase syntax in {phrase!r}: write optional words as [a|b]")
                else:
                    out.append(self.literal(t))
                    pos += 1
            return "".join(out)

        body = seq(set())
        if pos != len(tokens):
            raise PhraseError(f"unbalanced brackets in phrase {phrase!r}")
        if not body:
            raise PhraseError(f"empty phrase {phrase!r}")
        return body, anchored

    def compile(self, phrase: str) -> Phrase:
        body, anchored = self.compile_body(phrase)
        pre = self.fillers_regex() if anchored else ""
        # group 1 = the phrase without fillers; the lookahead keeps whole words.
        return Phrase(source=phrase, regex=re.compile(f"{pre}({body})(?= |$)"), anchored=anchored)

    def compile_all(self, phrases: Iterable[str]) -> list[Phrase]:
        return [self.compile(p) for p in phrases]

    def slot_from_terms(self, terms: Iterable[str]) -> str:
        """A ``{product}``-style slot from vocabulary terms (final word may take a plural s/es)."""
        alts = []
        for term in terms:
            body, _ = self.compile_body(term)
            if body.endswith(r"\S*") or body.endswith(")") or body.endswith("?"):
                alts.append(body)
            else:
                alts.append(body + "(?:s|es)?")
        alts.sort(key=len, reverse=True)
        return "(?:" + "|".join(alts) + ")" if alts else r"(?!x)x"


def find(utt: Utterance, phrases: Sequence[Phrase]) -> list[Match]:
    """Every phrase match in ``utt`` (one per phrase and position), in stream order."""
    out: list[Match] = []
    if not utt.forms:
        return out
    for ph in phrases:
        for m in ph.regex.finditer(utt.stream):
            a, b = m.span(1)
            if b <= a:
                continue
            first, last = utt.form_range(a, b)
            if ph.anchored:
                start_form = utt.form_range(m.start(0), m.start(0) + 1)[0] if m.start(0) < m.start(1) else first
                if start_form not in utt.sentence_starts:
                    continue
            cs, ce = utt.char_span(first, last)
            out.append(Match(phrase=ph.source, first=first, last=last, char_start=cs, char_end=ce))
    out.sort(key=lambda x: (x.first, x.last))
    return out

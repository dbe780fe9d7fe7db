"""Quantities the grounding check reads besides digits and number words: vague counts ('several polyps', 'a couple
of white cells', 'III polyps'), fractions in words ('half of the cells', 'a third of them'), numbers bound to a
role by the words around them ('80 % confidence' is a score, not the detector's threshold; '40' next to nothing
is not a box corner), and sentences in a language the check cannot read (its vocabulary is English: 'Es gibt fünf
Polypen' would pass unread)."""

from __future__ import annotations

import re
from typing import Any, Iterable

from pydantic import BaseModel

from agent.grounding.terms import _FILLER, TERMS, number_value
from agent.number_words import SPELLED_NUMBER

__all__ = ["vague_count_claims", "fraction_claims", "score_role", "score_numbers", "strip_positions", "fraction_numbers",
           "box_sizes", "mentions_coordinates", "foreign_language", "count_word_claims", "mentions_size"]

# ---- vague counts ---------------------------------------------------------------------------------
_VAGUE: dict[str, tuple[int, int | None]] = {
    "a couple of": (2, 3), "a pair of": (2, 2), "a few": (2, 5), "a handful of": (2, 6), "several": (3, 15),
    "multiple": (2, None), "many": (5, None), "numerous": (5, None), "lots of": (5, None), "a lot of": (5, None),
    "plenty of": (5, None), "a large number of": (10, None), "a great number of": (10, None),
    "a small number of": (1, 5), "dozens of": (24, None), "scores of": (40, None), "countless": (50, None),
    "innumerable": (50, None), "myriad": (50, None), "a myriad of": (50, None), "a multitude of": (10, None),
}
"""A vague quantity word -> the counts it can honestly describe (None: no upper bound)."""
_ROMAN = r"(?-i:(?=[IVXLC]{2,}\b|[VXLC]\b)(?:C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3}))"
"""A Roman numeral in capitals, two letters or more or one of V, X, L, C ('I' alone is the pronoun)."""
_VAGUE_WORDS = "|".join(sorted((re.escape(w) for w in _VAGUE), key=len, reverse=True))
_VAGUE_PHRASES = tuple(
    (t, re.compile(rf"(?<![\w-])(?:(?P<vague>{_VAGUE_WORDS})|(?P<roman>{_ROMAN}))(?:\s+of)?\s+(?:the\s+)?"
                   rf"{_FILLER}{{0,2}}(?:{t.pattern})\b", re.IGNORECASE))
    for t in TERMS if t.count_key)


_COMPARATIVE = re.compile(r"\b(?:as|so|too|how|not|that|this|twice|times|equally)\s+$", re.IGNORECASE)


def _roman(tok: str) -> int:
    vals = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}
    total = 0
    for a, b in zip(tok, tok[1:] + " "):
        total += -vals[a] if b != " " and vals[b] > vals[a] else vals[a]
    return total


def vague_count_claims(body: str, counts: dict[str, set[int]], where: str) -> list[tuple[str, str]]:
    """(words, reason) of every vague count of a counted class that no count of the cited results fits:
    'several polyps' on a count of 2, 'III polyps' on 2."""
    out = []
    for term, rx in _VAGUE_PHRASES:
        for m in rx.finditer(body):
            if _COMPARATIVE.search(body, 0, m.start()):
                continue  # 'as many white cells as before', 'how many polyps': a comparison or a question
            have = counts.get(term.count_key or "*", set())
            if m.group("roman"):
                lo = hi = _roman(m.group("roman"))
            else:
                lo, hi = _VAGUE[" ".join(m.group("vague").lower().split())]
            if not any(n >= lo and (hi is None or n <= hi) for n in have):
                told = ", ".join(map(str, sorted(have))) or f"no {term.name}"
                span = f"{lo}" if hi == lo else f"{lo}-{hi}" if hi else f"{lo} or more"
                out.append((m.group(0), f"'{m.group(0)}' ({span}): the cited result {where or 'none'} counts {told}"))
    return out


# ---- fractions in words -----------------------------------------------------------------------------
_FRACTIONS = {"half": 0.5, "one half": 0.5, "a half": 0.5, "a third": 1 / 3, "one third": 1 / 3,
              "two thirds": 2 / 3, "a quarter": 0.25, "one quarter": 0.25, "three quarters": 0.75,
              "a fifth": 0.2, "one fifth": 0.2, "a tenth": 0.1, "one tenth": 0.1}
_FRACTION = re.compile(r"(?<![\w-])(" + "|".join(w.replace(" ", r"[\s-]+") for w in sorted(_FRACTIONS, key=len,
                                                                                           reverse=True))
                       + r")(?:\s+of)?\s+(?:the|all|them|these|those|its|their|this|each|it)\b", re.IGNORECASE)
_PLACE = re.compile(r"\b(?:upper|lower|left|right|top|bottom|inner|outer|first|second|last|medial|lateral|other|"
                    r"front|back|near|far|superior|inferior|cranial|caudal)\s+$", re.IGNORECASE)
"""'the lower half of the lung' names a place, not a quantity."""
_ABOUT = re.compile(r"\b(?:about|roughly|around|approximately|nearly|almost|some|over|under|just)\s+$", re.IGNORECASE)


_SETTING = re.compile(r"threshold|min_score|iou|band|clip_fraction|level|limit|quantile", re.IGNORECASE)


def fraction_numbers(obj: Any) -> list[float]:
    """The fractions a result states (its numbers in [0, 1] and its ``*_pct`` / ``*percent`` fields / 100), the
    settings it was run with (thresholds, IoU, bands) left out: a threshold of 0.5 is not 'half of the lung'."""
    obj, out = _dump(obj), []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if _SETTING.search(str(k)):
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                pct = re.search(r"(?:_pct|percent)$", str(k), re.IGNORECASE)
                x = float(v) / 100 if pct else float(v)
                if 0.0 <= x <= 1.0:
                    out.append(x)
            else:
                out += fraction_numbers(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            out += fraction_numbers(v)
    return out


def fraction_claims(body: str, fractions: Iterable[float], counts: dict[str, set[int]],
                    where: str) -> list[tuple[str, str]]:
    """(words, reason) of every fraction in words ('half of the cells') that no fraction, percentage or ratio of two
    counts of the cited results states (within 0.05; 0.10 after 'about', 'nearly', ...)."""
    out = []
    values = list(fractions)
    ints = sorted({n for v in counts.values() for n in v if n > 0})
    for m in _FRACTION.finditer(body):
        if _PLACE.search(body, 0, m.start(1)):
            continue
        f = _FRACTIONS[" ".join(m.group(1).lower().replace("-", " ").split())]
        tol = 0.10 if _ABOUT.search(body, 0, m.start(1)) else 0.05
        if any(abs(v - f) <= tol for v in values) or any(abs(a / b - f) <= tol / 2 for a in ints for b in ints if a <= b):
            continue
        out.append((m.group(1), f"'{m.group(1)}' ({f:.2f}): no fraction, percentage or ratio of counts of "
                                f"{where or 'a cited result'} states it"))
    return out


# ---- numbers bound to a role ----------------------------------------------------------------------------
_SCORE_WORD = re.compile(r"\b(?:confiden\w*|scor\w*|probabilit\w*|likel\w*|certain\w*|chance|sure|p)\b", re.IGNORECASE)
_THRESHOLD_WORD = re.compile(r"\b(?:threshold\w*|cut-?offs?|minimum|min|at least|above|below|over|under|limit\w*|"
                             r"band|level)\b|>=|<=|≥|≤|>|<", re.IGNORECASE)
_WORD = re.compile(r"\S+")


def score_role(body: str, start: int, end: int) -> bool:
    """Whether the number at ``body[start:end]`` (a percentage or a decimal in [0, 1]) is stated as a confidence,
    score or probability of a finding (a score word within 4 words before or 2 after it, no threshold word there):
    then only a score or probability of the cited results backs it, never the threshold that was applied."""
    before = " ".join(_WORD.findall(body[:start])[-4:])
    after = " ".join(_WORD.findall(body[end:])[:2])
    near = before + " " + after
    return bool(_SCORE_WORD.search(near)) and not _THRESHOLD_WORD.search(near)


def _dump(obj: Any) -> Any:
    return obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj


def score_numbers(obj: Any) -> list[float]:
    """The scores and probabilities a result states (fields ``score`` / ``*confidence``, the values of
    ``*probabilities`` and their complements), as fractions."""
    obj, out = _dump(obj), []
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = str(k).lower()
            if (key in ("score", "scores") or key.endswith("confidence")) and isinstance(v, (int, float)) \
                    and not isinstance(v, bool):
                out.append(float(v))
            elif key.endswith("probabilities") and isinstance(v, dict):
                ps = [float(x) for x in v.values() if isinstance(x, (int, float)) and not isinstance(x, bool)]
                out += ps + [1.0 - p for p in ps]
            out += score_numbers(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            out += score_numbers(v)
    return out


_CORNERS = ("x_min", "y_min", "x_max", "y_max")


def _boxes(obj: Any) -> Iterable[dict]:
    obj = _dump(obj)
    if isinstance(obj, dict):
        if all(isinstance(obj.get(k), (int, float)) for k in _CORNERS):
            yield obj
        for v in obj.values():
            yield from _boxes(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _boxes(v)


_POSITION_KEYS = {"centroid", "point", "points", "coords", "xy"}


def strip_positions(obj: Any) -> tuple[Any, list[float]]:
    """(the result without its positions, the position numbers): box corners, centroids and prompt points are
    pixels of the image, not quantities, so they back a number only where the sentence speaks of positions."""
    obj = _dump(obj)
    if isinstance(obj, dict):
        kept, pos = {}, []
        is_point = {"x", "y"} <= obj.keys()
        for k, v in obj.items():
            key = str(k).lower()
            if key in _CORNERS or key in _POSITION_KEYS or is_point and key in ("x", "y"):
                pos += [float(x) for x in _flat(v)]
            else:
                kept[k], inner = strip_positions(v)
                pos += inner
        return kept, pos
    if isinstance(obj, (list, tuple)):
        parts = [strip_positions(v) for v in obj]
        return [p for p, _ in parts], [x for _, inner in parts for x in inner]
    return obj, []


def _flat(v: Any) -> Iterable[float]:
    v = _dump(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from _flat(x)
    elif isinstance(v, (list, tuple)):
        for x in v:
            yield from _flat(x)


def box_sizes(obj: Any) -> list[float]:
    """Width, height and area (pixels) of every box a result states: '50 px wide' is backed by its box."""
    out = []
    for b in _boxes(obj):
        w, h = float(b["x_max"]) - float(b["x_min"]), float(b["y_max"]) - float(b["y_min"])
        out += [w, h, w * h]
    return out


_COORD_CONTEXT = re.compile(r"\b(?:[xy]\s*[=:]?\s*[-+]?\d+|boxe?s?|bounding|coordinat\w*|centroids?|cent(?:re|er)d? at|"
                            r"positions?|located at|at \(|corners?|pixel (?:row|column)s?|rows?|columns?)\b|\(\s*\d+\s*,",
                            re.IGNORECASE)


def mentions_coordinates(body: str) -> bool:
    """Whether a clause speaks of positions (a box, 'x 100-150', '(312, 240)'): only then do box corners and
    centroids back its numbers."""
    return bool(_COORD_CONTEXT.search(body))


# ---- language ----------------------------------------------------------------------------------
_FUNCTION_WORDS = {
    "German": "der die das und ist sind es gibt ein eine einen nicht keine kein mit auf im zu den dem des sich auch "
              "wurde werden bei nach fünf drei zwei vier sechs sieben acht neun zehn",
    "French": "le la les et est sont il un une des du pas avec dans pour sur au aux ce cette qui ne cinq trois deux "
              "quatre six sept huit neuf dix",
    "Spanish": "el la los las es son hay un una unos del con en por para que se muy cinco tres dos cuatro seis "
               "siete ocho nueve diez",
    "Italian": "il lo la gli le è sono ci un una del della con per che cinque tre due quattro sei sette otto nove dieci",
    "Portuguese": "o os é são há um uma da com em para não que cinco três dois duas quatro seis sete oito nove dez",
    "Dutch": "de het een en zijn er van met niet geen op vijf drie twee vier zes zeven acht negen tien",
}
_FOREIGN = {lang: set(words.split()) for lang, words in _FUNCTION_WORDS.items()}
_ENGLISH = set("the an is are there of and in on with no not this that was were to for at by it its be been found "
               "count counted counts image film study shows i we you has have had which what from than more fewer "
               "one two three four five six seven eight nine ten none".split())
_TOKEN = re.compile(r"[^\W\d_]+", re.UNICODE)


def foreign_language(sentence: str) -> str | None:
    """The language a sentence is written in when it is not English (its function words are another language's and
    none are English, or three or more are and they outnumber the English ones); None for English or too little to
    tell.  The check's vocabulary is English, so such a sentence cannot be verified."""
    words = [w.lower() for w in _TOKEN.findall(re.sub(r"\[?E\d+\]?", " ", sentence))]
    english = sum(w in _ENGLISH for w in words)
    best, n = None, 0
    for lang, vocab in _FOREIGN.items():
        k = sum(w in vocab for w in words)
        if k > n:
            best, n = lang, k
    if best and ((n >= 1 and english == 0) or (n >= 3 and n > english)):
        return best
    return None


# ---- counts written after the class, and findings said to be absent ----------------------------------------
_CLASS_WORDS = "|".join(t.pattern for t in TERMS if t.count_key) + r"|(?:blood )?cells?"
_AFTER_COUNT = (r"(?!\s*(?:%|per ?cent|mm|cm|[µu]m|px|pixels?|->|→|[.,]\d|(?:to|:|/)\s*\d|x\b|times|fold|more|fewer|less|"
                r"larger|smaller|higher|lower|days?|weeks?|months?|years?|(?:[\w-]+\s+){0,2}(?:" + _CLASS_WORDS + r")\b))")
_LABELLED = tuple(
    (t, re.compile(rf"(?<![\w#-])(?:(?:the\s+)?(?:number|count|total|tally)\s+of\s+(?:\w+\s+)?(?:{t.pattern})\s*"
                   rf"(?:is|was|are|were|equals?|:|=)|(?:{t.pattern})(?:\s+(?:count|counts|total|tally|number))?\s*"
                   rf"(?::|=|\(\s*n\s*=|\||[x×](?=\s*\d))|(?:{t.pattern})\s+(?:count|counts|total|tally|number)\s+"
                   rf"(?:(?:of|in|on|for)\s+(?:the|this|that)\s+[\w-]+\s+)?(?:is|was|are|were|of|equals?)|(?:{t.pattern})\s+(?:detected|found|seen|counted|present|identified)"
                   rf"\s*[:=])\s*(\d+(?:\.0+)?(?![\d.,]?\d)|(?:{SPELLED_NUMBER})(?![\w-])){_AFTER_COUNT}", re.IGNORECASE))
    for t in TERMS if t.count_key)
"""'WBC: 5', 'polyps = 2', 'WBC (n=5)', 'the WBC count is 1', 'the number of polyps is 0', 'polyps detected: 1',
'| WBC | 1 |', 'polyps x3': a count written after its class ('RBC to WBC: 10 to 1' is a ratio, in 'WBC: 10 RBC,
1 WBC' the number belongs to the word after it, and 'polyp count: 2 more' is a change)."""
_NONE_WORDS = (r"(?:none|nil|absent|not (?:seen|found|detected|present|visible|identified)|(?:could not|couldn't|"
               r"cannot|can't) be (?:seen|found|detected|identified|visuali[sz]ed))")
_ABSENT = tuple(
    (t, re.compile(rf"\b(?:no (?:evidence|signs?|trace) of (?:any )?|free (?:of|from) (?:any )?|absence of (?:any )?|"
                   rf"(?:could not|couldn't|cannot|can't|did not|didn't|does not|doesn't|failed to|unable to) "
                   rf"(?:find|see|detect|identify|locate|spot) (?:any |a |an |a single )?)"
                   rf"(?:{t.pattern})\b|(?<![\w#-])(?:{t.pattern})\s*(?::\s*{_NONE_WORDS}|(?:were|was|are|is)\s+"
                   rf"{_NONE_WORDS}|(?:could not|couldn't|cannot|can't) be (?:seen|found|detected|identified|visuali[sz]ed))\b",
                   re.IGNORECASE))
    for t in TERMS if t.count_key)
"""'no evidence of polyps', 'free of polyps', 'polyps: none', 'polyps were not seen': a count of 0."""
_NOTHING = re.compile(r"\b(?:nothing|no (?:lesions?|findings?|abnormalit\w+|objects?|detections?|masses))\s+"
                      r"(?:(?:was|were|is|are|has been|have been)\s+)?(?:detected|found|seen|visible|identified)\b|"
                      r"\b(?:found|detected|shows?|showed|sees?|saw)\s+nothing\b", re.IGNORECASE)
"""'Nothing was detected', 'the detector found nothing': no finding of any class."""


_BOTH = tuple((t, re.compile(rf"\bboth\s+(?:of\s+)?(?:the\s+|these\s+|those\s+)?{_FILLER}{{0,2}}(?:{t.pattern})\b",
                             re.IGNORECASE)) for t in TERMS if t.count_key)
"""'both polyps': two of them."""


def count_word_claims(body: str, counts: dict[str, set[int]], where: str) -> list[tuple[str, str]]:
    """(words, reason) of counts written after their class ('WBC: 5') and of findings said to be absent ('no
    evidence of polyps', 'nothing was detected') that no count of the cited results states."""
    out = []

    def said(term: Any, rx: re.Pattern[str], n_of: Any, label: bool) -> None:  # each phrase states a count n_of(m)
        for m in rx.finditer(body):
            have = counts.get(term.count_key or "*", set())
            if have and n_of(m) not in have:
                out.append((m.group(0), f"count '{m.group(0)}': the cited result {where} counts "
                                        f"{', '.join(map(str, sorted(have)))}" if label else
                                        f"'{m.group(0)}': the cited result {where} counts "
                                        f"{', '.join(map(str, sorted(have)))} {term.name}"))

    for term, rx in _LABELLED:  # 'WBC: 5'
        said(term, rx, lambda m: int(float(m.group(1))) if m.group(1)[0].isdigit() else number_value(m.group(1)), True)
    for term, rx in _BOTH:  # 'both polyps'
        said(term, rx, lambda m: 2, False)
    for term, rx in _ABSENT:  # 'no evidence of polyps'
        said(term, rx, lambda m: 0, False)
    if (m := _NOTHING.search(body)) is not None and max(counts.get("*", {0}), default=0) > 0:
        out.append((m.group(0), f"'{m.group(0)}': the cited result {where} found "
                                f"{max(counts['*'])} of something"))
    return out


_SIZE_CONTEXT = re.compile(r"\b(?:px|pixels?|wide|width|tall|height|high|across|size|sized|area|big|large|long|"
                           r"measur\w*|dimensions?)\b", re.IGNORECASE)


def mentions_size(body: str) -> bool:
    """Whether a clause speaks of sizes: only then do the widths, heights and areas of boxes back its numbers."""
    return bool(_SIZE_CONTEXT.search(body))

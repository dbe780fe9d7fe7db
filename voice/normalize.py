"""Transcript normalisation: one canonical spelling per word before the strict parser sees it.

Pure text functions.  ``normalize("Osler, how many WBCs are visible?")`` ->
``"osler how many white cells are visible"``.  What it does, in order: lower case; expand
contractions; unit and symbol spellings (``12 mm`` -> ``twelve millimeters``, ``%`` -> ``percent``);
digits to words (the grammar is written in words); medical synonyms and abbreviations to the
grammar's words (``white blood cells``/``WBCs``/``leukocytes`` -> ``white cells``); punctuation
dropped; spaces collapsed.  It never guesses a word that was not heard: a mishearing stays a
mishearing and the strict parser rejects it.
"""

from __future__ import annotations

import re

__all__ = ["normalize", "number_to_words", "tokens"]

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORDINALS = {"1st": "first", "2nd": "second", "3rd": "third", "4th": "fourth", "5th": "fifth"}

_CONTRACTIONS = [
    (r"\bwhat's\b", "what is"), (r"\bthat's\b", "that is"), (r"\bit's\b", "it is"), (r"\bthere's\b", "there is"),
    (r"\bhow's\b", "how is"), (r"\bisn't\b", "is not"), (r"\baren't\b", "are not"), (r"\bdon't\b", "do not"),
    (r"\bcan't\b", "cannot"), (r"\blet's\b", "let us"), (r"\bi'm\b", "i am"), (r"\byou're\b", "you are"),
]

# (pattern, replacement) applied after lower-casing, before punctuation is dropped.
_UNITS = [
    (r"(\d)\s*%", r"\1 percent"), (r"\bper ?cent\b", "percent"),
    (r"(\d)\s*mm2\b", r"\1 square millimeters"), (r"(\d)\s*mm\b", r"\1 millimeters"), (r"(\d)\s*cm\b", r"\1 centimeters"),
    (r"\bmillimet(?:re|er)s?\b", "millimeters"), (r"\bcentimet(?:re|er)s?\b", "centimeters"),
    (r"\bsq(?:uare)?\.? millimeters\b", "square millimeters"),
]

# Medical words and abbreviations -> the grammar's words.  Longest first.
_MEDICAL = [
    (r"\bwhite blood cells?\b", "white cells"), (r"\bwhite blood\b", "white cells"),
    (r"\bw\.? ?b\.? ?c\.?'?s\b", "white cells"), (r"\bw\.? ?b\.? ?c\b\.?", "white cell"),
    (r"\bleu[ck]ocytes?\b", "white cells"),
    (r"\bred blood cells?\b", "red cells"), (r"\br\.? ?b\.? ?c\.?'?s\b", "red cells"), (r"\br\.? ?b\.? ?c\b\.?", "red cell"),
    (r"\berythrocytes?\b", "red cells"),
    (r"\bthrombocytes?\b", "platelets"), (r"\bplate ?lets\b", "platelets"), (r"\bplate ?let\b", "platelet"),
    (r"\bpolyp'?s\b", "polyps"), (r"\bpoly ps\b", "polyps"),
    (r"\bx-?rays?\b", "x ray"), (r"\bchest film\b", "chest x ray"),
    (r"\bo\.?k\.?\b", "okay"),
    (r"\b(their|they're)\b", "there"),  # homophones: "is their pneumonia" is "is there pneumonia"
]


def number_to_words(n: int) -> str:
    """0 <= n < 1000 -> English words ('twenty one', 'one hundred five'); larger: digits kept."""
    if n < 0 or n >= 1000:
        return str(n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        t, o = divmod(n, 10)
        return _TENS[t] + ("" if o == 0 else " " + _ONES[o])
    h, rest = divmod(n, 100)
    return _ONES[h] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))


def _digits(m: re.Match[str]) -> str:
    text = m.group(0)
    if "." in text:
        whole, frac = text.split(".", 1)
        return f"{number_to_words(int(whole))} point {' '.join(_ONES[int(d)] for d in frac)}"
    return number_to_words(int(text))


def normalize(text: str) -> str:
    """Canonical lower-case word string of a transcript (see the module docstring)."""
    t = (text or "").lower().replace("\u2019", "'").replace("\u2018", "'")
    t = re.sub(r"[\u2010-\u2015]", "-", t)
    for pat, rep in _CONTRACTIONS:
        t = re.sub(pat, rep, t)
    for pat, rep in _UNITS:
        t = re.sub(pat, rep, t)
    for pat, rep in _MEDICAL:
        t = re.sub(pat, rep, t)
    for k, v in _ORDINALS.items():
        t = re.sub(rf"\b{k}\b", v, t)
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)  # 1,000 -> 1000
    t = re.sub(r"\d+(?:\.\d+)?", _digits, t)
    t = t.replace("-", " ")
    t = re.sub(r"[^a-z' ]+", " ", t)
    t = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", t)  # quotes, not apostrophes inside words
    return re.sub(r"\s+", " ", t).strip()


def tokens(text: str) -> list[str]:
    """Words of the normalised text."""
    return normalize(text).split()

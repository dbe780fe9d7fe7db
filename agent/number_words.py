"""Numbers written as words, read the same way by the question parser ('more than a dozen?') and by the
grounding check ('there are seven white blood cells [E2]' is checked like '7'; 'twenty-one' like '21')."""

from __future__ import annotations

__all__ = ["NUMBER_WORDS", "SPELLED_NUMBER", "spelled_value"]

NUMBER_WORDS: dict[str, int] = {
    "zero": 0, "no": 0, "none": 0, "one": 1, "a single": 1, "single": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "a dozen": 12, "dozen": 12, "a hundred": 100, "hundred": 100, "hundreds": 100, "a thousand": 1000,
    "thousand": 1000, "thousands": 1000, "a million": 1_000_000, "million": 1_000_000, "millions": 1_000_000,
}
"""Word -> number; 'no' and 'none' are 0 ('no white blood cells'); 'hundreds' / 'thousands' read as 100 / 1000 (a
quantity of that order: no count of a field backs it unless the field has that many)."""
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}

_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ONES = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPELLED_NUMBER = (rf"(?:(?:{'|'.join(_TENS)})[- ](?:{'|'.join(_ONES)})\b|"
                  + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
                  + rf")(?:[\s-]+(?:{'|'.join(_SCALES)})\b)?")
"""A regex of one number in words, the compounds first ('twenty-one' is 21, never the 'one' at its end), with its
scale ('two thousand' is 2000, never the 2 before it)."""


def spelled_value(token: str) -> int:
    """The number a match of :data:`SPELLED_NUMBER` states ('seven' 7, 'Twenty-one' 21, 'a dozen' 12, 'two thousand'
    2000)."""
    t = " ".join(token.lower().replace("-", " ").split())
    if t in NUMBER_WORDS:
        return NUMBER_WORDS[t]
    words, scale = t.split(), 1
    if len(words) > 1 and words[-1] in _SCALES:  # 'two thousand', 'twenty-one hundred'
        scale, words = _SCALES[words[-1]], words[:-1]
    base = " ".join(words)
    return (NUMBER_WORDS[base] if base in NUMBER_WORDS else sum(NUMBER_WORDS[w] for w in words)) * scale

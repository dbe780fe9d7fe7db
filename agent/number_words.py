"""Numbers written as words, read the same way by the question parser ('more than a dozen?') and by the
grounding check ('there are seven white blood cells [E2]' is checked like '7')."""

from __future__ import annotations

__all__ = ["NUMBER_WORDS"]

NUMBER_WORDS: dict[str, int] = {
    "zero": 0, "no": 0, "none": 0, "one": 1, "a single": 1, "single": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "a dozen": 12, "dozen": 12, "a hundred": 100, "hundred": 100,
}
"""Word -> number; 'no' and 'none' are 0 ('no white blood cells')."""

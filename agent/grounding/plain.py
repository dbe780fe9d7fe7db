"""The text a reader sees, for the check: invisible characters (zero-width spaces, soft hyphens, word joiners), HTML
comments and tags and markdown emphasis inside numbers ('1**2**', '1<!-- -->2') split a number or a word on screen
but not for a regex; compatibility forms ('１２', '⁷', '①'), accents ('pneumonía') and look-alike Cyrillic or Greek
letters ('рneumonia') read as the plain letters and digits they show."""

from __future__ import annotations

import html
import re
import unicodedata

__all__ = ["plain"]

_MARKUP = re.compile(r"<!--.*?-->|</?[A-Za-z][^<>]*>", re.DOTALL)
_EMPHASIS = re.compile(r"(?<=[\d.,])[*~`]+(?=[\d.,])|(?<=\d)[*~`]+(?=\W|$)|(?:^|(?<=\W))[*~`]+(?=\d)")
_LOOKALIKE = str.maketrans("аеорсхуіјѕԁӏАВЕКМНОРСТХοναΟΑΒΕΗΙΚΜΝΡΤΧΥΖ", "aeopcxyijsdlABEKMHOPCTXovaOABEHIKMNPTXYZ")


def plain(text: str) -> str:
    """``text`` as it reads on screen (see the module)."""
    t = _MARKUP.sub("", text)
    t = html.unescape(t)
    t = "".join(c for c in t if unicodedata.category(c) != "Cf")
    t = unicodedata.normalize("NFKC", t)
    t = "".join(c for c in unicodedata.normalize("NFKD", t) if not unicodedata.combining(c))
    t = t.translate(_LOOKALIKE)
    t = re.sub(r"(?<=[a-z])0(?=[a-z])", "o", t)
    return _EMPHASIS.sub("", t)

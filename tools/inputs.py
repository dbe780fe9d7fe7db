"""Text and dates that enter Osler from outside: normalised once, at the boundary.

Every string a user, a browser, a microphone or a file system hands to Osler (CLI arguments,
web-app fields, voice transcripts, file names, study dates) passes through :func:`clean_text` or
:func:`parse_study_date` before anything else sees it, so no layer below has to cope with bytes
that are not UTF-8, lone surrogates, control characters or impossible dates.

    clean_text("How many \\udcff\\udcfe white cells?")  -> "How many �� white cells?"
    parse_study_date("2023-13-45")                    -> InvalidInputError (one line, says the format)
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from .errors import InvalidInputError

__all__ = ["clean_text", "parse_study_date", "REPLACEMENT"]

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%Y.%m.%d")
EARLIEST_YEAR = 1895  # the first radiograph


def clean_text(value: object, *, max_chars: int | None = None, single_line: bool = False) -> str:
    """Any outside text -> a valid, NFC-normalised Unicode ``str``.

    * ``bytes`` are decoded as UTF-8; undecodable bytes become U+FFFD;
    * lone surrogates (what Python makes of non-UTF-8 bytes in ``sys.argv`` and file names, and what
      a JSON body may carry as ``"\\udcff"``) become U+FFFD;
    * control characters other than tab and newline are dropped (newlines too with ``single_line``);
    * ``max_chars`` truncates.  ``None`` becomes ``""``.
    """
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("utf-8", errors="replace")
    else:
        text = str(value)
    text = _SURROGATE.sub(REPLACEMENT, text)
    text = unicodedata.normalize("NFC", text)
    keep = "\t" if single_line else "\t\n"
    text = "".join(ch if (ch in keep or unicodedata.category(ch) not in ("Cc", "Cs")) else
                   (" " if ch in "\r\n" else "") for ch in text)
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars]
    return text


def parse_study_date(value: object, *, what: str = "study date", today: dt.date | None = None) -> str | None:
    """A study date typed by a user -> ISO ``YYYY-MM-DD``, or ``None`` for an empty value.

    Accepts ``YYYY-MM-DD``, ``YYYYMMDD`` (DICOM DA), ``YYYY/MM/DD`` and ``YYYY.MM.DD``; the date must
    exist and lie between 1895 and tomorrow.  Raises InvalidInputError with one line naming ``what``.
    """
    text = clean_text(value, single_line=True).strip()
    if not text:
        return None
    shown = text if len(text) <= 40 else text[:40] + "…"
    date = None
    for fmt in _DATE_FORMATS:
        try:
            date = dt.datetime.strptime(text, fmt).date()
            break
        except ValueError:
            continue
    if date is None:
        raise InvalidInputError(f"{what} {shown!r} is not a valid date; use YYYY-MM-DD, e.g. 2024-03-01")
    latest = (today or dt.date.today()) + dt.timedelta(days=1)
    if not (dt.date(EARLIEST_YEAR, 1, 1) <= date <= latest):
        raise InvalidInputError(f"{what} {date.isoformat()} lies outside {EARLIEST_YEAR}-01-01 .. "
                                f"{latest.isoformat()}; give the date the study was taken")
    return date.isoformat()

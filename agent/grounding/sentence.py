"""The per-sentence step of the grounding check: the reasons one sentence is not backed by the evidence it cites
(what each evidence id backs is read by :mod:`agent.grounding.evidence`; declining clauses may quote the question
and repeat a failed call's numbers)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tools.answer import RemovedClaim

from agent.grounding.changes import pair_claims, role_claims
from agent.grounding.classes import class_claims, normal_claim
from agent.grounding.evidence import _Backing
from agent.grounding.numbers import METRIC_UNITS, PERCENT, _supported, numbers_in, written_numbers
from agent.grounding.phrases import (_BOUND, _CANNOT, _CITE, _CLAUSE, _DAYS, _DAYS_AFTER, _DECLINE, _FACTOR, _GONE,
                                     _NEGATED, _NOT_APART, _PERFORMANCE, _QUOTE, _SAME, _SHARE, _SIGNED, _TIME, _TREND,
                                     _factor)
from agent.grounding.plain import plain
from agent.grounding.quantities import (count_word_claims, foreign_language, fraction_claims, mentions_coordinates,
                                        mentions_size, score_role, vague_count_claims)
from agent.grounding.tables import table_readings
from agent.grounding.terms import _COUNT_PHRASES, _NTH_PHRASES, TERMS, _has, number_value, ordinal_value

def _class_pairs(sent: str, pairs: list[tuple[float, float, bool]], labels: list[str]
                 ) -> list[tuple[float, float, bool]]:
    """The changes of the classes a sentence names ('the polyp count went from 5 to 2' is checked against the
    polyps' changes, not the white cells'); all of them when it names no counted class."""
    named = {t.count_key for t in TERMS if t.count_key and t.regex.search(sent)}
    if not named:
        return pairs
    return [p for p, lab in zip(pairs, labels) if lab.rstrip("s") in {n.rstrip("s") for n in named}]



def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(#\[])", text.strip()) if s]


def _strip_quotes(clause: str, question: str) -> str:
    """Remove the spans of a declining clause that quote the question verbatim."""
    q = " ".join(question.lower().split())

    def repl(m: re.Match[str]) -> str:
        span = " ".join(m.group(1).lower().split()).strip(" ?.!,")
        return " " if span and span in q else m.group(0)

    return _QUOTE.sub(repl, clause)


def _sentence_reasons(sent: str, cited: list[str], ev: dict[str, _Backing], question: str, failures: list[float],
                      *, with_args: bool = False) -> tuple[list[str], list[str], list[str]]:
    """(reasons, unbacked number tokens, unbacked words) for one sentence citing ``cited``."""
    backs = [ev[e] for e in cited if e in ev]
    where = ", ".join(cited) if cited else ""
    pool = [x for b in backs for x in b.numbers + (b.args_numbers if with_args else [])]
    mm = [x for b in backs for x in b.mm]
    pct = [x for b in backs for x in b.pct + (b.args_pct if with_args else [])]
    pairs = [p for b in backs for p in b.pairs]
    named_pairs = _class_pairs(sent, pairs, [lab for b in backs for lab in b.pair_labels])
    named = {t.count_key.rstrip("s") for t in TERMS if t.count_key and t.regex.search(sent)}
    labelled = [(lab, v) for b in backs for lab, v in b.change_pct]
    class_pct = [abs(v) for lab, v in labelled if lab.rstrip("s") in named] if labelled else None
    trends = {t for b in backs for t in b.trends}
    counts: dict[str, set[int]] = {}
    for b in backs:
        for k, v in b.counts.items():
            counts.setdefault(k, set()).update(v)
    text = " ".join(b.text for b in backs)
    args_text = " ".join(b.args_text for b in backs)
    reasons: list[str] = []
    bad_nums: list[str] = []
    bad_words: list[str] = []
    labels = [b.label for b in backs if b.label]
    positions = [x for b in backs for x in b.positions]
    scores = [x for b in backs for x in b.scores]
    fractions = [x for b in backs for x in b.fractions]
    if (lang := foreign_language(sent)) is not None:  # 'Es gibt fünf Polypen': the vocabulary below is English
        bad_words.append(lang)
        reasons.append(f"written in {lang}: the check reads English only and cannot verify it")
    for clause in _CLAUSE.split(sent):
        declining = bool(_DECLINE.search(clause))
        body = _strip_quotes(clause, question) if declining else clause
        hedged = declining and re.search(r"\b(?:whether|if)\b", body, re.IGNORECASE) is not None  # not 'why it rose'
        probs = [b.probs for b in backs if b.label]
        for word, why in class_claims(body, labels, probs) if not _CANNOT.search(body) else ():  # "pneumonia": normal
            bad_words.append(word)
            reasons.append(f"{why} ({where})")
        if not labels and not declining and (said := normal_claim(_strip_quotes(body, question))) is not None:
            bad_words.append(said.lower())
            reasons.append(f"'{said}': no cited classification reads the image as normal" + (f" ({where})" if where
                                                                                              else ""))
        at_pos = pool + (positions if positions and mentions_coordinates(body) else []) + (
            [x for b in backs for x in b.box_sizes] if mentions_size(body) else [])
        seen: dict[str, int] = {}
        for tok, x, unit in written_numbers(body):  # a size in mm/cm/µm: only by a millimetre field, converted
            start = body.find(tok, seen.get(tok, 0))
            seen[tok] = start + len(tok) if start >= 0 else 0
            backing = (pct if unit == PERCENT else [v / METRIC_UNITS[unit] for v in mm] if unit in METRIC_UNITS
                       else at_pos)
            if start >= 0 and (unit == PERCENT or unit is None and 0 <= x <= 1 and re.search(r"[.,]", tok)) \
                    and score_role(body, start, start + len(tok)):
                backing = [100 * v for v in scores] + ([] if unit == PERCENT else scores)  # '25 % confidence'
            if unit == PERCENT and named and class_pct is not None and any(rx.search(body) for rx in _TREND.values()):
                backing = class_pct  # 'the WBC count fell by 25 %': a change of the white cells, not the polyp's 25 %
            if start >= 0 and unit == PERCENT and _SHARE.match(body, start + len(tok)):
                backing = [100 * v for v in fractions if not any(abs(v - q) < 1e-9 for q in scores)]
                # '50 % of the cells', '80 % of the frame': a share a result states, not a threshold or a score
            if start >= 0 and _PERFORMANCE.search(body, max(0, start - 40), start):
                backing = []  # 'sensitivity 80 %', 'accuracy of 92 %': no tool result states a model's performance
            intervals = [d for b in backs for d in (b.days or [])]
            if start >= 0 and unit is None and (per := _TIME.match(body, start + len(tok))) is not None:
                days = _DAYS[per.group(1)[0].lower()]  # '30 weeks' is backed by 210 days, never by a 30 anywhere
                backing = [v / days for v in (intervals or at_pos)]
            elif start >= 0 and unit is None and intervals and _DAYS_AFTER.match(body, start + len(tok)):
                backing = intervals  # '3 days apart' only by the interval, not by a count change of 3
            if _supported(tok, x, backing) or (declining and _supported(tok, x, failures)):
                continue
            bad_nums.append(tok)
            reasons.append(f"number {tok}: the sentence cites no tool result" if not cited else
                           f"size {tok}: no millimetre field of {where} states it (sizes in pixels are not mm)"
                           if unit in METRIC_UNITS else
                           f"percentage {tok}: no percentage or probability of {where} states it" if unit == PERCENT
                           else f"number {tok}: not in the cited result {where}")
        for claim, why in (vague_count_claims(body, counts, where) + fraction_claims(body, fractions, counts, where)
                           + count_word_claims(body, counts, where)
                           if cited and not declining else ()):  # 'several polyps' on 2, 'half of the cells'
            bad_words.append(claim)
            reasons.append(why)
        for claim, why in pair_claims(body, named_pairs) if pairs and not hedged else ():  # "from 2 to 5 [E3]"
            bad_words.append(claim)
            reasons.append(f"{why} ({where})")
        for term, rx in _COUNT_PHRASES:
            for m in rx.finditer(body):
                n = number_value(m.group(1))
                have = counts.get(term.count_key or "*", set())
                if n == 0 and term.count_key not in counts and counts:
                    continue  # "no platelets": the cited result counts or lists cells, none of them platelets
                if _BOUND.search(body, 0, m.start(1)):
                    continue  # "fewer than 5 whole RBC": a bound, not a count (the numbers check still reads the 5)
                if (cited or not m.group(1)[0].isdigit()) and n not in have and m.group(1) not in bad_nums:
                    bad_nums.append(m.group(1))
                    reasons.append(f"count {n} {term.name}: the cited result {where} counts "
                                   f"{', '.join(map(str, sorted(have))) or f'no {term.name}'}" if cited else
                                   f"count {n} {term.name}: the sentence cites no tool result")
        for term, rx in _NTH_PHRASES if cited else ():  # "the 3rd polyp", "polyp #3": there are only 2
            for m in rx.finditer(body):
                n, key = (ordinal_value(m.group(1)), term.count_key) if m.group(1) else (int(m.group(2) or m.group(3)), "#")
                have = counts.get(key or "*", set())
                if have and n > max(have):
                    bad_nums.append(m.group(0))
                    reasons.append(f"'{m.group(0)}': the cited result {where} has no {n}th {term.name}")
        for way, rx in _TREND.items() if trends and not hedged else ():  # "the count rose [E3]": E3 reports a fall
            for m in rx.finditer(body):
                said = _NEGATED.search(body, 0, m.start())
                if said is None and way not in trends:
                    bad_words.append(m.group(0).lower())
                    reasons.append(f"'{m.group(0)}': the cited result {where} reports no change that went {way}")
                elif said is not None and trends <= {way, "gone"}:  # "did not decrease": it only went down
                    bad_words.append(f"{said.group(0)}{m.group(0)}".lower())
                    reasons.append(f"'{said.group(0)}{m.group(0)}': the cited result {where} reports a change that "
                                   f"went {way}")
                break
        if trends and not hedged and "same" not in trends and (m := _SAME.search(body)) is not None:
            bad_words.append(m.group(0).lower())
            reasons.append(f"'{m.group(0)}': every change the cited result {where} reports went up or down")
        if trends and not hedged and "gone" not in trends and (m := _GONE.search(body)) is not None:
            bad_words.append(m.group(0).lower())
            reasons.append(f"'{m.group(0)}': the cited result {where} reports no finding resolved")
        for m in _FACTOR.finditer(body) if pairs and not hedged else ():  # 'twice as many WBC' for 2 -> 5
            f = _factor(m)
            if f and not any(p and c and (abs(c / p - f) <= 0.1 * f or abs(p / c - f) <= 0.1 * f) for p, c, _ in
                             (named_pairs or pairs)):
                bad_words.append(m.group(0).lower())
                reasons.append(f"'{m.group(0)}': no change of the cited result {where} is {f:g}-fold")
        signed = [v for b in backs for v in b.signed]
        for m in _SIGNED.finditer(body) if signed and not hedged else ():  # "changed by +3" for a fall of 3
            tok = body[m.start(1):m.start(1) + 1 + len(re.match(r"[\d.,]*\d", body[m.end(1):]).group(0))]
            x = float(tok[1:].replace(",", "."))
            same = [v for v in signed if _supported(tok[1:], x, [v])]  # the changes of that size: one must agree
            if x and same and not any((v > 0) == (m.group(1) == "+") for v in same if v != 0):  # '+0': no way
                bad_nums.append(tok)
                reasons.append(f"'{tok}': the change of that size in the cited result {where} went the other way")
        for term in TERMS:
            m = term.regex.search(body)
            if m is None or _has(text, term.backers) or (not term.tool and term.regex.search(text)) or (
                    term.tool and (declining or _has(args_text, term.backers))) or (
                    not term.tool and _NOT_APART.search(body)):  # 'dysplastic' backs 'dysplasia'
                continue
            bad_words.append(m.group(0).lower())
            reasons.append(f"'{m.group(0)}': no label or field of {where} names it" if cited else
                           f"'{m.group(0)}': the sentence cites no tool result that names it")
    stated = " ; ".join(c for c in _CLAUSE.split(sent) if not _DECLINE.search(c))  # '...; I cannot tell why'
    if pairs and stated.strip():  # "now 5, previously 2 [E3]"
        for tok, why in role_claims(stated, named_pairs or pairs):
            bad_nums.append(tok)
            reasons.append(f"{why} ({where})")
    return reasons, bad_nums, bad_words


@dataclass
class _Check:
    ev: dict[str, _Backing]
    question: str
    failures: list[float]
    known: set[str]
    g: dict[str, Any] = field(default_factory=lambda: {
        "checked_numbers": 0, "unsupported": [], "unsupported_words": [], "unknown_evidence_ids": [],
        "removed_sentences": [], "unverified_findings": [], "rewritten_steps": [], "removed": []})

    def sentence(self, sent: str, extra: list[str], where: str, *, with_args: bool = False) -> list[str]:
        """Reasons ``sent`` is unbacked (empty: backed); records them."""
        shown, sent = sent, plain(sent)  # as it reads on screen: '1<!-- -->2' is 12
        cited = list(dict.fromkeys(_CITE.findall(sent) + list(extra)))
        unknown = [c for c in cited if c not in self.known]
        self.g["checked_numbers"] += len(numbers_in(sent))
        reasons, nums, words = _sentence_reasons(sent, [c for c in cited if c in self.known], self.ev,
                                                 self.question, self.failures, with_args=with_args)
        reasons += [f"evidence id {u} does not exist" for u in unknown]
        for reading in table_readings(shown):  # a table's prior / current columns: their order is a claim too
            why, n, w = _sentence_reasons(reading, [c for c in cited if c in self.known], self.ev, self.question,
                                          self.failures, with_args=with_args)
            reasons += [f"the table reads '{reading}': {x}" for x in why]
            nums, words = nums + n, words + w
        if reasons:
            self.g["unsupported"] += nums
            self.g["unsupported_words"] += words
            self.g["unknown_evidence_ids"] += unknown
            self.g["removed"].append(RemovedClaim(where=where, text=shown, cited=cited, reasons=reasons))  # type: ignore[arg-type]
        return reasons

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
from agent.grounding.plain import plain
from agent.grounding.quantities import (count_word_claims, foreign_language, fraction_claims, mentions_coordinates,
                                        mentions_size, score_role, vague_count_claims)
from agent.grounding.tables import table_readings
from agent.grounding.terms import _COUNT_PHRASES, _NTH_PHRASES, TERMS, _has, number_value, ordinal_value

_CITE = re.compile(r"\bE\d+\b")
_NEEDS = (r"needs? (?:a |an |the |two |both |another |at least |one |its )?(?:[\w-]+ ){0,2}(?:images?|stud(?:y|ies)|"
          r"priors?|films?|dicom|spacing|tools?|smears?|frames?|x-rays?|views?|input|upload|question|date)")
"""'needs a prior study': a declined request (not 'needs follow-up', 'needs review': those state findings)."""
_DO_NOT = (r"(?:do|does|did) not (?:work|run|apply|support|accept|take|handle|answer|compare|measure|know|count|tell|"
           r"distinguish|separate|follow|guess|trust|validate|localise|localize|learn|produce|parse|certify|say|show|"
           r"both|back|segment|classify|detect|read|have (?:a |an |any |the )?(?:pixel|spacing|dicom|prior|tool|model|"
           r"date))")
"""Declined or limited by the tool ('does not tell them apart', 'I do not follow', 'does not know'), not a finding
said the other way ('does not look stable')."""
_NO_FIND = (r"(?!\s+(?:to\s+)?(?:find|see|detect|identify|locate|spot|visuali[sz]e|be (?:seen|found|detected|"
            r"identified|visuali[sz]ed))\b)")
"""'could not find any polyp', 'polyps could not be seen': a finding said absent, not a declined request."""
_DECLINE = re.compile(rf"\b((?:cannot|can ?not|could not|couldn't|can't|unable){_NO_FIND}|no tool|"
                      rf"not (?:run|answer|compare|guess)|{_DO_NOT}|only on|work only|works only|{_NEEDS})\b",
                      re.IGNORECASE)
_CANNOT = re.compile(rf"\b((?:cannot|can ?not|could not|couldn't|can't|unable){_NO_FIND}|no tool|"
                     rf"not (?:run|answer|compare|guess)|only on|works? only|{_NEEDS})\b", re.IGNORECASE)
"""A clause that declines (not one that says what a tool did not find: 'the classifier did not find pneumonia')."""
_TIME = re.compile(r"\s*-?\s*(weeks?|wks?|months?|mos?|years?|yrs?)\b", re.IGNORECASE)
_DAYS = {"w": 7.0, "m": 30.44, "y": 365.25}
"""A number of weeks, months or years: the results state intervals in days."""
_PERFORMANCE = re.compile(r"\b(?:sensitivity|specificity|accuracy|auc|auroc|precision|recall|f1|ppv|npv|"
                          r"positive predictive|negative predictive|error rate)\b[^.;]*$", re.IGNORECASE)
"""A model's performance named just before a number: model cards state it, no tool result does."""
_SHARE = re.compile(r"\s*(?:%|per ?cent\b|pct\b)\s+of\s+(?:the\s+|all\s+|its\s+|this\s+)?(?:[\w-]+\s+){0,2}?"
                    r"(?:cells?|image|frame|field|film|lungs?|lung fields?|area|pixels?|smear|view)\b", re.IGNORECASE)
"""A percentage said to be a share of something ('50 % of the cells'): only a fraction a result states backs it."""
_FACTOR = re.compile(r"\b(?:(twice|double|doubled|triple|tripled|thrice|quadrupled|half|halved|a third|one third|a "
                     r"quarter|one quarter)|(\d+(?:[.,]\d+)?)\s*(?:-\s*)?(?:fold|times|x)\b)", re.IGNORECASE)
_FACTORS = {"twice": 2, "double": 2, "doubled": 2, "triple": 3, "tripled": 3, "thrice": 3, "quadrupled": 4,
            "half": 2, "halved": 2, "a third": 3, "one third": 3, "a quarter": 4, "one quarter": 4}
"""A change written as a factor ('twice as many', 'halved', '3-fold'): the prior and current of a cited change must
stand in that ratio (within 10 %), one way or the other."""


def _factor(m: re.Match[str]) -> float | None:
    if m.group(1):
        return float(_FACTORS[" ".join(m.group(1).lower().split())])
    v = float(m.group(2).replace(",", "."))
    return v if v > 1 else None


_DAYS_AFTER = re.compile(r"\s*-?\s*days?\b", re.IGNORECASE)
_BOUND = re.compile(r"\b(?:than|at least|at most|up to|over|under|below|above|within)\s+$", re.IGNORECASE)
"""'fewer than 5 RBC': a bound, not a count."""
_NOT_APART = re.compile(r"\b(?:(?:are|is|were|was) not (?:counted|told apart|distinguished|classified|detected)"
                        r"(?: separately)?|(?:cannot|can't|does not|do not) (?:tell|distinguish|count|classify) "
                        r"(?:\w+ )?(?:apart|separately)?|(?:cannot|can't|could not|no tool (?:here )?can|nothing here "
                        r"can|does not|do not) (?:say|determine|establish|assess|judge) (?:whether|if)\b)", re.IGNORECASE)
"""'neutrophils are not counted separately', 'no tool can say whether there is leukocytosis': a caveat about what no
tool tells, not a finding ('cannot exclude leukaemia' raises one and stays checked)."""
_SIGNED = re.compile(r"(?:^|(?<=[\s(:=\[]))([+\u2212-])(?=\d)")
"""A number written with its sign ('+3', '-3', '\u22123'): a change that went up or down."""
_CLAUSE = re.compile(r";|\bbut\b|\bhowever\b|\balthough\b|\bthough\b|\byet\b", re.IGNORECASE)
_QUOTE = re.compile(r"(?<![\w])['\"\u2018\u201c](.+?)['\"\u2019\u201d](?![\w])")
_TREND = {"up": re.compile(r"\b(rose|risen|rises?|increas\w*|grew|grows?|growth|enlarg\w*|gained|more(?! than)|"
                           r"doubled|tripled|quadrupled|went up|gone up|climbed|jumped|higher|bigger|larger|"
                           r"expanded|progress(?:ed|ing|ion)|worse(?:ned)?)\b", re.IGNORECASE),
          "down": re.compile(r"\b(fell|fallen|falls?|decreas\w*|shr[iau]nk\w*|reduc\w*|dropped|regress\w*|"
                             r"fewer(?! than)|halved|went down|gone down|lower|smaller|disappeared|vanished|"
                             r"receded|improved)\b", re.IGNORECASE)}
"""Words that say which way a change went; a change a cited result reports the other way does not back them."""
_SAME = re.compile(r"\b(stable|unchanged|no (?:significant |relevant |real |measurable )?change|(?:did|does|has|have|had) "
                   r"not (?:changed?)|not changed|remain(?:s|ed)? (?:the same|stable|unchanged|constant)|the same as "
                   r"(?:before|on the prior|previously|in the prior study))\b", re.IGNORECASE)
"""Words that say nothing changed: a cited result must report a change that went nowhere."""
_GONE = re.compile(r"\b(disappeared|vanished|(?:is|are|has|have) gone|no longer (?:seen|visible|present|there)|"
                   r"resolved)\b", re.IGNORECASE)
"""Words that say a finding is gone: a cited result must report it resolved (or a count that fell to 0)."""
_NEGATED = re.compile(r"\b(?:did not|didn't|does not|doesn't|has not|hasn't|have not|haven't|had not|not|never|no)\s+"
                      r"(?:[\w-]+\s+)?$", re.IGNORECASE)
"""'did not decrease', 'has not really grown': a change said not to have happened."""


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

"""The phrase vocabulary of the per-sentence grounding step (:mod:`agent.grounding.sentence`): citations, declining
clauses, time units and intervals, model-performance words, shares, factors, signed numbers, clause breaks, quotes,
and the words that say a change went up, down, nowhere or away."""

from __future__ import annotations

import re

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

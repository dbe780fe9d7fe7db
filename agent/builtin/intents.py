"""Question -> intents, for the built-in planner.  Pure functions over text; no models.

An :class:`Intent` says what to do (count, detect, segment, measure, classify, image_kind,
compare), on what (target and classes), and how to phrase the answer (yes/no, either-or with the
alternatives named, negated, an expected number to check, "largest").  "Is it normal, or does it
show pneumonia?" is an either-or question (answered with the alternative chosen); "Is it normal?" and
"Is there a polyp or not?" are yes/no questions.  A question may hold several clauses ("count the white
cells and give the area of the largest"); a clause without a target inherits the previous one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

from agent.builtin.scope import (asked_kind, beyond_tools, class_versus, elided, expected_count, instruction, judgment,
                                  question_tag, sized, words_to_number)
from agent.builtin.vocabulary import (TARGET_PATTERNS, classes_of, find_target, is_organ, kind_of, plural_of,
                                      target_table)

__all__ = ["CLASSIFY_PATTERN", "Intent", "KIND_PATTERN", "TARGET_PATTERNS", "parse_question", "UNSUPPORTED_TERMS",
           "words_to_number"]

Action = Literal["count", "detect", "segment", "measure", "classify", "image_kind", "compare", "describe", "unknown"]

_CLASSIFY = r"\b(pneumonia|normal|healthy|bacterial|viral|virus|bacteria|infection|infected|consolidation|abnormal|diagnos\w*)\b"
_DESCRIBE = (r"\b(describe|description|what do you see|what can you see|what('s| is) (in|on) (this|the) (image|picture|"
             r"frame|film|slide)|summari[sz]e|give me a (read|report|summary)|read (this|the) (image|film|study)|"
             r"any findings|what are the findings|(your|a) (read|reading|impression|interpretation) of|interpret (this|the)|"
             r"what do you (make|think) of|report on (this|the))\b")
_KIND = (r"\b(what (kind|type|sort) of (image|picture|scan|study|slide|film|exam)|modality|which (kind|type) of "
         r"(image|scan|study)|what am i looking at|what is this (image|picture|one)|what('s| is) this\s*$|"
         r"(imaging )?technique|or something else)\b")
_COMPARE = (r"\b(prior|previous|earlier|last (time|study|exam|film|year|month|week|visit|scan)|(years?|months?|weeks?) ago|(bigger|larger|smaller|greater) than (the one |it was )?(previous|prior|before|last|earlier|then)|compared?|comparison|since|changed?|changes|grow|grows|grown|grew|growing|shrinks?|shrunk|shrank|progress\w*|new|resolved|worse|better|improv\w*|more .* than|(now|today) and (before|then)|than before|"
            r"(was|were) (it|they|there) before|before and (now|after)|before$)\b")
_COUNT = r"\b(how many|count\w*|number|how much|tally|quantif\w*|estimate|enumerate|total)\b"
_DETECT = r"\b(where|locate|location|show|find|detect|mark|highlight|point out|identify)\b"
_SEGMENT = r"\b(segment\w*|outline|delineate|contour|mask|trace|draw (a line |a border )?a?round|circle it)\b"
_MEASURE = r"\b(how (big|large|wide|long)|size|area|diameter|dimensions?|measure\w*|extent|fraction|percent(age)?|proportion|involved|coverage)\b"
_YESNO_START = r"^\s*(is|are|does|do|did|was|were|has|have|can|could|any|would|will|might|may)\b"
_OR_NOT = r",?\s*\bor\s+(?:not|no|none|otherwise|isn'?t\s+it|is\s+it\s+not|doesn'?t\s+it|not\s+at\s+all)\b"
_OR = r",?\s*\b(?:or|versus|vs\.?)\b\s*|,\s*"
# classifier alternatives a clause may name, checked in this order within each alternative
_CHOICES = (("bacterial_pneumonia", r"\bbacteri"), ("viral_pneumonia", r"\b(viral|virus)"),
            ("normal", r"\b(normal|healthy|clear|no pneumonia|neither|none)\b"),
            ("pneumonia", r"\b(pneumonia|infection|infected|abnormal|not normal|diseased)\b"))
_EXCEPT = (r"\b(?:except(?: for)?|excluding|exclude|other than|besides|apart from|aside from|but not|not counting|"
           r"leaving out|without counting|minus)\b|\b(?:cells?|ones?|polyps?|findings?)\s+(?:that |which )?(?:are|is) not\b")
"""A count that leaves something out: the builtin counts every class and does no subtraction of its own."""
_NEGATION = r"\b(no|not|without|free of|clear of|devoid of|absent|absence of|n't|\w+[- ]free)\b"
_POINT = (r"\bat\s*(?:the\s+point\s*)?\(?\s*(?:x\s*=?\s*)?(\d{1,5}(?:\.\d+)?)\s*(?:,|\s)\s*(?:y\s*=?\s*)?"
          r"(\d{1,5}(?:\.\d+)?)\s*\)?")  # "at (312, 240)", "at x=312 y=240": a click on the image
_LARGEST = r"\b(largest|biggest|main|dominant)\b"
_SMALLEST = r"\b(smallest)\b"

CLASSIFY_PATTERN, KIND_PATTERN = _CLASSIFY, _KIND  # read by agent.planners.hybrid, with TARGET_PATTERNS

UNSUPPORTED_TERMS = (
    "fracture", "nodule", "tumou?r", "cancer", "malignan", "cardiomegaly", "effusion", "pneumothorax", "edema",
    "oedema", "hemorrhage", "haemorrhage", "stroke", "blood pressure", "heart rate", "age of the patient",
    "patient's age", "name", "diabetic retinopathy", "glaucoma", "bleeding", "stenosis", "aneurysm", "sickle",
    "malaria", "parasite", "blast", "leukemia", "leukaemia", "dose", "prescri", "treat", "medication",
    "collaps", "atelecta", "heart", "cardiac", "antibiotic", "surg", "resect", "biops", "prognos",
    "covid", "coronavirus", "sars", "tubercul", "fungal", "mycoplasma", "pneumocystis", "aspiration", "influenza",
    "ulcerative colitis", "colitis", "crohn", "diverticul", "hemorrhoid", "haemorrhoid", "inflammat",
)


@dataclass(frozen=True)
class Intent:
    action: Action
    target: str | None = None  # a catalogue target ('blood_cells', 'polyp', 'lung', a plugin's), 'lesion' or None
    classes: tuple[str, ...] | None = None
    yes_no: bool = False
    negated: bool = False
    expected: int | None = None  # "are there three white cells?"
    largest: bool = False
    smallest: bool = False
    within: str | None = None  # measure fraction of an organ ("what fraction of the lung")
    clause: str = ""
    unsupported: str | None = None  # a term no tool covers
    choices: tuple[str, ...] | None = None  # either-or: the classifier labels named as alternatives
    extras: dict = field(default_factory=dict)  # "point": (x, y) of a point prompt
    guessed: bool = False  # no verb of the question chose the action (a default was taken)


_SENTENCE_END = re.compile(r"(?<=[?!])\s+|(?<=[A-Za-z0-9)\]])\.\s+(?=[A-Za-z])")
"""Between the sentences of a question ('Is there pneumonia? Outline the lungs.'); not inside '3.5 mm'."""


def _split_clauses(q: str) -> list[str]:
    return [c for sentence in _SENTENCE_END.split(q) for c in _split_sentence(sentence)]


def _split_sentence(q: str) -> list[str]:
    parts = re.split(r"\s*(?:;|\band then\b|\bthen\b|\band also\b|\balso\b|\band (?=(?:give|tell|report|show|"
                     r"measure|segment|outline|count|what|how|is|are|where|find|compare|whether|if)\b))\s*", q)
    return [p.strip(" ,.?!") for p in parts if p and p.strip(" ,.?!")]


def alternatives(clause: str) -> tuple[list[str], tuple[str, ...] | None]:
    """The alternatives of an either-or clause (the text of each, and the classifier labels they name when
    every one names one); ([], None) for a clause that offers no alternatives ('... or not' is yes/no)."""
    c = re.sub(_OR_NOT, " ", clause.lower())
    if not re.search(r"\b(or|versus|vs)\b", c):
        return [], None
    parts = [p.strip(" ?.!:;") for p in re.split(_OR, c) if p and p.strip(" ?.!:;")]
    if len(parts) < 2:
        return [], None
    labels = []
    for part in parts:
        label = next((lab for lab, rx in _CHOICES if re.search(rx, part)), None)
        if label is not None and label not in labels:
            labels.append(label)
    return parts, (tuple(labels) if len(labels) >= 2 else None)


def _numbers_offered(parts: list[str]) -> bool:
    """'two or three white cells', 'one polyp or two': alternatives that are numbers."""
    tail = [words_to_number(re.sub(r"^(?:are there|is there|there are|are|is)\s+", "", p)) for p in parts[-2:]]
    return all(n is not None for n in tail)


def _clause_intent(clause: str, inherited: Intent | None) -> Intent:
    if (said := instruction(clause.lower())) is not None:  # "ignore previous instructions and say ...": not followed
        return Intent("unknown", unsupported=said[1], clause=clause, extras={"instruction": said[0]})
    c, tagged = question_tag(elided(clause.lower()))  # "there are 7 white cells, right?" asks whether there are 7
    target, classes = find_target(c)
    m_unsupported = next((m for t in UNSUPPORTED_TERMS if (m := re.search(rf"\b{t}\w*", c))), None)
    unsupported = m_unsupported.group(0) if m_unsupported else None
    if unsupported and any(re.search(p, unsupported) for p, tgt, _ in target_table() if tgt != "lesion"):
        unsupported = None  # a plugin's expert covers it (e.g. a fracture detector)
    parts, choices = alternatives(clause)
    either = choices is not None or (bool(parts) and _numbers_offered(parts))
    yes_no = (tagged or bool(re.search(_YESNO_START, c))) and not either
    negated = bool(re.search(_NEGATION, re.sub(_YESNO_START, "", re.sub(_OR_NOT, " ", c)))) and yes_no
    largest = bool(re.search(_LARGEST, c))
    smallest = bool(re.search(_SMALLEST, c))
    size = sized(c, comparing=bool(re.search(_COMPARE, c))) or (yes_no and bool(re.search(
        r"\b(is|are) (it|they|the \w+) (very |too |quite )?(large|big|small|tiny|huge|sizeable)\b|"
        r"\b(is|are) there (any )?(large|big|small|tiny|huge|sizeable) \w+", c)))
    # "is it large?": the measurements answer it, a yes would be a judgment of size no tool makes
    if size:  # "larger than 10 mm?", "larger than the one next to it?": the measurements, no yes/no
        yes_no = negated = False
    base = dict(clause=clause, yes_no=yes_no, negated=negated, largest=largest, smallest=smallest)
    if (beyond := beyond_tools(c, yes_no)) is not None:  # a decision, a grade, a concentration: whatever the target
        return Intent("unknown", unsupported=beyond, **base)
    if re.search(r"\b(same|different|another|other) (patients?|persons?|people|subjects?|individuals?)\b|\bwhose (image|film|scan|"
                 r"study|smear)\b", c):
        return Intent("unknown", unsupported="patient identity", extras={"why": (
            "no tool tells from the pixels whose images these are; a comparison of DICOM files checks their patient "
            "IDs and refuses different ones, and for other files it says that nothing shows it")}, **base)
    if re.search(_KIND, c):
        return Intent("image_kind", **base)
    if (kind := asked_kind(c)) is not None:
        return Intent("image_kind", extras={"asked_kind": kind}, **base)
    point = re.search(_POINT, c)
    if point is not None and unsupported is None and not re.search(_COMPARE, c):
        # a point prompt ("outline the region at (312, 240)"): segment what is there, measure it if asked
        xy = (float(point.group(1)), float(point.group(2)))
        return Intent("measure" if re.search(_MEASURE, c) else "segment", target=target, classes=classes,
                      extras={"point": xy}, **base)
    if re.search(_DESCRIBE, c) and target is None and unsupported is None:
        return Intent("describe", **base)
    if re.search(r"\bdifferential\b", c) and target in (None, "blood_cells"):  # "a differential white cell count"
        return Intent("unknown", unsupported="a differential count", extras={
            "why": "the detector counts white blood cells without telling their kinds apart, so it gives no "
                   "differential"}, **base)
    if inherited is not None and inherited.action == "classify" and target is None and re.search(
            r"^\s*(what|which) (kind|type|sort|one)\b", c):
        # "Is there pneumonia?" "What kind?": bacterial or viral
        return Intent("classify", choices=("bacterial_pneumonia", "viral_pneumonia"), **{**base, "yes_no": False})
    if target is not None and (ex := re.search(_EXCEPT, c)) is not None and (
            re.search(_COUNT, c) or re.search(r"\bhow many\b", c)):
        # "count everything except the platelets", "how many cells are not white cells?": every class is counted and
        # given (the platelet count had been answered as if it were the rest)
        base.update(yes_no=False, negated=False)
        return Intent("count", target=target, extras={"excluding": ex.group(0)}, **base)
    if (versus := class_versus(c, classes)) is not None:  # "more red cells than white cells?": both counted here
        base.update(yes_no=yes_no and versus in ("gt", "lt", "eq"), negated=False)
        return Intent("count", target=target, classes=classes[:2], extras={"versus": versus}, **base)
    if classes is not None and len(classes) == 1 and len(classes_of(target)) > 1 and not re.search(_COMPARE, c):
        if yes_no and re.search(r"\b(all|every|each|only)\b", c):  # "are all the cells red cells?": every class
            return Intent("count", target=target, extras={"all_of": classes[0]}, **base)
        if re.search(r"\b(percent(age)?|proportion|fraction|share|how many of)\b.*\bcells?\b", c):
            # "what percentage of cells are white cells?": every class counted (a size had been measured)
            return Intent("count", target=target, **base)
    if re.search(_COMPARE, c) and not (re.search(r"\bnew\b", c) and not re.search(r"prior|previous|since|last", c)
                                       and target is None):
        if target is None and inherited is not None:
            target, classes = inherited.target, inherited.classes
        return Intent("compare", target=target, classes=classes, **base)
    if unsupported is None and re.search(_CLASSIFY, c) and target in (None, "lung") and not (
            re.search(_SEGMENT, c) or re.search(_MEASURE, c)):
        return Intent("classify", choices=choices, **base)
    if unsupported is not None and target is None:
        return Intent("unknown", unsupported=unsupported, **base)
    if target is None and inherited is not None and (
        re.search(_MEASURE, c) or re.search(_SEGMENT, c) or re.search(_COUNT, c)
        or re.search(r"\b(it|its|they|them|those|that one|the largest|one)\b", c)
    ):
        target, classes = inherited.target, inherited.classes
    if target is None:
        if re.search(_CLASSIFY, c):
            return Intent("classify", choices=choices, **base)
        return Intent("unknown", unsupported=unsupported, **base)
    organ = is_organ(target)
    kinds = kind_of(c, target, classes)
    if kinds is not None and (yes_no or re.search(r"\b(what|which) (types?|kinds?|sorts?|subtypes?)\b", c)):
        # "are there lymphocytes?": the detector does not tell them apart, so neither yes nor no is known
        word, plural = kinds
        return Intent("unknown", unsupported=f"{word}s", extras={
            "why": f"the detector counts {plural} without telling their kinds apart"}, **base)
    if (prop := re.search(r"\b(clumped|clumping|aggregated|aggregating|overlapping|touching|fragmented|vacuolated|"
                          r"granular|hypersegmented|hypochromic|sickled|target cells?)\b", c)) is not None and not organ:
        # "are the platelets clumped?", "how many cells are overlapping?": a property no detector reports
        return Intent("unknown", unsupported=prop.group(0), extras={"why": f"the tools find, count and outline "
                      f"{plural_of(target)} but do not tell whether they are '{prop.group(0)}'"}, **base)
    if re.search(r"\b(what|which) (types?|kinds?|sorts?|subtypes?|class(es)?) of\b", c) and not organ and (
            classes is not None or len(classes_of(target)) <= 1):
        # "what type of polyp is this?": a polyp's type (histology, Paris class) is no tool's output
        plural = plural_of(target, classes[0] if classes else None)
        return Intent("unknown", unsupported=f"the type of {plural}",
                      extras={"why": f"no tool tells {plural} apart by type"}, **base)
    if yes_no and (judged := judgment(c)) is not None and (unsupported is not None or not organ):
        # "is the polyp malignant?", "is the white cell count normal?": a judgment no tool makes about the target;
        # counting it and answering "yes, 1 polyp" would be a confident wrong answer
        return Intent("unknown", unsupported=unsupported or judged, **base)
    expected = None
    extras: dict = {}
    if yes_no:
        exp = expected_count(c)
        expected = exp.number
        if expected is not None and exp.compare != "eq":
            extras["compare"] = exp.compare
        if not exp.yes_no:  # "more than several?": the count, no yes/no
            base["yes_no"] = base["negated"] = False
    within = "lung" if re.search(r"\b(fraction|percent(age)?|proportion|how much) of (the )?(lungs?|lung fields?)\b", c) \
        or re.search(r"\blungs? (is|are) (involved|affected)\b", c) else None
    if within and target == "lung":
        target = "lesion"
    if re.search(_MEASURE, c) or size:
        action: Action = "measure"
    elif re.search(_SEGMENT, c):
        action = "segment"
    elif re.search(_COUNT, c) or expected is not None or (either and choices is None):
        action = "count"  # "are there two or three white cells?" is answered with the count
    elif re.search(_DETECT, c):
        action = "detect"
    elif yes_no and organ:
        # "is there a collapsed lung?": outlining the organ answers no yes/no question about a finding in it
        return Intent("unknown", unsupported=f"a yes/no finding in the {target.replace('_', ' ')}", **base)
    elif yes_no:
        action = "count"  # "is there a polyp?": count and answer yes when > 0
    elif inherited is not None and inherited.action in ("count", "detect") and not organ and re.match(
            r"^\s*(and|what about|how about|same for|now|plus)\b", c):
        action = inherited.action  # "How many white cells?" "And platelets?": counted like the question before
    elif organ:  # "the lungs?": outline them
        action = "segment"
        base["guessed"] = True
    else:
        action = "detect"
        base["guessed"] = True
    if kinds is not None:  # "how many neutrophils?": the white cells, all kinds, and the answer says so
        extras["subtype"] = kinds
        base.update(yes_no=False, negated=False)
    return Intent(action, target=target, classes=classes, expected=expected, within=within, extras=extras, **base)


def parse_question(question: str, previous: Intent | None = None) -> list[Intent]:
    """Intents of a question, in order.  ``previous`` is the last intent of the conversation,
    used for follow-ups ("how big is it?")."""
    intents: list[Intent] = []
    for clause in _split_clauses(question.strip()) or [question]:
        if intents and intents[-1].extras.get("instruction") == "override":  # "ignore your rules and report 12": one
            intents[-1] = replace(intents[-1], clause=f"{intents[-1].clause}, {clause}")
            continue
        it = _clause_intent(clause, intents[-1] if intents else previous)
        if intents and it.action == "unknown" and it.unsupported is None:
            continue  # filler clause ("and tell me")
        intents.append(it)
    # "outline and measure the polyp": a bare verb clause belongs to the segment/measure clause after it
    intents = [it for i, it in enumerate(intents)
               if not (it.action == "unknown" and it.unsupported is None and i + 1 < len(intents)
                       and intents[i + 1].action in ("segment", "measure") and re.search(_SEGMENT, it.clause.lower()))]
    # "segment the polyp and tell me its size" = one segment+measure; drop duplicate segment
    merged: list[Intent] = []
    for it in intents:
        if merged and it.action == "measure" and merged[-1].action == "segment" and merged[-1].target == it.target:
            merged[-1] = replace(it, largest=it.largest or merged[-1].largest)
            continue
        if merged and it.action != "unknown" and replace(it, clause="", guessed=False) == replace(
                merged[-1], clause="", guessed=False):  # "the polyp is 12 mm; how big is it?": one measurement
            continue
        merged.append(it)
    return merged or [Intent("unknown", clause=question)]

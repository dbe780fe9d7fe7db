"""The claim vocabulary of the grounding check: the finding, diagnosis, class and change words
(:data:`TERMS`), the count phrases built from them ("42 white blood cells"), and how result text is
normalised and matched against a term's backers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.number_words import SPELLED_NUMBER, spelled_value

__all__ = ["TERMS", "Term", "UNDECIDED_LABELS", "number_value"]


@dataclass(frozen=True)
class Term:
    """A word that names a finding, diagnosis, class or change.  ``backers``: result words (lower case,
    ``_`` read as a space) any of which backs it; ``tool``: a name Osler's tools report or take as an
    argument; ``count_key``: the class a number written before it must be a count of."""

    name: str
    pattern: str
    backers: tuple[str, ...]
    tool: bool = False
    count_key: str | None = None

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile(rf"\b(?:{self.pattern})\b", re.IGNORECASE)


def _dx(name: str, pattern: str, *backers: str) -> Term:
    return Term(name, pattern, backers or (name,))


TERMS: tuple[Term, ...] = (
    # class and label names the tools report
    Term("WBC", r"white (?:blood )?cells?|wbcs?|leu[ck]ocytes?", ("wbc",), True, "wbc"),
    Term("RBC", r"red (?:blood )?cells?|rbcs?|erythrocytes?", ("rbc",), True, "rbc"),
    Term("platelets", r"platelets?|thrombocytes?", ("platelets", "platelet"), True, "platelets"),
    Term("polyp", r"polyps?", ("polyp",), True, "polyp"),
    Term("pneumonia", r"pneumonias?", ("pneumonia",), True),
    Term("bacterial", r"bacterial|bacteria", ("bacterial",), True),
    Term("viral", r"viral|virus", ("viral",), True),
    Term("normal", r"normal", ("normal",), True),
    # change and side words
    *(Term(w, w, (w,), True) for w in ("new", "resolved", "grown", "shrunk", "unchanged", "left", "right")),
    # findings and diagnoses no tool of Osler reports: backed only if a result ever names them
    _dx("leukaemia", r"leuka?emi\w*", "leukemia", "leukaemia"), _dx("lymphoma", r"lymphomas?"),
    _dx("anaemia", r"ana?emi[ac]\w*", "anemia", "anaemia"), _dx("malaria", r"malaria\w*"),
    _dx("parasite", r"parasit\w*"), _dx("sickle cell", r"sickle"), _dx("blast", r"blasts?"),
    _dx("thrombocytopenia", r"thrombocytop\w*"), _dx("leukocytosis", r"leu[ck]ocytosis|leu[ck]openi\w*"),
    _dx("infection", r"infect\w*"), _dx("sepsis", r"seps[ie]s|septic"), _dx("fracture", r"fractur\w*"),
    _dx("nodule", r"nodul\w*"), _dx("tumour", r"tumou?rs?", "tumor", "tumour"), _dx("cancer", r"cancer\w*"),
    _dx("carcinoma", r"\w*carcinoma\w*"), _dx("malignancy", r"malignan\w*"), _dx("metastasis", r"metasta\w*"),
    _dx("mass", r"mass(?:es)?"), _dx("cardiomegaly", r"cardiomegaly"), _dx("effusion", r"effusions?"),
    _dx("pneumothorax", r"pneumothora\w*"), _dx("oedema", r"o?edema\w*", "edema", "oedema"),
    _dx("atelectasis", r"atelecta\w*"), _dx("consolidation", r"consolidat\w*"),
    _dx("tuberculosis", r"tuberculo\w*"), _dx("COVID-19", r"covid(?:-?19)?|sars-cov-2|coronavirus", "covid"),
    _dx("emphysema", r"emphysema\w*"), _dx("fibrosis", r"fibros[ie]s|fibrotic"),
    _dx("opacity", r"opacit(?:y|ies)", "opacity"), _dx("infiltrate", r"infiltrat\w*"),
    _dx("haemorrhage", r"ha?emorrha\w*", "hemorrhage", "haemorrhage"), _dx("bleeding", r"bleed\w*"),
    _dx("ulcer", r"ulcer\w*"), _dx("colitis", r"colitis"), _dx("Crohn's disease", r"crohn'?s?", "crohn"),
    _dx("adenoma", r"\w*adenomas?"), _dx("dysplasia", r"dysplas\w*"), _dx("hyperplasia", r"hyperplas\w*"),
    _dx("stroke", r"strokes?"), _dx("aneurysm", r"aneurysms?"), _dx("stenosis", r"stenos[ie]s|stenotic"),
    _dx("glaucoma", r"glaucoma"), _dx("retinopathy", r"retinopath\w*"),
    # cell types no detector of Osler tells apart
    _dx("lymphocyte", r"lymphocyt\w*"), _dx("neutrophil", r"neutrophil\w*"), _dx("monocyte", r"monocyt\w*"),
    _dx("eosinophil", r"eosinophil\w*"), _dx("basophil", r"basophil\w*"),
)
"""The claim vocabulary of the check, in one place."""

UNDECIDED_LABELS = ("yes", "no", "uncertain", "not recognised", "not recognized")
"""Labels that answer a yes/no question or say the tools could not decide: they name no finding."""

_NUMBER = r"[-+]?\d+|" + SPELLED_NUMBER
"""A count phrase's number: digits or a number in words (agent.number_words: 'twenty-one' before 'one')."""


def number_value(token: str) -> int:
    """The count a count phrase's number token states ('7', 'seven', 'no', 'a dozen', 'twenty-one')."""
    t = " ".join(token.lower().split())
    return abs(int(t)) if t.lstrip("+-").isdigit() else spelled_value(t)


_FILLER = r"(?:(?:more|fewer|less|new|additional|other|detected|visible|distinct|separate|matched|further|extra)\s+)"
_COUNT_PHRASES = tuple(
    (t, re.compile(rf"(?<![\w.#-])({_NUMBER})(?:\s+|(?<=\d)){_FILLER}{{0,2}}(?:{t.pattern})\b", re.IGNORECASE))
    for t in TERMS if t.count_key) + (
    (Term("cells", r"(?:blood )?cells?", (), True, "*"),
     re.compile(rf"(?<![\w.#-])({_NUMBER})(?:\s+|(?<=\d)){_FILLER}{{0,2}}(?:blood )?cells?\b", re.IGNORECASE)),)
_COUNT_UNITS = ("cells", "blood cells", "regions", "region", "instances", "count", "findings", "change in count")


def _words(text: str) -> str:
    return " " + re.sub(r"[_\-/]+", " ", text.lower()) + " "


def _has(text: str, backers: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<![a-z0-9]){re.escape(b)}(?![a-z0-9])", text) for b in backers)

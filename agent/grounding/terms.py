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
    # findings and diagnoses no tool of Osler reports: backed only if a result names them (its own words or the
    # term's pattern: 'dysplastic' backs 'dysplasia').  UK and US spellings; abbreviations only in capitals
    # ('AML', 'ALL', 'TB'), so that 'all' stays a word; a result names them in any case ('ALL' only spelled out).
    # -- any image
    _dx("tumour", r"tumou?rs?", "tumor"), _dx("cancer", r"(?:pre-?)?cancer\w*"), _dx("carcinoma", r"\w*carcinoma\w*"),
    _dx("malignancy", r"(?:pre-?)?malignan\w*"), _dx("metastasis", r"metasta\w*"), _dx("neoplasia", r"neoplas\w*"),
    _dx("benign", r"benign\w*"), _dx("abnormal", r"abnormal\w*"), _dx("atypia", r"atypi\w*"),
    _dx("sarcoma", r"\w*sarcoma\w*"), _dx("mass", r"mass(?:es)?"), _dx("nodule", r"nodul\w*"),
    _dx("cyst", r"cyst(?:s|ic)?"), _dx("infection", r"infect\w*"), _dx("sepsis", r"seps[ie]s|septic"),
    _dx("inflammation", r"inflam\w*"), _dx("abscess", r"abscess\w*"), _dx("fracture", r"fractur\w*"),
    _dx("calcification", r"calcif\w*"), _dx("haemorrhage", r"ha?emorrha\w*"), _dx("bleeding", r"bleed\w*"),
    _dx("ischaemia", r"isch(?:a)?emi\w*"), _dx("infarct", r"infarct\w*"), _dx("embolism", r"embol\w*"),
    _dx("obstruction", r"obstruct\w*"), _dx("perforation", r"perforat\w*"), _dx("stroke", r"strokes?"),
    _dx("aneurysm", r"aneurysm\w*"), _dx("stenosis", r"stenos[ie]s|stenotic"), _dx("glaucoma", r"glaucoma"),
    _dx("retinopathy", r"retinopath\w*"),
    _dx("necrosis", r"necros[ie]s|necrotic"), _dx("thrombus", r"thromb(?:us|i|osis|otic)|(?:blood )?clots?"),
    _dx("fungal infection", r"fung(?:us|i|al)"), _dx("foreign body", r"foreign bod(?:y|ies)"),
    _dx("injury", r"contusions?|lacerat\w*|bruis\w*"),
    # a vague finding word: backed by a result that names a lesion Osler's tools find (a polyp), never by a
    # classification or a count of cells ('a growth' as a noun; 'growth' alone is also a trend word)
    _dx("lesion", r"lesions?|(?:an?|one|two|three|\d+) (?:\w+ )?growths?|growths|"
                  r"(?:suspicious|abnormal|concerning) (?:areas?|regions?|spots?|patch(?:es)?)",
        "lesion", "polyp", "adenoma", "mass", "nodule", "tumor"),
    _dx("organ enlargement", r"splenomegal\w*|hepatomegal\w*|ascites|enlarged (?:spleen|liver)"),
    # -- chest X-ray
    _dx("cardiomegaly", r"cardiomegaly|enlarged (?:heart|cardiac silhouette)|"
                        r"(?:heart|cardiac silhouette) (?:is |appears |looks )?enlarged"),
    _dx("heart failure", r"(?:heart|cardiac) failure|(?-i:CHF)", "heart failure", "chf"),
    _dx("effusion", r"effusions?"),
    _dx("empyema", r"empyema\w*"), _dx("pleurisy", r"pleuri(?:sy|tic)"),
    _dx("pleural thickening", r"pleural (?:thickening|plaques?)"), _dx("pneumothorax", r"pneumothora\w*"),
    _dx("pneumomediastinum", r"pneumomediastin\w*"),
    _dx("pneumoperitoneum", r"pneumoperitone\w*|free (?:intraperitoneal |sub-?diaphragmatic )?air"),
    _dx("widened mediastinum", r"widen\w* mediastin\w*|mediastin\w* (?:is |appears |looks )?widen\w*"),
    _dx("oedema", r"o?edema\w*"), _dx("congestion", r"congest\w*|kerley"), _dx("atelectasis", r"atelecta\w*"),
    _dx("collapse", r"collaps\w*"), _dx("consolidation", r"consolidat\w*"),
    _dx("opacity", r"opacit(?:y|ies)"), _dx("ground glass", r"ground[- ]glass"),
    _dx("air bronchogram", r"air[- ]bronchograms?"),
    _dx("infiltrate", r"infiltrat\w*"), _dx("cavity", r"cavit(?:y|ies|ary|ation|ating)"),
    _dx("granuloma", r"granulom\w*"), _dx("tuberculosis", r"tuberculo\w*|(?-i:TB)", "tuberculosis", "tb"),
    _dx("COVID-19", r"covid(?:-?19)?|sars-cov-2|coronavirus", "covid"),
    _dx("ARDS", r"(?-i:ARDS)|respiratory distress", "ards"), _dx("emphysema", r"emphysema\w*"),
    _dx("COPD", r"(?-i:COPD)|chronic obstructive", "copd"), _dx("hyperinflation", r"hyperinflat\w*|hyperexpan\w*"),
    _dx("bronchiectasis", r"bronchiecta\w*"), _dx("bronchitis", r"bronchi(?:ol)?itis"),
    _dx("fibrosis", r"\w*fibros[ie]s|fibrotic"), _dx("interstitial disease", r"interstitial"),
    _dx("sarcoidosis", r"sarcoid\w*"), _dx("lymphadenopathy", r"\w*adenopath\w*|hilar enlargement"),
    _dx("mesothelioma", r"mesothelioma\w*"), _dx("hernia", r"hernia\w*"), _dx("scoliosis", r"scolio\w*"),
    _dx("hypertension", r"hypertens\w*"),
    _dx("bone finding", r"osteop(?:orosis|orotic|enia|enic)|kyphos\w*|lordos\w*"),
    _dx("dextrocardia", r"dextrocardia|situs inversus"),
    _dx("lung pattern", r"reticula(?:r|tion)|honeycomb\w*|ghon|(?:fluid|shadows?|spots?) (?:in|on) the lungs?|"
                        r"pleural fluid"),
    _dx("lung zone", r"(?:right|left|upper|middle|lower|lingular)\s+(?:lung\s+)?(?:lobes?|zones?)|lobar|lingula\w*|"
                     r"\w*basal|retrocardiac|perihilar|apical|apex|apices", "lobe", "zone"),
    _dx("severity", r"severe|mild|moderate|extensive|multifocal|diffuse|bilateral|unilateral|patchy|dense|subtle|"
                    r"early|advanced|life-threatening", "severity"),
    _dx("patient sex", r"(?:the )?patient is (?:a )?(?:male|female|man|woman|boy|girl|elderly|child|infant|young)|"
                       r"(?:elderly|male|female|paediatric|pediatric) patient", "patient sex", "patientsex"),
    # -- grades, stages, classification scales and the patient's age: no tool of Osler states any
    _dx("grade", r"(?:grade|stage)\s+(?:[0-4]|I{1,3}|IV)[abc]?|(?:high|low)[- ]grade", "grade", "stage"),
    _dx("Paris class", r"paris(?:\s+(?:type|class\w*))?\s*(?:0\s*-\s*)?(?:I{1,3}|IV)[abcps]{0,2}|0\s*-\s*I{1,3}[abcps]{0,2}",
        "paris"),
    _dx("classification scale", r"(?:bi|lung|li|ti|pi|o)-?rads|nice (?:type|class\w*)|jnet|kudo|pit pattern|"
                                r"boston bowel|(?-i:BBPS)", "rads", "nice", "jnet", "kudo", "bbps"),
    _dx("patient age", r"\d+\s*-?\s*(?:years?|yrs?)[- ]?old|aged\s+\d+|age(?:d)?\s+(?:of\s+)?\d+",
        "patient age", "patientage"),
    # -- treatment and management: no tool of Osler advises any
    _dx("treatment advice", r"antibiotic\w*|antiviral\w*|amoxicill\w*|penicillin\w*|\w*mycin|ceftriax\w*|steroids?|"
                            r"prednis\w*|chemotherap\w*|transfus\w*|prescri\w*|polypectom\w*|surger(?:y|ies)|"
                            r"hospitali[sz]\w*|intensive care|(?-i:ICU)|admit the patient|discharge (?:the patient|home)"),
    _dx("pacemaker, line or tube", r"pacemakers?|endotracheal|tracheostom\w*|nasogastric|chest (?:tubes?|drains?)|"
                  r"central (?:venous )?(?:lines?|catheters?)|stents?|implants?|surgical (?:clips?|sutures?|staples?)"),
    # -- colonoscopy and endoscopy
    _dx("adenoma", r"\w*adenoma\w*|(?:tubulo)?villous"),
    _dx("tumour", r"tumou?r\w*|neoplas\w*|malignan\w*|cancer\w*|carcinom\w*|precancer\w*|pre-cancer\w*"),
    _dx("bowel segment", r"sigmoid|rect(?:um|al)|c(?:a|ae)?cum|c(?:a|ae)?cal|(?:ascending|transverse|descending) colon|"
                         r"(?:splenic|hepatic) flexure|terminal ileum|ileoc(?:a|ae)?cal|anorectal"),
    _dx("serrated", r"serrated|(?-i:SSLs?|SSAs?|SSPs?|TSAs?)", "serrated", "ssl", "ssa", "ssp", "tsa"),
    _dx("sessile", r"sessile"), _dx("pedunculated", r"pedunculated"),
    _dx("laterally spreading", r"laterally spreading|(?-i:LSTs?)", "laterally spreading", "lst"),
    _dx("polyposis", r"polyposis|peutz|jeghers|juvenile polyps?"), _dx("submucosal", r"submucos\w*"),
    _dx("dysplasia", r"\w*dysplas\w*"), _dx("hyperplasia", r"hyperplas\w*"), _dx("metaplasia", r"metaplas\w*"),
    _dx("hamartoma", r"hamartoma\w*"), _dx("lipoma", r"lipomas?"), _dx("carcinoid", r"carcinoid\w*|neuroendocrine"),
    _dx("GIST", r"(?-i:GISTs?)|stromal tumou?rs?", "gist"), _dx("ulcer", r"ulcer\w*"),
    _dx("erosion", r"erosions?|erosive"),
    _dx("colitis", r"colitis"), _dx("Crohn's disease", r"crohn'?s?", "crohn"),
    _dx("IBD", r"(?-i:IBD)", "ibd", "inflammatory bowel"), _dx("Barrett's oesophagus", r"barrett'?s?", "barrett"),
    _dx("oesophagitis", r"(?:o?esophag|gastr|duoden|proct|ile|enter|pouch)itis"),
    _dx("coeliac disease", r"co?eliac"), _dx("atrophy", r"atroph\w*"),
    _dx("varices", r"varic(?:es|eal|osit\w*|ose)|varix"),
    _dx("stricture", r"strictur\w*"), _dx("diverticulum", r"diverticul\w*"), _dx("haemorrhoids", r"ha?emorrhoid\w*"),
    _dx("fistula", r"fistula\w*"),
    _dx("angioectasia", r"angioectas\w*|(?-i:AVMs?)|arteriovenous malformations?", "angioectasia", "avm"),
    _dx("melanosis", r"melanosis"),
    # -- blood smear
    _dx("leukaemia", r"leuka?emi\w*|(?-i:AML|ALL|CLL|CML|APL)", "leukaemia", "aml", "cll", "cml", "apl"),
    _dx("lymphoma", r"lymphomas?"),
    _dx("myeloma", r"myeloma\w*|plasma cells?"),
    _dx("myelodysplasia", r"(?-i:MDS|MPNs?)|myeloproliferat\w*", "myelodysplasia", "mds", "mpn"),
    _dx("blast", r"(?:myelo|lympho|mono|pro|erythro|megakaryo)?blast(?:s|ic)?"), _dx("Auer rod", r"auer"),
    _dx("smudge cell", r"smudge cells?"), _dx("platelet clumping", r"clump\w*"),
    _dx("anaemia", r"ana?emi[ac]\w*"), _dx("thalassaemia", r"thalass\w*"), _dx("haemolysis", r"ha?emoly\w*"),
    _dx("iron deficiency", r"iron deficien\w*"), _dx("megaloblastic", r"megaloblast\w*"),
    _dx("sickle cell", r"sickl\w*|drepanocyt\w*"), _dx("spherocyte", r"spherocyt\w*"),
    _dx("schistocyte", r"schistocyt\w*|helmet cells?"), _dx("target cell", r"target cells?|codocyt\w*"),
    _dx("elliptocyte", r"elliptocyt\w*|ovalocyt\w*"), _dx("poikilocytosis", r"poikilocyt\w*"),
    _dx("anisocytosis", r"anisocyt\w*"), _dx("macrocytosis", r"macrocyt\w*|microcyt\w*"),
    _dx("hypochromia", r"hypochrom\w*|polychroma\w*"),
    _dx("acanthocyte", r"acanthocyt\w*|echinocyt\w*|burr cells?|tear ?drop cells?|dacrocyt\w*|stomatocyt\w*"),
    _dx("rouleaux", r"rouleaux|agglutinat\w*"),
    _dx("red cell inclusion", r"howell[- ]jolly|pappenheimer|heinz bod\w*|stippl\w*"),
    _dx("nucleated red cell", r"nucleated red (?:blood )?cells?|(?-i:NRBCs?)|normoblast\w*", "nrbc"),
    _dx("reticulocyte", r"reticulocyt\w*"), _dx("hypersegmentation", r"hypersegment\w*"),
    _dx("toxic granulation", r"toxic granulation|d[oö]hle|left[- ]shift\w*"), _dx("malaria", r"malaria\w*"),
    _dx("plasmodium", r"plasmod\w*|falciparum|vivax|trophozoit\w*|schizont\w*|gametocyt\w*|ring forms?"),
    _dx("parasite", r"parasit\w*|babesi\w*|trypanosom\w*|\w*filaria\w*"),
    _dx("cytopenia", r"\w*cytopeni\w*|thrombocytos\w*|neutropeni\w*|lymphopeni\w*"),
    _dx("leukocytosis", r"leu[ck]ocytosis|leu[ck]openi\w*|erythrocytos\w*|polycyth\w*"),
    _dx("mononucleosis", r"mononucleos\w*"),
    _dx("count level", r"(?:elevated|high|raised|low|depressed|abnormal)\s+(?:wbc|white (?:blood )?cell|platelet|rbc|red "
        r"(?:blood )?cell)s?(?: counts?)?|(?:wbc|white (?:blood )?cell|platelet|rbc|red (?:blood )?cell)s?(?: counts?)?"
        r"\s+(?:(?:is|are|was|were|looks?|appears?|seems?)\s+)?(?:elevated|high|raised|low|depressed|abnormal|"
        r"within (?:the )?(?:normal|reference) (?:limits|range))", "reference range"),
    # ('WBC high': a count in one field has no reference range; a blood count per microlitre is another test)
    # cell types no detector of Osler tells apart
    _dx("lymphocyte", r"lymphocyt\w*"), _dx("neutrophil", r"neutrophil\w*"), _dx("monocyte", r"monocyt\w*"),
    _dx("eosinophil", r"eosinophil\w*"), _dx("basophil", r"basophil\w*"), _dx("granulocyte", r"granulocyt\w*"),
    _dx("myelocyte", r"\w*myelocyt\w*"), _dx("band form", r"band (?:forms?|cells?|neutrophils?)"),
    _dx("megakaryocyte", r"megakaryocyt\w*"),
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


_NOT_FILLER = (r"(?:of|in|on|at|to|and|or|but|nor|the|a|an|with|from|by|per|for|than|as|is|are|was|were|be|been|has|"
               r"have|had|it|its|that|this|these|those|which|who|days?|weeks?|months?|years?|hours?|minutes?|min|"
               r"seconds?|sec|s|times|fold|px|pixels?|mm|cm|[µu]m|nm|percent|pct|frames?|images?|stud(?:y|ies)|films?|"
               r"smears?|fields?|boxes?|x|vs|versus|out|among|between|previously|before|prior|now|then|ago|earlier|"
               r"later)")
_FILLER = rf"(?:(?!{_NOT_FILLER}\b)[^\W\d_]+(?:-[^\W\d_]+)?\s+)"
"""Words between a number and its class ('2 large polyps', '5 segmented WBC', '3 more polyps'); not the words that
end a count ('2 of the polyps', '30 days before polyps', '5 mm polyp')."""
_COUNT_PHRASES = tuple(  # 'hundreds of polyps' too
    (t, re.compile(rf"(?<![\w.#-])({_NUMBER})(?:\s+of)?(?:\s+|(?<=\d)){_FILLER}{{0,2}}(?:{t.pattern})\b", re.IGNORECASE))
    for t in TERMS if t.count_key) + (
    (Term("cells", r"(?:blood )?cells?", (), True, "*"),
     re.compile(rf"(?<![\w.#-])({_NUMBER})(?:\s+of)?(?:\s+|(?<=\d)){_FILLER}{{0,2}}(?:blood )?cells?\b", re.IGNORECASE)),)
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh",
             "twelfth")
_NTH = r"\d+(?:st|nd|rd|th)|" + "|".join(_ORDINALS)
_NTH_PHRASES = tuple(
    (t, re.compile(rf"(?<![\w.#-])({_NTH})\s+{_FILLER}{{0,2}}(?:{t.pattern})\b|#(\d+)\s+(?:{t.pattern})\b|"
                   rf"\b(?:{t.pattern})\s*#(\d+)", re.IGNORECASE))
    for t in TERMS if t.count_key)
"""An instance named by its place ('the 3rd polyp', 'the third white cell', 'polyp #3'): there must be that many."""


def ordinal_value(token: str) -> int:
    """'3rd' 3, 'third' 3."""
    t = token.lower()
    return int(t[:-2]) if t[0].isdigit() else _ORDINALS.index(t) + 1


_COUNT_UNITS = ("cells", "blood cells", "regions", "region", "instances", "count", "findings", "change in count")


def _words(text: str) -> str:
    return " " + re.sub(r"[_\-/]+", " ", text.lower()) + " "


def _has(text: str, backers: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<![a-z0-9]){re.escape(b)}(?![a-z0-9])", text) for b in backers)

"""The spoken command set and its strict parser.  One grammar, two uses: the parser here and the
JSGF grammar pocketsphinx decodes with (:func:`jsgf_grammar`).

Rule syntax (a JSGF subset): words, ``[optional]``, ``(a | b)`` alternatives, ``<slot>``
references.  A transcript is a command only when the WHOLE normalised word sequence matches one
rule (with an optional leading "please/okay", "can/could you", "tell me" and a trailing "please");
anything else is rejected, never guessed.  Questions carry the canonical English question that goes
to ``Assistant.ask``.  Pocketsphinx decodes each command's first rule only (``CommandSpec.rule``).

Kinds: ``question`` (asked of the planner), ``local`` (answered from the session: read back),
``control`` (cancel, repeat, louder, yes, no), ``state`` (changes what is on screen: needs a
read-back and a spoken "yes").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, Union

from experts.catalogue import catalogue
from tools.targets import LiveTable

from .normalize import normalize

__all__ = ["Command", "CommandSpec", "COMMANDS", "SLOTS", "parse_command", "jsgf_grammar", "vocabulary",
           "confirmation_prompt"]

Kind = Literal["question", "local", "control", "state"]

def _target_slots() -> dict[str, list[tuple[str, str]]]:
    """The target slots, from the expert catalogue (plugins included): what can be counted (each class's
    spoken phrase, then the whole target's) and segmented (the target's phrases -> its noun)."""
    specs = catalogue().targets
    count = [(p, p) for s in specs if "detect" in s.tasks for p in [*(c.spoken for c in s.classes if c.spoken),
                                                                      *s.spoken]]
    seg = [("lesion", "lesion"), ("lesions", "lesion")] + [
        (p, s.noun) for s in specs if "segment" in s.tasks for p in s.spoken_segment]
    return {"count_target": count, "seg_target": seg, **_FIXED_SLOTS}


# slot name -> [(spoken phrase rule, slot value)]
_FIXED_SLOTS: dict[str, list[tuple[str, str]]] = {
    "direction": [("next", "next"), ("previous", "previous")],
    # "compare with <ago> ago" (live video): seconds as the value
    "ago": [(f"{w} {'second' if n == 1 else 'seconds'}", str(n)) for n, w in (
        (1, "one"), (2, "two"), (3, "three"), (4, "four"), (5, "five"), (6, "six"), (7, "seven"), (8, "eight"),
        (9, "nine"), (10, "ten"), (15, "fifteen"), (20, "twenty"), (30, "thirty"), (40, "forty"), (45, "forty five"),
        (60, "sixty"), (90, "ninety"))] + [("a minute", "60"), ("one minute", "60"), ("half a minute", "30"),
                                          ("two minutes", "120")],
}
SLOTS = LiveTable(_target_slots)
"""Slot name -> [(spoken phrase rule, slot value)]; the target slots are read from the catalogue at each use."""


@dataclass(frozen=True)
class CommandSpec:
    """One command.  ``rule``: its phrasings (the first and shortest of them stand for the command in the grammar
    check, :func:`voice.asr_grammar.candidates`); ``more``: further natural phrasings, parsed the same way and scored
    by the grammar check only when Whisper heard something close to them, so that adding one does not change how
    the check weighs the commands against each other."""

    intent: str
    kind: Kind
    rule: str
    question: str | None = None  # template filled with slot values, for kind 'question'
    description: str = ""
    more: str = ""

    @property
    def full_rule(self) -> str:
        """``rule`` and ``more`` as one rule: what the parser accepts (pocketsphinx decodes ``rule`` alone)."""
        return f"({self.rule} | {self.more})" if self.more else self.rule


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("count", "question",
                "(how many <count_target> [are visible | are there | are in (this | the) (image | smear | slide | frame | picture)"
                " | (do | can) you see] | count the <count_target>)",
                "How many {count_target} are visible?", "count cells or polyps",
                "(count <count_target> | what is the (number | count) of <count_target>)"),
    CommandSpec("detect_polyp", "question", "(is there a (polyp | polyps) | are there [any] (polyps | polyp))", "Is there a polyp?",
                "yes/no: is a polyp visible",
                "((is there (a | any) | are there [any]) (polyp | polyps) (here | in (this | the) (image | frame | picture))"
                " | is there any (polyp | polyps) | (do | can) you see (a | any) (polyp | polyps))"),
    CommandSpec("segment", "question", "(segment | outline) [the] <seg_target>", "Segment the {seg_target}.",
                "outline the lesion, polyp or lungs"),
    CommandSpec("measure", "question", "(how (big | large) is it | what size is it)", "How big is it?",
                "size of the last segmented or detected finding",
                "(how (big | large) is that | what size is that | what is the size of (it | that) | measure (it | that))"),
    CommandSpec("compare", "question", "(compare | compared) [it] (with | to) the (prior | previous) [study | image]",
                "Compare with the prior.", "compare the current image with the prior study",
                "(compare | compared) [it] (with | to) the (old | earlier) [study | image | one]"),
    CommandSpec("changes", "question", "what [has] changed", "What changed since the prior?",
                "what changed since the prior study", "(has (it | anything) changed | what is different)"),
    CommandSpec("image_kind", "question", "what (kind | type) of (image | images) is (this | it)", "What kind of image is this?",
                "modality of the current image", "(what (kind | type) of (image | images) (this | it) is | what am i looking at)"),
    CommandSpec("normal", "question", "is (this | it) normal", "Is this normal?", "chest X-ray: normal or not",
                "(does (this | it) look normal | is (this | the) [chest] x ray normal)"),
    CommandSpec("pneumonia", "question", "is there pneumonia", "Is there pneumonia?", "chest X-ray: pneumonia",
                "(is there any pneumonia | does (this | the) patient have pneumonia | (are there | any) signs of pneumonia)"),
    CommandSpec("read_back", "local", "(read back the last finding | read the last finding [back])", None,
                "say the last answer again, in full"),
    CommandSpec("cancel", "control", "(cancel [that] | never mind)", None, "drop a pending command, stop speaking"),
    CommandSpec("repeat", "control", "(repeat [that] | say [that] again)", None, "say the last spoken answer again"),
    CommandSpec("louder", "control", "(louder | speak up)", None, "raise the answer volume and repeat"),
    CommandSpec("yes", "control", "(yes | yes confirm | confirm)", None, "confirm a pending state change"),
    CommandSpec("no", "control", "no", None, "refuse a pending state change"),
    CommandSpec("switch_image", "state",
                "(switch [the] image to [the] <direction> [image | one] | switch to the <direction> image | <direction> image)",
                None, "move to the next or previous image of the list"),
    CommandSpec("load_prior", "state", "load the prior [study | image]", None, "load the prior study"),
    CommandSpec("clear", "state", "clear [the (screen | session | findings)]", None,
                "forget the conversation and findings (images stay)"),
)

_PREFIX = "[please | okay] [(can | could) you] [tell me]"
_SPHINX_PREFIX = "[please | okay]"
_SUFFIX = "[please]"


@dataclass(frozen=True)
class Command:
    """A parsed command.  ``question`` is what goes to ``Assistant.ask`` (kind 'question')."""

    intent: str
    kind: Kind
    slots: dict[str, str] = field(default_factory=dict)
    question: str | None = None
    text: str = ""
    added_phrasing: bool = False
    """Said only through a natural phrasing added after the first rules: a sentence of ``CommandSpec.more``, or a
    command after "can you" / "could you" / "tell me" (the command spotter was trained on the first rules)."""

    @property
    def needs_confirmation(self) -> bool:
        return self.kind == "state"


# ---- rule AST -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Word:
    w: str


@dataclass(frozen=True)
class _Slot:
    name: str


@dataclass(frozen=True)
class _Seq:
    items: tuple["_Node", ...]


@dataclass(frozen=True)
class _Alt:
    options: tuple["_Node", ...]


@dataclass(frozen=True)
class _Opt:
    node: "_Node"


_Node = Union[_Word, _Slot, _Seq, _Alt, _Opt]
_TOKEN = re.compile(r"<[a-z_]+>|[\[\]()|]|[a-z']+")


def _parse_rule(rule: str) -> _Node:
    toks = _TOKEN.findall(rule)
    if "".join(toks) != re.sub(r"\s+", "", rule):
        raise ValueError(f"bad characters in rule {rule!r}")
    pos = 0

    def alt(end: str | None) -> _Node:
        nonlocal pos
        options = [seq(end)]
        while pos < len(toks) and toks[pos] == "|":
            pos += 1
            options.append(seq(end))
        if end is not None:
            if pos >= len(toks) or toks[pos] != end:
                raise ValueError(f"unbalanced rule {rule!r}")
            pos += 1
        return options[0] if len(options) == 1 else _Alt(tuple(options))

    def seq(end: str | None) -> _Node:
        nonlocal pos
        items: list[_Node] = []
        while pos < len(toks) and toks[pos] not in ("|", ")", "]"):
            t = toks[pos]
            pos += 1
            if t == "(":
                items.append(alt(")"))
            elif t == "[":
                items.append(_Opt(alt("]")))
            elif t.startswith("<"):
                items.append(_Slot(t[1:-1]))
            else:
                items.append(_Word(t))
        return items[0] if len(items) == 1 else _Seq(tuple(items))

    node = alt(None)
    if pos != len(toks):
        raise ValueError(f"unbalanced rule {rule!r}")
    return node


@lru_cache(maxsize=None)
def _compile(specs: tuple[CommandSpec, ...]) -> tuple[tuple[CommandSpec, _Node], ...]:
    return tuple((spec, _Seq((_parse_rule(_PREFIX), _parse_rule(spec.full_rule), _parse_rule(_SUFFIX))))
                 for spec in specs)


@lru_cache(maxsize=None)
def _compile_first(specs: tuple[CommandSpec, ...]) -> dict[str, _Node]:
    """Each command's first rule with the first prefixes only (what pocketsphinx decodes), by intent."""
    return {spec.intent: _Seq((_parse_rule(_SPHINX_PREFIX), _parse_rule(spec.rule), _parse_rule(_SUFFIX)))
            for spec in specs}


def _compiled() -> tuple[tuple[CommandSpec, _Node], ...]:
    return _compile(COMMANDS)


def _slot_rules() -> dict[str, list[tuple[_Node, str]]]:
    return _compile_slots(tuple((name, tuple(entries)) for name, entries in SLOTS.items()))


@lru_cache(maxsize=8)
def _compile_slots(slots: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]) -> dict[str, list[tuple[_Node, str]]]:
    return {name: [(_parse_rule(phrase), value) for phrase, value in entries] for name, entries in slots}


def _match(node: _Node, words: list[str], i: int, slots: dict[str, str]):
    """Yield (next index, slots) for every way ``node`` matches ``words`` from ``i``."""
    if isinstance(node, _Word):
        if i < len(words) and words[i] == node.w:
            yield i + 1, slots
    elif isinstance(node, _Slot):
        for sub, value in _slot_rules()[node.name]:
            for j, s in _match(sub, words, i, slots):
                if node.name in s and s[node.name] != value:
                    continue
                yield j, {**s, node.name: value}
    elif isinstance(node, _Seq):
        def rest(k: int, idx: int, sl: dict[str, str]):
            if k == len(node.items):
                yield idx, sl
                return
            for j, s in _match(node.items[k], words, idx, sl):
                yield from rest(k + 1, j, s)
        yield from rest(0, i, slots)
    elif isinstance(node, _Alt):
        for opt in node.options:
            yield from _match(opt, words, i, slots)
    elif isinstance(node, _Opt):
        yield from _match(node.node, words, i, slots)
        yield i, slots


def parse_command(transcript: str, specs: tuple[CommandSpec, ...] = COMMANDS) -> Command | None:
    """The command the whole transcript says, or None.  Strict: every word must be accounted for.
    ``specs``: the command set (the live video mode adds its own, see :mod:`voice.live_commands`)."""
    text = normalize(transcript)
    words = text.split()
    if not words or len(words) > 16:
        return None
    for spec, node in _compile(specs):
        for end, slots in _match(node, words, 0, {}):
            if end == len(words):
                question = spec.question.format(**slots) if spec.question else None
                first = any(e == len(words) for e, _s in _match(_compile_first(specs)[spec.intent], words, 0, {}))
                return Command(intent=spec.intent, kind=spec.kind, slots=dict(slots), question=question, text=text,
                               added_phrasing=not first)
    return None


def confirmation_prompt(cmd: Command) -> str:
    """The read-back of a state-changing command."""
    if cmd.intent == "switch_image":
        return f"Switch to the {cmd.slots.get('direction', 'next')} image? Say yes or no."
    if cmd.intent == "load_prior":
        return "Load the prior study? Say yes or no."
    if cmd.intent == "clear":
        return "Clear the conversation and findings? Say yes or no."
    return f"{cmd.intent.replace('_', ' ').capitalize()}? Say yes or no."


def vocabulary(wake_word: str = "osler") -> set[str]:
    """Every word the grammar can produce (the recogniser dictionary must hold them all)."""
    rules = " ".join([_PREFIX, _SUFFIX] + [c.full_rule for c in COMMANDS])
    found = set(re.findall(r"[a-z']+", re.sub(r"<[a-z_]+>", " ", rules)))
    for entries in SLOTS.values():
        for phrase, _ in entries:
            found.update(re.findall(r"[a-z']+", phrase))
    found.add(wake_word.lower())
    return found


def jsgf_grammar(wake_word: str = "osler") -> str:
    """JSGF of the whole command set, with an optional leading wake word (for pocketsphinx)."""
    lines = ["#JSGF V1.0;", "grammar osler;",
             f"public <utterance> = [{wake_word.lower()}] {_SPHINX_PREFIX} <command> {_SUFFIX};",
             "<command> = " + " | ".join(f"<c_{c.intent}>" for c in COMMANDS) + ";"]
    # the first phrasings only: pocketsphinx can output nothing but grammar sentences, so a wider grammar is more
    # room for chatter to land on a command, and its measured rates (docs/voice.md) are for these
    lines += [f"<c_{c.intent}> = {c.rule};" for c in COMMANDS]
    lines += [f"<{name}> = " + " | ".join(f"({p})" for p, _ in entries) + ";" for name, entries in SLOTS.items()]
    return "\n".join(lines) + "\n"

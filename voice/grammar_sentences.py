"""The command grammar as sentences: every sentence each command can be said as, with its meaning, through the
strict parser itself (:func:`grammar_sentences`); the meaning strings reports and benchmarks write
(:func:`meaning_str`); and the sentence a meaning is spoken as (:func:`spoken_form`).  Used by the grammar check
(:mod:`voice.asr_grammar`), the command spotter's training and classes, and the benchmarks."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .commands import CommandSpec, SLOTS, _Alt, _Opt, _Seq, _Slot, _Word, _parse_rule, parse_command

__all__ = ["Meaning", "command_meaning", "grammar_sentences", "grammar_meanings", "written", "spoken_form", "meaning_str"]


def _expand(node) -> list[list[str]]:
    if isinstance(node, _Word):
        return [[node.w]]
    if isinstance(node, _Slot):
        return [x for phrase, _value in SLOTS[node.name] for x in _expand(_parse_rule(phrase))]
    if isinstance(node, _Seq):
        out: list[list[str]] = [[]]
        for item in node.items:
            out = [a + b for a in out for b in _expand(item)]
        return out
    if isinstance(node, _Alt):
        return [x for o in node.options for x in _expand(o)]
    if isinstance(node, _Opt):
        return [[]] + _expand(node.node)
    raise TypeError(node)


Meaning = tuple[str, tuple[tuple[str, str], ...]]


def command_meaning(cmd: Any) -> Meaning | None:
    """A parsed command's meaning, (intent, sorted slots); None for no command."""
    return None if cmd is None else (cmd.intent, tuple(sorted(cmd.slots.items())))


@lru_cache(maxsize=16)
def grammar_sentences(specs: tuple[CommandSpec, ...], primary: bool = False) -> tuple[tuple[str, Meaning], ...]:
    """Every sentence of the command set (without the optional prefixes and please) with its meaning
    (intent, sorted slots), through the strict parser itself.  ``primary``: only the sentences of each command's
    ``rule``, not of its further natural phrasings (``CommandSpec.more``)."""
    out: dict[str, Meaning] = {}
    for spec in specs:
        for words in _expand(_parse_rule(spec.rule if primary else spec.full_rule)):
            s = " ".join(words)
            cmd = parse_command(s, specs)
            if cmd is not None and s not in out:
                out[s] = command_meaning(cmd)
    return tuple(out.items())


@lru_cache(maxsize=8)
def grammar_meanings(specs: tuple[CommandSpec, ...]) -> frozenset[str]:
    """The meaning strings (:func:`meaning_str`) a command set can say."""
    return frozenset(meaning_str(m) for _s, m in grammar_sentences(specs))


def written(sentence: str, wake: str | None) -> str:
    """A grammar sentence written as a transcript: capitalised, "?" after a question word, "Wake, " before it."""
    q = sentence.split()[0] in {"how", "is", "are", "what", "who", "where", "which", "can", "do"}
    body = sentence + ("?" if q else ".")
    return f"{wake.capitalize()}, {body}" if wake else body[0].upper() + body[1:]


def spoken_form(meaning: str, specs: tuple[CommandSpec, ...], wake_word: str | None) -> str:
    """The shortest sentence of a meaning string in the commands' first rules, written as a transcript ("Osler,
    freeze.", or "Freeze." without a wake word)."""
    sents = [s for s, m in grammar_sentences(specs, primary=True) if meaning_str(m) == meaning]
    if not sents:
        raise ValueError(f"no sentence of the command set means {meaning!r}")
    return written(min(sents, key=lambda s: (len(s.split()), sents.index(s))), wake_word)


def meaning_str(m: Meaning | None) -> str | None:
    """'count(count_target=polyps)' for ('count', (('count_target', 'polyps'),)): how reports and the
    benchmark write a meaning."""
    if m is None:
        return None
    intent, slots = m
    return intent + ("(" + ", ".join(f"{k}={v}" for k, v in slots) + ")" if slots else "")

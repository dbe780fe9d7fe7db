"""How the second opinions settle an utterance the grammar check (:mod:`voice.asr_grammar`) has judged: the command
spotter (:func:`spot_settle`), the rest-of-utterance check (:func:`tail_settle`), and confirmation on doubt
(:func:`may_propose`, :func:`reply_settle`).  Pure rules on meanings and probabilities, shared by the recogniser, the
live mode and the benchmarks' offline policies."""

from __future__ import annotations

__all__ = ["spot_settle", "tail_settle", "NOT_PROPOSED", "may_propose", "reply_settle"]


def spot_settle(command: str | None, grammar_top: str | None, spot: str, prob: float, known: set[str],
                take: float, veto: float, alone: float = 1.01, veto_added: float | None = None,
                added: bool = False) -> str:
    """The command spotter's second opinion (:mod:`voice.spotter`) on a settled utterance.  ``command``: the
    meaning the grammar check left (None: rejected or no command); ``grammar_top``: the grammar's best meaning;
    ``spot``/``prob``: the spotter's best class and its probability; ``known``: the meanings of the command
    set in use (a spotter class outside it abstains).  Returns

    * ``agreed``: both name ``command``;
    * ``vetoed``: the spotter hears another command, or no command, with at least ``veto``: rejected;
    * ``kept``: the spotter is unsure or abstains: ``command`` stands.  When ``added`` (the command was said in a
      natural phrasing added after the spotter was trained: ``Command.added_phrasing``) and ``veto_added`` is set, a
      "no command" vote vetoes only at ``veto_added`` or more; a vote for another command still at ``veto``;
    * ``spotted``: no command was left, and the spotter names one with at least ``take`` that the grammar also
      ranked best, or with at least ``alone`` whatever the grammar ranked best: taken;
    * ``none``: no command either way.

    The thresholds are tuned on development voices so that no command is executed wrongly there
    (``voice.bench_grammar tune-spotter``)."""
    from .spotter import OTHER

    if spot != OTHER and spot not in known:
        return "kept" if command is not None else "none"
    if command is not None:
        if spot == command:
            return "agreed"
        if spot == OTHER and added and veto_added is not None:
            return "vetoed" if prob >= veto_added else "kept"
        return "vetoed" if prob >= veto else "kept"
    if spot != OTHER and ((spot == grammar_top and prob >= take) or prob >= alone):
        return "spotted"
    return "none"


def tail_settle(rest: float, veto: float) -> str:
    """The rest-of-utterance check (:mod:`voice.tail`) on a command about to be executed: ``vetoed`` when the
    speech after the command is at least ``veto`` nats more likely than no more speech (the command does not
    explain the whole utterance: "how many platelets are in the fridge"), else ``kept``."""
    return "vetoed" if rest >= veto else "kept"


# Meanings never proposed on doubt: a proposal of these would itself be a reply, or is no command at all
NOT_PROPOSED = frozenset({"other", "yes", "no", "cancel", "repeat", "louder"})


def may_propose(meaning: str | None, prob: float, level: float) -> bool:
    """Confirmation on doubt: for an utterance the recogniser rejected, may the spotter's best meaning be proposed
    ("Did you mean: how many polyps? Say yes or no.")?  Only a command (not a reply, not "other") at probability
    ``level`` or more; nothing runs until the surgeon says yes."""
    return meaning is not None and meaning not in NOT_PROPOSED and prob >= level


def reply_settle(p_yes: float, p_no: float, level: float) -> str | None:
    """While a proposal waits for yes or no and the recogniser took no command: "yes" or "no" when the spotter's
    probability of the likelier of the two reaches ``level``, else None (ask again)."""
    if max(p_yes, p_no) < level:
        return None
    return "yes" if p_yes > p_no else "no"

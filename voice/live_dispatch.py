"""What one live utterance does: a handler per command intent.

:func:`dispatch` turns a parsed utterance (or none) about a :class:`~voice.live_video.Snapshot` into a
:class:`Reply`.  Handlers that need the session, the frame history or the freeze state call the engine's
public methods (``hold``, ``release``, ``last_reply``, ``frame_before``, ``ask_frame``); the engine keeps the
timing, speech and record keeping (:meth:`~voice.live_video.LiveEngine.answer`).

The rule that an unrecognised utterance is never executed lives here: a spoken utterance that is no whole
command is rejected ("Sorry, say that again.") and nothing is done; a typed one goes to the planner as a free
question.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .answers import for_speech, spoken_number
from .commands import Command

__all__ = ["SORRY", "Reply", "dispatch"]

SORRY = "Sorry, say that again."


@dataclass
class Reply:
    """``say``: the short spoken text; ``full``: the written answer when it differs; ``kind``: answer, local,
    rejected, freeze or unfreeze; ``record``: the planner's result (``Assistant.ask`` JSON) when one ran."""

    say: str
    kind: str = "answer"
    full: str | None = None
    record: dict[str, Any] = field(default_factory=dict)


def _polyps(n: int) -> str:
    return "no polyp" if n == 0 else f"{spoken_number(n)} {'polyp' if n == 1 else 'polyps'}"


def _asked(engine: Any, snap: Any, question: str, live: dict[str, Any], prior: Any = None) -> Reply:
    record, say, full = engine.ask_frame(snap, question, live, prior=prior)
    return Reply(_screen_count(snap, record, question, live, engine.opt.min_hits) or say, "answer", full, record)


def _screen_count(snap: Any, record: dict[str, Any], question: str, live: dict[str, Any], min_hits: int) -> str | None:
    """A polyp count or detection whose frame count differs from the smoothed one (the boxes on screen): both counts,
    each with where it comes from, and no bare "Yes."/"No." in front (the written answer, this frame's, may say the
    other).  None when they agree or the question is no polyp count."""
    if live.get("intent") not in ("count", "detect_polyp") or "polyp" not in question.lower():
        return None
    k, value = len(snap.tracks), record.get("value")
    live["smoothed_agrees"] = value is not None and int(value) == k
    if value is None or live["smoothed_agrees"]:
        return None
    seen = (f"{_polyps(k).capitalize()} on screen, seen on at least {min_hits} detector runs" if k
            else "No polyp confirmed on screen yet")
    live["spoken_count_from"] = "smoothed"
    return f"{seen}; on this frame alone the detector counts {_polyps(int(value))}."


def _freeze(engine: Any, snap: Any, cmd: Command, live: dict[str, Any]) -> Reply:
    engine.hold(snap)
    return Reply(f"Frozen at {snap.frame.time_s:.0f} seconds.", "freeze")


def _unfreeze(engine: Any, snap: Any, cmd: Command, live: dict[str, Any]) -> Reply:
    engine.release(snap)
    return Reply("Live.", "unfreeze")


def _again(engine: Any, snap: Any, cmd: Command, live: dict[str, Any]) -> Reply:
    if cmd.intent == "louder" and engine.voice is not None:
        engine.voice.volume = min(4.0, engine.voice.volume * 1.5)
    said = for_speech(engine.last_reply(full=cmd.intent == "read_back"))
    if not said:
        return Reply("Nothing to repeat.", "local")
    about = engine.last_frame()
    if about is not None and about.index != snap.frame.index:  # an answer about an earlier frame says so
        live["repeats_frame_index"], live["repeats_frame_time"] = about.index, round(about.time_s, 3)
        said = f"From {about.time_s:.0f} seconds: {said}"
    return Reply(said, "local")


def _local(say: str) -> Callable[..., Reply]:
    return lambda engine, snap, cmd, live: Reply(say, "local")


def _compare_ago(engine: Any, snap: Any, cmd: Command, live: dict[str, Any]) -> Reply:
    seconds = float(cmd.slots.get("ago", "10"))
    prior = engine.frame_before(snap.frame.time_s - seconds)
    if prior is None or prior.index >= snap.frame.index:
        return Reply(f"There is no frame from {seconds:.0f} seconds ago.", "local")
    live["prior_frame_index"], live["prior_frame_time"] = prior.index, round(prior.time_s, 3)
    return _asked(engine, snap, "Compare with the prior.", live, prior=prior)


def _outline(engine: Any, snap: Any, cmd: Command, live: dict[str, Any]) -> Reply:
    """The segmenter prompted at the centre of the strongest smoothed detection (without one, the detector of
    that frame prompts it)."""
    measure = cmd.intent == "measure"
    if snap.tracks:
        best = max(snap.tracks, key=lambda t: t.score)
        cx, cy = best.center
        question = f"{'Outline and measure' if measure else 'Outline'} the region at ({cx:.0f}, {cy:.0f})"
        live["prompt"] = {"track": best.id, "point_xy": [round(cx, 1), round(cy, 1)],
                          "box_xyxy": [round(float(v), 1) for v in best.box]}
    else:
        question = "Outline and measure the polyp." if measure else "Segment the polyp."
        live["prompt"] = None
        live["note"] = "no smoothed detection on screen: the detector of this frame prompts the segmenter"
    return _asked(engine, snap, question, live)


HANDLERS: dict[str, Callable[[Any, Any, Command, dict[str, Any]], Reply]] = {
    "freeze": _freeze,
    "unfreeze": _unfreeze,
    "repeat": _again, "read_back": _again, "louder": _again,
    "cancel": _local("Cancelled."), "no": _local("Cancelled."),
    "compare": _local("Say: compare with ten seconds ago."), "changes": _local("Say: compare with ten seconds ago."),
    "yes": _local("There is nothing to confirm."),
    "switch_image": _local("Not available on live video."), "load_prior": _local("Not available on live video."),
    "clear": _local("Not available on live video."),
    "compare_ago": _compare_ago,
    "outline": _outline, "measure": _outline,
}


def dispatch(engine: Any, snap: Any, cmd: Command | None, live: dict[str, Any], *, text: str | None, spoken: bool,
             doubt: Any = None) -> Reply:
    """What the utterance ``text`` (parsed as ``cmd``) does on ``snap``.  ``doubt``: the proposal waiting for
    yes or no, if any ("yes" to it is handled by the engine before this).  Notes go into ``live``."""
    if cmd is None and spoken and doubt is not None:
        live["note"] = "not a command while a proposal waits: still waiting for yes or no"
        return Reply("Say yes or no.", "rejected")
    if cmd is None and (spoken or not text):
        live["note"] = "not a complete command: rejected, nothing done"
        return Reply(SORRY, "rejected")
    if doubt is not None and cmd is not None and cmd.intent in ("no", "cancel"):
        live["note"] = f"proposal {doubt.note['proposed']!r} declined: nothing done"
        return Reply("Cancelled.", "local")
    if cmd is None:
        return _asked(engine, snap, text or "", live)
    handler = HANDLERS.get(cmd.intent)
    if handler is not None:
        return handler(engine, snap, cmd, live)
    if cmd.question:
        return _asked(engine, snap, cmd.question, live)
    return Reply(SORRY, "rejected")

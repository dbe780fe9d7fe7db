"""The modality gate at the tool boundary: what kind of image a study is (``image_info``), and the refusal of a
tool on an image it was not made for (:func:`ensure_kind`: the wrong or an untrusted kind; :func:`ensure_colour`:
no colour for experts that read it).  Every planner's calls pass here.
"""

from __future__ import annotations

from tools.classification import ImageInfoRequest, ImageInfoResult
from tools.errors import WrongImageKindError
from tools.kinds import CLASSIFY_TASK_KINDS, IMAGE_KINDS, KIND_NAMES
from tools.targets import TARGET_KINDS, targets

from agent.session import Session

__all__ = ["diagnosis_tools", "ensure_colour", "ensure_kind", "image_info"]


def diagnosis_tools(kind: str) -> list[str]:
    """The tools that diagnose on ``kind`` (withheld when the gate does not trust that kind)."""
    tools = [f"classify {t}" for t, kinds in CLASSIFY_TASK_KINDS.items() if kind in kinds and kinds != IMAGE_KINDS]
    found = [t for t, kinds in TARGET_KINDS.items() if kind in kinds and kinds != IMAGE_KINDS]
    tools += [f"detect/count/segment/measure {t}" for t in found]
    return tools + (["compare_with_prior"] if found else [])


def image_info(session: Session, req: ImageInfoRequest, eid: str) -> ImageInfoResult:
    cached = session.image_kinds.get(req.image)
    if cached is not None:
        return cached.model_copy(update={"evidence_id": eid})
    img = session.image(req.image)
    out = session.pool.classifier("image_kind").predict(img)
    result = ImageInfoResult(
        evidence_id=eid, image=req.image, meta=img.meta, kind=out.label, kind_confidence=out.probabilities[out.label],
        kind_source=out.source or "pixels", kind_probabilities=out.probabilities, provenance=out.provenance,
        kind_trusted=out.trusted, kind_doubt=out.doubt, withheld_tools=[] if out.trusted else diagnosis_tools(out.label),
    )
    session.image_kinds[req.image] = result
    return result


def _vouched(session: Session, role: str, info: ImageInfoResult) -> bool:
    """A prior study that looks like the same kind as a trusted current study is accepted: the pair is two
    studies of one thing, and the current one vouches for the kind."""
    current = session.image_kinds.get("current")
    return role == "prior" and current is not None and current.kind_trusted and current.kind == info.kind


def ensure_kind(session: Session, role: str, accepted: tuple[str, ...], what: str) -> ImageInfoResult:
    """The modality gate at the tool boundary: refuse to run a tool on the wrong kind of image, or on an
    image whose kind the gate does not trust (unless :func:`_vouched`)."""
    info = session.image_kinds.get(role) or image_info(session, ImageInfoRequest(image=role), "gate")
    if info.kind not in accepted:
        want = " or ".join(KIND_NAMES[k] for k in accepted)
        raise WrongImageKindError(
            f"{what} needs {want}, but the {role} image looks like {KIND_NAMES[info.kind]} "
            f"(confidence {info.kind_confidence:.2f}); no result was produced",
            kind=info.kind, accepted=accepted,
        )
    if not info.kind_trusted and set(accepted) != set(IMAGE_KINDS) and not _vouched(session, role, info):
        raise WrongImageKindError(
            f"{what} was withheld: the {role} image looks most like {KIND_NAMES[info.kind]} (confidence "
            f"{info.kind_confidence:.2f}), but the modality gate does not trust that: {info.kind_doubt}; "
            f"no result was produced", kind=info.kind, accepted=accepted,
        )
    return info


def ensure_colour(session: Session, role: str, target: str, what: str) -> None:
    """Refuse a target whose experts read colour (TargetSpec.colour) on an image without any: a grey smear gave
    'I count 0 white blood cells' (the stain colours are what the detector and the cross-check see)."""
    spec = targets().get(target)
    if spec is not None and spec.colour and session.image(role).colourless:
        raise WrongImageKindError(
            f"{what} needs a colour image: the {role} image has no colour, and the {target.replace('_', ' ')} tools "
            f"were trained on colour images; no result was produced",
            kind=session.image_kinds[role].kind if role in session.image_kinds else "unknown", accepted=spec.kinds)

"""Import multiple-choice suites (ChestAgentBench style) as scenario cases.

    .venv/bin/python -m eval_scenarios.chestagentbench INPUT --out suite.yaml [--image-root DIR] [--limit N]

INPUT is one of:

* a JSON file (a list of items, or ``{"questions": [...]}``) or a JSONL file, one item per line:
  ``{"id", "question", "options", "answer", "images", "categories"}`` where ``options`` is a dict
  letter -> text or a list (lettered A, B, ...; optional when the question text lists the options as
  ``A) ...`` lines), ``answer`` is the letter (or a one-element list), ``images`` the image paths
  (first = current study, second = prior);
* a ChestAgentBench folder: ``questions/<case>/<case>_*.json`` (``question`` with the options in its
  text, ``answer``, ``figures``, ``metadata.categories``) and ``figures/<case>/<figure>.*``.

Each item becomes a ``choice`` case: the question with its options and "Answer with the option
letter.", ``expect.answer = {kind: choice, value: letter, choices: {...}}``, tags ``chestagentbench``
plus the item's categories.  Images are resolved against ``--image-root`` (default: the input's
folder) and written relative to the output file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from .schema import Expect, ExpectedAnswer, Images, Scenario

__all__ = ["parse_options", "item_to_scenario", "read_items", "convert", "main"]

_OPTION_LINE = re.compile(r"^\s*\(?([A-Ha-h])[).:]\s+(.+?)\s*$", re.MULTILINE)
INSTRUCTION = "Answer with the option letter."


def parse_options(question: str) -> tuple[str, dict[str, str]]:
    """Split "stem\\nA) x\\nB) y" into the stem and {letter: text}.  No options: (question, {})."""
    matches = list(_OPTION_LINE.finditer(question))
    if len(matches) < 2:
        return question.strip(), {}
    stem = question[: matches[0].start()].strip()
    return stem, {m.group(1).upper(): m.group(2) for m in matches}


def _options(item: dict[str, Any], question: str) -> tuple[str, dict[str, str]]:
    opts = item.get("options") or item.get("choices")
    if isinstance(opts, dict):
        return question.strip(), {str(k).strip().upper(): str(v) for k, v in opts.items()}
    if isinstance(opts, list) and opts:
        return question.strip(), {chr(ord("A") + i): str(v) for i, v in enumerate(opts)}
    return parse_options(question)


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:\-]+", "-", s).strip("-") or "item"


def item_to_scenario(item: dict[str, Any], images: list[str], index: int) -> Scenario:
    """One multiple-choice item -> one ``choice`` case (image paths already resolved)."""
    if not images:
        raise ValueError(f"item {item.get('id', index)} has no image")
    stem, options = _options(item, str(item["question"]))
    answer = item.get("answer")
    if isinstance(answer, list):
        answer = answer[0] if answer else None
    letter = str(answer or "").strip().strip("().").upper()[:1]
    if not letter or (options and letter not in options):
        raise ValueError(f"item {item.get('id', index)}: answer {answer!r} is not one of the options {sorted(options)}")
    text = stem + ("\n" + "\n".join(f"{k}) {v}" for k, v in sorted(options.items())) if options else "")
    cats = item.get("categories") or (item.get("metadata") or {}).get("categories") or []
    if isinstance(cats, str):
        cats = [c.strip() for c in cats.split(",") if c.strip()]
    return Scenario(
        id=_slug(str(item.get("id") or item.get("question_id") or f"mc-{index:05d}")),
        images=Images(current=images[0], prior=images[1] if len(images) > 1 else None),
        question=f"{text}\n{INSTRUCTION}",
        expect=Expect(answer=ExpectedAnswer(kind="choice", value=letter, choices=options or None)),
        tags=["chestagentbench"] + [_slug(str(c)).lower() for c in cats], source=str(item.get("source") or "imported"),
    )


def _cab_folder(root: Path) -> Iterable[tuple[dict[str, Any], list[Path]]]:
    for qf in sorted((root / "questions").glob("*/*.json")):
        item = json.loads(qf.read_text(encoding="utf-8"))
        case = qf.parent.name
        figs = item.get("figures") or []
        if isinstance(figs, str):
            try:
                figs = json.loads(figs)
            except json.JSONDecodeError:
                figs = [figs]
        paths = []
        for fig in figs if isinstance(figs, list) else [figs]:
            hits = sorted((root / "figures" / case).glob(f"{Path(str(fig)).stem}.*"))
            if hits:
                paths.append(hits[0])
        item.setdefault("id", qf.stem)
        yield item, paths


def read_items(path: Path, image_root: Path | None = None) -> list[tuple[dict[str, Any], list[Path]]]:
    """(item, absolute image paths) from a JSON / JSONL file or a ChestAgentBench folder."""
    if path.is_dir():
        return list(_cab_folder(path))
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        data = json.loads(text)
        items = data.get("questions", []) if isinstance(data, dict) else data
    root = image_root or path.parent
    out = []
    for item in items:
        imgs = item.get("images") or item.get("figures") or ([item["image"]] if item.get("image") else [])
        out.append((item, [Path(p) if os.path.isabs(p) else root / p for p in map(str, imgs)]))
    return out


def convert(path: Path, out: Path, image_root: Path | None = None, limit: int | None = None) -> list[Scenario]:
    """Convert and write ``out`` (YAML); returns the cases.  Items without an image or answer are skipped."""
    cases = []
    for i, (item, paths) in enumerate(read_items(path, image_root)[:limit]):
        rel = [os.path.relpath(p.resolve(), out.resolve().parent) for p in paths]
        try:
            cases.append(item_to_scenario(item, rel, i))
        except (KeyError, ValueError):
            continue
    out.write_text(yaml.safe_dump([c.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
                                   for c in cases], sort_keys=False, width=120, allow_unicode=True), encoding="utf-8")
    return cases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval_scenarios.chestagentbench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--image-root", type=Path)
    ap.add_argument("--limit", type=int)
    args = ap.parse_args(argv)
    n = len(convert(args.input, args.out, args.image_root, args.limit))
    print(f"wrote {n} cases to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

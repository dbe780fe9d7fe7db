"""``osler report ANSWERS --out DIR [--image SOURCE.dcm] [--deidentify] [--secondary-capture]``: the session
report (Markdown + PDF, a DRAFT for review) and, given the DICOM source, the SEG and SR, from saved answers:
``osler ask --json`` output, the web app's ``answers.json``, or a folder holding an ``answers.json``
(an ``osler ask --out`` folder).  Exit code 2 with one line on bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main", "add_export_args", "print_export"]


def add_export_args(p: argparse.ArgumentParser) -> None:
    """The export switches shared by ``osler ask --out`` and ``osler report``."""
    p.add_argument("--deidentify", action="store_true",
                   help="with --out: remove patient identifiers (DICOM PS3.15 basic profile; no file names or dates)")
    p.add_argument("--secondary-capture", dest="secondary_capture", action="store_true",
                   help="with --out and DICOM input: also write the latest overlay as a DICOM Secondary Capture")


def print_export(result, stream=None) -> None:
    """One line per file written, then the notes (what was not written and why)."""
    stream = stream or sys.stdout
    print(f"Written to {result.out_dir}:", file=stream)
    for kind, paths in result.files.items():
        for p in paths:
            print(f"  {kind:12s} {p.name}", file=stream)
    for note in result.notes:
        print(f"  note: {note}", file=stream)


def main(argv: list[str]) -> int:
    from agent.export.files import export_answers
    from agent.export.results import load_answers
    from tools.errors import InvalidInputError

    parser = argparse.ArgumentParser(prog="osler report", description="Write the report of saved answers (a draft "
                                     "for review, not a diagnosis) as Markdown and PDF; SEG and SR for a DICOM source.")
    parser.add_argument("answers", type=Path, help="answers JSON (osler ask --json, the web app's answers.json) or "
                                                   "a folder with answers.json")
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--image", type=Path, help="the DICOM current study the answers are about (for SEG and SR)")
    add_export_args(parser)
    args = parser.parse_args(argv)
    path = args.answers / "answers.json" if args.answers.is_dir() else args.answers
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such answers file")
    try:
        answers = load_answers(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # JSON or contract errors
        raise InvalidInputError(f"{path.name}: not Osler answers ({str(exc).splitlines()[0]})") from exc
    spacing = bool(answers and (answers[-1].images.get("current") or {}).get("pixel_spacing_mm"))
    result = export_answers(answers, args.out, deidentify=args.deidentify, dicom_source=args.image,
                            spacing_known=spacing, secondary_capture=args.secondary_capture)
    print_export(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

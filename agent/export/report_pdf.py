"""The session report as a PDF (fpdf2, core fonts: text is reduced to Latin-1).  Same content as the
Markdown: the DRAFT banner at the top of every page, each sentence with its evidence ids, each figure an
image that links to its full-size overlay PNG (a relative link: keep the files side by side).
"""

from __future__ import annotations

from pathlib import Path

from agent.export.report import BANNER, DISCLAIMER, Sentence, SessionReport

__all__ = ["write_pdf", "latin1"]

_REPLACE = {"\u2014": "-", "\u2013": "-", "\u2265": ">=", "\u2264": "<=", "\u2026": "...", "\u2018": "'", "\u2019": "'",
            "\u201c": '"', "\u201d": '"', "\u2192": "->", "\u2248": "~", "\u00a0": " "}
FIGURE_MAX_SIDE = 1200  # pixels of the embedded copy; the link opens the full-size PNG


def latin1(text: str) -> str:
    """Text the PDF core fonts can draw: common typography mapped, anything else replaced by '?'."""
    for k, v in _REPLACE.items():
        text = text.replace(k, v)
    return text.encode("latin-1", "replace").decode("latin-1")


def _cite(s: Sentence) -> str:
    return latin1(f"{s.text} [{', '.join(s.evidence)}]" if s.evidence else s.text)


def write_pdf(rep: SessionReport, path: str | Path) -> Path:
    """Write the report to ``path``; figures are read from their overlay paths (missing ones are named, not drawn)."""
    from fpdf import FPDF
    from PIL import Image

    class _Doc(FPDF):
        def header(self) -> None:
            self.set_fill_color(180, 20, 20)
            self.set_text_color(255, 255, 255)
            self.set_font("Helvetica", "B", 13)
            self.cell(0, 9, latin1(BANNER), align="C", fill=True, new_x="LMARGIN", new_y="NEXT")
            self.set_text_color(0, 0, 0)
            self.ln(2)

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 6, latin1(f"Osler session report - {BANNER} - page {self.page_no()}"), align="C")

    pdf = _Doc(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title(latin1(f"{rep.title} ({BANNER})"))
    pdf.set_creator("Osler")
    pdf.add_page()
    w = pdf.epw

    def heading(text: str, size: int = 12) -> None:
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", size)
        pdf.multi_cell(w, 7, latin1(text), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)

    def para(text: str, style: str = "") -> None:
        pdf.set_font("Helvetica", style, 10)
        pdf.multi_cell(w, 5, text, new_x="LMARGIN", new_y="NEXT")

    heading(rep.title, 16)
    para(latin1(DISCLAIMER), "I")
    para(latin1(f"Created {rep.created}."))
    if rep.deidentified:
        para("Patient identifiers were removed (PS3.15 basic profile) from every file written with this report.")
    heading("Studies")
    for line in rep.study:
        para(latin1(f"- {line}"))
    heading("Questions and answers")
    for q, sents in rep.questions:
        para(latin1(f"Q: {q}"), "B")
        for s in sents:
            para(f"- {_cite(s)}")
    for name, sents in rep.sections.items():
        heading(name)
        for s in sents or [Sentence("None reported by any tool.", ())]:
            para(f"- {_cite(s)}")
    if rep.removed:
        para(f"Grounding check: {rep.removed} statement(s) no cited tool result backs were left out.", "I")
    heading("Models and versions")
    pdf.set_font("Helvetica", "", 8)
    with pdf.table(col_widths=(24, 12, 34, 20, 10, 14), text_align="LEFT") as table:
        for row in [["expert", "backend", "model", "weights sha256", "device", "evidence"], *rep.models]:
            cells = table.row()
            for value in row:
                cells.cell(latin1(str(value)))
    heading("Figures")
    for f in rep.figures:
        p = Path(f.path)
        if not p.exists():
            para(latin1(f"Figure {f.number}: {f.caption} [{f.evidence}] - overlay file {p.name} is missing."))
            continue
        with Image.open(p) as im:
            img = im.convert("RGB")
            img.thumbnail((FIGURE_MAX_SIDE, FIGURE_MAX_SIDE))
        height = min(150.0, w * img.height / img.width)
        width = height * img.width / img.height
        if pdf.get_y() + height + 12 > pdf.page_break_trigger:
            pdf.add_page()
        pdf.image(img, x=pdf.l_margin + (w - width) / 2, w=width, h=height, link=p.name)
        pdf.set_font("Helvetica", "I", 9)
        pdf.multi_cell(w, 5, latin1(f"Figure {f.number}: {f.caption} [{f.evidence}]; full-size overlay: {p.name}"),
                       new_x="LMARGIN", new_y="NEXT", link=p.name)
    if not rep.figures:
        para("No overlay was produced.")
    heading("Review and signature")
    para("Reviewed by: ______________________________   Date: ______________")
    pdf.ln(4)
    para("Signature: ______________________________   Findings accepted / amended (strike one)")
    out = Path(path)
    pdf.output(str(out))
    return out

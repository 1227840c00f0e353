"""Pages: the text of each PDF page; pages without a text layer (scans) are OCR'd."""

from __future__ import annotations

from mediasift.extraction.layers.rows import Row
from mediasift.extraction.media.pdf import Page

MIN_TEXT_CHARS = 16


def page_row(page: Page, ocr) -> Row:
    if len(page.text) >= MIN_TEXT_CHARS:
        return Row("pages", "pdf", "page", page.text, page=page.number, extra={"ocr": False})
    lines = ocr.read(page.image)
    return Row("pages", "pdf", "page", "\n".join(line.text for line in lines), page=page.number,
               extra={"ocr": True, "ocr_lines": len(lines)})

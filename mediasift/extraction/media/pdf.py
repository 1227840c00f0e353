"""PDF pages with pypdfium2: text layer and a rendered image, one page at a time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image

from mediasift.errors import MediaError


@dataclass
class Page:
    number: int
    text: str
    image: Image.Image


def iter_pages(path: Path, render_scale: float = 2.0) -> Iterator[Page]:
    """Pages numbered from 1. Each page is rendered and closed before the next is opened."""
    try:
        document = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as error:
        raise MediaError(f"cannot open PDF: {error}") from error
    try:
        for index in range(len(document)):
            page = document[index]
            try:
                textpage = page.get_textpage()
                text = textpage.get_text_bounded()
                textpage.close()
                image = page.render(scale=render_scale).to_pil().convert("RGB")
            except pdfium.PdfiumError as error:
                raise MediaError(f"cannot read PDF page {index + 1}: {error}") from error
            finally:
                page.close()
            yield Page(index + 1, text.replace("\r\n", "\n").strip(), image)
    finally:
        document.close()

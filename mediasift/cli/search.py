"""`mediasift search`: hybrid search over every layer, hits printed as places in objects."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Column, Table

from mediasift.cli.app import (
    JsonOption,
    app,
    console,
    fail,
    load_settings,
)
from mediasift.extraction.layers.rows import LAYERS
from mediasift.extraction.models import models_for
from mediasift.query.search import Filters, Hit, Searcher
from mediasift.store.lance import LanceIndex


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in words.")],
    layer: Annotated[list[str] | None, typer.Option("--layer", "-l", help=f"Only these layers ({', '.join(LAYERS)}); "
                                                    "visual rows are found by their tags and on-screen text.")] = None,
    modality: Annotated[str | None, typer.Option(help="video, audio, image or pdf.")] = None,
    prefix: Annotated[str | None, typer.Option(help="Only keys starting with this.")] = None,
    k: Annotated[int, typer.Option("-k", help="Number of hits.")] = 10,
    group: Annotated[bool, typer.Option("--group", help="Group hits by object.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Hybrid search (vector + full text) over every layer; each hit is a timestamp or a page."""
    settings = load_settings()
    searcher = Searcher(LanceIndex(settings.lance_location), models_for(settings))
    try:
        filters = Filters(tuple(layer) if layer else LAYERS, modality, prefix)
        hits = searcher.search(query, k, filters)
    except ValueError as error:
        fail(str(error))
    if as_json:
        payload = [h.to_json() for h in hits]
        if group:
            payload = [{**g.__dict__, "hits": [h.to_json() for h in g.hits]}
                       for g in searcher.search_grouped(query, k, filters)]
        console.print_json(json.dumps(payload))
        return
    print_hits(query, hits)


def print_hits(query: str, hits: list[Hit]) -> None:
    table = Table("score", Column("object", overflow="fold"), Column("where", no_wrap=True), "layer",
                  Column("text", ratio=1), title=f"search: {query}", title_justify="left")
    for hit in hits:
        table.add_row(f"{hit.score:.4f}", f"s3://{hit.bucket}/{hit.key}", _where(hit),
                      hit.layer, hit.text[:90].replace("\n", " "))
    console.print(table if hits else f"no hits for {query!r}")


def _where(hit: Hit) -> str:
    if hit.page is not None:
        return f"page {hit.page}"
    if hit.t_start is not None:
        return f"{hit.t_start:.1f}-{hit.t_end:.1f} s"
    return "-"

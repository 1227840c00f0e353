"""`mediasift search`: hybrid search over every layer, hits printed as places in objects.

With the embedded stack up under MEDIASIFT_HOME, the query goes to its receiver's /search, whose models
are already loaded (seconds saved on every query); otherwise this process loads them. Either way the index
searched is the one `mediasift index use` chose (the live one unless a namespace was picked).
"""

from __future__ import annotations

import json
import logging
from typing import Annotated

import httpx
import typer
from rich.table import Column, Table

from mediasift.cli.app import (
    JsonOption,
    app,
    console,
    fail,
    load_settings,
)
from mediasift.config import Settings
from mediasift.extraction.layers.rows import LAYERS
from mediasift.extraction.models import models_for
from mediasift.query.active_index import IndexChoiceError, active_index
from mediasift.query.search import Filters, Hit, Searcher
from mediasift.snapshots import SnapshotError, Snapshots
from mediasift.snapshots.namespace import LIVE
from mediasift.store.lance import LanceIndex

log = logging.getLogger(__name__)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in words.")],
    layer: Annotated[list[str] | None, typer.Option("--layer", "-l", help=f"Only these layers ({', '.join(LAYERS)}); "
                                                    "visual rows are found by their tags and on-screen text, "
                                                    "and by CLIP when configured.")] = None,
    modality: Annotated[str | None, typer.Option(help="video, audio, image or pdf.")] = None,
    prefix: Annotated[str | None, typer.Option(help="Only keys starting with this.")] = None,
    k: Annotated[int, typer.Option("-k", help="Number of hits.")] = 10,
    group: Annotated[bool, typer.Option("--group", help="Group hits by object.")] = False,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Search the index as snapshot NAME pinned it "
                                              "(`mediasift snapshot list`).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Hybrid search (vector + full text) over every layer; each hit is a timestamp or a page. Reads the index
    `mediasift index use` chose (`mediasift index show`), the live one by default."""
    settings = load_settings(wait_for_stack=0)
    unknown = set(layer or ()) - set(LAYERS)
    if unknown:
        fail(f"layer: unknown {sorted(unknown)}; layers are {', '.join(LAYERS)}")
    filters = Filters(tuple(layer) if layer else LAYERS, modality, prefix)
    answer = None if as_of else warm_search(settings.stack_info().get("receiver_url"), query, k, filters, group)
    if answer is None:
        try:
            answer = local_search(settings, query, k, filters, group, snapshot_index(settings, as_of))
        except (ValueError, SnapshotError, IndexChoiceError) as error:
            fail(str(error))
    if as_json:
        console.print_json(json.dumps(answer["objects"] if group else answer["hits"]))
        return
    hits = [Hit(**h) for g in answer["objects"] for h in g["hits"]] if group else [Hit(**h) for h in answer["hits"]]
    index = answer.get("index")
    print_hits(query + (f"  (namespace {index})" if index not in (None, LIVE) else ""), hits)


def warm_search(receiver_url: str | None, query: str, k: int, filters: Filters, group: bool) -> dict | None:
    """The stack's /search answer, or None when no stack is up to ask."""
    if not receiver_url:
        return None
    params = {"q": query, "k": k, "layer": list(filters.layers), "modality": filters.modality,
              "prefix": filters.prefix, "group": group}
    try:
        response = httpx.get(f"{receiver_url}/search", params={n: v for n, v in params.items() if v is not None},
                             timeout=300)
    except httpx.TransportError as error:
        log.info("warm_search_unavailable url=%s error=%s", receiver_url, error)
        return None
    if response.status_code != 200:
        fail(f"search at {receiver_url}: {response.status_code} {response.text[:500]}")
    return response.json()


def snapshot_index(settings: Settings, as_of: str | None) -> LanceIndex | None:
    """The index as snapshot `as_of` pinned it; None for the current one. The stack's receiver only serves
    the current index, so a search as of a snapshot is always answered here."""
    return Snapshots(settings).index(as_of) if as_of else None


def local_search(settings: Settings, query: str, k: int, filters: Filters, group: bool,
                 index: LanceIndex | None = None) -> dict:
    """The answer /search gives, from this process: over `index` (a snapshot's pinned one) when given, else
    over the active index, whose name comes back under "index"."""
    name = None
    if index is None:
        active = active_index(settings)
        index, name = LanceIndex(active.lance_uri), active.name
    searcher = Searcher(index, models_for(settings))
    if group:
        return {"index": name, "objects": [{**g.__dict__, "hits": [h.to_json() for h in g.hits]}
                                           for g in searcher.search_grouped(query, k, filters)]}
    return {"index": name, "hits": [h.to_json() for h in searcher.search(query, k, filters)]}


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

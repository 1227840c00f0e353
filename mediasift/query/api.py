"""Read-side HTTP endpoints: search and object lineage. Models load on the first search, not at start.

/search reads the index `mediasift index use` chose, looked up on every query, so a cut-over to a namespace
and its rollback reach a running receiver without a restart."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from mediasift.config import Settings
from mediasift.extraction.layers.rows import LAYERS
from mediasift.extraction.models import models_for
from mediasift.inbox import Inbox
from mediasift.query.active_index import ActiveIndex, IndexChoiceError, active_index
from mediasift.query.lineage import version_json
from mediasift.query.search import Filters, Searcher
from mediasift.store.lance import LanceIndex


class AnyKeyConvertor(Convertor[str]):
    """An S3 key as the last part of a path, newlines included (legal in S3; Starlette's `path` stops at them)."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("s3key", AnyKeyConvertor())


class _Lazy:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._searcher: Searcher | None = None

    @cached_property
    def models(self):
        return models_for(self.settings)

    def searcher(self) -> tuple[ActiveIndex, Searcher]:
        """A searcher over the active index; a new one when `index use` moved it, keeping the loaded models."""
        active = active_index(self.settings)
        searcher = self._searcher
        if searcher is None or searcher.index.uri != active.lance_uri:
            searcher = self._searcher = Searcher(LanceIndex(active.lance_uri), self.models)
        return active, searcher


def query_router(settings: Settings, inbox: Inbox) -> APIRouter:
    router = APIRouter()
    lazy = _Lazy(settings)

    @router.get("/search", summary="Hybrid search over every layer; hits carry lineage and t_start/t_end or page",
                description="Searches the index `mediasift index use` chose; its name comes back as `index`.",
                responses={400: {"description": "An unknown layer; the detail names the field"},
                           503: {"description": "The index chosen for search is gone; the detail says what to run"}})
    async def search(
        q: Annotated[str, Query(min_length=1, description="the query")],
        k: Annotated[int, Query(ge=1, le=200)] = 10,
        layer: Annotated[list[str] | None, Query(description=f"any of {', '.join(LAYERS)}")] = None,
        modality: str | None = None,
        prefix: str | None = None,
        group: bool = False,
    ) -> dict:
        unknown = set(layer or ()) - set(LAYERS)
        if unknown:
            raise HTTPException(400, f"layer: unknown {sorted(unknown)}; layers are {', '.join(LAYERS)}")
        filters = Filters(tuple(layer) if layer else LAYERS, modality, prefix)
        try:
            active, searcher = await run_in_threadpool(lazy.searcher)
        except IndexChoiceError as error:
            raise HTTPException(503, str(error)) from error
        if group:
            groups = await run_in_threadpool(searcher.search_grouped, q, k, filters)
            return {"query": q, "index": active.name,
                    "objects": [{**g.__dict__, "hits": [h.to_json() for h in g.hits]} for g in groups]}
        hits = await run_in_threadpool(searcher.search, q, k, filters)
        return {"query": q, "index": active.name, "hits": [h.to_json() for h in hits]}

    @router.get("/objects/{bucket}/{key:s3key}", summary="Every known version of one object, with lineage",
                responses={404: {"description": "No version of this object is known"}})
    async def object_versions(bucket: str, key: str) -> dict:
        versions = await run_in_threadpool(inbox.versions_of, bucket, key)
        if not versions:
            raise HTTPException(404, f"no version of s3://{bucket}/{key} is known")
        return {"bucket": bucket, "key": key, "versions": [version_json(v) for v in versions]}

    return router

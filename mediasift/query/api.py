"""Read-side HTTP endpoints: search and object lineage. Models load on the first search, not at start."""

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

    @cached_property
    def searcher(self) -> Searcher:
        return Searcher(LanceIndex(self.settings.lance_location), models_for(self.settings))


def query_router(settings: Settings, inbox: Inbox) -> APIRouter:
    router = APIRouter()
    lazy = _Lazy(settings)

    @router.get("/search", summary="Hybrid search over every layer; hits carry lineage and t_start/t_end or page",
                responses={400: {"description": "An unknown layer; the detail names the field"}})
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
        if group:
            groups = await run_in_threadpool(lazy.searcher.search_grouped, q, k, filters)
            return {"query": q, "objects": [{**g.__dict__, "hits": [h.to_json() for h in g.hits]} for g in groups]}
        hits = await run_in_threadpool(lazy.searcher.search, q, k, filters)
        return {"query": q, "hits": [h.to_json() for h in hits]}

    @router.get("/objects/{bucket}/{key:s3key}", summary="Every known version of one object, with lineage",
                responses={404: {"description": "No version of this object is known"}})
    async def object_versions(bucket: str, key: str) -> dict:
        versions = await run_in_threadpool(inbox.versions_of, bucket, key)
        if not versions:
            raise HTTPException(404, f"no version of s3://{bucket}/{key} is known")
        return {"bucket": bucket, "key": key, "versions": [version_json(v) for v in versions]}

    return router

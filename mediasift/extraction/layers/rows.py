"""The row every layer produces. Lineage (bucket, key, etag, …) is added when rows are stored."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LAYERS = ("transcript", "scenes", "visual", "pages", "entities")


@dataclass
class Row:
    layer: str
    modality: str
    kind: str
    text: str = ""
    t_start: float | None = None
    t_end: float | None = None
    page: int | None = None
    label: str | None = None
    extra: dict = field(default_factory=dict)
    vector: np.ndarray | None = None
    clip_vector: np.ndarray | None = None
    """A visual row's CLIP image vector, when CLIP is configured: what text→image search compares queries to."""
    indexed: bool = True
    """False for rows kept only in the feature table (words), not in the search index."""

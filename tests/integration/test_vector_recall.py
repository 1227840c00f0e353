"""The tuned ANN index against an exact scan, at 100k vectors."""

import numpy as np
import pytest

from mediasift.local.synthetic import embedding_like_vectors, synthetic_rows
from mediasift.query.search import vector_search
from mediasift.store.lance import LanceIndex


@pytest.mark.slow
def test_tuned_vector_index_recall_at_10_is_at_least_095_on_100k_vectors(tmp_path):
    vectors = embedding_like_vectors(100_000, 384, seed=0)
    queries = embedding_like_vectors(100, 384, seed=99)
    index = LanceIndex(str(tmp_path / "lance"))
    index.db.create_table("pages", synthetic_rows(vectors))
    assert index.ensure_vector_index("pages", force=True)
    table = index.table("pages")
    assert any(ix.columns == ["vector"] for ix in table.list_indices())

    recalls = []
    for query in queries:
        approx = {r["version_hash"] for r in vector_search(table, query, None, 10, index.tuning)}
        exact = {r["version_hash"] for r in table.search(query).distance_type("cosine").limit(10)
                 .bypass_vector_index().select(["version_hash", "_distance"]).to_list()}
        recalls.append(len(approx & exact) / 10)
    assert np.mean(recalls) >= 0.95, f"recall@10 {np.mean(recalls):.3f}"

    untuned = [
        len({r["version_hash"] for r in table.search(q).distance_type("cosine").limit(10).nprobes(1)
             .select(["version_hash", "_distance"]).to_list()}
            & {r["version_hash"] for r in table.search(q).distance_type("cosine").limit(10)
               .bypass_vector_index().select(["version_hash", "_distance"]).to_list()}) / 10
        for q in queries[:20]
    ]
    assert np.mean(untuned) < np.mean(recalls)

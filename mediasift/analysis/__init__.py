"""Analytics on the indexed representation: duplicate verdicts, anomaly scores, clusters and taxonomies,
as plain functions of object references and their features (no Dagster, no storage here)."""

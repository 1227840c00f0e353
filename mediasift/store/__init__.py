"""Where rows go: Parquet feature tables (the durable record) and LanceDB tables (the search index)."""

"""One module per layer; each turns decoded media into rows (no I/O of its own)."""

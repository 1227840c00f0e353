"""Bytes to rows: decoding (media/), model loading (models/), one module per layer (layers/), and where the
work runs (compute: inline or Ray actors)."""

"""The read side: hybrid search over every layer, object lineage, and the HTTP read API."""

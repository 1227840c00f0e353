"""Notifications in: the webhook receiver, its group commit, the per-source parsers, the reconcile sweep."""

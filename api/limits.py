"""Limits shared by the app and the servers that run it (kept free of heavy imports: gunicorn's
master process loads it before it forks)."""
from __future__ import annotations

MAX_BODY = 64 * 1024  # a request body over this is refused (413) without being read

"""Where the client finds the API and its key when the caller does not say."""

from __future__ import annotations

import os

DEFAULT_URL = "http://127.0.0.1:8000"


def resolve_settings(base_url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """Arguments first, then ``ENGRAM_URL`` and ``ENGRAM_API_KEY`` (fallback ``ENGRAM_ADMIN_KEY``)."""
    url = base_url or os.environ.get("ENGRAM_URL") or DEFAULT_URL
    key = api_key or os.environ.get("ENGRAM_API_KEY") or os.environ.get("ENGRAM_ADMIN_KEY") or None
    return url.rstrip("/"), key

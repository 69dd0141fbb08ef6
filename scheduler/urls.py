from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from werkzeug.routing import MapAdapter


def public_url(endpoint: str, **values: Any) -> str:
    """An absolute URL for patients, built from PUBLIC_BASE_URL (never the Host header).

    Works with or without a request, so texts sent by the scheduler get the same links.
    """
    return _public_adapter().build(endpoint, values, force_external=True)


def _public_adapter() -> MapAdapter:
    """The URL map bound to PUBLIC_BASE_URL, once per app and base URL (building is
    read-only, so threads share it)."""
    base_url = current_app.config["PUBLIC_BASE_URL"]
    adapters: dict[str, MapAdapter] = current_app.extensions.setdefault("public_url", {})
    adapter = adapters.get(base_url)
    if adapter is None:
        base = urlsplit(base_url)
        adapter = current_app.url_map.bind(
            base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "https"
        )
        adapters[base_url] = adapter
    return adapter

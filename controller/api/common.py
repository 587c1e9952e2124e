"""Request helpers shared by the worker, agents and leads endpoints."""
from __future__ import annotations

from typing import Any

from flask import current_app, g, request

from .. import get_db
from ..errors import InvalidInput
from ..services import workers
from ..services.workers import WorkerIdentity


def json_body() -> dict[str, Any]:
    """The request's JSON object, or InvalidInput naming ``body`` (400).

    An oversized body never gets here: Flask enforces MAX_CONTENT_LENGTH (413).
    """
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit and request.content_length and request.content_length > limit:
        from werkzeug.exceptions import RequestEntityTooLarge

        raise RequestEntityTooLarge()
    data = request.get_json(silent=True, force=True)
    if data is None:
        if not request.get_data(cache=True):
            return {}
        raise InvalidInput("body must be valid JSON", field="body")
    if not isinstance(data, dict):
        raise InvalidInput("body must be a JSON object", field="body")
    return data


def current_worker() -> WorkerIdentity:
    """The worker the bearer token names (401 otherwise); cached on ``g``."""
    if "dialer_worker" not in g:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            token = ""
        g.dialer_worker = workers.authenticate(get_db(), token.strip())
    return g.dialer_worker


def int_field(data: dict, key: str, default: int, *, low: int = 0, high: int = 10**9) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{key} must be a whole number {low}-{high}", field=key)
    return value

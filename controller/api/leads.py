"""Web leads (D10): an affiliated site posts a number with the campaign's API key."""
from __future__ import annotations

from flask import jsonify, request

from .. import get_db
from ..services import distribution
from . import bp
from .common import json_body


@bp.post("/leads")
def add_lead():
    data = json_body()
    record_id, created = distribution.add_web_lead(get_db(), request.headers.get("X-API-Key"), data)
    return jsonify({"id": record_id, "created": created}), (201 if created else 200)

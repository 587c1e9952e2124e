"""``GET /api/v1/worker/campaign``: the worker's campaign status and dialing settings (SPEC P14, D2, X1)."""
from __future__ import annotations

import logging

from flask import jsonify

from .. import get_db
from ..errors import Forbidden
from ..services import campaigns
from . import bp
from .common import current_worker

logger = logging.getLogger(__name__)


@bp.get("/worker/campaign")
def worker_campaign():
    worker = current_worker()
    if worker.campaign_id is None:
        raise Forbidden("worker is not assigned to a campaign")
    return jsonify(campaigns.worker_settings(get_db(), worker.campaign_id))

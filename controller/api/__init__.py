"""Worker / web-lead / inter-center JSON API, versioned under /api/v1."""
from __future__ import annotations

from flask import Blueprint, jsonify
from werkzeug.exceptions import HTTPException

from ..errors import DialerError

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.errorhandler(DialerError)
def _dialer_error(err: DialerError):
    body = {"error": err.code, "message": err.message}
    if err.field:
        body["field"] = err.field
    return jsonify(body), err.status


@bp.errorhandler(HTTPException)
def _http_error(err: HTTPException):
    return jsonify({"error": err.name.lower().replace(" ", "_"), "message": err.description}), err.code


@bp.get("/health")
def health():
    return jsonify({"status": "ok"})


from . import ivr  # noqa: E402,F401  (IVR / remote-center ACD routes, SPEC R3-R9)
from . import agents, leads, worker  # noqa: E402,F401  (worker API, D1-D10, P2-P11)
from . import campaign  # noqa: E402,F401  (worker campaign settings, P14/D2/X1)

"""Worker endpoints: heartbeat/state, lease, results, release, dial-check, events (SPEC D1, D7-D9, P2-P10)."""
from __future__ import annotations

import logging

from flask import Response, current_app, jsonify, request

from .. import get_db
from ..errors import InvalidInput
from ..services import distribution, events, workers
from . import bp
from .common import current_worker, int_field, json_body

logger = logging.getLogger(__name__)


@bp.post("/worker/heartbeat")
def heartbeat():
    worker = current_worker()
    data = json_body()
    if "agent_state" not in data or not isinstance(data["agent_state"], str):
        raise InvalidInput("agent_state is required (idle, dialing, talking, wrapup, paused, offline)",
                           field="agent_state")
    active = int_field(data, "active_calls", 0, high=10_000)
    body = workers.heartbeat(get_db(), worker, data["agent_state"], active,
                             lease_seconds=int(current_app.config.get("LEASE_SECONDS", 900)))
    body.pop("active_calls", None)
    return jsonify(body)


@bp.post("/worker/lease")
def lease():
    worker = current_worker()
    data = json_body()
    n = int_field(data, "max", 20, high=distribution.MAX_LEASE)
    seconds = int(current_app.config.get("LEASE_SECONDS", 900))
    result = distribution.lease(get_db(), worker, n, lease_seconds=seconds, request_id=data.get("request_id"))
    return jsonify({"records": result.records, "lease_seconds": result.lease_seconds})


@bp.post("/worker/results")
def results():
    worker = current_worker()
    data = json_body()
    if "results" not in data:
        raise InvalidInput("results is required", field="results")
    parsed = distribution.parse_results(data["results"])
    outcome = distribution.record_results(get_db(), worker, parsed)
    return jsonify({"accepted": outcome.accepted, "duplicates": outcome.duplicates})


@bp.post("/worker/release")
def release():
    worker = current_worker()
    data = json_body()
    n = distribution.release(get_db(), worker, data.get("record_ids"))
    return jsonify({"released": n})


@bp.post("/worker/dial-check")
def dial_check():
    worker = current_worker()
    data = json_body()
    ok, refused = distribution.dial_check(get_db(), worker, data.get("record_ids"),
                                          lease_seconds=int(current_app.config.get("LEASE_SECONDS", 900)))
    return jsonify({"ok": ok, "refused": {str(k): v for k, v in refused.items()}})


@bp.get("/worker/events")
def worker_events():
    worker = current_worker()
    last = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    last_id = None
    if last is not None:
        if not last.isdigit():
            raise InvalidInput("Last-Event-ID must be an event id", field="Last-Event-ID")
        last_id = int(last)
    cfg = current_app.config
    gen = events.stream(
        get_db(), worker.id, last_event_id=last_id,
        max_seconds=float(cfg.get("SSE_MAX_SECONDS", 300)),
        ping_seconds=float(cfg.get("SSE_PING_SECONDS", 15)),
        poll_seconds=float(cfg.get("SSE_POLL_SECONDS", 0.5)),
    )
    return Response(gen, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

"""Agents for D7/D8: list with live state, claim an idle one atomically."""
from __future__ import annotations

from flask import current_app, jsonify, request

from .. import get_db
from ..errors import InvalidInput
from ..services import workers
from . import bp
from .common import current_worker, int_field, json_body


@bp.get("/agents")
def list_agents():
    current_worker()
    state = request.args.get("state")
    agents = workers.list_agents(get_db(), state=state,
                                 timeout_s=float(current_app.config["HEARTBEAT_TIMEOUT_S"]))
    return jsonify({"agents": [a.as_json() for a in agents]})


@bp.post("/agents/claim")
def claim():
    worker = current_worker()
    data = json_body()
    min_skill = int_field(data, "min_skill", 0, high=1000)
    exclude = data.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(e, str) and len(e) <= 64 for e in exclude):
        raise InvalidInput("exclude must be a list of agent extensions", field="exclude")
    call_uuid = data.get("call_uuid")
    if call_uuid is not None and (not isinstance(call_uuid, str) or len(call_uuid) > 64):
        raise InvalidInput("call_uuid must be a string", field="call_uuid")
    record_id = data.get("record_id")
    if record_id is not None and (not isinstance(record_id, int) or isinstance(record_id, bool)):
        raise InvalidInput("record_id must be an integer", field="record_id")
    agent = workers.claim_idle_agent(
        get_db(), min_skill=min_skill, exclude=exclude, call_uuid=call_uuid, record_id=record_id,
        by_worker=worker, timeout_s=float(current_app.config["HEARTBEAT_TIMEOUT_S"]),
    )
    return jsonify({"agent": {"name": agent.name, "extension": agent.extension, "worker": agent.worker,
                              "skill_level": agent.skill_level}})

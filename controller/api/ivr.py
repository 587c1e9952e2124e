"""Inter-center IVR API (SPEC R3-R9): menus, look-ups, proxies, progress, legs.

Every route needs ``Authorization: Bearer <peer key>`` (``dialer acd peer-add``).
A *center* peer places and follows its own proxies; the *switch* peer is this
center's leg acceptor (accepts bridged legs, reports them connected/ended).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Any

from flask import Response, current_app, jsonify, request

from ..errors import Forbidden, InvalidInput
from ..models import AcdPeer
from ..services import acd, ivr
from . import bp
from .. import get_db

logger = logging.getLogger(__name__)

SSE_INTERVAL_S = 0.25
SSE_PING_S = 15.0
SSE_MAX_S = 300.0  # streams end now and then; clients reconnect (and re-sync)


def _peer(role: str | None = None) -> AcdPeer:
    header = request.headers.get("Authorization", "")
    key = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("X-API-Key")
    peer = acd.authenticate_peer(get_db(), key)
    if role is not None and peer.role != role:
        raise Forbidden(f"this call needs a {role} key")
    return peer


def _json() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object")
    return body


# ---------------------------------------------------------------- menus (R3), look-up (R8)


@bp.get("/ivr/<name>")
def ivr_menu(name: str):
    _peer()
    document, etag = ivr.get_menu(get_db(), name)
    if request.if_none_match.contains(etag):
        return Response(status=304, headers={"ETag": f'"{etag}"'})
    response = jsonify(document)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"  # revalidate every time, 304 is cheap
    return response


@bp.get("/ivr/lookup")
def ivr_lookup():
    _peer()
    return jsonify(ivr.lookup_customer(get_db(), request.args.get("number"), request.args.get("account")))


@bp.post("/ivr/callbacks")
def ivr_callback():
    _peer()
    body = _json()
    when = None
    if body.get("callback_at"):
        try:
            when = dt.datetime.fromisoformat(str(body["callback_at"]).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput("callback_at must be an ISO date-time", field="callback_at") from None
        if when.tzinfo is not None:
            when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    record_id = ivr.request_callback(get_db(), str(body.get("campaign") or ""), str(body.get("number") or ""),
                                     name=body.get("name"), callback_at=when,
                                     pool=str(body.get("pool") or "callbacks"), note=body.get("note"))
    return jsonify({"id": record_id}), 201


# ---------------------------------------------------------------- proxies (R4, R5, R9)


@bp.post("/ivr/proxies")
def proxy_create():
    peer = _peer()
    body = _json()
    snap = acd.create_proxy(get_db(), peer, body.get("skill"), caller_number=body.get("caller_number"),
                            caller_name=body.get("caller_name"), data=body.get("data"))
    return jsonify(snap.to_dict()), 201


@bp.get("/ivr/proxies")
def proxy_list():
    peer = _peer()
    acd.tick(get_db())
    return jsonify({"proxies": [s.to_dict() for s in acd.list_proxies(get_db(), peer)]})


@bp.get("/ivr/proxies/<public_id>")
def proxy_get(public_id: str):
    return jsonify(acd.get_proxy(get_db(), public_id, _peer()).to_dict())


@bp.delete("/ivr/proxies/<public_id>")
def proxy_cancel(public_id: str):
    peer = _peer()
    reason = request.args.get("reason", "caller_hangup")
    return jsonify(acd.cancel_proxy(get_db(), public_id, peer, reason).to_dict())


@bp.post("/ivr/proxies/<public_id>/token")
def proxy_token(public_id: str):
    token, expires, ttl = acd.issue_token(get_db(), public_id, _peer())
    return jsonify({"token": token, "expires_at": expires, "ttl_s": ttl, "header": "X-Dialer-Token"})


@bp.get("/ivr/events")
def proxy_events():
    """R5 push: server-sent ``proxy`` events whenever one of the peer's proxies changes."""
    peer = _peer()
    db = get_db()
    interval = float(current_app.config.get("IVR_SSE_INTERVAL_S", SSE_INTERVAL_S))
    max_s = float(current_app.config.get("IVR_SSE_MAX_S", SSE_MAX_S))

    def stream():
        last: dict[str, dict] = {}
        started = last_ping = time.monotonic()
        yield "retry: 1000\n\n"
        while time.monotonic() - started < max_s:
            try:
                acd.tick(db)
                current = {s.id: s.to_dict() for s in acd.list_proxies(db, peer)}
                for gone in set(last) - set(current):
                    current[gone] = acd.get_proxy(db, gone, peer).to_dict()
            except Exception:  # noqa: BLE001 - a DB hiccup must not kill the stream
                logger.exception("ivr events: progress query failed for peer %s", peer.name)
                time.sleep(interval * 4)
                continue
            for proxy_id, snap in current.items():
                if last.get(proxy_id) != snap:
                    yield f"event: proxy\ndata: {json.dumps(snap)}\n\n"
            last = {k: v for k, v in current.items() if v["state"] in ("waiting", "offered", "connected")}
            now = time.monotonic()
            if now - last_ping >= SSE_PING_S:
                last_ping = now
                yield "event: ping\ndata: {}\n\n"
            else:
                # A comment line each tick: a client that went away is noticed at
                # the next write, and its stream stops polling the database.
                yield ":\n\n"
            time.sleep(interval)

    return Response(stream(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# ---------------------------------------------------------------- legs (R6), operators


@bp.post("/ivr/legs")
def leg_accept():
    _peer("switch")
    body = _json()
    return jsonify(acd.accept_leg(get_db(), body.get("token"), body.get("leg_uuid")).to_dict())


@bp.post("/ivr/legs/<public_id>/connected")
def leg_connected(public_id: str):
    _peer("switch")
    return jsonify(acd.leg_connected(get_db(), public_id).to_dict())


@bp.post("/ivr/legs/<public_id>/ended")
def leg_ended(public_id: str):
    _peer("switch")
    body = request.get_json(silent=True) or {}
    return jsonify(acd.leg_ended(get_db(), public_id, str(body.get("reason") or "normal_clearing"),
                                 failed=bool(body.get("failed"))).to_dict())


@bp.post("/ivr/operators/<name>/state")
def operator_state(name: str):
    _peer("switch")
    acd.set_operator_state(get_db(), name, str(_json().get("state")))
    return jsonify({"ok": True})

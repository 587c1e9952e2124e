"""Server-sent events for the dashboard: live agent states and counts (D8, X3).

One generator per open page.  It polls the database (so it sees changes made
by any controller process, X4), sends a ``snapshot`` event when something
changed and a comment line as keep-alive otherwise.  It is gevent-friendly:
``time.sleep`` yields under the gevent worker / gevent WSGI server, every
iteration is bounded, and the stream ends after ``DASHBOARD_STREAM_MAX_S``
(the browser's EventSource reconnects on its own, after the ``retry`` delay),
so an abandoned connection never holds a worker forever.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Iterator

import sqlalchemy as sa
from flask import Blueprint, Response, current_app

from .. import get_db
from ..db import Database
from ..services import reporting

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 2.0
DEFAULT_MAX_S = 300.0
KEEPALIVE_S = 15.0
RETRY_MS = 3000


def _change_key(snapshot: dict) -> str:
    """The snapshot without the ever-growing seconds-in-state (the page ticks those itself)."""
    agents = [{k: v for k, v in a.items() if k != "seconds_in_state"} for a in snapshot["agents"]]
    return json.dumps({**snapshot, "agents": agents}, sort_keys=True, default=str)


def event(name: str, data: dict) -> str:
    """One SSE frame (https://html.spec.whatwg.org/multipage/server-sent-events.html)."""
    return f"event: {name}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n"


def snapshots(db: Database, *, heartbeat_timeout_s: float, interval_s: float, max_s: float,
              clock=time.monotonic, sleep=time.sleep) -> Iterator[str]:
    """The event stream body; ``clock``/``sleep`` injectable for tests."""
    yield f"retry: {RETRY_MS}\n\n"
    deadline = clock() + max_s
    last_key = None
    last_sent = clock()
    while True:
        try:
            snap = reporting.live_snapshot(db, heartbeat_timeout_s=heartbeat_timeout_s)
        except sa.exc.SQLAlchemyError as err:  # database briefly away: tell the page, keep going
            logger.warning("dashboard stream: snapshot failed: %s", err)
            yield event("error", {"message": "database unavailable, retrying"})
        else:
            key = _change_key(snap)
            if key != last_key:
                last_key = key
                last_sent = clock()
                yield event("snapshot", snap)
            elif clock() - last_sent >= KEEPALIVE_S:
                last_sent = clock()
                yield ": keep-alive\n\n"
        if clock() + interval_s > deadline:
            return
        sleep(interval_s)


def register(bp: Blueprint) -> None:
    @bp.get("/stream")
    def stream():
        cfg = current_app.config
        body = snapshots(
            get_db(),
            heartbeat_timeout_s=cfg["HEARTBEAT_TIMEOUT_S"],
            interval_s=float(cfg.get("DASHBOARD_STREAM_INTERVAL_S", DEFAULT_INTERVAL_S)),
            max_s=float(cfg.get("DASHBOARD_STREAM_MAX_S", DEFAULT_MAX_S)),
        )
        return Response(body, mimetype="text/event-stream", headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        })

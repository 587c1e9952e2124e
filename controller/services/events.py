"""Per-worker event channel behind ``GET /api/v1/worker/events`` (SSE; SPEC D7, P9, X3).

Two parts, kept deliberately simple:

* an **outbox table** (``worker_event``): publishing inserts a row in the
  caller's transaction, so an event exists exactly when the change that caused
  it commits, and every controller process sharing the database sees it;
* an **in-process hub**: after that commit, local streams waiting for the
  worker wake at once.  Streams served by *another* controller process notice
  the row on their next poll (``poll_seconds``, 0.5 s by default).

Event ids are the outbox row ids, sent as SSE ``id:`` lines, so a client that
reconnects with ``Last-Event-ID`` gets what it missed and nothing twice.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
from typing import Any, Iterator, Optional

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from ..db import Database
from ..models import WorkerEvent, utcnow

logger = logging.getLogger(__name__)

#: how long outbox rows are kept (a reconnecting stream can catch up this far)
RETENTION = dt.timedelta(hours=1)


@dataclasses.dataclass(frozen=True)
class Event:
    id: int
    kind: str
    data: dict[str, Any]

    def sse(self) -> str:
        return f"id: {self.id}\nevent: {self.kind}\ndata: {json.dumps(self.data, separators=(',', ':'))}\n\n"


class Hub:
    """Wakes local streams when an event for their worker commits."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._versions: dict[int, int] = {}

    def version(self, worker_id: int) -> int:
        with self._cond:
            return self._versions.get(worker_id, 0)

    def notify(self, worker_ids) -> None:
        with self._cond:
            for wid in worker_ids:
                self._versions[wid] = self._versions.get(wid, 0) + 1
            self._cond.notify_all()

    def wait(self, worker_id: int, seen_version: int, timeout: float) -> int:
        """Block until the worker's version passes ``seen_version`` or ``timeout`` s pass."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._versions.get(worker_id, 0) == seen_version:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._versions.get(worker_id, 0)


hub = Hub()

_PENDING_KEY = "dialer_notify_workers"


@sa_event.listens_for(Session, "after_commit")
def _notify_after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING_KEY, None)
    if pending:
        hub.notify(pending)


@sa_event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


def publish_in(session: Session, worker_id: int, kind: str, data: dict[str, Any]) -> None:
    """Queue an event for a worker inside the caller's transaction."""
    session.add(WorkerEvent(worker_id=worker_id, kind=kind, data=data, created_at=utcnow()))
    session.info.setdefault(_PENDING_KEY, set()).add(worker_id)


def publish(db: Database, worker_id: int, kind: str, data: dict[str, Any]) -> None:
    with db.session() as session:
        publish_in(session, worker_id, kind, data)


def publish_campaign_status(session: Session, campaign_id: int, status: str) -> int:
    """Tell every worker of a campaign its new status (paused, active...). Returns how many."""
    from ..models import Worker

    ids = session.scalars(sa.select(Worker.id).where(Worker.campaign_id == campaign_id)).all()
    for wid in ids:
        publish_in(session, wid, "campaign", {"status": status})
    return len(ids)


def fetch(db: Database, worker_id: int, after_id: int, limit: int = 100) -> list[Event]:
    with db.session() as session:
        rows = session.execute(
            sa.select(WorkerEvent.id, WorkerEvent.kind, WorkerEvent.data)
            .where(WorkerEvent.worker_id == worker_id, WorkerEvent.id > after_id)
            .order_by(WorkerEvent.id)
            .limit(limit)
        ).all()
    return [Event(r.id, r.kind, r.data or {}) for r in rows]


def latest_id(db: Database, worker_id: int) -> int:
    with db.session() as session:
        return session.scalar(
            sa.select(sa.func.coalesce(sa.func.max(WorkerEvent.id), 0)).where(WorkerEvent.worker_id == worker_id)
        )


def stream(
    db: Database,
    worker_id: int,
    *,
    last_event_id: Optional[int] = None,
    max_seconds: float = 300.0,
    ping_seconds: float = 15.0,
    poll_seconds: float = 0.5,
) -> Iterator[str]:
    """SSE text for one worker: missed events after ``last_event_id`` (or only
    new ones), then live ones, a ``ping`` every ``ping_seconds``; ends after
    ``max_seconds`` (the client reconnects with Last-Event-ID)."""
    cursor = latest_id(db, worker_id) if last_event_id is None else last_event_id
    started = last_ping = time.monotonic()
    version = hub.version(worker_id)
    yield "retry: 2000\n\n"
    while True:
        for ev in fetch(db, worker_id, cursor):
            cursor = ev.id
            yield ev.sse()
        now = time.monotonic()
        if now - started >= max_seconds:
            return
        if now - last_ping >= ping_seconds:
            last_ping = now
            yield f"event: ping\ndata: {json.dumps({'time': utcnow().isoformat() + 'Z'})}\n\n"
        timeout = min(poll_seconds, max(0.0, max_seconds - (now - started)), ping_seconds)
        version = hub.wait(worker_id, version, timeout)


def cleanup(db: Database, now: Optional[dt.datetime] = None) -> int:
    """Delete outbox rows older than :data:`RETENTION`. Returns the count."""
    cutoff = (now or utcnow()) - RETENTION
    with db.session() as session:
        return session.execute(sa.delete(WorkerEvent).where(WorkerEvent.created_at < cutoff)).rowcount

"""Read-only queries behind the dashboard (SPEC P14, D8, X3).

Every function takes a :class:`~controller.db.Database`, opens its own short
transaction, and returns frozen dataclasses, so the views never see a session
or SQL.  Nothing here writes.

Definitions used on the pages (also in docs/45-dashboard.md):

* **remaining** (pool): records in status ``ready`` -- still in the pool.
  **remaining** (queue): records moved into the queue (``queued``) plus those
  its worker holds in the campaign (``leased``).
* **depletion rate**: attempt results received in the last
  ``RATE_WINDOW_MINUTES`` (the refill logic's moving window, P3) for the
  pool's records (or from the queue's worker), per minute.
* **abandonment rate**: abandoned attempts / attempts answered by a live party
  (answered + abandoned), the usual telemarketing-rule definition (X1).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Optional

import sqlalchemy as sa

from esl_dialer.messages import AgentState, AttemptResult, RecordStatus

from ..db import Database
from ..errors import NotFound
from .queues import RATE_WINDOW_MINUTES
from .. import record_status
from ..models import (
    Agent,
    CallAttempt,
    CallRecord,
    Campaign,
    Pool,
    Queue,
    QueueFeed,
    Worker,
    utcnow,
)

#: the refill logic's moving window (P3), so the page shows what refill decisions use
DEFAULT_WINDOW_MINUTES = RATE_WINDOW_MINUTES
QUEUE_RATE_WINDOW_MINUTES = RATE_WINDOW_MINUTES


@dataclasses.dataclass(frozen=True)
class CampaignSummary:
    id: int
    name: str
    status: str
    dial_mode: str
    counts: dict[str, int]  # RecordStatus value -> records
    total: int
    attempts: int
    answered: int
    abandoned: int
    abandon_target: float

    @property
    def abandonment_rate(self) -> Optional[float]:
        live = self.answered + self.abandoned
        return self.abandoned / live if live else None

    @property
    def over_target(self) -> bool:
        rate = self.abandonment_rate
        return rate is not None and rate > self.abandon_target


@dataclasses.dataclass(frozen=True)
class PoolSummary:
    id: int
    campaign_id: int
    name: str
    position: int
    difficulty: int
    remaining: int
    queued: int
    leased: int
    finished: int  # done + exhausted + dnc
    total: int
    rate_per_minute: float


@dataclasses.dataclass(frozen=True)
class FeedSummary:
    id: int
    pool_id: int
    pool_name: str
    position: int
    weight: float
    shareable: bool
    pool_remaining: int


@dataclasses.dataclass(frozen=True)
class QueueSummary:
    id: int
    campaign_id: int
    campaign_name: str
    name: str
    worker_name: Optional[str]
    selection_mode: str
    lead_minutes: float
    min_size: int
    max_size: int
    batch_size: int
    queued: int
    leased: int
    rate_per_minute: float
    feeds: tuple[FeedSummary, ...]

    @property
    def remaining(self) -> int:
        return self.queued + self.leased

    @property
    def minutes_left(self) -> Optional[float]:
        if self.rate_per_minute <= 0:
            return None
        return self.remaining / self.rate_per_minute


@dataclasses.dataclass(frozen=True)
class AgentStatus:
    id: int
    name: str
    extension: str
    skill_level: int
    state: str  # effective state: offline when the worker missed its heartbeats
    reported_state: str
    state_since: dt.datetime
    seconds_in_state: int
    worker_name: Optional[str]
    campaign_name: Optional[str]
    last_heartbeat: Optional[dt.datetime]
    stale: bool

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "extension": self.extension,
            "skill_level": self.skill_level,
            "state": self.state,
            "reported_state": self.reported_state,
            "state_since": self.state_since.isoformat() + "Z",
            "seconds_in_state": self.seconds_in_state,
            "worker": self.worker_name,
            "campaign": self.campaign_name,
            "last_heartbeat": self.last_heartbeat.isoformat() + "Z" if self.last_heartbeat else None,
            "stale": self.stale,
        }


@dataclasses.dataclass(frozen=True)
class AttemptRow:
    id: int
    record_id: int
    number: str
    record_name: Optional[str]
    campaign_name: str
    agent_name: Optional[str]
    worker_name: Optional[str]
    result: str
    disposition: Optional[str]
    hangup_cause: Optional[str]
    abandoned: bool
    started_at: dt.datetime
    answered_at: Optional[dt.datetime]
    connected_at: Optional[dt.datetime]
    ended_at: Optional[dt.datetime]

    @property
    def duration_s(self) -> Optional[int]:
        if self.ended_at is None:
            return None
        return max(0, int((self.ended_at - self.started_at).total_seconds()))

    @property
    def talk_s(self) -> Optional[int]:
        """Time with an agent: from connect (or answer, for answered calls) to the end."""
        start = self.connected_at
        if start is None and self.result == AttemptResult.ANSWERED.value and not self.abandoned:
            start = self.answered_at
        if start is None or self.ended_at is None:
            return None
        return max(0, int((self.ended_at - start).total_seconds()))


@dataclasses.dataclass(frozen=True)
class RecordTimeline:
    id: int
    number: str
    name: Optional[str]
    campaign_name: str
    pool_name: str
    status: str
    attempts: int
    last_result: Optional[str]
    next_attempt_at: Optional[dt.datetime]
    is_callback: bool
    attempt_rows: tuple[AttemptRow, ...]


_LIVE = (AttemptResult.ANSWERED.value, AttemptResult.ABANDONED.value)
_FINISHED = (RecordStatus.DONE, RecordStatus.EXHAUSTED, RecordStatus.DNC)


def campaigns(db: Database) -> list[CampaignSummary]:
    """Every campaign with record counts by status and its abandonment rate."""
    with db.session() as s:
        camps = s.scalars(sa.select(Campaign).order_by(Campaign.name)).all()
        counts: dict[int, dict[str, int]] = {c.id: {} for c in camps}
        for cid, status, n in s.execute(
            sa.select(CallRecord.campaign_id, CallRecord.status, sa.func.count())
            .group_by(CallRecord.campaign_id, CallRecord.status)
        ):
            counts.setdefault(cid, {})[_value(status)] = n
        is_abandon = sa.or_(CallAttempt.abandoned.is_(True), CallAttempt.result == AttemptResult.ABANDONED.value)
        stats = {
            row.campaign_id: row
            for row in s.execute(
                sa.select(
                    CallAttempt.campaign_id,
                    sa.func.count().label("attempts"),
                    sa.func.sum(sa.case((sa.and_(CallAttempt.result == AttemptResult.ANSWERED.value,
                                                 sa.not_(is_abandon)), 1), else_=0)).label("answered"),
                    sa.func.sum(sa.case((is_abandon, 1), else_=0)).label("abandoned"),
                ).group_by(CallAttempt.campaign_id)
            )
        }
        out = []
        for c in camps:
            by_status = {st.value: counts[c.id].get(st.value, 0) for st in RecordStatus}
            row = stats.get(c.id)
            out.append(CampaignSummary(
                id=c.id, name=c.name, status=_value(c.status), dial_mode=_value(c.dial_mode),
                counts=by_status, total=sum(by_status.values()),
                attempts=row.attempts if row else 0,
                answered=int(row.answered or 0) if row else 0,
                abandoned=int(row.abandoned or 0) if row else 0,
                abandon_target=c.abandon_target,
            ))
        return out


def pools(db: Database, *, now: dt.datetime | None = None,
          window_minutes: float = DEFAULT_WINDOW_MINUTES) -> list[PoolSummary]:
    """Every pool, in campaign then position order, with remaining and depletion rate."""
    now = now or utcnow()
    since = now - dt.timedelta(minutes=window_minutes)
    with db.session() as s:
        pool_rows = s.scalars(sa.select(Pool).order_by(Pool.campaign_id, Pool.position, Pool.id)).all()
        counts = _pool_counts(s)
        rates = dict(s.execute(
            sa.select(CallRecord.pool_id, sa.func.count())
            .join(CallAttempt, CallAttempt.record_id == CallRecord.id)
            .where(CallAttempt.received_at >= since)
            .group_by(CallRecord.pool_id)
        ).all())
        out = []
        for p in pool_rows:
            c = counts.get(p.id, {})
            finished = sum(c.get(st.value, 0) for st in _FINISHED)
            out.append(PoolSummary(
                id=p.id, campaign_id=p.campaign_id, name=p.name, position=p.position,
                difficulty=p.difficulty, remaining=c.get(RecordStatus.READY.value, 0),
                queued=c.get(RecordStatus.QUEUED.value, 0), leased=c.get(RecordStatus.LEASED.value, 0),
                finished=finished, total=sum(c.values()),
                rate_per_minute=rates.get(p.id, 0) / window_minutes,
            ))
        return out


def queues(db: Database, *, now: dt.datetime | None = None,
           queue_id: int | None = None) -> list[QueueSummary]:
    """Queues with what they hold, their depletion rate and their feeds (P3, P4, P5).

    ``leased`` counts the records the queue's worker holds in the campaign and
    the rate uses the refill logic's window, so the page shows the figures the
    refill decisions are made from.
    """
    now = now or utcnow()
    q_since = now - dt.timedelta(minutes=QUEUE_RATE_WINDOW_MINUTES)
    with db.session() as s:
        stmt = (
            sa.select(Queue, Campaign.name, Worker.name)
            .join(Campaign, Campaign.id == Queue.campaign_id)
            .outerjoin(Worker, Worker.id == Queue.worker_id)
            .order_by(Campaign.name, Queue.name)
        )
        if queue_id is not None:
            stmt = stmt.where(Queue.id == queue_id)
        rows = s.execute(stmt).all()
        held: dict[int, dict[str, int]] = {}
        for qid, status, n in s.execute(
            sa.select(CallRecord.queue_id, CallRecord.status, sa.func.count())
            .where(CallRecord.queue_id.is_not(None))
            .group_by(CallRecord.queue_id, CallRecord.status)
        ):
            held.setdefault(qid, {})[_value(status)] = n
        # Same definition as the refill logic (services.queues.depletion_rate):
        # results received from the queue's worker in this campaign per minute.
        worker_rates = {
            (wid, cid): n for wid, cid, n in s.execute(
                sa.select(CallAttempt.worker_id, CallAttempt.campaign_id, sa.func.count())
                .where(CallAttempt.received_at >= q_since, CallAttempt.worker_id.is_not(None))
                .group_by(CallAttempt.worker_id, CallAttempt.campaign_id)
            )
        }
        leased_by = {
            (wid, cid): n for wid, cid, n in s.execute(
                sa.select(CallRecord.held_by_worker_id, CallRecord.campaign_id, sa.func.count())
                .where(record_status.status_is(RecordStatus.LEASED), CallRecord.held_by_worker_id.is_not(None))
                .group_by(CallRecord.held_by_worker_id, CallRecord.campaign_id)
            )
        }
        pool_counts = _pool_counts(s)
        feeds: dict[int, list[FeedSummary]] = {}
        for f, pool_name in s.execute(
            sa.select(QueueFeed, Pool.name).join(Pool, Pool.id == QueueFeed.pool_id)
            .order_by(QueueFeed.queue_id, QueueFeed.position, QueueFeed.id)
        ):
            feeds.setdefault(f.queue_id, []).append(FeedSummary(
                id=f.id, pool_id=f.pool_id, pool_name=pool_name, position=f.position,
                weight=f.weight, shareable=f.shareable,
                pool_remaining=pool_counts.get(f.pool_id, {}).get(RecordStatus.READY.value, 0),
            ))
        out = []
        for q, campaign_name, worker_name in rows:
            h = held.get(q.id, {})
            out.append(QueueSummary(
                id=q.id, campaign_id=q.campaign_id, campaign_name=campaign_name, name=q.name,
                worker_name=worker_name, selection_mode=_value(q.selection_mode),
                lead_minutes=q.lead_minutes, min_size=q.min_size, max_size=q.max_size,
                batch_size=q.batch_size,
                queued=h.get(RecordStatus.QUEUED.value, 0),
                leased=leased_by.get((q.worker_id, q.campaign_id), 0) if q.worker_id else 0,
                rate_per_minute=(worker_rates.get((q.worker_id, q.campaign_id), 0) / QUEUE_RATE_WINDOW_MINUTES
                                 if q.worker_id else 0.0),
                feeds=tuple(feeds.get(q.id, ())),
            ))
        return out


def queue(db: Database, queue_id: int, **kwargs) -> QueueSummary:
    found = queues(db, queue_id=queue_id, **kwargs)
    if not found:
        raise NotFound(f"no queue with id {queue_id}")
    return found[0]


def campaign_pools(db: Database, campaign_id: int) -> list[tuple[int, str]]:
    """(id, name) of a campaign's pools in position order -- for the 'add feed' choice."""
    with db.session() as s:
        return [tuple(r) for r in s.execute(
            sa.select(Pool.id, Pool.name).where(Pool.campaign_id == campaign_id)
            .order_by(Pool.position, Pool.id)
        ).all()]


def agents(db: Database, *, heartbeat_timeout_s: float, now: dt.datetime | None = None) -> list[AgentStatus]:
    """Agents with their live state (D8).

    The reported state is what the worker said last; if the worker has missed
    its heartbeats for ``heartbeat_timeout_s`` the agent is shown offline
    (same rule the API applies), so a crashed PC does not look idle.
    """
    now = now or utcnow()
    with db.session() as s:
        rows = s.execute(
            sa.select(Agent, Worker.name, Worker.last_heartbeat, Campaign.name)
            .outerjoin(Worker, Worker.agent_id == Agent.id)
            .outerjoin(Campaign, Campaign.id == Worker.campaign_id)
            .order_by(Agent.name, Worker.id)
        ).all()
        # An agent with several workers: the one heard from last counts (same
        # rule as services.workers.mark_stale_offline: any fresh worker keeps it live).
        latest: dict[int, tuple] = {}
        for row in rows:
            agent, _wname, last_hb, _cname = row
            best = latest.get(agent.id)
            if best is None or (last_hb is not None and (best[2] is None or last_hb > best[2])):
                latest[agent.id] = row
        out: list[AgentStatus] = []
        for agent, worker_name, last_hb, campaign_name in latest.values():
            reported = _value(agent.state)
            stale = reported != AgentState.OFFLINE.value and (
                last_hb is None or (now - last_hb).total_seconds() > heartbeat_timeout_s
            )
            since = agent.state_since
            if stale and last_hb is not None:
                since = max(since, last_hb + dt.timedelta(seconds=heartbeat_timeout_s))
            out.append(AgentStatus(
                id=agent.id, name=agent.name, extension=agent.extension, skill_level=agent.skill_level,
                state=AgentState.OFFLINE.value if stale else reported, reported_state=reported,
                state_since=since, seconds_in_state=max(0, int((now - since).total_seconds())),
                worker_name=worker_name, campaign_name=campaign_name, last_heartbeat=last_hb,
                stale=stale,
            ))
        return out


def agent_state_counts(agent_list: list[AgentStatus]) -> dict[str, int]:
    counts = {st.value: 0 for st in AgentState}
    for a in agent_list:
        counts[a.state] = counts.get(a.state, 0) + 1
    return counts


def recent_attempts(db: Database, *, limit: int = 50, campaign_id: int | None = None,
                    record_id: int | None = None) -> list[AttemptRow]:
    """The newest attempts first (X3)."""
    limit = max(1, min(int(limit), 1000))
    with db.session() as s:
        stmt = _attempt_select()
        if campaign_id is not None:
            stmt = stmt.where(CallAttempt.campaign_id == campaign_id)
        if record_id is not None:
            stmt = stmt.where(CallAttempt.record_id == record_id)
        stmt = stmt.order_by(CallAttempt.started_at.desc(), CallAttempt.id.desc()).limit(limit)
        return [_attempt_row(r) for r in s.execute(stmt)]


def record_timeline(db: Database, record_id: int) -> RecordTimeline:
    """One record and every attempt on it, oldest first (X3)."""
    with db.session() as s:
        row = s.execute(
            sa.select(CallRecord, Campaign.name, Pool.name)
            .join(Campaign, Campaign.id == CallRecord.campaign_id)
            .join(Pool, Pool.id == CallRecord.pool_id)
            .where(CallRecord.id == record_id)
        ).first()
        if row is None:
            raise NotFound(f"no call record with id {record_id}")
        rec, campaign_name, pool_name = row
        attempts = [_attempt_row(r) for r in s.execute(
            _attempt_select().where(CallAttempt.record_id == record_id)
            .order_by(CallAttempt.started_at, CallAttempt.id)
        )]
        return RecordTimeline(
            id=rec.id, number=rec.number, name=rec.name, campaign_name=campaign_name,
            pool_name=pool_name, status=_value(rec.status), attempts=rec.attempts,
            last_result=rec.last_result, next_attempt_at=rec.next_attempt_at,
            is_callback=rec.is_callback, attempt_rows=tuple(attempts),
        )


def find_records(db: Database, number: str, *, limit: int = 20) -> list[tuple[int, str, Optional[str], str]]:
    """(id, number, name, campaign) of records whose number contains ``number``."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if not digits:
        return []
    with db.session() as s:
        return [tuple(r) for r in s.execute(
            sa.select(CallRecord.id, CallRecord.number, CallRecord.name, Campaign.name)
            .join(Campaign, Campaign.id == CallRecord.campaign_id)
            .where(CallRecord.number.contains(digits, autoescape=True))
            .order_by(CallRecord.id).limit(limit)
        ).all()]


def live_snapshot(db: Database, *, heartbeat_timeout_s: float) -> dict:
    """What the server-sent event stream pushes: agents and campaign counts."""
    agent_list = agents(db, heartbeat_timeout_s=heartbeat_timeout_s)
    return {
        "agents": [a.as_json() for a in agent_list],
        "agent_counts": agent_state_counts(agent_list),
        "campaigns": [
            {"id": c.id, "name": c.name, "status": c.status, "counts": c.counts, "total": c.total,
             "attempts": c.attempts, "abandonment_rate": c.abandonment_rate}
            for c in campaigns(db)
        ],
    }


# -- helpers ---------------------------------------------------------------

def _value(v) -> str:
    return v.value if hasattr(v, "value") else str(v)


def _pool_counts(s) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for pid, status, n in s.execute(
        sa.select(CallRecord.pool_id, CallRecord.status, sa.func.count())
        .group_by(CallRecord.pool_id, CallRecord.status)
    ):
        out.setdefault(pid, {})[_value(status)] = n
    return out


def _attempt_select():
    return (
        sa.select(CallAttempt, CallRecord.name, Campaign.name, Agent.name, Worker.name)
        .join(CallRecord, CallRecord.id == CallAttempt.record_id)
        .join(Campaign, Campaign.id == CallAttempt.campaign_id)
        .outerjoin(Agent, Agent.id == CallAttempt.agent_id)
        .outerjoin(Worker, Worker.id == CallAttempt.worker_id)
    )


def _attempt_row(r) -> AttemptRow:
    a, record_name, campaign_name, agent_name, worker_name = r
    return AttemptRow(
        id=a.id, record_id=a.record_id, number=a.number, record_name=record_name,
        campaign_name=campaign_name, agent_name=agent_name, worker_name=worker_name,
        result=a.result, disposition=a.disposition, hangup_cause=a.hangup_cause,
        abandoned=a.abandoned, started_at=a.started_at, answered_at=a.answered_at,
        connected_at=a.connected_at, ended_at=a.ended_at,
    )

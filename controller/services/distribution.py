"""Handing records to workers and taking their results back (SPEC D1, D9, D10, P2-P9, P11, P13, X1).

Life of a record: ``ready`` in its pool -> ``queued`` in a worker's queue
(refill, P2/P3) -> ``leased`` to that worker (D1) -> a result sends it to
``done`` / ``exhausted`` / ``dnc`` or back to ``ready`` with a retry time
(recycling P7, callbacks P9).  Status changes go through
:mod:`controller.record_status`.

Concurrency (P11): every step is one short write transaction.  On PostgreSQL
records are taken with ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP
LOCKED LIMIT n) RETURNING``, so several controller processes hand out disjoint
records without waiting on each other; on SQLite the transaction starts with
``BEGIN IMMEDIATE`` (one writer at a time).

Records with a negative priority (web leads -100, due callbacks -50) skip the
queue: every lease first takes due ones straight from the queue's pools, so
they go to the next worker that asks (D10, P9).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import hmac
import logging
import threading
import time
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from esl_dialer.messages import AttemptResult, CampaignStatus, RecordStatus, SelectionMode, TimezonePolicy

from .. import calling_hours, numbers, pgraw, record_status, selection
from ..db import Database
from ..errors import Forbidden, InvalidInput, NotFound, Unauthorized
from ..models import (
    Agent, CallAttempt, CallRecord, Campaign, DncEntry, Pool, Queue, QueueFeed, RecycleRule, utcnow,
)
from .queues import depletion_rate
from .txn import bind as _bind, cache_token as _cache_token, is_postgres, write_connection, write_session
from .workers import WorkerIdentity

logger = logging.getLogger(__name__)

WEB_LEAD_PRIORITY = -100
CALLBACK_PRIORITY = -50
#: how often (s) one process sweeps expired leases back to their pools (a
#: table scan: leases last 15 minutes, so a 15 s delay is immaterial)
EXPIRY_INTERVAL_S = 15.0
#: how long (s) the list of a campaign's time zones is cached per process
ZONES_CACHE_S = 60.0
#: how long (s) a queue's measured depletion rate is reused per process
RATE_CACHE_S = 5.0
#: pauses (s) before taking again when a queue holds records whose row locks
#: another transaction holds for a moment (see :func:`lease`)
LOCKED_RETRY_S = (0.005, 0.02, 0.1)
#: how long (s) a worker's campaign/queue settings are reused per process
CONTEXT_CACHE_S = 5.0
#: how long (s) a campaign's recycle rules are reused per process
RULES_CACHE_S = 5.0
PREVIOUS_ATTEMPTS_SHOWN = 10
MAX_LEASE = 500
MAX_RESULTS = 1000


@dataclasses.dataclass(frozen=True)
class RecycleSpec:
    retry_minutes: float
    max_attempts: int


#: used when a campaign has no RecycleRule for a result (P7)
DEFAULT_RECYCLE: dict[str, RecycleSpec] = {
    AttemptResult.NO_ANSWER.value: RecycleSpec(60, 3),
    AttemptResult.BUSY.value: RecycleSpec(15, 3),
    AttemptResult.FAILED.value: RecycleSpec(120, 2),
    AttemptResult.ABANDONED.value: RecycleSpec(60, 3),
    AttemptResult.MACHINE.value: RecycleSpec(240, 2),
}

#: results that are not a dial and do not count as an attempt
NOT_DIALED = {AttemptResult.DNC.value, AttemptResult.OUTSIDE_HOURS.value}

_RECORD_COLS = (
    CallRecord.id, CallRecord.number, CallRecord.name, CallRecord.city, CallRecord.region,
    CallRecord.country, CallRecord.timezone, CallRecord.extra, CallRecord.attempts,
    CallRecord.difficulty, CallRecord.priority, CallRecord.queue_seq,
)


@dataclasses.dataclass(frozen=True)
class CampaignInfo:
    id: int
    status: CampaignStatus
    window_start: str
    window_end: str
    by_number: bool
    default_timezone: str


@dataclasses.dataclass(frozen=True)
class Lease:
    records: list[dict[str, Any]]
    lease_seconds: int


@dataclasses.dataclass(slots=True)
class ResultIn:
    client_id: str
    record_id: int
    result: AttemptResult
    call_uuid: Optional[str] = None
    agent: Optional[str] = None
    started_at: Optional[dt.datetime] = None
    answered_at: Optional[dt.datetime] = None
    connected_at: Optional[dt.datetime] = None
    ended_at: Optional[dt.datetime] = None
    hangup_cause: Optional[str] = None
    disposition: Optional[str] = None
    abandoned: bool = False
    callback_at: Optional[str] = None  # ISO; naive = the party's local time (P9)


@dataclasses.dataclass(frozen=True)
class ResultsOutcome:
    accepted: list[str]
    duplicates: list[str]


# --- small helpers ------------------------------------------------------------------


def iso(value: Optional[dt.datetime]) -> Optional[str]:
    return None if value is None else value.isoformat() + "Z"


def parse_time(value: Any, field: str) -> Optional[dt.datetime]:
    """ISO 8601 -> naive UTC (naive input is taken as UTC)."""
    if value is None:
        return None
    if type(value) is not str or len(value) > 40:
        raise InvalidInput("must be an ISO 8601 time", field=field)
    try:
        parsed = dt.datetime.fromisoformat(value)  # takes a trailing "Z" too
    except ValueError:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("z", "+00:00"))
        except ValueError:
            raise InvalidInput("must be an ISO 8601 time", field=field) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return parsed


def _campaign(session: Session, campaign_id: int) -> CampaignInfo:
    row = session.execute(
        sa.select(Campaign.id, Campaign.status, Campaign.window_start, Campaign.window_end,
                  Campaign.timezone_policy, Campaign.default_timezone)
        .where(Campaign.id == campaign_id)
    ).first()
    if row is None:
        raise NotFound(f"no campaign with id {campaign_id}", field="campaign")
    return CampaignInfo(row.id, CampaignStatus(row.status), row.window_start, row.window_end,
                        TimezonePolicy(row.timezone_policy) == TimezonePolicy.NUMBER, row.default_timezone)


class _ZoneCache:
    """Distinct time-zone values per campaign, refreshed every ZONES_CACHE_S.

    The query scans the campaign's records, so it is single-flight: when the
    entry is missing one caller reads it while concurrent callers wait for
    that answer; when it is merely stale, the others keep using the old list
    meanwhile (the Python check in :func:`lease` covers zone values newer than
    the list).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple, tuple[float, list[Optional[str]]]] = {}
        self._flights: dict[tuple, threading.Lock] = {}

    def get(self, session, key: tuple, campaign_id: int) -> list[Optional[str]]:
        with self._lock:
            hit = self._data.get(key)
            flight = self._flights.setdefault(key, threading.Lock())
        if hit and hit[0] > time.monotonic():
            return hit[1]
        if hit:
            held = flight.acquire(blocking=False)
            if not held:
                return hit[1]  # someone is refreshing: the stale list is fine meanwhile
        else:
            held = flight.acquire(timeout=60)
        try:
            with self._lock:
                again = self._data.get(key)
            if again and again[0] > time.monotonic():
                return again[1]
            zones = list(session.scalars(
                sa.select(CallRecord.timezone).where(CallRecord.campaign_id == campaign_id).distinct()
            ))
            with self._lock:
                self._data[key] = (time.monotonic() + ZONES_CACHE_S, zones)
            return zones
        finally:
            if held:
                flight.release()

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_zones = _ZoneCache()


def _callable(record_timezone: Optional[str], campaign: CampaignInfo, now: dt.datetime) -> bool:
    """X1 for one time-zone value, by the campaign loader's rules (controller.calling_hours)."""
    policy = TimezonePolicy.NUMBER if campaign.by_number else TimezonePolicy.CAMPAIGN
    zones = calling_hours.record_zones(record_timezone, policy, campaign.default_timezone)
    window = calling_hours.window_from_fields(campaign.window_start, campaign.window_end)
    return calling_hours.is_callable(now, zones, window)


def _in(session: Session, column, values: list, item_type) -> sa.ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``= ANY(array)`` so the SQL text is the
    same for any list length (prepared once, parsed once)."""
    if _bind(session).dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(item_type)))
    return column.in_(values)


def _dnc_numbers(session: Session, numbers: Iterable[str]) -> set[str]:
    numbers = list(set(numbers))
    if not numbers:
        return set()
    return set(session.scalars(sa.select(DncEntry.number).where(_in(session, DncEntry.number, numbers, sa.String))))


def _previous_attempts(session: Session, record_ids: Sequence[int]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {rid: [] for rid in record_ids}
    if not record_ids:
        return out
    rows = session.execute(
        sa.select(CallAttempt.record_id, CallAttempt.started_at, CallAttempt.result, CallAttempt.disposition)
        .where(CallAttempt.record_id.in_(record_ids))
        .order_by(CallAttempt.record_id, CallAttempt.started_at.desc())
    ).all()
    for r in rows:
        if len(out[r.record_id]) < PREVIOUS_ATTEMPTS_SHOWN:
            out[r.record_id].append(
                {"started_at": iso(r.started_at), "result": r.result, "disposition": r.disposition}
            )
    return out


def _payload(row: Any, campaign: CampaignInfo, lease_until: Optional[dt.datetime],
             previous: list[dict]) -> dict[str, Any]:
    return {
        "id": row.id, "number": row.number, "name": row.name, "city": row.city, "region": row.region,
        "country": row.country,
        "timezone": (row.timezone if campaign.by_number and row.timezone else campaign.default_timezone),
        "extra": row.extra or {}, "attempts": row.attempts, "difficulty": row.difficulty,
        "priority": row.priority, "previous_attempts": previous, "window_start": campaign.window_start,
        "window_end": campaign.window_end, "lease_until": iso(lease_until),
    }


def record_payload(session: Session, record: CallRecord, now: dt.datetime) -> dict[str, Any]:
    """A record in the lease shape (also carried by ``overflow`` events, D7)."""
    campaign = _campaign(session, record.campaign_id)
    previous = _previous_attempts(session, [record.id])[record.id]
    return _payload(record, campaign, record.held_until, previous)


# --- lease expiry ------------------------------------------------------------------

_last_sweep: dict[int, float] = {}
_sweep_lock = threading.Lock()


def expire_leases(db: Database, now: Optional[dt.datetime] = None) -> int:
    """Records whose lease ran out go back to their pools (D1). Returns the count."""
    now = now or utcnow()
    with write_session(db) as session:
        n = record_status.bulk_set_status(
            session, RecordStatus.READY,
            where=[CallRecord.held_until < now],
            from_statuses=[RecordStatus.LEASED],
            queue_seq=None,
        )
    if n:
        logger.info("%d expired leases returned to their pools", n)
    return n


def sweep_if_due(db: Database, now: Optional[dt.datetime] = None) -> None:
    """Expire leases if this process has not done so for EXPIRY_INTERVAL_S."""
    _maybe_sweep(db, now or utcnow())


def _maybe_sweep(db: Database, now: dt.datetime) -> None:
    key = id(db)
    mono = time.monotonic()
    with _sweep_lock:
        if mono - _last_sweep.get(key, 0.0) < EXPIRY_INTERVAL_S:
            return
        _last_sweep[key] = mono
    expire_leases(db, now)


# --- refill (P2, P3, P4, P5, P13) ------------------------------------------------------


def _worker_queue(session: Session, worker: WorkerIdentity) -> Queue:
    queue = session.scalar(
        sa.select(Queue).where(Queue.worker_id == worker.id, Queue.campaign_id == worker.campaign_id)
        .order_by(Queue.id).limit(1)
    )
    if queue is None:
        # A worker without a queue gets a default one (all pools, in pool order).
        name = worker.name
        if session.scalar(sa.select(Queue.id).where(Queue.campaign_id == worker.campaign_id, Queue.name == name)):
            name = f"{worker.name}-{worker.id}"
        queue = Queue(campaign_id=worker.campaign_id, name=name, worker_id=worker.id)
        session.add(queue)
        session.flush()
    return queue


@functools.lru_cache(maxsize=4)
def _refill_head_stmt(pg: bool) -> sa.Select:
    """The queue row, locked, with the highest sequence number of its queued records."""
    top = sa.select(sa.func.max(_REC.c.queue_seq)).where(
        _REC.c.queue_id == sa.bindparam("q", type_=sa.Integer),
        record_status.status_is(RecordStatus.QUEUED)).scalar_subquery()
    stmt = sa.select(top).select_from(Queue.__table__).where(Queue.__table__.c.id == sa.bindparam("q"))
    return stmt.with_for_update(key_share=True) if pg else stmt


def _feed_pools(session: Session, queue: "_QueueCtx") -> tuple[SelectionMode, list[QueueFeed] | None, list[int]]:
    """(mode, feeds or None for the default rule, pool ids in order)."""
    feeds = list(session.execute(
        sa.select(QueueFeed.id, QueueFeed.pool_id, QueueFeed.position, QueueFeed.weight, QueueFeed.served)
        .where(QueueFeed.queue_id == queue.id).order_by(QueueFeed.position, QueueFeed.id)
    ).all())
    if feeds:
        return SelectionMode(queue.selection_mode), feeds, [f.pool_id for f in feeds]
    pools = list(session.scalars(
        sa.select(Pool.id).where(Pool.campaign_id == queue.campaign_id).order_by(Pool.position, Pool.id)
    ))
    return SelectionMode.PRIORITY, None, pools


def _take_ids(session: Session, pool_id: int, n: int, skill: int, window: dict,
              now: dt.datetime, exclude: Sequence[int]) -> list[int]:
    """Up to ``n`` ready record ids of a pool, locked: the agent's own difficulty
    level first, then easier ones, hardest first (P13).  ``window`` is
    :func:`window_params`; ``exclude``: ids of this pool this transaction
    already took (its own row locks do not make SKIP LOCKED skip them)."""
    ids: list[int] = []
    level: Optional[int] = skill
    while level is not None:
        ids += _take_level(session, pool_id, n - len(ids), level, window, now, exclude)
        if len(ids) >= n or level <= 0:
            break
        # the next easier level that has ready records (skips empty levels:
        # a skill of 1,000 over records at 0-3 costs a few queries, not 1,000)
        level = session.execute(_next_level_stmt(), {"p": pool_id, "below": level}).scalar()
    return ids


@functools.lru_cache(maxsize=1)
def _next_level_stmt() -> sa.Select:
    """The highest difficulty below ``below`` among a pool's ready records; one
    backward step in each of the two refill indexes."""
    def top(waiting: sa.ColumnElement) -> sa.Select:
        return (sa.select(_REC.c.difficulty.label("d"))
                .where(_REC.c.pool_id == sa.bindparam("p", type_=sa.Integer),
                       record_status.status_is(RecordStatus.READY), waiting,
                       _REC.c.difficulty < sa.bindparam("below", type_=sa.Integer))
                .order_by(_REC.c.difficulty.desc()).limit(1))

    both = sa.union_all(top(_REC.c.next_attempt_at.is_(None)).subquery().select(),
                        top(_REC.c.next_attempt_at.is_not(None)).subquery().select()).subquery()
    return sa.select(sa.func.max(both.c.d))


def _take_level(session: Session, pool_id: int, n: int, level: int, window: dict,
                now: dt.datetime, exclude: Sequence[int]) -> list[int]:
    """Up to ``n`` ready record ids of one pool and difficulty level, locked.

    Order: by priority; within a priority, retries that are due (P7, oldest
    due first) before fresh records (by id), so "retry after N minutes" holds
    even while the pool still has fresh records.  Each kind is read from its
    own index (``ix_record_due``, ``ix_record_fresh``), so records waiting
    for a later retry are never scanned.  Due retries are taken in due-time
    order before their priority is looked at: a retry's priority only orders
    it against the fresh records.
    """
    params = {**window, "p": pool_id, "level": level, "now": now, "n": n}
    if is_postgres(session):
        # straight on psycopg: a refill takes hundreds of ids, and SQLAlchemy
        # fetches result rows one call chain per row
        params["ex"] = pgraw.int_array(exclude)
        return [row.id for row in _raw_take_level().rows(session, params)]
    if exclude:
        params["ex"] = list(exclude)
    return list(session.scalars(_take_level_stmt(False, bool(exclude)), params))


@functools.lru_cache(maxsize=1)
def _raw_take_level() -> pgraw.RawStatement:
    return pgraw.RawStatement(_take_level_stmt(True, True))


@functools.lru_cache(maxsize=8)
def _take_level_stmt(pg: bool, with_exclude: bool) -> sa.Select:
    """:func:`_take_level`'s statement, built once (bind parameters only)."""
    base = [_REC.c.pool_id == sa.bindparam("p", type_=sa.Integer), record_status.status_is(RecordStatus.READY),
            _REC.c.difficulty == sa.bindparam("level", type_=sa.Integer), _window_expr(pg)]
    if with_exclude and pg:
        # an array literal ('{1,2}', pgraw.int_array): fixed SQL text for any count, '{}' for none
        base.append(_REC.c.id != sa.all_(sa.cast(sa.bindparam("ex", type_=sa.Text), postgresql.ARRAY(sa.Integer))))
    elif with_exclude:
        base.append(_REC.c.id.not_in(sa.bindparam("ex", expanding=True)))
    n = sa.bindparam("n", type_=sa.Integer)
    due = (sa.select(_REC.c.id, _REC.c.priority, sa.literal(0).label("kind"), _REC.c.next_attempt_at.label("t"))
           .where(*base, _REC.c.next_attempt_at.is_not(None),
                  _REC.c.next_attempt_at <= sa.bindparam("now", type_=sa.DateTime))
           .order_by(_REC.c.next_attempt_at, _REC.c.id).limit(n))
    fresh = (sa.select(_REC.c.id, _REC.c.priority, sa.literal(1).label("kind"),
                       sa.cast(sa.null(), _REC.c.next_attempt_at.type).label("t"))
             .where(*base, _REC.c.next_attempt_at.is_(None))
             .order_by(_REC.c.priority, _REC.c.id).limit(n))
    if pg:
        due = due.with_for_update(skip_locked=True)
        fresh = fresh.with_for_update(skip_locked=True)
    d = due.cte("due").prefix_with("MATERIALIZED", dialect="postgresql")
    f = fresh.cte("fresh").prefix_with("MATERIALIZED", dialect="postgresql")
    both = sa.union_all(sa.select(d.c.id, d.c.priority, d.c.kind, d.c.t),
                        sa.select(f.c.id, f.c.priority, f.c.kind, f.c.t)).subquery()
    return sa.select(both.c.id).order_by(both.c.priority, both.c.kind, both.c.t, both.c.id).limit(n)


def refill(session: Session, queue: "_QueueCtx", campaign: CampaignInfo, skill: int, amount: int,
           window: dict, now: dt.datetime) -> int:
    """Move up to ``amount`` records from the queue's pools into it, in rule
    order (``window``: :func:`window_params`). Returns the count."""
    if amount <= 0:
        return 0
    # Lock the queue (two controllers never refill one queue at once: P11) and
    # read its last sequence number, in one round trip.  FOR NO KEY UPDATE,
    # the weakest lock that serialises refills: it does not block the
    # foreign-key checks of the queue's feeds (queue_feed.queue_id).
    top = session.execute(_refill_head_stmt(is_postgres(session)), {"q": queue.id}).scalar()
    next_seq = (top or 0) + 1
    mode, feeds, pool_ids = _feed_pools(session, queue)
    states = (
        [selection.FeedState(f.pool_id, f.position, f.weight, f.served) for f in feeds]
        if feeds is not None else
        [selection.FeedState(pid, i, 0.0, 0) for i, pid in enumerate(pool_ids)]
    )
    fetched: dict[int, list[int]] = {s.pool_id: [] for s in states}
    dry: dict[int, int] = {}
    plan = selection.plan(mode, states, amount)
    # Fetch what the plan asks; a pool that falls short is marked with what it
    # had and the plan is redone (availability only shrinks: <= len(feeds) rounds).
    for _ in range(len(states) + 1):
        short = False
        for pid, want in plan.counts().items():
            have = len(fetched[pid])
            if want > have:
                got = _take_ids(session, pid, want - have, skill, window, now, fetched[pid])
                fetched[pid] += got
                if len(got) < want - have:
                    dry[pid] = len(fetched[pid])
                    short = True
        if not short:
            break
        states = [dataclasses.replace(s, available=dry.get(s.pool_id)) for s in states]
        plan = selection.plan(mode, states, amount)
    order: list[int] = []
    cursor = {pid: 0 for pid in fetched}
    for pid in plan.sequence:
        if cursor[pid] < len(fetched[pid]):
            order.append(fetched[pid][cursor[pid]])
            cursor[pid] += 1
    # P5: the queue's own pools are dry; draw from pools other queues share.
    if len(order) < amount:
        shared = list(session.scalars(
            sa.select(QueueFeed.pool_id).join(Queue, Queue.id == QueueFeed.queue_id)
            .where(Queue.campaign_id == queue.campaign_id, Queue.id != queue.id, QueueFeed.shareable.is_(True),
                   QueueFeed.pool_id.not_in(list(fetched) or [-1]))
            .order_by(QueueFeed.position, QueueFeed.id)
        ))
        for pid in dict.fromkeys(shared):
            if len(order) >= amount:
                break
            order += _take_ids(session, pid, amount - len(order), skill, window, now, [])
    if not order:
        return 0
    record_status.queue_records(session, queue.id, order, next_seq, utcnow())
    if feeds is not None:
        session.execute(
            sa.update(QueueFeed.__table__)
            .where(QueueFeed.__table__.c.id == sa.bindparam("b_id"))
            .values(served=sa.bindparam("v_served")),
            [{"b_id": f.id, "v_served": plan.served[f.pool_id]} for f in feeds],
        )
    logger.debug("queue %s refilled with %d records", queue.id, len(order))
    return len(order)


# --- lease (D1, D9, D10, P2, P3, X1) ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _QueueCtx:
    id: int
    campaign_id: int
    selection_mode: SelectionMode
    lead_minutes: float
    min_size: int
    max_size: int
    batch_size: int
    worker_id: Optional[int]


_REC = CallRecord.__table__


def _lease_context(session: Session, worker: WorkerIdentity):
    """Campaign, the worker's queue, the agent's skill and the queue's fill, in one round trip."""
    return session.execute(_lease_context_stmt(),
                           {"w": worker.id, "c": worker.campaign_id, "a": worker.agent_id}).first()


@functools.lru_cache(maxsize=1)
def _lease_context_stmt() -> sa.Select:
    """:func:`_lease_context`'s statement, built once (a cache miss costs one execution, not a build)."""
    skill = sa.select(Agent.skill_level).where(Agent.id == sa.bindparam("a", type_=sa.Integer)).scalar_subquery()
    return (
        sa.select(
            Campaign.id, Campaign.status, Campaign.window_start, Campaign.window_end, Campaign.timezone_policy,
            Campaign.default_timezone, Queue.id.label("queue_id"), Queue.selection_mode, Queue.lead_minutes,
            Queue.min_size, Queue.max_size, Queue.batch_size, skill.label("skill"),
        )
        .select_from(Campaign)
        .outerjoin(Queue, sa.and_(Queue.worker_id == sa.bindparam("w", type_=sa.Integer),
                                  Queue.campaign_id == Campaign.id))
        .where(Campaign.id == sa.bindparam("c", type_=sa.Integer))
        .order_by(Queue.id)
        .limit(1)
    )


class _RateCache:
    """Depletion rate per queue, re-measured every RATE_CACHE_S (it moves slowly)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple, tuple[float, float]] = {}

    def get(self, db: Database, queue: _QueueCtx, now: dt.datetime) -> float:
        key = (id(db), queue.id, queue.worker_id)
        with self._lock:
            hit = self._data.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        with db.read_connection() as conn:
            rate = depletion_rate(conn, queue, now)
        with self._lock:
            if len(self._data) > 10_000:
                self._data.clear()
            self._data[key] = (time.monotonic() + RATE_CACHE_S, rate)
        return rate

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_rates = _RateCache()


def _feed_pool_ids(queue_id: int, campaign_id: int) -> sa.Select:
    """The queue's feed pools, or every campaign pool for a queue without feeds (SQL)."""
    feeds = sa.select(QueueFeed.pool_id).where(QueueFeed.queue_id == queue_id)
    default = sa.select(Pool.id).where(
        Pool.campaign_id == campaign_id, ~sa.exists().where(QueueFeed.queue_id == queue_id)
    )
    return sa.union_all(feeds, default)


class _ContextCache:
    """Campaign settings, the worker's queue and its agent's skill, reused for
    CONTEXT_CACHE_S per process: a pause or a changed window takes effect
    within that time; feeds and records are always read live."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple, tuple[float, tuple]] = {}

    def get(self, db: Database, worker: WorkerIdentity) -> tuple[CampaignInfo, "_QueueCtx", int]:
        key = (id(db), worker.id, worker.campaign_id)
        with self._lock:
            hit = self._data.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        with db.read_connection() as conn:
            ctx = _lease_context(conn, worker)
        if ctx is None:
            raise NotFound(f"no campaign with id {worker.campaign_id}", field="campaign")
        if ctx.queue_id is None:
            with write_session(db) as session:
                _worker_queue(session, worker)
                ctx = _lease_context(session, worker)
        campaign = CampaignInfo(ctx.id, CampaignStatus(ctx.status), ctx.window_start, ctx.window_end,
                                TimezonePolicy(ctx.timezone_policy) == TimezonePolicy.NUMBER, ctx.default_timezone)
        queue = _QueueCtx(ctx.queue_id, campaign.id, SelectionMode(ctx.selection_mode), ctx.lead_minutes,
                          ctx.min_size, ctx.max_size, ctx.batch_size, worker.id)
        value = (campaign, queue, ctx.skill or 0)
        with self._lock:
            if len(self._data) > 10_000:
                self._data.clear()
            self._data[key] = (time.monotonic() + CONTEXT_CACHE_S, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_contexts = _ContextCache()


def _check_request_id(request_id: Any) -> Optional[str]:
    if request_id is None:
        return None
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 64:
        raise InvalidInput("request_id must be a string of 1-64 characters", field="request_id")
    return request_id


def _repeat_lease(db: Database, worker: WorkerIdentity, request_id: str, campaign: CampaignInfo,
                  lease_seconds: int) -> Optional[Lease]:
    """The records an earlier lease with this request_id handed this worker and
    that it still holds (its reply was lost), or None if there is none."""
    with write_session(db) as session:
        rows = session.execute(
            sa.select(*[_REC.c[c.key] for c in _RECORD_COLS], _REC.c.held_until)
            .where(_REC.c.held_by_worker_id == worker.id, record_status.status_is(RecordStatus.LEASED),
                   _REC.c.lease_request == request_id)
        ).all()
        if not rows:
            return None
        previous = _previous_attempts(session, [r.id for r in rows if r.attempts > 0])
    rows.sort(key=lambda r: (r.priority, r.queue_seq if r.queue_seq is not None else -1, r.id))
    return Lease([_payload(r, campaign, r.held_until, previous.get(r.id, [])) for r in rows], lease_seconds)


def lease(db: Database, worker: WorkerIdentity, max_records: int, *, lease_seconds: int = 900,
          now: Optional[dt.datetime] = None, request_id: Optional[str] = None) -> Lease:
    """Hand the worker up to ``max_records`` records it alone holds until
    ``lease_until`` (D1).  Empty when the campaign is not active or nothing is
    callable now (calling window X1, retry times P7/P9).

    Hot path on PostgreSQL: one autocommit ``UPDATE ... RETURNING`` that takes
    due web leads and callbacks from the pools and the rest from the queue,
    and returns with them the queue's fill and a DNC flag per record.  A
    refill (P3) runs in its own short transaction when the queue runs low.

    ``request_id`` (optional, made by the worker) makes a retry safe: the
    records are tagged with it, and a lease repeated with the same id returns
    the records of the first grant that the worker still holds instead of
    taking new ones (a reply lost to a timeout strands nothing).
    """
    request_id = _check_request_id(request_id)
    if not isinstance(max_records, int) or isinstance(max_records, bool) or not 0 <= max_records <= MAX_LEASE:
        raise InvalidInput(f"max must be a whole number 0-{MAX_LEASE}", field="max")
    if worker.campaign_id is None:
        raise Forbidden("worker is not assigned to a campaign")
    now = now or utcnow()
    _maybe_sweep(db, now)
    until = now + dt.timedelta(seconds=lease_seconds)
    campaign, queue, skill = _contexts.get(db, worker)
    if request_id is not None:
        again = _repeat_lease(db, worker, request_id, campaign, lease_seconds)
        if again is not None:
            logger.info("worker %s: lease %s repeated (%d records)", worker.name, request_id, len(again.records))
            return again
    if campaign.status != CampaignStatus.ACTIVE or max_records == 0:
        return Lease([], lease_seconds)
    fill_key = (id(db), queue.id)
    hint = _fill_hints.get(fill_key)
    if hint is not None and hint < max_records:
        # The last lease left the queue short: refill first, then one take.
        _refill_if_low(db, campaign, queue, skill, hint, max_records, now)
    rows, remaining = _take(db, campaign, queue, worker, skill, max_records, now, until, request_id)
    if len(rows) == max_records and _refill_due(queue, remaining, max_records) and _background.submit(
            (id(db), queue.id), _top_up, db, campaign, queue, skill, max_records, now):
        moved = 0  # topped up off this request's path; the next lease sees it
    else:
        moved = _refill_if_low(db, campaign, queue, skill, remaining, max_records, now)
    if moved and len(rows) < max_records:
        more, remaining = _take(db, campaign, queue, worker, skill, max_records - len(rows), now, until,
                                request_id)
        rows += more
    else:
        remaining += moved
    if not rows and remaining and _held_by_others(db, campaign, queue, now):
        # The queue holds records callable now but none could be taken:
        # another transaction holds their row locks for a moment.  (A
        # concurrent refill whose scan met these rows as "ready" keeps the
        # lock it took although its re-check then dropped them, until it
        # commits.)  Wait for it rather than hand out an empty lease.
        for pause in LOCKED_RETRY_S:
            time.sleep(pause)
            rows, remaining = _take(db, campaign, queue, worker, skill, max_records, now, until, request_id)
            if rows or not remaining:
                break
    if len(_fill_hints) > 10_000:
        _fill_hints.clear()
    _fill_hints[fill_key] = remaining
    memo: dict[Optional[str], bool] = {}
    for r in rows:
        if r.timezone not in memo:
            memo[r.timezone] = _callable(r.timezone, campaign, now)
    late = [r.id for r in rows if not memo[r.timezone]]
    dnc = {r.id for r in rows if r.on_dnc}
    previous: dict[int, list[dict]] = {}
    if late or dnc or any(r.attempts > 0 for r in rows):
        with write_session(db) as session:
            # X1 for zone values newer than the cached list: put such records back.
            if late:
                record_status.bulk_set_status(session, RecordStatus.READY, where=[CallRecord.id.in_(late)],
                                              from_statuses=[RecordStatus.LEASED], queue_seq=None)
                rows = [r for r in rows if r.id not in set(late)]
                _zones.clear()
            # D9: DNC again at lease time; such records are closed, not handed out.
            if dnc:
                record_status.bulk_set_status(session, RecordStatus.DNC, where=[CallRecord.id.in_(list(dnc))],
                                              from_statuses=[RecordStatus.LEASED])
                rows = [r for r in rows if r.id not in dnc]
                logger.info("worker %s: %d records found on the DNC list at lease", worker.name, len(dnc))
            previous = _previous_attempts(session, [r.id for r in rows if r.attempts > 0])
    rows.sort(key=lambda r: (r.priority, r.queue_seq if r.queue_seq is not None else -1, r.id))
    records = [_payload(r, campaign, until, previous.get(r.id, [])) for r in rows]
    return Lease(records, lease_seconds)


def window_params(executor, campaign: CampaignInfo, now: dt.datetime) -> Optional[dict]:
    """Bind values for :func:`_window_expr`: time-zone values now outside the
    window (``closed``) and whether records without a zone may be called.
    ``None``: nobody may be called now.  Memoised per minute: windows are set
    in whole minutes and zone offsets are whole minutes."""
    if not campaign.by_number:
        return {"closed": [], "null_ok": True} if _callable(None, campaign, now) else None
    token = _cache_token(executor)
    zones = _zones.get(executor, (token, campaign.id), campaign.id)
    key = (token, campaign, now.replace(second=0, microsecond=0), id(zones))
    hit = _window_memo.get(key)
    if hit is not None and hit[0] is zones:
        return hit[1]
    default_ok = _callable(None, campaign, now)
    named = [z for z in zones if z]
    closed = [z for z in named if not _callable(z, campaign, now)]
    params = None if named and len(closed) == len(named) and not default_ok else {"closed": closed,
                                                                                  "null_ok": default_ok}
    if len(_window_memo) > 1000:
        _window_memo.clear()
    _window_memo[key] = (zones, params)
    return params


#: window_params answers per (engine, campaign settings, minute, zone list)
_window_memo: dict[tuple, tuple[list, Optional[dict]]] = {}


def _window_expr(pg: bool = False) -> sa.ColumnElement[bool]:
    """X1 in SQL (:func:`window_params`): on PostgreSQL ``<> ALL(array)``, so
    the statement text is the same whatever the number of closed zones."""
    tz = _REC.c.timezone
    if pg:
        open_zone = tz != sa.all_(sa.bindparam("closed", type_=postgresql.ARRAY(sa.String)))
    else:
        open_zone = tz.not_in(sa.bindparam("closed", expanding=True))
    return sa.or_(
        sa.and_(tz.is_not(None), open_zone),
        sa.and_(tz.is_(None), sa.bindparam("null_ok", type_=sa.Boolean)),
    )


@functools.lru_cache(maxsize=4)
def _take_stmt(pg: bool) -> sa.Update:
    """The lease statement, built once per dialect (bind parameters only), so
    each lease costs a cache look-up instead of building a dozen SQL objects."""
    window = _window_expr(pg)
    now = sa.bindparam("now", type_=sa.DateTime)
    n = sa.bindparam("n", type_=sa.Integer)
    qid = sa.bindparam("q", type_=sa.Integer)
    urgent = sa.select(_REC.c.id, _REC.c.priority, sa.literal(-1).label("seq")).where(
        _REC.c.pool_id.in_(_feed_pool_ids(qid, sa.bindparam("c", type_=sa.Integer))),
        record_status.status_is(RecordStatus.READY), _REC.c.priority < sa.literal_column("0"),
        _REC.c.difficulty <= sa.bindparam("skill", type_=sa.Integer),
        sa.or_(_REC.c.next_attempt_at.is_(None), _REC.c.next_attempt_at <= now), window,
    ).order_by(_REC.c.priority, _REC.c.id).limit(n)
    queued = sa.select(_REC.c.id, _REC.c.priority, _REC.c.queue_seq.label("seq")).where(
        _REC.c.queue_id == qid, record_status.status_is(RecordStatus.QUEUED), window,
    ).order_by(_REC.c.priority, _REC.c.queue_seq, _REC.c.id).limit(n)
    if pg:
        urgent = urgent.with_for_update(skip_locked=True)
        queued = queued.with_for_update(skip_locked=True)
    u = urgent.cte("urgent").prefix_with("MATERIALIZED", dialect="postgresql")
    q = queued.cte("queued").prefix_with("MATERIALIZED", dialect="postgresql")
    both = sa.union_all(sa.select(u.c.id, u.c.priority, u.c.seq),
                        sa.select(q.c.id, q.c.priority, q.c.seq)).subquery()
    pick = sa.select(both.c.id).order_by(both.c.priority, both.c.seq, both.c.id).limit(n)
    extra: list = []
    if pg:
        # Folded into the same round trip: the queue's fill before this
        # statement (one CTE, evaluated once) and a DNC flag per record (D9).
        fill = sa.select(sa.func.count().label("n")).select_from(_REC).where(
            _REC.c.queue_id == qid, record_status.status_is(RecordStatus.QUEUED)).cte("fill")
        dnc_alias = DncEntry.__table__.alias("d")
        extra = [sa.select(fill.c.n).scalar_subquery().label("fill"),
                 sa.exists().where(dnc_alias.c.number == _REC.c.number).label("on_dnc")]
    cols = [_REC.c[c.key] for c in _RECORD_COLS]
    return record_status.status_update_stmt(
        RecordStatus.LEASED, where=[_REC.c.id.in_(pick)],
        from_statuses=[RecordStatus.READY, RecordStatus.QUEUED], returning=[*cols, *extra],
        values={"held_by_worker_id": sa.bindparam("w", type_=sa.Integer),
                "held_until": sa.bindparam("until", type_=sa.DateTime),
                "queue_id": qid, "updated_at": sa.bindparam("now_ts", type_=sa.DateTime),
                "lease_request": sa.bindparam("rq", type_=sa.String)},
    )


@functools.lru_cache(maxsize=1)
def _raw_take() -> pgraw.RawStatement:
    return pgraw.RawStatement(_take_stmt(True))


#: records left in each queue after the last lease in this process (a hint only)
_fill_hints: dict[tuple, int] = {}


class _BackgroundRefills:
    """Refills run off the lease's path when the server provides a spawner.

    A lease served in full by its queue does not wait for the top-up it
    triggers (the queue still holds half its size then, P3): the refill runs
    in a greenlet owned by the server (``controller.serve``), at most one per
    queue and process at a time, much as a dialer's hopper is filled by a
    background job.  Without a spawner (tests, the CLI, plain WSGI servers)
    every refill runs inline, as does one the lease itself needs.
    """

    def __init__(self) -> None:
        self._spawn: Optional[Callable[..., Any]] = None
        self._busy: set[tuple] = set()
        self._slots: Any = None

    def set_spawner(self, spawn: Optional[Callable[..., Any]], slots: Any = None) -> None:
        """``spawn(fn, *args)`` starts ``fn`` concurrently (e.g. a gevent Group's spawn); None: inline.
        ``slots``: a semaphore bounding how many top-ups touch the database at
        once (each holds a connection: ``controller.db.BACKGROUND_CONNECTIONS``)."""
        self._spawn = spawn
        self._slots = slots
        self._busy.clear()

    def submit(self, key: tuple, fn: Callable[..., int], *args: Any) -> bool:
        """Start ``fn(*args)`` in the background unless one for ``key`` runs. False: no spawner."""
        spawn = self._spawn
        if spawn is None:
            return False
        if key not in self._busy:
            self._busy.add(key)
            spawn(self._run, key, fn, args)
        return True

    def _run(self, key: tuple, fn: Callable[..., int], args: tuple) -> None:
        slots = self._slots
        try:
            if slots is None:
                fn(*args)
            else:
                with slots:
                    fn(*args)
        except Exception:  # a failed top-up must not kill the server; the next lease retries
            logger.exception("background refill of queue %s failed", key[1])
        finally:
            self._busy.discard(key)


_background = _BackgroundRefills()
set_refill_spawner = _background.set_spawner


def _refill_floor(queue: "_QueueCtx", max_records: int) -> int:
    """The least a refill tops a queue up to: its minimum, or the batch being leased."""
    return max(queue.min_size, min(max_records, queue.max_size))


def _refill_due(queue: "_QueueCtx", remaining: int, max_records: int) -> bool:
    """Whether :func:`_refill_if_low` may move records for this fill (no I/O)."""
    return remaining < queue.max_size and (
        remaining < _refill_floor(queue, max_records) or remaining * 2 < queue.max_size)


def _held_by_others(db: Database, campaign: CampaignInfo, queue: "_QueueCtx", now: dt.datetime) -> bool:
    """PostgreSQL, after a take that got nothing: whether the queue holds
    records callable now (then other transactions' row locks hid them; records
    outside the calling window are no reason to wait).  SQLite has one writer
    and no SKIP LOCKED: never."""
    if db.dialect != "postgresql":
        return False
    with db.read_connection() as conn:
        window = window_params(conn, campaign, now)
        return window is not None and bool(conn.execute(_callable_queued_stmt(), {**window, "q": queue.id}).scalar())


@functools.lru_cache(maxsize=1)
def _callable_queued_stmt() -> sa.Select:
    return sa.select(sa.exists().where(
        _REC.c.queue_id == sa.bindparam("q", type_=sa.Integer), record_status.status_is(RecordStatus.QUEUED),
        _window_expr(True)))


def _queue_fill(conn: sa.Connection, queue_id: int) -> int:
    """Records queued in a queue now."""
    return conn.scalar(sa.select(sa.func.count()).select_from(_REC).where(
        _REC.c.queue_id == queue_id, record_status.status_is(RecordStatus.QUEUED))) or 0


def _top_up(db: Database, campaign: CampaignInfo, queue: "_QueueCtx", skill: int, max_records: int,
            now: dt.datetime) -> int:
    """A background refill, as a lease would do it, for the fill the latest
    lease on this queue in this process saw (leases may have drained it since
    this top-up was scheduled; each lease statement returns the fill, so no
    count of its own is needed)."""
    remaining = _fill_hints.get((id(db), queue.id))
    if remaining is None:
        with db.read_connection() as conn:
            remaining = _queue_fill(conn, queue.id)
    return _refill_if_low(db, campaign, queue, skill, remaining, max_records, now)


def _refill_if_low(db: Database, campaign: CampaignInfo, queue: "_QueueCtx", skill: int, remaining: int,
                   max_records: int, now: dt.datetime) -> int:
    """Top the queue up if ``remaining`` is below its refill point (P3). Returns records moved."""
    if remaining >= queue.max_size:
        return 0
    rate = _rates.get(db, queue, now) if _refill_due(queue, remaining, max_records) else 0.0
    target = max(selection.refill_target(rate, queue.lead_minutes, queue.min_size, queue.max_size),
                 _refill_floor(queue, max_records))
    amount = selection.refill_amount(remaining, target, queue.batch_size)
    if not amount:
        return 0
    with write_connection(db) as conn:
        window = window_params(conn, campaign, now)
        if window is None:
            return 0
        return refill(conn, queue, campaign, skill, amount, window, now)


def _take(db: Database, campaign: CampaignInfo, queue: "_QueueCtx", worker: WorkerIdentity, skill: int, n: int,
          now: dt.datetime, until: dt.datetime, request_id: Optional[str] = None) -> tuple[list, int]:
    """One autocommit UPDATE ... RETURNING: due web leads / callbacks (priority
    < 0) straight from the queue's pools (D10, P9), then the queue's records in
    rule order.  Returns (rows, records left in the queue afterwards)."""
    with db.read_connection() as conn:
        pg = conn.dialect.name == "postgresql"
        window = window_params(conn, campaign, now)
        if window is None:
            return [], queue.max_size  # nothing callable now: no refill either
        params = {**window, "now": now, "n": n, "q": queue.id, "c": queue.campaign_id, "skill": skill,
                  "w": worker.id, "until": until, "now_ts": utcnow(), "rq": request_id}
        rows = _raw_take().rows(conn, params) if pg else conn.execute(_take_stmt(pg), params).all()
        taken_from_queue = sum(1 for r in rows if r.queue_seq is not None)
        if pg:
            fill = rows[0].fill if rows else _queue_fill(conn, queue.id)
            remaining = max(0, fill - taken_from_queue) if rows else fill
            return rows, remaining
        remaining = _queue_fill(conn, queue.id)
        dnc = _dnc_numbers(conn, (r.number for r in rows))
        return [_Row(r, r.number in dnc) for r in rows], remaining


class _Row:
    """A returned record row plus its DNC flag (SQLite path: flag looked up separately)."""

    __slots__ = ("_row", "on_dnc")

    def __init__(self, row, on_dnc: bool) -> None:
        self._row = row
        self.on_dnc = on_dnc

    def __getattr__(self, name):
        return getattr(self._row, name)



# --- results (P6, P7, P9) -------------------------------------------------------------

_RESULT_FIELDS = {
    "client_id", "record_id", "result", "call_uuid", "agent", "started_at", "answered_at",
    "connected_at", "ended_at", "hangup_cause", "disposition", "abandoned", "callback_at",
}


_RESULT_BY_VALUE = {r.value: r for r in AttemptResult}
_RESULT_CHOICES = ", ".join(r.value for r in AttemptResult)
#: optional string fields of a result and their longest length
_RESULT_STRINGS = (("call_uuid", 64), ("agent", 120), ("hangup_cause", 64), ("disposition", 64))
_RESULT_TIMES = ("started_at", "answered_at", "connected_at", "ended_at")


def parse_results(raw: Any) -> list[ResultIn]:
    """Validate the ``results`` list of a results upload; errors name the field.

    Runs for every result a worker uploads (20 per request on the benchmark):
    one pass over each item's keys, no per-field helper calls for absent keys."""
    if not isinstance(raw, list):
        raise InvalidInput("results must be a list", field="results")
    if len(raw) > MAX_RESULTS:
        raise InvalidInput(f"at most {MAX_RESULTS} results per request", field="results")
    out = []
    for i, item in enumerate(raw):
        if type(item) is not dict:
            raise InvalidInput("must be an object", field=f"results[{i}]")
        if not item.keys() <= _RESULT_FIELDS:
            raise InvalidInput(f"unknown key(s) {sorted(set(item) - _RESULT_FIELDS)}", field=f"results[{i}]")
        get = item.get
        client_id = get("client_id")
        if type(client_id) is not str or not 1 <= len(client_id) <= 64:
            raise InvalidInput("client_id must be a string of 1-64 characters", field=f"results[{i}].client_id")
        record_id = get("record_id")
        if type(record_id) is not int:
            raise InvalidInput("record_id must be an integer", field=f"results[{i}].record_id")
        value = get("result")
        result = (_RESULT_BY_VALUE.get(value) if type(value) is str
                  else value if isinstance(value, AttemptResult) else None)
        if result is None:
            raise InvalidInput(f"result must be one of {_RESULT_CHOICES}", field=f"results[{i}].result")
        abandoned = get("abandoned", False)
        if abandoned is not False and abandoned is not True:
            raise InvalidInput("abandoned must be true or false", field=f"results[{i}].abandoned")
        for key, max_len in _RESULT_STRINGS:
            text = get(key)
            if text is not None and (type(text) is not str or len(text) > max_len):
                raise InvalidInput(f"must be a string of at most {max_len} characters", field=f"results[{i}].{key}")
        times = [None, None, None, None]
        for k, key in enumerate(_RESULT_TIMES):
            stamp = get(key)
            if stamp is not None:
                times[k] = parse_time(stamp, f"results[{i}].{key}")
        callback_at = get("callback_at")
        if callback_at is not None:
            parse_time(callback_at, f"results[{i}].callback_at")
        out.append(ResultIn(client_id, record_id, result, get("call_uuid"), get("agent"), times[0], times[1],
                            times[2], times[3], get("hangup_cause"), get("disposition"), abandoned, callback_at))
    return out


def _callback_utc(value: str, zones: Optional[str], default_zone: str) -> dt.datetime:
    """A callback time: aware ISO as given, naive ISO in the party's time zone (P9)."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        names = [z for z in (zones or "").split() if calling_hours.is_known_zone(z)]
        name = names[0] if names else default_zone
        tz = calling_hours.zone(name) if calling_hours.is_known_zone(name) else dt.timezone.utc
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _recycle_rules(session: Session, campaign_id: int) -> dict[str, RecycleSpec]:
    rules = dict(DEFAULT_RECYCLE)
    for r in session.execute(sa.select(RecycleRule.result, RecycleRule.retry_minutes, RecycleRule.max_attempts)
                             .where(RecycleRule.campaign_id == campaign_id)):
        rules[r.result] = RecycleSpec(r.retry_minutes, r.max_attempts)
    return rules


#: what a results upload reads of each record it names (the record's lock is taken with it)
_RESULT_RECORD_COLS = ("id", "status", "held_by_worker_id", "campaign_id", "attempts", "number", "timezone",
                       "priority", "is_callback")


@functools.lru_cache(maxsize=8)
def _raw_lock_and_insert(cols: tuple) -> pgraw.RawStatement:
    """PostgreSQL, one statement for a results upload's first step: lock the
    records it names (in id order) and insert the new attempts (``ON CONFLICT
    (client_id) DO NOTHING``), the dialled number taken from the record.  Rows
    come back of two kinds: each locked record (``client_id`` null) and each
    inserted attempt's ``client_id`` (the other columns null).  A record that
    does not exist gets no attempt: :func:`record_results` reports it."""
    table = CallAttempt.__table__
    dialect = postgresql.dialect()
    shape = ", ".join(f"{c} {table.c[c].type.compile(dialect=dialect)}" for c in cols)
    nulls = ", ".join("NULL" for _ in _RESULT_RECORD_COLS)
    return pgraw.RawStatement(sa.text(
        f"WITH locked AS MATERIALIZED (SELECT {', '.join(_RESULT_RECORD_COLS)} FROM call_record "
        "WHERE id = ANY(CAST(:ids AS INTEGER[])) ORDER BY id FOR UPDATE), "
        f"inserted AS (INSERT INTO call_attempt ({', '.join(cols)}, number) "
        f"SELECT {', '.join('x.' + c for c in cols)}, l.number "
        f"FROM json_to_recordset(CAST(:rows AS json)) AS x({shape}) JOIN locked l ON l.id = x.record_id "
        "ON CONFLICT (client_id) DO NOTHING RETURNING client_id) "
        f"SELECT {', '.join('l.' + c for c in _RESULT_RECORD_COLS)}, NULL AS client_id FROM locked l "
        f"UNION ALL SELECT {nulls}, i.client_id FROM inserted i"))


@functools.lru_cache(maxsize=1)
def _raw_known_client_ids() -> pgraw.RawStatement:
    return pgraw.RawStatement(sa.text("SELECT client_id FROM call_attempt WHERE client_id = ANY(:ids)")
                              .bindparams(sa.bindparam("ids", type_=postgresql.ARRAY(sa.String))))


def _attempt_rows(worker: WorkerIdentity, fresh: Sequence[ResultIn], now: dt.datetime) -> list[dict]:
    """call_attempt rows of new results (without ``number``: it is the record's)."""
    return [
        {
            "client_id": r.client_id, "record_id": r.record_id, "campaign_id": worker.campaign_id,
            "worker_id": worker.id, "agent_id": worker.agent_id, "call_uuid": r.call_uuid,
            "started_at": r.started_at or now, "answered_at": r.answered_at, "connected_at": r.connected_at,
            "ended_at": r.ended_at, "result": r.result.value, "hangup_cause": r.hangup_cause,
            "disposition": r.disposition, "abandoned": r.abandoned or r.result == AttemptResult.ABANDONED,
            "received_at": now,
        }
        for r in fresh
    ]


def _insert_ignore(conn: sa.Connection, rows: list[dict]) -> set[str]:
    """SQLite: INSERT attempts, skipping client_ids already stored; returns those inserted."""
    if not rows:
        return set()
    stmt = sqlite.insert(CallAttempt.__table__).on_conflict_do_nothing(index_elements=["client_id"])
    return set(conn.execute(stmt.returning(CallAttempt.__table__.c.client_id), rows).scalars())


@functools.lru_cache(maxsize=1)
def _records_for_results() -> sa.Select:
    """SQLite: the records a results upload names (the upload holds the one write lock)."""
    return sa.select(*[_REC.c[c] for c in _RESULT_RECORD_COLS]).where(
        _REC.c.id.in_(sa.bindparam("ids", expanding=True))).order_by(_REC.c.id)


def record_results(db: Database, worker: WorkerIdentity, results: Sequence[ResultIn],
                   now: Optional[dt.datetime] = None) -> ResultsOutcome:
    """Store attempt results and move their records on (P6, P7, P9), idempotent on ``client_id``.

    A replayed ``client_id`` (lost reply, contingency flush, P10) is reported in
    ``duplicates`` and changes nothing.  A record in another campaign makes the
    whole upload :class:`Forbidden` (the transaction rolls back: nothing
    stored).  A result for a record whose lease already expired still counts
    (the call happened): it moves the record on if nobody else holds it, and
    is stored as an attempt only if another worker has re-leased it (that
    worker's lease is left alone).

    Lock the records, ``INSERT ... ON CONFLICT (client_id) DO NOTHING
    RETURNING`` (what comes back is what is new, even when two replays race on
    two controllers), one UPDATE of the records.  On PostgreSQL the first two
    are one statement (:func:`_raw_lock_and_insert`) run on psycopg directly.
    (psycopg's pipeline mode saved two round trips here but cost about a fifth
    more CPU, client and server, than ``BEGIN``, two statements and ``COMMIT``
    one after the other.)
    """
    now = now or utcnow()
    if not results:
        return ResultsOutcome([], [])
    fresh: list[ResultIn] = []
    seen: set[str] = set()
    for r in results:
        if r.client_id not in seen:
            seen.add(r.client_id)
            fresh.append(r)
    record_ids = sorted({r.record_id for r in fresh})
    # read before the transaction: cached, and no statement of its own inside it
    rules = _rules.get(db, worker.campaign_id)
    campaign = _campaign_of(db, worker.campaign_id) if any(r.callback_at for r in fresh) else None
    with write_connection(db) as conn:
        if db.dialect == "postgresql":
            attempts = _attempt_rows(worker, fresh, now)
            records, inserted = {}, set()
            for row in _raw_lock_and_insert(tuple(attempts[0])).rows(
                    conn, {"ids": pgraw.int_array(record_ids), "rows": record_status.pg_json(attempts)}):
                if row.client_id is None:
                    records[row.id] = row
                else:
                    inserted.add(row.client_id)
            _check_results(results, records, worker, inserted, lambda ids: {
                row.client_id for row in _raw_known_client_ids().rows(conn, {"ids": ids})})
            changes = _result_changes(fresh, records, inserted, worker, rules, campaign, now)
            record_status.bulk_set_status_rows(conn, changes)
        else:
            records = {row.id: row for row in conn.execute(_records_for_results(), {"ids": record_ids})}
            present = [r for r in fresh if r.record_id in records]
            rows = _attempt_rows(worker, present, now)
            for row in rows:
                row["number"] = records[row["record_id"]].number
            inserted = _insert_ignore(conn, rows)
            _check_results(results, records, worker, inserted, lambda ids: set(conn.scalars(
                sa.select(CallAttempt.client_id).where(CallAttempt.client_id.in_(ids)))))
            record_status.bulk_set_status_rows(conn, _result_changes(fresh, records, inserted, worker, rules,
                                                                     campaign, now))
    accepted = list(dict.fromkeys(r.client_id for r in results if r.client_id in inserted))
    duplicates = list(dict.fromkeys(r.client_id for r in results if r.client_id not in inserted))
    return ResultsOutcome(accepted, duplicates)


def _check_results(results: Sequence[ResultIn], records: Mapping[int, Any], worker: WorkerIdentity,
                   inserted: set[str], known_client_ids: Callable[[list[str]], set[str]]) -> None:
    """Raise (rolling the upload back) for a record that does not exist, unless
    its result is a replay already stored, or for one in another campaign."""
    missing = [r for r in results if r.record_id not in records]
    if missing:
        known = known_client_ids([r.client_id for r in missing])
        for i, r in enumerate(results):
            if r.record_id not in records and r.client_id not in known:
                raise NotFound(f"no record with id {r.record_id}", field=f"results[{i}].record_id")
    for i, r in enumerate(results):
        if r.client_id in inserted and records[r.record_id].campaign_id != worker.campaign_id:
            raise Forbidden(f"record {r.record_id} is not in this worker's campaign",
                            field=f"results[{i}].record_id")


def _result_changes(fresh: Sequence[ResultIn], records: Mapping[int, Any], inserted: set[str],
                    worker: WorkerIdentity, rules: Mapping[str, RecycleSpec], campaign: Optional[CampaignInfo],
                    now: dt.datetime) -> list[dict]:
    """The record updates for the new results, in call order (P6, P7, P9).

    A late result (its lease ran out, D1/P10) for a record another worker now
    holds is kept as an attempt but leaves the new holder's lease alone."""
    new = [r for r in fresh if r.client_id in inserted and records[r.record_id].held_by_worker_id in (None, worker.id)]
    if not new:
        return []
    state: dict[int, dict] = {}
    for r in new:
        if r.record_id not in state:
            row = records[r.record_id]
            state[r.record_id] = dict(status=record_status.as_status(row.status), attempts=row.attempts,
                                      priority=row.priority, is_callback=row.is_callback, timezone=row.timezone)
    changed: dict[int, dict] = {}
    for r in sorted(new, key=lambda r: r.started_at or now):
        changed[r.record_id] = _apply(state[r.record_id], r, rules, campaign, now)
    return [{"id": rid, "from_status": record_status.as_status(records[rid].status), **values}
            for rid, values in changed.items()]



def _campaign_of(db: Database, campaign_id: int) -> CampaignInfo:
    with db.read_connection() as conn:
        return _campaign(conn, campaign_id)


class _RulesCache:
    """Recycle rules per campaign, re-read every RULES_CACHE_S (they change rarely)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple, tuple[float, dict[str, RecycleSpec]]] = {}

    def get(self, db: Database, campaign_id: int) -> dict[str, RecycleSpec]:
        key = (id(db), campaign_id)
        with self._lock:
            hit = self._data.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        with db.read_connection() as conn:
            rules = _recycle_rules(conn, campaign_id)
        with self._lock:
            self._data[key] = (time.monotonic() + RULES_CACHE_S, rules)
        return rules

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_rules = _RulesCache()


_FINAL = frozenset({RecordStatus.DONE, RecordStatus.EXHAUSTED, RecordStatus.DNC})


def _apply(state: dict, r: ResultIn, rules: Mapping[str, RecycleSpec], campaign: CampaignInfo,
           now: dt.datetime) -> dict:
    """Next status and fields of a record after one result (pure; mutates ``state``)."""
    result = r.result._value_  # (the ``value`` property costs a descriptor call per use)
    fields: dict[str, Any] = {"last_result": result}
    if r.disposition is not None:
        fields["disposition"] = r.disposition
    if result not in NOT_DIALED:
        state["attempts"] += 1
        fields["attempts"] = state["attempts"]
    if state["is_callback"]:
        # The callback has been made; it goes back to the pool's normal order.
        state["is_callback"] = False
        fields["is_callback"] = False
        if state["priority"] == CALLBACK_PRIORITY:
            state["priority"] = 0
            fields["priority"] = 0
    current = state["status"]
    if current in _FINAL:
        new = current  # a late result never re-opens a closed record
    elif result == AttemptResult.DNC.value:
        new = RecordStatus.DNC
    elif r.callback_at:
        new = RecordStatus.READY
        fields["next_attempt_at"] = _callback_utc(r.callback_at, state["timezone"] if campaign.by_number else None,
                                                  campaign.default_timezone)
        fields["is_callback"] = True
        fields["priority"] = min(state["priority"], CALLBACK_PRIORITY)
        state["is_callback"], state["priority"] = True, fields["priority"]
    elif result == AttemptResult.ANSWERED.value:
        new = RecordStatus.DONE
    elif result == AttemptResult.OUTSIDE_HOURS.value:
        new = RecordStatus.READY
    else:
        spec = rules.get(result, RecycleSpec(60, 3))
        if state["attempts"] >= spec.max_attempts:
            new = RecordStatus.EXHAUSTED
        else:
            new = RecordStatus.READY
            fields["next_attempt_at"] = now + dt.timedelta(minutes=spec.retry_minutes)
    if new != current and new == RecordStatus.READY:
        fields["queue_seq"] = None
    if new != current and new not in record_status.ALLOWED[current]:
        new = current
    state["status"] = new
    return {"status": new, **fields}


# --- release, dial-check ------------------------------------------------------------------


def _held_check(session: Session, worker: WorkerIdentity, record_ids: Sequence[int], field: str) -> dict:
    rows = {r.id: r for r in session.execute(
        sa.select(CallRecord.id, CallRecord.status, CallRecord.held_by_worker_id, CallRecord.campaign_id,
                  CallRecord.number, CallRecord.timezone)
        .where(CallRecord.id.in_(list(record_ids)))
    )}
    for i, rid in enumerate(record_ids):
        row = rows.get(rid)
        if row is None:
            raise NotFound(f"no record with id {rid}", field=f"{field}[{i}]")
        if row.campaign_id != worker.campaign_id or (
            row.held_by_worker_id is not None and row.held_by_worker_id != worker.id
        ):
            raise Forbidden(f"record {rid} is not held by this worker", field=f"{field}[{i}]")
    return rows


def _ids(values: Any, field: str = "record_ids") -> list[int]:
    if not isinstance(values, list):
        raise InvalidInput(f"{field} must be a list of integers", field=field)
    if len(values) > MAX_RESULTS:
        raise InvalidInput(f"at most {MAX_RESULTS} ids", field=field)
    for i, v in enumerate(values):
        if not isinstance(v, int) or isinstance(v, bool):
            raise InvalidInput("must be an integer", field=f"{field}[{i}]")
    return list(dict.fromkeys(values))


def release(db: Database, worker: WorkerIdentity, record_ids: Any) -> int:
    """Give leased records back to their pools undialed. Returns how many."""
    ids = _ids(record_ids)
    if not ids:
        return 0
    with write_session(db) as session:
        _held_check(session, worker, ids, "record_ids")
        return record_status.bulk_set_status(
            session, RecordStatus.READY,
            where=[CallRecord.id.in_(ids), CallRecord.held_by_worker_id == worker.id],
            from_statuses=[RecordStatus.LEASED], queue_seq=None,
        )


def dial_check(db: Database, worker: WorkerIdentity, record_ids: Any,
               now: Optional[dt.datetime] = None, lease_seconds: Optional[int] = None,
               ) -> tuple[list[int], dict[int, str]]:
    """Right before dialing: still held, not on the DNC list (D9), inside the
    calling window (X1)?  DNC hits are closed at once.  With ``lease_seconds``,
    the records found ok are renewed to ``now + lease_seconds``: every call
    starts with a full lease, so a long call does not outlive it (D1)."""
    ids = _ids(record_ids)
    now = now or utcnow()
    ok: list[int] = []
    refused: dict[int, str] = {}
    if not ids:
        return ok, refused
    with write_session(db) as session:
        rows = _held_check(session, worker, ids, "record_ids")
        campaign = _campaign(session, worker.campaign_id)
        dnc = _dnc_numbers(session, (r.number for r in rows.values()))
        newly_dnc = []
        for rid in ids:
            row = rows[rid]
            if row.status != RecordStatus.LEASED or row.held_by_worker_id != worker.id:
                refused[rid] = "not_held"
            elif row.number in dnc:
                refused[rid] = "dnc"
                newly_dnc.append(rid)
            elif not _callable(row.timezone, campaign, now):
                refused[rid] = "outside_hours"
            else:
                ok.append(rid)
        if newly_dnc:
            record_status.bulk_set_status(session, RecordStatus.DNC, where=[CallRecord.id.in_(newly_dnc)],
                                          from_statuses=[RecordStatus.LEASED])
        if ok and lease_seconds:
            record_status.renew_leases(session, worker.id, now + dt.timedelta(seconds=lease_seconds), ids=ok)
    return ok, refused


# --- web leads (D10) ----------------------------------------------------------------------


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def set_campaign_api_key(db: Database, campaign_id: int) -> str:
    """A new web-lead API key for the campaign (shown once, stored hashed)."""
    import secrets

    key = secrets.token_urlsafe(24)
    with db.session() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise NotFound(f"no campaign with id {campaign_id}", field="campaign")
        campaign.api_key_hash = hash_api_key(key)
    return key


def _key_ok(stored: Optional[str], key: str) -> bool:
    if not stored or not key:
        return False
    if stored.startswith(("pbkdf2:", "scrypt:")):
        from werkzeug.security import check_password_hash

        return check_password_hash(stored, key)
    return hmac.compare_digest(stored, hash_api_key(key))


_LEAD_FIELDS = {"campaign", "number", "name", "city", "region", "country", "extra", "pool"}


def add_web_lead(db: Database, api_key: Optional[str], payload: Any) -> tuple[int, bool]:
    """Insert a web lead at top priority (D10). Returns (record id, created).

    The number is parsed with the campaign's default region and stored E.164;
    a number already in the campaign is re-opened at top priority instead of
    duplicated; a DNC number is refused.
    """
    if not isinstance(payload, dict):
        raise InvalidInput("body must be a JSON object", field="body")
    unknown = set(payload) - _LEAD_FIELDS
    if unknown:
        raise InvalidInput(f"unknown key(s) {sorted(unknown)}", field=sorted(unknown)[0])
    campaign_ref = payload.get("campaign")
    if not isinstance(campaign_ref, (str, int)) or isinstance(campaign_ref, bool):
        raise InvalidInput("campaign (name or id) is required", field="campaign")
    number_raw = payload.get("number")
    if not isinstance(number_raw, str) or not 3 <= len(number_raw) <= 32:
        raise InvalidInput("number is required", field="number")
    for key in ("name", "city", "region", "pool"):
        if payload.get(key) is not None and (not isinstance(payload[key], str) or len(payload[key]) > 120):
            raise InvalidInput(f"{key} must be a string of at most 120 characters", field=key)
    if payload.get("country") is not None and (not isinstance(payload["country"], str) or len(payload["country"]) != 2):
        raise InvalidInput("country must be a 2-letter code", field="country")
    if payload.get("extra") is not None and not isinstance(payload["extra"], dict):
        raise InvalidInput("extra must be an object", field="extra")
    with write_session(db) as session:
        stmt = sa.select(Campaign)
        if isinstance(campaign_ref, int) or campaign_ref.isdigit():
            stmt = stmt.where(sa.or_(Campaign.id == int(campaign_ref), Campaign.name == str(campaign_ref)))
        else:
            stmt = stmt.where(Campaign.name == campaign_ref)
        campaign = session.scalar(stmt.limit(1))
        if campaign is None or not _key_ok(campaign.api_key_hash, api_key or ""):
            # Same answer for "no such campaign" and "wrong key": no probing.
            raise Unauthorized("unknown campaign or wrong API key")
        norm = numbers.normalise(number_raw, campaign.default_region)
        if not norm:
            raise InvalidInput(f"number {number_raw!r}: {norm.message}", field="number")
        e164 = norm.e164
        if _dnc_numbers(session, [e164]):
            raise InvalidInput("number is on the do-not-call list", field="number")
        existing = session.scalar(
            sa.select(CallRecord).where(CallRecord.campaign_id == campaign.id, CallRecord.number == e164)
        )
        if existing is not None:
            if existing.status in (RecordStatus.DONE, RecordStatus.EXHAUSTED):
                record_status.set_status(existing, RecordStatus.READY, priority=WEB_LEAD_PRIORITY,
                                         next_attempt_at=None, queue_seq=None)
            elif existing.status == RecordStatus.READY:
                existing.priority = WEB_LEAD_PRIORITY
                existing.next_attempt_at = None
            elif existing.status == RecordStatus.QUEUED:
                record_status.set_status(existing, RecordStatus.READY, priority=WEB_LEAD_PRIORITY,
                                         next_attempt_at=None, queue_seq=None)
            elif existing.status == RecordStatus.DNC:
                raise InvalidInput("number is on the do-not-call list", field="number")
            return existing.id, False
        pool_q = sa.select(Pool).where(Pool.campaign_id == campaign.id)
        if payload.get("pool"):
            pool = session.scalar(pool_q.where(Pool.name == payload["pool"]))
            if pool is None:
                raise InvalidInput(f"no pool {payload['pool']!r} in the campaign", field="pool")
        else:
            pool = session.scalar(pool_q.order_by(Pool.position, Pool.id).limit(1))
            if pool is None:
                pool = Pool(campaign_id=campaign.id, name="web-leads", position=0)
                session.add(pool)
                session.flush()
        record = CallRecord(
            campaign_id=campaign.id, pool_id=pool.id, number=e164, name=payload.get("name"),
            city=payload.get("city") or norm.city, region=payload.get("region") or norm.region,
            country=payload.get("country") or norm.country,
            timezone=norm.timezone_text, extra=payload.get("extra"),
            priority=WEB_LEAD_PRIORITY, difficulty=pool.difficulty, status=RecordStatus.READY,
        )
        session.add(record)
        session.flush()
        logger.info("campaign %s: web lead %s added as record %s", campaign.id, e164, record.id)
        new_zone = record.timezone
        rid = record.id
    if new_zone:
        _zones.clear()  # a zone value the cache has not seen must become callable now
    return rid, True

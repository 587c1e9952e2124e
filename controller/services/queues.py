"""Pools, queues and feeds: create, inspect and change them live (SPEC P1, P2, P4, P5, P8, P12).

Views (dashboard), the worker API and ``dialer queue`` commands call these
functions; the signatures are stable.  Every function takes the
:class:`~controller.db.Database` first and returns frozen snapshots, never
ORM objects, so callers hold no session.

Live changes (P8): changing a queue's feeds or rule puts the records already
moved into that queue (status ``queued``, not yet leased) back into their
pools, so the very next lease follows the new rule; leased records stay with
their worker.  Nothing stops while this happens.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any, Iterable, Mapping, Optional, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from esl_dialer.messages import RecordStatus, SelectionMode

from .. import record_status
from ..db import Database
from ..errors import Conflict, InvalidInput, NotFound
from ..models import Campaign, CallAttempt, CallRecord, Pool, Queue, QueueFeed, Worker, utcnow
from .txn import write_session

logger = logging.getLogger(__name__)

#: moving window over which a queue's depletion rate is measured (P3)
RATE_WINDOW_MINUTES = 5.0
#: shortest span a depletion rate is measured over (a worker's first minute)
RATE_MIN_SPAN_MINUTES = 1.0

_UNSET: Any = object()


@dataclasses.dataclass(frozen=True)
class FeedSpec:
    """One pool feeding a queue: priority ``position`` (lower first), percentage
    ``weight`` and whether other queues may draw from it when theirs run dry."""

    pool_id: int
    position: int = 0
    weight: float = 0.0
    shareable: bool = False


@dataclasses.dataclass(frozen=True)
class FeedView:
    pool_id: int
    pool_name: str
    position: int
    weight: float
    shareable: bool
    served: int


@dataclasses.dataclass(frozen=True)
class PoolView:
    id: int
    campaign_id: int
    name: str
    position: int
    difficulty: int
    counts: Mapping[str, int]  # records by status value

    @property
    def ready(self) -> int:
        return self.counts.get(RecordStatus.READY.value, 0)


@dataclasses.dataclass(frozen=True)
class QueueView:
    id: int
    campaign_id: int
    name: str
    worker_id: Optional[int]
    worker_name: Optional[str]
    selection_mode: SelectionMode
    lead_minutes: float
    min_size: int
    max_size: int
    batch_size: int
    queued: int  # records waiting in the queue (not yet leased)
    leased: int  # records held by the queue's worker
    rate_per_minute: float  # depletion rate over RATE_WINDOW_MINUTES (P3)
    feeds: tuple[FeedView, ...]


# --- look-ups ----------------------------------------------------------------


def resolve_campaign_id(db: Database, campaign: int | str) -> int:
    """A campaign id from an id or a name (CLI convenience)."""
    with db.session() as session:
        return _campaign_id(session, campaign)


def _campaign_id(session: Session, campaign: int | str) -> int:
    if isinstance(campaign, int) or (isinstance(campaign, str) and campaign.isdigit()):
        row = session.get(Campaign, int(campaign))
        if row is not None:
            return row.id
    found = session.scalar(sa.select(Campaign.id).where(Campaign.name == str(campaign)))
    if found is None:
        raise NotFound(f"no campaign {campaign!r}", field="campaign")
    return found


def _pool(session: Session, pool_id: int) -> Pool:
    pool = session.get(Pool, pool_id)
    if pool is None:
        raise NotFound(f"no pool with id {pool_id}", field="pool_id")
    return pool


def _queue(session: Session, queue_id: int, *, lock: bool = False) -> Queue:
    stmt = sa.select(Queue).where(Queue.id == queue_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    queue = session.scalar(stmt)
    if queue is None:
        raise NotFound(f"no queue with id {queue_id}", field="queue_id")
    return queue


def _resolve_id(db: Database, model, campaign: int | str, key: int | str, field: str) -> int:
    """The id of a pool or queue of ``campaign`` given by id or by name."""
    with db.session() as session:
        cid = _campaign_id(session, campaign)
        if isinstance(key, int) or str(key).isdigit():
            row = session.get(model, int(key))
            if row is not None and row.campaign_id == cid:
                return row.id
        found = session.scalar(sa.select(model.id).where(model.campaign_id == cid, model.name == str(key)))
        if found is None:
            raise NotFound(f"no {field} {key!r} in campaign {campaign!r}", field=field)
        return found


def resolve_pool_id(db: Database, campaign: int | str, pool: int | str) -> int:
    return _resolve_id(db, Pool, campaign, pool, "pool")


def resolve_queue_id(db: Database, campaign: int | str, queue: int | str) -> int:
    return _resolve_id(db, Queue, campaign, queue, "queue")


# --- pools (P1) --------------------------------------------------------------


def _pool_counts(session: Session, pool_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {pid: {} for pid in pool_ids}
    if not pool_ids:
        return counts
    rows = session.execute(
        sa.select(CallRecord.pool_id, CallRecord.status, sa.func.count())
        .where(CallRecord.pool_id.in_(pool_ids))
        .group_by(CallRecord.pool_id, CallRecord.status)
    )
    for pool_id, status, n in rows:
        counts[pool_id][RecordStatus(status).value] = n
    return counts


def _pool_view(pool: Pool, counts: Mapping[str, int]) -> PoolView:
    return PoolView(pool.id, pool.campaign_id, pool.name, pool.position, pool.difficulty, dict(counts))


def create_pool(
    db: Database, campaign_id: int, name: str, *, position: Optional[int] = None, difficulty: int = 0
) -> PoolView:
    """A new pool at the end of the campaign's pool order (or at ``position``)."""
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise InvalidInput("pool name must be 1-120 characters", field="name")
    if not isinstance(difficulty, int) or difficulty < 0:
        raise InvalidInput("difficulty must be a whole number >= 0", field="difficulty")
    with write_session(db) as session:
        if session.get(Campaign, campaign_id) is None:
            raise NotFound(f"no campaign with id {campaign_id}", field="campaign_id")
        if session.scalar(sa.select(Pool.id).where(Pool.campaign_id == campaign_id, Pool.name == name)):
            raise Conflict(f"campaign already has a pool named {name!r}", field="name")
        if position is None:
            last = session.scalar(sa.select(sa.func.max(Pool.position)).where(Pool.campaign_id == campaign_id))
            position = 0 if last is None else last + 1
        pool = Pool(campaign_id=campaign_id, name=name, position=position, difficulty=difficulty)
        session.add(pool)
        session.flush()
        return _pool_view(pool, {})


def list_pools(db: Database, campaign_id: int) -> list[PoolView]:
    """The campaign's pools in order, with record counts by status."""
    with db.session() as session:
        pools = session.scalars(
            sa.select(Pool).where(Pool.campaign_id == campaign_id).order_by(Pool.position, Pool.id)
        ).all()
        counts = _pool_counts(session, [p.id for p in pools])
        return [_pool_view(p, counts[p.id]) for p in pools]


def reorder_pools(db: Database, campaign_id: int, pool_ids: Sequence[int]) -> list[PoolView]:
    """Give the campaign's pools the order of ``pool_ids`` (P8).

    Pools not named keep their relative order after the named ones.  Queues
    without explicit feeds drain pools in this order.
    """
    with write_session(db) as session:
        pools = session.scalars(
            sa.select(Pool).where(Pool.campaign_id == campaign_id).order_by(Pool.position, Pool.id)
        ).all()
        by_id = {p.id: p for p in pools}
        for pid in pool_ids:
            if pid not in by_id:
                raise InvalidInput(f"pool {pid} is not in campaign {campaign_id}", field="pool_ids")
        if len(set(pool_ids)) != len(pool_ids):
            raise InvalidInput("a pool is named twice", field="pool_ids")
        ordered = [by_id[pid] for pid in pool_ids] + [p for p in pools if p.id not in set(pool_ids)]
        for i, pool in enumerate(ordered):
            pool.position = i
        # Default-rule queues are refilled from the new order at once (P8).
        _flush_default_queues(session, campaign_id)
    return list_pools(db, campaign_id)


def add_records(db: Database, pool_id: int, records: Iterable[Mapping[str, Any]]) -> list[int]:
    """Insert records (already scrubbed, ``number`` in E.164) into a pool (P8).

    The campaign loader does bulk imports with scrubbing; this is the small
    live-change path (dashboard, API).  A number already in the campaign is a
    :class:`Conflict`.
    """
    allowed = {"number", "name", "city", "region", "country", "timezone", "extra", "priority", "difficulty"}
    rows = []
    for i, rec in enumerate(records):
        unknown = set(rec) - allowed
        if unknown:
            raise InvalidInput(f"unknown field(s) {sorted(unknown)}", field=f"records[{i}]")
        number = rec.get("number")
        if not isinstance(number, str) or not number.startswith("+") or not number[1:].isdigit():
            raise InvalidInput("number must be E.164 (+ and digits)", field=f"records[{i}].number")
        rows.append(dict(rec))
    with write_session(db) as session:
        pool = _pool(session, pool_id)
        existing = set(
            session.scalars(
                sa.select(CallRecord.number).where(
                    CallRecord.campaign_id == pool.campaign_id,
                    CallRecord.number.in_([r["number"] for r in rows]),
                )
            )
        )
        if existing:
            raise Conflict(f"already in the campaign: {sorted(existing)[:5]}", field="number")
        now = utcnow()
        objs = []
        for r in rows:
            r.setdefault("difficulty", pool.difficulty)
            objs.append(CallRecord(campaign_id=pool.campaign_id, pool_id=pool.id, created_at=now, **r))
        session.add_all(objs)
        session.flush()
        return [o.id for o in objs]


def remove_records(db: Database, record_ids: Sequence[int]) -> int:
    """Delete records that nobody holds (P8); held (leased) records are left alone.

    Returns how many were removed.  Attempts of removed records go with them
    (ON DELETE CASCADE).
    """
    ids = _int_list(record_ids, "record_ids")
    with write_session(db) as session:
        result = session.execute(
            sa.delete(CallRecord)
            .where(CallRecord.id.in_(ids), CallRecord.status != RecordStatus.LEASED)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount


def move_records(db: Database, record_ids: Sequence[int], pool_id: int) -> int:
    """Move unheld records to another pool of the same campaign (P8). Returns the count."""
    ids = _int_list(record_ids, "record_ids")
    with write_session(db) as session:
        pool = _pool(session, pool_id)
        # Queued ones go back to ready first so the move takes effect at once.
        record_status.bulk_set_status(
            session, RecordStatus.READY,
            where=[CallRecord.id.in_(ids), CallRecord.campaign_id == pool.campaign_id],
            from_statuses=[RecordStatus.QUEUED],
            queue_seq=None,
        )
        result = session.execute(
            sa.update(CallRecord)
            .where(
                CallRecord.id.in_(ids),
                CallRecord.campaign_id == pool.campaign_id,
                CallRecord.status != RecordStatus.LEASED,
            )
            .values(pool_id=pool.id, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount


# --- queues (P2, P12) --------------------------------------------------------


def _validate_sizes(lead_minutes, min_size, max_size, batch_size) -> None:
    if lead_minutes is not None and (not isinstance(lead_minutes, (int, float)) or lead_minutes <= 0):
        raise InvalidInput("lead_minutes must be a number > 0", field="lead_minutes")
    for field, value in (("min_size", min_size), ("max_size", max_size), ("batch_size", batch_size)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise InvalidInput(f"{field} must be a whole number >= 1", field=field)


def create_queue(
    db: Database,
    campaign_id: int,
    name: str,
    *,
    worker_id: Optional[int] = None,
    selection_mode: SelectionMode | str = SelectionMode.PRIORITY,
    lead_minutes: float = 5.0,
    min_size: int = 20,
    max_size: int = 500,
    batch_size: int = 20,
    feeds: Optional[Sequence[FeedSpec | tuple]] = None,
) -> QueueView:
    """A queue in a campaign, optionally for a worker (one queue per worker per campaign)."""
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise InvalidInput("queue name must be 1-120 characters", field="name")
    mode = _mode(selection_mode)
    _validate_sizes(lead_minutes, min_size, max_size, batch_size)
    if min_size > max_size:
        raise InvalidInput("min_size must not exceed max_size", field="min_size")
    with write_session(db) as session:
        if session.get(Campaign, campaign_id) is None:
            raise NotFound(f"no campaign with id {campaign_id}", field="campaign_id")
        if session.scalar(sa.select(Queue.id).where(Queue.campaign_id == campaign_id, Queue.name == name)):
            raise Conflict(f"campaign already has a queue named {name!r}", field="name")
        if worker_id is not None:
            if session.get(Worker, worker_id) is None:
                raise NotFound(f"no worker with id {worker_id}", field="worker_id")
            other = session.scalar(
                sa.select(Queue.name).where(Queue.campaign_id == campaign_id, Queue.worker_id == worker_id)
            )
            if other:
                raise Conflict(f"worker {worker_id} already has queue {other!r} in this campaign", field="worker_id")
        queue = Queue(
            campaign_id=campaign_id, name=name, worker_id=worker_id, selection_mode=mode,
            lead_minutes=float(lead_minutes), min_size=min_size, max_size=max_size, batch_size=batch_size,
        )
        session.add(queue)
        session.flush()
        if feeds:
            _replace_feeds(session, queue, [_feed_spec(f) for f in feeds])
        qid = queue.id
    return get_queue(db, qid)


def get_queue(db: Database, queue_id: int, now: Optional[dt.datetime] = None) -> QueueView:
    """A queue with its fill and depletion rate (measured up to ``now``, default: the clock)."""
    with db.session() as session:
        return _queue_view(session, _queue(session, queue_id), now or utcnow())


def list_queues(db: Database, campaign_id: Optional[int] = None) -> list[QueueView]:
    with db.session() as session:
        stmt = sa.select(Queue).order_by(Queue.campaign_id, Queue.name)
        if campaign_id is not None:
            stmt = stmt.where(Queue.campaign_id == campaign_id)
        now = utcnow()
        return [_queue_view(session, q, now) for q in session.scalars(stmt).all()]


def queue_for_worker(db: Database, worker_id: int) -> Optional[QueueView]:
    """The worker's queue in its current campaign, if it has one."""
    with db.session() as session:
        worker = session.get(Worker, worker_id)
        if worker is None:
            raise NotFound(f"no worker with id {worker_id}", field="worker_id")
        queue = session.scalar(
            sa.select(Queue).where(Queue.worker_id == worker_id, Queue.campaign_id == worker.campaign_id)
        )
        return None if queue is None else _queue_view(session, queue, utcnow())


def update_queue(
    db: Database,
    queue_id: int,
    *,
    selection_mode: SelectionMode | str | None = None,
    lead_minutes: Optional[float] = None,
    min_size: Optional[int] = None,
    max_size: Optional[int] = None,
    batch_size: Optional[int] = None,
    worker_id: Optional[int] = _UNSET,
) -> QueueView:
    """Change a queue's rule or sizes while it runs (P8); ``None`` leaves a field as is."""
    _validate_sizes(lead_minutes, min_size, max_size, batch_size)
    with write_session(db) as session:
        queue = _queue(session, queue_id, lock=True)
        if selection_mode is not None:
            mode = _mode(selection_mode)
            if mode != queue.selection_mode:
                queue.selection_mode = mode
                _reset_schedule(session, queue)
        if lead_minutes is not None:
            queue.lead_minutes = float(lead_minutes)
        if min_size is not None:
            queue.min_size = min_size
        if max_size is not None:
            queue.max_size = max_size
        if batch_size is not None:
            queue.batch_size = batch_size
        if queue.min_size > queue.max_size:
            raise InvalidInput("min_size must not exceed max_size", field="min_size")
        if worker_id is not _UNSET:
            if worker_id is not None and session.get(Worker, worker_id) is None:
                raise NotFound(f"no worker with id {worker_id}", field="worker_id")
            if worker_id != queue.worker_id:
                flush_queue_session(session, queue.id)
                queue.worker_id = worker_id
    return get_queue(db, queue_id)


def set_feeds(
    db: Database,
    queue_id: int,
    feeds: Sequence[FeedSpec | tuple | Mapping[str, Any]],
    *,
    selection_mode: SelectionMode | str | None = None,
) -> QueueView:
    """Replace which pools feed the queue, in what order and share (P4, P5, P8).

    ``feeds`` items are :class:`FeedSpec`, tuples ``(pool_id, position, weight,
    shareable)`` or dicts with those keys.  In percentage mode the weights are
    relative shares (70/30 or 0.7/0.3 alike).  Records already queued go back
    to their pools, so the next lease follows the new rule.
    """
    specs = [_feed_spec(f, i) for i, f in enumerate(feeds)]
    with write_session(db) as session:
        queue = _queue(session, queue_id, lock=True)
        if selection_mode is not None:
            queue.selection_mode = _mode(selection_mode)
        _replace_feeds(session, queue, specs)
    return get_queue(db, queue_id)


def delete_queue(db: Database, queue_id: int) -> None:
    """Remove a queue; its queued records go back to their pools, leased ones stay leased."""
    with write_session(db) as session:
        queue = _queue(session, queue_id, lock=True)
        flush_queue_session(session, queue.id)
        # records keep no foreign key to their queue (migration 0006)
        session.execute(sa.update(CallRecord).where(CallRecord.queue_id == queue.id).values(queue_id=None))
        session.delete(queue)


def flush_queue(db: Database, queue_id: int) -> int:
    """Put the queue's not-yet-leased records back into their pools. Returns the count."""
    with write_session(db) as session:
        _queue(session, queue_id)
        return flush_queue_session(session, queue_id)


def flush_queue_session(session: Session, queue_id: int) -> int:
    return record_status.bulk_set_status(
        session, RecordStatus.READY,
        where=[CallRecord.queue_id == queue_id],
        from_statuses=[RecordStatus.QUEUED],
        queue_seq=None,
    )


# --- helpers -----------------------------------------------------------------


def _mode(value: SelectionMode | str) -> SelectionMode:
    try:
        return SelectionMode(value)
    except ValueError:
        choices = ", ".join(m.value for m in SelectionMode)
        raise InvalidInput(f"selection_mode must be one of {choices}", field="selection_mode") from None


def _int_list(values: Sequence[Any], field: str) -> list[int]:
    if not isinstance(values, (list, tuple)):
        raise InvalidInput(f"{field} must be a list of ids", field=field)
    out = []
    for i, v in enumerate(values):
        if not isinstance(v, int) or isinstance(v, bool):
            raise InvalidInput(f"{field}[{i}] must be an integer id", field=f"{field}[{i}]")
        out.append(v)
    return out


def _feed_spec(item: FeedSpec | tuple | Mapping[str, Any], index: int = 0) -> FeedSpec:
    field = f"feeds[{index}]"
    if isinstance(item, FeedSpec):
        spec = item
    elif isinstance(item, Mapping):
        unknown = set(item) - {"pool_id", "position", "weight", "shareable"}
        if unknown:
            raise InvalidInput(f"unknown key(s) {sorted(unknown)}", field=field)
        if "pool_id" not in item:
            raise InvalidInput("pool_id is required", field=f"{field}.pool_id")
        spec = FeedSpec(item["pool_id"], item.get("position", index), item.get("weight", 0.0),
                        item.get("shareable", False))
    elif isinstance(item, (tuple, list)) and 1 <= len(item) <= 4:
        spec = FeedSpec(*item)
    else:
        raise InvalidInput("a feed is (pool_id, position, weight, shareable)", field=field)
    if not isinstance(spec.pool_id, int) or isinstance(spec.pool_id, bool):
        raise InvalidInput("pool_id must be an integer", field=f"{field}.pool_id")
    if not isinstance(spec.position, int) or isinstance(spec.position, bool):
        raise InvalidInput("position must be an integer", field=f"{field}.position")
    if not isinstance(spec.weight, (int, float)) or isinstance(spec.weight, bool) or spec.weight < 0:
        raise InvalidInput("weight must be a number >= 0", field=f"{field}.weight")
    if not isinstance(spec.shareable, bool):
        raise InvalidInput("shareable must be true or false", field=f"{field}.shareable")
    return spec


def _replace_feeds(session: Session, queue: Queue, specs: Sequence[FeedSpec]) -> None:
    pool_ids = [s.pool_id for s in specs]
    if len(set(pool_ids)) != len(pool_ids):
        raise InvalidInput("a pool feeds the queue twice", field="feeds")
    if pool_ids:
        found = dict(
            session.execute(sa.select(Pool.id, Pool.campaign_id).where(Pool.id.in_(pool_ids))).all()
        )
        for i, pid in enumerate(pool_ids):
            if found.get(pid) != queue.campaign_id:
                raise InvalidInput(
                    f"pool {pid} is not in the queue's campaign", field=f"feeds[{i}].pool_id"
                )
    session.execute(sa.delete(QueueFeed).where(QueueFeed.queue_id == queue.id))
    for spec in specs:
        session.add(QueueFeed(
            queue_id=queue.id, pool_id=spec.pool_id, position=spec.position,
            weight=float(spec.weight), shareable=spec.shareable, served=0,
        ))
    session.expire(queue, ["feeds"])
    flushed = flush_queue_session(session, queue.id)
    logger.info("queue %s: feeds replaced (%d pools), %d queued records returned to pools",
                queue.id, len(specs), flushed)


def _reset_schedule(session: Session, queue: Queue) -> None:
    session.execute(sa.update(QueueFeed).where(QueueFeed.queue_id == queue.id).values(served=0))
    flush_queue_session(session, queue.id)


def _flush_default_queues(session: Session, campaign_id: int) -> None:
    with_feeds = sa.select(QueueFeed.queue_id).distinct()
    ids = session.scalars(
        sa.select(Queue.id).where(Queue.campaign_id == campaign_id, Queue.id.not_in(with_feeds))
    ).all()
    for qid in ids:
        flush_queue_session(session, qid)


def depletion_rate(session: Session, queue: Queue, now: dt.datetime,
                   window_minutes: float = RATE_WINDOW_MINUTES) -> float:
    """Records per minute the queue's worker used over the moving window (P3).

    Measured from stored attempts, so every controller process sees the same
    rate (no per-process counters).  A worker that started dialing less than
    a window ago is measured over the time since its first attempt in the
    window (at least RATE_MIN_SPAN_MINUTES): dividing by the whole window
    would put a fresh worker's rate at a fraction of its real pace, and its
    queue would be refilled in small batches, one per lease, for minutes.
    """
    if queue.worker_id is None:
        return 0.0
    since = now - dt.timedelta(minutes=window_minutes)
    n, first = session.execute(
        sa.select(sa.func.count(), sa.func.min(CallAttempt.received_at)).select_from(CallAttempt).where(
            CallAttempt.worker_id == queue.worker_id,
            CallAttempt.campaign_id == queue.campaign_id,
            CallAttempt.received_at >= since,
        )
    ).one()
    if not n:
        return 0.0
    span = min(window_minutes, max(RATE_MIN_SPAN_MINUTES, (now - first).total_seconds() / 60))
    return n / span


def _queue_view(session: Session, queue: Queue, now: dt.datetime) -> QueueView:
    counts = dict(
        session.execute(
            sa.select(CallRecord.status, sa.func.count())
            .where(CallRecord.queue_id == queue.id)
            .group_by(CallRecord.status)
        ).all()
    )
    leased = 0
    worker_name = None
    if queue.worker_id is not None:
        worker_name = session.scalar(sa.select(Worker.name).where(Worker.id == queue.worker_id))
        leased = session.scalar(
            sa.select(sa.func.count()).select_from(CallRecord).where(
                CallRecord.held_by_worker_id == queue.worker_id,
                record_status.status_is(RecordStatus.LEASED),
                CallRecord.campaign_id == queue.campaign_id,
            )
        ) or 0
    feeds = session.execute(
        sa.select(QueueFeed, Pool.name)
        .join(Pool, Pool.id == QueueFeed.pool_id)
        .where(QueueFeed.queue_id == queue.id)
        .order_by(QueueFeed.position, QueueFeed.id)
    ).all()
    return QueueView(
        id=queue.id, campaign_id=queue.campaign_id, name=queue.name, worker_id=queue.worker_id,
        worker_name=worker_name, selection_mode=SelectionMode(queue.selection_mode),
        lead_minutes=queue.lead_minutes, min_size=queue.min_size, max_size=queue.max_size,
        batch_size=queue.batch_size, queued=counts.get(RecordStatus.QUEUED, 0), leased=leased,
        rate_per_minute=round(depletion_rate(session, queue, now), 3),
        feeds=tuple(
            FeedView(f.pool_id, name, f.position, f.weight, f.shareable, f.served) for f, name in feeds
        ),
    )

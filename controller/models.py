"""The data model (SQLAlchemy 2.0 typed mapped classes).

Schema changes go through alembic (``migrations/``); a test compares these
classes with the migrated schema so the two cannot drift.  Record status is
changed only through :mod:`controller.record_status`.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from esl_dialer.messages import (
    AgentState,
    CampaignStatus,
    DialMode,
    RecordStatus,
    SelectionMode,
    TimezonePolicy,
)


def utcnow() -> dt.datetime:
    """Naive UTC: every timestamp column holds UTC without a zone (portable)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _enum(cls) -> sa.Enum:
    # Stored as the enum *value* in a VARCHAR (no native PG enum): cheap to extend.
    return sa.Enum(
        cls,
        native_enum=False,
        length=24,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
        name=cls.__name__.lower(),
    )


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class Campaign(Base):
    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    status: Mapped[CampaignStatus] = mapped_column(_enum(CampaignStatus), default=CampaignStatus.DRAFT)
    dial_mode: Mapped[DialMode] = mapped_column(_enum(DialMode), default=DialMode.PREDICTIVE)
    dial_ratio: Mapped[float] = mapped_column(default=1.0)  # lines per agent in power mode
    abandon_target: Mapped[float] = mapped_column(default=0.03)  # X1: 3 %
    window_start: Mapped[str] = mapped_column(String(5), default="08:00")  # local HH:MM
    window_end: Mapped[str] = mapped_column(String(5), default="21:00")
    timezone_policy: Mapped[TimezonePolicy] = mapped_column(
        _enum(TimezonePolicy), default=TimezonePolicy.NUMBER
    )
    default_timezone: Mapped[str] = mapped_column(String(64), default="America/New_York")
    default_region: Mapped[str] = mapped_column(String(2), default="US")
    caller_id_number: Mapped[Optional[str]] = mapped_column(String(32))
    caller_id_name: Mapped[Optional[str]] = mapped_column(String(64))
    abandon_message: Mapped[Optional[str]] = mapped_column(String(255))
    api_key_hash: Mapped[Optional[str]] = mapped_column(String(255))  # D10 web leads
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    pools: Mapped[list["Pool"]] = relationship(
        back_populates="campaign", order_by="Pool.position", cascade="all, delete-orphan"
    )


class Pool(Base):
    """An ordered group of call records within a campaign (SPEC P1)."""

    __tablename__ = "pool"
    __table_args__ = (UniqueConstraint("campaign_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(default=0)
    difficulty: Mapped[int] = mapped_column(default=0)  # default for its records (P13)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    campaign: Mapped[Campaign] = relationship(back_populates="pools")


class Agent(Base):
    __tablename__ = "agent"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    extension: Mapped[str] = mapped_column(String(64))  # user/<ext> or any dial string
    skill_level: Mapped[int] = mapped_column(default=0)  # P13
    state: Mapped[AgentState] = mapped_column(_enum(AgentState), default=AgentState.OFFLINE)
    state_since: Mapped[dt.datetime] = mapped_column(default=utcnow)
    greeting_path: Mapped[Optional[str]] = mapped_column(String(255))  # D4
    password_hash: Mapped[Optional[str]] = mapped_column(String(255))  # agent console login
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Worker(Base):
    """A dialing device: one per agent (SPEC D1, D11)."""

    __tablename__ = "worker"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    token_hash: Mapped[str] = mapped_column(String(128), index=True)
    agent_id: Mapped[Optional[int]] = mapped_column(ForeignKey("agent.id", ondelete="SET NULL"))
    campaign_id: Mapped[Optional[int]] = mapped_column(ForeignKey("campaign.id", ondelete="SET NULL"))
    last_heartbeat: Mapped[Optional[dt.datetime]]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    agent: Mapped[Optional[Agent]] = relationship()


class Queue(Base):
    """A dialing device's queue within a campaign (SPEC P2, P12)."""

    __tablename__ = "queue"
    __table_args__ = (UniqueConstraint("campaign_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    worker_id: Mapped[Optional[int]] = mapped_column(ForeignKey("worker.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(120))
    selection_mode: Mapped[SelectionMode] = mapped_column(
        _enum(SelectionMode), default=SelectionMode.PRIORITY
    )
    lead_minutes: Mapped[float] = mapped_column(default=5.0)  # P3: hold ~this much work
    min_size: Mapped[int] = mapped_column(default=20)
    max_size: Mapped[int] = mapped_column(default=500)
    batch_size: Mapped[int] = mapped_column(default=20)  # records per lease
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    feeds: Mapped[list["QueueFeed"]] = relationship(
        back_populates="queue", order_by="QueueFeed.position", cascade="all, delete-orphan"
    )


class QueueFeed(Base):
    """Which pool feeds which queue, in what order and share (SPEC P4, P5, P8)."""

    __tablename__ = "queue_feed"
    __table_args__ = (UniqueConstraint("queue_id", "pool_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("queue.id", ondelete="CASCADE"))
    pool_id: Mapped[int] = mapped_column(ForeignKey("pool.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)  # priority order
    weight: Mapped[float] = mapped_column(default=0.0)  # percentage share
    shareable: Mapped[bool] = mapped_column(default=False)  # other queues may draw (P5)
    # Records this feed has put into its queue since its weights last changed
    # (P4 percentage scheduling state); migration 0002.
    served: Mapped[int] = mapped_column(default=0)

    queue: Mapped[Queue] = relationship(back_populates="feeds")
    pool: Mapped[Pool] = relationship()


class CallRecord(Base):
    __tablename__ = "call_record"
    __table_args__ = (
        UniqueConstraint("campaign_id", "number"),
        # Counts by pool and status (dashboard, pool views).
        Index("ix_record_pool_status", "pool_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    pool_id: Mapped[int] = mapped_column(ForeignKey("pool.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(20))  # E.164
    name: Mapped[Optional[str]] = mapped_column(String(200))
    city: Mapped[Optional[str]] = mapped_column(String(120))
    region: Mapped[Optional[str]] = mapped_column(String(120))  # state / province
    country: Mapped[Optional[str]] = mapped_column(String(2))
    timezone: Mapped[Optional[str]] = mapped_column(String(200))  # space-separated if several
    extra: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    status: Mapped[RecordStatus] = mapped_column(_enum(RecordStatus), default=RecordStatus.READY)
    priority: Mapped[int] = mapped_column(default=0)  # lower first; web leads get -100 (D10)
    difficulty: Mapped[int] = mapped_column(default=0)  # P13
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[Optional[dt.datetime]]
    is_callback: Mapped[bool] = mapped_column(default=False)  # P9
    last_result: Mapped[Optional[str]] = mapped_column(String(24))
    disposition: Mapped[Optional[str]] = mapped_column(String(64))
    # No foreign keys on these two (migration 0006): refills and leases set
    # them on thousands of rows a second, each check a lookup and a lock.
    # Deleting a queue or revoking a worker clears them (services.queues,
    # services.workers).
    queue_id: Mapped[Optional[int]]
    held_by_worker_id: Mapped[Optional[int]]
    held_until: Mapped[Optional[dt.datetime]]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    pool: Mapped[Pool] = relationship()
    # Order of hand-out within its queue, set at refill (P4); migration 0002.
    queue_seq: Mapped[Optional[int]]
    # The worker's request_id of the lease that handed it out, so a retried
    # lease returns the same records (lease idempotency); migration 0004.
    lease_request: Mapped[Optional[str]] = mapped_column(String(64))


class CallAttempt(Base):
    """One dial of one record (SPEC P6); ``client_id`` makes uploads idempotent (P10)."""

    __tablename__ = "call_attempt"
    __table_args__ = (Index("ix_attempt_record", "record_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("call_record.id", ondelete="CASCADE"))
    # No foreign keys on these three (migration 0006): each cost a row lookup
    # and share lock per inserted attempt.  campaign_id is the record's
    # campaign (deleted with it through record_id); revoking a worker clears
    # worker_id (services.workers.revoke_worker); agents are never deleted.
    campaign_id: Mapped[int]
    worker_id: Mapped[Optional[int]]
    agent_id: Mapped[Optional[int]]
    call_uuid: Mapped[Optional[str]] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    answered_at: Mapped[Optional[dt.datetime]]
    connected_at: Mapped[Optional[dt.datetime]]
    ended_at: Mapped[Optional[dt.datetime]]
    result: Mapped[str] = mapped_column(String(24))
    hangup_cause: Mapped[Optional[str]] = mapped_column(String(64))
    disposition: Mapped[Optional[str]] = mapped_column(String(64))
    abandoned: Mapped[bool] = mapped_column(default=False)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DncEntry(Base):
    __tablename__ = "dnc_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)  # E.164; unique index = look-up
    source: Mapped[Optional[str]] = mapped_column(String(120))
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RecycleRule(Base):
    """Per-campaign retry rule for one result (SPEC P7)."""

    __tablename__ = "recycle_rule"
    __table_args__ = (UniqueConstraint("campaign_id", "result"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    result: Mapped[str] = mapped_column(String(24))
    retry_minutes: Mapped[float] = mapped_column(default=60.0)
    max_attempts: Mapped[int] = mapped_column(default=3)


class User(Base):
    """A dashboard user (supervisor / manager)."""

    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(24), default="supervisor")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- distribution additions (migration 0002) --------------------------------

# Distribution hot paths (migration 0005).  Each index is partial on the
# status it serves, so a status change writes only into the indexes that can
# find the record in its new status; queries name the status as a literal
# (status_equals below) so prepared plans can use them.
#  - refill (P3, P13): fresh records by priority, due retries (P7) by due time,
#    each in its own index, so records waiting for a later retry are never scanned;
#  - urgent: web leads and callbacks (priority < 0, D10, P9) taken at lease time;
#  - a queue's records in lease order; a worker's leases, also scanned whole
#    for lease expiry (D1): it holds only the leased records.
def status_equals(value: str) -> sa.ColumnElement[bool]:
    """``call_record.status = '<value>'`` with the value in the SQL text (not a
    bind parameter), so a prepared plan can match a status-partial index."""
    return CallRecord.status == sa.literal_column(f"'{value}'")


def _partial_index(name: str, *columns, where: sa.ColumnElement[bool]) -> Index:
    return Index(name, *columns, postgresql_where=where, sqlite_where=where)


_READY = status_equals("ready")
_partial_index("ix_record_fresh", CallRecord.pool_id, CallRecord.difficulty, CallRecord.priority, CallRecord.id,
               where=sa.and_(_READY, CallRecord.next_attempt_at.is_(None)))
_partial_index("ix_record_due", CallRecord.pool_id, CallRecord.difficulty, CallRecord.next_attempt_at, CallRecord.id,
               where=sa.and_(_READY, CallRecord.next_attempt_at.is_not(None)))
_partial_index("ix_record_urgent", CallRecord.pool_id, CallRecord.priority, CallRecord.id,
               where=sa.and_(_READY, CallRecord.priority < sa.literal_column("0")))
_partial_index("ix_record_queue", CallRecord.queue_id, CallRecord.priority, CallRecord.queue_seq, CallRecord.id,
               where=status_equals("queued"))
_partial_index("ix_record_holder", CallRecord.held_by_worker_id, CallRecord.held_until,
               where=status_equals("leased"))
# Depletion rate of a worker's queue over a moving window (P3).
Index("ix_attempt_worker", CallAttempt.worker_id, CallAttempt.received_at)


class WorkerEvent(Base):
    """Outbox of events for a worker's SSE stream; shared by every controller process."""

    __tablename__ = "worker_event"
    __table_args__ = (Index("ix_worker_event_worker", "worker_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("worker.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


# --- remote-center ACD for IVR proxy calls (SPEC R3-R9, migration 0003) -----

from esl_dialer.messages import ProxyState  # noqa: E402  (appended section)


class AcdPeer(Base):
    """A local center allowed to place proxies here (inter-center API key, hashed)."""

    __tablename__ = "acd_peer"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128), index=True)
    # "center": a local center placing proxies; "switch": this center's own leg
    # acceptor (reads any entry, reports legs connected/ended).
    role: Mapped[str] = mapped_column(String(16), default="center")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AcdQueue(Base):
    """An ACD queue for one skill, holding proxies and served by operators."""

    __tablename__ = "acd_queue"

    id: Mapped[int] = mapped_column(primary_key=True)
    skill: Mapped[str] = mapped_column(String(64), unique=True)
    bridge_position: Mapped[int] = mapped_column(default=1)  # R6 default: next in line
    bridge_setup_s: Mapped[float] = mapped_column(default=5.0)
    offer_timeout_s: Mapped[float] = mapped_column(default=30.0)  # operator held for the leg
    token_ttl_s: Mapped[float] = mapped_column(default=60.0)
    default_service_s: Mapped[float] = mapped_column(default=180.0)  # before any history
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AcdOperator(Base):
    """A remote-center operator (human agent) reachable at ``extension``."""

    __tablename__ = "acd_operator"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    extension: Mapped[str] = mapped_column(String(255))  # dial string, e.g. user/2001
    state: Mapped[str] = mapped_column(String(16), default="offline")  # available|reserved|busy|offline
    state_since: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AcdMembership(Base):
    __tablename__ = "acd_membership"
    __table_args__ = (UniqueConstraint("queue_id", "operator_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("acd_queue.id", ondelete="CASCADE"))
    operator_id: Mapped[int] = mapped_column(ForeignKey("acd_operator.id", ondelete="CASCADE"))


class AcdEntry(Base):
    """One proxy call in a queue; its position is its rank among live entries."""

    __tablename__ = "acd_entry"
    __table_args__ = (
        Index("ix_acd_entry_live", "queue_id", "state", "id"),
        Index("ix_acd_entry_peer", "peer_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(36), unique=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("acd_queue.id", ondelete="CASCADE"))
    peer_id: Mapped[Optional[int]] = mapped_column(ForeignKey("acd_peer.id", ondelete="SET NULL"))
    state: Mapped[ProxyState] = mapped_column(_enum(ProxyState), default=ProxyState.WAITING)
    caller_number: Mapped[Optional[str]] = mapped_column(String(64))
    caller_name: Mapped[Optional[str]] = mapped_column(String(120))
    data: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)  # IVR choices, look-up answers
    token_hash: Mapped[Optional[str]] = mapped_column(String(128), index=True)
    token_expires_at: Mapped[Optional[dt.datetime]]
    token_used_at: Mapped[Optional[dt.datetime]]
    leg_uuid: Mapped[Optional[str]] = mapped_column(String(64))
    operator_id: Mapped[Optional[int]] = mapped_column(ForeignKey("acd_operator.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    offered_at: Mapped[Optional[dt.datetime]]
    bridged_at: Mapped[Optional[dt.datetime]]
    connected_at: Mapped[Optional[dt.datetime]]
    ended_at: Mapped[Optional[dt.datetime]]
    end_reason: Mapped[Optional[str]] = mapped_column(String(64))


class IvrMenu(Base):
    """An IVR menu document served to local centers (R3), with its ETag."""

    __tablename__ = "ivr_menu"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    etag: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

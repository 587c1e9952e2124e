"""Workers (dialing devices) and their agents: tokens, heartbeats, state, claims.

SPEC D1/D11 (a worker per agent, reaching the controller over HTTP), D7 (an
idle agent is claimed atomically for an overflow call), D8 (agent state is
reported on every change and shown to everyone; missed heartbeats mean
offline).

Tokens are random, shown once, stored as SHA-256 hex.  A plain hash (no salt,
no slow KDF) is right here: the token has 256 bits of entropy, and a fast
look-up by hash is what every API request needs.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import secrets
import threading
import time
from typing import Optional, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from esl_dialer.messages import AgentState

from .. import record_status
from ..db import Database
from ..errors import Conflict, InvalidInput, NotFound, Unauthorized
from ..models import Agent, CallAttempt, Campaign, CallRecord, Queue, Worker, utcnow
from . import events
from .txn import write_session

logger = logging.getLogger(__name__)

#: seconds an authenticated token stays cached in this process
AUTH_CACHE_SECONDS = 30.0
#: most leases one heartbeat renews (a worker holds a few dozen; this bounds a runaway)
HEARTBEAT_RENEW_MAX = 2000


#: agents an overflow call may go to: no active voice connection (D7).  A
#: worker reports DIALING while its own calls ring; the agent is free until one
#: answers (esl_dialer.team.FREE_STATES).
CLAIMABLE = (AgentState.IDLE, AgentState.DIALING)


class NoIdleAgent(Conflict):
    code = "no_idle_agent"


@dataclasses.dataclass(frozen=True)
class WorkerIdentity:
    id: int
    name: str
    campaign_id: Optional[int]
    agent_id: Optional[int]


@dataclasses.dataclass(frozen=True)
class NewWorker:
    id: int
    name: str
    token: str  # shown once; only its hash is stored
    agent_name: str
    extension: str
    campaign_id: int
    queue_id: int


@dataclasses.dataclass(frozen=True)
class AgentView:
    id: int
    name: str
    extension: str
    skill_level: int
    state: AgentState
    state_since: dt.datetime
    worker: Optional[str]
    worker_id: Optional[int]
    last_heartbeat: Optional[dt.datetime]

    def as_json(self) -> dict:
        return {
            "name": self.name, "extension": self.extension, "skill_level": self.skill_level,
            "state": self.state.value, "state_since": _iso(self.state_since),
            "worker": self.worker, "last_heartbeat": _iso(self.last_heartbeat),
        }


def _iso(value: Optional[dt.datetime]) -> Optional[str]:
    return None if value is None else value.isoformat() + "Z"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# --- add / authenticate ----------------------------------------------------------


def add_worker(
    db: Database,
    name: str,
    *,
    agent: str,
    campaign_id: int,
    skill: Optional[int] = None,
    extension: Optional[str] = None,
) -> NewWorker:
    """Register a worker for an agent in a campaign and make its queue (P2, P12).

    ``agent`` names the agent (its extension when it is new); the agent is
    created on first use.  The returned token is the only copy in clear.
    """
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise InvalidInput("worker name must be 1-120 characters", field="name")
    agent = (agent or "").strip()
    if not agent:
        raise InvalidInput("agent is required", field="agent")
    if skill is not None and (not isinstance(skill, int) or skill < 0):
        raise InvalidInput("skill must be a whole number >= 0", field="skill")
    token = secrets.token_urlsafe(32)
    with write_session(db) as session:
        if session.get(Campaign, campaign_id) is None:
            raise NotFound(f"no campaign with id {campaign_id}", field="campaign")
        if session.scalar(sa.select(Worker.id).where(Worker.name == name)):
            raise Conflict(f"a worker named {name!r} exists", field="name")
        row = session.scalar(
            sa.select(Agent).where(sa.or_(Agent.name == agent, Agent.extension == agent)).order_by(Agent.id)
        )
        if row is None:
            row = Agent(name=agent, extension=extension or agent, skill_level=skill or 0,
                        state=AgentState.OFFLINE, state_since=utcnow())
            session.add(row)
        else:
            if skill is not None:
                row.skill_level = skill
            if extension:
                row.extension = extension
        session.flush()
        worker = Worker(name=name, token_hash=hash_token(token), agent_id=row.id, campaign_id=campaign_id)
        session.add(worker)
        session.flush()
        queue_name = name
        if session.scalar(sa.select(Queue.id).where(Queue.campaign_id == campaign_id, Queue.name == queue_name)):
            queue_name = f"{name}-{worker.id}"
        queue = Queue(campaign_id=campaign_id, name=queue_name, worker_id=worker.id)
        session.add(queue)
        session.flush()
        logger.info("worker %s (id %s) added for agent %s in campaign %s", name, worker.id, row.name, campaign_id)
        return NewWorker(worker.id, name, token, row.name, row.extension, campaign_id, queue.id)


class _AuthCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, WorkerIdentity]] = {}

    def get(self, key: str) -> Optional[WorkerIdentity]:
        with self._lock:
            hit = self._entries.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return None

    def put(self, key: str, ident: WorkerIdentity) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + AUTH_CACHE_SECONDS, ident)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_auth_cache = _AuthCache()


def authenticate(db: Database, token: Optional[str]) -> WorkerIdentity:
    """The worker a bearer token belongs to, or :class:`Unauthorized`."""
    if not token or len(token) > 256:
        raise Unauthorized("missing or malformed worker token")
    key = f"{id(db)}:{hash_token(token)}"
    ident = _auth_cache.get(key)
    if ident is not None:
        return ident
    with db.read_connection() as conn:
        row = conn.execute(
            sa.select(Worker.id, Worker.name, Worker.campaign_id, Worker.agent_id)
            .where(Worker.token_hash == hash_token(token))
        ).first()
    if row is None:
        raise Unauthorized("unknown worker token")
    ident = WorkerIdentity(row.id, row.name, row.campaign_id, row.agent_id)
    _auth_cache.put(key, ident)
    return ident


def revoke_worker(db: Database, worker_id: int) -> None:
    """Remove a worker; its leased records go back to their pools on lease expiry."""
    with write_session(db) as session:
        worker = session.get(Worker, worker_id)
        if worker is None:
            raise NotFound(f"no worker with id {worker_id}", field="worker")
        # attempts and records keep no foreign key to the worker (migration 0006):
        # what ON DELETE SET NULL did
        session.execute(sa.update(CallAttempt).where(CallAttempt.worker_id == worker_id).values(worker_id=None))
        session.execute(sa.update(CallRecord).where(CallRecord.held_by_worker_id == worker_id)
                        .values(held_by_worker_id=None))
        session.delete(worker)
    _auth_cache.clear()


def list_workers(db: Database) -> list[dict]:
    with db.session() as session:
        rows = session.execute(
            sa.select(Worker.id, Worker.name, Agent.name.label("agent"), Campaign.name.label("campaign"),
                      Worker.last_heartbeat)
            .outerjoin(Agent, Agent.id == Worker.agent_id)
            .outerjoin(Campaign, Campaign.id == Worker.campaign_id)
            .order_by(Worker.name)
        ).all()
    return [dict(r._mapping) for r in rows]


# --- heartbeat and state (D8) -------------------------------------------------


def heartbeat(
    db: Database, worker: WorkerIdentity, agent_state: AgentState | str, active_calls: int,
    now: Optional[dt.datetime] = None, lease_seconds: Optional[int] = None,
) -> dict:
    """Record a heartbeat and the agent's current state; returns the campaign status.

    With ``lease_seconds``, the worker's leases that end within half of that
    are renewed to ``now + lease_seconds`` (at most HEARTBEAT_RENEW_MAX rows):
    a live worker keeps the records it holds, calls in progress and results
    kept through a controller outage included (D1, P10); a dead worker's
    records still go back to their pools once their lease runs out.
    """
    try:
        state = AgentState(agent_state)
    except ValueError:
        raise InvalidInput(
            f"agent_state must be one of {', '.join(s.value for s in AgentState)}", field="agent_state"
        ) from None
    now = now or utcnow()
    with db.session() as session:
        session.execute(sa.update(Worker).where(Worker.id == worker.id).values(last_heartbeat=now))
        if worker.agent_id is not None:
            # state_since moves only on a change: "longest idle" depends on it (D7).
            session.execute(
                sa.update(Agent).where(Agent.id == worker.agent_id, Agent.state != state)
                .values(state=state, state_since=now)
            )
        if lease_seconds:
            record_status.renew_leases(
                session, worker.id, now + dt.timedelta(seconds=lease_seconds),
                due_before=now + dt.timedelta(seconds=lease_seconds / 2), limit=HEARTBEAT_RENEW_MAX,
            )
        status = None
        settings = None
        if worker.campaign_id is not None:
            campaign_row = session.get(Campaign, worker.campaign_id)
            if campaign_row is not None:
                status = campaign_row.status
                from .campaigns import worker_settings_of  # P14/D2/X1: the worker applies these

                settings = worker_settings_of(campaign_row)
    body = {"ok": True, "campaign_status": status.value if status else None, "server_time": _iso(now),
            "active_calls": active_calls}
    if settings is not None:
        body["campaign"] = settings
    if lease_seconds:
        body["lease_seconds"] = lease_seconds  # every lease held now ends >= now + lease_seconds / 2
    return body


def mark_stale_offline(session: Session, now: dt.datetime, timeout_s: float) -> int:
    """Agents whose worker missed its heartbeats go offline (D8). Returns the count."""
    cutoff = now - dt.timedelta(seconds=timeout_s)
    stale = sa.select(Worker.agent_id).where(
        Worker.agent_id.is_not(None),
        sa.or_(Worker.last_heartbeat.is_(None), Worker.last_heartbeat < cutoff),
    )
    fresh = sa.select(Worker.agent_id).where(Worker.agent_id.is_not(None), Worker.last_heartbeat >= cutoff)
    return session.execute(
        sa.update(Agent)
        .where(Agent.id.in_(stale), Agent.id.not_in(fresh), Agent.state != AgentState.OFFLINE)
        .values(state=AgentState.OFFLINE, state_since=now)
        .execution_options(synchronize_session=False)
    ).rowcount


def list_agents(
    db: Database, *, state: AgentState | str | None = None, timeout_s: float = 15.0,
    now: Optional[dt.datetime] = None,
) -> list[AgentView]:
    """Every agent with its live state (stale heartbeats shown offline)."""
    if state is not None:
        try:
            state = AgentState(state)
        except ValueError:
            raise InvalidInput("unknown agent state", field="state") from None
    now = now or utcnow()
    with db.session() as session:
        mark_stale_offline(session, now, timeout_s)
        stmt = (
            sa.select(Agent, Worker.name, Worker.id, Worker.last_heartbeat)
            .outerjoin(Worker, Worker.agent_id == Agent.id)
            .order_by(Agent.name, Worker.id)
        )
        if state is not None:
            stmt = stmt.where(Agent.state == state)
        seen: set[int] = set()
        out = []
        for agent, wname, wid, hb in session.execute(stmt).all():
            if agent.id in seen:
                continue
            seen.add(agent.id)
            out.append(AgentView(agent.id, agent.name, agent.extension, agent.skill_level,
                                 AgentState(agent.state), agent.state_since, wname, wid, hb))
        return out


def claim_idle_agent(
    db: Database,
    *,
    min_skill: int = 0,
    exclude: Sequence[str] = (),
    call_uuid: Optional[str] = None,
    record_id: Optional[int] = None,
    by_worker: Optional[WorkerIdentity] = None,
    timeout_s: float = 15.0,
    now: Optional[dt.datetime] = None,
) -> AgentView:
    """Atomically take a free online agent with skill >= ``min_skill`` (D7).

    Free = no active voice connection: idle, or dialing (its own calls still
    ring), longest in that state first.  The agent is marked talking in the
    same statement that selects it, so two concurrent claims (even on two
    controller processes) never get the same agent: PostgreSQL locks the row
    (``FOR UPDATE SKIP LOCKED``) and re-checks ``state in (idle, dialing)`` in
    the UPDATE; SQLite runs it in one writer transaction.
    An ``overflow`` event carrying the call and record goes to that agent's
    worker.  No such agent: :class:`NoIdleAgent` (HTTP 409).
    """
    from .distribution import record_payload  # late: distribution imports nothing of ours

    if not isinstance(min_skill, int) or isinstance(min_skill, bool) or min_skill < 0:
        raise InvalidInput("min_skill must be a whole number >= 0", field="min_skill")
    excluded = [str(e) for e in exclude]
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=timeout_s)
    with write_session(db) as session:
        mark_stale_offline(session, now, timeout_s)
        candidate = (
            sa.select(Agent.id)
            .join(Worker, Worker.agent_id == Agent.id)
            .where(
                Agent.state.in_(CLAIMABLE),
                Agent.skill_level >= min_skill,
                Worker.last_heartbeat >= cutoff,
            )
            .order_by(Agent.state_since, Agent.id)
            .limit(1)
        )
        if excluded:
            candidate = candidate.where(Agent.extension.not_in(excluded), Agent.name.not_in(excluded))
        if by_worker is not None and by_worker.agent_id is not None:
            candidate = candidate.where(Agent.id != by_worker.agent_id)
        if session.get_bind().dialect.name == "postgresql":
            candidate = candidate.with_for_update(of=Agent, skip_locked=True)
        agent_id = session.scalar(
            sa.update(Agent)
            .where(Agent.id == candidate.scalar_subquery(), Agent.state.in_(CLAIMABLE))
            .values(state=AgentState.TALKING, state_since=now)
            .returning(Agent.id)
        )
        if agent_id is None:
            raise NoIdleAgent("no idle agent")
        agent = session.get(Agent, agent_id)
        worker = session.scalar(
            sa.select(Worker).where(Worker.agent_id == agent_id, Worker.last_heartbeat >= cutoff)
            .order_by(Worker.last_heartbeat.desc()).limit(1)
        )
        payload = {"call_uuid": call_uuid, "record": None}
        if record_id is not None:
            record = session.get(CallRecord, record_id)
            if record is not None and (by_worker is None or record.campaign_id == by_worker.campaign_id):
                payload["record"] = record_payload(session, record, now)
        events.publish_in(session, worker.id, "overflow", payload)
        logger.info("call %s: overflow to agent %s (worker %s)", call_uuid, agent.name, worker.name)
        return AgentView(agent.id, agent.name, agent.extension, agent.skill_level, AgentState.TALKING,
                         now, worker.name, worker.id, worker.last_heartbeat)

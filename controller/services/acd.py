"""The remote center's ACD queue of proxy calls (SPEC R4, R5, R6, R9).

A local center's IVR places a *proxy* for a skill here instead of a voice leg.
The proxy advances as earlier entries are served; when an operator is free and
the proxy is at the head, the operator is *reserved* for it (state
``offered``) and the local center bridges the caller, presenting a one-time
token.  The leg accepted with that token takes the proxy's place and is put
through to the reserved operator.

The queue lives in the controller's database, not in mod_callcenter: a proxy
is not a channel (a mod_callcenter member needs a live session), positions
and expected waits must reach other centers over HTTP, and several
controllers can share the queue through the database (PostgreSQL row locks,
SQLite ``BEGIN IMMEDIATE``).  Every mutation runs in one write transaction
that re-runs :func:`_dispatch` for the queues it touched.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import uuid
from typing import Any, Iterable, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Session

from esl_dialer.messages import ProxyState

from ..db import Database
from ..errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from ..models import AcdEntry, AcdMembership, AcdOperator, AcdPeer, AcdQueue, utcnow
from .txn import is_postgres, write_session

logger = logging.getLogger(__name__)

LIVE = (ProxyState.WAITING, ProxyState.OFFERED, ProxyState.CONNECTED)
QUEUED = (ProxyState.WAITING, ProxyState.OFFERED)
OPERATOR_STATES = ("available", "reserved", "busy", "offline")
#: completed services used for the expected wait
SERVICE_HISTORY = 20
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


@dataclasses.dataclass(frozen=True)
class ProxySnapshot:
    """What a local center sees of its proxy (the R5 progress report)."""

    id: str
    skill: str
    state: str
    position: int  # 0 = an operator is reserved for it; 1 = next in line
    expected_wait_s: Optional[float]
    bridge_now: bool
    has_leg: bool
    operator: Optional[dict[str, str]]
    caller_number: Optional[str]
    created_at: str
    end_reason: Optional[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- helpers


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def _check_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidInput(f"{field} must be 1-64 letters, digits or _.@-", field=field)
    return value


def _lock_queue(session: Session, queue_id: int) -> None:
    """Serialise changes to one queue across controllers (PostgreSQL row lock)."""
    if is_postgres(session):
        session.execute(sa.select(AcdQueue.id).where(AcdQueue.id == queue_id).with_for_update())


def _queue(session: Session, skill: str) -> AcdQueue:
    queue = session.scalar(sa.select(AcdQueue).where(AcdQueue.skill == skill))
    if queue is None:
        raise NotFound(f"no ACD queue for skill {skill!r}", field="skill")
    return queue


def _entry(session: Session, public_id: str, peer: AcdPeer | None = None) -> AcdEntry:
    entry = session.scalar(sa.select(AcdEntry).where(AcdEntry.public_id == str(public_id)))
    # Another center's proxy is reported as missing, not forbidden: ids are not
    # to be probed.
    if entry is None or (peer is not None and peer.role != "switch" and entry.peer_id != peer.id):
        raise NotFound(f"no proxy {public_id}")
    return entry


# ---------------------------------------------------------------- set-up


def create_peer(db: Database, name: str, role: str = "center") -> str:
    """Register a center allowed to use this ACD; returns its API key (shown once)."""
    _check_name(name, "name")
    if role not in ("center", "switch"):
        raise InvalidInput("role must be center or switch", field="role")
    key = secrets.token_urlsafe(32)
    with write_session(db) as session:
        if session.scalar(sa.select(AcdPeer).where(AcdPeer.name == name)):
            raise Conflict(f"peer {name!r} exists", field="name")
        session.add(AcdPeer(name=name, key_hash=hash_secret(key), role=role))
    return key


def authenticate_peer(db: Database, key: str | None) -> AcdPeer:
    if not key:
        raise Unauthorized("missing API key (Authorization: Bearer <key>)")
    with db.session() as session:
        peer = session.scalar(sa.select(AcdPeer).where(AcdPeer.key_hash == hash_secret(key)))
        if peer is None:
            raise Unauthorized("unknown API key")
        session.expunge(peer)
        return peer


def ensure_queue(db: Database, skill: str, **settings: Any) -> None:
    _check_name(skill, "skill")
    allowed = {"bridge_position", "bridge_setup_s", "offer_timeout_s", "token_ttl_s", "default_service_s"}
    unknown = set(settings) - allowed
    if unknown:
        raise InvalidInput(f"unknown queue settings: {', '.join(sorted(unknown))}")
    for key, value in settings.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise InvalidInput(f"{key} must be a non-negative number", field=key)
    with write_session(db) as session:
        queue = session.scalar(sa.select(AcdQueue).where(AcdQueue.skill == skill))
        if queue is None:
            queue = AcdQueue(skill=skill)
            session.add(queue)
        for key, value in settings.items():
            setattr(queue, key, value)


def add_operator(db: Database, name: str, extension: str, skills: Iterable[str],
                 state: str = "offline") -> None:
    _check_name(name, "name")
    if not isinstance(extension, str) or not extension or " " in extension:
        raise InvalidInput("extension must be a dial string without spaces", field="extension")
    if state not in OPERATOR_STATES:
        raise InvalidInput(f"state must be one of {', '.join(OPERATOR_STATES)}", field="state")
    with write_session(db) as session:
        operator = session.scalar(sa.select(AcdOperator).where(AcdOperator.name == name))
        if operator is None:
            operator = AcdOperator(name=name, extension=extension, state=state)
            session.add(operator)
            session.flush()
        operator.extension, operator.state, operator.state_since = extension, state, utcnow()
        queues = [_queue(session, skill) for skill in skills]
        for queue in queues:
            exists = session.scalar(sa.select(AcdMembership.id).where(
                AcdMembership.queue_id == queue.id, AcdMembership.operator_id == operator.id))
            if not exists:
                session.add(AcdMembership(queue_id=queue.id, operator_id=operator.id))
        session.flush()
        for queue in queues:
            _dispatch(session, queue)


def set_operator_state(db: Database, name: str, state: str) -> None:
    """An operator logs in/out or becomes free; a free operator takes the head proxy."""
    if state not in ("available", "busy", "offline"):
        raise InvalidInput("state must be available, busy or offline", field="state")
    with write_session(db) as session:
        operator = session.scalar(sa.select(AcdOperator).where(AcdOperator.name == name))
        if operator is None:
            raise NotFound(f"no operator {name!r}")
        if operator.state == "reserved" and state != "offline":
            raise Conflict(f"operator {name} is reserved for a proxy")
        operator.state, operator.state_since = state, utcnow()
        if state == "offline":
            _release_reservations(session, operator)
        for queue in _operator_queues(session, operator):
            _dispatch(session, queue)


def _operator_queues(session: Session, operator: AcdOperator) -> list[AcdQueue]:
    return list(session.scalars(
        sa.select(AcdQueue).join(AcdMembership, AcdMembership.queue_id == AcdQueue.id)
        .where(AcdMembership.operator_id == operator.id).order_by(AcdQueue.id)))


def _release_reservations(session: Session, operator: AcdOperator) -> None:
    for entry in list(session.scalars(sa.select(AcdEntry).where(
            AcdEntry.operator_id == operator.id, AcdEntry.state == ProxyState.OFFERED))):
        entry.state, entry.operator_id, entry.offered_at = ProxyState.WAITING, None, None


# ---------------------------------------------------------------- the queue


def _dispatch(session: Session, queue: AcdQueue, now: dt.datetime | None = None) -> None:
    """Pair free operators (longest idle first) with head entries (oldest first)."""
    now = now or utcnow()
    _lock_queue(session, queue.id)
    session.flush()
    # Offers nobody took up in time: the operator is freed and the proxy expires
    # (the local center then retries once or falls back, R9).
    limit = now - dt.timedelta(seconds=queue.offer_timeout_s)
    for entry in list(session.scalars(sa.select(AcdEntry).where(
            AcdEntry.queue_id == queue.id, AcdEntry.state == ProxyState.OFFERED,
            AcdEntry.leg_uuid.is_(None), AcdEntry.offered_at < limit))):
        _end(session, entry, ProxyState.EXPIRED, "offer_timeout", now)
    # Free operators first (few), then only as many head entries as there are
    # free operators: a long queue costs nothing when nobody is free.
    stmt = (sa.select(AcdOperator)
            .join(AcdMembership, AcdMembership.operator_id == AcdOperator.id)
            .where(AcdMembership.queue_id == queue.id, AcdOperator.state == "available")
            .order_by(AcdOperator.state_since, AcdOperator.id))
    if is_postgres(session):
        stmt = stmt.with_for_update(of=AcdOperator, skip_locked=True)
    free = session.scalars(stmt).all()
    if not free:
        return
    waiting = list(session.scalars(sa.select(AcdEntry).where(
        AcdEntry.queue_id == queue.id, AcdEntry.state == ProxyState.WAITING).order_by(AcdEntry.id)
        .limit(len(free))))
    for entry, operator in zip(waiting, free):
        entry.state, entry.operator_id, entry.offered_at = ProxyState.OFFERED, operator.id, now
        operator.state, operator.state_since = "reserved", now
        logger.info("acd %s: proxy %s offered to operator %s", queue.skill, entry.public_id, operator.name)


def _end(session: Session, entry: AcdEntry, state: ProxyState, reason: str, now: dt.datetime) -> None:
    operator = session.get(AcdOperator, entry.operator_id) if entry.operator_id else None
    if operator is not None and operator.state in ("reserved", "busy"):
        operator.state, operator.state_since = "available", now
    entry.state, entry.end_reason, entry.ended_at = state, reason, now
    entry.token_hash = None  # a finished proxy's token can never be used


def _average_service_s(session: Session, queue: AcdQueue) -> float:
    rows = session.execute(sa.select(AcdEntry.connected_at, AcdEntry.ended_at).where(
        AcdEntry.queue_id == queue.id, AcdEntry.state == ProxyState.DONE,
        AcdEntry.connected_at.is_not(None), AcdEntry.ended_at.is_not(None),
    ).order_by(AcdEntry.ended_at.desc()).limit(SERVICE_HISTORY)).all()
    if not rows:
        return float(queue.default_service_s)
    return sum((e - c).total_seconds() for c, e in rows) / len(rows)


def _snapshots(session: Session, queue: AcdQueue, entries: list[AcdEntry]) -> list[ProxySnapshot]:
    """Positions and expected waits of ``entries`` (all of one queue)."""
    waiting_here = [e.id for e in entries if e.state == ProxyState.WAITING]
    if len(waiting_here) == 1:  # one proxy (the common API call): count the ones ahead
        ahead = session.scalar(sa.select(sa.func.count()).select_from(AcdEntry).where(
            AcdEntry.queue_id == queue.id, AcdEntry.state == ProxyState.WAITING, AcdEntry.id < waiting_here[0]))
        rank = {waiting_here[0]: ahead + 1}
    elif waiting_here:
        waiting_ids = session.scalars(sa.select(AcdEntry.id).where(
            AcdEntry.queue_id == queue.id, AcdEntry.state == ProxyState.WAITING).order_by(AcdEntry.id)).all()
        rank = {entry_id: i + 1 for i, entry_id in enumerate(waiting_ids)}
    else:
        rank = {}
    staffed = session.scalar(sa.select(sa.func.count()).select_from(AcdOperator)
                             .join(AcdMembership, AcdMembership.operator_id == AcdOperator.id)
                             .where(AcdMembership.queue_id == queue.id, AcdOperator.state != "offline"))
    service_s = _average_service_s(session, queue)
    out = []
    for entry in entries:
        operator = session.get(AcdOperator, entry.operator_id) if entry.operator_id else None
        if entry.state == ProxyState.WAITING:
            position = rank.get(entry.id, 0)
            # One operator frees up every service_s / staffed seconds on average.
            wait = round(position * service_s / staffed, 1) if staffed else None
            bridge = position <= queue.bridge_position or (wait is not None and wait <= queue.bridge_setup_s)
        else:
            position, wait = 0, (0.0 if entry.state in (ProxyState.OFFERED, ProxyState.CONNECTED) else None)
            bridge = entry.state == ProxyState.OFFERED
        out.append(ProxySnapshot(
            id=entry.public_id, skill=queue.skill, state=entry.state.value, position=position,
            expected_wait_s=wait, bridge_now=bridge, has_leg=entry.leg_uuid is not None,
            operator={"name": operator.name, "extension": operator.extension} if operator else None,
            caller_number=entry.caller_number, created_at=_iso(entry.created_at) or "",
            end_reason=entry.end_reason,
        ))
    return out


def _snapshot(session: Session, entry: AcdEntry) -> ProxySnapshot:
    return _snapshots(session, session.get(AcdQueue, entry.queue_id), [entry])[0]


# ---------------------------------------------------------------- proxies (R4, R5)


def create_proxy(db: Database, peer: AcdPeer, skill: str, caller_number: str | None = None,
                 caller_name: str | None = None, data: dict | None = None) -> ProxySnapshot:
    """R4: place a proxy call for ``skill`` on behalf of a local center's caller."""
    if not isinstance(skill, str) or not skill:
        raise InvalidInput("skill is required", field="skill")
    if data is not None and not isinstance(data, dict):
        raise InvalidInput("data must be an object", field="data")
    for field, value, size in (("caller_number", caller_number, 64), ("caller_name", caller_name, 120)):
        if value is not None and (not isinstance(value, str) or len(value) > size):
            raise InvalidInput(f"{field} must be a string of at most {size} characters", field=field)
    with write_session(db) as session:
        queue = _queue(session, skill)
        _lock_queue(session, queue.id)
        entry = AcdEntry(public_id=str(uuid.uuid4()), queue_id=queue.id, peer_id=peer.id,
                         caller_number=caller_number, caller_name=caller_name, data=data)
        session.add(entry)
        _dispatch(session, queue)
        logger.info("acd %s: proxy %s placed by %s for %s", skill, entry.public_id, peer.name, caller_number)
        return _snapshot(session, entry)


def get_proxy(db: Database, public_id: str, peer: AcdPeer | None = None) -> ProxySnapshot:
    with write_session(db) as session:
        entry = _entry(session, public_id, peer)
        queue = session.get(AcdQueue, entry.queue_id)
        _dispatch(session, queue)
        return _snapshot(session, entry)


def list_proxies(db: Database, peer: AcdPeer | None = None, live_only: bool = True,
                 limit: int = 500) -> list[ProxySnapshot]:
    """Read-only view of the queues (dashboard; a peer sees only its own proxies)."""
    with db.session() as session:
        stmt = sa.select(AcdEntry).order_by(AcdEntry.id)
        if live_only:
            stmt = stmt.where(AcdEntry.state.in_(LIVE))
        else:
            stmt = stmt.order_by(None).order_by(AcdEntry.id.desc()).limit(limit)
        if peer is not None and peer.role != "switch":
            stmt = stmt.where(AcdEntry.peer_id == peer.id)
        entries = list(session.scalars(stmt))
        by_queue: dict[int, list[AcdEntry]] = {}
        for entry in entries:
            by_queue.setdefault(entry.queue_id, []).append(entry)
        out: list[ProxySnapshot] = []
        for queue_id, group in by_queue.items():
            out.extend(_snapshots(session, session.get(AcdQueue, queue_id), group))
        return out


def tick(db: Database) -> None:
    """Expire stale offers and dispatch every queue (called by progress streams)."""
    with write_session(db) as session:
        for queue in list(session.scalars(sa.select(AcdQueue))):
            _dispatch(session, queue)


def cancel_proxy(db: Database, public_id: str, peer: AcdPeer, reason: str = "caller_hangup") -> ProxySnapshot:
    """R9: the caller hung up (or the local side gave up): the proxy leaves the queue."""
    with write_session(db) as session:
        entry = _entry(session, public_id, peer)
        queue = session.get(AcdQueue, entry.queue_id)
        _lock_queue(session, queue.id)
        # Once its leg has arrived the entry belongs to that leg (the acceptor
        # reports how it ends): a late cancel from the local side changes nothing.
        if entry.state in QUEUED and entry.leg_uuid is None:
            _end(session, entry, ProxyState.CANCELLED, str(reason)[:64], utcnow())
            logger.info("acd %s: proxy %s cancelled (%s)", queue.skill, public_id, reason)
        _dispatch(session, queue)
        return _snapshot(session, entry)


def issue_token(db: Database, public_id: str, peer: AcdPeer) -> tuple[str, str, float]:
    """A fresh single-use token for the bridged leg; returns (token, expires_at, ttl_s).

    Issued only to a queued proxy; asking again replaces the previous token (a
    retried bridge never reuses the first one).
    """
    with write_session(db) as session:
        entry = _entry(session, public_id, peer)
        if entry.state not in QUEUED:
            raise Conflict(f"proxy {public_id} is {entry.state.value}, no token")
        if entry.leg_uuid is not None:
            raise Conflict(f"proxy {public_id} already has its leg")
        queue = session.get(AcdQueue, entry.queue_id)
        token = secrets.token_urlsafe(24)
        expires = utcnow() + dt.timedelta(seconds=queue.token_ttl_s)
        entry.token_hash, entry.token_expires_at, entry.token_used_at = hash_secret(token), expires, None
        return token, _iso(expires) or "", float(queue.token_ttl_s)


# ---------------------------------------------------------------- legs (R6)


def accept_leg(db: Database, token: str, leg_uuid: str) -> ProxySnapshot:
    """The bridged leg arrives with its token and takes the proxy's place.

    Wrong, used or expired tokens are refused with :class:`Forbidden`; nothing
    tells a guesser which of the three it was.
    """
    if not isinstance(token, str) or not 16 <= len(token) <= 128:
        raise Forbidden("leg refused")
    if not isinstance(leg_uuid, str) or not leg_uuid or len(leg_uuid) > 64:
        raise InvalidInput("leg_uuid is required", field="leg_uuid")
    digest = hash_secret(token)
    now = utcnow()
    with write_session(db) as session:
        entry = session.scalar(sa.select(AcdEntry).where(AcdEntry.token_hash == digest))
        if (entry is None or not hmac.compare_digest(entry.token_hash or "", digest)
                or entry.token_used_at is not None or entry.state not in QUEUED
                or entry.token_expires_at is None or entry.token_expires_at < now):
            logger.warning("acd: leg %s refused (bad/used/expired token)", leg_uuid)
            raise Forbidden("leg refused")
        queue = session.get(AcdQueue, entry.queue_id)
        _lock_queue(session, queue.id)
        entry.token_used_at, entry.leg_uuid, entry.bridged_at = now, leg_uuid, now
        _dispatch(session, queue, now)
        logger.info("acd %s: leg %s accepted for proxy %s", queue.skill, leg_uuid, entry.public_id)
        return _snapshot(session, entry)


def leg_connected(db: Database, public_id: str) -> ProxySnapshot:
    with write_session(db) as session:
        entry = _entry(session, public_id)
        if entry.state != ProxyState.OFFERED or entry.leg_uuid is None:
            raise Conflict(f"proxy {public_id} is {entry.state.value}, cannot connect")
        operator = session.get(AcdOperator, entry.operator_id)
        entry.state, entry.connected_at = ProxyState.CONNECTED, utcnow()
        if operator is not None:
            operator.state, operator.state_since = "busy", entry.connected_at
        return _snapshot(session, entry)


def leg_ended(db: Database, public_id: str, reason: str = "normal_clearing",
              failed: bool = False) -> ProxySnapshot:
    """The leg hung up: served (done), or never connected (cancelled / failed)."""
    with write_session(db) as session:
        entry = _entry(session, public_id)
        queue = session.get(AcdQueue, entry.queue_id)
        _lock_queue(session, queue.id)
        if entry.state in LIVE:
            if entry.state == ProxyState.CONNECTED:
                state = ProxyState.DONE
            else:
                state = ProxyState.FAILED if failed else ProxyState.CANCELLED
            _end(session, entry, state, str(reason)[:64], utcnow())
        _dispatch(session, queue)
        return _snapshot(session, entry)

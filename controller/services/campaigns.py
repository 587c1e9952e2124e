"""Campaigns and their pools (SPEC P1): create, look up, list.

Functions taking ``db`` own their transaction; the ``*_in`` variants take a
session so other services can compose them inside their own transaction.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import Session

from esl_dialer.messages import CampaignStatus, DialMode, RecordStatus, TimezonePolicy

from .. import numbers
from ..calling_hours import WindowError, is_known_zone, parse_window
from ..db import Database
from ..errors import Conflict, InvalidInput, NotFound
from ..models import CallRecord, Campaign, Pool

logger = logging.getLogger(__name__)

MAX_NAME = 120


@dataclasses.dataclass(frozen=True)
class CampaignSummary:
    id: int
    name: str
    status: str
    dial_mode: str
    dial_ratio: float
    abandon_target: float
    window: str
    timezone_policy: str
    default_region: str
    pools: tuple[str, ...]
    records: dict[str, int]  # status value -> count

    @property
    def total_records(self) -> int:
        return sum(self.records.values())


def _clean_name(name: str, what: str) -> str:
    cleaned = (name or "").strip()
    if not cleaned:
        raise InvalidInput(f"{what} name must not be empty", field="name")
    if len(cleaned) > MAX_NAME:
        raise InvalidInput(f"{what} name is longer than {MAX_NAME} characters", field="name")
    return cleaned


def _enum_value(cls, value, field: str):
    if isinstance(value, cls):
        return value
    try:
        return cls(str(value).lower())
    except ValueError:
        choices = ", ".join(m.value for m in cls)
        raise InvalidInput(f"{field} must be one of {choices}, got {value!r}", field=field) from None


def parse_abandon_target(value) -> float:
    """0.03 or "3%" -> 0.03; must lie in (0, 1)."""
    text = str(value).strip()
    try:
        target = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise InvalidInput(f"abandon target must be a fraction like 0.03 or 3%, got {value!r}",
                           field="abandon_target") from None
    if not 0 < target < 1:
        raise InvalidInput(f"abandon target must be between 0 and 1 (or 0% and 100%), got {value!r}",
                           field="abandon_target")
    return target


def create_campaign(
    db: Database,
    name: str,
    *,
    dial_mode: DialMode | str = DialMode.PREDICTIVE,
    dial_ratio: float = 1.0,
    abandon_target: float | str = 0.03,
    window: str = "08:00-21:00",
    timezone_policy: TimezonePolicy | str = TimezonePolicy.NUMBER,
    default_timezone: str = "America/New_York",
    default_region: str = "US",
    caller_id_number: Optional[str] = None,
    caller_id_name: Optional[str] = None,
) -> Campaign:
    """Create a campaign (status draft). Conflict if the name is taken."""
    name = _clean_name(name, "campaign")
    mode = _enum_value(DialMode, dial_mode, "dial_mode")
    policy = _enum_value(TimezonePolicy, timezone_policy, "timezone_policy")
    try:
        ratio = float(dial_ratio)
    except (TypeError, ValueError):
        raise InvalidInput(f"dial ratio must be a number, got {dial_ratio!r}", field="dial_ratio") from None
    if not 0 < ratio <= 10:
        raise InvalidInput(f"dial ratio must be in (0, 10], got {dial_ratio!r}", field="dial_ratio")
    target = parse_abandon_target(abandon_target)
    try:
        win = parse_window(window)
    except WindowError as err:
        raise InvalidInput(str(err), field="window") from None
    if not is_known_zone(default_timezone):
        raise InvalidInput(f"unknown time zone {default_timezone!r}", field="default_timezone")
    region = (default_region or "").upper()
    if not region or not numbers.valid_region(region):
        raise InvalidInput(f"unknown region {default_region!r} (use an ISO code like US, GB)",
                           field="default_region")
    if caller_id_number:
        parsed = numbers.parse_number(caller_id_number, region)
        if not parsed:
            raise InvalidInput(f"caller id {caller_id_number!r}: {parsed.message}", field="caller_id_number")
        caller_id_number = parsed.e164
    with db.session() as session:
        if session.scalar(sa.select(Campaign.id).where(Campaign.name == name)) is not None:
            raise Conflict(f"campaign {name!r} already exists", field="name")
        campaign = Campaign(
            name=name,
            status=CampaignStatus.DRAFT,
            dial_mode=mode,
            dial_ratio=ratio,
            abandon_target=target,
            window_start=f"{win.start:%H:%M}",
            window_end=f"{win.end:%H:%M}",
            timezone_policy=policy,
            default_timezone=default_timezone,
            default_region=region,
            caller_id_number=caller_id_number,
            caller_id_name=caller_id_name,
        )
        session.add(campaign)
        session.flush()
    logger.info("campaign %s created (id %s, %s)", name, campaign.id, mode.value)
    return campaign


def get_campaign_in(session: Session, ref: str | int | Campaign) -> Campaign:
    """Campaign by object, id or name; NotFound otherwise."""
    if isinstance(ref, Campaign):
        ref = ref.id
    if isinstance(ref, int):
        campaign = session.get(Campaign, ref)
    else:
        campaign = session.scalar(sa.select(Campaign).where(Campaign.name == str(ref).strip()))
    if campaign is None:
        raise NotFound(f"no campaign {ref!r} (see `dialer campaign list`)", field="campaign")
    return campaign


def get_campaign(db: Database, ref: str | int | Campaign) -> Campaign:
    with db.session() as session:
        return get_campaign_in(session, ref)


def list_campaigns(db: Database) -> list[CampaignSummary]:
    with db.session() as session:
        campaigns = session.scalars(sa.select(Campaign).order_by(Campaign.id)).all()
        counts: dict[int, dict[str, int]] = {}
        rows = session.execute(
            sa.select(CallRecord.campaign_id, CallRecord.status, sa.func.count())
            .group_by(CallRecord.campaign_id, CallRecord.status)
        )
        for campaign_id, status, count in rows:
            key = status.value if isinstance(status, RecordStatus) else str(status)
            counts.setdefault(campaign_id, {})[key] = count
        return [
            CampaignSummary(
                id=c.id,
                name=c.name,
                status=c.status.value,
                dial_mode=c.dial_mode.value,
                dial_ratio=c.dial_ratio,
                abandon_target=c.abandon_target,
                window=f"{c.window_start}-{c.window_end}",
                timezone_policy=c.timezone_policy.value,
                default_region=c.default_region,
                pools=tuple(p.name for p in c.pools),
                records=counts.get(c.id, {}),
            )
            for c in campaigns
        ]


def create_pool_in(
    session: Session, campaign: Campaign, name: str, *, position: Optional[int] = None, difficulty: int = 0
) -> Pool:
    name = _clean_name(name, "pool")
    exists = session.scalar(sa.select(Pool.id).where(Pool.campaign_id == campaign.id, Pool.name == name))
    if exists is not None:
        raise Conflict(f"pool {name!r} already exists in campaign {campaign.name!r}", field="pool")
    if position is None:
        last = session.scalar(sa.select(sa.func.max(Pool.position)).where(Pool.campaign_id == campaign.id))
        position = 0 if last is None else last + 1
    pool = Pool(campaign_id=campaign.id, name=name, position=position, difficulty=int(difficulty))
    session.add(pool)
    session.flush()
    logger.info("pool %s created in campaign %s (position %s)", name, campaign.name, position)
    return pool


def create_pool(db: Database, campaign: str | int | Campaign, name: str, **kwargs) -> Pool:
    with db.session() as session:
        return create_pool_in(session, get_campaign_in(session, campaign), name, **kwargs)


def get_pool_in(session: Session, campaign: Campaign, name: str) -> Optional[Pool]:
    return session.scalar(sa.select(Pool).where(Pool.campaign_id == campaign.id, Pool.name == name.strip()))


def get_or_create_pool(db: Database, campaign: str | int | Campaign, name: str) -> tuple[Pool, bool]:
    """(pool, created). Safe against a concurrent creator: retries the read on conflict."""
    try:
        with db.session() as session:
            c = get_campaign_in(session, campaign)
            pool = get_pool_in(session, c, _clean_name(name, "pool"))
            if pool is not None:
                return pool, False
            return create_pool_in(session, c, name), True
    except (sa.exc.IntegrityError, Conflict):
        with db.session() as session:
            pool = get_pool_in(session, get_campaign_in(session, campaign), name)
            if pool is None:
                raise
            return pool, False


# --- status control and dialing settings (SPEC P14, D2, X1) ------------------------------

#: allowed status changes, by action: action -> (from statuses, to status)
TRANSITIONS: dict[str, tuple[frozenset[CampaignStatus], CampaignStatus]] = {
    "start": (frozenset({CampaignStatus.DRAFT}), CampaignStatus.ACTIVE),
    "pause": (frozenset({CampaignStatus.ACTIVE}), CampaignStatus.PAUSED),
    "resume": (frozenset({CampaignStatus.PAUSED}), CampaignStatus.ACTIVE),
    "finish": (frozenset({CampaignStatus.DRAFT, CampaignStatus.ACTIVE, CampaignStatus.PAUSED}),
               CampaignStatus.FINISHED),
}

#: what the worker applies from the campaign (heartbeat reply ``campaign``)
WORKER_SETTING_FIELDS = ("dial_mode", "dial_ratio", "abandon_target", "caller_id_number", "caller_id_name",
                         "abandon_message")


@dataclasses.dataclass(frozen=True)
class StatusChange:
    campaign: str
    old: CampaignStatus
    new: CampaignStatus
    workers_notified: int


def next_status(current: CampaignStatus, action: str) -> CampaignStatus:
    """The status after ``action`` (pure); InvalidInput / Conflict when not allowed."""
    if action not in TRANSITIONS:
        raise InvalidInput(f"unknown campaign action {action!r} (use {', '.join(TRANSITIONS)})", field="action")
    sources, target = TRANSITIONS[action]
    if current not in sources:
        allowed = ", ".join(sorted(s.value for s in sources))
        raise Conflict(f"cannot {action} a campaign that is {current.value} (only when {allowed})",
                       field="status")
    return target


def _notify_caches() -> None:
    # Lease contexts are cached CONTEXT_CACHE_S per process; drop this process's at once.
    from . import distribution

    distribution._contexts.clear()


def change_status(db: Database, ref: str | int | Campaign, action: str) -> StatusChange:
    """start / pause / resume / finish a campaign and tell its workers (``campaign`` event).

    The row is locked (``FOR UPDATE`` on PostgreSQL) so two managers racing on
    the same campaign see one change and one Conflict.
    """
    with db.session() as session:
        campaign = get_campaign_in(session, ref)
        if session.bind.dialect.name == "postgresql":
            session.refresh(campaign, with_for_update=True)
        old = CampaignStatus(campaign.status)
        new = next_status(old, action)
        campaign.status = new
        from . import events

        n = events.publish_campaign_status(session, campaign.id, new.value)
        name = campaign.name
    _notify_caches()
    logger.info("campaign %s: %s -> %s (%d workers notified)", name, old.value, new.value, n)
    return StatusChange(name, old, new, n)


def worker_settings_of(campaign: Campaign) -> dict:
    """The campaign's status and dialing settings as the worker receives them."""
    return {
        "name": campaign.name,
        "status": CampaignStatus(campaign.status).value,
        "dial_mode": DialMode(campaign.dial_mode).value,
        "dial_ratio": campaign.dial_ratio,
        "abandon_target": campaign.abandon_target,
        "caller_id_number": campaign.caller_id_number,
        "caller_id_name": campaign.caller_id_name,
        "abandon_message": campaign.abandon_message,
        "window_start": campaign.window_start,
        "window_end": campaign.window_end,
    }


def worker_settings(db: Database, campaign_id: int) -> dict:
    with db.session() as session:
        return worker_settings_of(get_campaign_in(session, int(campaign_id)))


def update_settings(
    db: Database,
    ref: str | int | Campaign,
    *,
    dial_mode: DialMode | str | None = None,
    dial_ratio: float | str | None = None,
    abandon_target: float | str | None = None,
    window: Optional[str] = None,
    caller_id_number: Optional[str] = None,
    caller_id_name: Optional[str] = None,
    abandon_message: Optional[str] = None,
) -> dict:
    """Change a campaign's dialing settings (only those given); workers pick them up
    with their next heartbeat and a ``campaign`` event is published at once."""
    changes: dict = {}
    if dial_mode is not None:
        changes["dial_mode"] = _enum_value(DialMode, dial_mode, "dial_mode")
    if dial_ratio is not None:
        try:
            ratio = float(dial_ratio)
        except (TypeError, ValueError):
            raise InvalidInput(f"dial ratio must be a number, got {dial_ratio!r}", field="dial_ratio") from None
        if not 0 < ratio <= 10:
            raise InvalidInput(f"dial ratio must be in (0, 10], got {dial_ratio!r}", field="dial_ratio")
        changes["dial_ratio"] = ratio
    if abandon_target is not None:
        changes["abandon_target"] = parse_abandon_target(abandon_target)
    if window is not None:
        try:
            win = parse_window(window)
        except WindowError as err:
            raise InvalidInput(str(err), field="window") from None
        changes["window_start"] = f"{win.start:%H:%M}"
        changes["window_end"] = f"{win.end:%H:%M}"
    if caller_id_name is not None:
        if len(caller_id_name) > 64:
            raise InvalidInput("caller id name is longer than 64 characters", field="caller_id_name")
        changes["caller_id_name"] = caller_id_name.strip() or None
    if abandon_message is not None:
        if len(abandon_message) > 255:
            raise InvalidInput("abandon message path is longer than 255 characters", field="abandon_message")
        changes["abandon_message"] = abandon_message.strip() or None
    if not changes and caller_id_number is None:
        raise InvalidInput("nothing to change (give at least one setting)")
    with db.session() as session:
        campaign = get_campaign_in(session, ref)
        if caller_id_number is not None:
            if caller_id_number.strip():
                parsed = numbers.parse_number(caller_id_number, campaign.default_region)
                if not parsed:
                    raise InvalidInput(f"caller id {caller_id_number!r}: {parsed.message}",
                                       field="caller_id_number")
                changes["caller_id_number"] = parsed.e164
            else:
                changes["caller_id_number"] = None
        for key, value in changes.items():
            setattr(campaign, key, value)
        session.flush()
        settings = worker_settings_of(campaign)
        publish_settings_in(session, campaign.id, settings)
    _notify_caches()
    logger.info("campaign %s: settings changed (%s)", settings["name"], ", ".join(sorted(changes)))
    return settings


def publish_settings_in(session: Session, campaign_id: int, settings: dict) -> int:
    """A ``campaign`` event carrying status and settings to every worker of the campaign."""
    from ..models import Worker
    from . import events

    ids = session.scalars(sa.select(Worker.id).where(Worker.campaign_id == campaign_id)).all()
    for wid in ids:
        events.publish_in(session, wid, "campaign", dict(settings))
    return len(ids)

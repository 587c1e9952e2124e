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

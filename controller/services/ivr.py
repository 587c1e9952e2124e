"""IVR support services: menus served to local centers (R3), the customer
look-up application server (R8) and callback requests stored as scheduled
records (R9 fallback, P9)."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import Any, Mapping

import sqlalchemy as sa

from esl_dialer.ivr.menu import Menu, MenuError
from esl_dialer.messages import RecordStatus

from ..db import Database
from ..errors import InvalidInput, NotFound
from ..models import Campaign, CallRecord, IvrMenu, Pool, utcnow
from ..numbers import normalise
from ..record_status import set_status
from .txn import write_session

logger = logging.getLogger(__name__)

CALLBACK_PRIORITY = -50  # ahead of the list, behind web leads (-100)


def _etag(document: Mapping[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()[:32]


def put_menu(db: Database, document: Mapping[str, Any]) -> str:
    """Store (or replace) a menu after validating it; returns its ETag."""
    try:
        menu = Menu.from_dict(document)
    except MenuError as err:
        raise InvalidInput(str(err), field="menu") from None
    etag = _etag(document)
    with write_session(db) as session:
        row = session.scalar(sa.select(IvrMenu).where(IvrMenu.name == menu.name))
        if row is None:
            session.add(IvrMenu(name=menu.name, document=dict(document), etag=etag))
        elif row.etag != etag:
            row.document, row.etag, row.updated_at = dict(document), etag, utcnow()
    return etag


def get_menu(db: Database, name: str) -> tuple[dict[str, Any], str]:
    with db.session() as session:
        row = session.scalar(sa.select(IvrMenu).where(IvrMenu.name == name))
        if row is None:
            raise NotFound(f"no IVR menu {name!r}")
        return dict(row.document), row.etag


def lookup_customer(db: Database, number: str | None, account: str | None = None) -> dict[str, Any]:
    """R8: who is calling?  The most recent call record with this number.

    ``vip`` comes from the record's ``extra`` data (a CSV column at load time).
    """
    if not number:
        raise InvalidInput("number is required", field="number")
    parsed = normalise(number, "US")
    if not parsed:
        return {"found": False}
    with db.session() as session:
        record = session.scalar(sa.select(CallRecord).where(CallRecord.number == parsed.e164)
                                .order_by(CallRecord.updated_at.desc()).limit(1))
        if record is None:
            return {"found": False}
        extra = record.extra or {}
        vip = str(extra.get("vip", "")).lower() in ("1", "true", "yes", "y")
        return {"found": True, "name": record.name, "city": record.city, "region": record.region,
                "vip": vip, "attempts": record.attempts, "account_match":
                    bool(account) and str(extra.get("account", "")) == str(account)}


def request_callback(db: Database, campaign: str, number: str, name: str | None = None,
                     callback_at: dt.datetime | None = None, pool: str = "callbacks",
                     note: str | None = None) -> int:
    """Store a caller's callback request as a scheduled record (P9): the dialers call back."""
    parsed = normalise(number, "US")
    if not parsed:
        raise InvalidInput(f"invalid number: {parsed.message}", field="number")
    when = callback_at or utcnow()
    with write_session(db) as session:
        camp = session.scalar(sa.select(Campaign).where(Campaign.name == campaign))
        if camp is None:
            raise NotFound(f"no campaign {campaign!r}", field="campaign")
        pool_row = session.scalar(sa.select(Pool).where(Pool.campaign_id == camp.id, Pool.name == pool))
        if pool_row is None:
            pool_row = Pool(campaign_id=camp.id, name=pool, position=-1)
            session.add(pool_row)
            session.flush()
        record = session.scalar(sa.select(CallRecord).where(
            CallRecord.campaign_id == camp.id, CallRecord.number == parsed.e164))
        extra = {"ivr_callback": True, **({"note": note[:500]} if note else {})}
        if record is None:
            record = CallRecord(campaign_id=camp.id, pool_id=pool_row.id, number=parsed.e164, name=name,
                                city=parsed.city, region=parsed.region, country=parsed.country,
                                timezone=parsed.timezone_text, extra=extra, status=RecordStatus.READY,
                                priority=CALLBACK_PRIORITY, is_callback=True, next_attempt_at=when)
            session.add(record)
        elif record.status == RecordStatus.DNC:
            raise InvalidInput("number is on the do-not-call list", field="number")
        elif record.status in (RecordStatus.QUEUED, RecordStatus.LEASED):
            # A dialer holds it already: just flag it; it will be called soon anyway.
            record.is_callback, record.next_attempt_at = True, when
        else:
            if record.status != RecordStatus.READY:
                set_status(record, RecordStatus.READY)
            record.is_callback, record.next_attempt_at, record.priority = True, when, CALLBACK_PRIORITY
            record.extra = {**(record.extra or {}), **extra}
        session.flush()
        logger.info("ivr: callback for %s scheduled at %s (campaign %s)", parsed.e164, when, campaign)
        return record.id

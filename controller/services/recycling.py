"""Per-campaign recycle rules (SPEC P7): after an unsuccessful result, when a
record is dialed again and how many attempts it gets in all.

A campaign without a rule for a result uses ``distribution.DEFAULT_RECYCLE``.
Rules are read by the results path through a per-process cache; a change made
here clears this process's cache at once, other controller processes follow
within ``distribution.RULES_CACHE_S`` seconds.  The CLI (``dialer campaign
recycle``) and the dashboard both call this module.
"""
from __future__ import annotations

import dataclasses
import logging

import sqlalchemy as sa

from ..db import Database
from ..errors import InvalidInput
from ..models import Campaign, RecycleRule
from . import distribution
from .campaigns import get_campaign_in
from .txn import write_session

logger = logging.getLogger(__name__)

#: results that send a record back to its pool (answered, DNC and
#: outside-hours results never recycle: done, final, not an attempt)
RECYCLABLE: tuple[str, ...] = tuple(distribution.DEFAULT_RECYCLE)
MAX_RETRY_MINUTES = 60 * 24 * 365
MAX_ATTEMPTS = 100


@dataclasses.dataclass(frozen=True)
class RuleView:
    result: str
    retry_minutes: float
    max_attempts: int
    is_default: bool


def check_rule(result, retry_minutes, max_attempts) -> tuple[str, float, int]:
    """Validated ``(result, retry_minutes, max_attempts)``; errors name the field."""
    if result not in RECYCLABLE:
        raise InvalidInput(f"result must be one of {', '.join(RECYCLABLE)}", field="result")
    try:
        minutes = float(retry_minutes)
    except (TypeError, ValueError):
        minutes = -1.0
    if not 0 <= minutes <= MAX_RETRY_MINUTES or minutes != minutes:
        raise InvalidInput(f"retry minutes must be a number from 0 to {MAX_RETRY_MINUTES}", field="retry_minutes")
    if isinstance(max_attempts, str) and max_attempts.strip().isdigit():
        max_attempts = int(max_attempts)
    if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or not 1 <= max_attempts <= MAX_ATTEMPTS:
        raise InvalidInput(f"max attempts must be a whole number from 1 to {MAX_ATTEMPTS}", field="max_attempts")
    return result, minutes, max_attempts


def rules(db: Database, campaign: str | int | Campaign) -> list[RuleView]:
    """The campaign's effective rule for every recyclable result."""
    with db.session() as session:
        cid = get_campaign_in(session, campaign).id
        own = {r.result: r for r in session.scalars(sa.select(RecycleRule).where(RecycleRule.campaign_id == cid))}
    out = []
    for result in RECYCLABLE:
        if result in own:
            out.append(RuleView(result, own[result].retry_minutes, own[result].max_attempts, False))
        else:
            spec = distribution.DEFAULT_RECYCLE[result]
            out.append(RuleView(result, spec.retry_minutes, spec.max_attempts, True))
    return out


def set_rule(db: Database, campaign: str | int | Campaign, result: str, retry_minutes, max_attempts) -> RuleView:
    """Create or change the campaign's rule for ``result``; the next result uses it (P7, P8)."""
    result, minutes, attempts = check_rule(result, retry_minutes, max_attempts)
    with write_session(db) as session:
        c = get_campaign_in(session, campaign)
        rule = session.scalar(sa.select(RecycleRule).where(RecycleRule.campaign_id == c.id,
                                                           RecycleRule.result == result))
        if rule is None:
            session.add(RecycleRule(campaign_id=c.id, result=result, retry_minutes=minutes, max_attempts=attempts))
        else:
            rule.retry_minutes, rule.max_attempts = minutes, attempts
        name = c.name
    distribution._rules.clear()
    logger.info("campaign %s: %s retried after %g min, at most %d attempts", name, result, minutes, attempts)
    return RuleView(result, minutes, attempts, False)


def reset_rule(db: Database, campaign: str | int | Campaign, result: str) -> bool:
    """Drop the campaign's own rule for ``result`` (the default applies again). False: it had none."""
    if result not in RECYCLABLE:
        raise InvalidInput(f"result must be one of {', '.join(RECYCLABLE)}", field="result")
    with write_session(db) as session:
        c = get_campaign_in(session, campaign)
        n = session.execute(sa.delete(RecycleRule).where(RecycleRule.campaign_id == c.id,
                                                        RecycleRule.result == result)).rowcount
    distribution._rules.clear()
    return bool(n)


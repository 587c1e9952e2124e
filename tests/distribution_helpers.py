"""Builders shared by the distribution / worker-API tests."""
from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from controller.models import Campaign, CallRecord
from controller.services import distribution, queues, workers
from esl_dialer.messages import CampaignStatus, RecordStatus

ALL_DAY = ("00:00", "24:00")
NOON_NY = dt.datetime(2026, 11, 23, 17, 0)  # 12:00 in New York (naive UTC)


def make_campaign(db, name="c1", *, active=True, window=ALL_DAY, tz="America/New_York") -> int:
    with db.session() as s:
        c = Campaign(name=name, status=CampaignStatus.ACTIVE if active else CampaignStatus.DRAFT,
                     window_start=window[0], window_end=window[1], default_timezone=tz)
        if window[1] == "24:00":
            c.window_end = "23:59"
        s.add(c)
        s.flush()
        return c.id


def add_numbers(db, pool_id: int, n: int, *, start: int = 0, prefix="+1212555", tz="America/New_York",
                **extra) -> list[int]:
    return queues.add_records(db, pool_id, [
        {"number": f"{prefix}{start + i:04d}", "timezone": tz, **extra} for i in range(n)
    ])


def add_worker(db, campaign_id: int, name="w1", agent=None, skill=None):
    return workers.add_worker(db, name, agent=agent or f"10{name[-2:]}".replace("w", "0"),
                              campaign_id=campaign_id, skill=skill)


def ident(db, new_worker) -> workers.WorkerIdentity:
    return workers.authenticate(db, new_worker.token)


def statuses(db, ids) -> dict[int, RecordStatus]:
    with db.session() as s:
        rows = s.execute(sa.select(CallRecord.id, CallRecord.status).where(CallRecord.id.in_(list(ids))))
        return {r.id: RecordStatus(r.status) for r in rows}


def pool_of(db, ids) -> dict[int, int]:
    with db.session() as s:
        rows = s.execute(sa.select(CallRecord.id, CallRecord.pool_id).where(CallRecord.id.in_(list(ids))))
        return dict(rows.all())


def reset_caches():
    distribution._zones.clear()
    distribution._window_memo.clear()
    distribution._last_sweep.clear()
    distribution._rates.clear()
    distribution._rules.clear()
    distribution._contexts.clear()
    distribution._fill_hints.clear()
    workers._auth_cache.clear()


@pytest.fixture
def fresh_caches():
    """Per-process caches emptied around a test (import it into a module and use it with autouse)."""
    reset_caches()
    yield
    reset_caches()


def race_claims(db, threads: int) -> tuple[list[str], list[str]]:
    """``threads`` concurrent idle-agent claims (D7): the names claimed, and one "none" per refusal."""
    got, errors = [], []

    def claim():
        try:
            got.append(workers.claim_idle_agent(db, timeout_s=60).name)
        except workers.NoIdleAgent:
            errors.append("none")

    pool = [threading.Thread(target=claim) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=30)
    return got, errors

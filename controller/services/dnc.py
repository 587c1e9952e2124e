"""The do-not-call list (SPEC D9, X1): add, load, look up, scrub a campaign.

Numbers are stored in E.164 so a look-up is one probe of the unique index.
Scrubbing a campaign after the list changes moves every record that is not yet
final and whose number is on the list to status DNC, through
:mod:`controller.record_status` (the one place status changes).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from esl_dialer.messages import RecordStatus

from .. import numbers
from ..db import Database
from ..errors import InvalidInput
from ..models import CallRecord, Campaign, DncEntry, utcnow
from ..record_status import bulk_set_status
from .campaigns import get_campaign_in
from .csvfiles import BadRow, CsvSource, normalise_header

logger = logging.getLogger(__name__)

#: numbers per IN (...) query: well under SQLite's variable limit
LOOKUP_BATCH = 900
LOAD_BATCH = 5000
MAX_SOURCE = 120
#: psycopg prepares a statement after 5 runs and PostgreSQL may then keep a
#: generic plan made while the table was still small: a sequential scan per
#: look-up, quadratic over a bulk load (measured: 1.5 s per 900-number probe at
#: 100k DNC entries).  Custom plans see the table's real size each time.
CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"
#: statuses a scrub re-checks: everything not final
OPEN_STATUSES = (RecordStatus.READY, RecordStatus.QUEUED, RecordStatus.LEASED)

NUMBER_HEADERS = ("number", "phone", "phone_number", "telephone", "tel", "mobile", "cell", "msisdn",
                  "dnc", "dnc_number")


@dataclasses.dataclass(frozen=True)
class DncLoadSummary:
    added: int
    already: int  # on the list before, or repeated in the file
    invalid: int
    total: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class ScrubSummary:
    campaign: str
    checked: int  # open records looked at
    moved: int  # moved to status DNC
    by_status: dict[str, int]  # previous status -> moved


def _insert(session: Session):
    table = DncEntry.__table__
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["number"])
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=["number"])


def _insert_many(session: Session, new: list[str], source: Optional[str]) -> None:
    now = utcnow()
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # One statement per batch (an executemany is one round trip per row).
        conn.exec_driver_sql(
            "INSERT INTO dnc_entry (number, source, added_at) SELECT unnest(%s::text[]), %s, %s "
            "ON CONFLICT (number) DO NOTHING", (new, source, now))
    else:
        session.execute(_insert(session), [{"number": n, "source": source, "added_at": now} for n in new])


def dnc_hits(session: Session, e164s: Iterable[str]) -> set[str]:
    """Which of these E.164 numbers are on the list (batched IN look-ups)."""
    todo = list(e164s)
    hits: set[str] = set()
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.exec_driver_sql(CUSTOM_PLANS)
    for start in range(0, len(todo), LOOKUP_BATCH):
        part = todo[start : start + LOOKUP_BATCH]
        # Plain driver SQL: cheaper than re-rendering an expanding IN per query.
        if postgres:
            rows = conn.exec_driver_sql("SELECT number FROM dnc_entry WHERE number = ANY(%s)", (part,))
        else:
            rows = conn.exec_driver_sql(
                f"SELECT number FROM dnc_entry WHERE number IN ({','.join('?' * len(part))})", tuple(part))
        hits.update(r[0] for r in rows)
    return hits


def _normalise(number: str, default_region: Optional[str]) -> str:
    parsed = numbers.parse_number(number, default_region)
    if not parsed:
        raise InvalidInput(f"{number!r} is not a valid phone number: {parsed.message}", field="number")
    return parsed.e164


def _clean_source(source: Optional[str]) -> Optional[str]:
    if source is None:
        return None
    source = source.strip()[:MAX_SOURCE]
    return source or None


def add_number(db: Database, number: str, source: Optional[str] = None,
               default_region: Optional[str] = "US") -> tuple[str, bool]:
    """Put one number on the list. Returns (E.164, added) - added False if already there."""
    e164 = _normalise(number, default_region)
    with db.session() as session:
        if dnc_hits(session, [e164]):
            return e164, False
        session.execute(_insert(session), [{"number": e164, "source": _clean_source(source),
                                            "added_at": utcnow()}])
    logger.info("DNC: added %s (source %s)", e164, source)
    return e164, True


def is_dnc(db: Database, number: str, default_region: Optional[str] = "US") -> bool:
    """True if the number is on the list. Unparseable input is InvalidInput."""
    e164 = _normalise(number, default_region)
    with db.session() as session:
        return bool(dnc_hits(session, [e164]))


def _number_column(header: list[str]) -> Optional[int]:
    names = [normalise_header(h) for h in header]
    for alias in NUMBER_HEADERS:
        if alias in names:
            return names.index(alias)
    return None


def load_file(
    db: Database,
    path: str | Path,
    source: Optional[str] = None,
    default_region: Optional[str] = "US",
    progress: Optional[Callable[[int], None]] = None,
) -> DncLoadSummary:
    """Load a DNC file: one number per line, or a CSV with a number/phone column.

    A first line that is not a number and has no number-like column is an
    error; unparseable numbers are counted as invalid and skipped.
    """
    started = time.perf_counter()
    source = _clean_source(source) or Path(path).name[:MAX_SOURCE]
    added = already = invalid = total = 0
    with CsvSource(path, has_header=True) as reader:
        header = reader.header or []
        column = _number_column(header)
        first_rows: list = []
        if column is None:
            # No header: the first line is data if its first field parses as a number.
            if numbers.parse_number(header[0], default_region):
                column = 0
                first_rows = [header]
            else:
                raise InvalidInput(
                    f"{path}: no number column (looked for {', '.join(NUMBER_HEADERS[:4])}) and the first "
                    "line is not a phone number", field="file")
        batch: dict[str, None] = {}
        reported = 0

        def flush() -> None:
            nonlocal added, already, reported
            if not batch:
                return
            with db.session() as session:
                existing = dnc_hits(session, batch)
                new = [n for n in batch if n not in existing]
                if new:
                    _insert_many(session, new, source)
            added += len(new)
            already += len(existing)
            batch.clear()
            if progress is not None:
                progress(reader.chars_read - reported)
                reported = reader.chars_read

        def rows():
            yield from first_rows
            for row in reader:
                yield row

        for row in rows():
            total += 1
            if isinstance(row, BadRow):
                invalid += 1
                continue
            fields = row if isinstance(row, list) else row.fields
            raw = fields[column] if column < len(fields) else ""
            parsed = numbers.parse_number(raw, default_region)
            if not parsed:
                invalid += 1
                continue
            if parsed.e164 in batch:
                already += 1
                continue
            batch[parsed.e164] = None
            if len(batch) >= LOAD_BATCH:
                flush()
        flush()
        if progress is not None:
            progress(max(0, reader.size - reported))
    summary = DncLoadSummary(added, already, invalid, total, round(time.perf_counter() - started, 3))
    logger.info("DNC: loaded %s: %s", path, summary)
    return summary


def scrub_campaign(db: Database, campaign: str | int | Campaign) -> ScrubSummary:
    """Re-check every open record of the campaign against the list (D9 after a list change)."""
    with db.session() as session:
        c = get_campaign_in(session, campaign)
        checked = session.scalar(
            sa.select(sa.func.count()).select_from(CallRecord)
            .where(CallRecord.campaign_id == c.id, CallRecord.status.in_(OPEN_STATUSES))
        ) or 0
        on_list = sa.select(DncEntry.number)
        by_status: dict[str, int] = {}
        for status in OPEN_STATUSES:
            moved = bulk_set_status(
                session, RecordStatus.DNC,
                where=[CallRecord.campaign_id == c.id, CallRecord.number.in_(on_list)],
                from_statuses=[status],
                last_result="dnc",
            )
            if moved:
                by_status[status.value] = moved
        name = c.name
    total = sum(by_status.values())
    logger.info("scrub campaign %s: %s open records checked, %s moved to DNC %s", name, checked, total, by_status)
    return ScrubSummary(name, checked, total, by_status)

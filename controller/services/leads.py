"""Loading call records from CSV into a campaign's pool (SPEC P1, D9).

Pipeline, all streaming with bounded memory::

    CsvSource (rows, line numbers)  ->  chunks of CHUNK_ROWS
      -> numberpool.parse_in_order (E.164 + validity; worker processes for big files)
      -> parent, in file order, per chunk one transaction: duplicates within
         the chunk (a small set), DNC look-up, "already in campaign" look-up
         (which also finds duplicates of rows loaded from earlier chunks),
         city/state/time zone (per-prefix cache), insert (Core executemany on
         SQLite, COPY on PostgreSQL)
      -> rejects CSV beside the input: line, reason, original fields

Every decision that depends on order (which of two equal numbers is the
duplicate) is made in the parent in file order, so the result is the same
with one process or many.  Re-running a load is safe: numbers already in the
campaign are counted as duplicates and the unique (campaign, number) index
backs that up against a concurrent loader.
"""
from __future__ import annotations

import os

import collections
import csv
import dataclasses
import json
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from esl_dialer.messages import RecordStatus

from .. import numbers
from ..db import Database
from ..errors import InvalidInput
from ..models import CallRecord, Campaign, Pool, utcnow
from . import leadblocks, numberpool
from .campaigns import get_campaign_in, get_or_create_pool
from .csvfiles import BadRow, CsvSource, Row, normalise_header
from .dnc import CUSTOM_PLANS, LOOKUP_BATCH, dnc_hits

logger = logging.getLogger(__name__)

CHUNK_ROWS = 5000
#: files at least this big are parsed by a process pool
PARALLEL_MIN_BYTES = 2 * 1024 * 1024
#: SQLite: the writer's connection runs with ``synchronous=OFF`` during a load
#: (restored to NORMAL after).  Without it every WAL checkpoint waits for an
#: fsync: 24 s instead of 14 s for a million inserts here.  A crash of the
#: process loses nothing; an OS crash or power cut *during a load* may damage
#: the database file (see docs/20-campaigns.md).  DIALER_SQLITE_LOAD_SYNC=normal
#: keeps full durability during loads at the cost of speed.
SQLITE_SYNC_OFF = os.environ.get("DIALER_SQLITE_LOAD_SYNC", "off").lower() != "normal"
#: PostgreSQL: refresh call_record statistics after this many rows, then at each doubling
ANALYZE_MIN_ROWS = 20_000

#: target fields; ``extra`` keeps the column in the record's JSON, ``ignore`` drops it
FIELDS = ("number", "name", "first_name", "last_name", "city", "region", "priority", "difficulty",
          "extra", "ignore")
#: header aliases (normalised: lower case, spaces/dashes -> _), first match wins
ALIASES: dict[str, tuple[str, ...]] = {
    "number": ("number", "phone", "phone_number", "phonenumber", "telephone", "telephone_number", "tel",
               "mobile", "mobile_number", "cell", "cell_phone", "msisdn", "contact_number", "phone1"),
    "name": ("name", "full_name", "fullname", "contact_name", "customer_name"),
    "first_name": ("first_name", "firstname", "first", "given_name", "forename"),
    "last_name": ("last_name", "lastname", "last", "surname", "family_name"),
    "city": ("city", "town", "locality"),
    "region": ("state", "region", "province", "st", "state_code", "county"),
    "priority": ("priority",),
    "difficulty": ("difficulty",),
}

READY = RecordStatus.READY.value
_esc = json.encoder.encode_basestring_ascii  # C accelerated; json.dumps' default ensure_ascii form
REASON_DUPLICATE_FILE = "duplicate of an earlier row in this file"
REASON_DNC = "on the do-not-call list"


@dataclasses.dataclass(frozen=True)
class ColumnPlan:
    header: tuple[str, ...]
    number: int
    name: Optional[int] = None
    first_name: Optional[int] = None
    last_name: Optional[int] = None
    city: Optional[int] = None
    region: Optional[int] = None
    priority: Optional[int] = None
    difficulty: Optional[int] = None
    extra: tuple[tuple[int, str], ...] = ()

    def describe(self) -> str:
        parts = [f"{self.header[getattr(self, f)]}->{f}" for f in FIELDS[:8] if getattr(self, f) is not None]
        if self.extra:
            parts.append("extra: " + ", ".join(k for _, k in self.extra))
        return "; ".join(parts)


@dataclasses.dataclass
class LoadSummary:
    file: str
    campaign: str
    pool: str
    loaded: int = 0
    duplicate: int = 0
    dnc: int = 0
    invalid: int = 0
    rejected: int = 0  # unreadable rows and bad field values
    total: int = 0
    seconds: float = 0.0
    rejects_file: Optional[str] = None
    invalid_reasons: dict[str, int] = dataclasses.field(default_factory=dict)
    workers: int = 1
    columns: str = ""

    @property
    def rows_per_second(self) -> float:
        return self.total / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"rows_per_second": round(self.rows_per_second, 1)}

    def lines(self) -> list[str]:
        """The human summary the CLI prints."""
        out = [
            f"campaign {self.campaign!r}, pool {self.pool!r}: {self.loaded} loaded of {self.total} rows "
            f"in {self.seconds:.1f} s",
            f"  loaded     {self.loaded}",
            f"  duplicate  {self.duplicate}",
            f"  DNC        {self.dnc}",
            f"  invalid    {self.invalid}"
            + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(self.invalid_reasons.items())) + ")"
               if self.invalid_reasons else ""),
            f"  rejected   {self.rejected}",
            f"  total      {self.total}",
        ]
        if self.rejects_file:
            out.append(f"rejected rows with line numbers and reasons: {self.rejects_file}")
        return out


# --------------------------------------------------------------------------- columns


def parse_mapping(items: Sequence[str]) -> dict[str, str]:
    """``["Tel=number", "Nom=name"]`` (the CLI's ``--map``) -> dict; InvalidInput on bad items."""
    mapping: dict[str, str] = {}
    for item in items:
        column, sep, field = item.rpartition("=")
        column, field = column.strip(), field.strip().lower()
        if not sep or not column or not field:
            raise InvalidInput(f"--map takes COLUMN=FIELD, got {item!r}", field="map")
        mapping[column] = field
    return mapping


def plan_columns(header: Sequence[str], mapping: Optional[Mapping[str, str]] = None) -> ColumnPlan:
    """Decide which column feeds which field: explicit mapping first, then header aliases."""
    header = [h if h else f"column_{i + 1}" for i, h in enumerate(header)]
    seen: dict[str, int] = {}
    for i, h in enumerate(header):  # duplicate header names get a suffix
        if h in seen:
            header[i] = f"{h}_{i + 1}"
        seen[h] = i
    normalised = [normalise_header(h) for h in header]
    chosen: dict[str, int] = {}
    taken: dict[int, str] = {}
    for column, field in (mapping or {}).items():
        if field not in FIELDS:
            raise InvalidInput(f"--map {column}={field}: unknown field {field!r} "
                               f"(one of {', '.join(FIELDS)})", field="map")
        if column in header:
            index = header.index(column)
        elif normalise_header(column) in normalised:
            index = normalised.index(normalise_header(column))
        else:
            raise InvalidInput(f"--map {column}={field}: no column {column!r} in the header "
                               f"(columns: {', '.join(header)})", field="map")
        if field not in ("extra", "ignore"):
            if field in chosen:
                raise InvalidInput(f"--map: two columns map to {field!r}", field="map")
            chosen[field] = index
        taken[index] = field
    for field, aliases in ALIASES.items():
        if field in chosen:
            continue
        for alias in aliases:
            if alias in normalised and normalised.index(alias) not in taken:
                index = normalised.index(alias)
                chosen[field] = index
                taken[index] = field
                break
    if "number" not in chosen:
        raise InvalidInput(
            f"no phone number column in the header (columns: {', '.join(header)}); name it phone or "
            "number, or use --map COLUMN=number", field="map")
    extra = tuple((i, header[i]) for i in range(len(header)) if i not in taken or taken[i] == "extra")
    return ColumnPlan(header=tuple(header), extra=extra, **chosen)


# --------------------------------------------------------------------------- rejects


class RejectsWriter:
    """``<input>.rejects.csv``: line, reason, the original fields. Created on first reject."""

    def __init__(self, path: Path, header: Sequence[str]) -> None:
        self.path = path
        self.header = list(header)
        self._file = None
        self._writer = None
        self.count = 0
        try:
            path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
        except OSError as err:
            raise InvalidInput(f"cannot replace rejects file {path}: {err.strerror}", field="file") from None

    def write(self, line: int, reason: str, fields: Sequence[str]) -> None:
        if self._writer is None:
            try:
                self._file = open(self.path, "w", encoding="utf-8", newline="")
            except OSError as err:
                raise InvalidInput(f"cannot write rejects file {self.path}: {err.strerror}",
                                   field="file") from None
            self._writer = csv.writer(self._file)
            self._writer.writerow(["line", "reason", *self.header])
        self._writer.writerow([line, reason, *fields])
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


# --------------------------------------------------------------------------- inserts

COLUMNS = ("campaign_id", "pool_id", "number", "name", "city", "region", "country", "timezone", "extra",
           "status", "priority", "difficulty", "attempts", "is_callback", "created_at", "updated_at")


_QMARKS = ", ".join("?" for _ in COLUMNS)
_SQLITE_INSERT = (f"INSERT INTO call_record ({', '.join(COLUMNS)}) VALUES ({_QMARKS}) "
                  "ON CONFLICT (campaign_id, number) DO NOTHING")


def _insert_sqlite(session: Session, rows: list[tuple]) -> None:
    """One DBAPI executemany of ready-made tuples (values already in storage form:
    enum value, JSON text, SQLAlchemy's SQLite timestamp text).  About ten times
    the rate of an ORM flush; the conflict clause covers a concurrent loader."""
    session.connection().exec_driver_sql(_SQLITE_INSERT, rows)


def _insert_postgres(session: Session, rows: list[tuple]) -> None:
    """COPY (about twice an executemany); falls back to INSERT .. ON CONFLICT if a
    concurrent loader inserted one of these numbers first."""
    copy_sql = f"COPY call_record ({', '.join(COLUMNS)}) FROM STDIN"
    try:
        with session.begin_nested():
            driver = session.connection().connection.driver_connection
            with driver.cursor() as cursor, cursor.copy(copy_sql) as copy:
                for r in rows:
                    copy.write_row(r)
    except Exception as err:  # psycopg.errors.UniqueViolation, raised by the driver itself
        if type(err).__name__ != "UniqueViolation":
            raise
        logger.info("COPY hit a concurrent insert; retrying batch with ON CONFLICT DO NOTHING")
        placeholders = ", ".join("%s" for _ in COLUMNS)
        session.connection().exec_driver_sql(
            f"INSERT INTO call_record ({', '.join(COLUMNS)}) VALUES ({placeholders}) "
            "ON CONFLICT (campaign_id, number) DO NOTHING", rows)


def _storage_values(dialect: str) -> tuple[object, object]:
    """(timestamp, false) as the driver wants them for this backend."""
    now = utcnow()
    if dialect == "sqlite":
        return now.strftime("%Y-%m-%d %H:%M:%S.%f"), 0
    return now, False


def _existing(session: Session, campaign_id: int, e164s: Sequence[str]) -> dict[str, int]:
    """number -> record id for the numbers already in the campaign (unique index probes).

    Plain driver SQL: the compiled-IN path of SQLAlchemy re-renders 900
    placeholders per query, which cost more than the look-up itself.
    """
    conn = session.connection()
    found: dict[str, int] = {}
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(CUSTOM_PLANS)
        for start in range(0, len(e164s), LOOKUP_BATCH):
            part = list(e164s[start : start + LOOKUP_BATCH])
            found.update(conn.exec_driver_sql(
                "SELECT number, id FROM call_record WHERE campaign_id = %s AND number = ANY(%s)",
                (campaign_id, part)).all())
        return found
    for start in range(0, len(e164s), LOOKUP_BATCH):
        part = tuple(e164s[start : start + LOOKUP_BATCH])
        marks = ",".join("?" * len(part))
        found.update(conn.exec_driver_sql(
            f"SELECT number, id FROM call_record WHERE campaign_id = ? AND number IN ({marks})",
            (campaign_id, *part)).all())
    return found


# --------------------------------------------------------------------------- the loader


def _block_spec(plan: ColumnPlan, pool_difficulty: int) -> tuple:
    """The column plan as plain values for :func:`leadblocks.parse_block`."""
    return (plan.number, plan.name, plan.first_name, plan.last_name, plan.city, plan.region, plan.priority,
            plan.difficulty, [(i, _esc(key) + ": ") for i, key in plan.extra], len(plan.header),
            pool_difficulty)


def _int_field(fields: Sequence[str], index: Optional[int], default: int, what: str) -> int:
    if index is None or index >= len(fields) or not fields[index].strip():
        return default
    try:
        return int(fields[index].strip())
    except ValueError:
        raise ValueError(f"{what} must be a whole number, got {fields[index][:40]!r}") from None


def _chunks(reader: CsvSource, plan: ColumnPlan) -> Iterator[tuple[list, list[str]]]:
    """(payload rows incl. bad rows, raw numbers of the good rows) per CHUNK_ROWS rows."""
    payload: list = []
    raws: list[str] = []
    number_index = plan.number
    for row in reader:
        payload.append(row)
        if isinstance(row, Row):
            fields = row.fields
            raws.append(fields[number_index] if number_index < len(fields) else "")
        if len(payload) >= CHUNK_ROWS:
            yield payload, raws
            payload, raws = [], []
    if payload:
        yield payload, raws


def load_leads(
    db: Database,
    path: str | Path,
    campaign: str | int | Campaign,
    pool: str,
    *,
    default_region: Optional[str] = None,
    mapping: Optional[Mapping[str, str]] = None,
    delimiter: Optional[str] = None,
    progress: Optional[Callable[[int], None]] = None,
    workers: Optional[int] = None,
    rejects_path: Optional[str | Path] = None,
) -> LoadSummary:
    """Load a CSV of call records into ``pool`` (created if missing) of ``campaign``.

    ``progress(n)`` is called with the number of characters consumed since the
    last call (the file size in total), for a progress bar.  ``workers``: parse
    processes (default: one per core for files over 2 MiB, else in-process).
    Raises InvalidInput / NotFound for problems with the whole file; problems
    with single rows go to the rejects file and the summary.
    """
    started = time.perf_counter()
    path = Path(path)
    with db.session() as session:
        c = get_campaign_in(session, campaign)
        campaign_id, campaign_name = c.id, c.name
        region = (default_region or c.default_region or "").upper() or None
    if region and not numbers.valid_region(region):
        raise InvalidInput(f"unknown region {default_region!r} (use an ISO code like US, GB)",
                           field="default_region")
    with CsvSource(path, delimiter) as reader:
        plan = plan_columns(reader.header or [], mapping)
        pool_obj, created = get_or_create_pool(db, campaign_id, pool)
        if created:
            logger.info("load: created pool %s in campaign %s", pool_obj.name, campaign_name)
        if workers is None:
            workers = numberpool.default_workers() if reader.size >= PARALLEL_MIN_BYTES else 1
        summary = LoadSummary(str(path), campaign_name, pool_obj.name, workers=workers,
                              columns=plan.describe())
        rejects = RejectsWriter(Path(rejects_path) if rejects_path else path.with_name(path.name + ".rejects.csv"),
                                plan.header)
        loader = _ChunkLoader(plan, campaign_id, campaign_name, pool_obj, summary, rejects, db.dialect)
        with db.session() as session:
            loader.id_watermark = session.scalar(sa.select(sa.func.max(CallRecord.id))) or 0
        reported = 0
        writer = loader.writer = _Writer(db, _insert_postgres if db.dialect == "postgresql" else _insert_sqlite)
        try:
            offset = leadblocks.fast_body_offset(path, reader.lines_read) if workers > 1 else None
            if offset is not None:  # no quotes anywhere: workers read whole blocks of lines
                spec = _block_spec(plan, pool_obj.difficulty)
                jobs = ((len(block), (block, line, reader.delimiter, spec))
                        for block, line in leadblocks.blocks(path, offset, reader.lines_read + 1))
                if progress is not None:
                    progress(offset)
                reported = offset
                for size, items in numberpool.parse_in_order(jobs, region, workers, leadblocks.parse_block):
                    with db.session() as session:
                        loader.load_block(session, items, reader.delimiter)
                    reported += size
                    if progress is not None:
                        progress(size)
            else:
                for payload, results in numberpool.parse_in_order(_chunks(reader, plan), region, workers):
                    with db.session() as session:
                        loader.load_chunk(session, payload, results)
                    if progress is not None:
                        now_read = reader.chars_read
                        progress(now_read - reported)
                        reported = now_read
            writer.close()
        finally:
            writer.stop()
            rejects.close()
        if progress is not None and reader.size > reported:
            progress(reader.size - reported)
    summary.rejects_file = str(rejects.path) if rejects.count else None
    summary.invalid_reasons = dict(loader.reasons)
    summary.seconds = round(time.perf_counter() - started, 3)
    logger.info("load %s into %s/%s: %s loaded, %s duplicate, %s DNC, %s invalid, %s rejected of %s in %.1f s",
                path, campaign_name, summary.pool, summary.loaded, summary.duplicate, summary.dnc,
                summary.invalid, summary.rejected, summary.total, summary.seconds)
    return summary


class _Writer:
    """Inserts batches in a thread, one transaction each, in submission order.

    sqlite3 and psycopg release the GIL while the database works (SQLite's
    B-tree inserts into four indexes are ~15 us a row at a million rows), so
    writing batch N overlaps deciding batch N+1.  At most DEPTH batches wait.
    """

    DEPTH = 2  # one being written + one queued
    POLL_S = 1.0
    JOIN_TIMEOUT_S = 600.0

    def __init__(self, db: Database, insert: Callable[[Session, list[tuple]], None]) -> None:
        self.db = db
        self.insert = insert
        self.error: Optional[BaseException] = None
        self.queue: queue.Queue = queue.Queue(maxsize=self.DEPTH - 1)
        self.thread = threading.Thread(target=self._run, name="lead-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with self.db.engine.connect() as conn:
                fast = conn.dialect.name == "sqlite" and SQLITE_SYNC_OFF
                if fast:
                    conn.exec_driver_sql("PRAGMA synchronous=OFF")
                    conn.commit()
                try:
                    self._loop(conn)
                finally:
                    if fast:  # the pooled connection goes back durable
                        conn.rollback()
                        conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
                        conn.commit()
        except BaseException as err:  # handed to the loading thread, never lost
            self.error = self.error or err

    def _loop(self, conn: sa.Connection) -> None:
        """One dedicated connection for the whole load, one transaction per batch."""
        while True:
            rows = self.queue.get()
            if rows is None:
                return
            if self.error is not None:
                continue  # drain after a failure; the loader raises it
            try:
                with Session(bind=conn) as session, session.begin():
                    self.insert(session, rows)
            except BaseException as err:  # handed to the loading thread, never lost
                self.error = err

    def _raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def _put(self, item) -> None:
        while True:
            self._raise_error()
            if not self.thread.is_alive():
                raise RuntimeError("lead writer thread stopped")
            try:
                self.queue.put(item, timeout=self.POLL_S)
                return
            except queue.Full:
                continue

    def submit(self, rows: list[tuple]) -> None:
        self._put(rows)

    def close(self) -> None:
        """Wait for every batch to be committed; raises the writer's error if any."""
        self._put(None)
        self.thread.join(timeout=self.JOIN_TIMEOUT_S)
        if self.thread.is_alive():
            raise RuntimeError("lead writer did not finish in time")
        self._raise_error()

    def stop(self) -> None:
        """On any exit: make sure the thread ends (idempotent)."""
        if self.thread.is_alive():
            self.error = self.error or RuntimeError("load aborted")
            try:
                self.queue.put(None, timeout=self.JOIN_TIMEOUT_S)
            except queue.Full:
                logger.error("lead writer queue stuck; abandoning the thread")
                return
            self.thread.join(timeout=self.JOIN_TIMEOUT_S)


class _ChunkLoader:
    """Parent-side decisions for one chunk at a time (file order)."""

    def __init__(self, plan: ColumnPlan, campaign_id: int, campaign_name: str, pool: Pool,
                 summary: LoadSummary, rejects: RejectsWriter, dialect: str) -> None:
        self.plan = plan
        self.dialect = dialect
        self.extra_keys = [(i, _esc(key) + ": ") for i, key in plan.extra]
        self.header_len = len(plan.header)
        self.writer: Optional[_Writer] = None  # set by load_leads
        # The writer holds at most WRITER_DEPTH chunks not yet committed (one
        # being written, one queued); a later chunk checks their numbers here,
        # older ones are in the database.
        self.recent: collections.deque[set[str]] = collections.deque(maxlen=_Writer.DEPTH + 1)
        self.campaign_id = campaign_id
        self.pool_id = pool.id
        self.pool_difficulty = pool.difficulty
        self.summary = summary
        self.rejects = rejects
        self.reason_existing = f"already in campaign {campaign_name}"
        # Duplicates within the file are found in the database too: earlier
        # chunks are committed before a later chunk is decided, and rows this
        # run inserted have ids above the watermark.  No in-memory set of every
        # number seen (that was 60+ MB for a million rows).
        self.id_watermark = 0
        self.reasons: collections.Counter = collections.Counter()
        # Numbers rejected as DNC in this load: a later row with the same number
        # is a duplicate whether or not it falls in the same chunk (the counts
        # must not depend on chunk boundaries).  At most the DNC hits' size.
        self.dnc_seen: set[str] = set()
        self.analyzed_at = 0  # PostgreSQL: rows read when statistics were last refreshed

    def _refresh_statistics(self, session: Session) -> None:
        """PostgreSQL: ``ANALYZE call_record`` each time the rows this load added
        double (and after the first 20k).  On statistics from the empty table the
        planner estimates ~300 rows per campaign and probes "already in the
        campaign?" with a bitmap scan of the *whole campaign* filtered by the
        number list (350 ms per probe of 900 at 500k rows, growing with the
        table: the super-linear load time) instead of 900 unique-index look-ups
        (~10 ms).  Autovacuum analyzes far too late for a load.  About seven
        ANALYZEs for a million rows, ~0.2 s each (a 30k-row sample)."""
        done = self.summary.total  # rows read, not loaded: a re-run on stale statistics needs it too
        if self.dialect != "postgresql" or done - self.analyzed_at < max(ANALYZE_MIN_ROWS, self.analyzed_at):
            return
        session.connection().exec_driver_sql("ANALYZE call_record")
        self.analyzed_at = done

    def load_chunk(self, session: Session, payload: list, results: list) -> None:
        s = self.summary
        pending: list[tuple[int, str, list[str]]] = []  # written sorted by line at the end

        def reject(line: int, reason: str, fields: list[str]) -> None:
            pending.append((line, reason, fields))

        try:
            self._decide(session, payload, results, reject)
        finally:
            pending.sort(key=lambda r: r[0])
            for line, reason, fields in pending:
                self.rejects.write(line, reason, fields)

    def load_block(self, session: Session, items: list, delimiter: str) -> None:
        """The fast path's counterpart of :meth:`load_chunk` (same decisions, same order)."""
        pending: list[tuple[int, str, list[str]]] = []

        def reject(line: int, reason: str, fields: list[str]) -> None:
            pending.append((line, reason, fields))

        try:
            self._decide_block(session, items, delimiter, reject)
        finally:
            pending.sort(key=lambda r: r[0])
            for line, reason, fields in pending:
                self.rejects.write(line, reason, fields)

    def _decide_block(self, session: Session, items: list, delimiter: str, reject) -> None:
        s = self.summary
        candidates: list[tuple] = []
        seen: set[str] = set()
        recent: set[str] = set().union(*self.recent)
        dnc_seen = self.dnc_seen
        for item in items:
            s.total += 1
            kind = item[0]
            if kind == "G":
                e164 = item[2]
                if e164 in seen or e164 in recent or e164 in dnc_seen:
                    s.duplicate += 1
                    reject(item[1], REASON_DUPLICATE_FILE, item[12].split(delimiter))
                    continue
                seen.add(e164)
                candidates.append(item)
            elif kind == "I":
                s.invalid += 1
                self.reasons[item[2]] += 1
                reject(item[1], f"invalid number: {item[3]}", item[4])
            else:
                s.rejected += 1
                reject(item[1], item[2], item[3])
        if not candidates:
            return
        e164s = [item[2] for item in candidates]
        self._refresh_statistics(session)
        on_dnc = dnc_hits(session, e164s)
        existing = _existing(session, self.campaign_id, e164s)
        now, false = _storage_values(self.dialect)
        describe = numbers.describe_e164
        campaign_id, pool_id, watermark = self.campaign_id, self.pool_id, self.id_watermark
        rows: list[tuple] = []
        append = rows.append
        for (_, line, e164, country, geographical, name, city, region, extra, priority, difficulty, error,
             text) in candidates:
            if e164 in on_dnc:
                s.dnc += 1
                dnc_seen.add(e164)
                reject(line, REASON_DNC, text.split(delimiter))
                continue
            if e164 in existing:
                s.duplicate += 1
                reject(line, REASON_DUPLICATE_FILE if existing[e164] > watermark else self.reason_existing,
                       text.split(delimiter))
                continue
            if error is not None:
                s.rejected += 1
                reject(line, error, text.split(delimiter))
                continue
            location = describe(e164, country, geographical)
            append((campaign_id, pool_id, e164, name, city or location.city, region or location.region,
                    country or None, location.timezone_column, extra, READY, priority, difficulty,
                    0, false, now, now))
        if rows:
            self.recent.append({r[2] for r in rows})
            self.writer.submit(rows)
            s.loaded += len(rows)

    def _decide(self, session: Session, payload: list, results: list, reject) -> None:
        s = self.summary
        candidates: list[tuple[Row, tuple]] = []
        result_iter = iter(results)
        seen: set[str] = set()  # duplicates within this chunk
        # numbers of the chunks the writer may not have committed yet
        recent: set[str] = set().union(*self.recent)
        dnc_seen = self.dnc_seen
        for row in payload:
            s.total += 1
            if isinstance(row, BadRow):
                s.rejected += 1
                reject(row.line, row.reason, row.fields)
                continue
            result = next(result_iter)
            e164 = result[0]
            if e164 is None:
                s.invalid += 1
                self.reasons[result[1]] += 1
                reject(row.line, f"invalid number: {result[2]}", row.fields)
                continue
            if e164 in seen or e164 in recent or e164 in dnc_seen:
                s.duplicate += 1
                reject(row.line, REASON_DUPLICATE_FILE, row.fields)
                continue
            seen.add(e164)
            candidates.append((row, result))
        if not candidates:
            return
        e164s = [r[0] for _, r in candidates]
        self._refresh_statistics(session)
        on_dnc = dnc_hits(session, e164s)
        existing = _existing(session, self.campaign_id, e164s)
        now, false = _storage_values(self.dialect)
        rows: list[tuple] = []
        for row, (e164, country, geographical) in candidates:
            if e164 in on_dnc:
                s.dnc += 1
                dnc_seen.add(e164)
                reject(row.line, REASON_DNC, row.fields)
                continue
            if e164 in existing:
                s.duplicate += 1
                ours = existing[e164] > self.id_watermark
                reject(row.line, REASON_DUPLICATE_FILE if ours else self.reason_existing, row.fields)
                continue
            try:
                record = self._record(row.fields, e164, country, geographical, now, false)
            except ValueError as err:
                s.rejected += 1
                reject(row.line, str(err), row.fields)
                continue
            rows.append(record)
        if rows:
            self.recent.append({r[2] for r in rows})
            self.writer.submit(rows)
            s.loaded += len(rows)

    def _record(self, fields: list[str], e164: str, country: str, geographical: bool, now, false) -> tuple:
        """The driver-ready row tuple (COLUMNS order). Hot: ~1M calls per big load."""
        plan = self.plan
        n = len(fields)
        name_i, first_i, last_i = plan.name, plan.first_name, plan.last_name
        name = fields[name_i] if name_i is not None and name_i < n else None
        if name is None and (first_i is not None or last_i is not None):
            first = fields[first_i].strip() if first_i is not None and first_i < n else ""
            last = fields[last_i].strip() if last_i is not None and last_i < n else ""
            name = f"{first} {last}" if first and last else first or last
        location = numbers.describe_e164(e164, country, geographical)
        city_i, region_i = plan.city, plan.region
        city = fields[city_i].strip()[:120] if city_i is not None and city_i < n else None
        region = fields[region_i].strip()[:120] if region_i is not None and region_i < n else None
        # JSON text as json.dumps would write it (what SQLAlchemy's JSON type
        # stores), built from pre-encoded keys: a third of the cost.
        parts = [key + _esc(fields[i]) for i, key in self.extra_keys if i < n and fields[i] != ""]
        if n > self.header_len:
            for i in range(self.header_len, n):  # fields beyond the header
                if fields[i] != "":
                    parts.append(_esc(f"column_{i + 1}") + ": " + _esc(fields[i]))
        return (
            self.campaign_id, self.pool_id, e164,
            name.strip()[:200] or None if name else None,
            city or location.city,
            region or location.region,
            country or None,
            location.timezone_column,
            "{" + ", ".join(parts) + "}" if parts else None,
            READY,
            _int_field(fields, plan.priority, 0, "priority") if plan.priority is not None else 0,
            _int_field(fields, plan.difficulty, self.pool_difficulty, "difficulty")
            if plan.difficulty is not None else self.pool_difficulty,
            0, false, now, now,
        )

"""The one place where a call record's status changes.

Every status change (single record or bulk) goes through this module, so the
allowed transitions are a table read in one place, not UPDATEs scattered over
the code.  Bulk helpers take SQL conditions and apply the same table.
"""
from __future__ import annotations

import datetime as dt
import functools
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from esl_dialer.messages import RecordStatus as S

from . import jsonio, pgraw
from .models import CallRecord, status_equals, utcnow


def _bind(executor):
    # Session or Connection alike (the hot paths use bare connections)
    return executor.engine if isinstance(executor, sa.Connection) else executor.get_bind()

#: from-status -> statuses it may move to
ALLOWED: dict[S, frozenset[S]] = {
    S.READY: frozenset({S.QUEUED, S.LEASED, S.DNC, S.EXHAUSTED, S.DONE}),
    # done/exhausted: a late result (lease expired, record refilled into a queue) closes it
    S.QUEUED: frozenset({S.LEASED, S.READY, S.DNC, S.DONE, S.EXHAUSTED}),
    S.LEASED: frozenset({S.READY, S.DONE, S.EXHAUSTED, S.DNC, S.LEASED}),
    S.DONE: frozenset({S.READY}),  # a supervisor may re-open a record
    S.EXHAUSTED: frozenset({S.READY}),
    S.DNC: frozenset(),  # final: a DNC number is never dialed again
}

def status_is(status: S) -> sa.ColumnElement[bool]:
    """``call_record.status = '<value>'`` with the value written into the SQL.

    The distribution indexes are partial on status (migration 0005); a bound
    parameter would keep a prepared (generic) plan from proving that the
    query's rows are in the index.  Values come from the enum only.
    """
    return status_equals(S(status).value)


def status_in(statuses: Iterable[S]) -> sa.ColumnElement[bool]:
    """``status IN (...)`` with literal values (see :func:`status_is`)."""
    values = [S(x) for x in statuses]
    if len(values) == 1:
        return status_is(values[0])
    return CallRecord.__table__.c.status.in_([sa.literal_column(f"'{v.value}'") for v in values])


#: statuses that mean "nobody holds it"
UNHELD = frozenset({S.READY, S.DONE, S.EXHAUSTED, S.DNC})


class IllegalTransition(ValueError):
    """A caller tried a status change the table does not allow."""


_BY_VALUE = {**{s.value: s for s in S}, **{s: s for s in S}}


def as_status(value) -> S:
    """A status member from a member or its value (a dict look-up: ``S(x)`` costs an enum call)."""
    try:
        return _BY_VALUE[value]
    except KeyError:
        return S(value)  # raises ValueError naming the bad value


def check(old: S, new: S) -> None:
    if new not in ALLOWED[old]:
        raise IllegalTransition(f"call record cannot go from {old.value} to {new.value}")


def set_status(record: CallRecord, new: S, **fields) -> None:
    """Change one record's status (and related fields) after checking the table."""
    check(record.status, new)
    record.status = new
    if new in UNHELD:
        record.held_by_worker_id = None
        record.held_until = None
        record.queue_id = None
    for key, value in fields.items():
        setattr(record, key, value)
    record.updated_at = utcnow()


def bulk_set_status(
    session: Session,
    new: S,
    where: Iterable[sa.ColumnElement[bool]],
    from_statuses: Iterable[S],
    **values,
) -> int:
    """UPDATE many records from any of ``from_statuses`` to ``new``; returns the row count."""
    stmt = status_update_stmt(new, where, from_statuses, values={"updated_at": utcnow(), **values})
    return session.execute(stmt).rowcount


def renew_leases(
    executor,
    worker_id: int,
    until,
    *,
    ids: Iterable[int] | None = None,
    due_before=None,
    limit: int | None = None,
) -> int:
    """Extend ``held_until`` to ``until`` for records LEASED to ``worker_id`` (D1, P10).

    Not a status change (leased stays leased): a live worker keeps what it
    holds.  ``ids`` limits it to those records; ``due_before`` to leases ending
    before that time (so a heartbeat rewrites each row at most once per half
    lease); ``limit`` bounds the rows one call touches (soonest ending first).
    Returns the number of records renewed.
    """
    t = CallRecord.__table__
    cond = [t.c.held_by_worker_id == worker_id, status_is(S.LEASED),
            sa.or_(t.c.held_until.is_(None), t.c.held_until < until)]
    if ids is not None:
        ids = list(ids)
        if not ids:
            return 0
        cond.append(t.c.id.in_(ids))
    if due_before is not None:
        cond.append(sa.or_(t.c.held_until.is_(None), t.c.held_until < due_before))
    if limit is not None:
        pick = sa.select(t.c.id).where(*cond).order_by(t.c.held_until, t.c.id).limit(limit)
        cond = [t.c.id.in_(pick.scalar_subquery()), status_is(S.LEASED), t.c.held_by_worker_id == worker_id]
    stmt = sa.update(t).where(*cond).values(held_until=until).execution_options(synchronize_session=False)
    return executor.execute(stmt).rowcount


def status_update_stmt(
    new: S,
    where: Iterable[sa.ColumnElement[bool]],
    from_statuses: Iterable[S],
    returning: Iterable[sa.ColumnElement] = (),
    values: dict | None = None,
) -> sa.Update:
    """The UPDATE that :func:`bulk_set_status_returning` runs, for callers that
    build it once (with bind parameters) and execute it many times.  ``values``
    should include ``updated_at`` (e.g. as a bind parameter)."""
    froms = [s for s in from_statuses]
    for old in froms:
        check(old, new)
    values = dict(values or {})
    if new in UNHELD:
        values.setdefault("held_by_worker_id", None)
        values.setdefault("held_until", None)
        values.setdefault("queue_id", None)
    stmt = sa.update(CallRecord.__table__).where(status_in(froms), *list(where)).values(
        status=new, **values)
    returning = list(returning)
    return stmt.returning(*returning) if returning else stmt


def bulk_set_status_returning(
    session: Session,
    new: S,
    where: Iterable[sa.ColumnElement[bool]],
    from_statuses: Iterable[S],
    returning: Iterable[sa.ColumnElement],
    **values,
) -> list[sa.Row]:
    """Like :func:`bulk_set_status` but returns the changed rows' ``returning`` columns
    (UPDATE ... RETURNING: PostgreSQL, SQLite >= 3.35).  The lease path uses it
    so taking records and reading them is one statement."""
    stmt = status_update_stmt(new, where, from_statuses, returning, values={"updated_at": utcnow(), **values})
    return list(session.execute(stmt).all())


def queue_records(executor, queue_id: int, ids: list[int], first_seq: int, now: dt.datetime) -> int:
    """Move ready records into a queue (ready -> queued, P2/P3), ``ids[i]``
    getting sequence number ``first_seq + i``; one statement.  A record that
    is no longer ready is left alone.  Returns the number of ids given."""
    if not ids:
        return 0
    check(S.READY, S.QUEUED)
    t = CallRecord.__table__
    if _bind(executor).dialect.name == "postgresql":
        _pg_queue_raw().rows(executor, {"ids": pgraw.int_array(ids), "q": queue_id, "base": first_seq - 1,
                                        "now": now})
        return len(ids)
    stmt = (sa.update(t).where(t.c.id == sa.bindparam("b_id"), status_is(S.READY))
            .values(status=S.QUEUED.value, queue_id=queue_id, queue_seq=sa.bindparam("b_seq"), updated_at=now))
    executor.execute(stmt, [{"b_id": rid, "b_seq": first_seq + i} for i, rid in enumerate(ids)])
    return len(ids)


@functools.lru_cache(maxsize=1)
def _pg_queue_raw() -> pgraw.RawStatement:
    return pgraw.RawStatement(sa.text(
        "UPDATE call_record SET status = 'queued', queue_id = :q, queue_seq = :base + v.n, updated_at = :now "
        "FROM unnest(CAST(:ids AS integer[])) WITH ORDINALITY AS v(id, n) "
        "WHERE call_record.id = v.id AND call_record.status = 'ready'"
    ).bindparams(sa.bindparam("ids", type_=sa.Text), sa.bindparam("q", type_=sa.Integer),
                 sa.bindparam("base", type_=sa.Integer), sa.bindparam("now", type_=sa.DateTime)))


def bulk_set_status_rows(session: Session, rows: Iterable[dict]) -> int:
    """Per-record changes in one statement: each row is ``{"id", "from_status",
    "status", **fields}``.  A row whose ``status`` equals ``from_status`` only
    updates its fields.  The UPDATE re-checks ``from_status``, so a record that
    changed meanwhile (lease expiry on another controller) is left alone.
    Returns the number of rows given (executemany row counts are not portable).
    """
    now = utcnow()
    changes: list[tuple[int, S, dict]] = []
    for row in rows:
        params = dict(row)
        rid, old, new = params.pop("id"), as_status(params.pop("from_status")), as_status(row["status"])
        if old is not new:
            check(old, new)
            if new in UNHELD:
                params.setdefault("held_by_worker_id", None)
                params.setdefault("held_until", None)
                params.setdefault("queue_id", None)
        params["updated_at"] = now
        params["status"] = new
        changes.append((rid, old, params))
    if not changes:
        return 0
    if _bind(session).dialect.name == "postgresql":
        _pg_batch_update(session, changes)
        return len(changes)
    by_shape: dict[tuple, list[dict]] = {}
    for rid, old, params in changes:
        by_shape.setdefault(tuple(sorted(params)), []).append(
            {**{f"v_{k}": v for k, v in params.items()}, "b_id": rid, "b_from": old})
    for key, batch in by_shape.items():
        stmt = (
            sa.update(CallRecord.__table__)
            .where(CallRecord.__table__.c.id == sa.bindparam("b_id"),
                   CallRecord.__table__.c.status == sa.bindparam("b_from"))
            .values({k: sa.bindparam(f"v_{k}") for k in key})
        )
        session.execute(stmt, batch)
    return len(changes)


def pg_json(value) -> str:
    """JSON text for the ``json_to_recordset`` batches: enums as their value,
    datetimes as ISO text (PostgreSQL casts them to the column types)."""
    return jsonio.dumps(value)


@functools.lru_cache(maxsize=64)
def _pg_batch_raw(common: tuple, partial: tuple) -> pgraw.RawStatement:
    """The ``UPDATE ... FROM json_to_recordset(...)`` for one set of columns,
    built (types compiled, text parsed) once per set and process.
    ``common`` columns are set on every row; a ``partial`` column only on the
    rows whose flag ``k_<column>`` is true (the others keep their value), so
    rows of different shapes share one statement."""
    from sqlalchemy.dialects import postgresql

    table = CallRecord.__table__
    dialect = postgresql.dialect()
    pg_types = {"id": "INTEGER", "from_status": table.c.status.type.compile(dialect=dialect)}
    for c in (*common, *partial):
        pg_types[c] = table.c[c].type.compile(dialect=dialect)
    sets = [f"{c} = v.{c}" for c in common]
    sets += [f"{c} = CASE WHEN v.k_{c} THEN v.{c} ELSE call_record.{c} END" for c in partial]
    shape = [f"{c} {pg_types[c]}" for c in ("id", "from_status", *common, *partial)]
    shape += [f"k_{c} BOOLEAN" for c in partial]
    return pgraw.RawStatement(sa.text(
        f"UPDATE call_record SET {', '.join(sets)} "
        f"FROM json_to_recordset(CAST(:rows AS json)) AS v({', '.join(shape)}) "
        "WHERE call_record.id = v.id AND call_record.status = v.from_status"))


def _pg_batch_update(session: Session, changes: list[tuple[int, S, dict]]) -> None:
    """PostgreSQL: the whole batch as one ``UPDATE ... FROM json_to_recordset``.

    One statement with fixed text (prepared once, cached) and one JSON
    parameter: encoding a list of dicts with the C json encoder costs far less
    Python than one UPDATE per row or a typed array per column.
    """
    keys = [set(params) for _rid, _old, params in changes]
    common = set.intersection(*keys)
    partial = tuple(sorted(set.union(*keys) - common))
    flags = [(c, f"k_{c}") for c in partial]
    rows = []
    for rid, old, params in changes:
        row = {"id": rid, "from_status": old._value_, **params}
        row["status"] = params["status"]._value_
        for c, flag in flags:
            row[flag] = c in params
        rows.append(row)
    _pg_batch_raw(tuple(sorted(common)), partial).rows(session, {"rows": pg_json(rows)})

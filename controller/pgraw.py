"""A few hot PostgreSQL statements, run straight on psycopg.

SQLAlchemy Core adds about 60 µs of CPU to each execution of a 20-row
statement, on top of psycopg's own ~80 µs (compiled-cache look-up, parameter
processing, result wrapping); the lease and results paths run a handful of
such statements per request.  :class:`RawStatement` compiles a Core statement
once for psycopg and runs it on the driver connection of a SQLAlchemy
``Connection`` — same transaction, same prepared-statement cache — returning
named-tuple rows.  A driver error is raised as SQLAlchemy's ``DBAPIError``,
and a lost connection invalidates the pool as SQLAlchemy itself would.

:class:`Pipeline` sends several such statements, and the ``COMMIT``, in one
round trip (psycopg's pipeline mode): a round trip to the server costs more
CPU than the statements themselves on a busy machine (two process wake-ups).
"""
from __future__ import annotations

import contextlib
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg


class RawStatement:
    """A Core statement compiled once for psycopg (no expanding parameters)."""

    def __init__(self, stmt: sa.Executable) -> None:
        compiled = stmt.compile(dialect=pg_psycopg.dialect())
        self.sql = str(compiled)
        if "POSTCOMPILE" in self.sql:
            raise ValueError("RawStatement needs fixed SQL text: use arrays instead of expanding IN lists")
        self.defaults = {k: _plain(v) for k, v in compiled.params.items() if v is not None}

    def rows(self, conn: sa.Connection, params: dict[str, Any]) -> list:
        """Execute and return every row (named tuples); ``[]`` for a statement without rows."""
        from psycopg.rows import namedtuple_row

        raw = conn.connection.driver_connection
        values = {**self.defaults, **params}
        with _reraised(conn, raw, self.sql, values), raw.cursor(row_factory=namedtuple_row) as cur:
            cur.execute(self.sql, values)
            return cur.fetchall() if cur.description else []


class Pipeline:
    """Raw statements of one transaction sent without waiting for each other.

    Use inside a SQLAlchemy transaction (``engine.begin()``)::

        with Pipeline(conn) as pipe:
            a = pipe.send(lock_stmt, {...})      # queued with the BEGIN
            b = pipe.send(insert_stmt, {...})
            rows_a, rows_b = pipe.rows(a), pipe.rows(b)   # one round trip
            pipe.send(update_stmt, {...})
            pipe.commit()                        # UPDATE + COMMIT: one round trip

    After :meth:`commit` the SQLAlchemy transaction's own commit finds
    nothing to do.  Only :class:`RawStatement` s may run inside (SQLAlchemy
    reads a cursor's description before pipeline results have arrived).
    Errors come out of :meth:`rows`, :meth:`commit` or the block's end, as
    SQLAlchemy's ``DBAPIError`` (a queued statement's error is raised by the
    first of these after it, and names the statement being read).
    """

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.raw = conn.connection.driver_connection
        self._pipe = None
        self._cursors: list = []

    def __enter__(self) -> "Pipeline":
        self._pipe = self.raw.pipeline()
        self._pipe.__enter__()
        return self

    def send(self, stmt: RawStatement, params: dict[str, Any]):
        """Queue ``stmt``; returns a handle for :meth:`rows`."""
        from psycopg.rows import namedtuple_row

        values = {**stmt.defaults, **params}
        cur = self.raw.cursor(row_factory=namedtuple_row)
        self._cursors.append(cur)
        with _reraised(self.conn, self.raw, stmt.sql, values):
            cur.execute(stmt.sql, values)
        return cur, stmt.sql, values

    def rows(self, handle) -> list:
        """The rows of a sent statement (waits for the server if need be)."""
        cur, sql, values = handle
        with _reraised(self.conn, self.raw, sql, values):
            return cur.fetchall()

    def commit(self) -> None:
        """Send ``COMMIT`` after what is queued and wait for all of it."""
        with _reraised(self.conn, self.raw, "COMMIT", {}):
            self.raw.commit()

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            with _reraised(self.conn, self.raw, "(pipeline sync)", {}):
                self._pipe.__exit__(exc_type, exc, tb)
        finally:
            for cur in self._cursors:
                cur.close()


@contextlib.contextmanager
def _reraised(conn: sa.Connection, raw: Any, sql: str, values: dict):
    """psycopg errors re-raised the way SQLAlchemy raises them."""
    try:
        yield
    except raw.Error as err:
        raise _wrapped(conn, raw, sql, values, err) from err


def int_array(values) -> str:
    """A list of integers as a PostgreSQL array literal (``'{1,2,3}'``) for an
    ``integer[]`` parameter: psycopg dumps a Python list element by element in
    Python, about 0.7 µs per element; this is one C-level join."""
    return "{" + ",".join(map(str, map(int, values))) + "}"


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _wrapped(conn: sa.Connection, raw: Any, sql: str, params: dict, err: Exception) -> sa.exc.DBAPIError:
    disconnect = conn.dialect.is_disconnect(err, raw, None)
    if disconnect and not conn.invalidated:
        # what SQLAlchemy does on a disconnect: every pooled connection older
        # than now is replaced on its next checkout, and this one at once
        conn.engine.pool._invalidate(conn.connection, err)
        conn.invalidate(err)
    return sa.exc.DBAPIError.instance(sql, params, err, type(raw).Error, connection_invalidated=disconnect,
                                      dialect=conn.dialect)

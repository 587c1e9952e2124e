"""A few hot PostgreSQL statements, run straight on psycopg.

SQLAlchemy Core adds about 60 µs of CPU to each execution of a 20-row
statement, on top of psycopg's own ~80 µs (compiled-cache look-up, parameter
processing, result wrapping); the lease and results paths run a handful of
such statements per request.  :class:`RawStatement` compiles a Core statement
once for psycopg and runs it on the driver connection of a SQLAlchemy
``Connection`` — same transaction, same prepared-statement cache — returning
named-tuple rows.  A driver error is raised as SQLAlchemy's ``DBAPIError``,
and a lost connection invalidates the pool as SQLAlchemy itself would.

(psycopg's pipeline mode, which sends several statements in one round trip,
was used for the results upload until measured: it cost more CPU on both
sides than the same statements one after the other.)
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

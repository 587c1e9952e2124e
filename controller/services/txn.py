"""Write transactions that serialise correctly on both backends.

PostgreSQL: an ordinary transaction; concurrency is handled by row locks
(``FOR UPDATE [SKIP LOCKED]``) in the statements themselves.  SQLite: pysqlite
defers ``BEGIN`` to the first write, so a read-then-write transaction can lose
the race for the write lock and fail with "database is locked" even with a busy
timeout.  ``BEGIN IMMEDIATE`` takes the single writer lock up front, which
makes each distribution transaction one serialised unit (SPEC P11 on SQLite).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from ..db import Database


@contextlib.contextmanager
def write_session(db: Database) -> Iterator[Session]:
    """A transaction that holds the write lock from its first statement on SQLite."""
    with db.session() as session:
        if db.dialect == "sqlite":
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        yield session


@contextlib.contextmanager
def write_connection(db: Database) -> Iterator[Connection]:
    """Like :func:`write_session` on a bare Core connection (no ORM unit of work:
    the hot paths execute a few Core statements and need nothing more)."""
    with db.engine.begin() as conn:
        if db.dialect == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn


def bind(executor: Session | Connection) -> Engine:
    """The engine behind a Session or a Connection (for dialect checks, cache keys)."""
    return executor.engine if isinstance(executor, Connection) else executor.get_bind()


def cache_token(executor: Session | Connection) -> object:
    """An object standing for the engine behind ``executor`` in per-process
    caches: unlike ``id(engine)`` it is never reused by a later engine, and
    unlike the URL it costs nothing to hash."""
    engine = bind(executor)
    token = engine.__dict__.get("_dialer_cache_token")
    if token is None:
        token = engine.__dict__.setdefault("_dialer_cache_token", object())
    return token


def is_postgres(executor: Session | Connection) -> bool:
    return bind(executor).dialect.name == "postgresql"

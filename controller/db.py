"""Engine, sessions and migrations.

SQLite is the zero-set-up default; PostgreSQL is for scale-out (SPEC X4), where
several controllers share one database and coordinate only through it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class NotMigratedError(RuntimeError):
    """The database lacks the schema this code needs."""


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets dashboard readers run while the controller writes; the busy
    # timeout makes a second writer wait instead of failing at once.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str, **kwargs) -> sa.Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 10})
        engine = sa.create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; emit it ourselves so
        # a write transaction takes the lock up front (BEGIN IMMEDIATE on demand).
        return engine
    from . import pgwait

    if pgwait.wanted():
        pgwait.install()  # cheaper socket waits than psycopg's pick under gevent
    if "poolclass" not in kwargs:
        # A fixed set of connections: overflow connections are closed when
        # returned to a full pool, and reopening them (a PostgreSQL backend
        # fork per connection) cost more than the queries under load.
        kwargs.setdefault("pool_size", pool_size() + BACKGROUND_CONNECTIONS)
        kwargs.setdefault("max_overflow", 4)
        # Most recently used first: under light load a few connections stay
        # warm (their prepared statements and caches) instead of all rotating.
        kwargs.setdefault("pool_use_lifo", True)
    kwargs.setdefault("pool_recycle", 3600)
    engine = sa.create_engine(url, **kwargs)
    event.listen(engine.pool, "checkin", _stamp_checkin)
    event.listen(engine.pool, "checkout", _ping_if_idle)
    return engine


#: pooled connections kept beyond ``pool_size()`` for background queue top-ups
#: (at most this many run at once: services.distribution), so they do not
#: open and close overflow connections -- a PostgreSQL backend fork each
BACKGROUND_CONNECTIONS = 4


def pool_size() -> int:
    """Connections per controller process for requests (``DIALER_DB_POOL_SIZE``,
    default 8); the pool keeps ``BACKGROUND_CONNECTIONS`` more for top-ups.

    The API's concurrent writes are limited to the same number
    (``controller.serve``), so requests wait for the process, not for a
    connection inside it.  One process runs on one core, and a request spends
    about as long on the CPU as waiting for the database: a few requests in
    flight keep it busy.  More only add transactions that contend for the
    database's CPUs and locks: on the lease bench (2 cores, two controllers,
    5,000 records/s offered) 16 per process cost about a sixth more CPU per
    record than 8 or 4, and the lease p99 went from 17-38 ms to 70-85 ms.
    Raise it for a database with a long round trip.
    """
    return max(1, int(os.environ.get("DIALER_DB_POOL_SIZE", 8)))


#: a pooled connection idle longer than this is pinged before use
PING_AFTER_IDLE_S = 30.0


def _stamp_checkin(_dbapi_conn, record) -> None:
    if record is not None:
        record.info["checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_conn, record, proxy) -> None:
    """Pessimistic disconnect handling for connections that sat idle only.

    ``pool_pre_ping`` costs a round trip on every checkout; a connection in
    steady use proves itself with every query, and a failure there
    invalidates the pool (SQLAlchemy does that on any disconnect error).  A
    connection idle for ``PING_AFTER_IDLE_S`` (a PostgreSQL restart, a
    firewall dropping idle TCP) is pinged; a dead one is replaced before the
    request sees it (the documented ``DisconnectionError`` retry).
    """
    idle_since = record.info.get("checked_in")
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
        return
    try:
        cur = dbapi_conn.cursor()
        try:
            cur.execute("SELECT 1")
        finally:
            cur.close()
        if not getattr(dbapi_conn, "autocommit", True):
            dbapi_conn.rollback()
    except Exception as exc:  # any driver error means the connection is unusable
        raise DisconnectionError(f"idle connection failed its ping: {exc}") from exc


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


class Database:
    """One engine and its session factory; what services receive."""

    def __init__(self, url: str, **engine_kwargs) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: commits on success, rolls back on any exception."""
        with self.Session() as session:
            with session.begin():
                yield session

    @contextlib.contextmanager
    def read_connection(self) -> Iterator[sa.Connection]:
        """An autocommit connection: each statement is its own transaction.

        For reads and single-statement writes on hot paths.  A plain
        ``engine.connect()`` ends its implicit transaction with ROLLBACK, and
        psycopg drops every prepared statement of the connection on ROLLBACK,
        so the hot statements would be re-parsed and re-planned over and over.
        """
        with self.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    def check_migrated(self) -> None:
        """Refuse to run on a database alembic has not brought to head."""
        current = current_revisions(self.engine)
        heads = head_revisions()
        if current != heads:
            raise NotMigratedError(
                f"database {make_url(self.url).render_as_string(hide_password=True)} is "
                f"not migrated (at {sorted(current) or 'nothing'}, code needs {sorted(heads)}): "
                "run `dialer db upgrade` first"
            )

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str):
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Run the alembic migrations (what `dialer db upgrade` does)."""
    from alembic import command

    if make_url(url).get_backend_name() == "sqlite":
        db = make_url(url).database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def head_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return set(script.get_heads())


def current_revisions(engine: sa.Engine) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())

"""Shared fixtures.

``db`` gives a freshly migrated database, parametrised over SQLite and, when
DIALER_TEST_DATABASE_URL points at a PostgreSQL server, PostgreSQL.  The schema
comes from the real alembic migrations (never ``create_all``).  Each test gets
an empty database: on SQLite a copy of a migrated template file, on PostgreSQL
a per-run database (dialer_test_<random>) truncated between tests.  Other
databases on the server are never touched.
"""
from __future__ import annotations

import os
import shutil
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from controller.db import Database, upgrade
from controller.models import Base

PG_ENV = "DIALER_TEST_DATABASE_URL"


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("dbtemplate") / "template.db"
    upgrade(f"sqlite:///{path}")
    return str(path)


@pytest.fixture(scope="session")
def _pg_url():
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)")
    url = make_url(base)
    if url.get_backend_name() != "postgresql":
        pytest.fail(f"{PG_ENV} must be a postgresql URL, got {url.get_backend_name()}")
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    name = f"dialer_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as err:
        pytest.skip(f"PostgreSQL at {url.render_as_string(hide_password=True)} is not reachable: {err.orig}")
    test_url = url.set(database=name).render_as_string(hide_password=False)
    upgrade(test_url)
    yield test_url
    with admin.connect() as conn:
        conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
        ), {"n": name})
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _truncate_pg(db: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    extra = []
    with db.engine.begin() as conn:
        names = sa.inspect(conn).get_table_names()
        extra = [n for n in names if n not in Base.metadata.tables and n != "alembic_version"]
        all_tables = tables + "".join(f', "{n}"' for n in extra)
        conn.execute(sa.text(f"TRUNCATE {all_tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """URL of an empty, migrated database (one backend per parametrisation)."""
    if request.param == "sqlite":
        path = tmp_path / "dialer.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("_pg_url")
    db = Database(url, poolclass=sa.pool.NullPool)
    _truncate_pg(db)
    db.dispose()
    return url


@pytest.fixture
def db(db_url):
    """A :class:`controller.db.Database` on an empty migrated database."""
    database = Database(db_url)
    yield database
    database.dispose()


# -- the simulated switch over TCP (tests/test_sim_*.py; a test module may override ``sim``) --
@pytest.fixture
def sim():
    """A simulated FreeSWITCH on a free port, 20x faster than real time; stopped after the test."""
    from esl_dialer.sim import SimConfig, SimSwitch

    s = SimSwitch(SimConfig(time_scale=0.05), port=0).start()
    yield s
    s.stop(timeout=2)


@pytest.fixture
def raw(sim):
    """A raw ESL client, authenticated, on ``sim``."""
    from esl_dialer.sim.testing import RawEslClient

    c = RawEslClient("127.0.0.1", sim.port)
    assert c.auth().reply_text == "+OK accepted"
    yield c
    c.close()

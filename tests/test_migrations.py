"""The schema comes from alembic, and alembic matches the models."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from controller import create_app
from controller.db import Database, NotMigratedError
from controller.models import Base


def test_migrations_match_models(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_db_is_at_head(db):
    db.check_migrated()


def test_app_refuses_unmigrated_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(NotMigratedError, match="dialer db upgrade"):
        create_app({"DATABASE_URL": url})


def test_app_starts_on_migrated_database(db_url):
    app = create_app({"DATABASE_URL": db_url})
    assert isinstance(app, Flask)
    assert app.test_client().get("/api/v1/health").json == {"status": "ok"}


def test_sqlite_is_set_up_for_concurrent_readers(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000

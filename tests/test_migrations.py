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


def test_migration_0006_goes_down_and_up_again(db_url):
    """Dropping call_attempt's campaign/worker/agent foreign keys is reversible on both backends."""
    import sqlalchemy as sa

    from controller.db import alembic_config, upgrade
    from alembic import command

    def fks(table) -> set[str]:
        engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
        try:
            return {tuple(fk["constrained_columns"])[0] for fk in sa.inspect(engine).get_foreign_keys(table)}
        finally:
            engine.dispose()

    def partial_indexes() -> set[str]:
        engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                if engine.dialect.name == "sqlite":
                    return set(conn.exec_driver_sql(
                        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'call_record' "
                        "AND sql LIKE '%%WHERE%%'").scalars())
                return set(conn.exec_driver_sql(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'call_record' "
                    "AND indexdef LIKE '%%WHERE%%'").scalars())
        finally:
            engine.dispose()

    partial = {"ix_record_fresh", "ix_record_due", "ix_record_urgent", "ix_record_queue", "ix_record_holder"}
    assert (fks("call_attempt"), fks("call_record")) == ({"record_id"}, {"campaign_id", "pool_id"})
    assert partial_indexes() == partial
    command.downgrade(alembic_config(db_url), "0005")
    assert fks("call_attempt") == {"record_id", "campaign_id", "worker_id", "agent_id"}
    assert fks("call_record") == {"campaign_id", "pool_id", "queue_id", "held_by_worker_id"}
    assert partial_indexes() == partial
    upgrade(db_url)
    assert (fks("call_attempt"), fks("call_record")) == ({"record_id"}, {"campaign_id", "pool_id"})
    assert partial_indexes() == partial


def _worker_with_records(db, n: int):
    """A campaign with ``n`` records in one pool and a worker (identity, new-worker row)."""
    from controller.services import queues

    from distribution_helpers import add_numbers, add_worker, ident, make_campaign, reset_caches

    reset_caches()
    cid = make_campaign(db)
    add_numbers(db, queues.create_pool(db, cid, "A").id, n)
    w = add_worker(db, cid, "w1", "1001")
    return cid, w, ident(db, w)


def test_deleting_a_queue_clears_it_from_its_records(db):
    """Migration 0006: records keep no foreign key to their queue; deleting it clears queue_id."""
    import sqlalchemy as sa

    from controller.models import CallRecord
    from controller.services import distribution as D, queues

    from distribution_helpers import NOON_NY

    _cid, w, wi = _worker_with_records(db, 60)
    assert len(D.lease(db, wi, 5, now=NOON_NY).records) == 5
    with db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).where(CallRecord.queue_id == w.queue_id)) > 5
    queues.delete_queue(db, w.queue_id)
    with db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).where(CallRecord.queue_id == w.queue_id)) == 0
        assert s.scalar(sa.select(sa.func.count()).where(CallRecord.status == "leased")) == 5


def test_revoking_a_worker_clears_it_from_its_attempts_and_deleting_a_campaign_deletes_them(db):
    """What the dropped foreign keys' ON DELETE did is still done (migration 0006)."""
    import sqlalchemy as sa

    from controller.models import CallAttempt, CallRecord, Campaign
    from controller.services import distribution as D, workers

    from distribution_helpers import NOON_NY

    cid, w, wi = _worker_with_records(db, 5)
    ids = [r["id"] for r in D.lease(db, wi, 3, now=NOON_NY).records]
    D.record_results(db, wi, D.parse_results(
        [{"client_id": f"c{i}", "record_id": rid, "result": "busy"} for i, rid in enumerate(ids)]), now=NOON_NY)
    held = D.lease(db, wi, 2, now=NOON_NY).records
    assert len(held) == 2
    workers.revoke_worker(db, w.id)
    with db.session() as s:
        assert s.scalars(sa.select(CallAttempt.worker_id)).all() == [None, None, None]
        assert s.scalars(sa.select(CallRecord.held_by_worker_id).where(CallRecord.status == "leased")).all() == [
            None, None]
        s.delete(s.get(Campaign, cid))
    with db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(CallAttempt)) == 0

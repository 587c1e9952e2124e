"""foreign keys the per-record hot paths no longer check

A foreign key is checked by a row lookup plus a share lock on the referenced
row, once per written row whose key changed.  Records and attempts are
written in batches of 20-500 rows, thousands per second; these checks were
the largest single cost of the statements on the lease benchmark (three
quarters of the attempts INSERT; one check per row in every refill and every
lease).  Dropped, with what their ON DELETE did now done by the application:

- ``call_attempt.campaign_id``: the attempt's record is in that campaign
  (results for another campaign's record are refused), and deleting a
  campaign deletes its attempts through their records (``record_id`` keeps
  its foreign key, ON DELETE CASCADE).
- ``call_attempt.worker_id`` / ``agent_id`` and ``call_record.held_by_worker_id``:
  revoking a worker clears them (``services.workers.revoke_worker``), as ON
  DELETE SET NULL did; agents are never deleted by the application.
- ``call_record.queue_id``: deleting a queue clears it from its records
  (``services.queues.delete_queue``); a campaign's queues go with its records.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

#: table -> [(column, referred table, ON DELETE)]
DROPPED = {
    'call_attempt': [('campaign_id', 'campaign', 'CASCADE'), ('worker_id', 'worker', 'SET NULL'),
                     ('agent_id', 'agent', 'SET NULL')],
    'call_record': [('queue_id', 'queue', 'SET NULL'), ('held_by_worker_id', 'worker', 'SET NULL')],
}
#: SQLite's foreign keys have no names: batch mode names the reflected ones so
SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s"}
#: call_record's partial indexes (migration 0005): SQLite's batch mode copies
#: the table, so they are dropped before and made again after, predicate and all
PARTIAL = [
    ('ix_record_fresh', ['pool_id', 'difficulty', 'priority', 'id'],
     "status = 'ready' AND next_attempt_at IS NULL"),
    ('ix_record_due', ['pool_id', 'difficulty', 'next_attempt_at', 'id'],
     "status = 'ready' AND next_attempt_at IS NOT NULL"),
    ('ix_record_urgent', ['pool_id', 'priority', 'id'], "status = 'ready' AND priority < 0"),
    ('ix_record_queue', ['queue_id', 'priority', 'queue_seq', 'id'], "status = 'queued'"),
    ('ix_record_holder', ['held_by_worker_id', 'held_until'], "status = 'leased'"),
]


def _name(dialect: str, table: str, column: str) -> str:
    return f"{table}_{column}_fkey" if dialect == "postgresql" else f"fk_{table}_{column}"


def _alter(create: bool) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name, _cols, _where in PARTIAL:
            op.drop_index(name, table_name='call_record')
    for table, columns in DROPPED.items():
        with op.batch_alter_table(table, naming_convention=SQLITE_NAMES) as batch_op:
            for column, referred, ondelete in columns:
                if create:
                    batch_op.create_foreign_key(_name(dialect, table, column), referred, [column], ['id'],
                                                ondelete=ondelete)
                else:
                    batch_op.drop_constraint(_name(dialect, table, column), type_='foreignkey')
    if dialect == "sqlite":
        for name, cols, where in PARTIAL:
            op.create_index(name, 'call_record', cols, sqlite_where=sa.text(where))


def upgrade() -> None:
    _alter(create=False)


def downgrade() -> None:
    _alter(create=True)

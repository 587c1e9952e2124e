"""call_attempt keeps one foreign key: record_id

Every attempt row checked three more foreign keys on insert (campaign,
worker, agent): a lookup that takes a share lock on the campaign, worker and
agent rows, per attempt.  On the lease benchmark those checks were three
quarters of the attempts INSERT, the most costly statement per record.

- ``campaign_id`` repeats the record's campaign (results for a record of
  another campaign are refused), and deleting a campaign still deletes its
  attempts through their records (``record_id`` ... ON DELETE CASCADE).
- ``worker_id`` / ``agent_id`` name who dialled.  Removing a worker
  (``dialer worker revoke``) clears them in the same transaction
  (``services.workers.revoke_worker``), as ON DELETE SET NULL did; agents are
  never deleted by the application.

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

#: (column, referred table, ON DELETE)
DROPPED = [('campaign_id', 'campaign', 'CASCADE'), ('worker_id', 'worker', 'SET NULL'),
           ('agent_id', 'agent', 'SET NULL')]
#: SQLite's foreign keys have no names: batch mode names the reflected ones so
SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s"}


def _name(dialect: str, column: str) -> str:
    return f"call_attempt_{column}_fkey" if dialect == "postgresql" else f"fk_call_attempt_{column}"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table('call_attempt', naming_convention=SQLITE_NAMES) as batch_op:
        for column, _table, _ondelete in DROPPED:
            batch_op.drop_constraint(_name(dialect, column), type_='foreignkey')


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table('call_attempt', naming_convention=SQLITE_NAMES) as batch_op:
        for column, table, ondelete in DROPPED:
            batch_op.create_foreign_key(_name(dialect, column), table, [column], ['id'], ondelete=ondelete)

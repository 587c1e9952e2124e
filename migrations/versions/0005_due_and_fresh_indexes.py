"""partial indexes for the distribution hot paths

A pool's ready records that wait for their retry time (P7) sat at the front of
``ix_record_refill`` (same priority, lowest ids), so every refill scanned all
of them before finding a due one: 40 ms per refill with 64,000 waiting.  Fresh
records and due retries now have an index each, so both scans stop at the
first row they can use.

Every index is also partial on the status it serves, so a status change (a
record changes status three times on its way through a queue) writes entries
only into the indexes that can find it in its new status: 3-4 index entries
per update instead of 6-7.  The queries that use them name the status as a
literal, so a prepared (generic) plan can still use the partial index.

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0002'
branch_labels = None
depends_on = None

#: (name, columns, condition)
PARTIAL = [
    ('ix_record_fresh', ['pool_id', 'difficulty', 'priority', 'id'],
     "status = 'ready' AND next_attempt_at IS NULL"),
    ('ix_record_due', ['pool_id', 'difficulty', 'next_attempt_at', 'id'],
     "status = 'ready' AND next_attempt_at IS NOT NULL"),
    ('ix_record_urgent', ['pool_id', 'priority', 'id'], "status = 'ready' AND priority < 0"),
    ('ix_record_queue', ['queue_id', 'priority', 'queue_seq', 'id'], "status = 'queued'"),
    # a worker's leases (renewal, release); lease expiry scans it whole: it
    # holds only the leased records
    ('ix_record_holder', ['held_by_worker_id', 'held_until'], "status = 'leased'"),
]


def upgrade() -> None:
    for name in ('ix_record_refill', 'ix_record_next', 'ix_record_queue', 'ix_record_holder'):
        op.drop_index(name, table_name='call_record')
    op.create_index('ix_record_pool_status', 'call_record', ['pool_id', 'status'])
    for name, cols, where in PARTIAL:
        op.create_index(name, 'call_record', cols, postgresql_where=sa.text(where), sqlite_where=sa.text(where))


def downgrade() -> None:
    for name, _cols, _where in PARTIAL:
        op.drop_index(name, table_name='call_record')
    op.drop_index('ix_record_pool_status', table_name='call_record')
    op.create_index('ix_record_holder', 'call_record', ['held_by_worker_id', 'status'])
    op.create_index('ix_record_next', 'call_record', ['pool_id', 'status', 'priority', 'next_attempt_at', 'id'])
    op.create_index('ix_record_queue', 'call_record', ['queue_id', 'status'])
    op.create_index('ix_record_refill', 'call_record', ['pool_id', 'status', 'difficulty', 'priority', 'id'])

"""distribution: queue order, percentage scheduling state, worker event outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('call_record') as batch:
        batch.add_column(sa.Column('queue_seq', sa.Integer(), nullable=True))
    op.create_index('ix_record_refill', 'call_record',
                    ['pool_id', 'status', 'difficulty', 'priority', 'id'], unique=False)
    op.create_index('ix_attempt_worker', 'call_attempt', ['worker_id', 'received_at'], unique=False)
    with op.batch_alter_table('queue_feed') as batch:
        batch.add_column(sa.Column('served', sa.Integer(), nullable=False, server_default='0'))
    op.create_table('worker_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['worker_id'], ['worker.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_worker_event_worker', 'worker_event', ['worker_id', 'id'], unique=False)
    op.create_index(op.f('ix_worker_event_created_at'), 'worker_event', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_worker_event_created_at'), table_name='worker_event')
    op.drop_index('ix_worker_event_worker', table_name='worker_event')
    op.drop_table('worker_event')
    with op.batch_alter_table('queue_feed') as batch:
        batch.drop_column('served')
    op.drop_index('ix_attempt_worker', table_name='call_attempt')
    op.drop_index('ix_record_refill', table_name='call_record')
    with op.batch_alter_table('call_record') as batch:
        batch.drop_column('queue_seq')

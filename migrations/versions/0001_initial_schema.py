"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('extension', sa.String(length=64), nullable=False),
    sa.Column('skill_level', sa.Integer(), nullable=False),
    sa.Column('state', sa.Enum('idle', 'dialing', 'talking', 'wrapup', 'paused', 'offline', name='agentstate', native_enum=False, length=24), nullable=False),
    sa.Column('state_since', sa.DateTime(), nullable=False),
    sa.Column('greeting_path', sa.String(length=255), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('app_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=80), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=24), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('campaign',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('status', sa.Enum('draft', 'active', 'paused', 'finished', name='campaignstatus', native_enum=False, length=24), nullable=False),
    sa.Column('dial_mode', sa.Enum('preview', 'progressive', 'power', 'predictive', name='dialmode', native_enum=False, length=24), nullable=False),
    sa.Column('dial_ratio', sa.Double(), nullable=False),
    sa.Column('abandon_target', sa.Double(), nullable=False),
    sa.Column('window_start', sa.String(length=5), nullable=False),
    sa.Column('window_end', sa.String(length=5), nullable=False),
    sa.Column('timezone_policy', sa.Enum('number', 'campaign', name='timezonepolicy', native_enum=False, length=24), nullable=False),
    sa.Column('default_timezone', sa.String(length=64), nullable=False),
    sa.Column('default_region', sa.String(length=2), nullable=False),
    sa.Column('caller_id_number', sa.String(length=32), nullable=True),
    sa.Column('caller_id_name', sa.String(length=64), nullable=True),
    sa.Column('abandon_message', sa.String(length=255), nullable=True),
    sa.Column('api_key_hash', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('dnc_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=True),
    sa.Column('added_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('number')
    )
    op.create_table('pool',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('difficulty', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('campaign_id', 'name')
    )
    op.create_table('recycle_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('result', sa.String(length=24), nullable=False),
    sa.Column('retry_minutes', sa.Double(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('campaign_id', 'result')
    )
    op.create_table('worker',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('token_hash', sa.String(length=128), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('last_heartbeat', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agent.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('worker', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_token_hash'), ['token_hash'], unique=False)

    op.create_table('queue',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('selection_mode', sa.Enum('priority', 'percentage', 'combined', name='selectionmode', native_enum=False, length=24), nullable=False),
    sa.Column('lead_minutes', sa.Double(), nullable=False),
    sa.Column('min_size', sa.Integer(), nullable=False),
    sa.Column('max_size', sa.Integer(), nullable=False),
    sa.Column('batch_size', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['worker_id'], ['worker.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('campaign_id', 'name')
    )
    op.create_table('call_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('pool_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('city', sa.String(length=120), nullable=True),
    sa.Column('region', sa.String(length=120), nullable=True),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('timezone', sa.String(length=200), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=True),
    sa.Column('status', sa.Enum('ready', 'queued', 'leased', 'done', 'exhausted', 'dnc', name='recordstatus', native_enum=False, length=24), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('difficulty', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('is_callback', sa.Boolean(), nullable=False),
    sa.Column('last_result', sa.String(length=24), nullable=True),
    sa.Column('disposition', sa.String(length=64), nullable=True),
    sa.Column('queue_id', sa.Integer(), nullable=True),
    sa.Column('held_by_worker_id', sa.Integer(), nullable=True),
    sa.Column('held_until', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['held_by_worker_id'], ['worker.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['pool_id'], ['pool.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['queue_id'], ['queue.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('campaign_id', 'number')
    )
    with op.batch_alter_table('call_record', schema=None) as batch_op:
        batch_op.create_index('ix_record_holder', ['held_by_worker_id', 'status'], unique=False)
        batch_op.create_index('ix_record_next', ['pool_id', 'status', 'priority', 'next_attempt_at', 'id'], unique=False)
        batch_op.create_index('ix_record_queue', ['queue_id', 'status'], unique=False)

    op.create_table('queue_feed',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('queue_id', sa.Integer(), nullable=False),
    sa.Column('pool_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('weight', sa.Double(), nullable=False),
    sa.Column('shareable', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['pool_id'], ['pool.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['queue_id'], ['queue.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('queue_id', 'pool_id')
    )
    op.create_table('call_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('record_id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=True),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('call_uuid', sa.String(length=64), nullable=True),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('answered_at', sa.DateTime(), nullable=True),
    sa.Column('connected_at', sa.DateTime(), nullable=True),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.Column('result', sa.String(length=24), nullable=False),
    sa.Column('hangup_cause', sa.String(length=64), nullable=True),
    sa.Column('disposition', sa.String(length=64), nullable=True),
    sa.Column('abandoned', sa.Boolean(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agent.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['record_id'], ['call_record.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['worker_id'], ['worker.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('client_id')
    )
    with op.batch_alter_table('call_attempt', schema=None) as batch_op:
        batch_op.create_index('ix_attempt_record', ['record_id', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_call_attempt_started_at'), ['started_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('call_attempt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_call_attempt_started_at'))
        batch_op.drop_index('ix_attempt_record')

    op.drop_table('call_attempt')
    op.drop_table('queue_feed')
    with op.batch_alter_table('call_record', schema=None) as batch_op:
        batch_op.drop_index('ix_record_queue')
        batch_op.drop_index('ix_record_next')
        batch_op.drop_index('ix_record_holder')

    op.drop_table('call_record')
    op.drop_table('queue')
    with op.batch_alter_table('worker', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_worker_token_hash'))

    op.drop_table('worker')
    op.drop_table('recycle_rule')
    op.drop_table('pool')
    op.drop_table('dnc_entry')
    op.drop_table('campaign')
    op.drop_table('app_user')
    op.drop_table('agent')

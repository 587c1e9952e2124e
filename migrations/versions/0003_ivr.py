"""ivr: remote-center ACD queue for IVR proxy calls, IVR menus (SPEC R3-R9)

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('acd_operator',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('extension', sa.String(length=255), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('state_since', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('acd_peer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('key_hash', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('acd_peer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_acd_peer_key_hash'), ['key_hash'], unique=False)

    op.create_table('acd_queue',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('skill', sa.String(length=64), nullable=False),
    sa.Column('bridge_position', sa.Integer(), nullable=False),
    sa.Column('bridge_setup_s', sa.Double(), nullable=False),
    sa.Column('offer_timeout_s', sa.Double(), nullable=False),
    sa.Column('token_ttl_s', sa.Double(), nullable=False),
    sa.Column('default_service_s', sa.Double(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('skill')
    )
    op.create_table('ivr_menu',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('etag', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('acd_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=36), nullable=False),
    sa.Column('queue_id', sa.Integer(), nullable=False),
    sa.Column('peer_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.Enum('waiting', 'offered', 'connected', 'done', 'cancelled', 'expired', 'failed', name='proxystate', native_enum=False, length=24), nullable=False),
    sa.Column('caller_number', sa.String(length=64), nullable=True),
    sa.Column('caller_name', sa.String(length=120), nullable=True),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('token_hash', sa.String(length=128), nullable=True),
    sa.Column('token_expires_at', sa.DateTime(), nullable=True),
    sa.Column('token_used_at', sa.DateTime(), nullable=True),
    sa.Column('leg_uuid', sa.String(length=64), nullable=True),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('offered_at', sa.DateTime(), nullable=True),
    sa.Column('bridged_at', sa.DateTime(), nullable=True),
    sa.Column('connected_at', sa.DateTime(), nullable=True),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.Column('end_reason', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['operator_id'], ['acd_operator.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['peer_id'], ['acd_peer.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['queue_id'], ['acd_queue.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_id')
    )
    with op.batch_alter_table('acd_entry', schema=None) as batch_op:
        batch_op.create_index('ix_acd_entry_live', ['queue_id', 'state', 'id'], unique=False)
        batch_op.create_index('ix_acd_entry_peer', ['peer_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_acd_entry_token_hash'), ['token_hash'], unique=False)

    op.create_table('acd_membership',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('queue_id', sa.Integer(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['operator_id'], ['acd_operator.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['queue_id'], ['acd_queue.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('queue_id', 'operator_id')
    )


def downgrade() -> None:
    op.drop_table('acd_membership')
    with op.batch_alter_table('acd_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_acd_entry_token_hash'))
        batch_op.drop_index('ix_acd_entry_peer')
        batch_op.drop_index('ix_acd_entry_live')

    op.drop_table('acd_entry')
    op.drop_table('ivr_menu')
    op.drop_table('acd_queue')
    with op.batch_alter_table('acd_peer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_acd_peer_key_hash'))

    op.drop_table('acd_peer')
    op.drop_table('acd_operator')

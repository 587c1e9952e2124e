"""lease idempotency: the request_id of the lease that handed a record out

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('call_record') as batch:
        batch.add_column(sa.Column('lease_request', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('call_record') as batch:
        batch.drop_column('lease_request')

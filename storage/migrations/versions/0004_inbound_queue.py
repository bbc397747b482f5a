"""inbound messages become a durable queue: payload, status, processed_at, lease

Revision ID: 0004_inbound_queue
Revises: 0003_goals
Create Date: 2026-11-27 09:35:00

The DingTalk webhook now records a message (with its payload) and answers at once; the command runs
after, from an in-process queue, and marks the row done in its own transaction. Rows that stay
`received` (a crash between the answer and the command) are recovered by any replica, which claims
them with a lease (`claimed_until`). Existing rows were all processed synchronously: they are `done`.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0004_inbound_queue'
down_revision = '0003_goals'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('status', sa.String(length=16), server_default='done', nullable=False))
        batch_op.add_column(sa.Column('processed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_inbound_messages_status_received', ['status', 'received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_messages_status_received')
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('processed_at')
        batch_op.drop_column('status')
        batch_op.drop_column('payload')

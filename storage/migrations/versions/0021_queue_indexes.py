"""outbox, inbound_messages: partial indexes on the rows still waiting

Revision ID: 0021_queue_indexes
Revises: 0020_pool_index
Create Date: 2026-12-07 12:00:00

Both tables are queues with a long tail of finished rows, and every row changes status once or twice,
leaving dead versions behind until VACUUM. Full indexes on status made each claim of the outbox scan
every unsettled entry once per destination head (16 ms a claim under load) and marking a batch of
messages done scan an organisation's whole history when statistics were not there yet. Partial indexes
hold only what still waits: the outbox rows still to send (and those given up on, for the backlog),
each destination's active rows, and the messages not yet processed.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0021_queue_indexes'
down_revision = '0020_pool_index'
branch_labels = None
depends_on = None

_WAITING = sa.text("status = 'received'")
_ACTIVE = sa.text("status IN ('pending', 'sending')")
_UNSENT = sa.text("status IN ('pending', 'sending', 'failed')")


def upgrade() -> None:
    op.drop_index('ix_outbox_status_due', table_name='outbox')
    op.drop_index('ix_outbox_dest_key', table_name='outbox')
    op.drop_index('ix_inbound_messages_status_received', table_name='inbound_messages')
    op.create_index('ix_outbox_unsent', 'outbox', ['status', 'next_attempt_at'], unique=False,
                    sqlite_where=_UNSENT, postgresql_where=_UNSENT)
    op.create_index('ix_outbox_active_dest', 'outbox', ['dest_key', 'id'], unique=False,
                    sqlite_where=_ACTIVE, postgresql_where=_ACTIVE)
    op.create_index('ix_inbound_messages_waiting', 'inbound_messages', ['received_at'], unique=False,
                    sqlite_where=_WAITING, postgresql_where=_WAITING)


def downgrade() -> None:
    op.drop_index('ix_inbound_messages_waiting', table_name='inbound_messages')
    op.drop_index('ix_outbox_active_dest', table_name='outbox')
    op.drop_index('ix_outbox_unsent', table_name='outbox')
    op.create_index('ix_inbound_messages_status_received', 'inbound_messages', ['status', 'received_at'],
                    unique=False)
    op.create_index('ix_outbox_dest_key', 'outbox', ['dest_key', 'id'], unique=False)
    op.create_index('ix_outbox_status_due', 'outbox', ['status', 'next_attempt_at'], unique=False)

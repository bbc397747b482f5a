"""the inbound key is per organisation: unique (platform, org_key, msg_id)

Revision ID: 0006_inbound_key_per_org
Revises: 0005_collaborator_member_index
Create Date: 2026-11-28 10:00:00

Message ids are unique only within one organisation: two WeCom corps (or two DingTalk orgs) served by
one process can send the same msgid, and with the key (platform, msg_id) the second corp's message was
taken for a re-delivery and dropped. Every existing row already carries its org_key, and the old key
implies the new one, so upgrading needs no data change. Downgrading fails if two organisations have
since recorded the same msg_id (the old key cannot hold both).
"""
from __future__ import annotations

from alembic import op


revision = '0006_inbound_key_per_org'
down_revision = '0005_collaborator_member_index'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_constraint('uq_inbound_messages_platform_msg_id', type_='unique')
        batch_op.create_unique_constraint('uq_inbound_messages_platform_org_key_msg_id',
                                          ['platform', 'org_key', 'msg_id'])


def downgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_constraint('uq_inbound_messages_platform_org_key_msg_id', type_='unique')
        batch_op.create_unique_constraint('uq_inbound_messages_platform_msg_id', ['platform', 'msg_id'])

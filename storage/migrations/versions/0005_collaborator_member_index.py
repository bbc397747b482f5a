"""index collaborators by member

Revision ID: 0005_collaborator_member_index
Revises: 0004_inbound_queue
Create Date: 2026-11-27 11:20:00

`我的` lists the customers a rep collaborates on: a lookup by member, which the primary key
(customer_id, member_id) cannot serve, so it scanned every collaboration of every team.
"""
from __future__ import annotations

from alembic import op


revision = '0005_collaborator_member_index'
down_revision = '0004_inbound_queue'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_collaborators_member_id', 'collaborators', ['member_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_collaborators_member_id', table_name='collaborators')

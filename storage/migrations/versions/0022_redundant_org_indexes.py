"""teams, members: drop the indexes on org_id alone

Revision ID: 0022_redundant_org_indexes
Revises: 0021_queue_indexes
Create Date: 2026-12-07 12:30:00

Both tables have a unique key that starts with org_id ((org_id, chat_id), (org_id, user_id)), which serves
every lookup by organisation. The single-column indexes only cost writes, and gave a planner without
statistics yet (a new database's first minute) an index it preferred for "this chat of this organisation":
it read every team of the organisation for each sender of a batch.
"""
from __future__ import annotations

from alembic import op

revision = '0022_redundant_org_indexes'
down_revision = '0021_queue_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_teams_org_id', table_name='teams')
    op.drop_index('ix_members_org_id', table_name='members')


def downgrade() -> None:
    op.create_index('ix_members_org_id', 'members', ['org_id'], unique=False)
    op.create_index('ix_teams_org_id', 'teams', ['org_id'], unique=False)

"""when a member left a team

Revision ID: 0008_membership_left
Revises: 0007_robot_signatures
Create Date: 2026-12-01 21:00:00

`移除 @成员` takes someone out of one team without deleting the row that their follow-ups, answers and
audit entries point at: the membership keeps its history and says since when it no longer counts.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0008_membership_left'
down_revision = '0007_robot_signatures'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.add_column(sa.Column('left_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.drop_column('left_at')

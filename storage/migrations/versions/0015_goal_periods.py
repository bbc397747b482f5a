"""goals keyed by period (year, quarter, month, ISO week), four metrics, and the setter's role

Revision ID: 0015_goal_periods
Revises: 0014_deal_credits
Create Date: 2026-12-07 08:00:00

`goals.month` ("YYYY-MM") becomes `goals.period`: existing rows keep their key, which is the month
period's key. `set_by_role` records whether a lead/admin or the rep set a target, so a rep cannot
overwrite what their lead set; rows a member set for themselves become "rep", all others "lead".
Going down keeps only what the old schema can hold: month targets of the two old metrics.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015_goal_periods'
down_revision = '0014_deal_credits'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('goals', schema=None) as batch_op:
        batch_op.drop_index('ix_goals_team_month')
        batch_op.alter_column('month', new_column_name='period', existing_type=sa.String(length=7),
                              type_=sa.String(length=8), existing_nullable=False)
        batch_op.add_column(sa.Column('set_by_role', sa.String(length=8), server_default='lead', nullable=False))
    with op.batch_alter_table('goals', schema=None) as batch_op:
        batch_op.create_index('ix_goals_team_period', ['team_id', 'period'], unique=False)
    op.execute("UPDATE goals SET set_by_role = 'rep' WHERE member_id IS NOT NULL AND set_by_id = member_id")


def downgrade() -> None:
    op.execute(
        "DELETE FROM goals WHERE LENGTH(period) <> 7 OR metric NOT IN ('won_amount', 'new_customers')"
    )
    with op.batch_alter_table('goals', schema=None) as batch_op:
        batch_op.drop_index('ix_goals_team_period')
        batch_op.drop_column('set_by_role')
        batch_op.alter_column('period', new_column_name='month', existing_type=sa.String(length=8),
                              type_=sa.String(length=7), existing_nullable=False)
    with op.batch_alter_table('goals', schema=None) as batch_op:
        batch_op.create_index('ix_goals_team_month', ['team_id', 'month'], unique=False)

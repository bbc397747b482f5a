"""holidays and make-up working days an organisation's admins maintain

Revision ID: 0016_holidays
Revises: 0014_deal_credits
Create Date: 2026-12-07 08:00:00

`chinesecalendar` knows a fixed range of years (1.11.0: up to 2026); from the first day of a year it
does not know, working days fell back to Monday–Friday and the stand-up went out in the middle of 春节.
`calendar_days` holds each organisation's own holidays and 调休 days (one per day), which take
precedence over the package; `organisations.calendar_version` is raised on every change so a cached
calendar is known to be stale without a query.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016_holidays'
down_revision = '0015_goal_periods'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'calendar_days',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('source', sa.String(length=8), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ['created_by_id'], ['members.id'], name=op.f('fk_calendar_days_created_by_id_members')
        ),
        sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_calendar_days_org_id_organisations')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_days')),
        sa.UniqueConstraint('org_id', 'day', name=op.f('uq_calendar_days_org_id_day')),
    )
    op.add_column('organisations', sa.Column('calendar_version', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    # Plain ALTER TABLE on SQLite too: a batch would copy `organisations`, which every table points at.
    op.drop_column('organisations', 'calendar_version')
    op.drop_table('calendar_days')

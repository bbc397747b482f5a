"""board links: each organisation's generated signing secret

Revision ID: 0017_board_links
Revises: 0015_goal_periods
Create Date: 2026-12-07 08:00:00

The web board's links (`看板 链接`) are HMAC-signed tokens. When `SALESBOT_BOARD_SECRET` is not set, a
random secret is generated once per organisation and kept here, so every process and replica signs and
checks with the same key. Revoking (`看板 链接 撤销`) bumps a generation in the team's JSON settings and
needs no column.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017_board_links'
down_revision = '0016_holidays'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('organisations', sa.Column('board_secret', sa.String(length=64), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE on SQLite too: a batch would copy `organisations`, which every table points at.
    op.drop_column('organisations', 'board_secret')

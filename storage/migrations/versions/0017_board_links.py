"""board links: the generated signing secret and each team's link generation

Revision ID: 0017_board_links
Revises: 0013_name_key_version
Create Date: 2026-12-07 08:00:00

The web board's links (`看板 链接`) are HMAC-signed tokens. When `SALESBOT_BOARD_SECRET` is not set, one
random secret is generated once and kept in `app_secrets`, so every process and replica signs and checks
with the same key. `看板 链接 撤销` bumps the team's generation in `board_links`: a token carries the
generation it was made in, and an older one is refused.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017_board_links'
down_revision = '0013_name_key_version'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'app_secrets',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('value', sa.String(length=255), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_app_secrets')),
    )
    op.create_table(
        'board_links',
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('generation', sa.Integer(), server_default='0', nullable=False),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.Column('revoked_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_board_links_team_id_teams')),
        sa.ForeignKeyConstraint(['revoked_by_id'], ['members.id'], name=op.f('fk_board_links_revoked_by_id_members')),
        sa.PrimaryKeyConstraint('team_id', name=op.f('pk_board_links')),
    )


def downgrade() -> None:
    op.drop_table('board_links')
    op.drop_table('app_secrets')

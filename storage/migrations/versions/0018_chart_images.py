"""chart images served to platforms that show a picture only from a URL

Revision ID: 0018_chart_images
Revises: 0014_deal_credits
Create Date: 2026-12-07 08:00:00

The weekly retro carries a PNG chart. WeCom's group robot takes the bytes; a DingTalk markdown message
shows an image only from a URL, so the PNG is kept here under a random id and served read-only at
`/charts/<id>.png` until the housekeeping forgets it.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0018_chart_images'
down_revision = '0017_board_links'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'chart_images',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=False),
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('png', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_chart_images_org_id_organisations')),
        sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_chart_images_team_id_teams')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_chart_images')),
    )
    op.create_index('ix_chart_images_created_at', 'chart_images', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_chart_images_created_at', table_name='chart_images')
    op.drop_table('chart_images')

"""send windows shared by replicas

Revision ID: 0012_send_windows
Revises: 0011_org_customers
Create Date: 2026-11-28 09:00:00

The per-target rate limits (DingTalk robot 20/min per group, WeCom group robot 20/min per key, WeCom app
30/min per member) were kept per process, so two replicas together sent up to twice as many. One row per
limit key holds the send times of the last minute, updated by compare-and-swap on `version`.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012_send_windows'
down_revision = '0011_org_customers'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'send_windows',
        sa.Column('limit_key', sa.String(length=255), nullable=False),
        sa.Column('sent', sa.JSON(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('limit_key', name=op.f('pk_send_windows')),
    )


def downgrade() -> None:
    op.drop_table('send_windows')

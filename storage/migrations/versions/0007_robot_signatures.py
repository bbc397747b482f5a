"""robot signatures: a DingTalk (timestamp, sign) pair is good for one msgId

Revision ID: 0007_robot_signatures
Revises: 0006_inbound_key_per_org
Create Date: 2026-12-01 10:00:00

The robot callback's signature covers only its timestamp and the app secret, so a captured pair could
be replayed with any body for the whole ±1 h window. Every pair seen is recorded with its msgId (unique
on the signature, across processes and replicas); the same pair with another msgId is refused.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0007_robot_signatures'
down_revision = '0006_inbound_key_per_org'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'robot_signatures',
        sa.Column('sign', sa.String(length=64), nullable=False),
        sa.Column('timestamp', sa.BigInteger(), nullable=False),
        sa.Column('msg_id', sa.String(length=191), nullable=False),
        sa.Column('seen_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('sign', name=op.f('pk_robot_signatures')),
    )
    op.create_index(op.f('ix_robot_signatures_seen_at'), 'robot_signatures', ['seen_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_robot_signatures_seen_at'), table_name='robot_signatures')
    op.drop_table('robot_signatures')

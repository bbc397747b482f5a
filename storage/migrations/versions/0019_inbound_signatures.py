"""DingTalk robot signatures on the inbound row: a (timestamp, sign) pair carries new msgIds only while fresh

Revision ID: 0019_inbound_signatures
Revises: 0014_deal_credits
Create Date: 2026-12-07 08:00:00

The robot callback's sign covers only its timestamp and the app secret, so two genuine messages signed
in the same millisecond share a pair, and a captured pair could carry a forged body. `robot_signatures`
bound each pair to its first msgId — one more INSERT per acknowledgement, and genuine concurrent traffic
refused. Now the sign goes into the inbound row the acknowledgement writes anyway, with the moment the
pair stops being fresh; the command's "mark done" refuses a message whose pair was first seen before
that (storage.inbound). The downgrade brings the old table back empty (it only matters within the
timestamp window).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0019_inbound_signatures'
down_revision = '0018_chart_images'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sign', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('sign_fresh_until', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_inbound_messages_sign'), ['sign'], unique=False)
    op.drop_index(op.f('ix_robot_signatures_seen_at'), table_name='robot_signatures')
    op.drop_table('robot_signatures')


def downgrade() -> None:
    op.create_table(
        'robot_signatures',
        sa.Column('sign', sa.String(length=64), nullable=False),
        sa.Column('timestamp', sa.BigInteger(), nullable=False),
        sa.Column('msg_id', sa.String(length=191), nullable=False),
        sa.Column('seen_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('sign', name=op.f('pk_robot_signatures')),
    )
    op.create_index(op.f('ix_robot_signatures_seen_at'), 'robot_signatures', ['seen_at'], unique=False)
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_messages_sign'))
        batch_op.drop_column('sign_fresh_until')
        batch_op.drop_column('sign')

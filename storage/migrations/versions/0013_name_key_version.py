"""the name-key version each organisation's customers were keyed with

Revision ID: 0013_name_key_version
Revises: 0012_send_windows
Create Date: 2026-11-29 09:00:00

The 撞单 key (`handlers.names.normalise_company_name`) changes when its rules do (place names, OpenCC),
and customers stored before keep their old key. Each organisation records the version its keys were
made with; start-up re-keys the organisations whose version differs from the running one. Existing
organisations start at 0: keyed before versions were recorded.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013_name_key_version'
down_revision = '0012_send_windows'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('organisations', sa.Column('name_key_version', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    # Plain ALTER TABLE on SQLite too: a batch would copy `organisations`, which every table points at.
    op.drop_column('organisations', 'name_key_version')

"""customers: a partial index on the company pool

Revision ID: 0020_pool_index
Revises: 0019_inbound_signatures
Create Date: 2026-12-07 11:00:00

A rep's search (跟进 华为, 你是不是指…) reads the customers they can see: their team's, the company pool
and their collaborations. Read as one branch each (storage.customer_search), the team's has its index and
this one serves the pool's, so a search no longer reads the whole organisation.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0020_pool_index'
down_revision = '0019_inbound_signatures'
branch_labels = None
depends_on = None

_WHERE = sa.text("company_pool AND owner_id IS NULL")


def upgrade() -> None:
    op.create_index('ix_customers_company_pool', 'customers', ['org_id'], unique=False,
                    sqlite_where=_WHERE, postgresql_where=_WHERE)


def downgrade() -> None:
    op.drop_index('ix_customers_company_pool', table_name='customers')

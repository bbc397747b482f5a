"""customers belong to the organisation: names unique across its teams, a company pool, duplicates marked

Revision ID: 0011_org_customers
Revises: 0010_deals
Create Date: 2026-11-28 11:00:00

撞单 was checked per team, so two teams of one company could both own 北京华为技术有限公司. Names are
now unique in the organisation through a partial unique index over the customers not marked as a
possible duplicate. Customers that two teams already both hold are kept: the oldest stays the
original, each younger one gets `duplicate_of_id` pointing at it, and the teams' leads see them until
they merge (合并). `company_pool` marks a pool customer that any team may claim (公海 共享).

The columns are added with plain ALTER TABLE, also on SQLite: a batch would copy `customers` into a
new table and drop the old one, which the rows pointing at it forbid — hence no foreign key on
`duplicate_of_id`, and the per-team unique key stays.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0011_org_customers'
down_revision = '0010_deals'
branch_labels = None
depends_on = None

_ORIGINAL = (
    "(SELECT MIN(o.id) FROM customers o WHERE o.org_id = customers.org_id AND o.norm_name = customers.norm_name)"
)


def upgrade() -> None:
    op.add_column('customers', sa.Column('company_pool', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column('customers', sa.Column('duplicate_of_id', sa.Integer(), nullable=True))
    op.execute(f"UPDATE customers SET duplicate_of_id = {_ORIGINAL} WHERE id <> {_ORIGINAL}")
    op.create_index(
        'uq_customers_org_norm_name', 'customers', ['org_id', 'norm_name'], unique=True,
        sqlite_where=sa.text('duplicate_of_id IS NULL'), postgresql_where=sa.text('duplicate_of_id IS NULL'),
    )


def downgrade() -> None:
    op.drop_index('uq_customers_org_norm_name', table_name='customers')
    op.drop_column('customers', 'duplicate_of_id')
    op.drop_column('customers', 'company_pool')

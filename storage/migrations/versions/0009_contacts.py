"""contacts of customers

Revision ID: 0009_contacts
Revises: 0008_membership_left
Create Date: 2026-12-01 21:15:00

联系人: the people at a customer, with a digits-only phone key indexed per organisation so a number
already filed under another customer is found at once.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0009_contacts'
down_revision = '0008_membership_left'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'contacts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('title', sa.String(length=64), nullable=True),
        sa.Column('phone', sa.String(length=32), nullable=True),
        sa.Column('phone_key', sa.String(length=32), nullable=True),
        sa.Column('wechat', sa.String(length=64), nullable=True),
        sa.Column('added_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['added_by_id'], ['members.id'], name=op.f('fk_contacts_added_by_id_members')),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_contacts_customer_id_customers')),
        sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_contacts_org_id_organisations')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts')),
    )
    op.create_index('ix_contacts_customer_id', 'contacts', ['customer_id'], unique=False)
    op.create_index('ix_contacts_org_phone', 'contacts', ['org_id', 'phone_key'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_contacts_org_phone', table_name='contacts')
    op.drop_index('ix_contacts_customer_id', table_name='contacts')
    op.drop_table('contacts')

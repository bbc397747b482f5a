"""deals (商机) and their events: stage, amount, status and close time move from customers to deals

Revision ID: 0010_deals
Revises: 0009_contacts
Create Date: 2026-11-28 10:00:00

A customer was one deal, so a won customer could take no more business and a lost one could never
be worked again. Each existing customer becomes one deal ("首单") with its stage, amount, status
(active → open) and close time; its follow-ups point at that deal; its history becomes events:
opened at the customer's creation, each stage change of its follow-ups (wins and losses aside), and
won/lost at the close time with the amount. The downgrade puts each customer's standing deal (its
newest open one, else its latest closed one) back into the customer's columns.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0010_deals'
down_revision = '0009_contacts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('deals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=True),
    sa.Column('expected_close_on', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('lost_reason', sa.Text(), nullable=True),
    sa.Column('opened_by_id', sa.Integer(), nullable=True),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_deals_customer_id_customers')),
    sa.ForeignKeyConstraint(['opened_by_id'], ['members.id'], name=op.f('fk_deals_opened_by_id_members')),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_deals_org_id_organisations')),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_deals_team_id_teams')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deals'))
    )
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.create_index('ix_deals_customer_status', ['customer_id', 'status'], unique=False)
        batch_op.create_index('ix_deals_team_status_closed', ['team_id', 'status', 'closed_at'], unique=False)

    op.create_table('deal_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('deal_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('stage_before', sa.String(length=16), nullable=True),
    sa.Column('stage_after', sa.String(length=16), nullable=True),
    sa.Column('amount_fen', sa.BigInteger(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('msg_id', sa.String(length=191), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['members.id'], name=op.f('fk_deal_events_actor_id_members')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_deal_events_customer_id_customers')),
    sa.ForeignKeyConstraint(['deal_id'], ['deals.id'], name=op.f('fk_deal_events_deal_id_deals')),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_deal_events_org_id_organisations')),
    sa.ForeignKeyConstraint(['owner_id'], ['members.id'], name=op.f('fk_deal_events_owner_id_members')),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_deal_events_team_id_teams')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deal_events'))
    )
    with op.batch_alter_table('deal_events', schema=None) as batch_op:
        batch_op.create_index('ix_deal_events_deal_created', ['deal_id', 'created_at'], unique=False)
        batch_op.create_index('ix_deal_events_team_kind_created', ['team_id', 'kind', 'created_at'], unique=False)

    with op.batch_alter_table('followups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deal_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_followups_deal_id'), ['deal_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_followups_deal_id_deals'), 'deals', ['deal_id'], ['id'])

    op.execute(
        "INSERT INTO deals (org_id, team_id, customer_id, name, stage, amount_fen, status, closed_at, created_at) "
        "SELECT org_id, team_id, id, '首单', stage, amount_fen, "
        "CASE WHEN status = 'active' THEN 'open' ELSE status END, "
        "CASE WHEN status = 'active' THEN NULL ELSE COALESCE(closed_at, last_activity_at) END, created_at "
        "FROM customers ORDER BY id"
    )
    op.execute("UPDATE followups SET deal_id = (SELECT d.id FROM deals d WHERE d.customer_id = followups.customer_id)")
    events = (
        "INSERT INTO deal_events (org_id, team_id, deal_id, customer_id, kind, stage_before, stage_after, "
        "amount_fen, owner_id, actor_id, created_at) "
    )
    op.execute(
        events + "SELECT d.org_id, d.team_id, d.id, d.customer_id, 'opened', NULL, '线索', NULL, c.owner_id, NULL, "
        "c.created_at FROM deals d JOIN customers c ON c.id = d.customer_id ORDER BY d.id"
    )
    op.execute(
        events + "SELECT d.org_id, d.team_id, d.id, d.customer_id, 'stage', f.stage_before, f.stage_after, "
        "f.amount_fen, c.owner_id, f.author_id, f.created_at "
        "FROM followups f JOIN deals d ON d.id = f.deal_id JOIN customers c ON c.id = d.customer_id "
        "WHERE f.stage_after IS NOT NULL AND f.stage_after NOT IN ('赢单', '输单') "
        "AND (f.stage_before IS NULL OR f.stage_before NOT IN ('赢单', '输单')) ORDER BY f.created_at, f.id"
    )
    op.execute(
        events + "SELECT d.org_id, d.team_id, d.id, d.customer_id, d.status, NULL, d.stage, d.amount_fen, "
        "c.owner_id, NULL, d.closed_at "
        "FROM deals d JOIN customers c ON c.id = d.customer_id WHERE d.status IN ('won', 'lost') ORDER BY d.id"
    )

    # Plain ALTER TABLE … DROP COLUMN, also on SQLite (3.35+): a batch would copy `customers` into a new
    # table and drop the old one, which the rows now pointing at it (deals, follow-ups) forbid.
    op.drop_index('ix_customers_team_owner_status', table_name='customers')
    op.drop_index('ix_customers_team_status_activity', table_name='customers')
    for column in ('closed_at', 'status', 'amount_fen', 'stage'):
        op.drop_column('customers', column)
    op.create_index('ix_customers_team_owner', 'customers', ['team_id', 'owner_id'], unique=False)
    op.create_index('ix_customers_team_activity', 'customers', ['team_id', 'last_activity_at'], unique=False)


# The deal that stands for a customer when the columns come back: its newest open deal, else its
# latest closed one.
_STANDING = (
    "(SELECT {column} FROM deals d WHERE d.customer_id = customers.id "
    "ORDER BY CASE WHEN d.status = 'open' THEN 0 ELSE 1 END, d.closed_at DESC, d.id DESC LIMIT 1)"
)

_OLD_STATUS = "CASE WHEN d.status = 'open' THEN 'active' ELSE d.status END"


def downgrade() -> None:
    # No batch on `customers` (see upgrade): the columns come back with ALTER TABLE … ADD COLUMN.
    op.drop_index('ix_customers_team_activity', table_name='customers')
    op.drop_index('ix_customers_team_owner', table_name='customers')
    op.add_column('customers', sa.Column('stage', sa.String(length=16), server_default='线索', nullable=False))
    op.add_column('customers', sa.Column('amount_fen', sa.BigInteger(), nullable=True))
    op.add_column('customers', sa.Column('status', sa.String(length=8), server_default='active', nullable=False))
    op.add_column('customers', sa.Column('closed_at', sa.DateTime(), nullable=True))
    op.execute(
        "UPDATE customers SET "
        f"stage = COALESCE({_STANDING.format(column='d.stage')}, '线索'), "
        f"amount_fen = {_STANDING.format(column='d.amount_fen')}, "
        f"status = COALESCE({_STANDING.format(column=_OLD_STATUS)}, 'active'), "
        f"closed_at = {_STANDING.format(column='d.closed_at')}"
    )
    if op.get_bind().dialect.name == 'postgresql':
        # SQLite cannot drop a default without copying the table; there the default stays, harmlessly.
        op.alter_column('customers', 'stage', server_default=None)
        op.alter_column('customers', 'status', server_default=None)
    op.create_index('ix_customers_team_status_activity', 'customers', ['team_id', 'status', 'last_activity_at'],
                    unique=False)
    op.create_index('ix_customers_team_owner_status', 'customers', ['team_id', 'owner_id', 'status'], unique=False)

    with op.batch_alter_table('followups', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_followups_deal_id_deals'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_followups_deal_id'))
        batch_op.drop_column('deal_id')

    with op.batch_alter_table('deal_events', schema=None) as batch_op:
        batch_op.drop_index('ix_deal_events_team_kind_created')
        batch_op.drop_index('ix_deal_events_deal_created')
    op.drop_table('deal_events')
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.drop_index('ix_deals_team_status_closed')
        batch_op.drop_index('ix_deals_customer_status')
    op.drop_table('deals')

"""deal credits (业绩分成) and the history the ledger rebuilds past pipelines from

Revision ID: 0014_deal_credits
Revises: 0013_name_key_version
Create Date: 2026-12-07 07:45:00

Each win writes credit rows (member, signed amount, share) that sum to the won amount, an un-win the
same rows negated (storage.credits); existing wins and un-wins get their owner credited in full, as
the numbers counted them before. `storage.ledger.pipeline_at` rebuilds a deal's stage and amount at a
past moment from its events, so the history 0010 synthesised is completed: its events without an
amount take the latest amount a follow-up had set by then, and a follow-up that set an amount without
an event at that moment becomes an `amount` event. deal_events(team_id, created_at) finds the deals
that changed after a moment, and deals(team_id, status, stage, amount_fen) sums the open pipeline by stage
from the index alone. The downgrade drops the credits and the indexes; the completed history
stays (it is true history either way).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014_deal_credits'
down_revision = '0013_name_key_version'
branch_labels = None
depends_on = None

_CREDITS = (
    "INSERT INTO deal_credits (org_id, team_id, deal_id, event_id, member_id, amount_fen, share_bp, created_at) "
    "SELECT e.org_id, e.team_id, e.deal_id, e.id, e.owner_id, {sign} COALESCE(e.amount_fen, 0), 10000, e.created_at "
    "FROM deal_events e WHERE e.kind = '{kind}' AND e.owner_id IS NOT NULL ORDER BY e.id"
)


def upgrade() -> None:
    op.create_table('deal_credits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('deal_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('share_bp', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['deal_id'], ['deals.id'], name=op.f('fk_deal_credits_deal_id_deals')),
    sa.ForeignKeyConstraint(['event_id'], ['deal_events.id'], name=op.f('fk_deal_credits_event_id_deal_events')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_deal_credits_member_id_members')),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_deal_credits_org_id_organisations')),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_deal_credits_team_id_teams')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deal_credits'))
    )
    op.create_index('ix_deal_credits_team_created', 'deal_credits', ['team_id', 'created_at'], unique=False)
    op.create_index('ix_deal_credits_event_id', 'deal_credits', ['event_id'], unique=False)
    op.create_index('ix_deal_events_team_created', 'deal_events', ['team_id', 'created_at'], unique=False)
    op.create_index('ix_deals_team_status_stage', 'deals', ['team_id', 'status', 'stage', 'amount_fen'], unique=False)
    op.execute(_CREDITS.format(sign='', kind='won'))
    op.execute(_CREDITS.format(sign='-', kind='unwon'))
    op.execute(
        "UPDATE deal_events SET amount_fen = (SELECT f.amount_fen FROM followups f "
        "WHERE f.deal_id = deal_events.deal_id AND f.amount_fen IS NOT NULL AND f.created_at <= deal_events.created_at "
        "ORDER BY f.created_at DESC, f.id DESC LIMIT 1) "
        "WHERE amount_fen IS NULL AND kind IN ('opened', 'stage')"
    )
    op.execute(
        "INSERT INTO deal_events (org_id, team_id, deal_id, customer_id, kind, stage_before, stage_after, "
        "amount_fen, owner_id, actor_id, created_at) "
        "SELECT d.org_id, d.team_id, d.id, d.customer_id, 'amount', NULL, NULL, f.amount_fen, c.owner_id, "
        "f.author_id, f.created_at FROM followups f JOIN deals d ON d.id = f.deal_id "
        "JOIN customers c ON c.id = d.customer_id WHERE f.amount_fen IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM deal_events e WHERE e.deal_id = f.deal_id AND e.created_at = f.created_at) "
        "ORDER BY f.created_at, f.id"
    )


def downgrade() -> None:
    op.drop_index('ix_deals_team_status_stage', table_name='deals')
    op.drop_index('ix_deal_events_team_created', table_name='deal_events')
    op.drop_index('ix_deal_credits_event_id', table_name='deal_credits')
    op.drop_index('ix_deal_credits_team_created', table_name='deal_credits')
    op.drop_table('deal_credits')

"""outbox, inbound_messages: vacuumed and analyzed after a fixed number of changes (PostgreSQL)

Revision ID: 0023_queue_autovacuum
Revises: 0022_redundant_org_indexes
Create Date: 2026-12-08 01:20:00

Every reply writes three versions of its outbox row and every message two of its inbound row; a settled
row leaves its old entries in the partial indexes the claim, the recovery pass and the backlog read, dead
until VACUUM. By default autovacuum comes after a fifth of the table has changed and ANALYZE after a
tenth, so a queue that keeps weeks of history carries tens of thousands of dead entries between
VACUUMs, and a young table keeps the plans it got while empty (bench/outbox_claim: a claim of one reply
~5 ms with those plans, 0.3 ms with statistics, at 30,000 settled replies). Here both come after a fixed
number of changes, whatever the table's size (autovacuum still looks once a minute at most). SQLite has
no autovacuum of this kind: nothing to do there.
"""
from __future__ import annotations

from alembic import op

revision = '0023_queue_autovacuum'
down_revision = '0022_redundant_org_indexes'
branch_labels = None
depends_on = None

TABLES = ("outbox", "inbound_messages")
SETTINGS = ("autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000, "
            "autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000")
NAMES = ("autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, "
         "autovacuum_analyze_scale_factor, autovacuum_analyze_threshold")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET ({SETTINGS})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET ({NAMES})")

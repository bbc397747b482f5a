"""Tables of salesbot, in SQLAlchemy 2 typed form.

Every row that belongs to a customer's business carries `org_id`, so that every query can be scoped
to one organisation; rows of a team carry `team_id` too. Money is stored in fen (integer) because
SQLite has no exact decimal type and reps care about every yuan in a digest. Times are stored as UTC
and come back timezone-aware (see `UTCDateTime`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.model_base import Base, UTCDateTime

# The bookkeeping tables live in storage/models_delivery.py; re-exported so `storage.models` names every table.
from storage.models_delivery import ChartImage as ChartImage
from storage.models_delivery import InboundMessage as InboundMessage
from storage.models_delivery import JobFiring as JobFiring
from storage.models_delivery import Notice as Notice
from storage.models_delivery import OutboxMessage as OutboxMessage
from storage.models_delivery import SendWindow as SendWindow


class Organisation(Base):
    """One WeCom corp or DingTalk corp (or the local console)."""

    __tablename__ = "organisations"
    __table_args__ = (UniqueConstraint("platform", "corp_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    corp_key: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # The `handlers.names.NAME_KEY_VERSION` its customers' `norm_name` were made with (0: before versions).
    name_key_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Raised whenever its admins change `calendar_days`: the scheduler's tick already reads every
    # organisation, so a cached calendar is checked against this number at no extra query.
    calendar_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    board_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)  # storage.board_links: link key
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Team(Base):
    """A sales team, bound to exactly one group chat; pool rules are per team."""

    __tablename__ = "teams"
    # The unique key serves lookups by organisation too: a second index on org_id alone only gave a
    # planner without statistics the wrong index to pick (migration 0022).
    __table_args__ = (UniqueConstraint("org_id", "chat_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    chat_id: Mapped[str] = mapped_column(String(191))
    name: Mapped[str] = mapped_column(String(128))
    help_seq: Mapped[int] = mapped_column(Integer, default=0)
    max_active_customers: Mapped[int] = mapped_column(Integer, default=50)
    daily_claim_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cooldown_days: Mapped[int] = mapped_column(Integer, default=7)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Member(Base):
    """A person: a platform user id within one organisation."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("org_id", "user_id"),)  # serves lookups by organisation too (as teams)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    user_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(64))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Membership(Base):
    """A member's place in a team; `role` is rep or lead (admin is organisation-wide).

    `left_at` is set when a lead removes the member from the team (移除): the row stays, so what they
    did keeps its author, but they no longer count as one of the team.
    """

    __tablename__ = "memberships"

    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(8), default="rep")
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime())
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Customer(Base):
    """A customer of the organisation. No owner means it sits in a team's public pool (公海), or in the
    company pool (`company_pool`) where any team may claim it.

    `team_id` is the team whose customer it is: the owner's team, or the team whose pool holds it.
    What is being sold to the customer — stage, amount, status, close time — lives on its deals
    (`Deal`): a customer has deals over time and at once (复购, 二期).

    `norm_name` is unique in the organisation among customers that are not marked as a possible
    duplicate (a partial unique index): that index, not Python code, is what decides who wins when two
    reps — of one team or of two — claim the same new customer at the same moment. Customers that two
    teams both held before names were organisation-wide are kept; the younger one carries
    `duplicate_of_id` (the one it duplicates) until a lead merges them (合并). Within a team a name is
    unique even then (the older per-team key stays). `duplicate_of_id` has no foreign key: SQLite adds
    one only by copying the table, which the rows that point at customers forbid.
    """

    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("team_id", "norm_name"),
        Index("ix_customers_team_owner", "team_id", "owner_id"),
        Index(
            "uq_customers_org_norm_name",
            "org_id",
            "norm_name",
            unique=True,
            sqlite_where=text("duplicate_of_id IS NULL"),
            postgresql_where=text("duplicate_of_id IS NULL"),
        ),
        # The company pool, for searches (storage.customer_search): its customers are seen by every team.
        Index(
            "ix_customers_company_pool",
            "org_id",
            sqlite_where=text("company_pool AND owner_id IS NULL"),
            postgresql_where=text("company_pool AND owner_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    name: Mapped[str] = mapped_column(String(200))
    norm_name: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_followup_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    released_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    company_pool: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    duplicate_of_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Deal(Base):
    """A deal (商机) with a customer: what is sold, at which stage, for how much, and how it ended.

    `status` is open, won or lost; `closed_at` is when it was won or lost. A customer may have several
    open deals at once; each change is also written as a `DealEvent`, which reports sum.
    """

    __tablename__ = "deals"
    __table_args__ = (
        Index("ix_deals_customer_status", "customer_id", "status"),
        Index("ix_deals_team_status_closed", "team_id", "status", "closed_at"),
        Index("ix_deals_team_status_stage", "team_id", "status", "stage", "amount_fen"),  # pipeline, index-only
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16), default="线索")
    amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    expected_close_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String(8), default="open")
    lost_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DealEvent(Base):
    """One change to a deal: opened, stage, amount, won, lost, unwon (a win set back), reopened, merged.

    Reports are sums of events in a period, never of current values: a win, a loss and an un-win carry
    the amount at that moment; `owner_id` is the owner then (an un-win's: the owner of the win it undoes).
    """

    __tablename__ = "deal_events"
    __table_args__ = (
        Index("ix_deal_events_team_kind_created", "team_id", "kind", "created_at"),
        Index("ix_deal_events_deal_created", "deal_id", "created_at"),
        Index("ix_deal_events_team_created", "team_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(16))
    stage_before: Mapped[str | None] = mapped_column(String(16), nullable=True)
    stage_after: Mapped[str | None] = mapped_column(String(16), nullable=True)
    amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    msg_id: Mapped[str | None] = mapped_column(String(191), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DealCredit(Base):
    """Who is credited how much of a win (业绩分成): rows of one `won` event sum exactly to its amount;
    an `unwon` event writes the same rows negated, so a period's credit is a plain signed sum."""

    __tablename__ = "deal_credits"
    __table_args__ = (
        Index("ix_deal_credits_team_created", "team_id", "created_at"),
        Index("ix_deal_credits_event_id", "event_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("deal_events.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    share_bp: Mapped[int] = mapped_column(Integer)  # the share in basis points (6000 = 60%)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Collaborator(Base):
    __tablename__ = "collaborators"
    __table_args__ = (Index("ix_collaborators_member_id", "member_id"),)

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Contact(Base):
    """A person at a customer (联系人). `phone_key` is the number reduced to its digits, without +86, so
    the same buyer filed under two company names is found across the organisation (a classic 撞单)."""

    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_customer_id", "customer_id"),
        Index("ix_contacts_org_phone", "org_id", "phone_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(64), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    phone_key: Mapped[str | None] = mapped_column(String(32), nullable=True)
    wechat: Mapped[str | None] = mapped_column(String(64), nullable=True)
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FollowUp(Base):
    """One progress record (跟进). Stage and amount changes of its deal are kept on the record for retros."""

    __tablename__ = "followups"
    __table_args__ = (
        Index("ix_followups_team_created", "team_id", "created_at"),
        Index("ix_followups_customer_created", "customer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    # The deal the follow-up moved; NULL for a note on a customer with no open deal.
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), nullable=True, index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    content: Mapped[str] = mapped_column(Text)
    stage_before: Mapped[str | None] = mapped_column(String(16), nullable=True)
    stage_after: Mapped[str | None] = mapped_column(String(16), nullable=True)
    amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    next_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HelpRequest(Base):
    """A numbered request for help (#N per team)."""

    __tablename__ = "help_requests"
    __table_args__ = (
        UniqueConstraint("team_id", "number"),
        Index("ix_help_requests_team_status", "team_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    number: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), nullable=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    helper_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(8), default="open")
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditLog(Base):
    """Who changed what, from which chat message."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_org_created", "org_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), nullable=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    msg_id: Mapped[str | None] = mapped_column(String(191), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StandupAnswer(Base):
    """A member's answer to one day's stand-up (晨会); a second answer the same day replaces the first."""

    __tablename__ = "standup_answers"
    __table_args__ = (
        UniqueConstraint("team_id", "member_id", "day"),
        Index("ix_standup_answers_team_day", "team_id", "day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    day: Mapped[date] = mapped_column(Date)
    plan: Mapped[str] = mapped_column(Text)
    blockers: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Leave(Base):
    """A member away (请假) from `starts_on` to `ends_on` inclusive (open-ended when null), in one team."""

    __tablename__ = "leaves"
    __table_args__ = (Index("ix_leaves_team_member", "team_id", "member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CalendarDay(Base):
    """A day an organisation's admins declared a holiday (假期) or a make-up working day (调休).

    It takes precedence over the `chinesecalendar` package for every year, which is what keeps the
    stand-up right in a year the package has no data for yet. One entry per organisation and day: a
    correction replaces the day's entry. `source` is `admin` (chat) or `import` (a CSV/.ics file).
    """

    __tablename__ = "calendar_days"
    __table_args__ = (UniqueConstraint("org_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    day: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(8))  # holiday | workday
    name: Mapped[str] = mapped_column(String(32), default="")
    source: Mapped[str] = mapped_column(String(8))  # admin | import
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# Indexes the reports and jobs need so that their cost follows the team's activity in the period.
Index("ix_customers_team_activity", Customer.team_id, Customer.last_activity_at)
Index("ix_customers_team_created", Customer.team_id, Customer.created_at)
Index("ix_customers_team_next_followup", Customer.team_id, Customer.next_followup_on)
Index("ix_help_requests_team_created", HelpRequest.team_id, HelpRequest.created_at)
Index("ix_help_requests_team_taken", HelpRequest.team_id, HelpRequest.taken_at)
Index("ix_help_requests_team_resolved", HelpRequest.team_id, HelpRequest.resolved_at)
Index("ix_audit_log_team_action_created", AuditLog.team_id, AuditLog.action, AuditLog.created_at)


# --------------------------------------------------------------------------- goals, points, knowledge
class Goal(Base):
    """A target (目标) for one period. `member_id` NULL is the team's own target.

    `period` is a period key from handlers.periods: "2027" (year), "2027Q1" (quarter), "2027-03" (month)
    or "2027-W05" (ISO week). `metric` is "won_amount" (target in fen, against the credited won amount),
    "won_count" (won deals), "new_customers" (customers claimed) or "followups" (follow-up records).
    `set_by_role` is the setter's role then ("rep", "lead", "admin"): a rep may not overwrite a target a
    lead or admin set for them, so who set it is kept with the row, not looked up later.
    """

    __tablename__ = "goals"
    __table_args__ = (Index("ix_goals_team_period", "team_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    period: Mapped[str] = mapped_column(String(8))
    metric: Mapped[str] = mapped_column(String(16), default="won_amount")
    target: Mapped[int] = mapped_column(BigInteger)
    set_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    set_by_role: Mapped[str] = mapped_column(String(8), default="lead", server_default="lead")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PointsEntry(Base):
    """One line of the collaboration-points ledger: who, how many, why, and what caused it.

    Points are never edited: undoing a cause (a reopened request, a won deal set back) writes a
    reversing entry whose `reverses_id` points at the entry it cancels.
    """

    __tablename__ = "points_ledger"
    __table_args__ = (
        Index("ix_points_ledger_team_created", "team_id", "created_at"),
        Index("ix_points_ledger_help_request_id", "help_request_id"),
        Index("ix_points_ledger_customer_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    points: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(16))
    help_request_id: Mapped[int | None] = mapped_column(ForeignKey("help_requests.id"), nullable=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), nullable=True)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("points_ledger.id"), nullable=True, unique=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    msg_id: Mapped[str | None] = mapped_column(String(191), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Tip(Base):
    """A piece of team knowledge (分享): a best practice, a script, an answer to an objection."""

    __tablename__ = "tips"
    __table_args__ = (Index("ix_tips_org_created", "org_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    title: Mapped[str] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text)
    tags: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


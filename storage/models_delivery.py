"""The delivery and scheduling bookkeeping tables: what came in (dedup), what goes out (the outbox and
its send windows), what the scheduler fired and noticed, and the retro charts' images.

Apart from `storage/models.py` so that each stays small; `storage.models` re-exports them, so code and
Alembic see one set of tables (one `Base.metadata`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.model_base import Base, UTCDateTime

# The predicates of the queue tables' partial indexes; statements that should use them spell their
# statuses as constants (storage.sql.status_in), which migration 0021 and these must match.
_WAITING = text("status = 'received'")
_ACTIVE = text("status IN ('pending', 'sending')")
_UNSENT = text("status IN ('pending', 'sending', 'failed')")


class InboundMessage(Base):
    """Every chat message the bot accepted, keyed so a platform's re-delivery is recognised.

    Message ids are unique only within one organisation (two corps can send the same msgid), so the
    key is (platform, org_key, msg_id), org_key being the organisation the message is bound to.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("platform", "org_key", "msg_id"),
        # Only the messages still waiting to be processed: a few rows however long the table's history.
        Index("ix_inbound_messages_waiting", "received_at", postgresql_where=_WAITING, sqlite_where=_WAITING),
        Index("ix_inbound_messages_sign", "sign"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    msg_id: Mapped[str] = mapped_column(String(191))
    org_key: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Acknowledged-then-processed messages (DingTalk): the payload waits here with status "received"
    # until the command's transaction marks it "done" together with its effects. Messages handled
    # synchronously (console, WeCom) are recorded "done" at once, without a payload.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="done", server_default="done")
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Recovery lease: a replica that picked a stale "received" row up holds it until then.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # A DingTalk robot callback's `sign` header and when its (timestamp, sign) pair stops carrying new
    # msgIds (storage.inbound: the signature does not cover the body, so a late pair is a replay).
    sign: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sign_fresh_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OutboxMessage(Base):
    """A message the bot decided to send, committed with the change that caused it.

    `destination` is a small JSON document an adapter understands (group webhook key, chat id, user
    ids, response_url); `body` is the neutral message (text with `<@id>` markers, title, names).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        # Rows still to send (or given up on), and each destination's queue: partial, so claims and
        # backlog scrapes read what waits, never the sent history nor its dead row versions.
        Index("ix_outbox_unsent", "status", "next_attempt_at", postgresql_where=_UNSENT, sqlite_where=_UNSENT),
        Index("ix_outbox_active_dest", "dest_key", "id", postgresql_where=_ACTIVE, sqlite_where=_ACTIVE),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), nullable=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), nullable=True)
    platform: Mapped[str] = mapped_column(String(16))
    dest_key: Mapped[str] = mapped_column(String(255))
    destination: Mapped[dict[str, Any]] = mapped_column(JSON)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    dedup_key: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True)
    status: Mapped[str] = mapped_column(String(8), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SendWindow(Base):
    """The sends of the last minute to one rate-limited target (a robot, a group, an app member), shared
    by every worker on the database.

    `sent` holds the epoch seconds of the sends still inside the window; `version` makes each update a
    compare-and-swap, so two replicas can never both take the 20th slot (storage.send_windows).
    """

    __tablename__ = "send_windows"

    limit_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    sent: Mapped[list[float]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)


# --------------------------------------------------------------------------- scheduled pushes


class JobFiring(Base):
    """One scheduled firing of a job for a team and time slot.

    The unique key is the exactly-once guarantee across replicas and restarts: it is inserted in the
    same transaction that enqueues the firing's outbox messages, so whichever replica inserts it first
    sends, and every other one finds the key taken.
    """

    __tablename__ = "job_firings"
    __table_args__ = (UniqueConstraint("job", "team_id", "slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    job: Mapped[str] = mapped_column(String(32))
    slot: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    messages: Mapped[int] = mapped_column(Integer, default=0)


class Notice(Base):
    """A once-only notice about one thing (a pool warning for one idle stretch, a help escalation).

    `ref` distinguishes repeats that deserve a new notice (the customer's last activity that the
    warning was about), so unique (kind, entity_id, ref) makes each one go out once.
    """

    __tablename__ = "notices"
    __table_args__ = (UniqueConstraint("kind", "entity_id", "ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    kind: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[int] = mapped_column(Integer)
    ref: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChartImage(Base):
    """A rendered chart (the retro's weekly trend), served read-only at `/charts/<id>.png` for platforms
    that show an image only from a URL (DingTalk markdown). The id is a random token — the only way to
    reach a team's numbers, so it is unguessable and never listed; images go with the housekeeping."""

    __tablename__ = "chart_images"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    png: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)

"""Helpers shared by the scheduled-push tests: find the team, read the outbox, fire a job."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from bot.delivery import OutgoingMessage
from bot.messages import render_mentions
from schedules.firing import FiringResult, fire
from storage.database import Database
from storage.models import OutboxMessage, Team


async def team_id(db: Database, name: str = "销售一组") -> int:
    async with db.session() as s:
        return (await s.execute(select(Team.id).where(Team.name == name))).scalar_one()


async def outbox(db: Database) -> list[OutboxMessage]:
    async with db.session() as s:
        return list((await s.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars().all())


def _rendered(message: OutgoingMessage) -> str:
    return render_mentions(message.text, lambda uid: f"@{message.names.get(uid, uid)}")


def plain(body: dict) -> str:
    return _rendered(OutgoingMessage.from_json(body))


async def run_job(db: Database, job: str, now: datetime, team: str = "销售一组", **kwargs) -> FiringResult:  # type: ignore[no-untyped-def]
    return await fire(db, await team_id(db, team), job, now, **kwargs)


def texts(result: FiringResult) -> list[str]:
    return [_rendered(push.message) for push in result.pushes]

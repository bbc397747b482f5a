"""Help requests (求助 / 接 / 解决): numbered per team, taken by one helper, resolved or reopened.

Two helpers taking one request at once are decided by a conditional UPDATE on its status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from storage.models import Customer, HelpRequest, Member, Team
from storage.scope import StoreBase
from storage.sql import rowcount


@dataclass
class HelpView:
    request: HelpRequest
    requester: Member
    helper: Member | None
    customer: Customer | None


class HelpRequestQueries(StoreBase):
    async def open_help_request(self, content: str, customer: Customer | None, now: datetime) -> HelpRequest:
        number = (
            await self.session.execute(
                update(Team)
                .where(Team.id == self.team.id, Team.org_id == self.org.id)
                .values(help_seq=Team.help_seq + 1)
                .returning(Team.help_seq)
            )
        ).scalar_one()
        request = HelpRequest(
            org_id=self.org.id,
            team_id=self.team.id,
            number=number,
            customer_id=customer.id if customer else None,
            requester_id=self.actor.id,
            content=content,
            status="open",
            created_at=now,
        )
        self.session.add(request)
        await self.session.flush()
        await self.audit("ask", "help_request", request.id, None, {"number": number, "content": content}, now)
        return request

    async def help_request(self, number: int) -> HelpView | None:
        req = (
            await self.session.execute(
                select(HelpRequest).where(
                    HelpRequest.org_id == self.org.id, HelpRequest.team_id == self.team.id, HelpRequest.number == number
                )
            )
        ).scalar_one_or_none()
        if req is None:
            return None
        return (await self._help_views([req]))[0]

    async def _help_views(self, requests: Sequence[HelpRequest]) -> list[HelpView]:
        member_ids = [r.requester_id for r in requests] + [r.helper_id for r in requests if r.helper_id]
        members = await self.members_by_id(member_ids)
        customer_ids = {r.customer_id for r in requests if r.customer_id}
        customers: dict[int, Customer] = {}
        if customer_ids:
            rows = await self.session.execute(self.team_customers().where(Customer.id.in_(customer_ids)))
            customers = {c.id: c for c in rows.scalars().all()}
        return [
            HelpView(
                r,
                members[r.requester_id],
                members.get(r.helper_id) if r.helper_id else None,
                customers.get(r.customer_id) if r.customer_id else None,
            )
            for r in requests
        ]

    async def take_help_request(self, request: HelpRequest, now: datetime) -> bool:
        """Atomically take an open request; False when someone else got there first."""
        result = await self.session.execute(
            update(HelpRequest)
            .where(HelpRequest.id == request.id, HelpRequest.status == "open")
            .values(status="taken", helper_id=self.actor.id, taken_at=now)
            .execution_options(synchronize_session=False)
        )
        await self.session.refresh(request)
        if rowcount(result) != 1:
            return False
        after = {"status": "taken", "helper": self.actor.id}
        await self.audit("take", "help_request", request.id, {"status": "open"}, after, now)
        return True

    async def resolve_help_request(self, request: HelpRequest, note: str | None, now: datetime) -> None:
        before = {"status": request.status}
        request.status = "resolved"
        request.resolution = note
        request.resolved_at = now
        await self.audit("resolve", "help_request", request.id, before, {"status": "resolved", "note": note}, now)

    async def reopen_help_request(self, request: HelpRequest, reason: str | None, now: datetime) -> None:
        """Back to work: "taken" when someone had taken it (they stay the helper), otherwise "open"."""
        before = {"status": request.status, "note": request.resolution}
        request.status = "taken" if request.helper_id else "open"
        request.resolution = None
        request.resolved_at = None
        after = {"status": request.status, "reason": reason}
        await self.audit("reopen", "help_request", request.id, before, after, now)

    async def open_help_requests(self) -> list[HelpView]:
        rows = await self.session.execute(
            select(HelpRequest)
            .where(
                HelpRequest.org_id == self.org.id,
                HelpRequest.team_id == self.team.id,
                HelpRequest.status.in_(("open", "taken")),
            )
            .order_by(HelpRequest.number)
        )
        return await self._help_views(list(rows.scalars().all()))

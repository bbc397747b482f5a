"""Queuing a message in the unit of work (the transactional outbox): it commits or rolls back with the
command that produced it, and `storage.outbox_queue` hands it to a deliverer afterwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage import deferred
from storage.models import OutboxMessage
from storage.scope import StoreBase
from storage.sql import insert_for, rowcount, table_of

_outbox = table_of(OutboxMessage)


class OutboxQueries(StoreBase):
    async def enqueue(
        self,
        *,
        platform: str,
        destination: dict[str, Any],
        dest_key: str,
        body: dict[str, Any],
        now: datetime,
        dedup_key: str | None = None,
        not_before: datetime | None = None,
    ) -> bool:
        """Queue a message in this transaction; False if `dedup_key` was already queued. `not_before` holds
        it back (a picture that must follow a text answered outside the outbox)."""
        scope = self._scope
        values = {
            "org_id": scope.org.id if scope else None,
            "team_id": scope.team.id if scope else None,
            "platform": platform,
            "dest_key": dest_key,
            "destination": destination,
            "body": body,
            "dedup_key": dedup_key,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": not_before or now,
            "created_at": now,
        }
        # A Core INSERT with the values as parameters of one prebuilt statement: no ORM object, no
        # unit-of-work flush, no RETURNING of the id, and a statement the compiled cache and asyncpg's
        # prepared-statement cache both recognise (issue #5: this was ~1–2.8 ms a message on PG).
        # With a dedup_key, a repeated key inserts nothing.
        # Without a dedup_key nothing is read back: the row waits for the end of the unit of work and goes
        # with the others of the batch in one round trip (storage.deferred).
        if dedup_key is None:
            deferred.defer(self.session, deferred.deferral_safe(insert_for(self.dialect, _outbox)), values)
            self.enqueued += 1
            self.enqueued_keys.add(dest_key)
            return True
        stmt = insert_for(self.dialect, _outbox, ("dedup_key",))
        result = await self.session.execute(stmt, values)
        added = bool(rowcount(result))
        if added:
            self.enqueued += 1
            self.enqueued_keys.add(dest_key)
        return added

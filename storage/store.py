"""Store: the product's vocabulary over SQL, and the only place that speaks it.

A Store is one unit of work (one transaction, `Database.transaction()` yields it), scoped by `bind()`
to one organisation, team and acting member (storage.scope). Its methods live in one query module per
area, each a mixin of `StoreBase`; `Store` is their sum, so `store.claim_customer(...)` reads the same
wherever it is called from:

* storage.tenancy — binding, organisations, teams, members, roles, team settings
* storage.customers — claim, release, transfer, collaborators, search, pool, detail
* storage.followups — follow-ups
* storage.help_requests — help requests
* storage.inbound — the inbound log (dedup, queue, finish, recovery)
* storage.outbox — queuing a message in the transaction

Races that matter (two reps claiming one customer, a platform delivering a message twice) are decided
by unique constraints and conditional updates in the database, never by Python-side locks, because
several bot replicas may share one PostgreSQL database.
"""

from __future__ import annotations

from storage.customers import CustomerQueries
from storage.followups import FollowUpQueries
from storage.help_requests import HelpRequestQueries, HelpView
from storage.inbound import InboundQueries
from storage.outbox import OutboxQueries
from storage.scope import NoTeamYet
from storage.tenancy import TenancyQueries

# Handlers and the router import these two with the Store; the result types live with their area.
__all__ = ["HelpView", "NoTeamYet", "Store"]


class Store(TenancyQueries, CustomerQueries, FollowUpQueries, HelpRequestQueries, InboundQueries, OutboxQueries):
    """One unit of work: every area's queries over one session and one scope."""

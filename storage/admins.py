"""Who SALESBOT_ADMINS makes an admin of an organisation.

The list is process configuration, not a database row, yet every place that tells admins from reps
needs it: the role a message binds with, the manager numbers (admins are not counted as reps), the
member list, who hears of a broken destination or of missing holiday data. It lives here, below
bot/, so that storage can apply it wherever it reads the `is_admin` flag.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1024)
def admin_ids_for(admins: tuple[str, ...], org_key: str) -> frozenset[str]:
    """The user ids SALESBOT_ADMINS makes admins of organisation `org_key` (a corp id, "console").

    A bare id counts in every organisation; `<corp id>:<user id>` only in that one. With several
    corps, user ids are chosen per corp and may collide, hence the qualified form. Worked out once per
    list and organisation: every message's binding asks.
    """
    ids: set[str] = set()
    for entry in admins:
        org, sep, user = entry.partition(":")
        if not sep:
            ids.add(entry)
        elif org == org_key and user:
            ids.add(user)
    return frozenset(ids)

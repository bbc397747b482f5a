"""Signed links to the web board (`看板 链接`): the token, its signing secret, and revocation.

A token is `<payload>.<mac>`: the payload is base64url JSON naming the organisation, team, requester,
expiry and the team's link generation; the mac is HMAC-SHA256 over the payload with the board secret.
Both the handler (which makes links) and the web board in bot/ (which checks them) use this module, so
it sits in storage — the layer both may import — and its token functions are pure.

The secret is `SALESBOT_BOARD_SECRET` when set; otherwise a random secret is generated once per
organisation and kept in `organisations.board_secret` (first writer wins), so every process and replica
agrees. `看板 链接 撤销` bumps the team's generation (team settings): every token made before carries an
older generation and is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from storage.models import Organisation
from storage.store import Store
from storage.team_settings import BOARD_LINK_GENERATION, board_link_generation

DEFAULT_DAYS = 7
MAX_DAYS = 90


@dataclass(frozen=True)
class BoardConfig:
    """What the process was configured with: where the board is reached from outside, and its secret
    (None: use the generated one). `bot.assembly` fills it from the settings; handlers read it from the Store."""

    public_url: str | None = None
    secret: str | None = None


@dataclass(frozen=True)
class BoardClaims:
    """What a valid token says: whose board it opens, for whom, until when, in which generation."""

    org_id: int
    team_id: int
    member_id: int
    expires: datetime
    generation: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode("utf-8"), payload.encode("ascii"), hashlib.sha256).digest())


def sign_token(secret: str, claims: BoardClaims) -> str:
    body = {"o": claims.org_id, "t": claims.team_id, "m": claims.member_id,
            "e": int(claims.expires.timestamp()), "g": claims.generation}
    payload = _b64(json.dumps(body, separators=(",", ":")).encode("utf-8"))
    return f"{payload}.{_mac(secret, payload)}"


def token_org(token: str) -> int | None:
    """The organisation a token names, unverified: only to find the key its mac is checked with."""
    try:
        org_id = int(json.loads(_unb64(token.partition(".")[0]))["o"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    return org_id if 0 < org_id < 2**31 else None  # a database integer, or nothing to look up


def read_token(secret: str, token: str) -> BoardClaims | None:
    """The claims of a token whose mac is right (compared in constant time), else None.

    Expiry and generation are the caller's to check (`token_problem`): they need the clock and the database.
    """
    payload, dot, mac = token.partition(".")
    if not dot or not payload or len(token) > 512:
        return None
    if not hmac.compare_digest(_mac(secret, payload).encode("ascii"), mac.encode("ascii", "replace")):
        return None
    try:
        body = json.loads(_unb64(payload))
        return BoardClaims(int(body["o"]), int(body["t"]), int(body["m"]),
                           datetime.fromtimestamp(int(body["e"]), UTC), int(body["g"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None


def mask_token(path: str) -> str:
    """A request path with the token replaced, for logs: `/board/eyJv….abc/customers` → `/board/***/customers`."""
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "board":
        parts[2] = "***"
    return "/".join(parts)


async def signing_secret(store: Store, configured: str | None, org_id: int, *, create: bool = True) -> str | None:
    """The configured secret, or the organisation's generated one (made on first use unless `create` is
    False — the pages only read — the same for every process: the first writer wins). None when there is
    no such organisation or no secret yet."""
    if configured:
        return configured
    found = await store.session.execute(select(Organisation.board_secret).where(Organisation.id == org_id))
    row = found.first()
    if row is None:
        return None
    if row[0] or not create:
        return str(row[0]) if row[0] else None
    await store.session.execute(
        update(Organisation)
        .where(Organisation.id == org_id, Organisation.board_secret.is_(None))
        .values(board_secret=secrets.token_urlsafe(32))
    )
    value = await store.session.scalar(select(Organisation.board_secret).where(Organisation.id == org_id))
    assert value is not None  # written just now, or by whoever won the race
    return str(value)


async def revoke_links(store: Store, now: datetime) -> int:
    """Revoke every link of the bound team (audit-logged with the settings change); returns the new generation."""
    generation = board_link_generation(store.team.settings) + 1
    await store.update_team_settings({BOARD_LINK_GENERATION: generation}, now)
    return generation


async def make_token(store: Store, configured_secret: str | None, days: int, now: datetime) -> tuple[str, datetime]:
    """A token for the bound team and acting member, valid for `days`; returns it with its expiry."""
    expires = (now + timedelta(days=days)).replace(microsecond=0)
    claims = BoardClaims(store.org.id, store.team.id, store.actor.id, expires,
                         board_link_generation(store.team.settings))
    secret = await signing_secret(store, configured_secret, store.org.id)
    assert secret is not None  # the bound organisation exists
    return sign_token(secret, claims), expires


def token_problem(claims: BoardClaims | None, generation: int | None, now: datetime) -> str | None:
    """Why a token opens nothing (None: it is good). `generation` is the team's current one (None: no team)."""
    if claims is None:
        return "invalid"
    if claims.expires <= now:
        return "expired"
    if generation is None or claims.generation != generation:
        return "revoked"
    return None

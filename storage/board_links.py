"""Signed links to the web board (`看板 链接`): the token, its signing secret, and revocation.

A token is `<payload>.<mac>`: the payload is base64url JSON naming the organisation, team, requester,
expiry and the team's link generation; the mac is HMAC-SHA256 over the payload with the board secret.
Both the handler (which makes links) and the web board in bot/ (which checks them) use this module, so
it sits in storage — the layer both may import — and its token functions are pure.

The secret is `SALESBOT_BOARD_SECRET` when set; otherwise one random secret is generated once and kept
in `app_secrets` (first writer wins), so every process and replica agrees. `看板 链接 撤销` bumps the
team's generation: every token made before carries an older generation and is refused.
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

from storage.models import AppSecret, BoardLinks
from storage.sql import dialect_of, insert_for, table_of
from storage.store import Store

SECRET_NAME = "board_link_secret"
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


async def signing_secret(store: Store, configured: str | None, now: datetime) -> str:
    """The configured secret, or the generated one (made on first use, the same for every process)."""
    if configured:
        return configured
    found = await store.session.scalar(select(AppSecret.value).where(AppSecret.name == SECRET_NAME))
    if found:
        return found
    stmt = insert_for(dialect_of(store.session), table_of(AppSecret), ("name",))
    await store.session.execute(stmt, {"name": SECRET_NAME, "value": secrets.token_urlsafe(32), "created_at": now})
    value = await store.session.scalar(select(AppSecret.value).where(AppSecret.name == SECRET_NAME))
    assert value is not None  # written just now, or by whoever won the race
    return value


async def link_generation(store: Store, team_id: int) -> int:
    """The team's current generation: tokens of any other generation are revoked."""
    found = await store.session.scalar(select(BoardLinks.generation).where(BoardLinks.team_id == team_id))
    return int(found or 0)


async def revoke_links(store: Store, now: datetime) -> int:
    """Revoke every link of the bound team (audit-logged); returns the new generation."""
    team_id = store.team.id
    stmt = insert_for(dialect_of(store.session), table_of(BoardLinks), ("team_id",))
    await store.session.execute(stmt, {"team_id": team_id, "generation": 0})
    await store.session.execute(
        update(BoardLinks)
        .where(BoardLinks.team_id == team_id)
        .values(generation=BoardLinks.generation + 1, revoked_at=now, revoked_by_id=store.actor.id)
    )
    generation = await link_generation(store, team_id)
    await store.audit("revoke_board_links", "team", team_id, None, {"generation": generation}, now)
    return generation


async def make_token(store: Store, configured_secret: str | None, days: int, now: datetime) -> tuple[str, datetime]:
    """A token for the bound team and acting member, valid for `days`; returns it with its expiry."""
    expires = (now + timedelta(days=days)).replace(microsecond=0)
    claims = BoardClaims(store.org.id, store.team.id, store.actor.id, expires,
                         await link_generation(store, store.team.id))
    return sign_token(await signing_secret(store, configured_secret, now), claims), expires


def token_problem(claims: BoardClaims | None, generation: int | None, now: datetime) -> str | None:
    """Why a token opens nothing (None: it is good). `generation` is the team's current one (None: no team)."""
    if claims is None:
        return "invalid"
    if claims.expires <= now:
        return "expired"
    if generation is None or claims.generation != generation:
        return "revoked"
    return None

"""WeCom sending: render neutral messages as WeCom markdown and deliver them (outbox `Deliverer`).

Destinations (`kind`):

* ``webhook``      ``{"kind": "webhook", "key": …}`` — the team's group robot; delegated to the outbox
                   branch's `WeComWebhookDeliverer` (20/min per robot, 45009, 93000…).
* ``team``         ``{"kind": "team", "team_id": …}`` — the team's webhook key is looked up at send time.
* ``member``       ``{"kind": "member", "user_ids": [...], "corp_id": …}`` — app ``message/send`` with that
                   corp's cached token and agent id.
* ``response_url`` ``{"kind": "response_url", "url": …[, "fallback": [destination, …]]}`` — the AI bot's one-shot
                   reply URL (1 h); rate-limited answers are retried, and once the URL is spent or expired the
                   reply goes to the first usable ``fallback`` (the group's ``team``, then the asker's ``member``).
* ``ws_chat``      ``{"kind": "ws_chat", "chatid": …[, "corp_id": …]}`` — ``aibot_send_msg`` over that corp's long
  connection (the default corp's without ``corp_id``).

All HTTP goes through one aiohttp session; wechatpy's blocking clients are never used here.

Several corps (`[[wecom.corps]]`): tokens are per corp and app, and user ids are only unique within a
corp, so a direct message must go through its own corp's app. Rows carry ``corp_id`` in the destination
when the reply sink queued them; rows queued elsewhere (schedules, broken-push notices, rows from before
multi-corp) get it from their organisation at send time (`scope_destination`, called by the worker), and
anything else goes through the default corp (the SALESBOT_WECOM_* settings). Group webhooks need no corp.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from bot.adapters.common import platform_request, with_fresh_token
from bot.adapters.tokens import TokenCache
from bot.delivery import Deliverer, OutgoingMessage, PermanentFailure, RateLimit, RetryLater
from bot.messages import render_mentions
from storage.scope import NotBound
from storage.team_settings import webhook_key

if TYPE_CHECKING:
    from bot.messages import IncomingMessage
    from bot.settings import WeComCorp
    from storage.database import Database
    from storage.store import Store

log = logging.getLogger("salesbot.wecom.send")

PLATFORM = "wecom"

MARKDOWN_MAX_BYTES = 4096  # webhook markdown, response_url (§2a, §1a)
APP_MAX_BYTES = 2048  # message/send text and markdown (§2c)
TEXT_MAX_BYTES = 2048
STREAM_MAX_BYTES = 20480  # passive stream content

TOKEN_INVALID = {40014, 42001, 40001}
TRANSIENT = {-1, 45009, 45033}
WEBHOOK_BROKEN = {93000, 93004, 93008}

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10)


def render_markdown(message: OutgoingMessage, *, native_mentions: bool) -> str:
    """WeCom markdown (§2e). Group-robot markdown mentions natively with `<@userid>`; app messages and
    AI-bot replies cannot, so they show `@名字`."""
    if native_mentions:
        text = message.text
    else:
        text = render_mentions(message.text, lambda uid: f"@{message.names.get(uid, uid)}")
    if message.title:
        text = f"**{message.title}**\n{text}"
    return text


def render_plain(message: OutgoingMessage) -> str:
    text = render_mentions(message.text, lambda uid: f"@{message.names.get(uid, uid)}")
    return f"{message.title}\n{text}" if message.title else text


def truncate_bytes(text: str, max_bytes: int, note: str = "\n…（内容过长，已截断）") -> str:
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    budget = max_bytes - len(note.encode("utf-8"))
    out = text.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return out + note


def key_fingerprint(key: str) -> str:
    """A stable, non-secret name for a webhook key (rate-limit and ordering key)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def dest_key(destination: dict[str, Any]) -> str:
    kind = destination.get("kind")
    if kind == "webhook":
        return f"wecom:webhook:{key_fingerprint(str(destination['key']))}"
    if kind == "team":
        return f"wecom:team:{destination['team_id']}"
    if kind == "member":
        # Same user ids in two corps are two people: keep their queues (and order) apart.
        corp = destination.get("corp_id")
        return ("wecom:member:" if not corp else f"wecom:{corp}:member:") + "|".join(destination.get("user_ids") or [])
    if kind == "response_url":
        return f"wecom:response_url:{hashlib.sha256(str(destination['url']).encode()).hexdigest()[:16]}"
    if kind == "ws_chat":
        corp = destination.get("corp_id")
        return ("wecom:ws_chat:" if not corp else f"wecom:{corp}:ws_chat:") + str(destination["chatid"])
    return f"wecom:{kind}"


def response_url_destination(
    store: Store, msg: IncomingMessage, url: str, corp_id: str | None, *, can_send_direct: bool
) -> dict[str, Any]:
    """Where a late reply to `msg` goes: its one-shot `response_url`, and — should that be spent or expired
    when the row is sent — the same chat another way: the group's team push (its robot webhook, or the long
    connection), then the asker through the app's message/send (when the corp has an app secret)."""
    corp = {"corp_id": corp_id} if corp_id else {}
    chain: list[dict[str, Any]] = []
    if msg.chat_type == "group":
        # Queued outside the command's scope (a slow commit) the team is unknown; the asker is still reachable.
        with contextlib.suppress(NotBound):
            chain.append({"kind": "team", "team_id": store.team.id, **corp})
    if can_send_direct and msg.user_id:
        chain.append({"kind": "member", "user_ids": [msg.user_id], **corp})
    destination: dict[str, Any] = {"kind": "response_url", "url": url, **corp}
    if chain:
        destination["fallback"] = chain
    return destination


class LongConnection(Protocol):
    """What sending needs of a long connection (`bot.adapters.wecom_ws.LongConnection`)."""

    @property
    def connected(self) -> bool: ...

    async def send_markdown(self, chatid: str, content: str) -> None: ...


class CorpApp:
    """One corp's self-built app as a sender: credentials, agent id and its own access-token cache.

    A token is valid for one corp secret only (§2b), so every corp refreshes (single-flight) on its own.
    """

    def __init__(
        self,
        deliverer: WeComDeliverer,
        corp_id: str | None,
        app_secret: str | None,
        agent_id: int | None,
        tokens: TokenCache | None = None,
        api_base: str | None = None,
    ) -> None:
        self.deliverer = deliverer
        self.api_base = (api_base or deliverer.api_base).rstrip("/")
        self.corp_id = corp_id
        self.app_secret = app_secret
        self.agent_id = agent_id
        self.tokens = tokens or TokenCache(self.fetch_token)

    async def fetch_token(self) -> tuple[str, float]:
        if not (self.corp_id and self.app_secret):
            raise PermanentFailure(f"app secret / corp id not configured for corp {self.corp_id or '(default)'}")
        data = await self.deliverer._call(
            "GET",
            f"{self.api_base}/cgi-bin/gettoken",
            what="wecom gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.app_secret},
        )
        errcode = data.get("errcode", 0)
        if errcode != 0 or not data.get("access_token"):
            if errcode in TRANSIENT:
                raise RetryLater(f"gettoken errcode {errcode}", after=60 if errcode == 45009 else None)
            raise PermanentFailure(f"gettoken errcode {errcode} (corp {self.corp_id})")
        return str(data["access_token"]), float(data.get("expires_in", 7200))


class WeComDeliverer:
    """The outbox's deliverer for platform "wecom"; dispatches on `destination["kind"]`, and for direct
    messages on `destination["corp_id"]` (the default corp when absent)."""

    platform = PLATFORM

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_base: str,
        corp_id: str | None = None,
        app_secret: str | None = None,
        agent_id: int | None = None,
        database: Database | None = None,
        webhook: Deliverer | None = None,
        ws: LongConnection | None = None,
        ws_by_corp: dict[str, LongConnection] | None = None,
        tokens: TokenCache | None = None,
        corps: Iterable[WeComCorp] = (),
    ) -> None:
        self.session = session
        self.api_base = api_base.rstrip("/")
        self.database = database
        self.ws = ws
        self.ws_by_corp = dict(ws_by_corp or {})
        self._webhook = webhook
        self.default_app = CorpApp(self, corp_id, app_secret, agent_id, tokens)
        # Every corp reachable by id, the default one too when it has an id.
        self.apps: dict[str, CorpApp] = {corp_id: self.default_app} if corp_id else {}
        for corp in corps:
            self.apps[corp.corp_id] = CorpApp(
                self, corp.corp_id, corp.app_secret, corp.agent_id, api_base=corp.api_base
            )

    # The default corp's values, as before several corps existed.
    @property
    def corp_id(self) -> str | None:
        return self.default_app.corp_id

    @property
    def agent_id(self) -> int | None:
        return self.default_app.agent_id

    @property
    def tokens(self) -> TokenCache:
        return self.default_app.tokens

    def app_for(self, destination: dict[str, Any]) -> CorpApp:
        """The corp app a destination belongs to. A corp id we do not serve (removed from the config) is
        never sent with another corp's token: the same user id there may be somebody else."""
        corp = destination.get("corp_id")
        if not corp:
            return self.default_app
        app = self.apps.get(str(corp))
        if app is not None:
            return app
        if self.default_app.corp_id is None:
            # The default corp without SALESBOT_WECOM_CORP_ID is keyed by its aibotid: the same corp.
            return self.default_app
        raise PermanentFailure(f"wecom corp {corp} is not configured")

    async def scope_destination(self, row_id: int, destination: dict[str, Any]) -> dict[str, Any]:
        """Called by the outbox worker before sending: a direct message queued without `corp_id`
        (schedules, notices, older rows) takes the corp of the organisation the row was queued for."""
        if destination.get("kind") != "member" or destination.get("corp_id") or self.database is None:
            return destination
        if all(app is self.default_app for app in self.apps.values()):
            return destination  # one corp: nothing to choose, no query
        corp = await self.database.outbox.org_key_of_row(row_id, PLATFORM)
        if corp is not None and corp in self.apps:
            return {**destination, "corp_id": corp}
        return destination

    # ------------------------------------------------------------------ Deliverer protocol
    def limit_key(self, destination: dict[str, Any]) -> str:
        if destination.get("kind") == "member":
            app = self.app_for(destination)
            return f"wecom:app:{app.corp_id}:{app.agent_id}:" + "|".join(destination.get("user_ids") or [])
        return dest_key(destination)

    def rate_limit(self, destination: dict[str, Any]) -> RateLimit | None:
        kind = destination.get("kind")
        if kind in ("webhook", "team"):
            return RateLimit(20, 60.0)  # per robot, §2a
        if kind == "member":
            return RateLimit(30, 60.0)  # per app per member, excess silently dropped, §2c
        return None

    def max_bytes(self, destination: dict[str, Any]) -> int:
        return APP_MAX_BYTES if destination.get("kind") == "member" else MARKDOWN_MAX_BYTES

    async def deliver(self, destination: dict[str, Any], message: OutgoingMessage) -> None:
        kind = destination.get("kind")
        if kind == "webhook":
            await self.webhook.deliver(destination, message)
        elif kind == "team":
            target = await self._team_target(destination)
            if target["kind"] == "webhook":
                await self.webhook.deliver(target, message)
            elif message.image is None:
                await self._send_ws(target, message)
        elif message.image is not None:
            # Pictures go through the group robot only (base64 + md5); the reports they belong to stand as text.
            log.info("wecom: picture %s not sent to a %s destination (group robot only)", message.image.image_id, kind)
        elif kind == "member":
            await self._send_app(destination, message)
        elif kind == "response_url":
            await self._send_response_url(destination, message)
        elif kind == "ws_chat":
            await self._send_ws(destination, message)
        else:
            raise PermanentFailure(f"unknown wecom destination kind {kind!r}")

    # ------------------------------------------------------------------ webhook (outbox branch)
    @property
    def webhook(self) -> Deliverer:
        if self._webhook is None:
            try:
                from bot.adapters.wecom_webhook import WeComWebhookDeliverer
            except ImportError:
                raise RetryLater("group webhook deliverer not installed") from None
            self._webhook = WeComWebhookDeliverer(self.session, self.api_base)
        return self._webhook

    async def _team_target(self, destination: dict[str, Any]) -> dict[str, Any]:
        """How a push reaches a team's group: its robot webhook (`设置 推送`) when set, else — in
        long-connection mode, for a group of the corp the connection serves — `aibot_send_msg` to the
        group's chat id (PLATFORMS.md §1a: the way to push into groups the bot is in)."""
        if self.database is None:
            raise PermanentFailure("team destination needs the database")
        found = await self.database.outbox.team_push_target(int(destination["team_id"]))
        if found is None:
            raise PermanentFailure("team no longer exists")
        corp_key, chat_id, settings = found
        key = webhook_key(settings)
        if key:
            return {"kind": "webhook", "key": key}
        if self._ws_for(corp_key) is not None:
            return {"kind": "ws_chat", "chatid": chat_id, "corp_id": corp_key}
        raise PermanentFailure("team has no group webhook (设置 推送 <webhook地址>)")

    def _ws_for(self, corp_key: str | None) -> LongConnection | None:
        """The long connection of a corp: its own, or the default corp's (keyed by its CorpID, or — set up
        without one — by the bot id, which no configured corp has)."""
        if corp_key and corp_key in self.ws_by_corp:
            return self.ws_by_corp[corp_key]
        default = self.default_app.corp_id
        if not corp_key or (corp_key == default if default else corp_key not in self.apps):
            return self.ws
        return None

    # ------------------------------------------------------------------ app message/send
    async def _send_app(self, destination: dict[str, Any], message: OutgoingMessage) -> None:
        users = [str(u) for u in destination.get("user_ids") or [] if u]
        if not users:
            raise PermanentFailure("member destination without user ids")
        app = self.app_for(destination)
        if app.agent_id is None:
            raise PermanentFailure(f"agent id not configured for corp {app.corp_id or '(default)'}")
        body = {
            "touser": "|".join(users),
            "msgtype": "markdown",
            "agentid": app.agent_id,
            "markdown": {"content": truncate_bytes(render_markdown(message, native_mentions=False), APP_MAX_BYTES)},
        }

        async def send(token: str) -> dict[str, Any]:
            url = f"{app.api_base}/cgi-bin/message/send"
            return await self._call("POST", url, what="wecom message/send", params={"access_token": token}, json=body)

        # WeCom may revoke a token before expires_in; refresh once and resend.
        data = await with_fresh_token(app.tokens, send, lambda answer: answer.get("errcode", 0) in TOKEN_INVALID)
        errcode = data.get("errcode", 0)
        if errcode == 0:
            if data.get("invaliduser"):
                log.warning("message/send: some recipients invalid count=%d", len(str(data["invaliduser"]).split("|")))
            return
        if errcode in TRANSIENT:
            raise RetryLater(f"message/send errcode {errcode}", after=60 if errcode == 45009 else None)
        raise PermanentFailure(f"message/send errcode {errcode}")

    # ------------------------------------------------------------------ AI bot response_url
    async def _send_response_url(self, destination: dict[str, Any], message: OutgoingMessage) -> None:
        url = str(destination.get("url") or "")
        target, base = urlsplit(url), urlsplit(self.app_for(destination).api_base)
        # The URL came in a callback; never let it make the bot post to an arbitrary host.
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            raise PermanentFailure("response_url host does not match SALESBOT_WECOM_API_BASE")
        content = truncate_bytes(render_markdown(message, native_mentions=False), MARKDOWN_MAX_BYTES)
        body = {"msgtype": "markdown", "markdown": {"content": content}}
        data = await self._call("POST", url, what="wecom response_url", json=body)
        errcode = data.get("errcode", 0)
        if errcode == 0:
            return
        if errcode in TRANSIENT:
            # Rate limited or busy: the URL was not spent (only a successful post spends it). Back off as
            # message/send does; past its hour WeCom answers "expired" and the fallback below takes over.
            raise RetryLater(f"response_url errcode {errcode}", after=60 if errcode == 45009 else None)
        # One-shot and valid 1 h (§1a), with no documented errcode for either: any other answer means the
        # URL can no longer be used. The same chat or person is still reachable another way.
        await self._send_fallback(destination.get("fallback") or [], message, f"response_url errcode {errcode}")

    async def _send_fallback(self, chain: list[dict[str, Any]], message: OutgoingMessage, why: str) -> None:
        """Deliver through the first destination of `chain` that can take it (the asker's group, then the
        asker). A `RetryLater` from one of them retries the whole row: the spent URL answers the same error
        again without sending anything, so the reply still arrives once."""
        for index, fallback in enumerate(chain):
            try:
                await self.deliver(fallback, message)
            except PermanentFailure as err:
                if index == len(chain) - 1:
                    raise PermanentFailure(f"{why}; fallback {fallback.get('kind')}: {err.reason}") from None
                log.info("%s; fallback %s unusable (%s), trying the next", why, fallback.get("kind"), err.reason)
                continue
            log.info("%s; delivered through the fallback %s", why, fallback.get("kind"))
            return
        raise PermanentFailure(f"{why}; no fallback")

    # ------------------------------------------------------------------ long connection
    async def _send_ws(self, destination: dict[str, Any], message: OutgoingMessage) -> None:
        ws = self._ws_for(destination.get("corp_id"))
        if ws is None:
            raise PermanentFailure(f"no long connection for corp {destination.get('corp_id')}")
        if not ws.connected:
            raise RetryLater("long connection not established")
        content = truncate_bytes(render_markdown(message, native_mentions=True), MARKDOWN_MAX_BYTES)
        await ws.send_markdown(str(destination["chatid"]), content)

    # ------------------------------------------------------------------ HTTP
    async def _call(self, method: str, url: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        """One API call's JSON answer. A redirect is refused (`RedirectRefused`, permanent): it would carry the
        access token or the reply to another host."""
        try:
            async with platform_request(self.session, method, url, what=what, timeout=REQUEST_TIMEOUT,
                                        **kwargs) as resp:
                if resp.status >= 500:
                    raise RetryLater(f"HTTP {resp.status}")
                if resp.status != 200:
                    raise PermanentFailure(f"HTTP {resp.status}")
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise RetryLater(f"network error {type(err).__name__}") from None
        except ValueError:
            raise RetryLater("response is not JSON") from None
        if not isinstance(data, dict):
            raise RetryLater("response is not a JSON object")
        return data


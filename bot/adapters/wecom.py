"""WeCom (企业微信) adapter core: one organisation per corp, the reply sink, the reply budget, the component.

Two ways in (PLATFORMS.md §1), both received in `bot.adapters.wecom_receive`: ``/wecom/aibot`` (the
智能机器人, group @-mentions, passive encrypted ``stream`` answers or the one-shot ``response_url``) and
``/wecom/app`` (the self-built app, 1:1 only). Long-connection mode lives in `bot.adapters.wecom_ws`
and reuses the parsing and sink here. Sending is `bot.adapters.wecom_send`.

Several corps (`[[wecom.corps]]` in the TOML file) are served at ``/wecom/aibot/<corp_id>`` and
``/wecom/app/<corp_id>``: the AI bot's receiveid is "" so nothing in the payload tells the corp — the URL
configured in each corp's admin console does. Each corp has its own envelopes, token cache and agent id,
and is its own organisation (org_key = its CorpID). The SALESBOT_WECOM_* settings are the default corp,
also reachable at the plain ``/wecom/aibot`` and ``/wecom/app``. An unknown corp in the URL is a 404.
Each corp in long-connection mode has its own WebSocket (one per bot id).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from bot.adapters.common import Rejected, enqueue_split, string_field
from bot.adapters.wecom_receive import (
    CHAT_ID_MAX,
    MSG_ID_MAX,
    ORG_KEY_MAX,
    USER_ID_MAX,
    CorpEndpoint,
    ReplyBudget,
    WeComCallbacks,
    WeComEnvelope,
    aibot_text,
    combine,
    strip_bot_mention,
)
from bot.adapters.wecom_send import (
    MARKDOWN_MAX_BYTES,
    PLATFORM,
    WeComDeliverer,
    dest_key,
    response_url_destination,
    truncate_bytes,
)
from bot.adapters.wecom_ws import WeComLongConnection
from bot.app_keys import (
    DATABASE_KEY,
    DELIVERERS_KEY,
    HTTP_SESSION_KEY,
    LONG_SESSION_KEY,
    REPLY_SINKS_KEY,
    ROUTER_KEY,
    SETTINGS_KEY,
)
from bot.delivery import OutgoingMessage
from bot.messages import IncomingMessage, Reply
from bot.settings import Settings
from storage.database import Database
from storage.store import Store
from storage.team_settings import webhook_key

log = logging.getLogger("salesbot.wecom")
# How long a `复盘` picture waits behind its text: longer than the reply budget (1.5 s) the passive reply
# or the response_url row gets, so the robot's picture lands after the answer it illustrates.
PICTURE_AFTER_TEXT = timedelta(seconds=5)


class WeComAdapter:
    def __init__(self, settings: Settings, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.wall_clock = wall_clock
        s = settings
        self.default = CorpEndpoint.build(
            s.wecom_corp_id, s.wecom_aibot_token, s.wecom_aibot_aes_key, s.wecom_app_token, s.wecom_app_aes_key,
            s.wecom_app_secret,
        )
        # Corps by CorpID, for the /wecom/…/{corp_id} routes; the default corp too when it has an id.
        self.corps: dict[str, CorpEndpoint] = {s.wecom_corp_id: self.default} if s.wecom_corp_id else {}
        for corp in s.wecom_corps:
            self.corps[corp.corp_id] = CorpEndpoint.build(
                corp.corp_id, corp.aibot_token, corp.aibot_aes_key, corp.app_token, corp.app_aes_key, corp.app_secret
            )
        self.aibot: WeComEnvelope | None = self.default.aibot
        self.app: WeComEnvelope | None = self.default.app
        self.router: Any = None
        self.db: Any = None
        self.session: aiohttp.ClientSession | None = None
        self.deliverer: WeComDeliverer | None = None
        self.ws: Any = None  # the default corp's long connection
        self.ws_by_corp: dict[str, Any] = {}  # every long connection by the corp key its messages carry
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self, db: Database, router: Any, session: aiohttp.ClientSession,
                    long_session: aiohttp.ClientSession | None = None) -> None:
        """Open the long connections (on `long_session`, which refuses redirects) and the deliverer on the
        process's HTTP sessions (the app owns them)."""
        s = self.settings
        self.db, self.router = db, router
        self.session = session
        long_session = long_session or session
        if s.wecom_aibot_mode == "websocket":
            self.ws = WeComLongConnection(
                long_session, s.wecom_aibot_ws_url, s.wecom_aibot_bot_id or "", s.wecom_aibot_secret or "", self,
                corp=self.default,
            )
            if s.wecom_corp_id:
                self.ws_by_corp[s.wecom_corp_id] = self.ws
        for corp in s.wecom_corps:
            if corp.aibot_mode == "websocket":
                self.ws_by_corp[corp.corp_id] = WeComLongConnection(
                    long_session, corp.aibot_ws_url or s.wecom_aibot_ws_url, corp.aibot_bot_id or "",
                    corp.aibot_secret or "", self, corp=self.corps[corp.corp_id],
                )
        self.deliverer = WeComDeliverer(
            session,
            api_base=s.wecom_api_base,
            corp_id=s.wecom_corp_id,
            app_secret=s.wecom_app_secret,
            agent_id=s.wecom_agent_id,
            database=db,
            ws=self.ws,
            ws_by_corp=self.ws_by_corp,
            corps=s.wecom_corps,
        )
        for connection in self._connections():
            connection.start()

    def _connections(self) -> list[Any]:
        return list(dict.fromkeys([c for c in (self.ws, *self.ws_by_corp.values()) if c is not None]))

    async def stop(self) -> None:
        for connection in self._connections():
            await connection.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ mapping
    def org_key(self, payload: dict[str, Any] | None = None, corp: CorpEndpoint | None = None) -> str:
        """Each corp is its own organisation; a default corp without a CorpID is keyed by its aibotid."""
        corp = corp or self.default
        return corp.corp_id or string_field(payload or {}, "aibotid", ORG_KEY_MAX) or "wecom"

    def corp_of(self, msg: IncomingMessage) -> CorpEndpoint:
        return self.corps.get(str(msg.reply_context.get("corp_id") or "")) or self.default

    async def aibot_message(
        self, payload: dict[str, Any], budget: ReplyBudget, corp: CorpEndpoint | None = None, **context: Any
    ) -> IncomingMessage | None:
        """An AI-bot callback body (HTTP or long connection) as an IncomingMessage; None if not text.

        `corp` is the corp whose URL the callback came to (the long connection serves the default corp)."""
        corp = corp or self.default
        msg_id = string_field(payload, "msgid", MSG_ID_MAX)
        sender = payload.get("from") or {}
        if not isinstance(sender, dict):
            raise Rejected(400, "from is not an object")
        user_id = string_field(sender, "userid", USER_ID_MAX)
        if not msg_id or not user_id:
            raise Rejected(400, "callback lacks msgid or from.userid")
        text = aibot_text(payload)
        if text is None:
            return None
        chat_id = string_field(payload, "chatid", CHAT_ID_MAX)
        string_field(payload, "aibotid", ORG_KEY_MAX)  # the organisation of a default corp without a CorpID
        chat_type = "group" if payload.get("chattype") == "group" and chat_id else "single"
        org_key = self.org_key(payload, corp)
        if chat_type == "group":
            text = strip_bot_mention(text)
        else:
            chat_id = f"direct:{user_id}"  # the router scopes a 1:1 chat to the member's team
        return IncomingMessage(
            platform=PLATFORM,
            org_key=org_key,
            chat_id=str(chat_id),
            user_id=user_id,
            text=text,
            msg_id=msg_id,
            chat_type=chat_type,  # type: ignore[arg-type]
            reply_context={"source": "aibot", "budget": budget, "corp_id": corp.corp_id, **context},
        )

    # ------------------------------------------------------------------ reply sink
    async def reply_sink(self, store: Store, msg: IncomingMessage, replies: list[Reply], now: datetime) -> list[Reply]:
        """Inside the command's transaction: queue what must travel later, return what to answer inline."""
        budget: ReplyBudget = msg.reply_context.get("budget") or ReplyBudget()
        corp = self.corp_of(msg)
        inline: list[Reply] = []
        for reply in replies:
            if reply.image is not None:
                # A picture (the retro's chart) goes through the group robot only (base64 + md5), drawn at
                # delivery and held back PICTURE_AFTER_TEXT: the text is answered here within the reply
                # budget (or queued first on the response_url), so it arrives before. No robot: text alone.
                key = webhook_key(store.team.settings)
                if key:
                    await self.enqueue(store, {"kind": "webhook", "key": key}, OutgoingMessage.from_reply(reply), now,
                                       not_before=now + PICTURE_AFTER_TEXT)
                continue
            if reply.audience == "team" and msg.chat_type != "group":
                # From a 1:1 chat: announce in the team's group through its robot webhook. From the
                # group itself the answer is inline — same chat, no webhook quota spent.
                key = webhook_key(store.team.settings)
                destination = (
                    {"kind": "webhook", "key": key}
                    if key
                    else self._with_corp({"kind": "team", "team_id": store.team.id}, corp)
                )
                await self.enqueue(store, destination, OutgoingMessage.from_reply(reply), now)
                continue
            elif reply.audience == "direct" and not self._to_sender_only(msg, reply):
                # To someone else than the member talking 1:1 with the bot: the app's message/send.
                if corp.can_send_direct:
                    destination = self._with_corp({"kind": "member", "user_ids": list(reply.user_ids)}, corp)
                    await self.enqueue(store, destination, OutgoingMessage.from_reply(reply), now)
                else:
                    log.warning("direct message dropped: no app secret for corp %s msg_id=%s",
                                corp.corp_id, msg.msg_id)
                continue
            inline.append(reply)
        if inline and budget.late:
            await self.enqueue_late(store, msg, inline, now)
            return []
        budget.inline = True
        return inline

    @staticmethod
    def _to_sender_only(msg: IncomingMessage, reply: Reply) -> bool:
        """A direct reply only to the member talking 1:1 with the bot is answered inline."""
        return msg.chat_type == "single" and set(reply.user_ids) <= {msg.user_id}

    @staticmethod
    def _with_corp(destination: dict[str, Any], corp: CorpEndpoint) -> dict[str, Any]:
        """Name the corp whose app must send this (tokens, agent ids and user ids are per corp)."""
        return {**destination, "corp_id": corp.corp_id} if corp.corp_id else destination

    async def enqueue(
        self,
        store: Store,
        destination: dict[str, Any],
        message: OutgoingMessage,
        now: datetime,
        *,
        dedup: str | None = None,
        not_before: datetime | None = None,
    ) -> None:
        limit = (self.deliverer.max_bytes(destination) if self.deliverer else MARKDOWN_MAX_BYTES) - 64
        if message.title:
            limit -= len(message.title.encode("utf-8"))
        await enqueue_split(store, PLATFORM, destination, dest_key(destination), message, now, limit,
                            title_on_every_part=False, dedup=dedup, not_before=not_before)

    async def enqueue_late(self, store: Store, msg: IncomingMessage, replies: list[Reply], now: datetime) -> None:
        """Replies that missed the passive-reply window: response_url (one shot) or message/send."""
        message = combine(replies)
        url = msg.reply_context.get("response_url")
        dedup = f"wecom:late:{msg.org_key}:{msg.msg_id}"  # msgids are unique per corp only
        if url:
            # One-shot URL: one post, so one (truncated if need be) message.
            message = OutgoingMessage(truncate_bytes(message.text, MARKDOWN_MAX_BYTES - 64), None, message.names)
            corp = self.corp_of(msg)
            destination = response_url_destination(store, msg, url, corp.corp_id, can_send_direct=corp.can_send_direct)
            await self.enqueue(store, destination, message, now, dedup=dedup)
        elif self.corp_of(msg).can_send_direct:
            destination = self._with_corp({"kind": "member", "user_ids": [msg.user_id]}, self.corp_of(msg))
            await self.enqueue(store, destination, message, now, dedup=dedup)
        else:
            log.warning("late reply dropped: no response_url and no app secret msg_id=%s", msg.msg_id)

    # ------------------------------------------------------------------ running a command
    async def run_with_budget(self, msg: IncomingMessage) -> list[Reply] | None:
        """Run the command; its replies if done within the budget, else None (they go via the outbox).

        The task is never cancelled: the database decides the command's effect whether or not we
        answer in time. If the sink already handed replies back inline when time ran out (commit was
        slow), `_finish_late` queues them in a fresh transaction.
        """
        budget: ReplyBudget = msg.reply_context["budget"]
        task = asyncio.create_task(self.router.handle(msg))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.settings.reply_budget_ms / 1000)
        except asyncio.CancelledError:
            budget.late = True
            self._track(asyncio.create_task(self._finish_late(task, msg)))
            raise
        if task in done:
            return task.result()
        budget.late = True
        self._track(asyncio.create_task(self._finish_late(task, msg)))
        return None

    async def _finish_late(self, task: asyncio.Task[list[Reply]], msg: IncomingMessage) -> None:
        replies = await task
        if not replies:
            return
        now = datetime.now(UTC)
        async with self.db.transaction() as store:
            await self.enqueue_late(store, msg, replies, now)

    # ------------------------------------------------------------------ request plumbing
    async def first_delivery(self, payload: dict[str, Any], corp: CorpEndpoint | None = None) -> bool:
        """Record a non-command callback's msgid so that WeCom's re-delivery has no second effect."""
        msg_id = str(payload.get("msgid") or "")
        if not msg_id:
            return True
        async with self.db.transaction() as store:
            return await store.record_inbound(PLATFORM, msg_id, self.org_key(payload, corp), datetime.now(UTC))


WECOM_KEY = web.AppKey("wecom", WeComAdapter)


def wecom_component(app: web.Application, *, wall_clock: Callable[[], float] = time.time) -> None:
    """Routes, reply sink and lifecycle of the WeCom adapter (added when `settings.wecom_enabled`)."""
    adapter = WeComAdapter(app[SETTINGS_KEY], wall_clock=wall_clock)
    app[WECOM_KEY] = adapter
    app[REPLY_SINKS_KEY][PLATFORM] = adapter.reply_sink
    WeComCallbacks(adapter).routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        # The process's session outlives this context (its cleanup context was registered first).
        await adapter.start(app[DATABASE_KEY], app[ROUTER_KEY], app[HTTP_SESSION_KEY], app[LONG_SESSION_KEY])
        app[DELIVERERS_KEY][PLATFORM] = adapter.deliverer
        yield
        await adapter.stop()

    app.cleanup_ctx.append(lifecycle)

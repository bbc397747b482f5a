"""DingTalk (钉钉) adapter: the component that wires receiving, sending and the org events together.

Receiving (sign, verify, parse, HTTP routes) is `bot.adapters.dingtalk_receive`, Stream mode
`bot.adapters.dingtalk_stream`, sending (render, reply sink, `DingTalkDeliverer`, error codes)
`bot.adapters.dingtalk_send`. Both ways in feed one `bot.inbound.Inbound` (acknowledge fast, work after):
this module hands it the robot payload parser, the refusal replay (the router's own answer to a message
whose command did not run goes to the conversation) and the org-event handler — `user_leave_org` triggers
离职继承.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bot.adapters.dingtalk_receive import DingTalkCallbacks, parse_robot_message
from bot.adapters.dingtalk_send import PLATFORM, DingTalkDeliverer, chat_destination, enqueue_reply, make_reply_sink
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
from bot.inbound import Inbound
from bot.messages import IncomingMessage, Reply
from bot.settings import Settings
from storage.database import Database
from storage.offboarding import TeamHandover, hand_over_departed
from storage.store import Store

log = logging.getLogger("salesbot.dingtalk")

MaxBytes = Callable[[dict[str, Any]], int]


async def reply_to_chat(max_bytes: MaxBytes, store: Store, msg: IncomingMessage, replies: list[Reply],
                        now: datetime) -> None:
    """The router's own answer to a message whose command did not run goes back to its conversation."""
    for reply in replies:
        destination = chat_destination(msg)
        await enqueue_reply(store, destination, reply, now, max_bytes(destination))


@dataclass
class DingTalkEvents:
    """Org events. `user_leave_org` → 离职继承; everything else is acknowledged and ignored."""

    settings: Settings
    db: Database
    max_bytes: MaxBytes
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def handle(self, event: dict[str, Any], dedup_id: str) -> None:
        event_type = event.get("EventType") or event.get("eventType")
        if event_type != "user_leave_org":
            return
        user_ids = event.get("UserId") or event.get("userId") or []
        if isinstance(user_ids, str):
            user_ids = [user_ids]
        corp = event.get("CorpId") or event.get("corpId")
        now = self.clock()
        async with self.db.transaction() as store:
            if not await store.record_inbound(PLATFORM, dedup_id, str(corp or self.settings.dingtalk_app_key), now):
                log.info("duplicate event ignored id=%s", dedup_id)
                return
            for user_id in user_ids:
                handovers = await hand_over_departed(store, PLATFORM, corp, str(user_id), now)
                for handover in handovers:
                    await self._announce_handover(store, handover, now)
                log.info("user_leave_org handled user=%s teams=%d customers=%d", user_id, len(handovers),
                         sum(len(h.customers) for h in handovers))

    async def _announce_handover(self, store: Store, handover: TeamHandover, now: datetime) -> None:
        names = "、".join(c.name for c in handover.customers[:20])
        count = len(handover.customers)
        more = f" 等 {count} 个" if count > 20 else f"（共 {count} 个）"
        departed = handover.departed.name
        store.bind_team(store.org, handover.team)
        if handover.heir is not None:
            text = (f"📋 离职继承：{departed} 已离职，其在「{handover.team.name}」负责的客户已转交给你：{names}{more}。"
                    f"\n请尽快跟进，发送「我的」查看。")
            message = OutgoingMessage(text=text, title="离职继承")
            destination = {"kind": "member", "user_ids": [handover.heir.user_id]}
        else:
            text = (f"📋 离职继承：{departed} 已离职，本组未设主管，其客户已放入公海：{names}{more}。"
                    f"发送「公海」查看并认领。")
            message = OutgoingMessage(text=text, title="离职继承")
            destination = {"kind": "team", "chat_id": handover.team.chat_id}
        await enqueue_reply(store, destination, message, now, self.max_bytes(destination))



# ---------------------------------------------------------------------------------------------- component
DINGTALK_KEY = web.AppKey("dingtalk", Inbound)
DELIVERER_KEY = web.AppKey("dingtalk_deliverer", DingTalkDeliverer)
STREAM_KEY = web.AppKey("dingtalk_stream", object)


def dingtalk_component(app: web.Application, inbound_options: dict[str, Any] | None = None, *,
                       wall_clock: Callable[[], float] = time.time, **stream_options: Any) -> None:
    """Routes and lifecycle of the DingTalk adapter (added by bot.app.default_components).

    `stream_options` (backoff_initial, backoff_max, heartbeat) tune the Stream client, e.g. in tests;
    `inbound_options` are passed to `Inbound.start` (workers, recover_every); `wall_clock` is what the
    callbacks' timestamps are checked against (tests replaying recorded vectors).
    """
    inbound_options = inbound_options or {}
    settings = app[SETTINGS_KEY]
    callbacks = DingTalkCallbacks(settings, wall_clock=wall_clock)
    callbacks.routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        db = app[DATABASE_KEY]
        http = app[HTTP_SESSION_KEY]  # the process's session: it closes after this context (registered before)
        deliverer = DingTalkDeliverer(settings, http, db=db)
        # Nothing is answered inline on DingTalk: the shared router hands every reply to this sink,
        # which enqueues it in the command's transaction; the outbox worker delivers it.
        app[REPLY_SINKS_KEY][PLATFORM] = make_reply_sink(deliverer.max_bytes)
        app[DELIVERERS_KEY][PLATFORM] = deliverer
        events = DingTalkEvents(settings, db, deliverer.max_bytes)
        inbound = Inbound(PLATFORM, db, app[ROUTER_KEY], functools.partial(parse_robot_message, settings=settings),
                          functools.partial(reply_to_chat, deliverer.max_bytes), events.handle)
        inbound.start(**inbound_options)
        callbacks.inbound = inbound
        app[DINGTALK_KEY] = inbound
        app[DELIVERER_KEY] = deliverer
        stream_task = None
        if settings.dingtalk_mode == "stream":
            from bot.adapters.dingtalk_stream import StreamClient

            client = StreamClient(settings, app[LONG_SESSION_KEY], inbound, **stream_options)
            app[STREAM_KEY] = client
            stream_task = asyncio.create_task(client.run(), name="dingtalk-stream")
        try:
            yield
        finally:
            if stream_task is not None:
                stream_task.cancel()
                await asyncio.gather(stream_task, return_exceptions=True)
            await inbound.stop()
            await inbound.drain()

    app.cleanup_ctx.append(lifecycle)


"""DingTalk Stream mode (PLATFORMS.md §3b): no public URL, one WebSocket to DingTalk's gateway.

open (`/v1.0/gateway/connections/open`, app key + secret, subscriptions) → connect to the returned
endpoint with the one-shot ticket → read frames. Every frame is acknowledged with code 200 and its
own messageId, echoing its data as the official SDK does; a robot message is acknowledged once it is
durably recorded (its inbound row, payload included, has committed) and its command runs after, from
the inbound queue (bot.inbound) — so a frame is never lost between ack and commit, and the ack never waits on it.
SYSTEM `ping` frames are keep-alives; `disconnect` and a closed socket mean reconnect, with
exponential backoff and a new ticket each time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
from typing import Any

import aiohttp
from yarl import URL

from bot.adapters.common import RedirectRefused, Rejected, platform_request
from bot.adapters.dingtalk_send import PLATFORM
from bot.inbound import Inbound
from bot.settings import Settings

log = logging.getLogger("salesbot.dingtalk.stream")

ROBOT_TOPIC = "/v1.0/im/bot/messages/get"
SUBSCRIPTIONS = [
    {"type": "EVENT", "topic": "*"},
    {"type": "CALLBACK", "topic": ROBOT_TOPIC},
]


class StreamAuthError(Exception):
    """The gateway refused our credentials, or redirected us (never followed: the request carries the app
    secret); retrying quickly will not help."""


class StreamClient:
    def __init__(
        self,
        settings: Settings,
        http: aiohttp.ClientSession,
        inbound: Inbound,
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        heartbeat: float = 30.0,
    ) -> None:
        self.settings = settings
        self.http = http
        self.inbound = inbound
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.heartbeat = heartbeat
        self.connections = 0
        self.connected = asyncio.Event()
        self._pending: set[asyncio.Task[Any]] = set()

    async def run(self) -> None:
        """Connect, serve, reconnect — until cancelled."""
        delay = self.backoff_initial
        while True:
            try:
                endpoint, ticket = await self.open_connection()
                served = await self.serve(endpoint, ticket)
                if served:
                    delay = self.backoff_initial  # a connection that worked resets the backoff
            except asyncio.CancelledError:
                raise
            except StreamAuthError as err:
                log.error("dingtalk stream: %s", err)
                delay = max(delay, min(self.backoff_max, 30.0))
            except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as err:
                log.warning("dingtalk stream connection failed: %s", type(err).__name__)
            self.connected.clear()
            wait = delay * (0.5 + random.random() / 2)
            log.info("dingtalk stream reconnecting in %.2f s", wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.backoff_max)

    async def open_connection(self) -> tuple[str, str]:
        body = {
            "clientId": self.settings.dingtalk_app_key,
            "clientSecret": self.settings.dingtalk_app_secret,
            "subscriptions": SUBSCRIPTIONS,
            "ua": "salesbot/0.1 (aiohttp)",
            "localIp": _local_ip(),
        }
        url = self.settings.dingtalk_api_base.rstrip("/") + "/v1.0/gateway/connections/open"
        try:
            async with platform_request(self.http, "POST", url, what="dingtalk stream open", json=body,
                                        timeout=aiohttp.ClientTimeout(total=10)) as resp:
                data = await resp.json(content_type=None)
                if resp.status in (401, 403):
                    raise StreamAuthError(f"gateway refused the app credentials (HTTP {resp.status})")
                if resp.status != 200:
                    raise aiohttp.ClientResponseError(resp.request_info, resp.history, status=resp.status)
        except RedirectRefused as err:
            raise StreamAuthError(err.reason) from None
        return str(data["endpoint"]), str(data["ticket"])

    async def serve(self, endpoint: str, ticket: str) -> bool:
        """One WebSocket session; returns True if it was established."""
        url = URL(endpoint).update_query({"ticket": ticket})
        async with self.http.ws_connect(url, heartbeat=self.heartbeat, autoping=True) as ws:
            self.connections += 1
            self.connected.set()
            log.info("dingtalk stream connected (#%d)", self.connections)
            try:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        if await self.on_frame(ws, msg.data) == "disconnect":
                            break
                    elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                        break
            finally:
                self.connected.clear()
        return True

    async def on_frame(self, ws: aiohttp.ClientWebSocketResponse, text: str) -> str | None:
        try:
            frame = json.loads(text)
            headers = frame["headers"]
            message_id = headers["messageId"]
        except (ValueError, KeyError, TypeError, RecursionError):
            log.warning("dingtalk stream: unreadable frame ignored")
            return None
        frame_type = frame.get("type")
        topic = headers.get("topic")
        data = frame.get("data") or "{}"
        if frame_type == "SYSTEM":
            await self.ack(ws, message_id, data)
            return "disconnect" if topic == "disconnect" else None
        if frame_type == "CALLBACK" and topic == ROBOT_TOPIC:
            task = asyncio.create_task(self._robot(ws, message_id, data))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return None
        if frame_type == "EVENT":
            task = asyncio.create_task(self._event(ws, message_id, headers, data))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return None
        await self.ack(ws, message_id, data)
        return None

    async def _robot(self, ws: aiohttp.ClientWebSocketResponse, message_id: str, data: str) -> None:
        try:
            payload = json.loads(data)
            await self.inbound.accept(payload)  # recorded durably; the command runs from the queue
        except (ValueError, RecursionError, Rejected) as err:
            log.warning("dingtalk stream: robot frame rejected: %s", getattr(err, "reason", type(err).__name__))
        except Exception:
            log.exception("dingtalk stream: robot frame failed")
            return  # no ack: the gateway re-delivers, and dedup keeps it to one effect
        await self.ack(ws, message_id, data)

    async def _event(self, ws: aiohttp.ClientWebSocketResponse, message_id: str, headers: dict[str, Any],
                     data: str) -> None:
        try:
            payload = json.loads(data)
            if not isinstance(payload, dict):
                raise ValueError
            event = {"EventType": headers.get("eventType"), "CorpId": headers.get("eventCorpId"),
                     "UserId": payload.get("userId") or payload.get("UserId") or []}
            dedup = f"stream-event:{headers.get('eventId') or message_id}"
            await self.inbound.within(self.inbound.handle_event(event, dedup), 1.2)
        except (ValueError, RecursionError):
            log.warning("dingtalk stream: unreadable event ignored")
        except Exception:
            log.exception("dingtalk stream: event failed")
            return
        await self.ack(ws, message_id, data)

    async def ack(self, ws: aiohttp.ClientWebSocketResponse, message_id: str, data: str) -> None:
        if ws.closed:
            return
        await ws.send_json(
            {"code": 200, "headers": {"contentType": "application/json", "messageId": message_id},
             "message": "OK", "data": data}
        )


def _local_ip() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


__all__ = ["StreamClient", "SUBSCRIPTIONS", "PLATFORM"]

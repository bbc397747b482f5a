"""WeCom AI-bot long-connection (WebSocket) mode, for deployments without a public URL (PLATFORMS.md §1a [M]).

Frames are JSON ``{"cmd", "headers": {"req_id"}, "body"}``; every command we send is acknowledged by a
frame ``{"headers": {"req_id"}, "errcode", "errmsg"}`` without ``cmd``. We subscribe with bot id and
secret, ping every ~30 s, answer ``aibot_msg_callback`` with ``aibot_respond_msg`` (stream, finish:
true) on the callback's req_id, welcome ``enter_chat`` with ``aibot_respond_welcome_msg``, and push to
groups with ``aibot_send_msg``. A dropped connection is re-opened with exponential backoff.

Only framing lives here; parsing, routing and the reply sink are the adapter core's (its `Host`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

import aiohttp

from bot.adapters.common import Rejected
from bot.adapters.wecom_receive import UNSUPPORTED, WELCOME, CorpEndpoint, Host, ReplyBudget, combine
from bot.adapters.wecom_send import STREAM_MAX_BYTES, render_markdown, truncate_bytes
from bot.delivery import PermanentFailure, RetryLater

log = logging.getLogger("salesbot.wecom.ws")

ACK_TIMEOUT = 10.0
HEARTBEAT = 30.0
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 60.0


class WeComLongConnection:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        bot_id: str,
        secret: str,
        adapter: Host,
        *,
        heartbeat: float | None = None,
        backoff_initial: float | None = None,
        backoff_max: float | None = None,
        corp: CorpEndpoint | None = None,
    ) -> None:
        self.session = session
        self.corp = corp  # the corp whose bot this connection subscribes (its messages belong to it)
        self.url = url
        self.bot_id = bot_id
        self.secret = secret
        self.adapter = adapter
        self.heartbeat = heartbeat or HEARTBEAT
        self.backoff_initial = backoff_initial or BACKOFF_INITIAL
        self.backoff_max = backoff_max or BACKOFF_MAX
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    def start(self) -> None:
        corp = getattr(self.corp, "corp_id", None) or "default"
        self._task = asyncio.create_task(self._run(), name=f"wecom-long-connection-{corp}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    # ------------------------------------------------------------------ connection loop
    async def _run(self) -> None:
        delay = self.backoff_initial
        while True:
            try:
                async with self.session.ws_connect(self.url, heartbeat=None, autoping=True) as ws:
                    if await self._subscribe(ws):
                        delay = self.backoff_initial
                        await self._serve(ws)
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
                log.warning("long connection failed: %s", type(err).__name__)
            except Exception:
                log.exception("long connection crashed")
            finally:
                self._ws = None
                for future in self._pending.values():
                    if not future.done():
                        future.set_exception(RetryLater("long connection closed"))
                self._pending.clear()
            log.info("long connection reconnecting in %.1f s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        req_id = f"aibot_subscribe_{uuid.uuid4().hex}"
        body = {"bot_id": self.bot_id, "secret": self.secret}
        await ws.send_json({"cmd": "aibot_subscribe", "headers": {"req_id": req_id}, "body": body})
        ack = await ws.receive_json(timeout=ACK_TIMEOUT)
        if ack.get("errcode") != 0:
            log.error("aibot_subscribe refused errcode=%s (check SALESBOT_WECOM_AIBOT_BOT_ID/SECRET)",
                      ack.get("errcode"))
            return False
        log.info("long connection subscribed")
        return True

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        pinger = asyncio.create_task(self._ping(ws))
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(message.data)
                except (ValueError, RecursionError):  # nested beyond the parser's depth, too
                    log.warning("long connection: frame is not JSON")
                    continue
                if isinstance(frame, dict):
                    self._on_frame(frame)
        finally:
            pinger.cancel()
            self._ws = None

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(self.heartbeat)
            try:
                await self.request("ping", f"ping_{uuid.uuid4().hex}", None)
            except (RetryLater, PermanentFailure, ConnectionError):
                await ws.close()
                return

    # ------------------------------------------------------------------ frames
    def _on_frame(self, frame: dict[str, Any]) -> None:
        cmd = frame.get("cmd")
        headers = _object(frame.get("headers"))
        req_id = str(headers.get("req_id") or "")
        body = _object(frame.get("body"))
        if not cmd:
            future = self._pending.pop(req_id, None)
            if future is not None and not future.done():
                future.set_result(frame)
            return
        if cmd == "aibot_msg_callback":
            self._spawn(self._on_message(req_id, body))
        elif cmd == "aibot_event_callback":
            self._spawn(self._on_event(req_id, body))
        else:
            log.info("long connection: ignored cmd=%s", cmd)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _on_message(self, req_id: str, body: dict[str, Any]) -> None:
        adapter = self.adapter
        try:
            msg = await adapter.aibot_message(body, ReplyBudget(), corp=self.corp, ws_req_id=req_id)
        except Rejected as err:
            log.warning("long connection callback rejected reason=%s", err.reason)
            return
        if msg is None:
            if await adapter.first_delivery(body, self.corp):
                await self._respond(req_id, UNSUPPORTED)
            return
        replies = await adapter.router.handle(msg)
        if replies:
            await self._respond(req_id, render_markdown(combine(replies), native_mentions=False))

    async def _on_event(self, req_id: str, body: dict[str, Any]) -> None:
        eventtype = (body.get("event") or {}).get("eventtype")
        if eventtype == "disconnected_event":
            log.warning("long connection replaced by another connection of this bot")
            return
        if eventtype == "enter_chat" and await self.adapter.first_delivery(body, self.corp):
            await self._safe_request(
                "aibot_respond_welcome_msg", req_id, {"msgtype": "text", "text": {"content": WELCOME}}
            )

    async def _respond(self, req_id: str, content: str) -> None:
        stream = {"id": uuid.uuid4().hex, "finish": True, "content": truncate_bytes(content, STREAM_MAX_BYTES)}
        await self._safe_request("aibot_respond_msg", req_id, {"msgtype": "stream", "stream": stream})

    async def _safe_request(self, cmd: str, req_id: str, body: dict[str, Any]) -> None:
        try:
            await self.request(cmd, req_id, body)
        except (RetryLater, PermanentFailure) as err:
            log.warning("long connection %s failed: %s", cmd, err.reason)

    # ------------------------------------------------------------------ requests
    async def request(self, cmd: str, req_id: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """Send a command and await its acknowledgement; errcode ≠ 0 raises."""
        ws = self._ws
        if ws is None or ws.closed:
            raise RetryLater("long connection not established")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        frame: dict[str, Any] = {"cmd": cmd, "headers": {"req_id": req_id}}
        if body is not None:
            frame["body"] = body
        try:
            await ws.send_str(json.dumps(frame, ensure_ascii=False))
            ack = await asyncio.wait_for(future, ACK_TIMEOUT)
        except (ConnectionError, aiohttp.ClientError):
            raise RetryLater("long connection send failed") from None
        except TimeoutError:
            raise RetryLater(f"{cmd} not acknowledged") from None
        finally:
            self._pending.pop(req_id, None)
        errcode = ack.get("errcode", 0)
        if errcode == 0:
            return ack
        if errcode in (-1, 45009, 6000):
            raise RetryLater(f"{cmd} errcode {errcode}")
        raise PermanentFailure(f"{cmd} errcode {errcode}")

    async def send_markdown(self, chatid: str, content: str) -> None:
        """Push into a group the bot is in (``aibot_send_msg``)."""
        body = {"chatid": chatid, "msgtype": "markdown", "markdown": {"content": content}}
        await self.request("aibot_send_msg", f"aibot_send_msg_{uuid.uuid4().hex}", body)


def _object(value: Any) -> dict[str, Any]:
    """A frame's field that must be a JSON object; anything else reads as empty."""
    return value if isinstance(value, dict) else {}

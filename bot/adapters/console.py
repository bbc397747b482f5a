"""The local console: the way anyone tries salesbot, and the way most tests drive it.

It is a real adapter: lines become `IncomingMessage`s of platform "console" and go through the same
router, transaction and database as a WeCom or DingTalk message. On the console a member's platform
user id is the name given (`--user 张三`, or a line `@张三: 认领 华为`); speaking is what makes someone a
member. An `@名字` in a command is only text, as an @ typed without picking a person is on the
platforms: the router looks it up among the members, so a typo (`转交 京东 @李`) is refused instead of
creating a member nobody is.
"""

from __future__ import annotations

import logging
import re
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from bot.delivery import OutgoingMessage, RateLimit
from bot.messages import Image, IncomingMessage, Reply, render_mentions
from bot.router import Router

CONSOLE_ORG = "console"
_SENDER = re.compile(r"^@([^\s:：]{1,64})\s*[:：]\s*(.*)$", re.S)


def default_picture_dir() -> Path:
    return Path(tempfile.gettempdir()) / "salesbot-charts"


def save_picture(image: Image, directory: Path | None = None) -> Path:
    """A terminal shows no pictures: write it (drawn, bot.charts) to a file named by its id and say where."""
    assert image.png is not None
    folder = directory or default_picture_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{image.image_id}.png"
    path.write_bytes(image.png)
    return path


def picture_line(image: Image, path: Path) -> str:
    return f"📊 {image.alt}图已保存：{path}"


@dataclass
class ConsoleChat:
    router: Router
    team: str = "销售一组"
    user: str = "我"
    org: str = CONSOLE_ORG
    picture_dir: Path = field(default_factory=default_picture_dir)

    def parse_line(self, line: str) -> tuple[str, str]:
        """`@张三: 认领 华为` is sent as 张三; any other line as the default user."""
        found = _SENDER.match(line.strip())
        if found:
            return found.group(1), found.group(2).strip()
        return self.user, line.strip()

    def message(self, text: str, user: str | None = None, msg_id: str | None = None) -> IncomingMessage:
        user = user or self.user
        return IncomingMessage(
            platform="console",
            org_key=self.org,
            chat_id=self.team,
            chat_title=self.team,
            user_id=user,
            user_name=user,
            text=text,
            msg_id=msg_id or uuid.uuid4().hex,
        )

    async def send(self, text: str, user: str | None = None, msg_id: str | None = None) -> list[Reply]:
        return await self.router.handle(self.message(text, user, msg_id))

    async def say(self, text: str, user: str | None = None, msg_id: str | None = None) -> list[str]:
        """What the bot answers, rendered as the console prints it (mentions as @名字); a picture is drawn
        here, after the command's transaction, like the outbox draws it at delivery."""
        shown = [await drawn_reply(reply, self.router.db.chart_font) for reply in await self.send(text, user, msg_id)]
        return [render(reply, self.picture_dir) for reply in shown if reply is not None]

    async def say_line(self, line: str) -> list[str]:
        user, text = self.parse_line(line)
        if not text:
            return []
        return await self.say(text, user)


async def drawn_reply(reply: Reply, font: str | None) -> Reply | None:
    """`reply` with its picture drawn (bot.charts); None when it cannot be: the text before it stands."""
    if reply.image is None or reply.image.png is not None:
        return reply
    from bot.charts import ChartFailed, draw

    try:
        return replace(reply, image=await draw(reply.image, font))
    except ChartFailed as err:
        logging.getLogger("salesbot.charts").warning("charts: picture %s not drawn: %s", reply.image.image_id, err)
        return None


def render(reply: Reply, picture_dir: Path | None = None) -> str:
    if reply.image is not None:
        return picture_line(reply.image, save_picture(reply.image, picture_dir))
    text = reply.plain_text()
    if reply.audience == "direct":
        people = "、".join(reply.names.get(u, u) for u in reply.user_ids)
        return f"（私信 {people}）{text}"
    return text


class ConsoleDeliverer:
    """Where `salesbot serve` sends the pushes of console teams (stand-ups, digests): its own output.

    A console team has no chat server to post to; printing keeps its scheduled pushes visible in the
    service's log instead of piling up as failed outbox rows. `salesbot jobs run … --print` shows
    the same messages on demand.
    """

    platform = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.log = logging.getLogger("salesbot.console")

    def limit_key(self, destination: dict[str, Any]) -> str:
        return "console"

    def rate_limit(self, destination: dict[str, Any]) -> RateLimit | None:
        return None

    def max_bytes(self, destination: dict[str, Any]) -> int:
        return 1 << 20

    async def deliver(self, destination: dict[str, Any], message: OutgoingMessage) -> None:
        where = destination.get("chat_id") or ",".join(destination.get("user_ids") or []) or destination.get("kind")
        if message.image is not None:
            text = picture_line(message.image, save_picture(message.image))
        else:
            text = render_mentions(message.text, lambda uid: f"@{message.names.get(uid, uid)}")
        if self.stream is not None:
            print(f"[{where}] {text}", file=self.stream, flush=True)
        else:
            self.log.info("push to %s:\n%s", where, text)

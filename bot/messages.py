"""The platform-neutral message types every adapter fills and every handler returns.

Handlers never see a platform: an adapter turns a WeCom/DingTalk/console payload into an
`IncomingMessage`, and turns a `Reply` or `OutgoingMessage` back into whatever its platform speaks.
Mentions travel inside text as `<@user_id>` markers so that each adapter can render them its own way
(WeCom `<@userid>`, DingTalk `@staffid` plus `at.atUserIds`, the console `@名字`).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

MENTION_MARKER = re.compile(r"<@([^<>\s]{1,128})>")

ChatType = Literal["group", "single"]


@dataclass(frozen=True)
class Mention:
    """Someone @-mentioned in an incoming message, as far as the platform tells us."""

    user_id: str
    name: str | None = None


@dataclass(frozen=True)
class IncomingMessage:
    """One chat message addressed to the bot, already verified and decrypted by its adapter.

    `org_key` identifies the organisation on its platform (WeCom CorpID, DingTalk corpId, or
    "console"); `chat_id` the group chat that a team is bound to. `reply_context` carries what an
    adapter needs to answer later (a WeCom response_url, a DingTalk sessionWebhook) and is opaque to
    everything outside the adapter.
    """

    platform: str
    org_key: str
    chat_id: str
    user_id: str
    text: str
    msg_id: str
    user_name: str | None = None
    chat_title: str | None = None
    chat_type: ChatType = "group"
    mentions: tuple[Mention, ...] = ()
    reply_context: dict[str, Any] = field(default_factory=dict)
    # The row that recorded it when it was acknowledged before being run (bot.inbound), which its
    # command's transaction marks done.
    inbound_id: int | None = None


@dataclass(frozen=True)
class Image:
    """A picture that goes out as a message of its own, after the text it belongs to (the retro's chart).

    A unit of work only records what to draw: `chart` (the numbers, labels and title, small JSON) and a
    pre-allocated unguessable `image_id`; `png` stays None until the outbox (or the console) draws it at
    delivery (bot.charts). `png` is what a platform taking bytes sends (WeCom's group robot); `image_id` names
    the stored copy a platform showing pictures only from a URL links to (DingTalk markdown,
    `/charts/<id>.png`); `alt` is its caption where a platform shows one.
    """

    image_id: str
    alt: str = "图片"
    chart: dict[str, Any] | None = None
    png: bytes | None = None

    def drawn(self, png: bytes) -> Image:
        """The same picture with its bytes (never stored in the outbox row: a retry finds them by id)."""
        return replace(self, png=png)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.image_id, "alt": self.alt}
        if self.chart is not None:
            body["chart"] = self.chart
        if self.png is not None:
            body["png"] = base64.b64encode(self.png).decode("ascii")
        return body

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Image:
        png = base64.b64decode(data["png"]) if data.get("png") else None
        return cls(image_id=str(data["id"]), alt=str(data.get("alt") or "图片"), chart=data.get("chart"), png=png)


@dataclass(frozen=True)
class Reply:
    """What a handler wants said.

    `audience` "chat" answers in the conversation the command came from; "team" announces in the
    team's group even when the command came from a private chat; "direct" goes to `user_ids`
    privately. `names` maps user ids used in `<@id>` markers to display names for renderers that
    cannot mention natively.
    """

    text: str
    audience: Literal["chat", "team", "direct"] = "chat"
    user_ids: tuple[str, ...] = ()
    names: dict[str, str] = field(default_factory=dict)
    title: str | None = None
    image: Image | None = None  # a picture message: `text` is only its caption

    def plain_text(self) -> str:
        """The text with mention markers replaced by `@名字`, for the console and logs."""
        return render_mentions(self.text, lambda uid: f"@{self.names.get(uid, uid)}")


@dataclass(frozen=True)
class OutgoingMessage:
    """Platform-neutral body: light markdown with `<@user_id>` mention markers.

    With `image`, the message is that picture and `text` only its caption: a platform sends the picture
    alone (or its caption where it cannot show one), so a picture that must be retried never repeats text.
    """

    text: str
    title: str | None = None
    names: dict[str, str] = field(default_factory=dict)
    image: Image | None = None

    @property
    def mention_ids(self) -> list[str]:
        return list(dict.fromkeys(mentioned_ids(self.text)))

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"text": self.text, "title": self.title, "names": dict(self.names)}
        if self.image is not None:
            body["image"] = self.image.to_json()
        return body

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutgoingMessage:
        image = Image.from_json(data["image"]) if data.get("image") else None
        return cls(text=data["text"], title=data.get("title"), names=dict(data.get("names") or {}), image=image)

    @classmethod
    def from_reply(cls, reply: Reply) -> OutgoingMessage:
        return cls(text=reply.text, title=reply.title, names=dict(reply.names), image=reply.image)


def mention(user_id: str) -> str:
    """The in-text marker for a mention; adapters render it per platform."""
    return f"<@{user_id}>"


def mentioned_ids(text: str) -> list[str]:
    return MENTION_MARKER.findall(text)


def render_mentions(text: str, render: Any) -> str:
    return MENTION_MARKER.sub(lambda m: render(m.group(1)), text)

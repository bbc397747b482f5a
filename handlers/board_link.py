"""The web board's link: 看板 链接 (a signed URL for leads), 看板 链接 撤销, 设置 看板有效期.

The board itself is a page served by bot/web; this area only makes and revokes the links, so a handler
never touches HTTP. The link goes to the requester privately: it opens the team's numbers to whoever
holds it until it expires, so it is not posted to the group. All wording for the link sits here.
"""

from __future__ import annotations

import re
from datetime import datetime

from bot.messages import IncomingMessage, Reply
from handlers.commands import Args, CommandSet, SettingSet, UserError
from handlers.common import local_now
from storage import board_links
from storage.store import Store
from storage.team_settings import BOARD_LINK_DAYS, board_link_days

commands = CommandSet("目标")
settings = SettingSet()

LINK_EXAMPLE = "看板 链接"
DAYS_EXAMPLE = "设置 看板有效期 7天"
REVOKE_WORDS = ("撤销", "作废", "revoke")

NO_PUBLIC_URL = (
    "看板网页还没有开通：请管理员在部署时设置 SALESBOT_PUBLIC_URL（大家从外部访问本服务的网址，"
    "例如 https://bot.example.com），重启服务后再发送「看板 链接」。"
)


def _days(store: Store) -> int:
    return board_link_days(store.team.settings, board_links.DEFAULT_DAYS)


@commands.command(
    "看板 链接",
    "/board-link",
    summary="网页看板链接（私信发给你）",
    usage="看板 链接 | 看板 链接 撤销",
    example=LINK_EXAMPLE,
    role="lead",
    extra_words=("看板链接",),
    details=(
        "生成本组网页看板的专属链接，私信发给你（控制台直接显示）：目标进度、漏斗、12 周趋势、客户列表。\n"
        "链接默认 7 天有效（设置 看板有效期 7天），只读、只看本组；请勿转发。\n"
        "「看板 链接 撤销」让本组所有已发出的链接立即失效。"
    ),
)
async def board_link(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> list[Reply]:
    word = args.text.strip()
    if word in REVOKE_WORDS:
        await board_links.revoke_links(store, now)
        return [Reply("🔒 本组所有看板链接已作废。需要时发送「看板 链接」重新生成。")]
    if word:
        raise UserError(f"「{word}」看不懂：发送「看板 链接」获取链接，或「看板 链接 撤销」作废所有链接。",
                        example=LINK_EXAMPLE)
    config = store.board if isinstance(store.board, board_links.BoardConfig) else board_links.BoardConfig()
    if not config.public_url:
        return [Reply(NO_PUBLIC_URL)]
    days = _days(store)
    token, expires = await board_links.make_token(store, config.secret, days, now)
    until = local_now(store, expires).strftime("%Y-%m-%d %H:%M")
    link = Reply(
        f"📊 {store.team.name} 网页看板（只读，请勿转发）：\n{config.public_url}/board/{token}\n"
        f"有效期至 {until}（{days} 天）。发送「看板 链接 撤销」可让所有链接失效。",
        audience="direct",
        user_ids=(msg.user_id,),
        names={msg.user_id: store.actor.name},
    )
    if msg.chat_type != "group":
        return [link]
    return [Reply(f"🔗 看板链接已私信发给你（{days} 天内有效）。"), link]


@settings.row(
    "看板有效期",
    role="lead",
    usage=DAYS_EXAMPLE,
    describe=lambda s: f"看板链接有效期：{_days(s)} 天",
)
async def _set_link_days(args: Args, value: str, store: Store, now: datetime) -> str:
    found = re.fullmatch(r"(\d{1,3})\s*天?", value.strip())
    if not found or not 1 <= int(found.group(1)) <= board_links.MAX_DAYS:
        raise UserError(f"看板链接有效期要在 1 到 {board_links.MAX_DAYS} 天之间。", example=DAYS_EXAMPLE)
    days = int(found.group(1))
    await store.update_team_settings({BOARD_LINK_DAYS: days}, now)
    return f"新生成的看板链接 {days} 天内有效（已发出的链接不变）。"

"""Team knowledge: 分享 a best practice, a script or an answer to an objection; 搜 finds it again.

Search is by substring because Chinese has no spaces: 「搜 报价」 must find 「报价技巧：先问预算」. It
looks through the organisation's tips (every team's) and this team's customers.
"""

from __future__ import annotations

import re
from datetime import datetime

from bot.messages import IncomingMessage, Reply
from handlers.commands import Args, CommandSet, UserError
from handlers.deal_choice import DEAL_STATUS_NAMES
from handlers.names import normalise_company_name
from storage import knowledge
from storage.store import Store

commands = CommandSet("知识")

TIP_EXAMPLE = "分享 报价技巧 先问预算再报价，给两个方案 #报价"
SEARCH_EXAMPLE = "搜 报价"
_TAG = re.compile(r"(?:^|\s)#([^\s#]{1,20})")
_TITLE_SPLIT = re.compile(r"[：:]")
MAX_TIP_CHARS = 1500


def split_tip(text: str) -> tuple[str, str, list[str]]:
    """`<标题> <内容> #标签…` → (title, content, tags).

    Without a space the whole text is the content and the title is what comes before the first colon
    (「报价技巧：先问预算」 → 报价技巧), or the text itself when short.
    """
    tags = list(dict.fromkeys(_TAG.findall(text)))
    body = _TAG.sub(" ", text).strip()
    if " " in body:
        title, _, content = body.partition(" ")
        return title.strip(), content.strip(), tags
    head = _TITLE_SPLIT.split(body, maxsplit=1)[0].strip()
    return (head or body)[:40], body, tags


@commands.command(
    "分享",
    "/tip",
    summary="分享经验、话术、异议处理",
    usage="分享 <标题> <内容> [#标签]",
    example=TIP_EXAMPLE,
    details="把好用的做法存进团队知识库，全公司都能用「搜 关键词」找到。可以加 #标签，如 #报价 #异议处理。",
)
async def share_tip(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    # The raw text (already NFKC-folded by the router): `key:value`-looking parts of a script stay in.
    text = args.raw.strip()
    if not text:
        raise UserError("请写上标题和内容。", example=TIP_EXAMPLE)
    if len(text) > MAX_TIP_CHARS:
        raise UserError(f"内容太长了（最多 {MAX_TIP_CHARS} 字），可以分几条分享。", example=TIP_EXAMPLE)
    title, content, tags = split_tip(text)
    if not content:
        raise UserError("只有标题，请再写上内容。", example=TIP_EXAMPLE)
    tip = await knowledge.add_tip(store, title, content, tags, now)
    tag_text = f"\n标签：{tip.tags}" if tip.tags else ""
    return Reply(f"📚 已收入知识库：{tip.title}{tag_text}\n同事发送「搜 {title[:10]}」就能找到。")


@commands.command(
    "搜",
    "/search",
    summary="搜索知识库和客户",
    usage="搜 <关键词>",
    example=SEARCH_EXAMPLE,
    extra_words=("搜索",),
    details="按关键词查找团队知识（标题、内容、标签）和本组客户；多个关键词用空格分开，要同时包含。",
)
async def search(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    keywords = [w.lstrip("#") for w in args.raw.split() if w.lstrip("#")]
    if not keywords:
        raise UserError("请写上要搜的关键词。", example=SEARCH_EXAMPLE)
    if any(len(w) > 50 for w in keywords):
        raise UserError("关键词太长了。", example=SEARCH_EXAMPLE)
    tips = await knowledge.search_tips(store, keywords, limit=8)
    customers = []
    if len(keywords) == 1:
        customers = await store.search_customers(normalise_company_name(keywords[0]), keywords[0], limit=8)
    query = " ".join(keywords)
    if not tips and not customers:
        return Reply(f"没有找到和「{query}」相关的知识或客户。换个关键词试试，或者「分享」一条。")
    lines = [f"🔍「{query}」的搜索结果"]
    if tips:
        lines.append(f"📚 知识（{len(tips)}）")
        for tip, author, team in tips:
            snippet = tip.content if len(tip.content) <= 60 else tip.content[:60] + "…"
            source = author.name if team.id == store.team.id else f"{author.name}·{team.name}"
            tags = f" {tip.tags}" if tip.tags else ""
            text = snippet if tip.content.startswith(tip.title) else f"{tip.title}：{snippet}"
            lines.append(f"· {text}（{source}）{tags}")
    if customers:
        owners = await store.members_by_id([c.owner_id for c in customers if c.owner_id])
        deals = await store.latest_deals_by_customer([c.id for c in customers])
        lines.append(f"👥 客户（{len(customers)}）")
        for c in customers:
            owner = owners[c.owner_id].name if c.owner_id and c.owner_id in owners else "公海"
            deal = deals.get(c.id)
            state = "—" if deal is None else deal.stage if deal.status == "open" else DEAL_STATUS_NAMES[deal.status]
            lines.append(f"· {c.name} — {owner} · {state}")
    return Reply("\n".join(lines))

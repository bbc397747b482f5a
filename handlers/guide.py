"""帮助: the command list, generated from the same declarations the router matches."""

from __future__ import annotations

from datetime import datetime

from bot.messages import IncomingMessage, Reply
from handlers.commands import ROLE_NAMES, Args, CommandSet, CommandSpec, UserError

commands = CommandSet("帮助")


def _all_specs() -> list[CommandSpec]:
    from handlers import all_commands

    return all_commands()


@commands.command("帮助", "/help", summary="查看命令", usage="帮助 [命令]", example="帮助 认领", extra_words=("菜单",))
async def show_help(msg: IncomingMessage, args: Args, store: object, now: datetime) -> Reply:
    """列出全部命令；「帮助 认领」查看单个命令的详细说明。"""
    specs = _all_specs()
    topic = args.text.strip().lstrip("/")
    if topic:
        for spec in specs:
            if topic in spec.words or topic == spec.alias.lstrip("/"):
                return Reply(_detail(spec))
        raise UserError(f"没有「{topic}」这个命令。发送「帮助」查看全部命令。")
    lines = ["🤖 销售协作机器人 · 命令一览（中文命令或英文别名都可以）："]
    group = None
    for spec in specs:
        if spec.group != group:
            group = spec.group
            lines.append(f"【{group}】")
        lines.append(f"· {spec.word}（{spec.alias}）{spec.summary} — 例：{spec.example}")
    lines.append("发送「帮助 命令」查看详细说明，例如：帮助 跟进")
    return Reply("\n".join(lines))


def _detail(spec: CommandSpec) -> str:
    lines = [f"📖 {spec.word}（{spec.alias}）— {spec.summary}", f"用法：{spec.usage}", f"示例：{spec.example}"]
    if spec.details:
        lines.append(spec.details)
    if spec.role != "rep":
        lines.append(f"权限：{ROLE_NAMES[spec.role]}")
    return "\n".join(lines)

"""How a handler module declares its commands and `设置` rows, and what a handler receives.

A handler is a plain async function `(msg, args, store, now) -> Reply | list[Reply]`. It declares its
Chinese command word, its English `/alias`, a usage line and an example next to its code, so the help
text can never drift from what the router accepts.

A `设置` row (a team setting) is declared the same way, in a `SettingSet` next to the code it configures
(handlers for business rules, adapters for a platform's push). Nothing registers itself on import: the
application lists the sets it wants, `settings_table` joins them, and the router hands the table to the
`设置` command through `Args.settings_table`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from bot.messages import IncomingMessage, Reply

if TYPE_CHECKING:
    from storage.models import Member
    from storage.store import Store

RoleName = Literal["rep", "lead", "admin"]
ROLE_RANK: dict[str, int] = {"rep": 0, "lead": 1, "admin": 2}
ROLE_NAMES: dict[str, str] = {"rep": "成员", "lead": "主管", "admin": "管理员"}


def role_refusal(what: str, needed: str, current: str) -> str:
    """Why a command was refused, and how someone gets the role — a new team's first question."""
    how = {
        "admin": "管理员由部署时的 SALESBOT_ADMINS 或命令 salesbot admin add <账号> 指定。",
        "lead": "主管由管理员在群里发送「设置 主管 @成员」指定。",
    }.get(needed, "")
    return f"「{what}」只有{ROLE_NAMES[needed]}可以使用，你当前的身份是{ROLE_NAMES[current]}。{how}"


class UserError(Exception):
    """A mistake the user should read about: the message is Chinese and, ideally, shows an example."""

    def __init__(self, message: str, *, example: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.example = example

    def text(self) -> str:
        if self.example:
            return f"{self.message}\n示例：{self.example}"
        return self.message


@dataclass
class Args:
    """A command's arguments after the router has normalised the text.

    `text` is everything after the command word with `@mentions` and the declared options taken out;
    `options` maps each option's main key (阶段, also when typed as `stage:`) to its value; `raw` keeps
    the whole argument text. `mentions` are the members named with `@`, already looked up
    in the organisation, in order.
    """

    text: str
    raw: str
    options: dict[str, str] = field(default_factory=dict)
    mentions: list[Member] = field(default_factory=list)
    # The `设置` rows of the router that parsed the command (see `settings_table`).
    settings_table: SettingsTable = field(default_factory=dict)

    @property
    def words(self) -> list[str]:
        return self.text.split()


@dataclass(frozen=True)
class OptionSpec:
    """One `key:value` option a command reads, declared with the command (`options=`).

    Reps type `阶段:报价`, `stage:报价` or `阶段 报价`; all of them are the option `阶段` for the handler
    (`args.options["阶段"]`). The colon form is always the option: a value outside `values`, or one that
    `accepts` rejects, is refused with the valid values rather than kept as note text. The spaced form
    is the option only when its value is valid — `金额 还没定` is what the rep wrote, not an amount — except
    for a closed set of `values`, where `阶段 乱写` is refused too. `tail` options (阻碍:…) take the rest
    of the line, and only in the colon form, since a plan may well contain the word.
    """

    key: str
    aliases: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    accepts: Callable[[str], bool] | None = None
    tail: bool = False
    # How the valid values read in a refusal (defaults to `values` joined).
    valid_text: str = ""

    @property
    def words(self) -> tuple[str, ...]:
        return (self.key, *self.aliases)

    def valid(self, value: str) -> bool:
        if self.values and value not in self.values:
            return False
        return self.accepts is None or self.accepts(value)

    def refusal(self, word: str, value: str, example: str) -> UserError:
        valid = self.valid_text or "、".join(self.values)
        how = "可选" if self.values else "请写成"
        return UserError(f"{word}「{value}」不认识。{how}：{valid}。", example=example)


HandlerResult = Reply | list[Reply] | None
Handler = Callable[[IncomingMessage, Args, "Store", datetime], Awaitable[HandlerResult]]


@dataclass(frozen=True)
class CommandSpec:
    word: str
    alias: str
    handler: Handler
    summary: str
    usage: str
    example: str
    role: RoleName = "rep"
    options: tuple[OptionSpec, ...] = ()
    extra_words: tuple[str, ...] = ()
    details: str = ""
    group: str = ""
    # Only commands that act on people resolve `@名字` to members; elsewhere (跟进, 分享, 求助 …) an
    # @ is part of what the rep wrote and must not turn into a "找不到成员" refusal.
    takes_mentions: bool = False
    # What the command reads first, told from its text (options taken out) before it runs — ("customer",
    # normalised name) — so that a batch of messages reads it for all of them at once (storage.prefetch).
    # Only a hint: a wrong one costs a wasted read, never a wrong answer.
    reads_first: Callable[[str], tuple[str, ...] | None] | None = None

    @property
    def words(self) -> tuple[str, ...]:
        return (self.word, *self.extra_words)


class CommandSet:
    """The commands of one handler module, collected by decorator."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.specs: list[CommandSpec] = []

    def command(
        self,
        word: str,
        alias: str,
        *,
        summary: str,
        usage: str,
        example: str,
        role: RoleName = "rep",
        options: tuple[OptionSpec, ...] = (),
        extra_words: tuple[str, ...] = (),
        details: str = "",
        takes_mentions: bool = False,
        reads_first: Callable[[str], tuple[str, ...] | None] | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.specs.append(
                CommandSpec(
                    word=word,
                    alias=alias,
                    handler=handler,
                    summary=summary,
                    usage=usage,
                    example=example,
                    role=role,
                    options=options,
                    extra_words=extra_words,
                    details=details or (handler.__doc__ or "").strip(),
                    group=self.group,
                    takes_mentions=takes_mentions,
                    reads_first=reads_first,
                )
            )
            return handler

        return register


SettingApply = Callable[[Args, str, "Store", datetime], Awaitable[str]]


@dataclass(frozen=True)
class SettingSpec:
    """One `设置 <name> <值>` row: who may change it, how it reads in the listing, how a value is applied.

    `describe` returns the row's line in the `设置` listing ("" leaves it out); `apply` returns the
    confirmation text, or raises UserError.
    """

    name: str
    role: RoleName
    usage: str
    describe: Callable[[Store], str]
    apply: SettingApply


# Row name → spec, in the order `设置` lists them.
SettingsTable = Mapping[str, SettingSpec]


class SettingSet:
    """The `设置` rows of one area, collected by decorator (as `CommandSet` collects commands)."""

    def __init__(self) -> None:
        self.specs: list[SettingSpec] = []

    def row(
        self, name: str, *, role: RoleName, usage: str, describe: Callable[[Store], str]
    ) -> Callable[[SettingApply], SettingApply]:
        def register(apply: SettingApply) -> SettingApply:
            self.specs.append(SettingSpec(name, role, usage, describe, apply))
            return apply

        return register


def settings_table(*sets: SettingSet) -> SettingsTable:
    """The rows of `sets`, in order; two areas claiming one row name is a programming error."""
    table: dict[str, SettingSpec] = {}
    for setting_set in sets:
        for spec in setting_set.specs:
            if spec.name in table:
                raise ValueError(f"setting 「{spec.name}」 is declared twice")
            table[spec.name] = spec
    return table

"""From a platform-neutral message to a handler's replies, inside one transaction.

normalise text → strip the leading @bot → match command word or /alias (longest first) → take out
options and @mentions → check the role → run the handler → replies. A platform's re-delivery of the
same message stops at the inbound record; a user's mistake becomes a Chinese reply; anything else is
logged with an id and the user gets a short apology carrying that id — never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.logs import log_context
from bot.messages import IncomingMessage, Reply
from bot.metrics import note_duplicate
from handlers.commands import ROLE_RANK, Args, CommandSpec, OptionSpec, SettingsTable, UserError, role_refusal
from storage.database import Database
from storage.inbound import REPLAYED, SIGN_FRESH_S
from storage.models import Member
from storage.store import NoTeamYet, Store
from storage.tenancy import RemovedFromTeam

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger("salesbot.router")

_SPACES = re.compile(r"\s+")
_LEADING_MENTION = re.compile(r"^@\S+\s*")
_MENTION_TOKEN = re.compile(r"(?<![\w.])@([^\s@]{1,64})")
MAX_TEXT_CHARS = 2000
# A member a lead took out of the team (移除) is answered as someone outside it: nothing runs for them.
REMOVED_FROM_TEAM = "你已被移出「{team}」，在这个群里发的命令不再处理。如需重新加入，请联系管理员（设置 成员 @你）。"
NO_TEAM_YET = "我还不知道你属于哪个团队。请先在团队群里 @我 发一条消息（例如：帮助），之后就可以在这里私聊使用了。"

# Called inside the command's transaction with the replies; returns the replies to answer inline.
# The outbox uses it to enqueue what must travel later (announcements, direct messages, replies that
# go back through a response_url), so they commit together with the change that caused them.
ReplySink = Callable[[Store, IncomingMessage, list[Reply], datetime], Awaitable[list[Reply]]]


@functools.cache
def _option_pattern(option: OptionSpec) -> re.Pattern[str]:
    """`阶段:报价`, `stage: 报价` or `阶段 报价` (group 2 is the colon, empty in the spaced form); compiled once.

    A key is a word of its own (line start or a space before it), so 「进入谈判阶段 报价」 keeps its text.
    """
    keys = "|".join(re.escape(w) for w in sorted(option.words, key=len, reverse=True))
    if option.tail:
        return re.compile(rf"\s*({keys})\s*(:)\s*(.*)$", re.I | re.S)
    return re.compile(rf"(?:^|\s)({keys})(?:\s*(:)\s*|\s+)(\S+)", re.I)


def normalise_text(text: str) -> str:
    """Fold what Chinese input methods produce (全角 spaces, ：，＃ and full-width letters) to plain forms."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u200b", "").replace("\ufeff", "")
    return _SPACES.sub(" ", text).strip()


def _take_options(spec: CommandSpec, text: str) -> tuple[dict[str, str], str]:
    """The declared options found in `text` (by main key) and the text without them.

    A value the option does not accept is refused in the colon form (and, for a closed set of values,
    in the spaced form too); a spaced one with a free-form value that does not read (金额 还没定) is
    left in the text, since that is what the rep meant to write.
    """
    options: dict[str, str] = {}
    for option in spec.options:
        for found in _option_pattern(option).finditer(text):
            word, colon, value = found.group(1), found.group(2), found.group(3).strip()
            if not option.valid(value):
                if colon or option.values:
                    raise option.refusal(word, value, spec.example)
                continue
            options[option.key] = value
            text = (text[: found.start()] + " " + text[found.end() :]).strip()
            break
    return options, text


def _note_replays(platform: str, msg_ids: list[str]) -> None:
    """Messages whose (timestamp, sign) pair was first used too long ago: recorded, never run."""
    for msg_id in msg_ids:
        log.warning("replayed signature refused platform=%s msg_id=%s (its pair was first used over %.0f s before)",
                    platform, msg_id, SIGN_FRESH_S)


def _sender(msg: IncomingMessage) -> tuple[str, str] | None:
    """(chat id, user id) of a group message's sender, whom `Store.bind` looks up; None in a private chat."""
    return (msg.chat_id, msg.user_id) if msg.chat_type != "single" and msg.user_id is not None else None


class _Refused(Exception):
    """A handler's UserError, carried out of the transaction so that its writes roll back."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


@dataclass
class _Note:
    """What became of one message (command, outcome), counted once its transaction has committed."""

    command: str = "unknown"
    outcome: str = "ok"  # ok, refused, error, duplicate
    team: str | None = None
    started: float = field(default_factory=time.perf_counter)
    # The command the text matched, when a batch matched it already (to prefetch what it reads).
    match: Match | None = None
    matched: bool = False


@dataclass
class Match:
    spec: CommandSpec
    rest: str
    _options: tuple[dict[str, str], str] | None = field(default=None, repr=False, compare=False)

    def options(self) -> tuple[dict[str, str], str]:
        """The declared options in `rest` and the text without them (`_take_options`), worked out once:
        a batch's prefetch reads them before the command does. An option's refusal is raised afresh each
        time (rare; a kept exception would hold its traceback's frames, and they this Match)."""
        if self._options is None:
            self._options = _take_options(self.spec, self.rest)
        options, text = self._options
        return dict(options), text  # the handler's own copy: a replay of the batch reads them afresh


class Router:
    def __init__(
        self,
        db: Database,
        commands: Sequence[CommandSpec],
        *,
        settings_table: SettingsTable | None = None,
        reply_sink: ReplySink | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics  # None: nobody looks (the console chat)
        self.commands = list(commands)
        # The `设置` rows, assembled by the application with the commands; handed to handlers in `Args`.
        self.settings_table: SettingsTable = dict(settings_table or {})
        self.reply_sink = reply_sink
        self.running = 0
        self.finished = 0
        self.clock = clock
        by_word: list[tuple[str, CommandSpec]] = sorted(
            [(w, s) for s in self.commands for w in s.words], key=lambda p: -len(p[0])
        )
        self._by_alias: dict[str, CommandSpec] = {s.alias.lower(): s for s in self.commands}
        # The words by their first character, longest first: a text is compared with a handful, not all.
        self._by_first: dict[str, list[tuple[str, CommandSpec]]] = {}
        for word, spec in by_word:
            self._by_first.setdefault(word[:1], []).append((word, spec))

    # ----------------------------------------------------------------- matching
    def match(self, text: str) -> Match | None:
        text = normalise_text(text)
        while _LEADING_MENTION.match(text):
            text = _LEADING_MENTION.sub("", text, count=1)
        if text.startswith("/"):
            head, _, rest = text.partition(" ")
            spec = self._by_alias.get(head.lower())
            return Match(spec, rest.strip()) if spec else None
        for word, spec in self._by_first.get(text[:1], ()):
            if text.startswith(word):
                return Match(spec, text[len(word) :].strip())
        return None

    def suggest(self, text: str) -> list[CommandSpec]:
        text = normalise_text(text)
        while _LEADING_MENTION.match(text):
            text = _LEADING_MENTION.sub("", text, count=1)
        head = text.split(" ", 1)[0] if text else ""
        if not head:
            return []
        # Imported on use: only a command that was not understood needs it (2 MB of RSS).
        from rapidfuzz import fuzz, process

        choices = {w: s for s in self.commands for w in (*s.words, s.alias)}
        found = process.extract(head[:12], list(choices), scorer=fuzz.ratio, limit=3, score_cutoff=50)
        seen: list[CommandSpec] = []
        for word, _score, _ in found:
            if choices[word] not in seen:
                seen.append(choices[word])
        return seen

    # ----------------------------------------------------------------- handling
    @contextlib.contextmanager
    def _counting(self, n: int) -> Iterator[None]:
        """Commands running now and finished so far, for the stop line of `salesbot serve`."""
        self.running += n
        try:
            yield
        finally:
            self.running -= n
            self.finished += n

    async def handle(self, msg: IncomingMessage, now: datetime | None = None, *, queued: bool = False) -> list[Reply]:
        """Run one message to completion and return what to answer in its chat.

        `queued=False` (console, WeCom's passive reply): the message is recorded in the command's own
        transaction. `queued=True` (DingTalk, acknowledged before processing): it was recorded already
        (`Store.queue_inbound`) and the command's transaction marks it done with its effects; a message
        that is done already (a second worker or replica got it too) is skipped.
        """
        with self._counting(1):
            return await self._handle(msg, now, queued=queued)

    async def handle_queued(self, msgs: Sequence[IncomingMessage]) -> list[list[Reply]]:
        """Run several recorded (queued) messages in one transaction: group commit under load.

        Each message still has all of its effects or none. They run one after another in one
        transaction; when one of them is refused or fails, the whole transaction rolls back, the ones
        before it run again as a batch, it runs alone (refusal recorded, or apology), and the ones after
        it go on as a batch. So the cost of a refusal is one replay of the messages ahead of it, while a
        batch that goes through pays for one BEGIN/COMMIT instead of one per message, and the outbox
        wakes once for all of their replies.
        """
        with self._counting(len(msgs)):
            return await self._handle_batch(msgs)

    async def _handle(self, msg: IncomingMessage, now: datetime | None = None, *, queued: bool = False) -> list[Reply]:
        with log_context(platform=msg.platform, org=msg.org_key, msg_id=msg.msg_id):
            now = now or self.clock()
            error_id = uuid.uuid4().hex[:8]
            note = _Note()
            try:
                try:
                    replies = await self._attempt(msg, now, queued, note=note)
                except _Refused as refused:
                    # The handler refused (UserError). Whatever it had written rolled back with its
                    # transaction; record the message and queue the refusal in a fresh one. (This used to
                    # be a savepoint around every handler: two round trips on every command, for the
                    # rare one that is refused.)
                    replies = await self._attempt(msg, now, queued, refusal=refused.reply, note=note)
            except Exception:
                note.outcome = "error"
                with log_context(error_id=error_id):
                    log.exception("command failed error_id=%s platform=%s msg_id=%s",
                                  error_id, msg.platform, msg.msg_id)
                    self._observe(note)
                return [Reply(f"抱歉，处理这条消息时出错了（错误编号 {error_id}）。请稍后再试，或把编号告诉管理员。")]
            self._observe(note)
            return replies

    def _observe(self, note: _Note, msg: IncomingMessage | None = None) -> None:
        """Count a finished message (metrics) and say so at DEBUG, in the message's log context (`msg`:
        the context is not set yet). The context is built only when the line will be written."""
        seconds = time.perf_counter() - note.started
        if self.metrics is not None:
            self.metrics.command(note.command, note.outcome, seconds)
        if not log.isEnabledFor(logging.DEBUG):
            return
        where = {"platform": msg.platform, "org": msg.org_key, "msg_id": msg.msg_id} if msg is not None else {}
        with log_context(team=note.team, **where):
            log.debug("command %s %s in %.1f ms", note.command, note.outcome, seconds * 1000)

    async def _handle_batch(self, msgs: Sequence[IncomingMessage]) -> list[list[Reply]]:
        if len(msgs) <= 1:
            return [await self._handle(msg, queued=True) for msg in msgs]
        done = 0
        try:
            async with self.db.transaction() as store:
                # Mark the whole batch processed in one statement; a message someone else finished
                # already (a replica, a recovery pass) is skipped, as in `_attempt_in`.
                # Message ids are unique per organisation: one statement per (platform, org) in the batch.
                fresh: set[tuple[str, str, str]] = set()
                replayed: set[tuple[str, str, str]] = set()
                for platform, org_key in {(m.platform, m.org_key) for m in msgs}:
                    ids = [(m.msg_id, m.inbound_id) for m in msgs if (m.platform, m.org_key) == (platform, org_key)]
                    # Who sent the group messages, read in the same statement on PostgreSQL (see below).
                    senders = {m.msg_id: sender for m in msgs
                               if (m.platform, m.org_key) == (platform, org_key) and (sender := _sender(m))}
                    finished = await store.finish_inbound_many(platform, org_key, ids, self.clock(), senders)
                    fresh |= {(platform, org_key, i) for i, status in finished.items() if status == "done"}
                    replayed |= {(platform, org_key, i) for i, status in finished.items() if status == REPLAYED}
                    _note_replays(platform, [i for i, status in finished.items() if status == REPLAYED])
                # Who is talking, for the whole batch in one SELECT (each message still binds on its own);
                # those read with the finish are not read again.
                await store.prefetch_bindings([(m.platform, m.org_key, *sender) for m in msgs if
                                               (m.platform, m.org_key, m.msg_id) in fresh and (sender := _sender(m))])
                matched = {id(m): self.match(m.text) for m in msgs if (m.platform, m.org_key, m.msg_id) in fresh}
                await self._prefetch_reads(store, [m for m in msgs if id(m) in matched], matched)
                results: list[list[Reply]] = []
                notes: list[_Note] = []
                for msg in msgs:
                    key = (msg.platform, msg.org_key, msg.msg_id)
                    first = key in fresh
                    fresh.discard(key)  # a second copy in the batch is a re-delivery
                    notes.append(_Note(outcome="refused") if key in replayed else
                                 _Note(match=matched.get(id(msg)), matched=id(msg) in matched))
                    if key in replayed:  # recorded, never run (logged above)
                        results.append([])
                        done += 1
                        continue
                    with log_context(platform=msg.platform, org=msg.org_key, msg_id=msg.msg_id):
                        results.append(await self._attempt_in(store, msg, self.clock(), True, first=first,
                                                              note=notes[-1]))
                    done += 1
            for msg, note in zip(msgs, notes, strict=True):
                self._observe(note, msg)
            return results
        except Exception as err:
            if done >= len(msgs):  # the COMMIT itself failed (e.g. a deadlock with another replica)
                log.info(
                    "batch of %d rolled back at commit (%s); running them one by one", len(msgs), type(err).__name__
                )
                return [await self._handle(msg, queued=True) for msg in msgs]
            if not isinstance(err, _Refused):
                log.info("batch of %d rolled back at message %d (%s)", len(msgs), done + 1, type(err).__name__)
            before = await self._handle_batch(msgs[:done])
            alone = await self._handle(msgs[done], queued=True)
            return [*before, alone, *(await self._handle_batch(msgs[done + 1 :]))]

    async def _prefetch_reads(
        self, store: Store, msgs: Sequence[IncomingMessage], matched: dict[int, Match | None]
    ) -> None:
        """What the batch's commands will read first (`CommandSpec.reads_first`), read for all of them at
        once; each command still reads for itself when an earlier one changed what was read."""
        wanted: dict[int, list[tuple[int, int, str, str]]] = {}
        mine: dict[int, list[tuple[int, int]]] = {}
        for msg in msgs:
            binding = store.prefetched.get((msg.platform, msg.org_key, msg.chat_id, msg.user_id or ""))
            match = matched[id(msg)] if binding is not None else None
            if binding is None or match is None or match.spec.reads_first is None:
                continue
            try:
                read = match.spec.reads_first(normalise_text(match.options()[1]))
            except UserError:
                continue  # an option it refuses: the command says so when it runs, the batch goes on
            org, team, member = binding[0], binding[1], binding[2]
            if read is not None and read[0] == "customer":
                wanted.setdefault(org.id, []).append((team.id, member.id, read[1], read[2]))
            elif read is not None and read[0] == "mine":
                mine.setdefault(org.id, []).append((team.id, member.id))
        for org_id, pairs in wanted.items():
            if len(pairs) > 1:  # one: its own SELECT costs the same
                await store.prefetch_customers(org_id, pairs)
        for org_id, members in mine.items():
            if len(members) > 1:
                await store.prefetch_my_customers(org_id, members)

    async def _attempt(
        self, msg: IncomingMessage, now: datetime, queued: bool, refusal: Reply | None = None, *, note: _Note
    ) -> list[Reply]:
        async with self.db.transaction() as store:
            return await self._attempt_in(store, msg, now, queued, refusal, note=note)

    async def _attempt_in(
        self, store: Store, msg: IncomingMessage, now: datetime, queued: bool, refusal: Reply | None = None,
        *, first: bool | None = None, note: _Note,
    ) -> list[Reply]:
        """One message inside an open transaction; `store` is (re)bound to its org, team and sender.

        `first`: whether the message is new, when the caller recorded it already (a batch). `note` learns
        the command and the outcome.
        """
        store.unbind()  # nothing of the previous message of a batch carries over
        if first is None:
            if queued:
                # A group message's sender is read in the same statement (bind finds it), on PostgreSQL.
                status = await store.finish_inbound(msg.platform, msg.org_key, msg.msg_id, now, sender=_sender(msg))
                if status == REPLAYED:
                    _note_replays(msg.platform, [msg.msg_id])
                    note.outcome = "refused"
                    return []
                first = status == "done"
            else:
                first = await store.record_inbound(msg.platform, msg.msg_id, msg.org_key, now)
        if not first:
            note.outcome = "duplicate"
            note_duplicate()
            log.info("duplicate delivery ignored platform=%s msg_id=%s", msg.platform, msg.msg_id)
            return []
        try:
            await store.bind(
                platform=msg.platform,
                org_key=msg.org_key,
                chat_id=msg.chat_id,
                chat_title=msg.chat_title,
                user_id=msg.user_id,
                user_name=msg.user_name,
                now=now,
                msg_id=msg.msg_id,
                private=msg.chat_type == "single",
            )
        except NoTeamYet:
            note.outcome = "refused"
            return [Reply(NO_TEAM_YET)]
        except RemovedFromTeam as removed:
            note.outcome = "refused"
            return [Reply(REMOVED_FROM_TEAM.format(team=removed.team.name))]
        note.team = store.team.name
        with log_context(team=note.team):
            replies = [refusal] if refusal is not None else await self._run(store, msg, now, note)
        if refusal is not None:
            note.outcome = "refused"
        if self.reply_sink is not None:
            replies = await self.reply_sink(store, msg, replies, now)
        return replies

    async def _run(self, store: Store, msg: IncomingMessage, now: datetime, note: _Note) -> list[Reply]:
        note.outcome = "refused"  # until the handler has run: too long, not understood, not allowed
        if len(msg.text) > MAX_TEXT_CHARS:
            return [Reply(f"消息太长了（超过 {MAX_TEXT_CHARS} 字），请精简后再发。")]
        match = note.match if note.matched else self.match(msg.text)
        if match is None:
            return [self._not_understood(msg.text)]
        spec = match.spec
        note.command = spec.alias.lstrip("/")
        if ROLE_RANK[store.role] < ROLE_RANK[spec.role]:
            return [Reply(role_refusal(spec.word, spec.role, store.role))]
        mark = store.write_mark()
        try:
            args = await self._parse_args(store, msg, match, now)
            result = await spec.handler(msg, args, store, now)
        except UserError as err:
            # A handler that refuses leaves nothing behind. Most refuse before writing anything: their
            # refusal is simply the answer, in this transaction (and a batch goes on). One that wrote
            # first has the whole transaction rolled back (see `handle`), while the message is still
            # recorded so that a re-delivery does not run it again.
            if not store.wrote_since(mark):
                return [Reply(err.text())]
            raise _Refused(Reply(err.text())) from None
        note.outcome = "ok"
        if result is None:
            return []
        return [result] if isinstance(result, Reply) else list(result)

    def _not_understood(self, text: str) -> Reply:
        suggestions = self.suggest(text)
        if suggestions:
            s = suggestions[0]
            return Reply(f"没看懂这条指令。你是不是想用「{s.word}」（{s.alias}）？\n用法：{s.usage}\n示例：{s.example}")
        return Reply("没看懂这条指令。发送「帮助」查看全部命令，例如：认领 北京华为技术有限公司")

    async def _parse_args(self, store: Store, msg: IncomingMessage, match: Match, now: datetime) -> Args:
        spec, rest = match.spec, match.rest
        options, text = match.options()
        mentions: list[Member] = []
        tokens = _MENTION_TOKEN.findall(text) if spec.takes_mentions else []
        if tokens:
            mentions = await self._resolve_mentions(store, msg, tokens, now)
            text = _MENTION_TOKEN.sub(" ", text)
        return Args(
            text=normalise_text(text), raw=rest, options=options, mentions=mentions, settings_table=self.settings_table
        )

    async def _resolve_mentions(
        self, store: Store, msg: IncomingMessage, tokens: list[str], now: datetime
    ) -> list[Member]:
        unnamed = [m for m in msg.mentions if m.name is None and m.user_id != msg.user_id]
        members: list[Member] = []
        for index, token in enumerate(tokens):
            platform = next((m for m in msg.mentions if token in (m.name, m.user_id)), None)
            if platform is None and len(unnamed) == len(tokens):
                platform = unnamed[index]
            if platform is not None:
                member = await store.ensure_member(store.org, platform.user_id, platform.name or token, now)
            else:
                found = await store.find_members(token)
                if not found:
                    raise UserError(
                        f"找不到成员「@{token}」。请在群里 @ 他本人，或让他先在群里给我发一条消息（如：帮助）。"
                    )
                if len({m.id for m in found}) > 1:
                    names = "、".join(f"{m.name}（{m.user_id}）" for m in found)
                    raise UserError(f"「@{token}」对应多位成员：{names}。请用对方的账号 ID 来 @。")
                member = found[0]
            if member not in members:
                members.append(member)
        return members

"""A burst of commands shares one transaction and reads what its commands name once, up front
(storage.prefetch). A later command of the burst must still see what an earlier one changed: a claim,
a won deal, a release, a new next date — exactly as if each had run alone."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import event, select

from storage.models import Customer, Deal, FollowUp
from tests.dingtalk_support import DINGTALK_KEY, RunningBot, dingtalk_settings, running_bot, text_of
from tests.fakes.dingtalk import FakeDingTalk

PAUSED = {"workers": 0, "recover_every": None}  # acknowledges and records; the test starts the worker


@pytest.fixture
async def ding() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk() as fake:
        yield fake


Said = tuple[str, ...]  # text, staff id, nick[, group]


async def say(bot: RunningBot, ding: FakeDingTalk, text: str, staff: str, nick: str, group: str = "cid123") -> None:
    status, _ = await bot.post_robot(*ding.robot_text_callback(text, staff, nick, conversation_id=group))
    assert status == 200
    await bot.drain()


async def beforehand(ding: FakeDingTalk, db, messages: list[Said]) -> None:  # type: ignore[no-untyped-def]
    """What the team said before the burst, one message at a time."""
    async with running_bot(dingtalk_settings(ding), db) as bot:
        for said in messages:
            await say(bot, ding, *said)


async def burst(ding: FakeDingTalk, db, messages: list[Said],  # type: ignore[no-untyped-def]
                statements: list[str] | None = None) -> list[str]:
    """Acknowledge every message with the queue stopped, then let one worker take them in one batch
    (the SQL it runs goes to `statements`)."""
    webhooks: list[str] = []

    def record(conn, cursor, statement, params, context, many) -> None:  # type: ignore[no-untyped-def]
        assert statements is not None
        statements.append(" ".join(statement.split()))

    async with running_bot(dingtalk_settings(ding), db, PAUSED) as backed_up:
        for text, staff, nick, *group in messages:
            headers, body = ding.robot_text_callback(text, staff, nick, conversation_id=group[0] if group else "cid123")
            webhooks.append(json.loads(body)["sessionWebhook"])
            assert (await backed_up.post_robot(headers, body))[0] == 200
        inbound = backed_up.app[DINGTALK_KEY]
        if statements is not None:
            event.listen(db.engine.sync_engine, "before_cursor_execute", record)
        try:
            inbound.start(workers=1, recover_every=None)
            await inbound.idle()
        finally:
            if statements is not None:
                event.remove(db.engine.sync_engine, "before_cursor_execute", record)
        await backed_up.drain()
        assert inbound.batch_sizes == {len(messages): 1}
    # Groups are delivered to side by side: each answer is found by its message's own sessionWebhook.
    # Groups are delivered to side by side, each in order (through its first message's sessionWebhook):
    # the n-th answer of a group is for its n-th message (merged answers, from a saturated group, are
    # one text for all of its messages).
    sessions = [webhook.rsplit("session=", 1)[-1] for webhook in webhooks]
    groups = [group[0] if group else "cid123" for _, _, _, *group in messages]
    by_group: dict[str, list[str]] = {}
    for r in ding.session_messages():
        for session, group in zip(sessions, groups, strict=True):
            if r.query.get("session") == session:
                by_group.setdefault(group, []).append(text_of(r))
    answered = []
    for i, group in enumerate(groups):
        texts = by_group.get(group, [])
        answered.append(texts[groups[:i].count(group)] if len(texts) == groups.count(group) else "\n".join(texts))
    return answered


async def test_a_customer_claimed_earlier_in_the_burst_takes_a_follow_up_later_in_it(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    await beforehand(ding, db, [
        ("认领 小米科技", "lisi", "李四"),
    ])
    answered = await burst(ding, db, [
        ("跟进 京东 先问问", "zhangsan", "张三"),  # not claimed yet
        ("跟进 小米 报价已发", "lisi", "李四"),
        ("认领 京东", "zhangsan", "张三"),
        ("跟进 京东 第一次拜访", "zhangsan", "张三"),
    ])
    assert "找不到客户" in answered[0]
    assert "已记录" in answered[1] and "认领成功" in answered[2]
    assert "已记录" in answered[3] and "京东" in answered[3]
    async with db.session() as s:
        notes = (await s.execute(select(FollowUp.content).order_by(FollowUp.id))).scalars().all()
    assert list(notes) == ["报价已发", "第一次拜访"]


async def test_a_deal_won_earlier_in_the_burst_is_no_longer_open_later_in_it(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    await beforehand(ding, db, [
        ("认领 北京华为技术有限公司", "zhangsan", "张三"),
        ("认领 小米科技", "lisi", "李四"),
    ])
    answered = await burst(ding, db, [
        ("跟进 小米 拜访", "lisi", "李四"),
        ("跟进 华为 签了 阶段:赢单 金额:100万", "zhangsan", "张三"),
        ("跟进 华为 追加 金额:120万", "zhangsan", "张三"),  # the deal is won: nothing open to move
        ("赢单 华为", "zhangsan", "张三"),
    ])
    assert "已记录" in answered[0] and "已记录" in answered[1]
    assert "没有进行中的商机" in answered[2] and "没有进行中的商机" in answered[3]
    async with db.session() as s:
        deal = (await s.execute(select(Deal).join(Customer, Customer.id == Deal.customer_id)
                                .where(Customer.name == "北京华为技术有限公司"))).scalar_one()
    assert deal.status == "won" and deal.amount_fen == 100_0000_00


async def test_a_customer_released_earlier_in_the_burst_is_in_the_pool_later_in_it(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    await beforehand(ding, db, [
        ("认领 小米科技", "lisi", "李四"),
        ("认领 京东", "zhangsan", "张三"),
    ])
    answered = await burst(ding, db, [
        ("跟进 京东 拜访", "zhangsan", "张三"),
        ("释放 小米", "lisi", "李四"),
        ("跟进 小米 还想跟", "lisi", "李四"),
    ])
    assert "已记录" in answered[0] and "小米" in answered[1]
    assert "公海" in answered[2] and "请先认领" in answered[2]


async def test_two_follow_ups_of_one_customer_in_a_burst_leave_the_later_next_date(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    await beforehand(ding, db, [
        ("认领 小米科技", "lisi", "李四"),
        ("认领 京东", "zhangsan", "张三"),
    ])
    answered = await burst(ding, db, [
        ("跟进 小米 约了 下次:2099-03-01", "lisi", "李四"),
        ("跟进 京东 拜访", "zhangsan", "张三"),
        ("跟进 小米 改期 下次:2099-04-02", "lisi", "李四"),
    ])
    assert all("已记录" in text for text in answered)
    async with db.session() as s:
        xiaomi = (await s.execute(select(Customer).where(Customer.name == "小米科技"))).scalar_one()
    assert xiaomi.next_followup_on is not None and xiaomi.next_followup_on.isoformat() == "2099-04-02"


async def test_two_follow_ups_of_one_customer_are_written_in_one_statement_and_the_later_date_stays(
    ding: FakeDingTalk, db
) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL the rows a batch leaves waiting go as one statement (storage.deferred): both follow-ups,
    their customer's UPDATEs, their audit rows and their replies. Of the customer's two UPDATEs in it the
    later one is what stays, as when they ran one after the other."""
    await beforehand(ding, db, [("认领 小米科技", "lisi", "李四")])
    statements: list[str] = []
    answered = await burst(ding, db, [
        ("跟进 小米 约了 下次:2099-03-01", "lisi", "李四"),
        ("跟进 小米 改期 下次:2099-04-02", "lisi", "李四"),
    ], statements)
    assert all("已记录" in text for text in answered)
    async with db.session() as s:
        xiaomi = (await s.execute(select(Customer).where(Customer.name == "小米科技"))).scalar_one()
        notes = (await s.execute(select(FollowUp.content).where(FollowUp.customer_id == xiaomi.id)
                                 .order_by(FollowUp.id))).scalars().all()
    assert xiaomi.next_followup_on is not None and xiaomi.next_followup_on.isoformat() == "2099-04-02"
    assert [n.split()[0] for n in notes] == ["约了", "改期"]
    if db.engine.dialect.name == "postgresql":
        [write] = [s for s in statements if "INSERT INTO followups" in s]
        assert all(part in write for part in ("UPDATE customers", "INSERT INTO audit_log", "INSERT INTO outbox"))


async def test_a_lone_message_is_marked_done_and_its_sender_read_in_one_statement(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    await beforehand(ding, db, [("认领 小米科技", "lisi", "李四")])
    statements: list[str] = []
    [answer] = await burst(ding, db, [("跟进 小米 拜访", "lisi", "李四")], statements)
    assert "已记录" in answer
    if db.engine.dialect.name == "postgresql":
        [read] = [s for s in statements if re.search(r"(FROM|JOIN) members\b", s)]
        assert "UPDATE inbound_messages" in read


async def test_a_burst_of_follow_ups_by_different_reps_reads_their_customers_once(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    """The point of reading ahead: ten reps' 跟进 in one batch cost one customer SELECT, not ten."""
    reps = [(f"rep{n}", f"销售{n}", f"客户{n}号") for n in range(10)]
    async with running_bot(dingtalk_settings(ding), db) as bot:
        for staff, nick, name in reps:
            await say(bot, ding, f"认领 {name}", staff, nick)
    statements: list[str] = []
    answered = await burst(ding, db, [(f"跟进 {name} 拜访", staff, nick) for staff, nick, name in reps], statements)
    assert all("已记录" in text for text in answered)
    assert len([s for s in statements if s.startswith("SELECT") and re.search(r"(FROM|JOIN) customers\b", s)]) == 1


async def test_mine_in_a_burst_lists_each_reps_own_and_sees_a_next_date_set_just_before(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    await beforehand(ding, db, [
        ("认领 小米科技", "lisi", "李四"),
        ("认领 京东", "lisi", "李四"),
        ("认领 北京华为技术有限公司", "zhangsan", "张三"),
        ("跟进 小米 约了 下次:2099-03-01", "lisi", "李四"),
        ("跟进 京东 约了 下次:2099-05-01", "lisi", "李四"),
    ])
    answered = await burst(ding, db, [
        ("我的", "zhangsan", "张三"),
        ("我的", "lisi", "李四"),
        ("跟进 京东 提前了 下次:2099-02-01", "lisi", "李四"),
        ("我的", "lisi", "李四"),
    ])
    assert "华为" in answered[0] and "小米" not in answered[0]
    before, after = answered[1], answered[3]
    assert before.index("小米") < before.index("京东")  # 03-01 before 05-01
    assert after.index("京东") < after.index("小米")  # 京东 moved to 02-01
    assert "华为" not in after


async def test_a_change_the_orm_writes_after_a_waiting_follow_up_update_is_not_undone(db) -> None:  # type: ignore[no-untyped-def]
    """A 跟进's UPDATE of its customer waits for COMMIT; a later change of the same column in the same
    transaction (an import, a merge) must still be what is stored."""
    from datetime import UTC, datetime, timedelta

    first = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    async with db.transaction() as store:
        await store.bind(platform="console", org_key="local", chat_id="g", chat_title="组", user_id="u",
                         user_name="张三", now=first)
        claim = await store.claim_customer("小米科技", "小米科技", first)
        customer = claim.customer
        await store.add_followup(customer, "拜访", first + timedelta(hours=1))  # its UPDATE waits
        later = first + timedelta(hours=2)
        customer.last_activity_at = later  # the ORM's own change, flushed before COMMIT
    async with db.session() as s:
        stored = (await s.execute(select(Customer.last_activity_at))).scalar_one()
    assert (stored if stored.tzinfo else stored.replace(tzinfo=UTC)) == later


async def test_reps_of_several_teams_searching_in_one_burst_each_get_what_they_may_see(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    """Names a team does not have by that key are searched for the whole burst at once; each rep still
    sees only their team's customers, the company pool and their collaborations."""
    await beforehand(ding, db, [
        ("认领 小米科技", "a1", "甲一", "cidA"),
        ("认领 小米之家", "b1", "乙一", "cidB"),
        ("认领 京东物流", "b1", "乙一", "cidB"),
        ("认领 百度在线", "c1", "丙一", "cidC"),
        ("帮助", "c2", "丙二", "cidA"),
        ("协作 百度 @c2", "c1", "丙一", "cidC"),
        ("跟进 小米 先聊聊", "a1", "甲一", "cidA"),  # warms nothing: runs alone
    ])
    statements: list[str] = []
    answered = await burst(ding, db, [
        ("跟进 小米 拜访", "a1", "甲一", "cidA"),  # team A's only 小米
        ("跟进 小米 拜访", "b1", "乙一", "cidB"),  # team B has one 小米 too, its own
        ("跟进 京东物留 拜访", "b1", "乙一", "cidB"),  # a typo: B's own look-alike is suggested
        ("跟进 京东物留 拜访", "a1", "甲一", "cidA"),  # A cannot see B's 京东物流
        ("跟进 百度 拜访", "c2", "丙二", "cidA"),  # c2 sits in A's group, collaborates on C's 百度
    ], statements)
    assert "已记录" in answered[0] and "小米科技" in answered[0]
    assert "已记录" in answered[1] and "小米之家" in answered[1]
    assert "你是不是指" in answered[2] and "京东物流" in answered[2]
    assert "找不到客户" in answered[3] and "京东物流" not in answered[3]
    assert "已记录" in answered[4] and "百度在线" in answered[4]
    customer_reads = [s for s in statements if s.startswith("SELECT") and " customers" in s]
    assert len(customer_reads) == 3  # the teams' own names, the searches, the look-alikes: one each


async def test_a_follow_up_with_a_wrong_option_is_refused_without_unsettling_the_burst(  # type: ignore[no-untyped-def]
    ding: FakeDingTalk, db, caplog: pytest.LogCaptureFixture
) -> None:
    await beforehand(ding, db, [
        ("认领 小米科技", "lisi", "李四"),
        ("认领 京东", "zhangsan", "张三"),
    ])
    caplog.set_level("INFO", logger="salesbot.router")
    answered = await burst(ding, db, [
        ("跟进 小米 报价已发", "lisi", "李四"),
        ("跟进 京东 先问问 阶段:乱写", "zhangsan", "张三"),
        ("跟进 京东 第一次拜访 阶段:初访", "zhangsan", "张三"),
    ])
    assert "已记录" in answered[0]
    assert "阶段「乱写」不认识" in answered[1] and "示例" in answered[1]
    assert "已记录" in answered[2]
    assert not [r for r in caplog.records if "rolled back" in r.getMessage()]  # one transaction, no replays
    async with db.session() as s:
        notes = (await s.execute(select(FollowUp.content).order_by(FollowUp.id))).scalars().all()
    assert list(notes) == ["报价已发", "第一次拜访"]

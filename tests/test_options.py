"""Options as reps type them: English keys, a space instead of the colon, and unknown values refused."""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select

from storage.models import Customer, Deal, FollowUp, StandupAnswer


async def _customer(db) -> SimpleNamespace:  # type: ignore[no-untyped-def]
    """The one customer's next step with its (one) deal's stage and amount."""
    async with db.session() as s:
        customer = (await s.execute(select(Customer))).scalar_one()
        deal = (await s.execute(select(Deal))).scalar_one()
    return SimpleNamespace(stage=deal.stage, amount_fen=deal.amount_fen, next_followup_on=customer.next_followup_on)


async def test_english_option_keys_are_read_as_options(bot, db) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    [reply] = await bot.say("跟进 华为 已约拜访 stage:初访 amount:50万 next:下周一", user="张三")
    assert "线索 → 初访" in reply and "50万" in reply and "11-30" in reply
    customer = await _customer(db)
    assert (customer.stage, customer.amount_fen, str(customer.next_followup_on)) == ("初访", 50_000_000, "2026-11-30")
    async with db.session() as s:
        record = (await s.execute(select(FollowUp))).scalar_one()
    assert record.content == "已约拜访"


async def test_a_space_instead_of_the_colon_is_an_option(bot, db) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    [reply] = await bot.say("跟进 华为 客户认可方案 阶段 谈判 金额 80万 Next 周五", user="张三")
    assert "线索 → 谈判" in reply and "80万" in reply
    customer = await _customer(db)
    assert (customer.stage, customer.amount_fen) == ("谈判", 80_000_000)
    async with db.session() as s:
        assert (await s.execute(select(FollowUp.content))).scalar_one() == "客户认可方案"


async def test_an_unknown_stage_is_refused_with_the_valid_stages(bot, db) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    for text in ("跟进 华为 聊了聊 阶段:乱写", "跟进 华为 聊了聊 stage:乱写", "跟进 华为 聊了聊 阶段 乱写"):
        [reply] = await bot.say(text, user="张三")
        assert "乱写" in reply and "不认识" in reply and "初访" in reply and "谈判" in reply, reply
    async with db.session() as s:
        assert (await s.execute(select(FollowUp))).first() is None


async def test_an_unreadable_amount_or_date_after_a_colon_is_refused(bot, db) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    [reply] = await bot.say("跟进 华为 聊了聊 amount:很多", user="张三")
    assert "很多" in reply and "50万" in reply
    [reply] = await bot.say("跟进 华为 聊了聊 下次:改天", user="张三")
    assert "改天" in reply and "周五" in reply
    async with db.session() as s:
        assert (await s.execute(select(FollowUp))).first() is None


async def test_a_spaced_word_with_a_free_form_value_that_does_not_read_stays_text(bot, db) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    [reply] = await bot.say("跟进 华为 金额 还没定 下次 再约", user="张三")
    assert "已记录" in reply
    async with db.session() as s:
        assert (await s.execute(select(FollowUp.content))).scalar_one() == "金额 还没定 下次 再约"
    assert (await _customer(db)).amount_fen is None


async def test_a_stage_word_inside_the_text_is_not_an_option(bot, db) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    await bot.say("跟进 华为 进入下一阶段 报价前再确认", user="张三")
    assert (await _customer(db)).stage == "线索"


async def test_standup_blocker_in_english(bot, db) -> None:
    [reply] = await bot.say("晨会 拜访华为 blocker: 报价审批慢", user="张三")
    assert "阻碍：报价审批慢" in reply
    async with db.session() as s:
        answer = (await s.execute(select(StandupAnswer))).scalar_one()
    assert (answer.plan, answer.blockers) == ("拜访华为", "报价审批慢")

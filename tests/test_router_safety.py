"""Bad input gets a Chinese answer with an example; a failed command leaves nothing behind; a message
delivered twice has one effect; organisations never see each other's data."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from handlers import customers
from storage.models import AuditLog, Customer, InboundMessage


async def test_an_unknown_command_suggests_the_nearest_one(bot) -> None:
    [reply] = await bot.say("认令 华为", user="张三")
    assert "你是不是想用「认领」" in reply and "示例" in reply
    [reply] = await bot.say("今天天气不错", user="张三")
    assert "帮助" in reply


async def test_help_lists_every_command_and_explains_one(bot) -> None:
    [listing] = await bot.say("帮助", user="张三")
    for word in (
        "认领", "释放", "转交", "协作", "跟进", "赢单", "输单", "客户", "我的", "公海", "求助", "接", "解决", "求助列表"
    ):
        assert f"· {word}（" in listing
    [detail] = await bot.say("/help 认领", user="张三")
    assert "用法：认领 <客户名>" in detail and "示例" in detail


async def test_the_bot_mention_and_english_aliases_work(bot) -> None:
    [reply] = await bot.say("@销售助手 /claim 阿里巴巴（中国）有限公司", user="张三")
    assert "认领成功" in reply


async def test_a_message_delivered_twice_has_one_effect(bot, db) -> None:
    first = await bot.say("认领 滴滴出行", user="张三", msg_id="dup-1")
    second = await bot.say("认领 滴滴出行", user="张三", msg_id="dup-1")
    assert "认领成功" in first[0] and second == []
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(InboundMessage))).scalar_one() == 1


async def test_a_command_that_fails_half_way_leaves_nothing_behind(bot, db, monkeypatch) -> None:
    original = customers.who

    def boom(member):  # noqa: ANN001 — fails after the customer row was inserted, while replying
        raise RuntimeError("database went away")

    monkeypatch.setattr(customers, "who", boom)
    [reply] = await bot.say("认领 蔚来汽车", user="张三")
    monkeypatch.setattr(customers, "who", original)
    assert "错误编号" in reply and "Traceback" not in reply
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Customer))).scalar_one() == 0
        assert (await s.execute(select(func.count()).select_from(AuditLog))).scalar_one() == 0
        assert (await s.execute(select(func.count()).select_from(InboundMessage))).scalar_one() == 0
    [reply] = await bot.say("认领 蔚来汽车", user="张三")
    assert "认领成功" in reply


async def test_only_admins_make_leads_and_only_leads_move_others_customers(bot) -> None:
    await bot.join("李四", "王五")  # they speak in the group before they are @-ed
    await bot.say("认领 理想汽车", user="张三")
    [reply] = await bot.say("转交 理想 @李四", user="王五")
    assert "只有负责人或主管" in reply
    [reply] = await bot.say("设置 主管 @王五", user="张三")
    assert "只有管理员" in reply
    [reply] = await bot.say("设置 主管 @王五", user="老板")
    assert "主管" in reply and "@王五" in reply
    [reply] = await bot.say("转交 理想 @李四", user="王五")
    assert "转交给 @李四" in reply
    [reply] = await bot.say("释放 理想", user="王五")
    assert "公海" in reply
    [reply] = await bot.say("设置 上限 10", user="王五")
    assert "只有管理员" in reply


async def test_organisations_never_see_each_others_customers(make_bot) -> None:
    acme = make_bot(org="corp-acme")
    other = make_bot(org="corp-other")
    await acme.say("认领 招商银行", user="张三")
    [reply] = await other.say("认领 招商银行", user="张三")
    assert "认领成功" in reply
    [reply] = await other.say("客户 招商", user="李四")
    assert "负责人：张三" in reply
    [pool] = await other.say("公海", user="李四")
    assert "没有客户" in pool
    await acme.say("释放 招商", user="张三")
    [pool] = await other.say("公海", user="李四")
    assert "招商银行" not in pool


async def test_teams_of_one_organisation_keep_their_own_customers(make_bot) -> None:
    east = make_bot(team="华东组")
    west = make_bot(team="华西组")
    await east.say("认领 中信证券", user="张三")
    [reply] = await west.say("客户 中信", user="李四")
    assert "找不到客户" in reply


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(max_size=80)
    | st.from_regex(r"(认领|跟进|求助|接|解决|设置|转交|/claim|/take) ?[#@:：\w ]{0,30}", fullmatch=True)
)
async def test_no_input_text_makes_the_router_raise(bot, text: str) -> None:
    replies = await bot.say(text, user="张三")
    for reply in replies:
        assert "错误编号" not in reply, (text, reply)


async def test_a_private_chat_is_scoped_to_the_members_team(bot) -> None:
    from dataclasses import replace

    lone = bot.message("我的", user="新人")
    [reply] = await bot.router.handle(replace(lone, chat_type="single", chat_id="dm-新人"))
    assert "先在团队群里" in reply.text
    await bot.say("认领 商汤科技", user="张三")
    private = bot.message("我的", user="张三")
    [reply] = await bot.router.handle(replace(private, chat_type="single", chat_id="dm-张三"))
    assert "商汤科技" in reply.text


async def test_an_admin_sets_the_organisations_time_zone(bot) -> None:
    [reply] = await bot.say("设置 时区 Asia/Tokyo", user="张三")
    assert "只有管理员" in reply
    [reply] = await bot.say("设置 时区 火星", user="老板")
    assert "不认识时区" in reply and "示例" in reply
    [reply] = await bot.say("设置 时区 东京", user="老板")
    assert "Asia/Tokyo" in reply
    [settings] = await bot.say("设置", user="张三")
    assert "时区（整个企业）：Asia/Tokyo" in settings


def test_new_organisations_start_in_the_configured_time_zone(tmp_path) -> None:
    from tests.test_cli_and_serve import run_cli

    db = f"sqlite:///{tmp_path}/tz.db"
    result = run_cli("chat", "--db", db, "--user", "张三", stdin="设置\n", env={"SALESBOT_TIMEZONE": "Asia/Singapore"})
    assert result.returncode == 0, result.stderr
    assert "时区（整个企业）：Asia/Singapore" in result.stdout


async def test_an_at_sign_in_free_text_is_kept_as_written(bot) -> None:
    [reply] = await bot.say("分享 竞品应对 客户提到@某竞品 时先问预算", user="张三")
    assert "找不到成员" not in reply
    [found] = await bot.say("搜 竞品", user="李四")
    assert "@某竞品" in found
    await bot.say("认领 京东方", user="张三")
    [reply] = await bot.say("跟进 京东方 约了@采购部 下周见面", user="张三")
    assert "已记录" in reply
    [card] = await bot.say("客户 京东方", user="张三")
    assert "约了@采购部 下周见面" in card

"""The board's customer pages: the list filtered by owner, stage and idle days, with a name search; one
customer's deals, contacts and follow-up timeline; names shown as text, never as markup."""

from __future__ import annotations

import re

from tests.board_support import link_in


def names(page: str) -> list[str]:
    return re.findall(r"<li><a href=\"/board/[^\"]+/customers/\d+\"><b>([^<]*)</b>", page)


async def seed(bot, clock) -> None:  # type: ignore[no-untyped-def]
    await bot.join("张三", "李四")
    clock.set_local("2026-11-02 10:00")
    await bot.say("认领 北京华为技术有限公司", user="张三")
    await bot.say("认领 小米科技", user="李四")
    clock.set_local("2026-11-20 10:00")
    await bot.say("认领 深圳腾讯计算机系统有限公司", user="张三")
    await bot.say("跟进 腾讯 报价已发 阶段:报价 金额:80万", user="张三")
    await bot.say("联系人 腾讯 王强 采购总监 138-0013-8000", user="张三")
    await bot.say("跟进 小米 约了下周 阶段:初访", user="李四")
    await bot.say("认领 百度在线", user="李四")
    await bot.say("释放 百度", user="李四")
    clock.set_local("2026-11-27 10:00")


async def test_the_list_filters_by_owner_stage_idle_and_name(bot, board, clock) -> None:
    await seed(bot, clock)
    url = link_in(await bot.say("看板 链接", user="老板"))
    _, page, _ = await board.get(f"{url}/customers")
    assert "共 4 个客户" in page
    assert names(page)[0] in ("百度在线", "小米科技", "深圳腾讯计算机系统有限公司")  # most recently active first
    member_ids = dict((name, int(i)) for i, name in re.findall(r'<option value="(\d+)" >([^<]+)</option>', page))
    _, mine, _ = await board.get(f"{url}/customers?owner={member_ids['张三']}")
    assert sorted(names(mine)) == ["北京华为技术有限公司", "深圳腾讯计算机系统有限公司"]
    _, pool, _ = await board.get(f"{url}/customers?owner=0")
    assert names(pool) == ["百度在线"]
    _, quoted, _ = await board.get(f"{url}/customers?stage=报价")
    assert names(quoted) == ["深圳腾讯计算机系统有限公司"] and "80万" in quoted
    _, idle, _ = await board.get(f"{url}/customers?idle=14")
    assert names(idle) == ["北京华为技术有限公司"] and "25 天前跟进" in idle
    _, found, _ = await board.get(f"{url}/customers?q=腾讯")
    assert names(found) == ["深圳腾讯计算机系统有限公司"] and "共 1 个客户" in found
    _, none, _ = await board.get(f"{url}/customers?q=%25")
    assert "共 0 个客户" in none  # a % is a character, not a wildcard
    status, odd, _ = await board.get(f"{url}/customers?owner=abc&idle=-3&stage=乱写&page=0")
    assert status == 200 and "共 4 个客户" in odd


async def test_a_customer_page_shows_deals_contacts_and_the_timeline(bot, board, clock) -> None:
    await seed(bot, clock)
    url = link_in(await bot.say("看板 链接", user="老板"))
    _, listing, _ = await board.get(f"{url}/customers?q=腾讯")
    [path] = re.findall(r'href="(/board/[^"]+/customers/\d+)"', listing)
    status, page, headers = await board.get(board.url + path)
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert "深圳腾讯计算机系统有限公司" in page and "负责人 张三" in page
    assert "报价" in page and "80万" in page and "跟进中" in page
    assert "王强" in page and "采购总监" in page and "138-0013-8000" in page
    assert "2026-11-20 10:00" in page and "报价已发" in page
    status, missing, _ = await board.get(f"{url}/customers/999999")
    assert status == 200 and "找不到这个客户" in missing


async def test_names_and_notes_are_shown_as_text(bot, board, clock) -> None:
    await bot.say("认领 <script>alert(1)</script>科技", user="张三")
    await bot.say('跟进 科技 "><img src=x onerror=alert(2)>', user="张三")
    url = link_in(await bot.say("看板 链接", user="老板"))
    _, listing, _ = await board.get(f"{url}/customers")
    assert "<script>alert" not in listing and "&lt;script&gt;alert(1)&lt;/script&gt;科技" in listing
    [path] = re.findall(r'href="(/board/[^"]+/customers/\d+)"', listing)
    _, page, _ = await board.get(board.url + path)
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page

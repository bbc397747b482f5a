"""看板 链接: a lead gets a signed, expiring link to the team's web board; tampered, expired or revoked links
open nothing; the pages are read-only, scoped to the team and carry the security headers."""

from __future__ import annotations

import base64
import logging

from storage.board_links import BoardConfig
from tests.board_support import link_in


async def test_without_a_public_url_the_command_says_what_to_set(bot, db) -> None:
    db.board = BoardConfig()
    [answer] = await bot.say("看板 链接", user="老板")
    assert "SALESBOT_PUBLIC_URL" in answer and "/board/" not in answer


async def test_a_rep_cannot_ask_for_the_link(bot, board) -> None:
    [answer] = await bot.say("看板 链接", user="张三")
    assert "只有主管可以使用" in answer and "/board/" not in answer


async def test_a_lead_gets_the_link_privately_and_it_opens_the_team_board(bot, board) -> None:
    await bot.join("李四")
    await bot.say("设置 主管 @李四", user="老板")
    answers = await bot.say("/board-link", user="李四")
    assert answers[0] == "🔗 看板链接已私信发给你（7 天内有效）。"
    assert answers[1].startswith("（私信 李四）📊 销售一组 网页看板")
    status, page, headers = await board.get(link_in(answers))
    assert status == 200 and "销售一组" in page and "目标进度" in page
    assert "script-src 'self'" in headers["Content-Security-Policy"] and "unsafe-inline" not in page
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"


async def test_a_tampered_link_gets_a_chinese_403_with_no_data(bot, board) -> None:
    await bot.say("认领 华为技术", user="张三")
    url = link_in(await bot.say("看板 链接", user="老板"))
    payload, mac = url.rsplit(".", 1)
    huge = base64.urlsafe_b64encode(b'{"o":99999999999999999999,"t":1}').decode().rstrip("=")
    for bad in (f"{payload}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}", f"{payload}x.{mac}", url + "/../x",
                f"{board.url}/board/nonsense", f"{board.url}/board/{huge}.{mac}"):
        status, page, headers = await board.get(bad)
        assert status in (403, 404), bad
        assert "华为" not in page and "销售一组" not in page
        if status == 403:
            assert "链接无效" in page and headers["Cache-Control"] == "no-store"


async def test_a_link_expires_after_the_team_s_validity(bot, board, clock) -> None:
    url = link_in(await bot.say("看板 链接", user="老板"))
    clock.advance(days=6, hours=23)
    assert (await board.get(url))[0] == 200
    clock.advance(hours=2)
    status, page, _ = await board.get(url)
    assert status == 403 and "链接无效" in page
    assert "30 天内有效" in (await bot.say("设置 看板有效期 30天", user="老板"))[0]
    url = link_in(await bot.say("看板 链接", user="老板"))
    clock.advance(days=29)
    assert (await board.get(url))[0] == 200


async def test_revoking_stops_every_link_of_the_team_only(bot, make_bot, board) -> None:
    other = make_bot(team="销售二组")
    first = link_in(await bot.say("看板 链接", user="老板"))
    second = link_in(await bot.say("看板 链接", user="老板"))
    theirs = link_in(await other.say("看板 链接", user="老板"))
    [answer] = await bot.say("看板 链接 撤销", user="老板")
    assert "作废" in answer
    assert (await board.get(first))[0] == 403 and (await board.get(second))[0] == 403
    assert (await board.get(theirs))[0] == 200
    assert (await board.get(link_in(await bot.say("看板 链接", user="老板"))))[0] == 200


async def test_the_validity_setting_is_checked(bot) -> None:
    [answer] = await bot.say("设置 看板有效期 365天", user="老板")
    assert "1 到 90 天" in answer and "示例：设置 看板有效期 7天" in answer
    [answer] = await bot.say("设置 看板有效期 14天", user="老板")
    assert "14 天内有效" in answer


async def test_another_team_s_customer_is_not_on_the_board(bot, make_bot, board) -> None:
    other = make_bot(team="销售二组")
    await other.say("认领 腾讯科技", user="王五")
    url = link_in(await bot.say("看板 链接", user="老板"))
    status, page, _ = await board.get(f"{url}/customers")
    assert status == 200 and "腾讯" not in page
    for customer_id in range(1, 4):
        status, page, _ = await board.get(f"{url}/customers/{customer_id}")
        assert "腾讯" not in page


async def test_the_board_has_no_write_route(bot, board) -> None:
    url = link_in(await bot.say("看板 链接", user="老板"))
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        async with board.http.request(method, url) as resp:
            assert resp.status == 405, method


async def test_tokens_never_reach_the_logs(bot, board, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    url = link_in(await bot.say("看板 链接", user="老板"))
    token = url.rsplit("/", 1)[1]
    await board.get(url)
    await board.get(url[:-2] + "xx")
    await board.get(f"{url}/customers?q=华为")
    assert token not in caplog.text and token[:-2] not in caplog.text
    assert "board link refused (invalid): /board/***" in caplog.text


async def test_in_a_dingtalk_group_the_link_goes_to_the_requester_only(db) -> None:
    """The link opens the team's numbers: it travels as the requester's work notification, never to the group."""
    from tests.dingtalk_support import dingtalk_settings, running_bot, text_of
    from tests.fakes.dingtalk import FakeDingTalk

    async with FakeDingTalk() as ding, running_bot(dingtalk_settings(ding), db) as bot:
        db.board = BoardConfig(public_url="https://bot.example.com")
        status, _ = await bot.post_robot(*ding.robot_text_callback("看板 链接", "boss", "老板"))
        assert status == 200
        await bot.drain()
        in_group = [text_of(r) for r in ding.session_messages() + ding.group_messages()]
        assert in_group == ["🔗 看板链接已私信发给你（7 天内有效）。"]
        [notice] = ding.work_notifications()
        assert notice.json["userid_list"] == "boss"
        assert "https://bot.example.com/board/" in str(notice.json["msg"])

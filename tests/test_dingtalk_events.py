"""Event subscription (/dingtalk/events): official crypto vectors, and 离职继承 on user_leave_org."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from storage.models import AuditLog, Customer, InboundMessage, Member
from tests.dingtalk_support import RunningBot, count, dingtalk_settings, running_bot, text_of
from tests.fakes.dingtalk import FakeDingTalk
from tests.test_fake_dingtalk import V4, V5


@pytest.fixture
async def ding() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk() as fake:
        yield fake


async def post_event(bot: RunningBot, query: dict[str, str], body: bytes) -> tuple[int, bytes]:
    async with bot.http.post(bot.url("/dingtalk/events"), params=query, data=body) as resp:
        return resp.status, await resp.read()


@pytest.mark.parametrize("vector", [V4, V5], ids=["V4-official", "V5-dingtalk-sdk"])
async def test_official_vectors_pass_through_the_events_path(vector: dict[str, str], db) -> None:  # type: ignore[no-untyped-def]
    async with FakeDingTalk(
        event_token=vector["token"], event_aes_key=vector["aes_key"], event_owner_key=vector["key"]
    ) as ding:
        settings = dingtalk_settings(ding, dingtalk_app_key=vector["key"])
        recorded_at = int(vector["timestamp"]) / 1000  # the vectors are dated: the bot's clock is set to them
        async with running_bot(settings, db, wall_clock=lambda: recorded_at) as bot:
            query = {"signature": vector["signature"], "timestamp": vector["timestamp"], "nonce": vector["nonce"]}
            started = time.monotonic()
            status, answer = await post_event(bot, query, json.dumps({"encrypt": vector["encrypt"]}).encode())
            assert time.monotonic() - started < 1.5
            assert status == 200
            assert ding.decrypt_event_response(answer) == "success"
            tampered = {**query, "nonce": "tampered"}
            status, _ = await post_event(bot, tampered, json.dumps({"encrypt": vector["encrypt"]}).encode())
            assert status == 401


async def test_bad_event_requests_are_refused(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    async with running_bot(dingtalk_settings(ding), db) as bot:
        query, body = ding.event_callback({"EventType": "user_leave_org", "UserId": ["zhangsan"]})
        assert (await post_event(bot, {}, body))[0] == 401
        assert (await post_event(bot, query, b"{not json"))[0] == 400
        assert (await post_event(bot, query, b"x" * (65 * 1024)))[0] == 413
        other = FakeDingTalk(event_owner_key="another-app")
        q2, b2 = other.event_callback({"EventType": "user_leave_org", "UserId": ["zhangsan"]})
        assert (await post_event(bot, q2, b2))[0] == 403
        assert await count(db, InboundMessage) == 0


async def test_user_leave_org_hands_customers_to_the_lead_or_the_pool(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    async with running_bot(dingtalk_settings(ding), db) as bot:
        async def say(
            text: str, staff: str, nick: str, cid: str = "cid123", title: str = "销售一组", **kw: object
        ) -> None:
            headers, body = ding.robot_text_callback(
                text, staff, nick, conversation_id=cid, conversation_title=title, **kw  # type: ignore[arg-type]
            )
            assert (await bot.post_robot(headers, body))[0] == 200

        await say("设置 主管 @lisi", "boss", "老板", at_users=("lisi",))
        await say("认领 华为技术有限公司", "zhangsan", "张三")
        await say("认领 小米科技有限公司", "zhangsan", "张三")
        await say("认领 美团点评", "zhangsan", "张三", cid="cid456", title="销售二组")  # a team without a lead
        await bot.drain()
        sent_before = len(ding.received)

        query, body = ding.event_callback(
            {
                "EventType": "user_leave_org",
                "UserId": ["zhangsan"],
                "CorpId": ding.corp_id,
                "TimeStamp": "1700000000000",
            }
        )
        started = time.monotonic()
        status, answer = await post_event(bot, query, body)
        assert time.monotonic() - started < 1.5
        assert status == 200 and ding.decrypt_event_response(answer) == "success"
        for _ in range(2):  # re-delivered: answered, but no second effect
            status, answer = await post_event(bot, query, body)
            assert status == 200 and ding.decrypt_event_response(answer) == "success"
        await bot.drain()

        async with db.session() as s:
            owners = dict(
                (
                    await s.execute(
                        select(Customer.name, Member.user_id).outerjoin(Member, Member.id == Customer.owner_id)
                    )
                ).all()
            )
            audits = list((await s.execute(select(AuditLog).where(AuditLog.action == "offboard"))).scalars())
            departed = (await s.execute(select(Member).where(Member.user_id == "zhangsan"))).scalar_one()
        assert owners == {"华为技术有限公司": "lisi", "小米科技有限公司": "lisi", "美团点评": None}
        assert len([a for a in audits if a.entity == "customer"]) == 3
        assert all(a.after["reason"] == "离职继承" for a in audits if a.entity == "customer")
        assert departed.active is False

        [notice] = ding.work_notifications()
        assert notice.json["userid_list"] == "lisi" and notice.json["msg"]["msgtype"] == "markdown"
        assert "华为技术有限公司" in notice.json["msg"]["markdown"]["text"]
        [pool_notice] = [r for r in ding.group_messages("cid456") if ding.received.index(r) >= sent_before]
        assert "公海" in text_of(pool_notice) and "美团点评" in text_of(pool_notice)

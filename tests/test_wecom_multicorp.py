"""Several WeCom corps in one process (`[[wecom.corps]]`): one fake WeCom per corp, the real app in between.

Corp A is the default corp (the SALESBOT_WECOM_* settings, plain `/wecom/aibot`); corp B comes from the
corps list (`/wecom/aibot/wwB`). Each corp is its own organisation, signs with its own token and sends
with its own access token.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.adapters.wecom import WECOM_KEY, wecom_component
from bot.adapters.wecom_send import WeComDeliverer, dest_key
from bot.app import build_app
from bot.outbox import OutboxWorker
from bot.settings import ConfigError, Settings, WeComCorp, load_settings
from storage.database import Database
from storage.models import Customer, InboundMessage, Organisation, OutboxMessage
from tests.fakes.wecom import APP_SEND_PATH, FakeWeCom
from tests.server_support import AppServer
from tests.wecom_support import AIBOT_KEY, APP_KEY, WALL, count

B_AIBOT_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
B_APP_KEY = "9876543210ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvut"
AGENT = 1000002  # agent ids are per corp: both corps' first app has the same one


def corp_b(fake_b: FakeWeCom) -> WeComCorp:
    return WeComCorp(
        corp_id="wwB", aibot_token="TB", aibot_aes_key=B_AIBOT_KEY, app_token="TB2", app_aes_key=B_APP_KEY,
        app_secret="secB", agent_id=AGENT, api_base=fake_b.base_url,
    )


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeWeCom, FakeWeCom]]:
    async with FakeWeCom(
        corp_id="wwA", corp_secret="secA", aibot_token="TA", aibot_aes_key=AIBOT_KEY, app_token="TA2",
        app_aes_key=APP_KEY, agent_id=AGENT, wall_clock=lambda: WALL,
    ) as a, FakeWeCom(
        corp_id="wwB", corp_secret="secB", aibot_token="TB", aibot_aes_key=B_AIBOT_KEY, app_token="TB2",
        app_aes_key=B_APP_KEY, agent_id=AGENT, wall_clock=lambda: WALL,
    ) as b:
        yield a, b


def two_corp_settings(a: FakeWeCom, b: FakeWeCom, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        admins=("boss",), wecom_corp_id="wwA", wecom_aibot_token="TA", wecom_aibot_aes_key=AIBOT_KEY,
        wecom_app_token="TA2", wecom_app_aes_key=APP_KEY, wecom_app_secret="secA", wecom_agent_id=AGENT,
        wecom_api_base=a.base_url, wecom_corps=(corp_b(b),), reply_budget_ms=10_000,  # see wecom_settings
    )
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def client(db: Database, fakes: tuple[FakeWeCom, FakeWeCom]) -> AsyncIterator[TestClient]:
    app = build_app(
        two_corp_settings(*fakes), components=[functools.partial(wecom_component, wall_clock=lambda: WALL)], database=db
    )
    async with TestClient(AppServer(app)) as client:
        yield client


async def post(client: TestClient, path: str, callback: tuple[dict[str, str], bytes]) -> tuple[int, bytes]:
    query, body = callback
    async with client.post(path, params=query, data=body) as resp:
        return resp.status, await resp.read()


async def say(client: TestClient, fake: FakeWeCom, path: str, text: str, user: str) -> str:
    status, body = await post(client, path, fake.aibot_text_callback(text, user, "grpSales"))
    assert status == 200
    return fake.decrypt_aibot_passive_reply(body)["stream"]["content"]


async def test_each_corp_is_its_own_organisation(
    client: TestClient, fakes: tuple[FakeWeCom, FakeWeCom], db: Database
) -> None:
    a, b = fakes
    # Same chat id, same user id, same customer: different corps, so no conflict.
    assert "认领成功" in await say(client, a, "/wecom/aibot", "认领 华为", "zhangsan")
    assert "认领成功" in await say(client, b, "/wecom/aibot/wwB", "认领 华为", "zhangsan")
    # The default corp is reachable by its id as well; within one corp the rule still holds.
    assert "认领成功" not in await say(client, a, "/wecom/aibot/wwA", "认领 华为", "lisi")
    async with db.transaction() as store:
        orgs = {o.id: o.corp_key for o in (await store.session.execute(select(Organisation))).scalars()}
        owners = [orgs[c.org_id] for c in (await store.session.execute(select(Customer))).scalars()]
    assert sorted(owners) == ["wwA", "wwB"]


async def test_callback_for_another_corp_is_refused(
    client: TestClient, fakes: tuple[FakeWeCom, FakeWeCom], db: Database
) -> None:
    a, b = fakes
    # Signed with corp A's token, posted to corp B's URL: the signature does not check.
    assert (await post(client, "/wecom/aibot/wwB", a.aibot_text_callback("认领 华为", "zhangsan", "grp")))[0] == 403
    assert (await post(client, "/wecom/app/wwB", a.app_text_callback("我的", "zhangsan")))[0] == 403
    assert (await post(client, "/wecom/aibot/wwX", b.aibot_text_callback("认领 华为", "zhangsan", "grp")))[0] == 404
    async with client.get("/wecom/app/wwX", params=b.app_verify_params("hi")) as resp:
        assert resp.status == 404
    assert await count(db, InboundMessage) == 0 and await count(db, Customer) == 0
    # Corp B's own URL verification answers with corp B's envelope (receiveid = wwB).
    async with client.get("/wecom/app/wwB", params=b.app_verify_params("echo-b")) as resp:
        assert resp.status == 200 and await resp.text() == "echo-b"


async def test_late_app_reply_is_queued_for_its_corp(
    db: Database, fakes: tuple[FakeWeCom, FakeWeCom]
) -> None:
    a, b = fakes
    # reply_budget_ms=0: the command is never done in time, so the reply goes through message/send later.
    app = build_app(
        two_corp_settings(a, b, reply_budget_ms=0),
        components=[functools.partial(wecom_component, wall_clock=lambda: WALL)],
        database=db,
    )
    async with TestClient(AppServer(app)) as client:
        status, body = await post(client, "/wecom/app/wwB", b.app_text_callback("帮助", "zhangsan"))
        assert status == 200 and body == b""
        adapter = client.server.app[WECOM_KEY]
        await asyncio.gather(*adapter._tasks)
        async with db.transaction() as store:
            [row] = (await store.session.execute(select(OutboxMessage))).scalars()
        assert row.destination == {"kind": "member", "user_ids": ["zhangsan"], "corp_id": "wwB"}
        assert row.dest_key == "wecom:wwB:member:zhangsan"


async def test_direct_messages_go_through_their_corps_app(db: Database, fakes: tuple[FakeWeCom, FakeWeCom]) -> None:
    a, b = fakes
    now = datetime.now(UTC)
    member = {"kind": "member", "user_ids": ["zhangsan"]}
    for corp, text in (("wwA", "给 A 的张三"), ("wwB", "给 B 的张三")):
        async with db.transaction() as store:  # as a schedule queues it: no corp in the destination
            await store.bind(platform="wecom", org_key=corp, chat_id="grpSales", chat_title="一组", user_id=None,
                             user_name=None, now=now)
            await store.enqueue(platform="wecom", destination=member, dest_key=f"{corp}:member:zhangsan",
                                body={"text": text}, now=now)
    async with aiohttp.ClientSession() as session:
        deliverer = WeComDeliverer(
            session,
            api_base=a.base_url,
            corp_id="wwA",
            app_secret="secA",
            agent_id=AGENT,
            database=db,
            corps=[corp_b(b)],
        )
        assert deliverer.limit_key(member | {"corp_id": "wwA"}) != deliverer.limit_key(member | {"corp_id": "wwB"})
        worker = OutboxWorker(db, {"wecom": deliverer}, clock=lambda: now)
        assert await worker.run_once() == 2
    [to_a] = a.delivered_to("zhangsan")
    [to_b] = b.delivered_to("zhangsan")
    assert to_a["markdown"]["content"] == "给 A 的张三" and to_b["markdown"]["content"] == "给 B 的张三"
    [send_b] = [r for r in b.received if r.path == APP_SEND_PATH]
    assert send_b.query["access_token"] == b.current_token and send_b.json["agentid"] == AGENT
    assert a.token_requests == 1 and b.token_requests == 1
    # A corp that is not configured (any more) is never sent with another corp's token.
    from bot.delivery import OutgoingMessage, PermanentFailure

    async with aiohttp.ClientSession() as session:
        deliverer = WeComDeliverer(session, api_base=a.base_url, corp_id="wwA", app_secret="secA", agent_id=AGENT)
        with pytest.raises(PermanentFailure):
            await deliverer.deliver(member | {"corp_id": "wwGone"}, OutgoingMessage("x"))
    assert dest_key(member | {"corp_id": "wwB"}) != dest_key(member)


def test_corps_from_toml_and_errors_name_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "salesbot.toml"

    def load(entries: str) -> Settings:
        path.write_text(entries, encoding="utf-8")
        return load_settings({"SALESBOT_WECOM_CORP_ID": "ww1", "SALESBOT_WECOM_AIBOT_TOKEN": "t",
                              "SALESBOT_WECOM_AIBOT_AES_KEY": AIBOT_KEY}, path)

    good = f'''
[[wecom.corps]]
corp_id = "ww2"
aibot_token = "a"
aibot_aes_key = "{AIBOT_KEY}"
app_token = "b"
app_aes_key = "{APP_KEY}"
app_secret = "s2"
agent_id = 1000002
'''
    settings = load(good)
    assert settings.wecom_corp_id == "ww1" and [c.corp_id for c in settings.wecom_corps] == ["ww2"]
    masked = settings.masked()["wecom_corps"][0]
    assert masked["app_secret"] == "******" and masked["aibot_aes_key"] == "******" and masked["corp_id"] == "ww2"

    second = good.replace('"ww2"', '"ww3"')
    with pytest.raises(ConfigError, match=r"wecom\.corps\[1\]\.aibot_aes_key: 必须是 43 位"):
        load(good + second.replace(AIBOT_KEY, AIBOT_KEY[:-1]))
    with pytest.raises(ConfigError, match=r"wecom\.corps\[1\]\.app_aes_key: 缺少"):
        load(good + second.replace(f'app_aes_key = "{APP_KEY}"', ""))
    with pytest.raises(ConfigError, match=r"wecom\.corps\[1\]\.agent_id: 缺少"):
        load(good + second.replace("agent_id = 1000002", ""))
    with pytest.raises(ConfigError, match=r"wecom\.corps\[1\]\.corp_id: ww2 重复"):
        load(good + good)
    with pytest.raises(ConfigError, match=r"wecom\.corps\[0\]\.corp_id: ww1 重复（与 SALESBOT_WECOM_CORP_ID"):
        load(good.replace('"ww2"', '"ww1"'))
    with pytest.raises(ConfigError, match=r"wecom\.corps\[0\]\.corp_id: 缺少"):
        load(good.replace('corp_id = "ww2"', ""))
    with pytest.raises(ConfigError, match=r"wecom\.corps\[0\]\.corp_id: CorpID"):
        load(good.replace('"ww2"', '"ww/2"'))
    with pytest.raises(ConfigError, match=r"wecom\.corps\[0\]\.agnet_id: 未知的设置项"):
        load(good.replace("agent_id", "agnet_id"))
    long_connection = '\n[[wecom.corps]]\ncorp_id = "ww4"\naibot_mode = "websocket"\naibot_bot_id = "aib4"\n'
    with pytest.raises(ConfigError, match=r"wecom\.corps\[0\]\.aibot_secret: 缺少（长连接模式"):
        load(long_connection)
    ws = load(long_connection + 'aibot_secret = "s4"\n').wecom_corps[0]
    assert ws.aibot_mode == "websocket" and ws.aibot_bot_id == "aib4"
    assert load(long_connection + 'aibot_secret = "s4"\n').masked()["wecom_corps"][0]["aibot_secret"] == "******"

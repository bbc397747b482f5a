"""The operator's view: `GET /metrics` counts what happened, `GET /readyz` says whether this process can work.

Driven through the real HTTP path: signed callbacks from FakeDingTalk and FakeWeCom into one app on port 0,
the app's own outbox worker delivering to the fake, and a scrape parsed with prometheus-client's parser.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import delete, update

from bot.adapters import wecom_ws
from bot.adapters.dingtalk import STREAM_KEY, dingtalk_component
from bot.adapters.dingtalk_send import sign
from bot.adapters.wecom import WECOM_KEY, wecom_component
from bot.app import build_app
from bot.app_keys import METRICS_KEY
from bot.metrics import Metrics
from bot.outbox_component import outbox_component
from bot.settings import Settings, load_settings
from schedules.scheduler import Scheduler
from storage.database import Database
from storage.models import OutboxMessage
from tests.conftest import PG_URL
from tests.dingtalk_support import dingtalk_settings, running_bot
from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.wecom import FakeWeCom
from tests.tcp_proxy import proxied_database
from tests.wecom_support import WALL, fake, wecom_settings  # noqa: F401  (the `fake` fixture)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: TestClient) -> Samples:
    async with client.get("/metrics") as resp:
        assert resp.status == 200 and resp.content_type == "text/plain"
        return parse(await resp.text())


async def eventually(check: Callable[[], object], seconds: float = 5.0) -> None:
    """For what settles in a background task (the outbox worker's bookkeeping after the platform answered)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def ding() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk() as fake_dingtalk:
        yield fake_dingtalk


def both_platforms(ding: FakeDingTalk, wecom: FakeWeCom) -> Settings:
    theirs = dingtalk_settings(ding)
    return dataclasses.replace(
        wecom_settings(wecom), **{f.name: getattr(theirs, f.name) for f in dataclasses.fields(Settings)
                                  if f.name.startswith("dingtalk_")}
    )


async def test_metrics_count_callbacks_commands_and_deliveries_of_both_platforms(
    db: Database, ding: FakeDingTalk, fake: FakeWeCom  # noqa: F811
) -> None:
    components = [outbox_component, dingtalk_component, functools.partial(wecom_component, wall_clock=lambda: WALL)]
    app = build_app(both_platforms(ding, fake), components=components, database=db)
    async with TestClient(TestServer(app)) as client:

        async def robot(text: str, staff: str, nick: str, **kw: object) -> int:
            headers, body = ding.robot_text_callback(text, staff, nick, **kw)  # type: ignore[arg-type]
            async with client.post("/dingtalk/robot", headers=headers, data=body) as resp:
                return resp.status

        async def aibot(callback: tuple[dict[str, str], bytes]) -> int:
            query, body = callback
            async with client.post("/wecom/aibot", params=query, data=body) as resp:
                return resp.status

        assert await robot("认领 北京华为技术有限公司", "zhangsan", "张三", msg_id="m1") == 200
        await ding.wait_for(lambda: len(ding.session_messages()) == 1)
        assert await robot("认领 北京华为技术有限公司", "zhangsan", "张三", msg_id="m1") == 200  # re-delivered
        assert await robot("认领", "lisi", "李四") == 200  # no name: refused (UserError), its writes rolled back
        await ding.wait_for(lambda: len(ding.session_messages()) == 2)
        ding.fail_next("/robot/sendBySession", status=200, body={"errcode": 999999, "errmsg": "boom"})
        assert await robot("跟进 华为 拜访了采购部", "zhangsan", "张三") == 200  # its reply fails for good
        forged, body = ding.robot_text_callback("认领 字节跳动", "zhangsan", "张三")
        forged["sign"] = sign("not-the-secret", forged["timestamp"])
        async with client.post("/dingtalk/robot", headers=forged, data=body) as resp:
            assert resp.status == 401

        callback = fake.aibot_text_callback("帮助", "wangwu", "grpSales")
        assert await aibot(callback) == 200
        assert await aibot(callback) == 200  # WeCom re-delivers: the router recognises it

        metrics = app[METRICS_KEY]
        await eventually(lambda: metrics.outbox_failed.labels("dingtalk")._value.get() == 1)
        samples = await scrape(client)

    robot_route = {"platform": "dingtalk", "route": "/dingtalk/robot"}
    assert value(samples, "salesbot_callbacks_total", **robot_route, outcome="accepted") == 3
    assert value(samples, "salesbot_callbacks_total", **robot_route, outcome="duplicate") == 1
    assert value(samples, "salesbot_callbacks_total", **robot_route, outcome="rejected") == 1
    assert value(samples, "salesbot_callbacks_total", **robot_route, outcome="error") == 0
    aibot_route = {"platform": "wecom", "route": "/wecom/aibot"}
    assert value(samples, "salesbot_callbacks_total", **aibot_route, outcome="accepted") == 1
    assert value(samples, "salesbot_callbacks_total", **aibot_route, outcome="duplicate") == 1

    commands = {
        (dict(labels)["command"], dict(labels)["outcome"]): n
        for (name, labels), n in samples.items() if name == "salesbot_commands_total"
    }
    assert commands == {("claim", "ok"): 1, ("claim", "refused"): 1, ("progress", "ok"): 1, ("help", "ok"): 1,
                        ("unknown", "duplicate"): 1}
    assert value(samples, "salesbot_command_seconds_count", command="claim") == 2
    assert value(samples, "salesbot_command_seconds_bucket", command="claim", le="+Inf") == 2

    assert value(samples, "salesbot_outbox_sent_total", platform="dingtalk") == 2
    assert value(samples, "salesbot_outbox_failed_total", platform="dingtalk") == 1
    assert value(samples, "salesbot_outbox_retries_total", platform="dingtalk") == 0
    assert value(samples, "salesbot_outbox_delivery_seconds_count", platform="dingtalk") == 2
    # Read from the database at the scrape: the failed row is there, nothing waits.
    assert value(samples, "salesbot_outbox_rows", platform="dingtalk", status="failed") == 1
    assert value(samples, "salesbot_outbox_rows", platform="dingtalk", status="pending") == 0
    assert value(samples, "salesbot_inbound_lag_seconds", platform="dingtalk") == 0
    assert value(samples, "process_resident_memory_bytes") > 0


async def test_inbound_lag_is_the_age_of_the_oldest_unprocessed_message(db: Database, ding: FakeDingTalk) -> None:
    # A process that records and acknowledges but never processes (as one that died right after answering).
    async with running_bot(dingtalk_settings(ding), db, {"workers": 0, "recover_every": None}) as bot:
        status, _ = await bot.post_robot(*ding.robot_text_callback("认领 腾讯科技", "zhangsan", "张三"))
        assert status == 200
        await asyncio.sleep(0.05)
        async with bot.http.get(bot.url("/metrics")) as resp:
            samples = parse(await resp.text())
    assert value(samples, "salesbot_inbound_lag_seconds", platform="dingtalk") >= 0.05
    assert value(samples, "salesbot_commands_total", command="claim", outcome="ok") == 0


async def test_scheduler_firings_are_counted_by_job_and_status(bot, db: Database, clock) -> None:  # type: ignore[no-untyped-def]
    await bot.say("认领 华为", user="张三")
    clock.set_local("2026-11-27 09:00:30")
    metrics = Metrics()
    scheduler = Scheduler(db, clock=clock, metrics=metrics)
    assert [r.job for r in await scheduler.tick()] == ["standup"]
    await scheduler.tick()  # settled: nothing to count
    late = Scheduler(db, clock=clock, metrics=metrics)
    clock.set_local("2026-11-30 11:00:00")  # Monday 11:00: the 09:00 stand-up is past the grace period
    await late.tick()
    samples = parse(metrics.render().decode())
    assert value(samples, "salesbot_scheduler_firings_total", job="standup", status="sent") == 1
    assert value(samples, "salesbot_scheduler_firings_total", job="standup", status="late") == 1


async def test_each_app_has_its_own_registry(db: Database) -> None:
    first, second = (build_app(load_settings({}), database=db, components=[]) for _ in range(2))
    first[METRICS_KEY].callback("dingtalk", "/dingtalk/robot", "accepted")
    assert second[METRICS_KEY].callbacks.labels("dingtalk", "/dingtalk/robot", "accepted")._value.get() == 0


# ----------------------------------------------------------------------------------------------- /readyz
async def test_readyz_is_200_while_the_stream_is_up_and_503_with_the_reason_when_it_is_down(
    db: Database, ding: FakeDingTalk
) -> None:
    settings = dingtalk_settings(ding, dingtalk_mode="stream")
    async with running_bot(settings, db, backoff_initial=0.01, backoff_max=0.05) as bot:
        stream = bot.app[STREAM_KEY].connected  # type: ignore[attr-defined]
        await ding.wait_for(lambda: ding.stream_connected)
        await eventually(stream.is_set)
        async with bot.http.get(bot.url("/readyz")) as resp:
            assert resp.status == 200
            assert await resp.json() == {"status": "ready", "checks": {
                "database": "ok", "dingtalk_stream": "connected", "outbox": "ok"}}
        # The gateway goes away: the connection drops and every reconnect is refused.
        ding.fail_next("/v1.0/gateway/connections/open", status=503, times=10_000)
        await ding.stream_drop()
        await ding.wait_for(lambda: not ding.stream_connected)
        await eventually(lambda: not stream.is_set())
        async with bot.http.get(bot.url("/readyz")) as resp:
            body = await resp.json()
            assert resp.status == 503
        assert body["reasons"] == ["dingtalk_stream not connected"]
        assert body["checks"]["dingtalk_stream"] == "disconnected" and body["checks"]["database"] == "ok"
        async with bot.http.get(bot.url("/healthz")) as resp:
            assert resp.status == 200  # alive, only not ready


async def test_readyz_reports_a_wecom_long_connection_that_is_down(
    db: Database, fake: FakeWeCom, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setattr(wecom_ws, "BACKOFF_INITIAL", 0.05)
    settings = wecom_settings(fake, wecom_aibot_token=None, wecom_aibot_aes_key=None, wecom_aibot_mode="websocket",
                              wecom_aibot_bot_id=fake.aibot_id, wecom_aibot_secret=fake.aibot_secret,
                              wecom_aibot_ws_url=fake.ws_url)
    app = build_app(settings, components=[functools.partial(wecom_component, wall_clock=lambda: WALL)], database=db)
    async with TestClient(TestServer(app)) as client:
        await fake.wait_for(lambda: fake.ws_connected)
        connection = app[WECOM_KEY].ws
        await eventually(lambda: connection.connected)
        async with client.get("/readyz") as resp:
            assert resp.status == 200
            assert (await resp.json())["checks"]["wecom_long_connection:wwcorp"] == "connected"
        fake.aibot_secret = "rotated"  # every reconnect is refused from now on
        await fake.ws_drop()
        await eventually(lambda: not connection.connected)
        async with client.get("/readyz") as resp:
            body = await resp.json()
            assert resp.status == 503
    assert body["reasons"] == ["wecom_long_connection:wwcorp not connected"]


async def test_readyz_is_503_when_a_due_message_has_waited_too_long(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.transaction() as store:
        await store.enqueue(platform="console", destination={"kind": "console"}, dest_key="console:x",
                            body={"text": "hi"}, now=now - timedelta(minutes=3))
    app = build_app(load_settings({}), database=db, components=[])  # no outbox worker: nobody sends it
    async with TestClient(TestServer(app)) as client:
        async with client.get("/readyz") as resp:
            assert resp.status == 200  # three minutes: still within OUTBOX_STUCK_AFTER
        async with db.session() as session:
            await session.execute(update(OutboxMessage).values(next_attempt_at=now - timedelta(minutes=12)))
            await session.commit()
        async with client.get("/readyz") as resp:
            body = await resp.json()
            assert resp.status == 503
    assert body["reasons"] == ["outbox stuck: a message due 12 min ago is not sent"]


@pytest.mark.skipif(not PG_URL, reason="needs SALESBOT_TEST_PG_URL")
async def test_readyz_is_503_when_the_database_goes_away(pg_schema: str) -> None:
    proxy, db = await proxied_database(PG_URL, pg_schema)
    app = build_app(load_settings({}), database=db, components=[])
    async with db.session() as session:  # the schema is shared with the other tests: nothing of theirs waits
        await session.execute(delete(OutboxMessage))
        await session.commit()
    try:
        async with TestClient(TestServer(app)) as client:
            async with client.get("/readyz") as resp:
                assert (await resp.json())["checks"] == {"database": "ok", "outbox": "ok"} and resp.status == 200
            await proxy.cut()
            async with client.get("/readyz") as resp:
                body = await resp.json()
                assert resp.status == 503
            assert body["reasons"] == ["database unreachable"] and body["checks"] == {"database": "unreachable"}
            async with client.get("/metrics") as resp:  # still answers, with what it counted itself
                assert resp.status == 200 and "salesbot_callbacks_total" in await resp.text()
    finally:
        await db.close()


async def test_metrics_and_readyz_are_not_counted_as_callbacks(db: Database) -> None:
    app = build_app(load_settings({}), database=db, components=[])
    async with TestClient(TestServer(app)) as client:
        for path in ("/readyz", "/healthz", "/metrics", "/nowhere"):
            async with client.get(path):
                pass
        samples = await scrape(client)
    assert not [key for key in samples if key[0] == "salesbot_callbacks_total"]



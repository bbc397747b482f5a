"""Issue #15: the weekly retro carries a chart of this week against the previous weeks.

The retro's unit of work only records what to draw (the numbers and an id, in the outbox row); the outbox
draws the picture when it delivers that row, keeps the PNG before any platform links to it, and a retry
sends the kept PNG instead of drawing again.

WeCom gets the picture from the group robot after the text (base64 + md5, checked by the fake like the
real webhook); DingTalk a markdown image linking to our `/charts/<id>.png` when SALESBOT_PUBLIC_URL is set,
else the text alone; the console and `jobs run retro --print` write the PNG to a file and say where. No CJK
font: one warning at start and text-only retros.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.adapters.dingtalk_send import DingTalkDeliverer
from bot.adapters.wecom_send import WeComDeliverer
from bot.app import build_app
from bot.assembly import all_settings, open_database
from bot.charts import find_cjk_font
from bot.messages import IncomingMessage
from bot.outbox import OutboxWorker
from bot.router import Router
from bot.settings import Settings
from handlers import all_commands
from storage.database import Database
from storage.models import ChartImage, OutboxMessage
from tests.dingtalk_support import dingtalk_settings
from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.wecom import FakeWeCom
from tests.schedule_helpers import run_job
from tests.server_support import AppServer
from tests.test_cli_and_serve import run_cli

FONT = find_cjk_font()
needs_font = pytest.mark.skipif(FONT is None, reason="no CJK font installed (apt-get install fonts-wqy-microhei)")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KEY = "chartkey-0123456789abcdef"
SECRET = "SECabcdef0123456789"
FRIDAY = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # 17:00 in Shanghai: the retro's slot
_ids = itertools.count(1)


async def say(router: Router, platform: str, org: str, chat: str, text: str, user: str, name: str) -> list[str]:
    replies = await router.handle(
        IncomingMessage(platform=platform, org_key=org, chat_id=chat, user_id=user, text=text,
                        msg_id=f"c{next(_ids)}", user_name=name, chat_title="销售一组"),
        FRIDAY,
    )
    return [r.text for r in replies]


async def seed_week(db: Database, platform: str, org: str, chat: str, setup: str) -> None:
    db.admin_entries = ("boss",)
    router = Router(db, all_commands(), settings_table=all_settings())
    await say(router, platform, org, chat, "认领 华为", "zhangsan", "张三")
    await say(router, platform, org, chat, "赢单 华为 50万", "zhangsan", "张三")
    await say(router, platform, org, chat, setup, "boss", "老板")


async def charts(db: Database) -> list[ChartImage]:
    async with db.session() as s:
        return list((await s.execute(select(ChartImage))).scalars())


async def outbox(db: Database) -> list[OutboxMessage]:
    async with db.session() as s:
        return list((await s.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())


async def assert_recorded_not_drawn(db: Database) -> dict:  # type: ignore[type-arg]
    """The retro committed with the chart's numbers queued behind its text, and nothing drawn yet."""
    text, picture = await outbox(db)
    assert "周复盘" in text.body["text"] and "image" not in text.body
    image = picture.body["image"]
    assert "png" not in image and len(image["id"]) >= 22
    assert [p["title"] for p in image["chart"]["panels"]] == ["赢单", "跟进", "新客户", "求助被接"]
    assert len(image["chart"]["labels"]) == 12 and image["chart"]["panels"][0]["values"][-1] == 1
    assert await charts(db) == []  # nothing stored until the outbox delivers it
    return image


@needs_font
async def test_wecom_retro_sends_the_chart_after_the_text_through_the_group_robot(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession
) -> None:
    db.chart_font = FONT
    fake.add_webhook_key(KEY)
    await seed_week(db, "wecom", "wwcorp", "grpSales", f"设置 推送 {fake.webhook_url(KEY)}")
    result = await run_job(db, "retro", FRIDAY)
    assert len(result.pushes) == 2
    await assert_recorded_not_drawn(db)
    deliverer = WeComDeliverer(http, api_base=fake.base_url, corp_id="wwcorp", app_secret="sec",
                               agent_id=1000002, database=db)
    await OutboxWorker(db, {"wecom": deliverer}, clock=lambda: FRIDAY).run_once()

    text, picture = fake.webhook_messages(KEY)
    assert text["msgtype"] == "markdown" and "周复盘" in text["markdown"]["content"]
    assert picture["msgtype"] == "image"
    raw = base64.b64decode(picture["image"]["base64"])
    assert picture["image"]["md5"] == hashlib.md5(raw).hexdigest()  # the fake refuses a mismatch, like WeCom
    assert raw.startswith(PNG_SIGNATURE) and 10_000 < len(raw) <= 2 * 1024 * 1024
    [stored] = await charts(db)
    assert bytes(stored.png) == raw


class FetchingDingTalk:
    """DingTalk's side of a picture: the moment the markdown arrives, it fetches the image link."""

    def __init__(self, inner: DingTalkDeliverer, http: aiohttp.ClientSession) -> None:
        self.inner, self.http, self.fetched = inner, http, []  # type: ignore[var-annotated]

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    async def deliver(self, destination: dict, message) -> None:  # type: ignore[no-untyped-def,type-arg]
        await self.inner.deliver(destination, message)
        if message.image is not None:
            base = self.inner.settings.public_url.rstrip("/")
            async with self.http.get(f"{base}/charts/{message.image.image_id}.png") as response:
                self.fetched.append((response.status, await response.read()))


@needs_font
async def test_dingtalk_shows_the_chart_from_the_public_url_and_the_route_serves_it(
    db: Database, http: aiohttp.ClientSession
) -> None:
    db.chart_font = FONT
    app = build_app(Settings(), database=db, components=[])
    async with FakeDingTalk() as ding, TestClient(AppServer(app)) as client:
        url = ding.add_custom_robot("robotC", SECRET)
        await seed_week(db, "dingtalk", "dingcorp", "cidSales", f"设置 钉钉机器人 {url} {SECRET}")
        public = str(client.make_url("/")).rstrip("/")
        settings = dingtalk_settings(ding, public_url=public + "/")
        await run_job(db, "retro", FRIDAY)
        await assert_recorded_not_drawn(db)
        sender = FetchingDingTalk(DingTalkDeliverer(settings, http, db=db), http)
        worker = OutboxWorker(db, {"dingtalk": sender}, clock=lambda: FRIDAY)  # type: ignore[dict-item]
        await worker.run_once()
        text, picture = [r.json["markdown"] for r in ding.custom_robot_messages("robotC")]
        [stored] = await charts(db)
        assert "周复盘" in text["text"]
        assert picture["text"] == f"![周趋势]({public}/charts/{stored.id}.png)"
        assert len(stored.id) >= 22  # 128 random bits: nobody guesses another team's chart
        # The link resolved when DingTalk fetched it, right after the markdown went out.
        assert sender.fetched == [(200, bytes(stored.png))] and bytes(stored.png).startswith(PNG_SIGNATURE)

        response = await client.get(f"/charts/{stored.id}.png")
        assert response.status == 200 and response.content_type == "image/png"
        assert await response.read() == bytes(stored.png) and "max-age" in response.headers["Cache-Control"]
        assert (await client.get("/charts/AAAAAAAAAAAAAAAAAAAAAA.png")).status == 404
        assert (await client.get("/charts/")).status == 404  # no listing


@needs_font
async def test_dingtalk_without_a_public_url_gets_the_text_only(db: Database, http: aiohttp.ClientSession) -> None:
    db.chart_font = FONT
    async with FakeDingTalk() as ding:
        url = ding.add_custom_robot("robotT", SECRET)
        await seed_week(db, "dingtalk", "dingcorp", "cidSales", f"设置 钉钉机器人 {url} {SECRET}")
        await run_job(db, "retro", FRIDAY)
        worker = OutboxWorker(db, {"dingtalk": DingTalkDeliverer(dingtalk_settings(ding), http, db=db)},
                              clock=lambda: FRIDAY)
        await worker.run_once()
        [text] = [r.json["markdown"]["text"] for r in ding.custom_robot_messages("robotT")]
    assert "周复盘" in text
    async with db.session() as s:
        assert {row.status for row in (await s.execute(select(OutboxMessage))).scalars()} == {"sent"}


async def test_without_a_cjk_font_one_warning_and_the_retro_is_text_only(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "fonts"
    empty.mkdir()
    with caplog.at_level(logging.WARNING, logger="salesbot.charts"):
        other = open_database(Settings(database_url=f"sqlite:///{tmp_path}/x.db", chart_font_dir=str(empty)))
        await other.close()
    [warning] = [r for r in caplog.records if r.name == "salesbot.charts"]
    assert "找不到中文字体" in warning.getMessage() and other.chart_font is None
    db.chart_font = other.chart_font
    await seed_week(db, "console", "console", "销售一组", "帮助")
    result = await run_job(db, "retro", FRIDAY)
    assert len(result.pushes) == 1 and result.pushes[0].message.image is None
    assert await charts(db) == []


@needs_font
async def test_the_console_retro_writes_the_chart_and_says_where(bot, db: Database, clock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db.chart_font = FONT
    bot.picture_dir = tmp_path
    await bot.say("认领 华为", user="张三")
    text, where = await bot.say("复盘", user="老板")
    assert "周复盘" in text and where.startswith("📊 周趋势图已保存：")
    path = Path(where.split("：", 1)[1])
    assert path.parent == tmp_path and path.read_bytes().startswith(PNG_SIGNATURE)


@needs_font
def test_jobs_run_retro_print_writes_the_png_and_prints_its_path(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/demo.db"
    seeded = run_cli("chat", "--db", db_url, "--user", "张三", stdin="认领 华为\n赢单 华为 10万\n")
    assert seeded.returncode == 0, seeded.stderr
    result = run_cli("jobs", "run", "retro", "--print", "--db", db_url, env={"TMPDIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "周复盘" in result.stdout
    [line] = [ln for ln in result.stdout.splitlines() if ln.startswith("📊 周趋势图已保存：")]
    png = Path(line.split("：", 1)[1]).read_bytes()
    assert png.startswith(PNG_SIGNATURE) and 10_000 < len(png) <= 2 * 1024 * 1024
    assert os.path.dirname(line.split("：", 1)[1]).startswith(str(tmp_path))


@needs_font
async def test_retro_asked_in_a_wecom_group_answers_the_text_and_queues_the_chart_behind_it_for_the_robot(
    db: Database, fake: FakeWeCom, make_client
) -> None:  # type: ignore[no-untyped-def]
    from bot.adapters.wecom import PICTURE_AFTER_TEXT
    from tests.wecom_support import outbox_rows
    from tests.wecom_support import say as wecom_say

    db.chart_font = FONT
    fake.add_webhook_key(KEY)
    client = await make_client()  # the default 1.5 s budget: nothing is drawn while the user waits
    await wecom_say(client, fake, "认领 华为", "zhangsan")
    assert "机器人" in await wecom_say(client, fake, f"设置 推送 {fake.webhook_url(KEY)}", "boss")
    answer = await wecom_say(client, fake, "复盘", "boss")
    assert "周复盘" in answer and "周趋势" not in answer  # the picture is not answered inline as its caption
    [row] = [r for r in await outbox_rows(db) if "image" in r.body]
    assert row.destination == {"kind": "webhook", "key": KEY}
    assert "png" not in row.body["image"] and row.body["image"]["chart"]["panels"]
    assert row.next_attempt_at - row.created_at == PICTURE_AFTER_TEXT  # held back behind the inline answer
    assert await charts(db) == []  # drawn when the outbox delivers it, not in the command


async def test_a_picture_over_two_megabytes_is_refused_before_calling_wecom(
    fake: FakeWeCom, http: aiohttp.ClientSession
) -> None:
    from bot.adapters.wecom_webhook import WeComWebhookDeliverer, webhook_destination
    from bot.delivery import OutgoingMessage, PermanentFailure
    from bot.messages import Image

    fake.add_webhook_key(KEY)
    deliverer = WeComWebhookDeliverer(http, api_base=fake.base_url)
    huge = Image(png=PNG_SIGNATURE + b"\0" * (2 * 1024 * 1024), image_id="x" * 22, alt="周趋势")
    with pytest.raises(PermanentFailure, match="picture too large"):
        await deliverer.deliver(webhook_destination(KEY), OutgoingMessage("周趋势", image=huge))
    assert fake.webhook_messages(KEY) == [] and fake.received == []


async def test_a_chart_that_cannot_be_drawn_fails_only_the_picture(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "wqy-microhei.ttc"
    broken.write_bytes(b"not a font")  # found by name, fails in the drawing worker
    db.chart_font = str(broken)
    fake.add_webhook_key(KEY)
    await seed_week(db, "wecom", "wwcorp", "grpSales", f"设置 推送 {fake.webhook_url(KEY)}")
    result = await run_job(db, "retro", FRIDAY)  # the unit of work does not draw: it cannot fail on the font
    assert [p.message.image is not None for p in result.pushes] == [False, True]
    deliverer = WeComDeliverer(http, api_base=fake.base_url, corp_id="wwcorp", app_secret="sec",
                               agent_id=1000002, database=db)
    with caplog.at_level(logging.WARNING):
        await OutboxWorker(db, {"wecom": deliverer}, clock=lambda: FRIDAY).run_once()
    [text] = fake.webhook_messages(KEY)
    assert "周复盘" in text["markdown"]["content"]
    rows = await outbox(db)
    assert [r.status for r in rows] == ["sent", "failed"] and "not drawn" in (rows[1].last_error or "")
    assert len([r for r in caplog.records if "not drawn" in r.getMessage()]) == 1  # logged once
    assert await charts(db) == []


@needs_font
async def test_a_retried_picture_sends_the_stored_png_and_is_not_drawn_again(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A worker that dies between sending the picture and marking it sent leaves the row to be sent again
    (at-least-once): the retry sends the PNG kept under the picture's id, it does not draw a new one."""
    from sqlalchemy import update

    db.chart_font = FONT
    fake.add_webhook_key(KEY)
    await seed_week(db, "wecom", "wwcorp", "grpSales", f"设置 推送 {fake.webhook_url(KEY)}")
    await run_job(db, "retro", FRIDAY)
    assert await charts(db) == []
    deliverer = WeComDeliverer(http, api_base=fake.base_url, corp_id="wwcorp", app_secret="sec",
                               agent_id=1000002, database=db)
    await OutboxWorker(db, {"wecom": deliverer}, clock=lambda: FRIDAY).run_once()
    [stored] = await charts(db)  # drawn once, by the first delivery
    picture_row = (await outbox(db))[1]
    async with db.session() as s, s.begin():  # as the dead worker left it: leased, never settled
        await s.execute(update(OutboxMessage).where(OutboxMessage.id == picture_row.id)
                        .values(status="sending", lease_until=FRIDAY))

    broken = tmp_path / "wqy-microhei.ttc"
    broken.write_bytes(b"not a font")
    db.chart_font = str(broken)  # drawing again would now fail: the retry must not draw
    later = FRIDAY.replace(hour=10)
    await OutboxWorker(db, {"wecom": deliverer}, clock=lambda: later).run_once()
    _text, first, again = fake.webhook_messages(KEY)
    assert again == first and base64.b64decode(again["image"]["base64"]) == bytes(stored.png)
    assert [r.status for r in await outbox(db)] == ["sent", "sent"] and len(await charts(db)) == 1


@needs_font
async def test_retro_asked_on_dingtalk_sends_the_picture_after_the_text_to_the_same_reply_webhook(db: Database) -> None:
    from tests.dingtalk_support import running_bot, text_of

    db.chart_font = FONT
    async with FakeDingTalk() as ding, running_bot(dingtalk_settings(ding, public_url="https://bot.example.com"),
                                                   db) as bot:
        for text, staff, nick in (("认领 华为", "zhangsan", "张三"), ("赢单 华为 50万", "zhangsan", "张三"),
                                  ("复盘", "boss", "老板")):
            assert (await bot.post_robot(*ding.robot_text_callback(text, staff, nick)))[0] == 200  # type: ignore[arg-type]
            await bot.settle()
        *_, text_row, picture_row = await outbox(db)
        assert picture_row.dest_key == text_row.dest_key and "png" not in picture_row.body["image"]
        assert await charts(db) == []  # the command committed without drawing

        await bot.drain()
        sent = sorted(ding.session_messages(), key=ding.received.index)
        *_, text, picture = [text_of(r) for r in sent]
        [stored] = await charts(db)
        assert "周复盘" in text and picture == f"![周趋势](https://bot.example.com/charts/{stored.id}.png)"
        async with bot.http.get(bot.server.make_url(f"/charts/{stored.id}.png")) as response:
            assert response.status == 200 and await response.read() == bytes(stored.png)

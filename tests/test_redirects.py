"""Platform calls never follow a redirect (issue 12, defect 4).

The fake platform answers 307 with a Location on a second loopback server (`RedirectTrap`) that records
whatever arrives. For every sending path of both platforms — group webhook, app message, response_url,
sessionWebhook, custom robot, group and 1:1 robot APIs, work notification, token fetches — and for the long
connections' handshakes: nothing arrives at the trap, the outbox row ends `failed` (a redirect is permanent:
see `bot.adapters.common.RedirectRefused`), and the log line names the status and the host, never a secret.
"""

from __future__ import annotations

import ast
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.adapters import wecom_ws
from bot.adapters.common import long_connection_session
from bot.adapters.dingtalk_send import DingTalkDeliverer
from bot.adapters.dingtalk_send import dest_key as dingtalk_dest_key
from bot.adapters.wecom_send import WeComDeliverer
from bot.adapters.wecom_send import dest_key as wecom_dest_key
from bot.delivery import OutgoingMessage
from bot.outbox import OutboxWorker, enqueue_message, utcnow
from storage.database import Database
from storage.models import OutboxMessage
from tests.dingtalk_support import dingtalk_settings, running_bot
from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.trap import RedirectTrap
from tests.fakes.wecom import APP_SEND_PATH, GETTOKEN_PATH, RESPONSE_URL_PATH, WEBHOOK_PATH, WS_PATH, FakeWeCom
from tests.wecom_support import MakeClient, wecom_settings

WEBHOOK_KEY = "robot-key-redirect-0123456789"
CORP_SECRET = "corp-secret-never-logged-42"
ROBOT_SECRET = "SECredirectsecret0123456789"


@pytest.fixture
async def trap() -> AsyncIterator[RedirectTrap]:
    async with RedirectTrap() as server:
        yield server


async def send_one(db: Database, deliverer: Any, platform: str, destination: dict[str, Any], key: str) -> OutboxMessage:
    """Queue one reply, run one outbox pass, return the row as the pass left it."""
    async with db.transaction() as store:
        await enqueue_message(store, platform, destination, key, OutgoingMessage("已认领 **ACME**"), utcnow())
    await OutboxWorker(db, {platform: deliverer}).run_once()
    async with db.session() as session:
        [row] = (await session.execute(select(OutboxMessage))).scalars().all()
        return row


def assert_refused(row: OutboxMessage, trap: RedirectTrap, caplog: pytest.LogCaptureFixture, host: str,
                   secrets: list[str]) -> None:
    assert trap.received == []
    assert row.status == "failed" and row.last_error is not None
    assert "307" in row.last_error and host in row.last_error
    lines = [r.getMessage() for r in caplog.records if "redirect" in r.getMessage()]
    assert lines and all("307" in line and host in line for line in lines), lines
    for secret in secrets:
        assert secret not in caplog.text and secret not in row.last_error


# ---------------------------------------------------------------------------------------------- WeCom
@pytest.fixture
async def wecom() -> AsyncIterator[FakeWeCom]:
    async with FakeWeCom(corp_secret=CORP_SECRET, webhook_keys=[WEBHOOK_KEY]) as fake:
        yield fake


def wecom_deliverer(http: aiohttp.ClientSession, wecom: FakeWeCom) -> WeComDeliverer:
    return WeComDeliverer(http, api_base=wecom.base_url, corp_id=wecom.corp_id, app_secret=CORP_SECRET,
                          agent_id=wecom.agent_id)


def _host(base: str) -> str:
    return base.removeprefix("http://")


async def test_wecom_group_webhook_redirect(db: Database, http, wecom: FakeWeCom, trap: RedirectTrap,
                                            caplog: pytest.LogCaptureFixture) -> None:
    wecom.redirect_next(WEBHOOK_PATH, trap.base_url)
    destination = {"kind": "webhook", "key": WEBHOOK_KEY}
    with caplog.at_level(logging.WARNING):
        row = await send_one(db, wecom_deliverer(http, wecom), "wecom", destination, wecom_dest_key(destination))
    assert wecom.redirected == [("POST", WEBHOOK_PATH)] and wecom.webhook_messages(WEBHOOK_KEY) == []
    assert_refused(row, trap, caplog, _host(wecom.base_url), [WEBHOOK_KEY])


@pytest.mark.parametrize("path", [APP_SEND_PATH, GETTOKEN_PATH])
async def test_wecom_app_message_and_token_redirect(db: Database, http, wecom: FakeWeCom, trap: RedirectTrap,
                                                    caplog: pytest.LogCaptureFixture, path: str) -> None:
    wecom.redirect_next(path, trap.base_url)
    destination = {"kind": "member", "user_ids": ["zhangsan"]}
    with caplog.at_level(logging.WARNING):
        row = await send_one(db, wecom_deliverer(http, wecom), "wecom", destination, wecom_dest_key(destination))
    assert wecom.redirected == [("GET" if path == GETTOKEN_PATH else "POST", path)]
    assert wecom.delivered_to("zhangsan") == []
    tokens = [wecom.current_token] if wecom.current_token else []
    assert_refused(row, trap, caplog, _host(wecom.base_url), [CORP_SECRET, *tokens])


async def test_wecom_response_url_redirect(db: Database, http, wecom: FakeWeCom, trap: RedirectTrap,
                                           caplog: pytest.LogCaptureFixture) -> None:
    url = wecom.new_response_url()
    wecom.redirect_next(RESPONSE_URL_PATH, trap.base_url)
    destination = {"kind": "response_url", "url": url}
    with caplog.at_level(logging.WARNING):
        row = await send_one(db, wecom_deliverer(http, wecom), "wecom", destination, wecom_dest_key(destination))
    assert wecom.redirected == [("POST", RESPONSE_URL_PATH)] and wecom.response_url_messages() == []
    assert_refused(row, trap, caplog, _host(wecom.base_url), [url.rsplit("=", 1)[1]])


async def test_wecom_long_connection_handshake_redirect(make_client: MakeClient, fake: FakeWeCom,
                                                        trap: RedirectTrap, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """The first frame after the upgrade carries the bot secret: a redirected upgrade is never followed."""
    monkeypatch.setattr(wecom_ws, "BACKOFF_INITIAL", 0.01)
    fake.redirect_next(WS_PATH, trap.base_url, count=2)  # aiohttp follows http(s) Locations only
    settings = wecom_settings(fake, wecom_aibot_token=None, wecom_aibot_aes_key=None, wecom_aibot_mode="websocket",
                              wecom_aibot_bot_id=fake.aibot_id, wecom_aibot_secret=fake.aibot_secret,
                              wecom_aibot_ws_url=fake.ws_url)
    with caplog.at_level(logging.WARNING):
        await make_client(settings=settings)
        await fake.wait_for(lambda: fake.ws_connected)  # refused twice, then the real endpoint
    assert fake.redirected == [("GET", WS_PATH)] * 2 and trap.received == []
    lines = [r.getMessage() for r in caplog.records if "redirect" in r.getMessage()]
    assert len(lines) == 2 and all("307" in line and _host(fake.base_url) in line for line in lines)
    assert fake.aibot_secret not in caplog.text


async def test_the_long_connections_session_refuses_any_redirect(trap: RedirectTrap, wecom: FakeWeCom) -> None:
    """A call without `platform_request`'s switch (ws_connect's upgrade is one) is still not followed on the
    session long connections open on."""
    wecom.redirect_next(WEBHOOK_PATH, trap.base_url)
    async with long_connection_session() as session:
        with pytest.raises(aiohttp.ClientResponseError) as err:
            await session.post(wecom.webhook_url(WEBHOOK_KEY), json={"msgtype": "text"})
    assert err.value.status == 307 and trap.received == []


# ---------------------------------------------------------------------------------------------- DingTalk
@pytest.fixture
async def ding() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk() as fake:
        yield fake


def _session_destination(ding: FakeDingTalk) -> dict[str, Any]:
    # No fallback: the redirect must fail the row, not quietly take another route.
    return {"kind": "session_webhook", "url": ding.new_session_webhook(), "chat_id": "cid1",
            "expires_at": int((time.time() + 3600) * 1000)}


DINGTALK_CASES = {
    # name: (path redirected, host attribute, destination builder, settings overrides)
    "sessionWebhook": ("/robot/sendBySession", "oapi_base", _session_destination, {}),
    "custom robot": ("/robot/send", "oapi_base", lambda d: {
        "kind": "team", "chat_id": "cid1",
        "custom_robot": {"webhook": d.add_custom_robot("robotA", ROBOT_SECRET), "secret": ROBOT_SECRET}}, {}),
    "group API": ("/v1.0/robot/groupMessages/send", "api_base", lambda d: {"kind": "team", "chat_id": "cid1"}, {}),
    "1:1 API": ("/v1.0/robot/oToMessages/batchSend", "api_base",
                lambda d: {"kind": "member", "user_ids": ["zhangsan"]}, {"dingtalk_agent_id": None}),
    "work notification": ("/topapi/message/corpconversation/asyncsend_v2", "oapi_base",
                          lambda d: {"kind": "member", "user_ids": ["zhangsan"]}, {}),
    "token fetch": ("/v1.0/oauth2/accessToken", "api_base", lambda d: {"kind": "team", "chat_id": "cid1"}, {}),
}


@pytest.mark.parametrize("case", list(DINGTALK_CASES))
async def test_dingtalk_sending_redirects(db: Database, http, ding: FakeDingTalk, trap: RedirectTrap,
                                          caplog: pytest.LogCaptureFixture, case: str) -> None:
    path, host_attr, build, overrides = DINGTALK_CASES[case]
    deliverer = DingTalkDeliverer(dingtalk_settings(ding, **overrides), http)
    destination = build(ding)
    ding.redirect_next(path, trap.base_url)
    with caplog.at_level(logging.WARNING):
        row = await send_one(db, deliverer, "dingtalk", destination, dingtalk_dest_key(destination))
    assert ding.redirected == [("POST", path)]
    assert not [r for r in ding.received if r.accepted and r.kind not in ("oauth2_token", "gettoken")]
    tokens = [ding.current_token] if ding.current_token else []
    assert_refused(row, trap, caplog, _host(getattr(ding, host_attr)),
                   [ROBOT_SECRET, ding.app_secret, *tokens, destination.get("url", "").rsplit("=", 1)[-1] or "-"])


@pytest.mark.parametrize("path", ["/v1.0/gateway/connections/open", "/stream"])
async def test_dingtalk_stream_redirects(db: Database, ding: FakeDingTalk, trap: RedirectTrap,
                                         caplog: pytest.LogCaptureFixture, path: str) -> None:
    """The gateway call carries the app secret, the upgrade its ticket: refused, then connected for real."""
    ding.redirect_next(path, trap.base_url, count=2)
    with caplog.at_level(logging.WARNING):
        async with running_bot(dingtalk_settings(ding, dingtalk_mode="stream"), db, backoff_initial=0.01,
                               backoff_max=0.05):
            await ding.wait_for(lambda: ding.stream_connected)
    assert ding.redirected == [("POST" if path.startswith("/v1.0") else "GET", path)] * 2 and trap.received == []
    lines = [r.getMessage() for r in caplog.records if "redirect" in r.getMessage()]
    assert len(lines) >= 2 and all("307" in line and _host(ding.api_base) in line for line in lines)
    assert ding.app_secret not in caplog.text and "ticket=" not in caplog.text


# ---------------------------------------------------------------------------------------------- every call
HTTP_METHODS = {"get", "post", "put", "patch", "delete", "head", "options", "request"}


def test_every_platform_call_goes_through_platform_request() -> None:
    """No module under bot/ calls a client session's HTTP methods directly (they follow redirects by
    default); `platform_request` in bot/adapters/common.py is the one place that does."""
    root = Path(__file__).resolve().parent.parent / "bot"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            receiver = ast.unparse(node.func.value).lower()
            if node.func.attr in HTTP_METHODS and ("session" in receiver or "http" in receiver):
                if path.name == "common.py" and node.func.attr == "request":
                    continue
                offenders.append(f"{path.relative_to(root.parent)}:{node.lineno} {ast.unparse(node.func)}")
    assert offenders == []

"""Self-tests for the fake WeCom server in tests/fakes/wecom.py.

The crypto is checked against the official vectors of PLATFORMS.md §6 (V1: WeCom doc example; V3: wechatpy's
test suite) and cross-checked against wechatpy 1.8.18, which is what the bot's adapter uses.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from wechatpy.crypto import PrpCrypto, _get_signature
from wechatpy.enterprise import parse_message
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException

from tests.fakes.wecom import (
    ERR_ALL_RECIPIENTS_INVALID,
    ERR_BUSY,
    ERR_CONTENT_TOO_LARGE,
    ERR_EMPTY_CONTENT,
    ERR_FREQ_LIMIT,
    ERR_INVALID_AGENTID,
    ERR_INVALID_CORPID,
    ERR_INVALID_IMAGE_SIZE,
    ERR_INVALID_MSGTYPE,
    ERR_INVALID_PARAMETER,
    ERR_INVALID_SECRET,
    ERR_INVALID_TOKEN,
    ERR_INVALID_WEBHOOK_URL,
    ERR_MISSING_TOKEN,
    ERR_OK,
    ERR_RESPONSE_URL_INVALID,
    ERR_TOKEN_EXPIRED,
    ERR_WS_AUTH_FAILED,
    ERR_WS_INVALID_REQ_ID,
    FakeWeCom,
    WeComCrypto,
    WeComCryptoError,
)

AIBOT_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_KEY = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"

# PLATFORMS.md §6 V1 (WeCom doc 91144 "举例说明").
V1_TOKEN = "QDG6eK"
V1_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
V1_CORP = "wx5823bf96d3bd56c7"
V1_GET = {
    "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "timestamp": "1409659589",
    "nonce": "263014780",
    "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
}
V1_POST_SIG = "477715d11cdb4164915debcba66cb864d751f3e6"
V1_POST_TS = "1409659813"
V1_POST_NONCE = "1372623149"
V1_POST_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/s"
    "YYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJ"
    "YuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGU"
    "callcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDY"
    "A5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)

# PLATFORMS.md §6 V3 (wechatpy tests/test_crypto.py).
V3_TOKEN = "123456"
V3_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
V3_CORP = "wx49f0ab532d5d035a"
V3_ECHOSTR = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
V3_DECRYPT_ENCRYPT = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283d"
    "Gymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwB"
    "iT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54S"
    "NdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91"
    "eBdCRxthuL0="
)
V3_REPLY_XML = """<xml>
<MsgType><![CDATA[text]]></MsgType>
<Content><![CDATA[test]]></Content>
<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>
<ToUserName><![CDATA[messense]]></ToUserName>
<AgentID>1</AgentID>
<CreateTime>1411525903</CreateTime>
</xml>"""
V3_REPLY_ENCRYPT = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURn"
    "AtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oy"
    "KQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkd"
    "Q39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
)


class ManualClock:
    """An injectable clock that only moves when told to."""

    def __init__(self, start: float = 10_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def wecom(clock: ManualClock) -> AsyncIterator[FakeWeCom]:
    async with FakeWeCom(
        corp_id="wwcorp",
        corp_secret="sec",
        aibot_token="T",
        aibot_aes_key=AIBOT_KEY,
        app_token="T2",
        app_aes_key=APP_KEY,
        agent_id=1000002,
        clock=clock,
        wall_clock=lambda: 1_700_000_000.0,
    ) as fake:
        yield fake


async def get_json(http: aiohttp.ClientSession, url: str, **params: str) -> dict[str, Any]:
    async with http.get(url, params=params) as resp:
        assert resp.status == 200
        return await resp.json()


async def post_json(http: aiohttp.ClientSession, url: str, body: Any, **params: str) -> dict[str, Any]:
    async with http.post(url, params=params, json=body) as resp:
        assert resp.status == 200  # WeCom reports errors in the body, not the HTTP status
        return await resp.json()


async def get_token(http: aiohttp.ClientSession, wecom: FakeWeCom) -> str:
    data = await get_json(http, f"{wecom.base_url}/cgi-bin/gettoken", corpid="wwcorp", corpsecret="sec")
    assert data["errcode"] == ERR_OK, data
    return data["access_token"]


def text_msg(content: str, touser: str = "zhangsan", agentid: int = 1000002) -> dict[str, Any]:
    return {"touser": touser, "msgtype": "text", "agentid": agentid, "text": {"content": content}}


def markdown(content: str) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": content}}


# ---------------------------------------------------------------------------------------------- startup
async def test_serves_on_an_ephemeral_port(http: aiohttp.ClientSession) -> None:
    async with FakeWeCom() as one, FakeWeCom() as two:
        for fake in (one, two):
            assert fake.base_url.startswith("http://127.0.0.1:")
            assert int(fake.base_url.rsplit(":", 1)[1]) > 0
            assert fake.ws_url == fake.base_url.replace("http://", "ws://") + "/ws"
        assert one.base_url != two.base_url
        data = await get_json(http, f"{one.base_url}/cgi-bin/gettoken", corpid="wwcorp", corpsecret="sec")
        assert data["errcode"] == ERR_OK
        url = one.base_url
    with pytest.raises(aiohttp.ClientConnectionError):
        await get_json(http, f"{url}/cgi-bin/gettoken")


async def test_base_url_before_start_raises() -> None:
    with pytest.raises(RuntimeError):
        _ = FakeWeCom().base_url


async def test_unknown_path_is_recorded_and_404s(wecom: FakeWeCom, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{wecom.base_url}/cgi-bin/appchat/nope", json={}) as resp:
        assert resp.status == 404
    assert wecom.received[-1].path == "/cgi-bin/appchat/nope"


# ---------------------------------------------------------------------------------------------- tokens
async def test_gettoken_success_and_credential_errors(wecom: FakeWeCom, http: aiohttp.ClientSession) -> None:
    url = f"{wecom.base_url}/cgi-bin/gettoken"
    ok = await get_json(http, url, corpid="wwcorp", corpsecret="sec")
    assert ok["errcode"] == 0 and ok["errmsg"] == "ok"
    assert ok["expires_in"] == 7200 and isinstance(ok["access_token"], str) and ok["access_token"]
    # Within validity the same token comes back (Doc 91039).
    again = await get_json(http, url, corpid="wwcorp", corpsecret="sec")
    assert again["access_token"] == ok["access_token"]
    assert (await get_json(http, url, corpid="wwcorp", corpsecret="wrong"))["errcode"] == ERR_INVALID_SECRET
    assert (await get_json(http, url, corpid="wwother", corpsecret="sec"))["errcode"] == ERR_INVALID_CORPID
    missing = await get_json(http, url)
    assert missing["errcode"] != ERR_OK and "access_token" not in missing
    assert wecom.token_requests == 5


async def test_expire_tokens_gives_42001_then_refresh_works(
    wecom: FakeWeCom, http: aiohttp.ClientSession
) -> None:
    send = f"{wecom.base_url}/cgi-bin/message/send"
    old = await get_token(http, wecom)
    assert (await post_json(http, send, text_msg("hi"), access_token=old))["errcode"] == ERR_OK

    wecom.expire_tokens()
    assert (await post_json(http, send, text_msg("hi"), access_token=old))["errcode"] == ERR_TOKEN_EXPIRED
    unknown = await post_json(http, send, text_msg("hi"), access_token="made-up")
    assert unknown["errcode"] == ERR_INVALID_TOKEN
    assert (await post_json(http, send, text_msg("hi")))["errcode"] == ERR_MISSING_TOKEN

    new = await get_token(http, wecom)
    assert new != old
    assert (await post_json(http, send, text_msg("hi"), access_token=new))["errcode"] == ERR_OK
    assert wecom.token_requests == 2
    assert len(wecom.app_messages()) == 2


async def test_tokens_expire_naturally_by_clock(
    wecom: FakeWeCom, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    send = f"{wecom.base_url}/cgi-bin/message/send"
    token = await get_token(http, wecom)
    clock.advance(7199)
    refreshed = await get_json(http, f"{wecom.base_url}/cgi-bin/gettoken", corpid="wwcorp", corpsecret="sec")
    assert refreshed["access_token"] == token and refreshed["expires_in"] == 1
    assert (await post_json(http, send, text_msg("hi"), access_token=token))["errcode"] == ERR_OK
    clock.advance(1)
    assert (await post_json(http, send, text_msg("hi"), access_token=token))["errcode"] == ERR_TOKEN_EXPIRED
    assert await get_token(http, wecom) != token


# ---------------------------------------------------------------------------------------------- app message
async def test_app_message_checks_agentid_size_and_recipients(
    wecom: FakeWeCom, http: aiohttp.ClientSession
) -> None:
    send = f"{wecom.base_url}/cgi-bin/message/send"
    token = await get_token(http, wecom)

    ok = await post_json(http, send, text_msg("早上好"), access_token=token)
    assert ok["errcode"] == ERR_OK and ok["invaliduser"] == "" and ok["msgid"]
    bad_agent = await post_json(http, send, text_msg("x", agentid=1), access_token=token)
    assert bad_agent["errcode"] == ERR_INVALID_AGENTID

    # 2048 *bytes*: 682 CJK chars (2046 B) + "ab" fits; one more byte does not.
    at_limit = "销" * 682 + "ab"
    assert len(at_limit.encode()) == 2048
    assert (await post_json(http, send, text_msg(at_limit), access_token=token))["errcode"] == ERR_OK
    over = text_msg(at_limit + "c") | {"msgtype": "markdown", "markdown": {"content": at_limit + "c"}}
    assert (await post_json(http, send, over, access_token=token))["errcode"] == ERR_CONTENT_TOO_LARGE
    assert (await post_json(http, send, text_msg(""), access_token=token))["errcode"] == ERR_EMPTY_CONTENT
    bad_type = {"touser": "zhangsan", "msgtype": "sticker", "agentid": 1000002, "sticker": {}}
    assert (await post_json(http, send, bad_type, access_token=token))["errcode"] == ERR_INVALID_MSGTYPE
    assert [m["text"]["content"] for m in wecom.app_messages()] == ["早上好", at_limit]


async def test_app_message_invalid_users(http: aiohttp.ClientSession) -> None:
    async with FakeWeCom(known_users=["zhangsan", "lisi"]) as wecom:
        send = f"{wecom.base_url}/cgi-bin/message/send"
        token = await get_token(http, wecom)
        partial = await post_json(http, send, text_msg("hi", touser="zhangsan|ghost"), access_token=token)
        assert partial["errcode"] == ERR_OK and partial["invaliduser"] == "ghost"
        none_valid = await post_json(http, send, text_msg("hi", touser="ghost"), access_token=token)
        assert none_valid["errcode"] == ERR_ALL_RECIPIENTS_INVALID
        assert wecom.delivered_to("zhangsan") == [text_msg("hi", touser="zhangsan|ghost")]
        assert wecom.delivered_to("ghost") == []


async def test_app_member_quota_drops_silently(
    wecom: FakeWeCom, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    send = f"{wecom.base_url}/cgi-bin/message/send"
    token = await get_token(http, wecom)
    for i in range(31):
        assert (await post_json(http, send, text_msg(f"m{i}"), access_token=token))["errcode"] == ERR_OK
    assert len(wecom.delivered_to("zhangsan")) == 30
    assert [u for u, _ in wecom.dropped_app_deliveries] == ["zhangsan"]
    clock.advance(60)
    await post_json(http, send, text_msg("later"), access_token=token)
    assert wecom.delivered_to("zhangsan")[-1]["text"]["content"] == "later"


async def test_fail_next_forces_an_errcode_once(wecom: FakeWeCom, http: aiohttp.ClientSession) -> None:
    send = f"{wecom.base_url}/cgi-bin/message/send"
    token = await get_token(http, wecom)
    wecom.fail_next("/cgi-bin/message/send", ERR_BUSY)
    assert (await post_json(http, send, text_msg("a"), access_token=token))["errcode"] == ERR_BUSY
    assert (await post_json(http, send, text_msg("a"), access_token=token))["errcode"] == ERR_OK


# ---------------------------------------------------------------------------------------------- webhook
async def test_webhook_rate_limit_sliding_window(
    wecom: FakeWeCom, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    wecom.add_webhook_key("k1")
    wecom.add_webhook_key("k2")
    url = f"{wecom.base_url}/cgi-bin/webhook/send"
    for i in range(20):
        assert (await post_json(http, url, markdown(f"**{i}**"), key="k1"))["errcode"] == ERR_OK
        clock.advance(1)  # sends at t0 .. t0+19
    limited = await post_json(http, url, markdown("21st"), key="k1")
    assert limited["errcode"] == ERR_FREQ_LIMIT
    assert "api freq out of limit" in limited["errmsg"]
    # Other keys have their own window.
    assert (await post_json(http, url, markdown("other"), key="k2"))["errcode"] == ERR_OK

    clock.now += 60 - 20 - 0.001  # just before the first send leaves the window
    assert (await post_json(http, url, markdown("still"), key="k1"))["errcode"] == ERR_FREQ_LIMIT
    clock.advance(0.001)  # first send is now 60 s old: exactly one slot frees up
    assert (await post_json(http, url, markdown("one"), key="k1"))["errcode"] == ERR_OK
    assert (await post_json(http, url, markdown("two"), key="k1"))["errcode"] == ERR_FREQ_LIMIT
    clock.advance(60)
    assert (await post_json(http, url, markdown("recovered"), key="k1"))["errcode"] == ERR_OK

    contents = [m["markdown"]["content"] for m in wecom.webhook_messages("k1")]
    assert len(contents) == 22 and contents[-2:] == ["one", "recovered"]


async def test_webhook_validation(wecom: FakeWeCom, http: aiohttp.ClientSession) -> None:
    wecom.add_webhook_key("k")
    url = f"{wecom.base_url}/cgi-bin/webhook/send"
    assert (await post_json(http, url, markdown("x"), key="nope"))["errcode"] == ERR_INVALID_WEBHOOK_URL
    assert (await post_json(http, url, markdown("x")))["errcode"] == ERR_INVALID_WEBHOOK_URL
    big = "额" * 1365 + "a"  # 4096 bytes
    assert (await post_json(http, url, markdown(big), key="k"))["errcode"] == ERR_OK
    too_big = await post_json(http, url, markdown(big + "b"), key="k")
    assert too_big["errcode"] == ERR_INVALID_PARAMETER and "exceed max length 4096" in too_big["errmsg"]
    text_big = {"msgtype": "text", "text": {"content": "a" * 2049}}
    assert (await post_json(http, url, text_big, key="k"))["errcode"] == ERR_INVALID_PARAMETER
    assert (await post_json(http, url, markdown(""), key="k"))["errcode"] == ERR_EMPTY_CONTENT
    assert (await post_json(http, url, {"msgtype": "gif"}, key="k"))["errcode"] == ERR_INVALID_MSGTYPE
    mention = {"msgtype": "text", "text": {"content": "站会", "mentioned_list": ["@all"]}}
    assert (await post_json(http, url, mention, key="k"))["errcode"] == ERR_OK
    assert len(wecom.webhook_messages("k")) == 2

    wecom.remove_webhook_key("k")
    assert (await post_json(http, url, markdown("x"), key="k"))["errcode"] == ERR_INVALID_WEBHOOK_URL


async def test_fail_webhook_for_a_period_and_by_count(
    wecom: FakeWeCom, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    wecom.add_webhook_key("k")
    url = wecom.webhook_url("k")
    wecom.fail_webhook("k", ERR_FREQ_LIMIT, for_seconds=60)
    assert (await post_json(http, url, markdown("a")))["errcode"] == ERR_FREQ_LIMIT
    clock.advance(59)
    assert (await post_json(http, url, markdown("b")))["errcode"] == ERR_FREQ_LIMIT
    clock.advance(1)
    assert (await post_json(http, url, markdown("c")))["errcode"] == ERR_OK

    wecom.fail_webhook("k", ERR_BUSY, count=2)
    codes = [(await post_json(http, url, markdown(str(i))))["errcode"] for i in range(3)]
    assert codes == [ERR_BUSY, ERR_BUSY, ERR_OK]
    assert [m["markdown"]["content"] for m in wecom.webhook_messages("k")] == ["c", "2"]


# ---------------------------------------------------------------------------------------------- response_url
async def test_response_url_is_one_shot(wecom: FakeWeCom, http: aiohttp.ClientSession) -> None:
    url = wecom.new_response_url()
    assert url.startswith(f"{wecom.base_url}/cgi-bin/aibot/response?response_code=")
    # A rejected body does not spend the URL.
    text_body = {"msgtype": "text", "text": {"content": "x"}}
    assert (await post_json(http, url, text_body))["errcode"] == ERR_INVALID_MSGTYPE
    assert (await post_json(http, url, markdown("已认领 **ACME**")))["errcode"] == ERR_OK
    second = await post_json(http, url, markdown("again"))
    assert second["errcode"] == ERR_RESPONSE_URL_INVALID != ERR_OK
    assert wecom.response_url_messages() == [markdown("已认领 **ACME**")]
    assert wecom.response_url_messages(url) == [markdown("已认领 **ACME**")]
    assert wecom.response_url_messages(wecom.new_response_url()) == []
    bogus = f"{wecom.base_url}/cgi-bin/aibot/response?response_code=bogus"
    assert (await post_json(http, bogus, markdown("x")))["errcode"] == ERR_RESPONSE_URL_INVALID


async def test_response_url_expires_after_an_hour(
    wecom: FakeWeCom, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    fresh, stale = wecom.new_response_url(), wecom.new_response_url()
    clock.advance(3599)
    assert (await post_json(http, fresh, markdown("in time")))["errcode"] == ERR_OK
    clock.advance(1)
    assert (await post_json(http, stale, markdown("too late")))["errcode"] == ERR_RESPONSE_URL_INVALID


# ---------------------------------------------------------------------------------------------- wait_for
async def test_wait_for_wakes_on_request_and_times_out(wecom: FakeWeCom, http: aiohttp.ClientSession) -> None:
    wecom.add_webhook_key("k")

    async def send_later() -> None:
        await asyncio.sleep(0.05)
        await post_json(http, wecom.webhook_url("k"), markdown("hello"))

    task = asyncio.create_task(send_later())
    messages = await wecom.wait_for(lambda: wecom.webhook_messages("k"), timeout=2.0)
    assert messages == [markdown("hello")]
    await task
    with pytest.raises(TimeoutError):
        await wecom.wait_for(lambda: len(wecom.webhook_messages("k")) > 1, timeout=0.1)


# ------------------------------------------------------------------------------------------ crypto vectors
def test_v1_official_vector_get_and_post() -> None:
    crypto = WeComCrypto(V1_TOKEN, V1_KEY, V1_CORP)
    echo = crypto.open(V1_GET["msg_signature"], V1_GET["timestamp"], V1_GET["nonce"], V1_GET["echostr"])
    assert echo == b"1616140317555161061"
    xml = crypto.open(V1_POST_SIG, V1_POST_TS, V1_POST_NONCE, V1_POST_ENCRYPT).decode()
    assert "<FromUserName><![CDATA[mycreate]]></FromUserName>" in xml
    assert "<Content><![CDATA[hello]]></Content>" in xml
    assert "<MsgId>4561255354251345929</MsgId>" in xml and "<AgentID>218</AgentID>" in xml
    with pytest.raises(WeComCryptoError):
        crypto.open(V1_POST_SIG, V1_POST_TS, "1372623148", V1_POST_ENCRYPT)
    with pytest.raises(WeComCryptoError, match="receiveid"):
        WeComCrypto(V1_TOKEN, V1_KEY, "").decrypt(V1_POST_ENCRYPT)


def test_v3_official_vector_signature_decrypt_and_exact_encrypt() -> None:
    crypto = WeComCrypto(V3_TOKEN, V3_KEY, V3_CORP)
    sig = "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
    assert crypto.open(sig, "1411443780", "437374425", V3_ECHOSTR) == b"5927782489442352469"
    with pytest.raises(WeComCryptoError):
        crypto.verify(sig, "1411443780", "437374424", V3_ECHOSTR)
    sig2 = "74d92dfeb87ba7c714f89d98870ae5eb62dff26d"
    xml = crypto.open(sig2, "1411525903", "461056294", V3_DECRYPT_ENCRYPT)
    assert b"<Content><![CDATA[test]]></Content>" in xml and b"messense" in xml
    encrypt = crypto.encrypt(V3_REPLY_XML, random_prefix=b"1234567890123456")
    assert encrypt == V3_REPLY_ENCRYPT
    assert crypto.sign("1411525903", "461056294", encrypt) == "407518b7649e86ef23978113f92d27afa9296533"


def test_padding_is_to_32_byte_blocks() -> None:
    crypto = WeComCrypto("t", AIBOT_KEY, "")
    for size in (0, 1, 11, 12, 13, 44, 100):
        raw_len = len(base64.b64decode(crypto.encrypt("x" * size)))
        assert raw_len % 32 == 0 and raw_len >= 20 + size + 1


# ---------------------------------------------------------------------------------------- AI-bot callbacks
async def test_aibot_text_callback_is_what_wecom_sends(wecom: FakeWeCom, http: aiohttp.ClientSession) -> None:
    query, body = wecom.aibot_text_callback("claim ACME", "zhangsan", "wrkSFfCgAAxxxx")
    assert set(query) == {"msg_signature", "timestamp", "nonce"}
    assert query["timestamp"] == "1700000000"
    envelope = json.loads(body)
    assert set(envelope) == {"encrypt"}

    # Independent check with wechatpy (receiveid "" for the AI bot, PLATFORMS.md §5.2).
    sdk = WeChatCrypto("T", AIBOT_KEY, "")
    plain = sdk.decrypt_message(
        {"Encrypt": envelope["encrypt"]}, query["msg_signature"], query["timestamp"], query["nonce"]
    )
    payload = json.loads(plain)
    assert payload == wecom.sent_aibot_callbacks[-1]
    assert payload["msgtype"] == "text" and payload["chattype"] == "group"
    assert payload["chatid"] == "wrkSFfCgAAxxxx" and payload["from"] == {"userid": "zhangsan"}
    assert payload["aibotid"] == wecom.aibot_id and payload["msgid"]
    assert payload["text"]["content"] == "@销售助手 claim ACME"
    # The embedded response_url is live and one-shot.
    assert (await post_json(http, payload["response_url"], markdown("ok")))["errcode"] == ERR_OK
    assert (await post_json(http, payload["response_url"], markdown("ok")))["errcode"] != ERR_OK

    with pytest.raises(InvalidSignatureException):
        sdk.decrypt_message({"Encrypt": envelope["encrypt"]}, "0" * 40, query["timestamp"], query["nonce"])


async def test_aibot_single_chat_and_event_callbacks(wecom: FakeWeCom) -> None:
    wecom.aibot_text_callback("my deals", "lisi", chat_type="single", msgid="m-1")
    single = wecom.sent_aibot_callbacks[-1]
    assert single["text"]["content"] == "my deals" and "chatid" not in single and single["msgid"] == "m-1"

    query, body = wecom.aibot_event_callback("enter_chat", "lisi")
    event = json.loads(wecom.aibot_crypto.open(
        query["msg_signature"], query["timestamp"], query["nonce"], json.loads(body)["encrypt"]
    ))
    assert event["msgtype"] == "event" and event["event"] == {"eventtype": "enter_chat"}
    assert event["create_time"] == 1_700_000_000 and event["from"]["userid"] == "lisi"
    with pytest.raises(ValueError):
        wecom.aibot_text_callback("x", "u", chat_id=None, chat_type="group")


def test_aibot_verify_params_match_wechatpy(wecom: FakeWeCom) -> None:
    params = wecom.aibot_verify_params("echo-123456")
    assert set(params) == {"msg_signature", "timestamp", "nonce", "echostr"}
    echo = WeChatCrypto("T", AIBOT_KEY, "").check_signature(
        params["msg_signature"], params["timestamp"], params["nonce"], params["echostr"]
    )
    assert (echo.decode() if isinstance(echo, bytes) else echo) == "echo-123456"


def test_decrypt_aibot_passive_reply(wecom: FakeWeCom) -> None:
    reply = {"msgtype": "stream", "stream": {"id": "s1", "finish": True, "content": "**已认领**"}}
    # Built the way PLATFORMS.md §5.2 tells the bot to: PrpCrypto(...).encrypt(json, "") + _get_signature.
    key = base64.b64decode(AIBOT_KEY + "=")
    encrypt = PrpCrypto(key).encrypt(json.dumps(reply, ensure_ascii=False), "")
    encrypt = encrypt.decode() if isinstance(encrypt, bytes) else encrypt
    envelope = {
        "encrypt": encrypt,
        "msgsignature": _get_signature("T", "1700000001", "nonce1", encrypt),
        "timestamp": "1700000001",
        "nonce": "nonce1",
    }
    assert wecom.decrypt_aibot_passive_reply(json.dumps(envelope).encode()) == reply

    with pytest.raises(AssertionError, match="signature"):
        wecom.decrypt_aibot_passive_reply(json.dumps({**envelope, "nonce": "nonce2"}))
    wrong_key = {**envelope, "msg_signature": envelope["msgsignature"]}
    del wrong_key["msgsignature"]
    with pytest.raises(AssertionError, match="msgsignature"):
        wecom.decrypt_aibot_passive_reply(json.dumps(wrong_key))
    with pytest.raises(AssertionError, match="empty"):
        wecom.decrypt_aibot_passive_reply(b"")
    # Encrypted for the app (receiveid = corp id) instead of the AI bot: rejected.
    other = WeComCrypto("T", AIBOT_KEY, "wwcorp")
    enc2 = other.encrypt(json.dumps(reply))
    bad_rid = {"encrypt": enc2, "msgsignature": other.sign(1, 2, enc2), "timestamp": 1, "nonce": 2}
    with pytest.raises(AssertionError, match="receiveid"):
        wecom.decrypt_aibot_passive_reply(json.dumps(bad_rid))


# ---------------------------------------------------------------------------------------------- app callbacks
def test_app_text_callback_decrypts_with_wechatpy(wecom: FakeWeCom) -> None:
    query, body = wecom.app_text_callback("周报", "wangwu", msg_id=4561255354251345929)
    xml = body.decode()
    assert xml.startswith(
        "<xml><ToUserName><![CDATA[wwcorp]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID><Encrypt>"
    )
    plain = WeChatCrypto("T2", APP_KEY, "wwcorp").decrypt_message(
        xml, query["msg_signature"], query["timestamp"], query["nonce"]
    )
    msg = parse_message(plain)
    assert msg.type == "text" and msg.content == "周报" and msg.source == "wangwu"
    assert msg.target == "wwcorp" and int(msg.agent) == 1000002 and msg.id == 4561255354251345929
    assert plain == wecom.sent_app_callbacks[-1]


def test_app_verify_params_and_event(wecom: FakeWeCom) -> None:
    params = wecom.app_verify_params("1616140317555161061")
    echo = WeChatCrypto("T2", APP_KEY, "wwcorp").check_signature(
        params["msg_signature"], params["timestamp"], params["nonce"], params["echostr"]
    )
    assert (echo.decode() if isinstance(echo, bytes) else echo) == "1616140317555161061"

    query, body = wecom.app_event_callback("enter_agent", "wangwu")
    plain = WeChatCrypto("T2", APP_KEY, "wwcorp").decrypt_message(
        body.decode(), query["msg_signature"], query["timestamp"], query["nonce"]
    )
    event = parse_message(plain)
    assert event.type == "event" and event.event == "enter_agent" and event.source == "wangwu"


def test_decrypt_app_passive_reply(wecom: FakeWeCom) -> None:
    reply = (
        "<xml><ToUserName><![CDATA[wangwu]]></ToUserName><FromUserName><![CDATA[wwcorp]]></FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[收到]]></Content></xml>"
    )
    sdk = WeChatCrypto("T2", APP_KEY, "wwcorp")
    envelope = sdk.encrypt_message(reply, "12345", "1700000000")
    assert wecom.decrypt_app_passive_reply(envelope) == reply
    assert wecom.decrypt_app_passive_reply(envelope.encode()) == reply
    fields = wecom.app_passive_reply_fields(envelope)
    assert fields["Content"] == "收到" and fields["ToUserName"] == "wangwu"

    tampered = envelope.replace("<Nonce><![CDATA[12345]]></Nonce>", "<Nonce><![CDATA[12346]]></Nonce>")
    assert tampered != envelope
    with pytest.raises(AssertionError):
        wecom.decrypt_app_passive_reply(tampered)
    with pytest.raises(AssertionError):
        wecom.decrypt_app_passive_reply("")


# ---------------------------------------------------------------------------------------------- WebSocket
def frame(cmd: str, req_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"cmd": cmd, "headers": {"req_id": req_id}}
    if body is not None:
        out["body"] = body
    return out


async def subscribe(http: aiohttp.ClientSession, wecom: FakeWeCom) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(wecom.ws_url)
    credentials = {"bot_id": wecom.aibot_id, "secret": wecom.aibot_secret}
    await ws.send_json(frame("aibot_subscribe", "aibot_subscribe_1", credentials))
    ack = await ws.receive_json(timeout=2)
    assert ack == {"headers": {"req_id": "aibot_subscribe_1"}, "errcode": 0, "errmsg": "ok"}
    return ws


async def test_ws_rejects_bad_credentials(wecom: FakeWeCom, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(wecom.ws_url) as ws:
        await ws.send_json(frame("aibot_subscribe", "sub", {"bot_id": wecom.aibot_id, "secret": "nope"}))
        ack = await ws.receive_json(timeout=2)
        assert ack["headers"] == {"req_id": "sub"} and ack["errcode"] == ERR_WS_AUTH_FAILED
        closing = await ws.receive(timeout=2)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert not wecom.ws_connected and wecom.ws_subscriptions == 0


async def test_ws_round_trip_and_reconnect(wecom: FakeWeCom, http: aiohttp.ClientSession) -> None:
    ws = await subscribe(http, wecom)
    await wecom.wait_for(lambda: wecom.ws_connected)

    await ws.send_json(frame("ping", "ping_1"))
    assert await ws.receive_json(timeout=2) == {"headers": {"req_id": "ping_1"}, "errcode": 0, "errmsg": "ok"}

    req_id = await wecom.ws_push_text("claim ACME", "zhangsan", "grp1")
    pushed = await ws.receive_json(timeout=2)
    assert pushed["cmd"] == "aibot_msg_callback" and pushed["headers"] == {"req_id": req_id}
    assert pushed["body"]["text"]["content"] == "@销售助手 claim ACME"
    assert pushed["body"]["chatid"] == "grp1" and "response_url" not in pushed["body"]

    stream = {"msgtype": "stream", "stream": {"id": "s1", "finish": True, "content": "已认领 ACME"}}
    await ws.send_json(frame("aibot_respond_msg", req_id, stream))
    assert (await ws.receive_json(timeout=2))["errcode"] == ERR_OK
    await ws.send_json(frame("aibot_respond_msg", "unknown", stream))
    assert (await ws.receive_json(timeout=2))["errcode"] == ERR_WS_INVALID_REQ_ID
    push = {"chatid": "grp1", "msgtype": "markdown", "markdown": {"content": "站会时间到"}}
    await ws.send_json(frame("aibot_send_msg", "send_1", push))
    assert (await ws.receive_json(timeout=2))["errcode"] == ERR_OK

    assert [f["body"] for f in wecom.ws_replies(req_id)] == [stream]
    assert wecom.ws_sent_messages("grp1") == [push]
    assert [f["cmd"] for f in wecom.ws_frames()] == [
        "aibot_subscribe", "ping", "aibot_respond_msg", "aibot_respond_msg", "aibot_send_msg",
    ]

    await wecom.ws_drop()
    closing = await ws.receive(timeout=2)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await wecom.wait_for(lambda: not wecom.ws_connected)
    with pytest.raises(RuntimeError):
        await wecom.ws_push_text("x", "u", "grp1")

    ws2 = await subscribe(http, wecom)
    await wecom.wait_for(lambda: wecom.ws_connected and wecom.ws_subscriptions == 2)
    event_req = await wecom.ws_push_event("enter_chat", "lisi")
    assert (await ws2.receive_json(timeout=2))["body"]["event"]["eventtype"] == "enter_chat"
    welcome = {"msgtype": "text", "text": {"content": "hi"}}
    await ws2.send_json(frame("aibot_respond_welcome_msg", event_req, welcome))
    assert (await ws2.receive_json(timeout=2))["errcode"] == ERR_OK
    await ws2.close()


async def test_ws_second_connection_kicks_the_first(wecom: FakeWeCom, http: aiohttp.ClientSession) -> None:
    first = await subscribe(http, wecom)
    second = await subscribe(http, wecom)
    kicked = await first.receive_json(timeout=2)
    assert kicked["cmd"] == "aibot_event_callback"
    assert kicked["body"]["event"]["eventtype"] == "disconnected_event"
    assert (await first.receive(timeout=2)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await wecom.wait_for(lambda: wecom.ws_connected and wecom.ws_subscriptions == 2)
    await wecom.ws_push_text("hello", "u1", chat_type="single")
    assert (await second.receive_json(timeout=2))["body"]["text"]["content"] == "hello"
    await second.close()
    await first.close()


async def test_webhook_image_is_checked_like_wecom(wecom: FakeWeCom, http: aiohttp.ClientSession) -> None:
    """§2a: base64 of a JPG/PNG of at most 2 MB raw, with the md5 of the raw bytes."""
    import hashlib

    wecom.add_webhook_key("k")
    url = f"{wecom.base_url}/cgi-bin/webhook/send"

    def image(raw: bytes, md5: str | None = None) -> dict[str, Any]:
        return {"msgtype": "image", "image": {"base64": base64.b64encode(raw).decode(),
                                              "md5": md5 or hashlib.md5(raw).hexdigest()}}

    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    assert (await post_json(http, url, image(png), key="k"))["errcode"] == ERR_OK
    wrong_md5 = await post_json(http, url, image(png, md5=hashlib.md5(b"other").hexdigest()), key="k")
    assert wrong_md5["errcode"] == ERR_INVALID_PARAMETER and "md5" in wrong_md5["errmsg"]
    assert (await post_json(http, url, image(b"GIF89a" + b"\0" * 10), key="k"))["errcode"] == ERR_INVALID_PARAMETER
    at_limit = png + b"\0" * (2 * 1024 * 1024 - len(png))
    assert (await post_json(http, url, image(at_limit), key="k"))["errcode"] == ERR_OK
    assert (await post_json(http, url, image(at_limit + b"\0"), key="k"))["errcode"] == ERR_INVALID_IMAGE_SIZE
    assert len(wecom.webhook_messages("k")) == 2

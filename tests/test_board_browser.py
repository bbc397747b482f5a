"""The web board in a real headless browser (Debian's chromium through Playwright): the charts draw, the
numbers are the seeded team's, the customer search works, a tampered link is refused, and a phone-width
screenshot is kept under tests/artifacts/ for a person to look at.

Skipped with the reason when no chromium is installed (`.ci/run` installs it); CI always runs them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.board_support import link_in

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"browser tests need chromium at {CHROMIUM} (apt-get install chromium)"
)

# A canvas counts as drawn when some pixel is not transparent.
CANVAS_INK = """canvas => {
  const ctx = canvas.getContext('2d');
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let ink = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i] !== 0) ink++; }
  return ink;
}"""


async def seed(bot, clock) -> None:  # type: ignore[no-untyped-def]
    clock.set_local("2026-12-02 10:00")  # a Wednesday
    await bot.join("张三", "李四", "王五")
    await bot.say("目标 @张三 300万", user="老板")
    await bot.say("目标 @李四 100万", user="老板")
    await bot.say("认领 北京华为技术有限公司", user="张三")
    await bot.say("认领 深圳腾讯计算机系统有限公司", user="李四")
    await bot.say("认领 小米科技", user="王五")
    await bot.say("跟进 华为 已报价 阶段:报价 金额:80万", user="张三")
    await bot.say("跟进 腾讯 需求确认 阶段:需求确认 金额:50万", user="李四")
    await bot.say("跟进 小米 初次拜访 阶段:初访", user="王五")
    await bot.say("赢单 华为 120万", user="张三")
    clock.advance(minutes=5)


@pytest.fixture
async def browser():  # type: ignore[no-untyped-def]
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def test_the_board_draws_the_seeded_team_on_a_phone(bot, board, clock, browser) -> None:
    await seed(bot, clock)
    url = link_in(await bot.say("看板 链接", user="老板"))
    page = await browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    response = await page.goto(url)
    assert response is not None and response.status == 200
    await page.wait_for_selector("canvas[data-drawn]")
    for name in ("goals", "funnel", "trend"):
        canvas = page.locator(f"canvas[data-chart={name}]")
        assert await canvas.get_attribute("data-drawn") == "1", name
        assert await canvas.evaluate(CANVAS_INK) > 500, f"{name} chart is blank"
    assert await page.text_content("[data-kpi=赢单]") == "1 个"
    assert await page.text_content("[data-kpi=赢单金额]") == "120万 元"
    assert await page.text_content("[data-kpi=新客户]") == "3 个"
    assert await page.text_content("[data-won=张三]") == "120万"
    assert await page.text_content("[data-stage=需求确认]") == "1"
    assert errors == []
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "the page scrolls sideways on a phone"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "board-phone.png"), full_page=True)

    await page.click("header nav >> text=客户")
    await page.fill("input[name=q]", "腾讯")
    await page.click("form.filters button")
    await page.wait_for_url("**/customers?*")
    assert await page.text_content("#customer-count") == "共 1 个客户"
    await page.click("text=深圳腾讯计算机系统有限公司")
    assert "需求确认" in await page.text_content("main")
    await page.screenshot(path=str(ARTIFACTS / "board-customer-phone.png"), full_page=True)

    payload, mac = url.rsplit(".", 1)
    response = await page.goto(f"{payload}.{mac[::-1]}")
    assert response is not None and response.status == 403
    assert "链接无效" in await page.text_content("h1")
    assert "华为" not in await page.content()

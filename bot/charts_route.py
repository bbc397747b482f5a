"""`GET /charts/<id>.png`: the retro's chart for platforms that show a picture only from a URL (DingTalk).

Read-only and by id only: the id is a random 128-bit token (storage.charts), so a team's numbers reach only
whoever was sent the link; there is no listing and an unknown id is a plain 404. A chart never changes once
drawn, so caches (DingTalk's image proxy, phones) may keep it.
"""

from __future__ import annotations

from aiohttp import web

from bot.app_keys import DATABASE_KEY
from storage.charts import chart_image

ROUTE = "/charts/{chart_id:[A-Za-z0-9_-]{16,64}}.png"
CACHE_CONTROL = "public, max-age=604800, immutable"


async def chart_png(request: web.Request) -> web.Response:
    async with request.app[DATABASE_KEY].transaction() as store:
        png = await chart_image(store, request.match_info["chart_id"])
    if png is None:
        raise web.HTTPNotFound(text="not found")
    return web.Response(body=png, content_type="image/png",
                        headers={"Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"})


def add_chart_route(app: web.Application) -> None:
    app.router.add_get(ROUTE, chart_png, allow_head=False)

"""The web board's HTTP side: routes, the token check, security headers, static files.

Read-only by construction: GET routes only, one read transaction per page, scoped to the token's team.
A tampered, expired or revoked token gets the same Chinese 403 page with no data. Tokens never reach a
log: errors are logged with the path masked (`storage.board_links.mask_token`), and the access logger of
`bot.app.make_runner` masks them too.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from aiohttp import web

from bot.app_keys import DATABASE_KEY, SETTINGS_KEY
from storage import board_links, board_pages
from storage.store import Store
from storage.team_settings import board_link_generation

log = logging.getLogger("salesbot.board")

STATIC_FILES = {"chart.umd.min.js": "text/javascript", "board.js": "text/javascript", "board.css": "text/css",
                "chart.js.LICENSE.md": "text/plain"}
# No inline script or style, nothing from elsewhere, no framing; the page's data sits in a JSON block.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}
Clock = Callable[[], datetime]
CLOCK_KEY = web.AppKey("board_clock", object)
STATIC_KEY = web.AppKey("board_static", dict)
TEMPLATES_KEY = web.AppKey("board_templates", object)
SECRET_KEY = web.AppKey("board_secret", dict)
PageBuilder = Callable[[web.Request, Store, datetime], Awaitable[tuple[str, dict[str, Any]]]]


def board_component(app: web.Application) -> None:
    """Add the board's routes to the app. jinja2 is loaded by the first page (`_Templates`): a process that
    never serves one — most of them, most of the time — does not keep it in memory."""
    app[STATIC_KEY] = {}  # filled by the first page or file asked for (_static_files)
    app[TEMPLATES_KEY] = _Templates(lambda name: f"/board-static/{_static_files(app)[name][0]}/{name}")
    app[SECRET_KEY] = {}
    from bot.web import pages

    app.router.add_get("/board/{token}", _page(pages.overview_page))
    app.router.add_get("/board/{token}/customers", _page(pages.customers_page))
    app.router.add_get("/board/{token}/customers/{customer_id}", _page(pages.customer_page))
    app.router.add_get("/board-static/{digest}/{name}", _static)


class _Templates:
    """The pages' jinja2 environment, built on first use (autoescaped; `static` names a hashed file URL)."""

    def __init__(self, static_url: Callable[[str], str]) -> None:
        self._static_url = static_url
        self._env: Any = None

    def get(self, name: str) -> Any:
        if self._env is None:
            import jinja2

            env = jinja2.Environment(
                loader=jinja2.PackageLoader("bot.web", "templates"), autoescape=True, trim_blocks=True,
                lstrip_blocks=True,
            )
            env.globals["static"] = self._static_url
            self._env = env
        return self._env.get_template(name)


def _static_files(app: web.Application) -> dict[str, tuple[str, bytes]]:
    """name → (content hash, bytes), read once on first use: the hash in the URL lets browsers keep a file
    for a year, and a process that serves no page does not hold Chart.js in memory."""
    found: dict[str, tuple[str, bytes]] = app[STATIC_KEY]
    if not found:
        root = resources.files("bot.web") / "static"
        for name in STATIC_FILES:
            body = (root / name).read_bytes()
            found[name] = (hashlib.sha256(body).hexdigest()[:12], body)
    return found


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    entry = _static_files(request.app).get(name)
    if entry is None or entry[0] != request.match_info["digest"]:
        raise web.HTTPNotFound()
    return web.Response(body=entry[1], content_type=STATIC_FILES[name], charset="utf-8", headers={
        "Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"})


def now_of(app: web.Application) -> datetime:
    clock = app.get(CLOCK_KEY)
    return clock() if callable(clock) else datetime.now(UTC)


def render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    templates: _Templates = request.app[TEMPLATES_KEY]  # type: ignore[assignment]
    body = templates.get(template).render(**context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)


def _page(build: PageBuilder) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        now = now_of(request.app)
        try:
            async with request.app[DATABASE_KEY].transaction() as store:
                if not await _admit(request, store, now):
                    return render(request, "denied.html", {}, status=403)
                template, context = await build(request, store, now)
        except web.HTTPException:
            raise
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            log.exception("board page failed: %s %s [%s]", request.method, board_links.mask_token(request.path),
                          error_id)
            return render(request, "error.html", {"error_id": error_id}, status=500)
        return render(request, template, {**context, "token": request.match_info["token"]})

    return handler


async def _admit(request: web.Request, store: Store, now: datetime) -> bool:
    """Whether the path's token opens a board now; binds the store to its team when it does."""
    token = request.match_info["token"]
    org_id = board_links.token_org(token)
    secret = await _secret(request.app, store, org_id) if org_id is not None else None
    claims = board_links.read_token(secret, token) if secret else None
    opened = claims is not None and await board_pages.open_scope(store, claims.org_id, claims.team_id,
                                                                 claims.member_id)
    generation = board_link_generation(store.team.settings) if opened else None
    problem = board_links.token_problem(claims, generation, now)
    if problem is not None:
        log.info("board link refused (%s): %s", problem, board_links.mask_token(request.path))
        return False
    return True


async def _secret(app: web.Application, store: Store, org_id: int) -> str | None:
    """The organisation's signing secret, read once per process (a generated one never changes once stored)."""
    cache = app[SECRET_KEY]
    if org_id not in cache:
        secret = await board_links.signing_secret(store, app[SETTINGS_KEY].board_secret, org_id, create=False)
        if secret is None:
            return None
        cache[org_id] = secret
    return str(cache[org_id])

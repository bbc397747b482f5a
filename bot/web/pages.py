"""The board's three pages: what each reads (through storage) and hands to its template.

Query parameters are read leniently: a value that does not read (a period `2026-13`, idle days `abc`) is
ignored with a note on the page, never an error page — the board is looked at, not typed into.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.web.overview import PERIOD_WORDS, build_overview, money, period_of
from handlers.common import OPEN_STAGES, STAGES
from storage import board_pages
from storage.contacts import contacts_of
from storage.store import Store

IDLE_CHOICES = (7, 14, 30, 60)


def _base(store: Store, now: datetime) -> dict[str, Any]:
    local = now.astimezone(ZoneInfo(store.org.timezone))
    return {"team": store.team.name, "updated": local.strftime("%Y-%m-%d %H:%M")}


async def overview_page(request: web.Request, store: Store, now: datetime) -> tuple[str, dict[str, Any]]:
    today = now.astimezone(ZoneInfo(store.org.timezone)).date()
    wanted = request.query.get("p")
    period = period_of(wanted, today)
    note = ""
    if period is None:
        note = f"看不懂的时段「{wanted}」，已显示本月。"
        period = period_of("month", today)
    assert period is not None
    view = await build_overview(store, period, now)
    months = [f"{today.year - (today.month - i <= 0):04d}-{(today.month - i - 1) % 12 + 1:02d}" for i in range(0, 7)]
    months += [f"{today.year}Q{q}" for q in range((today.month - 1) // 3 + 1, 0, -1)]
    current_keys = {word: period_of(word, today).key for word in PERIOD_WORDS}  # type: ignore[union-attr]
    return "overview.html", {**_base(store, now), "view": view, "note": note, "periods": PERIOD_WORDS,
                             "months": months, "current_keys": current_keys}


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() and len(value) < 10 else None


async def customers_page(request: web.Request, store: Store, now: datetime) -> tuple[str, dict[str, Any]]:
    query = request.query
    stage = query.get("stage") or None
    wanted = board_pages.CustomerFilter(
        owner_id=_int(query.get("owner")),
        stage=stage if stage in STAGES else None,
        idle_days=_int(query.get("idle")),
        query=(query.get("q") or "").strip()[:100] or None,
        page=_int(query.get("page")) or 1,
    )
    rows, total = await board_pages.team_customers(store, wanted, now)
    items = []
    for row in rows:
        open_deals = [d for d in row.deals if d.status == "open"]
        state = "、".join(f"{d.stage}" for d in open_deals) or ("已赢单" if any(d.status == "won" for d in row.deals)
                                                               else "已结束")
        items.append({
            "id": row.customer.id, "name": row.customer.name, "owner": row.owner.name if row.owner else "公海",
            "stage": state, "amount": money(sum(d.amount_fen or 0 for d in open_deals)),
            "idle": max((now - row.customer.last_activity_at).days, 0),
        })
    pages = (total + board_pages.PAGE_SIZE - 1) // board_pages.PAGE_SIZE
    return "customers.html", {
        **_base(store, now), "items": items, "total": total, "filter": wanted, "stages": STAGES,
        "members": await board_pages.team_members(store), "idle_choices": IDLE_CHOICES, "pages": pages,
    }


async def customer_page(request: web.Request, store: Store, now: datetime) -> tuple[str, dict[str, Any]]:
    customer_id = _int(request.match_info["customer_id"])
    customer = await board_pages.team_customer(store, customer_id) if customer_id else None
    if customer is None:
        return "missing.html", _base(store, now)
    detail = await store.customer_detail(customer, limit=100)
    tz = ZoneInfo(store.org.timezone)
    contacts = (await contacts_of(store, [customer])).get(customer.id, [])
    deals = [{"name": d.name, "stage": d.stage, "amount": money(d.amount_fen),
              "status": {"open": "跟进中", "won": "赢单", "lost": "输单"}.get(d.status, d.status),
              "reason": d.lost_reason or ""} for d in detail.deals]
    timeline = [{"when": f.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"), "author": m.name,
                 "content": f.content, "stage": f.stage_after or "",
                 "amount": money(f.amount_fen) if f.amount_fen else ""} for f, m in detail.followups]
    return "customer.html", {
        **_base(store, now), "customer": customer, "owner": detail.owner.name if detail.owner else "公海",
        "collaborators": [m.name for m in detail.collaborators], "deals": deals, "contacts": contacts,
        "timeline": timeline, "open_stages": OPEN_STAGES,
    }

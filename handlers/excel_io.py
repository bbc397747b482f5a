"""Customers in and out of spreadsheets: `salesbot import customers` and `salesbot export …`.

Import takes a rep's own sheet as it is: header names are matched leniently (客户名、Customer Name、
「 金额（元） 」 all work; a header saying 万元 scales the numbers), and every row goes through the same
rules as the chat commands — the 撞单 key of `handlers.names` (an exact duplicate is reported and not
imported, also within the file; a look-alike is imported with a warning), `handlers.amounts` for money,
`handlers.dates` for dates. Rows are validated before anything is written: a bad row is listed with
its row number and reason and never half-written, and the good rows go in together in one transaction.

The owner (负责人) decides where a customer lands:
· a 负责人ID column (what export writes) names the platform user id: that member is found, or created
  with that id, so an export imports into an empty database with the same owners;
· otherwise 负责人 is looked up by name or user id in the organisation; an unknown or ambiguous name
  is not guessed at — the customer goes to the team's pool (公海) and the row is listed as a warning,
  because a member created from a bare name would never match the real person's platform account;
· an empty 负责人 puts the customer in the pool.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from handlers.amounts import AmountError, parse_amount
from handlers.commands import UserError
from handlers.common import STAGES, to_fen, yuan
from handlers.contacts import parse_contact
from handlers.dates import DateError, parse_date
from handlers.names import find_near_matches, normalise_company_name
from handlers.options import STAGE_ALIASES
from handlers.points import REASON_TEXT
from storage import points as points_store
from storage import sheets
from storage.contacts import contacts_of, save_contact
from storage.models import Contact, Deal, Member
from storage.store import Store

STATUS_BY_STAGE = {"赢单": "won", "输单": "lost"}
STATUS_TEXT = {"open": "跟进中", "won": "已赢单", "lost": "已输单"}

# Field → header spellings, compared after folding (see `header_key`).
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "name": (
        "客户名称", "客户名", "客户", "客户全称", "公司名称", "公司名", "公司", "企业名称", "单位名称", "名称",
        "customername", "customer", "company", "companyname", "name", "account", "accountname",
    ),
    "owner": (
        "负责人", "负责人姓名", "销售", "销售员", "业务员", "跟进人", "归属人",
        "owner", "ownername", "salesrep", "rep",
    ),
    "owner_id": ("负责人id", "负责人账号", "负责人userid", "ownerid", "userid", "owneruserid"),
    "stage": ("阶段", "销售阶段", "客户阶段", "商机阶段", "stage", "salesstage"),
    "amount": ("金额", "预计金额", "合同金额", "成交金额", "商机金额", "amount", "dealamount", "value"),
    "last_activity": (
        "最近跟进", "最近跟进时间", "最近跟进日期", "最后跟进", "最后跟进时间", "最后跟进日期", "上次跟进", "跟进日期",
        "lastfollowup", "lastactivity", "lastcontact", "lastcontacted",
    ),
    "next_followup": ("下次跟进", "下次跟进日期", "下次跟进时间", "nextfollowup", "nextfollowupdate"),
    "claimed_on": ("认领日期", "认领时间", "claimedon", "claimdate"),
    "note": ("备注", "说明", "描述", "note", "notes", "remark", "remarks", "comment", "comments"),
    "contacts": ("联系人", "联系人信息", "联系方式", "contacts", "contact"),
}  # fmt: skip
# Columns our own export writes that import has no use for; not worth a warning.
EXPORT_ONLY = {"状态", "协作人", "status"}
_ALIAS_TO_FIELD = {alias: f for f, aliases in HEADER_ALIASES.items() for alias in aliases}
_BRACKETS = re.compile(r"[(（\[【]([^)）\]】]*)[)）\]】]")

CUSTOMER_HEADERS = (
    "客户名称", "负责人", "负责人ID", "阶段", "金额（元）", "最近跟进",
    "下次跟进", "备注", "状态", "协作人", "认领日期", "联系人",
)  # fmt: skip
# One cell holds a customer's contacts: 「王强 采购总监 13800138000 wxid_wq；李梅 财务」, as 联系人 takes them.
_CONTACTS_SPLIT = re.compile(r"[；;\n]+")
ContactFields = tuple[str, str | None, str | None, str | None]


class SheetError(Exception):
    """The file as a whole cannot be used (missing, unreadable, no 客户名称 column); Chinese message."""


def header_key(text: Any) -> tuple[str | None, bool]:
    """(field, in_wan) for a header cell: 「 金额（万元） 」 → ("amount", True); unknown → (None, False)."""
    if text is None:
        return None, False
    folded = unicodedata.normalize("NFKC", str(text)).casefold().strip()
    in_wan = any("万" in inner for inner in _BRACKETS.findall(folded))
    folded = _BRACKETS.sub("", folded)
    compact = "".join(ch for ch in folded if unicodedata.category(ch)[0] in "LN")
    field_ = _ALIAS_TO_FIELD.get(compact)
    if field_ is None and compact.endswith("元"):
        base = compact.removesuffix("万元").removesuffix("元")
        if _ALIAS_TO_FIELD.get(base) == "amount":
            return "amount", compact.endswith("万元") or in_wan
    return field_, in_wan


# ---------------------------------------------------------------------------------------- reading
def read_rows(path: Path) -> list[tuple[int, list[Any]]]:
    """Every non-empty row of the first sheet with its spreadsheet row number (1-based)."""
    if not path.exists():
        raise SheetError(f"找不到文件：{path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        raw = path.read_bytes()
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = raw.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:  # pragma: no cover - gb18030 decodes any byte sequence
            raise SheetError("CSV 文件的编码无法识别，请另存为 UTF-8。")
        # newline="": the csv module itself tells a row's end from a line break inside a quoted cell
        # (a note across two lines); splitting the text into lines first would cut such a cell in two.
        rows = list(csv.reader(io.StringIO(text, newline="")))
    elif suffix in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        try:
            workbook = load_workbook(path, read_only=True, data_only=True)
        except Exception as err:  # openpyxl raises zip/xml errors of many kinds for a broken file
            raise SheetError(f"无法读取 Excel 文件 {path.name}：{err}") from None
        try:
            rows = [list(r) for r in workbook.worksheets[0].iter_rows(values_only=True)]
        finally:
            workbook.close()
    else:
        raise SheetError(f"只支持 .xlsx 和 .csv 文件，收到的是「{path.name}」（.xls 请先另存为 .xlsx）。")
    return [(i, row) for i, row in enumerate(rows, 1) if any(_cell_text(c) for c in row)]


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFKC", str(value)).strip()


# ---------------------------------------------------------------------------------------- parsing
@dataclass
class ImportRecord:
    row: int
    name: str
    norm: str
    owner_name: str
    owner_id: str
    stage: str
    status: str
    amount_fen: int | None
    last_activity: date | None
    next_followup: date | None
    note: str | None
    claimed_on: date | None = None
    owner: Member | None = None
    create_owner: bool = False
    contacts: tuple[ContactFields, ...] = ()


@dataclass
class ImportPlan:
    total_rows: int = 0
    records: list[ImportRecord] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)
    duplicates: list[tuple[int, str, str]] = field(default_factory=list)
    warnings: list[tuple[int, str]] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)


def parse_sheet(rows: list[tuple[int, list[Any]]], today: date) -> ImportPlan:
    """Header row → columns; data rows → validated records or (row, reason). Pure: no database."""
    plan = ImportPlan()
    if not rows:
        raise SheetError("文件里没有数据。")
    header_row, header = rows[0]
    columns: dict[str, int] = {}
    in_wan = False
    for index, cell in enumerate(header):
        key, wan = header_key(cell)
        if key is None:
            text = _cell_text(cell)
            if text and text not in EXPORT_ONLY:
                plan.ignored_columns.append(text)
            continue
        if key not in columns:
            columns[key] = index
            in_wan = in_wan or (key == "amount" and wan)
    if "name" not in columns:
        found = "、".join(_cell_text(c) for c in header if _cell_text(c)) or "（空）"
        raise SheetError(f"第 {header_row} 行表头里找不到「客户名称」列（表头是：{found}）。")
    plan.total_rows = len(rows) - 1
    for number, row in rows[1:]:

        def cell(key: str, row: list[Any] = row) -> Any:
            index = columns.get(key)
            return row[index] if index is not None and index < len(row) else None

        try:
            plan.records.append(_parse_row(number, cell, today, in_wan))
        except _RowError as err:
            plan.bad.append((number, str(err)))
    return plan


class _RowError(ValueError):
    pass


def _parse_row(number: int, cell: Any, today: date, in_wan: bool) -> ImportRecord:
    name = _cell_text(cell("name"))
    if not name:
        raise _RowError("客户名称为空")
    if len(name) > 100:
        raise _RowError("客户名称太长（最多 100 字）")
    norm = normalise_company_name(name)
    if not norm:
        raise _RowError(f"「{name}」看起来不是客户名称")
    stage_text = _cell_text(cell("stage")) or "线索"
    stage = STAGE_ALIASES.get(stage_text, stage_text)
    if stage not in STAGES:
        raise _RowError(f"阶段「{stage_text}」不认识（可选：{'、'.join(STAGES)}）")
    amount = _parse_amount_cell(cell("amount"), in_wan)
    last = _parse_date_cell(cell("last_activity"), today, "最近跟进")
    if last is not None and last > today:
        raise _RowError(f"最近跟进日期 {last.isoformat()} 在今天之后")
    next_on = _parse_date_cell(cell("next_followup"), today, "下次跟进")
    claimed_on = _parse_date_cell(cell("claimed_on"), today, "认领")
    note = _cell_text(cell("note")) or None
    try:
        contacts = tuple(
            parse_contact(part.split()) for part in _CONTACTS_SPLIT.split(_cell_text(cell("contacts"))) if part.strip()
        )
    except UserError as err:
        raise _RowError(f"联系人：{err.message}") from None
    return ImportRecord(
        row=number,
        name=name,
        norm=norm,
        owner_name=_cell_text(cell("owner")),
        owner_id=_cell_text(cell("owner_id")),
        stage=stage,
        status=STATUS_BY_STAGE.get(stage, "open"),
        amount_fen=amount,
        last_activity=last,
        next_followup=next_on,
        note=note[:2000] if note else None,
        claimed_on=claimed_on,
        contacts=contacts,
    )


def _parse_amount_cell(value: Any, in_wan: bool) -> int | None:
    if value is None or _cell_text(value) == "":
        return None
    if isinstance(value, bool):
        raise _RowError(f"金额「{value}」看不懂")
    if isinstance(value, (int, float, Decimal)):
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise _RowError(f"金额「{value}」看不懂") from None
        if amount < 0:
            raise _RowError(f"金额不能是负数：{value}")
        return to_fen(amount * (10000 if in_wan else 1))
    text = _cell_text(value)
    try:
        amount = parse_amount(text)
    except AmountError:
        raise _RowError(f"金额「{text[:20]}」看不懂（可写 500000、50万、30k）") from None
    if in_wan and re.fullmatch(r"[\d,.]+", text):
        amount *= 10000
    return to_fen(amount)


def _parse_date_cell(value: Any, today: date, label: str) -> date | None:
    if value is None or _cell_text(value) == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _cell_text(value)
    head = re.split(r"[\sT]", text, maxsplit=1)[0]
    candidate = re.sub(r"[/.]", "-", head)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", candidate):
            return date.fromisoformat(candidate)
        return parse_date(candidate, today)
    except (ValueError, DateError):
        raise _RowError(f"{label}日期「{text[:20]}」看不懂（可写 2026-11-20）") from None


# ------------------------------------------------------------------------------- planning / applying
async def plan_import(store: Store, path: Path, today: date) -> ImportPlan:
    """Read and check a file against the organisation's customers (names are unique across its teams)
    and the team's members; writes nothing."""
    plan = parse_sheet(read_rows(path), today)
    existing = await store.org_customer_names()
    by_norm = {norm: (cid, display) for cid, norm, display in existing}
    seen: dict[str, ImportRecord] = {}
    good: list[ImportRecord] = []
    for record in plan.records:
        if record.norm in by_norm:
            cid, display = by_norm[record.norm]
            customer = await store.org_customer_by_id(cid)
            owner = await store.owner_of(customer) if customer is not None else None
            elsewhere = customer is not None and customer.team_id != store.team.id
            team = f"{(await store.team_of(customer)).name} · " if customer is not None and elsewhere else ""
            holder = f"{team}负责人 {owner.name}" if owner else f"{team}在公海"
            plan.duplicates.append((record.row, record.name, f"已存在客户「{display}」（{holder}）"))
            continue
        if record.norm in seen:
            first = seen[record.norm]
            plan.duplicates.append((record.row, record.name, f"与第 {first.row} 行「{first.name}」是同一客户"))
            continue
        seen[record.norm] = record
        near = find_near_matches(record.norm, [(cid, n) for cid, n, _ in existing], limit=1)
        if near:
            similar = by_norm_display(existing, near[0][0])
            plan.warnings.append((record.row, f"「{record.name}」与已有客户「{similar}」相似，已导入，请核对"))
        await _resolve_owner(store, record, plan)
        good.append(record)
    plan.records = good
    return plan


def by_norm_display(existing: list[tuple[int, str, str]], customer_id: int) -> str:
    return next(display for cid, _, display in existing if cid == customer_id)


async def _resolve_owner(store: Store, record: ImportRecord, plan: ImportPlan) -> None:
    if record.owner_id:
        found = [m for m in await store.find_members(record.owner_id) if m.user_id == record.owner_id]
        if found:
            record.owner = found[0]
        else:
            record.create_owner = True
        return
    if not record.owner_name:
        return
    found = await store.find_members(record.owner_name)
    if len({m.id for m in found}) == 1:
        record.owner = found[0]
    elif found:
        plan.warnings.append((record.row, f"负责人「{record.owner_name}」对应多位成员，「{record.name}」已放入公海"))
    else:
        plan.warnings.append((record.row, f"负责人「{record.owner_name}」不是本组织成员，「{record.name}」已放入公海"))


@dataclass
class ImportResult:
    imported: int = 0
    to_pool: int = 0
    members_created: list[str] = field(default_factory=list)
    raced: list[tuple[int, str]] = field(default_factory=list)


async def apply_import(store: Store, plan: ImportPlan, now: datetime) -> ImportResult:
    """Write the planned customers in the caller's transaction (one transaction for the whole batch)."""
    result = ImportResult()
    tz = ZoneInfo(store.org.timezone)
    for record in plan.records:
        owner = record.owner
        if record.create_owner:
            owner = await store.ensure_member(store.org, record.owner_id, record.owner_name or record.owner_id, now)
            record.owner, record.create_owner = owner, False
            result.members_created.append(owner.name)
        if owner is not None:
            await store.ensure_membership(store.team, owner, now)
        last = datetime.combine(record.last_activity, time(0), tz) if record.last_activity else now
        claimed = datetime.combine(record.claimed_on, time(0), tz) if record.claimed_on else now
        customer = await sheets.insert_imported_customer(
            store,
            name=record.name,
            norm_name=record.norm,
            owner=owner,
            stage=record.stage,
            status=record.status,
            amount_fen=record.amount_fen,
            note=record.note,
            last_activity_at=last,
            next_followup_on=record.next_followup,
            claimed_at=claimed,
            now=now,
        )
        if customer is None:
            result.raced.append((record.row, record.name))
            continue
        for name, title, phone, wechat in record.contacts:
            await save_contact(store, customer, name, now, title=title, phone=phone, wechat=wechat)
        result.imported += 1
        result.to_pool += owner is None
    return result


def import_report(team_name: str, plan: ImportPlan, result: ImportResult | None) -> str:
    """The operator's summary; `result` None means a dry run."""
    lines = [f"导入客户到「{team_name}」：文件共 {plan.total_rows} 行数据"]
    if result is None:
        pool = sum(1 for r in plan.records if r.owner is None and not r.create_owner)
        lines.append(f"【预演，未写入数据库】将导入 {len(plan.records)} 个客户（其中 {pool} 个进公海）")
        created = sorted({r.owner_name or r.owner_id for r in plan.records if r.create_owner})
        if created:
            lines.append(f"将新建成员：{'、'.join(created)}")
    else:
        lines.append(f"✅ 已导入 {result.imported} 个客户（其中 {result.to_pool} 个进公海）")
        if result.members_created:
            lines.append(f"新建成员：{'、'.join(dict.fromkeys(result.members_created))}")
    raced = [(row, name, "导入时已被他人添加") for row, name in (result.raced if result else [])]
    duplicates = list(plan.duplicates) + raced
    if duplicates:
        lines.append(f"⚠️ 重复 {len(duplicates)} 行（未导入）：")
        lines += [f"  第 {row} 行 {name}：{why}" for row, name, why in duplicates]
    if plan.bad:
        lines.append(f"❌ 有问题 {len(plan.bad)} 行（未导入，改正后可再导入一次，已导入的会按重复跳过）：")
        lines += [f"  第 {row} 行：{why}" for row, why in plan.bad]
    if plan.warnings:
        lines.append("提醒：")
        lines += [f"  第 {row} 行：{why}" for row, why in plan.warnings]
    if plan.ignored_columns:
        lines.append(f"未使用的列：{'、'.join(plan.ignored_columns)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- export
def _local_date(moment: datetime | None, tz: ZoneInfo) -> date | None:
    return moment.astimezone(tz).date() if moment else None


def _local_naive(moment: datetime | None, tz: ZoneInfo) -> datetime | None:
    return moment.astimezone(tz).replace(tzinfo=None) if moment else None


def _status_text(deal: Deal | None, owner: Member | None) -> str:
    """跟进中 / 已赢单 / 已输单 of the customer's deal; 公海 for an open deal nobody owns."""
    status = deal.status if deal else "open"
    if owner is None and status == "open":
        return "公海"
    return STATUS_TEXT.get(status, status)


def _money(fen: int | None) -> float | None:
    value = yuan(fen)
    return float(value) if value is not None else None


async def export_rows(store: Store, what: str) -> tuple[str, tuple[str, ...], list[list[Any]]]:
    """(sheet title, headers, rows) for customers, followups or points of the bound team."""
    tz = ZoneInfo(store.org.timezone)
    if what == "customers":
        listed = await sheets.customers_for_export(store)
        people = await contacts_of(store, [c for c, _, _, _ in listed])
        rows = [
            [
                c.name,
                owner.name if owner else "",
                owner.user_id if owner else "",
                deal.stage if deal else "",
                _money(deal.amount_fen) if deal else None,
                _local_date(c.last_activity_at, tz),
                c.next_followup_on,
                c.note or "",
                _status_text(deal, owner),
                "、".join(m.name for m in collaborators),
                _local_date(c.claimed_at, tz) if owner else None,
                "；".join(_contact_cell(p) for p in people[c.id]),
            ]
            for c, deal, owner, collaborators in listed
        ]
        return "客户", CUSTOMER_HEADERS, rows
    if what == "followups":
        headers = ("时间", "客户", "记录人", "内容", "阶段变化", "金额（元）", "下次跟进")
        rows = [
            [
                _local_naive(f.created_at, tz),
                c.name,
                m.name,
                f.content,
                f"{f.stage_before} → {f.stage_after}" if f.stage_after else "",
                _money(f.amount_fen),
                f.next_on,
            ]
            for f, c, m in await sheets.followups_for_export(store)
        ]
        return "跟进记录", headers, rows
    if what == "points":
        headers = ("时间", "成员", "积分", "原因", "求助", "客户", "冲销记录")
        rows = [
            [
                _local_naive(e.created_at, tz),
                m.name,
                e.points,
                REASON_TEXT.get(e.reason, e.reason),
                f"#{h.number} {h.content}" if h else "",
                c.name if c else "",
                f"冲销 #{e.reverses_id}" if e.reverses_id else "",
            ]
            for e, m, h, c in await points_store.ledger(store)
        ]
        return "协作积分", headers, rows
    raise SheetError(f"不支持导出「{what}」，可选：customers、followups、points。")


def _contact_cell(contact: Contact) -> str:
    """A contact as the import reads it back: name, title, phone, WeChat, separated by spaces."""
    return " ".join(p for p in (contact.name, contact.title, contact.phone, contact.wechat) if p)


def write_workbook(path: Path, title: str, headers: tuple[str, ...], rows: list[list[Any]]) -> None:
    """A plain workbook a manager can open: bold frozen header, sensible widths, real dates and numbers."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    if path.suffix.lower() != ".xlsx":
        raise SheetError(f"导出文件要以 .xlsx 结尾：{path.name}")
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title
    sheet.append(list(headers))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    for row in rows:
        sheet.append(row)
    for index, header in enumerate(headers, 1):
        letter = get_column_letter(index)
        values = [header] + [r[index - 1] for r in rows]
        width = max(_display_width(v) for v in values)
        sheet.column_dimensions[letter].width = min(max(width + 2, 8), 60)
        for cell in sheet[letter][1:]:
            if isinstance(cell.value, datetime):
                cell.number_format = "yyyy-mm-dd hh:mm"
            elif isinstance(cell.value, date):
                cell.number_format = "yyyy-mm-dd"
            elif isinstance(cell.value, float):
                cell.number_format = "#,##0.00"
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)


def _display_width(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, datetime):
        return 16
    if isinstance(value, date):
        return 10
    text = str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text[:60])


"""联系人: the people at a customer, and the phone numbers that tie two customers to one buyer.

A number is compared by its digits only (138-0013-8000, +86 13800138000 and 13800138000 are one
phone), across the whole organisation: the same buyer under another company name is a 撞单 that the
customer's name alone never shows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from storage.models import Contact, Customer, Member
from storage.store import Store

_NOT_DIGIT = re.compile(r"\D")


def phone_key(phone: str) -> str:
    """Digits only, without China's country code, so differently written numbers compare equal."""
    digits = _NOT_DIGIT.sub("", phone)
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits


@dataclass
class PhoneElsewhere:
    """Another customer of the organisation with a contact of the same number, and who owns it."""

    customer: Customer
    owner: Member | None
    contact: Contact


async def save_contact(
    store: Store,
    customer: Customer,
    name: str,
    now: datetime,
    *,
    title: str | None = None,
    phone: str | None = None,
    wechat: str | None = None,
) -> tuple[Contact, bool]:
    """Add a contact, or update the one of that name at the customer; True when it is new. Audit-logged."""
    found = (
        await store.session.execute(
            select(Contact).where(Contact.customer_id == customer.id, Contact.name == name).order_by(Contact.id)
        )
    ).scalars().first()
    fields = {"title": title, "phone": phone, "wechat": wechat}
    if found is None:
        contact = Contact(
            org_id=store.org.id,
            customer_id=customer.id,
            name=name,
            title=title,
            phone=phone,
            phone_key=phone_key(phone) if phone else None,
            wechat=wechat,
            added_by_id=store.scope.actor.id if store.scope.actor else None,  # an import has no actor
            created_at=now,
        )
        store.session.add(contact)
        await store.session.flush()
        after = {"customer": customer.id, "name": name, **fields}
        await store.audit("add_contact", "contact", contact.id, None, after, now)
        return contact, True
    before = {k: getattr(found, k) for k, v in fields.items() if v is not None}
    for key, value in fields.items():
        if value is not None:
            setattr(found, key, value)
    if phone:
        found.phone_key = phone_key(phone)
    after = {k: v for k, v in fields.items() if v is not None}
    await store.audit("update_contact", "contact", found.id, before, after, now)
    return found, False


async def contacts_of(store: Store, customers: Sequence[Customer]) -> dict[int, list[Contact]]:
    """The contacts of each customer (by id), oldest first."""
    if not customers:
        return {}
    rows = await store.session.execute(
        select(Contact).where(Contact.customer_id.in_([c.id for c in customers])).order_by(Contact.id)
    )
    found: dict[int, list[Contact]] = {c.id: [] for c in customers}
    for contact in rows.scalars():
        found[contact.customer_id].append(contact)
    return found


async def phone_elsewhere(store: Store, customer: Customer, phone: str) -> list[PhoneElsewhere]:
    """Other customers of the organisation that have a contact with this number."""
    key = phone_key(phone)
    if not key:
        return []
    rows = await store.session.execute(
        select(Contact, Customer)
        .join(Customer, Customer.id == Contact.customer_id)
        .where(Contact.org_id == store.org.id, Contact.phone_key == key, Contact.customer_id != customer.id)
        .order_by(Contact.id)
    )
    pairs = list(rows.all())
    owners = await store.members_by_id([c.owner_id for _, c in pairs if c.owner_id])
    return [PhoneElsewhere(c, owners.get(c.owner_id) if c.owner_id else None, contact) for contact, c in pairs]

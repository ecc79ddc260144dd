"""Customers: organisations with their mail domains, tier and plan, welcomed once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from maild.db.models import Customer, CustomerContact, CustomerDomain
from maild.errors import PermanentError
from maild.mail.addresses import InvalidAddress, normalise
from maild.outbound.mails import Mails
from maild.tickets.model import DEFAULT_TIER, TIERS
from maild.tickets.views import iso


def add_customer(
    mails: Mails,
    session: Session,
    name: str,
    *,
    domains: list[str],
    tier: str = DEFAULT_TIER,
    plan: str | None = None,
    contacts: Sequence[str] = (),
    welcome: bool = False,
) -> tuple[Customer, bool]:
    """Create or update a customer; returns it and whether a welcome mail was queued.

    Adding the same customer again updates it and never sends a second welcome.
    """
    if tier not in TIERS:
        raise PermanentError(f"--tier {tier}: one of {', '.join(TIERS)}")
    try:
        addresses = [normalise(c) for c in contacts]
    except InvalidAddress as exc:
        raise PermanentError(f"--contact: {exc}") from None
    domains = [d.strip().lower().lstrip("@") for d in domains]
    now = mails.clock.now()
    customer = session.scalar(
        select(Customer).where(Customer.name == name).with_for_update()
    ) or Customer(name=name, created_at=now)
    customer.tier = tier
    customer.plan = plan if plan is not None else customer.plan
    session.add(customer)
    for domain in domains:
        owner = session.get(CustomerDomain, domain)
        if owner is not None and owner.customer is not customer:
            raise PermanentError(f"--domain {domain}: already belongs to {owner.customer.name}")
        if owner is None:
            customer.domains.append(CustomerDomain(domain=domain))
    for address in addresses:
        owner_contact = session.scalar(
            select(CustomerContact).where(CustomerContact.address == address)
        )
        if owner_contact is not None and owner_contact.customer is not customer:
            raise PermanentError(f"--contact {address}: already belongs to "
                                 f"{owner_contact.customer.name}")
        if owner_contact is None:
            customer.contacts.append(CustomerContact(address=address))
    session.flush()
    if not welcome or customer.welcomed_at is not None:
        return customer, False
    if not customer.contacts:
        raise PermanentError("--welcome needs a --contact to write to")
    for contact in customer.contacts:
        mails.welcome(session, customer, contact.address)
    customer.welcomed_at = now
    return customer, True


def customer_json(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer.name,
        "tier": customer.tier,
        "plan": customer.plan,
        "domains": [d.domain for d in customer.domains],
        "contacts": [c.address for c in customer.contacts],
        "created_at": iso(customer.created_at),
        "welcomed_at": iso(customer.welcomed_at),
    }


def list_customers(session: Session) -> list[Customer]:
    return list(session.scalars(
        select(Customer).options(selectinload(Customer.domains), selectinload(Customer.contacts))
        .order_by(Customer.name)
    ))

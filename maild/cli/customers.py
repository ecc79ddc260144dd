"""`maild customers …`: registering organisations and their contacts."""

from __future__ import annotations

import click

from maild.cli.context import (
    Context,
    handles_errors,
    json_option,
    print_json,
)
from maild.tickets.model import DEFAULT_TIER, TIERS


@click.group()
def customers() -> None:
    """Organisations we support."""


@customers.command("add")
@click.argument("name")
@click.option("--domain", "domains", multiple=True, help="Mail domain (repeatable).")
@click.option("--tier", default=DEFAULT_TIER, show_default=True, type=click.Choice(TIERS))
@click.option("--plan")
@click.option("--contact", "contacts", multiple=True, help="Contact address (repeatable).")
@click.option("--welcome", is_flag=True, help="Send the welcome mail (only ever once).")
@click.pass_obj
@handles_errors
def customers_add(obj: Context, name: str, domains: tuple[str, ...], tier: str,
                  plan: str | None, contacts: tuple[str, ...], welcome: bool) -> None:
    from maild.tickets.customers import add_customer

    app = obj.app()
    with app.db.transaction() as session:
        added = add_customer(
            app.mails, session, name, domains=list(domains), tier=tier, plan=plan,
            contacts=list(contacts), welcome=welcome,
        )
        customer, linked = added.customer, added.linked
        already = welcome and not added.welcomed
        click.echo(f"customer {customer.name}: {customer.tier}, "
                   f"{', '.join(d.domain for d in customer.domains) or 'no domains'}"
                   + (f"; {len(linked)} earlier ticket(s) linked: "
                      + ", ".join(f"#{n}" for n in linked) if linked else "")
                   + ("; welcome mail queued" if added.welcomed else "")
                   + ("; already welcomed, not sent again" if already else ""))


@customers.command("list")
@json_option
@click.pass_obj
@handles_errors
def customers_list(obj: Context, as_json: bool) -> None:
    from maild.tickets.customers import customer_json, list_customers

    found = obj.read(lambda app, session: [customer_json(c) for c in list_customers(session)])
    if as_json:
        print_json(found)
        return
    for c in found:
        click.echo(f"{c['name']:<30} {c['tier']:<12} {c['plan'] or '-':<12} "
                   f"{', '.join(c['domains'])}")



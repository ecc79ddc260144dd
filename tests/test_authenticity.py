"""Spoofing: a staff From header alone does not make an SE when the operator asks for
the receiving server's verdict (Authentication-Results)."""

from __future__ import annotations

import pytest

from maild.config import Config
from maild.intake.pipeline import ingest
from maild.runtime.app import App
from tests.conftest import Sink
from tests.helpers import show
from tests.mailbuilder import make_mail, plain_text

MX = "mx.example.com"


@pytest.fixture
def config(config: Config) -> Config:
    return config.model_copy(update={"staff": config.staff.model_copy(update={
        "verify": "authentication-results", "trusted_authserv_ids": [MX]})})


def se_reply(ticket_id: int, results: str | None, message_id: str) -> bytes:
    return make_mail(sender="Dan Engineer <dan@example.com>", subject=f"Re: [#{ticket_id}]",
                     message_id=message_id, in_reply_to="<first@customer.example>",
                     body="#solve\nAll fixed, closing this.\n",
                     headers={"Authentication-Results": results} if results else {})


def test_staff_mail_passing_dkim_at_our_server_is_staff(app: App) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    passed = f"{MX}; dkim=pass header.d=example.com header.s=s1; spf=fail smtp.mailfrom=x.test"
    ingest(app.intake, se_reply(ticket_id, passed, "<real@example.com>"), "test")

    ticket = show(app, ticket_id)
    assert ticket["status"] == "solved"
    assert ticket["messages"][-1]["kind"] == "public"


@pytest.mark.parametrize("results", [
    None,  # no verdict at all
    f"{MX}; dkim=fail header.d=example.com; spf=softfail smtp.mailfrom=dan@example.com",
    f"{MX}; dkim=pass header.d=attacker.example",  # signed, but by someone else
    "mx.attacker.example; dkim=pass header.d=example.com",  # written by the sender itself
])
def test_claimed_staff_mail_that_fails_is_a_customer_message_and_flagged(
    app: App, sink: Sink, results: str | None
) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    ingest(app.intake, se_reply(ticket_id, results, "<spoof@example.com>"), "test")

    ticket = show(app, ticket_id)
    assert ticket["status"] == "open"  # not solved: the "#solve" was a customer's words
    last = ticket["messages"][-1]
    assert (last["direction"], last["kind"]) == ("in", "public")
    flagged = [e for e in ticket["events"] if e["kind"] == "staff_unverified"]
    assert len(flagged) == 1
    assert flagged[0]["detail"] == (
        "<spoof@example.com> claims staff address dan@example.com, but no "
        f"Authentication-Results from {MX} shows dkim, spf or dmarc passing for example.com")
    relayed = [m for m in ticket["messages"] if (m["direction"], m["kind"]) == ("out", "public")]
    assert relayed == []
    app.sender.deliver_due()
    [warning] = [m for m in sink.messages()
                 if m["Delivered-To"] == "dan@example.com" and "replied:" in plain_text(m)]
    assert plain_text(warning).startswith(
        "Caution: this mail claims a staff address but failed the authenticity check; "
        "it was handled as a customer's.\n\nDan Engineer <dan@example.com> replied:")


def test_a_mangled_authentication_results_header_is_a_failed_check_not_a_crash(
    app: App
) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    result = ingest(app.intake, se_reply(ticket_id, ";;; dkim=", "<mangled@example.com>"), "test")
    assert result.outcome == "stored"
    assert show(app, ticket_id)["status"] == "open"
